/* gpt2c eval --model DIR --data GLOB: the mean loss of a model on token shards. */
#include <getopt.h>
#include <jansson.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *help =
    "usage: gpt2c eval --model DIR --data GLOB [--batch-size B] [--seq-len T] [--steps K]\n"
    "                  [--threads N] [--device cpu|cuda|auto] [--profile] [--json]\n\n"
    "The mean cross-entropy loss of a Hugging Face GPT-2 directory over K batches of B x T\n"
    "tokens from the start of the shards (defaults: B 4, T 1024, K 20). --profile also prints\n"
    "where the time went per batch (with --json, as the object's \"profile\").\n";

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"data", required_argument, 0, 'd'},
        {"batch-size", required_argument, 0, 'b'}, {"seq-len", required_argument, 0, 't'},
        {"steps", required_argument, 0, 's'},     {"threads", required_argument, 0, 'n'},
        {"json", no_argument, 0, 'j'},            {"help", no_argument, 0, 'h'},
        {"device", required_argument, 0, 'D'},    {"profile", no_argument, 0, 'p'},
        {0, 0, 0, 0}};
    const char *model = NULL, *data = NULL, *device = NULL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t B = 4, T = 1024, steps = 20, threads = ncpu > 0 ? (uint64_t)ncpu : 1;
    int json = 0, profile = 0, c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        uint64_t *dst = c == 'b' ? &B : c == 't' ? &T : c == 's' ? &steps : c == 'n' ? &threads : NULL;
        if (dst) {
            if (cli_parse_u64(optarg, 1, c == 'n' ? 1024 : 1 << 20, dst) != 0)
                return cli_usage_error("eval", "invalid value '%s'", optarg);
        } else if (c == 'm') model = optarg;
        else if (c == 'd') data = optarg;
        else if (c == 'j') json = 1;
        else if (c == 'p') profile = 1;
        else if (c == 'D') device = optarg;
        else if (c == 'h') {
            fputs(help, stdout);
            return 0;
        } else return cli_bad_option("eval", argv);
    }
    if (optind < argc) return cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (!model || !data) return cli_usage_error("eval", "--model and --data are required");
    gpt2c_error err = {{0}};
    double loss;
    gpt2c_profile prof;
    if (gpt2c_eval(model, data, (int)B, (int)T, (int)steps, (int)threads, device, &loss,
                   profile ? &prof : NULL, &err) != 0)
        return cli_error("%s", err.msg);
    if (json) {
        json_t *root = json_pack("{s:f}", "loss", loss);
        if (root && profile) json_object_set_new(root, "profile", cli_profile_json(&prof));
        return cli_print_json(root);
    }
    printf("loss %.6f over %d batches of %d x %d tokens\n", loss, (int)steps, (int)B, (int)T);
    if (profile) cli_print_profile(stdout, &prof, "batch");
    return 0;
}
