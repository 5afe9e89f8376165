/* The runs under serve --runs DIR; see runs.h. Every file is opened relative to DIR's own
 * descriptor, without following links, and without blocking (a FIFO opens at once and is then
 * refused as not a regular file). */
#define _GNU_SOURCE /* O_NOFOLLOW, O_DIRECTORY */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "serve/runs.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

#define LOG_NAME "log.jsonl"

static int name_ok(const char *name) {
    if (!name || !name[0] || name[0] == '.' || strchr(name, '/') || strlen(name) >= 256) return 0;
    for (size_t i = 0, n = strlen(name); i < n;) {
        uint32_t cp;
        i += (size_t)utf8_decode((const unsigned char *)name + i, n - i, &cp);
        if (cp == UTF8_INVALID) return 0;
    }
    return 1;
}

/* NAME's log, opened for reading (-1 when it is not a regular file inside a directory of DIR). */
static int open_log(int dirfd, const char *name) {
    int run = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (run < 0) return -1;
    int fd = openat(run, LOG_NAME, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    close(run);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) close(fd), fd = -1;
    return fd;
}

static int by_name(const void *a, const void *b) {
    return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
                  json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

json_t *runs_list(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    json_t *items[1024];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < sizeof items / sizeof *items) {
        if (!name_ok(e->d_name)) continue;
        int fd = open_log(dirfd(d), e->d_name);
        struct stat st;
        json_t *item = NULL;
        if (fd >= 0 && fstat(fd, &st) == 0)
            item = json_pack("{s:s, s:I}", "name", e->d_name, "bytes", (json_int_t)st.st_size);
        if (fd >= 0) close(fd);
        if (item) items[n++] = item;
    }
    closedir(d);
    qsort(items, n, sizeof *items, by_name);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(list, items[i]);
    return list;
}

/* out[*len..] += s[0..n) (out holds cap bytes; the caller made room). */
static void put(char *out, size_t *len, const char *s, size_t n) {
    memcpy(out + *len, s, n);
    *len += n;
}

char *runs_log(const char *dir, const char *name, long long from, size_t *len, gpt2c_error *err) {
    int dfd = name_ok(name) ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    int fd = dfd >= 0 ? open_log(dfd, name) : -1;
    if (dfd >= 0) close(dfd);
    if (fd < 0) {
        err_set(err, "no such run: a directory with a %s, among the runs", LOG_NAME);
        return NULL;
    }
    struct stat st;
    int restarted = 0;
    if (fstat(fd, &st) != 0) st.st_size = 0;
    if (from < 0 || from > (long long)st.st_size) from = 0, restarted = 1;
    size_t want = (size_t)((long long)st.st_size - from);
    if (want > RUNS_LOG_CHUNK) want = RUNS_LOG_CHUNK;
    json_t *jname = json_string(name);
    char *buf = malloc(want + 1), *name_json = jname ? json_dumps(jname, JSON_ENCODE_ANY) : NULL;
    json_decref(jname);
    ssize_t got = buf && name_json ? pread(fd, buf, want, (off_t)from) : 0;
    close(fd);
    /* the answer: the head, the records as read with a comma each, the tail */
    size_t lines = 0, n = 0;
    for (ssize_t i = 0; i < got; i++) lines += buf[i] == '\n';
    char *out = buf && name_json && got >= 0 ? malloc((size_t)got + lines + strlen(name_json) + 160) : NULL;
    if (!out) {
        err_set(err, buf && name_json && got < 0 ? "cannot read the run's log" : "out of memory");
        free(buf), free(name_json);
        return NULL;
    }
    char head[64];
    put(out, &n, "{\"name\":", 8);
    put(out, &n, name_json, strlen(name_json));
    put(out, &n, ",\"records\":[", 12);
    size_t start = 0, nrec = 0;
    for (size_t i = 0; i < (size_t)got; i++) {
        if (buf[i] != '\n') continue;
        /* a line is a record when it is a JSON object: kept as it is written */
        size_t l = i - start;
        json_t *rec = l <= RUNS_MAX_RECORD ? json_loadb(buf + start, l, 0, NULL) : NULL;
        if (json_is_object(rec)) {
            if (nrec++) put(out, &n, ",", 1);
            put(out, &n, buf + start, l);
        }
        json_decref(rec);
        start = i + 1;
    }
    int k = snprintf(head, sizeof head, "],\"from\":%lld,\"next\":%lld%s}", from,
                     from + (long long)start, restarted ? ",\"restarted\":true" : "");
    put(out, &n, head, (size_t)k);
    free(buf), free(name_json);
    *len = n;
    return out;
}
