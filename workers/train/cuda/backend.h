/* backend.h: the CUDA backend's function table for code that links it
 * statically (the GPU tests and the benchmark); plugins reach it through the
 * exported dfew_train_backend_entry of dfew-train-cuda.so instead. Plain C. */
#ifndef DFEW_TRAIN_CUDA_BACKEND_H
#define DFEW_TRAIN_CUDA_BACKEND_H

#include "../dfew_train.h"

#ifdef __cplusplus
extern "C" {
#endif

const struct dfew_train_backend *dfew_train_cuda_backend(void);

#ifdef __cplusplus
}
#endif
#endif
