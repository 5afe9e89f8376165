/* Cutting input text into chunks that threads can tokenize independently and whose tokens,
 * concatenated in order, equal the tokens of the whole. */
#ifndef GPT2C_PREPARE_SPLIT_H
#define GPT2C_PREPARE_SPLIT_H

#include <stddef.h>

typedef enum split_mode {
    SPLIT_ONE_DOCUMENT, /* a text file is one document: cut where a new piece must start */
    SPLIT_BLANK_LINES,  /* documents end after "\n\n": cut right after a document */
    SPLIT_JSONL         /* one document per line: cut after a newline */
} split_mode;

/* End of the chunk of s[0..len) that starts at `start`: the first safe cut at or after
 * start + target, or len. */
size_t split_next_cut(const unsigned char *s, size_t len, size_t start, size_t target, split_mode mode);

/* Where the document that starts at s[start] ends, in SPLIT_BLANK_LINES mode: just after the
 * next "\n\n" (which stays with it, as in llm.c's tinyshakespeare.py; *separated = 1), or len
 * if there is none (*separated = 0). Searching from each document's start reproduces Python's
 * text.split("\n\n"), including the empty last document after a final "\n\n". */
size_t split_blank_line_doc_end(const unsigned char *s, size_t len, size_t start, int *separated);

#endif
