/* gpt2c eval --model DIR --data GLOB: the mean loss of a model on token shards. */
#include <getopt.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *help =
    "usage: gpt2c eval --model DIR --data GLOB [--batch-size B] [--seq-len T] [--steps K]\n"
    "                  [--threads N] [--device cpu|cuda|auto] [--json]\n\n"
    "The mean cross-entropy loss of a Hugging Face GPT-2 directory over K batches of B x T\n"
    "tokens from the start of the shards (defaults: B 4, T 1024, K 20).\n";

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},     {"data", required_argument, 0, 'd'},
        {"batch-size", required_argument, 0, 'b'}, {"seq-len", required_argument, 0, 't'},
        {"steps", required_argument, 0, 's'},     {"threads", required_argument, 0, 'n'},
        {"json", no_argument, 0, 'j'},            {"help", no_argument, 0, 'h'},
        {"device", required_argument, 0, 'D'},    {0, 0, 0, 0}};
    const char *model = NULL, *data = NULL, *device = NULL;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t B = 4, T = 1024, steps = 20, threads = ncpu > 0 ? (uint64_t)ncpu : 1;
    int json = 0, c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        uint64_t *dst = c == 'b' ? &B : c == 't' ? &T : c == 's' ? &steps : c == 'n' ? &threads : NULL;
        if (dst) {
            if (cli_parse_u64(optarg, 1, c == 'n' ? 1024 : 1 << 20, dst) != 0)
                return cli_usage_error("eval", "invalid value '%s'", optarg);
        } else if (c == 'm') model = optarg;
        else if (c == 'd') data = optarg;
        else if (c == 'j') json = 1;
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
    if (gpt2c_eval(model, data, (int)B, (int)T, (int)steps, (int)threads, device, &loss, &err) != 0)
        return cli_error("%s", err.msg);
    if (json) printf("{\"loss\": %.9g}\n", loss);
    else printf("loss %.6f over %d batches of %d x %d tokens\n", loss, (int)steps, (int)B, (int)T);
    return 0;
}
