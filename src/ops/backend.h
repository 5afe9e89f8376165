/* The backend a device name means (see backend.c); NULL with the reason in err. */
#ifndef GPT2C_BACKEND_H
#define GPT2C_BACKEND_H

#include "gpt2c.h"
#include "ops/ops.h"

const gpt2_ops *gpt2_backend(const char *device, gpt2c_error *err);

#endif
