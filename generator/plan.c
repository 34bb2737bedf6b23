/* Planner implementation: arena packing by lifetime, counts, FLOPs, the largest batch that fits, and the
 * two views of a plan (a table for people, JSON for tools: docs/plan-json.md). */
#include "plan.h"

#include "graph.h"
#include "rt_cuda.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static int64_t align_up(int64_t x) { return (x + GEN_ALIGN - 1) / GEN_ALIGN * GEN_ALIGN; }

/* gen_pack, and with roof the CUDA backend's roofline inputs too (only the plan's own graph needs them, not
 * every pack of the batch searches) */
static void pack(gen_ir *ir, gen_mem *m, gen_roof *roof) {
    memset(m, 0, sizeof *m);
    m->nops = ir->nops, m->ntensors = ir->nt;
    /* Static arenas: every tensor, used or not, in table order. Activations: packed by lifetime with the
     * CUDA backend's own packing (rt_cuda_pack_act, which also repacks them at run time), over a table of
     * what it reads (arena, bytes, lifetime). */
    avgen_tensor_desc *td = calloc((size_t)ir->nt + 1, sizeof *td);
    int64_t *off = malloc(sizeof *off * (size_t)(ir->nt + 1));
    if (!td || !off) {
        free(td), free(off);
        m->peak = -1;
        return;
    }
    for (int i = 0; i < ir->nt; i++) {
        gen_tensor *t = &ir->t[i];
        const gen_arena a = gen_tensor_arena(t);
        td[i] = (avgen_tensor_desc){.arena = (uint8_t)a, .bytes = t->bytes, .first = t->first, .last = t->last};
        t->offset = 0;
        if (a != ARENA_ACT) t->offset = m->arena[a], m->arena[a] += align_up(t->bytes);
    }
    const avgen_graph tg = {.tensors = td, .n_tensors = ir->nt};
    const int64_t top = rt_cuda_pack_act(&tg, NULL, off);
    free(td);
    if (top < 0) {
        free(off);
        m->peak = -1;
        return;
    }
    for (int i = 0; i < ir->nt; i++)
        if (gen_tensor_arena(&ir->t[i]) == ARENA_ACT) ir->t[i].offset = off[i]; /* -1: never used */
    free(off);
    m->arena[ARENA_ACT] = top;

    /* Lower bound: bytes live at each op (difference array over op indices). */
    int64_t *delta = calloc((size_t)ir->nops + 1, sizeof *delta);
    if (delta) {
        for (int i = 0; i < ir->nt; i++) {
            const gen_tensor *t = &ir->t[i];
            if (gen_tensor_arena(t) != ARENA_ACT || t->first < 0) continue;
            delta[t->first] += align_up(t->bytes);
            delta[t->last + 1] -= align_up(t->bytes);
        }
        int64_t live = 0;
        for (int i = 0; i < ir->nops; i++) {
            live += delta[i];
            if (live > m->act_lower_bound) m->act_lower_bound = live;
        }
        free(delta);
    }
    m->workspace = GEN_GEMM_WORKSPACE;
    /* The CUDA backend's op scratch (attention scores, partial sums), from the same function it sizes
     * its buffer with. */
    m->scratch = 0;
    m->n_bf16 = m->n_bn = m->n_lat = 0, m->act_cuda = m->act_bf16 = -1;
    gen_graph gg;
    if (gen_graph_build(ir, m, &gg) == 0) {
        avgen_consts k;
        gen_consts(&ir->spec, &k);
        m->scratch = (int64_t)rt_cuda_scratch_bytes(&gg.g, &k, 1); /* bf16 GEMMs: fused attention */
        /* the CUDA backend's activation arena: BatchNorm outputs and the adapters' gated fuse applied on load,
         * and bf16 activations (AVGEN_BF16_OPERANDS=1) besides; the backend's own choices and packing */
        unsigned char *f = calloc((size_t)gg.g.n_tensors + 1, 1);
        const int fuse = RT_CUDA_FUSE_BN | RT_CUDA_FUSE_LATENT;
        if (f && rt_cuda_act_classes(&gg.g, 0, 1, fuse, f, NULL, &m->n_bn, &m->n_lat) == 0) {
            m->act_cuda = rt_cuda_pack_act(&gg.g, f, NULL);
            if (roof) rt_cuda_roofline(&gg.g, f, 0, 0, roof->bytes_fp32, roof->flops);
            if (rt_cuda_act_classes(&gg.g, 1, 1, fuse, f, &m->n_bf16, NULL, NULL) == 0) {
                m->act_bf16 = rt_cuda_pack_act(&gg.g, f, NULL);
                if (roof) rt_cuda_roofline(&gg.g, f, 0, 0, roof->bytes_bf16, NULL), roof->have = 1;
            }
        }
        free(f);
        gen_graph_free(&gg);
    }
    m->peak = m->workspace + m->scratch;
    for (int a = 0; a < ARENA_COUNT; a++) m->peak += m->arena[a];
    m->fits = m->peak <= ir->spec.memory.budget;
    /* the CUDA backend's training and evaluation loops also keep a device copy of the input arena, where the next
     * batch goes up while a step runs (rt_cuda_stage_input) */
    const int64_t stage = m->arena[ARENA_INPUT];
    m->peak_cuda = m->act_cuda >= 0 ? m->peak - m->arena[ARENA_ACT] + m->act_cuda + stage : -1;
    /* bf16 activations: and the backend's bf16 copies of the frozen and the parameter arena */
    _Static_assert((int)ARENA_FROZEN == AVGEN_ARENA_FROZEN && (int)ARENA_TRAIN == AVGEN_ARENA_TRAIN &&
                       (int)ARENA_COUNT == AVGEN_ARENA_COUNT, "the planner's arenas are the runtime's");
    m->peak_bf16 = m->act_bf16 >= 0 ? m->peak - m->arena[ARENA_ACT] + m->act_bf16 + rt_cuda_bf16_copy_bytes(m->arena) + stage : -1;
    for (int i = 0; i < ir->nops; i++) m->executed_flops += ir->ops[i].flops;
}

void gen_pack(gen_ir *ir, gen_mem *m) { pack(ir, m, NULL); }

static int plan_one(const gen_spec *s, gen_recompute rc, int train, gen_mem *m, gen_roof *roof) {
    gen_ir ir;
    if (gen_lower(s, rc, train, &ir) != 0) return -1;
    pack(&ir, m, roof);
    gen_ir_free(&ir);
    return m->peak < 0 ? -1 : 0;
}

/* Largest batch (<= 65536) whose training peak fits the budget (cuda 1: the CUDA backend's, 2: with its bf16
 * activations); memory grows with the batch. */
static int max_batch(const gen_spec *s, gen_recompute rc, int cuda) {
    gen_spec t = *s;
    int lo = 0, hi = 65536;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        t.train.batch = mid;
        t.pairs = mid * t.video.frames;
        gen_mem m;
        if (plan_one(&t, rc, 1, &m, NULL) != 0) return -1;
        const int64_t pk = cuda == 2 ? m.peak_bf16 : cuda == 1 ? m.peak_cuda : m.peak;
        if (pk >= 0 && pk <= t.memory.budget) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

int gen_make_plan(const gen_spec *s, int search_batch, gen_plan *p) {
    memset(p, 0, sizeof *p);
    gen_ir ir;
    if (gen_lower(s, RECOMPUTE_NONE, 1, &ir) != 0) return -1;
    for (int i = 0; i < ir.nt; i++) {
        const gen_tensor *t = &ir.t[i];
        if (t->kind == T_FROZEN) p->frozen += t->numel;
        if (t->kind == T_BUFFER) p->buffers += t->numel;
        if (t->kind == T_TRAINABLE) {
            p->trainable += t->numel;
            if (t->group == GROUP_ADAPTER) p->adapters += t->numel;
            if (t->group == GROUP_HEAD) p->head += t->numel;
            if (strstr(t->name, ".my_tokens")) p->adapter_count++;
        }
    }
    p->per_adapter = p->adapter_count ? p->adapters / p->adapter_count : 0;
    double vis = 0, aud = 0;
    for (int i = 0; i < ir.nops; i++) {
        const gen_op *o = &ir.ops[i];
        p->flops[o->phase][o->fam] += o->flops;
        p->step_flops += o->flops;
        p->other_flops += o->other_flops;
        if (o->phase == PH_FWD && (o->fam == FAM_PATCH || o->fam == FAM_LINEAR || o->fam == FAM_ATTENTION)) {
            if (o->stream == 'v') vis += o->flops;
            if (o->stream == 'a') aud += o->flops;
        }
    }
    p->pair_flops = p->step_flops / s->pairs;
    p->visual_image_forward = vis / s->pairs;
    p->audio_image_forward = aud / s->pairs;
    gen_ir_free(&ir);
    for (int rc = 0; rc < RECOMPUTE_COUNT; rc++) {
        if (plan_one(s, (gen_recompute)rc, 1, &p->train[rc], NULL) != 0) return -1;
        p->train[rc].max_batch = search_batch ? max_batch(s, (gen_recompute)rc, 0) : -1;
    }
    gen_spec f32 = *s; /* the CUDA backend stores fp32 (docs/bench.md) */
    f32.precision = PREC_FP32;
    if (plan_one(&f32, s->memory.recompute, 1, &p->cuda, &p->roof) != 0) return -1;
    p->cuda.max_batch = search_batch ? max_batch(&f32, s->memory.recompute, 1) : -1;
    p->max_batch_bf16 = search_batch ? max_batch(&f32, s->memory.recompute, 2) : -1;
    if (plan_one(s, RECOMPUTE_NONE, 0, &p->infer, NULL) != 0) return -1;
    p->infer.max_batch = -1;
    p->roof_peak = rt_device_peak("H100 SXM"), p->roof_bandwidth = rt_device_bandwidth("H100 SXM");
    return 0;
}

/* seconds as "12.3 ms" or, below 0.1 ms, "45.12 us" */
static const char *fmt_time(double sec, char *buf, size_t n) {
    if (sec >= 1e-4) snprintf(buf, n, "%.1f ms", sec * 1e3);
    else snprintf(buf, n, "%.2f us", sec * 1e6);
    return buf;
}
/* The roofline at the plan's device with the given bytes per kind (seconds; each kind's to kind_s) */
static double roof_s(const gen_plan *p, const double *bytes, double *kind_s) {
    return rt_roofline_sum(bytes, p->roof.flops, p->roof_peak, p->roof_bandwidth, kind_s);
}

/* ---------------------------------------------------------------------------------------------- JSON */

static json_object *mem_json(const gen_mem *m) {
    static const char *const names[ARENA_COUNT] = {"frozen_params", "trainable_state", "activations", "inputs"};
    json_object *o = json_object_new_object();
    for (int a = 0; a < ARENA_COUNT; a++) json_object_object_add(o, names[a], json_object_new_int64(m->arena[a]));
    json_object_object_add(o, "activations_lower_bound", json_object_new_int64(m->act_lower_bound));
    json_object_object_add(o, "workspace", json_object_new_int64(m->workspace));
    json_object_object_add(o, "scratch", json_object_new_int64(m->scratch));
    json_object_object_add(o, "peak", json_object_new_int64(m->peak));
    json_object_object_add(o, "fits", json_object_new_boolean(m->fits));
    json_object_object_add(o, "executed_flops", json_object_new_double(m->executed_flops));
    if (m->max_batch >= 0) json_object_object_add(o, "max_batch", json_object_new_int(m->max_batch));
    json_object_object_add(o, "ops", json_object_new_int(m->nops));
    json_object_object_add(o, "tensors", json_object_new_int(m->ntensors));
    return o;
}

json_object *gen_plan_to_json(const gen_spec *s, const gen_plan *p) {
    json_object *r = json_object_new_object();
    json_object_object_add(r, "format", json_object_new_string("avgen-plan"));
    json_object_object_add(r, "version", json_object_new_int(1));
    json_object_object_add(r, "name", json_object_new_string(s->name));
    json_object_object_add(r, "fusion", json_object_new_string(gen_fusion_name(s->fusion)));
    json_object_object_add(r, "precision", json_object_new_string(gen_precision_name(s->precision)));

    json_object *sh = json_object_new_object();
    json_object_object_add(sh, "batch", json_object_new_int(s->train.batch));
    json_object_object_add(sh, "frames", json_object_new_int(s->video.frames));
    json_object_object_add(sh, "pairs", json_object_new_int(s->pairs));
    json_object_object_add(sh, "tokens_visual", json_object_new_int(s->use_v ? s->n_v : 0));
    json_object_object_add(sh, "tokens_audio", json_object_new_int(s->use_a ? s->n_a : 0));
    json_object_object_add(sh, "dim", json_object_new_int(s->backbone.dim));
    json_object_object_add(sh, "depth", json_object_new_int(s->backbone.depth));
    json_object_object_add(sh, "heads", json_object_new_int(s->backbone.heads));
    json_object_object_add(sh, "mlp_dim", json_object_new_int(s->backbone.mlp_dim));
    json_object_object_add(sh, "classes", json_object_new_int(s->head.classes));
    json_object_object_add(r, "shapes", sh);

    json_object *pa = json_object_new_object();
    json_object_object_add(pa, "frozen", json_object_new_int64(p->frozen));
    json_object_object_add(pa, "trainable", json_object_new_int64(p->trainable));
    json_object *gr = json_object_new_object();
    json_object_object_add(gr, "adapters", json_object_new_int64(p->adapters));
    json_object_object_add(gr, "head", json_object_new_int64(p->head));
    json_object_object_add(pa, "trainable_groups", gr);
    json_object_object_add(pa, "adapter_count", json_object_new_int(p->adapter_count));
    json_object_object_add(pa, "per_adapter", json_object_new_int64(p->per_adapter));
    json_object_object_add(pa, "buffers", json_object_new_int64(p->buffers));
    json_object_object_add(r, "params", pa);

    json_object *fl = json_object_new_object();
    for (int ph = 0; ph < PH_COUNT; ph++) {
        json_object *f = json_object_new_object();
        double tot = 0;
        for (int fam = 0; fam < FAM_COUNT; fam++) {
            if (p->flops[ph][fam] == 0) continue;
            json_object_object_add(f, gen_family_name((gen_family)fam), json_object_new_double(p->flops[ph][fam]));
            tot += p->flops[ph][fam];
        }
        json_object_object_add(f, "total", json_object_new_double(tot));
        json_object_object_add(fl, gen_phase_name((gen_phase)ph), f);
    }
    json_object_object_add(fl, "per_step", json_object_new_double(p->step_flops));
    json_object_object_add(fl, "per_pair", json_object_new_double(p->pair_flops));
    json_object_object_add(fl, "visual_image_forward", json_object_new_double(p->visual_image_forward));
    json_object_object_add(fl, "audio_image_forward", json_object_new_double(p->audio_image_forward));
    json_object_object_add(fl, "non_model_per_step", json_object_new_double(p->other_flops));
    json_object_object_add(r, "flops", fl);

    json_object *me = json_object_new_object();
    json_object_object_add(me, "budget", json_object_new_int64(s->memory.budget));
    json_object_object_add(me, "recompute", json_object_new_string(gen_recompute_name(s->memory.recompute)));
    json_object_object_add(me, "fits", json_object_new_boolean(p->train[s->memory.recompute].fits));
    json_object *po = json_object_new_object();
    for (int rc = 0; rc < RECOMPUTE_COUNT; rc++)
        json_object_object_add(po, gen_recompute_name((gen_recompute)rc), mem_json(&p->train[rc]));
    json_object_object_add(me, "train", po);
    json_object_object_add(me, "inference", mem_json(&p->infer));
    /* the CUDA backend of this version, under the selected policy */
    json_object *cu = json_object_new_object();
    json_object_object_add(cu, "policy", json_object_new_string(gen_recompute_name(s->memory.recompute)));
    json_object *f32 = json_object_new_object();
    json_object_object_add(f32, "bn_on_load", json_object_new_int(p->cuda.n_bn));
    json_object_object_add(f32, "fuse_on_load", json_object_new_int(p->cuda.n_lat));
    json_object_object_add(f32, "activations", json_object_new_int64(p->cuda.act_cuda));
    json_object_object_add(f32, "peak", json_object_new_int64(p->cuda.peak_cuda));
    if (p->cuda.max_batch >= 0) json_object_object_add(f32, "max_batch", json_object_new_int(p->cuda.max_batch));
    json_object_object_add(cu, "fp32_activations", f32);
    json_object *b16 = json_object_new_object();
    json_object_object_add(b16, "bf16_tensors", json_object_new_int(p->cuda.n_bf16));
    json_object_object_add(b16, "activations", json_object_new_int64(p->cuda.act_bf16));
    json_object_object_add(b16, "bf16_weights", json_object_new_int64(p->cuda.arena[ARENA_FROZEN] / 2));
    json_object_object_add(b16, "bf16_trainable", json_object_new_int64(p->cuda.arena[ARENA_TRAIN] / 2));
    json_object_object_add(b16, "peak", json_object_new_int64(p->cuda.peak_bf16));
    if (p->max_batch_bf16 >= 0) json_object_object_add(b16, "max_batch", json_object_new_int(p->max_batch_bf16));
    json_object_object_add(cu, "bf16_activations", b16);
    if (p->roof.have) {
        json_object *ro = json_object_new_object(), *kinds = json_object_new_object();
        double ks[AVGEN_OP_KIND_COUNT];
        json_object_object_add(ro, "peak_flops", json_object_new_double(p->roof_peak));
        json_object_object_add(ro, "bandwidth", json_object_new_double(p->roof_bandwidth));
        json_object_object_add(ro, "fp32_activations_ms", json_object_new_double(1e3 * roof_s(p, p->roof.bytes_fp32, NULL)));
        json_object_object_add(ro, "bf16_activations_ms", json_object_new_double(1e3 * roof_s(p, p->roof.bytes_bf16, ks)));
        for (int kd = 0; kd < AVGEN_OP_KIND_COUNT; kd++) {
            if (p->roof.bytes_fp32[kd] == 0 && p->roof.flops[kd] == 0) continue;
            json_object *k = json_object_new_object();
            json_object_object_add(k, "flops", json_object_new_double(p->roof.flops[kd]));
            json_object_object_add(k, "bytes_fp32_activations", json_object_new_double(p->roof.bytes_fp32[kd]));
            json_object_object_add(k, "bytes_bf16_activations", json_object_new_double(p->roof.bytes_bf16[kd]));
            json_object_object_add(k, "bf16_activations_ms", json_object_new_double(1e3 * ks[kd]));
            json_object_object_add(kinds, gen_opkind_name((gen_opkind)kd), k);
        }
        json_object_object_add(ro, "kinds", kinds);
        json_object_object_add(cu, "roofline", ro);
    }
    json_object_object_add(me, "cuda", cu);
    json_object_object_add(r, "memory", me);
    return r;
}

/* --------------------------------------------------------------------------------------------- table */

static const char *commas(int64_t v, char *buf) {
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%lld", (long long)(v < 0 ? -v : v));
    int n = (int)strlen(tmp), j = 0;
    if (v < 0) buf[j++] = '-';
    for (int i = 0; i < n; i++) {
        buf[j++] = tmp[i];
        if ((n - i - 1) % 3 == 0 && i != n - 1) buf[j++] = ',';
    }
    buf[j] = 0;
    return buf;
}

static const char *gib(int64_t b, char *buf) {
    snprintf(buf, 32, "%.2f GiB", (double)b / 1073741824.0);
    return buf;
}

void gen_plan_print(FILE *f, const gen_spec *s, const gen_plan *p) {
    char a[40], b[40], c[40];
    fprintf(f, "%s: %s, %s, B %d x T %d = %d pairs, %d + %d tokens, D %d, depth %d\n\n", s->name,
            gen_fusion_name(s->fusion), gen_precision_name(s->precision), s->train.batch, s->video.frames, s->pairs,
            s->use_v ? s->n_v : 0, s->use_a ? s->n_a : 0, s->backbone.dim, s->backbone.depth);
    fprintf(f, "Parameters\n");
    fprintf(f, "  frozen backbone     %14s\n", commas(p->frozen, a));
    fprintf(f, "  trainable           %14s\n", commas(p->trainable, a));
    fprintf(f, "    adapters          %14s  (%d adapters x %s)\n", commas(p->adapters, a), p->adapter_count,
            commas(p->per_adapter, b));
    fprintf(f, "    head              %14s\n", commas(p->head, a));
    fprintf(f, "  BatchNorm buffers   %14s\n\n", commas(p->buffers, a));

    fprintf(f, "Model FLOPs per step (2 per multiply-add; GFLOP)\n");
    fprintf(f, "  %-12s %12s %12s %12s\n", "family", "forward", "backward", "total");
    double tf = 0, tb = 0;
    for (int fam = 0; fam < FAM_COUNT; fam++) {
        double fw = p->flops[PH_FWD][fam], bw = p->flops[PH_BWD][fam];
        if (fw == 0 && bw == 0) continue;
        fprintf(f, "  %-12s %12.2f %12.2f %12.2f\n", gen_family_name((gen_family)fam), fw / 1e9, bw / 1e9, (fw + bw) / 1e9);
        tf += fw, tb += bw;
    }
    fprintf(f, "  %-12s %12.2f %12.2f %12.2f\n", "total", tf / 1e9, tb / 1e9, (tf + tb) / 1e9);
    fprintf(f, "  per (frame, audio) pair %.2f GFLOP; one visual image forward %.2f GFLOP, one audio image forward "
               "%.2f GFLOP\n", p->pair_flops / 1e9, p->visual_image_forward / 1e9, p->audio_image_forward / 1e9);
    fprintf(f, "  not counted in MFU (norms, softmax, elementwise, optimizer): %.2f GFLOP\n\n", p->other_flops / 1e9);

    fprintf(f, "Memory per recompute policy (training step)  %12s %12s %12s\n", "none", "attention", "block");
    static const char *const rows[ARENA_COUNT] = {"frozen params", "trainable + grads + Adam", "activations (packed)",
                                                  "loader inputs"};
    for (int r = 0; r < ARENA_COUNT; r++)
        fprintf(f, "  %-42s %12s %12s %12s\n", rows[r], gib(p->train[0].arena[r], a), gib(p->train[1].arena[r], b),
                gib(p->train[2].arena[r], c));
    fprintf(f, "  %-42s %12s %12s %12s\n", "activations (lower bound)", gib(p->train[0].act_lower_bound, a),
            gib(p->train[1].act_lower_bound, b), gib(p->train[2].act_lower_bound, c));
    fprintf(f, "  %-42s %12s %12s %12s\n", "GEMM workspace", gib(p->train[0].workspace, a), gib(p->train[1].workspace, b),
            gib(p->train[2].workspace, c));
    fprintf(f, "  %-42s %12s %12s %12s\n", "CUDA op scratch (largest op)", gib(p->train[0].scratch, a),
            gib(p->train[1].scratch, b), gib(p->train[2].scratch, c));
    fprintf(f, "  %-42s %12s %12s %12s\n", "peak", gib(p->train[0].peak, a), gib(p->train[1].peak, b),
            gib(p->train[2].peak, c));
    fprintf(f, "  %-42s %12.2f %12.2f %12.2f\n", "executed GFLOP per step (with recompute)", p->train[0].executed_flops / 1e9,
            p->train[1].executed_flops / 1e9, p->train[2].executed_flops / 1e9);
    char bud[40];
    gen_format_bytes(s->memory.budget, bud, sizeof bud);
    char lbl[64];
    snprintf(lbl, sizeof lbl, "fits the %s budget", bud);
    fprintf(f, "  %-42s %12s %12s %12s\n", lbl, p->train[0].fits ? "yes" : "NO", p->train[1].fits ? "yes" : "NO",
            p->train[2].fits ? "yes" : "NO");
    if (p->train[0].max_batch >= 0)
        fprintf(f, "  %-42s %12d %12d %12d\n", "largest batch B that fits", p->train[0].max_batch, p->train[1].max_batch,
                p->train[2].max_batch);
    fprintf(f, "\nThe CUDA backend of this version (policy %s): it stores activations in fp32 whatever the precision\n"
               "(--precision picks the GEMM arithmetic; docs/bench.md), or some in bf16 with AVGEN_BF16_OPERANDS=1\n",
            gen_recompute_name(s->memory.recompute));
    fprintf(f, "  (its peaks count the loader inputs twice: the next batch goes up to a device copy of them while a step runs)\n");
    fprintf(f, "  fp32 activations: peak %s (%d BatchNorm outputs and %d adapter fuses not stored: applied on load; "
               "activations %s)",
            gib(p->cuda.peak_cuda, a), p->cuda.n_bn, p->cuda.n_lat, gib(p->cuda.act_cuda, b));
    if (p->cuda.max_batch >= 0) fprintf(f, ", largest batch B that fits %d", p->cuda.max_batch);
    fprintf(f, "\n  bf16 activations: peak %s (%d of them bf16: activations %s, bf16 weight copies %s)", gib(p->cuda.peak_bf16, a),
            p->cuda.n_bf16, gib(p->cuda.act_bf16, b), gib(rt_cuda_bf16_copy_bytes(p->cuda.arena), c));
    if (p->max_batch_bf16 >= 0) fprintf(f, ", largest batch B that fits %d", p->max_batch_bf16);
    fprintf(f, "\n");
    if (p->roof.have) {
        double ks[AVGEN_OP_KIND_COUNT];
        const double r32 = roof_s(p, p->roof.bytes_fp32, NULL), r16 = roof_s(p, p->roof.bytes_bf16, ks);
        char t32[32], t16[32];
        fprintf(f, "  roofline at %.2f TB/s and %.0f TFLOP/s (each op kind moving its tensors' bytes once or doing its FLOPs,\n"
                   "  whichever takes longer; no kernel of these ops beats it): fp32 activations %s (MFU at most %.1f%%),\n"
                   "  bf16 activations %s (%.1f%%); its largest kinds with bf16 activations:",
                p->roof_bandwidth / 1e12, p->roof_peak / 1e12, fmt_time(r32, t32, sizeof t32),
                100 * p->step_flops / r32 / p->roof_peak, fmt_time(r16, t16, sizeof t16), 100 * p->step_flops / r16 / p->roof_peak);
        for (int n = 0; n < 6; n++) { /* the six longest, longest first (each taken out of ks once listed) */
            int best = 0;
            for (int kd = 1; kd < AVGEN_OP_KIND_COUNT; kd++)
                if (ks[kd] > ks[best]) best = kd;
            if (ks[best] <= 0) break;
            fprintf(f, "%s %s %s", n ? "," : "", gen_opkind_name((gen_opkind)best), fmt_time(ks[best], t16, sizeof t16));
            ks[best] = -1;
        }
        fprintf(f, "\n");
    }
    fprintf(f, "\nInference (eval-mode forward, B %d): peak %s, activations %s\n", s->train.batch, gib(p->infer.peak, a),
            gib(p->infer.arena[ARENA_ACT], b));
    fprintf(f, "Selected policy: %s (memory.recompute): peak %s of %s: %s\n", gen_recompute_name(s->memory.recompute),
            gib(p->train[s->memory.recompute].peak, a), bud, p->train[s->memory.recompute].fits ? "fits" : "does NOT fit");
}
