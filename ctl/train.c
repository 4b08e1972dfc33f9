/* dfewctl train and runs: training runs. `train` checks a split (every clip
 * has a clip tensor, all of one size; each chosen fold has test and training
 * clips), then in one transaction creates the run row, writes the run's
 * manifest (clip tensor, fold and label of every clip of the split) into
 * HOME/outputs/train/run-<id>/ and queues one train job per fold; workers
 * never read the database, so the manifest is all a train job needs besides
 * its arguments. `runs` lists runs with their state and pooled metrics. The
 * training itself is workers/train_job.c; metrics are ctl/metrics.c. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clipfmt.h"
#include "ctl.h"
#include "dataset.h"
#include "queue.h"

#define MAX_FOLDS 100

struct train_opts {
    const char *split, *folds, *model, *loss, *precision, *backend;
    double lambda, lr, momentum, weight_decay, width;
    int epochs, batch, patience, crop, threads, have_lambda;
    int64_t seed;
};

static const char train_usage[] =
    "usage: dfewctl train [--split NAME] [--folds all|LIST] [--model r3d18|c3d]\n"
    "                     [--loss ce|ecstfl|ecstfl_l1|center] [--lambda L] [--epochs E]\n"
    "                     [--batch B] [--lr LR] [--momentum M] [--weight-decay WD]\n"
    "                     [--patience P] [--seed S] [--width W] [--crop S]\n"
    "                     [--precision fp32|tf32|bf16] [--backend auto|cpu|cuda] [--threads N]\n\n"
    "Creates a training run on a split (dfewctl folds make) and queues one train\n"
    "job per fold: the fold's clips are its test set, the other folds' clips its\n"
    "training set (the paper's 5-fold protocol). Train jobs run on dfewd's trainer\n"
    "slot ([limits] train), on CUDA when the worker's machine has a GPU, else on\n"
    "the CPU; dfewctl status shows their progress, dfewctl runs the runs, and\n"
    "dfewctl metrics RUN the per-fold and pooled UAR / WAR.\n\n"
    "  --split NAME              the split (dfewctl folds list); default: the official\n"
    "                            'dfew' split when there is one, else the only split;\n"
    "                            with several splits and no 'dfew' one, name it\n"
    "  --folds all | 1,3 | 2-4   folds to train (default all)\n"
    "  --model r3d18 | c3d       3D ResNet-18 (default; the paper's best) or C3D\n"
    "  --loss ecstfl (default: CE + lambda * EC-STFL, paper eq. 9), ecstfl_l1 (the\n"
    "         authors' later L1 form), center (CE + lambda * center loss), ce\n"
    "  --lambda L                weight of the extra loss (default 10; 1e-4 for center)\n"
    "  --epochs E                default 30; --batch B default 24\n"
    "  --lr LR                   SGD learning rate (default 0.001), divided by 10 when\n"
    "                            the epoch's training loss has not improved for\n"
    "                            --patience epochs (default 10)\n"
    "  --momentum M, --weight-decay WD   SGD (defaults 0.9 and 5e-4)\n"
    "  --seed S                  weights, clip order, augmentation (default 1)\n"
    "  --width W                 channel width multiplier (default 1 = the published model)\n"
    "  --crop S                  train on random S x S crops (+ horizontal flips) of the\n"
    "                            clip tensors, test on the centre crop (default: the\n"
    "                            tensor's size, i.e. flips only)\n"
    "  --precision fp32 | tf32 | bf16    CUDA arithmetic (default fp32; the CPU is fp32)\n"
    "  --backend auto | cpu | cuda       default auto: CUDA when a device is present\n"
    "  --threads N               CPU threads of the CPU backend (default 0 = all cores;\n"
    "                            results are bitwise reproducible for a seed and N)\n";

static int bad(const char *opt, const char *want, const char *val)
{
    fprintf(stderr, "dfewctl train: %s wants %s, not '%s'\n", opt, want, val);
    return 2;
}

/* "all", or a list of folds and ranges ("1,3", "2-4", "1..5") within 1..k. */
static int parse_folds(const char *s, int k, int *want)
{
    memset(want, 0, sizeof(int) * (MAX_FOLDS + 1));
    if (!strcmp(s, "all")) {
        for (int i = 1; i <= k; i++)
            want[i] = 1;
        return 0;
    }
    char *copy = xstrdup(s), *save = NULL;
    int rc = 0, any = 0;
    for (char *t = strtok_r(copy, ",", &save); t && !rc; t = strtok_r(NULL, ",", &save)) {
        int lo, hi;
        char *dash = strstr(t, "..");
        int skip = 2;
        if (!dash) {
            dash = strchr(t, '-');
            skip = 1;
        }
        if (dash) {
            *dash = '\0';
            rc = parse_int(t, &lo) || parse_int(dash + skip, &hi) || hi < lo ? -EINVAL : 0;
        } else {
            rc = parse_int(t, &lo) ? -EINVAL : 0;
            hi = lo;
        }
        if (!rc && (lo < 1 || hi > k)) {
            fprintf(stderr, "dfewctl train: fold %d is not in the split (it has folds 1..%d)\n", lo < 1 ? lo : hi,
                    k);
            rc = -ERANGE;
        }
        for (int i = lo; !rc && i <= hi; i++)
            want[i] = any = 1;
    }
    free(copy);
    if (!rc && !any)
        rc = -EINVAL;
    if (rc == -EINVAL)
        fprintf(stderr, "dfewctl train: --folds wants all, or folds such as 1,3 or 2-4, not '%s'\n", s);
    return rc;
}

struct member {
    int64_t clip;
    int fold, label;
    char *path;
};

static int parse_opts(int argc, char **argv, struct ctl *c, struct train_opts *o)
{
    static const struct option opts[] = {{"split", required_argument, NULL, 's'},
                                         {"folds", required_argument, NULL, 'f'},
                                         {"model", required_argument, NULL, 'm'},
                                         {"loss", required_argument, NULL, 'l'},
                                         {"lambda", required_argument, NULL, 'L'},
                                         {"epochs", required_argument, NULL, 'e'},
                                         {"batch", required_argument, NULL, 'b'},
                                         {"lr", required_argument, NULL, 'r'},
                                         {"momentum", required_argument, NULL, 'M'},
                                         {"weight-decay", required_argument, NULL, 'w'},
                                         {"patience", required_argument, NULL, 'p'},
                                         {"seed", required_argument, NULL, 'S'},
                                         {"width", required_argument, NULL, 'W'},
                                         {"crop", required_argument, NULL, 'c'},
                                         {"precision", required_argument, NULL, 'P'},
                                         {"backend", required_argument, NULL, 'B'},
                                         {"threads", required_argument, NULL, 't'},
                                         CTL_COMMON_LONGOPTS,
                                         {NULL, 0, NULL, 0}};
    *o = (struct train_opts){.folds = "all", .model = "r3d18", .loss = "ecstfl", .precision = "fp32",
                             .backend = "auto", .lr = 1e-3, .momentum = 0.9, .weight_decay = 5e-4, .width = 1,
                             .epochs = 30, .batch = 24, .patience = 10, .seed = 1};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (ctl_common_opt(c, opt, optarg))
            continue;
        switch (opt) {
        case 's': o->split = optarg; break;
        case 'f': o->folds = optarg; break;
        case 'm':
            if (!str_one_of(optarg, "r3d18|c3d"))
                return bad("--model", "r3d18 or c3d", optarg);
            o->model = optarg;
            break;
        case 'l':
            if (!str_one_of(optarg, "ce|ecstfl|ecstfl_l1|center"))
                return bad("--loss", "ce, ecstfl, ecstfl_l1 or center", optarg);
            o->loss = optarg;
            break;
        case 'L':
            if (parse_double(optarg, &o->lambda) || !(o->lambda >= 0) || o->lambda > 1e6)
                return bad("--lambda", "a number >= 0", optarg);
            o->have_lambda = 1;
            break;
        case 'e':
            if (parse_int(optarg, &o->epochs) || o->epochs < 1 || o->epochs > 100000)
                return bad("--epochs", "a whole number >= 1", optarg);
            break;
        case 'b':
            if (parse_int(optarg, &o->batch) || o->batch < 2 || o->batch > 4096)
                return bad("--batch", "a whole number from 2 to 4096", optarg);
            break;
        case 'r':
            if (parse_double(optarg, &o->lr) || !(o->lr > 0) || o->lr > 1e3)
                return bad("--lr", "a number > 0", optarg);
            break;
        case 'M':
            if (parse_double(optarg, &o->momentum) || !(o->momentum >= 0 && o->momentum <= 1))
                return bad("--momentum", "a number from 0 to 1", optarg);
            break;
        case 'w':
            if (parse_double(optarg, &o->weight_decay) || !(o->weight_decay >= 0 && o->weight_decay <= 1))
                return bad("--weight-decay", "a number from 0 to 1", optarg);
            break;
        case 'p':
            if (parse_int(optarg, &o->patience) || o->patience < 0)
                return bad("--patience", "a whole number >= 0", optarg);
            break;
        case 'S':
            if (parse_i64(optarg, &o->seed) || o->seed < 0)
                return bad("--seed", "a whole number >= 0", optarg);
            break;
        case 'W':
            if (parse_double(optarg, &o->width) || !(o->width > 0 && o->width <= 4))
                return bad("--width", "a number in (0, 4] (1 = the published model)", optarg);
            break;
        case 'c':
            if (parse_int(optarg, &o->crop) || o->crop < 1)
                return bad("--crop", "a size in pixels", optarg);
            break;
        case 'P':
            if (!str_one_of(optarg, "fp32|tf32|bf16"))
                return bad("--precision", "fp32, tf32 or bf16", optarg);
            o->precision = optarg;
            break;
        case 'B':
            if (!str_one_of(optarg, "auto|cpu|cuda"))
                return bad("--backend", "auto, cpu or cuda", optarg);
            o->backend = optarg;
            break;
        case 't':
            if (parse_int(optarg, &o->threads) || o->threads < 0 || o->threads > 4096)
                return bad("--threads", "a whole number >= 0 (0 = all cores)", optarg);
            break;
        case 'h': printf("%s", train_usage); return 0;
        default: fprintf(stderr, "%s", train_usage); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "dfewctl train: unexpected argument '%s'\n%s", argv[optind], train_usage);
        return 2;
    }
    if (!strcmp(o->loss, "ce") && o->have_lambda && o->lambda != 0) {
        fprintf(stderr, "dfewctl train: --loss ce has no extra term for --lambda to weigh; leave --lambda out or "
                        "choose --loss ecstfl, ecstfl_l1 or center\n");
        return 2;
    }
    if (!o->have_lambda)
        o->lambda = !strcmp(o->loss, "ce") ? 0 : !strcmp(o->loss, "center") ? 1e-4 : 10;
    return -1;
}

static void free_members(struct member *m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(m[i].path);
    free(m);
}

/* Every clip of the split with its tensor (clip.u8 in its output_dir, or the
 * one a tensor job built: clips.tensor_path), all of one size. Prints what is
 * wrong (and what to do) and returns -EINVAL. */
static int load_members(struct ctl *c, int64_t split, const char *split_name, struct member **out, size_t *count,
                        int dims[3])
{
    sqlite3_stmt *st = db_prepare(c->db, "SELECT f.clip_id, f.fold, f.label, coalesce(c.tensor_path, c.output_dir || "
                                         "'/clip.u8'), c.state FROM fold_members f JOIN clips c ON c.id = f.clip_id "
                                         "WHERE f.split_id = ? ORDER BY f.fold, f.clip_id");
    if (!st)
        return -EIO;
    sqlite3_bind_int64(st, 1, split);
    struct member *m = NULL;
    size_t n = 0, cap = 0, missing = 0, odd = 0;
    struct sbuf examples = {0}, odd_ex = {0};
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *tensor = (const char *)sqlite3_column_text(st, 3);
        const char *state = (const char *)sqlite3_column_text(st, 4);
        int64_t clip = sqlite3_column_int64(st, 0);
        struct sbuf path = {0};
        char err[1024];
        int t = 0, h = 0, w = 0, ch = 0;
        if (tensor)
            sbuf_add(&path, tensor);
        if (!tensor || clip_read_header(path.s, &t, &h, &w, &ch, err, sizeof err) != 0) {
            if (missing++ < 3)
                sbuf_addf(&examples, "\n  clip %lld (%s): %s", (long long)clip, state ? state : "?",
                          tensor ? err : "no output directory");
            sbuf_free(&path);
            continue;
        }
        if (strchr(path.s, '\t') || strchr(path.s, '\n')) {
            fprintf(stderr, "dfewctl train: the path %s holds a tab or line break; move the dfew home\n", path.s);
            sbuf_free(&path);
            rc = SQLITE_ERROR;
            break;
        }
        if (dims[0] == 0) /* the first clip with a tensor sets the run's size */
            dims[0] = t, dims[1] = h, dims[2] = w;
        if (ch != 3 || t != dims[0] || h != dims[1] || w != dims[2]) {
            if (odd++ < 3)
                sbuf_addf(&odd_ex, "\n  clip %lld: %dx%dx%dx%d (the others are %dx%dx%dx3)", (long long)clip, t, h, w,
                          ch, dims[0], dims[1], dims[2]);
            sbuf_free(&path);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 1024;
            m = xrealloc(m, cap * sizeof *m);
        }
        m[n++] = (struct member){clip, sqlite3_column_int(st, 1), sqlite3_column_int(st, 2), sbuf_take(&path)};
    }
    sqlite3_reset(st);
    int ret = 0;
    if (rc != SQLITE_DONE) {
        ret = -EIO;
    } else if (missing) {
        fprintf(stderr,
                "dfewctl train: %zu of the %zu clips of split '%s' have no clip tensor (clip.u8), for example:%s\n"
                "Clips get one from their prep job (dfewctl submit), clips imported from a DFEW release from\n"
                "their tensor job (dfewctl import dfew DIR queues them; dfewctl wait). Let those jobs finish\n"
                "(dfewctl status), or make a split of clips that have one (dfewctl folds make). Nothing was "
                "queued.\n",
                missing, missing + n + odd, split_name, examples.s);
        ret = -EINVAL;
    } else if (odd) {
        fprintf(stderr,
                "dfewctl train: the clip tensors of split '%s' differ in size (a run trains on one size):%s\n"
                "Prepare them again with one [prep] frames / size, or make a split without them. Nothing was "
                "queued.\n",
                split_name, odd_ex.s);
        ret = -EINVAL;
    } else if (!n) {
        fprintf(stderr, "dfewctl train: split '%s' has no clips\n", split_name);
        ret = -EINVAL;
    }
    sbuf_free(&examples);
    sbuf_free(&odd_ex);
    if (ret) {
        free_members(m, n);
        return ret;
    }
    *out = m;
    *count = n;
    return 0;
}

static void json_num(struct sbuf *b, const char *key, double v)
{
    sbuf_addf(b, ",\"%s\":%.9g", key, v);
}

static void json_str(struct sbuf *b, const char *key, const char *v)
{
    sbuf_addf(b, ",\"%s\":", key);
    sbuf_add_json_str(b, v);
}

/* Checks the split's clips, creates the run and queues its jobs (see the top). */
static int queue_run(struct ctl *c, struct train_opts o, int64_t split)
{
    struct db *db = c->db;
    sqlite3_stmt *st = db_prepare(db, "SELECT k FROM splits WHERE id = ?");
    if (!st)
        return 1;
    sqlite3_bind_int64(st, 1, split);
    int k = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_reset(st);
    int rc;
    int want[MAX_FOLDS + 1];
    if (k > MAX_FOLDS || parse_folds(o.folds, k, want))
        return 2;

    struct member *m = NULL;
    size_t n = 0;
    int dims[3] = {0, 0, 0};
    if (load_members(c, split, o.split, &m, &n, dims))
        return 1;
    int test_n[MAX_FOLDS + 1] = {0};
    for (size_t i = 0; i < n; i++)
        if (m[i].fold >= 1 && m[i].fold <= k)
            test_n[m[i].fold]++;
    int T = dims[0], side = dims[1] < dims[2] ? dims[1] : dims[2];
    if (!o.crop)
        o.crop = side;
    rc = 1;
    if (o.crop > side) {
        fprintf(stderr, "dfewctl train: --crop %d is larger than the clips (%dx%d); use at most %d\n", o.crop,
                dims[1], dims[2], side);
        goto out;
    }
    if (!strcmp(o.model, "c3d") && (T < 16 || o.crop < 16)) {
        fprintf(stderr, "dfewctl train: C3D needs clips of at least 16 frames and a crop of at least 16 pixels; "
                        "these are %d frames, crop %d\n", T, o.crop);
        goto out;
    }
    if (!strcmp(o.model, "r3d18") && o.crop < 2) {
        fprintf(stderr, "dfewctl train: r3d18 needs a crop of at least 2 pixels\n");
        goto out;
    }
    for (int f = 1; f <= k; f++) {
        if (!want[f])
            continue;
        int ntrain = (int)n - test_n[f];
        if (test_n[f] < 1 || ntrain < 2) {
            fprintf(stderr,
                    "dfewctl train: fold %d of split '%s' has %d test clip(s) and %d training clip(s); a fold needs at "
                    "least 1 and 2\n",
                    f, o.split, test_n[f], ntrain);
            goto out;
        }
    }

    if (db_begin(db)) {
        fprintf(stderr, "dfewctl train: cannot start a transaction: %s\n", db_errmsg(db));
        goto out;
    }
    struct sbuf folds = {0}, dir = {0}, manifest = {0}, text = {0}, jobs = {0};
    int made_dir = 0;
    for (int f = 1; f <= k; f++)
        if (want[f])
            sbuf_addf(&folds, "%s%d", folds.len ? "," : "", f);
    st = db_prepare(db, "INSERT INTO runs (split_id, split, folds, model, loss, lambda, epochs, batch, lr, momentum, "
                        "weight_decay, patience, seed, width, frames, clip_height, clip_width, crop, precision, backend, "
                        "threads, out_dir, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                        "?, '', ?)");
    if (!st)
        goto dberr;
    sqlite3_bind_int64(st, 1, split);
    sqlite3_bind_text(st, 2, o.split, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, folds.s, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, o.model, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, o.loss, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, o.lambda);
    sqlite3_bind_int(st, 7, o.epochs);
    sqlite3_bind_int(st, 8, o.batch);
    sqlite3_bind_double(st, 9, o.lr);
    sqlite3_bind_double(st, 10, o.momentum);
    sqlite3_bind_double(st, 11, o.weight_decay);
    sqlite3_bind_int(st, 12, o.patience);
    sqlite3_bind_int64(st, 13, o.seed);
    sqlite3_bind_double(st, 14, o.width);
    sqlite3_bind_int(st, 15, T);
    sqlite3_bind_int(st, 16, dims[1]);
    sqlite3_bind_int(st, 17, dims[2]);
    sqlite3_bind_int(st, 18, o.crop);
    sqlite3_bind_text(st, 19, o.precision, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 20, o.backend, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 21, o.threads);
    sqlite3_bind_double(st, 22, now_s());
    if (db_step_done(db, st))
        goto dberr;
    int64_t run = sqlite3_last_insert_rowid(db->h);
    sbuf_addf(&dir, "%s/train/run-%lld", c->paths.outputs, (long long)run);
    sbuf_addf(&manifest, "%s/manifest.tsv", dir.s);
    st = db_prepare(db, "UPDATE runs SET out_dir = ? WHERE id = ?");
    sqlite3_bind_text(st, 1, dir.s, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, run);
    if (db_step_done(db, st))
        goto dberr;

    /* the manifest: what the workers read instead of the database */
    sbuf_addf(&text, "dfew-train-manifest 1\n# run %lld, split %s (%d folds), %zu clips of %dx%dx%dx3\n"
                     "clip_id\tfold\tlabel\tpath\n",
              (long long)run, o.split, k, n, T, dims[1], dims[2]);
    for (size_t i = 0; i < n; i++)
        sbuf_addf(&text, "%lld\t%d\t%d\t%s\n", (long long)m[i].clip, m[i].fold, m[i].label, m[i].path);
    int e = mkdir_p(dir.s, 0755);
    made_dir = !e;
    if (!e)
        e = write_file_atomic(manifest.s, text.s, text.len);
    if (e) {
        fprintf(stderr, "dfewctl train: cannot write %s: %s; nothing was queued\n", manifest.s, strerror(-e));
        goto fail;
    }
    for (int f = 1; f <= k; f++) {
        if (!want[f])
            continue;
        struct sbuf args = {0}, key = {0};
        sbuf_addf(&args, "{\"run_id\":%lld,\"fold\":%d", (long long)run, f);
        json_str(&args, "manifest", manifest.s);
        json_str(&args, "out_dir", dir.s);
        json_str(&args, "model", o.model);
        json_str(&args, "loss", o.loss);
        json_num(&args, "lambda", o.lambda);
        sbuf_addf(&args, ",\"epochs\":%d,\"batch\":%d", o.epochs, o.batch);
        json_num(&args, "lr", o.lr);
        json_num(&args, "momentum", o.momentum);
        json_num(&args, "weight_decay", o.weight_decay);
        sbuf_addf(&args, ",\"patience\":%d,\"seed\":%lld", o.patience, (long long)o.seed);
        json_num(&args, "width", o.width);
        sbuf_addf(&args, ",\"crop\":%d,\"threads\":%d", o.crop, o.threads);
        json_str(&args, "precision", o.precision);
        json_str(&args, "backend", o.backend);
        if (c->cfg.train_backends)
            json_str(&args, "backends", c->cfg.train_backends);
        sbuf_addc(&args, '}');
        sbuf_addf(&key, "train:%lld:%d", (long long)run, f);
        struct job_spec spec = {.kind = "train", .args_json = args.s, .dedup_key = key.s,
                                .max_attempts = c->cfg.max_attempts};
        int64_t job = 0;
        char why[64];
        snprintf(why, sizeof why, "queued by dfewctl train (run %lld)", (long long)run);
        int r = queue_enqueue(db, &spec, why, &job);
        sbuf_free(&args);
        sbuf_free(&key);
        if (r != 1)
            goto dberr;
        st = db_prepare(db, "INSERT INTO run_folds (run_id, fold, job_id, train_clips, test_clips) VALUES (?, ?, ?, ?, ?)");
        sqlite3_bind_int64(st, 1, run);
        sqlite3_bind_int(st, 2, f);
        sqlite3_bind_int64(st, 3, job);
        sqlite3_bind_int(st, 4, (int)n - test_n[f]);
        sqlite3_bind_int(st, 5, test_n[f]);
        if (db_step_done(db, st))
            goto dberr;
        sbuf_addf(&jobs, "%s%lld", jobs.len ? "," : "", (long long)job);
    }
    if (db_commit(db))
        goto dberr;
    rc = 0;
    int up = ctl_wake(c);
    if (c->json) {
        struct sbuf b = {0};
        sbuf_addf(&b, "{\"run_id\":%lld,\"split\":", (long long)run);
        sbuf_add_json_str(&b, o.split);
        sbuf_addf(&b, ",\"folds\":[%s],\"jobs\":[%s],\"clips\":%zu,\"input\":[%d,%d,%d]", folds.s, jobs.s, n, T,
                  o.crop, o.crop);
        json_str(&b, "out_dir", dir.s);
        json_str(&b, "manifest", manifest.s);
        sbuf_addf(&b, ",\"daemon\":%s}", up ? "true" : "false");
        printf("%s\n", b.s);
        sbuf_free(&b);
    } else {
        printf("run %lld: %s, %s (lambda %g), split '%s', folds %s: %zu clips of %dx%dx%d, input %dx%dx%d\n",
               (long long)run, o.model, o.loss, o.lambda, o.split, folds.s, n, T, dims[1], dims[2], T, o.crop,
               o.crop);
        printf("queued train jobs %s; outputs in %s\n", jobs.s, dir.s);
        printf("%s; results: dfewctl metrics %lld\n",
               up ? "progress: dfewctl status" : "dfewd is not running: the jobs wait for it (dfewd --home HOME)",
               (long long)run);
    }
    goto done;
dberr:
    fprintf(stderr, "dfewctl train: cannot store the run: %s; nothing was queued\n", db_errmsg(db));
fail:
    db_rollback(db);
    if (made_dir)
        remove_tree(dir.s);
done:
    sbuf_free(&folds);
    sbuf_free(&dir);
    sbuf_free(&manifest);
    sbuf_free(&text);
    sbuf_free(&jobs);
out:
    free_members(m, n);
    return rc;
}

int cmd_train(struct ctl *c, int argc, char **argv)
{
    struct train_opts o;
    int rc = parse_opts(argc, argv, c, &o);
    if (rc >= 0)
        return rc;
    if (ctl_open(c, CTL_NEED_CONFIG))
        return 1;
    char *split_name = NULL;
    int64_t split = ds_split(c, "train", o.split, &split_name);
    if (!split)
        return 1;
    o.split = split_name;
    rc = queue_run(c, o, split);
    free(split_name);
    return rc;
}

int cmd_runs(struct ctl *c, int argc, char **argv)
{
    int rc = ctl_simple_opts(c, argc, argv,
                             "usage: dfewctl runs [--json]\n\n"
                             "Training runs, newest last: model, loss, state, folds done, the backend\n"
                             "that ran them, the pooled UAR and WAR (%), and what running folds are doing.\n");
    if (rc >= 0)
        return rc;
    if (argc - optind) {
        fprintf(stderr, "usage: dfewctl runs [--json]\n");
        return 2;
    }
    if (ctl_open(c, 0))
        return 1;
    static const char text_sql[] =
        "SELECT s.run_id AS run, s.split, s.model, s.loss, s.lambda, s.epochs, s.input, s.state, "
        "s.folds_done || '/' || s.folds AS folds, coalesce(s.backend, '-') AS backend, "
        "printf('%.2f', 100 * s.uar) AS uar, printf('%.2f', 100 * s.war) AS war, "
        "(SELECT group_concat(j.progress_msg, '; ') FROM run_folds f JOIN jobs j ON j.id = f.job_id "
        " WHERE f.run_id = s.run_id AND j.state = 'leased') AS running "
        "FROM run_summary s ORDER BY s.run_id";
    static const char json_sql[] =
        "SELECT s.*, (SELECT group_concat(j.progress_msg, '; ') FROM run_folds f JOIN jobs j ON j.id = f.job_id "
        " WHERE f.run_id = s.run_id AND j.state = 'leased') AS running FROM run_summary s ORDER BY s.run_id";
    return ctl_print_query(c, c->json ? json_sql : text_sql, NULL,
                           "no training runs yet (dfewctl train --split NAME)") < 0
               ? 1
               : 0;
}
