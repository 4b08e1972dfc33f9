/* The train job: one fold of a training run (`dfewctl train` queues one per
 * fold). It reads the run's manifest (every clip tensor of the split with its
 * fold and label; written by dfewctl when it queued the run), loads a trainer
 * backend through workers/train/host.c (CUDA when a device is present, else
 * the CPU; kept loaded for the life of the worker), trains on the other folds'
 * clips (random crop + horizontal flip, SGD, learning rate / 10 when the
 * epoch's training loss plateaus), checkpoints after every epoch and resumes
 * from the last checkpoint when the job runs again, then evaluates the fold's
 * clips (centre crop) and writes every prediction with its 7 probabilities to
 * a file for dfewd to record. Training is deterministic for a seed and thread
 * count: the clip order and augmentation of an epoch come from (seed, fold,
 * epoch), so a resumed epoch sees exactly what the interrupted one saw.
 * Never touches the database. File formats: workers/train/README.md.
 *
 * Failure injection for tests (like noop's fail=): the argument
 * stall_at=E:S makes the first attempt stop after step S of epoch E (1-based),
 * write <out_dir>/fold-<K>.stall and wait there until it is killed, so a test
 * can kill the worker mid-epoch at a known point; later attempts run through. */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "augment.h"
#include "clipfmt.h"
#include "dfew_build.h"
#include "host.h"
#include "log.h"
#include "metrics.h"
#include "plateau.h"
#include "rng.h"
#include "util.h"
#include "worker.h"

#define NCLASSES 7
#define MANIFEST_MAGIC "dfew-train-manifest"
#define HISTORY_MAGIC "dfew-train-history"
#define PREDICTIONS_MAGIC "dfew-predictions"
#define FORMAT_VERSION 1

struct clip_ref {
    int64_t id;
    int fold, label; /* label 0..6 (emotion id - 1) */
    char *path;
};

struct train_args {
    int64_t run_id;
    int fold, epochs, patience, crop;
    int stall_epoch, stall_step; /* failure injection (see the top); 0 = none */
    const char *manifest, *out_dir, *backend, *backends_dir;
    struct dfew_train_config cfg;
};

struct epoch_row {
    int epoch;
    double loss, ce, aux, accuracy, lr, seconds;
};

/* The backend stays loaded for the life of the worker: loading CUDA and
 * creating its context costs seconds, and unloading a module with a static
 * CUDA runtime is not safe. */
static struct {
    struct train_backend_handle h;
    struct dfew_train_device dev;
    char key[600];
    int open;
} cache;

static uint64_t mix(uint64_t a, uint64_t b)
{
    uint64_t s = a ^ (b + 0x632BE59BD9B4E019ull) * 0x9E3779B97F4A7C15ull;
    return rng_next(&s);
}

static int bad_arg(struct job_ctx *ctx, const char *what)
{
    snprintf(ctx->error, sizeof ctx->error,
             "train job argument %s is missing or invalid; queue training with dfewctl train", what);
    ctx->retryable = 0;
    return -EINVAL;
}

static int choice(const char *v, const char *const *names, int n)
{
    for (int i = 0; v && i < n; i++)
        if (!strcmp(v, names[i]))
            return i;
    return -1;
}

static int parse_args(struct job_ctx *ctx, struct train_args *a)
{
    static const char *const models[] = {"r3d18", "c3d"};
    static const char *const losses[] = {"ce", "ecstfl", "ecstfl_l1", "center"};
    static const char *const precisions[] = {"fp32", "tf32", "bf16"};
    static const char *const backends[] = {"auto", "cpu", "cuda"};
    const struct kv *kv = ctx->args;
    struct dfew_train_config *c = &a->cfg;
    memset(a, 0, sizeof *a);
    dfew_train_config_defaults(c);
    c->num_classes = NCLASSES;
    if (kv_get_i64(kv, "run_id", &a->run_id) || a->run_id < 1)
        return bad_arg(ctx, "run_id");
    if (!(a->manifest = kv_get(kv, "manifest")) || !*a->manifest)
        return bad_arg(ctx, "manifest");
    if (!(a->out_dir = kv_get(kv, "out_dir")) || !*a->out_dir)
        return bad_arg(ctx, "out_dir");
    if ((c->arch = choice(kv_get(kv, "model"), models, 2)) < 0)
        return bad_arg(ctx, "model (r3d18 or c3d)");
    if ((c->loss = choice(kv_get(kv, "loss"), losses, 4)) < 0)
        return bad_arg(ctx, "loss (ce, ecstfl, ecstfl_l1 or center)");
    if ((c->precision = choice(kv_get(kv, "precision"), precisions, 3)) < 0)
        return bad_arg(ctx, "precision (fp32, tf32 or bf16)");
    a->backend = kv_get(kv, "backend");
    if (choice(a->backend, backends, 3) < 0)
        return bad_arg(ctx, "backend (auto, cpu or cuda)");
    a->backends_dir = kv_get(kv, "backends");
    if (a->backends_dir && !*a->backends_dir)
        a->backends_dir = NULL;
    /* the numbers, each within its range */
    double fold, lambda, epochs, batch, lr, mom, wd, patience, width, crop, threads;
    const struct {
        const char *key;
        double lo, hi, *v;
    } nums[] = {{"fold", 1, 1000, &fold},         {"lambda", 0, 1e6, &lambda},     {"epochs", 1, 1e6, &epochs},
                {"batch", 1, 4096, &batch},       {"lr", 1e-12, 1e3, &lr},         {"momentum", 0, 1, &mom},
                {"weight_decay", 0, 1, &wd},      {"patience", 0, 1e6, &patience},
                {"width", 1e-3, 4, &width},       {"crop", 1, 4096, &crop},        {"threads", 0, 4096, &threads}};
    for (size_t i = 0; i < ARRAY_LEN(nums); i++)
        if (kv_get_double(kv, nums[i].key, nums[i].v) || !(*nums[i].v >= nums[i].lo && *nums[i].v <= nums[i].hi))
            return bad_arg(ctx, nums[i].key);
    a->fold = (int)fold, a->epochs = (int)epochs, a->patience = (int)patience, a->crop = (int)crop;
    c->lambda = (float)lambda, c->max_batch = (int)batch, c->lr = (float)lr, c->momentum = (float)mom;
    c->weight_decay = (float)wd, c->width = (float)width, c->threads = (int)threads;
    int64_t seed;
    if (kv_get_i64(kv, "seed", &seed) || seed < 0)
        return bad_arg(ctx, "seed");
    c->seed = (uint64_t)seed;
    const char *stall = kv_get(kv, "stall_at");
    if (stall && (sscanf(stall, "%d:%d", &a->stall_epoch, &a->stall_step) != 2 || a->stall_epoch < 1))
        return bad_arg(ctx, "stall_at (EPOCH:STEP)");
    return 0;
}

/* ---- the manifest ---- */

static void free_clips(struct clip_ref *c, int n)
{
    for (int i = 0; i < n; i++)
        free(c[i].path);
    free(c);
}

/* Reads the run's manifest: "dfew-train-manifest 1", then '#' comments and
 * one header line, then clip_id TAB fold TAB label TAB path per clip. */
static int read_manifest(struct job_ctx *ctx, const char *path, struct clip_ref **out, int *n)
{
    *out = NULL;
    *n = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        snprintf(ctx->error, sizeof ctx->error,
                 "cannot read the run's manifest %s: %s (dfewctl train writes it; queue the run again)", path,
                 strerror(e));
        ctx->retryable = e != ENOENT && e != EACCES;
        return -e;
    }
    char *line = NULL;
    size_t cap = 0, ncap = 0;
    ssize_t len;
    int lineno = 0, rc = 0, header = 0;
    struct clip_ref *c = NULL;
    while (!rc && (len = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[len - 1] == '\n')
            line[--len] = '\0';
        if (lineno == 1) {
            int ver = 0;
            if (sscanf(line, MANIFEST_MAGIC " %d", &ver) != 1 || ver != FORMAT_VERSION)
                rc = -EINVAL;
            continue;
        }
        if (!len || line[0] == '#')
            continue;
        if (!header) {
            header = 1;
            continue;
        }
        char *f1 = strtok(line, "\t"), *f2 = strtok(NULL, "\t"), *f3 = strtok(NULL, "\t"), *f4 = strtok(NULL, "\t");
        int64_t id;
        int fold, label;
        if (!f4 || parse_i64(f1, &id) || parse_int(f2, &fold) || parse_int(f3, &label) || fold < 1 || label < 1 ||
            label > NCLASSES) {
            rc = -EINVAL;
            break;
        }
        if ((size_t)*n == ncap) {
            ncap = ncap ? 2 * ncap : 1024;
            c = xrealloc(c, ncap * sizeof *c);
        }
        c[*n] = (struct clip_ref){.id = id, .fold = fold, .label = label - 1, .path = xstrdup(f4)};
        (*n)++;
    }
    free(line);
    fclose(f);
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error,
                 "%s:%d: not a dfew train manifest (version %d) line; queue the run again with dfewctl train", path,
                 lineno, FORMAT_VERSION);
        ctx->retryable = 0;
        free_clips(c, *n);
        *n = 0;
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- batches ---- */

/* One batch to assemble: read each clip, then a random crop + flip (train)
 * or the centre crop (test). Runs on a helper thread while the backend works
 * on the previous batch. */
struct loader {
    const struct clip_ref *clips;
    const int *idx;     /* clip indices of this batch */
    int n;
    int T, H, W, crop, train;
    uint64_t seed;      /* augmentation: clip i of the batch uses mix(seed, pos0 + i) */
    int64_t pos0;
    uint8_t *raw;       /* T x H x W x 3 scratch */
    uint8_t *dst;       /* n x T x crop x crop x 3 */
    int32_t *labels;
    int rc;
    char err[600];
    pthread_t th;
    int running;
};

static void *load_batch(void *arg)
{
    struct loader *L = arg;
    size_t out_sz = (size_t)L->T * L->crop * L->crop * 3;
    L->rc = 0;
    for (int i = 0; i < L->n && !L->rc; i++) {
        const struct clip_ref *c = &L->clips[L->idx[i]];
        L->rc = clip_read_into(c->path, L->T, L->H, L->W, L->raw, L->err, sizeof L->err);
        if (L->rc)
            break;
        if (L->train) {
            uint64_t rng = mix(L->seed, (uint64_t)(L->pos0 + i));
            L->rc = augment_clip(L->dst + i * out_sz, L->raw, L->T, L->H, L->W, L->crop, L->crop, 1, &rng, NULL);
        } else {
            L->rc = center_crop_clip(L->dst + i * out_sz, L->raw, L->T, L->H, L->W, L->crop, L->crop);
        }
        L->labels[i] = c->label;
    }
    return NULL;
}

static int loader_start(struct loader *L)
{
    L->running = pthread_create(&L->th, NULL, load_batch, L) == 0;
    if (!L->running)
        load_batch(L); /* no thread: load it here */
    return 0;
}

static int loader_wait(struct loader *L)
{
    if (L->running)
        pthread_join(L->th, NULL);
    L->running = 0;
    return L->rc;
}

/* ---- files next to the checkpoint ---- */

static void fold_path(struct sbuf *b, const struct train_args *a, const char *what)
{
    sbuf_reset(b);
    sbuf_addf(b, "%s/fold-%d.%s", a->out_dir, a->fold, what);
}

/* The per-epoch history of a resumed fold: its rows for epochs 1..upto. */
static int read_history(const char *path, int upto, struct epoch_row *rows)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        if (++lineno <= 2)
            continue; /* magic, column names */
        struct epoch_row r;
        if (sscanf(line, "%d %lf %lf %lf %lf %lf %lf", &r.epoch, &r.loss, &r.ce, &r.aux, &r.accuracy, &r.lr,
                   &r.seconds) == 7 &&
            r.epoch == n + 1 && r.epoch <= upto)
            rows[n++] = r;
    }
    fclose(f);
    return n;
}

static int write_history(const char *path, const struct epoch_row *rows, int n)
{
    struct sbuf b = {0};
    sbuf_addf(&b, "%s %d\nepoch\tloss\tce\taux\taccuracy\tlr\tseconds\n", HISTORY_MAGIC, FORMAT_VERSION);
    for (int i = 0; i < n; i++)
        sbuf_addf(&b, "%d\t%.9g\t%.9g\t%.9g\t%.9g\t%.7g\t%.3f\n", rows[i].epoch, rows[i].loss, rows[i].ce,
                  rows[i].aux, rows[i].accuracy, rows[i].lr, rows[i].seconds);
    int rc = write_file_atomic(path, b.s, b.len);
    sbuf_free(&b);
    return rc;
}

/* ---- the backend ---- */

static const char *default_backends_dir(void)
{
    static char dir[4096];
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            /* a build tree: the modules are built in workers/train/ */
            snprintf(dir, sizeof dir, "%.4000s/workers/train", self);
            char probe[4200];
            snprintf(probe, sizeof probe, "%s/dfew-train-cpu.so", dir);
            if (access(probe, R_OK) == 0)
                return dir;
        }
    }
    return DFEW_TRAINDIR;
}

/* The OpenBLAS kernels this process runs ("SkylakeX", "Prescott", ...), or
 * NULL when the backend does not use OpenBLAS. */
static const char *blas_core(void *dl)
{
    const char *(*fn)(void) = NULL;
    if (dl)
        *(void **)&fn = dlsym(dl, "openblas_get_corename");
    if (!fn)
        *(void **)&fn = dlsym(RTLD_DEFAULT, "openblas_get_corename");
    return fn ? fn() : NULL;
}

static int load_backend(struct job_ctx *ctx, const struct train_args *a)
{
    const char *dir = a->backends_dir ? a->backends_dir : default_backends_dir();
    char key[sizeof cache.key];
    snprintf(key, sizeof key, "%.8s|%.580s", a->backend, dir);
    if (cache.open && !strcmp(cache.key, key))
        return 0;
    if (cache.open) /* another backend or folder: leave the loaded one (see cache) */
        cache.open = 0;
    char err[1024] = "", note[1024] = "", path[4200];
    int rc;
    struct train_backend_handle h;
    struct dfew_train_device dev;
    memset(&dev, 0, sizeof dev);
    if (!strcmp(a->backend, "auto")) {
        rc = train_backend_choose(dir, &h, &dev, note, sizeof note, err, sizeof err);
    } else {
        snprintf(path, sizeof path, "%s/dfew-train-%s.so", dir, a->backend);
        rc = train_backend_open(path, &h, err, sizeof err);
        if (!rc && h.be->device_probe(&dev) != 1) {
            snprintf(err, sizeof err, "%.600s: the %s backend finds no usable device%s%.300s", path, a->backend,
                     dev.name[0] ? ": " : "", dev.name);
            train_backend_close(&h);
            rc = -ENODEV;
        }
    }
    if (rc) {
        snprintf(ctx->error, sizeof ctx->error,
                 "%.1000s (trainer backends are looked for in %.800s; set [train] backends in dfew.conf, then dfewctl "
                 "retry)",
                 err, dir);
        ctx->retryable = 0;
        return rc;
    }
    if (note[0])
        log_info(ctx->id, "trainer: not using CUDA: %s", note);
    cache.h = h;
    cache.dev = dev;
    snprintf(cache.key, sizeof cache.key, "%s", key);
    cache.open = 1;
    const char *core = blas_core(h.dl);
    log_info(ctx->id, "trainer backend %s (%s) on %s%s%s", h.be->name, h.path, dev.name, core ? ", OpenBLAS " : "",
             core ? core : "");
    return 0;
}

/* ---- the job ---- */

static void progress(struct job_ctx *ctx, const struct train_args *a, double frac, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The failure-injection point: announce, then wait to be killed. */
static void stall(struct job_ctx *ctx, const struct train_args *a, int epoch, int step, double frac)
{
    struct sbuf p = {0}, pid = {0};
    sbuf_addf(&p, "%s/fold-%d.stall", a->out_dir, a->fold);
    sbuf_addf(&pid, "%d\n", (int)getpid());
    write_file_atomic(p.s, pid.s, pid.len);
    log_warn(ctx->id, "stall_at %d:%d: attempt %d stops here until it is killed (a test's failure injection)",
             epoch, step, ctx->attempt);
    for (;;) { /* keep the progress fresh: dfewd writes at most one a second */
        progress(ctx, a, frac, "epoch %d/%d step %d: stalled (stall_at, a test)", epoch, a->epochs, step);
        struct timespec ts = {0, 300 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void progress(struct job_ctx *ctx, const struct train_args *a, double frac, const char *fmt, ...)
{
    char msg[400];
    int n = snprintf(msg, sizeof msg, "run %lld fold %d %s: ", (long long)a->run_id, a->fold, cache.h.be->name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    job_progress(ctx, frac, msg);
}

static int model_error(struct job_ctx *ctx, struct dfew_train_model *m, const char *what, int rc)
{
    snprintf(ctx->error, sizeof ctx->error, "%s: %s", what, cache.h.be->last_error(m));
    ctx->retryable = rc != -EINVAL;
    return rc;
}

int job_train(struct job_ctx *ctx)
{
    struct train_args a;
    int rc = parse_args(ctx, &a);
    if (rc)
        return rc;
    struct clip_ref *clips = NULL;
    int nclips = 0;
    if ((rc = read_manifest(ctx, a.manifest, &clips, &nclips)) != 0)
        return rc;
    /* the fold's clips are the test set, the other folds' the training set */
    int *train = xmalloc(sizeof(int) * (size_t)(nclips ? nclips : 1));
    int *test = xmalloc(sizeof(int) * (size_t)(nclips ? nclips : 1));
    int ntrain = 0, ntest = 0;
    for (int i = 0; i < nclips; i++) {
        if (clips[i].fold == a.fold)
            test[ntest++] = i;
        else
            train[ntrain++] = i;
    }
    struct dfew_train_model *m = NULL;
    struct loader L[2];
    memset(L, 0, sizeof L);
    struct sbuf ckpt = {0}, hist = {0}, pred = {0}, text = {0};
    struct epoch_row *rows = xcalloc((size_t)a.epochs + 1, sizeof *rows);
    float *probs = NULL;
    int32_t *truth = NULL, *guess = NULL;
    int *order = NULL;
    char err[1024];
    int T = 0, H = 0, W = 0, C = 0;
    if (ntrain < 2 || ntest < 1) {
        snprintf(ctx->error, sizeof ctx->error,
                 "fold %d of %s has %d test clip(s) and %d training clip(s); a fold needs at least 1 and 2", a.fold,
                 a.manifest, ntest, ntrain);
        ctx->retryable = 0;
        rc = -EINVAL;
        goto out;
    }
    if ((rc = clip_read_header(clips[test[0]].path, &T, &H, &W, &C, err, sizeof err)) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "%s; prepare the clip again or make a split without it", err);
        ctx->retryable = rc == -EIO;
        goto out;
    }
    if (C != 3 || a.crop > H || a.crop > W) {
        snprintf(ctx->error, sizeof ctx->error, "clips are %dx%dx%dx%d; the run wants RGB and a %d-pixel crop", T, H,
                 W, C, a.crop);
        ctx->retryable = 0;
        rc = -EINVAL;
        goto out;
    }
    if ((rc = load_backend(ctx, &a)) != 0)
        goto out;
    const struct dfew_train_backend *be = cache.h.be;
    a.cfg.in_t = T, a.cfg.in_h = a.crop, a.cfg.in_w = a.crop;
    if ((rc = be->model_create(&a.cfg, &m, err, sizeof err)) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "cannot create the model: %s", err);
        ctx->retryable = rc == -ENOMEM;
        m = NULL;
        goto out;
    }
    if ((rc = mkdir_p(a.out_dir, 0755)) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "cannot create %s: %s", a.out_dir, strerror(-rc));
        goto out;
    }

    /* resume from the last checkpoint of this fold, if any */
    struct dfew_train_progress pr;
    memset(&pr, 0, sizeof pr);
    pr.lr = a.cfg.lr;
    pr.best_loss = INFINITY;
    fold_path(&ckpt, &a, "ckpt");
    fold_path(&hist, &a, "history.tsv");
    fold_path(&pred, &a, "predictions.tsv");
    if (access(ckpt.s, F_OK) == 0) {
        struct dfew_train_progress got;
        if (be->load(m, ckpt.s, &got) == 0) {
            pr = got;
            log_info(ctx->id, "resuming fold %d from %s: %d of %d epochs done, step %lld, lr %g", a.fold, ckpt.s,
                     pr.epoch, a.epochs, (long long)pr.step, pr.lr);
        } else {
            /* cannot happen with atomic saves unless the disk lies; start over */
            struct sbuf bad = {0};
            sbuf_addf(&bad, "%s.bad", ckpt.s);
            log_warn(ctx->id, "checkpoint %s is unusable (%s); training fold %d from the start, the file is kept as %s",
                     ckpt.s, be->last_error(m), a.fold, bad.s);
            rename(ckpt.s, bad.s);
            sbuf_free(&bad);
        }
    }
    const int resumed_from = pr.epoch;
    int nrows = read_history(hist.s, pr.epoch, rows);
    if (nrows != pr.epoch) /* history lost: keep what is known */
        nrows = 0;
    if (be->set_lr(m, pr.lr) != 0) {
        rc = model_error(ctx, m, "set_lr", -EINVAL);
        goto out;
    }

    const int B = a.cfg.max_batch;
    const size_t clip_sz = (size_t)T * a.crop * a.crop * 3;
    for (int k = 0; k < 2; k++) {
        L[k].raw = xmalloc((size_t)T * H * W * 3);
        L[k].dst = xmalloc(clip_sz * (size_t)B);
        L[k].labels = xmalloc(sizeof(int32_t) * (size_t)B);
        L[k].clips = clips;
        L[k].T = T, L[k].H = H, L[k].W = W, L[k].crop = a.crop;
    }
    /* full batches, and the remainder when it has at least 2 clips */
    const int nbatches = ntrain / B + (ntrain % B >= 2);
    const int64_t total_steps = (int64_t)nbatches * a.epochs;
    const struct plateau_cfg plat = {.patience = a.patience, .threshold = 1e-4f, .factor = 0.1f, .min_lr = 0.f};
    order = xmalloc(sizeof(int) * (size_t)ntrain);
    double train_s = 0, t_report = 0;
    int64_t trained = 0;
    for (int epoch = pr.epoch; epoch < a.epochs; epoch++) {
        double t0 = mono_s();
        uint64_t er = mix(mix(a.cfg.seed, (uint64_t)a.fold), (uint64_t)epoch);
        memcpy(order, train, sizeof(int) * (size_t)ntrain);
        for (int i = ntrain - 1; i > 0; i--) {
            int j = (int)rng_below(&er, (uint32_t)(i + 1)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        uint64_t aug_seed = mix(mix(a.cfg.seed ^ 0xA5A5A5A5ull, (uint64_t)a.fold), (uint64_t)epoch);
        double sum_loss = 0, sum_ce = 0, sum_aux = 0;
        int64_t seen = 0, correct = 0;
        for (int b = 0; b < nbatches; b++) {
            if (b == 0) {
                struct loader *l = &L[0];
                l->idx = order, l->n = B < ntrain ? B : ntrain, l->train = 1, l->seed = aug_seed, l->pos0 = 0;
                loader_start(l);
            }
            struct loader *cur = &L[b & 1], *next = &L[(b + 1) & 1];
            if ((rc = loader_wait(cur)) != 0) {
                snprintf(ctx->error, sizeof ctx->error, "reading a training clip: %s", cur->err);
                ctx->retryable = rc == -EIO;
                goto out;
            }
            if (b + 1 < nbatches) {
                int start = (b + 1) * B, n = ntrain - start < B ? ntrain - start : B;
                next->idx = order + start, next->n = n, next->train = 1, next->seed = aug_seed, next->pos0 = start;
                loader_start(next);
            }
            struct dfew_train_batch batch = {cur->n, DFEW_INPUT_U8_NTHWC, cur->dst, cur->labels};
            struct dfew_train_losses ls;
            if ((rc = be->train_step(m, &batch, &ls)) != 0) {
                rc = model_error(ctx, m, "training step", rc);
                goto out;
            }
            pr.step++;
            if (!isfinite(ls.total)) {
                snprintf(ctx->error, sizeof ctx->error,
                         "the training loss diverged (%g at epoch %d, step %lld); use a smaller --lr", ls.total,
                         epoch + 1, (long long)pr.step);
                ctx->retryable = 0;
                rc = -EDOM;
                goto out;
            }
            if (a.stall_epoch == epoch + 1 && a.stall_step == b + 1 && ctx->attempt == 1)
                stall(ctx, &a, epoch + 1, b + 1, 0.97 * (double)((int64_t)epoch * nbatches + b + 1) / total_steps);
            sum_loss += (double)ls.total * cur->n;
            sum_ce += (double)ls.ce * cur->n;
            sum_aux += (double)ls.aux * cur->n;
            correct += ls.correct;
            seen += cur->n;
            double now = mono_s();
            if (now - t_report >= 0.5 || b + 1 == nbatches) {
                t_report = now;
                double el = train_s + now - t0;
                progress(ctx, &a, 0.97 * (double)((int64_t)epoch * nbatches + b + 1) / (double)total_steps,
                         "epoch %d/%d step %d/%d loss %.4f lr %.3g %.1f clips/s", epoch + 1, a.epochs, b + 1,
                         nbatches, sum_loss / (double)seen, pr.lr, el > 0 ? (double)(trained + seen) / el : 0.0);
            }
        }
        double took = mono_s() - t0;
        train_s += took;
        trained += seen;
        float mean = (float)(sum_loss / (double)seen);
        rows[nrows++] = (struct epoch_row){epoch + 1, sum_loss / (double)seen, sum_ce / (double)seen,
                                           sum_aux / (double)seen, (double)correct / (double)seen, pr.lr, took};
        float lr = plateau_step(&plat, &pr.best_loss, &pr.bad_epochs, mean, pr.lr);
        if (lr != pr.lr) {
            log_info(ctx->id, "fold %d: training loss plateaued (%.4f, best %.4f); learning rate %g -> %g", a.fold,
                     mean, pr.best_loss, pr.lr, lr);
            pr.lr = lr;
            if (be->set_lr(m, lr) != 0) {
                rc = model_error(ctx, m, "set_lr", -EINVAL);
                goto out;
            }
        }
        pr.epoch = epoch + 1;
        /* the history first: a checkpoint never runs ahead of it */
        if ((rc = write_history(hist.s, rows, nrows)) != 0) {
            snprintf(ctx->error, sizeof ctx->error, "cannot write %s: %s", hist.s, strerror(-rc));
            goto out;
        }
        if ((rc = be->save(m, ckpt.s, &pr)) != 0) {
            rc = model_error(ctx, m, "checkpoint", rc);
            ctx->retryable = 1;
            goto out;
        }
        log_info(ctx->id, "fold %d epoch %d/%d: loss %.4f (ce %.4f, aux %.4f), train accuracy %.3f, %.1f s", a.fold,
                 epoch + 1, a.epochs, rows[nrows - 1].loss, rows[nrows - 1].ce, rows[nrows - 1].aux,
                 rows[nrows - 1].accuracy, took);
    }

    /* evaluate the fold's clips */
    double te = mono_s();
    probs = xmalloc(sizeof(float) * (size_t)ntest * NCLASSES);
    truth = xmalloc(sizeof(int32_t) * (size_t)ntest);
    guess = xmalloc(sizeof(int32_t) * (size_t)ntest);
    for (int s = 0, b = 0; s < ntest; s += B, b++) {
        if (s == 0) {
            L[0].idx = test, L[0].n = B < ntest ? B : ntest, L[0].train = 0;
            loader_start(&L[0]);
        }
        struct loader *cur = &L[b & 1], *next = &L[(b + 1) & 1];
        if ((rc = loader_wait(cur)) != 0) {
            snprintf(ctx->error, sizeof ctx->error, "reading a test clip: %s", cur->err);
            ctx->retryable = rc == -EIO;
            goto out;
        }
        if (s + B < ntest) {
            next->idx = test + s + B, next->n = ntest - s - B < B ? ntest - s - B : B, next->train = 0;
            loader_start(next);
        }
        struct dfew_train_batch batch = {cur->n, DFEW_INPUT_U8_NTHWC, cur->dst, NULL};
        if ((rc = be->evaluate(m, &batch, probs + (size_t)s * NCLASSES, NULL)) != 0) {
            rc = model_error(ctx, m, "evaluation", rc);
            goto out;
        }
        memcpy(truth + s, cur->labels, sizeof(int32_t) * (size_t)cur->n);
        progress(ctx, &a, 0.97 + 0.03 * (double)(s + cur->n) / ntest, "evaluating: %d/%d test clips",
                 s + cur->n, ntest);
    }
    metrics_predict(guess, probs, ntest, NCLASSES);
    int64_t conf[NCLASSES * NCLASSES] = {0};
    metrics_confusion_add(conf, truth, guess, ntest, NCLASSES);
    struct metrics mt;
    metrics_from_confusion(&mt, conf, NCLASSES);
    sbuf_addf(&text, "%s %d\nclip_id\tlabel\tpred\thappy\tsad\tneutral\tangry\tsurprise\tdisgust\tfear\n",
              PREDICTIONS_MAGIC, FORMAT_VERSION);
    for (int i = 0; i < ntest; i++) {
        sbuf_addf(&text, "%lld\t%d\t%d", (long long)clips[test[i]].id, truth[i] + 1, guess[i] + 1);
        for (int k = 0; k < NCLASSES; k++)
            sbuf_addf(&text, "\t%.9g", probs[(size_t)i * NCLASSES + k]);
        sbuf_addc(&text, '\n');
    }
    if ((rc = write_file_atomic(pred.s, text.s, text.len)) != 0) {
        snprintf(ctx->error, sizeof ctx->error, "cannot write %s: %s", pred.s, strerror(-rc));
        goto out;
    }
    double eval_s = mono_s() - te;

    struct dfew_train_info info;
    memset(&info, 0, sizeof info);
    be->describe(m, &info);
    const char *core = blas_core(cache.h.dl);
    kv_setf(&ctx->result, "run_id", "%lld", (long long)a.run_id);
    kv_setf(&ctx->result, "fold", "%d", a.fold);
    kv_set(&ctx->result, "backend", info.backend);
    kv_set(&ctx->result, "device", info.device);
    if (core && !strcmp(info.backend, "cpu"))
        kv_set(&ctx->result, "blas_core", core);
    kv_setf(&ctx->result, "train_clips", "%d", ntrain);
    kv_setf(&ctx->result, "test_clips", "%d", ntest);
    kv_setf(&ctx->result, "epochs_done", "%d", pr.epoch);
    kv_setf(&ctx->result, "resumed_from", "%d", resumed_from);
    kv_setf(&ctx->result, "steps", "%lld", (long long)pr.step);
    if (nrows)
        kv_setf(&ctx->result, "final_loss", "%.9g", rows[nrows - 1].loss);
    kv_setf(&ctx->result, "final_lr", "%.7g", pr.lr);
    kv_setf(&ctx->result, "train_s", "%.3f", train_s);
    kv_setf(&ctx->result, "eval_s", "%.3f", eval_s);
    if (train_s > 0)
        kv_setf(&ctx->result, "clips_per_s", "%.2f", (double)trained / train_s);
    kv_setf(&ctx->result, "uar", "%.6f", mt.uar);
    kv_setf(&ctx->result, "war", "%.6f", mt.war);
    kv_set(&ctx->result, "predictions", pred.s);
    kv_set(&ctx->result, "history", hist.s);
    kv_set(&ctx->result, "checkpoint", ckpt.s);
    log_info(ctx->id, "run %lld fold %d: UAR %.4f WAR %.4f on %d test clips (%s, %s)", (long long)a.run_id, a.fold,
             mt.uar, mt.war, ntest, info.backend, info.device);
    rc = 0;
out:
    for (int k = 0; k < 2; k++) {
        loader_wait(&L[k]);
        free(L[k].raw);
        free(L[k].dst);
        free(L[k].labels);
    }
    if (m)
        cache.h.be->destroy(m);
    free(order);
    free(probs);
    free(truth);
    free(guess);
    free(rows);
    free(train);
    free(test);
    sbuf_free(&ckpt);
    sbuf_free(&hist);
    sbuf_free(&pred);
    sbuf_free(&text);
    free_clips(clips, nclips);
    return rc;
}
