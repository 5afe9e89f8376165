/* gpt2c train: flags into gpt2c_train_opts, progress lines on stdout. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/test_fault.h"

static const char *usage =
    "usage: gpt2c train --model MODEL --data GLOB --out-dir DIR [options]\n\n"
    "Train GPT-2 on llm.c token shards with the GPT-3 recipe (AdamW, gradient clipping, linear\n"
    "warmup and cosine decay, gradient accumulation). Writes DIR/log.jsonl, the model as a\n"
    "Hugging Face GPT-2 directory in DIR/model, and the resume state in DIR/state.\n\n";

/* On a terminal the steps are one progress line, redrawn in place; anything else printed first
 * clears it (and it comes back at the next step). Elsewhere (a file, a pipe) a line per step. */
static int progress_tty = -1;
static int progress_shown;
static double progress_ms; /* the steps' time so far, for the ETA */
static int progress_steps;

static void clear_progress(void) {
    if (progress_shown) fputs("\r\033[K", stdout), progress_shown = 0;
}

static void on_plan(void *user, const gpt2c_train_plan *p) {
    (void)user;
    printf("model: %d layers, %d heads, %d wide, %d positions; %zu parameters (%s)\n", p->n_layer,
           p->n_head, p->n_embd, p->max_seq_len, p->params,
           !strcmp(p->init, "random") ? "from scratch" : !strcmp(p->init, "hf") ? "from a Hugging Face directory" : "resumed");
    printf("plan: %.1f MB allocated up front (%s); %d accumulation step(s) per optimizer step; %s\n",
           p->memory_mb, p->device, p->accum_steps, p->precision_path);
    printf("memory: parameters %.1f MB, bf16 copy %.1f MB, gradients %.1f MB, AdamW %.1f MB, "
           "activations %.1f MB, scratch %.1f MB", p->params_mb, p->copy_mb, p->grads_mb,
           p->adamw_mb, p->acts_mb, p->scratch_mb);
    if (p->free_mb >= 0) printf("; %.1f MB were free before", p->free_mb);
    printf("\n");
    if (p->ranks > 1)
        printf("data parallel: %d ranks over %s, each %d micro-batch(es) per step%s\n", p->ranks,
               p->comm, p->accum_steps,
               p->zero ? "; AdamW state sharded (ZeRO-1), memory per rank" : "");
    if (p->start_step > 0) printf("resuming at step %d\n", p->start_step);
    fflush(stdout);
}

static int digits(int n) {
    int d = 1;
    while (n >= 10) n /= 10, d++;
    return d;
}

static void print_progress(const gpt2c_train_step *s) {
    /* the ETA from the mean step time so far, leaving out the first (warm-up) step */
    if (++progress_steps > 1) progress_ms += s->dt_ms;
    double per = progress_steps > 1 ? progress_ms / (progress_steps - 1) : s->dt_ms;
    long eta = (long)(per * (s->max_steps - s->step - 1) / 1e3 + 0.5);
    int done = s->step + 1, width = 24, fill = (int)((long long)width * done / s->max_steps);
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '.';
    bar[width] = 0;
    char when[32];
    if (eta >= 3600) snprintf(when, sizeof when, "%ldh%02ldm", eta / 3600, eta / 60 % 60);
    else snprintf(when, sizeof when, "%ldm%02lds", eta / 60, eta % 60);
    printf("\r\033[Kstep %d/%d [%s] %3d%% | loss %.4f | %.0f tok/s | ETA %s", done, s->max_steps,
           bar, (int)(100LL * done / s->max_steps), s->loss, s->tok_s, when);
    progress_shown = 1;
    fflush(stdout);
}

/* A skipped update is said on the step's line, and stays on a terminal. */
static void print_skipped(const gpt2c_train_step *s) {
    if (!s->skipped) return;
    printf(" | update skipped: %s", s->skipped);
    if (s->z != 0) printf(" (z %.1f)", s->z);
    printf(", %ld so far", s->skips);
}

static void on_step(void *user, const gpt2c_train_step *s) {
    (void)user;
    /* (an MPI launcher hands its ranks a pseudo-terminal even when its own output is a file) */
    if (progress_tty < 0)
        progress_tty = isatty(STDOUT_FILENO) && !getenv("OMPI_COMM_WORLD_SIZE") &&
                       !getenv("PMI_RANK") && !getenv("PMIX_RANK");
    if (progress_tty) {
        if (s->skipped) {
            clear_progress();
            printf("step %d | loss %.6f | norm %.4f", s->step, s->loss, s->norm);
            print_skipped(s);
            putchar('\n');
        }
        print_progress(s);
        return;
    }
    int w = digits(s->max_steps) > 5 ? digits(s->max_steps) : 5;
    printf("step %*d/%d | loss %.6f | lr %.4e | norm %.4f | dt %.2fms | tok/s %.0f", w, s->step,
           s->max_steps, s->loss, s->lr, s->norm, s->dt_ms, s->tok_s);
    print_skipped(s);
    putchar('\n');
    fflush(stdout);
}

static void on_val(void *user, int step, double loss) {
    (void)user;
    clear_progress();
    printf("step %5d | val loss %.6f\n", step, loss);
    fflush(stdout);
}

static void on_hellaswag(void *user, int step, int n, double acc, double acc_norm) {
    (void)user;
    clear_progress();
    printf("step %5d | hellaswag acc_norm %.4f | acc %.4f | %d examples\n", step, acc_norm, acc, n);
    fflush(stdout);
}

typedef struct train_cli {
    const gpt2c_tokenizer *tok;
    const char *prompt;
    test_fault fault; /* GPT2C_TEST_FAULT, when set */
} train_cli;

static void on_sample(void *user, int step, int sample, const uint32_t *ids, size_t n) {
    train_cli *t = user;
    char *text = NULL;
    size_t len;
    gpt2c_error err;
    if (gpt2c_decode(t->tok, ids, n, &text, &len, &err) != 0) return;
    clear_progress();
    printf("step %5d | sample %d: %s", step, sample + 1, t->prompt);
    fwrite(text, 1, len, stdout);
    putchar('\n');
    fflush(stdout);
    free(text);
}

static double scale_micro_batch(void *user, int step, int micro, int rank) {
    return test_fault_scale(&((train_cli *)user)->fault, step, micro, rank);
}

static void on_checkpoint(void *user, int step, const char *dir) {
    (void)user;
    clear_progress();
    printf("checkpoint after step %d: %s\n", step, dir);
    fflush(stdout);
}

int cmd_train(int argc, char **argv) {
    gpt2c_train_opts o;
    gpt2c_train_opts_default(&o);
    int profile = 0, json = 0;
    const char *sample_prompt = "Hello, I'm a language model,";
    const cli_opt specs[] = {
        CLI_HEADING("model and data"),
        {"model", OPT_STR, &o.model, 0, 0, "MODEL", "preset d2 d4 d6 d12 d24 d36 d48 (from scratch) or a Hugging Face\n"
         "GPT-2 directory (fine-tuning); optional with --resume", ""},
        {"max-seq-len", OPT_INT, &o.max_seq_len, 1, 65536, "N", "positions of a preset model", NULL},
        {"data", OPT_STR, &o.data, 0, 0, "GLOB", "train shards, e.g. 'out/tinyshakespeare/train_*.bin'", NULL},
        {"val-data", OPT_STR, &o.val_data, 0, 0, "GLOB", "validation shards", "none"},
        {"out-dir", OPT_STR, &o.out_dir, 0, 0, "DIR", "where the log, the model and the state go", NULL},
        CLI_HEADING("batch"),
        {"batch-size", OPT_INT, &o.batch_size, 1, 1 << 20, "B", "sequences per micro-batch", NULL},
        {"seq-len", OPT_INT, &o.seq_len, 1, 65536, "T", "tokens per sequence", NULL},
        {"total-batch-size", OPT_I64, &o.total_batch, 1, 1e15, "N", "tokens per optimizer step over all ranks, a multiple of B*T*ranks",
         "B*T*ranks, one micro-batch each"},
        CLI_HEADING("schedule and optimizer"),
        {"max-steps", OPT_INT, &o.max_steps, 1, 1e9, "N", "optimizer steps", NULL},
        {"warmup-steps", OPT_INT, &o.warmup_steps, 0, 1e9, "N", "linear warmup steps", NULL},
        {"lr", OPT_DOUBLE, &o.lr, 0, 10, "X", "peak learning rate", NULL},
        {"min-lr-ratio", OPT_DOUBLE, &o.min_lr_ratio, 0, 1, "X", "final learning rate as a fraction of the peak", NULL},
        {"beta1", OPT_DOUBLE, &o.beta1, 0, 0.999999, "X", "AdamW beta1", NULL},
        {"beta2", OPT_DOUBLE, &o.beta2, 0, 0.999999, "X", "AdamW beta2", NULL},
        {"eps", OPT_DOUBLE, &o.eps, 1e-30, 1, "X", "AdamW epsilon", NULL},
        {"weight-decay", OPT_DOUBLE, &o.weight_decay, 0, 10, "X", "on 2-D tensors only", NULL},
        {"grad-clip", OPT_DOUBLE, &o.grad_clip, 0, 1e30, "X", "global gradient-norm clip (0: off)", NULL},
        CLI_HEADING("evaluation and checkpoints"),
        {"val-every", OPT_INT, &o.val_every, 0, 1e9, "N", "validate every N steps and at the last (0: never)", NULL},
        {"val-steps", OPT_INT, &o.val_steps, 0, 1e9, "K", "validation batches, over all ranks", NULL},
        {"tensorboard", OPT_STR, &o.tensorboard, 0, 0, "DIR", "also write TensorBoard event files there (loss, val loss, lr, norm,\n"
         "tokens/s, HellaSwag, the samples' text): tensorboard --logdir DIR", "none"},
        {"hellaswag", OPT_STR, &o.hellaswag, 0, 0, "FILE", "HellaSwag examples to score (as gpt2c eval --hellaswag), e.g.\n"
         "data/hellaswag/hellaswag_val_full.txt.bz2", "none"},
        {"hellaswag-every", OPT_INT, &o.hellaswag_every, 0, 1e9, "N", "score them every N steps and at the last, split over the ranks\n"
         "(0: never)", NULL},
        {"hellaswag-limit", OPT_INT, &o.hellaswag_limit, 1, 1e9, "N", "only the first N of them", "all"},
        {"skip-loss-z", OPT_DOUBLE, &o.skip_loss_z, 0, 1e9, "Z", "skip an update whose loss is more than Z standard deviations above\n"
         "the recent updates' (0: off; a non-finite loss or norm is always skipped)", "off"},
        {"skip-norm-z", OPT_DOUBLE, &o.skip_norm_z, 0, 1e9, "Z", "the same for the gradient norm", "off"},
        {"max-skips", OPT_INT, &o.max_skips, 1, 1e9, "K", "stop after K skipped updates in a row", NULL},
        {"ckpt-every", OPT_INT, &o.ckpt_every, 0, 1e9, "N", "checkpoint every N steps and at the end (0: end only)", NULL},
        {"resume", OPT_FLAG, &o.resume, 0, 0, NULL, "continue the run saved in DIR/state", NULL},
        {"stop-after", OPT_INT, &o.stop_after, 1, 1e9, "N", "stop with a checkpoint once N steps are done", "never"},
        CLI_HEADING("many processes (launched by mpirun: mpirun -np N gpt2c train ...)"),
        {"zero", OPT_INT, &o.zero, 0, 1, "1", "shard the AdamW state over the ranks (ZeRO-1)", NULL},
        CLI_HEADING("samples"),
        {"sample-every", OPT_INT, &o.sample_every, 0, 1e9, "N", "print 4 continuations (32 tokens, top-k 50) every N steps and at the\n"
         "last (0: never)", NULL},
        {"sample-prompt", OPT_STR, &sample_prompt, 0, 0, "TEXT", "their prompt", "\"Hello, I'm a language model,\""},
        CLI_HEADING("other"),
        {"seed", OPT_U64, &o.seed, 0, 1.8e19, "N", "seed of the from-scratch init", NULL},
        {"threads", OPT_INT, &o.threads, 1, 1024, "N", "CPU threads", "the number of CPUs, divided among the ranks mpirun\n"
         "started on this machine"},
        {"precision", OPT_STR, &o.precision, 0, 0, "P", "fp32 or bf16: the matmuls take bf16 inputs and accumulate in fp32;\n"
         "weights, optimizer state and the rest stay fp32. bf16 runs on every CPU\n"
         "(oneDNN's bf16 kernels with AVX512_BF16 or AMX, elsewhere the fp32 GEMM\n"
         "on rounded inputs). The plan line names the route taken", "fp32 on the CPU, bf16 on a GPU"},
        {"device", OPT_STR, &o.device, 0, 0, "D", "cpu, cuda or auto (CUDA if there is a GPU); the CUDA backend is new\n"
         "and has not run on a GPU yet", "cpu"},
        {"recompute", OPT_FLAG, &o.recompute, 0, 0, NULL, "recompute the GELU outputs in the backward instead of keeping\n"
         "them (4*B*T*C activations per layer less; the same numbers)", NULL},
        {"profile", OPT_FLAG, &profile, 0, 0, NULL, "at the end, print where the time went: ms per step and share of\n"
         "each kind of work (matmuls, attention, LM head, ...), GFLOP/s of\nthe products", NULL},
        {"json", OPT_FLAG, &json, 0, 0, NULL, "print that profile as one JSON object instead", NULL},
    };
    int done = cli_parse_opts("train", usage, specs, sizeof specs / sizeof *specs, argc, argv);
    if (done >= 0) return done;
    if (!o.model && !o.resume) return cli_usage_error("train", "--model is required");
    if (!o.data) return cli_usage_error("train", "--data is required");
    if (!o.out_dir) return cli_usage_error("train", "--out-dir is required");
    if (json && !profile) return cli_usage_error("train", "--json prints the profile: give --profile too");
    gpt2c_error err = {{0}};
    gpt2c_comm *comm;
    if (gpt2c_comm_open(&comm, &err) != 0) return cli_error("%s", err.msg);
    o.comm = comm;
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
                                .on_hellaswag = on_hellaswag, .on_checkpoint = on_checkpoint, .on_sample = on_sample};
    if (test_fault_read(&t.fault)) cb.scale_micro_batch = scale_micro_batch; /* (tests only) */
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
    if (progress_shown) putchar('\n'), progress_shown = 0; /* the last step's line stays */
    if (rc != 0) return cli_error("%s", err.msg);
    if (rank == 0) printf("done: the model is in %s/model\n", o.out_dir);
    if (rank == 0 && profile)
        return json ? cli_print_json(json_pack("{s:o}", "profile", cli_profile_json(&prof)))
                    : (cli_print_profile(stdout, &prof, "step"), 0);
    return 0;
}
