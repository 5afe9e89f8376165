#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fs.h"

int fs_make_dirs(const char *dir, gpt2c_error *err) {
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

char *fs_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, name, b + 1);
    }
    return p;
}

int fs_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int fs_read_all(const char *path, size_t max, char **data, size_t *len, gpt2c_error *err) {
    *data = NULL, *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(err, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        if (cap >= max) {
            free(buf);
            fclose(f);
            return err_set(err, "%s is larger than %zu MB", path, max >> 20);
        }
        char *more = realloc(buf, (cap *= 2) + 1);
        if (!more) free(buf);
        buf = more;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        return err_set(err, bad ? "cannot read %s" : "out of memory reading %s", path);
    }
    buf[n] = 0;
    *data = buf, *len = n;
    return 0;
}
