/* backend.c: the CPU reference backend behind the plugin ABI of dfew_train.h:
 * the function table, device probe, tensor access and checkpoints. The
 * shared module dfew-train-cpu.so exports it through entry.c; unit tests link
 * the same code statically and call dfew_train_cpu_backend(). Not the model
 * maths (model.c, layers.c, losses.c). */
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cblas.h>


#include "backend.h"
#include "util.h" /* open_temp_beside (lib/util.c, linked into the backend) */
#include "conv_dnnl.h"
#include "model.h"

static int cpu_probe(struct dfew_train_device *dev)
{
    memset(dev, 0, sizeof *dev);
    char model[96] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *c = strchr(line, ':');
                if (c) {
                    c += 1 + (c[1] == ' ');
                    c[strcspn(c, "\n")] = 0;
                    snprintf(model, sizeof model, "%s", c);
                }
                break;
            }
        fclose(f);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN), pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    dev->compute_units = n > 0 ? (int32_t)n : 1;
    dev->memory_bytes = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : 0;
    snprintf(dev->name, sizeof dev->name, "%s (%d threads)", model, dev->compute_units);
    return 1;
}

static int cpu_create(const struct dfew_train_config *cfg, struct dfew_train_model **out, char *err, size_t err_len)
{
    *out = NULL;
    if (!cfg || cfg->struct_size < sizeof *cfg) {
        snprintf(err, err_len, "trainer config struct_size %u is older than this backend's %zu; rebuild the host",
                 cfg ? cfg->struct_size : 0, sizeof *cfg);
        return -EINVAL;
    }
    struct dfew_train_model *m = malloc(sizeof *m);
    if (!m) {
        snprintf(err, err_len, "out of memory creating the model");
        return -ENOMEM;
    }
    /* process-wide: one OpenMP pool does all the parallel work, OpenBLAS runs
     * single-threaded inside it (two spinning pools on the same cores cost
     * 10-30x on a loaded machine) */
    openblas_set_num_threads(1);
    if (cfg->threads > 0)
        omp_set_num_threads(cfg->threads);
    int rc = model_build(m, cfg, err, err_len);
    if (rc) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static void cpu_destroy(struct dfew_train_model *m)
{
    if (!m)
        return;
    model_free(m);
    free(m);
}

static const char *cpu_last_error(const struct dfew_train_model *m)
{
    return m ? m->err : "no model";
}

static int cpu_describe(const struct dfew_train_model *m, struct dfew_train_info *info)
{
    struct dfew_train_device dev;
    memset(info, 0, sizeof *info);
    cpu_probe(&dev);
    snprintf(info->backend, sizeof info->backend, "cpu");
    /* e.g. "...; conv3d oneDNN 2.6.3 avx2, nCdhw8c (auto: oneDNN's pick)": the
     * convolutions' part whole, the CPU's name cut to what room is left */
    char conv[32] = "reference", isa[24] = "", tail[112];
    if (m->ws.impl == CONV3D_DNNL) {
        conv3d_dnnl_version(conv, sizeof conv);
        conv3d_dnnl_isa(isa, sizeof isa);
    }
    int k = snprintf(tail, sizeof tail, "conv3d %s%s%s, %s%s%.40s%s", conv, isa[0] ? " " : "", isa,
                     conv3d_layout_name(&m->ws), m->layout_note[0] ? " (" : "", m->layout_note,
                     m->layout_note[0] ? ")" : "");
    int room = (int)sizeof info->device - 3 - (k < (int)sizeof tail ? k : (int)sizeof tail - 1);
    snprintf(info->device, sizeof info->device, "%.*s; %s", room > 0 ? room : 0, dev.name, tail);
    snprintf(info->arch, sizeof info->arch, "%s", m->cfg.arch == DFEW_ARCH_R3D18 ? "r3d18" : "c3d");
    info->num_params = m->num_params;
    info->num_tensors = m->ntensors;
    info->feature_dim = m->feat_dim;
    info->param_bytes = (int64_t)sizeof(float) * (m->num_floats + 2 * m->param_floats);
    info->activation_bytes = (int64_t)sizeof(float) * m->act_floats;
    info->workspace_bytes = (int64_t)sizeof(float) * (int64_t)m->ws.floats;
    return 0;
}

int model_check_batch(struct dfew_train_model *m, const struct dfew_train_batch *b, int need_labels)
{
    if (!b || b->n < 1 || b->n > m->cfg.max_batch) {
        snprintf(m->err, sizeof m->err, "batch of %d clips; the model was created for 1..%d (max_batch)",
                 b ? b->n : 0, m->cfg.max_batch);
        return -EINVAL;
    }
    if (!b->data || (b->input != DFEW_INPUT_U8_NTHWC && b->input != DFEW_INPUT_F32_NCTHW)) {
        snprintf(m->err, sizeof m->err, "batch has no data or an unknown input format %d", b->input);
        return -EINVAL;
    }
    if (need_labels) {
        if (!b->labels) {
            snprintf(m->err, sizeof m->err, "training batch without labels");
            return -EINVAL;
        }
        for (int i = 0; i < b->n; i++)
            if (b->labels[i] < 0 || b->labels[i] >= m->cfg.num_classes) {
                snprintf(m->err, sizeof m->err, "label %d of clip %d is outside 0..%d", b->labels[i], i,
                         m->cfg.num_classes - 1);
                return -EINVAL;
            }
    }
    return 0;
}

static int cpu_forward_backward(struct dfew_train_model *m, const struct dfew_train_batch *b,
                                struct dfew_train_losses *out, float *logits)
{
    int rc = model_check_batch(m, b, 1);
    if (!rc)
        rc = model_prepare(m, b->n);
    if (rc)
        return rc;
    model_set_input(m, b);
    model_forward(m, b->n, 1);
    struct dfew_train_losses l;
    model_loss_backward(m, b->n, b->labels, &l);
    if (out)
        *out = l;
    if (logits)
        memcpy(logits, model_act(m, m->logits), sizeof(float) * (size_t)b->n * m->cfg.num_classes);
    return 0;
}

static int cpu_sgd_update(struct dfew_train_model *m)
{
    model_sgd(m);
    return 0;
}

static int cpu_train_step(struct dfew_train_model *m, const struct dfew_train_batch *b, struct dfew_train_losses *out)
{
    int rc = cpu_forward_backward(m, b, out, NULL);
    if (!rc)
        model_sgd(m);
    return rc;
}

static int cpu_set_lr(struct dfew_train_model *m, float lr)
{
    if (!(lr >= 0)) {
        snprintf(m->err, sizeof m->err, "learning rate %g is not a non-negative number", lr);
        return -EINVAL;
    }
    m->cfg.lr = lr;
    return 0;
}

static int cpu_evaluate(struct dfew_train_model *m, const struct dfew_train_batch *b, float *probs, float *logits)
{
    int rc = model_check_batch(m, b, 0);
    if (!rc)
        rc = model_prepare(m, b->n);
    if (rc)
        return rc;
    model_set_input(m, b);
    model_forward(m, b->n, 0);
    const int K = m->cfg.num_classes;
    float *pr = model_act(m, m->probs);
    softmax_crossentropy_forward(pr, model_act(m, m->logits), NULL, b->n, K, NULL);
    if (probs)
        memcpy(probs, pr, sizeof(float) * (size_t)b->n * K);
    if (logits)
        memcpy(logits, model_act(m, m->logits), sizeof(float) * (size_t)b->n * K);
    return 0;
}

/* ------------------------------------------------------------ tensors */

static int cpu_tensor_info(const struct dfew_train_model *m, int64_t i, struct dfew_train_tensor_info *ti)
{
    if (i < 0 || i >= m->ntensors)
        return -ERANGE;
    *ti = m->tensors[i].info;
    return 0;
}

static float *tensor_part(const struct dfew_train_model *m, int64_t i, int part)
{
    if (i < 0 || i >= m->ntensors)
        return NULL;
    const struct tensor *t = &m->tensors[i];
    if (part == DFEW_PART_VALUE)
        return m->params + t->off;
    if (t->info.kind != DFEW_TENSOR_PARAM)
        return NULL;
    if (part == DFEW_PART_GRAD)
        return m->grads + t->off;
    if (part == DFEW_PART_MOMENTUM)
        return m->mom + t->off;
    return NULL;
}

static int cpu_tensor_read(const struct dfew_train_model *m, int64_t i, int part, float *dst)
{
    float *p = tensor_part(m, i, part);
    if (!p)
        return -ERANGE;
    memcpy(dst, p, sizeof(float) * (size_t)m->tensors[i].info.numel);
    return 0;
}

static int cpu_tensor_write(struct dfew_train_model *m, int64_t i, int part, const float *src)
{
    float *p = tensor_part(m, i, part);
    if (!p)
        return -ERANGE;
    memcpy(p, src, sizeof(float) * (size_t)m->tensors[i].info.numel);
    return 0;
}

/* ------------------------------------------------------------ checkpoints
 *
 * File layout (little endian, as written by x86-64 / aarch64):
 *   char  magic[8] = "DFEWCKPT"; uint32 version = 1; uint32 backend-neutral flags = 0
 *   int32 arch, num_classes, in_t, in_h, in_w, loss; float width   (must match the model)
 *   struct dfew_train_progress (64 bytes)
 *   uint64 rng; int64 sgd_steps; int64 ntensors
 *   per tensor: char name[64]; int64 numel; float value[numel];
 *               PARAM only: float momentum[numel]
 *   uint64 FNV-1a of everything before it (detects truncation and bit rot)
 * Tensors are matched by name and size, so a checkpoint is backend-neutral
 * (the CUDA backend reads and writes the same files). */

#define CKPT_MAGIC "DFEWCKPT"
#define CKPT_VERSION 1u

struct ckio {
    FILE *f;
    uint64_t h;
    int bad;
};

static void ck_put(struct ckio *io, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        io->h = (io->h ^ c[i]) * 0x100000001b3ull;
    if (fwrite(p, 1, n, io->f) != n)
        io->bad = 1;
}

static void ck_get(struct ckio *io, void *p, size_t n)
{
    if (io->bad || fread(p, 1, n, io->f) != n) {
        io->bad = 1;
        memset(p, 0, n);
        return;
    }
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        io->h = (io->h ^ c[i]) * 0x100000001b3ull;
}

struct ckhead {
    char magic[8];
    uint32_t version, flags;
    int32_t arch, num_classes, in_t, in_h, in_w, loss;
    float width;
};

static struct ckhead ck_head_of(const struct dfew_train_model *m)
{
    struct ckhead h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, CKPT_MAGIC, 8);
    h.version = CKPT_VERSION;
    h.arch = m->cfg.arch;
    h.num_classes = m->cfg.num_classes;
    h.in_t = m->cfg.in_t, h.in_h = m->cfg.in_h, h.in_w = m->cfg.in_w;
    h.loss = m->cfg.loss;
    h.width = m->cfg.width;
    return h;
}

static int cpu_save(struct dfew_train_model *m, const char *path, const struct dfew_train_progress *p)
{
    /* a new, unpredictable temporary beside path (O_EXCL | O_NOFOLLOW: a
     * file or symbolic link planted there is never opened), then renamed */
    char *tmp = NULL;
    int fd = open_temp_beside(path, 0644, &tmp);
    if (fd < 0) {
        snprintf(m->err, sizeof m->err, "cannot write checkpoint %.160s: %s; check the directory exists and is writable",
                 path, strerror(-fd));
        return fd;
    }
    struct ckio io = {.f = fdopen(fd, "wb"), .h = 0xcbf29ce484222325ull};
    if (!io.f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        snprintf(m->err, sizeof m->err, "cannot write checkpoint %.160s: %s", path, strerror(e));
        return -e;
    }
    struct ckhead h = ck_head_of(m);
    struct dfew_train_progress pr;
    memset(&pr, 0, sizeof pr);
    if (p)
        pr = *p;
    int64_t nt = m->ntensors;
    ck_put(&io, &h, sizeof h);
    ck_put(&io, &pr, sizeof pr);
    ck_put(&io, &m->rng, sizeof m->rng);
    ck_put(&io, &m->sgd_steps, sizeof m->sgd_steps);
    ck_put(&io, &nt, sizeof nt);
    for (int i = 0; i < m->ntensors; i++) {
        const struct tensor *t = &m->tensors[i];
        char name[DFEW_TRAIN_NAME_MAX];
        memset(name, 0, sizeof name);
        snprintf(name, sizeof name, "%s", t->info.name);
        ck_put(&io, name, sizeof name);
        ck_put(&io, &t->info.numel, sizeof t->info.numel);
        ck_put(&io, m->params + t->off, sizeof(float) * (size_t)t->info.numel);
        if (t->info.kind == DFEW_TENSOR_PARAM)
            ck_put(&io, m->mom + t->off, sizeof(float) * (size_t)t->info.numel);
    }
    uint64_t sum = io.h;
    ck_put(&io, &sum, sizeof sum);
    int bad = io.bad || fflush(io.f) != 0 || fsync(fileno(io.f)) != 0;
    int e = errno;
    if (fclose(io.f) != 0)
        bad = 1;
    if (bad || rename(tmp, path) != 0) {
        e = errno ? errno : EIO;
        unlink(tmp);
        free(tmp);
        snprintf(m->err, sizeof m->err, "writing checkpoint %.160s failed: %s; check free disk space", path, strerror(e));
        return -e;
    }
    free(tmp);
    return 0;
}

static int cpu_load(struct dfew_train_model *m, const char *path, struct dfew_train_progress *p)
{
    struct ckio io = {.f = fopen(path, "rb"), .h = 0xcbf29ce484222325ull};
    if (!io.f) {
        int e = errno;
        snprintf(m->err, sizeof m->err, "cannot open checkpoint %s: %s", path, strerror(e));
        return -e;
    }
    int rc = -EINVAL;
    struct ckhead h, want = ck_head_of(m);
    struct dfew_train_progress pr;
    uint64_t rng;
    int64_t steps, nt;
    ck_get(&io, &h, sizeof h);
    if (io.bad || memcmp(h.magic, CKPT_MAGIC, 8)) {
        snprintf(m->err, sizeof m->err, "%s is not a dfew checkpoint (bad magic)", path);
        goto out;
    }
    if (h.version != CKPT_VERSION) {
        snprintf(m->err, sizeof m->err, "checkpoint %s has version %u, this backend reads version %u", path,
                 h.version, CKPT_VERSION);
        goto out;
    }
    if (memcmp(&h, &want, sizeof h)) {
        snprintf(m->err, sizeof m->err,
                 "checkpoint %s was written for another model (arch %d, %d classes, %dx%dx%d input, loss %d, width "
                 "%g); create the model with the same settings or start a new run",
                 path, h.arch, h.num_classes, h.in_t, h.in_h, h.in_w, h.loss, h.width);
        goto out;
    }
    ck_get(&io, &pr, sizeof pr);
    ck_get(&io, &rng, sizeof rng);
    ck_get(&io, &steps, sizeof steps);
    ck_get(&io, &nt, sizeof nt);
    if (io.bad || nt != m->ntensors) {
        snprintf(m->err, sizeof m->err, "checkpoint %s is truncated or holds %lld tensors, the model %d", path,
                 (long long)nt, m->ntensors);
        goto out;
    }
    /* read into fresh buffers; the model changes only when the whole file checks out */
    float *np = malloc(sizeof(float) * (size_t)m->num_floats), *nm = malloc(sizeof(float) * (size_t)m->param_floats);
    if (!np || !nm) {
        free(np);
        free(nm);
        rc = -ENOMEM;
        snprintf(m->err, sizeof m->err, "out of memory loading checkpoint %s", path);
        goto out;
    }
    memcpy(np, m->params, sizeof(float) * (size_t)m->num_floats);
    memcpy(nm, m->mom, sizeof(float) * (size_t)m->param_floats);
    for (int i = 0; i < m->ntensors && !io.bad; i++) {
        const struct tensor *t = &m->tensors[i];
        char name[DFEW_TRAIN_NAME_MAX];
        int64_t numel;
        ck_get(&io, name, sizeof name);
        ck_get(&io, &numel, sizeof numel);
        name[sizeof name - 1] = 0;
        if (io.bad || strcmp(name, t->info.name) || numel != t->info.numel) {
            snprintf(m->err, sizeof m->err, "checkpoint %s: tensor %d is %s (%lld), the model expects %s (%lld)",
                     path, i, io.bad ? "(truncated)" : name, (long long)numel, t->info.name,
                     (long long)t->info.numel);
            io.bad = 2;
            break;
        }
        ck_get(&io, np + t->off, sizeof(float) * (size_t)numel);
        if (t->info.kind == DFEW_TENSOR_PARAM)
            ck_get(&io, nm + t->off, sizeof(float) * (size_t)numel);
    }
    uint64_t want_sum = io.h, sum = 0;
    if (!io.bad)
        ck_get(&io, &sum, sizeof sum);
    if (io.bad || sum != want_sum) {
        if (io.bad != 2)
            snprintf(m->err, sizeof m->err, "checkpoint %s is truncated or corrupt (checksum mismatch); resume from an "
                     "earlier checkpoint or restart the run", path);
        free(np);
        free(nm);
        goto out;
    }
    memcpy(m->params, np, sizeof(float) * (size_t)m->num_floats);
    memcpy(m->mom, nm, sizeof(float) * (size_t)m->param_floats);
    free(np);
    free(nm);
    m->rng = rng;
    m->sgd_steps = steps;
    m->cfg.lr = pr.lr > 0 ? pr.lr : m->cfg.lr;
    if (p)
        *p = pr;
    rc = 0;
out:
    fclose(io.f);
    return rc;
}

static const struct dfew_train_backend cpu_backend = {
    .api_version = DFEW_TRAIN_API_VERSION,
    .struct_size = sizeof(struct dfew_train_backend),
    .name = "cpu",
    .device_probe = cpu_probe,
    .model_create = cpu_create,
    .destroy = cpu_destroy,
    .describe = cpu_describe,
    .last_error = cpu_last_error,
    .train_step = cpu_train_step,
    .forward_backward = cpu_forward_backward,
    .sgd_update = cpu_sgd_update,
    .set_lr = cpu_set_lr,
    .evaluate = cpu_evaluate,
    .save = cpu_save,
    .load = cpu_load,
    .tensor_info = cpu_tensor_info,
    .tensor_read = cpu_tensor_read,
    .tensor_write = cpu_tensor_write,
};

const struct dfew_train_backend *dfew_train_cpu_backend(void)
{
    return &cpu_backend;
}
