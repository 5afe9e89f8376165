#include <errno.h>
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
