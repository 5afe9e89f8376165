#include "util/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util/error.h"

int atomic_file_open(atomic_file *af, const char *path, gpt2c_error *err) {
    memset(af, 0, sizeof *af);
    size_t n = strlen(path);
    af->path = strdup(path);
    af->tmp_path = malloc(n + 5);
    if (!af->path || !af->tmp_path) {
        atomic_file_abort(af);
        return err_set(err, "out of memory");
    }
    memcpy(af->tmp_path, path, n);
    memcpy(af->tmp_path + n, ".tmp", 5);
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        int e = errno;
        atomic_file_abort(af);
        return err_set(err, "cannot write %s.tmp: %s", path, strerror(e));
    }
    /* Model files are hundreds of MB: a large buffer keeps small writes (headers, blocks of a
     * transpose) from turning into many system calls. */
    setvbuf(af->f, NULL, _IOFBF, 1 << 20);
    return 0;
}

/* Without this the rename may be lost in a crash even though the file's data is on disk.
 * Some file systems cannot sync a directory (EINVAL); there is nothing more to do there. */
static int sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash == path ? strdup("/") : slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
    if (!dir) return ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return errno;
    int e = fsync(fd) != 0 && errno != EINVAL ? errno : 0;
    close(fd);
    return e;
}

int atomic_file_fail(atomic_file *af, int e, gpt2c_error *err) {
    long long written = af->f ? ftello(af->f) : -1, need = af->size > 0 ? af->size : written;
    char *path = af->path ? strdup(af->path) : NULL;
    atomic_file_abort(af); /* (its space is free again for the count below) */
    if (!path) return err_set(err, "out of memory");
    int full = e == ENOSPC || e == EDQUOT || e == EFBIG;
    struct statvfs vfs;
    char *slash = strrchr(path, '/');
    if (slash) *slash = 0;
    int known = full && statvfs(slash ? (slash == path ? "/" : path) : ".", &vfs) == 0;
    if (slash) *slash = '/';
    if (known && need > 0)
        err_set(err, "cannot write %s: %s (the file needs %lld bytes, %llu are free there)", path,
                strerror(e), need, (unsigned long long)vfs.f_bavail * vfs.f_frsize);
    else
        err_set(err, "cannot write %s.tmp: %s", path, strerror(e));
    free(path);
    return -1;
}

int atomic_file_commit(atomic_file *af, gpt2c_error *err) {
    return atomic_file_close(af, err) == 0 ? atomic_file_publish(af, err) : -1;
}

int atomic_file_close(atomic_file *af, gpt2c_error *err) {
    errno = 0;
    int bad = fflush(af->f) != 0 || ferror(af->f) || fsync(fileno(af->f)) != 0;
    int e = errno;
    if (bad) return atomic_file_fail(af, e ? e : EIO, err); /* (EIO: an earlier write's is gone) */
    if (fclose(af->f) != 0) {
        e = errno;
        af->f = NULL;
        return atomic_file_fail(af, e, err);
    }
    af->f = NULL;
    return 0;
}

int atomic_file_publish(atomic_file *af, gpt2c_error *err) {
    if (rename(af->tmp_path, af->path) != 0) {
        err_set(err, "cannot rename %s.tmp to %s: %s", af->path, af->path, strerror(errno));
        atomic_file_abort(af);
        return -1;
    }
    /* The file is in place now; only the durability of its name can still fail. */
    int e = sync_parent_dir(af->path);
    if (e) err_set(err, "%s: written, but cannot sync its directory: %s", af->path, strerror(e));
    free(af->tmp_path);
    free(af->path);
    memset(af, 0, sizeof *af);
    return e ? -1 : 0;
}

void atomic_file_abort(atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) unlink(af->tmp_path);
    free(af->tmp_path);
    free(af->path);
    memset(af, 0, sizeof *af);
}
