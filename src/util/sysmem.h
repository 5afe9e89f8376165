/* How much memory the machine can still give us, to refuse a plan that does not fit with a clear
 * message instead of being killed by the kernel half way through allocating it. */
#ifndef GPT2C_SYSMEM_H
#define GPT2C_SYSMEM_H

#include <stdio.h>

/* MemAvailable from /proc/meminfo in bytes; a negative value when unknown (not Linux). */
static inline double sysmem_available_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    char line[256];
    double kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

#endif
