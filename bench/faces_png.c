/* dfew-faces-png: detects faces and 68 landmarks in image files, each at
 * full size, one file after another. Two uses: the benchmark's naive
 * pipeline (ffmpeg writes every frame as PNG, then this reads them) and the
 * tests, which re-detect the aligned frames a prep job wrote (--json).
 * It uses the same dlib wrapper and image decoder as dfew-worker. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "dlibc.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: dfew-faces-png [--upsample N] [--model FILE] [--json] [--rgb] IMAGE...\n"
               "Detects faces (dlib HOG) and 68 landmarks in each image. Without --json it prints\n"
               "one summary line; with --json one JSON object per image.\n");
}

int main(int argc, char **argv)
{
    int upsample = 0, json = 0, rgb = 0, i = 1;
    const char *model = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--upsample") && i + 1 < argc)
            upsample = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--rgb"))
            rgb = 1;
        else {
            usage(!strcmp(argv[i], "--help") ? stdout : stderr);
            return !strcmp(argv[i], "--help") ? 0 : 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    char err[1024];
    struct dlibc_detector *det;
    struct dlibc_predictor *sp;
    /* dlib's own shape predictor: the naive pipeline is dlib as it comes */
    if (dlibc_detector_new(&det, err, sizeof err) ||
        dlibc_predictor_open(model, DLIBC_PREDICTOR_STOCK, &sp, err, sizeof err)) {
        fprintf(stderr, "dfew-faces-png: %s\n", err);
        return 1;
    }
    long images = 0, with_face = 0, faces = 0;
    int status = 0;
    for (; i < argc; i++) {
        struct decoder *d;
        struct decoded_frame f;
        int rc = decoder_open(argv[i], rgb ? 0 : DECODE_GRAY, &d, err, sizeof err);
        if (!rc && (rc = decoder_next(d, &f, err, sizeof err)) != 1) {
            snprintf(err, sizeof err, "%s: no picture", argv[i]);
            rc = -EINVAL;
            decoder_close(d);
        } else if (rc == 1) {
            rc = 0;
        }
        if (rc) {
            fprintf(stderr, "dfew-faces-png: %s\n", err);
            status = 1;
            continue;
        }
        struct dlibc_image img = rgb ? (struct dlibc_image){f.rgb, f.width, f.height, f.rgb_stride, DLIBC_RGB24}
                                     : (struct dlibc_image){f.gray, f.width, f.height, f.gray_stride, DLIBC_GRAY8};
        struct dlibc_box boxes[32];
        int n = dlibc_detect(det, &img, upsample, boxes, 32);
        images++;
        with_face += n > 0;
        faces += n > 0 ? n : 0;
        if (json)
            printf("{\"file\":\"%s\",\"width\":%d,\"height\":%d,\"faces\":[", argv[i], f.width, f.height);
        for (int k = 0; k < n && k < 32; k++) {
            float pts[2 * DLIBC_LANDMARKS];
            if (dlibc_predict(sp, &img, &boxes[k], pts) != 0)
                status = 1;
            if (!json)
                continue;
            printf("%s{\"box\":[%g,%g,%g,%g],\"score\":%.4f,\"points\":[", k ? "," : "", boxes[k].x0, boxes[k].y0,
                   boxes[k].x1, boxes[k].y1, boxes[k].score);
            for (int p = 0; p < DLIBC_LANDMARKS; p++)
                printf("%s[%g,%g]", p ? "," : "", pts[2 * p], pts[2 * p + 1]);
            printf("]}");
        }
        if (json)
            printf("]}\n");
        decoder_close(d);
    }
    if (!json)
        printf("%ld images, %ld with a face, %ld faces\n", images, with_face, faces);
    dlibc_predictor_free(sp);
    dlibc_detector_free(det);
    return status;
}
