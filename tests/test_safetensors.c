/* safetensors and config.json: what the writers produce reads back exactly; half floats convert
 * exactly; every kind of damaged file is an error naming the file; writes are atomic. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "io/hf_config.h"
#include "io/safetensors.h"
#include "util/atomic_file.h"

static char dir[] = "/tmp/gpt2c_test_safetensors_XXXXXX";

static char *path_in_dir(const char *name) {
    static char buf[4][256]; /* a few paths may be live at once */
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static void write_raw(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

/* A safetensors file from a header text and data bytes, the header length as given. */
static void write_st_len(const char *path, uint64_t hlen, const char *header, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)(hlen >> (8 * i));
    fwrite(len, 1, 8, f);
    fputs(header, f);
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void write_st(const char *path, const char *header, const void *data, size_t n) {
    write_st_len(path, strlen(header), header, data, n);
}

static int zeroed(const st_file *f) {
    return !f->map && !f->tensors && !f->ntensors && !f->meta_keys && !f->nmeta && !f->path;
}

/* st_open fails with a message that names the file and says `what`, and leaves f empty. */
static int st_fails(const char *path, const char *what) {
    st_file f;
    gpt2c_error err = {{0}};
    int ok = st_open(&f, path, &err) == -1 && err.msg[0] && strstr(err.msg, path) && strstr(err.msg, what) &&
             zeroed(&f);
    if (!ok) fprintf(stderr, "st_open %s: want \"%s\", got \"%s\"\n", path, what, err.msg);
    st_close(&f); /* harmless after a failed open */
    return ok;
}

/* A malformed header, with `data_len` zero bytes of data after it. */
static int header_fails(const char *name, const char *header, size_t data_len, const char *what) {
    static const unsigned char zeros[64];
    write_st(path_in_dir(name), header, zeros, data_len);
    int ok = st_fails(path_in_dir(name), what);
    unlink(path_in_dir(name));
    return ok;
}

static int same_bits(float a, float b) { return memcmp(&a, &b, 4) == 0; }

static void test_round_trip(void) {
    gpt2c_error err;
    float vec[5] = {1.5f, -2.25f, 0.0f, 1e-30f, 3.0e30f};
    float mat[3 * 4], mat_t[4 * 3], scalar = 42.0f;
    for (int i = 0; i < 12; i++) mat[i] = (float)i * 0.5f - 3.0f;
    for (int i = 0; i < 4; i++) /* mat_t holds the [4][3] transpose of the [3][4] matrix */
        for (int j = 0; j < 3; j++) mat_t[i * 3 + j] = mat[j * 4 + i];
    /* two transposes big enough for both ways of blocking: many 64-row blocks, and rows longer
     * than the buffer (written in pieces) */
    size_t big0 = 200, big1 = 333, wide0 = 3, wide1 = 300001;
    float *big = malloc(big0 * big1 * sizeof *big), *wide = malloc(wide0 * wide1 * sizeof *wide);
    for (size_t i = 0; i < big0 * big1; i++) big[i] = (float)i;
    for (size_t i = 0; i < wide0 * wide1; i++) wide[i] = (float)i * 0.25f;

    st_write_tensor ts[] = {
        {.name = "vec", .data = vec, .ndim = 1, .shape = {5}},
        {.name = "mat", .data = mat, .ndim = 2, .shape = {3, 4}},
        {.name = "mat.T", .data = mat_t, .ndim = 2, .shape = {3, 4}, .transpose = 1},
        {.name = "scalar", .data = &scalar, .ndim = 0},
        {.name = "empty", .data = NULL, .ndim = 2, .shape = {0, 7}},
        {.name = "big.T", .data = big, .ndim = 2, .shape = {(int64_t)big1, (int64_t)big0}, .transpose = 1},
        {.name = "wide.T", .data = wide, .ndim = 2, .shape = {(int64_t)wide0, (int64_t)wide1}, .transpose = 1},
    };
    size_t nts = sizeof ts / sizeof *ts;
    const char *keys[] = {"format", "note"}, *values[] = {"pt", "written by \"test\" \xc3\xa9"};
    const char *path = path_in_dir("model.safetensors");
    CHECK(st_write(path, ts, nts, keys, values, 2, &err) == 0);
    CHECK(access(path_in_dir("model.safetensors.tmp"), F_OK) != 0);

    /* the layout the reference writer uses: __metadata__ first, header padded to 8 with spaces */
    FILE *raw = fopen(path, "rb");
    unsigned char head[8 + 64];
    CHECK(fread(head, 1, sizeof head, raw) == sizeof head);
    fclose(raw);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | head[i];
    CHECK(hlen % 8 == 0 && memcmp(head + 8, "{\"__metadata__\":{\"format\":\"pt\"", 30) == 0);

    st_file f;
    CHECK(st_open(&f, path, &err) == 0);
    CHECK(f.ntensors == nts && f.nmeta == 2);
    CHECK(strcmp(st_meta(&f, "format"), "pt") == 0 && strcmp(st_meta(&f, "note"), values[1]) == 0);
    CHECK(st_meta(&f, "missing") == NULL && st_find(&f, "missing") == NULL);
    for (size_t i = 0; i < nts && i < f.ntensors; i++) { /* the file keeps the given order */
        const st_tensor *t = &f.tensors[i];
        CHECK(strcmp(t->name, ts[i].name) == 0 && t->dtype == ST_F32 && t->ndim == ts[i].ndim);
        uint64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (uint64_t)ts[i].shape[d];
        CHECK(memcmp(t->shape, ts[i].shape, (size_t)t->ndim * sizeof *t->shape) == 0);
        CHECK(t->numel == numel && t->nbytes == numel * 4);
        CHECK(((const unsigned char *)t->data - (const unsigned char *)f.map - 8) % 4 == 0);
    }
    float got[12];
    const st_tensor *t = st_find(&f, "vec");
    CHECK(t && st_to_f32(t, got, &err) == 0 && memcmp(got, vec, sizeof vec) == 0);
    t = st_find(&f, "mat");
    CHECK(t && st_to_f32(t, got, &err) == 0 && memcmp(got, mat, sizeof mat) == 0);
    t = st_find(&f, "mat.T"); /* the file holds mat again, from its transpose */
    CHECK(t && st_to_f32(t, got, &err) == 0 && memcmp(got, mat, sizeof mat) == 0);
    t = st_find(&f, "scalar");
    CHECK(t && t->numel == 1 && st_to_f32(t, got, &err) == 0 && got[0] == 42.0f);
    t = st_find(&f, "empty");
    CHECK(t && t->numel == 0 && t->nbytes == 0 && st_to_f32(t, got, &err) == 0);

    float *back = malloc(wide0 * wide1 * sizeof *back);
    t = st_find(&f, "big.T");
    CHECK(t && st_to_f32(t, back, &err) == 0);
    int bad = 0;
    for (size_t i = 0; i < big1 && t; i++) /* file [big1][big0], memory [big0][big1] */
        for (size_t j = 0; j < big0; j++) bad += back[i * big0 + j] != big[j * big1 + i];
    CHECK(bad == 0);
    t = st_find(&f, "wide.T");
    CHECK(t && st_to_f32(t, back, &err) == 0);
    bad = 0;
    for (size_t i = 0; i < wide0 && t; i++) /* file [wide0][wide1], memory [wide1][wide0] */
        for (size_t j = 0; j < wide1; j++) bad += back[i * wide1 + j] != wide[j * wide0 + i];
    CHECK(bad == 0);
    st_close(&f);
    CHECK(zeroed(&f));
    st_close(&f); /* twice is harmless */

    /* no metadata: no __metadata__ entry */
    CHECK(st_write(path, ts, 2, NULL, NULL, 0, &err) == 0);
    CHECK(st_open(&f, path, &err) == 0 && f.ntensors == 2 && f.nmeta == 0);
    st_close(&f);

    /* bad requests fail before touching the file that is there */
    st_write_tensor dup[] = {{.name = "a", .data = vec, .ndim = 1, .shape = {1}},
                             {.name = "a", .data = vec, .ndim = 1, .shape = {1}}};
    CHECK(st_write(path, dup, 2, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "used twice"));
    st_write_tensor bad_t[] = {{.name = "t", .data = vec, .ndim = 1, .shape = {5}, .transpose = 1}};
    CHECK(st_write(path, bad_t, 1, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "transpose needs 2"));
    st_write_tensor neg[] = {{.name = "n", .data = vec, .ndim = 2, .shape = {2, -1}}};
    CHECK(st_write(path, neg, 1, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "negative"));
    st_write_tensor meta_name[] = {{.name = "__metadata__", .data = vec, .ndim = 1, .shape = {1}}};
    CHECK(st_write(path, meta_name, 1, NULL, NULL, 0, &err) == -1 && strstr(err.msg, "reserved"));
    CHECK(st_open(&f, path, &err) == 0 && f.ntensors == 2);
    st_close(&f);
    CHECK(st_write("/nonexistent/dir/x.safetensors", ts, 1, NULL, NULL, 0, &err) == -1 &&
          strstr(err.msg, "/nonexistent/dir/x.safetensors.tmp"));

    free(big);
    free(wide);
    free(back);
    unlink(path);
}

static void test_atomic_file(void) {
    gpt2c_error err;
    const char *path = path_in_dir("atomic.txt");
    atomic_file af;
    CHECK(atomic_file_open(&af, path, &err) == 0);
    fputs("first", af.f);
    CHECK(access(path, F_OK) != 0); /* nothing under the final name until commit */
    CHECK(atomic_file_commit(&af, &err) == 0);
    atomic_file_abort(&af); /* after a commit: nothing to do */
    CHECK(atomic_file_open(&af, path, &err) == 0);
    fputs("second", af.f);
    atomic_file_abort(&af);
    char buf[16] = {0};
    FILE *f = fopen(path, "rb");
    CHECK(f && fread(buf, 1, sizeof buf - 1, f) == 5 && strcmp(buf, "first") == 0);
    if (f) fclose(f);
    CHECK(access(path_in_dir("atomic.txt.tmp"), F_OK) != 0);
    CHECK(atomic_file_open(&af, "/nonexistent/dir/x", &err) == -1 && strstr(err.msg, "/nonexistent/dir/x.tmp"));
    unlink(path);
}

static float pow2(int e) { /* exact for the exponents of half floats */
    float x = 1.0f;
    for (; e > 0; e--) x *= 2.0f;
    for (; e < 0; e++) x *= 0.5f;
    return x;
}

/* F16 by its definition, to compare the bit manipulation with. */
static float f16_reference(uint16_t h) {
    int exp = h >> 10 & 31, mant = h & 1023;
    float sign = h >> 15 ? -1.0f : 1.0f;
    if (exp == 31) return mant ? NAN : sign * INFINITY;
    if (exp == 0) return sign * (float)mant * pow2(-24);
    return sign * (1.0f + (float)mant / 1024.0f) * pow2(exp - 15);
}

static void test_half_floats(void) {
    gpt2c_error err;
    /* hand-made file: one U8 byte first, so every following tensor starts at an odd address */
    static const uint16_t f16[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x7C00, 0xFC00, 0x8000, 0x3555, 0x7E00};
    static const float f16_want[] = {1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f, 6.0975551605224609375e-5f,
                                     6.103515625e-5f, INFINITY, -INFINITY, -0.0f, 0.333251953125f};
    static const uint16_t bf16[] = {0x3F80, 0xC049, 0x7F80, 0x0001, 0x8000, 0x7FC0};
    static const float bf16_want[] = {1.0f, -3.140625f, INFINITY, 0x1p-133f, -0.0f};
    const size_t n16 = sizeof f16 / 2, nb16 = sizeof bf16 / 2;
    static const float f32[] = {1.25f, -0.0f, 3.4028234663852886e38f};
    unsigned char data[1 + sizeof f16 + sizeof bf16 + sizeof f32 + 2 * 65536], *p = data;
    *p++ = 7;
    for (size_t i = 0; i < n16; i++) *p++ = (unsigned char)f16[i], *p++ = (unsigned char)(f16[i] >> 8);
    for (size_t i = 0; i < nb16; i++) *p++ = (unsigned char)bf16[i], *p++ = (unsigned char)(bf16[i] >> 8);
    for (size_t i = 0; i < 3; i++) {
        uint32_t b;
        memcpy(&b, &f32[i], 4);
        for (int k = 0; k < 4; k++) *p++ = (unsigned char)(b >> (8 * k));
    }
    for (unsigned h = 0; h < 65536; h++) *p++ = (unsigned char)h, *p++ = (unsigned char)(h >> 8);
    char header[512];
    size_t o1 = 1, o2 = o1 + sizeof f16, o3 = o2 + sizeof bf16, o4 = o3 + sizeof f32, o5 = o4 + 2 * 65536;
    snprintf(header, sizeof header,
             "{\"byte\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
             "\"h\":{\"dtype\":\"F16\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[%zu],\"data_offsets\":[%zu,%zu]},"
             "\"f\":{\"dtype\":\"F32\",\"shape\":[3,1],\"data_offsets\":[%zu,%zu]},"
             "\"all\":{\"dtype\":\"F16\",\"shape\":[256,256],\"data_offsets\":[%zu,%zu]},"
             "\"__metadata__\":{}}",
             n16, o1, o2, nb16, o2, o3, o3, o4, o4, o5);
    const char *path = path_in_dir("half.safetensors");
    write_st(path, header, data, sizeof data);
    st_file f;
    CHECK(st_open(&f, path, &err) == 0);
    CHECK(f.ntensors == 5 && f.nmeta == 0);
    float got[65536];
    const st_tensor *t = st_find(&f, "h");
    CHECK(t && t->dtype == ST_F16 && st_to_f32(t, got, &err) == 0);
    for (size_t i = 0; t && i < n16 - 1; i++) CHECK(same_bits(got[i], f16_want[i]));
    CHECK(isnan(got[n16 - 1]));
    t = st_find(&f, "b");
    CHECK(t && t->dtype == ST_BF16 && st_to_f32(t, got, &err) == 0);
    for (size_t i = 0; t && i < nb16 - 1; i++) CHECK(same_bits(got[i], bf16_want[i]));
    CHECK(isnan(got[nb16 - 1]));
    t = st_find(&f, "f");
    CHECK(t && st_to_f32(t, got, &err) == 0 && memcmp(got, f32, sizeof f32) == 0);
    t = st_find(&f, "all"); /* every half value against its definition */
    CHECK(t && st_to_f32(t, got, &err) == 0);
    int bad = 0;
    for (unsigned h = 0; h < 65536; h++) {
        float want = f16_reference((uint16_t)h);
        bad += isnan(want) ? !isnan(got[h]) || !!signbit(got[h]) != (int)(h >> 15) : !same_bits(got[h], want);
    }
    CHECK(bad == 0);
    t = st_find(&f, "byte");
    CHECK(t && t->dtype == ST_U8 && st_to_f32(t, got, &err) == -1 && strstr(err.msg, "U8"));
    CHECK(strcmp(st_dtype_name(ST_F8_E4M3), "F8_E4M3") == 0);
    st_close(&f);
    unlink(path);
}

static void test_malformed(void) {
    CHECK(st_fails(path_in_dir("missing.safetensors"), "cannot open"));
    CHECK(st_fails(dir, "not a regular file"));
    write_raw(path_in_dir("empty"), "", 0);
    CHECK(st_fails(path_in_dir("empty"), "too short"));
    write_raw(path_in_dir("short"), "\x02\0\0\0\0", 5);
    CHECK(st_fails(path_in_dir("short"), "too short"));
    write_st_len(path_in_dir("long_header"), 1000, "{}", NULL, 0);
    CHECK(st_fails(path_in_dir("long_header"), "past the end of the file"));
    write_st_len(path_in_dir("huge_header"), UINT64_MAX, "{}", NULL, 0);
    CHECK(st_fails(path_in_dir("huge_header"), "header length"));
    write_st_len(path_in_dir("cut_header"), 3, "{}", NULL, 0); /* one byte short of its header */
    CHECK(st_fails(path_in_dir("cut_header"), "past the end of the file"));
    const char *names[] = {"missing.safetensors", "empty", "short", "long_header", "huge_header", "cut_header"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(path_in_dir(names[i]));

#define T(rest) "{\"t\":{" rest "}}"
    CHECK(header_fails("not_json", "{\"t\": {", 0, "not valid JSON"));
    CHECK(header_fails("garbage", "{} x", 0, "not valid JSON"));
    CHECK(header_fails("array", "[]", 0, "not a JSON object"));
    CHECK(header_fails("entry", "{\"t\":[1]}", 0, "entry is not an object"));
    CHECK(header_fails("no_dtype", T("\"shape\":[1],\"data_offsets\":[0,4]"), 4, "dtype missing"));
    CHECK(header_fails("dtype", T("\"dtype\":\"F128\",\"shape\":[1],\"data_offsets\":[0,16]"), 16, "unknown dtype \"F128\""));
    CHECK(header_fails("dtype_case", T("\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]"), 4, "unknown dtype"));
    CHECK(header_fails("no_shape", T("\"dtype\":\"F32\",\"data_offsets\":[0,4]"), 4, "shape missing"));
    CHECK(header_fails("neg_shape", T("\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,4]"), 4, "shape[1] is not a non-negative integer"));
    CHECK(header_fails("real_shape", T("\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]"), 4, "shape[0] is not a non-negative integer"));
    CHECK(header_fails("str_shape", T("\"dtype\":\"F32\",\"shape\":[\"1\"],\"data_offsets\":[0,4]"), 4, "shape[0]"));
    CHECK(header_fails("dims", T("\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]"), 1, "9 dimensions"));
    CHECK(header_fails("overflow", T("\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,1]"), 1, "too large"));
    CHECK(header_fails("overflow_bytes", T("\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,8]"), 8, "too large"));
    CHECK(header_fails("past_end", T("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]"), 8, "past the data area"));
    CHECK(header_fails("size", T("\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]"), 16, "span 12 bytes but shape and dtype F32 need 16"));
    CHECK(header_fails("size_dtype", T("\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,16]"), 16, "need 8"));
    CHECK(header_fails("order", T("\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]"), 8, "begin 8 is after end 4"));
    CHECK(header_fails("offsets_neg", T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]"), 8, "data_offsets is not"));
    CHECK(header_fails("offsets_three", T("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]"), 8, "data_offsets is not"));
    CHECK(header_fails("duplicate", "{\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                                    "\"t\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, "duplicate"));
    CHECK(header_fails("meta_value", "{\"__metadata__\":{\"format\":\"pt\",\"step\":5}}", 0, "value of \"step\" is not a string"));
    CHECK(header_fails("meta_object", "{\"__metadata__\":[\"pt\"]}", 0, "__metadata__ is not an object"));
#undef T
    /* the same entries, well formed, are accepted (so the cases above fail for their reason) */
    st_file f;
    gpt2c_error err;
    write_st(path_in_dir("ok"), "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},\"__metadata__\":{\"a\":\"b\"}}    ",
             "\0\0\0\0\0\0\0\0\0\0\0\0", 12);
    CHECK(st_open(&f, path_in_dir("ok"), &err) == 0 && f.ntensors == 1 && strcmp(st_meta(&f, "a"), "b") == 0);
    st_close(&f);
    unlink(path_in_dir("ok"));
}

/* config.json */

static void write_config(const char *text) { write_raw(path_in_dir("config.json"), text, strlen(text)); }

static int config_fails(const char *what) {
    gpt2_config cfg = {1, 2, 3, 4}, before = cfg;
    gpt2c_error err = {{0}};
    int ok = hf_config_read(dir, &cfg, &err) == -1 && err.msg[0] && strstr(err.msg, dir) && strstr(err.msg, what) &&
             memcmp(&cfg, &before, sizeof cfg) == 0; /* untouched on failure */
    if (!ok) fprintf(stderr, "hf_config_read: want \"%s\", got \"%s\"\n", what, err.msg);
    return ok;
}

static void test_hf_config(void) {
    gpt2c_error err;
    CHECK(config_fails("cannot open")); /* no config.json yet */

    gpt2_config cfg = {.n_layer = 12, .n_head = 12, .n_embd = 768, .max_seq_len = 1024}, back;
    CHECK(hf_config_write(dir, &cfg, &err) == 0);
    CHECK(access(path_in_dir("config.json.tmp"), F_OK) != 0);
    CHECK(hf_config_read(dir, &back, &err) == 0 && memcmp(&cfg, &back, sizeof cfg) == 0);
    char slash[300]; /* DIR/ works the same */
    snprintf(slash, sizeof slash, "%s/", dir);
    CHECK(hf_config_read(slash, &back, &err) == 0 && memcmp(&cfg, &back, sizeof cfg) == 0);

    /* what transformers needs is in the written file */
    json_error_t jerr;
    json_t *j = json_load_file(path_in_dir("config.json"), 0, &jerr);
    CHECK(j != NULL);
    CHECK(strcmp(json_string_value(json_array_get(json_object_get(j, "architectures"), 0)), "GPT2LMHeadModel") == 0);
    CHECK(strcmp(json_string_value(json_object_get(j, "activation_function")), "gelu_new") == 0);
    CHECK(json_integer_value(json_object_get(j, "n_ctx")) == 1024 && json_is_null(json_object_get(j, "n_inner")));
    CHECK(json_integer_value(json_object_get(j, "eos_token_id")) == 50256);
    CHECK(json_real_value(json_object_get(j, "resid_pdrop")) == 0.0 && json_is_true(json_object_get(j, "scale_attn_weights")));
    json_decref(j);
    char text[4096] = {0};
    FILE *fp = fopen(path_in_dir("config.json"), "rb");
    CHECK(fp && fread(text, 1, sizeof text - 1, fp) > 0);
    if (fp) fclose(fp);
    CHECK(strstr(text, "\n  \"layer_norm_epsilon\": 1e-5,\n") || /* indent 2, no float noise */
          strstr(text, "\n  \"layer_norm_epsilon\": 1e-05,\n"));

#define BASE "\"model_type\":\"gpt2\",\"n_layer\":2,\"n_head\":4,\"n_embd\":64,\"vocab_size\":50257"
    write_config("{" BASE ",\"n_ctx\":128}"); /* n_ctx alone stands for n_positions */
    CHECK(hf_config_read(dir, &back, &err) == 0 && back.n_layer == 2 && back.n_head == 4 && back.n_embd == 64 &&
          back.max_seq_len == 128);
    write_config("{\"architectures\":[\"GPT2LMHeadModel\"],\"n_layer\":2,\"n_head\":4,\"n_embd\":64,"
                 "\"vocab_size\":50257,\"n_positions\":256,\"n_ctx\":128,\"activation_function\":\"gelu_new\","
                 "\"layer_norm_epsilon\":1e-5,\"n_inner\":256}"); /* architectures without model_type */
    CHECK(hf_config_read(dir, &back, &err) == 0 && back.max_seq_len == 256);

    write_config("{\"model_type\":\"gpt2\"");
    CHECK(config_fails("not valid JSON"));
    write_config("{\"model_type\":\"gpt2\",\"n_head\":4,\"n_embd\":64,\"vocab_size\":50257,\"n_positions\":128}");
    CHECK(config_fails("n_layer is missing"));
    write_config("{" BASE ",\"n_layer\":2}");
    CHECK(config_fails("not valid JSON")); /* duplicate key */
    write_config("{\"model_type\":\"gpt2\",\"n_layer\":2.5,\"n_head\":4,\"n_embd\":64,\"vocab_size\":50257,\"n_positions\":128}");
    CHECK(config_fails("n_layer must be a positive integer"));
    write_config("{\"model_type\":\"gpt2\",\"n_layer\":-2,\"n_head\":4,\"n_embd\":64,\"vocab_size\":50257,\"n_positions\":128}");
    CHECK(config_fails("n_layer must be a positive integer"));
    write_config("{" BASE "}");
    CHECK(config_fails("n_positions is missing"));
    write_config("{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_head\":4,\"n_embd\":64,\"vocab_size\":50304,\"n_positions\":128}");
    CHECK(config_fails("vocab_size must be 50257"));
    write_config("{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_head\":4,\"n_embd\":64,\"n_positions\":128}");
    CHECK(config_fails("vocab_size is missing"));
    write_config("{\"model_type\":\"llama\",\"architectures\":[\"GPT2LMHeadModel\"],\"n_layer\":2,\"n_head\":4,"
                 "\"n_embd\":64,\"vocab_size\":50257,\"n_positions\":128}");
    CHECK(config_fails("model_type is \"llama\""));
    write_config("{\"architectures\":[\"LlamaForCausalLM\"],\"n_layer\":2,\"n_head\":4,\"n_embd\":64,"
                 "\"vocab_size\":50257,\"n_positions\":128}");
    CHECK(config_fails("model_type is missing"));
    write_config("{" BASE ",\"n_positions\":128,\"activation_function\":\"relu\"}");
    CHECK(config_fails("activation_function is \"relu\""));
    write_config("{" BASE ",\"n_positions\":128,\"layer_norm_epsilon\":1e-6}");
    CHECK(config_fails("layer_norm_epsilon"));
    write_config("{" BASE ",\"n_positions\":128,\"n_inner\":100}");
    CHECK(config_fails("n_inner"));
    write_config("{" BASE ",\"n_positions\":128,\"scale_attn_by_inverse_layer_idx\":true}");
    CHECK(config_fails("scale_attn_by_inverse_layer_idx"));
    write_config("{" BASE ",\"n_positions\":128,\"tie_word_embeddings\":false}");
    CHECK(config_fails("tie_word_embeddings"));
    /* shapes the model cannot take: gpt2_config_check's message, prefixed with the file */
    write_config("{\"model_type\":\"gpt2\",\"n_layer\":2,\"n_head\":5,\"n_embd\":64,\"vocab_size\":50257,\"n_positions\":128}");
    CHECK(config_fails(""));
#undef BASE
    CHECK(hf_config_write("/nonexistent/dir", &cfg, &err) == -1 && strstr(err.msg, "/nonexistent/dir/config.json"));
    unlink(path_in_dir("config.json"));
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    test_atomic_file();
    test_round_trip();
    test_half_floats();
    test_malformed();
    test_hf_config();
    CHECK(rmdir(dir) == 0); /* every test removed what it wrote */
    return check_done();
}
