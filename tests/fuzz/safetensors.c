/* libFuzzer target: the safetensors reader (model files, the resume state) on any bytes. It
 * either refuses the file with a message or gives tensors whose every byte lies in the file;
 * each tensor is then converted to fp32 (up to a size), which reads all of it. */
#include "fuzz/scratch.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len) {
    const char *path = fuzz_file("model.safetensors", data, len);
    st_file f;
    gpt2c_error err;
    if (st_open(&f, path, &err) != 0) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort(); /* a one-line reason */
        return 0;
    }
    for (size_t i = 0; i < f.ntensors; i++) {
        const st_tensor *t = &f.tensors[i];
        if ((const unsigned char *)t->data + t->nbytes > (const unsigned char *)f.map + f.map_len) abort();
        if (t->numel > (1u << 16)) continue;
        float *out = malloc((t->numel ? t->numel : 1) * sizeof *out);
        if (!out) abort();
        st_to_f32(t, out, &err);
        free(out);
    }
    for (size_t i = 0; i < f.nmeta; i++) (void)st_meta(&f, f.meta_keys[i]);
    st_close(&f);
    return 0;
}
