/* backend.h: the CPU backend's function table for code that links it
 * statically (unit tests, benchmarks); plugins reach it through the exported
 * dfew_train_backend_entry of dfew-train-cpu.so instead. */
#ifndef DFEW_TRAIN_CPU_BACKEND_H
#define DFEW_TRAIN_CPU_BACKEND_H

#include "../dfew_train.h"

const struct dfew_train_backend *dfew_train_cpu_backend(void);

#endif
