/* entry.cu: the one exported symbol of the CUDA backend module
 * (dfew-train-cuda.so); everything else in the module is hidden. */
#include "backend.h"

extern "C" __attribute__((visibility("default"))) const struct dfew_train_backend *dfew_train_backend_entry(void)
{
    return dfew_train_cuda_backend();
}
