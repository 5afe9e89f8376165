/* The pre-tokenizer on hand-picked cases, written as pieces joined by '|'. The expectations
 * follow GPT-2's pattern (checked against the regex itself when written); test_tiktoken.py and
 * test_unicode_classes.py compare with tiktoken at scale. */
#include <string.h>

#include "check.h"
#include "tokenizer/pretokenize.h"

static int pieces_are(const char *text, const char *expected) {
    char got[512];
    size_t len = strlen(text), k = 0;
    for (size_t i = 0; i < len;) {
        size_t end = pretok_next((const unsigned char *)text, len, i);
        if (end <= i || end > len) return 0;
        if (i) got[k++] = '|';
        memcpy(got + k, text + i, end - i);
        k += end - i;
        i = end;
    }
    got[k] = 0;
    if (strcmp(got, expected) != 0) fprintf(stderr, "pieces of \"%s\": got \"%s\", want \"%s\"\n", text, got, expected);
    return strcmp(got, expected) == 0;
}

int main(void) {
    CHECK(pieces_are("Hello world", "Hello| world"));
    CHECK(pieces_are("I'm", "I|'m"));
    CHECK(pieces_are("don't", "don|'t"));
    CHECK(pieces_are("'ll've're'd", "'ll|'ve|'re|'d"));
    CHECK(pieces_are("'s'S", "'s|'|S"));             /* contractions are lower case only */
    CHECK(pieces_are("''s", "''|s"));
    CHECK(pieces_are("!'s", "!'|s"));
    CHECK(pieces_are(" 's", " '|s"));
    CHECK(pieces_are("a  b", "a| | b"));               /* the last space joins the word */
    CHECK(pieces_are("a \n b", "a| \n| b"));
    CHECK(pieces_are("x\n\ny", "x|\n|\n|y"));          /* a newline never joins a word */
    CHECK(pieces_are("a\t\tb", "a|\t|\t|b"));
    CHECK(pieces_are("x   ", "x|   "));                /* white space at the end stays whole */
    CHECK(pieces_are(" ", " "));
    CHECK(pieces_are("1 2  3\n", "1| 2| | 3|\n"));
    CHECK(pieces_are("abc123def", "abc|123|def"));
    CHECK(pieces_are(" 123", " 123"));
    CHECK(pieces_are("!!!? !!", "!!!?| !!"));
    CHECK(pieces_are("x\r\n", "x|\r\n"));
    CHECK(pieces_are("a\xc2\xa0" "b", "a|\xc2\xa0|b"));  /* NBSP is white space, not ' ' */
    CHECK(pieces_are("e\xcc\x81", "e|\xcc\x81"));        /* a combining mark is not a letter */
    CHECK(pieces_are("caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve"));
    CHECK(pieces_are("\xe2\x85\xa7x", "\xe2\x85\xa7|x")); /* U+2167 ROMAN NUMERAL EIGHT is Nl */
    /* invalid UTF-8: each bad byte is one "other" character */
    CHECK(pieces_are("a\xff" "b", "a|\xff|b"));
    CHECK(pieces_are(" \xff\xfe!x", " \xff\xfe!|x"));
    CHECK(pieces_are("\xc3\xa9\xc3", "\xc3\xa9|\xc3"));   /* truncated at the end */
    CHECK(pieces_are("\xe2\x82" "a", "\xe2\x82|a"));        /* truncated before ASCII */
    CHECK(pieces_are("\xed\xa0\x80", "\xed\xa0\x80"));      /* a surrogate: three bad bytes */
    CHECK(pieces_are("\xc0\xaf" "a", "\xc0\xaf|a"));        /* overlong */
    return check_done();
}
