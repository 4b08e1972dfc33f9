/* host.h: the trainer host's side of the plugin ABI: load a backend module
 * with dlopen, check its api_version and table size, and choose a backend
 * from a directory (CUDA when its device_probe finds a device, else CPU).
 * Not the train job itself (that drives epochs and folds over these). */
#ifndef DFEW_TRAIN_HOST_H
#define DFEW_TRAIN_HOST_H

#include <stddef.h>

#include "dfew_train.h"

struct train_backend_handle {
    void *dl;                         /* dlopen handle; NULL for a linked-in table */
    const struct dfew_train_backend *be;
    char path[512];
};

/* Checks a function table against this host's ABI: non-NULL, the same
 * api_version, a struct_size at least the host's, every function present.
 * Returns 0 or -EPROTO / -EINVAL with a message that says what to rebuild. */
int train_backend_check(const struct dfew_train_backend *be, const char *where, char *err, size_t err_len);

/* dlopens path, resolves dfew_train_backend_entry, checks the table.
 * Returns 0, or negative with the reason in err (nothing stays loaded). */
int train_backend_open(const char *path, struct train_backend_handle *h, char *err, size_t err_len);
void train_backend_close(struct train_backend_handle *h);

/* Picks a backend in dir: dfew-train-cuda.so when it loads and its
 * device_probe reports a device, else dfew-train-cpu.so. *dev receives the
 * chosen device, *note (may be NULL) why CUDA was not used. */
int train_backend_choose(const char *dir, struct train_backend_handle *h, struct dfew_train_device *dev,
                         char *note, size_t note_len, char *err, size_t err_len);

/* OpenBLAS (Debian builds it with DYNAMIC_ARCH) picks its kernels from the
 * CPU model when it is loaded; on a CPU model it does not know, as virtual
 * machines report ("Intel Xeon Processor"), it falls back to Prescott (SSE3)
 * kernels, 3-4x slower than its AVX-512 ones. This sets OPENBLAS_CORETYPE to
 * SkylakeX (AVX-512) or Haswell (AVX2 + FMA) from what the CPU supports,
 * unless the variable is already set. It only helps before libopenblas is
 * loaded: train_backend_open calls it before dlopen; programs linked with
 * OpenBLAS re-execute themselves (bench_train_cpu). Returns the value set,
 * or NULL when nothing was changed. */
const char *train_openblas_coretype_env(void);

/* The paper's defaults: r3d18, 7 classes, width 1, 16 x 112 x 112, batch 24,
 * CE + 10 * EC-STFL, SGD lr 0.001 momentum 0.9 weight decay 5e-4 (PyTorch
 * usage for the r3d18 experiments), C3D dropout 0.5, Kinetics normalisation
 * of torchvision's video models, all cores. */
void dfew_train_config_defaults(struct dfew_train_config *cfg);

#endif
