/* Encoding RGB24 pictures as PNG or JPEG files with libavcodec's own PNG and
 * MJPEG encoders (no other image library), bit-exact: the same pixels always
 * give the same bytes. Not a decoder (decode.c reads images). */
#ifndef DFEW_IMGENC_H
#define DFEW_IMGENC_H

#include <stddef.h>
#include <stdint.h>

enum img_format { IMG_PNG, IMG_JPEG };

/* "png" or "jpg"/"jpeg"; -EINVAL otherwise. */
int img_format_parse(const char *s, enum img_format *out);
const char *img_format_ext(enum img_format f); /* "png" or "jpg" */

struct img_encoder;
int img_encoder_new(enum img_format f, struct img_encoder **out);
void img_encoder_free(struct img_encoder *e);
/* Encodes one picture into a buffer the encoder owns (valid until the next
 * call). 0 or a negative errno. */
int img_encode(struct img_encoder *e, const uint8_t *rgb, int width, int height, int stride, const uint8_t **data,
               size_t *len);
/* Encodes and writes path (created or truncated, fsync'ed). */
int img_write_file(struct img_encoder *e, const char *path, const uint8_t *rgb, int width, int height, int stride);
/* The same without the fsync: for a directory of many files that the caller
 * makes durable at once (syncfs) before it renames it into place; an fsync
 * per file costs more than encoding it. */
int img_write_file_nosync(struct img_encoder *e, const char *path, const uint8_t *rgb, int width, int height,
                          int stride);

#endif
