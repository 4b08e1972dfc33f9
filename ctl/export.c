/* dfewctl export: writes the dataset for other tools, complete or not at all
 * (built in a new DIR.tmp-XXXXXXXXXXXX, then renamed to DIR; --force swaps it with an
 * existing DIR in one rename). Two formats:
 *   dfew   the DFEW release layout: Clip/clip_<S>x<S>/<name>/<name>_<nnnnn>.jpg
 *          (aligned frames, when the clips keep them), Clip/clip_<S>x<S>_16f/
 *          <name>/1.jpg..16.jpg (after TIM), EmoLabel_DataSplit/
 *          {train,test}(single-labeled)/set_<k>.csv (video_name,label 1..7) and
 *          Annotation/annotation.csv (7 vote counts, clip_name, annotation
 *          0..7 with 0 = not single-labelled).
 *   lists  per fold, set_<k>/train.txt and test.txt with lines
 *          "<frame dir> <num_frames> <label 0..6>", as DFER training code reads.
 * Frames are found through lib/clipfiles.h; JPEGs are copied, other images
 * are decoded and re-encoded with libavcodec's MJPEG encoder (lib/image.c). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clipfiles.h"
#include "clipfmt.h"
#include "csv.h"
#include "dataset.h"
#include "dfew_build.h"
#include "image.h"

struct xclip {
    int64_t id;
    char *name, *output_dir, *aligned_dir;
    int counts[EMOTION_COUNT];
    int label; /* 0: ambiguous */
    int usable;
    struct frame_list tim, aligned;
};

struct member {
    char *name, *output_dir;
    int64_t clip;
    int fold, label;
    size_t nframes; /* lists: frames in output_dir */
};

struct xrun {
    struct ctl *c;
    const char *dir;  /* as given, trailing slashes removed */
    char *tmp;        /* DIR.tmp-XXXXXXXXXXXX, made by mkdir_temp_beside */
    int force, no_frames, quality;
    int64_t split;
    char *split_name;
    int k;
    struct xclip *clips;
    size_t nclips;
    struct member *mem;
    size_t nmem;
    int size; /* S of clip_<S>x<S> */
    long frames_written, aligned_clips;
};

static void xrun_free(struct xrun *x)
{
    for (size_t i = 0; i < x->nclips; i++) {
        free(x->clips[i].name);
        free(x->clips[i].output_dir);
        free(x->clips[i].aligned_dir);
        frame_list_free(&x->clips[i].tim);
        frame_list_free(&x->clips[i].aligned);
    }
    for (size_t i = 0; i < x->nmem; i++) {
        free(x->mem[i].name);
        free(x->mem[i].output_dir);
    }
    free(x->clips);
    free(x->mem);
    free(x->tmp);
    free(x->split_name);
}

/* Room for one more element in a growing array. */
static void *grow(void *v, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return v;
    *cap = *cap ? 2 * *cap : 256;
    return xrealloc(v, *cap * size);
}

static char *col_text(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    return t ? xstrdup(t) : NULL;
}

/* The annotated clips, by export name (the DFEW name, else the id as 5 digits). */
static int load_clips(struct xrun *x)
{
    sqlite3_stmt *st = db_prepare(x->c->db,
                                  "SELECT l.clip_id, coalesce(c.name, printf('%05d', c.id)) AS xname, c.output_dir, "
                                  "c.aligned_dir, l.happy, l.sad, l.neutral, l.angry, l.surprise, l.disgust, l.fear, "
                                  "coalesce(l.label, 0), c.state = 'usable' "
                                  "FROM clip_labels l JOIN clips c ON c.id = l.clip_id ORDER BY xname");
    if (!st)
        return -EIO;
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        x->clips = grow(x->clips, x->nclips, &cap, sizeof *x->clips);
        struct xclip *cl = &x->clips[x->nclips++];
        memset(cl, 0, sizeof *cl);
        cl->id = sqlite3_column_int64(st, 0);
        cl->name = col_text(st, 1);
        cl->output_dir = col_text(st, 2);
        cl->aligned_dir = col_text(st, 3);
        for (int k = 0; k < EMOTION_COUNT; k++)
            cl->counts[k] = sqlite3_column_int(st, 4 + k);
        cl->label = sqlite3_column_int(st, 11);
        cl->usable = sqlite3_column_int(st, 12);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_errno(rc);
    for (size_t i = 0; i < x->nclips; i++) {
        const char *nm = x->clips[i].name;
        if (!*nm || *nm == '.' || strchr(nm, '/')) {
            fprintf(stderr, "dfewctl export: clip %lld is named '%s', which cannot be a folder name; rename it: "
                            "UPDATE clips SET name = ... WHERE id = %lld\n",
                    (long long)x->clips[i].id, nm, (long long)x->clips[i].id);
            return -EINVAL;
        }
        if (i && !strcmp(nm, x->clips[i - 1].name)) {
            fprintf(stderr,
                    "dfewctl export: clips %lld and %lld would both be exported as '%s' (one is named so, the other "
                    "has that id); rename one: UPDATE clips SET name = ... WHERE id = ...\n",
                    (long long)x->clips[i - 1].id, (long long)x->clips[i].id, x->clips[i].name);
            return -EEXIST;
        }
    }
    return 0;
}

static int load_members(struct xrun *x)
{
    sqlite3_stmt *st = db_prepare(x->c->db, "SELECT coalesce(c.name, printf('%05d', c.id)) AS xname, c.output_dir, "
                                            "c.id, f.fold, f.label, c.state = 'usable' FROM fold_members f "
                                            "JOIN clips c ON c.id = f.clip_id WHERE f.split_id = ? ORDER BY xname");
    sqlite3_bind_int64(st, 1, x->split);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        x->mem = grow(x->mem, x->nmem, &cap, sizeof *x->mem);
        struct member *m = &x->mem[x->nmem++];
        m->name = col_text(st, 0);
        m->output_dir = col_text(st, 1);
        m->clip = sqlite3_column_int64(st, 2);
        m->fold = sqlite3_column_int(st, 3);
        m->label = sqlite3_column_int(st, 4);
    }
    sqlite3_reset(st);
    st = db_prepare(x->c->db, "SELECT k FROM splits WHERE id = ?");
    sqlite3_bind_int64(st, 1, x->split);
    x->k = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : db_errno(rc);
}

static int is_jpeg(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -errno;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) {
        int e = errno;
        close(in);
        return -e;
    }
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t o = 0; o < n;) {
            ssize_t w = write(out, buf + o, (size_t)(n - o));
            if (w < 0) {
                rc = -errno;
                break;
            }
            o += w;
        }
        if (rc)
            break;
    }
    if (n < 0)
        rc = -errno;
    close(in);
    if (close(out) != 0 && !rc)
        rc = -errno;
    return rc;
}

/* Size of a frame image, by decoding it. */
static int frame_size(const char *path, int *w, int *h, char *err, size_t errlen)
{
    struct image img;
    int rc = image_load_rgb(path, &img, err, errlen);
    if (rc)
        return rc;
    *w = img.w;
    *h = img.h;
    image_free(&img);
    return 0;
}

/* Finds every exported clip's frames and the common square size S. */
static int check_frames(struct xrun *x)
{
    long missing = 0;
    char err[512];
    for (size_t i = 0; i < x->nclips; i++) {
        struct xclip *cl = &x->clips[i];
        if (!cl->usable)
            continue;
        int rc = cl->output_dir ? clip_tim_frames(cl->output_dir, &cl->tim) : -ENOENT;
        if (rc || !cl->tim.n) {
            if (missing++ < 5)
                fprintf(stderr, "dfewctl export: clip %lld (%s) is usable but has no frames in %s%s%s\n",
                        (long long)cl->id, cl->name, cl->output_dir ? cl->output_dir : "(no output_dir)",
                        rc ? ": " : "", rc ? strerror(-rc) : "");
            continue;
        }
        rc = clip_aligned_frames(cl->output_dir, cl->aligned_dir, &cl->aligned);
        if (rc) {
            fprintf(stderr, "dfewctl export: clip %lld: cannot read its aligned frames in %s: %s\n", (long long)cl->id,
                    cl->aligned_dir, strerror(-rc));
            return rc;
        }
        if (cl->aligned.tensor) { /* the prep stage's aligned.u8: its header says how many and how large */
            int t, ah, aw, ac;
            rc = clip_read_header(cl->aligned.tensor, &t, &ah, &aw, &ac, err, sizeof err);
            if (!rc && (ah != aw || ac != 3 || (x->size && aw != x->size))) {
                snprintf(err, sizeof err, "%s holds %dx%dx%d frames, not %dx%d RGB", cl->aligned.tensor, aw, ah, ac,
                         x->size ? x->size : aw, x->size ? x->size : aw);
                rc = -EINVAL;
            }
            if (rc) {
                fprintf(stderr, "dfewctl export: clip %lld: %s\n", (long long)cl->id, err);
                return rc;
            }
            cl->aligned.n = (size_t)t;
        }
        const char *firsts[2] = {cl->tim.path[0], cl->aligned.n && cl->aligned.path ? cl->aligned.path[0] : NULL};
        for (int j = 0; j < 2 && firsts[j]; j++) {
            int w, h;
            rc = frame_size(firsts[j], &w, &h, err, sizeof err);
            if (rc) {
                fprintf(stderr, "dfewctl export: clip %lld: %s\n", (long long)cl->id, err);
                return rc;
            }
            if (w != h || (x->size && w != x->size)) {
                fprintf(stderr,
                        "dfewctl export: clip %lld has %dx%d frames (%s)%s%d; the DFEW layout holds one square size "
                        "(clip_<S>x<S>): prepare the clips at one size\n",
                        (long long)cl->id, w, h, firsts[j], x->size ? ", other clips have " : "", x->size);
                return -EINVAL;
            }
            x->size = w;
        }
    }
    if (missing) {
        fprintf(stderr,
                "dfewctl export: %ld usable clip%s without frames%s; run their preparation first, or export labels "
                "and splits only with --no-frames\n",
                missing, missing == 1 ? " is" : "s are", missing > 5 ? " (first 5 shown)" : "");
        return -ENOENT;
    }
    return 0;
}

/* Writes one frame as JPEG: a copy of a JPEG, else decoded and re-encoded. */
static int put_frame(struct xrun *x, const char *from, const char *to)
{
    char err[512];
    int rc;
    if (is_jpeg(from)) {
        rc = copy_file(from, to);
        if (rc)
            fprintf(stderr, "dfewctl export: cannot copy %s to %s: %s\n", from, to, strerror(-rc));
        return rc;
    }
    struct image img;
    rc = image_load_rgb(from, &img, err, sizeof err);
    if (!rc) {
        if (img.w != x->size || img.h != x->size) {
            snprintf(err, sizeof err, "%s is %dx%d, not %dx%d like the clip's first frame", from, img.w, img.h,
                     x->size, x->size);
            rc = -EINVAL;
        } else {
            rc = image_save_jpeg(to, &img, x->quality, err, sizeof err);
        }
        image_free(&img);
    }
    if (rc)
        fprintf(stderr, "dfewctl export: %s\n", err);
    return rc;
}

/* Creates the directory named by fmt (with its parents) when f is NULL, else
 * the new file, opened for writing in *f. 0 or -errno, with a message. */
static int create(FILE **f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int create(FILE **f, const char *fmt, ...)
{
    char *p;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -ENOMEM;
    int rc = 0;
    if (!f)
        rc = mkdir_p(p, 0755);
    else if (!(*f = fopen(p, "wx")))
        rc = -errno;
    if (rc)
        fprintf(stderr, "dfewctl export: cannot create %s: %s\n", p, strerror(-rc));
    free(p);
    return rc;
}

static int close_out(FILE *f)
{
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "dfewctl export: write error: %s\n", strerror(errno));
        return -EIO;
    }
    return 0;
}

static int write_frames(struct xrun *x)
{
    char *to = NULL;
    int rc = 0;
    for (size_t i = 0; i < x->nclips && !rc; i++) {
        struct xclip *cl = &x->clips[i];
        if (!cl->tim.n)
            continue;
        rc = create(NULL, "%s/Clip/clip_%dx%d_16f/%s", x->tmp, x->size, x->size, cl->name);
        for (size_t j = 0; j < cl->tim.n && !rc; j++) {
            free(to);
            if (asprintf(&to, "%s/Clip/clip_%dx%d_16f/%s/%zu.jpg", x->tmp, x->size, x->size, cl->name, j + 1) < 0)
                return -ENOMEM;
            rc = put_frame(x, cl->tim.path[j], to);
            x->frames_written++;
        }
        if (!cl->aligned.n || rc)
            continue;
        x->aligned_clips++;
        rc = create(NULL, "%s/Clip/clip_%dx%d/%s", x->tmp, x->size, x->size, cl->name);
        uint8_t *px = NULL;
        int t = 0, ah, aw, ac;
        char err[512];
        if (!rc && cl->aligned.tensor &&
            (rc = clip_read(cl->aligned.tensor, &t, &ah, &aw, &ac, &px, err, sizeof err)) != 0)
            fprintf(stderr, "dfewctl export: clip %lld: %s\n", (long long)cl->id, err);
        for (size_t j = 0; j < cl->aligned.n && !rc; j++) {
            free(to);
            if (asprintf(&to, "%s/Clip/clip_%dx%d/%s/%s_%05zu.jpg", x->tmp, x->size, x->size, cl->name, cl->name,
                         j + 1) < 0) {
                free(px);
                return -ENOMEM;
            }
            if (px) { /* a frame of aligned.u8 */
                struct image img = {x->size, x->size, px + j * (size_t)x->size * x->size * 3};
                if ((int)j >= t)
                    rc = -EINVAL;
                else if ((rc = image_save_jpeg(to, &img, x->quality, err, sizeof err)) != 0)
                    fprintf(stderr, "dfewctl export: %s\n", err);
            } else {
                rc = put_frame(x, cl->aligned.path[j], to);
            }
            x->frames_written++;
        }
        free(px);
    }
    free(to);
    return rc;
}

static int write_labels(struct xrun *x)
{
    FILE *f = NULL;
    int rc = create(NULL, "%s/Annotation", x->tmp);
    if (!rc)
        rc = create(&f, "%s/Annotation/annotation.csv", x->tmp);
    if (rc)
        return rc;
    fprintf(f, "vote_happy,vote_sad,vote_neutral,vote_angry,vote_surprise,vote_disgust,vote_fear,clip_name,"
               "annotation\n");
    for (size_t i = 0; i < x->nclips; i++) {
        const struct xclip *cl = &x->clips[i];
        for (int k = 0; k < EMOTION_COUNT; k++)
            fprintf(f, "%d,", cl->counts[k]);
        csv_put(f, cl->name);
        fprintf(f, ",%d\n", cl->label);
    }
    rc = close_out(f);
    for (int part = 0; part < 2 && !rc; part++) {
        const char *what = part ? "test" : "train";
        rc = create(NULL, "%s/EmoLabel_DataSplit/%s(single-labeled)", x->tmp, what);
        for (int k = 1; k <= x->k && !rc; k++) {
            if ((rc = create(&f, "%s/EmoLabel_DataSplit/%s(single-labeled)/set_%d.csv", x->tmp, what, k)))
                return rc;
            fprintf(f, "video_name,label\n");
            for (size_t i = 0; i < x->nmem; i++) {
                if ((x->mem[i].fold == k) != part)
                    continue;
                csv_put(f, x->mem[i].name);
                fprintf(f, ",%d\n", x->mem[i].label);
            }
            rc = close_out(f);
        }
    }
    return rc;
}

static int write_readme(struct xrun *x, long single)
{
    FILE *f;
    int rc = create(&f, "%s/README.txt", x->tmp);
    if (rc)
        return rc;
    fprintf(f,
            "Written by dfewctl export --format dfew (dfew %s).\n\n"
            "Annotation/annotation.csv  %zu annotated clips: vote_happy .. vote_fear (votes per emotion), clip_name,\n"
            "                           annotation (1..7 = happy, sad, neutral, angry, surprise, disgust, fear;\n"
            "                           0 = not single-labelled: no emotion had more than %d votes).\n"
            "EmoLabel_DataSplit/        split '%s': %d folds of the %zu usable single-labelled clips (%ld are\n"
            "                           single-labelled in all); test(single-labeled)/set_k.csv is fold k,\n"
            "                           train(single-labeled)/set_k.csv the other folds. Columns video_name,label.\n",
            DFEW_VERSION, x->nclips, x->c->cfg.single_label_threshold, x->split_name, x->k, x->nmem, single);
    if (x->size) {
        char a[64], b[64];
        snprintf(a, sizeof a, "Clip/clip_%dx%d_16f/", x->size, x->size);
        snprintf(b, sizeof b, "Clip/clip_%dx%d/", x->size, x->size);
        fprintf(f,
                "%-26s the temporally interpolated frames of each usable clip: NAME/1.jpg ...\n"
                "%-26s aligned face frames before interpolation, NAME/NAME_00001.jpg ...\n"
                "%-26s (%ld clips keep them)\n",
                a, b, "", x->aligned_clips);
    }
    else
        fprintf(f, "Clip/                      not written (--no-frames)\n");
    return close_out(f);
}

/* Moves the finished temporary tree to DIR (swapping with an old DIR under
 * --force) and removes what is left. */
static int publish(struct xrun *x)
{
    int fd = open(x->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        syncfs(fd); /* the files are on disk before the name appears */
        close(fd);
    }
    struct stat sb;
    int exists = lstat(x->dir, &sb) == 0;
    if (exists && x->force && S_ISDIR(sb.st_mode)) {
        if (renameat2(AT_FDCWD, x->tmp, AT_FDCWD, x->dir, RENAME_EXCHANGE) != 0) {
            fprintf(stderr, "dfewctl export: cannot replace %s: %s\n", x->dir, strerror(errno));
            return -errno;
        }
        int rc = remove_tree(x->tmp); /* now the old export */
        if (rc)
            fprintf(stderr, "dfewctl export: warning: the old export is left in %s: %s\n", x->tmp, strerror(-rc));
        return 0;
    }
    if (renameat2(AT_FDCWD, x->tmp, AT_FDCWD, x->dir, RENAME_NOREPLACE) != 0) {
        int e = errno;
        fprintf(stderr, "dfewctl export: cannot move the export to %s: %s%s\n", x->dir, strerror(e),
                e == EEXIST ? " (it appeared while exporting; add --force to replace it)" : "");
        return -e;
    }
    return 0;
}

int cmd_export(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {{"format", required_argument, NULL, 'f'},
                                         {"split", required_argument, NULL, 's'},
                                         {"force", no_argument, NULL, 'F'},
                                         {"no-frames", no_argument, NULL, 'n'},
                                         {"quality", required_argument, NULL, 'q'},
                                         CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    static const char usage_text[] =
        "usage: dfewctl export --format dfew|lists [--split NAME] [--force] [--no-frames] DIR\n\n"
        "  --format dfew   the DFEW release layout: Clip/clip_<S>x<S>_16f/<name>/1.jpg..,\n"
        "                  Clip/clip_<S>x<S>/<name>/<name>_00001.jpg.. (when clips keep their\n"
        "                  aligned frames), EmoLabel_DataSplit/{train,test}(single-labeled)/\n"
        "                  set_<k>.csv and Annotation/annotation.csv (7 vote counts, the name,\n"
        "                  the single label or 0). Names are DFEW names, else clip ids as 5 digits.\n"
        "  --format lists  per fold set_<k>/train.txt and test.txt: '<frame dir> <frames> <label 0..6>'\n"
        "  --split NAME    the split to write (default: the newest; dfewctl folds list)\n"
        "  --no-frames     dfew format without Clip/ (labels and splits only)\n"
        "  --quality Q     JPEG quality for re-encoded frames, 2 (best) .. 31 (default 2)\n"
        "  --force         replace an existing DIR (in one rename)\n"
        "The export appears complete or not at all: it is built in DIR.tmp-XXXXXXXXXXXX and renamed\n"
        "(an interrupted export leaves only that folder, which can be deleted).\n";
    struct xrun x = {.c = c, .quality = 2};
    const char *format = NULL, *split_name = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, o, optarg))
            continue;
        switch (o) {
        case 'f': format = optarg; break;
        case 's': split_name = optarg; break;
        case 'F': x.force = 1; break;
        case 'n': x.no_frames = 1; break;
        case 'q':
            if (parse_int(optarg, &x.quality) || x.quality < 2 || x.quality > 31) {
                fprintf(stderr, "dfewctl export: --quality wants 2 (best) .. 31, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h': printf("%s", usage_text); return 0;
        default: return 2;
        }
    }
    if (optind + 1 != argc || !format) {
        fprintf(stderr, "%s", usage_text);
        return 2;
    }
    int lists = !strcmp(format, "lists");
    if (!lists && strcmp(format, "dfew")) {
        fprintf(stderr, "dfewctl export: unknown --format '%s' (dfew or lists)\n", format);
        return 2;
    }
    char *dir = xstrdup(argv[optind]);
    for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
        dir[n - 1] = '\0';
    x.dir = dir;
    struct stat sb;
    if (lstat(dir, &sb) == 0 && !x.force) {
        fprintf(stderr, "dfewctl export: %s exists; choose another directory, or add --force to replace it\n", dir);
        free(dir);
        return 1;
    }
    if (lstat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        fprintf(stderr, "dfewctl export: %s exists and is not a directory; it is not replaced\n", dir);
        free(dir);
        return 1;
    }
    int rc = 1;
    if (ds_open(c, 0))
        goto out;
    /* A read transaction: the export is one consistent snapshot even while
     * other commands write. */
    db_exec(c->db, "BEGIN");
    x.split = ds_split(c, "export", split_name, &x.split_name);
    if (!x.split || load_members(&x) || load_clips(&x))
        goto out;
    if (lists) {
        for (size_t i = 0; i < x.nmem; i++) {
            struct frame_list fl;
            int r = x.mem[i].output_dir ? clip_tim_frames(x.mem[i].output_dir, &fl) : -ENOENT;
            if (r || !fl.n) {
                fprintf(stderr, "dfewctl export: clip %lld (%s) of split '%s' has no frames in %s; the lists need "
                                "them (run its preparation first)\n",
                        (long long)x.mem[i].clip, x.mem[i].name, x.split_name,
                        x.mem[i].output_dir ? x.mem[i].output_dir : "(no output_dir)");
                if (!r)
                    frame_list_free(&fl);
                goto out;
            }
            x.mem[i].nframes = fl.n;
            frame_list_free(&fl);
        }
    } else if (!x.no_frames && check_frames(&x)) {
        goto out;
    }
    char *parent = xstrdup(dir), *slash = strrchr(parent, '/');
    int trc = 0;
    if (slash && slash != parent) {
        *slash = '\0';
        trc = mkdir_p(parent, 0755);
    }
    free(parent);
    if (!trc)
        trc = mkdir_temp_beside(dir, 0755, &x.tmp); /* a new directory: nothing planted is followed */
    if (trc) {
        fprintf(stderr, "dfewctl export: cannot create a temporary directory beside %s: %s\n", dir, strerror(-trc));
        goto out;
    }
    int wrc = 0;
    if (lists) {
        for (int k = 1; k <= x.k && !wrc; k++) {
            wrc = create(NULL, "%s/set_%d", x.tmp, k);
            for (int part = 0; part < 2 && !wrc; part++) {
                FILE *f;
                if ((wrc = create(&f, "%s/set_%d/%s.txt", x.tmp, k, part ? "test" : "train")))
                    break;
                for (size_t i = 0; i < x.nmem; i++)
                    if ((x.mem[i].fold == k) == part)
                        fprintf(f, "%s %zu %d\n", x.mem[i].output_dir, x.mem[i].nframes, x.mem[i].label - 1);
                wrc = close_out(f);
            }
        }
    } else {
        long single = 0;
        for (size_t i = 0; i < x.nclips; i++)
            single += x.clips[i].label != 0;
        wrc = write_labels(&x);
        if (!wrc && !x.no_frames)
            wrc = write_frames(&x);
        if (!wrc)
            wrc = write_readme(&x, single);
    }
    if (wrc || publish(&x)) {
        remove_tree(x.tmp);
        fprintf(stderr, "dfewctl export: nothing was written to %s\n", dir);
        goto out;
    }
    rc = 0;
    if (c->json) {
        struct sbuf b = {0};
        sbuf_add(&b, "{\"dir\":");
        sbuf_add_json_str(&b, dir);
        sbuf_addf(&b, ",\"format\":\"%s\",\"split\":", format);
        sbuf_add_json_str(&b, x.split_name);
        sbuf_addf(&b, ",\"k\":%d,\"split_clips\":%zu,\"annotated_clips\":%zu,\"frames\":%ld,\"size\":%d,"
                      "\"aligned_clips\":%ld}",
                  x.k, x.nmem, lists ? 0 : x.nclips, x.frames_written, x.size, x.aligned_clips);
        printf("%s\n", sbuf_str(&b));
        sbuf_free(&b);
    } else if (lists) {
        printf("wrote %s: train/test lists of %d folds of split '%s' (%zu clips)\n", dir, x.k, x.split_name, x.nmem);
    } else {
        printf("wrote %s: %zu annotated clips, split '%s' (%d folds, %zu clips)", dir, x.nclips, x.split_name, x.k,
               x.nmem);
        if (x.size)
            printf(", %ld frames at %dx%d (%ld clips with aligned frames)\n", x.frames_written, x.size, x.size,
                   x.aligned_clips);
        else
            printf(", no frames\n");
    }
out:
    if (c->db)
        db_exec(c->db, "COMMIT");
    xrun_free(&x);
    free(dir);
    return rc;
}
