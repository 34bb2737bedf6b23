/* rt_model.c: host arenas for a graph, parameter loading and initialisation (MODEL.md section 6), inputs,
 * the op interpreter and step dumps. Initialisation draws each tensor from its own stream, seeded by the
 * configuration's seed and the tensor's name, so a tensor's initial value does not depend on which other
 * tensors exist or in which order they are listed. */
#include "rt_model.h"
#include "rt_par.h"
#include "rt_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int rt_ctx_init(avgen_ctx *c, const avgen_graph *g, const avgen_consts *k, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->g = g, c->k = k;
    c->lr_scale = 1, c->grad_scale = 1;
    if (!rt_par_threads(err, errlen)) return 2; /* a bad AVGEN_CPU_THREADS */
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++) {
        size_t n = (size_t)g->arena_bytes[a];
        if (a == AVGEN_ARENA_ACT) {
            /* Pages taken as they are first written: the CUDA backend keeps its activations on the device and
             * writes a few tensors here (logits, loss), so a GPU-sized plan does not need as much host memory.
             * The CPU backend checks that the whole arena fits (rt_host_fits) before it runs. (With
             * vm.overcommit_memory=2 the kernel ignores MAP_NORESERVE: the mapping is then refused as calloc was.) */
            void *m = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
            c->arena[a] = m == MAP_FAILED ? NULL : (unsigned char *)m;
        } else {
            c->arena[a] = calloc(n ? n : 1, 1);
        }
        if (!c->arena[a]) {
            snprintf(err, errlen, "cannot allocate %.2f GiB of host memory for the %s arena", (double)n / 1073741824.0,
                     a == AVGEN_ARENA_ACT ? "activation" : a == AVGEN_ARENA_FROZEN ? "frozen weight" : "parameter");
            rt_ctx_free(c);
            return 1;
        }
    }
    return 0;
}

void rt_ctx_free(avgen_ctx *c) {
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++) {
        if (a == AVGEN_ARENA_ACT && c->arena[a]) munmap(c->arena[a], c->g->arena_bytes[a] ? (size_t)c->g->arena_bytes[a] : 1);
        else free(c->arena[a]);
        c->arena[a] = NULL;
    }
    free(c->frames_f32);
    c->frames_f32 = NULL;
}

int rt_host_fits(const avgen_ctx *c, const avgen_ctx *also, char *err, size_t errlen) {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const double have = pages > 0 && page > 0 ? (double)pages * page : 0;
    double need = 0;
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++)
        need += (double)c->g->arena_bytes[a] + (also ? (double)also->g->arena_bytes[a] : 0);
    if (have > 0 && need > have) {
        snprintf(err, errlen,
                 "the CPU backend needs %.2f GiB of host memory for this configuration's tensors, more than this "
                 "machine's %.2f GiB (a smaller train.batch or video.frames, or memory.recompute, needs less)",
                 need / 1073741824.0, have / 1073741824.0);
        return 1;
    }
    return 0;
}

void *rt_ptr(const avgen_ctx *c, int t) {
    const avgen_tensor_desc *d = &c->g->tensors[t];
    return c->arena[d->arena] + d->offset;
}

int rt_find(const avgen_graph *g, const char *name) {
    for (int i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name)) return i;
    return -1;
}

/* ------------------------------------------------------------------------------------ initialisation */

typedef struct { uint64_t s; } rng_t;

static uint64_t next64(rng_t *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double uniform(rng_t *r) { return (double)(next64(r) >> 11) * 0x1.0p-53; }
static double normal(rng_t *r) {
    double u1 = uniform(r), u2 = uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void rt_random_inputs(avgen_ctx *c, uint64_t seed) {
    rng_t r = {seed * 0x2545f4914f6cdd1dULL + 1};
    int t = rt_find(c->g, "frames");
    if (t >= 0) {
        unsigned char *p = rt_ptr(c, t);
        for (int64_t i = 0; i < c->g->tensors[t].bytes; i++) p[i] = (unsigned char)(next64(&r) >> 56);
    }
    if ((t = rt_find(c->g, "audio")) >= 0) {
        float *p = rt_ptr(c, t);
        for (int64_t i = 0; i < c->g->tensors[t].bytes / 4; i++) p[i] = (float)normal(&r);
    }
    if ((t = rt_find(c->g, "labels")) >= 0) {
        int64_t *p = rt_ptr(c, t);
        for (int b = 0; b < c->k->batch; b++) p[b] = (int64_t)(next64(&r) % (uint64_t)c->k->classes);
    }
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static void init_tensor(const avgen_tensor_desc *t, float *p, uint64_t seed) {
    rng_t r = {seed};
    for (const char *c = t->name; *c; c++) r.s = (r.s ^ (unsigned char)*c) * 1099511628211ULL;
    const size_t n = (size_t)(t->bytes / 4);
    const char *nm = t->name;
    int is_norm = strstr(nm, "layernorm") || strstr(nm, "ln_before") || strstr(nm, "ln_post") || strstr(nm, ".bn1.") ||
                  strstr(nm, ".bn2.");
    if (ends_with(nm, "running_var") || (is_norm && ends_with(nm, ".weight"))) {
        for (size_t i = 0; i < n; i++) p[i] = 1.0f;
    } else if (ends_with(nm, "running_mean") || ends_with(nm, ".gate") || ends_with(nm, ".gate_av") ||
               (is_norm && ends_with(nm, ".bias")) || (t->group == AVGEN_GROUP_BACKBONE && ends_with(nm, ".bias"))) {
        for (size_t i = 0; i < n; i++) p[i] = 0.0f;
    } else if (ends_with(nm, "my_tokens")) {
        for (size_t i = 0; i < n; i++) p[i] = (float)uniform(&r);
    } else if (ends_with(nm, "down_sampler.weight") || ends_with(nm, "up_sampler.weight")) {
        double b = 1.0 / sqrt((double)t->shape[1]); /* input channels per group */
        for (size_t i = 0; i < n; i++) p[i] = (float)((2 * uniform(&r) - 1) * b);
    } else if (t->group == AVGEN_GROUP_HEAD && t->ndim == 2) {
        /* Linear weights U(-1/sqrt(in), 1/sqrt(in)); the biases get theirs in rt_init_params */
        double b = 1.0 / sqrt((double)t->shape[1]);
        for (size_t i = 0; i < n; i++) p[i] = (float)((2 * uniform(&r) - 1) * b);
    } else if (t->group == AVGEN_GROUP_HEAD) {
        for (size_t i = 0; i < n; i++) p[i] = 0.0f;
    } else {
        /* backbone Linear and conv weights, cls_token, position embeddings: N(0, 0.02) truncated at 2 std */
        for (size_t i = 0; i < n; i++) {
            double v;
            do v = normal(&r);
            while (fabs(v) > 2.0);
            p[i] = (float)(0.02 * v);
        }
    }
}

static const char *shape_str(const int64_t *sh, int n, char *buf, size_t len) {
    buf[0] = 0;
    for (int i = 0; i < n; i++) snprintf(buf + strlen(buf), len - strlen(buf), "%s%lld", i ? "," : "", (long long)sh[i]);
    return buf;
}

typedef struct {
    avgen_ctx *c;
    const int *idx;
    uint64_t seed;
} init_args;

/* tensors idx[lo..hi) initialised (each from its own stream: the same values whichever thread draws them) */
static void init_range(void *p, long lo, long hi) {
    const init_args *a = p;
    for (long j = lo; j < hi; j++) {
        const avgen_tensor_desc *t = &a->c->g->tensors[a->idx[j]];
        void *dst = rt_ptr(a->c, a->idx[j]);
        if (t->dtype == AVGEN_DT_I64) memset(dst, 0, (size_t)t->bytes);
        else init_tensor(t, dst, a->seed);
    }
}

int rt_check_values(const char *what, const char *name, const float *v, int64_t n, char *err, size_t errlen) {
    const size_t nl = strlen(name);
    /* variances (BatchNorm's running_var; Adam's second moment, adam_v.NAME) are squares */
    const int square = (nl >= 11 && !strcmp(name + nl - 11, "running_var")) || !strncmp(name, "adam_v.", 7);
    for (int64_t e = 0; e < n; e++) {
        if (!isfinite(v[e])) {
            snprintf(err, errlen, "%s %s holds a non-finite value (%g at element %lld); expected finite numbers", what, name,
                     (double)v[e], (long long)e);
            return 2;
        }
        if (square && v[e] < 0) {
            snprintf(err, errlen, "%s %s holds a negative variance (%g at element %lld)", what, name, (double)v[e],
                     (long long)e);
            return 2;
        }
    }
    return 0;
}

int rt_init_params(avgen_ctx *c, const st_file *from, uint64_t seed, int *n_loaded, int *n_init, char *err,
                   size_t errlen) {
    const avgen_graph *g = c->g;
    int loaded = 0, inited = 0;
    int *idx = malloc(sizeof(int) * (size_t)(g->n_tensors + 1)); /* the tensors to initialise */
    if (!idx) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    for (int i = 0; i < g->n_tensors; i++) {
        const avgen_tensor_desc *t = &g->tensors[i];
        if (t->kind != AVGEN_T_FROZEN && t->kind != AVGEN_T_TRAINABLE && t->kind != AVGEN_T_BUFFER) continue;
        const st_tensor *s = from ? st_find_any_prefix(from, t->name) : NULL;
        void *dst = rt_ptr(c, i);
        if (!s) {
            idx[inited++] = i;
            continue;
        }
        int same = s->ndim == t->ndim;
        for (int d = 0; same && d < t->ndim; d++) same = s->shape[d] == t->shape[d];
        if (!same) {
            char want[96], got[96];
            snprintf(err, errlen, "parameter %s has shape [%s] in the file; expected [%s] for this configuration", t->name,
                     shape_str(s->shape, s->ndim, got, sizeof got), shape_str(t->shape, t->ndim, want, sizeof want));
            free(idx);
            return 2;
        }
        if (t->dtype == AVGEN_DT_I64) {
            if (s->dtype != ST_I64) {
                snprintf(err, errlen, "buffer %s is %s in the file; expected I64", t->name, st_dtype_name(s->dtype));
                free(idx);
                return 2;
            }
            memcpy(dst, s->data, (size_t)s->nbytes);
        } else if (st_to_f32(s, dst) != 0) {
            snprintf(err, errlen, "parameter %s is %s in the file; expected a floating-point tensor", t->name,
                     st_dtype_name(s->dtype));
            free(idx);
            return 2;
        } else if (rt_check_values("parameter", t->name, dst, t->bytes / 4, err, errlen)) {
            free(idx);
            return 2;
        }
        loaded++;
    }
    if (from && loaded == 0) {
        /* a file of parameters that names none of this configuration's: another model's, or not parameters */
        const st_tensor *any = st_at(from, 0);
        snprintf(err, errlen, "the parameter file holds none of this configuration's %d parameters and buffers (its "
                 "first tensor: %s; expected names such as %s)", inited, any ? any->name : "none",
                 inited ? g->tensors[idx[0]].name : "?");
        free(idx);
        return 2;
    }
    init_args ia = {c, idx, seed};
    rt_par_for(rt_par_count(), inited, 1, init_range, &ia);
    free(idx);
    /* Head biases: U(-1/sqrt(in), 1/sqrt(in)) with the fan-in of their weight (init_tensor left them 0). */
    for (int i = 0; i < g->n_tensors; i++) {
        const avgen_tensor_desc *t = &g->tensors[i];
        if (t->kind != AVGEN_T_TRAINABLE || t->group != AVGEN_GROUP_HEAD || t->ndim != 1) continue;
        if (from && st_find(from, t->name)) continue;
        char wn[160];
        snprintf(wn, sizeof wn, "%.*sweight", (int)(strlen(t->name) - 4), t->name);
        int w = rt_find(g, wn);
        if (w < 0) continue;
        rng_t r = {seed ^ 0x5bd1e995u};
        for (const char *ch = t->name; *ch; ch++) r.s = (r.s ^ (unsigned char)*ch) * 1099511628211ULL;
        double b = 1.0 / sqrt((double)g->tensors[w].shape[1]);
        float *p = rt_ptr(c, i);
        for (int64_t e = 0; e < t->shape[0]; e++) p[e] = (float)((2 * uniform(&r) - 1) * b);
    }
    if (n_loaded) *n_loaded = loaded;
    if (n_init) *n_init = inited;
    return 0;
}

/* ---------------------------------------------------------------------------------------------- inputs */

static int load_one(avgen_ctx *c, const st_file *in, const char *name, int expect_ndim, const int64_t *shape,
                    int required, char *err, size_t errlen) {
    int t = rt_find(c->g, name);
    if (t < 0) return 0; /* this configuration does not use it */
    const avgen_tensor_desc *d = &c->g->tensors[t];
    const st_tensor *s = st_find(in, name);
    if (!s) {
        if (!required) return 0;
        snprintf(err, errlen, "the inputs file has no tensor \"%s\"; expected one for this configuration", name);
        return 2;
    }
    int same = s->ndim == expect_ndim;
    for (int i = 0; same && i < expect_ndim; i++) same = s->shape[i] == shape[i];
    if (!same) {
        char want[96], got[96];
        snprintf(err, errlen, "input %s has shape [%s]; expected [%s]", name, shape_str(s->shape, s->ndim, got, sizeof got),
                 shape_str(shape, expect_ndim, want, sizeof want));
        return 2;
    }
    if (d->dtype == AVGEN_DT_I64) {
        int64_t *dst = rt_ptr(c, t);
        if (s->dtype == ST_I64) memcpy(dst, s->data, (size_t)s->nbytes);
        else if (s->dtype == ST_I32) {
            for (int64_t i = 0; i < s->numel; i++) {
                int32_t v;
                memcpy(&v, (const char *)s->data + 4 * i, 4);
                dst[i] = v;
            }
        } else {
            snprintf(err, errlen, "input %s is %s; expected I64 or I32", name, st_dtype_name(s->dtype));
            return 2;
        }
        return 0;
    }
    if (d->dtype == AVGEN_DT_U8) {
        if (s->dtype != ST_U8) {
            snprintf(err, errlen, "input %s is %s; expected U8", name, st_dtype_name(s->dtype));
            return 2;
        }
        memcpy(rt_ptr(c, t), s->data, (size_t)s->nbytes);
        return 0;
    }
    if (d->dtype != AVGEN_DT_F32 || st_to_f32(s, rt_ptr(c, t)) != 0) {
        snprintf(err, errlen, "input %s is %s; expected a floating-point tensor", name, st_dtype_name(s->dtype));
        return 2;
    }
    return rt_check_values("input", name, rt_ptr(c, t), s->numel, err, errlen);
}

int rt_load_inputs(avgen_ctx *c, const st_file *in, char *err, size_t errlen) {
    const avgen_consts *k = c->k;
    int64_t au[4] = {k->batch, k->frames, k->audio_rows, k->mel_bins};
    int64_t lb[1] = {k->batch};
    int r;
    int ft = rt_find(c->g, "frames");
    if (ft >= 0) {
        const st_tensor *s = st_find(in, "frames");
        if (s && s->dtype != ST_U8) {
            /* normalised f32 NCHW frames (step dumps): kept beside the graph, read by the patch embedding */
            int64_t fr[5] = {k->batch, k->frames, 3, k->image, k->image};
            int same = s->ndim == 5;
            for (int i = 0; same && i < 5; i++) same = s->shape[i] == fr[i];
            if (!same) {
                char got[96], want[96];
                snprintf(err, errlen, "input frames has shape [%s]; expected [%s] (f32, normalised) or [%lld,%lld,%lld,%lld,3] "
                         "(uint8)", shape_str(s->shape, s->ndim, got, sizeof got), shape_str(fr, 5, want, sizeof want),
                         (long long)k->batch, (long long)k->frames, (long long)k->image, (long long)k->image);
                return 2;
            }
            free(c->frames_f32);
            c->frames_f32 = malloc(sizeof(float) * (size_t)s->numel);
            if (!c->frames_f32 || st_to_f32(s, c->frames_f32) != 0) {
                snprintf(err, errlen, "input frames is %s; expected F32 (normalised) or U8", st_dtype_name(s->dtype));
                return 2;
            }
            if ((r = rt_check_values("input", "frames", c->frames_f32, s->numel, err, errlen))) return r;
        } else {
            int64_t fr[5] = {k->batch, k->frames, k->image, k->image, 3};
            if ((r = load_one(c, in, "frames", 5, fr, 1, err, errlen))) return r;
        }
    }
    if ((r = load_one(c, in, "audio", 4, au, 1, err, errlen))) return r;
    if ((r = load_one(c, in, "labels", 1, lb, 1, err, errlen))) return r;
    int t = rt_find(c->g, "labels");
    if (t >= 0) {
        const int64_t *y = rt_ptr(c, t);
        for (int b = 0; b < k->batch; b++)
            if (y[b] < 0 || y[b] >= k->classes) {
                snprintf(err, errlen, "labels[%d] = %lld is out of range; expected a class id from 0 to %d", b,
                         (long long)y[b], k->classes - 1);
                return 2;
            }
    }
    return 0;
}

void rt_zero_grads(avgen_ctx *c) {
    if (c->dev) {
        rt_cuda_zero_grads(c);
        return;
    }
    for (int i = 0; i < c->g->n_tensors; i++)
        if (c->g->tensors[i].kind == AVGEN_T_PGRAD) memset(rt_ptr(c, i), 0, (size_t)c->g->tensors[i].bytes);
}

void rt_run_phase(avgen_ctx *c, int phase) {
    for (int i = 0; i < c->g->n_ops && !c->failed; i++)
        if (c->g->ops[i].phase == phase) rt_op(c, c->g, i);
}

void rt_run_phase_fn(avgen_ctx *c, rt_phase_fn fn, int phase) {
    if (fn) fn(c);
    else rt_run_phase(c, phase);
}

void rt_run_fwd_bwd(avgen_ctx *c, int zero_grads, rt_phase_fn fwd, rt_phase_fn bwd) {
    if (c->dev) {
        rt_cuda_train_fwd_bwd(c, zero_grads, fwd, bwd);
        return;
    }
    if (zero_grads) rt_zero_grads(c);
    rt_run_phase_fn(c, fwd, AVGEN_PH_FORWARD);
    rt_run_phase_fn(c, bwd, AVGEN_PH_BACKWARD);
}

void rt_run_update(avgen_ctx *c, rt_phase_fn upd) {
    if (c->dev) rt_cuda_train_update(c, upd);
    else rt_run_phase_fn(c, upd, AVGEN_PH_UPDATE);
}

void rt_run_forward(avgen_ctx *c, rt_phase_fn fwd) {
    if (c->dev) rt_cuda_forward(c, fwd);
    else rt_run_phase_fn(c, fwd, AVGEN_PH_FORWARD);
}

int rt_set_input(avgen_ctx *c, int t, const void *src, char *err, size_t errlen) {
    if (c->dev) return rt_cuda_upload_tensor(c, t, src, err, errlen) ? -1 : 0;
    memcpy(rt_ptr(c, t), src, (size_t)c->g->tensors[t].bytes);
    return 0;
}

int rt_stage_input(avgen_ctx *c, int t, const void *src, char *err, size_t errlen) {
    if (rt_cuda_can_stage(c)) return rt_cuda_stage_input(c, t, src, err, errlen) ? -1 : 0;
    if (c->n_pending == (int)(sizeof c->pending_t / sizeof c->pending_t[0])) {
        snprintf(err, errlen, "more than %d inputs staged at once (a bug in avgen)", c->n_pending);
        return -1;
    }
    c->pending_t[c->n_pending] = t, c->pending_src[c->n_pending++] = src;
    return 0;
}

int rt_take_inputs(avgen_ctx *c, char *err, size_t errlen) {
    if (rt_cuda_can_stage(c)) return rt_cuda_take_inputs(c, err, errlen) ? -1 : 0;
    const int n = c->n_pending;
    c->n_pending = 0;
    for (int i = 0; i < n; i++)
        if (rt_set_input(c, c->pending_t[i], c->pending_src[i], err, errlen)) return -1;
    return 0;
}

void rt_drop_inputs(avgen_ctx *c) {
    c->n_pending = 0;
    if (!c->dev) return;
    char e2[64];
    rt_cuda_sync(c, e2, sizeof e2);  /* (an error is the step's, reported where it was met) */
    rt_cuda_drop_staged(c);
}

void rt_op(avgen_ctx *c, const avgen_graph *g, int op) {
    if (c->dev) rt_cuda_op(c, g, op);
    else rt_cpu_op(c, g, op);
}

/* ----------------------------------------------------------------------------------------------- dumps */

static st_dtype st_of(int dt) { return dt == AVGEN_DT_I64 ? ST_I64 : dt == AVGEN_DT_U8 ? ST_U8 : ST_F32; }

static int write_set(avgen_ctx *c, const char *path, int dump, char *err, size_t errlen) {
    const avgen_graph *g = c->g;
    st_writer *w = st_writer_new();
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return 1;
    }
    int rc = 0;
    char name[200];
    for (int i = 0; i < g->n_tensors && !rc; i++) {
        const avgen_tensor_desc *t = &g->tensors[i];
        int take;
        const char *nm = t->name;
        if (dump) {
            take = t->kind == AVGEN_T_PGRAD || t->kind == AVGEN_T_BUFFER ||
                   (t->kind == AVGEN_T_ACT && (!strcmp(t->name, "logits") || !strcmp(t->name, "loss")));
        } else {
            take = t->kind == AVGEN_T_FROZEN || t->kind == AVGEN_T_TRAINABLE || t->kind == AVGEN_T_BUFFER;
        }
        if (!take) continue;
        snprintf(name, sizeof name, "%s", nm);
        int ndim = t->ndim;
        if (dump && !strcmp(nm, "loss")) ndim = 0; /* a scalar, as PyTorch writes it */
        rc = st_writer_add(w, name, st_of(t->dtype), ndim, t->shape, rt_ptr(c, i), err, errlen) ? 1 : 0;
    }
    if (!rc && st_writer_write(w, path, err, errlen) != 0) rc = 1;
    st_writer_free(w);
    return rc;
}

int rt_write_step_dump(avgen_ctx *c, const char *path, char *err, size_t errlen) { return write_set(c, path, 1, err, errlen); }
int rt_write_params(avgen_ctx *c, const char *path, char *err, size_t errlen) { return write_set(c, path, 0, err, errlen); }

