#include "io/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/atomic_file.h"
#include "util/error.h"

/* The reference implementation refuses headers above 100 MB; a real one is a few tens of KB. */
#define ST_MAX_HEADER 100000000ull

#define ST_METADATA "__metadata__"

static const struct {
    const char *name;
    unsigned size;
} dtypes[] = {
    [ST_F32] = {"F32", 4},  [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2},
    [ST_F64] = {"F64", 8},  [ST_I64] = {"I64", 8},   [ST_I32] = {"I32", 4},
    [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},     [ST_U64] = {"U64", 8},
    [ST_U32] = {"U32", 4},  [ST_U16] = {"U16", 2},   [ST_U8] = {"U8", 1},
    [ST_BOOL] = {"BOOL", 1}, [ST_F8_E4M3] = {"F8_E4M3", 1}, [ST_F8_E5M2] = {"F8_E5M2", 1},
};
#define N_DTYPES (sizeof dtypes / sizeof *dtypes)

const char *st_dtype_name(st_dtype d) {
    return (unsigned)d < N_DTYPES ? dtypes[d].name : "?";
}

static int little_endian_host(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---- reading ---- */

void st_close(st_file *f) {
    if (f->map) munmap(f->map, f->map_len);
    for (size_t i = 0; i < f->ntensors; i++) free(f->tensors[i].name);
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_values);
    free(f->path);
    memset(f, 0, sizeof *f);
}

/* A JSON integer in [0, INT64_MAX], which is all that shapes and offsets may be. */
static int get_uint(const json_t *j, uint64_t *out) {
    if (!json_is_integer(j) || json_integer_value(j) < 0) return -1;
    *out = (uint64_t)json_integer_value(j);
    return 0;
}

static int parse_metadata(st_file *f, const json_t *meta, gpt2c_error *err) {
    if (!json_is_object(meta))
        return err_set(err, "%s: " ST_METADATA " is not an object", f->path);
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
    if (!f->meta_keys || !f->meta_values) return err_set(err, "out of memory");
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)meta, key, value) {
        if (!json_is_string(value))
            return err_set(err, "%s: " ST_METADATA " value of \"%s\" is not a string", f->path, key);
        f->meta_keys[f->nmeta] = strdup(key);
        f->meta_values[f->nmeta] = strdup(json_string_value(value));
        if (!f->meta_keys[f->nmeta] || !f->meta_values[f->nmeta]) {
            free(f->meta_keys[f->nmeta]); /* the pair is counted only when whole */
            free(f->meta_values[f->nmeta]);
            return err_set(err, "out of memory");
        }
        f->nmeta++;
    }
    return 0;
}

/* Validate one header entry against the data area [data, data + data_len) and fill t. */
static int parse_tensor(const st_file *f, const char *name, const json_t *entry,
                        const unsigned char *data, uint64_t data_len, st_tensor *t,
                        gpt2c_error *err) {
    const char *path = f->path;
    if (!json_is_object(entry))
        return err_set(err, "%s: tensor \"%s\": entry is not an object", path, name);

    const char *dtype = json_string_value(json_object_get(entry, "dtype"));
    if (!dtype) return err_set(err, "%s: tensor \"%s\": dtype missing or not a string", path, name);
    size_t d = 0;
    while (d < N_DTYPES && strcmp(dtypes[d].name, dtype) != 0) d++;
    if (d == N_DTYPES) return err_set(err, "%s: tensor \"%s\": unknown dtype \"%s\"", path, name, dtype);
    t->dtype = (st_dtype)d;

    const json_t *shape = json_object_get(entry, "shape");
    if (!json_is_array(shape))
        return err_set(err, "%s: tensor \"%s\": shape missing or not an array", path, name);
    if (json_array_size(shape) > ST_MAX_DIMS)
        return err_set(err, "%s: tensor \"%s\": %zu dimensions (at most %d)", path, name,
                       json_array_size(shape), ST_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        uint64_t dim;
        if (get_uint(json_array_get(shape, (size_t)i), &dim))
            return err_set(err, "%s: tensor \"%s\": shape[%d] is not a non-negative integer", path, name, i);
        if (dim && numel > UINT64_MAX / dim)
            return err_set(err, "%s: tensor \"%s\": shape is too large", path, name);
        numel *= dim;
        t->shape[i] = (int64_t)dim;
    }
    t->numel = numel;

    const json_t *offsets = json_object_get(entry, "data_offsets");
    uint64_t begin, end;
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        get_uint(json_array_get(offsets, 0), &begin) || get_uint(json_array_get(offsets, 1), &end))
        return err_set(err, "%s: tensor \"%s\": data_offsets is not [begin, end] of non-negative integers",
                       path, name);
    if (begin > end)
        return err_set(err, "%s: tensor \"%s\": data_offsets begin %llu is after end %llu", path, name,
                       (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return err_set(err, "%s: tensor \"%s\": data_offsets end %llu is past the data area (%llu bytes)",
                       path, name, (unsigned long long)end, (unsigned long long)data_len);
    unsigned size = dtypes[d].size;
    if (numel > UINT64_MAX / size)
        return err_set(err, "%s: tensor \"%s\": shape is too large for dtype %s", path, name, dtype);
    if (numel * size != end - begin)
        return err_set(err, "%s: tensor \"%s\": data_offsets span %llu bytes but shape and dtype %s need %llu",
                       path, name, (unsigned long long)(end - begin), dtype, (unsigned long long)(numel * size));
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin); /* <= the file's size, so it fits */
    t->name = strdup(name);
    if (!t->name) return err_set(err, "out of memory");
    return 0;
}

static int parse_header(st_file *f, const json_t *root, const unsigned char *data, uint64_t data_len,
                        gpt2c_error *err) {
    size_t n = json_object_size(root);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) return err_set(err, "out of memory");
    const char *name;
    json_t *entry;
    /* Jansson keeps the file's order, so tensors come out in the order they were written. */
    json_object_foreach((json_t *)root, name, entry) {
        if (strcmp(name, ST_METADATA) == 0) {
            if (parse_metadata(f, entry, err)) return -1;
            continue;
        }
        if (parse_tensor(f, name, entry, data, data_len, &f->tensors[f->ntensors], err)) return -1;
        f->ntensors++;
    }
    return 0;
}

static uint64_t get_le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int st_open(st_file *f, const char *path, gpt2c_error *err) {
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    if (!f->path) return err_set(err, "out of memory");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err_set(err, "cannot open %s: %s", path, strerror(errno));
        st_close(f);
        return -1;
    }
    struct stat st;
    const char *why = NULL;
    if (fstat(fd, &st) != 0) why = strerror(errno);
    else if (!S_ISREG(st.st_mode)) why = "not a regular file";
    else if (st.st_size < 8) why = "too short for the 8-byte header length (not a safetensors file)";
    if (!why) { /* mmap of an empty file would fail: that case is caught above */
        void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) why = strerror(errno);
        else f->map = map, f->map_len = (size_t)st.st_size;
    }
    close(fd);
    if (why) {
        err_set(err, "%s: %s", path, why);
        st_close(f);
        return -1;
    }

    const unsigned char *bytes = f->map;
    uint64_t size = f->map_len, n = get_le64(bytes);
    if (n > ST_MAX_HEADER || n > size - 8) {
        err_set(err, "%s: header length %llu is %s (file is %llu bytes)", path, (unsigned long long)n,
                n > size - 8 ? "past the end of the file" : "over the 100 MB limit",
                (unsigned long long)size);
        st_close(f);
        return -1;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        err_set(err, "%s: header is not valid JSON (byte %d: %s)", path, jerr.position, jerr.text);
        st_close(f);
        return -1;
    }
    int rc = json_is_object(root) ? parse_header(f, root, bytes + 8 + n, size - 8 - n, err)
                                  : err_set(err, "%s: header is not a JSON object", path);
    json_decref(root);
    if (rc) st_close(f);
    return rc;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    for (size_t i = 0; i < f->ntensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const st_file *f, const char *key) {
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_values[i];
    return NULL;
}

/* ---- conversion ---- */

/* IEEE half to single, exactly: every half value (subnormals included) is a float. */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = h >> 10 & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | mant << 13; /* inf, nan (payload kept) */
    else if (exp != 0) bits = sign | (exp + 127 - 15) << 23 | mant << 13;
    else if (mant == 0) bits = sign; /* +-0 */
    else { /* subnormal: mant * 2^-24; normalize so the leading 1 becomes implicit */
        exp = 127 - 15 + 1;
        while (!(mant & 0x400)) mant <<= 1, exp--;
        bits = sign | exp << 23 | (mant & 0x3ff) << 13;
    }
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

int st_to_f32(const st_tensor *t, float *dst, gpt2c_error *err) {
    const unsigned char *p = t->data; /* not aligned in general: read bytes */
    if (t->dtype == ST_F32) {
        if (little_endian_host()) {
            if (t->numel) memcpy(dst, p, t->numel * 4);
        } else {
            for (uint64_t i = 0; i < t->numel; i++, p += 4) {
                uint32_t b = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
                memcpy(&dst[i], &b, 4);
            }
        }
    } else if (t->dtype == ST_F16) {
        for (uint64_t i = 0; i < t->numel; i++, p += 2) dst[i] = f16_to_f32((uint16_t)(p[0] | p[1] << 8));
    } else if (t->dtype == ST_BF16) { /* the top half of a float */
        for (uint64_t i = 0; i < t->numel; i++, p += 2) {
            uint32_t b = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 24;
            memcpy(&dst[i], &b, 4);
        }
    } else {
        return err_set(err, "tensor \"%s\" has dtype %s; only F32, F16 and BF16 convert to float", t->name,
                       st_dtype_name(t->dtype));
    }
    return 0;
}

/* ---- writing ---- */

/* The header: __metadata__ first, then the tensors in order with contiguous offsets. The
 * tensors are checked here, before anything is written. */
static char *make_header(const char *path, const st_write_tensor *tensors, size_t ntensors,
                         const char *const *meta_keys, const char *const *meta_values, size_t nmeta,
                         gpt2c_error *err) {
    json_t *root = json_object(), *shape = NULL;
    if (!root) goto oom;
    if (nmeta) {
        json_t *meta = json_object();
        if (json_object_set_new(root, ST_METADATA, meta)) goto oom;
        for (size_t i = 0; i < nmeta; i++) {
            if (!meta_keys[i] || !meta_values[i]) {
                err_set(err, "%s: metadata entry %zu has no key or value", path, i);
                goto fail;
            }
            if (json_object_set_new(meta, meta_keys[i], json_string(meta_values[i]))) {
                err_set(err, "%s: metadata \"%s\": not UTF-8 (or out of memory)", path, meta_keys[i]);
                goto fail;
            }
        }
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < ntensors; i++) {
        const st_write_tensor *t = &tensors[i];
        const char *name = t->name ? t->name : "";
        if (!*name || strcmp(name, ST_METADATA) == 0 || json_object_get(root, name)) {
            err_set(err, "%s: tensor %zu: name \"%s\" is empty, reserved or used twice", path, i, name);
            goto fail;
        }
        if (t->ndim < 0 || t->ndim > ST_MAX_DIMS || (t->transpose && t->ndim != 2)) {
            err_set(err, "%s: tensor \"%s\": %d dimensions (%s)", path, name, t->ndim,
                    t->transpose ? "a transpose needs 2" : "0 to 8 allowed");
            goto fail;
        }
        if (!(shape = json_array())) goto oom;
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            uint64_t dim = (uint64_t)t->shape[d];
            if (t->shape[d] < 0 || (dim && numel > SIZE_MAX / 4 / dim)) {
                err_set(err, "%s: tensor \"%s\": shape[%d] = %lld is negative or too large", path, name,
                        d, (long long)t->shape[d]);
                goto fail;
            }
            numel *= dim;
            if (json_array_append_new(shape, json_integer(t->shape[d]))) goto oom;
        }
        if (numel && !t->data) {
            err_set(err, "%s: tensor \"%s\": no data", path, name);
            goto fail;
        }
        if (offset > (uint64_t)INT64_MAX - numel * 4) { /* JSON integers are int64 */
            err_set(err, "%s: the tensors are too large for one file", path);
            goto fail;
        }
        /* "o" hands shape to the entry, also when packing fails */
        json_t *entry = json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape, "data_offsets",
                                  (json_int_t)offset, (json_int_t)(offset + numel * 4));
        shape = NULL;
        if (json_object_set_new(root, name, entry)) {
            err_set(err, "%s: tensor \"%s\": name not UTF-8 (or out of memory)", path, name);
            goto fail;
        }
        offset += numel * 4;
    }
    char *text = json_dumps(root, JSON_COMPACT);
    if (!text) goto oom;
    json_decref(root);
    return text;
oom:
    err_set(err, "out of memory");
fail:
    json_decref(shape);
    json_decref(root);
    return NULL;
}

/* Little-endian floats to f: straight from memory on little-endian hosts, else through buf. */
static int write_floats(FILE *f, const float *x, size_t n, uint32_t *buf, size_t cap) {
    if (little_endian_host()) return fwrite(x, 4, n, f) == n ? 0 : -1;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < cap ? n - done : cap;
        for (size_t i = 0; i < k; i++) {
            uint32_t b;
            memcpy(&b, &x[done + i], 4);
            unsigned char *p = (unsigned char *)&buf[i];
            p[0] = (unsigned char)b, p[1] = (unsigned char)(b >> 8);
            p[2] = (unsigned char)(b >> 16), p[3] = (unsigned char)(b >> 24);
        }
        if (fwrite(buf, 4, k, f) != k) return -1;
        done += k;
    }
    return 0;
}

/* out[i][j] = x[j][i] for the [s0][s1] output, x being [s1][s0]. Output rows are gathered in
 * blocks of up to 64 and written with one fwrite. Within a block, tiles of 16 source rows keep
 * the cache lines in use few: a block's rows are often a multiple of 4 KB apart, and walking all
 * 64 of them per element thrashes the L1 sets they share (3x slower on GPT-2's shapes). A row
 * longer than the buffer is written alone, in pieces, so the buffer is bounded for any shape. */
#define ST_BLOCK_FLOATS ((size_t)1 << 18)
static int write_transposed(FILE *f, const float *x, size_t s0, size_t s1, float *buf, uint32_t *le) {
    size_t rows = s1 ? ST_BLOCK_FLOATS / s1 : 1;
    rows = rows > 64 ? 64 : rows ? rows : 1;
    size_t cols = s1 < ST_BLOCK_FLOATS ? s1 : ST_BLOCK_FLOATS;
    for (size_t i0 = 0; i0 < s0; i0 += rows) {
        size_t nr = s0 - i0 < rows ? s0 - i0 : rows;
        for (size_t j0 = 0; j0 < s1; j0 += cols) {
            size_t nc = s1 - j0 < cols ? s1 - j0 : cols; /* nc < s1 only when nr == 1 */
            for (size_t c0 = 0; c0 < nc; c0 += 16) { /* 16 x nr tiles: few cache lines live */
                size_t c1 = nc - c0 < 16 ? nc : c0 + 16;
                for (size_t r = 0; r < nr; r++)
                    for (size_t c = c0; c < c1; c++) buf[r * nc + c] = x[(j0 + c) * s0 + i0 + r];
            }
            if (write_floats(f, buf, nr * nc, le, ST_BLOCK_FLOATS)) return -1;
        }
    }
    return 0;
}

int st_write(const char *path, const st_write_tensor *tensors, size_t ntensors,
             const char *const *meta_keys, const char *const *meta_values, size_t nmeta,
             gpt2c_error *err) {
    char *header = make_header(path, tensors, ntensors, meta_keys, meta_values, nmeta, err);
    if (!header) return -1;
    /* Padded with spaces to a multiple of 8, as the reference writer does, so that the data area
     * (and every F32 tensor in it) starts 8-byte aligned in the file. */
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)((uint64_t)padded >> (8 * i));

    float *buf = malloc(ST_BLOCK_FLOATS * sizeof *buf);
    uint32_t *le = little_endian_host() ? NULL : malloc(ST_BLOCK_FLOATS * sizeof *le); /* byte swaps */
    atomic_file af;
    if (!buf || (!le && !little_endian_host())) {
        free(header), free(buf), free(le);
        return err_set(err, "out of memory");
    }
    if (atomic_file_open(&af, path, err)) {
        free(header), free(buf), free(le);
        return -1;
    }
    long long total = 8 + (long long)padded;
    for (size_t i = 0; i < ntensors; i++) {
        long long numel = 1;
        for (int d = 0; d < tensors[i].ndim; d++) numel *= tensors[i].shape[d];
        total += 4 * numel;
    }
    atomic_file_size(&af, total);
    errno = 0;
    int bad = fwrite(len_le, 1, 8, af.f) != 8 || fwrite(header, 1, hlen, af.f) != hlen;
    for (size_t i = hlen; i < padded && !bad; i++) bad = fputc(' ', af.f) == EOF;
    for (size_t i = 0; i < ntensors && !bad; i++) {
        const st_write_tensor *t = &tensors[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        if (t->transpose) bad = write_transposed(af.f, t->data, (size_t)t->shape[0], (size_t)t->shape[1], buf, le);
        else if (numel) bad = write_floats(af.f, t->data, numel, le, ST_BLOCK_FLOATS);
    }
    int e = errno ? errno : EIO;
    free(header), free(buf), free(le);
    if (bad) return atomic_file_fail(&af, e, err);
    return atomic_file_commit(&af, err);
}
