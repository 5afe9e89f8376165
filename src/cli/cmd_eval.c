/* gpt2c eval --model DIR --data GLOB | --hellaswag FILE: the mean loss of a model on token
 * shards, and its HellaSwag accuracy. */
#include <jansson.h>

#include "cli/cli.h"

static const char *usage =
    "usage: gpt2c eval --model DIR (--data GLOB | --hellaswag FILE) [options]\n\n"
    "The mean cross-entropy loss of a Hugging Face GPT-2 directory over K batches of B x T\n"
    "tokens from the start of the shards; with --hellaswag, its HellaSwag accuracy scored as\n"
    "build-nanogpt does (acc: the ending with the smallest summed loss; acc_norm: the smallest\n"
    "mean loss per ending token). data/hellaswag/hellaswag_val_full.txt.bz2 is the validation\n"
    "set in llama.cpp's preprocessed text, so its figures are not build-nanogpt's on the raw\n"
    "jsonl (which it reads too).\n\n";

int cmd_eval(int argc, char **argv) {
    gpt2c_eval_opts o;
    gpt2c_eval_opts_default(&o);
    int json = 0, profile = 0, limit = 0;
    const char *hellaswag = NULL;
    const cli_opt specs[] = {
        {"model", OPT_STR, &o.model_dir, 0, 0, "DIR", "the model: a Hugging Face GPT-2 directory", NULL},
        {"data", OPT_STR, &o.data, 0, 0, "GLOB", "token shards, e.g. 'out/tinyshakespeare/val_*.bin'", NULL},
        {"batch-size", OPT_INT, &o.batch_size, 1, 1 << 20, "B", "sequences per batch", NULL},
        {"seq-len", OPT_INT, &o.seq_len, 1, 1 << 20, "T", "tokens per sequence", NULL},
        {"steps", OPT_INT, &o.steps, 1, 1 << 20, "K", "batches", NULL},
        {"hellaswag", OPT_STR, &hellaswag, 0, 0, "FILE", "HellaSwag examples: hellaswag_val.jsonl or llama.cpp's\n"
         "6-line text, plain or .bz2", "none"},
        {"limit", OPT_INT, &limit, 1, 1 << 30, "N", "the first N HellaSwag examples", "all"},
        {"threads", OPT_INT, &o.threads, 1, 1024, "N", "CPU threads", "the number of CPUs"},
        {"device", OPT_STR, &o.device, 0, 0, "D", "cpu, cuda or auto (CUDA if there is a GPU)", "cpu"},
        {"precision", OPT_STR, &o.precision, 0, 0, "P", "fp32 or bf16: the matmuls take bf16 inputs and accumulate\n"
         "in fp32", "fp32 on the CPU, bf16 on a GPU"},
        {"profile", OPT_FLAG, &profile, 0, 0, NULL, "also print where the time went per batch (with --json, as the\n"
         "object's \"profile\")", NULL},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print {\"loss\": ...} as JSON", NULL},
    };
    int done = cli_parse_opts("eval", usage, specs, sizeof specs / sizeof *specs, argc, argv);
    if (done >= 0) return done;
    if (!o.model_dir || (!o.data && !hellaswag))
        return cli_usage_error("eval", "--model and --data or --hellaswag are required");
    if (limit && !hellaswag) return cli_usage_error("eval", "--limit counts HellaSwag examples: give --hellaswag");
    if (profile && o.data && hellaswag)
        return cli_usage_error("eval", "--profile times one of --data and --hellaswag at a time");
    gpt2c_error err = {{0}};
    double loss = 0;
    gpt2c_profile prof;
    gpt2c_hellaswag_result hs = {0};
    if (profile) o.profile = &prof;
    if (o.data && gpt2c_eval(&o, &loss, &err) != 0) return cli_error("%s", err.msg);
    if (hellaswag && gpt2c_hellaswag(&o, hellaswag, limit, &hs, &err) != 0) return cli_error("%s", err.msg);
    if (json) {
        json_t *root = json_object();
        if (o.data) json_object_set_new(root, "loss", json_real(loss));
        if (hellaswag) {
            json_t *pred = json_array(), *pred_norm = json_array(), *label = json_array();
            for (int i = 0; i < hs.n; i++) {
                json_array_append_new(label, json_integer(hs.label[i]));
                json_array_append_new(pred, json_integer(hs.pred[i]));
                json_array_append_new(pred_norm, json_integer(hs.pred_norm[i]));
            }
            json_object_set_new(root, "hellaswag",
                                json_pack("{s:i, s:f, s:f, s:i, s:i, s:o, s:o, s:o}", "n", hs.n,
                                          "acc", (double)hs.correct / hs.n, "acc_norm",
                                          (double)hs.correct_norm / hs.n, "correct", hs.correct,
                                          "correct_norm", hs.correct_norm, "label", label, "pred",
                                          pred, "pred_norm", pred_norm));
        }
        if (profile) json_object_set_new(root, "profile", cli_profile_json(&prof));
        gpt2c_hellaswag_result_free(&hs);
        return cli_print_json(root);
    }
    if (o.data)
        printf("loss %.6f over %d batches of %d x %d tokens\n", loss, o.steps, o.batch_size, o.seq_len);
    if (hellaswag)
        printf("hellaswag: %d examples, acc %.4f (%d right), acc_norm %.4f (%d right)\n", hs.n,
               (double)hs.correct / hs.n, hs.correct, (double)hs.correct_norm / hs.n, hs.correct_norm);
    if (profile) cli_print_profile(stdout, &prof, o.data ? "batch" : "forward");
    gpt2c_hellaswag_result_free(&hs);
    return 0;
}
