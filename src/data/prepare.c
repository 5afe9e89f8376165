/* `prepare`: text or JSON Lines in, llm.c token shards out.
 *
 * The inputs are memory-mapped and cut into chunks of about CHUNK_BYTES at places where the
 * tokens of the parts, in order, equal the tokens of the whole (see prepare_split.h). A batch of
 * chunks is tokenized by the worker threads, each with its own encoder, then written in input
 * order: the first val_tokens tokens to val_000000.bin, the rest to train_000000.bin, ... Every
 * document starts with <|endoftext|>. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/prepare_split.h"
#include "data/shard.h"
#include "util/error.h"

#define CHUNK_BYTES (1u << 20)
#define BATCH_CHUNKS_PER_THREAD 8

typedef struct input_file {
    const char *path;
    const unsigned char *data; /* mapped */
    size_t len;
} input_file;

typedef struct chunk {
    const input_file *file;
    size_t start, end;
    uint64_t first_line; /* 1-based line number of start, for jsonl errors */
    int first_of_file;
    /* results */
    gpt2c_ids ids;
    uint64_t documents;
    int failed;
    gpt2c_error err;
} chunk;

typedef struct batch {
    const gpt2c_tokenizer *tok;
    const gpt2c_prepare_opts *opts;
    gpt2c_encoder **encoders;
    chunk *chunks;
    int nchunks;
    atomic_int next;
} batch;

typedef struct worker_arg {
    batch *b;
    int index;
} worker_arg;

/* ---- tokenizing one chunk (in a worker thread) ---- */

static int add_document(gpt2c_encoder *enc, chunk *c, const void *text, size_t len) {
    c->documents++;
    if (gpt2c_ids_push(&c->ids, GPT2C_EOT, &c->err)) return -1;
    return gpt2c_encode(enc, text, len, &c->ids, &c->err);
}

static int jsonl_line(gpt2c_encoder *enc, chunk *c, const unsigned char *line, size_t len,
                      uint64_t lineno) {
    size_t k = 0;
    while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
    if (k == len) return 0; /* blank lines carry no document */
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)line, len, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    const char *path = c->file->path;
    unsigned long long ln = (unsigned long long)lineno;
    if (!obj) return err_set(&c->err, "%s:%llu: invalid JSON: %s", path, ln, jerr.text);
    int rc = 0;
    json_t *text = json_is_object(obj) ? json_object_get(obj, "text") : NULL;
    if (!json_is_object(obj)) rc = err_set(&c->err, "%s:%llu: not a JSON object", path, ln);
    else if (!text) rc = err_set(&c->err, "%s:%llu: the object has no \"text\" field", path, ln);
    else if (!json_is_string(text)) rc = err_set(&c->err, "%s:%llu: \"text\" is not a string", path, ln);
    else rc = add_document(enc, c, json_string_value(text), json_string_length(text));
    json_decref(obj);
    return rc;
}

static int tokenize_chunk(gpt2c_encoder *enc, const gpt2c_prepare_opts *o, chunk *c) {
    const unsigned char *s = c->file->data;
    size_t len = c->file->len;
    if (o->format == GPT2C_FORMAT_JSONL) {
        uint64_t lineno = c->first_line;
        for (size_t p = c->start; p < c->end; lineno++) {
            const unsigned char *nl = memchr(s + p, '\n', c->end - p);
            size_t e = nl ? (size_t)(nl - s) : c->end;
            if (jsonl_line(enc, c, s + p, e - p, lineno)) return -1;
            p = e + 1;
        }
        return 0;
    }
    if (!o->split_blank_lines) { /* one document; only its first chunk starts with EOT */
        if (c->first_of_file && gpt2c_ids_push(&c->ids, GPT2C_EOT, &c->err)) return -1;
        c->documents += c->first_of_file;
        return c->end > c->start ? gpt2c_encode(enc, s + c->start, c->end - c->start, &c->ids, &c->err) : 0;
    }
    for (size_t d = c->start;;) {
        int separated;
        size_t e = split_blank_line_doc_end(s, len, d, &separated);
        if (add_document(enc, c, s + d, e - d)) return -1;
        if (!separated) return 0; /* the file's last document */
        d = e;
        if (d == c->end && d < len) return 0; /* the next chunk goes on from here */
    }
}

static void *worker(void *arg) {
    worker_arg *w = arg;
    batch *b = w->b;
    for (;;) {
        int i = atomic_fetch_add(&b->next, 1);
        if (i >= b->nchunks) break;
        chunk *c = &b->chunks[i];
        if (tokenize_chunk(b->encoders[w->index], b->opts, c)) c->failed = 1;
    }
    return NULL;
}

static int run_batch(batch *b, int threads, gpt2c_error *err) {
    atomic_store(&b->next, 0);
    if (threads == 1) {
        worker_arg w = {b, 0};
        worker(&w);
        return 0;
    }
    pthread_t tids[threads];
    worker_arg args[threads];
    int started = 0;
    for (; started < threads; started++) {
        args[started] = (worker_arg){b, started};
        if (pthread_create(&tids[started], NULL, worker, &args[started]) != 0) break;
    }
    for (int t = 0; t < started; t++) pthread_join(tids[t], NULL);
    if (started == 0) return err_set(err, "cannot start worker threads");
    if (started < threads) worker(&args[0]); /* finish what the missing threads left, if any */
    return 0;
}

/* ---- writing tokens to shards, in order ---- */

typedef struct sink {
    const gpt2c_prepare_opts *opts;
    shard_writer w;
    int open;          /* w is in use */
    int in_val;        /* w is the val shard */
    int train_index;   /* next train shard number */
    uint64_t val_written, train_written;
    char **committed;  /* paths of finished shards, removed again if the run fails */
    int ncommitted;
} sink;

static char *shard_path(const char *dir, const char *split, int index) {
    size_t n = strlen(dir) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s_%06d.bin", dir, split, index);
    return p;
}

static int sink_close(sink *s, gpt2c_error *err) {
    if (!s->open) return 0;
    char *path = strdup(s->w.path);
    char **c = realloc(s->committed, (size_t)(s->ncommitted + 1) * sizeof *c);
    if (!path || !c) {
        free(path);
        if (c) s->committed = c;
        return err_set(err, "out of memory");
    }
    s->committed = c;
    s->open = 0;
    if (shard_writer_commit(&s->w, err)) {
        free(path);
        return -1;
    }
    s->committed[s->ncommitted++] = path;
    return 0;
}

static int sink_open(sink *s, int val, gpt2c_error *err) {
    char *path = shard_path(s->opts->out_dir, val ? "val" : "train", val ? 0 : s->train_index);
    if (!path) return err_set(err, "out of memory");
    int rc = shard_writer_open(&s->w, path, err);
    free(path);
    if (rc) return -1;
    s->open = 1;
    s->in_val = val;
    if (!val) s->train_index++;
    return 0;
}

static int sink_write(sink *s, const uint32_t *ids, size_t n, gpt2c_error *err) {
    uint16_t buf[4096];
    while (n > 0) {
        int val = s->val_written < s->opts->val_tokens;
        uint64_t room = val ? s->opts->val_tokens - s->val_written : s->opts->shard_tokens - s->w.count;
        if (s->open && (s->in_val != val || room == 0)) {
            if (sink_close(s, err)) return -1;
            room = val ? room : s->opts->shard_tokens;
        }
        if (!s->open && sink_open(s, val, err)) return -1;
        size_t k = n < sizeof buf / sizeof *buf ? n : sizeof buf / sizeof *buf;
        if (k > room) k = (size_t)room;
        for (size_t i = 0; i < k; i++) buf[i] = (uint16_t)ids[i];
        if (shard_writer_write(&s->w, buf, k, err)) return -1;
        if (val) s->val_written += k;
        else s->train_written += k;
        ids += k;
        n -= k;
    }
    return 0;
}

static void sink_fail(sink *s) {
    if (s->open) shard_writer_abort(&s->w);
    s->open = 0;
    for (int i = 0; i < s->ncommitted; i++) unlink(s->committed[i]);
}

static void sink_free(sink *s) {
    for (int i = 0; i < s->ncommitted; i++) free(s->committed[i]);
    free(s->committed);
}

/* Delete train shards numbered at or past `first` (and val when we wrote none) left by an
 * earlier run: a later glob over DIR must not mix two runs. Returns how many. */
static int remove_stale(const char *dir, int first, int keep_val) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int idx;
        char tail;
        int stale = (sscanf(e->d_name, "train_%6d.bin%c", &idx, &tail) == 1 && idx >= first &&
                     strlen(e->d_name) == 16) ||
                    (!keep_val && strcmp(e->d_name, "val_000000.bin") == 0);
        if (!stale) continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) continue;
        snprintf(p, n, "%s/%s", dir, e->d_name);
        removed += unlink(p) == 0;
        free(p);
    }
    closedir(d);
    return removed;
}

/* ---- the whole run ---- */

static int make_dirs(const char *dir, gpt2c_error *err) {
    char *p = strdup(dir);
    if (!p) return err_set(err, "out of memory");
    for (char *q = p + 1;; q++) {
        if (*q != '/' && *q) continue;
        char c = *q;
        *q = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            err_set(err, "cannot create directory %s: %s", p, strerror(e));
            free(p);
            return -1;
        }
        *q = c;
        if (!c) break;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return err_set(err, "%s is not a directory", dir);
    if (access(dir, W_OK) != 0) return err_set(err, "cannot write to %s: %s", dir, strerror(errno));
    return 0;
}

static int map_input(input_file *f, const char *path, gpt2c_error *err) {
    f->path = path;
    f->data = (const unsigned char *)""; /* an empty file maps to nothing */
    f->len = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(err, "%s is not a regular file", path);
    }
    f->len = (size_t)st.st_size;
    if (f->len > 0) {
        void *m = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            return err_set(err, "cannot read %s: %s", path, strerror(e));
        }
        madvise(m, f->len, MADV_SEQUENTIAL);
        f->data = m;
    }
    close(fd);
    return 0;
}

static void unmap_input(input_file *f) {
    if (f->len > 0) munmap((void *)f->data, f->len);
    f->len = 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int check_opts(const gpt2c_prepare_opts *o, gpt2c_error *err) {
    if (o->ninputs < 1) return err_set(err, "no input files");
    if (!o->out_dir || !*o->out_dir) return err_set(err, "no output directory");
    if (o->threads < 1 || o->threads > 1024) return err_set(err, "threads must be 1..1024, not %d", o->threads);
    if (o->shard_tokens < 1 || o->shard_tokens > SHARD_MAX_TOKENS)
        return err_set(err, "shard tokens must be 1..%llu", SHARD_MAX_TOKENS);
    if (o->val_tokens > SHARD_MAX_TOKENS) return err_set(err, "val tokens must be at most %llu", SHARD_MAX_TOKENS);
    if (o->format == GPT2C_FORMAT_JSONL && o->split_blank_lines)
        return err_set(err, "splitting on blank lines applies to text input, not jsonl");
    for (int i = 0; i < o->ninputs; i++) { /* fail before writing anything */
        struct stat st;
        if (stat(o->inputs[i], &st) != 0) return err_set(err, "cannot open %s: %s", o->inputs[i], strerror(errno));
        if (!S_ISREG(st.st_mode)) return err_set(err, "%s is not a regular file", o->inputs[i]);
        if (access(o->inputs[i], R_OK) != 0) return err_set(err, "cannot read %s: %s", o->inputs[i], strerror(errno));
    }
    return 0;
}

typedef struct run {
    const gpt2c_prepare_opts *opts;
    batch b;
    sink out;
    input_file *files; /* mapped inputs that chunks of the current batch may point into */
    int nfiles;
    gpt2c_prepare_progress prog;
    double t0;
} run;

/* Tokenize the batch, write its tokens, release the inputs it no longer needs. */
static int flush_batch(run *r, int keep_last_file, gpt2c_error *err) {
    batch *b = &r->b;
    int rc = run_batch(b, r->opts->threads, err);
    for (int i = 0; i < b->nchunks && rc == 0; i++) {
        chunk *c = &b->chunks[i];
        if (c->failed) {
            *err = c->err;
            rc = -1;
            break;
        }
        rc = sink_write(&r->out, c->ids.data, c->ids.len, err);
        r->prog.tokens += c->ids.len;
        r->prog.documents += c->documents;
        r->prog.bytes_done += c->end - c->start;
    }
    for (int i = 0; i < b->nchunks; i++) gpt2c_ids_free(&b->chunks[i].ids);
    b->nchunks = 0;
    int keep = keep_last_file && r->nfiles > 0;
    for (int i = 0; i < r->nfiles - keep; i++) unmap_input(&r->files[i]);
    if (keep) r->files[0] = r->files[r->nfiles - 1];
    r->nfiles = keep;
    r->prog.seconds = now_seconds() - r->t0;
    if (rc == 0 && r->opts->progress) r->opts->progress(&r->prog, r->opts->progress_user);
    return rc;
}

static int process_file(run *r, const char *path, int max_chunks, gpt2c_error *err) {
    const gpt2c_prepare_opts *o = r->opts;
    input_file *f = &r->files[r->nfiles];
    if (map_input(f, path, err)) return -1;
    r->nfiles++;
    split_mode mode = o->format == GPT2C_FORMAT_JSONL ? SPLIT_JSONL
                      : o->split_blank_lines          ? SPLIT_BLANK_LINES
                                                      : SPLIT_ONE_DOCUMENT;
    uint64_t line = 1;
    size_t start = 0;
    do {
        if (r->b.nchunks == max_chunks && flush_batch(r, 1, err)) return -1;
        f = &r->files[r->nfiles - 1]; /* flush_batch moves the current file to the front */
        size_t end = split_next_cut(f->data, f->len, start, CHUNK_BYTES, mode);
        chunk *c = &r->b.chunks[r->b.nchunks++];
        *c = (chunk){.file = f, .start = start, .end = end, .first_line = line, .first_of_file = start == 0};
        if (mode == SPLIT_JSONL && end > start)
            for (const unsigned char *p = f->data + start, *e = f->data + end;
                 (p = memchr(p, '\n', (size_t)(e - p))); p++)
                line++;
        start = end;
    } while (start < f->len);
    return 0;
}

int gpt2c_prepare(const gpt2c_tokenizer *tok, const gpt2c_prepare_opts *o,
                  gpt2c_prepare_result *result, gpt2c_error *err) {
    memset(result, 0, sizeof *result);
    if (check_opts(o, err) || make_dirs(o->out_dir, err)) return -1;
    int max_chunks = o->threads * BATCH_CHUNKS_PER_THREAD;
    run r = {.opts = o, .out = {.opts = o}, .t0 = now_seconds()};
    r.b = (batch){.tok = tok, .opts = o};
    r.b.chunks = calloc((size_t)max_chunks, sizeof *r.b.chunks);
    r.b.encoders = calloc((size_t)o->threads, sizeof *r.b.encoders);
    r.files = calloc((size_t)max_chunks + 1, sizeof *r.files); /* a batch touches at most this many */
    int rc = (!r.b.chunks || !r.b.encoders || !r.files) ? err_set(err, "out of memory") : 0;
    for (int t = 0; t < o->threads && rc == 0; t++)
        if (!(r.b.encoders[t] = gpt2c_encoder_new(tok, err))) rc = -1;
    for (int i = 0; i < o->ninputs && rc == 0; i++) {
        struct stat st;
        if (stat(o->inputs[i], &st) == 0) r.prog.bytes_total += (uint64_t)st.st_size;
    }
    for (int i = 0; i < o->ninputs && rc == 0; i++) {
        /* a file is mapped while chunks of it wait: flush first when the table is full */
        if (r.nfiles == max_chunks && flush_batch(&r, 0, err)) rc = -1;
        if (rc == 0) rc = process_file(&r, o->inputs[i], max_chunks, err);
    }
    if (rc == 0) rc = flush_batch(&r, 0, err);
    if (rc == 0 && r.out.train_written == 0)
        rc = err_set(err, "the input holds %llu tokens: not enough for %llu validation tokens and a train shard",
                     (unsigned long long)r.prog.tokens, (unsigned long long)o->val_tokens);
    if (rc == 0) rc = sink_close(&r.out, err);
    if (rc != 0) {
        for (int i = 0; i < r.b.nchunks; i++) gpt2c_ids_free(&r.b.chunks[i].ids);
        for (int i = 0; i < r.nfiles; i++) unmap_input(&r.files[i]);
        sink_fail(&r.out);
    } else {
        result->totals = r.prog;
        result->val_tokens = r.out.val_written;
        result->train_tokens = r.out.train_written;
        result->train_shards = r.out.train_index;
        result->stale_removed = remove_stale(o->out_dir, r.out.train_index, o->val_tokens > 0);
    }
    sink_free(&r.out);
    for (int t = 0; t < o->threads && r.b.encoders; t++) gpt2c_encoder_free(r.b.encoders[t]);
    free(r.b.encoders);
    free(r.b.chunks);
    free(r.files);
    return rc;
}
