/* The safetensors format (Hugging Face): 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "string value", ...}}, then the data area that the offsets index.
 * Reading validates everything before anything is trusted; writing is atomic. */
#ifndef GPT2C_SAFETENSORS_H
#define GPT2C_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2c.h"

#define ST_MAX_DIMS 8

/* Every dtype the format defines is accepted when reading (its size is checked); only the
 * floating ones below can be converted to float. */
typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U64, ST_U32, ST_U16, ST_U8,
    ST_BOOL, ST_F8_E4M3, ST_F8_E5M2
} st_dtype;

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t numel;
    const void *data; /* inside the mapped file; not aligned in general */
    size_t nbytes;
} st_tensor;

typedef struct st_file {
    void *map;
    size_t map_len;
    st_tensor *tensors;
    size_t ntensors;
    char **meta_keys, **meta_values; /* __metadata__, string to string */
    size_t nmeta;
    char *path;
} st_file;

/* Map and validate PATH: header length within the file, JSON well formed, known dtypes, shapes
 * non-negative and their product times the dtype size equal to end - begin, offsets within the
 * data area, no duplicate names. Errors name the file and what is wrong. */
int st_open(st_file *f, const char *path, gpt2c_error *err);
void st_close(st_file *f);
const st_tensor *st_find(const st_file *f, const char *name);
const char *st_meta(const st_file *f, const char *key); /* NULL when absent */
const char *st_dtype_name(st_dtype d);

/* Convert a F32, F16 or BF16 tensor to float (dst holds t->numel values), exactly: every F16
 * and BF16 value, subnormals, infinities and NaNs included, is a float. -1 for other dtypes
 * (the message names the tensor; the caller knows the file). */
int st_to_f32(const st_tensor *t, float *dst, gpt2c_error *err);

/* One tensor to write, always as F32. With transpose set, the tensor must be 2-D and `data`
 * holds it as [shape[1]][shape[0]] in memory; the file gets the [shape[0]][shape[1]] transpose. */
typedef struct st_write_tensor {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int transpose;
} st_write_tensor;

/* Write atomically (see util/atomic_file.h): the reference layout, __metadata__ first (left out
 * when nmeta is 0), tensors contiguous in the given order, the header padded with spaces to a
 * multiple of 8. meta: nmeta key/value string pairs; transformers' from_pretrained wants
 * "format": "pt" there. Names must be unique, non-empty UTF-8 and not "__metadata__". */
int st_write(const char *path, const st_write_tensor *tensors, size_t ntensors,
             const char *const *meta_keys, const char *const *meta_values, size_t nmeta,
             gpt2c_error *err);

#endif
