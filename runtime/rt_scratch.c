/* rt_scratch.c: the CUDA backend's op scratch (rt_cuda.h), a plain C function so the planner counts it
 * too. Each case mirrors what run_op in rt_cuda.cu takes with scratch(): keep the two together. The
 * backend computes in fp32, so sizes are fp32 element counts whatever the graph's storage dtype. */
#include <stddef.h>
#include <stdint.h>

#include "rt_cuda.h"

/* Sizes are computed in double and saturate at 2^50 bytes (1 PiB, beyond any device), so shapes the
 * planner explores (batch search, fuzzed descriptions) never overflow. */
#define SCRATCH_MAX 1125899906842624.0

static double numel_of(const avgen_tensor_desc *t) {
    double n = 1;
    for (int d = 0; d < t->ndim; d++) n *= (double)t->shape[d];
    return n;
}

/* colsum's partial sums: at most max(64, 2048 / ceil(C / 128)) chunks of 2 doubles per column */
static double colsum_bytes(int64_t C) {
    int64_t chunks = 2048 / ((C + 127) / 128);
    if (chunks < 64) chunks = 64;
    return 8.0 * 2 * (double)chunks * (double)C + 256;
}

static double op_scratch(const avgen_graph *g, const avgen_consts *k, int op, int fused);

int rt_cuda_attention_fusable(const avgen_consts *k) {
    const int hd = k->heads > 0 ? k->dim / k->heads : 0;
    return (hd == 16 || hd == 32 || hd == 64) && (long long)k->batch * k->frames <= 65535;
}

long long rt_cuda_dw_chunk(long long rows) {
    /* about 64 chunks, a multiple of 8 rows (the batch strides stay 32-byte aligned), at least 16 rows (so
     * that the small test configurations take this path too) */
    long long chunk = ((rows + 63) / 64 + 7) / 8 * 8;
    if (chunk < 16) chunk = 16;
    return rows / chunk >= 2 ? chunk : 0;
}

double rt_cuda_dw_part_floats(long long rows, long long Cin, long long Cout, long long G) {
    const long long chunk = rt_cuda_dw_chunk(rows);
    if (!chunk || G < 1) return 0;
    const long long parts = rows / chunk + (rows % chunk ? 1 : 0);
    return (double)parts * (double)Cout * (double)(Cin / G);
}

void rt_cuda_group_linear_dw(const rt_dw_ops *ops, const float *dY, const float *X, float *dW, float *part,
                             long long rows, int Cin, int Cout, int G) {
    const int cin_g = Cin / G, cout_g = Cout / G;
    const long long W = (long long)cout_g * cin_g, chunk = rt_cuda_dw_chunk(rows);
    if (!chunk) {
        ops->gemm(ops->ctx, 1, 0, cout_g, cin_g, (int)rows, dY, Cout, X, Cin, dW, cin_g, 1, G, cout_g, cin_g, W);
        return;
    }
    const long long full = rows / chunk, rem = rows - full * chunk, parts = full + (rem > 0);
    for (int g = 0; g < G; g++) {
        float *pg = part + (size_t)g * (size_t)parts * (size_t)W;
        ops->gemm(ops->ctx, 1, 0, cout_g, cin_g, (int)chunk, dY + g * cout_g, Cout, X + g * cin_g, Cin, pg, cin_g, 0,
                  (int)full, chunk * Cout, chunk * Cin, W);
        if (rem)
            ops->gemm(ops->ctx, 1, 0, cout_g, cin_g, (int)rem, dY + full * chunk * Cout + g * cout_g, Cout,
                      X + full * chunk * Cin + g * cin_g, Cin, pg + (size_t)full * (size_t)W, cin_g, 0, 1, 0, 0, 0);
        ops->sum(ops->ctx, pg, dW + (size_t)g * (size_t)W, (int)parts, W);
    }
}

size_t rt_cuda_op_scratch(const avgen_graph *g, const avgen_consts *k, int op, int fused_attention) {
    const double v = op_scratch(g, k, op, fused_attention && rt_cuda_attention_fusable(k));
    return (size_t)(v < SCRATCH_MAX ? v : SCRATCH_MAX);
}

static double op_scratch(const avgen_graph *g, const avgen_consts *k, int op, int fused) {
    const avgen_op_desc *o = &g->ops[op];
    const int32_t *in = g->refs + o->in_at, *out = g->refs + o->out_at;
#define TD(t) (&g->tensors[t])
    switch (o->kind) {
    case AVGEN_OP_KIND_PATCH_EMBED: {
        const avgen_tensor_desc *xo = TD(out[0]);
        const double P = (double)xo->shape[0], N = (double)xo->shape[1];
        return 4.0 * P * (N - 1) * (3.0 * k->patch * k->patch + k->dim) + 1024;
    }
    case AVGEN_OP_KIND_ATTENTION: { /* the GEMM path's scores; the fused kernels need none */
        const avgen_tensor_desc *qt = TD(in[0]);
        const double PHN = (double)qt->shape[0] * k->heads * (double)qt->shape[1];
        return fused ? 0 : 4.0 * PHN * (double)qt->shape[1] + 256;
    }
    case AVGEN_OP_KIND_ATTENTION_BWD: { /* delta (double), and for the GEMM path probabilities and dP */
        const avgen_tensor_desc *qt = TD(in[1]);
        const double PHN = (double)qt->shape[0] * k->heads * (double)qt->shape[1];
        return 8.0 * PHN + (fused ? 0 : 2 * 4.0 * PHN * (double)qt->shape[1] + 2 * 256) + 256;
    }
    case AVGEN_OP_KIND_GELU_LINEAR_DX: return 4.0 * numel_of(TD(in[0])) + 256;
    case AVGEN_OP_KIND_ADAPTER_LATENT_BWD: {
        const avgen_tensor_desc *xt = TD(in[1]), *yt = TD(in[2]), *tt = TD(in[6]);
        const double P = (double)xt->shape[0], N = (double)xt->shape[1], D = (double)xt->shape[2];
        const double N2 = (double)yt->shape[1], m = (double)tt->shape[0];
        return 4.0 * (P * N * m + 2 * P * m * D + P * m * N2) + 8.0 * P * N + 5 * 256;
    }
    case AVGEN_OP_KIND_LAYERNORM_GATE_BWD: {
        const avgen_tensor_desc *xt = TD(in[1]);
        return 8.0 * (double)xt->shape[0] * (double)xt->shape[1] + colsum_bytes(xt->shape[2]) + 256;
    }
    case AVGEN_OP_KIND_LAYERNORM_BWD: return colsum_bytes(TD(in[1])->shape[TD(in[1])->ndim - 1]);
    case AVGEN_OP_KIND_BATCHNORM:
    case AVGEN_OP_KIND_BATCHNORM_RELU:
    case AVGEN_OP_KIND_BATCHNORM_BWD:
    case AVGEN_OP_KIND_BATCHNORM_RELU_BWD: {
        const int fwd = o->kind == AVGEN_OP_KIND_BATCHNORM || o->kind == AVGEN_OP_KIND_BATCHNORM_RELU;
        const int64_t C = TD(in[fwd ? 0 : 1])->shape[2];
        /* three (forward: sum, shifted sum of squares, mean) or two column vectors of doubles, one colsum */
        return colsum_bytes(C) + 3 * 8.0 * (double)C + 4 * 256;
    }
    case AVGEN_OP_KIND_GROUP_LINEAR_BWD: { /* the weight gradient's partial products, one per row chunk */
        const avgen_tensor_desc *xt = TD(in[1]), *wt = TD(in[2]);
        const long long Cin = xt->shape[2], G = wt->shape[1] > 0 ? Cin / wt->shape[1] : 1;
        const double f = rt_cuda_dw_part_floats(xt->shape[0] * xt->shape[1], Cin, wt->shape[0], G);
        return f > 0 ? 4.0 * f + 256 : 0;
    }
    case AVGEN_OP_KIND_LINEAR_BWD: return colsum_bytes(TD(in[0])->shape[1]);
    default: return 0;
    }
#undef TD
}

size_t rt_cuda_scratch_bytes(const avgen_graph *g, const avgen_consts *k, int fused_attention) {
    size_t need = 1 << 20;
    for (int i = 0; i < g->n_ops; i++) {
        const size_t s = rt_cuda_op_scratch(g, k, i, fused_attention);
        if (s > need) need = s;
    }
    return need;
}

/* A GEMM reading activation t as its first operand against a frozen weight: QKV (weights in[1], in[3],
 * in[5]), LINEAR_GELU and LINEAR_RESIDUAL (weight in[1]). */
static int frozen_gemm_operand(const avgen_graph *g, const avgen_op_desc *o, int slot) {
    const int32_t *in = g->refs + o->in_at;
    if (slot != 0) return 0;
    switch (o->kind) {
    case AVGEN_OP_KIND_QKV:
        return o->n_in >= 7 && g->tensors[in[1]].arena == AVGEN_ARENA_FROZEN && g->tensors[in[3]].arena == AVGEN_ARENA_FROZEN &&
               g->tensors[in[5]].arena == AVGEN_ARENA_FROZEN;
    case AVGEN_OP_KIND_LINEAR_GELU:
    case AVGEN_OP_KIND_LINEAR_RESIDUAL: return o->n_in >= 2 && g->tensors[in[1]].arena == AVGEN_ARENA_FROZEN;
    default: return 0;
    }
}

/* With the fused attention: qkv (QKV's output), read only by the fused kernels, which round it to bf16 when
 * they stage it (ATTENTION in[0], ATTENTION_BWD in[1]), and its gradient (ATTENTION_BWD's output), read only
 * as the first operand of QKV_DX against frozen weights. */
static int attention_operand(const avgen_graph *g, const avgen_op_desc *o, int slot) {
    const int32_t *in = g->refs + o->in_at;
    switch (o->kind) {
    case AVGEN_OP_KIND_ATTENTION: return slot == 0;
    case AVGEN_OP_KIND_ATTENTION_BWD: return slot == 1;
    case AVGEN_OP_KIND_QKV_DX:
        return slot == 0 && o->n_in >= 4 && g->tensors[in[1]].arena == AVGEN_ARENA_FROZEN &&
               g->tensors[in[2]].arena == AVGEN_ARENA_FROZEN && g->tensors[in[3]].arena == AVGEN_ARENA_FROZEN;
    default: return 0;
    }
}

int rt_cuda_bf16_operands(const avgen_graph *g, int fused_attention, unsigned char *flags) {
    int n = 0;
    for (int t = 0; t < g->n_tensors; t++) flags[t] = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        const int32_t *out = g->refs + o->out_at;
        int t = -1, att = 0;
        if (o->kind == AVGEN_OP_KIND_LAYERNORM && o->n_out >= 1) t = out[0];
        else if (o->kind == AVGEN_OP_KIND_LINEAR_GELU && o->n_out > 1) t = out[o->n_out - 1];
        else if (fused_attention && (o->kind == AVGEN_OP_KIND_QKV || o->kind == AVGEN_OP_KIND_ATTENTION_BWD) && o->n_out >= 1)
            t = out[0], att = 1;
        if (t < 0 || flags[t] || g->tensors[t].arena != AVGEN_ARENA_ACT || g->tensors[t].dtype != AVGEN_DT_F32) continue;
        /* a bf16 qkv comes from a bf16 GEMM (its input is bf16) with frozen biases (their bf16 copies are the
         * frozen arena's), a bf16 gradient from a bf16 qkv */
        if (att && !flags[g->refs[o->in_at + (o->kind == AVGEN_OP_KIND_QKV ? 0 : 1)]]) continue;
        if (att && o->kind == AVGEN_OP_KIND_QKV) {
            int frozen = o->n_in >= 7;
            for (int j = 2; j <= 6 && frozen; j += 2) frozen = g->tensors[g->refs[o->in_at + j]].arena == AVGEN_ARENA_FROZEN;
            if (!frozen) continue;
        }
        int writers = 0, readers = 0, ok = 1;
        for (int j = 0; j < g->n_ops && ok; j++) {
            const avgen_op_desc *q = &g->ops[j];
            for (int s2 = 0; s2 < q->n_out; s2++) writers += g->refs[q->out_at + s2] == t;
            for (int s2 = 0; s2 < q->n_in; s2++)
                if (g->refs[q->in_at + s2] == t) {
                    readers++;
                    if (!(att ? attention_operand(g, q, s2) : frozen_gemm_operand(g, q, s2))) ok = 0;
                }
        }
        if (ok && writers == 1 && readers > 0) flags[t] = 1, n++;
    }
    /* the attention backward kernels take qkv and write its gradient both as bf16 or both as fp32 */
    for (int i = 0; fused_attention && i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        if (o->kind != AVGEN_OP_KIND_ATTENTION_BWD || o->n_in < 2 || o->n_out < 1) continue;
        const int q = g->refs[o->in_at + 1], dq = g->refs[o->out_at];
        if (flags[q] == flags[dq]) continue;
        n -= flags[q] + flags[dq];
        flags[q] = flags[dq] = 0;
    }
    return n;
}
