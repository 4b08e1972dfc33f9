/* The two binary files a usable clip's output directory holds (documented
 * for users in docs/formats.md). Both are little-endian and start with an
 * 8-byte magic and a version.
 *
 * faces.bin: what the face stage saw in every decoded frame of the clip.
 *   header, 64 bytes:
 *     0  char[8]  magic "DFEWFACE"
 *     8  u32      version (2; version 1 files have no subject and no others)
 *    12  u32      header size in bytes (64)
 *    16  u32      record size in bytes (584)
 *    20  u32      landmarks per face (68)
 *    24  u32      frame width, upright (pixels)
 *    28  u32      frame height, upright
 *    32  u64      records (= decoded frames of the clip)
 *    40  f64      clip start, seconds on the movie timeline
 *    48  f64      clip end (exclusive)
 *    56  u32      the subject's track (0-based; 0xffffffff: no face)
 *    60  u32      others: entries of the other faces after the records
 *   then one 584-byte record per decoded frame, in presentation order (the
 *   subject's face):
 *     0  u32      frame index within the clip (0-based)
 *     4  u32      flags: bit 0 = the subject's face was found
 *     8  f64      frame time, seconds on the movie timeline
 *    16  f32[4]   box x0 y0 x1 y1 (pixels; x1, y1 exclusive); 0 when not found
 *    32  f32      detection score (dlib HOG; higher is surer)
 *    36  u32      faces the detector found in the frame (any person)
 *    40  f32[136] 68 landmarks x0 y0 x1 y1 ... (pixels, iBUG 300-W order)
 *   then `others` 32-byte entries, one per face of another track in a frame,
 *   in frame order:
 *     0  u32      frame index within the clip
 *     4  u32      track
 *     8  f32[4]   box x0 y0 x1 y1
 *    24  f32      detection score
 *    28  u32      reserved, 0
 *
 * clip.u8: the aligned, interpolated clip as one packed tensor.
 *   header, 32 bytes:
 *     0  char[8]  magic "DFEWCLIP"
 *     8  u32      version (1)
 *    12  u32      header size in bytes (32)
 *    16  u32      frames T, 20 u32 height H, 24 u32 width W, 28 u32 channels C (3)
 *   then T*H*W*C bytes: uint8 RGB, frame-major, rows top to bottom. */
#ifndef DFEW_CLIPFMT_H
#define DFEW_CLIPFMT_H

#include <stdint.h>
#include <stdio.h>

#define FACES_MAGIC "DFEWFACE"
#define FACES_VERSION 2
#define FACES_OTHER_SIZE 32
#define FACES_NO_TRACK 0xffffffffu
#define FACES_HEADER_SIZE 64
#define FACES_RECORD_SIZE 584
#define FACES_LANDMARKS 68
#define CLIP_MAGIC "DFEWCLIP"
#define CLIP_VERSION 1
#define CLIP_HEADER_SIZE 32

struct faces_header {
    uint32_t width, height;
    uint64_t records;
    double start_s, end_s;
    uint32_t version;       /* as read (written: FACES_VERSION) */
    uint32_t subject_track; /* FACES_NO_TRACK: none */
    uint32_t others;
};

/* A face of another track than the subject's. */
struct face_other {
    uint32_t index, track;
    float box[4];
    float score;
};

struct face_record {
    uint32_t index;
    uint32_t found;
    double t;
    float box[4];
    float score;
    uint32_t faces_in_frame;
    float pts[2 * FACES_LANDMARKS];
};

/* faces.bin: write the header (records = 0), append the records, then the
 * other faces; faces_finish rewrites the header with the final counts. */
int faces_write_header(FILE *f, const struct faces_header *h);
int faces_write_record(FILE *f, const struct face_record *r);
int faces_write_other(FILE *f, const struct face_other *o);
int faces_finish(FILE *f, const struct faces_header *h);
/* Reads a whole faces.bin (version 1 or 2): -EINVAL with a reason in err
 * when it is not one. others (may be NULL): the other faces (h->others). */
int faces_read(const char *path, struct faces_header *h, struct face_record **recs, char *err, size_t errlen);
int faces_read_all(const char *path, struct faces_header *h, struct face_record **recs, struct face_other **others,
                   char *err, size_t errlen);

/* The same for a file already in memory (path: for messages). */
int faces_parse(const uint8_t *b, size_t n, const char *path, struct faces_header *h, struct face_record **recs,
                struct face_other **others, char *err, size_t errlen);

int clip_write_header(FILE *f, int frames, int height, int width, int channels);
/* Reads a whole clip.u8 (*data: frames*height*width*channels bytes, caller frees). */
int clip_read(const char *path, int *frames, int *height, int *width, int *channels, uint8_t **data, char *err,
              size_t errlen);

/* Checks a clip.u8 in memory: its dimensions (each 1..INT_MAX, at most
 * 2^48 bytes of pixels) and that the size matches; the pixels start at
 * b + *pixels_at. */
int clip_parse(const uint8_t *b, size_t n, const char *path, int *frames, int *height, int *width, int *channels,
               size_t *pixels_at, char *err, size_t errlen);
/* Reads and checks only the header of a clip.u8 (and that the file size
 * matches it): for checking many clips without reading their pixels. */
int clip_read_header(const char *path, int *frames, int *height, int *width, int *channels, char *err,
                     size_t errlen);
/* Reads a clip.u8 that must be frames x height x width x 3 into dst (that
 * many bytes): the trainer's per-clip read, without an allocation.
 * -EINVAL with the reason in err when the file is not such a clip. */
int clip_read_into(const char *path, int frames, int height, int width, uint8_t *dst, char *err, size_t errlen);

#endif
