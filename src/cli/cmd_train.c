/* gpt2c train: flags into gpt2c_train_opts, progress lines on stdout. */
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

static const char *help =
    "usage: gpt2c train --model MODEL --data GLOB --out-dir DIR [options]\n\n"
    "Train GPT-2 on llm.c token shards with the GPT-3 recipe (AdamW, gradient clipping, linear\n"
    "warmup and cosine decay, gradient accumulation). Writes DIR/log.jsonl, the model as a\n"
    "Hugging Face GPT-2 directory in DIR/model, and the resume state in DIR/state.\n\n"
    "model and data:\n"
    "  --model MODEL          preset d2 d4 d6 d12 d24 d36 d48 (from scratch) or a Hugging Face\n"
    "                         GPT-2 directory (fine-tuning); optional with --resume\n"
    "  --max-seq-len N        positions of a preset model (default 1024)\n"
    "  --data GLOB            train shards, e.g. 'out/tinyshakespeare/train_*.bin'\n"
    "  --val-data GLOB        validation shards (default: none)\n"
    "  --out-dir DIR          where the log, the model and the state go\n"
    "batch:\n"
    "  --batch-size B         sequences per micro-batch (default 4)\n"
    "  --seq-len T            tokens per sequence (default 1024)\n"
    "  --total-batch-size N   tokens per optimizer step over all ranks, a multiple of B*T*ranks\n"
    "                         (default B*T*ranks: one micro-batch each)\n"
    "schedule and optimizer:\n"
    "  --max-steps N          optimizer steps (default 50)\n"
    "  --warmup-steps N       linear warmup steps (default 10)\n"
    "  --lr X                 peak learning rate (default 6e-4)\n"
    "  --min-lr-ratio X       final learning rate as a fraction of the peak (default 0.1)\n"
    "  --beta1 X --beta2 X    AdamW betas (default 0.9, 0.95)\n"
    "  --eps X                AdamW epsilon (default 1e-8)\n"
    "  --weight-decay X       on 2-D tensors only (default 0.1)\n"
    "  --grad-clip X          global gradient-norm clip (default 1.0; 0: off)\n"
    "evaluation and checkpoints:\n"
    "  --val-every N          validate every N steps and at the last (default 250; 0: never)\n"
    "  --val-steps K          validation batches, over all ranks (default 20)\n"
    "  --ckpt-every N         checkpoint every N steps and at the end (default 1000; 0: end only)\n"
    "  --resume               continue the run saved in DIR/state\n"
    "  --stop-after N         stop with a checkpoint once N steps are done (default: never)\n"
    "many processes (launched by mpirun: mpirun -np N gpt2c train ...):\n"
    "  --zero 1               shard the AdamW state over the ranks (ZeRO-1; default 0)\n"
    "samples:\n"
    "  --sample-every N       print 4 continuations (32 tokens, top-k 50) every N steps and at the\n"
    "                         last (default 0: never)\n"
    "  --sample-prompt TEXT   their prompt (default \"Hello, I'm a language model,\")\n"
    "other:\n"
    "  --seed N               seed of the from-scratch init (default 1337)\n"
    "  --threads N            CPU threads (default: the number of CPUs, divided among the\n"
    "                         ranks mpirun started on this machine)\n"
    "  --precision P          fp32 or bf16: the matmuls take bf16 inputs and accumulate in fp32;\n"
    "                         weights, optimizer state and the rest stay fp32. Default: fp32 on\n"
    "                         the CPU (bf16 runs on every CPU: oneDNN's bf16 kernels with\n"
    "                         AVX512_BF16 or AMX, elsewhere the fp32 GEMM on rounded inputs), bf16\n"
    "                         on a GPU. The plan line names the route taken\n"
    "  --device D             cpu (default), cuda or auto (CUDA if there is a GPU); the CUDA\n"
    "                         backend is new and has not run on a GPU yet\n"
    "  --recompute            recompute the GELU outputs in the backward instead of keeping\n"
    "                         them (4*B*T*C floats per layer less; the same numbers)\n"
    "  --profile              at the end, print where the time went: ms per step and share of\n"
    "                         each kind of work (matmuls, attention, LM head, ...), GFLOP/s of\n"
    "                         the products\n"
    "  --json                 print that profile as one JSON object instead\n";

typedef enum { OPT_STR, OPT_INT, OPT_I64, OPT_U64, OPT_DOUBLE, OPT_FLAG } opt_kind;
typedef struct opt_spec {
    const char *name;
    opt_kind kind;
    void *dst;
    double min, max;
} opt_spec;

static int parse_value(const opt_spec *s, const char *arg) {
    if (s->kind == OPT_STR) {
        *(const char **)s->dst = arg;
        return 0;
    }
    if (s->kind == OPT_DOUBLE) {
        double d;
        if (cli_parse_double(arg, &d) != 0 || d < s->min || d > s->max) return -1;
        *(double *)s->dst = d;
        return 0;
    }
    uint64_t v;
    if (cli_parse_u64(arg, (uint64_t)s->min, (uint64_t)s->max, &v) != 0) return -1;
    if (s->kind == OPT_INT) *(int *)s->dst = (int)v;
    else if (s->kind == OPT_I64) *(long long *)s->dst = (long long)v;
    else *(unsigned long long *)s->dst = v;
    return 0;
}

static void on_plan(void *user, const gpt2c_train_plan *p) {
    (void)user;
    printf("model: %d layers, %d heads, %d wide, %d positions; %zu parameters (%s)\n", p->n_layer,
           p->n_head, p->n_embd, p->max_seq_len, p->params,
           !strcmp(p->init, "random") ? "from scratch" : !strcmp(p->init, "hf") ? "from a Hugging Face directory" : "resumed");
    printf("plan: %.1f MB allocated up front (%s); %d accumulation step(s) per optimizer step; %s\n",
           p->memory_mb, p->device, p->accum_steps, p->precision_path);
    if (p->ranks > 1)
        printf("data parallel: %d ranks, each %d micro-batch(es) per step%s\n", p->ranks,
               p->accum_steps, p->zero ? "; AdamW state sharded (ZeRO-1), memory per rank" : "");
    if (p->start_step > 0) printf("resuming at step %d\n", p->start_step);
    fflush(stdout);
}

static int digits(int n) {
    int d = 1;
    while (n >= 10) n /= 10, d++;
    return d;
}

static void on_step(void *user, const gpt2c_train_step *s) {
    (void)user;
    int w = digits(s->max_steps) > 5 ? digits(s->max_steps) : 5;
    printf("step %*d/%d | loss %.6f | lr %.4e | norm %.4f | dt %.2fms | tok/s %.0f\n", w, s->step,
           s->max_steps, s->loss, s->lr, s->norm, s->dt_ms, s->tok_s);
    fflush(stdout);
}

static void on_val(void *user, int step, double loss) {
    (void)user;
    printf("step %5d | val loss %.6f\n", step, loss);
    fflush(stdout);
}

typedef struct train_cli {
    const gpt2c_tokenizer *tok;
    const char *prompt;
} train_cli;

static void on_sample(void *user, int step, int sample, const uint32_t *ids, size_t n) {
    train_cli *t = user;
    char *text = NULL;
    size_t len;
    gpt2c_error err;
    if (gpt2c_decode(t->tok, ids, n, &text, &len, &err) != 0) return;
    printf("step %5d | sample %d: %s", step, sample + 1, t->prompt);
    fwrite(text, 1, len, stdout);
    putchar('\n');
    fflush(stdout);
    free(text);
}

static void on_checkpoint(void *user, int step, const char *dir) {
    (void)user;
    printf("checkpoint after step %d: %s\n", step, dir);
    fflush(stdout);
}

/* All CPUs, shared among the ranks an MPI launcher started on this machine. */
static int default_threads(void) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long ranks = local ? strtol(local, NULL, 10) : 1;
    long n = (ncpu > 0 ? ncpu : 1) / (ranks > 0 ? ranks : 1);
    return n > 0 ? (int)n : 1;
}

int cmd_train(int argc, char **argv) {
    gpt2c_train_opts o;
    gpt2c_train_opts_default(&o);
    o.ckpt_every = 1000;
    int threads_given = 0, profile = 0, json = 0;
    const char *sample_prompt = "Hello, I'm a language model,";
    const opt_spec specs[] = {
        {"model", OPT_STR, &o.model, 0, 0},
        {"max-seq-len", OPT_INT, &o.max_seq_len, 1, 65536},
        {"data", OPT_STR, &o.data, 0, 0},
        {"val-data", OPT_STR, &o.val_data, 0, 0},
        {"out-dir", OPT_STR, &o.out_dir, 0, 0},
        {"batch-size", OPT_INT, &o.batch_size, 1, 1 << 20},
        {"seq-len", OPT_INT, &o.seq_len, 1, 65536},
        {"total-batch-size", OPT_I64, &o.total_batch, 1, 1e15},
        {"max-steps", OPT_INT, &o.max_steps, 1, 1e9},
        {"warmup-steps", OPT_INT, &o.warmup_steps, 0, 1e9},
        {"lr", OPT_DOUBLE, &o.lr, 0, 10},
        {"min-lr-ratio", OPT_DOUBLE, &o.min_lr_ratio, 0, 1},
        {"beta1", OPT_DOUBLE, &o.beta1, 0, 0.999999},
        {"beta2", OPT_DOUBLE, &o.beta2, 0, 0.999999},
        {"eps", OPT_DOUBLE, &o.eps, 1e-30, 1},
        {"weight-decay", OPT_DOUBLE, &o.weight_decay, 0, 10},
        {"grad-clip", OPT_DOUBLE, &o.grad_clip, 0, 1e30},
        {"val-every", OPT_INT, &o.val_every, 0, 1e9},
        {"val-steps", OPT_INT, &o.val_steps, 0, 1e9},
        {"ckpt-every", OPT_INT, &o.ckpt_every, 0, 1e9},
        {"resume", OPT_FLAG, &o.resume, 0, 0},
        {"stop-after", OPT_INT, &o.stop_after, 1, 1e9},
        {"seed", OPT_U64, &o.seed, 0, 1.8e19},
        {"threads", OPT_INT, &o.threads, 1, 1024},
        {"zero", OPT_INT, &o.zero, 0, 1},
        {"precision", OPT_STR, &o.precision, 0, 0},
        {"device", OPT_STR, &o.device, 0, 0},
        {"recompute", OPT_FLAG, &o.recompute, 0, 0},
        {"profile", OPT_FLAG, &profile, 0, 0},
        {"json", OPT_FLAG, &json, 0, 0},
        {"sample-every", OPT_INT, &o.sample_every, 0, 1e9},
        {"sample-prompt", OPT_STR, &sample_prompt, 0, 0},
    };
    enum { NSPECS = sizeof specs / sizeof *specs };
    struct option opts[NSPECS + 2];
    for (int i = 0; i < NSPECS; i++)
        opts[i] = (struct option){specs[i].name, specs[i].kind == OPT_FLAG ? no_argument : required_argument, 0, 1000 + i};
    opts[NSPECS] = (struct option){"help", no_argument, 0, 'h'};
    opts[NSPECS + 1] = (struct option){0, 0, 0, 0};
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return 0;
        }
        if (c < 1000) return cli_bad_option("train", argv);
        const opt_spec *s = &specs[c - 1000];
        threads_given |= s->dst == &o.threads;
        if (s->kind == OPT_FLAG) *(int *)s->dst = 1;
        else if (parse_value(s, optarg) != 0)
            return cli_usage_error("train", "invalid value for --%s: '%s'", s->name, optarg);
    }
    if (optind < argc) return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!o.model && !o.resume) return cli_usage_error("train", "--model is required");
    if (!o.data) return cli_usage_error("train", "--data is required");
    if (!o.out_dir) return cli_usage_error("train", "--out-dir is required");
    if (json && !profile) return cli_usage_error("train", "--json prints the profile: give --profile too");
    gpt2c_error err = {{0}};
    gpt2c_comm *comm;
    if (gpt2c_comm_open(&comm, &err) != 0) return cli_error("%s", err.msg);
    o.comm = comm;
    if (!threads_given) o.threads = default_threads();
    train_cli t = {.prompt = sample_prompt};
    gpt2c_tokenizer *tok = NULL;
    gpt2c_ids ids = {0};
    int rc = 0;
    if (o.sample_every > 0) { /* the sample prompt as ids, and the tokenizer to print samples */
        rc = cli_encode_text(sample_prompt, strlen(sample_prompt), &tok, &ids, &err);
        t.tok = tok;
        o.sample_prompt = ids.data, o.sample_prompt_len = ids.len;
    }
    gpt2c_profile prof;
    if (profile) o.profile = &prof;
    gpt2c_train_callbacks cb = {.user = &t, .on_plan = on_plan, .on_step = on_step, .on_val = on_val,
                                .on_checkpoint = on_checkpoint, .on_sample = on_sample};
    if (rc == 0) rc = gpt2c_train(&o, &cb, &err);
    gpt2c_ids_free(&ids);
    gpt2c_tokenizer_free(tok);
    int rank = gpt2c_comm_rank(comm), size = gpt2c_comm_size(comm);
    if (rc != 0 && size > 1) {
        /* the other ranks may be waiting for this one in a collective: end them all */
        cli_error("rank %d of %d: %s", rank, size, err.msg);
        gpt2c_comm_abort(comm, 1);
    }
    gpt2c_comm_close(comm);
    if (rc != 0) return cli_error("%s", err.msg);
    if (rank == 0) printf("done: the model is in %s/model\n", o.out_dir);
    if (rank == 0 && profile)
        return json ? cli_print_json(json_pack("{s:o}", "profile", cli_profile_json(&prof)))
                    : (cli_print_profile(stdout, &prof, "step"), 0);
    return 0;
}
