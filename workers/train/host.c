/* host.c: loads trainer backends (see host.h). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host.h"

int train_backend_check(const struct dfew_train_backend *be, const char *where, char *err, size_t err_len)
{
    if (!be) {
        snprintf(err, err_len, "%s: the entry function returned no backend table", where);
        return -EINVAL;
    }
    if (be->api_version != DFEW_TRAIN_API_VERSION) {
        snprintf(err, err_len,
                 "%s: backend API version %u, this dfew-worker speaks version %u; rebuild the backend from the same "
                 "dfew source as dfew-worker",
                 where, be->api_version, DFEW_TRAIN_API_VERSION);
        return -EPROTO;
    }
    if (be->struct_size < sizeof *be) {
        snprintf(err, err_len, "%s: backend table of %u bytes, expected at least %zu; rebuild the backend", where,
                 be->struct_size, sizeof *be);
        return -EPROTO;
    }
    if (!be->name || !be->device_probe || !be->model_create || !be->destroy || !be->describe || !be->last_error ||
        !be->train_step || !be->forward_backward || !be->sgd_update || !be->set_lr || !be->evaluate || !be->save ||
        !be->load || !be->tensor_info || !be->tensor_read || !be->tensor_write) {
        snprintf(err, err_len, "%s: backend table has missing functions; rebuild the backend", where);
        return -EINVAL;
    }
    return 0;
}

const char *train_openblas_coretype_env(void)
{
    const char *core = NULL;
    if (getenv("OPENBLAS_CORETYPE"))
        return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        core = "SkylakeX";
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        core = "Haswell";
    if (core)
        setenv("OPENBLAS_CORETYPE", core, 0);
    return core;
}

int train_backend_open(const char *path, struct train_backend_handle *h, char *err, size_t err_len)
{
    memset(h, 0, sizeof h[0]);
    train_openblas_coretype_env();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        snprintf(err, err_len, "cannot load trainer backend %s: %s", path, dlerror());
        return -ENOENT;
    }
    dfew_train_entry_fn entry;
    *(void **)&entry = dlsym(dl, DFEW_TRAIN_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, err_len, "%s is not a dfew trainer backend (no symbol %s)", path, DFEW_TRAIN_ENTRY_SYMBOL);
        dlclose(dl);
        return -EINVAL;
    }
    int rc = train_backend_check(entry(), path, err, err_len);
    if (rc) {
        dlclose(dl);
        return rc;
    }
    h->dl = dl;
    h->be = entry();
    snprintf(h->path, sizeof h->path, "%s", path);
    return 0;
}

void train_backend_close(struct train_backend_handle *h)
{
    if (h->dl)
        dlclose(h->dl);
    memset(h, 0, sizeof h[0]);
}

int train_backend_choose(const char *dir, struct train_backend_handle *h, struct dfew_train_device *dev,
                         char *note, size_t note_len, char *err, size_t err_len)
{
    char path[512], why[512] = "";
    snprintf(path, sizeof path, "%s/dfew-train-cuda.so", dir);
    if (train_backend_open(path, h, why, sizeof why) == 0) {
        memset(dev, 0, sizeof *dev);
        int p = h->be->device_probe(dev);
        if (p == 1)
            return 0;
        /* a backend without a device may say why in dev->name */
        snprintf(why, sizeof why, "%.280s: no CUDA device found%s%.200s", path, dev->name[0] ? ": " : "", dev->name);
        train_backend_close(h);
    }
    if (note)
        snprintf(note, note_len, "%s", why);
    snprintf(path, sizeof path, "%s/dfew-train-cpu.so", dir);
    int rc = train_backend_open(path, h, err, err_len);
    if (rc)
        return rc;
    if (h->be->device_probe(dev) != 1) {
        snprintf(err, err_len, "%s: the CPU backend reports no usable device", path);
        train_backend_close(h);
        return -ENODEV;
    }
    return 0;
}

void dfew_train_config_defaults(struct dfew_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->struct_size = sizeof *cfg;
    cfg->arch = DFEW_ARCH_R3D18;
    cfg->num_classes = 7;
    cfg->width = 1.f;
    cfg->in_t = 16, cfg->in_h = 112, cfg->in_w = 112;
    cfg->max_batch = 24;
    cfg->loss = DFEW_LOSS_ECSTFL;
    cfg->lambda = 10.f;
    cfg->center_alpha = 0.5f;
    cfg->seed = 1;
    cfg->lr = 1e-3f, cfg->momentum = 0.9f, cfg->weight_decay = 5e-4f;
    cfg->dropout = 0.5f;
    const float mean[3] = {0.43216f, 0.394666f, 0.37645f}, sd[3] = {0.22803f, 0.22145f, 0.216989f};
    memcpy(cfg->mean, mean, sizeof mean);
    memcpy(cfg->std, sd, sizeof sd);
    cfg->threads = 0;
}
