/* The table of op cases (op_cases.c): each an op's test (op_harness.h) at some shapes and
 * precision, with the tolerance of another backend's results against the CPU's. */
#ifndef GPT2C_OP_CASES_H
#define GPT2C_OP_CASES_H

#include "op_harness.h"

extern const op_case op_cases[];
extern const int op_ncases;

#endif
