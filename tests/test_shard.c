/* Shards: what the writer commits reads back; every kind of damaged file is an error. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "data/shard.h"

static char dir[] = "/tmp/gpt2c_test_shard_XXXXXX";

static char *path_in_dir(const char *name) {
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", dir, name);
    return buf;
}

static void write_raw(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

static int fails_with(const char *path, const char *what) {
    gpt2c_shard_info info;
    gpt2c_error err;
    uint16_t *t;
    uint64_t n;
    int ok = gpt2c_shard_inspect(path, &info, &err) == -1 && strstr(err.msg, what) != NULL;
    if (!ok) fprintf(stderr, "inspect %s: want \"%s\", got \"%s\"\n", path, what, err.msg);
    ok = ok && gpt2c_shard_read(path, &t, &n, &err) == -1 && strstr(err.msg, what) != NULL;
    return ok;
}

int main(void) {
    if (!mkdtemp(dir)) return 1;
    gpt2c_error err;
    shard_writer w;
    uint16_t tokens[1000];
    for (int i = 0; i < 1000; i++) tokens[i] = (uint16_t)(i % 7 == 0 ? GPT2C_EOT : i * 37 % 50000);

    char *good = strdup(path_in_dir("good.bin"));
    CHECK(shard_writer_open(&w, good, &err) == 0);
    CHECK(access(good, F_OK) != 0); /* nothing under the final name until commit */
    CHECK(shard_writer_write(&w, tokens, 600, &err) == 0);
    CHECK(shard_writer_write(&w, tokens + 600, 400, &err) == 0);
    CHECK(shard_writer_finish(&w, &err) == 0);
    CHECK(access(good, F_OK) != 0 && access(path_in_dir("good.bin.tmp"), F_OK) == 0);
    CHECK(shard_writer_publish(&w, &err) == 0);
    CHECK(access(good, F_OK) == 0 && access(path_in_dir("good.bin.tmp"), F_OK) != 0);

    gpt2c_shard_info info;
    CHECK(gpt2c_shard_inspect(good, &info, &err) == 0);
    CHECK(info.tokens == 1000 && info.eot_count == 143 && info.max_id == GPT2C_EOT);
    uint16_t *back;
    uint64_t n;
    CHECK(gpt2c_shard_read(good, &back, &n, &err) == 0 && n == 1000 && memcmp(back, tokens, sizeof tokens) == 0);
    free(back);

    /* the header is llm.c's: little-endian int32 magic, version, count */
    unsigned char raw[1024 + 2000];
    FILE *f = fopen(good, "rb");
    CHECK(fread(raw, 1, sizeof raw, f) == sizeof raw);
    fclose(f);
    CHECK(raw[0] == (20240520 & 255) && raw[4] == 1 && raw[8] == (1000 & 255) && raw[9] == (1000 >> 8));

    /* an aborted writer leaves nothing, before or after finishing */
    char *aborted = strdup(path_in_dir("aborted.bin"));
    CHECK(shard_writer_open(&w, aborted, &err) == 0);
    CHECK(shard_writer_write(&w, tokens, 10, &err) == 0);
    shard_writer_abort(&w);
    CHECK(access(aborted, F_OK) != 0 && access(path_in_dir("aborted.bin.tmp"), F_OK) != 0);
    CHECK(shard_writer_open(&w, aborted, &err) == 0);
    CHECK(shard_writer_finish(&w, &err) == 0);
    shard_writer_abort(&w);
    CHECK(access(aborted, F_OK) != 0 && access(path_in_dir("aborted.bin.tmp"), F_OK) != 0);

    /* damaged files */
    CHECK(fails_with(path_in_dir("missing.bin"), "cannot open"));
    write_raw(path_in_dir("short.bin"), raw, 100);
    CHECK(fails_with(path_in_dir("short.bin"), "too short"));
    unsigned char bad[sizeof raw];
    memcpy(bad, raw, sizeof raw);
    bad[0] ^= 1;
    write_raw(path_in_dir("magic.bin"), bad, sizeof bad);
    CHECK(fails_with(path_in_dir("magic.bin"), "bad magic"));
    memcpy(bad, raw, sizeof raw);
    bad[4] = 2;
    write_raw(path_in_dir("version.bin"), bad, sizeof bad);
    CHECK(fails_with(path_in_dir("version.bin"), "version"));
    write_raw(path_in_dir("truncated.bin"), raw, sizeof raw - 2);
    CHECK(fails_with(path_in_dir("truncated.bin"), "header says 1000 tokens"));
    memcpy(bad, raw, sizeof raw);
    bad[11] = 0x80; /* count < 0 */
    write_raw(path_in_dir("negative.bin"), bad, sizeof bad);
    CHECK(fails_with(path_in_dir("negative.bin"), "negative"));
    memcpy(bad, raw, sizeof raw);
    bad[1024 + 2 * 5] = 0xFF, bad[1024 + 2 * 5 + 1] = 0xFF; /* token 5 = 65535 */
    write_raw(path_in_dir("range.bin"), bad, sizeof bad);
    CHECK(fails_with(path_in_dir("range.bin"), "token 5 is 65535"));

    /* a writer into a directory that does not exist fails cleanly */
    CHECK(shard_writer_open(&w, "/nonexistent/dir/x.bin", &err) == -1 && strstr(err.msg, "cannot write"));

    const char *names[] = {"good.bin", "short.bin", "magic.bin", "version.bin", "truncated.bin", "negative.bin", "range.bin"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(path_in_dir(names[i]));
    rmdir(dir);
    free(good);
    free(aborted);
    return check_done();
}
