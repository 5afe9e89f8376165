/* Small file-system helpers. */
#ifndef GPT2C_FS_H
#define GPT2C_FS_H

#include "gpt2c.h"

/* mkdir -p, then check the directory can be written. */
int fs_make_dirs(const char *path, gpt2c_error *err);
/* dir + "/" + name in a malloc'ed string (NULL when out of memory). */
char *fs_join(const char *dir, const char *name);
int fs_is_dir(const char *path);
/* The whole file into a malloc'ed, NUL-terminated buffer (*len bytes before the NUL); files over
 * max bytes are refused. */
int fs_read_all(const char *path, size_t max, char **data, size_t *len, gpt2c_error *err);

#endif
