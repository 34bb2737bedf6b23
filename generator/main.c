/* avgen: the command-line front end. Each command reads a model description (with --set overrides),
 * reports every problem as one sentence and exits 2 on bad input, 1 on a failure of the machine (I/O),
 * 0 on success. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <math.h>
#include <time.h>

#include "emit.h"
#include "graph.h"
#include "plan.h"
#include "rt_model.h"
#include "safetensors.h"
#include "rt_device.h"
#include "spec_internal.h"
#include "bench_loader.h"
#include "prep.h"
#include "synth.h"

#define AVGEN_VERSION "0.1.0"
#define MAX_SETS 64

static const char *const usage_main =
    "avgen " AVGEN_VERSION " - ahead-of-time generator of audio-visual video classifiers (ViT + LAVISH adapters)\n"
    "\n"
    "usage: avgen COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  check MODEL.json            validate a model description and print a one-screen summary\n"
    "  plan MODEL.json [--json]    parameters, FLOPs per step and memory per recompute policy\n"
    "  emit MODEL.json -o DIR      write the program generated for this configuration\n"
    "  step MODEL.json --inputs I --out O [--params P]\n"
    "                              one training step on given parameters and inputs; writes logits, loss,\n"
    "                              every trainable gradient and the BatchNorm buffers (a step dump)\n"
    "  diff A.safetensors B.safetensors\n"
    "                              compare two step dumps tensor by tensor (relative L2 error)\n"
    "  synth --out DIR             write a small synthetic UCF101-shaped data set (videos with audio)\n"
    "  prep --src D --splits D --out D\n"
    "                              prepare UCF101 (videos with audio) for training: frames, audio, manifest\n"
    "  bench-loader --data D       clips/s of the clip loader for several clip lengths and thread counts\n"
    "  devices                     list the CUDA devices this binary can use, or say why none\n"
    "  help [COMMAND]              this text, or a command's\n"
    "\n"
    "options every command that reads a description takes:\n"
    "  --set path.to.field=value   override a field (repeatable); the value is read as JSON when it parses\n"
    "                              as JSON (train.batch=8, adapter.layers=[1,2]), else as a string\n"
    "  -h, --help                  help for the command\n"
    "\n"
    "The description format is docs/model-json.md; plan --json is docs/plan-json.md.\n"
    "Exit status: 0 success, 1 a failure while working (I/O), 2 invalid input or usage.\n";

static const char *const usage_check =
    "usage: avgen check MODEL.json [--set path=value]... [--print-json]\n"
    "\n"
    "Validates the description and prints a summary of the configuration: shapes, token counts,\n"
    "adapter placement, parameter counts and the planned peak memory. Every problem is printed as one\n"
    "sentence naming the JSON path, the value and what was expected; the exit status is then 2.\n"
    "  --print-json   print the resolved description (every field, defaults filled in) instead\n";

static const char *const usage_plan =
    "usage: avgen plan MODEL.json [--set path=value]... [--json] [--no-batch-search]\n"
    "\n"
    "Parameter counts (frozen, trainable, per group), model FLOPs per step and per (frame, audio) pair by\n"
    "op family and phase, and memory per recompute policy (none, attention, block): frozen weights,\n"
    "trainable state, packed activations, inputs, workspace, peak, whether it fits memory.budget and the\n"
    "largest batch that would. Also the inference (eval) peak.\n"
    "  --json              one JSON object on stdout (docs/plan-json.md)\n"
    "  --no-batch-search   skip the largest-batch search (faster)\n";

static const char *const usage_emit =
    "usage: avgen emit MODEL.json -o DIR [--set path=value]... [--force]\n"
    "\n"
    "Writes the program generated for exactly this configuration into DIR: plan.json, model.h (every\n"
    "shape and arena offset a constant), model.c (the op tables and the step in op order), kernels.cu,\n"
    "main_train.c, main_infer.c and a CMakeLists.txt. The same input always gives byte-identical files.\n"
    "It refuses a configuration whose selected recompute policy does not fit memory.budget, unless\n"
    "--force is given.\n";

static const char *const usage_step =
    "usage: avgen step MODEL.json --inputs I.safetensors --out O.safetensors [--params P.safetensors]\n"
    "                  [--init-out F.safetensors] [--update-out U.safetensors] [--backend cpu]\n"
    "                  [--set path=value]...\n"
    "\n"
    "One training step in train mode (forward, cross-entropy, backward; no optimizer update) with the\n"
    "given parameters (MODEL.md section 6 names; backbone names with or without \"vit.\") and inputs:\n"
    "frames f32 [B,T,3,S,S] (already normalised), audio f32 [B,T,A,M] (normalised fbank), labels i64 [B].\n"
    "Writes logits, loss, grad.<name> for every trainable tensor (before any update) and the BatchNorm\n"
    "buffers after the step. Parameters missing from --params (or all, without it) are initialised as\n"
    "MODEL.md says from train.seed; --init-out writes the full parameter set used. --update-out then\n"
    "applies one optimizer update (train.optimizer, lr, head_lr, betas, eps, weight_decay; first step)\n"
    "and writes every parameter and buffer after it. The CPU backend computes in fp32 whatever the\n"
    "description's precision.\n";

static const char *const usage_diff =
    "usage: avgen diff A.safetensors B.safetensors [--rtol 1e-4] [--atol 1e-6] [--grad-floor]\n"
    "                  [--only-common]\n"
    "\n"
    "Compares two step dumps (or any two safetensors files) tensor by tensor: the relative L2 error\n"
    "||a - b|| / max(||b||, floor) of each tensor present in both must be <= rtol, with floor =\n"
    "atol * sqrt(n). --grad-floor raises the floor to sqrt(n) times the RMS of all elements of B's grad.*\n"
    "tensors: a gradient that is tiny because its terms cancel (ln_before.bias is exactly zero in exact\n"
    "arithmetic, a gate gradient can be a small difference of large sums) is then held to the error\n"
    "expected at the typical gradient magnitude instead of its own. Prints the tensors that differ; exit\n"
    "status 0 when all agree, 1 when some differ (or, without --only-common, when a tensor is in one\n"
    "file only), 2 on bad input.\n";

static const char *const usage_devices =
    "usage: avgen devices\n"
    "\n"
    "Lists the CUDA devices visible through the CUDA runtime, or says why there are none (no driver, no\n"
    "GPU). avgen itself and the CPU backend never need a GPU.\n";

typedef struct {
    const char *model;
    const char *sets[MAX_SETS];
    int nsets;
    const char *out;
    int json, force, no_search, print_json;
    const char *params, *inputs, *init_out, *backend, *update_out;
} args_t;

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "avgen %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see avgen %s --help)\n", cmd);
    return 2;
}

/* Parses the options of a command; returns -1 to continue, else an exit status. */
static int parse_args(const char *cmd, const char *usage, int argc, char **argv, args_t *a, int want_model) {
    memset(a, 0, sizeof *a);
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(s, "--set") || !strncmp(s, "--set=", 6)) {
            const char *v = s[5] == '=' ? s + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) return usage_error(cmd, "%s needs a value path.to.field=value", "--set");
            if (a->nsets == MAX_SETS) return usage_error(cmd, "at most %s --set options", "64");
            a->sets[a->nsets++] = v;
        } else if (!strcmp(cmd, "step") && (!strcmp(s, "--params") || !strcmp(s, "--inputs") ||
                                             !strcmp(s, "--init-out") || !strcmp(s, "--backend") ||
                                             !strcmp(s, "--update-out"))) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", s);
            const char **slot = !strcmp(s, "--params") ? &a->params : !strcmp(s, "--inputs") ? &a->inputs
                              : !strcmp(s, "--init-out") ? &a->init_out : !strcmp(s, "--update-out") ? &a->update_out
                              : &a->backend;
            *slot = argv[++i];
        } else if (!strcmp(s, "-o") || !strcmp(s, "--out")) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a folder", s);
            a->out = argv[++i];
        } else if (!strcmp(s, "--json")) {
            a->json = 1;
        } else if (!strcmp(s, "--force") && !strcmp(cmd, "emit")) {
            a->force = 1;
        } else if (!strcmp(s, "--no-batch-search") && !strcmp(cmd, "plan")) {
            a->no_search = 1;
        } else if (!strcmp(s, "--print-json") && !strcmp(cmd, "check")) {
            a->print_json = 1;
        } else if (s[0] == '-' && s[1]) {
            return usage_error(cmd, "unknown option %s", s);
        } else if (want_model && !a->model) {
            a->model = s;
        } else {
            return usage_error(cmd, "unexpected argument %s", s);
        }
    }
    if (a->json && strcmp(cmd, "plan")) return usage_error(cmd, "unknown option %s", "--json");
    if (want_model && !a->model) return usage_error(cmd, "%s", "a model description MODEL.json is required");
    return -1;
}

static int load(const args_t *a, gen_spec *s) {
    gen_errors e;
    if (gen_spec_load(a->model, a->sets, a->nsets, s, &e) == 0) return 0;
    for (int i = 0; i < e.n; i++) fprintf(stderr, "error: %s\n", e.msg[i]);
    if (e.dropped) fprintf(stderr, "error: (%d more problems not shown)\n", e.dropped);
    /* An unreadable file is an input problem too: the user named it. */
    return 2;
}

static void warn_weights(const gen_spec *s) {
    if (!s->backbone.weights[0])
        fprintf(stderr, "warning: %s: backbone.weights is not set: the backbone would be randomly initialised, which "
                        "is for tests and benchmarks only.\n", s->name);
}

static int cmd_check(int argc, char **argv) {
    args_t a;
    int r = parse_args("check", usage_check, argc, argv, &a, 1);
    if (r >= 0) return r;
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    if (a.print_json) {
        char *j = gen_spec_to_json(&s);
        puts(j);
        free(j);
        return 0;
    }
    gen_plan p;
    if (gen_make_plan(&s, 0, &p) != 0) {
        fprintf(stderr, "error: %s: out of memory while planning.\n", a.model);
        return 1;
    }
    const char *fus = gen_fusion_name(s.fusion);
    printf("%s: valid (%s)\n", s.name, a.model);
    if (s.description[0]) printf("  %s\n", s.description);
    printf("  backbone   ViT %dx%d patch %d, dim %d, depth %d, heads %d (head dim %d), MLP %d, ln_eps %g\n",
           s.backbone.image_size, s.backbone.image_size, s.backbone.patch_size, s.backbone.dim, s.backbone.depth,
           s.backbone.heads, s.head_dim, s.backbone.mlp_dim, s.backbone.ln_eps);
    printf("  weights    %s\n", s.backbone.weights[0] ? s.backbone.weights : "none: random initialisation (tests and benchmarks only)");
    if (s.use_v)
        printf("  video      T %d frames at %d fps, stride %d, %dx%d, mean [%g %g %g] std [%g %g %g] -> %d tokens\n",
               s.video.frames, s.video.fps, s.video.stride, s.video.size, s.video.size, s.video.mean[0], s.video.mean[1],
               s.video.mean[2], s.video.std[0], s.video.std[1], s.video.std[2], s.n_v);
    if (s.use_a)
        printf("  audio      %d Hz, %g s windows -> %d fbank rows padded to %d x %d mel -> %dx%d patches -> %d tokens\n",
               s.audio.sample_rate, s.audio.window_seconds, s.fbank_frames, s.audio.target_frames, s.audio.mel_bins,
               s.patch_rows_a, s.patch_cols_a, s.n_a);
    if (s.fusion == FUSION_LAVISH) {
        char layers[512] = "";
        int run = -1;
        for (int l = 0; l <= s.backbone.depth; l++) {
            int on = l < s.backbone.depth && s.adapter.on_layer[l];
            if (on && run < 0) run = l;
            if (!on && run >= 0) {
                size_t n = strlen(layers);
                if (l - 1 > run) snprintf(layers + n, sizeof layers - n, "%s%d-%d", n ? "," : "", run, l - 1);
                else snprintf(layers + n, sizeof layers - n, "%s%d", n ? "," : "", run);
                run = -1;
            }
        }
        printf("  fusion     lavish: adapters on layers %s (%s%s%s), m %d, r %d, G %d, %s\n", layers,
               s.adapter.attn ? "attn" : "", s.adapter.attn && s.adapter.mlp ? "+" : "", s.adapter.mlp ? "mlp" : "",
               s.adapter.latent_tokens, s.adapter.reduction, s.adapter.groups,
               s.adapter.batchnorm ? "BatchNorm" : "no BatchNorm");
    } else {
        printf("  fusion     %s: frozen backbone, head only\n", fus);
    }
    printf("  head       %d -> %d -> %d classes\n", (s.use_v + s.use_a) * s.backbone.dim, s.head.hidden, s.head.classes);
    printf("  train      B %d clips x T %d = %d pairs, %s lr %g head_lr %g wd %g betas [%g %g] eps %g, %s schedule, "
           "warmup %d, accum %d, %d epochs, seed %lld\n",
           s.train.batch, s.video.frames, s.pairs, gen_optimizer_name(s.train.optimizer), s.train.lr, s.train.head_lr,
           s.train.weight_decay, s.train.beta1, s.train.beta2, s.train.eps, gen_schedule_name(s.train.schedule),
           s.train.warmup, s.train.grad_accum, s.train.epochs, (long long)s.train.seed);
    char pk[40], bud[40];
    gen_format_bytes(p.train[s.memory.recompute].peak, pk, sizeof pk);
    gen_format_bytes(s.memory.budget, bud, sizeof bud);
    printf("  params     frozen %lld, trainable %lld (adapters %lld, head %lld)\n", (long long)p.frozen,
           (long long)p.trainable, (long long)p.adapters, (long long)p.head);
    printf("  compute    %.2f GFLOP per step, %.2f per pair\n", p.step_flops / 1e9, p.pair_flops / 1e9);
    printf("  memory     %s, recompute %s: planned peak %s of %s budget: %s\n", gen_precision_name(s.precision),
           gen_recompute_name(s.memory.recompute), pk, bud, p.train[s.memory.recompute].fits ? "fits" : "does NOT fit");
    warn_weights(&s);
    return 0;
}

static int cmd_plan(int argc, char **argv) {
    args_t a;
    int r = parse_args("plan", usage_plan, argc, argv, &a, 1);
    if (r >= 0) return r;
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    warn_weights(&s);
    gen_plan p;
    if (gen_make_plan(&s, !a.no_search, &p) != 0) {
        fprintf(stderr, "error: %s: out of memory while planning.\n", a.model);
        return 1;
    }
    if (a.json) {
        json_object *j = gen_plan_to_json(&s, &p);
        puts(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(j);
    } else {
        gen_plan_print(stdout, &s, &p);
    }
    return 0;
}

static int cmd_emit(int argc, char **argv) {
    args_t a;
    int r = parse_args("emit", usage_emit, argc, argv, &a, 1);
    if (r >= 0) return r;
    if (!a.out) return usage_error("emit", "%s", "an output folder -o DIR is required");
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    warn_weights(&s);
    char err[1024];
    r = gen_emit(&s, a.out, a.force, err, sizeof err);
    if (r) {
        fprintf(stderr, "error: %s\n", err);
        return r;
    }
    fprintf(stderr, "avgen emit: wrote %s (%s)\n", a.out, err);
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double step_flops(const avgen_graph *g) {
    double f = 0;
    for (int i = 0; i < g->n_ops; i++) f += g->ops[i].flops;
    return f;
}

static int cmd_step(int argc, char **argv) {
    args_t a;
    int r = parse_args("step", usage_step, argc, argv, &a, 1);
    if (r >= 0) return r;
    if (!a.inputs) return usage_error("step", "%s", "--inputs I.safetensors is required");
    if (!a.out) return usage_error("step", "%s", "--out O.safetensors is required");
    if (a.backend && strcmp(a.backend, "cpu")) {
        if (!strcmp(a.backend, "cuda") || !strcmp(a.backend, "auto"))
            fprintf(stderr, "error: --backend %s: this avgen has no CUDA backend yet; use --backend cpu.\n", a.backend);
        else
            fprintf(stderr, "error: --backend %s is not a backend; expected cpu.\n", a.backend);
        return 2;
    }
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    s.precision = PREC_FP32; /* the CPU backend computes in fp32 */
    gen_ir ir;
    gen_mem m;
    gen_graph gg;
    avgen_consts k;
    if (gen_lower(&s, s.memory.recompute, 1, &ir) != 0) {
        fprintf(stderr, "error: out of memory while lowering %s.\n", s.name);
        return 1;
    }
    gen_pack(&ir, &m);
    if (gen_graph_build(&ir, &m, &gg) != 0) {
        gen_ir_free(&ir);
        fprintf(stderr, "error: out of memory.\n");
        return 1;
    }
    gen_consts(&s, &k);
    char err[1024] = "";
    avgen_ctx c;
    st_file *pf = NULL, *inf = NULL;
    int rc = 0, nl = 0, ni = 0;
    if (rt_ctx_init(&c, &gg.g, &k, err, sizeof err)) {
        rc = 1;
        goto done;
    }
    if (a.params && !(pf = st_open(a.params, err, sizeof err))) { rc = 2; goto done_ctx; }
    if ((rc = rt_init_params(&c, pf, (uint64_t)s.train.seed, &nl, &ni, err, sizeof err))) goto done_ctx;
    fprintf(stderr, "avgen step: %s: %d parameter tensors loaded, %d initialised from seed %lld\n", s.name, nl, ni,
            (long long)s.train.seed);
    if (a.init_out && rt_write_params(&c, a.init_out, err, sizeof err)) { rc = 1; goto done_ctx; }
    if (!(inf = st_open(a.inputs, err, sizeof err))) { rc = 2; goto done_ctx; }
    if ((rc = rt_load_inputs(&c, inf, err, sizeof err))) goto done_ctx;
    rt_zero_grads(&c);
    double t0 = now();
    rt_run_phase(&c, AVGEN_PH_FORWARD);
    double t1 = now();
    rt_run_phase(&c, AVGEN_PH_BACKWARD);
    double t2 = now();
    if (c.failed) {
        snprintf(err, sizeof err, "%s", c.err);
        rc = 2;
        goto done_ctx;
    }
    if (rt_write_step_dump(&c, a.out, err, sizeof err)) { rc = 1; goto done_ctx; }
    if (a.update_out) {
        rt_run_phase(&c, AVGEN_PH_UPDATE);
        if (rt_write_params(&c, a.update_out, err, sizeof err)) { rc = 1; goto done_ctx; }
    }
    fprintf(stderr, "avgen step: loss %.6f; forward %.3f s, backward %.3f s on the CPU (%.1f GFLOP/s); wrote %s\n",
            *(float *)rt_ptr(&c, rt_find(&gg.g, "loss")), t1 - t0, t2 - t1,
            step_flops(&gg.g) / 1e9 / (t2 - t0 > 0 ? t2 - t0 : 1e-9), a.out);
done_ctx:
    st_close(pf);
    st_close(inf);
    rt_ctx_free(&c);
done:
    gen_graph_free(&gg);
    gen_ir_free(&ir);
    if (rc) fprintf(stderr, "error: %s.\n", err);
    return rc;
}

static int cmd_diff(int argc, char **argv) {
    double rtol = 1e-4, atol = 1e-6;
    int only_common = 0, grad_floor = 0;
    const char *fa = NULL, *fb = NULL;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage_diff, stdout);
            return 0;
        } else if (!strcmp(s, "--rtol") || !strcmp(s, "--atol")) {
            char *end;
            double v = i + 1 < argc ? strtod(argv[i + 1], &end) : -1;
            if (i + 1 >= argc || *end || !(v >= 0)) return usage_error("diff", "%s needs a non-negative number", s);
            *(!strcmp(s, "--rtol") ? &rtol : &atol) = v;
            i++;
        } else if (!strcmp(s, "--only-common")) {
            only_common = 1;
        } else if (!strcmp(s, "--grad-floor")) {
            grad_floor = 1;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("diff", "unknown option %s", s);
        } else if (!fa) fa = s;
        else if (!fb) fb = s;
        else return usage_error("diff", "unexpected argument %s", s);
    }
    if (!fb) return usage_error("diff", "%s", "two safetensors files are required");
    char err[512];
    st_file *A = st_open(fa, err, sizeof err), *B = A ? st_open(fb, err, sizeof err) : NULL;
    if (!A || !B) {
        fprintf(stderr, "error: %s.\n", err);
        st_close(A);
        return 2;
    }
    int bad = 0, n = 0, missing = 0;
    double worst = 0, grad_rms = 0;
    if (grad_floor) {
        double ss = 0, cnt = 0;
        for (size_t i = 0; i < st_count(B); i++) {
            const st_tensor *t = st_at(B, i);
            if (strncmp(t->name, "grad.", 5) || t->dtype != ST_F32) continue;
            for (int64_t e = 0; e < t->numel; e++) {
                float v;
                memcpy(&v, (const char *)t->data + 4 * e, 4);
                ss += (double)v * v;
            }
            cnt += (double)t->numel;
        }
        grad_rms = cnt > 0 ? sqrt(ss / cnt) : 0;
    }
    const char *worst_name = "";
    for (size_t i = 0; i < st_count(A); i++) {
        const st_tensor *ta = st_at(A, i), *tb = st_find(B, ta->name);
        if (!tb) {
            if (!only_common) printf("  %-60s only in %s\n", ta->name, fa), missing++;
            continue;
        }
        n++;
        int same_shape = ta->ndim == tb->ndim;
        for (int d = 0; same_shape && d < ta->ndim; d++) same_shape = ta->shape[d] == tb->shape[d];
        if (!same_shape && ta->numel != tb->numel) {
            printf("  %-60s shapes differ\n", ta->name);
            bad++;
            continue;
        }
        double num = 0, den = 0, maxabs = 0;
        int nonfinite = 0;
        float *va = malloc(sizeof(float) * (size_t)(ta->numel + 1)), *vb = malloc(sizeof(float) * (size_t)(tb->numel + 1));
        if (!va || !vb) { free(va); free(vb); fprintf(stderr, "error: out of memory.\n"); st_close(A); st_close(B); return 1; }
        if (st_to_f32(ta, va) != 0 || st_to_f32(tb, vb) != 0) {
            for (int64_t e = 0; e < ta->numel; e++) { /* integers: compare as int64 */
                int64_t x = 0, y = 0;
                memcpy(&x, (const char *)ta->data + e * st_dtype_size(ta->dtype), st_dtype_size(ta->dtype) < 8 ? st_dtype_size(ta->dtype) : 8);
                memcpy(&y, (const char *)tb->data + e * st_dtype_size(tb->dtype), st_dtype_size(tb->dtype) < 8 ? st_dtype_size(tb->dtype) : 8);
                va[e] = (float)x, vb[e] = (float)y;
            }
        }
        for (int64_t e = 0; e < ta->numel; e++) {
            if (!isfinite(va[e]) || !isfinite(vb[e])) nonfinite++;
            double d = (double)va[e] - vb[e];
            num += d * d, den += (double)vb[e] * vb[e];
            if (fabs(d) > maxabs) maxabs = fabs(d);
        }
        free(va);
        free(vb);
        double floor_ = fmax(atol, grad_rms) * sqrt((double)(ta->numel ? ta->numel : 1));
        double rel = sqrt(num) / fmax(sqrt(den), floor_ > 0 ? floor_ : 1e-300);
        int ok = !nonfinite && rel <= rtol;
        if (!ok) bad++;
        if (!ok || rel > worst) {
            if (rel > worst) worst = rel, worst_name = ta->name;
        }
        if (!ok) printf("  %-60s rel %.3e  max abs %.3e%s  DIFFERS\n", ta->name, rel, maxabs, nonfinite ? "  non-finite" : "");
    }
    for (size_t i = 0; !only_common && i < st_count(B); i++)
        if (!st_find(A, st_at(B, i)->name)) printf("  %-60s only in %s\n", st_at(B, i)->name, fb), missing++;
    printf("%d tensors compared: %d differ (rtol %g, floor %g per element), %d in one file only; worst %.3e (%s)\n", n,
           bad, rtol, fmax(atol, grad_rms), missing, worst, worst_name);
    st_close(A);
    st_close(B);
    return bad || (!only_common && missing) || n == 0 ? 1 : 0;
}

static int cmd_devices(int argc, char **argv) {
    args_t a;
    int r = parse_args("devices", usage_devices, argc, argv, &a, 0);
    if (r >= 0) return r;
    rt_device_info d[16];
    char why[512];
    int n = rt_cuda_devices(d, 16, why, sizeof why);
    if (n == 0) {
        printf("%s\n", why);
        return 0;
    }
    for (int i = 0; i < n && i < 16; i++)
        printf("cuda:%d  %s  sm_%d%d  %d SMs  %.1f GiB\n", i, d[i].name, d[i].major, d[i].minor, d[i].sms,
               (double)d[i].memory / 1073741824.0);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help")) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        printf("avgen %s\n", AVGEN_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help")) {
        const char *t = argc > 2 ? argv[2] : "";
        const char *u = !strcmp(t, "check") ? usage_check : !strcmp(t, "plan") ? usage_plan
                      : !strcmp(t, "emit") ? usage_emit : !strcmp(t, "devices") ? usage_devices
                      : !strcmp(t, "step") ? usage_step : !strcmp(t, "diff") ? usage_diff : usage_main;
        if (!strcmp(t, "synth") || !strcmp(t, "prep") || !strcmp(t, "bench-loader")) {
            char *hv[] = {(char *)t, "--help", NULL};
            return !strcmp(t, "synth") ? gen_synth_main(2, hv) : !strcmp(t, "prep") ? gen_prep_main(2, hv)
                                                                 : gen_bench_loader_main(2, hv);
        }
        fputs(u, stdout);
        return 0;
    }
    if (!strcmp(cmd, "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "plan")) return cmd_plan(argc - 2, argv + 2);
    if (!strcmp(cmd, "emit")) return cmd_emit(argc - 2, argv + 2);
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 2, argv + 2);
    if (!strcmp(cmd, "step")) return cmd_step(argc - 2, argv + 2);
    if (!strcmp(cmd, "diff")) return cmd_diff(argc - 2, argv + 2);
    if (!strcmp(cmd, "synth")) return gen_synth_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "prep")) return gen_prep_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench-loader")) return gen_bench_loader_main(argc - 1, argv + 1);
    static const char *const cmds[] = {"check", "plan", "emit", "devices", "help", "step", "diff", "synth", "prep",
                                       "bench-loader"};
    const char *sug = gen_suggest(cmd, cmds, 10);
    fprintf(stderr, "avgen: unknown command \"%s\"%s%s%s; see avgen --help\n", cmd, sug ? " (did you mean " : "",
            sug ? sug : "", sug ? "?)" : "");
    return 2;
}
