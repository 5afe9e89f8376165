/* libFuzzer target: the resume state (OUT/state/train_state.safetensors) on any bytes: its
 * metadata read and checked, then, for a model small enough, its tensors loaded into one, as
 * `train --resume` does: refused with a one-line message, or loaded. */
#include "fuzz/scratch.h"
#include "ops/backend.h"
#include "train/checkpoint.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len) {
    static gpt2_backend be;
    static int opened;
    gpt2c_error err;
    if (!opened && gpt2_backend_open(&be, "cpu", 1, &err) != 0) abort();
    opened = 1;
    fuzz_file("run/state/train_state.safetensors", data, len);
    char out[128];
    snprintf(out, sizeof out, "%s/run", fuzz_dir());
    train_state st;
    if (ckpt_read_meta(out, &st, &err) != 0) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort();
        return 0;
    }
    if ((long long)st.cfg.n_layer * st.cfg.n_embd * st.cfg.n_embd > (1 << 20)) return 0; /* too big to make */
    gpt2_model m;
    adamw_state s;
    if (gpt2_create(&m, &st.cfg, &be, &err) != 0) return 0;
    if (adamw_state_alloc(&s, &be, m.table.total, &err) == 0) {
        if (ckpt_load(out, &m, &s, &err) != 0 && (!err.msg[0] || strchr(err.msg, '\n'))) abort();
        adamw_state_free(&s);
    }
    gpt2_free(&m);
    return 0;
}
