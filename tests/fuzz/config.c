/* libFuzzer target: config.json of a Hugging Face GPT-2 directory, on any bytes: refused with a
 * one-line message, or a configuration that passes gpt2c's checks. */
#include "fuzz/scratch.h"
#include "io/hf_config.h"
#include "model/config.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t len) {
    fuzz_file("model/config.json", data, len);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/model", fuzz_dir());
    gpt2_config cfg;
    gpt2c_error err;
    if (hf_config_read(dir, &cfg, &err) != 0) {
        if (!err.msg[0] || strchr(err.msg, '\n')) abort();
        return 0;
    }
    if (gpt2_config_check(&cfg, &err) != 0) abort(); /* what it accepts, the model accepts */
    return 0;
}
