/* GPT2C_TEST_FAULT, for the tests of skipped updates only: "STEP:nan" or "STEP:scale=X"
 * ("STEP+:..." from that step on) has the first micro-batch of that step on rank 0 multiply its
 * loss and its gradient by NaN or X, as a bad batch or an overflow would. `gpt2c train`
 * installs it as the training's scale_micro_batch callback when the variable is set; nothing
 * else reads it, and the training loop knows nothing of it. */
#ifndef GPT2C_CLI_TEST_FAULT_H
#define GPT2C_CLI_TEST_FAULT_H

typedef struct test_fault {
    long step;   /* the first (or only) step it hits */
    int onward;  /* "STEP+": every step from there on */
    double scale;
} test_fault;

/* 1 when GPT2C_TEST_FAULT names a fault (then in f), else 0 (unset, or not of that form). */
int test_fault_read(test_fault *f);
/* The factor for micro-batch `micro` of `step` on `rank`: f->scale where the fault hits, else 1. */
double test_fault_scale(const test_fault *f, int step, int micro, int rank);

#endif
