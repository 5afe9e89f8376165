#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util/error.h"

int cli_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("gpt2c: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gpt2c %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see gpt2c %s --help)\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

static int is_stdio(const char *path) { return !path || strcmp(path, "-") == 0; }

int cli_read_all(const char *path, unsigned char **data, size_t *len, gpt2c_error *err) {
    const char *name = is_stdio(path) ? "standard input" : path;
    FILE *f = is_stdio(path) ? stdin : fopen(path, "rb");
    if (!f) return err_set(err, "cannot open %s: %s", name, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        unsigned char *b = realloc(buf, cap * 2);
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    int bad = !buf ? ENOMEM : ferror(f) ? errno : 0;
    if (f != stdin) fclose(f);
    if (bad) {
        free(buf);
        return err_set(err, "cannot read %s: %s", name, strerror(bad ? bad : EIO));
    }
    *data = buf;
    *len = n;
    return 0;
}

FILE *cli_open_output(const char *path, gpt2c_error *err) {
    if (is_stdio(path)) return stdout;
    FILE *f = fopen(path, "wb");
    if (!f) err_set(err, "cannot write %s: %s", path, strerror(errno));
    return f;
}

int cli_close_output(FILE *f, const char *path, gpt2c_error *err) {
    int bad = fflush(f) != 0 || ferror(f);
    int e = errno;
    if (f != stdout) bad |= fclose(f) != 0;
    if (bad) return err_set(err, "cannot write %s: %s", is_stdio(path) ? "standard output" : path, strerror(e));
    return 0;
}

int cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out) {
    if (!s || !*s) return -1;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < min || v > max) return -1;
    *out = v;
    return 0;
}

int cli_encode_text(const void *text, size_t len, gpt2c_tokenizer **tok, gpt2c_ids *ids,
                    gpt2c_error *err) {
    *tok = gpt2c_tokenizer_new(err);
    gpt2c_encoder *enc = *tok ? gpt2c_encoder_new(*tok, err) : NULL;
    int rc = !enc || gpt2c_encode(enc, text, len, ids, err) != 0 ? -1 : 0;
    gpt2c_encoder_free(enc);
    return rc;
}

int cli_parse_double(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return -1;
    *out = v;
    return 0;
}
