/* plateau.c: reduce-on-plateau learning-rate schedule (see plateau.h). */
#include "plateau.h"

float plateau_step(const struct plateau_cfg *c, float *best, int *bad_epochs, float loss, float lr)
{
    if (loss < *best * (1.f - c->threshold)) {
        *best = loss;
        *bad_epochs = 0;
        return lr;
    }
    if (++*bad_epochs > c->patience) {
        *bad_epochs = 0;
        float n = lr * c->factor;
        return n > c->min_lr ? n : c->min_lr;
    }
    return lr;
}
