/* gpt2c eval --model DIR --data GLOB: the mean loss of a model on token shards. */
#include <jansson.h>

#include "cli/cli.h"

static const char *usage =
    "usage: gpt2c eval --model DIR --data GLOB [options]\n\n"
    "The mean cross-entropy loss of a Hugging Face GPT-2 directory over K batches of B x T\n"
    "tokens from the start of the shards.\n\n";

int cmd_eval(int argc, char **argv) {
    gpt2c_eval_opts o;
    gpt2c_eval_opts_default(&o);
    int json = 0, profile = 0;
    const cli_opt specs[] = {
        {"model", OPT_STR, &o.model_dir, 0, 0, "DIR", "the model: a Hugging Face GPT-2 directory", NULL},
        {"data", OPT_STR, &o.data, 0, 0, "GLOB", "token shards, e.g. 'out/tinyshakespeare/val_*.bin'", NULL},
        {"batch-size", OPT_INT, &o.batch_size, 1, 1 << 20, "B", "sequences per batch", NULL},
        {"seq-len", OPT_INT, &o.seq_len, 1, 1 << 20, "T", "tokens per sequence", NULL},
        {"steps", OPT_INT, &o.steps, 1, 1 << 20, "K", "batches", NULL},
        {"threads", OPT_INT, &o.threads, 1, 1024, "N", "CPU threads", "the number of CPUs"},
        {"device", OPT_STR, &o.device, 0, 0, "D", "cpu, cuda or auto (CUDA if there is a GPU)", "cpu"},
        {"profile", OPT_FLAG, &profile, 0, 0, NULL, "also print where the time went per batch (with --json, as the\n"
         "object's \"profile\")", NULL},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print {\"loss\": ...} as JSON", NULL},
    };
    int done = cli_parse_opts("eval", usage, specs, sizeof specs / sizeof *specs, argc, argv);
    if (done >= 0) return done;
    if (!o.model_dir || !o.data) return cli_usage_error("eval", "--model and --data are required");
    gpt2c_error err = {{0}};
    double loss;
    gpt2c_profile prof;
    if (profile) o.profile = &prof;
    if (gpt2c_eval(&o, &loss, &err) != 0) return cli_error("%s", err.msg);
    if (json) {
        json_t *root = json_pack("{s:f}", "loss", loss);
        if (root && profile) json_object_set_new(root, "profile", cli_profile_json(&prof));
        return cli_print_json(root);
    }
    printf("loss %.6f over %d batches of %d x %d tokens\n", loss, o.steps, o.batch_size, o.seq_len);
    if (profile) cli_print_profile(stdout, &prof, "batch");
    return 0;
}
