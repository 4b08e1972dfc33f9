/* plateau.h: the paper's learning-rate schedule as a pure function: divide
 * the rate by 10 when the training loss stops improving, with the semantics of
 * PyTorch's ReduceLROnPlateau(mode='min', threshold_mode='rel', cooldown=0).
 * The state lives in struct dfew_train_progress (best_loss, bad_epochs) so it
 * survives a checkpoint. */
#ifndef DFEW_TRAIN_PLATEAU_H
#define DFEW_TRAIN_PLATEAU_H

struct plateau_cfg {
    int patience;    /* epochs without improvement tolerated (PyTorch default 10) */
    float threshold; /* relative improvement that counts (1e-4) */
    float factor;    /* multiplier when the loss plateaus (0.1: lr / 10) */
    float min_lr;    /* never below this */
};

/* Call once per epoch with the epoch's mean training loss. best starts at
 * +INFINITY and bad_epochs at 0. An epoch improves when
 * loss < best * (1 - threshold); otherwise bad_epochs grows, and when it
 * exceeds patience the rate drops to max(lr * factor, min_lr) and bad_epochs
 * restarts at 0. Returns the learning rate for the next epoch. */
float plateau_step(const struct plateau_cfg *c, float *best, int *bad_epochs, float loss, float lr);

#endif
