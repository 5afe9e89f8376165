/* TensorBoard event files: `gpt2c train --tensorboard DIR` writes DIR/events.out.tfevents.*,
 * which TensorBoard reads as they grow (each record flushed). The file is TFRecord framing
 * (length, masked CRC32C of it, data, masked CRC32C of the data; the CRC from ISA-L) around
 * tensorflow.Event protocol buffers: scalars as Summary.Value.simple_value, text as a string
 * tensor with the "text" plugin's metadata. Only those three messages are written, so they are
 * encoded here (a handful of fields) rather than through a protobuf library and the .proto files
 * of TensorFlow. */
#ifndef GPT2C_TENSORBOARD_H
#define GPT2C_TENSORBOARD_H

#include <stdio.h>

#include "gpt2c.h"

typedef struct tb_writer {
    FILE *f;
    char *path;
} tb_writer;

/* A new event file in dir (made if needed). A run resumed at start_step > 0 first writes a
 * SessionLog START at that step: TensorBoard then drops what an earlier file logged from that
 * step on (the steps after the checkpoint that the run redoes). */
int tb_open(tb_writer *w, const char *dir, long start_step, gpt2c_error *err);
int tb_scalar(tb_writer *w, long step, const char *tag, double value, gpt2c_error *err);
int tb_text(tb_writer *w, long step, const char *tag, const char *text, size_t len, gpt2c_error *err);
int tb_close(tb_writer *w, gpt2c_error *err);

#endif
