/* gpt2c serve --model DIR [--runs DIR]: the HTTP API and the pages, until SIGINT or SIGTERM. */
#include <signal.h>
#include <stdio.h>

#include "cli/cli.h"

static const char *usage =
    "usage: gpt2c serve --model DIR [--runs DIR] [options]\n"
    "       gpt2c serve --runs DIR [options]\n\n"
    "Serve a GPT-2 model (a Hugging Face GPT-2 directory) over HTTP: a page to try it at /, and\n"
    "an OpenAI-compatible API (POST /v1/completions, streaming as Server-Sent Events, with echo\n"
    "and prompt logprobs for scoring, as lm-evaluation-harness asks; GET /v1/models, /health,\n"
    "/metrics, /tokenizer_info; POST /tokenize, /detokenize). Requests share the model's slots\n"
    "by continuous batching; with a seed, a request gives what `gpt2c sample` gives.\n"
    "With --runs, /runs shows the training runs under DIR (directories with a log.jsonl) as live\n"
    "charts that grow while `gpt2c train` writes (/ too, when there is no model).\n"
    "Ctrl-C (SIGINT) or SIGTERM ends the streams in flight and stops.\n\n";

int cmd_serve(int argc, char **argv) {
    gpt2c_serve_opts o;
    gpt2c_serve_opts_default(&o);
    const cli_opt specs[] = {
        {"model", OPT_STR, &o.model_dir, 0, 0, "DIR", "the model: a Hugging Face GPT-2 directory", "none"},
        {"runs", OPT_STR, &o.runs_dir, 0, 0, "DIR", "show the training runs under DIR at /runs, live", "none"},
        {"host", OPT_STR, &o.host, 0, 0, "ADDR", "the IPv4 address to listen on (0.0.0.0: every interface)", NULL},
        {"port", OPT_INT, &o.port, 0, 65535, "N", "the port (0: any free one)", NULL},
        {"parallel", OPT_INT, &o.parallel, 1, 8, "N", "slots: sequences generated together", NULL},
        {"max-queue", OPT_INT, &o.max_queue, 0, 1 << 20, "M", "requests waiting for a slot; more get 503", NULL},
        {"api-key", OPT_STR, &o.api_key, 0, 0, "KEY", "require 'Authorization: Bearer KEY' (not for the pages and /health)", "none"},
        {"cors-origin", OPT_STR, &o.cors_origin, 0, 0, "ORIGIN", "allow this one origin by CORS headers", "none"},
        {"allowed-host", OPT_STR, &o.allowed_hosts, 0, 0, "NAMES", "answer requests for these host names too (comma-separated;\n"
         "loopback names and the address listened on always are)", "none"},
        {"device", OPT_STR, &o.device, 0, 0, "D", "cpu, cuda or auto", "cpu"},
        {"precision", OPT_STR, &o.precision, 0, 0, "P", "fp32 or bf16 (bf16 weights: half the bytes per token)", "fp32 on the CPU, bf16 on a GPU"},
        {"threads", OPT_INT, &o.threads, 1, 1024, "N", "CPU threads", "the number of CPUs"},
    };
    int done = cli_parse_opts("serve", usage, specs, sizeof specs / sizeof *specs, argc, argv);
    if (done >= 0) return done;
    if (!o.model_dir && !o.runs_dir) return cli_usage_error("serve", "--model or --runs is required");
    if (o.api_key && !*o.api_key)
        return cli_usage_error("serve", "--api-key must not be empty (leave it out for no key)");
    /* the signals are taken by sigwait below, in this thread only: every thread the server
     * starts inherits them blocked */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN); /* a client that goes away is an error on its socket, not a signal */
    gpt2c_error err = {{0}};
    gpt2c_server *s;
    if (gpt2c_server_start(&o, &s, &err) != 0) return cli_error("%s", err.msg);
    if (o.model_dir)
        printf("gpt2c serve: %s on %s (open it in a browser; OpenAI API at %sv1)\n", o.model_dir,
               gpt2c_server_url(s), gpt2c_server_url(s));
    if (o.runs_dir)
        printf("gpt2c serve: the runs under %s on %sruns\n", o.runs_dir, gpt2c_server_url(s));
    fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "gpt2c serve: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    gpt2c_server_stop(s);
    return 0;
}
