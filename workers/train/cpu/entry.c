/* entry.c: the one exported symbol of the CPU backend module
 * (dfew-train-cpu.so); everything else in the module is hidden. */
#include "backend.h"

__attribute__((visibility("default"))) const struct dfew_train_backend *dfew_train_backend_entry(void)
{
    return dfew_train_cpu_backend();
}
