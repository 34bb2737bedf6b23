/* rt_scratch.c: the CUDA backend's plain C side, shared with the planner and the bench (rt_cuda.h): its op
 * scratch, its activation classes and packing, the bytes its ops move and the roofline. Each case of the op
 * scratch mirrors what run_op in rt_cuda.cu takes with scratch(): keep the two together. The backend computes
 * in fp32, so sizes are fp32 element counts whatever the graph's storage dtype. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
static int frozen(const avgen_graph *g, const avgen_op_desc *o, int slot);

/* The kind of the first op that writes tensor t (-1: none). */
static int writer_kind(const avgen_graph *g, int t) {
    for (int i = 0; i < g->n_ops && t >= 0; i++)
        for (int j = 0; j < g->ops[i].n_out; j++)
            if (g->refs[g->ops[i].out_at + j] == t) return g->ops[i].kind;
    return -1;
}

size_t rt_cuda_attn_smem(int n, int hd) {
    const size_t rows = ((size_t)n + 63) / 64 * 64;
    return rows * ((size_t)(hd + 8) * 2 * 2 + 2 * sizeof(float));
}

size_t rt_cuda_attn_smem_of(const avgen_consts *k) {
    return rt_cuda_attn_smem(k->tokens_v > k->tokens_a ? k->tokens_v : k->tokens_a, k->heads > 0 ? k->dim / k->heads : 0);
}

int rt_cuda_attention_fusable(const avgen_consts *k) {
    const int hd = k->heads > 0 ? k->dim / k->heads : 0;
    return (hd == 16 || hd == 32 || hd == 64) && (long long)k->batch * k->frames <= 65535 &&
           rt_cuda_attn_smem_of(k) <= RT_CUDA_ATTN_SMEM_MAX;
}

int rt_cuda_attn_shapes(const avgen_consts *k, int t[2][3]) {
    if (!rt_cuda_attention_fusable(k)) return 0;
    const int hd = k->dim / k->heads, n[2] = {k->tokens_v, k->tokens_a};
    int c = 0;
    for (int s = 0; s < 2; s++)
        if (n[s] > 0 && !(c == 1 && t[0][1] == n[s])) t[c][0] = hd, t[c][1] = n[s], t[c][2] = k->heads, c++;
    return c;
}

int rt_cuda_shape_lines(const avgen_consts *k, char *buf, size_t len) {
    int t[2][3];
    const int c = rt_cuda_attn_shapes(k, t);
    size_t at = 0;
    if (len) buf[0] = 0;
    for (int i = 0; i < c && at < len; i++) {
        const int w = snprintf(buf + at, len - at, "AVGEN_ATTN_SHAPE(%d, %d, %d)\n", t[i][0], t[i][1], t[i][2]);
        at += w > 0 ? (size_t)w : 0;
    }
    return c;
}

long long rt_cuda_dw_chunk(long long rows, long long Cin, long long Cout) {
    /* About 64 chunks. First a count between 48 and 96 (the nearest to 64 first) that divides the rows, so no
     * shorter chunk is left for a GEMM of its own, with every chunk's start 16 elements aligned in dY and X
     * (ViT-B/16: 64 chunks of 4 pairs' tokens, 788 and 196 rows); else a multiple of 8 rows (the batch strides
     * stay 32-byte aligned) and the rest as a chunk of its own. At least 16 rows (so that the small test
     * configurations take this path too). */
    for (int i = 0; i <= 2 * 32; i++) {
        const long long n = 64 + (i % 2 ? (i + 1) / 2 : -(i / 2));
        if (n < 48 || n > 96 || rows % n) continue;
        const long long chunk = rows / n;
        if (chunk >= 16 && (chunk * Cin) % 16 == 0 && (chunk * Cout) % 16 == 0) return chunk;
    }
    long long chunk = ((rows + 63) / 64 + 7) / 8 * 8;
    if (chunk < 16) chunk = 16;
    return rows / chunk >= 2 ? chunk : 0;
}

long long rt_cuda_bf16_copy_bytes(const int64_t *arena_bytes) {
    return arena_bytes[AVGEN_ARENA_FROZEN] / 2 + arena_bytes[AVGEN_ARENA_TRAIN] / 2;
}

double rt_cuda_dw_part_floats(long long rows, long long Cin, long long Cout, long long G) {
    const long long chunk = rt_cuda_dw_chunk(rows, Cin, Cout);
    if (!chunk || G < 1) return 0;
    const long long parts = rows / chunk + (rows % chunk ? 1 : 0);
    return (double)parts * (double)Cout * (double)(Cin / G);
}

void rt_cuda_group_linear_dw(const rt_dw_ops *ops, const void *dYv, const void *Xv, float *dW, float *part,
                             long long rows, int Cin, int Cout, int G) {
    const int cin_g = Cin / G, cout_g = Cout / G, es = ops->es ? ops->es : 4;
    const char *dY = (const char *)dYv, *X = (const char *)Xv; /* offsets below in elements, times es */
    const long long W = (long long)cout_g * cin_g, chunk = rt_cuda_dw_chunk(rows, Cin, Cout);
    if (!chunk) {
        ops->gemm(ops->ctx, 1, 0, cout_g, cin_g, (int)rows, dY, Cout, X, Cin, dW, cin_g, 1, G, cout_g, cin_g, W);
        return;
    }
    /* part [parts][G][W]: chunk p's product of group g at (p G + g) W, so that the sum over the chunks of every
     * group's elements is one pass onto dW [G][W] */
    const long long full = rows / chunk, rem = rows - full * chunk, parts = full + (rem > 0), GW = (long long)G * W;
    for (int g = 0; g < G; g++) {
        float *pg = part + (size_t)g * (size_t)W;
        ops->gemm(ops->ctx, 1, 0, cout_g, cin_g, (int)chunk, dY + (size_t)es * g * cout_g, Cout, X + (size_t)es * g * cin_g, Cin,
                  pg, cin_g, 0, (int)full, chunk * Cout, chunk * Cin, GW);
        if (rem)
            ops->gemm(ops->ctx, 1, 0, cout_g, cin_g, (int)rem, dY + (size_t)es * (full * chunk * Cout + g * cout_g), Cout,
                      X + (size_t)es * (full * chunk * Cin + g * cin_g), Cin, pg + (size_t)full * (size_t)GW, cin_g, 0, 1, 0, 0,
                      0);
    }
    ops->sum(ops->ctx, part, dW, (int)parts, GW);
}

int rt_cuda_ln_values(int D) { return D <= 32 ? 1 : D <= 64 ? 2 : D > 736 && D <= 768 ? 24 : 0; }

int rt_cuda_latbwd_first(const avgen_graph *g, int j) {
    if (j < 1 || j >= g->n_ops) return -1;
    const avgen_op_desc *f = &g->ops[j - 1], *s = &g->ops[j];
    if (f->kind != AVGEN_OP_KIND_ADAPTER_LATENT_BWD || s->kind != AVGEN_OP_KIND_ADAPTER_LATENT_BWD || f->phase != s->phase ||
        f->n_in < 8 || s->n_in < 8 || f->n_out != 4 || s->n_out != 4)
        return -1;
    /* op j - 1 already a pair's second (checked after the kinds: the recursion walks a run of latent ops only) */
    if (j >= 2 && rt_cuda_latbwd_first(g, j - 1) >= 0) return -1;
    const int32_t *fi = g->refs + f->in_at, *fo = g->refs + f->out_at, *si = g->refs + s->in_at, *so = g->refs + s->out_at;
    for (int k = 0; k < 8; k++)
        if (fi[k] < 0 || si[k] < 0) return -1;
    for (int k = 0; k < 4; k++)
        if (fo[k] < 0 || so[k] < 0) return -1;
    if (fi[1] != si[2] || fi[2] != si[1] || fo[2] != so[3] || fo[3] != so[2] || fo[2] == fo[3]) return -1;
    for (int k = 0; k < 8; k++) { /* the second's parts 1-3 run before the first's writes, the first's after the */
        for (int q = 0; q < 4; q++) /* second's term is added to the gradients */
            if (si[k] == fo[q]) return -1;
        if (fi[k] == fo[2] || fi[k] == fo[3]) return -1;
    }
    const avgen_tensor_desc *fx = &g->tensors[fi[1]], *sx = &g->tensors[si[1]];
    if (fx->ndim != 3 || sx->ndim != 3 || fx->shape[0] != sx->shape[0] || fx->shape[2] != sx->shape[2]) return -1;
    for (int k = 0; k < s->n_out; k++) {
        const int t = so[k];
        const avgen_tensor_desc *td = &g->tensors[t];
        if (td->arena == AVGEN_ARENA_ACT && td->first >= j - 1) return -1; /* new memory at op j */
        if (k >= 2) continue;                                             /* the shared gradients */
        for (int q = 0; q < f->n_in; q++)
            if (fi[q] == t) return -1;
        for (int q = 0; q < f->n_out; q++)
            if (fo[q] == t) return -1;
    }
    return j - 1;
}

/* Whether frozen LAYERNORM_BWD op l, run later with the ops (l, last], is the same: it accumulates into dx (rows
 * shaped as tensor xs, a width k_latbwd_rows_ln and k_latbwd_gy_ln take), and those ops allocate no activation
 * (nothing can take the memory of what l reads), write none of its inputs and read dx only where they add to
 * it (a LAYERNORM_BWD's inputs 0-4, an ADAPTER_LATENT_BWD's 0-7). */
static int ln_defers(const avgen_graph *g, int l, int last, int dx, int xs) {
    if (l < 0 || dx < 0) return 0;
    const avgen_op_desc *L = &g->ops[l];
    if (L->kind != AVGEN_OP_KIND_LAYERNORM_BWD || L->phase != g->ops[last].phase || L->n_in < 6 || L->n_out != 1 ||
        !L->accumulate)
        return 0;
    const int32_t *li = g->refs + L->in_at;
    if (g->refs[L->out_at] != dx || li[5] != dx) return 0;
    for (int k = 0; k < 5; k++)
        if (li[k] < 0) return 0;
    const avgen_tensor_desc *lx = &g->tensors[li[1]], *fx = &g->tensors[xs];
    if (lx->ndim != 3 || fx->ndim != 3 || lx->shape[0] != fx->shape[0] || lx->shape[1] != fx->shape[1] ||
        lx->shape[2] != fx->shape[2] || rt_cuda_ln_values((int)lx->shape[2]) == 0)
        return 0;
    for (int q = l + 1; q <= last; q++) {
        const avgen_op_desc *o = &g->ops[q];
        for (int k = 0; k < o->n_out; k++) {
            const int t = g->refs[o->out_at + k];
            if (t < 0) continue;
            if (g->tensors[t].arena == AVGEN_ARENA_ACT && g->tensors[t].first >= l) return 0;
            for (int z = 0; z < 5; z++)
                if (li[z] == t) return 0;
        }
        const int nr = o->kind == AVGEN_OP_KIND_LAYERNORM_BWD ? 5 : 8;
        for (int k = 0; k < nr && k < o->n_in; k++)
            if (g->refs[o->in_at + k] == dx) return 0;
    }
    return 1;
}

int rt_cuda_latbwd_ln(const avgen_graph *g, int f) {
    if (f < 1 || f + 1 >= g->n_ops || rt_cuda_latbwd_first(g, f + 1) != f) return -1;
    const int32_t *fi = g->refs + g->ops[f].in_at, *fo = g->refs + g->ops[f].out_at;
    /* the first op's own stream gradient; the kernel takes at most RT_CUDA_LATBWD_LN_MAX_M latents */
    return g->tensors[fi[6]].shape[0] <= RT_CUDA_LATBWD_LN_MAX_M && ln_defers(g, f - 1, f + 1, fo[2], fi[1]) ? f - 1 : -1;
}

int rt_cuda_latbwd_lny(const avgen_graph *g, int f) {
    if (f < 2 || rt_cuda_latbwd_ln(g, f) != f - 1) return -1;
    const int32_t *fi = g->refs + g->ops[f].in_at, *fo = g->refs + g->ops[f].out_at;
    return ln_defers(g, f - 2, f + 1, fo[3], fi[2]) ? f - 2 : -1; /* the other stream's gradient */
}

int rt_cuda_dy16_reader(const avgen_graph *g, int i) {
    if (i < 0 || i >= g->n_ops || g->ops[i].kind != AVGEN_OP_KIND_LAYERNORM_GATE_BWD || g->ops[i].n_in < 1) return -1;
    const int dy = g->refs[g->ops[i].in_at];
    if (dy < 0) return -1;
    for (int j = i + 1; j < g->n_ops && j <= i + RT_CUDA_CARRY_REACH; j++) {
        const avgen_op_desc *q = &g->ops[j];
        int touches = 0;
        for (int s = 0; s < q->n_in; s++) touches |= g->refs[q->in_at + s] == dy;
        for (int s = 0; s < q->n_out; s++) touches |= g->refs[q->out_at + s] == dy;
        if (!touches) continue;
        /* the first op after i to touch it: the GEMM, reading it as its input gradient and writing nothing else
         * of it */
        int reads_other = 0;
        for (int s = 1; s < q->n_in; s++) reads_other |= g->refs[q->in_at + s] == dy;
        for (int s = 0; s < q->n_out; s++) reads_other |= g->refs[q->out_at + s] == dy;
        return q->kind == AVGEN_OP_KIND_LINEAR_DX && q->phase == g->ops[i].phase && q->n_in >= 2 && q->n_out >= 1 &&
                       g->refs[q->in_at] == dy && !reads_other && frozen(g, q, 1)
                   ? j
                   : -1;
    }
    return -1;
}

/* Whether op q writes tensor t. */
static int writes_t(const avgen_graph *g, int q, int t) {
    for (int s = 0; s < g->ops[q].n_out; s++)
        if (g->refs[g->ops[q].out_at + s] == t) return 1;
    return 0;
}

int rt_cuda_latdots_reader(const avgen_graph *g, int i) {
    if (i < 0 || i >= g->n_ops) return -1;
    const avgen_op_desc *a = &g->ops[i];
    if (a->kind != AVGEN_OP_KIND_ADAPTER_LATENT || a->n_in < 4 || a->n_out < 4) return -1;
    const int x = g->refs[a->in_at];
    if (x < 0) return -1;
    for (int j = i + 1; j < g->n_ops && j <= i + RT_CUDA_CARRY_REACH; j++) {
        const avgen_op_desc *b = &g->ops[j];
        if (b->phase != a->phase || writes_t(g, j, x)) return -1;
        if (b->kind != AVGEN_OP_KIND_ADAPTER_LATENT || b->n_in < 4 || b->n_out < 4 || g->refs[b->in_at + 1] != x) continue;
        const int tok = g->refs[b->in_at + 2];
        if (tok < 0 || g->tensors[tok].ndim != 2 || g->tensors[tok].shape[1] != g->tensors[x].shape[2]) return -1;
        for (int q = i; q < j; q++)
            if (writes_t(g, q, tok)) return -1;
        return j;
    }
    return -1;
}

int rt_cuda_latln_next(const avgen_graph *g, int i) {
    if (i < 0 || i + 1 >= g->n_ops) return -1;
    const avgen_op_desc *a = &g->ops[i], *b = &g->ops[i + 1];
    if (a->kind != AVGEN_OP_KIND_ADAPTER_LATENT || a->n_in < 4 || a->n_out < 4 || b->kind != AVGEN_OP_KIND_LAYERNORM ||
        b->phase != a->phase || b->n_in < 3 || b->n_out < 1 || g->refs[b->in_at] != g->refs[a->out_at] || g->refs[a->out_at] < 0)
        return -1;
    const avgen_tensor_desc *x = &g->tensors[g->refs[a->in_at]], *tok = &g->tensors[g->refs[a->in_at + 2]];
    if (x->ndim != 3 || rt_cuda_ln_values((int)x->shape[2]) <= 0 || tok->shape[0] > RT_CUDA_LATLN_MAX_M) return -1;
    const int j = rt_cuda_latdots_reader(g, i);
    if (j >= 0 && g->tensors[g->refs[g->ops[j].in_at + 2]].shape[0] > RT_CUDA_LATLN_MAX_M) return -1;
    /* nothing op i touches in the activation arena ends its life at op i */
    for (int s = 0; s < a->n_in + a->n_out; s++) {
        const int t = g->refs[s < a->n_in ? a->in_at + s : a->out_at + s - a->n_in];
        if (t >= 0 && g->tensors[t].arena == AVGEN_ARENA_ACT && g->tensors[t].last <= i) return -1;
    }
    return i + 1;
}

int rt_cuda_carry(const avgen_graph *g, int i, int *j, int64_t *bytes) {
    int r = rt_cuda_dy16_reader(g, i), kind = RT_CUDA_CARRY_DY16;
    double b = 0;
    if (r >= 0) { /* the gradient as bf16 */
        b = 2 * numel_of(&g->tensors[g->refs[g->ops[i].in_at]]);
    } else if ((r = rt_cuda_latdots_reader(g, i)) >= 0) { /* [P, m, N2] logits in fp32 */
        const avgen_tensor_desc *y = &g->tensors[g->refs[g->ops[r].in_at + 1]], *tok = &g->tensors[g->refs[g->ops[r].in_at + 2]];
        b = 4.0 * (double)y->shape[0] * (double)tok->shape[0] * (double)y->shape[1], kind = RT_CUDA_CARRY_LATDOTS;
    } else {
        kind = RT_CUDA_CARRY_NONE;
    }
    if (j) *j = r;
    if (bytes) *bytes = ((int64_t)b + 255) / 256 * 256;
    return kind;
}

int64_t rt_cuda_carry_offset(const avgen_graph *g, int i) {
    int64_t off = 0, b;
    int j;
    for (int p = i - 1; p >= 0 && p >= i - RT_CUDA_CARRY_REACH; p--)
        if (rt_cuda_carry(g, p, &j, &b) && j >= i) {
            const int64_t e = rt_cuda_carry_offset(g, p) + b;
            if (e > off) off = e;
        }
    return off;
}

int64_t rt_cuda_carry_extent(const avgen_graph *g, int op) {
    int64_t ext = 0, b;
    int j;
    for (int i = op; i >= 0 && i >= op - RT_CUDA_CARRY_REACH; i--)
        if (rt_cuda_carry(g, i, &j, &b) && j >= op) {
            const int64_t e = rt_cuda_carry_offset(g, i) + b;
            if (e > ext) ext = e;
        }
    return ext;
}

size_t rt_cuda_op_scratch(const avgen_graph *g, const avgen_consts *k, int op, int fused_attention) {
    double v = op_scratch(g, k, op, fused_attention && rt_cuda_attention_fusable(k));
    const int f = rt_cuda_latbwd_first(g, op); /* a latent backward pair runs at its second op, with both scratches */
    if (f >= 0) v += op_scratch(g, k, f, 0);
    /* below op's own scratch, the carries live at it (rt_cuda_carry) */
    v += (double)rt_cuda_carry_extent(g, op);
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
    case AVGEN_OP_KIND_LINEAR_DX: /* bf16 GEMM operands: the incoming gradient as bf16 */
        return TD(in[1])->arena == AVGEN_ARENA_FROZEN ? 2.0 * numel_of(TD(in[0])) + 256 : 0;
    case AVGEN_OP_KIND_ADAPTER_LATENT_BWD: {
        const avgen_tensor_desc *xt = TD(in[1]), *yt = TD(in[2]), *tt = TD(in[6]);
        const double P = (double)xt->shape[0], N = (double)xt->shape[1], D = (double)xt->shape[2];
        const double N2 = (double)yt->shape[1], m = (double)tt->shape[0];
        return 4.0 * (P * N * m + 2 * P * m * D + P * m * N2) + 8.0 * P * N + 5 * 256;
    }
    case AVGEN_OP_KIND_LAYERNORM_GATE_BWD: {
        /* the row sums of the gate's gradient, the column sums' parts, (a BatchNorm output applied on load,
         * rt_cuda_bn_on_load, without k_ln_bwd_cs) that output rebuilt in fp32, and (a bf16 dx without
         * k_ln_bwd_cs_bn16) dx in fp32 */
        const avgen_tensor_desc *xt = TD(in[1]);
        return 8.0 * (double)xt->shape[0] * (double)xt->shape[1] + colsum_bytes(xt->shape[2]) + 2 * 4.0 * numel_of(xt) + 4 * 256;
    }
    case AVGEN_OP_KIND_LAYERNORM_BWD: {
        /* the column sums' parts, and (an adapter's gated fuse applied on load, rt_cuda_lat_on_load, without
         * k_ln_bwd_cs) that input rebuilt in fp32 */
        /* and (its bf16 input gradient or output, rt_cuda_bf16_operands, without k_ln_bwd_cs_lat16) those in fp32 */
        const avgen_tensor_desc *xt = TD(in[1]);
        const int lat = o->n_out == 3 && writer_kind(g, in[1]) == AVGEN_OP_KIND_ADAPTER_LATENT;
        return colsum_bytes(xt->shape[xt->ndim - 1]) + (lat ? 3 * (4.0 * numel_of(xt) + 256) : 0);
    }
    case AVGEN_OP_KIND_BATCHNORM:
    case AVGEN_OP_KIND_BATCHNORM_RELU:
    case AVGEN_OP_KIND_BATCHNORM_BWD:
    case AVGEN_OP_KIND_BATCHNORM_RELU_BWD: {
        const int fwd = o->kind == AVGEN_OP_KIND_BATCHNORM || o->kind == AVGEN_OP_KIND_BATCHNORM_RELU;
        const int64_t C = TD(in[fwd ? 0 : 1])->shape[2];
        /* two column vectors of doubles (forward: the sum and shifted sum of squares), one colsum */
        return colsum_bytes(C) + 2 * 8.0 * (double)C + 3 * 256;
    }
    case AVGEN_OP_KIND_GROUP_LINEAR: /* a bf16 input (rt_cuda_bf16_operands): the weight's bf16 copy */
        return 2.0 * numel_of(TD(in[1])) + 256;
    case AVGEN_OP_KIND_GROUP_LINEAR_BWD: {
        /* the weight's bf16 copy (a bf16 dY), the weight gradient's partial products, one per row chunk, and (a
         * bf16 input) dY as bf16 */
        const avgen_tensor_desc *xt = TD(in[1]), *wt = TD(in[2]);
        const long long Cin = xt->shape[2], G = wt->shape[1] > 0 ? Cin / wt->shape[1] : 1;
        const double f = rt_cuda_dw_part_floats(xt->shape[0] * xt->shape[1], Cin, wt->shape[0], G);
        return 2.0 * numel_of(wt) + 256 + (f > 0 ? 4.0 * f + 256 : 0) + 2.0 * numel_of(TD(in[0])) + 256;
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

static int frozen(const avgen_graph *g, const avgen_op_desc *o, int slot) {
    return slot < o->n_in && g->refs[o->in_at + slot] >= 0 && g->tensors[g->refs[o->in_at + slot]].arena == AVGEN_ARENA_FROZEN;
}

typedef struct {
    int op, slot;
} int2_t;

/* The kinds of bf16 activation (rt_cuda_bf16_operands) by what may read them. */
enum {
    B16_OPERAND, /* a LayerNorm's output, the GELU output: the first operand of frozen-weight GEMMs */
    B16_QKV,     /* qkv, with the fused attention: the attention ops */
    B16_DQKV,    /* qkv's gradient: QKV_DX against frozen weights */
    B16_AO,      /* the fused attention's output: the output projection, and the attention backward's delta */
    B16_PRE,     /* the GELU's input (LINEAR_GELU's first output): the GELU backward */
    B16_DACT,    /* a LINEAR_DX result against a frozen weight: the gradient of the GELU output (the GELU backward
                  * reads it) or of the fused attention's output (its backward reads it, qkv bf16) */
    B16_DLN,     /* a frozen LayerNorm's input gradient (QKV_DX, GELU_LINEAR_DX): that LayerNorm's backward */
    B16_GOUT,    /* an adapter's grouped projection's output (its input bf16): its BatchNorm and that's backward */
    B16_GDY,     /* that BatchNorm's input gradient: the projection's backward, whose input x is bf16 */
    B16_DZ,      /* the down-projection's input gradient: the backward of the LayerNorm before it */
    B16_DZPRE,   /* that LayerNorm's input gradient (the gated fuse's): the latent exchange's backward */
    B16_DBN      /* the LayerNorm + gate's input gradient, a BatchNorm's output gradient: that BatchNorm's backward */
};

/* Whether the query, key and value weights of QKV_DX o (inputs 1..3) follow one another in the frozen arena,
 * so the backend runs one GEMM over them (qkv_stacked in rt_cuda.cu), not three that add up. */
static int qkv_weights_stacked(const avgen_graph *g, const avgen_op_desc *o) {
    if (o->n_in < 4) return 0;
    const avgen_tensor_desc *q = &g->tensors[g->refs[o->in_at + 1]], *k = &g->tensors[g->refs[o->in_at + 2]],
                            *v = &g->tensors[g->refs[o->in_at + 3]];
    return k->offset == q->offset + q->bytes && v->offset == k->offset + k->bytes;
}

/* Whether op o may read a bf16 activation of kind kind in its input slot (flags: the tensors classed so far). */
static int reads_bf16(const avgen_graph *g, const avgen_op_desc *o, int slot, int kind, const unsigned char *flags) {
    switch (kind) {
    case B16_GOUT:
        return ((o->kind == AVGEN_OP_KIND_BATCHNORM || o->kind == AVGEN_OP_KIND_BATCHNORM_RELU) && slot == 0) ||
               ((o->kind == AVGEN_OP_KIND_BATCHNORM_BWD || o->kind == AVGEN_OP_KIND_BATCHNORM_RELU_BWD) && slot == 1);
    case B16_GDY: return o->kind == AVGEN_OP_KIND_GROUP_LINEAR_BWD && slot == 0 && o->n_in >= 2 && flags[g->refs[o->in_at + 1]];
    case B16_DZ:
        return o->kind == AVGEN_OP_KIND_LAYERNORM_BWD && slot == 0 && o->n_out == 3 && o->n_in >= 2 &&
               writer_kind(g, g->refs[o->in_at + 1]) == AVGEN_OP_KIND_ADAPTER_LATENT;
    case B16_DZPRE: return o->kind == AVGEN_OP_KIND_ADAPTER_LATENT_BWD && slot == 0;
    case B16_DBN: return o->kind == AVGEN_OP_KIND_BATCHNORM_BWD && slot == 0;
    case B16_OPERAND:
    case B16_AO:
        if (kind == B16_AO && o->kind == AVGEN_OP_KIND_ATTENTION_BWD) return slot == 2;
        /* its backward reads x (slot 1) for the weight gradient, with dY rounded to bf16 */
        if (kind == B16_OPERAND && o->kind == AVGEN_OP_KIND_GROUP_LINEAR_BWD) return slot == 1;
        if (slot != 0) return 0;
        if (o->kind == AVGEN_OP_KIND_QKV) return o->n_in >= 7 && frozen(g, o, 1) && frozen(g, o, 3) && frozen(g, o, 5);
        /* the adapter's grouped projection, whose trainable weight the op rounds to bf16 itself */
        if (kind == B16_OPERAND && o->kind == AVGEN_OP_KIND_GROUP_LINEAR) return 1;
        return (o->kind == AVGEN_OP_KIND_LINEAR_GELU || o->kind == AVGEN_OP_KIND_LINEAR_RESIDUAL) && frozen(g, o, 1);
    case B16_QKV: return (o->kind == AVGEN_OP_KIND_ATTENTION && slot == 0) || (o->kind == AVGEN_OP_KIND_ATTENTION_BWD && slot == 1);
    case B16_DQKV:
        return o->kind == AVGEN_OP_KIND_QKV_DX && slot == 0 && o->n_in >= 4 && frozen(g, o, 1) && frozen(g, o, 2) && frozen(g, o, 3);
    case B16_PRE: return o->kind == AVGEN_OP_KIND_GELU_LINEAR_DX && slot == 1 && frozen(g, o, 2);
    case B16_DACT: /* and the output projection's input gradient, dO of the fused attention's backward with a bf16 qkv */
        return (o->kind == AVGEN_OP_KIND_GELU_LINEAR_DX && slot == 0 && frozen(g, o, 2)) ||
               (o->kind == AVGEN_OP_KIND_ATTENTION_BWD && slot == 0 && o->n_in >= 2 && flags[g->refs[o->in_at + 1]]);
    case B16_DLN: return o->kind == AVGEN_OP_KIND_LAYERNORM_BWD && slot == 0 && o->n_out == 1;
    default: return 0;
    }
}

/* The activation op o writes that may be bf16, and its kind; -1 for none. LINEAR_GELU has two: its GELU output
 * (pass 0) and its GELU input (pass 1), each on its own (under the block policy the recomputed GELU output
 * has no reader, its input does). A bf16 output that a GEMM writes (qkv, the GELU's input) needs that GEMM's
 * operands bf16 too (its input flagged; the weights, and the biases whose bf16 copies the frozen arena's
 * give, frozen); so does the fused attention's bf16 output (its qkv). */
static int bf16_candidate(const avgen_graph *g, const avgen_op_desc *o, int fused, const unsigned char *flags, int pass,
                          int *kind) {
    const int32_t *in = g->refs + o->in_at, *out = g->refs + o->out_at;
    if (o->n_out < 1 || (pass && o->kind != AVGEN_OP_KIND_LINEAR_GELU)) return -1;
    switch (o->kind) {
    case AVGEN_OP_KIND_LAYERNORM: return *kind = B16_OPERAND, out[0];
    /* the adapter's bottleneck: the ReLU output (the up-projection's input), the projections' outputs when
     * their inputs are bf16 (native bf16 GEMMs write them), the BatchNorms' input gradients */
    case AVGEN_OP_KIND_BATCHNORM_RELU: return *kind = B16_OPERAND, out[0];
    case AVGEN_OP_KIND_GROUP_LINEAR: return o->n_in >= 1 && flags[in[0]] ? (*kind = B16_GOUT, out[0]) : -1;
    case AVGEN_OP_KIND_BATCHNORM_BWD:
    case AVGEN_OP_KIND_BATCHNORM_RELU_BWD: return *kind = B16_GDY, out[0];
    /* the down-projection's input gradient (a bf16 GEMM result: its dY bf16), and the gradient the LayerNorm
     * before it passes on to the latent exchange (its dy bf16) */
    case AVGEN_OP_KIND_GROUP_LINEAR_BWD: return o->n_in >= 1 && flags[in[0]] ? (*kind = B16_DZ, out[0]) : -1;
    case AVGEN_OP_KIND_LAYERNORM_GATE_BWD: return *kind = B16_DBN, out[0];
    case AVGEN_OP_KIND_LAYERNORM_BWD:
        return o->n_out == 3 && o->n_in >= 2 && flags[in[0]] && writer_kind(g, in[1]) == AVGEN_OP_KIND_ADAPTER_LATENT
                   ? (*kind = B16_DZPRE, out[0])
                   : -1;
    case AVGEN_OP_KIND_LINEAR_GELU:
        if (o->n_out < 2) return -1;
        if (!pass) return *kind = B16_OPERAND, out[o->n_out - 1];
        if (o->n_in >= 3 && flags[in[0]] && frozen(g, o, 1) && frozen(g, o, 2)) return *kind = B16_PRE, out[0];
        return -1;
    case AVGEN_OP_KIND_QKV:
        if (!fused || o->n_in < 7 || !flags[in[0]]) return -1;
        for (int j = 1; j <= 6; j++)
            if (!frozen(g, o, j)) return -1;
        return *kind = B16_QKV, out[0];
    case AVGEN_OP_KIND_ATTENTION: return fused && o->n_in >= 1 && flags[in[0]] ? (*kind = B16_AO, out[0]) : -1;
    case AVGEN_OP_KIND_ATTENTION_BWD: return fused && o->n_in >= 2 && flags[in[1]] ? (*kind = B16_DQKV, out[0]) : -1;
    case AVGEN_OP_KIND_LINEAR_DX: return o->n_in >= 2 && frozen(g, o, 1) ? (*kind = B16_DACT, out[0]) : -1;
    /* a bf16 GEMM result (no addend): QKV_DX from a bf16 qkv gradient over stacked weights; GELU_LINEAR_DX
     * against a frozen weight (its GELU factor is a bf16 operand there) */
    case AVGEN_OP_KIND_QKV_DX:
        return o->n_in >= 4 && flags[in[0]] && frozen(g, o, 1) && frozen(g, o, 2) && frozen(g, o, 3) && qkv_weights_stacked(g, o)
                   ? (*kind = B16_DLN, out[0])
                   : -1;
    case AVGEN_OP_KIND_GELU_LINEAR_DX: return o->n_in >= 3 && frozen(g, o, 2) ? (*kind = B16_DLN, out[0]) : -1;
    default: return -1;
    }
}

int rt_cuda_bf16_operands(const avgen_graph *g, int fused_attention, unsigned char *flags) {
    const int nt = g->n_tensors;
    for (int t = 0; t < nt; t++) flags[t] = 0;
    /* each tensor's writers counted, its readers (op, slot) listed: at[t] .. at[t + 1] in rd */
    int *writers = (int *)calloc((size_t)nt + 1, sizeof(int)), *at = (int *)calloc((size_t)nt + 2, sizeof(int));
    int nref = 0;
    for (int i = 0; i < g->n_ops; i++) nref += g->ops[i].n_in;
    int2_t *rd = (int2_t *)malloc(sizeof(int2_t) * ((size_t)nref + 1));
    if (!writers || !at || !rd) {
        free(writers), free(at), free(rd);
        return -1;
    }
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        for (int j = 0; j < o->n_out; j++)
            if (g->refs[o->out_at + j] >= 0) writers[g->refs[o->out_at + j]]++;
        for (int j = 0; j < o->n_in; j++)
            if (g->refs[o->in_at + j] >= 0) at[g->refs[o->in_at + j] + 2]++;
    }
    for (int t = 0; t < nt; t++) at[t + 2] += at[t + 1];
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        for (int j = 0; j < o->n_in; j++) {
            const int t = g->refs[o->in_at + j];
            if (t >= 0) rd[at[t + 1]++] = (int2_t){i, j};
        }
    }
    /* now at[t] .. at[t + 1] are t's readers */
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        for (int pass = 0; pass < 2; pass++) { /* LINEAR_GELU: its GELU output, then its input */
            int kind = -1;
            const int t = bf16_candidate(g, o, fused_attention, flags, pass, &kind);
            if (t < 0 || flags[t] || g->tensors[t].arena != AVGEN_ARENA_ACT || g->tensors[t].dtype != AVGEN_DT_F32) continue;
            int ok = writers[t] == 1 && at[t + 1] > at[t];
            for (int r = at[t]; r < at[t + 1] && ok; r++) ok = reads_bf16(g, &g->ops[rd[r].op], rd[r].slot, kind, flags);
            if (ok) flags[t] = RT_CUDA_T_BF16;
        }
    }
    free(writers), free(at), free(rd);
    /* the fused attention kernels read qkv and write the output, or read qkv and dO and write qkv's gradient,
     * all as bf16 or all as fp32 (a qkv that loses its flag takes its output's, dO's and gradient's along) */
    for (int changed = 1; changed && fused_attention;) {
        changed = 0;
        for (int i = 0; i < g->n_ops; i++) {
            const avgen_op_desc *o = &g->ops[i];
            const int qs = o->kind == AVGEN_OP_KIND_ATTENTION ? 0 : o->kind == AVGEN_OP_KIND_ATTENTION_BWD ? 1 : -1;
            if (qs < 0 || o->n_in <= qs || o->n_out < 1) continue;
            const int q = g->refs[o->in_at + qs], r = g->refs[o->out_at], dO = qs ? g->refs[o->in_at] : r;
            if (flags[q] == flags[r] && flags[q] == flags[dO]) continue;
            flags[q] = flags[r] = flags[dO] = 0, changed = 1;
        }
    }
    int n = 0;
    for (int t = 0; t < g->n_tensors; t++) n += flags[t] != 0;
    return n;
}

/* The activation arena repacked for bf16 activations: the planner's packing (generator/plan.c: largest
 * first, then by first use, each at the lowest offset free over its lifetime, found by a scan of the placed
 * slots in offset order), with a bf16 tensor's slot half its fp32 bytes. Plain C, so the planner predicts
 * with it what the backend allocates. */
typedef struct {
    int id;
    int64_t bytes;
    int32_t first;
} pack_item;
static int pack_by_size(const void *a, const void *b) {
    const pack_item *x = a, *y = b;
    if (x->bytes != y->bytes) return x->bytes > y->bytes ? -1 : 1;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return x->id - y->id;
}
typedef struct {
    int64_t lo, hi;
} pack_span;
#define PACK_ALIGN 256
static int64_t pack_bytes(const avgen_tensor_desc *t, int cls) {
    const int64_t b = cls == RT_CUDA_T_BF16 ? t->bytes / 2 : cls == RT_CUDA_T_VIRTUAL ? 0 : t->bytes;
    return (b + PACK_ALIGN - 1) / PACK_ALIGN * PACK_ALIGN;
}

int64_t rt_cuda_pack_act(const avgen_graph *g, const unsigned char *cls, int64_t *offset) {
    const int nt = g->n_tensors;
    pack_item *ord = (pack_item *)malloc(sizeof *ord * (size_t)(nt + 1));
    pack_span *placed = (pack_span *)malloc(sizeof *placed * (size_t)(nt + 1)); /* by offset: slot and tensor */
    int *who = (int *)malloc(sizeof *who * (size_t)(nt + 1));
    int64_t top = -1;
    if (ord && placed && who) {
        int n = 0;
        for (int i = 0; i < nt; i++) {
            const avgen_tensor_desc *t = &g->tensors[i];
            if (offset) offset[i] = -1;
            if (t->arena == AVGEN_ARENA_ACT && t->first >= 0) ord[n++] = (pack_item){i, pack_bytes(t, cls ? cls[i] : 0), t->first};
        }
        qsort(ord, (size_t)n, sizeof *ord, pack_by_size);
        top = 0;
        for (int i = 0, np = 0; i < n; i++) {
            const avgen_tensor_desc *t = &g->tensors[ord[i].id];
            int64_t off = 0;
            if (ord[i].bytes == 0) { /* not stored: no slot */
                if (offset) offset[ord[i].id] = 0;
                continue;
            }
            for (int j = 0; j < np; j++) {
                const avgen_tensor_desc *u = &g->tensors[who[j]];
                if (u->first > t->last || t->first > u->last) continue;
                if (placed[j].lo >= off + ord[i].bytes) break;
                if (placed[j].hi > off) off = placed[j].hi;
            }
            if (offset) offset[ord[i].id] = off;
            if (off + ord[i].bytes > top) top = off + ord[i].bytes;
            int k = np++;
            while (k > 0 && placed[k - 1].lo > off) placed[k] = placed[k - 1], who[k] = who[k - 1], k--;
            placed[k] = (pack_span){off, off + ord[i].bytes}, who[k] = ord[i].id;
        }
    }
    free(ord), free(placed), free(who);
    return top;
}

/* BatchNorm applied on load (see rt_cuda.h): the BATCHNORM ops whose output is read only by LAYERNORM_GATE (as
 * its input) and LAYERNORM_GATE_BWD (as x), while the BatchNorm input is still live (its lifetime covers
 * every such reader: the readers then load it instead). */
int rt_cuda_bn_on_load(const avgen_graph *g, unsigned char *cls) {
    int n = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        if (o->kind != AVGEN_OP_KIND_BATCHNORM || o->n_out != 3 || o->n_in < 3) continue;
        const int u = g->refs[o->in_at], y = g->refs[o->out_at], mean = g->refs[o->out_at + 1], rstd = g->refs[o->out_at + 2];
        if (u < 0 || y < 0 || mean < 0 || rstd < 0) continue;
        const avgen_tensor_desc *ut = &g->tensors[u], *yt = &g->tensors[y];
        if (yt->arena != AVGEN_ARENA_ACT || yt->dtype != AVGEN_DT_F32 || ut->dtype != AVGEN_DT_F32 ||
            (cls && (cls[y] || (cls[u] && cls[u] != RT_CUDA_T_BF16)))) /* (a bf16 input: the loads read bf16) */
            continue;
        /* the readers load u and the BatchNorm's mean and rstd: each written once and live through the last reader */
        int writers = 0, uwriters = 0, mwriters = 0, rwriters = 0, readers = 0, ok = 1;
        for (int j = 0; j < g->n_ops && ok; j++) {
            const avgen_op_desc *q = &g->ops[j];
            for (int s2 = 0; s2 < q->n_out; s2++) {
                writers += g->refs[q->out_at + s2] == y;
                uwriters += g->refs[q->out_at + s2] == u;
                mwriters += g->refs[q->out_at + s2] == mean;
                rwriters += g->refs[q->out_at + s2] == rstd;
            }
            for (int s2 = 0; s2 < q->n_in; s2++)
                if (g->refs[q->in_at + s2] == y) {
                    readers++;
                    ok = ((q->kind == AVGEN_OP_KIND_LAYERNORM_GATE && s2 == 0) ||
                          (q->kind == AVGEN_OP_KIND_LAYERNORM_GATE_BWD && s2 == 1)) &&
                         j > i && j <= ut->last && j <= g->tensors[mean].last && j <= g->tensors[rstd].last;
                }
        }
        if (!ok || writers != 1 || uwriters != 1 || mwriters != 1 || rwriters != 1 || readers == 0) continue;
        if (cls) cls[y] = RT_CUDA_T_VIRTUAL;
        n++;
    }
    return n;
}

/* The gated fuse applied on load (see rt_cuda.h): the ADAPTER_LATENT ops whose Z (output 0) is read only by a
 * LAYERNORM (its input) and a trainable LAYERNORM_BWD (as x), while X (input 0), S and A2 (outputs 1 and 3)
 * are live; each of Z, S, A2 and X written once (so every reader loads what the latent op read). */
int rt_cuda_lat_on_load(const avgen_graph *g, unsigned char *cls) {
    int n = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        if (o->kind != AVGEN_OP_KIND_ADAPTER_LATENT || o->n_out != 4 || o->n_in < 4) continue;
        const int x = g->refs[o->in_at], z = g->refs[o->out_at], S = g->refs[o->out_at + 1], A2 = g->refs[o->out_at + 3];
        if (x < 0 || z < 0 || S < 0 || A2 < 0) continue;
        const avgen_tensor_desc *zt = &g->tensors[z];
        if (zt->arena != AVGEN_ARENA_ACT || zt->dtype != AVGEN_DT_F32 || g->tensors[x].dtype != AVGEN_DT_F32 ||
            (cls && (cls[z] || cls[x] || cls[S] || cls[A2])))
            continue;
        int zw = 0, sw = 0, aw = 0, xw = 0, readers = 0, ok = 1;
        for (int j = 0; j < g->n_ops && ok; j++) {
            const avgen_op_desc *q = &g->ops[j];
            for (int s2 = 0; s2 < q->n_out; s2++) {
                const int t = g->refs[q->out_at + s2];
                zw += t == z, sw += t == S, aw += t == A2, xw += t == x;
            }
            for (int s2 = 0; s2 < q->n_in; s2++)
                if (g->refs[q->in_at + s2] == z) {
                    readers++;
                    ok = ((q->kind == AVGEN_OP_KIND_LAYERNORM && s2 == 0) ||
                          (q->kind == AVGEN_OP_KIND_LAYERNORM_BWD && s2 == 1 && q->n_out == 3)) &&
                         j > i && j <= g->tensors[x].last && j <= g->tensors[S].last && j <= g->tensors[A2].last;
                }
        }
        if (!ok || zw != 1 || sw != 1 || aw != 1 || xw > 1 || readers == 0) continue;
        if (cls) cls[z] = RT_CUDA_T_VIRTUAL;
        n++;
    }
    return n;
}

int rt_cuda_act_classes(const avgen_graph *g, int bf16, int fused_attention, int fuse, unsigned char *cls, int *n_bf16,
                        int *n_bn, int *n_lat) {
    int nb = 0, nn = 0, nl = 0;
    if (bf16) {
        if ((nb = rt_cuda_bf16_operands(g, fused_attention, cls)) < 0) return -1;
    } else {
        for (int t = 0; t < g->n_tensors; t++) cls[t] = RT_CUDA_T_FP32;
    }
    if (fuse & RT_CUDA_FUSE_BN) nn = rt_cuda_bn_on_load(g, cls);
    if (fuse & RT_CUDA_FUSE_LATENT) nl = rt_cuda_lat_on_load(g, cls);
    if (n_bf16) *n_bf16 = nb;
    if (n_bn) *n_bn = nn;
    if (n_lat) *n_lat = nl;
    return 0;
}

/* The input a tensor applied on load is computed from (its writer's first input: a BatchNorm's input, the
 * residual stream of an adapter's gated fuse), or t itself. */
static int load_source(const avgen_graph *g, int t) {
    for (int i = 0; i < g->n_ops; i++)
        for (int j = 0; j < g->ops[i].n_out; j++)
            if (g->refs[g->ops[i].out_at + j] == t) return g->ops[i].n_in > 0 && g->refs[g->ops[i].in_at] >= 0 ? g->refs[g->ops[i].in_at] : t;
    return t;
}

/* The bytes op moves for tensor t at its class (bf16 half of fp32): an input applied on load reads what it is
 * computed from; an output applied on load is never written. */
static double moved(const avgen_graph *g, int t, const unsigned char *cls, int output) {
    if (t < 0) return 0;
    int k = cls ? cls[t] : RT_CUDA_T_FP32;
    if (k == RT_CUDA_T_VIRTUAL && output) return 0;
    if (k == RT_CUDA_T_VIRTUAL) k = cls[load_source(g, t)];
    return (double)g->tensors[t].bytes / (k == RT_CUDA_T_BF16 ? 2 : 1);
}

double rt_cuda_op_bytes(const avgen_graph *g, int op, const unsigned char *cls) {
    const avgen_op_desc *o = &g->ops[op];
    const int32_t *in = g->refs + o->in_at, *out = g->refs + o->out_at;
    /* a latent backward pair (rt_cuda_latbwd_first): the first op's passes over the two gradients (inputs 8, 9,
     * outputs 2, 3: added into) are the second's, which reads its dZ (input 0) once more for its gX term, added
     * in the first's part 4 pass */
    const int lb_first = op + 1 < g->n_ops && rt_cuda_latbwd_first(g, op + 1) == op;
    const int lb_second = rt_cuda_latbwd_first(g, op) >= 0;
    /* and a LayerNorm backward run with it (rt_cuda_latbwd_ln, _lny): its pass over the gradient (input 5,
     * output 0) is the pair's */
    const int lb_ln = o->kind == AVGEN_OP_KIND_LAYERNORM_BWD &&
                      (rt_cuda_latbwd_ln(g, op + 1) == op || rt_cuda_latbwd_lny(g, op + 2) == op);
    /* a LayerNorm run with the latent op before it on its fuse applied on load (rt_cuda_latln_next): that op's
     * pass reads the residual stream for both */
    const int ll = o->kind == AVGEN_OP_KIND_LAYERNORM && cls && o->n_in > 0 && g->refs[o->in_at] >= 0 &&
                   cls[g->refs[o->in_at]] == RT_CUDA_T_VIRTUAL && rt_cuda_latln_next(g, op - 1) == op;
    double bytes = lb_second && o->n_in > 0 ? moved(g, in[0], cls, 0) : 0;
    for (int i = 0; i < o->n_in; i++)
        if (!(lb_first && (i == 8 || i == 9)) && !(lb_ln && i == 5) && !(ll && i == 0)) bytes += moved(g, in[i], cls, 0);
    for (int i = 0; i < o->n_out; i++)
        if (!(lb_first && (i == 2 || i == 3)) && !(lb_ln && i == 0)) bytes += moved(g, out[i], cls, 1);
    return bytes;
}

double rt_device_peak(const char *name) {
    /* Dense bf16 tensor-core peaks (SXM parts; the PCIe H100 is lower, pass --peak there). */
    if (strstr(name, "H100") || strstr(name, "H200") || strstr(name, "GH200")) return 989e12;
    if (strstr(name, "A100")) return 312e12;
    if (strstr(name, "L40S")) return 362e12;
    return 0;
}

double rt_device_bandwidth(const char *name) {
    if (strstr(name, "H200")) return 4.8e12;
    if (strstr(name, "H100")) return strstr(name, "PCIe") ? 2.0e12 : 3.35e12;
    if (strstr(name, "A100")) return 2.0e12;
    return 0;
}

double rt_roofline_sum(const double *kind_bytes, const double *kind_flops, double peak, double bandwidth, double *kind_s) {
    double roof = 0;
    for (int kd = 0; kd < AVGEN_OP_KIND_COUNT; kd++) {
        const double tb = bandwidth > 0 ? kind_bytes[kd] / bandwidth : 0, tf = peak > 0 ? kind_flops[kd] / peak : 0;
        if (kind_s) kind_s[kd] = tb > tf ? tb : tf;
        roof += tb > tf ? tb : tf;
    }
    return roof;
}

double rt_cuda_roofline(const avgen_graph *g, const unsigned char *cls, double peak, double bandwidth, double *kind_bytes,
                        double *kind_flops) {
    double by[AVGEN_OP_KIND_COUNT] = {0}, fl[AVGEN_OP_KIND_COUNT] = {0};
    for (int j = 0; j < g->n_ops; j++) by[g->ops[j].kind] += rt_cuda_op_bytes(g, j, cls), fl[g->ops[j].kind] += g->ops[j].flops;
    for (int kd = 0; kd < AVGEN_OP_KIND_COUNT; kd++) {
        if (kind_bytes) kind_bytes[kd] = by[kd];
        if (kind_flops) kind_flops[kd] = fl[kd];
    }
    return rt_roofline_sum(by, fl, peak, bandwidth, NULL);
}
