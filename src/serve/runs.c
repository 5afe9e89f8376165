#define _GNU_SOURCE /* strndup */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "serve/runs.h"
#include "util/error.h"
#include "util/fs.h"

/* A log read per request at most this far: a page that fell far behind catches up in steps. */
#define MAX_CHUNK (4 << 20)

static int name_ok(const char *name) {
    return name && name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 256;
}

static char *log_path(const char *dir, const char *name) {
    char *run = fs_join(dir, name);
    char *path = run ? fs_join(run, "log.jsonl") : NULL;
    free(run);
    return path;
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
        char *path = log_path(dir, e->d_name);
        struct stat st;
        if (path && stat(path, &st) == 0 && S_ISREG(st.st_mode))
            items[n++] = json_pack("{s:s, s:I}", "name", e->d_name, "bytes", (json_int_t)st.st_size);
        free(path);
    }
    closedir(d);
    qsort(items, n, sizeof *items, by_name);
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) json_array_append_new(list, items[i]);
    return list;
}

json_t *runs_log(const char *dir, const char *name, long long from, gpt2c_error *err) {
    if (!name_ok(name)) {
        err_set(err, "no such run");
        return NULL;
    }
    char *path = log_path(dir, name);
    FILE *f = path ? fopen(path, "rb") : NULL;
    free(path);
    if (!f) {
        err_set(err, "no such run (a directory of %s with a log.jsonl)", dir);
        return NULL;
    }
    struct stat st;
    int restarted = 0;
    if (fstat(fileno(f), &st) != 0) st.st_size = 0;
    if (from < 0 || from > (long long)st.st_size) from = 0, restarted = 1;
    size_t want = (size_t)((long long)st.st_size - from);
    if (want > MAX_CHUNK) want = MAX_CHUNK;
    char *buf = malloc(want + 1);
    size_t got = 0;
    if (buf && fseek(f, (long)from, SEEK_SET) == 0) got = fread(buf, 1, want, f);
    fclose(f);
    if (!buf) {
        err_set(err, "out of memory");
        return NULL;
    }
    json_t *records = json_array();
    size_t start = 0;
    for (size_t i = 0; i < got; i++) {
        if (buf[i] != '\n') continue;
        json_t *rec = json_loadb(buf + start, i - start, 0, NULL);
        if (json_is_object(rec)) json_array_append_new(records, rec);
        else json_decref(rec);
        start = i + 1;
    }
    free(buf);
    json_t *o = json_pack("{s:s, s:I, s:I, s:o}", "name", name, "from", (json_int_t)from, "next",
                          (json_int_t)(from + (long long)start), "records", records);
    if (o && restarted) json_object_set_new(o, "restarted", json_true());
    return o;
}
