/* `prepare`: text or JSON Lines in, llm.c token shards out.
 *
 * The inputs are memory-mapped and cut into chunks of about CHUNK_BYTES at places where the
 * tokens of the parts, in order, equal the tokens of the whole (see prepare_split.h). The chunks
 * go round a ring: the main thread cuts chunks into free slots, worker threads (each with its own
 * encoder) tokenize whichever chunk is next, and the main thread writes finished chunks in input
 * order while the workers go on: the first val_tokens tokens to val_000000.bin, the rest to
 * train_000000.bin, ... Every document starts with <|endoftext|>. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/prepare_chunk.h"
#include "data/prepare_split.h"
#include "data/shard_sequence.h"
#include "util/error.h"
#include "util/time.h"
#include "util/fs.h"

#define CHUNK_BYTES (1u << 20)
#define RING_CHUNKS_PER_THREAD 4

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
        int failed = chunk_tokenize(w->enc, r->opts, c) != 0;
        pthread_mutex_lock(&r->mu);
        c->failed = failed;
        c->done = 1;
        pthread_cond_broadcast(&r->finished);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
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

static double now_seconds(void) { return now_ms() / 1e3; }

/* Check the options and every input before anything is written; sum the input sizes. */
static int check_opts(const gpt2c_prepare_opts *o, uint64_t *bytes_total, gpt2c_error *err) {
    if (o->ninputs < 1) return err_set(err, "no input files");
    if (!o->out_dir || !*o->out_dir) return err_set(err, "no output directory");
    if (o->threads < 1 || o->threads > 1024) return err_set(err, "threads must be 1..1024, not %d", o->threads);
    if (o->shard_tokens < 1 || o->shard_tokens > SHARD_MAX_TOKENS)
        return err_set(err, "shard tokens must be 1..%llu", SHARD_MAX_TOKENS);
    if (o->val_tokens > SHARD_MAX_TOKENS) return err_set(err, "val tokens must be at most %llu", SHARD_MAX_TOKENS);
    if (o->format == GPT2C_FORMAT_JSONL && o->split_blank_lines)
        return err_set(err, "splitting on blank lines applies to text input, not jsonl");
    for (int i = 0; i < o->ninputs; i++) {
        struct stat st;
        if (stat(o->inputs[i], &st) != 0) return err_set(err, "cannot open %s: %s", o->inputs[i], strerror(errno));
        if (!S_ISREG(st.st_mode)) return err_set(err, "%s is not a regular file", o->inputs[i]);
        if (access(o->inputs[i], R_OK) != 0) return err_set(err, "cannot read %s: %s", o->inputs[i], strerror(errno));
        *bytes_total += (uint64_t)st.st_size;
    }
    return 0;
}

/* The main thread's side: cutting the inputs into chunks, and writing finished chunks. */
typedef struct run {
    const gpt2c_prepare_opts *opts;
    ring r;
    shard_sequence out;
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
    if (shards_write(&u->out, c->tokens, c->ids.len, err)) return -1;
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
    run u = {.opts = o, .t0 = now_seconds()};
    if (check_opts(o, &u.prog.bytes_total, err) || fs_make_dirs(o->out_dir, err)) return -1;
    u.out = (shard_sequence){.dir = o->out_dir, .val_tokens = o->val_tokens, .shard_tokens = o->shard_tokens};
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
    if (rc == 0) rc = shards_publish(&u.out, err);
    if (rc != 0) shards_fail(&u.out);
    else {
        u.prog.seconds = now_seconds() - u.t0;
        if (o->progress) o->progress(&u.prog, o->progress_user);
        result->totals = u.prog;
        result->val_tokens = u.out.val_written;
        result->train_tokens = u.out.train_written;
        result->train_shards = u.out.train_index;
        result->stale_removed = shards_remove_stale(o->out_dir, u.out.train_index, o->val_tokens > 0);
    }
    shards_free(&u.out);
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
