/* dfew-decode-floor: the decode-only floor of the prep benchmark
 * (bench/prep.py, bench/README.md). Decodes every frame of each video it is
 * given to an 8-bit grey plane in this process, exactly as the prep job's
 * decoder does (media/decode.h: decoder_open with DECODE_GRAY | DECODE_NO_RGB,
 * one decoding thread, passthrough timing), and does nothing else with the
 * pictures: no faces, no alignment, no output. No preprocessing can be faster
 * than this on the same machine with the same decoder.
 *
 * Prints one JSON line per video: {"file", "frames", "seconds", "width",
 * "height", "decode_errors"} (seconds: open to the end of the stream,
 * monotonic). Exits 1 when a video cannot be opened or read. It is not a
 * test and asserts nothing about speed. */
#include <stdio.h>
#include <string.h>

#include "decode.h"
#include "util.h"

static int decode_one(const char *path)
{
    char err[512] = "";
    struct decoder *d;
    struct decoded_frame f;
    double t0 = mono_s();
    int rc = decoder_open(path, DECODE_GRAY | DECODE_NO_RGB, &d, err, sizeof err);
    if (rc) {
        fprintf(stderr, "dfew-decode-floor: %s: %s\n", path, err[0] ? err : strerror(-rc));
        return 1;
    }
    long frames = 0;
    int width = 0, height = 0;
    /* touch one byte of each grey plane so that nothing can skip producing it */
    unsigned sum = 0;
    while ((rc = decoder_next(d, &f, err, sizeof err)) == 1) {
        frames++;
        width = f.width;
        height = f.height;
        sum += f.gray[(f.height / 2) * f.gray_stride + f.width / 2];
    }
    double secs = mono_s() - t0;
    long errors = (long)decoder_stats(d)->decode_errors;
    decoder_close(d);
    if (rc < 0) {
        fprintf(stderr, "dfew-decode-floor: %s: %s\n", path, err);
        return 1;
    }
    struct sbuf b = {0};
    sbuf_add_json_str(&b, path);
    printf("{\"file\":%s,\"frames\":%ld,\"seconds\":%.6f,\"width\":%d,\"height\":%d,\"decode_errors\":%ld,"
           "\"checksum\":%u}\n",
           sbuf_str(&b), frames, secs, width, height, errors, sum);
    sbuf_free(&b);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: dfew-decode-floor VIDEO...\n"
                "Decodes every frame of each video to grey (the prep job's decoder, nothing else) and prints\n"
                "one JSON line per video with its frames and seconds.\n");
        return argc < 2 ? 2 : 0;
    }
    int status = 0;
    for (int i = 1; i < argc; i++)
        status |= decode_one(argv[i]);
    return status;
}
