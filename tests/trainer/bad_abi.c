/* bad_abi.c: a trainer backend module built with the wrong api_version, for
 * the host loader's refusal test (test_train_misc). Not a real backend. */
#include "dfew_train.h"

static const struct dfew_train_backend bad = {
    .api_version = DFEW_TRAIN_API_VERSION + 1,
    .struct_size = sizeof(struct dfew_train_backend),
    .name = "bad",
};

__attribute__((visibility("default"))) const struct dfew_train_backend *dfew_train_backend_entry(void)
{
    return &bad;
}
