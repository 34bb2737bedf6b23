/* avgen: the command-line front end. Each command reads a model description (with --set overrides),
 * reports every problem as one sentence and exits 2 on bad input, 1 on a failure of the machine (I/O),
 * 0 on success. */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emit.h"
#include "plan.h"
#include "rt_device.h"
#include "spec_internal.h"

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
                      : !strcmp(t, "emit") ? usage_emit : !strcmp(t, "devices") ? usage_devices : usage_main;
        fputs(u, stdout);
        return 0;
    }
    if (!strcmp(cmd, "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "plan")) return cmd_plan(argc - 2, argv + 2);
    if (!strcmp(cmd, "emit")) return cmd_emit(argc - 2, argv + 2);
    if (!strcmp(cmd, "devices")) return cmd_devices(argc - 2, argv + 2);
    static const char *const cmds[] = {"check", "plan", "emit", "devices", "help"};
    const char *sug = gen_suggest(cmd, cmds, 5);
    fprintf(stderr, "avgen: unknown command \"%s\"%s%s%s; see avgen --help\n", cmd, sug ? " (did you mean " : "",
            sug ? sug : "", sug ? "?)" : "");
    return 2;
}
