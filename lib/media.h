/* What a movie file is, as libavformat/libavcodec see it: container, video
 * stream, size, frame rates, rotation and frame count. Used by the probe job
 * (full facts) and by `dfewctl submit DIR` to recognise videos by content, not
 * by file name. It does not decode more than the first frame; the frame
 * count is checked against the stream's index where that lists every frame. */
#ifndef DFEW_MEDIA_H
#define DFEW_MEDIA_H

#include <stddef.h>
#include <stdint.h>

struct media_info {
    char container[64];   /* libavformat format name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" */
    char video_codec[32]; /* e.g. "h264" */
    double duration_s;    /* of the video stream (container's when the stream has none) */
    double start_time_s;  /* of the video stream: its first timestamp */
    int width, height;    /* coded size, before rotation */
    double avg_fps;       /* avg_frame_rate */
    double real_fps;      /* r_frame_rate: the lowest rate that represents all timestamps */
    int rotation;         /* degrees clockwise to display upright: 0, 90, 180 or 270 */
    int64_t frame_count;  /* video frames: packets, less those the edit list discards
                             (agrees with ffprobe -count_frames); -1 when not counted,
                             or when the count cannot be trusted (then with a note) */
    char frame_count_note[256]; /* why frame_count is -1 after counting, or what is odd
                                   about it (a file cut short); "" when nothing is */
    int audio_streams;
};

enum media_probe_flags {
    MEDIA_COUNT_FRAMES = 1, /* read every packet to count video frames */
    MEDIA_DECODE_FIRST = 2, /* prove the video decodes by decoding its first frame */
};

/* progress(ud, frac) is called now and then while counting frames (may be NULL).
 * Errors: -ENOENT/-EACCES/-EISDIR for the path, -EINVAL with a reason in err
 * when the file is not a readable video, -EIO on read errors. */
int media_probe(const char *path, int flags, struct media_info *mi, void (*progress)(void *ud, double frac), void *ud,
                char *err, size_t errlen);

/* What libavformat's index of a stream lists (every sample of an MP4/MOV;
 * the keyframes, or nothing, for other formats). */
struct media_index {
    int64_t entries;  /* all entries */
    int64_t listed;   /* entries an edit list does not discard */
    int64_t past_end; /* of those, entries that lie (partly) past the end of the file:
                         the file was cut short after its index was written */
};
struct AVStream;
void media_index_scan(const struct AVStream *st, int64_t file_size, struct media_index *ix);

/* Degrees clockwise (0, 90, 180 or 270) that turn a picture upright, from a
 * stream's display matrix side data (AV_PKT_DATA_DISPLAYMATRIX; NULL: 0). */
int media_display_rotation(const void *matrix, size_t size);

#endif
