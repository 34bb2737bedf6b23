/* IR and planner: exact parameter counts and FLOPs of ViT-B/16 LAVISH (MODEL.md sections 6-7); for a
 * matrix of small configurations (fusions, adapter subsets, sublayers, recompute policies, odd batch,
 * precisions) an independent check of every plan: no two live activations overlap, everything inside
 * its arena, every activation read after it is written, every trainable parameter gets a gradient,
 * backward stops at the lowest adapter; and the memory trade of the recompute policies. Also which
 * activations the CUDA backend may store as bf16 GEMM operands (rt_cuda_bf16_operands).
 * usage: test_plan REPO_ROOT */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "graph.h"
#include "plan.h"
#include "rt_cuda.h"

static char root[1024] = ".";

static int load(const char *model, const char *const *sets, int n, gen_spec *s) {
    char path[1200];
    gen_errors e;
    snprintf(path, sizeof path, "%s/models/%s.json", root, model);
    int r = gen_spec_load(path, sets, n, s, &e);
    CHECK_MSG(r == 0, "%s: %s", path, r ? e.msg[0] : "");
    return r;
}

/* The training graph of a shipped model under a recompute policy, as the planner builds it (0), or -1 (the
 * failure counted). */
static int build_graph(const char *model, const char *const *sets, int n, gen_recompute rc, gen_ir *ir, gen_graph *gg) {
    gen_spec s;
    gen_mem m;
    if (load(model, sets, n, &s)) return -1;
    CHECK(gen_lower(&s, rc, 1, ir) == 0);
    gen_pack(ir, &m);
    const int r = gen_graph_build(ir, &m, gg);
    CHECK(r == 0);
    if (r) gen_ir_free(ir);
    return r ? -1 : 0;
}

static void test_vitb16_numbers(void) {
    gen_spec s;
    gen_plan p;
    if (load("lavish-vitb16-ucf51", NULL, 0, &s)) return;
    CHECK(gen_make_plan(&s, 1, &p) == 0);
    CHECK_EQ_I64(p.frozen, 85798656);
    CHECK_EQ_I64(p.trainable, 4656275);
    CHECK_EQ_I64(p.adapters, 3843168);
    CHECK_EQ_I64(p.head, 813107);
    CHECK_EQ_I64(p.adapter_count, 48);
    CHECK_EQ_I64(p.per_adapter, 80066);
    /* BN buffers: per adapter 2 x (D/r + D) floats + 2 counters. */
    CHECK_EQ_I64(p.buffers, 48 * (2 * (96 + 768) + 2));
    CHECK_MSG(fabs(p.visual_image_forward / 35.1e9 - 1) < 0.01, "visual forward %.4g", p.visual_image_forward);
    CHECK_MSG(fabs(p.audio_image_forward / 8.5e9 - 1) < 0.01, "audio forward %.4g", p.audio_image_forward);
    /* Per pair: forward 43.6 + input-gradient backward (layer 0's attention sub-block not needed) + adapters. */
    CHECK_MSG(p.pair_flops > 88e9 && p.pair_flops < 89e9 * 1.04, "per pair %.4g", p.pair_flops);
    double fw = 0;
    for (int f = 0; f < FAM_COUNT; f++) fw += p.flops[PH_FWD][f];
    CHECK_MSG(fabs(fw / s.pairs / (35.13e9 + 8.47e9 + 0.95e9) - 1) < 0.01, "forward per pair %.4g", fw / s.pairs);
    CHECK_MSG(fabs(p.step_flops - p.pair_flops * s.pairs) < 1e3, "step %.6g", p.step_flops);
    /* Recompute trades memory for FLOPs. */
    CHECK(p.train[RECOMPUTE_BLOCK].arena[ARENA_ACT] < p.train[RECOMPUTE_ATTENTION].arena[ARENA_ACT]);
    CHECK(p.train[RECOMPUTE_ATTENTION].arena[ARENA_ACT] < p.train[RECOMPUTE_NONE].arena[ARENA_ACT]);
    CHECK(p.train[RECOMPUTE_NONE].executed_flops == p.step_flops);
    CHECK(p.train[RECOMPUTE_ATTENTION].executed_flops > p.step_flops);
    CHECK(p.train[RECOMPUTE_BLOCK].executed_flops > p.train[RECOMPUTE_ATTENTION].executed_flops);
    /* Frozen weights in bf16, trainable state fp32 x 4 (param, grad, m, v) + buffers. */
    CHECK(p.train[0].arena[ARENA_FROZEN] >= 2 * p.frozen && p.train[0].arena[ARENA_FROZEN] < 2 * p.frozen + (1 << 20));
    CHECK(p.train[0].arena[ARENA_TRAIN] >= 16 * p.trainable);
    /* The largest batch that fits: it fits, one more does not. */
    for (int rc = 0; rc < RECOMPUTE_COUNT; rc++) {
        int mb = p.train[rc].max_batch;
        CHECK_MSG(mb > 4, "max batch %d", mb);
        gen_spec t = s;
        gen_plan q;
        t.train.batch = mb, t.pairs = mb * t.video.frames;
        CHECK(gen_make_plan(&t, 0, &q) == 0 && q.train[rc].fits);
        t.train.batch = mb + 1, t.pairs = (mb + 1) * t.video.frames;
        CHECK(gen_make_plan(&t, 0, &q) == 0 && !q.train[rc].fits);
    }

    /* Baselines: head only. */
    gen_spec v;
    if (load("vision-vitb16-ucf51", NULL, 0, &v)) return;
    CHECK(gen_make_plan(&v, 0, &p) == 0);
    CHECK_EQ_I64(p.trainable, 768 * 512 + 512 + 512 * 51 + 51);
    CHECK_EQ_I64(p.frozen, 85798656);
    CHECK(p.flops[PH_BWD][FAM_LINEAR] == 0 && p.flops[PH_BWD][FAM_ATTENTION] == 0);
    CHECK(p.audio_image_forward == 0);
    if (load("late-vitb16-ucf51", NULL, 0, &v)) return;
    CHECK(gen_make_plan(&v, 0, &p) == 0);
    CHECK_EQ_I64(p.trainable, 813107);
    CHECK_EQ_I64(p.adapters, 0);
}

/* Independent checks of one lowered and packed IR. */
static void verify(const gen_ir *ir, const gen_mem *m, const char *what) {
    const int n = ir->nt;
    int bad_overlap = 0, bad_bounds = 0, bad_flow = 0;
    for (int i = 0; i < n; i++) {
        const gen_tensor *a = &ir->t[i];
        gen_arena ar = gen_tensor_arena(a);
        if (ar == ARENA_ACT && a->first < 0) continue;
        if (a->offset < 0 || a->offset + a->bytes > m->arena[ar]) bad_bounds++;
        if (ar != ARENA_ACT) continue;
        for (int j = i + 1; j < n; j++) {
            const gen_tensor *b = &ir->t[j];
            if (gen_tensor_arena(b) != ARENA_ACT || b->first < 0) continue;
            if (a->first > b->last || b->first > a->last) continue;
            if (a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes) {
                if (bad_overlap++ < 3) fprintf(stderr, "%s: %s and %s overlap\n", what, a->name, b->name);
            }
        }
    }
    char *written = calloc((size_t)n, 1);
    for (int i = 0; i < ir->nops; i++) {
        const gen_op *o = &ir->ops[i];
        for (int k = 0; k < o->n_in; k++) {
            int t = gen_op_in(ir, o)[k];
            if (gen_tensor_arena(&ir->t[t]) == ARENA_ACT && !written[t]) {
                if (bad_flow++ < 3) fprintf(stderr, "%s: op %s reads %s before it is written\n", what, o->name, ir->t[t].name);
            }
        }
        for (int k = 0; k < o->n_out; k++) written[gen_op_out(ir, o)[k]] = 1;
    }
    /* Every trainable parameter's gradient is written by backward; inference has no backward. */
    int missing_grad = 0, bwd_ops = 0;
    for (int i = 0; i < ir->nops; i++) bwd_ops += ir->ops[i].phase != PH_FWD;
    if (ir->train) {
        for (int i = 0; i < n; i++)
            if (ir->t[i].kind == T_PGRAD && !written[i]) {
                if (missing_grad++ < 3) fprintf(stderr, "%s: no op writes %s\n", what, ir->t[i].name);
            }
    } else {
        CHECK_MSG(bwd_ops == 0, "%s: inference has %d backward ops", what, bwd_ops);
    }
    free(written);
    CHECK_MSG(bad_overlap == 0, "%s: %d overlapping live tensors", what, bad_overlap);
    CHECK_MSG(bad_bounds == 0, "%s: %d tensors outside their arena", what, bad_bounds);
    CHECK_MSG(bad_flow == 0, "%s: %d reads before writes", what, bad_flow);
    CHECK_MSG(missing_grad == 0, "%s: %d parameters without gradient", what, missing_grad);
    CHECK_MSG(m->act_lower_bound <= m->arena[ARENA_ACT], "%s: lower bound above the packed arena", what);
    CHECK_MSG(m->arena[ARENA_ACT] <= m->act_lower_bound + m->act_lower_bound / 4 + 4096, "%s: packing %.3fx the lower bound",
              what, (double)m->arena[ARENA_ACT] / (double)m->act_lower_bound);

    /* Backward stops at the lowest adapter: no frozen backward op at or below it. */
    int kmin = ir->lowest_trainable_sublayer, below = 0, recomputed = 0;
    for (int i = 0; i < ir->nops; i++) {
        const gen_op *o = &ir->ops[i];
        recomputed += o->recompute;
        if (o->phase != PH_BWD || o->layer < 0 || o->fam == FAM_ADAPTER || o->recompute) continue;
        int k = (o->kind == OP_LINEAR_DX && strstr(o->name, "attention")) || o->kind == OP_ATTENTION_BWD ||
                        o->kind == OP_QKV_DX || (o->kind == OP_LAYERNORM_BWD && strstr(o->name, "layernorm_before"))
                    ? 2 * o->layer
                    : 2 * o->layer + 1;
        if (k <= kmin) {
            if (below++ < 3) fprintf(stderr, "%s: backward op %s at sub-layer %d, lowest adapter at %d\n", what, o->name, k, kmin);
        }
    }
    CHECK_MSG(below == 0, "%s: %d frozen backward ops at or below the lowest adapter", what, below);
    if (!ir->train || ir->recompute == RECOMPUTE_NONE || !ir->spec.has_adapters)
        CHECK_MSG(recomputed == 0, "%s: %d recompute ops without a recompute policy", what, recomputed);
    else
        CHECK_MSG(recomputed > 0, "%s: no recompute ops under policy %s", what, gen_recompute_name(ir->recompute));
}

static void test_matrix(void) {
    static const char *const fusions[] = {"lavish", "late", "vision", "audio"};
    static const char *const layers[] = {"[0]", "[1]", "\"all\"", "[2, 0]"};
    static const char *const subl[] = {"[\"attn\"]", "[\"mlp\"]", "[\"mlp\", \"attn\"]"};
    int configs = 0;
    for (int f = 0; f < 4; f++)
        for (int l = 0; l < 4; l++)
            for (int sl = 0; sl < 3; sl++)
                for (int var = 0; var < 2; var++) {
                    if (f > 0 && (l > 0 || sl > 0)) continue; /* adapters only matter for lavish */
                    char s1[64], s2[64], s3[64], s4[64], s5[64];
                    snprintf(s1, sizeof s1, "fusion=%s", fusions[f]);
                    snprintf(s2, sizeof s2, "adapter.layers=%s", layers[l]);
                    snprintf(s3, sizeof s3, "adapter.sublayers=%s", subl[sl]);
                    snprintf(s4, sizeof s4, "train.batch=%d", var ? 1 : 3);
                    snprintf(s5, sizeof s5, "precision=%s", var ? "bf16" : "fp32");
                    const char *sets[] = {s1, s2, s3, s4, s5, "backbone.depth=3", var ? "adapter.batchnorm=false" : "name=x"};
                    gen_spec s;
                    if (load("tiny-lavish", sets, 7, &s)) continue;
                    for (int train = 0; train < 2; train++)
                        for (int rc = 0; rc < (train ? RECOMPUTE_COUNT : 1); rc++) {
                            gen_ir ir;
                            gen_mem m;
                            if (gen_lower(&s, (gen_recompute)rc, train, &ir) != 0) {
                                CHECK(0);
                                continue;
                            }
                            gen_pack(&ir, &m);
                            char what[256];
                            snprintf(what, sizeof what, "%s layers %s sublayers %s %s %s %s", fusions[f], layers[l], subl[sl],
                                     var ? "B1 bf16 noBN" : "B3 fp32", train ? "train" : "infer",
                                     gen_recompute_name((gen_recompute)rc));
                            verify(&ir, &m, what);
                            configs++;
                            gen_ir_free(&ir);
                        }
                }
    CHECK_MSG(configs >= 100, "only %d configurations checked", configs);
}

/* Where the lowest adapter sits decides how far backward goes. */
static void test_backward_extent(void) {
    gen_spec s;
    gen_ir ir;
    const char *sets1[] = {"adapter.layers=[11]", "adapter.sublayers=[\"mlp\"]"};
    if (load("lavish-vitb16-ucf51", sets1, 2, &s)) return;
    CHECK(gen_lower(&s, RECOMPUTE_NONE, 1, &ir) == 0);
    int frozen_bwd = 0, adapter_bwd = 0;
    for (int i = 0; i < ir.nops; i++) {
        if (ir.ops[i].phase != PH_BWD) continue;
        if (ir.ops[i].fam == FAM_ADAPTER) adapter_bwd++;
        else if (ir.ops[i].layer >= 0) frozen_bwd++;
    }
    CHECK_EQ_I64(ir.lowest_trainable_sublayer, 23);
    CHECK_EQ_I64(frozen_bwd, 0); /* only the p2 adapters of the last layer train: nothing frozen below them */
    CHECK(adapter_bwd > 0);
    gen_ir_free(&ir);

    const char *sets2[] = {"adapter.layers=[5]", "adapter.sublayers=[\"attn\"]"};
    if (load("lavish-vitb16-ucf51", sets2, 2, &s)) return;
    CHECK(gen_lower(&s, RECOMPUTE_NONE, 1, &ir) == 0);
    int attn5 = 0, mlp5 = 0, l4 = 0, l11 = 0;
    for (int i = 0; i < ir.nops; i++) {
        const gen_op *o = &ir.ops[i];
        if (o->phase != PH_BWD || o->fam == FAM_ADAPTER) continue;
        if (o->layer == 5 && o->kind == OP_ATTENTION_BWD) attn5++;
        if (o->layer == 5 && o->kind == OP_GELU_LINEAR_DX) mlp5++;
        if (o->layer == 4) l4++;
        if (o->layer == 11 && o->kind == OP_ATTENTION_BWD) l11++;
    }
    CHECK_EQ_I64(attn5, 0);
    CHECK_EQ_I64(mlp5, 2);
    CHECK_EQ_I64(l4, 0);
    CHECK_EQ_I64(l11, 2);
    gen_ir_free(&ir);
}

/* Whether input slot j of op o (reading t) is a reader rt_cuda_bf16_operands allows for a bf16 t that an op
 * of kind pk wrote as its output slot ps; written out from the rules of docs/bench.md, not from the code. */
static int frozen_in(const avgen_graph *g, const avgen_op_desc *o, int j) {
    return g->tensors[g->refs[o->in_at + j]].arena == AVGEN_ARENA_FROZEN;
}
static int allowed_reader(const avgen_graph *g, int pk, int ps, int pn, const avgen_op_desc *o, int j, int fused) {
    const int k = o->kind;
    switch (pk) {
    case AVGEN_OP_KIND_LAYERNORM: /* a LayerNorm output: the first operand of a frozen-weight GEMM, or the
                                     adapter's grouped projection's input (and x of its weight gradient) */
        if ((k == AVGEN_OP_KIND_GROUP_LINEAR && j == 0) || (k == AVGEN_OP_KIND_GROUP_LINEAR_BWD && j == 1)) return 1;
        return j == 0 && (k == AVGEN_OP_KIND_QKV || k == AVGEN_OP_KIND_LINEAR_GELU || k == AVGEN_OP_KIND_LINEAR_RESIDUAL) &&
               frozen_in(g, o, 1);
    case AVGEN_OP_KIND_LINEAR_GELU:
        if (ps == pn - 1) /* the GELU output: the first operand of fc2 */
            return j == 0 && k == AVGEN_OP_KIND_LINEAR_RESIDUAL && frozen_in(g, o, 1);
        return ps == 0 && j == 1 && k == AVGEN_OP_KIND_GELU_LINEAR_DX && frozen_in(g, o, 2); /* the GELU input */
    case AVGEN_OP_KIND_QKV:
        return fused && ((k == AVGEN_OP_KIND_ATTENTION && j == 0) || (k == AVGEN_OP_KIND_ATTENTION_BWD && j == 1));
    case AVGEN_OP_KIND_ATTENTION: /* the fused attention's output: the output projection and delta */
        return fused && ((k == AVGEN_OP_KIND_LINEAR_RESIDUAL && j == 0 && frozen_in(g, o, 1)) ||
                         (k == AVGEN_OP_KIND_ATTENTION_BWD && j == 2));
    case AVGEN_OP_KIND_ATTENTION_BWD:
        return fused && k == AVGEN_OP_KIND_QKV_DX && j == 0 && frozen_in(g, o, 1) && frozen_in(g, o, 2) && frozen_in(g, o, 3);
    case AVGEN_OP_KIND_LINEAR_DX: /* fc2's input gradient: the GELU backward; the output projection's: the fused
                                     attention's backward (its dO) */
        return (k == AVGEN_OP_KIND_GELU_LINEAR_DX && j == 0 && frozen_in(g, o, 2)) ||
               (fused && k == AVGEN_OP_KIND_ATTENTION_BWD && j == 0);
    /* the adapter's bottleneck: the ReLU output read by the up-projection and its backward, a projection's
     * output by its BatchNorm and that's backward, a BatchNorm's input gradient by the projection's backward */
    case AVGEN_OP_KIND_BATCHNORM_RELU:
        return (k == AVGEN_OP_KIND_GROUP_LINEAR && j == 0) || (k == AVGEN_OP_KIND_GROUP_LINEAR_BWD && j == 1);
    case AVGEN_OP_KIND_GROUP_LINEAR:
        return ((k == AVGEN_OP_KIND_BATCHNORM || k == AVGEN_OP_KIND_BATCHNORM_RELU) && j == 0) ||
               ((k == AVGEN_OP_KIND_BATCHNORM_BWD || k == AVGEN_OP_KIND_BATCHNORM_RELU_BWD) && j == 1);
    case AVGEN_OP_KIND_BATCHNORM_BWD:
    case AVGEN_OP_KIND_BATCHNORM_RELU_BWD: return k == AVGEN_OP_KIND_GROUP_LINEAR_BWD && j == 0;
    /* the down-projection's input gradient: the (trainable) LayerNorm before's backward; that one's input
     * gradient: the latent exchange's backward */
    case AVGEN_OP_KIND_GROUP_LINEAR_BWD: return k == AVGEN_OP_KIND_LAYERNORM_BWD && j == 0 && o->n_out == 3;
    case AVGEN_OP_KIND_LAYERNORM_BWD: return k == AVGEN_OP_KIND_ADAPTER_LATENT_BWD && j == 0;
    /* the LayerNorm + gate's input gradient (its BatchNorm's output gradient): that BatchNorm's backward */
    case AVGEN_OP_KIND_LAYERNORM_GATE_BWD: return k == AVGEN_OP_KIND_BATCHNORM_BWD && j == 0;
    case AVGEN_OP_KIND_QKV_DX: /* a frozen LayerNorm's input gradient: its backward (dx accumulated, no parameters) */
        if (!fused) return 0;
        /* fall through */
    case AVGEN_OP_KIND_GELU_LINEAR_DX: return k == AVGEN_OP_KIND_LAYERNORM_BWD && j == 0 && o->n_out == 1;
    default: return 0;
    }
}

/* bf16 activations: the frozen backbone's LayerNorm outputs and GELU outputs (read only by frozen-weight
 * GEMMs), GELU inputs and fc2's input gradients (read only by the GELU backward); with the fused attention
 * also qkv, the attention output, its gradient and qkv's gradient; of an adapter's tensors its bottleneck (the grouped
 * projections' inputs and outputs, their BatchNorms' input gradients) and the gradients around its
 * LayerNorm before; never with a recompute policy's extra readers unaccounted for; the fused kernels'
 * tensors bf16 together or not at all. */
static void test_bf16_operands(const char *model, const char *const *sets, int nsets, gen_recompute rc, int fused,
                               int want) {
    gen_ir ir;
    gen_graph gg;
    if (build_graph(model, sets, nsets, rc, &ir, &gg)) return;
    const avgen_graph *g = &gg.g;
    unsigned char *f = calloc((size_t)g->n_tensors, 1);
    const int n = rt_cuda_bf16_operands(g, fused, f);
    if (want >= 0)
        CHECK_MSG(n == want, "%s (recompute %d, fused %d): %d bf16 activations, expected %d", model, (int)rc, fused, n, want);
    else CHECK_MSG(n > 0, "%s (recompute %d): no bf16 activations", model, (int)rc);
    int seen = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        if (!f[t]) continue;
        seen++;
        int producer = -1, pslot = -1, readers = 0;
        for (int i = 0; i < g->n_ops; i++)
            for (int j = 0; j < g->ops[i].n_out; j++)
                if (g->refs[g->ops[i].out_at + j] == t) producer = i, pslot = j;
        CHECK_MSG(producer >= 0, "%s: no producer", g->tensors[t].name);
        if (producer < 0) continue;
        const avgen_op_desc *po = &g->ops[producer];
        const int pk = po->kind;
        CHECK_MSG(po->stream != 0 && (strstr(po->name, "adapter") == NULL ||
                                      (pk == AVGEN_OP_KIND_LAYERNORM && strstr(po->name, ".ln_before")) ||
                                      pk == AVGEN_OP_KIND_BATCHNORM_RELU || pk == AVGEN_OP_KIND_GROUP_LINEAR ||
                                      pk == AVGEN_OP_KIND_BATCHNORM_BWD || pk == AVGEN_OP_KIND_BATCHNORM_RELU_BWD ||
                                      pk == AVGEN_OP_KIND_GROUP_LINEAR_BWD || pk == AVGEN_OP_KIND_LAYERNORM_GATE_BWD ||
                                      (pk == AVGEN_OP_KIND_LAYERNORM_BWD && strstr(po->name, ".ln_before"))),
                  "%s: produced by %s", g->tensors[t].name, po->name);
        for (int i = 0; i < g->n_ops; i++) {
            const avgen_op_desc *o = &g->ops[i];
            for (int j = 0; j < o->n_in; j++)
                if (g->refs[o->in_at + j] == t) {
                    readers++;
                    CHECK_MSG(allowed_reader(g, po->kind, pslot, po->n_out, o, j, fused), "%s (from %s) is read by %s (slot %d)",
                              g->tensors[t].name, po->name, o->name, j);
                    /* a bf16 gradient of a projection's output: the projection's input bf16 too (both operands
                     * of the weight gradient's GEMM) */
                    if (o->kind == AVGEN_OP_KIND_GROUP_LINEAR_BWD && j == 0)
                        CHECK_MSG(f[g->refs[o->in_at + 1]], "%s is bf16, %s's input %s is not", g->tensors[t].name, o->name,
                                  g->tensors[g->refs[o->in_at + 1]].name);
                }
        }
        CHECK(readers > 0);
        /* a GEMM's bf16 result needs bf16 operands: fc1's GELU input its LayerNorm output, qkv its LayerNorm's,
         * QKV_DX's result the qkv gradient */
        if (po->kind == AVGEN_OP_KIND_QKV || po->kind == AVGEN_OP_KIND_QKV_DX || po->kind == AVGEN_OP_KIND_GROUP_LINEAR ||
            (po->kind == AVGEN_OP_KIND_LINEAR_GELU && pslot == 0))
            CHECK_MSG(f[g->refs[po->in_at]], "%s is bf16, its GEMM's input %s is not", g->tensors[t].name,
                      g->tensors[g->refs[po->in_at]].name);
    }
    CHECK_EQ_I64(seen, n);
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        if (o->kind == AVGEN_OP_KIND_ATTENTION)
            CHECK_MSG(f[g->refs[o->in_at]] == f[g->refs[o->out_at]], "%s: qkv and the output differ in type", o->name);
        if (o->kind == AVGEN_OP_KIND_ATTENTION_BWD) {
            CHECK_MSG(f[g->refs[o->in_at + 1]] == f[g->refs[o->out_at]], "%s: qkv and its gradient differ in type", o->name);
            CHECK_MSG(f[g->refs[o->in_at + 1]] == f[g->refs[o->in_at]], "%s: qkv and dO differ in type", o->name);
        }
    }
    free(f);
    gen_graph_free(&gg);
    gen_ir_free(&ir);
}

/* rt_cuda_pack_act: the planner's activation layout (gen_pack packs with it) and the backend's repacking with
 * bf16 activations and BatchNorm outputs not stored are both valid (no two activations whose lifetimes meet
 * share a byte), the repacked arena no larger. Returns the repacked size. */
/* A packing of the activations (offsets off, arena size top; each tensor in the bytes its class in cls says,
 * NULL: all fp32): every used activation inside the arena, no two whose lifetimes meet sharing a byte. */
static void check_layout(const char *model, const avgen_graph *g, const unsigned char *cls, const int64_t *off, int64_t top) {
    int clash = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        const avgen_tensor_desc *a = &g->tensors[t];
        if (a->arena != AVGEN_ARENA_ACT || a->first < 0) continue;
        const int ka = cls ? cls[t] : RT_CUDA_T_FP32;
        const int64_t ea = off[t] + (ka == RT_CUDA_T_BF16 ? a->bytes / 2 : ka == RT_CUDA_T_VIRTUAL ? 0 : a->bytes);
        CHECK(off[t] >= 0 && ea <= top);
        for (int u = t + 1; u < g->n_tensors && !clash; u++) {
            const avgen_tensor_desc *b = &g->tensors[u];
            if (b->arena != AVGEN_ARENA_ACT || b->first < 0 || b->first > a->last || a->first > b->last) continue;
            const int kb = cls ? cls[u] : RT_CUDA_T_FP32;
            const int64_t eb = off[u] + (kb == RT_CUDA_T_BF16 ? b->bytes / 2 : kb == RT_CUDA_T_VIRTUAL ? 0 : b->bytes);
            if (off[t] < eb && off[u] < ea) {
                clash = 1;
                CHECK_MSG(0, "%s: %s and %s overlap while both live", model, a->name, b->name);
            }
        }
    }
}

static int64_t test_pack_act(const char *model, const char *const *sets, int nsets, gen_recompute rc, int fused) {
    gen_ir ir;
    gen_graph gg;
    if (build_graph(model, sets, nsets, rc, &ir, &gg)) return -1;
    const avgen_graph *g = &gg.g;
    int64_t *off = malloc(sizeof *off * (size_t)g->n_tensors);
    unsigned char *f = calloc((size_t)g->n_tensors, 1);
    /* the planner's own layout (gen_pack packs with rt_cuda_pack_act) */
    for (int t = 0; t < g->n_tensors; t++) off[t] = g->tensors[t].offset;
    check_layout(model, g, NULL, off, g->arena_bytes[AVGEN_ARENA_ACT]);
    const int n16 = rt_cuda_bf16_operands(g, fused, f);
    const int nbn = rt_cuda_bn_on_load(g, f);
    /* BatchNorm on load: exactly the adapters' second BatchNorms (BATCHNORM, not BATCHNORM_RELU) of the
     * training graph whose input outlives the LayerNorm + gate backward reading the output */
    int nbn_want = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        if (o->kind != AVGEN_OP_KIND_BATCHNORM) continue;
        const int u = g->refs[o->in_at], y = g->refs[o->out_at];
        int ok = 1;
        for (int j = 0; j < g->n_ops; j++)
            for (int k = 0; k < g->ops[j].n_in; k++)
                if (g->refs[g->ops[j].in_at + k] == y) ok &= j <= g->tensors[u].last;
        nbn_want += ok;
        CHECK_MSG((f[y] == RT_CUDA_T_VIRTUAL) == ok, "%s: BatchNorm output %s on load %d, expected %d", model,
                  g->tensors[y].name, f[y] == RT_CUDA_T_VIRTUAL, ok);
    }
    CHECK_EQ_I64(nbn, nbn_want);
    const int nlat = rt_cuda_lat_on_load(g, f);
    /* the gated fuse on load: every adapter's Z (ADAPTER_LATENT's first output) whose readers (the LayerNorm
     * before and its backward) all run while X, S and A2 are live; without a recompute policy, all of them */
    int nlat_want = 0, nlat_ops = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        if (o->kind != AVGEN_OP_KIND_ADAPTER_LATENT) continue;
        nlat_ops++;
        const int x = g->refs[o->in_at], z = g->refs[o->out_at], S = g->refs[o->out_at + 1], A2 = g->refs[o->out_at + 3];
        int ok = 1;
        for (int j = 0; j < g->n_ops; j++)
            for (int k = 0; k < g->ops[j].n_in; k++)
                if (g->refs[g->ops[j].in_at + k] == z)
                    ok &= j <= g->tensors[x].last && j <= g->tensors[S].last && j <= g->tensors[A2].last &&
                          (g->ops[j].kind == AVGEN_OP_KIND_LAYERNORM || g->ops[j].kind == AVGEN_OP_KIND_LAYERNORM_BWD);
        nlat_want += ok;
        CHECK_MSG((f[z] == RT_CUDA_T_VIRTUAL) == ok, "%s: gated fuse %s on load %d, expected %d", model, g->tensors[z].name,
                  f[z] == RT_CUDA_T_VIRTUAL, ok);
    }
    CHECK_EQ_I64(nlat, nlat_want);
    if (rc == RECOMPUTE_NONE) CHECK_EQ_I64(nlat, nlat_ops);
    const int64_t top = rt_cuda_pack_act(g, f, off);
    CHECK_MSG(top > 0 && top <= g->arena_bytes[AVGEN_ARENA_ACT], "%s: repacked %lld bytes, planned %lld", model, (long long)top,
              (long long)g->arena_bytes[AVGEN_ARENA_ACT]);
    check_layout(model, g, f, off, top);
    printf("%s (recompute %d, fused %d): activations %.3f GiB planned in fp32, %.3f GiB with %d bf16, %d BatchNorm outputs "
           "and %d adapter fuses not stored\n", model, (int)rc, fused, g->arena_bytes[AVGEN_ARENA_ACT] / 1073741824.0,
           top / 1073741824.0, n16, nbn, nlat);
    free(off), free(f);
    gen_graph_free(&gg);
    gen_ir_free(&ir);
    return top;
}

/* The latent backward pairs (rt_cuda_latbwd_first): every pair found is two adjacent ADAPTER_LATENT_BWD ops of
 * the two streams adding to each other's gradients, and every such op that adds to the gradients (need_x)
 * has its partner right after or before it (the IR's order), so that want pairs are found; each with the
 * first op's stream's frozen LayerNorm backward just before it (rt_cuda_latbwd_ln) and the other stream's
 * before that (rt_cuda_latbwd_lny). */
static void test_latbwd_pairs(const char *model, const char *const *sets, int nsets, gen_recompute rc, int want) {
    gen_ir ir;
    gen_graph gg;
    if (build_graph(model, sets, nsets, rc, &ir, &gg)) return;
    const avgen_graph *g = &gg.g;
    int pairs = 0, adding = 0, paired = 0, lns = 0, lnys = 0;
    for (int j = 0; j < g->n_ops; j++) {
        const avgen_op_desc *o = &g->ops[j];
        if (o->kind == AVGEN_OP_KIND_ADAPTER_LATENT_BWD && o->n_out == 4) {
            adding++;
            paired += rt_cuda_latbwd_first(g, j) >= 0 || (j + 1 < g->n_ops && rt_cuda_latbwd_first(g, j + 1) == j);
        }
        const int f = rt_cuda_latbwd_first(g, j);
        if (f < 0) continue;
        pairs++;
        const avgen_op_desc *a = &g->ops[f];
        const int32_t *ai = g->refs + a->in_at, *ao = g->refs + a->out_at, *bi = g->refs + o->in_at, *bo = g->refs + o->out_at;
        CHECK_MSG(f == j - 1 && a->kind == AVGEN_OP_KIND_ADAPTER_LATENT_BWD && o->kind == AVGEN_OP_KIND_ADAPTER_LATENT_BWD &&
                      a->stream != o->stream && ai[1] == bi[2] && ai[2] == bi[1] && ao[2] == bo[3] && ao[3] == bo[2],
                  "%s: ops %d and %d are not a latent backward pair", model, f, j);
        /* the frozen LayerNorm backward ops run with it: the first op's stream's just before it, adding to that
         * gradient, and the other stream's before that one */
        const int l = rt_cuda_latbwd_ln(g, f), ly = rt_cuda_latbwd_lny(g, f);
        lns += l >= 0, lnys += ly >= 0;
        for (int k = 0; k < 2; k++) {
            const int li = k ? ly : l;
            if (li < 0) continue;
            const avgen_op_desc *L = &g->ops[li];
            CHECK_MSG(li == f - 1 - k && L->kind == AVGEN_OP_KIND_LAYERNORM_BWD && L->n_out == 1 &&
                          L->stream == (k ? o : a)->stream && g->refs[L->out_at] == ao[2 + k],
                      "%s: op %d does not run with the latent backward pair %d, %d", model, li, f, j);
        }
    }
    CHECK_MSG(lnys == want, "%s (recompute %d): %d other-stream LayerNorm backward ops run with a pair, expected %d", model,
              (int)rc, lnys, want);
    CHECK_MSG(lns == want, "%s (recompute %d): %d LayerNorm backward ops run with a pair, expected %d", model, (int)rc, lns,
              want);
    CHECK_MSG(pairs == want && paired == adding, "%s (recompute %d): %d latent backward pairs (expected %d), %d of %d ops paired",
              model, (int)rc, pairs, want, paired, adding);
    gen_graph_free(&gg);
    gen_ir_free(&ir);
}

/* A mutable copy of a graph (its tensors, ops and refs), for tests that break one condition at a time: m is the
 * copy, reset() puts the original back. */
typedef struct {
    const avgen_graph *g;
    avgen_graph m;
    avgen_tensor_desc *ts;
    avgen_op_desc *ops;
    int32_t *refs;
    size_t nrefs;
} mut_graph;
static void mut_reset(mut_graph *c) {
    memcpy(c->ts, c->g->tensors, sizeof *c->ts * (size_t)c->g->n_tensors);
    memcpy(c->ops, c->g->ops, sizeof *c->ops * (size_t)c->g->n_ops);
    memcpy(c->refs, c->g->refs, sizeof *c->refs * c->nrefs);
}
static int mut_init(mut_graph *c, const avgen_graph *g) {
    c->g = g, c->nrefs = 0;
    for (int i = 0; i < g->n_ops; i++) {
        const size_t e1 = (size_t)g->ops[i].in_at + (size_t)g->ops[i].n_in, e2 = (size_t)g->ops[i].out_at + (size_t)g->ops[i].n_out;
        if (e1 > c->nrefs) c->nrefs = e1;
        if (e2 > c->nrefs) c->nrefs = e2;
    }
    c->ts = malloc(sizeof *c->ts * (size_t)g->n_tensors), c->ops = malloc(sizeof *c->ops * (size_t)g->n_ops);
    c->refs = malloc(sizeof *c->refs * (c->nrefs + 1));
    CHECK(c->ts && c->ops && c->refs);
    if (!c->ts || !c->ops || !c->refs) return -1;
    c->m = *g, c->m.tensors = c->ts, c->m.ops = c->ops, c->m.refs = c->refs;
    mut_reset(c);
    return 0;
}
static void mut_free(mut_graph *c) { free(c->ts), free(c->ops), free(c->refs); }

/* What rt_cuda_latbwd_first / _ln refuse: a mutable copy of tiny-lavish's graph with one condition broken at a
 * time around a pair that is found (the phases differ; the two ops are not each other's other stream; the
 * second reads what the first writes; the second writes new memory; more latents than the fused LayerNorm
 * kernel takes; a LayerNorm width without a register path). */
static void test_latbwd_rejects(void) {
    gen_ir ir;
    gen_graph gg;
    if (build_graph("tiny-lavish", NULL, 0, RECOMPUTE_NONE, &ir, &gg)) return;
    const avgen_graph *g = &gg.g;
    int j = 1;
    while (j < g->n_ops && !(rt_cuda_latbwd_first(g, j) >= 0 && rt_cuda_latbwd_ln(g, j - 1) >= 0)) j++;
    CHECK_MSG(j < g->n_ops, "tiny-lavish: no latent backward pair with its LayerNorm");
    if (j >= g->n_ops) goto done;
    const int f = j - 1;
    mut_graph c;
    if (mut_init(&c, g)) goto done;
    avgen_op_desc *ops = c.ops;
    int32_t *refs = c.refs;
    avgen_tensor_desc *ts = c.ts;
    const avgen_graph m = c.m;
#define RESET() mut_reset(&c)
    CHECK(rt_cuda_latbwd_first(&m, j) == f && rt_cuda_latbwd_ln(&m, f) == f - 1);
    const int32_t *fi = g->refs + g->ops[f].in_at, *fo = g->refs + g->ops[f].out_at, *so = g->refs + g->ops[j].out_at;
    ops[j].phase ^= 1;
    CHECK_MSG(rt_cuda_latbwd_first(&m, j) < 0, "a pair across phases");
    RESET();
    refs[g->ops[j].in_at + 2] = fi[2]; /* the second's Y no longer the first's X */
    CHECK_MSG(rt_cuda_latbwd_first(&m, j) < 0, "a pair whose ops are not each other's other stream");
    RESET();
    refs[g->ops[j].in_at + 0] = fo[0]; /* the second reads what the first writes */
    CHECK_MSG(rt_cuda_latbwd_first(&m, j) < 0, "a second op reading the first's output");
    RESET();
    ts[so[0]].arena = AVGEN_ARENA_ACT, ts[so[0]].first = j; /* the second writes new memory */
    CHECK_MSG(rt_cuda_latbwd_first(&m, j) < 0, "a second op writing new memory");
    RESET();
    ts[fi[6]].shape[0] = RT_CUDA_LATBWD_LN_MAX_M + 1;
    CHECK_MSG(rt_cuda_latbwd_first(&m, j) == f && rt_cuda_latbwd_ln(&m, f) < 0, "the LayerNorm fused with more latents");
    RESET();
    const int32_t *li = g->refs + g->ops[f - 1].in_at;
    ts[li[1]].shape[2] = ts[fi[1]].shape[2] = ts[fi[2]].shape[2] = 100; /* the pair still matches; no register path */
    CHECK_MSG(rt_cuda_latbwd_first(&m, j) == f && rt_cuda_latbwd_ln(&m, f) < 0, "a LayerNorm width without a register path fused");
#undef RESET
    mut_free(&c);
done:
    gen_graph_free(&gg);
    gen_ir_free(&ir);
}

/* The carries (rt_cuda_carry): want_dy16 gradients carried as bf16, each from a LAYERNORM_GATE_BWD to a LINEAR_DX
 * against a frozen weight reading the same gradient with no op between touching it; want_dots latent logits, each
 * from an ADAPTER_LATENT whose X is a later ADAPTER_LATENT's Y, nothing between writing that tensor; every reader
 * at most RT_CUDA_CARRY_REACH ops on; carries live at the same op hold disjoint bytes of op scratch below that op's
 * extent, and every op's scratch counts its extent. What ends a carry: an op between that writes the gradient, a
 * reader against a trainable weight, a reader in another phase; an op between that writes the latent's X or the
 * reader's tokens. */
static void test_carries(const char *model, const char *const *sets, int nsets, gen_recompute rc, int want_dy16,
                         int want_dots) {
    gen_ir ir;
    gen_graph gg;
    if (build_graph(model, sets, nsets, rc, &ir, &gg)) return;
    const avgen_graph *g = &gg.g;
    avgen_consts k;
    gen_consts(&ir.spec, &k);
    int n16 = 0, ndots = 0, bad = 0, overlap = 0, under = 0, first16 = -1, firstdots = -1;
    for (int i = 0; i < g->n_ops; i++) {
        int j;
        int64_t bytes;
        const int kind = rt_cuda_carry(g, i, &j, &bytes);
        if (!kind) continue;
        const avgen_op_desc *a = &g->ops[i], *b = &g->ops[j];
        int t = -1;
        if (kind == RT_CUDA_CARRY_DY16) {
            n16++;
            if (first16 < 0) first16 = i;
            t = g->refs[a->in_at];
            bad += a->kind != AVGEN_OP_KIND_LAYERNORM_GATE_BWD || b->kind != AVGEN_OP_KIND_LINEAR_DX || g->refs[b->in_at] != t ||
                   g->tensors[g->refs[b->in_at + 1]].arena != AVGEN_ARENA_FROZEN || bytes < 2 * (g->tensors[t].bytes / 4);
        } else {
            ndots++;
            if (firstdots < 0) firstdots = i;
            t = g->refs[a->in_at];
            const avgen_tensor_desc *tok = &g->tensors[g->refs[b->in_at + 2]], *x = &g->tensors[t];
            bad += kind != RT_CUDA_CARRY_LATDOTS || a->kind != AVGEN_OP_KIND_ADAPTER_LATENT ||
                   b->kind != AVGEN_OP_KIND_ADAPTER_LATENT || g->refs[b->in_at + 1] != t ||
                   bytes < 4 * x->shape[0] * x->shape[1] * tok->shape[0];
        }
        bad += j <= i || j - i > RT_CUDA_CARRY_REACH || b->phase != a->phase;
        for (int q = i + 1; q < j; q++) { /* nothing between writes what was carried (nor, for the gradient, reads it) */
            for (int s2 = 0; s2 < g->ops[q].n_in; s2++) bad += kind == RT_CUDA_CARRY_DY16 && g->refs[g->ops[q].in_at + s2] == t;
            for (int s2 = 0; s2 < g->ops[q].n_out; s2++) bad += g->refs[g->ops[q].out_at + s2] == t;
        }
        const int64_t off = rt_cuda_carry_offset(g, i), end = off + bytes;
        for (int q = i; q <= j; q++) {
            under += rt_cuda_carry_extent(g, q) < end;
            for (int p = q - RT_CUDA_CARRY_REACH; p < i; p++) { /* an older carry live at q: below or above this one */
                int pj;
                int64_t pb;
                if (p < 0 || !rt_cuda_carry(g, p, &pj, &pb) || pj < q) continue;
                const int64_t po = rt_cuda_carry_offset(g, p);
                overlap += po < end && off < po + pb;
            }
        }
    }
    CHECK_MSG(n16 == want_dy16 && ndots == want_dots && !bad && !overlap && !under,
              "%s (recompute %d): %d gradients carried as bf16 (expected %d), %d latent logits (expected %d), %d not as "
              "specified, %d overlapping, %d ops whose extent is short", model, (int)rc, n16, want_dy16, ndots,
              want_dots, bad, overlap, under);
    mut_graph c;
    if (mut_init(&c, g)) first16 = firstdots = -1;
    avgen_tensor_desc *ts = c.ts;
    avgen_op_desc *ops = c.ops;
    int32_t *refs = c.refs;
    const avgen_graph m = c.m;
#define RESET() mut_reset(&c)
    if (first16 >= 0) {
        const int i = first16, j = rt_cuda_dy16_reader(g, i), dy = g->refs[g->ops[i].in_at];
        RESET();
        ts[g->refs[g->ops[j].in_at + 1]].arena = AVGEN_ARENA_TRAIN;
        CHECK_MSG(rt_cuda_dy16_reader(&m, i) < 0, "%s: a gradient carried to a GEMM against a trainable weight", model);
        RESET();
        ops[j].phase ^= 1;
        CHECK_MSG(rt_cuda_dy16_reader(&m, i) < 0, "%s: a gradient carried across phases", model);
        RESET();
        if (j > i + 1) {
            refs[g->ops[i + 1].out_at] = dy; /* an op between that writes the gradient */
            CHECK_MSG(rt_cuda_dy16_reader(&m, i) < 0, "%s: a gradient carried past an op that writes it", model);
        }
    }
    if (firstdots >= 0) {
        const int i = firstdots, j = rt_cuda_latdots_reader(g, i), x = g->refs[g->ops[i].in_at];
        RESET();
        ops[j].phase ^= 1;
        CHECK_MSG(rt_cuda_latdots_reader(&m, i) != j, "%s: latent logits carried across phases", model);
        RESET();
        refs[g->ops[i + 1].out_at] = x; /* an op between (or the writer itself) that writes X */
        CHECK_MSG(rt_cuda_latdots_reader(&m, i) < 0, "%s: latent logits carried past an op that writes X", model);
        RESET();
        refs[g->ops[i].out_at] = g->refs[g->ops[j].in_at + 2]; /* the writer writes the reader's tokens */
        CHECK_MSG(rt_cuda_latdots_reader(&m, i) < 0, "%s: latent logits carried past an op that writes the tokens", model);
    }
#undef RESET
    mut_free(&c);
    printf("%s (recompute %d): %d gradients carried as bf16 to their GEMM, %d latent logits to their adapter\n", model,
           (int)rc, n16, ndots);
    gen_graph_free(&gg);
    gen_ir_free(&ir);
}

/* The latent ops run with the LayerNorm after them (rt_cuda_latln_next): want of them, each an ADAPTER_LATENT
 * followed by the LAYERNORM on its fuse in the same phase, none of the latent op's activations ending at it; the
 * roofline counts the residual stream once for the two (the LayerNorm's loads of it are the latent op's). Refused:
 * a latent op whose input ends at it (its memory could hold the LayerNorm's outputs, written early), another
 * phase, too many latents for the kernel. */
static void test_latln(const char *model, const char *const *sets, int nsets, gen_recompute rc, int want) {
    gen_ir ir;
    gen_graph gg;
    if (build_graph(model, sets, nsets, rc, &ir, &gg)) return;
    const avgen_graph *g = &gg.g;
    int n = 0, bad = 0, first = -1;
    unsigned char *cls = calloc((size_t)g->n_tensors + 1, 1);
    CHECK(cls && rt_cuda_act_classes(g, 1, 1, RT_CUDA_FUSE_BN | RT_CUDA_FUSE_LATENT, cls, NULL, NULL, NULL) == 0);
    for (int i = 0; cls && i < g->n_ops; i++) {
        if (rt_cuda_latln_next(g, i) < 0) continue;
        n++;
        if (first < 0) first = i;
        const avgen_op_desc *a = &g->ops[i], *b = &g->ops[i + 1];
        const int z = g->refs[a->out_at], x = g->refs[a->in_at];
        bad += rt_cuda_latln_next(g, i) != i + 1 || a->kind != AVGEN_OP_KIND_ADAPTER_LATENT || b->kind != AVGEN_OP_KIND_LAYERNORM ||
               g->refs[b->in_at] != z || b->phase != a->phase;
        /* the LayerNorm's bytes leave out the residual stream it loads the fuse from */
        const double with = rt_cuda_op_bytes(g, i + 1, NULL), without = rt_cuda_op_bytes(g, i + 1, cls);
        bad += cls[z] != RT_CUDA_T_VIRTUAL || without >= with - (double)g->tensors[x].bytes / 2;
    }
    CHECK_MSG(n == want && !bad, "%s (recompute %d): %d latent ops run with their LayerNorm (expected %d), %d not as specified",
              model, (int)rc, n, want, bad);
    mut_graph c;
    if (first >= 0 && mut_init(&c, g) == 0) {
        CHECK(rt_cuda_latln_next(&c.m, first) == first + 1);
        c.ts[g->refs[g->ops[first].in_at + 1]].last = first; /* the other stream's last use at the latent op */
        CHECK_MSG(rt_cuda_latln_next(&c.m, first) < 0, "%s: a latent op with its LayerNorm though an input ends at it", model);
        mut_reset(&c);
        c.ops[first + 1].phase ^= 1;
        CHECK_MSG(rt_cuda_latln_next(&c.m, first) < 0, "%s: a latent op with a LayerNorm of another phase", model);
        mut_reset(&c);
        c.ts[g->refs[g->ops[first].in_at + 2]].shape[0] = RT_CUDA_LATLN_MAX_M + 1;
        CHECK_MSG(rt_cuda_latln_next(&c.m, first) < 0, "%s: a latent op with its LayerNorm with more latents than it takes", model);
        mut_free(&c);
    }
    free(cls);
    printf("%s (recompute %d): %d latent ops run with their LayerNorm\n", model, (int)rc, n);
    gen_graph_free(&gg);
    gen_ir_free(&ir);
}

/* The fused attention's shapes for its shape-literal instances (rt_cuda_attn_shapes, rt_cuda_shape_lines): want
 * is the lines a description's kernels.cu ends with. */
static void test_attn_shapes(const char *model, const char *const *sets, int n, const char *want) {
    gen_spec s;
    if (load(model, sets, n, &s)) return;
    avgen_consts k;
    gen_consts(&s, &k);
    char lines[400];
    int t[2][3];
    const int c = rt_cuda_shape_lines(&k, lines, sizeof lines);
    CHECK_MSG(!strcmp(lines, want) && c == rt_cuda_attn_shapes(&k, t), "%s: shape lines\n%s, expected\n%s", model, lines, want);
    char small[20];
    rt_cuda_shape_lines(&k, small, sizeof small); /* cut short: the lines' start, terminated */
    CHECK(!strncmp(small, want, sizeof small - 1) && strlen(small) == (strlen(want) < sizeof small ? strlen(want) : sizeof small - 1));
}

int main(int argc, char **argv) {
    if (argc > 1) snprintf(root, sizeof root, "%s", argv[1]);
    test_attn_shapes("lavish-vitb16-ucf51", NULL, 0, "AVGEN_ATTN_SHAPE(64, 197, 12)\nAVGEN_ATTN_SHAPE(64, 49, 12)\n");
    test_attn_shapes("vision-vitb16-ucf51", NULL, 0, "AVGEN_ATTN_SHAPE(64, 197, 12)\n");
    test_attn_shapes("audio-vitb16-ucf51", NULL, 0, "AVGEN_ATTN_SHAPE(64, 49, 12)\n");
    test_attn_shapes("tiny-lavish", NULL, 0, "AVGEN_ATTN_SHAPE(16, 10, 4)\nAVGEN_ATTN_SHAPE(16, 13, 4)\n");
    const char *s112[] = {"backbone.image_size=112", "video.size=112"}; /* 7 x 7 + 1 = 50 frame tokens */
    test_attn_shapes("lavish-vitb16-ucf51", s112, 2, "AVGEN_ATTN_SHAPE(64, 50, 12)\nAVGEN_ATTN_SHAPE(64, 49, 12)\n");
    const char *h16[] = {"backbone.heads=16"}; /* head width 48: no fused attention */
    test_attn_shapes("lavish-vitb16-ucf51", h16, 1, "");
    const char *s384[] = {"backbone.image_size=384", "video.size=384"}; /* 577 tokens: too long for the fused kernels */
    test_attn_shapes("vision-vitb16-ucf51", s384, 2, "");
    /* ViT-B/16: two adapter positions a layer, 12 layers; the lowest (layer 0's attention) adds to no gradient */
    test_latbwd_pairs("lavish-vitb16-ucf51", NULL, 0, RECOMPUTE_NONE, 23);
    test_latbwd_pairs("lavish-vitb16-ucf51", NULL, 0, RECOMPUTE_BLOCK, 23);
    test_latbwd_pairs("tiny-lavish", NULL, 0, RECOMPUTE_ATTENTION, 3);
    test_latbwd_rejects();
    /* ViT-B/16: two such GEMMs a stream and layer (the output projection's, fc2's), less layer 0's attention; the
     * audio adapter's logits at each adapter position (2 a layer), and again where block recompute reruns them */
    test_carries("lavish-vitb16-ucf51", NULL, 0, RECOMPUTE_NONE, 46, 24);
    test_carries("lavish-vitb16-ucf51", NULL, 0, RECOMPUTE_BLOCK, 46, 48);
    test_carries("tiny-lavish", NULL, 0, RECOMPUTE_NONE, 6, 4);
    test_carries("late-vitb16-ucf51", NULL, 0, RECOMPUTE_NONE, 0, 0);
    /* every adapter's latent op (48 at ViT-B/16); with block recompute the reruns in the backward (the forward's
     * S and A2 end at their latent op there, none kept for the backward) */
    {
        const char *f32[] = {"precision=fp32"}; /* the CUDA backend's graphs store fp32 (docs/bench.md) */
        test_latln("lavish-vitb16-ucf51", f32, 1, RECOMPUTE_NONE, 48);
        test_latln("lavish-vitb16-ucf51", f32, 1, RECOMPUTE_BLOCK, 48);
    }
    test_latln("tiny-lavish", NULL, 0, RECOMPUTE_NONE, 8);
    test_latln("late-vitb16-ucf51", NULL, 0, RECOMPUTE_NONE, 0);
    test_vitb16_numbers();
    test_matrix();
    test_backward_extent();
    /* ViT-B/16: 12 layers x 2 streams x (LayerNorm before attention, before the MLP, GELU output, GELU input,
     * fc2's input gradient, the MLP LayerNorm's input gradient) = 144, and with the fused attention 24 qkv, 24
     * outputs, 22 qkv gradients and 22 attention LayerNorm input gradients more (layer 0's attention has no
     * backward: the gradient stops at its adapters: the backward extent, test_backward_extent above); and nine
     * of each adapter (48 adapters; 8 in tiny-lavish): the output of its LayerNorm before, both projections'
     * outputs, the ReLU output, both BatchNorms' input gradients, the down-projection's input gradient, the
     * gated fuse's gradient and the second BatchNorm's output gradient */
    const char *fp32[] = {"precision=fp32"};  /* the CUDA backend's graphs store fp32 (docs/bench.md) */
    test_bf16_operands("lavish-vitb16-ucf51", fp32, 1, RECOMPUTE_NONE, 0, 144 + 9 * 48);
    test_bf16_operands("lavish-vitb16-ucf51", fp32, 1, RECOMPUTE_NONE, 1, 258 + 9 * 48); /* 22 dO: layer 0 has no attention backward */
    test_bf16_operands("tiny-lavish", NULL, 0, RECOMPUTE_NONE, 0, 24 + 9 * 8);
    test_bf16_operands("tiny-lavish", NULL, 0, RECOMPUTE_NONE, 1, 38 + 9 * 8);
    /* ViT-B/16 at B = 32, T = 8: the bf16 activations take a third or more off the activation arena */
    const char *b32[] = {"precision=fp32", "train.batch=32", "video.frames=8"};
    for (int fused = 0; fused < 2; fused++) {
        const int64_t top = test_pack_act("lavish-vitb16-ucf51", b32, 3, RECOMPUTE_NONE, fused);
        (void)top;
    }
    test_pack_act("tiny-lavish", NULL, 0, RECOMPUTE_NONE, 1);
    test_pack_act("tiny-lavish", NULL, 0, RECOMPUTE_BLOCK, 1);
    test_pack_act("tiny-lavish", NULL, 0, RECOMPUTE_ATTENTION, 0);
    /* recomputed forward ops write more of them; the invariants above hold for each */
    for (int fused = 0; fused < 2; fused++) {
        test_bf16_operands("tiny-lavish", NULL, 0, RECOMPUTE_BLOCK, fused, -1);
        test_bf16_operands("tiny-lavish", NULL, 0, RECOMPUTE_ATTENTION, fused, -1);
    }
    return CHECK_DONE();
}
