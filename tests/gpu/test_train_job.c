/* test_train_job.c: dfew-worker's train job (workers/train_job.c, linked
 * here without the rest of the worker) on a GPU machine. On a fold of a
 * generated 7-class set of moving patterns (patterns.h) written as clip.u8
 * files with a manifest, as dfewctl train writes them:
 * - --backend auto picks CUDA and the result names the backend and device;
 * - the predictions file has one row per test clip;
 * - the same job with more epochs resumes from the fold's checkpoint (written
 *   by the CUDA backend) and trains only the missing epoch;
 * - the CPU backend on the same job ends with nearly the same training loss.
 * Exits 77 ("skipped: no CUDA device") where no GPU is usable, unless
 * DFEW_TRAIN_JOB_CPU=1, which runs the same checks with the CPU in place of
 * CUDA (to check this program itself on a machine without a GPU).
 * usage: test_train_job BACKENDS_DIR [WORK_DIR] */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"
#include "log.h"
#include "patterns.h"
#include "util.h"
#include "worker.h"

#define T 8
#define S 20
#define PER_CLASS 10
#define FOLDS 5

static int failures;
#define EXPECT(cond, ...)                                                                                              \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            failures++;                                                                                                \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
        }                                                                                                              \
    } while (0)

void job_progress(struct job_ctx *ctx, double frac, const char *msg)
{
    (void)ctx, (void)frac, (void)msg;
}

/* the set: clip.u8 files and the manifest (fold = i % FOLDS + 1) */
static void write_set(const char *dir, const char *manifest)
{
    struct sbuf m = {0};
    sbuf_add(&m, "dfew-train-manifest 1\n# generated moving patterns\nclip_id\tfold\tlabel\tpath\n");
    uint64_t rng = 2020;
    uint8_t clip[T * S * S * 3];
    for (int i = 0; i < PATTERN_CLASSES * PER_CLASS; i++) {
        int cls = i % PATTERN_CLASSES;
        pattern_clip(clip, cls, T, S, S, &rng);
        struct sbuf p = {0};
        sbuf_addf(&p, "%s/clip%03d.u8", dir, i);
        FILE *f = fopen(p.s, "wb");
        uint32_t h[6] = {1, 32, T, S, S, 3};
        if (!f || fwrite("DFEWCLIP", 1, 8, f) != 8 || fwrite(h, 4, 6, f) != 6 || fwrite(clip, 1, sizeof clip, f) !=
                                                                                     sizeof clip) {
            perror(p.s);
            exit(1);
        }
        fclose(f);
        sbuf_addf(&m, "%d\t%d\t%d\t%s\n", i + 1, i % FOLDS + 1, cls + 1, p.s);
        sbuf_free(&p);
    }
    if (write_file_atomic(manifest, m.s, m.len)) {
        perror(manifest);
        exit(1);
    }
    sbuf_free(&m);
}

/* Runs one train job; returns its exit code, the result in *res (caller frees). */
static int run_job(const char *backends, const char *manifest, const char *out, const char *backend, int epochs,
                   struct kv *res)
{
    struct kv args = {0};
    kv_set(&args, "run_id", "1");
    kv_set(&args, "fold", "1");
    kv_set(&args, "manifest", manifest);
    kv_set(&args, "out_dir", out);
    kv_set(&args, "model", "r3d18");
    kv_set(&args, "loss", "ecstfl");
    kv_set(&args, "lambda", "10");
    kv_setf(&args, "epochs", "%d", epochs);
    kv_set(&args, "batch", "14");
    kv_set(&args, "lr", "0.02");
    kv_set(&args, "momentum", "0.9");
    kv_set(&args, "weight_decay", "0.0005");
    kv_set(&args, "patience", "10");
    kv_set(&args, "seed", "7");
    kv_set(&args, "width", "0.0625");
    kv_set(&args, "crop", "16");
    kv_set(&args, "threads", "0");
    kv_set(&args, "precision", "fp32");
    kv_set(&args, "backend", backend);
    kv_set(&args, "backends", backends);
    struct job_ctx ctx = {.id = 1, .kind = "train", .attempt = 1, .args = &args, .retryable = 1};
    int rc = job_train(&ctx);
    if (rc)
        printf("  train job (%s, %d epochs) failed: %s\n", backend, epochs, ctx.error);
    *res = ctx.result;
    kv_free(&args);
    return rc;
}

static double num(const struct kv *r, const char *k)
{
    double v = NAN;
    kv_get_double(r, k, &v);
    return v;
}

static int count_rows(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n - 2; /* magic and header */
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_train_job BACKENDS_DIR [WORK_DIR]\n");
        return 2;
    }
    log_init("test_train_job", stderr, LOG_WARN);
    const char *backends = argv[1];
    char path[4096], err[1024];
    snprintf(path, sizeof path, "%s/dfew-train-cuda.so", backends);
    struct train_backend_handle h;
    struct dfew_train_device dev;
    memset(&dev, 0, sizeof dev);
    const char *want = "cuda";
    if (train_backend_open(path, &h, err, sizeof err) || h.be->device_probe(&dev) != 1) {
        if (!getenv("DFEW_TRAIN_JOB_CPU")) {
            printf("skipped: no CUDA device (%s)\n", err[0] ? err : dev.name);
            return 77;
        }
        want = "cpu";
    }
    if (h.be)
        train_backend_close(&h);
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/dfew-train-job-XXXXXX", argc > 2 ? argv[2] : "/tmp");
    if (!mkdtemp(tmpl)) {
        perror(tmpl);
        return 1;
    }
    struct sbuf manifest = {0}, out_gpu = {0}, out_cpu = {0};
    sbuf_addf(&manifest, "%s/manifest.tsv", tmpl);
    sbuf_addf(&out_gpu, "%s/cuda", tmpl);
    sbuf_addf(&out_cpu, "%s/cpu", tmpl);
    write_set(tmpl, manifest.s);

    struct kv r1 = {0}, r2 = {0}, r3 = {0};
    int rc = run_job(backends, manifest.s, out_gpu.s, "auto", 3, &r1);
    EXPECT(rc == 0, "the auto job failed");
    const char *be = kv_get(&r1, "backend"), *devname = kv_get(&r1, "device");
    printf("  auto: backend %s, device %s, loss %g, UAR %g, WAR %g, %g clips/s\n", be ? be : "?",
           devname ? devname : "?", num(&r1, "final_loss"), num(&r1, "uar"), num(&r1, "war"), num(&r1, "clips_per_s"));
    EXPECT(be && !strcmp(be, want), "--backend auto ran %s, not %s", be ? be : "nothing", want);
    EXPECT(devname && *devname, "no device name in the result");
    EXPECT(num(&r1, "resumed_from") == 0 && num(&r1, "epochs_done") == 3, "a fresh job trained 3 epochs");
    const char *pred = kv_get(&r1, "predictions");
    EXPECT(pred && count_rows(pred) == PER_CLASS * PATTERN_CLASSES / FOLDS, "predictions: %d rows, want %d",
           pred ? count_rows(pred) : -1, PER_CLASS * PATTERN_CLASSES / FOLDS);

    rc = run_job(backends, manifest.s, out_gpu.s, "auto", 4, &r2);
    EXPECT(rc == 0, "the resumed job failed");
    printf("  resumed: from epoch %g to %g, loss %g\n", num(&r2, "resumed_from"), num(&r2, "epochs_done"),
           num(&r2, "final_loss"));
    EXPECT(num(&r2, "resumed_from") == 3 && num(&r2, "epochs_done") == 4,
           "the job with one more epoch resumed from epoch %g (want 3)", num(&r2, "resumed_from"));

    rc = run_job(backends, manifest.s, out_cpu.s, "cpu", 3, &r3);
    EXPECT(rc == 0, "the CPU job failed");
    double lg = num(&r1, "final_loss"), lc = num(&r3, "final_loss");
    printf("  cpu: loss %g (cuda %g, relative difference %.2e), UAR %g\n", lc, lg, fabs(lg - lc) / fabs(lc),
           num(&r3, "uar"));
    EXPECT(fabs(lg - lc) <= 2e-2 * fabs(lc), "CUDA and CPU final training losses differ: %g vs %g", lg, lc);

    kv_free(&r1), kv_free(&r2), kv_free(&r3);
    remove_tree(tmpl);
    sbuf_free(&manifest), sbuf_free(&out_gpu), sbuf_free(&out_cpu);
    printf("%s: %d failed checks\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
