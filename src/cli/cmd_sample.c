/* gpt2c sample --model DIR --prompt TEXT: continuations, streamed as they are generated. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "util/json_text.h"

static const char *usage =
    "usage: gpt2c sample --model DIR [--prompt TEXT | --prompt-file FILE] [options]\n\n"
    "Continue a prompt with a GPT-2 model (a Hugging Face GPT-2 directory: the released GPT-2 or\n"
    "one that `gpt2c train` wrote). Without --prompt or --prompt-file the prompt is read from\n"
    "standard input when it is not a terminal; an empty prompt starts from <|endoftext|>.\n"
    "The samples are generated together as one batch, with a KV cache. One sample streams as it\n"
    "is generated; several stream line by line, each line tagged [n]. A summary (tokens per\n"
    "second) goes to standard error.\n\n";

/* What one sample has produced: its ids, and text not yet printed (complete characters only). */
typedef struct sample_out {
    gpt2c_stream_decoder sd;
    uint32_t *ids;
    size_t nids;
    char *pending;
    size_t npending;
    int ended; /* stopped at <|endoftext|> */
} sample_out;

typedef struct printer {
    const gpt2c_tokenizer *tok;
    sample_out *out;
    int nsamples, json, stop_at_eot, failed;
} printer;

static void print_tagged(int s, const char *text, size_t n) {
    printf("[%d] ", s + 1);
    fwrite(text, 1, n, stdout);
}

/* Several samples: print each complete line of a sample with its tag. */
static void flush_lines(sample_out *o, int s, int all) {
    size_t start = 0;
    for (size_t i = 0; i < o->npending; i++)
        if (o->pending[i] == '\n') {
            print_tagged(s, o->pending + start, i + 1 - start);
            start = i + 1;
        }
    if (all && start < o->npending) {
        print_tagged(s, o->pending + start, o->npending - start);
        putchar('\n');
        start = o->npending;
    }
    memmove(o->pending, o->pending + start, o->npending - start);
    o->npending -= start;
    fflush(stdout);
}

static void emit(printer *p, int s, const char *bytes, size_t n) {
    if (p->json || n == 0) return;
    if (p->nsamples == 1) {
        fwrite(bytes, 1, n, stdout);
        fflush(stdout);
        return;
    }
    sample_out *o = &p->out[s];
    char *grown = realloc(o->pending, o->npending + n);
    if (!grown) {
        p->failed = 1;
        return;
    }
    o->pending = grown;
    memcpy(o->pending + o->npending, bytes, n);
    o->npending += n;
    flush_lines(o, s, 0);
}

static void on_token(void *user, int s, uint32_t id) {
    printer *p = user;
    sample_out *o = &p->out[s];
    uint32_t *grown = realloc(o->ids, (o->nids + 1) * sizeof *o->ids);
    if (!grown) {
        p->failed = 1;
        return;
    }
    o->ids = grown;
    o->ids[o->nids++] = id;
    if (p->stop_at_eot && id == GPT2C_EOT) { /* the end, not text */
        o->ended = 1;
        return;
    }
    char buf[GPT2C_STREAM_OUT_MAX];
    int n = gpt2c_stream_push(&o->sd, p->tok, id, buf, NULL);
    if (n > 0) emit(p, s, buf, (size_t)n);
}

static void on_note(void *user, const char *msg) {
    (void)user;
    fflush(stdout);
    fprintf(stderr, "gpt2c: note: %s\n", msg);
}

static json_t *json_ids(const uint32_t *ids, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static int print_json(const printer *p, const char *prompt, size_t prompt_len,
                      const uint32_t *prompt_ids, size_t nprompt, const gpt2c_profile *prof) {
    json_t *samples = json_array();
    for (int s = 0; s < p->nsamples; s++) {
        const sample_out *o = &p->out[s];
        size_t n = o->nids - (size_t)o->ended; /* the text leaves out the final <|endoftext|> */
        char *text;
        size_t len;
        gpt2c_error err;
        if (gpt2c_decode(p->tok, o->ids, n, &text, &len, &err) != 0) return cli_error("%s", err.msg);
        json_array_append_new(samples, json_pack("{s:o, s:o}", "text", json_text(text, len), "ids",
                                                 json_ids(o->ids, o->nids)));
        free(text);
    }
    json_t *root = json_pack("{s:o, s:o, s:o}", "prompt", json_text(prompt, prompt_len),
                             "prompt_ids", json_ids(prompt_ids, nprompt), "samples", samples);
    if (root && prof) json_object_set_new(root, "profile", cli_profile_json(prof));
    return cli_print_json(root);
}

int cmd_sample(int argc, char **argv) {
    gpt2c_sample_opts o;
    gpt2c_sample_opts_default(&o);
    const char *prompt_arg = NULL, *prompt_file = NULL;
    int json = 0, profile = 0;
    gpt2c_profile prof;
    const cli_opt specs[] = {
        {"model", OPT_STR, &o.model_dir, 0, 0, "DIR", "the model: a Hugging Face GPT-2 directory", NULL},
        {"prompt", OPT_STR, &prompt_arg, 0, 0, "TEXT", "the prompt", NULL},
        {"prompt-file", OPT_STR, &prompt_file, 0, 0, "FILE", "the prompt, from a file", NULL},
        {"num-samples", OPT_INT, &o.num_samples, 1, 1024, "N", "continuations", NULL},
        {"max-tokens", OPT_INT, &o.max_tokens, 1, 1000000, "N", "new tokens per continuation", NULL},
        {"top-k", OPT_INT, &o.top_k, 1, 1 << 30, "K", "sample among the K most likely tokens (1: greedy)", NULL},
        {"top-p", OPT_DOUBLE, &o.top_p, 1e-300, 1, "P", "... and among them the fewest whose probability reaches P", NULL},
        {"temperature", OPT_DOUBLE, &o.temperature, 0, 1e6, "T", "divide the logits by T (0: greedy)", NULL},
        {"seed", OPT_U64, &o.seed, 0, 1.8e19, "N", "the same seed, flags, model and threads give the same samples", NULL},
        {"stop-at-eot", OPT_FLAG, &o.stop_at_eot, 0, 0, NULL, "end a continuation at <|endoftext|>", NULL},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print {\"prompt\", \"prompt_ids\", \"samples\": [{\"text\", \"ids\"}]} at the end", NULL},
        {"threads", OPT_INT, &o.threads, 1, 1024, "N", "CPU threads", "the number of CPUs"},
        {"precision", OPT_STR, &o.precision, 0, 0, "P", "fp32 or bf16: the matmuls read bf16 weights (half the bytes per\n"
         "token) and bf16-rounded inputs, accumulating in fp32", "fp32 on the CPU, bf16 on a GPU"},
        {"device", OPT_STR, &o.device, 0, 0, "D", "cpu, cuda or auto (CUDA if there is a GPU); the CUDA backend is new\n"
         "and has not run on a GPU yet", "cpu"},
        {"profile", OPT_FLAG, &profile, 0, 0, NULL, "print where the time went per generated token (standard error; with\n"
         "--json, the object's \"profile\")", NULL},
    };
    int done = cli_parse_opts("sample", usage, specs, sizeof specs / sizeof *specs, argc, argv);
    if (done >= 0) return done;
    if (profile) o.profile = &prof;
    if (!o.model_dir) return cli_usage_error("sample", "--model is required");
    if (prompt_arg && prompt_file) return cli_usage_error("sample", "give --prompt or --prompt-file, not both");

    gpt2c_error err = {{0}};
    unsigned char *text = NULL;
    size_t text_len = 0;
    if (prompt_arg) {
        text_len = strlen(prompt_arg);
        text = (unsigned char *)strdup(prompt_arg);
        if (!text) return cli_error("out of memory");
    } else if (prompt_file || !isatty(STDIN_FILENO)) {
        if (cli_read_all(prompt_file, &text, &text_len, &err) != 0) return cli_error("%s", err.msg);
    }
    gpt2c_tokenizer *tok = NULL;
    gpt2c_ids ids = {0};
    int rc = cli_encode_text(text ? (const void *)text : "", text_len, &tok, &ids, &err) != 0
                 ? cli_error("%s", err.msg) : 0;
    printer p = {.tok = tok, .nsamples = o.num_samples, .json = json, .stop_at_eot = o.stop_at_eot};
    p.out = calloc((size_t)o.num_samples, sizeof *p.out);
    if (rc == 0 && !p.out) rc = cli_error("out of memory");
    if (rc == 0 && !json) /* every sample starts with the prompt */
        for (int s = 0; s < o.num_samples; s++) emit(&p, s, (const char *)text, text_len);
    gpt2c_sample_callbacks cb = {.user = &p, .on_token = on_token, .on_note = on_note};
    gpt2c_sample_stats st;
    if (rc == 0 && gpt2c_sample(&o, ids.data, ids.len, &cb, &st, &err) != 0) {
        fflush(stdout);
        rc = cli_error("%s", err.msg);
    }
    if (rc == 0 && p.failed) rc = cli_error("out of memory");
    if (rc == 0 && json) rc = print_json(&p, (const char *)text, text_len, ids.data, ids.len, o.profile);
    if (rc == 0 && !json) {
        for (int s = 0; s < o.num_samples; s++) {
            char buf[GPT2C_STREAM_OUT_MAX];
            emit(&p, s, buf, (size_t)gpt2c_stream_finish(&p.out[s].sd, buf));
            if (o.num_samples > 1) flush_lines(&p.out[s], s, 1);
        }
        if (o.num_samples == 1) putchar('\n');
        fflush(stdout);
    }
    if (rc == 0)
        fprintf(stderr, "gpt2c: %zu prompt tokens, %ld tokens generated in %.2f s (%.1f tokens/s; "
                        "prompt %.0f ms, model load %.0f ms; %s)\n", st.prompt_tokens, st.generated,
                st.generate_ms / 1e3, st.generate_ms > 0 ? st.generated / (st.generate_ms / 1e3) : 0,
                st.prompt_ms, st.load_ms, st.precision_path);
    if (rc == 0 && o.profile && !json) cli_print_profile(stderr, o.profile, "token");
    for (int s = 0; p.out && s < o.num_samples; s++) free(p.out[s].ids), free(p.out[s].pending);
    free(p.out);
    gpt2c_ids_free(&ids);
    gpt2c_tokenizer_free(tok);
    free(text);
    return rc;
}
