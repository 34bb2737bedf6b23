/* libFuzzer target for the model-description parser, the lowering and the planner.
 *
 * Input layout: the bytes before the first 0x00 are the JSON description; the rest, split on 0x00, gives up
 * to 4 overrides `path=value` (as `avgen ... --set path=value` passes them). Without a 0x00 the whole input
 * is the JSON. The target calls abort() on any broken invariant:
 *   - gen_spec_parse_text returns its error count, 0 .. GEN_MAX_ERRORS; every message is non-empty,
 *     NUL-terminated within GEN_ERR_LEN and one line (no '\n' or '\r');
 *   - a valid description prints (gen_spec_to_json) canonical JSON that parses again, without errors, to a
 *     spec that prints the same bytes;
 *   - when the lowering is small enough to check quickly (few layers / adapters; the shapes do not change the
 *     cost), for the training step under each recompute policy and for inference: every op refers to
 *     existing tensors, every activation an op reads was written by an earlier op (or the same one), every
 *     used activation lies inside the activation arena at an aligned offset, no two activations that are live
 *     at the same time share bytes, the lower bound is <= the arena, nothing overflowed (arenas and the peak
 *     non-negative and summing up), and gen_make_plan(spec, 0) succeeds and agrees with the packing.
 * Set AVGEN_FUZZ_IGNORE to a comma-separated list of check names (printed with a failure) to skip those
 * checks while a known bug is open, e.g. AVGEN_FUZZ_IGNORE=error-dropped,round-trip. */
#include "ir.h"
#include "plan.h"
#include "spec.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_OVERRIDES 4
#define FUZZ_SOURCE "fuzz.json"
/* Lowering cost grows with the number of ops and tensors (layers, and above all adapted sub-layers: each
 * brings two adapters with ~20 parameters and ~20 activations), not with the shapes; the planner's packing
 * is quadratic in the number of activations. cost = depth + 12 x adapted sub-layers; 50 (a 2-layer model
 * with adapters everywhere, ~1000 tensors, or a 48-layer model without adapters) keeps one input near
 * 5 ms without sanitizers. */
#define FUZZ_MAX_LOWER_COST 50

static int ignored(const char *name) {
    static int init;
    static const char *list;
    if (!init) {
        list = getenv("AVGEN_FUZZ_IGNORE");
        init = 1;
    }
    if (!list || !*list) return 0;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == n && strncmp(p, name, n) == 0) return 1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

__attribute__((noreturn, format(printf, 2, 3))) static void fail(const char *check, const char *fmt, ...);
static void fail(const char *check, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "\nfuzz_spec: invariant \"%s\" violated: ", check);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

#define CHECK(name, cond, ...)                                                                                         \
    do {                                                                                                               \
        if (!(cond) && !ignored(name)) fail(name, __VA_ARGS__);                                                       \
    } while (0)

static void print_errors(const gen_errors *e) {
    for (int i = 0; i < e->n && i < GEN_MAX_ERRORS; i++)
        fprintf(stderr, "  error %d: %.*s\n", i, GEN_ERR_LEN, e->msg[i]);
}

static void check_errors(int ret, const gen_errors *e, const char *what) {
    CHECK("error-count", ret >= 0 && ret <= GEN_MAX_ERRORS && ret == e->n,
          "%s returned %d with errors.n = %d; expected 0 .. %d and equal", what, ret, e->n, GEN_MAX_ERRORS);
    CHECK("error-dropped", e->dropped >= 0 && (e->dropped == 0 || e->n == GEN_MAX_ERRORS),
          "%s: %d errors dropped with only %d stored", what, e->dropped, e->n);
    for (int i = 0; i < e->n && i < GEN_MAX_ERRORS; i++) {
        const char *m = e->msg[i];
        const char *nul = memchr(m, 0, GEN_ERR_LEN);
        CHECK("error-terminated", nul != NULL, "%s: error %d is not NUL-terminated within %d bytes", what, i,
              GEN_ERR_LEN);
        if (!nul) continue;
        CHECK("error-nonempty", m[0] != 0, "%s: error %d is empty", what, i);
        if ((memchr(m, '\n', (size_t)(nul - m)) || memchr(m, '\r', (size_t)(nul - m))) && !ignored("error-one-line")) {
            print_errors(e);
            fail("error-one-line", "%s: error %d spans several lines: \"%s\"", what, i, m);
        }
    }
}

/* ------------------------------------------------------------------------------------- IR checks */

typedef struct { int id; int64_t lo, hi; int first, last; } act_span;

static int by_offset(const void *a, const void *b) {
    const act_span *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    return x->id - y->id;
}

static const char *mode_name(int train, gen_recompute rc) {
    if (!train) return "inference";
    return rc == RECOMPUTE_NONE ? "train/none" : rc == RECOMPUTE_ATTENTION ? "train/attention" : "train/block";
}

static void check_ir(gen_ir *ir, const gen_mem *m, int train, gen_recompute rc) {
    const char *mode = mode_name(train, rc);
    const int64_t act = m->arena[ARENA_ACT];

    /* Op references, and every activation read is written first (by an earlier op or the op itself). */
    unsigned char *written = calloc((size_t)ir->nt + 1, 1);
    if (!written) abort();
    for (int i = 0; i < ir->nops; i++) {
        const gen_op *o = &ir->ops[i];
        CHECK("op-refs", o->n_in >= 0 && o->n_out >= 0 && o->in_at >= 0 && o->out_at >= 0 &&
                             o->in_at + o->n_in <= ir->nrefs && o->out_at + o->n_out <= ir->nrefs,
              "%s: op %d (%s) refers outside refs[%d]", mode, i, o->name, ir->nrefs);
        const int *in = gen_op_in(ir, o), *out = gen_op_out(ir, o);
        for (int j = 0; j < o->n_in + o->n_out; j++) {
            int t = j < o->n_in ? in[j] : out[j - o->n_in];
            CHECK("op-refs", t >= 0 && t < ir->nt, "%s: op %d (%s) refers to tensor %d of %d", mode, i, o->name, t,
                  ir->nt);
        }
        for (int j = 0; j < o->n_in; j++) {
            const gen_tensor *t = &ir->t[in[j]];
            if (gen_tensor_arena(t) != ARENA_ACT || written[in[j]]) continue;
            int self = 0;
            for (int k = 0; k < o->n_out; k++) self |= out[k] == in[j];
            CHECK("read-before-write", self, "%s: op %d (%s) reads activation %s before any op writes it", mode, i,
                  o->name, t->name);
        }
        for (int k = 0; k < o->n_out; k++) written[out[k]] = 1;
    }
    free(written);

    /* Placement inside the arena. */
    act_span *sp = malloc(sizeof *sp * ((size_t)ir->nt + 1));
    if (!sp) abort();
    int n = 0;
    for (int i = 0; i < ir->nt; i++) {
        const gen_tensor *t = &ir->t[i];
        CHECK("tensor-size", t->numel > 0 && t->bytes > 0 && t->bytes == t->numel * gen_dtype_size(t->dtype),
              "%s: tensor %s has numel %lld and bytes %lld", mode, t->name, (long long)t->numel, (long long)t->bytes);
        CHECK("lifetime", (t->first < 0 && t->last < 0) || (t->first >= 0 && t->first <= t->last && t->last < ir->nops),
              "%s: tensor %s has lifetime [%d, %d] with %d ops", mode, t->name, t->first, t->last, ir->nops);
        if (gen_tensor_arena(t) != ARENA_ACT || t->first < 0) continue;
        CHECK("act-in-arena", t->offset >= 0 && t->offset <= act && t->bytes <= act - t->offset,
              "%s: activation %s at [%lld, +%lld) lies outside the activation arena of %lld bytes", mode, t->name,
              (long long)t->offset, (long long)t->bytes, (long long)act);
        CHECK("act-aligned", t->offset % GEN_ALIGN == 0, "%s: activation %s at offset %lld is not %d-byte aligned",
              mode, t->name, (long long)t->offset, GEN_ALIGN);
        sp[n++] = (act_span){i, t->offset, t->offset + t->bytes, t->first, t->last};
    }
    /* Overlap: sorted by offset, each span is compared with the spans that start inside it. */
    qsort(sp, (size_t)n, sizeof *sp, by_offset);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n && sp[j].lo < sp[i].hi; j++)
            if (sp[i].first <= sp[j].last && sp[j].first <= sp[i].last)
                CHECK("act-overlap", 0,
                      "%s: activations %s [%lld, %lld) live ops [%d, %d] and %s [%lld, %lld) live ops [%d, %d] overlap",
                      mode, ir->t[sp[i].id].name, (long long)sp[i].lo, (long long)sp[i].hi, sp[i].first, sp[i].last,
                      ir->t[sp[j].id].name, (long long)sp[j].lo, (long long)sp[j].hi, sp[j].first, sp[j].last);
    free(sp);

    CHECK("lower-bound", m->act_lower_bound >= 0 && m->act_lower_bound <= act,
          "%s: act_lower_bound %lld exceeds the activation arena %lld", mode, (long long)m->act_lower_bound,
          (long long)act);
    int64_t sum = m->workspace + m->scratch; /* scratch saturates at 2^50 (rt_scratch.c) */
    int ok = m->workspace >= 0 && m->scratch >= 0 && m->scratch <= (1LL << 50);
    for (int a = 0; a < ARENA_COUNT; a++) {
        ok &= m->arena[a] >= 0 && sum <= INT64_MAX - m->arena[a];
        if (ok) sum += m->arena[a];
    }
    CHECK("no-overflow", ok && m->peak == sum && m->peak > 0,
          "%s: arenas %lld %lld %lld %lld + workspace %lld + scratch %lld do not add up to the peak %lld (overflow?)",
          mode, (long long)m->arena[0], (long long)m->arena[1], (long long)m->arena[2], (long long)m->arena[3],
          (long long)m->workspace, (long long)m->scratch, (long long)m->peak);
    CHECK("counts", m->nops == ir->nops && m->ntensors == ir->nt, "%s: gen_mem counts differ from the IR", mode);
}

/* Guidance for libFuzzer: one distinct branch per power of two of a size, so that inputs reaching larger
 * arenas count as new coverage and the fuzzer climbs towards the 64-bit limits (overflows hide there, where
 * code coverage alone does not lead). Each case has its own side effect so the cases are not merged. */
static volatile int64_t g_magnitude_sink;
#define MAG_CASE(i) case i: __asm__ volatile("" ::: "memory"); g_magnitude_sink += i; break;
#define MAG_CASE8(i) MAG_CASE(i) MAG_CASE(i + 1) MAG_CASE(i + 2) MAG_CASE(i + 3) MAG_CASE(i + 4) MAG_CASE(i + 5) \
    MAG_CASE(i + 6) MAG_CASE(i + 7)
static void guide_magnitude(int64_t v) {
    int bits = v > 0 ? 64 - __builtin_clzll((unsigned long long)v) : 0;
    switch (bits) {
        MAG_CASE8(0) MAG_CASE8(8) MAG_CASE8(16) MAG_CASE8(24) MAG_CASE8(32) MAG_CASE8(40) MAG_CASE8(48) MAG_CASE8(56)
    default: g_magnitude_sink -= 1; break;
    }
}

static int same_mem(const gen_mem *a, const gen_mem *b) {
    for (int i = 0; i < ARENA_COUNT; i++)
        if (a->arena[i] != b->arena[i]) return 0;
    return a->act_lower_bound == b->act_lower_bound && a->peak == b->peak && a->fits == b->fits &&
           a->nops == b->nops && a->ntensors == b->ntensors;
}

static void check_lowering(const gen_spec *s) {
    int sublayers = s->has_adapters ? s->n_adapted_layers * ((int)s->adapter.attn + (int)s->adapter.mlp) : 0;
    if (s->backbone.depth + 12 * sublayers > FUZZ_MAX_LOWER_COST) return;
    gen_mem mem[RECOMPUTE_COUNT], inf;
    for (int train = 1; train >= 0; train--)
        for (int rc = 0; rc < RECOMPUTE_COUNT; rc++) {
            if (!train && rc != (int)s->memory.recompute) continue; /* inference ignores the policy */
            gen_ir ir;
            int r = gen_lower(s, (gen_recompute)rc, train, &ir);
            CHECK("lower", r == 0, "%s: gen_lower returned %d", mode_name(train, (gen_recompute)rc), r);
            if (r != 0) continue;
            gen_mem *m = train ? &mem[rc] : &inf;
            gen_pack(&ir, m);
            if (train && rc == RECOMPUTE_NONE) {
                guide_magnitude(m->arena[ARENA_ACT]);
                int64_t biggest = 0;
                for (int i = 0; i < ir.nt; i++)
                    if (ir.t[i].bytes > biggest) biggest = ir.t[i].bytes;
                guide_magnitude(biggest);
            }
            check_ir(&ir, m, train, (gen_recompute)rc);
            gen_ir_free(&ir);
        }
    gen_plan *p = malloc(sizeof *p);
    if (!p) abort();
    int r = gen_make_plan(s, 0, p);
    CHECK("plan", r == 0, "gen_make_plan returned %d", r);
    if (r == 0) {
        for (int rc = 0; rc < RECOMPUTE_COUNT; rc++)
            CHECK("plan-deterministic", same_mem(&p->train[rc], &mem[rc]),
                  "gen_make_plan's %s memory differs from gen_lower + gen_pack", mode_name(1, (gen_recompute)rc));
        CHECK("plan-deterministic", same_mem(&p->infer, &inf),
              "gen_make_plan's inference memory differs from gen_lower + gen_pack");
        CHECK("plan-counts", p->frozen > 0 && p->trainable > 0 && p->adapters >= 0 && p->head > 0 &&
                                 p->adapters + p->head == p->trainable,
              "parameter counts: frozen %lld trainable %lld adapters %lld head %lld", (long long)p->frozen,
              (long long)p->trainable, (long long)p->adapters, (long long)p->head);
        /* Both views of the plan must not crash. */
        struct json_object *j = gen_plan_to_json(s, p);
        CHECK("plan-json", j != NULL, "gen_plan_to_json returned NULL");
        json_object_put(j);
        static FILE *devnull;
        if (!devnull) devnull = fopen("/dev/null", "w");
        if (devnull) gen_plan_print(devnull, s, p);
    }
    free(p);
}

/* ------------------------------------------------------------------------------------------- entry */

/* Inputs that were valid descriptions so far: the standalone driver mutates those more often. */
long avgen_fuzz_accepted;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *z = memchr(data, 0, size);
    size_t jlen = z ? (size_t)(z - data) : size;

    /* The JSON in its own exact-size buffer (no terminator) so that reading past len is caught by ASan. */
    char *text = malloc(jlen ? jlen : 1);
    if (!text) abort();
    if (jlen) memcpy(text, data, jlen);

    char *ov[FUZZ_MAX_OVERRIDES];
    int nov = 0;
    if (z) {
        const uint8_t *p = z + 1, *end = data + size;
        while (nov < FUZZ_MAX_OVERRIDES && p < end) {
            const uint8_t *q = memchr(p, 0, (size_t)(end - p));
            size_t l = q ? (size_t)(q - p) : (size_t)(end - p);
            ov[nov] = malloc(l + 1);
            if (!ov[nov]) abort();
            memcpy(ov[nov], p, l);
            ov[nov][l] = 0;
            nov++;
            if (!q) break;
            p = q + 1; /* a trailing 0x00 adds no empty override */
        }
    }

    gen_spec *s = malloc(sizeof *s), *s2 = malloc(sizeof *s2);
    gen_errors *e = malloc(sizeof *e), *e2 = malloc(sizeof *e2);
    if (!s || !s2 || !e || !e2) abort();
    /* Callers (avgen's CLI) pass gen_errors and gen_spec straight off the stack: start from garbage, as
     * ASan's malloc does, in every build, so that a field the parser forgets to reset shows up. */
    memset(s, 0xbe, sizeof *s), memset(s2, 0xbe, sizeof *s2), memset(e, 0xbe, sizeof *e), memset(e2, 0xbe, sizeof *e2);
    int r = gen_spec_parse_text(text, jlen, FUZZ_SOURCE, "", (const char *const *)ov, nov, s, e);
    check_errors(r, e, "gen_spec_parse_text");

    if (r == 0) {
        avgen_fuzz_accepted++;
        char *j1 = gen_spec_to_json(s);
        if (!j1) fail("to-json", "gen_spec_to_json returned NULL");
        int r2 = gen_spec_parse_text(j1, strlen(j1), FUZZ_SOURCE, "", NULL, 0, s2, e2);
        check_errors(r2, e2, "re-parse of the canonical JSON");
        if (r2 != 0 && !ignored("round-trip")) {
            print_errors(e2);
            fail("round-trip", "the canonical JSON does not parse again:\n%s", j1);
        }
        if (r2 == 0) {
            char *j2 = gen_spec_to_json(s2);
            if (!j2) fail("to-json", "gen_spec_to_json returned NULL");
            CHECK("round-trip", strcmp(j1, j2) == 0, "the canonical JSON changes when parsed again:\n%s\n---\n%s", j1, j2);
            free(j2);
        }
        free(j1);
        check_lowering(s);
    }

    free(s), free(s2), free(e), free(e2);
    for (int i = 0; i < nov; i++) free(ov[i]);
    free(text);
    return 0;
}
