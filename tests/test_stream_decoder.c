/* The streaming decoder emits complete UTF-8 characters only, loses nothing, and passes bytes
 * that can never be valid through. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "gpt2c.h"
#include "tokenizer/utf8.h"

static gpt2c_tokenizer *tok;
static gpt2c_encoder *enc;

/* Every chunk the decoder emits for text's tokens is whole characters (when text is valid) and
 * the chunks plus the final flush equal text. */
static int streams_back(const char *text, size_t len, int text_is_valid) {
    gpt2c_error err;
    gpt2c_ids ids = {0};
    if (gpt2c_encode(enc, text, len, &ids, &err)) return 0;
    gpt2c_stream_decoder sd = {0};
    char *all = malloc(len + GPT2C_STREAM_OUT_MAX), out[GPT2C_STREAM_OUT_MAX];
    size_t k = 0;
    int ok = 1;
    for (size_t i = 0; i < ids.len; i++) {
        int n = gpt2c_stream_push(&sd, tok, ids.data[i], out, &err);
        if (n < 0) ok = 0;
        for (int j = 0; text_is_valid && j < n;) { /* each chunk decodes fully */
            uint32_t cp;
            int m = utf8_decode((unsigned char *)out + j, (size_t)(n - j), &cp);
            if (cp == UTF8_INVALID) ok = 0;
            j += m;
        }
        memcpy(all + k, out, (size_t)(n > 0 ? n : 0));
        k += (size_t)(n > 0 ? n : 0);
    }
    k += (size_t)gpt2c_stream_finish(&sd, all + k);
    ok = ok && k == len && memcmp(all, text, len) == 0 && sd.nheld == 0;
    free(all);
    gpt2c_ids_free(&ids);
    return ok;
}

static uint32_t byte_id(unsigned char b) {
    gpt2c_ids ids = {0};
    gpt2c_error err;
    gpt2c_encode(enc, &b, 1, &ids, &err);
    uint32_t id = ids.data[0];
    gpt2c_ids_free(&ids);
    return id;
}

int main(void) {
    gpt2c_error err;
    tok = gpt2c_tokenizer_new(&err);
    enc = gpt2c_encoder_new(tok, &err);
    CHECK(tok && enc);
    const char *texts[] = {
        "plain ascii",
        "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 family", /* ZWJ emoji */
        "\xe6\x88\x91\xe8\x83\xbd\xe5\x90\x9e\xe4\xb8\x8b\xe7\x8e\xbb\xe7\x92\x83",         /* Chinese */
        "\xf0\x9d\x94\x98\xf0\x9d\x94\xab\xf0\x9d\x94\xa6 math letters",
        ("Zalgo Z\xcc\xb7\xcc\xa2\xcc\x9b" "a\xcc\xb5\xcd\x9c"), /* "a" ends the \x escape */
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) CHECK(streams_back(texts[i], strlen(texts[i]), 1));
    /* invalid UTF-8 still round-trips */
    static const char invalid[] = "bad \xff\xfe bytes \xe2\x82 cut \xc3";
    CHECK(streams_back(invalid, sizeof invalid - 1, 0));

    /* a character split over byte tokens is held until complete */
    gpt2c_stream_decoder sd = {0};
    char out[GPT2C_STREAM_OUT_MAX];
    CHECK(gpt2c_stream_push(&sd, tok, byte_id(0xE2), out, &err) == 0);
    CHECK(gpt2c_stream_push(&sd, tok, byte_id(0x82), out, &err) == 0);
    CHECK(gpt2c_stream_push(&sd, tok, byte_id(0xAC), out, &err) == 3 && memcmp(out, "\xe2\x82\xac", 3) == 0);
    /* a byte that can never start a character is passed through at once */
    CHECK(gpt2c_stream_push(&sd, tok, byte_id(0xFF), out, &err) == 1 && (unsigned char)out[0] == 0xFF);
    /* a lead byte followed by ASCII: both come out when the ASCII arrives */
    CHECK(gpt2c_stream_push(&sd, tok, byte_id(0xC3), out, &err) == 0);
    CHECK(gpt2c_stream_push(&sd, tok, byte_id('a'), out, &err) == 2 && memcmp(out, "\xc3" "a", 2) == 0);
    /* what is held at the end comes out of finish */
    CHECK(gpt2c_stream_push(&sd, tok, byte_id(0xF0), out, &err) == 0);
    CHECK(gpt2c_stream_finish(&sd, out) == 1 && (unsigned char)out[0] == 0xF0);
    /* bad ids are errors, not crashes */
    CHECK(gpt2c_stream_push(&sd, tok, GPT2C_VOCAB_SIZE, out, &err) == -1 && strstr(err.msg, "out of range"));
    char *text;
    size_t len;
    uint32_t bad[] = {1, 2, 70000};
    CHECK(gpt2c_decode(tok, bad, 3, &text, &len, &err) == -1 && strstr(err.msg, "position 2"));
    uint32_t eot[] = {GPT2C_EOT};
    CHECK(gpt2c_decode(tok, eot, 1, &text, &len, &err) == 0 && strcmp(text, "<|endoftext|>") == 0);
    free(text);

    gpt2c_encoder_free(enc);
    gpt2c_tokenizer_free(tok);
    return check_done();
}
