/* Emitter implementation. Text is assembled in memory (sb_*), templates get their @@KEY@@ placeholders
 * replaced, and each file is written through a temporary file and a rename, only when its bytes
 * changed. Nothing machine-specific (paths, times) goes into the output. */
#include "emit.h"
#include "rt_cuda.h"
#include "rt_cuda_kernel_list.h"
#include "rt_kernels.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "graph.h"
#include "ir.h"
#include "plan.h"
#include "rt_fs.h"

#define AVGEN_VERSION "0.1.0"

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sb;

static void sb_put(sb *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 4096;
        while (c < b->n + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) { b->oom = 1; return; }
        b->p = q, b->cap = c;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_printf(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sb *b, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) { sb_put(b, tmp, (size_t)n); return; }
    char *big = malloc((size_t)n + 1);
    if (!big) { b->oom = 1; return; }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, big, (size_t)n);
    free(big);
}

typedef struct { const char *key; const char *val; } subst;

/* Template text with every @@KEY@@ replaced; an unknown key is a bug in avgen, reported loudly. */
static int fill(sb *out, const char *tmpl_name, const subst *subs, int nsubs, char *msg, size_t msglen) {
    const char *t = gen_template(tmpl_name);
    if (!t) {
        snprintf(msg, msglen, "internal error: template %s is missing from this avgen build.", tmpl_name);
        return 1;
    }
    for (;;) {
        const char *a = strstr(t, "@@");
        if (!a) { sb_put(out, t, strlen(t)); break; }
        const char *z = strstr(a + 2, "@@");
        if (!z) { sb_put(out, t, strlen(t)); break; }
        sb_put(out, t, (size_t)(a - t));
        int found = 0;
        for (int i = 0; i < nsubs; i++)
            if (strlen(subs[i].key) == (size_t)(z - a - 2) && !strncmp(subs[i].key, a + 2, (size_t)(z - a - 2))) {
                sb_put(out, subs[i].val, strlen(subs[i].val));
                found = 1;
                break;
            }
        if (!found) {
            snprintf(msg, msglen, "internal error: template %s uses an unknown placeholder %.*s.", tmpl_name,
                     (int)(z - a + 2), a);
            return 1;
        }
        t = z + 2;
    }
    return 0;
}

/* ----------------------------------------------------------------------------------------- writing */

static int mkdirs(const char *dir, char *msg, size_t msglen) {
    if (rt_mkdirs(dir) == 0) return 0;
    if (errno == ENOTDIR || errno == EEXIST)
        snprintf(msg, msglen, "%s (or a folder above it) exists and is not a folder; expected an output folder.", dir);
    else
        snprintf(msg, msglen, "cannot create the folder %s (%s).", dir, strerror(errno));
    return 1;
}

static int write_if_changed(const char *dir, const char *name, const sb *b, int *written, char *msg, size_t msglen) {
    char path[2300], tmp[2400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (b->oom) {
        snprintf(msg, msglen, "out of memory while generating %s.", path);
        return 1;
    }
    FILE *f = fopen(path, "rb");
    if (f) {
        int same = 1;
        char buf[65536];
        size_t at = 0, n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
            if (at + n > b->n || memcmp(buf, b->p + at, n)) { same = 0; break; }
            at += n;
        }
        fclose(f);
        if (same && at == b->n) return 0;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    f = fopen(tmp, "wb");
    if (!f) {
        snprintf(msg, msglen, "cannot write %s (%s).", tmp, strerror(errno));
        return 1;
    }
    int ok = fwrite(b->p, 1, b->n, f) == b->n;
    ok &= fflush(f) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(msg, msglen, "cannot write %s (%s).", path, strerror(errno));
        unlink(tmp);
        return 1;
    }
    (*written)++;
    return 0;
}

/* ------------------------------------------------------------------------------------------ tables */

static void c_string(sb *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') sb_put(b, "\\", 1);
        sb_put(b, s, 1);
    }
    sb_put(b, "\"", 1);
}

static void emit_tables(sb *b, const char *prefix, const gen_ir *ir, const gen_mem *m) {
    sb_printf(b, "static const avgen_tensor_desc %s_tensors[%d] = {\n", prefix, ir->nt);
    for (int i = 0; i < ir->nt; i++) {
        const gen_tensor *t = &ir->t[i];
        sb_put(b, "    {", 5);
        c_string(b, t->name);
        sb_printf(b, ", %d, %d, %d, %d, {", (int)t->kind, (int)t->dtype, (int)gen_tensor_arena(t), t->ndim);
        for (int d = 0; d < GEN_MAX_DIMS; d++) sb_printf(b, "%s%lld", d ? ", " : "", (long long)(d < t->ndim ? t->shape[d] : 0));
        sb_printf(b, "}, %lld, %lld, %d, %d, %d, %d},\n", (long long)t->offset, (long long)t->bytes, t->first, t->last,
                  t->param, (int)t->group);
    }
    sb_printf(b, "};\n\nstatic const int32_t %s_refs[%d] = {", prefix, ir->nrefs);
    for (int i = 0; i < ir->nrefs; i++) sb_printf(b, "%s%d", !i ? "\n    " : i % 16 ? ", " : ",\n    ", ir->refs[i]);
    sb_printf(b, "\n};\n\nstatic const avgen_op_desc %s_ops[%d] = {\n", prefix, ir->nops);
    for (int i = 0; i < ir->nops; i++) {
        const gen_op *o = &ir->ops[i];
        sb_put(b, "    {", 5);
        c_string(b, o->name);
        sb_printf(b, ", AVGEN_OP_KIND_%s, %d, %d, %d, %d, %s, %d, %d, %d, %d, %.17g, (float)%.9g},\n", gen_opkind_name(o->kind),
                  (int)o->phase, o->accumulate, o->recompute, o->layer,
                  o->stream == 'v' ? "'v'" : o->stream == 'a' ? "'a'" : "0", o->in_at, o->n_in, o->out_at, o->n_out,
                  o->flops, o->eps);
    }
    sb_printf(b, "};\n\nconst avgen_graph avgen_%s_graph = {%s_tensors, %s_ops, %s_refs, %d, %d, {%lld, %lld, %lld, %lld}};\n\n",
              prefix, prefix, prefix, prefix, ir->nt, ir->nops, (long long)m->arena[0], (long long)m->arena[1],
              (long long)m->arena[2], (long long)m->arena[3]);
}

static void emit_steps(sb *b, const char *prefix, const gen_ir *ir) {
    static const char *const fn[PH_COUNT] = {"forward", "backward", "update"};
    for (int ph = 0; ph < (ir->train ? PH_COUNT : 1); ph++) {
        sb_printf(b, "void avgen_%s_%s(avgen_ctx *ctx) {\n", prefix, fn[ph]);
        int any = 0;
        for (int i = 0; i < ir->nops; i++) {
            const gen_op *o = &ir->ops[i];
            if ((int)o->phase != ph) continue;
            any = 1;
            sb_printf(b, "    /* %s%s: ", o->name, o->recompute ? " (recompute)" : "");
            const int *in = gen_op_in(ir, o), *out = gen_op_out(ir, o);
            for (int k = 0; k < o->n_in && k < 4; k++) sb_printf(b, "%s%s", k ? ", " : "", ir->t[in[k]].name);
            if (o->n_in > 4) sb_printf(b, ", ... (%d inputs)", o->n_in);
            sb_printf(b, " -> ");
            for (int k = 0; k < o->n_out && k < 3; k++) sb_printf(b, "%s%s", k ? ", " : "", ir->t[out[k]].name);
            if (o->n_out > 3) sb_printf(b, ", ... (%d outputs)", o->n_out);
            sb_printf(b, " */\n    AVGEN_OP_%s(ctx, &avgen_%s_graph, %d);\n", gen_opkind_name(o->kind), prefix, i);
        }
        if (!any) sb_printf(b, "    (void)ctx;\n");
        sb_printf(b, "}\n\n");
    }
}

/* ------------------------------------------------------------------------------------------ JSON */

static json_object *graph_json(const gen_ir *ir, const gen_mem *m) {
    json_object *g = json_object_new_object();
    static const char *const an[ARENA_COUNT] = {"frozen_params", "trainable_state", "activations", "inputs"};
    json_object *ar = json_object_new_object();
    for (int a = 0; a < ARENA_COUNT; a++) json_object_object_add(ar, an[a], json_object_new_int64(m->arena[a]));
    json_object_object_add(g, "arenas", ar);
    json_object *ts = json_object_new_array();
    for (int i = 0; i < ir->nt; i++) {
        const gen_tensor *t = &ir->t[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(t->name));
        json_object_object_add(o, "kind", json_object_new_string(gen_tkind_name(t->kind)));
        json_object_object_add(o, "dtype", json_object_new_string(gen_dtype_name(t->dtype)));
        json_object *sh = json_object_new_array();
        for (int d = 0; d < t->ndim; d++) json_object_array_add(sh, json_object_new_int64(t->shape[d]));
        json_object_object_add(o, "shape", sh);
        json_object_object_add(o, "arena", json_object_new_string(an[gen_tensor_arena(t)]));
        json_object_object_add(o, "offset", json_object_new_int64(t->offset));
        json_object_object_add(o, "bytes", json_object_new_int64(t->bytes));
        json_object_object_add(o, "first_op", json_object_new_int(t->first));
        json_object_object_add(o, "last_op", json_object_new_int(t->last));
        json_object_array_add(ts, o);
    }
    json_object_object_add(g, "tensors", ts);
    json_object *os = json_object_new_array();
    for (int i = 0; i < ir->nops; i++) {
        const gen_op *op = &ir->ops[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(op->name));
        json_object_object_add(o, "kind", json_object_new_string(gen_opkind_name(op->kind)));
        json_object_object_add(o, "phase", json_object_new_string(gen_phase_name(op->phase)));
        json_object_object_add(o, "family", json_object_new_string(gen_family_name(op->fam)));
        json_object_object_add(o, "layer", json_object_new_int(op->layer));
        char st[2] = {op->stream, 0};
        json_object_object_add(o, "stream", op->stream ? json_object_new_string(st) : NULL);
        json_object *in = json_object_new_array(), *out = json_object_new_array();
        for (int k = 0; k < op->n_in; k++) json_object_array_add(in, json_object_new_int(gen_op_in(ir, op)[k]));
        for (int k = 0; k < op->n_out; k++) json_object_array_add(out, json_object_new_int(gen_op_out(ir, op)[k]));
        json_object_object_add(o, "inputs", in);
        json_object_object_add(o, "outputs", out);
        if (op->accumulate) json_object_object_add(o, "accumulate", json_object_new_boolean(1));
        if (op->recompute) json_object_object_add(o, "recompute", json_object_new_boolean(1));
        json_object_object_add(o, "flops", json_object_new_double(op->flops));
        json_object_object_add(o, "bytes", json_object_new_double(op->bytes));
        if (op->gemm_m) {
            json_object *gm = json_object_new_object();
            json_object_object_add(gm, "m", json_object_new_int64(op->gemm_m));
            json_object_object_add(gm, "n", json_object_new_int64(op->gemm_n));
            json_object_object_add(gm, "k", json_object_new_int64(op->gemm_k));
            json_object_object_add(gm, "batch", json_object_new_int64(op->gemm_batch));
            json_object_object_add(o, "gemm", gm);
        }
        json_object_array_add(os, o);
    }
    json_object_object_add(g, "ops", os);
    return g;
}

/* ---------------------------------------------------------------------------------------------- main */

/* kernels_src.c: kernels.cu with the kernel library inlined (rt_kernels_inline), as one C string, one
 * source line a literal: what the program compiles with NVRTC at run time (--kernels nvrtc). */
static int emit_kernels_src(const char *dir, const char *name, const char *kernels_cu, const char *header, int *written,
                            char *msg, size_t msglen) {
    char *src = kernels_cu && header ? rt_kernels_inline(kernels_cu, header) : NULL;
    if (!src) {
        snprintf(msg, msglen, "kernels.cu of %s does not include rt_cuda_kernels.cuh (a bug in avgen)", name);
        return 1;
    }
    sb b = {0};
    sb_printf(&b, "/* kernels_src.c: kernels.cu of %s with rt_cuda_kernels.cuh inlined, as text: the source %s-train\n"
                  " * compiles with NVRTC at run time (--kernels nvrtc; avgen jit on this folder builds the same).\n"
                  " * Generated by avgen %s from the kernels.cu and rt_cuda_kernels.cuh beside it. Edit none of the\n"
                  " * three: the program embeds this text, avgen jit on this folder reads the other two. */\n"
                  "#include \"avgen_graph.h\"\n\n"
                  "#if defined(__GNUC__)\n#pragma GCC diagnostic ignored \"-Woverlength-strings\"\n#endif\n"
                  "const char *avgen_kernels_source(void);\n"
                  "const avgen_kernel_table *avgen_kernels_table(void);\n\n"
                  "/* This program's own nvcc build of kernels.cu: kernels_nvcc.cu, compiled in with AVGEN_NVCC_KERNELS\n"
                  " * defined (avgen_add_model(... NVCC_KERNELS)); without it the runtime's copy runs. */\n"
                  "#ifdef AVGEN_NVCC_KERNELS\n"
                  "extern const avgen_kernel_table avgen_nvcc_kernels;\n"
                  "const avgen_kernel_table *avgen_kernels_table(void) { return &avgen_nvcc_kernels; }\n"
                  "#else\n"
                  "const avgen_kernel_table *avgen_kernels_table(void) { return 0; }\n"
                  "#endif\n\n"
                  "static const char k_source[] =\n",
              name, name, AVGEN_VERSION);
    for (const char *l = src; *l;) {
        const char *e = strchr(l, '\n');
        const size_t n = e ? (size_t)(e - l) + 1 : strlen(l);
        sb_put(&b, "    \"", 5);
        for (size_t i = 0; i < n; i++) {
            const unsigned char c = (unsigned char)l[i];
            if (c == '\n') sb_put(&b, "\\n", 2);
            else if (c == '\\' || c == '"') sb_printf(&b, "\\%c", c);
            else if (c == '?') sb_put(&b, "\\?", 2); /* no trigraphs */
            else if (c < 32 || c > 126) sb_printf(&b, "\\%03o", c);
            else sb_put(&b, (const char *)&c, 1);
        }
        sb_put(&b, "\"\n", 2);
        l += n;
    }
    sb_printf(&b, "    ;\n\nconst char *avgen_kernels_source(void) { return k_source; }\n");
    free(src);
    const int rc = write_if_changed(dir, "kernels_src.c", &b, written, msg, msglen);
    free(b.p);
    return rc;
}

/* kernels_nvcc.cu: kernels.cu compiled by nvcc into the program (the offline build), in a namespace of its own
 * so that its kernels are not the runtime's, and the table of every kernel an NVRTC build of the same
 * kernels.cu requests, in that order, under the same names (rt_kernels_entry_expr). */
static int emit_kernels_nvcc(const char *dir, const char *name, const char *kernels_cu, int *written, char *msg, size_t msglen) {
    char why[300];
    int t[AVGEN_CUDA_MAX_SHAPES][3];
    const int ns = kernels_cu ? rt_kernels_shapes(kernels_cu, t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) : -1;
    if (ns < 0) {
        snprintf(msg, msglen, "kernels.cu of %s: %s (a bug in avgen)", name, kernels_cu ? why : "not written");
        return 1;
    }
    sb b = {0};
    sb_printf(&b, "// kernels_nvcc.cu: the kernels of %s for an offline nvcc build into %s-train,\n"
                  "// generated by avgen %s. kernels.cu compiled by nvcc (a fatbin for the architectures the build names;\n"
                  "// avgen's CMake: sm_80 and sm_90), which --kernels nvcc (the default) then runs instead of the avgen\n"
                  "// runtime's copy, the fused attention with this configuration's shapes as literals. Built when the program\n"
                  "// is added with avgen_add_model(... NVCC_KERNELS) (AVGEN_NVCC_KERNELS; docs/kernels.md). The table lists the\n"
                  "// kernels in the order, and under the names, that an NVRTC build of kernels.cu (--kernels nvrtc) requests\n"
                  "// them; the runtime checks both at start.\n"
                  "#include \"avgen_graph.h\"\n\n"
                  "namespace avgen_nvcc {\n#include \"kernels.cu\"\n}  // namespace avgen_nvcc\n\n"
                  "static const avgen_kernel_fn k_fns[] = {\n",
              name, name, AVGEN_VERSION);
    for (int i = 0; i < rt_kernels_count() + ns * AVGEN_CUDA_SHAPE_KERNEL_COUNT; i++) {
        char e[RT_KERNELS_EXPR_MAX];
        rt_kernels_entry_expr(i, (const int (*)[3])t, e, sizeof e);
        sb_printf(&b, "    {\"%s\", (const void *)&avgen_nvcc::%s, avgen_kernel_sig(&avgen_nvcc::%s)},\n", e, e + 1, e + 1);
    }
    sb_printf(&b, "};\nstatic const int32_t k_shapes[][3] = {");
    for (int i = 0; i < ns; i++) sb_printf(&b, "%s{%d, %d, %d}", i ? ", " : "", t[i][0], t[i][1], t[i][2]);
    if (!ns) sb_printf(&b, "{0, 0, 0}");
    sb_printf(&b, "};\n\nextern \"C\" const avgen_kernel_table avgen_nvcc_kernels = {\"%s/kernels.cu\", %d, %d, k_shapes, k_fns};\n",
              name, rt_kernels_count(), ns);
    const int rc = write_if_changed(dir, "kernels_nvcc.cu", &b, written, msg, msglen);
    free(b.p);
    return rc;
}

int gen_emit(const gen_spec *s, const char *dir, int force, char *msg, size_t msglen) {
    gen_plan plan;
    if (gen_make_plan(s, 0, &plan) != 0) {
        snprintf(msg, msglen, "out of memory while planning %s.", s->name);
        return 1;
    }
    const gen_mem *sel = &plan.train[s->memory.recompute];
    if (!sel->fits && !force) {
        char pk[40], bud[40];
        gen_format_bytes(sel->peak, pk, sizeof pk);
        gen_format_bytes(s->memory.budget, bud, sizeof bud);
        snprintf(msg, msglen, "%s: the planned peak of %s (recompute %s) exceeds memory.budget = %s; lower "
                              "train.batch, choose memory.recompute \"block\", raise the budget, or pass --force.",
                 s->name, pk, gen_recompute_name(s->memory.recompute), bud);
        return 2;
    }
    gen_ir tr, inf;
    gen_mem mtr, minf;
    if (gen_lower(s, s->memory.recompute, 1, &tr) != 0) {
        snprintf(msg, msglen, "out of memory while lowering %s.", s->name);
        return 1;
    }
    if (gen_lower(s, RECOMPUTE_NONE, 0, &inf) != 0) {
        gen_ir_free(&tr);
        snprintf(msg, msglen, "out of memory while lowering %s.", s->name);
        return 1;
    }
    gen_pack(&tr, &mtr);
    gen_pack(&inf, &minf);

    char *canon = gen_spec_to_json(s);
    char hash[17];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)gen_hash64(canon, strlen(canon), 0));
    char name_id[160];
    snprintf(name_id, sizeof name_id, "%s", s->name);
    for (char *c = name_id; *c; c++)
        if (*c == '-' || *c == '.') *c = '_';

    sb shapes = {0}, arenas = {0}, opnames = {0}, missing = {0}, cpu_ops = {0}, tables = {0}, steps = {0}, describe = {0};
    const int D = s->backbone.dim;
    const int dr = s->fusion == FUSION_LAVISH ? D / s->adapter.reduction : 0;
    uint64_t mask = 0;
    for (int l = 0; l < s->backbone.depth; l++)
        if (s->adapter.on_layer[l]) mask |= 1ULL << l;
    /* First the shapes the kernels are made for: they alone go into kernels.cu too (not the training or data
     * settings, so that a sweep over those shares one NVRTC build: the kernel cache's key is its text). */
    sb kshapes = {0};
#define KSHAPE(n, v) sb_printf(&kshapes, "#define AVGEN_%-18s %lld\n", n, (long long)(v))
    KSHAPE("B", s->train.batch);
    KSHAPE("T", s->video.frames);
    KSHAPE("P", s->pairs);
    KSHAPE("S", s->backbone.image_size);
    KSHAPE("PATCH", s->backbone.patch_size);
    KSHAPE("D", D);
    KSHAPE("DEPTH", s->backbone.depth);
    KSHAPE("H", s->backbone.heads);
    KSHAPE("HEAD_DIM", s->head_dim);
    KSHAPE("F", s->backbone.mlp_dim);
    KSHAPE("NV", s->use_v ? s->n_v : 0); /* 0 for a stream not used, as avgen_consts and plan.json */
    KSHAPE("NA", s->use_a ? s->n_a : 0);
    KSHAPE("A_ROWS", s->audio.target_frames);
    KSHAPE("MEL", s->audio.mel_bins);
    KSHAPE("USE_V", s->use_v);
    KSHAPE("USE_A", s->use_a);
    KSHAPE("LAVISH", s->fusion == FUSION_LAVISH);
    KSHAPE("M", s->adapter.latent_tokens);
    KSHAPE("DR", dr);
    KSHAPE("G", s->adapter.groups);
    KSHAPE("BATCHNORM", s->adapter.batchnorm);
    sb_printf(&kshapes, "#define AVGEN_%-18s 0x%016llxULL\n", "ADAPTER_LAYERS", (unsigned long long)mask);
    KSHAPE("ADAPT_ATTN", s->adapter.attn);
    KSHAPE("ADAPT_MLP", s->adapter.mlp);
    KSHAPE("HIDDEN", s->head.hidden);
    KSHAPE("C", s->head.classes);
    KSHAPE("W", (s->use_v + s->use_a) * D);
    KSHAPE("BF16", s->precision == PREC_BF16);
#undef KSHAPE
    if (kshapes.p) sb_put(&shapes, kshapes.p, kshapes.n);
#define SHAPE(n, v) sb_printf(&shapes, "#define AVGEN_%-18s %lld\n", n, (long long)(v))
#define SHAPEF(n, v) sb_printf(&shapes, "#define AVGEN_%-18s %.17g\n", n, (double)(v))
    SHAPE("FBANK_ROWS", s->fbank_frames);
    SHAPE("SAMPLE_RATE", s->audio.sample_rate);
    SHAPE("FPS", s->video.fps);
    SHAPE("FRAME_STRIDE", s->video.stride);
    SHAPEF("LN_EPS", s->backbone.ln_eps);
    SHAPEF("MEAN_R", s->video.mean[0]);
    SHAPEF("MEAN_G", s->video.mean[1]);
    SHAPEF("MEAN_B", s->video.mean[2]);
    SHAPEF("STD_R", s->video.std[0]);
    SHAPEF("STD_G", s->video.std[1]);
    SHAPEF("STD_B", s->video.std[2]);
    SHAPEF("AUDIO_NORM_MEAN", s->audio.norm_mean);
    SHAPEF("AUDIO_NORM_STD", s->audio.norm_std);
    SHAPEF("LR", s->train.lr);
    SHAPEF("HEAD_LR", s->train.head_lr);
    SHAPEF("WEIGHT_DECAY", s->train.weight_decay);
    SHAPEF("BETA1", s->train.beta1);
    SHAPEF("BETA2", s->train.beta2);
    SHAPEF("ADAM_EPS", s->train.eps);
    SHAPE("ADAMW", s->train.optimizer == OPT_ADAMW);
    SHAPE("GRAD_ACCUM", s->train.grad_accum);
    SHAPE("SEED", s->train.seed);
    SHAPE("EPOCHS", s->train.epochs);
    SHAPE("WARMUP", s->train.warmup);
    SHAPE("SCHEDULE", s->train.schedule); /* 0 constant, 1 cosine, 2 step */
    SHAPE("STEP_EVERY", s->train.step_every);
    SHAPEF("STEP_GAMMA", s->train.step_gamma);
    SHAPEF("WINDOW_SECONDS", s->audio.window_seconds);
    SHAPE("TRAINABLE_PARAMS", plan.trainable);
    sb_printf(&shapes, "#define AVGEN_%-18s \"%016llx\"\n", "RESUME_HASH", (unsigned long long)gen_resume_hash(s));
#undef SHAPE
#undef SHAPEF
    static const char *const an[ARENA_COUNT] = {"FROZEN", "TRAIN", "ACT", "INPUT"};
    for (int a = 0; a < ARENA_COUNT; a++)
        sb_printf(&arenas, "#define AVGEN_TRAIN_ARENA_%-6s %lldLL\n", an[a], (long long)mtr.arena[a]);
    for (int a = 0; a < ARENA_COUNT; a++)
        sb_printf(&arenas, "#define AVGEN_INFER_ARENA_%-6s %lldLL\n", an[a], (long long)minf.arena[a]);
    sb_printf(&arenas, "#define AVGEN_WORKSPACE_BYTES   %lldLL\n", (long long)mtr.workspace);
    sb_printf(&arenas, "#define AVGEN_TRAIN_PEAK_BYTES  %lldLL\n", (long long)mtr.peak);
    sb_printf(&arenas, "#define AVGEN_INFER_PEAK_BYTES  %lldLL\n", (long long)minf.peak);
    sb_printf(&arenas, "#define AVGEN_RECOMPUTE         \"%s\"", gen_recompute_name(s->memory.recompute));
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        sb_printf(&opnames, "%s\"%s\"", k ? ", " : "", gen_opkind_name((gen_opkind)k));
        sb_printf(&missing, "#define AVGEN_OP_%s(ctx, g, op) avgen_op_missing(ctx, g, op)\n", gen_opkind_name((gen_opkind)k));
        sb_printf(&cpu_ops, "#define AVGEN_OP_%s(ctx, g, op) rt_op(ctx, g, op)\n", gen_opkind_name((gen_opkind)k));
    }
    if (missing.n) missing.p[--missing.n] = 0; /* the template supplies the last newline */
    if (cpu_ops.n) cpu_ops.p[--cpu_ops.n] = 0;
    avgen_consts k;
    gen_consts(s, &k);
    /* after the library: the fused attention's instances with this configuration's shapes (rt_cuda_shape_lines) */
    char klines[400], kinst[600] = "";
    if (rt_cuda_shape_lines(&k, klines, sizeof klines) > 0)
        snprintf(kinst, sizeof kinst, "\n// The fused attention with this configuration's shapes as literals (head width, tokens, heads).\n%s",
                 klines);
    sb_printf(&tables,
              "const avgen_consts avgen_model_consts = {%d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, {(float)%.9g, (float)%.9g, (float)%.9g}, "
              "{(float)%.9g, (float)%.9g, (float)%.9g}, %.17g, %.17g, %.17g, %.17g, %.17g, %.17g, %d};\n\n",
              k.batch, k.frames, k.image, k.patch, k.dim, k.heads, k.tokens_v, k.tokens_a, k.audio_rows, k.mel_bins,
              k.classes, k.mean[0], k.mean[1], k.mean[2], k.std[0], k.std[1], k.std[2], k.lr, k.head_lr, k.weight_decay,
              k.beta1, k.beta2, k.adam_eps, k.adamw);
    emit_tables(&tables, "train", &tr, &mtr);
    emit_tables(&tables, "infer", &inf, &minf);
    emit_steps(&steps, "train", &tr);
    emit_steps(&steps, "infer", &inf);
    sb_printf(&describe,
              "    fprintf(out, \"  fusion %%s, %%s, B %%d x T %%d = %%d pairs, tokens %%d visual + %%d audio, D %%d, depth %%d, "
              "heads %%d, MLP %%d\\n\", \"%s\", AVGEN_BF16 ? \"bf16\" : \"fp32\", AVGEN_B, AVGEN_T, AVGEN_P, AVGEN_NV, "
              "AVGEN_NA, AVGEN_D, AVGEN_DEPTH, AVGEN_H, AVGEN_F);\n"
              "    fprintf(out, \"  recompute %%s, planned peak %%lld bytes (training), %%lld bytes (inference)\\n\", "
              "AVGEN_RECOMPUTE, (long long)AVGEN_TRAIN_PEAK_BYTES, (long long)AVGEN_INFER_PEAK_BYTES);",
              gen_fusion_name(s->fusion));

    const subst subs[] = {
        {"NAME", s->name}, {"NAME_ID", name_id}, {"VERSION", AVGEN_VERSION}, {"HASH", hash},
        {"SHAPES", shapes.p ? shapes.p : ""}, {"KERNEL_SHAPES", kshapes.p ? kshapes.p : ""}, {"KERNEL_INSTANCES", kinst}, {"ARENAS", arenas.p ? arenas.p : ""},
        {"OPKIND_NAMES", opnames.p ? opnames.p : ""}, {"MISSING", missing.p ? missing.p : ""},
        {"CPU_OPS", cpu_ops.p ? cpu_ops.p : ""},
        {"TABLES", tables.p ? tables.p : ""}, {"STEPS", steps.p ? steps.p : ""},
        {"DESCRIBE", describe.p ? describe.p : ""}, {"RECOMPUTE", gen_recompute_name(s->memory.recompute)},
    };
    const int ns = (int)(sizeof subs / sizeof subs[0]);
    static const char *const files[][2] = {{"model.h", "model.h.tmpl"},           {"model.c", "model.c.tmpl"},
                                           {"kernels.cu", "kernels.cu.tmpl"},     {"main_train.c", "main_train.c.tmpl"},
                                           {"main_infer.c", "main_infer.c.tmpl"}, {"CMakeLists.txt", "CMakeLists.txt.tmpl"},
                                           {"avgen_graph.h", "avgen_graph.h"},    {"rt_cuda_kernels.cuh", "rt_cuda_kernels.cuh"}};
    int rc = mkdirs(dir, msg, msglen), written = 0;
    char *kcu = NULL, *khdr = NULL; /* the two texts kernels_src.c inlines, exactly as written */
    for (size_t i = 0; !rc && i < sizeof files / sizeof files[0]; i++) {
        sb out = {0};
        rc = fill(&out, files[i][1], subs, ns, msg, msglen);
        if (!rc) rc = write_if_changed(dir, files[i][0], &out, &written, msg, msglen);
        if (!rc && !strcmp(files[i][0], "kernels.cu")) kcu = out.p, out.p = NULL;
        else if (!rc && !strcmp(files[i][0], "rt_cuda_kernels.cuh")) khdr = out.p, out.p = NULL;
        free(out.p);
    }
    if (!rc) rc = emit_kernels_src(dir, s->name, kcu, khdr, &written, msg, msglen);
    if (!rc) rc = emit_kernels_nvcc(dir, s->name, kcu, &written, msg, msglen);
    free(kcu), free(khdr);
    if (!rc) {
        json_object *pj = json_object_new_object();
        json_object_object_add(pj, "format", json_object_new_string("avgen-build"));
        json_object_object_add(pj, "version", json_object_new_int(1));
        json_object_object_add(pj, "avgen", json_object_new_string(AVGEN_VERSION));
        json_object_object_add(pj, "description_hash", json_object_new_string(hash));
        json_object_object_add(pj, "description", gen_spec_to_json_object(s));
        json_object_object_add(pj, "plan", gen_plan_to_json(s, &plan));
        json_object_object_add(pj, "train", graph_json(&tr, &mtr));
        json_object_object_add(pj, "inference", graph_json(&inf, &minf));
        sb out = {0};
        const char *txt = json_object_to_json_string_ext(pj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                 JSON_C_TO_STRING_NOSLASHESCAPE);
        sb_put(&out, txt, strlen(txt));
        sb_put(&out, "\n", 1);
        rc = write_if_changed(dir, "plan.json", &out, &written, msg, msglen);
        free(out.p);
        json_object_put(pj);
    }
    if (!rc)
        snprintf(msg, msglen, "%d of %d files changed; %d training ops, %d inference ops, %d tensors", written,
                 (int)(sizeof files / sizeof files[0]) + 3 /* kernels_src.c, kernels_nvcc.cu, plan.json */, tr.nops, inf.nops, tr.nt);
    free(canon);
    free(shapes.p), free(kshapes.p), free(arenas.p), free(opnames.p), free(missing.p), free(cpu_ops.p), free(tables.p),
        free(steps.p), free(describe.p);
    gen_ir_free(&tr);
    gen_ir_free(&inf);
    return rc;
}
