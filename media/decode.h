/* Decoding the video frames of a movie (or one still image), in presentation
 * order, with libavformat/libavcodec and libswscale: every frame the stream
 * holds exactly once (passthrough timing, as `ffmpeg -fps_mode passthrough`),
 * turned upright by the rotation metadata, as RGB24 and optionally 8-bit grey.
 * Times are seconds on the movie's timeline as players show it and
 * `ffmpeg -ss` takes it: t = pts * time_base - container start_time.
 * Damaged or truncated input decodes as far as it can; what was lost is
 * counted in the stats, not crashed on. Not a player: no audio, no frame-rate
 * conversion, no scaling. */
#ifndef DFEW_DECODE_H
#define DFEW_DECODE_H

#include <stddef.h>
#include <stdint.h>

struct decoder;

/* A clip's frames are those with start_s <= t < end_s, each boundary with
 * this much slack (timestamps are integers in the stream's time base,
 * seconds are doubles): the one rule of decoder_seek, the prep job's face
 * scan and dfew-web's preview, so that they all take the same frames. */
#define DECODE_T_EPS 1e-6
static inline int decode_t_before(double t, double start_s) { return t < start_s - DECODE_T_EPS; }
static inline int decode_t_past(double t, double end_s) { return t >= end_s - DECODE_T_EPS; }

enum decode_flags {
    DECODE_GRAY = 1,   /* also produce an 8-bit grey (luma) plane */
    DECODE_RAW = 2,    /* decoder_next converts nothing: f->av is the decoded
                          picture as the codec gave it (coded orientation, its
                          own pixel format); decoder_convert() or
                          decoder_convert_gray() converts it when it is
                          wanted (the face scan, media/scan.c, converts the
                          grey plane on its decoding thread, straight into
                          the buffer the tracker takes) */
    DECODE_NO_RGB = 4, /* convert to grey only (with DECODE_GRAY): f->rgb is NULL */
};

struct AVFrame;

/* One decoded frame; the pixels belong to the decoder and stay valid until
 * the next decoder_next, decoder_seek or decoder_close. */
struct decoded_frame {
    const uint8_t *rgb; /* RGB24, upright */
    int rgb_stride;
    const uint8_t *gray; /* with DECODE_GRAY, else NULL */
    int gray_stride;
    int width, height; /* upright size */
    double t;          /* seconds on the movie timeline */
    double duration;   /* seconds the frame lasts: its packet's duration, else 1 / the nominal frame rate */
    int64_t index;     /* 0-based count of frames returned since open or the last seek */
    const struct AVFrame *av; /* with DECODE_RAW: the decoded picture, valid as the pixels are
                                 (av_frame_clone keeps it longer) */
};

struct decoder_stats {
    int64_t packets;       /* video packets read */
    int64_t decode_errors; /* packets or frames the decoder rejected */
    int read_error;        /* reading stopped early (truncated or unreadable file): a read
                              error, or, at the end of the stream, signs of a file cut short
                              (index entries past the end of the file, or frames that end
                              well before the end the container gives the video stream: an
                              MP4 with its index at the front reads to a clean end, the lost
                              packets just fail) */
    char read_error_msg[192];
    double frames_end;     /* the end (time + duration) of the last frame decoded since open
                              or the last seek, dropped ones included; NAN before the first */
    double stream_end;     /* where the container says the video stream ends, on the movie
                              timeline; NAN when it does not say */
    int64_t preroll_packets; /* packets of pictures shown before the first wanted frame after
                                a seek (decoded only when other pictures refer to them) */
};

/* Opens path and its first video stream. -ENOENT/-EACCES for the path,
 * -EINVAL (reason in err) when it has no decodable video. */
int decoder_open(const char *path, int flags, struct decoder **out, char *err, size_t errlen);
/* The same, decoding on `threads` FFmpeg frame threads (the same pictures). */
int decoder_open_threads(const char *path, int flags, int threads, struct decoder **out, char *err, size_t errlen);
void decoder_close(struct decoder *d);
/* The next frames returned are those with t >= t0, in order. Seeks to the
 * keyframe before t0 and decodes from there (frames before t0 are dropped),
 * so no frame is lost to a seek that lands late. */
int decoder_seek(struct decoder *d, double t0, char *err, size_t errlen);
/* 1 and a frame, 0 at the end of the stream, or a negative errno with err. */
int decoder_next(struct decoder *d, struct decoded_frame *f, char *err, size_t errlen);
/* Converts a picture this decoder returned (f->av of a DECODE_RAW frame, or a
 * clone of an earlier one) into f's rgb/gray planes, upright, as decoder_next
 * does without DECODE_RAW; f's t and index are left as they are. The pixels
 * stay valid until the next decoder_next, decoder_convert, decoder_seek or
 * decoder_close. 0 or a negative errno with err. */
int decoder_convert(struct decoder *d, const struct AVFrame *av, struct decoded_frame *f, char *err, size_t errlen);
/* A grey picture in a buffer that moves between owners (the decoding
 * thread's queue, the tracker: media/track.h hands them over). */
struct gray_plane {
    uint8_t *buf; /* from av_malloc */
    size_t cap;   /* bytes at buf */
    int stride, width, height;
};
/* Room for a width x height picture with rows of stride bytes (buf kept
 * when it is large enough); sets the sizes. 0 or -ENOMEM. */
int gray_plane_reserve(struct gray_plane *g, int width, int height, int stride);
void gray_plane_free(struct gray_plane *g);
/* decoder_convert's grey plane, written straight into g (reserved here,
 * rows 64-byte aligned): no copy of the picture on the way. 0 or a
 * negative errno with err. */
int decoder_convert_gray(struct decoder *d, const struct AVFrame *av, struct gray_plane *g, char *err,
                         size_t errlen);
const struct decoder_stats *decoder_stats(const struct decoder *d);

/* Converting decoded pictures (DECODE_RAW frames, or clones of them) on
 * another thread than the decoder's: its own swscale contexts and planes.
 * flags: DECODE_GRAY, DECODE_NO_RGB as for decoder_open; rotation from
 * decoder_geometry. f's pixels stay valid until the next run or free. */
struct frame_converter;
int frame_converter_new(int rotation, struct frame_converter **out);
void frame_converter_free(struct frame_converter *c);
int frame_converter_run(struct frame_converter *c, const struct AVFrame *av, int flags, struct decoded_frame *f,
                        char *err, size_t errlen);
/* A face of the picture av warped into a size x size RGB24 square (rgb,
 * tightly packed): rgb = av sampled bilinearly at m^-1 of every output
 * pixel, as align_warp does on the RGB picture, but for 8-bit planar YUV
 * pictures without rotation straight from the Y, U and V planes and only the
 * square converted to RGB (swscale, the picture's matrix and range): the
 * whole picture is never converted. Other pictures are converted whole (once
 * per picture) and warped. 0 or a negative errno with err. */
int frame_converter_warp(struct frame_converter *c, const struct AVFrame *av, const double m[6], int size,
                         uint8_t *rgb, char *err, size_t errlen);
/* Upright picture size, rotation (degrees clockwise) and nominal frame rate. */
void decoder_geometry(const struct decoder *d, int *width, int *height, int *rotation, double *fps);

/* The first frame of a still image or video as RGB24 (tightly packed, caller
 * frees *rgb). For test tools and the benchmark's per-PNG detector. */
int image_read_rgb(const char *path, uint8_t **rgb, int *width, int *height, char *err, size_t errlen);

#endif
