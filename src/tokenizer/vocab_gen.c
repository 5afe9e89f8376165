/* Build-time tool: turns OpenAI's GPT-2 vocabulary (encoder.json + vocab.bpe) into a C source
 * file with each token's raw bytes, so the library carries its vocabulary and needs no data
 * files at run time. CMake checks both files' sha256 before running this.
 *
 * It also lists every way to split a token into two tokens, (left, right) -> token: the pairs
 * byte-level BPE may merge (tiktoken merges any adjacent pair whose bytes concatenate to a
 * token, not only the pairs of the merge list), so the library need not work them out at load.
 *
 * It also checks what tiktoken checks when it loads these files: that the ranks implied by the
 * merge list (256 single bytes in GPT-2's order, then one new token per merge) are exactly the
 * ids in encoder.json. Our encoder relies on id == merge rank.
 *
 * Usage: vocab_gen encoder.json vocab.bpe out.c
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NVOCAB 50257
#define EOT 50256
#define MAXLEN 128

static unsigned char tok_bytes[NVOCAB][MAXLEN];
static int tok_len[NVOCAB];

/* GPT-2 stores bytes as printable unicode characters: printable bytes stand for themselves,
 * the other 68 are shifted to U+0100.. in byte order. */
static int unicode_to_byte[512];

static void build_byte_map(void) {
    int n = 0;
    for (int i = 0; i < 512; i++) unicode_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        if (printable) unicode_to_byte[b] = b;
        else unicode_to_byte[256 + n++] = b;
    }
}

static void die(const char *msg, const char *detail) {
    fprintf(stderr, "vocab_gen: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    exit(1);
}

/* Decode a GPT-2 vocabulary string (UTF-8 of the printable stand-ins) to raw bytes. */
static int decode_token(const char *s, size_t slen, unsigned char *out) {
    int n = 0;
    for (size_t i = 0; i < slen;) {
        unsigned c = (unsigned char)s[i];
        unsigned cp;
        if (c < 0x80) { cp = c; i += 1; }
        else if ((c & 0xE0) == 0xC0 && i + 1 < slen) {
            cp = ((c & 0x1F) << 6) | ((unsigned char)s[i + 1] & 0x3F);
            i += 2;
        } else return -1; /* stand-ins are all below U+0144 */
        if (cp >= 512 || unicode_to_byte[cp] < 0 || n >= MAXLEN) return -1;
        out[n++] = (unsigned char)unicode_to_byte[cp];
    }
    return n;
}

/* tiny open-addressing map bytes -> id, for the merge check */
#define HSIZE (1 << 17)
static int htab[HSIZE];

static unsigned hash_bytes(const unsigned char *b, int len) {
    unsigned h = 2166136261u;
    for (int i = 0; i < len; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

static void hinsert(int id) {
    unsigned h = hash_bytes(tok_bytes[id], tok_len[id]) & (HSIZE - 1);
    while (htab[h] >= 0) h = (h + 1) & (HSIZE - 1);
    htab[h] = id;
}

static int hfind(const unsigned char *b, int len) {
    unsigned h = hash_bytes(b, len) & (HSIZE - 1);
    while (htab[h] >= 0) {
        int id = htab[h];
        if (tok_len[id] == len && memcmp(tok_bytes[id], b, (size_t)len) == 0) return id;
        h = (h + 1) & (HSIZE - 1);
    }
    return -1;
}

static void check_merges(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open", path);
    char line[1024];
    if (!fgets(line, sizeof line, f) || strncmp(line, "#version", 8) != 0)
        die("vocab.bpe does not start with #version", path);
    /* single-byte ranks: GPT-2's printable bytes first, then the rest, in byte order */
    int rank = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int b = 0; b < 256; b++) {
            int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            if (printable != (pass == 0)) continue;
            unsigned char one = (unsigned char)b;
            if (hfind(&one, 1) != rank) die("single-byte token rank differs from encoder.json", NULL);
            rank++;
        }
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        if (n && line[n - 1] == '\n') line[--n] = 0;
        if (n == 0) continue;
        char *sp = strchr(line, ' ');
        if (!sp || strchr(sp + 1, ' ')) die("bad merge line", line);
        unsigned char a[MAXLEN], b[MAXLEN], ab[2 * MAXLEN];
        int la = decode_token(line, (size_t)(sp - line), a);
        int lb = decode_token(sp + 1, strlen(sp + 1), b);
        if (la <= 0 || lb <= 0 || la + lb > MAXLEN) die("bad merge line", line);
        memcpy(ab, a, (size_t)la);
        memcpy(ab + la, b, (size_t)lb);
        if (hfind(ab, la + lb) != rank) die("merge rank differs from encoder.json id", line);
        rank++;
    }
    fclose(f);
    if (rank != EOT) die("vocab.bpe does not hold 50000 merges", path);
}

int main(int argc, char **argv) {
    if (argc != 4) die("usage: vocab_gen encoder.json vocab.bpe out.c", NULL);
    build_byte_map();
    json_error_t jerr;
    json_t *enc = json_load_file(argv[1], 0, &jerr);
    if (!enc || !json_is_object(enc)) die("cannot parse encoder.json", jerr.text);
    if (json_object_size(enc) != NVOCAB) die("encoder.json does not hold 50257 entries", NULL);
    for (int i = 0; i < NVOCAB; i++) tok_len[i] = -1;
    const char *key;
    json_t *val;
    json_object_foreach(enc, key, val) {
        if (!json_is_integer(val)) die("non-integer id for", key);
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= NVOCAB || tok_len[id] >= 0) die("bad or repeated id for", key);
        if (id == EOT) {
            if (strcmp(key, "<|endoftext|>") != 0) die("id 50256 is not <|endoftext|>", key);
            tok_len[id] = (int)strlen(key);
            memcpy(tok_bytes[id], key, (size_t)tok_len[id]);
            continue;
        }
        int n = decode_token(key, strlen(key), tok_bytes[id]);
        if (n <= 0) die("undecodable token", key);
        tok_len[id] = n;
    }
    json_decref(enc);

    for (int i = 0; i < HSIZE; i++) htab[i] = -1;
    for (int i = 0; i < EOT; i++) hinsert(i);
    check_merges(argv[2]);

    FILE *out = fopen(argv[3], "wb");
    if (!out) die("cannot write", argv[3]);
    fprintf(out, "/* Generated at build time by vocab_gen from data/gpt2/encoder.json and vocab.bpe. */\n"
                 "#include \"tokenizer/vocab_data.h\"\n\n"
                 "const unsigned char gpt2c_vocab_blob[] =\n");
    for (int i = 0; i < NVOCAB; i++) {
        fputs("    \"", out);
        for (int j = 0; j < tok_len[i]; j++) fprintf(out, "\\%03o", tok_bytes[i][j]);
        fputs("\"\n", out);
    }
    fprintf(out, ";\n\nconst unsigned gpt2c_vocab_offsets[%d] = {\n", NVOCAB + 1);
    unsigned off = 0;
    for (int i = 0; i <= NVOCAB; i++) {
        fprintf(out, "%u,%s", off, (i % 16 == 15) ? "\n" : "");
        if (i < NVOCAB) off += (unsigned)tok_len[i];
    }
    fprintf(out, "\n};\n\nconst unsigned gpt2c_vocab_pairs[][3] = {\n");
    unsigned npairs = 0;
    for (int id = 0; id < EOT; id++)
        for (int k = 1; k < tok_len[id]; k++) {
            int a = hfind(tok_bytes[id], k), b = hfind(tok_bytes[id] + k, tok_len[id] - k);
            if (a < 0 || b < 0) continue;
            fprintf(out, "{%d,%d,%d},%s", a, b, id, ++npairs % 8 ? "" : "\n");
        }
    fprintf(out, "\n};\n\nconst unsigned gpt2c_vocab_npairs = %u;\n", npairs);
    if (fclose(out) != 0) die("cannot write", argv[3]);
    return 0;
}
