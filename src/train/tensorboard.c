#include <errno.h>
#include <isa-l/crc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "train/tensorboard.h"
#include "util/bytes.h"
#include "util/error.h"
#include "util/fs.h"

static uint32_t tb_masked_crc32c(const void *data, size_t n) {
    /* CRC32C (Castagnoli), as crc32c() of the standard: ISA-L's iSCSI CRC from all ones,
     * inverted at the end; then TFRecord's mask */
    uint32_t crc = crc32_iscsi((unsigned char *)data, (int)n, 0xffffffffu) ^ 0xffffffffu;
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

/* The low n bytes of v, least significant first (TFRecord's and protobuf's fixed-width fields). */
static void little_endian(unsigned char *out, uint64_t v, int n) {
    for (int i = 0; i < n; i++) out[i] = (unsigned char)(v >> (8 * i));
}

/* ---- protocol buffer encoding: a growable buffer ---- */

typedef struct pb {
    char *b;
    size_t n, cap;
    int oom;
} pb;

static void pb_bytes(pb *p, const void *data, size_t n) {
    if (!p->oom && bytes_append(&p->b, &p->n, &p->cap, data, n) != 0) p->oom = 1;
}

static void pb_varint(pb *p, uint64_t v) {
    unsigned char b[10];
    int k = 0;
    do {
        b[k++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_bytes(p, b, (size_t)k);
}

enum { WIRE_VARINT = 0, WIRE_64 = 1, WIRE_LEN = 2, WIRE_32 = 5 };
static void pb_key(pb *p, int field, int wire) { pb_varint(p, (uint64_t)(field << 3 | wire)); }

static void pb_len_field(pb *p, int field, const void *data, size_t n) {
    pb_key(p, field, WIRE_LEN);
    pb_varint(p, n);
    pb_bytes(p, data, n);
}

static void pb_message(pb *p, int field, const pb *inner) {
    pb_len_field(p, field, inner->b, inner->n);
    p->oom |= inner->oom;
}

static void pb_free(pb *p) { free(p->b); }

/* ---- tensorflow.Event: wall_time 1 (double), step 2 (int64), file_version 3, summary 5,
 * session_log 7 ---- */

static double wall_time(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

static void event_head(pb *e, long step) {
    double t = wall_time();
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    unsigned char le[8];
    little_endian(le, bits, 8);
    pb_key(e, 1, WIRE_64);
    pb_bytes(e, le, 8);
    pb_key(e, 2, WIRE_VARINT);
    pb_varint(e, (uint64_t)step);
}

/* One TFRecord: the event, framed and flushed. */
static int write_record(tb_writer *w, pb *e, gpt2c_error *err) {
    if (e->oom) {
        pb_free(e);
        return err_set(err, "out of memory writing %s", w->path);
    }
    unsigned char head[12];
    uint64_t n = e->n;
    little_endian(head, n, 8);
    uint32_t c = tb_masked_crc32c(head, 8), d = tb_masked_crc32c(e->b, e->n);
    little_endian(head + 8, c, 4);
    unsigned char tail[4];
    little_endian(tail, d, 4);
    int ok = fwrite(head, 1, 12, w->f) == 12 && fwrite(e->b, 1, e->n, w->f) == e->n &&
             fwrite(tail, 1, 4, w->f) == 4 && fflush(w->f) == 0;
    pb_free(e);
    return ok ? 0 : err_set(err, "cannot write %s: %s", w->path, strerror(errno));
}

int tb_open(tb_writer *w, const char *dir, long start_step, gpt2c_error *err) {
    memset(w, 0, sizeof *w);
    if (fs_make_dirs(dir, err) != 0) return -1;
    char host[64] = "localhost", name[160];
    gethostname(host, sizeof host - 1);
    /* TensorBoard's name (it reads *tfevents* files in name order): a new file per run, named
     * by the time to the microsecond, so that the runs of one second keep their order */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    snprintf(name, sizeof name, "events.out.tfevents.%ld.%06ld.%s.%ld.gpt2c", (long)tv.tv_sec,
             (long)tv.tv_usec, host, (long)getpid());
    w->path = fs_join(dir, name);
    if (!w->path) return err_set(err, "out of memory");
    if (!(w->f = fopen(w->path, "wb"))) {
        err_set(err, "cannot create %s: %s", w->path, strerror(errno));
        free(w->path);
        w->path = NULL;
        return -1;
    }
    pb e = {0};
    event_head(&e, start_step);
    pb_len_field(&e, 3, "brain.Event:2", 13);
    int rc = write_record(w, &e, err);
    if (rc == 0 && start_step > 0) { /* SessionLog{status: START} */
        pb log = {0}, s = {0};
        pb_key(&log, 1, WIRE_VARINT);
        pb_varint(&log, 1);
        event_head(&s, start_step);
        pb_message(&s, 7, &log);
        pb_free(&log);
        rc = write_record(w, &s, err);
    }
    return rc;
}

/* Summary{value: [Value{tag 1, ...}]} as field 5 of an event at step. */
static int write_value(tb_writer *w, long step, const pb *value, gpt2c_error *err) {
    pb summary = {0}, e = {0};
    pb_message(&summary, 1, value);
    event_head(&e, step);
    pb_message(&e, 5, &summary);
    pb_free(&summary);
    return write_record(w, &e, err);
}

int tb_scalar(tb_writer *w, long step, const char *tag, double value, gpt2c_error *err) {
    pb v = {0};
    pb_len_field(&v, 1, tag, strlen(tag));
    float f = (float)value; /* simple_value is a float */
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    unsigned char le[4];
    little_endian(le, bits, 4);
    pb_key(&v, 2, WIRE_32);
    pb_bytes(&v, le, 4);
    int rc = write_value(w, step, &v, err);
    pb_free(&v);
    return rc;
}

int tb_text(tb_writer *w, long step, const char *tag, const char *text, size_t len,
            gpt2c_error *err) {
    /* Value{tag 1, metadata 9: SummaryMetadata{plugin_data 1: PluginData{plugin_name 1: "text"}},
     * tensor 8: TensorProto{dtype 1: DT_STRING (7), tensor_shape 2: {} (a scalar),
     * string_val 8: the text}} */
    pb plugin = {0}, meta = {0}, shape = {0}, tensor = {0}, v = {0};
    pb_len_field(&plugin, 1, "text", 4);
    pb_message(&meta, 1, &plugin);
    pb_key(&tensor, 1, WIRE_VARINT);
    pb_varint(&tensor, 7);
    pb_message(&tensor, 2, &shape);
    pb_len_field(&tensor, 8, text, len);
    pb_len_field(&v, 1, tag, strlen(tag));
    pb_message(&v, 9, &meta);
    pb_message(&v, 8, &tensor);
    int rc = write_value(w, step, &v, err);
    pb_free(&plugin), pb_free(&meta), pb_free(&shape), pb_free(&tensor), pb_free(&v);
    return rc;
}

int tb_close(tb_writer *w, gpt2c_error *err) {
    int bad = w->f && fclose(w->f) != 0;
    int rc = bad ? err_set(err, "cannot write %s: %s", w->path, strerror(errno)) : 0;
    free(w->path);
    memset(w, 0, sizeof *w);
    return rc;
}
