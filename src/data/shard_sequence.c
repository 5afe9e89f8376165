#include "data/shard_sequence.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"

static char *shard_path(const char *dir, const char *split, int index) {
    size_t n = strlen(dir) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s_%06d.bin", dir, split, index);
    return p;
}

static int close_current(shard_sequence *s, gpt2c_error *err) {
    if (!s->open) return 0;
    shard_writer *f = realloc(s->finished, (size_t)(s->nfinished + 1) * sizeof *f);
    if (!f) return err_set(err, "out of memory");
    s->finished = f;
    s->open = 0;
    if (shard_writer_finish(&s->w, err)) return -1;
    s->finished[s->nfinished++] = s->w;
    return 0;
}

static int open_next(shard_sequence *s, int val, gpt2c_error *err) {
    char *path = shard_path(s->dir, val ? "val" : "train", val ? 0 : s->train_index);
    if (!path) return err_set(err, "out of memory");
    int rc = shard_writer_open(&s->w, path, err);
    free(path);
    if (rc) return -1;
    s->open = 1;
    s->in_val = val;
    if (!val) s->train_index++;
    return 0;
}

int shards_write(shard_sequence *s, const uint16_t *tokens, size_t n, gpt2c_error *err) {
    while (n > 0) {
        int val = s->val_written < s->val_tokens;
        if (s->open && (s->in_val != val || (!val && s->w.count == s->shard_tokens)) && close_current(s, err))
            return -1;
        if (!s->open && open_next(s, val, err)) return -1;
        uint64_t room = val ? s->val_tokens - s->val_written : s->shard_tokens - s->w.count;
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
int shards_publish(shard_sequence *s, gpt2c_error *err) {
    if (close_current(s, err)) return -1;
    int n = s->nfinished;
    s->nfinished = 0;
    for (int i = 0; i < n; i++)
        if (shard_writer_publish(&s->finished[i], err)) {
            while (++i < n) shard_writer_abort(&s->finished[i]);
            return -1;
        }
    int fd = open(s->dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

void shards_fail(shard_sequence *s) {
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

int shards_remove_stale(const char *dir, int first, int keep_val) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        int tmp = len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0;
        char name[32];
        snprintf(name, sizeof name, "%.*s", (int)(tmp ? len - 4 : len), e->d_name);
        int train = train_shard_number(name), val = strcmp(name, "val_000000.bin") == 0;
        int stale = tmp ? train >= 0 || val : train >= first || (val && !keep_val);
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

void shards_free(shard_sequence *s) {
    free(s->finished);
    s->finished = NULL;
}

