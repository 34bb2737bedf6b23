/* Lowering: gen_spec -> ordered ops (MODEL.md sections 2-4 as straight-line code).
 *
 * Forward, per layer: p1 adapters (both streams read the block inputs), attention sub-layer of each
 * stream, p2 adapters (read the post-attention states), MLP sub-layer of each stream. Backward walks the
 * layers down and keeps one fp32 gradient buffer per stream (g_v, g_a) that ops accumulate into in
 * place; within a sub-block every op that reads g as "the gradient of the sub-block output" runs before
 * any op accumulates into it, which is what lets the residual gradient live in one buffer. */
#include "ir.h"

#include "avgen_graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define END (-2)
enum { SV = 0, SA = 1 };
enum { AD_V1, AD_A1, AD_V2, AD_A2 };
/* The stream adapter position w belongs to. */
static int adapter_stream(int w) { return (w == AD_V1 || w == AD_V2) ? SV : SA; }
static const char *const k_adapter_prefix[4] = {"vis_adapter_blocks_p1", "audio_adapter_blocks_p1",
                                                "vis_adapter_blocks_p2", "audio_adapter_blocks_p2"};

typedef struct {
    int ln1w, ln1b, wq, bq, wk, bk, wv, bv, wo, bo, ln2w, ln2b, w1, b1, w2, b2;
} layer_params;

typedef struct {
    int exists;
    int tok, gate, gate_av, lnb_w, lnb_b, down, bn1w, bn1b, bn1rm, bn1rv, bn1n, up, bn2w, bn2b, bn2rm, bn2rv, bn2n,
        lnp_w, lnp_b;
} adapter_params;

typedef struct {
    int X, Y, out, S, A1, A2, zpre, z, lnb_mu, lnb_rs, hd, bn1_mu, bn1_rs, h, u, bn2_mu, bn2_rs, ub, lnp_mu, lnp_rs;
} adapter_acts;

typedef struct {
    int x, h1, mu1, rs1, qkv, ao, lse, xm, h2, mu2, rs2, f1pre, f1act, xout;
} stream_acts;

typedef struct {
    stream_acts s[2];
    adapter_acts ad[4];
} layer_acts;

typedef struct {
    gen_ir *ir;
    const gen_spec *s;
    int B, T, P, D, F, H, m, dr, G, C, hid, W, depth;
    int N[2], use[2];
    gen_dtype adt;
    layer_params L[GEN_MAX_DEPTH];
    adapter_params ad[4][GEN_MAX_DEPTH];
    int cls, pos, pw, pb, lnf_w, lnf_b, h1w, h1b, h2w, h2b;
    int frames, audio, labels;
    int oom;
} ctx;

static const char k_sname[2] = {'v', 'a'};

/* ------------------------------------------------------------------------------------------ names */

const char *gen_opkind_name(gen_opkind k) {
#define OPNAME(k) #k,
    static const char *const names[] = {GEN_OPKINDS(OPNAME)};
    return k < OP_KIND_COUNT ? names[k] : "?";
}
const char *gen_family_name(gen_family f) {
    static const char *const n[] = {"patch_embed", "linear", "attention", "adapter", "norm", "head", "loss",
                                    "optimizer"};
    return f < FAM_COUNT ? n[f] : "?";
}
const char *gen_phase_name(gen_phase p) {
    static const char *const n[] = {"forward", "backward", "update"};
    return p < PH_COUNT ? n[p] : "?";
}
const char *gen_dtype_name(gen_dtype d) {
    static const char *const n[] = {"F32", "BF16", "I64", "U8"};
    return d < DT_COUNT ? n[d] : "?";
}
const char *gen_tkind_name(gen_tkind k) {
    static const char *const n[] = {"input", "frozen", "trainable", "buffer", "param_grad", "optimizer_state",
                                    "activation", "activation_grad"};
    return k < T_KIND_COUNT ? n[k] : "?";
}
int64_t gen_dtype_size(gen_dtype d) { return d == DT_F32 ? 4 : d == DT_BF16 ? 2 : d == DT_I64 ? 8 : 1; }

gen_arena gen_tensor_arena(const gen_tensor *t) {
    switch (t->kind) {
    case T_INPUT: return ARENA_INPUT;
    case T_FROZEN: return ARENA_FROZEN;
    case T_TRAINABLE:
    case T_BUFFER:
    case T_PGRAD:
    case T_OPTSTATE: return ARENA_TRAIN;
    default: return ARENA_ACT;
    }
}

/* The runtime's tables use the same numbering (runtime/avgen_graph.h). */
#define SAME_KIND(k) _Static_assert((int)OP_##k == (int)AVGEN_OP_KIND_##k, "op kind " #k " differs from avgen_graph.h");
GEN_OPKINDS(SAME_KIND)
_Static_assert((int)OP_KIND_COUNT == (int)AVGEN_OP_KIND_COUNT, "op kind count");
_Static_assert((int)T_GRAD == (int)AVGEN_T_GRAD && (int)T_PGRAD == (int)AVGEN_T_PGRAD, "tensor kinds");
_Static_assert((int)ARENA_INPUT == (int)AVGEN_ARENA_INPUT && (int)DT_U8 == (int)AVGEN_DT_U8, "arenas, dtypes");
_Static_assert((int)GROUP_HEAD == (int)AVGEN_GROUP_HEAD && (int)PH_UPDATE == (int)AVGEN_PH_UPDATE, "groups, phases");

/* ---------------------------------------------------------------------------------------- builders */

static void *grow(void *p, int *cap, int need, size_t elem, int *oom) {
    if (need <= *cap) return p;
    int nc = *cap ? *cap * 2 : 256;
    while (nc < need) nc *= 2;
    void *q = realloc(p, (size_t)nc * elem);
    if (!q) { *oom = 1; return p; }
    *cap = nc;
    return q;
}

static int tensor(ctx *c, gen_tkind kind, gen_dtype dt, gen_group g, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static int tensor(ctx *c, gen_tkind kind, gen_dtype dt, gen_group g, int ndim, const int64_t *shape, const char *fmt, ...) {
    gen_ir *ir = c->ir;
    ir->t = grow(ir->t, &ir->cap_t, ir->nt + 1, sizeof *ir->t, &c->oom);
    if (c->oom) return 0;
    gen_tensor *t = &ir->t[ir->nt];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->kind = kind, t->dtype = dt, t->group = g, t->ndim = ndim;
    t->numel = 1;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i], t->numel *= shape[i];
    t->bytes = t->numel * gen_dtype_size(dt);
    t->first = t->last = -1;
    t->param = -1;
    return ir->nt++;
}

#define SH(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}
#define ACT(dt, name, ...) tensor(c, T_ACT, dt, GROUP_NONE, SH(__VA_ARGS__), "%s", name)
#define GRD(dt, name, ...) tensor(c, T_GRAD, dt, GROUP_NONE, SH(__VA_ARGS__), "%s", name)

/* Appends an op; ins/outs are END-terminated lists where -1 entries (absent optional tensors) are skipped. */
static int emit(ctx *c, gen_opkind k, gen_phase ph, gen_family fam, int layer, int stream, const int *ins,
                const int *outs, double flops, double other, const char *fmt, ...) __attribute__((format(printf, 11, 12)));
static int emit(ctx *c, gen_opkind k, gen_phase ph, gen_family fam, int layer, int stream, const int *ins,
                const int *outs, double flops, double other, const char *fmt, ...) {
    gen_ir *ir = c->ir;
    int nin = 0, nout = 0;
    while (ins[nin] != END) nin++;
    while (outs[nout] != END) nout++;
    ir->ops = grow(ir->ops, &ir->cap_ops, ir->nops + 1, sizeof *ir->ops, &c->oom);
    ir->refs = grow(ir->refs, &ir->cap_refs, ir->nrefs + nin + nout, sizeof *ir->refs, &c->oom);
    if (c->oom) return 0;
    gen_op *o = &ir->ops[ir->nops];
    memset(o, 0, sizeof *o);
    o->kind = k, o->phase = ph, o->fam = fam, o->layer = layer;
    o->stream = stream >= 0 ? k_sname[stream] : 0;
    o->flops = flops, o->other_flops = other;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->name, sizeof o->name, fmt, ap);
    va_end(ap);
    o->in_at = ir->nrefs;
    for (int i = 0; i < nin; i++)
        if (ins[i] >= 0) ir->refs[ir->nrefs++] = ins[i], o->n_in++;
    o->out_at = ir->nrefs;
    for (int i = 0; i < nout; i++)
        if (outs[i] >= 0) ir->refs[ir->nrefs++] = outs[i], o->n_out++;
    double bytes = 0;
    for (int i = 0; i < o->n_in + o->n_out; i++) bytes += (double)ir->t[ir->refs[o->in_at + i]].bytes;
    o->bytes = bytes;
    return ir->nops++;
}
#define IN(...) ((const int[]){__VA_ARGS__, END})
#define OUT(...) ((const int[]){__VA_ARGS__, END})

static gen_op *last_op(ctx *c) { return &c->ir->ops[c->ir->nops - 1]; }
static void set_gemm(ctx *c, int64_t m, int64_t n, int64_t k, int64_t batch) {
    gen_op *o = last_op(c);
    o->gemm_m = m, o->gemm_n = n, o->gemm_k = k, o->gemm_batch = batch;
}

/* --------------------------------------------------------------------------------------- parameters */

static int frozen(ctx *c, int ndim, const int64_t *sh, const char *name) {
    return tensor(c, T_FROZEN, c->s->precision == PREC_BF16 ? DT_BF16 : DT_F32, GROUP_BACKBONE, ndim, sh, "%s", name);
}

static int trainable(ctx *c, gen_group g, int ndim, const int64_t *sh, const char *name) {
    int id = tensor(c, T_TRAINABLE, DT_F32, g, ndim, sh, "%s", name);
    if (!c->ir->train) return id;
    int gr = tensor(c, T_PGRAD, DT_F32, g, ndim, sh, "grad.%s", name);
    int m = tensor(c, T_OPTSTATE, DT_F32, g, ndim, sh, "adam_m.%s", name);
    int v = tensor(c, T_OPTSTATE, DT_F32, g, ndim, sh, "adam_v.%s", name);
    if (!c->oom) c->ir->t[gr].param = c->ir->t[m].param = c->ir->t[v].param = id;
    return id;
}

/* The gradient tensor of trainable parameter p (created right after it). */
static int pgrad(ctx *c, int p) { return c->ir->train ? p + 1 : -1; }

static void make_params(ctx *c) {
    const gen_spec *s = c->s;
    const int64_t D = c->D, F = c->F, Pp = s->backbone.patch_size;
    char n[160];
    c->cls = frozen(c, SH(1, 1, D), "vit.embeddings.cls_token");
    c->pos = frozen(c, SH(1, s->n_v, D), "vit.embeddings.position_embeddings");
    c->pw = frozen(c, SH(D, 3, Pp, Pp), "vit.embeddings.patch_embeddings.projection.weight");
    c->pb = frozen(c, SH(D), "vit.embeddings.patch_embeddings.projection.bias");
    for (int l = 0; l < c->depth; l++) {
        layer_params *L = &c->L[l];
#define FP(field, suffix, ...) (snprintf(n, sizeof n, "vit.encoder.layer.%d.%s", l, suffix), L->field = frozen(c, SH(__VA_ARGS__), n))
        FP(ln1w, "layernorm_before.weight", D);
        FP(ln1b, "layernorm_before.bias", D);
        /* query, key and value weights next to each other, then their biases: in the frozen arena (table
         * order) they form one [3D, D] matrix and one [3D] vector, which the CUDA backend uses as one GEMM */
        FP(wq, "attention.attention.query.weight", D, D);
        FP(wk, "attention.attention.key.weight", D, D);
        FP(wv, "attention.attention.value.weight", D, D);
        FP(bq, "attention.attention.query.bias", D);
        FP(bk, "attention.attention.key.bias", D);
        FP(bv, "attention.attention.value.bias", D);
        FP(wo, "attention.output.dense.weight", D, D);
        FP(bo, "attention.output.dense.bias", D);
        FP(ln2w, "layernorm_after.weight", D);
        FP(ln2b, "layernorm_after.bias", D);
        FP(w1, "intermediate.dense.weight", F, D);
        FP(b1, "intermediate.dense.bias", F);
        FP(w2, "output.dense.weight", D, F);
        FP(b2, "output.dense.bias", D);
#undef FP
    }
    c->lnf_w = frozen(c, SH(D), "vit.layernorm.weight");
    c->lnf_b = frozen(c, SH(D), "vit.layernorm.bias");

    if (s->has_adapters) {
        const int64_t dr = c->dr, G = c->G, m = c->m;
        for (int w = 0; w < 4; w++) {
            int p1 = w == AD_V1 || w == AD_A1;
            if (p1 ? !s->adapter.attn : !s->adapter.mlp) continue;
            for (int l = 0; l < c->depth; l++) {
                if (!s->adapter.on_layer[l]) continue;
                adapter_params *a = &c->ad[w][l];
                a->exists = 1;
                a->bn1w = a->bn1b = a->bn1rm = a->bn1rv = a->bn1n = -1;
                a->bn2w = a->bn2b = a->bn2rm = a->bn2rv = a->bn2n = -1;
#define TP(field, suffix, ...) (snprintf(n, sizeof n, "%s.%d.%s", k_adapter_prefix[w], l, suffix), a->field = trainable(c, GROUP_ADAPTER, SH(__VA_ARGS__), n))
#define BUF(field, dt, suffix, ...) (snprintf(n, sizeof n, "%s.%d.%s", k_adapter_prefix[w], l, suffix), a->field = tensor(c, T_BUFFER, dt, GROUP_ADAPTER, SH(__VA_ARGS__), "%s", n))
                TP(tok, "my_tokens", m, D);
                TP(gate, "gate", 1);
                TP(gate_av, "gate_av", 1);
                TP(lnb_w, "ln_before.weight", D);
                TP(lnb_b, "ln_before.bias", D);
                TP(down, "down_sampler.weight", dr, D / G, 1, 1);
                if (s->adapter.batchnorm) {
                    TP(bn1w, "bn1.weight", dr);
                    TP(bn1b, "bn1.bias", dr);
                    BUF(bn1rm, DT_F32, "bn1.running_mean", dr);
                    BUF(bn1rv, DT_F32, "bn1.running_var", dr);
                    a->bn1n = tensor(c, T_BUFFER, DT_I64, GROUP_ADAPTER, 0, NULL, "%s.%d.bn1.num_batches_tracked",
                                     k_adapter_prefix[w], l);
                }
                TP(up, "up_sampler.weight", D, dr / G, 1, 1);
                if (s->adapter.batchnorm) {
                    TP(bn2w, "bn2.weight", D);
                    TP(bn2b, "bn2.bias", D);
                    BUF(bn2rm, DT_F32, "bn2.running_mean", D);
                    BUF(bn2rv, DT_F32, "bn2.running_var", D);
                    a->bn2n = tensor(c, T_BUFFER, DT_I64, GROUP_ADAPTER, 0, NULL, "%s.%d.bn2.num_batches_tracked",
                                     k_adapter_prefix[w], l);
                }
                TP(lnp_w, "ln_post.weight", D);
                TP(lnp_b, "ln_post.bias", D);
#undef TP
#undef BUF
            }
        }
    }
    c->h1w = trainable(c, GROUP_HEAD, SH(c->hid, c->W), "mlp_class.weight");
    c->h1b = trainable(c, GROUP_HEAD, SH(c->hid), "mlp_class.bias");
    c->h2w = trainable(c, GROUP_HEAD, SH(c->C, c->hid), "mlp_class_2.weight");
    c->h2b = trainable(c, GROUP_HEAD, SH(c->C), "mlp_class_2.bias");
}

/* ------------------------------------------------------------------------------------------ forward */

/* "what.l<layer>[.rc]", cut to the 111 characters a tensor name holds. */
static char *nm(char *buf, const char *what, int l, int rc) {
    char tail[24];
    snprintf(tail, sizeof tail, ".l%d%s", l, rc ? ".rc" : "");
    size_t a = strlen(what), b = strlen(tail);
    if (a + b > 111) a = 111 - b;
    memcpy(buf, what, a);
    memcpy(buf + a, tail, b + 1);
    return buf;
}

static void adapter_forward(ctx *c, int w, int l, int X, int Y, int rc, gen_phase ph, adapter_acts *o) {
    const adapter_params *a = &c->ad[w][l];
    const int st = adapter_stream(w), ot = 1 - st;
    const int64_t P = c->P, N = c->N[st], N2 = c->N[ot], D = c->D, m = c->m, dr = c->dr, G = c->G;
    const char *pre = k_adapter_prefix[w];
    char tn[112];
    gen_dtype adt = c->adt;
    int train = c->ir->train;
#define AN(what) (snprintf(tn, sizeof tn, "%s.%d.%s%s", pre, l, what, rc ? ".rc" : ""), tn)
    o->X = X, o->Y = Y;
    o->zpre = ACT(adt, AN("zpre"), P, N, D);
    o->S = ACT(DT_F32, AN("S"), P, m, D);
    o->A1 = ACT(DT_F32, AN("A1"), P, m, N2);
    o->A2 = ACT(DT_F32, AN("A2"), P, N, m);
    double lat = 2.0 * P * m * N2 * D * 2 + 2.0 * P * N * m * D * 2;
    emit(c, OP_ADAPTER_LATENT, ph, FAM_ADAPTER, l, st, IN(X, Y, a->tok, a->gate_av), OUT(o->zpre, o->S, o->A1, o->A2),
         lat, 5.0 * P * m * (N + N2) + 2.0 * P * N * D, "%s", AN("latent"));
    last_op(c)->recompute = rc;
    o->z = ACT(adt, AN("z"), P, N, D);
    o->lnb_mu = ACT(DT_F32, AN("ln_before.mean"), P, N);
    o->lnb_rs = ACT(DT_F32, AN("ln_before.rstd"), P, N);
    emit(c, OP_LAYERNORM, ph, FAM_ADAPTER, l, st, IN(o->zpre, a->lnb_w, a->lnb_b), OUT(o->z, o->lnb_mu, o->lnb_rs), 0,
         8.0 * P * N * D, "%s", AN("ln_before"));
    last_op(c)->eps = 1e-5, last_op(c)->recompute = rc;
    o->hd = ACT(adt, AN("down"), P, N, dr);
    emit(c, OP_GROUP_LINEAR, ph, FAM_ADAPTER, l, st, IN(o->z, a->down), OUT(o->hd), 2.0 * P * N * dr * (D / G), 0, "%s",
         AN("down_sampler"));
    set_gemm(c, P * N, dr / G, D / G, G);
    last_op(c)->recompute = rc;
    o->h = ACT(adt, AN("bn1_relu"), P, N, dr);
    if (a->bn1w >= 0) {
        o->bn1_mu = ACT(DT_F32, AN("bn1.mean"), dr);
        o->bn1_rs = ACT(DT_F32, AN("bn1.rstd"), dr);
        /* train: batch statistics, running stats updated unless this is a recompute; eval: running stats */
        emit(c, OP_BATCHNORM_RELU, ph, FAM_ADAPTER, l, st, IN(o->hd, a->bn1w, a->bn1b, a->bn1rm, a->bn1rv, a->bn1n),
             OUT(o->h, train ? o->bn1_mu : -1, train ? o->bn1_rs : -1), 0, 6.0 * P * N * dr, "%s", AN("bn1_relu"));
    } else {
        o->bn1_mu = o->bn1_rs = -1;
        emit(c, OP_RELU, ph, FAM_ADAPTER, l, st, IN(o->hd), OUT(o->h), 0, 1.0 * P * N * dr, "%s", AN("relu"));
    }
    last_op(c)->eps = 1e-5, last_op(c)->recompute = rc;
    o->u = ACT(adt, AN("up"), P, N, D);
    emit(c, OP_GROUP_LINEAR, ph, FAM_ADAPTER, l, st, IN(o->h, a->up), OUT(o->u), 2.0 * P * N * D * (dr / G), 0, "%s",
         AN("up_sampler"));
    set_gemm(c, P * N, D / G, dr / G, G);
    last_op(c)->recompute = rc;
    if (a->bn2w >= 0) {
        o->ub = ACT(adt, AN("bn2"), P, N, D);
        o->bn2_mu = ACT(DT_F32, AN("bn2.mean"), D);
        o->bn2_rs = ACT(DT_F32, AN("bn2.rstd"), D);
        emit(c, OP_BATCHNORM, ph, FAM_ADAPTER, l, st, IN(o->u, a->bn2w, a->bn2b, a->bn2rm, a->bn2rv, a->bn2n),
             OUT(o->ub, train ? o->bn2_mu : -1, train ? o->bn2_rs : -1), 0, 5.0 * P * N * D, "%s", AN("bn2"));
        last_op(c)->eps = 1e-5, last_op(c)->recompute = rc;
    } else {
        o->ub = o->u;
        o->bn2_mu = o->bn2_rs = -1;
    }
    o->out = ACT(adt, AN("out"), P, N, D);
    o->lnp_mu = ACT(DT_F32, AN("ln_post.mean"), P, N);
    o->lnp_rs = ACT(DT_F32, AN("ln_post.rstd"), P, N);
    emit(c, OP_LAYERNORM_GATE, ph, FAM_ADAPTER, l, st, IN(o->ub, a->lnp_w, a->lnp_b, a->gate),
         OUT(o->out, o->lnp_mu, o->lnp_rs), 0, 9.0 * P * N * D, "%s", AN("ln_post_gate"));
    last_op(c)->eps = 1e-5, last_op(c)->recompute = rc;
#undef AN
}

enum { FWD_FULL, FWD_RECOMPUTE_BLOCK, FWD_RECOMPUTE_ATTN };

/* One encoder layer for both streams. x[s] are the block inputs. mode FWD_RECOMPUTE_BLOCK re-runs
 * everything backward needs (not the last MLP output); FWD_RECOMPUTE_ATTN only LN1, QKV and attention. */
static void layer_forward(ctx *c, int l, const int x[2], int mode, gen_phase ph, layer_acts *la) {
    const layer_params *L = &c->L[l];
    const int rc = mode != FWD_FULL;
    const int64_t P = c->P, D = c->D, F = c->F, H = c->H;
    const gen_spec *s = c->s;
    char b[112], b2[112];
    gen_dtype adt = c->adt;
    for (int st = 0; st < 2; st++) la->s[st].x = x[st];

    /* p1 adapters: both read the block inputs of both streams. */
    if (mode != FWD_RECOMPUTE_ATTN)
        for (int w = AD_V1; w <= AD_A1; w++)
            if (c->ad[w][l].exists) {
                int st = adapter_stream(w);
                adapter_forward(c, w, l, x[st], x[1 - st], rc, ph, &la->ad[w]);
            }
    for (int st = 0; st < 2; st++) {
        if (!c->use[st]) continue;
        stream_acts *a = &la->s[st];
        const int64_t N = c->N[st];
        const char sn = k_sname[st];
        snprintf(b2, sizeof b2, "%c.ln1", sn);
        a->h1 = ACT(adt, nm(b, b2, l, rc), P, N, D);
        snprintf(b2, sizeof b2, "%c.ln1.mean", sn);
        a->mu1 = ACT(DT_F32, nm(b, b2, l, rc), P, N);
        snprintf(b2, sizeof b2, "%c.ln1.rstd", sn);
        a->rs1 = ACT(DT_F32, nm(b, b2, l, rc), P, N);
        snprintf(b2, sizeof b2, "%c.layernorm_before", sn);
        emit(c, OP_LAYERNORM, ph, FAM_NORM, l, st, IN(a->x, L->ln1w, L->ln1b), OUT(a->h1, a->mu1, a->rs1), 0,
             8.0 * P * N * D, "%s", nm(b, b2, l, rc));
        last_op(c)->eps = s->backbone.ln_eps, last_op(c)->recompute = rc;
        snprintf(b2, sizeof b2, "%c.qkv", sn);
        a->qkv = ACT(adt, nm(b, b2, l, rc), P, N, 3 * D);
        emit(c, OP_QKV, ph, FAM_LINEAR, l, st, IN(a->h1, L->wq, L->bq, L->wk, L->bk, L->wv, L->bv), OUT(a->qkv),
             2.0 * P * N * D * 3 * D, 0, "%s", nm(b, b2, l, rc));
        set_gemm(c, P * N, 3 * D, D, 1);
        last_op(c)->recompute = rc;
        snprintf(b2, sizeof b2, "%c.attn_out", sn);
        a->ao = ACT(adt, nm(b, b2, l, rc), P, N, D);
        snprintf(b2, sizeof b2, "%c.attn_lse", sn);
        a->lse = c->ir->train ? ACT(DT_F32, nm(b, b2, l, rc), P, H, N) : -1;
        snprintf(b2, sizeof b2, "%c.attention", sn);
        emit(c, OP_ATTENTION, ph, FAM_ATTENTION, l, st, IN(a->qkv), OUT(a->ao, a->lse), 4.0 * P * N * N * D,
             5.0 * P * H * N * N, "%s", nm(b, b2, l, rc));
        last_op(c)->recompute = rc;
        if (mode == FWD_RECOMPUTE_ATTN) continue;
        snprintf(b2, sizeof b2, "%c.x_mid", sn);
        a->xm = ACT(adt, nm(b, b2, l, rc), P, N, D);
        int p1 = st == SV ? AD_V1 : AD_A1;
        snprintf(b2, sizeof b2, "%c.attention.output", sn);
        emit(c, OP_LINEAR_RESIDUAL, ph, FAM_LINEAR, l, st,
             IN(a->ao, L->wo, L->bo, a->x, c->ad[p1][l].exists ? la->ad[p1].out : -1), OUT(a->xm),
             2.0 * P * N * D * D, 2.0 * P * N * D, "%s", nm(b, b2, l, rc));
        set_gemm(c, P * N, D, D, 1);
        last_op(c)->recompute = rc;
    }
    if (mode == FWD_RECOMPUTE_ATTN) return;

    /* p2 adapters: both read the post-attention states. */
    for (int w = AD_V2; w <= AD_A2; w++)
        if (c->ad[w][l].exists) {
            int st = adapter_stream(w);
            adapter_forward(c, w, l, la->s[st].xm, la->s[1 - st].xm, rc, ph, &la->ad[w]);
        }
    for (int st = 0; st < 2; st++) {
        if (!c->use[st]) continue;
        stream_acts *a = &la->s[st];
        const int64_t N = c->N[st];
        const char sn = k_sname[st];
        snprintf(b2, sizeof b2, "%c.ln2", sn);
        a->h2 = ACT(adt, nm(b, b2, l, rc), P, N, D);
        snprintf(b2, sizeof b2, "%c.ln2.mean", sn);
        a->mu2 = ACT(DT_F32, nm(b, b2, l, rc), P, N);
        snprintf(b2, sizeof b2, "%c.ln2.rstd", sn);
        a->rs2 = ACT(DT_F32, nm(b, b2, l, rc), P, N);
        snprintf(b2, sizeof b2, "%c.layernorm_after", sn);
        emit(c, OP_LAYERNORM, ph, FAM_NORM, l, st, IN(a->xm, L->ln2w, L->ln2b), OUT(a->h2, a->mu2, a->rs2), 0,
             8.0 * P * N * D, "%s", nm(b, b2, l, rc));
        last_op(c)->eps = s->backbone.ln_eps, last_op(c)->recompute = rc;
        snprintf(b2, sizeof b2, "%c.fc1_pre", sn);
        a->f1pre = c->ir->train ? ACT(adt, nm(b, b2, l, rc), P, N, F) : -1;
        snprintf(b2, sizeof b2, "%c.fc1_gelu", sn);
        a->f1act = ACT(adt, nm(b, b2, l, rc), P, N, F);
        snprintf(b2, sizeof b2, "%c.intermediate", sn);
        emit(c, OP_LINEAR_GELU, ph, FAM_LINEAR, l, st, IN(a->h2, L->w1, L->b1), OUT(a->f1pre, a->f1act),
             2.0 * P * N * D * F, 10.0 * P * N * F, "%s", nm(b, b2, l, rc));
        set_gemm(c, P * N, F, D, 1);
        last_op(c)->recompute = rc;
        if (mode == FWD_RECOMPUTE_BLOCK) { a->xout = -1; continue; }
        snprintf(b2, sizeof b2, "%c.x", sn);
        a->xout = ACT(adt, nm(b, b2, l + 1, 0), P, N, D);
        int p2 = st == SV ? AD_V2 : AD_A2;
        snprintf(b2, sizeof b2, "%c.output", sn);
        emit(c, OP_LINEAR_RESIDUAL, ph, FAM_LINEAR, l, st,
             IN(a->f1act, L->w2, L->b2, a->xm, c->ad[p2][l].exists ? la->ad[p2].out : -1), OUT(a->xout),
             2.0 * P * N * F * D, 2.0 * P * N * D, "%s", nm(b, b2, l, rc));
        set_gemm(c, P * N, D, F, 1);
    }
}

/* ----------------------------------------------------------------------------------------- backward */

/* Adapter backward, first op: reads g (the gradient of the sub-block output) only. */
static int adapter_backward_head(ctx *c, int w, int l, const adapter_acts *o, int g) {
    const adapter_params *a = &c->ad[w][l];
    const int st = adapter_stream(w);
    const int64_t P = c->P, N = c->N[st], D = c->D;
    char tn[112];
    snprintf(tn, sizeof tn, "%s.%d.d_bn2", k_adapter_prefix[w], l);
    int d_ub = GRD(c->adt, tn, P, N, D);
    emit(c, OP_LAYERNORM_GATE_BWD, PH_BWD, FAM_ADAPTER, l, st, IN(g, o->ub, o->lnp_mu, o->lnp_rs, a->lnp_w, a->lnp_b, a->gate),
         OUT(d_ub, pgrad(c, a->gate), pgrad(c, a->lnp_w), pgrad(c, a->lnp_b)), 0, 12.0 * P * N * D,
         "%s.%d.ln_post_gate.bwd", k_adapter_prefix[w], l);
    last_op(c)->eps = 1e-5;
    return d_ub;
}

/* Adapter backward, from its second BatchNorm to its LayerNorm before: returns the gradient of its input
 * (the gated fuse), d_zpre. */
static int adapter_backward_chain(ctx *c, int w, int l, const adapter_acts *o, int d_ub) {
    const adapter_params *a = &c->ad[w][l];
    const int st = adapter_stream(w);
    const int64_t P = c->P, N = c->N[st], D = c->D, dr = c->dr, G = c->G;
    const char *pre = k_adapter_prefix[w];
    char tn[112];
    gen_dtype adt = c->adt;
    int d_u = d_ub;
    if (a->bn2w >= 0) {
        snprintf(tn, sizeof tn, "%s.%d.d_up", pre, l);
        d_u = GRD(adt, tn, P, N, D);
        emit(c, OP_BATCHNORM_BWD, PH_BWD, FAM_ADAPTER, l, st, IN(d_ub, o->u, o->bn2_mu, o->bn2_rs, a->bn2w),
             OUT(d_u, pgrad(c, a->bn2w), pgrad(c, a->bn2b)), 0, 8.0 * P * N * D, "%s.%d.bn2.bwd", pre, l);
        last_op(c)->eps = 1e-5;
    }
    snprintf(tn, sizeof tn, "%s.%d.d_bn1_relu", pre, l);
    int d_h = GRD(adt, tn, P, N, dr);
    emit(c, OP_GROUP_LINEAR_BWD, PH_BWD, FAM_ADAPTER, l, st, IN(d_u, o->h, a->up), OUT(d_h, pgrad(c, a->up)),
         2.0 * 2.0 * P * N * D * (dr / G), 0, "%s.%d.up_sampler.bwd", pre, l);
    set_gemm(c, P * N, dr / G, D / G, G);
    snprintf(tn, sizeof tn, "%s.%d.d_down", pre, l);
    int d_hd = GRD(adt, tn, P, N, dr);
    if (a->bn1w >= 0) {
        emit(c, OP_BATCHNORM_RELU_BWD, PH_BWD, FAM_ADAPTER, l, st, IN(d_h, o->hd, o->bn1_mu, o->bn1_rs, a->bn1w, a->bn1b),
             OUT(d_hd, pgrad(c, a->bn1w), pgrad(c, a->bn1b)), 0, 9.0 * P * N * dr, "%s.%d.bn1_relu.bwd", pre, l);
        last_op(c)->eps = 1e-5;
    } else {
        emit(c, OP_RELU_BWD, PH_BWD, FAM_ADAPTER, l, st, IN(d_h, o->h), OUT(d_hd), 0, 1.0 * P * N * dr, "%s.%d.relu.bwd",
             pre, l);
    }
    snprintf(tn, sizeof tn, "%s.%d.d_z", pre, l);
    int d_z = GRD(adt, tn, P, N, D);
    emit(c, OP_GROUP_LINEAR_BWD, PH_BWD, FAM_ADAPTER, l, st, IN(d_hd, o->z, a->down), OUT(d_z, pgrad(c, a->down)),
         2.0 * 2.0 * P * N * dr * (D / G), 0, "%s.%d.down_sampler.bwd", pre, l);
    set_gemm(c, P * N, D / G, dr / G, G);
    snprintf(tn, sizeof tn, "%s.%d.d_zpre", pre, l);
    int d_zpre = GRD(adt, tn, P, N, D);
    emit(c, OP_LAYERNORM_BWD, PH_BWD, FAM_ADAPTER, l, st, IN(d_z, o->zpre, o->lnb_mu, o->lnb_rs, a->lnb_w),
         OUT(d_zpre, pgrad(c, a->lnb_w), pgrad(c, a->lnb_b)), 0, 12.0 * P * N * D, "%s.%d.ln_before.bwd", pre, l);
    last_op(c)->eps = 1e-5;
    return d_zpre;
}

/* Adapter backward, last: the latent exchange's, which accumulates into g[X stream] and g[Y stream] when
 * need_x. The two streams' adapters at one position run their chains first and then their latent ops, one
 * after the other, both accumulating into the same two gradients: the CUDA backend runs such a pair as one
 * (rt_cuda_latbwd_first). */
static void adapter_backward_latent(ctx *c, int w, int l, const adapter_acts *o, int d_zpre, const int g[2], int need_x) {
    const adapter_params *a = &c->ad[w][l];
    const int st = adapter_stream(w), ot = 1 - st;
    const int64_t P = c->P, N = c->N[st], N2 = c->N[ot], D = c->D, m = c->m;
    const char *pre = k_adapter_prefix[w];
    double fwd = 2.0 * P * m * N2 * D * 2 + 2.0 * P * N * m * D * 2;
    double fl = need_x ? 2.0 * fwd : 2.0 * fwd - (2.0 * P * N * m * D + 2.0 * 2.0 * P * m * N2 * D);
    emit(c, OP_ADAPTER_LATENT_BWD, PH_BWD, FAM_ADAPTER, l, st,
         IN(d_zpre, o->X, o->Y, o->S, o->A1, o->A2, a->tok, a->gate_av,
            need_x ? g[st] : -1, need_x ? g[ot] : -1),
         OUT(pgrad(c, a->tok), pgrad(c, a->gate_av), need_x ? g[st] : -1, need_x ? g[ot] : -1), fl,
         10.0 * P * m * (N + N2) + 3.0 * P * N * D, "%s.%d.latent.bwd", pre, l);
    last_op(c)->accumulate = need_x;
}

/* The end of a sub-block's backward (mlp: the MLP's, else the attention's): its adapters' chains (BatchNorm,
 * projections, LayerNorm; their activations in ad), then each stream's frozen LayerNorm backward (the sub-layer's
 * inputs in sa: the attention's may be recomputed), the vision one last, just before the adapters' latent ops
 * (a backend may run it with the latent pair: rt_cuda_latbwd_first, rt_cuda_latbwd_ln and _lny). */
static void sub_block_tail(ctx *c, int l, int mlp, const layer_acts *ad, const layer_acts *sa, const int d_ub[4],
                           const int d_h[2], const int g[2], int need) {
    const layer_params *L = &c->L[l];
    const int64_t P = c->P, D = c->D;
    const int w0 = mlp ? AD_V2 : AD_V1, w1 = mlp ? AD_A2 : AD_A1;
    char b[112], b2[112];
    int d_zpre[4] = {-1, -1, -1, -1};
    for (int w = w0; w <= w1; w++)
        if (c->ad[w][l].exists) d_zpre[w] = adapter_backward_chain(c, w, l, &ad->ad[w], d_ub[w]);
    for (int st = 1; need && st >= 0; st--) {
        if (!c->use[st]) continue;
        const stream_acts *a = &sa->s[st];
        const int64_t N = c->N[st];
        snprintf(b2, sizeof b2, "%c.%s.bwd", k_sname[st], mlp ? "layernorm_after" : "layernorm_before");
        emit(c, OP_LAYERNORM_BWD, PH_BWD, FAM_NORM, l, st,
             IN(d_h[st], mlp ? a->xm : a->x, mlp ? a->mu2 : a->mu1, mlp ? a->rs2 : a->rs1, mlp ? L->ln2w : L->ln1w, g[st]),
             OUT(g[st]), 0, 10.0 * P * N * D, "%s", nm(b, b2, l, 0));
        last_op(c)->eps = c->s->backbone.ln_eps, last_op(c)->accumulate = 1;
    }
    for (int w = w0; w <= w1; w++)
        if (c->ad[w][l].exists) adapter_backward_latent(c, w, l, &ad->ad[w], d_zpre[w], g, need);
}

static void layer_backward(ctx *c, int l, const layer_acts *fw, const int x[2], const int g[2]) {
    const layer_params *L = &c->L[l];
    const int64_t P = c->P, D = c->D, F = c->F;
    const int kmin = c->ir->lowest_trainable_sublayer;
    layer_acts rcb;
    const layer_acts *la = fw;
    char b[112], b2[112];
    gen_dtype adt = c->adt;
    if (c->ir->recompute == RECOMPUTE_BLOCK) {
        memset(&rcb, 0, sizeof rcb);
        layer_forward(c, l, x, FWD_RECOMPUTE_BLOCK, PH_BWD, &rcb);
        la = &rcb;
    }

    /* MLP sub-block (k = 2l+1). */
    int k = 2 * l + 1;
    if (k >= kmin) {
        int need = k > kmin;
        int d_ub[4] = {-1, -1, -1, -1}, d_act[2] = {-1, -1}, d_h[2] = {-1, -1};
        for (int w = AD_V2; w <= AD_A2; w++)
            if (c->ad[w][l].exists) d_ub[w] = adapter_backward_head(c, w, l, &la->ad[w], g[adapter_stream(w)]);
        for (int st = 0; need && st < 2; st++) {
            if (!c->use[st]) continue;
            const int64_t N = c->N[st];
            snprintf(b2, sizeof b2, "%c.d_fc1_gelu", k_sname[st]);
            d_act[st] = GRD(adt, nm(b, b2, l, 0), P, N, F);
            snprintf(b2, sizeof b2, "%c.output.bwd", k_sname[st]);
            emit(c, OP_LINEAR_DX, PH_BWD, FAM_LINEAR, l, st, IN(g[st], L->w2), OUT(d_act[st]), 2.0 * P * N * F * D, 0,
                 "%s", nm(b, b2, l, 0));
            set_gemm(c, P * N, F, D, 1);
        }
        for (int st = 0; need && st < 2; st++) {
            if (!c->use[st]) continue;
            const stream_acts *a = &la->s[st];
            const int64_t N = c->N[st];
            snprintf(b2, sizeof b2, "%c.d_ln2", k_sname[st]);
            int d_h2 = GRD(adt, nm(b, b2, l, 0), P, N, D);
            snprintf(b2, sizeof b2, "%c.intermediate.bwd", k_sname[st]);
            emit(c, OP_GELU_LINEAR_DX, PH_BWD, FAM_LINEAR, l, st, IN(d_act[st], a->f1pre, L->w1), OUT(d_h2),
                 2.0 * P * N * F * D, 12.0 * P * N * F, "%s", nm(b, b2, l, 0));
            set_gemm(c, P * N, D, F, 1);
            d_h[st] = d_h2;
        }
        sub_block_tail(c, l, 1, la, la, d_ub, d_h, g, need);
    }

    /* Attention sub-block (k = 2l). */
    k = 2 * l;
    if (k >= kmin) {
        int need = k > kmin;
        int d_ub[4] = {-1, -1, -1, -1}, d_ao[2] = {-1, -1}, d_h[2] = {-1, -1};
        layer_acts rca;
        const layer_acts *aa = la;
        for (int w = AD_V1; w <= AD_A1; w++)
            if (c->ad[w][l].exists) d_ub[w] = adapter_backward_head(c, w, l, &la->ad[w], g[adapter_stream(w)]);
        if (need && c->ir->recompute == RECOMPUTE_ATTENTION) {
            memset(&rca, 0, sizeof rca);
            layer_forward(c, l, x, FWD_RECOMPUTE_ATTN, PH_BWD, &rca);
            aa = &rca;
        }
        for (int st = 0; need && st < 2; st++) {
            if (!c->use[st]) continue;
            const int64_t N = c->N[st];
            snprintf(b2, sizeof b2, "%c.d_attn_out", k_sname[st]);
            d_ao[st] = GRD(adt, nm(b, b2, l, 0), P, N, D);
            snprintf(b2, sizeof b2, "%c.attention.output.bwd", k_sname[st]);
            emit(c, OP_LINEAR_DX, PH_BWD, FAM_LINEAR, l, st, IN(g[st], L->wo), OUT(d_ao[st]), 2.0 * P * N * D * D, 0, "%s",
                 nm(b, b2, l, 0));
            set_gemm(c, P * N, D, D, 1);
        }
        for (int st = 0; need && st < 2; st++) {
            if (!c->use[st]) continue;
            const stream_acts *a = &aa->s[st];
            const int64_t N = c->N[st];
            snprintf(b2, sizeof b2, "%c.d_qkv", k_sname[st]);
            int d_qkv = GRD(adt, nm(b, b2, l, 0), P, N, 3 * D);
            snprintf(b2, sizeof b2, "%c.attention.bwd", k_sname[st]);
            emit(c, OP_ATTENTION_BWD, PH_BWD, FAM_ATTENTION, l, st, IN(d_ao[st], a->qkv, a->ao, a->lse), OUT(d_qkv),
                 10.0 * P * N * N * D, 10.0 * P * c->H * N * N, "%s", nm(b, b2, l, 0));
            snprintf(b2, sizeof b2, "%c.d_ln1", k_sname[st]);
            int d_h1 = GRD(adt, nm(b, b2, l, 0), P, N, D);
            snprintf(b2, sizeof b2, "%c.qkv.bwd", k_sname[st]);
            emit(c, OP_QKV_DX, PH_BWD, FAM_LINEAR, l, st, IN(d_qkv, L->wq, L->wk, L->wv), OUT(d_h1),
                 2.0 * P * N * 3 * D * D, 0, "%s", nm(b, b2, l, 0));
            set_gemm(c, P * N, D, 3 * D, 1);
            d_h[st] = d_h1;
        }
        sub_block_tail(c, l, 0, la, aa, d_ub, d_h, g, need);
    }
}

/* -------------------------------------------------------------------------------------------- entry */

int gen_lower(const gen_spec *s, gen_recompute rc, int train, gen_ir *ir) {
    memset(ir, 0, sizeof *ir);
    ir->spec = *s;
    ir->train = train;
    ir->recompute = train ? rc : RECOMPUTE_NONE;
    ctx cx, *c = &cx;
    memset(c, 0, sizeof *c);
    c->ir = ir, c->s = &ir->spec;
    c->B = s->train.batch, c->T = s->video.frames, c->P = s->pairs;
    c->D = s->backbone.dim, c->F = s->backbone.mlp_dim, c->H = s->backbone.heads, c->depth = s->backbone.depth;
    c->m = s->adapter.latent_tokens, c->G = s->adapter.groups;
    c->dr = s->adapter.reduction ? s->backbone.dim / s->adapter.reduction : 0;
    c->C = s->head.classes, c->hid = s->head.hidden;
    c->W = (s->use_v + s->use_a) * s->backbone.dim;
    c->N[SV] = s->n_v, c->N[SA] = s->n_a;
    c->use[SV] = s->use_v, c->use[SA] = s->use_a;
    c->adt = s->precision == PREC_BF16 ? DT_BF16 : DT_F32;
    const int64_t B = c->B, T = c->T, P = c->P, D = c->D, Pp = s->backbone.patch_size;
    char b[112];

    make_params(c);
    ir->lowest_trainable_sublayer = 2 * c->depth;
    for (int l = c->depth - 1; l >= 0; l--) {
        if (c->ad[AD_V2][l].exists || c->ad[AD_A2][l].exists) ir->lowest_trainable_sublayer = 2 * l + 1;
        if (c->ad[AD_V1][l].exists || c->ad[AD_A1][l].exists) ir->lowest_trainable_sublayer = 2 * l;
    }

    /* Inputs as the loader delivers them: uint8 HWC frames, normalised fbank, labels. */
    c->frames = s->use_v ? tensor(c, T_INPUT, DT_U8, GROUP_NONE, SH(B, T, s->video.size, s->video.size, 3), "frames") : -1;
    c->audio = s->use_a ? tensor(c, T_INPUT, DT_F32, GROUP_NONE, SH(B, T, s->audio.target_frames, s->audio.mel_bins), "audio") : -1;
    c->labels = train ? tensor(c, T_INPUT, DT_I64, GROUP_NONE, SH(B), "labels") : -1;

    /* Embeddings. */
    int x[2] = {-1, -1};
    if (s->use_v) {
        x[SV] = ACT(c->adt, nm(b, "v.x", 0, 0), P, s->n_v, D);
        emit(c, OP_PATCH_EMBED, PH_FWD, FAM_PATCH, -1, SV, IN(c->frames, c->pw, c->pb, c->cls, c->pos), OUT(x[SV]),
             2.0 * P * s->patches_v * 3 * Pp * Pp * D, 4.0 * P * s->n_v * D, "v.patch_embed");
        set_gemm(c, P * s->patches_v, D, 3 * Pp * Pp, 1);
    }
    if (s->use_a) {
        x[SA] = ACT(c->adt, nm(b, "a.x", 0, 0), P, s->n_a, D);
        emit(c, OP_PATCH_EMBED, PH_FWD, FAM_PATCH, -1, SA, IN(c->audio, c->pw, c->pb, c->cls, c->pos), OUT(x[SA]),
             2.0 * P * (s->n_a - 1) * 3 * Pp * Pp * D, 4.0 * P * s->n_a * D, "a.patch_embed");
        set_gemm(c, P * (s->n_a - 1), D, 3 * Pp * Pp, 1);
    }

    /* Encoder. */
    layer_acts *acts = calloc((size_t)c->depth, sizeof *acts);
    int (*xin)[2] = calloc((size_t)c->depth + 1, sizeof *xin);
    if (!acts || !xin) { free(acts); free(xin); gen_ir_free(ir); return -1; }
    for (int l = 0; l < c->depth; l++) {
        xin[l][0] = x[0], xin[l][1] = x[1];
        layer_forward(c, l, x, FWD_FULL, PH_FWD, &acts[l]);
        x[0] = acts[l].s[0].xout, x[1] = acts[l].s[1].xout;
        if (!c->use[0]) x[0] = -1;
        if (!c->use[1]) x[1] = -1;
    }

    /* Final LayerNorm on the CLS rows only (only they reach the head). */
    int cls[2] = {-1, -1}, clsx[2] = {-1, -1}, cmu[2] = {-1, -1}, crs[2] = {-1, -1};
    for (int st = 0; st < 2; st++) {
        if (!c->use[st]) continue;
        snprintf(b, sizeof b, "%c.cls_feature", k_sname[st]);
        cls[st] = ACT(DT_F32, b, P, D);
        if (train) {
            snprintf(b, sizeof b, "%c.cls_in", k_sname[st]);
            clsx[st] = ACT(DT_F32, b, P, D);
            snprintf(b, sizeof b, "%c.cls_ln.mean", k_sname[st]);
            cmu[st] = ACT(DT_F32, b, P);
            snprintf(b, sizeof b, "%c.cls_ln.rstd", k_sname[st]);
            crs[st] = ACT(DT_F32, b, P);
        }
        emit(c, OP_CLS_LAYERNORM, PH_FWD, FAM_NORM, -1, st, IN(x[st], c->lnf_w, c->lnf_b), OUT(cls[st], clsx[st], cmu[st], crs[st]),
             0, 8.0 * P * D, "%c.layernorm", k_sname[st]);
        last_op(c)->eps = s->backbone.ln_eps;
    }

    /* Head: f = [a_cls ; v_cls] averaged over T, two linears, loss. */
    int f = ACT(DT_F32, "feature", B, c->W);
    emit(c, OP_CONCAT_MEAN, PH_FWD, FAM_HEAD, -1, -1, IN(cls[SA], cls[SV]), OUT(f), 0, 1.0 * P * c->W, "concat_mean");
    int hid = ACT(DT_F32, "mlp_class.out", B, c->hid);
    emit(c, OP_LINEAR, PH_FWD, FAM_HEAD, -1, -1, IN(f, c->h1w, c->h1b), OUT(hid), 2.0 * B * c->W * c->hid, 0, "mlp_class");
    set_gemm(c, B, c->hid, c->W, 1);
    int logits = ACT(DT_F32, "logits", B, c->C), loss = -1;
    emit(c, OP_LINEAR, PH_FWD, FAM_HEAD, -1, -1, IN(hid, c->h2w, c->h2b), OUT(logits), 2.0 * B * c->hid * c->C, 0, "mlp_class_2");
    set_gemm(c, B, c->C, c->hid, 1);

    if (train) {
        loss = ACT(DT_F32, "loss", 1);
        int dlogits = GRD(DT_F32, "d_logits", B, c->C);
        /* Softmax cross-entropy writes the logits' gradient at once: the step always runs backward. */
        emit(c, OP_CROSS_ENTROPY, PH_FWD, FAM_LOSS, -1, -1, IN(logits, c->labels), OUT(loss, dlogits), 0, 6.0 * B * c->C,
             "cross_entropy");
        int dhid = GRD(DT_F32, "d_mlp_class.out", B, c->hid);
        emit(c, OP_LINEAR_BWD, PH_BWD, FAM_HEAD, -1, -1, IN(dlogits, hid, c->h2w), OUT(pgrad(c, c->h2w), pgrad(c, c->h2b), dhid),
             2.0 * 2.0 * B * c->hid * c->C, 1.0 * B * c->C, "mlp_class_2.bwd");
        set_gemm(c, c->C, c->hid, B, 1); /* the weight gradient; the input gradient is (B, hid, C) */
        int df = s->has_adapters ? GRD(DT_F32, "d_feature", B, c->W) : -1;
        emit(c, OP_LINEAR_BWD, PH_BWD, FAM_HEAD, -1, -1, IN(dhid, f, c->h1w), OUT(pgrad(c, c->h1w), pgrad(c, c->h1b), df),
             (df >= 0 ? 2.0 : 1.0) * 2.0 * B * c->W * c->hid, 1.0 * B * c->hid, "mlp_class.bwd");
        set_gemm(c, c->hid, c->W, B, 1); /* the weight gradient */

        if (s->has_adapters) {
            int dcls[2] = {-1, -1}, g[2] = {-1, -1};
            for (int st = 0; st < 2; st++) {
                snprintf(b, sizeof b, "%c.d_cls_feature", k_sname[st]);
                dcls[st] = GRD(DT_F32, b, P, D);
            }
            emit(c, OP_CONCAT_MEAN_BWD, PH_BWD, FAM_HEAD, -1, -1, IN(df), OUT(dcls[SA], dcls[SV]), 0, 1.0 * P * c->W,
                 "concat_mean.bwd");
            for (int st = 0; st < 2; st++) {
                snprintf(b, sizeof b, "%c.d_x", k_sname[st]);
                g[st] = GRD(DT_F32, b, P, c->N[st], D);
                /* Writes the whole stream gradient: zeros, then the CLS rows. */
                emit(c, OP_CLS_LAYERNORM_BWD, PH_BWD, FAM_NORM, -1, st, IN(dcls[st], clsx[st], cmu[st], crs[st], c->lnf_w),
                     OUT(g[st]), 0, 10.0 * P * D, "%c.layernorm.bwd", k_sname[st]);
                last_op(c)->eps = s->backbone.ln_eps;
            }
            for (int l = c->depth - 1; l >= 0 && 2 * l + 1 >= ir->lowest_trainable_sublayer; l--)
                layer_backward(c, l, &acts[l], xin[l], g);
        }

        /* Update: one fused Adam/AdamW over every trainable tensor. */
        int n_in = 0;
        for (int i = 0; i < ir->nt; i++)
            if (ir->t[i].kind == T_TRAINABLE || ir->t[i].kind == T_PGRAD || ir->t[i].kind == T_OPTSTATE) n_in++;
        int *ins = malloc(sizeof(int) * (size_t)(n_in + 1)), *outs = malloc(sizeof(int) * (size_t)(n_in + 1));
        if (!ins || !outs) c->oom = 1;
        else {
            int ni = 0, no = 0;
            double numel = 0;
            for (int i = 0; i < ir->nt; i++) {
                gen_tkind k = ir->t[i].kind;
                if (k == T_TRAINABLE || k == T_PGRAD || k == T_OPTSTATE) ins[ni++] = i;
                if (k == T_TRAINABLE || k == T_OPTSTATE) outs[no++] = i;
                if (k == T_TRAINABLE) numel += (double)ir->t[i].numel;
            }
            ins[ni] = END, outs[no] = END;
            emit(c, OP_ADAM, PH_UPDATE, FAM_OPTIMIZER, -1, -1, ins, outs, 0, 12.0 * numel, "%s",
                 s->train.optimizer == OPT_ADAMW ? "adamw" : "adam");
        }
        free(ins);
        free(outs);
    }
    free(acts);
    free(xin);
    if (c->oom) { gen_ir_free(ir); return -1; }

    /* Lifetimes, in op order. */
    for (int i = 0; i < ir->nops; i++) {
        const gen_op *o = &ir->ops[i];
        for (int j = 0; j < o->n_in + o->n_out; j++) {
            gen_tensor *t = &ir->t[ir->refs[o->in_at + j]];
            if (t->first < 0) t->first = i;
            t->last = i;
        }
    }
    /* The step's results are read after it: they live to the end. */
    if (ir->nops) {
        ir->t[logits].last = ir->nops - 1;
        if (loss >= 0) ir->t[loss].last = ir->nops - 1;
    }
    return 0;
}

void gen_ir_free(gen_ir *ir) {
    free(ir->t);
    free(ir->ops);
    free(ir->refs);
    ir->t = NULL, ir->ops = NULL, ir->refs = NULL;
    ir->nt = ir->nops = ir->nrefs = 0;
}
