#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/data_parallel.h"
#include "util/error.h"

int dp_init(data_parallel *d, gpt2c_comm *comm, int zero, const gpt2_backend *be,
            gpt2c_error *err) {
    memset(d, 0, sizeof *d);
    d->comm = comm, d->be = be, d->rank = comm->rank, d->size = comm->size, d->zero = zero;
    /* a GPU's buffers and a communicator of host memory (MPI): NCCL over it, on the GPU */
    if (comm->size > 1 && !be->host_memory && !comm->ops->device_buffers) {
        if (comm_device_open(comm, be->stream, &d->device_comm, err) != 0) return -1;
        d->comm = d->device_comm;
    }
    return 0;
}

int dp_shard(data_parallel *d, gpt2_model *m, gpt2c_error *err) {
    size_t nparams = m->table.total;
    d->offs = calloc((size_t)d->size + 1, sizeof *d->offs);
    if (!d->offs) return err_set(err, "out of memory");
    comm_shards(nparams, d->size, d->offs);
    for (int r = 0; r < d->size; r++)
        if (d->offs[r + 1] - d->offs[r] > (size_t)1 << 31)
            return err_set(err, "%zu parameters over %d ranks: shards above 2^31 values, more "
                                "than MPI's counts hold", nparams, d->size);
    d->lo = d->zero ? d->offs[d->rank] : 0;
    d->hi = d->zero ? d->offs[d->rank + 1] : nparams;
    /* the shards' collectives may move the last shard's padding (NCCL's are equal) */
    return d->size > 1 ? gpt2_pad_flat(m, comm_padded(nparams, d->size), err) : 0;
}

void dp_free(data_parallel *d) {
    free(d->offs);
    gpt2c_comm_close(d->device_comm); /* (before the host communicator it was opened over) */
    memset(d, 0, sizeof *d);
}

uint64_t dp_hash(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    if (h == 0) h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

int dp_check_same(const data_parallel *d, uint64_t value, const char *what, gpt2c_error *err) {
    uint64_t *all = calloc((size_t)d->size, sizeof *all);
    if (!all) return err_set(err, "out of memory");
    d->comm->ops->allgather_u64(d->comm, value, all);
    int differs = -1;
    for (int r = 1; r < d->size && differs < 0; r++)
        if (all[r] != all[0]) differs = r;
    free(all);
    if (differs >= 0)
        return err_set(err, "rank %d's %s differ from rank 0's: every rank must be started with "
                            "the same", differs, what);
    return 0;
}

void dp_broadcast(const data_parallel *d, void *buf, size_t bytes) {
    d->comm->ops->broadcast(d->comm, buf, bytes);
}

void dp_share_params(const data_parallel *d, gpt2_model *m) {
    d->comm->ops->broadcast_f32(d->comm, m->params, m->table.total);
    gpt2_params_changed(m);
}

void dp_scatter_moments(const data_parallel *d, const float *whole_m, const float *whole_v,
                        adamw_state *s) {
    if (d->zero) {
        d->comm->ops->scatter_f32(d->comm, whole_m, s->m, d->offs);
        d->comm->ops->scatter_f32(d->comm, whole_v, s->v, d->offs);
        return;
    }
    size_t bytes = (d->hi - d->lo) * sizeof *s->m;
    if (d->rank == 0) d->be->ops->copy(s->m, whole_m, bytes), d->be->ops->copy(s->v, whole_v, bytes);
    d->comm->ops->broadcast_f32(d->comm, s->m, d->hi - d->lo);
    d->comm->ops->broadcast_f32(d->comm, s->v, d->hi - d->lo);
}

void dp_gather_moments(const data_parallel *d, const adamw_state *s, float *whole_m,
                       float *whole_v) {
    if (d->zero) {
        d->comm->ops->gather_f32(d->comm, whole_m, s->m, d->offs);
        d->comm->ops->gather_f32(d->comm, whole_v, s->v, d->offs);
    } else if (d->rank == 0) { /* every rank has them all already */
        size_t bytes = (d->hi - d->lo) * sizeof *s->m;
        d->be->ops->copy(whole_m, s->m, bytes), d->be->ops->copy(whole_v, s->v, bytes);
    }
}

void dp_reduce_grads(const data_parallel *d, gpt2_model *m) {
    if (d->size == 1) return;
    if (d->zero) d->comm->ops->reduce_scatter_sum_f32(d->comm, m->grads, d->offs);
    else d->comm->ops->allreduce_sum_f32(d->comm, m->grads, m->table.total);
}

double dp_grad_norm(const data_parallel *d, const gpt2_model *m) {
    double sq = adamw_grad_sum_squares(m, d->lo, d->hi);
    /* with ZeRO-1 each rank has the sums of its shard only; else every rank has them all */
    if (d->zero) d->comm->ops->allreduce_sum_f64(d->comm, &sq, 1);
    return sqrt(sq);
}

double dp_sum(const data_parallel *d, double local) {
    d->comm->ops->allreduce_sum_f64(d->comm, &local, 1);
    return local;
}

double dp_mean(const data_parallel *d, double local) { return dp_sum(d, local) / d->size; }

void dp_after_update(const data_parallel *d, gpt2_model *m) {
    if (!d->zero || d->size == 1) return;
    const gpt2_ops *op = m->be->ops; /* the model's: timed under --profile */
    size_t n = m->table.total;
    /* outside its shard a rank's gradients are what the reduce-scatter left: zero them */
    op->memset0(m->grads, d->lo * sizeof *m->grads);
    op->memset0(m->grads + d->hi, (n - d->hi) * sizeof *m->grads);
    d->comm->ops->allgather_f32(d->comm, m->params, d->offs);
    if (m->params_bf16) { /* AdamW wrote the bf16 copy of this rank's shard; the rest is new */
        op->to_bf16(m->params_bf16, m->params, d->lo);
        op->to_bf16(m->params_bf16 + d->hi, m->params + d->hi, n - d->hi);
    }
}
