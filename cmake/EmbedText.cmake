# cmake -DIN=file -DOUT=file.c -DNAME=symbol -P EmbedText.cmake: a file as a C array
# (const char NAME[], const size_t NAME_len), NUL-terminated, for what the binary serves.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n)
math(EXPR bytes "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE "${OUT}" "#include <stddef.h>\nconst char ${NAME}[] = {${body}0};\nconst size_t ${NAME}_len = ${bytes};\n")
