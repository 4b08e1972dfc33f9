/* Where a clip's frames are on disk: the one place that knows the file layout
 * of a clip's outputs, so that export (and later readers) do not guess.
 *
 * Temporally interpolated frames (the "16f" set) live in clips.output_dir:
 *   - written by dfew's prep stage:   01.png, 02.png, ... (or 01.jpg, ...)
 *   - imported from a DFEW release:   1.jpg, 2.jpg, ...  (clip_<S>x<S>_16f/<name>/)
 * frames are numbered from 1 without gaps; the count is whatever is there
 * (16 by default).
 * Aligned face frames before interpolation (all of them, in time order) are
 * optional: clips.aligned_dir when set (a DFEW release's clip_<S>x<S>/<name>/,
 * <name>_00001.jpg, ...), else output_dir/aligned/ when it exists (prep jobs
 * before the face tracker wrote 00001.png, ... there; every .png/.jpg file
 * there, sorted by name), else output_dir/aligned.u8 when it exists (the
 * prep stage writes them there as one tensor in the clip.u8 format unless
 * [prep] keep_aligned = no: an image file per frame cost more to write than
 * the rest of the job).
 * If the prep stage writes another layout, change this file only. */
#ifndef DFEW_CLIPFILES_H
#define DFEW_CLIPFILES_H

#include <stddef.h>

struct frame_list {
    char **path;  /* absolute or as given, in frame order */
    size_t n;
    char *tensor; /* instead of files: a clip.u8-format file holding the frames (path NULL, n 0: read its header) */
};

/* The interpolated frames in output_dir. 0 (n may be 0 when there are none),
 * or -errno when output_dir cannot be read. */
int clip_tim_frames(const char *output_dir, struct frame_list *out);
/* The aligned frames: aligned_dir (may be NULL), else output_dir/aligned,
 * else output_dir/aligned.u8 (out->tensor). 0 with n = 0 and no tensor when
 * the clip keeps none. */
int clip_aligned_frames(const char *output_dir, const char *aligned_dir, struct frame_list *out);
void frame_list_free(struct frame_list *l);

/* Whether a file name looks like a frame image (.png, .jpg, .jpeg). */
int is_frame_file(const char *name);

/* DFEW release names. A clip (video) name: digits are zero-padded to 5
 * ("42" and "00042" are the same clip; spreadsheets drop the zeros), other
 * names are kept; it becomes a folder name, so only letters, digits, '_',
 * '-' and '.' (not first), at most 200 bytes. 0, or -EINVAL. */
int dfew_clip_name(const char *in, char *out, size_t len);
/* A frame folder of Clip/: "clip_<W>x<H>_16f" (*tim = 1) or "clip_<W>x<H>"
 * (*tim = 0), sizes in decimal digits from 1 to 65535. 0, or -EINVAL. */
int dfew_frame_dir(const char *name, int *w, int *h, int *tim);

#endif
