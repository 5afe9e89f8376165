/* The fuzz targets' scratch directory: the readers take paths, so each input is written to a
 * file in a directory of /dev/shm (memory, no disk) made once per process. */
#ifndef GPT2C_FUZZ_SCRATCH_H
#define GPT2C_FUZZ_SCRATCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *fuzz_dir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/dev/shm/gpt2c-fuzz-%ld", (long)getpid());
        if (mkdir(dir, 0700) != 0) abort();
    }
    return dir;
}

/* DIR/name holding data; returns the path (static). */
static const char *fuzz_file(const char *name, const unsigned char *data, size_t len) {
    static char path[160];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    char *slash = strrchr(path, '/');
    for (char *p = path + strlen(fuzz_dir()) + 1; p <= slash; p++) /* subdirectories of name */
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0700);
            *p = '/';
        }
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) abort();
    return path;
}

#endif
