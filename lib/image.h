/* Still images through FFmpeg: decoding any image file libavformat/libavcodec
 * read (PNG, JPEG, ...) to packed RGB, and encoding RGB to JPEG with
 * libavcodec's MJPEG encoder. No image library of our own. Used by
 * `dfewctl export` to write the DFEW release layout. */
#ifndef DFEW_IMAGE_H
#define DFEW_IMAGE_H

#include <stddef.h>
#include <stdint.h>

struct image {
    int w, h;
    uint8_t *rgb; /* h rows of w * 3 bytes, R G B */
};

/* -ENOENT/-EACCES for the path, -EINVAL with a reason in err when it is not a
 * decodable image. */
int image_load_rgb(const char *path, struct image *img, char *err, size_t errlen);
/* quality: libavcodec qscale, 2 (best) .. 31. The file is written in place:
 * callers write into a temporary directory. */
int image_save_jpeg(const char *path, const struct image *img, int quality, char *err, size_t errlen);
void image_free(struct image *img);

#endif
