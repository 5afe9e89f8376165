/* Unicode character classes for GPT-2's pre-tokenizer: letter (\p{L}), number (\p{N}),
 * white space (\s = White_Space) or other. Tables are generated, see scripts/gen_unicode_tables.py. */
#ifndef GPT2C_UNICODE_CLASS_H
#define GPT2C_UNICODE_CLASS_H

#include <stdint.h>

enum uc_class { UC_OTHER = 0, UC_LETTER = 1, UC_NUMBER = 2, UC_SPACE = 3 };

extern const unsigned char uc_stage1[0x110000 >> 8];
extern const unsigned char uc_stage2[];
extern const char *const uc_unicode_version;

/* Class of a code point; cp must be < 0x110000. */
static inline enum uc_class uc_class_of(uint32_t cp) {
    return (enum uc_class)uc_stage2[(uint32_t)uc_stage1[cp >> 8] * 256u + (cp & 255u)];
}

#endif
