#include <string.h>

#include "model/config.h"
#include "util/error.h"

static const struct {
    const char *name;
    gpt2_config cfg;
} presets[] = {
    {"d2", {2, 2, 128, 1024}},   {"d4", {4, 4, 256, 1024}},     {"d6", {6, 6, 384, 1024}},
    {"d12", {12, 12, 768, 1024}}, {"d24", {24, 16, 1024, 1024}}, {"d36", {36, 20, 1280, 1024}},
    {"d48", {48, 25, 1600, 1024}},
};

int gpt2_config_preset(const char *name, gpt2_config *cfg, gpt2c_error *err) {
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++)
        if (strcmp(name, presets[i].name) == 0) {
            *cfg = presets[i].cfg;
            return 0;
        }
    return err_set(err, "unknown model '%s': not a preset (d2 d4 d6 d12 d24 d36 d48) "
                        "nor a directory with config.json", name);
}

int gpt2_config_check(const gpt2_config *c, gpt2c_error *err) {
    /* Bounds keep every size computation far from overflow (the largest GPT-2 is 48/25/1600). */
    if (c->n_layer < 1 || c->n_layer > 1024) return err_set(err, "n_layer %d is not in [1, 1024]", c->n_layer);
    if (c->n_embd < 1 || c->n_embd > 16384) return err_set(err, "n_embd %d is not in [1, 16384]", c->n_embd);
    if (c->n_head < 1 || c->n_embd % c->n_head != 0)
        return err_set(err, "n_head %d does not divide n_embd %d", c->n_head, c->n_embd);
    if (c->max_seq_len < 1 || c->max_seq_len > 65536)
        return err_set(err, "n_positions %d is not in [1, 65536]", c->max_seq_len);
    return 0;
}
