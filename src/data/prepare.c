/* `prepare`: text or JSON Lines in, llm.c token shards out.
 *
 * The inputs are memory-mapped and cut into chunks of about CHUNK_BYTES at places where the
 * tokens of the parts, in order, equal the tokens of the whole (see prepare_split.h). The chunks
 * go round a ring: the main thread cuts chunks into free slots, worker threads (each with its own
 * encoder) tokenize whichever chunk is next, and the main thread writes finished chunks in input
 * order while the workers go on: the first val_tokens tokens to val_000000.bin, the rest to
 * train_000000.bin, ... Every document starts with <|endoftext|>. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
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
#define RING_CHUNKS_PER_THREAD 4

typedef struct input_file {
    const char *path;
    const unsigned char *data; /* mapped while chunks of it are in the ring */
    size_t len;
    int chunks_in_ring;
    int all_cut;
} input_file;

typedef struct chunk {
    input_file *file;
    size_t start, end;
    uint64_t first_line; /* 1-based line number of start, for jsonl errors */
    int first_of_file;
    /* results, kept allocated from one use of the ring slot to the next */
    gpt2c_ids ids;
    uint16_t *tokens;
    size_t tokens_cap;
    uint64_t documents;
    int done, failed;
    gpt2c_error err;
} chunk;

/* ---- tokenizing one chunk (in a worker thread) ---- */

static int add_document(gpt2c_encoder *enc, chunk *c, const void *text, size_t len) {
    c->documents++;
    if (gpt2c_ids_push(&c->ids, GPT2C_EOT, &c->err)) return -1;
    return gpt2c_encode(enc, text, len, &c->ids, &c->err);
}

static int jsonl_line(gpt2c_encoder *enc, chunk *c, const unsigned char *line, size_t len,
                      uint64_t lineno) {
    if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) { /* a UTF-8 byte order mark */
        line += 3;
        len -= 3;
    }
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

/* Tokenize and narrow to the shard's uint16, so the writer only writes. */
static int process_chunk(gpt2c_encoder *enc, const gpt2c_prepare_opts *o, chunk *c) {
    c->ids.len = 0;
    c->documents = 0;
    if (tokenize_chunk(enc, o, c)) return -1;
    if (c->ids.len > c->tokens_cap) {
        free(c->tokens);
        c->tokens_cap = c->ids.len;
        if (!(c->tokens = malloc(c->tokens_cap * sizeof *c->tokens))) {
            c->tokens_cap = 0;
            return err_set(&c->err, "out of memory");
        }
    }
    for (size_t i = 0; i < c->ids.len; i++) c->tokens[i] = (uint16_t)c->ids.data[i];
    return 0;
}

/* ---- the ring of chunks shared by the main thread and the workers ---- */

typedef struct ring {
    const gpt2c_prepare_opts *opts;
    chunk *slots;
    int nslots;
    uint64_t cut, claimed, written; /* chunk counts; slot of chunk k is k % nslots */
    int stop;                       /* no more chunks will be cut: workers leave when idle */
    int abandon;                    /* an error: workers leave now */
    pthread_mutex_t mu;
    pthread_cond_t work, finished;
} ring;

typedef struct worker_arg {
    ring *r;
    gpt2c_encoder *enc;
} worker_arg;

static void *worker(void *arg) {
    worker_arg *w = arg;
    ring *r = w->r;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->claimed == r->cut && !r->stop && !r->abandon) pthread_cond_wait(&r->work, &r->mu);
        if (r->abandon || r->claimed == r->cut) break;
        chunk *c = &r->slots[r->claimed++ % (uint64_t)r->nslots];
        pthread_mutex_unlock(&r->mu);
        int failed = process_chunk(w->enc, r->opts, c) != 0;
        pthread_mutex_lock(&r->mu);
        c->failed = failed;
        c->done = 1;
        pthread_cond_broadcast(&r->finished);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- writing tokens to shards, in order ---- */

/* Shards are finished under temporary names as the run goes and all renamed into place at its
 * end, so a failed or interrupted run changes nothing in the output directory but .tmp files. */
typedef struct sink {
    const gpt2c_prepare_opts *opts;
    shard_writer w;
    int open;          /* w is in use */
    int in_val;        /* w is the val shard */
    int train_index;   /* next train shard number */
    uint64_t val_written, train_written;
    shard_writer *finished; /* complete, waiting to be published */
    int nfinished;
} sink;

static char *shard_path(const char *dir, const char *split, int index) {
    size_t n = strlen(dir) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s_%06d.bin", dir, split, index);
    return p;
}

static int sink_close(sink *s, gpt2c_error *err) {
    if (!s->open) return 0;
    shard_writer *f = realloc(s->finished, (size_t)(s->nfinished + 1) * sizeof *f);
    if (!f) return err_set(err, "out of memory");
    s->finished = f;
    s->open = 0;
    if (shard_writer_finish(&s->w, err)) return -1;
    s->finished[s->nfinished++] = s->w;
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

static int sink_write(sink *s, const uint16_t *tokens, size_t n, gpt2c_error *err) {
    while (n > 0) {
        int val = s->val_written < s->opts->val_tokens;
        uint64_t room = val ? s->opts->val_tokens - s->val_written : s->opts->shard_tokens - s->w.count;
        if (s->open && (s->in_val != val || room == 0)) {
            if (sink_close(s, err)) return -1;
            room = val ? room : s->opts->shard_tokens;
        }
        if (!s->open && sink_open(s, val, err)) return -1;
        size_t k = n < room ? n : (size_t)room;
        if (shard_writer_write(&s->w, tokens, k, err)) return -1;
        if (val) s->val_written += k;
        else s->train_written += k;
        tokens += k;
        n -= k;
    }
    return 0;
}

/* Rename every finished shard into place, then make the renames durable. */
static int sink_publish(sink *s, gpt2c_error *err) {
    int n = s->nfinished;
    s->nfinished = 0;
    for (int i = 0; i < n; i++)
        if (shard_writer_publish(&s->finished[i], err)) {
            while (++i < n) shard_writer_abort(&s->finished[i]);
            return -1;
        }
    int fd = open(s->opts->out_dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

/* Delete what the run wrote: temporary files only, nothing was published. */
static void sink_fail(sink *s) {
    if (s->open) shard_writer_abort(&s->w);
    s->open = 0;
    for (int i = 0; i < s->nfinished; i++) shard_writer_abort(&s->finished[i]);
    s->nfinished = 0;
}

/* N for a name "train_NNNNNN.bin", else -1. */
static int train_shard_number(const char *name) {
    if (strlen(name) != 16 || strncmp(name, "train_", 6) != 0 || strcmp(name + 12, ".bin") != 0) return -1;
    int n = 0;
    for (int i = 6; i < 12; i++) {
        if (name[i] < '0' || name[i] > '9') return -1;
        n = n * 10 + (name[i] - '0');
    }
    return n;
}

/* Delete train shards numbered at or past `first` (and val when we wrote none) left by an
 * earlier run: a later glob over DIR must not mix two runs. Also the .tmp files of a run that
 * was killed. Returns how many shards. */
static int remove_stale(const char *dir, int first, int keep_val) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        int tmp = len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0;
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(tmp ? len - 4 : len), e->d_name);
        int stale = (tmp && (train_shard_number(name) >= 0 || strcmp(name, "val_000000.bin") == 0)) ||
                    train_shard_number(name) >= first || (!keep_val && strcmp(name, "val_000000.bin") == 0);
        if (!stale) continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = malloc(n);
        if (!p) continue;
        snprintf(p, n, "%s/%s", dir, e->d_name);
        removed += unlink(p) == 0 && !tmp;
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

/* The main thread's side: cutting the inputs into chunks, and writing finished chunks. */
typedef struct run {
    const gpt2c_prepare_opts *opts;
    ring r;
    sink out;
    input_file *files;
    int next_file; /* the file being cut is next_file - 1 */
    size_t pos;    /* where the next chunk of that file starts */
    uint64_t line; /* its line number */
    gpt2c_prepare_progress prog;
    double t0, last_progress;
} run;

static split_mode mode_of(const gpt2c_prepare_opts *o) {
    return o->format == GPT2C_FORMAT_JSONL ? SPLIT_JSONL
           : o->split_blank_lines          ? SPLIT_BLANK_LINES
                                           : SPLIT_ONE_DOCUMENT;
}

/* Cut the next chunk of input into c; returns 0 when there is no more input. */
static int cut_chunk(run *u, chunk *c, gpt2c_error *err) {
    input_file *f = u->next_file > 0 ? &u->files[u->next_file - 1] : NULL;
    if (!f || f->all_cut) {
        if (u->next_file == u->opts->ninputs) return 0;
        f = &u->files[u->next_file++];
        if (map_input(f, u->opts->inputs[u->next_file - 1], err)) return -1;
        u->pos = 0;
        u->line = 1;
    }
    size_t end = split_next_cut(f->data, f->len, u->pos, CHUNK_BYTES, mode_of(u->opts));
    c->file = f;
    c->start = u->pos;
    c->end = end;
    c->first_line = u->line;
    c->first_of_file = u->pos == 0;
    c->done = c->failed = 0;
    if (mode_of(u->opts) == SPLIT_JSONL && end > u->pos)
        for (const unsigned char *p = f->data + u->pos, *e = f->data + end;
             (p = memchr(p, '\n', (size_t)(e - p))); p++)
            u->line++;
    u->pos = end;
    f->chunks_in_ring++;
    f->all_cut = end == f->len;
    return 1;
}

static int write_chunk(run *u, chunk *c, gpt2c_error *err) {
    if (c->failed) {
        *err = c->err;
        return -1;
    }
    if (sink_write(&u->out, c->tokens, c->ids.len, err)) return -1;
    u->prog.tokens += c->ids.len;
    u->prog.documents += c->documents;
    u->prog.bytes_done += c->end - c->start;
    input_file *f = c->file;
    if (--f->chunks_in_ring == 0 && f->all_cut) unmap_input(f);
    double t = now_seconds();
    u->prog.seconds = t - u->t0;
    if (u->opts->progress && t - u->last_progress > 0.1) {
        u->last_progress = t;
        u->opts->progress(&u->prog, u->opts->progress_user);
    }
    return 0;
}

/* Keep the ring full and write chunks in order as they finish. */
static int pump(run *u, gpt2c_error *err) {
    ring *r = &u->r;
    int more = 1;
    for (;;) {
        while (more && r->cut - r->written < (uint64_t)r->nslots) {
            chunk *c = &r->slots[r->cut % (uint64_t)r->nslots];
            more = cut_chunk(u, c, err);
            if (more < 0) return -1;
            pthread_mutex_lock(&r->mu);
            r->cut += (uint64_t)more;
            r->stop = !more;
            pthread_cond_broadcast(&r->work);
            pthread_mutex_unlock(&r->mu);
        }
        if (r->written == r->cut) return 0;
        chunk *c = &r->slots[r->written % (uint64_t)r->nslots];
        pthread_mutex_lock(&r->mu);
        while (!c->done) pthread_cond_wait(&r->finished, &r->mu);
        pthread_mutex_unlock(&r->mu);
        if (write_chunk(u, c, err)) return -1;
        r->written++;
    }
}

int gpt2c_prepare(const gpt2c_tokenizer *tok, const gpt2c_prepare_opts *o,
                  gpt2c_prepare_result *result, gpt2c_error *err) {
    memset(result, 0, sizeof *result);
    if (check_opts(o, err) || make_dirs(o->out_dir, err)) return -1;
    run u = {.opts = o, .out = {.opts = o}, .t0 = now_seconds()};
    ring *r = &u.r;
    *r = (ring){.opts = o, .nslots = o->threads * RING_CHUNKS_PER_THREAD};
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work, NULL);
    pthread_cond_init(&r->finished, NULL);
    r->slots = calloc((size_t)r->nslots, sizeof *r->slots);
    u.files = calloc((size_t)o->ninputs, sizeof *u.files);
    pthread_t *tids = calloc((size_t)o->threads, sizeof *tids);
    worker_arg *args = calloc((size_t)o->threads, sizeof *args);
    int rc = (!r->slots || !u.files || !tids || !args) ? err_set(err, "out of memory") : 0;
    for (int i = 0; i < o->ninputs && rc == 0; i++) {
        struct stat st;
        if (stat(o->inputs[i], &st) == 0) u.prog.bytes_total += (uint64_t)st.st_size;
    }
    int started = 0;
    for (; started < o->threads && rc == 0; started++) {
        args[started] = (worker_arg){r, gpt2c_encoder_new(tok, err)};
        if (!args[started].enc) rc = -1;
        else if (pthread_create(&tids[started], NULL, worker, &args[started]) != 0) {
            gpt2c_encoder_free(args[started].enc);
            rc = err_set(err, "cannot start a worker thread");
        }
        if (rc) break;
    }
    if (rc == 0) rc = pump(&u, err);
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    r->abandon = rc != 0;
    pthread_cond_broadcast(&r->work);
    pthread_mutex_unlock(&r->mu);
    for (int t = 0; t < started; t++) {
        pthread_join(tids[t], NULL);
        gpt2c_encoder_free(args[t].enc);
    }
    if (rc == 0 && u.out.train_written == 0)
        rc = err_set(err, "the input holds %llu tokens: not enough for %llu validation tokens and a train shard",
                     (unsigned long long)u.prog.tokens, (unsigned long long)o->val_tokens);
    if (rc == 0) rc = sink_close(&u.out, err);
    if (rc == 0) rc = sink_publish(&u.out, err);
    if (rc != 0) sink_fail(&u.out);
    else {
        u.prog.seconds = now_seconds() - u.t0;
        if (o->progress) o->progress(&u.prog, o->progress_user);
        result->totals = u.prog;
        result->val_tokens = u.out.val_written;
        result->train_tokens = u.out.train_written;
        result->train_shards = u.out.train_index;
        result->stale_removed = remove_stale(o->out_dir, u.out.train_index, o->val_tokens > 0);
    }
    free(u.out.finished);
    for (int i = 0; i < o->ninputs && u.files; i++) unmap_input(&u.files[i]);
    for (int i = 0; i < r->nslots && r->slots; i++) {
        gpt2c_ids_free(&r->slots[i].ids);
        free(r->slots[i].tokens);
    }
    free(r->slots);
    free(u.files);
    free(tids);
    free(args);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->finished);
    return rc;
}
