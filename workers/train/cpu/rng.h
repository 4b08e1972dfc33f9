/* rng.h: the trainer's small deterministic random numbers (splitmix64), used
 * for weight init, dropout masks and augmentation. Not cryptographic; the same
 * seed gives the same stream on every platform. */
#ifndef DFEW_TRAIN_RNG_H
#define DFEW_TRAIN_RNG_H

#include <math.h>
#include <stdint.h>

static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 24 random bits */
static inline float rng_uniform(uint64_t *s)
{
    return (float)(rng_next(s) >> 40) * (1.0f / 16777216.0f);
}

/* uniform integer in [0, n) (n > 0; the bias of the modulo is below 2^-32 for
 * the small n used here) */
static inline uint32_t rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)((rng_next(s) >> 32) % n);
}

/* standard normal (Box-Muller, one value per call) */
static inline float rng_normal(uint64_t *s)
{
    double u1 = ((rng_next(s) >> 11) + 1.0) * (1.0 / 9007199254740993.0);
    double u2 = (rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

#endif
