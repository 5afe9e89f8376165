/* gpt2c: GPT-2 in C. The public interface of libgpt2c.
 *
 * Conventions: functions that can fail return 0 on success and -1 on failure, with a one-line
 * message in the gpt2c_error the caller passes (which may be NULL). Nothing here prints or exits.
 */
#ifndef GPT2C_H
#define GPT2C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPT2C_VERSION "0.1.0"

/* The shared library exports these functions and nothing else. */
#if defined(__GNUC__)
#define GPT2C_API __attribute__((visibility("default")))
#else
#define GPT2C_API
#endif

typedef struct gpt2c_error {
    char msg[512];
} gpt2c_error;

/* ---- the machine ---- */

/* The CPU kernels run the best instruction set this CPU has, or less when the environment
 * variable GPT2C_CPU_ISA caps it: x86-64, avx2, avx512, avx512_bf16 or amx (every path can so be
 * run on one machine; a level above the CPU's is an error when a run starts). The cap covers
 * gpt2c's own kernels and oneDNN; OpenBLAS reads its own OPENBLAS_CORETYPE once, when the
 * program loads. Call gpt2c_apply_cpu_isa first thing in main(), with main's argv: when
 * GPT2C_CPU_ISA is set and OPENBLAS_CORETYPE is not, it sets OPENBLAS_CORETYPE to match and
 * starts the program again (execv of /proc/self/exe); otherwise it returns 0 at once. */
GPT2C_API int gpt2c_apply_cpu_isa(char **argv, gpt2c_error *err);

#define GPT2C_MAX_CPU_ISAS 8
typedef struct gpt2c_system_info {
    const char *cpu_isa;             /* the level in use */
    const char *cpu_isas[GPT2C_MAX_CPU_ISAS]; /* every level this CPU can run, best first */
    int n_cpu_isas;
    const char *fp32_path, *bf16_path; /* the CPU backend's routes, as the plan line names them */
    const char *kernel_width;        /* gpt2c's vector kernels: "avx512", "avx2" or "x86-64" */
    const char *onednn_isa;          /* oneDNN's instruction set under the cap */
    const char *blas_core;           /* the kernels OpenBLAS loaded */
    /* cuda_emulated: the CUDA backend runs on the CPU (gpt2c's CUDA-on-CPU runtime, for tests) */
    int cuda_built, cuda_emulated, cuda_devices, mpi_built;
    int nccl_built; /* multi-GPU training's communicator (the emulated build: its CPU stand-in) */
} gpt2c_system_info;

/* What this machine and build run. Fails when GPT2C_CPU_ISA is not a level this CPU can run. */
GPT2C_API int gpt2c_system_info_get(gpt2c_system_info *info, gpt2c_error *err);

/* ---- profiles: where a run's time went ---- */

/* The kinds of work a profile tells apart. The ops are timed with the backend's clock (wall time
 * around each op on the CPU); the host's own work (data, communication, ...) around itself. */
typedef enum gpt2c_profile_kind {
    GPT2C_PROF_MATMUL_FWD,  /* the linear layers' products, forward */
    GPT2C_PROF_MATMUL_BWD,  /* ... and backward (both gradients and the bias's) */
    GPT2C_PROF_ATTENTION,   /* causal self-attention, forward and backward, with the KV cache */
    GPT2C_PROF_LM_HEAD,     /* the LM head, softmax and cross-entropy (and their gradient) */
    GPT2C_PROF_ELEMENTWISE, /* layernorm, GELU, residual adds, embedding, copies */
    GPT2C_PROF_OPTIMIZER,   /* AdamW, the gradient norm, the bf16 weight copy */
    GPT2C_PROF_DATA,        /* reading batches */
    GPT2C_PROF_COMM,        /* communication between ranks (MPI) */
    GPT2C_PROF_CHECKPOINT,  /* writing the model and the resume state */
    GPT2C_PROF_VALIDATION,  /* training's validation passes, all of them */
    GPT2C_PROF_SAMPLES,     /* training's samples (--sample-every), all of their work */
    GPT2C_PROF_SAMPLING,    /* sample: drawing each token from the logits (top-k, top-p) */
    GPT2C_PROF_PROMPT,      /* sample: the prompt's forward pass, all of it */
    GPT2C_PROF_OTHER,       /* the rest of the run: what no kind above measured */
    GPT2C_PROF_KINDS
} gpt2c_profile_kind;

typedef struct gpt2c_profile {
    long steps;      /* training: optimizer steps; eval: batches; sample: tokens per sample */
    double total_ms; /* the whole profiled run (after loading, before the final report) */
    double ms[GPT2C_PROF_KINDS];
    double flops[GPT2C_PROF_KINDS]; /* floating-point operations of the products (matmuls, LM head) */
    long calls[GPT2C_PROF_KINDS];
} gpt2c_profile;

/* "matmul_fwd", "matmul_bwd", "attention", "lm_head", "elementwise", "optimizer", "data",
 * "comm", "checkpoint", "validation", "samples", "sampling", "prompt", "other"; NULL past the
 * last. */
GPT2C_API const char *gpt2c_profile_kind_name(int kind);

/* ---- tokenizer: OpenAI's GPT-2 byte-level BPE, identical to tiktoken's "gpt2" ---- */

#define GPT2C_VOCAB_SIZE 50257 /* ids 0..50256 */
#define GPT2C_EOT 50256        /* <|endoftext|> */
#define GPT2C_MAX_TOKEN_BYTES 128

/* The vocabulary and merge tables: built into the library, read-only once loaded, shared by
 * any number of threads. */
typedef struct gpt2c_tokenizer gpt2c_tokenizer;

/* Per-thread encoding state (a cache of recently encoded words, scratch space). */
typedef struct gpt2c_encoder gpt2c_encoder;

/* A growable array of token ids that the library appends to. Start it zeroed; free with
 * gpt2c_ids_free. */
typedef struct gpt2c_ids {
    uint32_t *data;
    size_t len, cap;
} gpt2c_ids;

GPT2C_API gpt2c_tokenizer *gpt2c_tokenizer_new(gpt2c_error *err);
GPT2C_API void gpt2c_tokenizer_free(gpt2c_tokenizer *tok);

GPT2C_API gpt2c_encoder *gpt2c_encoder_new(const gpt2c_tokenizer *tok, gpt2c_error *err);
GPT2C_API void gpt2c_encoder_free(gpt2c_encoder *enc);

/* Encode any byte string, with tiktoken's encode_ordinary semantics: "<|endoftext|>" in the text
 * is ordinary text. Invalid UTF-8 is accepted: each byte that does not begin a valid UTF-8
 * sequence counts as one character of class "other" (like punctuation), so decode(encode(b)) == b
 * for every byte string b. Appends to out. */
GPT2C_API int gpt2c_encode(gpt2c_encoder *enc, const void *text, size_t len, gpt2c_ids *out,
                 gpt2c_error *err);
GPT2C_API int gpt2c_ids_push(gpt2c_ids *ids, uint32_t id, gpt2c_error *err);
GPT2C_API int gpt2c_ids_reserve(gpt2c_ids *ids, size_t extra, gpt2c_error *err); /* room for extra more */
GPT2C_API void gpt2c_ids_free(gpt2c_ids *ids);

/* The bytes of one token (NULL if id >= GPT2C_VOCAB_SIZE). 50256 is "<|endoftext|>". */
GPT2C_API const unsigned char *gpt2c_token_bytes(const gpt2c_tokenizer *tok, uint32_t id, size_t *len);

/* Decode ids to bytes: writes into a malloc'ed buffer (*out, *out_len; NUL-terminated). */
GPT2C_API int gpt2c_decode(const gpt2c_tokenizer *tok, const uint32_t *ids, size_t n, char **out,
                 size_t *out_len, gpt2c_error *err);

/* Streaming decoder: feed ids one at a time, get back only complete UTF-8 characters (a token
 * may end in the middle of a character). Bytes that can never become valid UTF-8 are passed
 * through unchanged as soon as that is known; gpt2c_stream_finish returns what is still held. */
typedef struct gpt2c_stream_decoder {
    unsigned char held[4];
    int nheld;
} gpt2c_stream_decoder;

#define GPT2C_STREAM_OUT_MAX (GPT2C_MAX_TOKEN_BYTES + 4)

/* Writes at most GPT2C_STREAM_OUT_MAX bytes to out; returns their count, or -1 for a bad id. */
GPT2C_API int gpt2c_stream_push(gpt2c_stream_decoder *sd, const gpt2c_tokenizer *tok, uint32_t id,
                      char out[GPT2C_STREAM_OUT_MAX], gpt2c_error *err);
GPT2C_API int gpt2c_stream_finish(gpt2c_stream_decoder *sd, char out[GPT2C_STREAM_OUT_MAX]);

/* ---- data: llm.c token shards ---- */

#define GPT2C_SHARD_MAGIC 20240520
#define GPT2C_SHARD_VERSION 1
#define GPT2C_SHARD_HEADER_INTS 256

typedef struct gpt2c_shard_info {
    uint64_t tokens;    /* token count from the header, checked against the file size */
    uint64_t eot_count; /* how many <|endoftext|> tokens (documents) it holds */
    uint32_t max_id;
} gpt2c_shard_info;

/* Validate a shard file (header, size, every token id < vocabulary) and count its documents. */
GPT2C_API int gpt2c_shard_inspect(const char *path, gpt2c_shard_info *info, gpt2c_error *err);

/* Read a whole shard's tokens into a malloc'ed array. */
GPT2C_API int gpt2c_shard_read(const char *path, uint16_t **tokens, uint64_t *ntokens, gpt2c_error *err);

/* Text to shards: `gpt2c prepare`. */
typedef enum gpt2c_input_format {
    GPT2C_FORMAT_TEXT, /* a file is one document (or one per blank-line section) */
    GPT2C_FORMAT_JSONL /* one JSON object per line, document in its "text" string */
} gpt2c_input_format;

typedef struct gpt2c_prepare_progress {
    uint64_t bytes_done, bytes_total, tokens, documents;
    double seconds;
} gpt2c_prepare_progress;

typedef struct gpt2c_prepare_opts {
    const char *const *inputs;
    int ninputs;
    const char *out_dir;
    gpt2c_input_format format;
    int split_blank_lines;   /* text: split documents at "\n\n" as llm.c does */
    uint64_t val_tokens;     /* the first val_tokens tokens go to val_000000.bin (0: none) */
    uint64_t shard_tokens;   /* tokens per train shard */
    int threads;
    /* Called from the calling thread now and then; may be NULL. */
    void (*progress)(const gpt2c_prepare_progress *p, void *user);
    void *progress_user;
} gpt2c_prepare_opts;

typedef struct gpt2c_prepare_result {
    gpt2c_prepare_progress totals;
    uint64_t val_tokens, train_tokens;
    int train_shards;
    int stale_removed; /* old shards from an earlier, bigger run that were deleted */
} gpt2c_prepare_result;

GPT2C_API int gpt2c_prepare(const gpt2c_tokenizer *tok, const gpt2c_prepare_opts *opts,
                  gpt2c_prepare_result *result, gpt2c_error *err);

/* Processes training together (data parallel). gpt2c_comm_open joins the ranks of an MPI launch
 * (mpirun / mpiexec, when gpt2c was built with MPI) or, without one, makes a communicator of this
 * one process. gpt2c_comm_abort ends every rank of the job (after a fatal error on one rank: the
 * others would wait for it forever); gpt2c_comm_close leaves the job normally. */
typedef struct gpt2c_comm gpt2c_comm;
GPT2C_API int gpt2c_comm_open(gpt2c_comm **comm, gpt2c_error *err);
GPT2C_API int gpt2c_comm_rank(const gpt2c_comm *comm);
GPT2C_API int gpt2c_comm_size(const gpt2c_comm *comm);
GPT2C_API void gpt2c_comm_abort(gpt2c_comm *comm, int status);
GPT2C_API void gpt2c_comm_close(gpt2c_comm *comm);

/* Training: `gpt2c train`. The recipe is GPT-3's (AdamW, clipping, warmup + cosine decay);
 * gpt2c_train_opts_default fills its defaults. With a communicator of N ranks every rank calls
 * gpt2c_train with the same options: rank r reads every N-th batch, gradients are averaged over
 * the ranks once per optimizer step, and only rank 0 calls the callbacks and writes files. */
typedef struct gpt2c_train_opts {
    const char *model;         /* a preset ("d12", ...) or a Hugging Face GPT-2 directory;
                                  may be NULL when resuming (the state knows the model) */
    int max_seq_len;           /* positions of a preset model (default 1024) */
    const char *data;          /* glob of train shards */
    const char *val_data;      /* glob of validation shards, or NULL */
    const char *out_dir;
    int batch_size, seq_len;   /* micro-batch B x T */
    long long total_batch;     /* tokens per optimizer step; 0: B*T */
    int max_steps, warmup_steps;
    double lr, min_lr_ratio, beta1, beta2, eps, weight_decay, grad_clip;
    int val_every, val_steps;  /* 0: no validation */
    int ckpt_every;            /* 0: only at the end */
    unsigned long long seed;   /* from-scratch init */
    int threads;               /* CPU threads; 0: all CPUs, divided among the ranks an MPI
                                  launcher started on this machine */
    const char *device;        /* "cpu" (NULL: the default), "cuda", or "auto" (CUDA if built with it and a
                                  GPU is there); the CUDA backend has not run on a GPU yet */
    const char *precision;     /* "fp32" or "bf16": bf16 matmul inputs, fp32 accumulation, fp32
                                  master weights and optimizer state. NULL: fp32 on the CPU, bf16
                                  on a GPU */
    int recompute;             /* recompute the GELU outputs in the backward instead of keeping
                                  them: 4*B*T*C floats per layer less memory, the same numbers */
    gpt2c_comm *comm;          /* the ranks training together; NULL: this process alone */
    int zero;                  /* 1: shard the AdamW state over the ranks (ZeRO stage 1); 0: not */
    int resume;                /* continue from out_dir/state */
    int stop_after;            /* stop (with a checkpoint) once this many steps are done; 0: never */
    int sample_every;          /* print samples every N steps and at the last (0: never) */
    const char *tensorboard;   /* a directory for TensorBoard event files (scalars of every step,
                                  validation and HellaSwag; the samples' text), or NULL */
    const char *hellaswag;     /* HellaSwag examples to score (gpt2c_hellaswag's files), or NULL */
    int hellaswag_every;       /* every N steps and at the last, the examples split over the
                                  ranks (0: never) */
    int hellaswag_limit;       /* the first N examples (0: all) */
    /* An update is skipped (the batch's gradients dropped, the optimizer's state untouched, the
     * step counted) when its loss or gradient norm is not finite, always; or with Z > 0 when it
     * is more than Z standard deviations above the recent updates' (llm.c's -sl, -sg). */
    double skip_loss_z, skip_norm_z;
    int max_skips;             /* stop with an error after this many skipped updates in a row */
    const uint32_t *sample_prompt; /* their prompt, as ids (empty: <|endoftext|>) */
    size_t sample_prompt_len;
    gpt2c_profile *profile;    /* non-NULL: where the steps' time went is filled in here */
} gpt2c_train_opts;

typedef struct gpt2c_train_plan {
    size_t params;             /* parameters, the padded vocabulary rows not counted */
    double memory_mb;          /* everything allocated up front, of which: */
    double params_mb, copy_mb, grads_mb, adamw_mb, acts_mb, scratch_mb; /* copy: bf16 weights */
    double free_mb;            /* what the device had free before (-1: unknown) */
    int accum_steps, start_step, max_steps;
    int n_layer, n_head, n_embd, max_seq_len;
    const char *init;          /* "random", "hf", "resume" */
    const char *precision;     /* "fp32", "bf16" */
    const char *precision_path; /* the kernels it runs, e.g. "bf16 (AMX)", "bf16 (emulated: AVX2,
                                   fp32 GEMM on rounded inputs)" */
    const char *device;        /* "cpu", "cuda": where the plan's memory is */
    int ranks, zero;           /* processes training together; AdamW state sharded over them */
    const char *comm;          /* the communicator between them: "MPI", "NCCL", "one process" */
} gpt2c_train_plan;

typedef struct gpt2c_train_step {
    int step, max_steps;
    double loss, lr, norm, dt_ms, tok_s;
    const char *skipped;       /* NULL: the update was made; else why not ("non-finite",
                                  "loss outlier", "norm outlier") */
    double z;                  /* an outlier's z-score */
    long skips;                /* updates skipped so far in this run */
} gpt2c_train_step;

typedef struct gpt2c_train_callbacks {
    void *user;
    void (*on_plan)(void *user, const gpt2c_train_plan *p);
    void (*on_step)(void *user, const gpt2c_train_step *s);
    void (*on_val)(void *user, int step, double val_loss);
    /* HellaSwag at this step: n examples, acc and acc_norm */
    void (*on_hellaswag)(void *user, int step, int n, double acc, double acc_norm);
    void (*on_checkpoint)(void *user, int step, const char *model_dir);
    /* GPT2C_TRAIN_SAMPLES continuations of the sample prompt, each GPT2C_TRAIN_SAMPLE_TOKENS ids */
    void (*on_sample)(void *user, int step, int sample, const uint32_t *ids, size_t n);
    /* Tests only (NULL otherwise): the factor by which micro-batch `micro` of `step` on `rank`
     * has its loss and its gradient multiplied before the update, as a bad batch (NaN) or an
     * overflow (a large factor) would; 1 leaves it as computed. The tests of skipped updates
     * inject their faults through it (the CLI installs it when GPT2C_TEST_FAULT is set). */
    double (*scale_micro_batch)(void *user, int step, int micro, int rank);
} gpt2c_train_callbacks;

/* Samples during training, as build-nanogpt draws them: top-k 50, a fixed seed each time. */
#define GPT2C_TRAIN_SAMPLES 4
#define GPT2C_TRAIN_SAMPLE_TOKENS 32

GPT2C_API void gpt2c_train_opts_default(gpt2c_train_opts *o);
GPT2C_API int gpt2c_train(const gpt2c_train_opts *o, const gpt2c_train_callbacks *cb,
                          gpt2c_error *err);

/* Evaluation: `gpt2c eval`, the mean loss of a Hugging Face GPT-2 directory over `steps` batches
 * of B x T from the start of the shards matching `data`. gpt2c_eval_opts_default fills its
 * defaults. */
typedef struct gpt2c_eval_opts {
    const char *model_dir;   /* a Hugging Face GPT-2 directory */
    const char *data;        /* glob of token shards */
    int batch_size, seq_len, steps;
    int threads;             /* CPU threads; 0: all CPUs */
    const char *device;      /* "cpu" (NULL), "cuda" or "auto", as training's */
    const char *precision;   /* "fp32" or "bf16" (the matmuls read bf16 weights); NULL: the
                                backend's default (fp32 on the CPU, bf16 on a GPU) */
    gpt2c_profile *profile;  /* non-NULL: where the batches' time went is filled in here */
} gpt2c_eval_opts;

GPT2C_API void gpt2c_eval_opts_default(gpt2c_eval_opts *o);
GPT2C_API int gpt2c_eval(const gpt2c_eval_opts *o, double *loss, gpt2c_error *err);

/* HellaSwag: `gpt2c eval --hellaswag FILE`, build-nanogpt's completion-style scoring of the
 * first `limit` examples (0: all) of FILE (hellaswag_val.jsonl, or llama.cpp's 6-line text; either
 * may be bzip2-compressed), with the model, threads, device, precision and profile of o (data,
 * batch size, sequence length and steps are not used). */
typedef struct gpt2c_hellaswag_result {
    int n, correct, correct_norm;   /* examples; right by the summed loss (acc), by the mean per
                                       ending token (acc_norm) */
    int *label, *pred, *pred_norm;  /* n each: the answer and the two choices, 0-3 */
} gpt2c_hellaswag_result;

GPT2C_API int gpt2c_hellaswag(const gpt2c_eval_opts *o, const char *path, int limit,
                              gpt2c_hellaswag_result *res, gpt2c_error *err);
GPT2C_API void gpt2c_hellaswag_result_free(gpt2c_hellaswag_result *res);

/* Generation: `gpt2c sample`. Continuations of a prompt, num_samples of them as one batch, with a
 * KV cache planned once. */
typedef struct gpt2c_sample_opts {
    const char *model_dir;   /* a Hugging Face GPT-2 directory */
    int num_samples, max_tokens;
    int top_k;               /* >= 1 */
    double top_p;            /* (0, 1] */
    double temperature;      /* 0: greedy */
    unsigned long long seed;
    int stop_at_eot;         /* a sample ends at <|endoftext|> (which is still reported) */
    int threads;             /* CPU threads; 0: all CPUs */
    const char *device;      /* "cpu" (NULL), "cuda" or "auto", as training's */
    const char *precision;   /* "fp32" or "bf16" (the matmuls read bf16 weights); NULL: the
                                backend's default (fp32 on the CPU, bf16 on a GPU) */
    gpt2c_profile *profile;  /* non-NULL: where the generation's time went is filled in here */
} gpt2c_sample_opts;

typedef struct gpt2c_sample_callbacks {
    void *user;
    void (*on_token)(void *user, int sample, uint32_t id); /* each generated id, as it comes */
    void (*on_note)(void *user, const char *message);      /* e.g. the context window slides */
} gpt2c_sample_callbacks;

typedef struct gpt2c_sample_stats {
    const char *precision_path; /* the kernels the products ran, as gpt2c_train_plan's */
    size_t prompt_tokens;    /* used (an empty prompt is <|endoftext|>; a long one keeps its end) */
    long generated;          /* tokens, all samples together */
    double load_ms, prompt_ms, generate_ms;
} gpt2c_sample_stats;

GPT2C_API void gpt2c_sample_opts_default(gpt2c_sample_opts *o);
GPT2C_API int gpt2c_sample(const gpt2c_sample_opts *o, const uint32_t *prompt, size_t n,
                           const gpt2c_sample_callbacks *cb, gpt2c_sample_stats *stats,
                           gpt2c_error *err);

/* Serving: `gpt2c serve`. An HTTP server (OpenAI's /v1/completions, a page at /) over one
 * engine with `parallel` slots decoded together (continuous batching); gpt2c_server_start
 * returns once it listens, its threads serve until gpt2c_server_stop (which ends the streams in
 * flight, frees the port and the server). */
typedef struct gpt2c_serve_opts {
    const char *model_dir;   /* a Hugging Face GPT-2 directory (or NULL with runs_dir) */
    const char *runs_dir;    /* non-NULL: /runs shows the training runs under it as live charts */
    const char *host;        /* IPv4 address to bind (default 127.0.0.1: this machine only) */
    int port;                /* default 8080; 0: any free port (see gpt2c_server_url) */
    int parallel;            /* slots (sequences decoded together), 1..8 (default 4) */
    int max_queue;           /* requests waiting beyond the slots (default 64); more get 503 */
    const char *api_key;     /* non-NULL (and not empty): the API and the runs' data want
                              * "Authorization: Bearer KEY"; the pages (/, /runs, /chart.js)
                              * and /health stay open */
    const char *cors_origin; /* non-NULL: the one origin allowed by CORS headers */
    const char *allowed_hosts; /* Host names answered besides loopback names and the address
                                * listened on, comma-separated (DNS rebinding); NULL: none */
    const char *device, *precision; /* as sample's */
    int threads;             /* CPU threads; 0: all CPUs */
} gpt2c_serve_opts;
typedef struct gpt2c_server gpt2c_server;

GPT2C_API void gpt2c_serve_opts_default(gpt2c_serve_opts *o);
GPT2C_API int gpt2c_server_start(const gpt2c_serve_opts *o, gpt2c_server **s, gpt2c_error *err);
GPT2C_API const char *gpt2c_server_url(const gpt2c_server *s);
GPT2C_API void gpt2c_server_stop(gpt2c_server *s);

#ifdef __cplusplus
}
#endif

#endif
