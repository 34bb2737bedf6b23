/* avgen: the command-line front end. Each command reads a model description (with --set overrides),
 * reports every problem as one sentence and exits 2 on bad input, 1 on a failure of the machine (I/O),
 * 0 on success. */
#include <dirent.h>
#include <libgen.h>
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
#include "evaluate.h"
#include "loader.h"
#include "rt_fs.h"
#include "rt_model.h"
#include "rt_kernels.h"
#include "rt_nvrtc.h"
#include "train.h"
#include "classify.h"
#include <sys/stat.h>
#include "safetensors.h"
#include "rt_device.h"
#include "spec_internal.h"
#include "avgen_toolchain.h"
#include <sys/wait.h>
#include <unistd.h>
#include "bench_loader.h"
#include "rt_run.h"
#include "st_diff.h"
#include "prep.h"
#include "synth.h"
#include "sweep.h"

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
    "  bench MODEL.json            training-step time, pairs/s, TFLOP/s, MFU and memory on the GPU\n"
    "  sweep MODEL.json            clip length against batch: what fits, the roofline, bench jobs, their results\n"
    "  bench-loader --data D       clips/s of the clip loader for several clip lengths and thread counts\n"
    "  train MODEL.json --data D   train on a prepared folder (checkpoints, log, validation, resume)\n"
    "  eval MODEL.json --data D --checkpoint C\n"
    "                              clip and video top-1/top-5, per-class accuracy, confusion matrix\n"
    "  classify MODEL.json --checkpoint C VIDEO...\n"
    "                              a trained run's answers for video files: its top classes, probabilities\n"
    "  compare RUN...              runs side by side: accuracy, trainable parameters, throughput\n"
    "  devices                     list the CUDA devices this binary can use, or say why none\n"
    "  jit [DIR] [--arch N]        compile CUDA kernels with NVRTC into the kernel cache (no GPU needed)\n"
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
    "usage: avgen plan MODEL.json [--set path=value]... [--json] [--no-batch-search] [--peak FLOPS]\n"
    "                  [--bandwidth BYTES_PER_S]\n"
    "\n"
    "Parameter counts (frozen, trainable, per group), model FLOPs per step and per (frame, audio) pair by\n"
    "op family and phase, and memory per recompute policy (none, attention, block): frozen weights,\n"
    "trainable state, packed activations, inputs, workspace, peak, whether it fits memory.budget and the\n"
    "largest batch that would. Also the inference (eval) peak, and the CUDA backend's memory and roofline\n"
    "(every op kind moving its tensors' bytes once at the bandwidth or doing its FLOPs at the peak, whichever\n"
    "takes longer: a lower bound of the step's time that no kernel of these ops can beat).\n"
    "  --json              one JSON object on stdout (docs/plan-json.md)\n"
    "  --no-batch-search   skip the largest-batch search (faster)\n"
    "  --peak FLOPS        the roofline's dense bf16 FLOP/s (default 989e12, an H100 SXM)\n"
    "  --bandwidth B/S     the roofline's memory bytes/s (default 3.35e12, an H100 SXM; an H200 has 4.8e12)\n";

static const char *const usage_emit =
    "usage: avgen emit MODEL.json -o DIR [--set path=value]... [--force]\n"
    "\n"
    "Writes the program generated for exactly this configuration into DIR: plan.json, model.h (every\n"
    "shape and arena offset a constant), model.c (the op tables and the step in op order), kernels.cu (and\n"
    "kernels_src.c, the same text with the kernel library inlined, for the run-time NVRTC build),\n"
    "main_train.c, main_infer.c and a CMakeLists.txt. The same input always gives byte-identical files.\n"
    "It refuses a configuration whose selected recompute policy does not fit memory.budget, unless\n"
    "--force is given.\n";

static const char *const usage_step =
    "usage: avgen step MODEL.json --inputs I.safetensors|random --out O.safetensors [--params P.safetensors]\n"
    "                  [--init-out F.safetensors] [--update-out U.safetensors] [--backend cpu|cuda|auto]\n"
    "                  [--precision fp32|bf16|tf32] [--kernels nvcc|nvrtc] [--set path=value]...\n"
    "\n"
    "One training step in train mode (forward, cross-entropy, backward; no optimizer update) with the\n"
    "given parameters (MODEL.md section 6 names; backbone names with or without \"vit.\") and inputs:\n"
    "frames f32 [B,T,3,S,S] (already normalised), audio f32 [B,T,A,M] (normalised fbank), labels i64 [B];\n"
    "--inputs random draws them from train.seed.\n"
    "Writes logits, loss, grad.<name> for every trainable tensor (before any update) and the BatchNorm\n"
    "buffers after the step. Parameters missing from --params (or all, without it) are initialised as\n"
    "MODEL.md says from train.seed; --init-out writes the full parameter set used. --update-out then\n"
    "applies one optimizer update (train.optimizer, lr, head_lr, betas, eps, weight_decay; first step)\n"
    "and writes every parameter and buffer after it. The CPU backend computes in fp32 whatever the\n"
    "description's precision. --backend cuda runs the same ops on the GPU (auto: the GPU when one can be\n"
    "used); --precision picks its GEMM arithmetic: fp32 (strict, the parity mode), bf16 or tf32 tensor-core\n"
    "operands with fp32 accumulation. Storage is fp32 on both backends. --kernels picks where the CUDA\n"
    "kernels come from: nvcc (built into avgen, the default) or nvrtc (the same kernel library compiled\n"
    "at start for the device's architecture and cached; docs/kernels.md).\n";

static const char *const usage_bench =
    "usage: avgen bench MODEL.json [--precision bf16|fp32|tf32] [--kernels nvcc|nvrtc] [--warmup N] [--steps N]\n"
    "                   [--peak FLOPS] [--bandwidth BYTES_PER_S] [--json] [--set path=value]...\n"
    "\n"
    "Times full training steps (zero gradients, forward, backward, optimizer update) of the configuration\n"
    "on the GPU with parameters initialised from train.seed and random inputs: the step is captured once as\n"
    "a CUDA graph and replayed; each replay is timed with CUDA events after --warmup (5) replays, and the\n"
    "median of --steps (20) is reported with pairs/s, clips/s, achieved TFLOP/s (the planner's FLOP count),\n"
    "MFU against the device's dense bf16 peak (--peak overrides it), the roofline (every op kind at the\n"
    "device's memory bandwidth for its tensors' bytes or at the peak for its FLOPs; --bandwidth overrides\n"
    "the bandwidth), device memory against the planned arenas, and the time per op kind from one profiled\n"
    "eager step. --json prints one JSON object instead (docs/bench.md). Default precision: bf16; default\n"
    "kernels: nvcc (--kernels nvrtc: compiled at start, the report gives the compile or cache time).\n"
    "Exit status 1 when no GPU can be used.\n";

static const char *const usage_jit =
    "usage: avgen jit [DIR | MODEL.json [--set path=value ...]] [--arch N]\n"
    "\n"
    "Compiles CUDA kernels with NVRTC for sm_N (default 90) into the kernel cache ($AVGEN_CACHE_DIR, else\n"
    "$XDG_CACHE_HOME/avgen, else ~/.cache/avgen), so that a later --kernels nvrtc start on such a GPU reads\n"
    "them instead of compiling; reports the cold (compile) and warm (cached) times. No GPU needed. With DIR:\n"
    "the kernels.cu of a folder written by avgen emit (what its NAME-train --kernels nvrtc compiles); with\n"
    "MODEL.json: what avgen step and avgen bench --kernels nvrtc compile for that description (the kernel\n"
    "library and its shape-literal attention instances); with neither: the kernel library alone.\n"
    "docs/kernels.md.\n";

static const char *const usage_diff = ST_DIFF_USAGE;

static const char *const usage_train =
    "usage: avgen train MODEL.json --data PREPARED [--weights vit.safetensors] [--backend auto|cpu|cuda]\n"
    "                   [--precision bf16|fp32|tf32] [--kernels nvcc|nvrtc] [--out RUN] [--resume] [--threads N]\n"
    "                   [--checkpoint-every N] [--patience N] [--val-every N] [--max-steps N] [--quiet]\n"
    "                   [--in-process] [--set path=value]...\n"
    "\n"
    "Trains the configuration on a folder written by avgen prep: train.epochs epochs of shuffled clips\n"
    "(video.frames frames at video.stride), Adam/AdamW with the adapters at train.lr and the head at\n"
    "train.head_lr, train.warmup steps of linear warm-up then a constant, cosine or step schedule,\n"
    "train.grad_accum batches per update. Each epoch it validates on held-out training groups (groups\n"
    "with group % N == 0, --val-every, default 5; never the test split), keeps the best model\n"
    "(RUN/best.safetensors) and stops after --patience epochs without improvement (0: never). Writes\n"
    "RUN/log.jsonl (one JSON object per step: loss, lr, grad norm, clips/s, pairs/s, data wait, memory;\n"
    "one per epoch), checkpoints every --checkpoint-every steps and each epoch (atomically; --resume\n"
    "continues RUN exactly), RUN/summary.json and RUN/model.json. A non-finite loss stops the run and\n"
    "keeps the last good checkpoint. RUN defaults to runs/<name>. The backbone comes from --weights or\n"
    "backbone.weights (Hugging Face google/vit-base-patch16-224 safetensors), else from train.seed\n"
    "(tests only). The configuration's program is generated and built into RUN/program (again when the\n"
    "description changes) and runs the loop from its compiled straight-line step; --in-process runs the\n"
    "same step inside avgen instead (identical results). --backend cuda (auto: when a GPU can be used)\n"
    "runs the steps and the validation on the GPU, parameters, gradients and Adam state kept there\n"
    "(brought back for checkpoints and validation), with --precision's GEMMs (default bf16) and --kernels\n"
    "as avgen step. Exit status: 0 done, 1 failure, 2 bad input, 3 non-finite loss.\n";

static const char *const usage_eval =
    "usage: avgen eval MODEL.json --data PREPARED --checkpoint RUN|FILE [--split test|train|val] [--json]\n"
    "                  [--out DIR] [--weights vit.safetensors] [--val-every N] [--backend auto|cpu|cuda]\n"
    "                  [--precision bf16|fp32|tf32] [--kernels nvcc|nvrtc] [--set path=value]...\n"
    "\n"
    "Eval-mode forward over every non-overlapping clip of the split's videos: clip-level and video-level\n"
    "(mean of a video's clip logits) top-1 and top-5, per-class accuracy (video level) and the confusion\n"
    "matrix, printed as a table and written to DIR (default: the run folder, else the current folder) as\n"
    "eval-SPLIT.json, confusion-SPLIT.csv and confusion-SPLIT.png. --split val: the training groups with\n"
    "group % N == 0 (--val-every, default 5), as avgen train holds out. --checkpoint takes a run folder (its\n"
    "best.safetensors, else its latest checkpoint) or a checkpoint file. --json prints one object:\n"
    "{\"clip\": {\"top1\", \"top5\"}, \"video\": {\"top1\", \"top5\"}, \"per_class\": [...], ...}.\n"
    "--backend cuda (auto: the GPU when one can be used) runs the forward passes on the GPU, with\n"
    "--precision's GEMMs (default bf16) and --kernels as avgen step.\n";

static const char *const usage_classify =
    "usage: avgen classify MODEL.json --checkpoint RUN|FILE [--weights vit.safetensors] [--top K] [--json]\n"
    "                      [--classes RUN|PREPARED] [--threads N] [--quality Q | --raw] [--backend auto|cpu|cuda]\n"
    "                      [--precision bf16|fp32|tf32] [--kernels nvcc|nvrtc] [--set path=value]... VIDEO...\n"
    "\n"
    "Classifies video files with a trained run, as a deployed model does (the run's own program,\n"
    "RUN/program/NAME-infer, takes the same options but MODEL.json). Each video is decoded as avgen prep\n"
    "prepares one (frames at video.fps and the image size, stored as JPEG at --quality, default 3, or raw\n"
    "with --raw: as the data the run was trained on; 16 kHz mono sound) into a temporary folder, in rounds\n"
    "removed as they are done; every non-overlapping clip goes through the eval-mode forward as in avgen\n"
    "eval (a video shorter than a clip gives one padded clip), and a video's answer is the softmax of the\n"
    "mean of its clips' logits: one line a video with its K most probable classes (--top, default 5), or\n"
    "with --json one object {\"videos\": [{\"video\", \"status\", \"classified\", \"clips\", \"top\":\n"
    "[{\"label\", \"class\", \"probability\"}], \"logits\", ...}], ...} (docs/training.md). Class names come\n"
    "from the run's classes.json (--classes: another run, or the prepared folder trained on). --checkpoint\n"
    "takes a run folder (its best.safetensors, else its latest checkpoint) or a checkpoint file; --weights\n"
    "the backbone the run was trained with. A video that cannot be classified (missing, unreadable, no\n"
    "sound for a model that listens) is named in one sentence and the others are still classified; the\n"
    "exit status is then 2. --threads: decoding and loader threads (default 2). --backend cuda (auto: the\n"
    "GPU when one can be used) runs the forward passes on the GPU, with --precision's GEMMs (default bf16).\n";

static const char *const usage_compare =
    "usage: avgen compare RUN...\n"
    "\n"
    "Prints the runs side by side: configuration, trainable parameters, training throughput, best\n"
    "validation top-1, and test accuracy (clip and video top-1) where avgen eval has written it.\n";

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
    const char *params, *inputs, *init_out, *backend, *update_out, *precision, *peak, *kernels, *bandwidth;
    int warmup, steps, arch;
    const char *data, *weights, *checkpoint, *split;
    int resume, threads, checkpoint_every, patience, val_every, quiet, in_process;
    long long max_steps;
    const char *classes;
    int top, quality, raw;
    const char **videos;       /* classify's files (points into argv; malloc'd array, freed by the command) */
    int n_videos;
} args_t;

/* Every command (avgen help's, and the suggestions for a mistyped one). */
static const char *const k_commands[] = {"check", "plan", "emit", "devices", "help", "step", "diff", "synth", "prep",
                                         "bench-loader", "train", "eval", "classify", "compare", "bench",
                                         "sweep", "jit"};
static const int k_n_commands = (int)(sizeof k_commands / sizeof k_commands[0]);

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "avgen %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see avgen %s --help)\n", cmd);
    return 2;
}

/* Parses the options of a command; returns -1 to continue, else an exit status. */
static int parse_args(const char *cmd, const char *usage, int argc, char **argv, args_t *a, int want_model) {
    memset(a, 0, sizeof *a);
    a->warmup = -1; /* not given: the bench's default (0 is a valid count) */
    const char *seen[64]; /* the options so far (values are skipped below, so never taken for one) */
    int nseen = 0;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        /* an option given twice (but --set, which adds up) is refused: which of the two was meant cannot be told */
        if (s[0] == '-' && s[1] && strcmp(s, "--set") && strncmp(s, "--set=", 6)) {
            const char *name = !strcmp(s, "-o") ? "--out" : s;
            for (int j = 0; j < nseen; j++)
                if (!strcmp(seen[j], name)) return usage_error(cmd, "%s given twice", s);
            if (nseen < 64) seen[nseen++] = name;
        }
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(s, "--set") || !strncmp(s, "--set=", 6)) {
            const char *v = s[5] == '=' ? s + 6 : (i + 1 < argc ? argv[++i] : NULL);
            if (!v) return usage_error(cmd, "%s needs a value path.to.field=value", "--set");
            if (a->nsets == MAX_SETS) return usage_error(cmd, "at most %s --set options", "64");
            a->sets[a->nsets++] = v;
        } else if (((!strcmp(cmd, "step") || !strcmp(cmd, "bench")) &&
                    (!strcmp(s, "--precision") || !strcmp(s, "--peak") || !strcmp(s, "--kernels") ||
                     (!strcmp(cmd, "bench") && !strcmp(s, "--bandwidth")))) ||
                   (!strcmp(cmd, "plan") && (!strcmp(s, "--peak") || !strcmp(s, "--bandwidth"))) ||
                   ((!strcmp(cmd, "train") || !strcmp(cmd, "eval") || !strcmp(cmd, "classify")) &&
                    (!strcmp(s, "--precision") || !strcmp(s, "--kernels")))) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", s);
            *(!strcmp(s, "--precision") ? &a->precision : !strcmp(s, "--peak") ? &a->peak
              : !strcmp(s, "--bandwidth") ? &a->bandwidth : &a->kernels) = argv[++i];
        } else if (!strcmp(cmd, "jit") && !strcmp(s, "--arch")) {
            char *end;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
            if (i + 1 >= argc || *end || v < 50 || v > 200)
                return usage_error(cmd, "%s needs a CUDA architecture number such as 80 or 90", s);
            i++;
            a->arch = (int)v;
        } else if (!strcmp(cmd, "bench") && (!strcmp(s, "--warmup") || !strcmp(s, "--steps"))) {
            char *end;
            long long v = i + 1 < argc ? strtoll(argv[i + 1], &end, 10) : -1;
            const int warm = !strcmp(s, "--warmup");
            if (i + 1 >= argc || *end || v < (warm ? 0 : 1) || v > 100000)
                return usage_error(cmd, warm ? "%s needs an integer from 0 to 100000" : "%s needs an integer from 1 to 100000", s);
            i++;
            *(warm ? &a->warmup : &a->steps) = (int)v;
        } else if (!strcmp(cmd, "step") && (!strcmp(s, "--params") || !strcmp(s, "--inputs") ||
                                             !strcmp(s, "--init-out") || !strcmp(s, "--backend") ||
                                             !strcmp(s, "--update-out"))) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", s);
            const char **slot = !strcmp(s, "--params") ? &a->params : !strcmp(s, "--inputs") ? &a->inputs
                              : !strcmp(s, "--init-out") ? &a->init_out : !strcmp(s, "--update-out") ? &a->update_out
                              : &a->backend;
            *slot = argv[++i];
        } else if (!strcmp(cmd, "classify") && (!strcmp(s, "--weights") || !strcmp(s, "--checkpoint") ||
                                                 !strcmp(s, "--backend") || !strcmp(s, "--classes"))) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", s);
            *(!strcmp(s, "--weights") ? &a->weights : !strcmp(s, "--checkpoint") ? &a->checkpoint
              : !strcmp(s, "--classes") ? &a->classes : &a->backend) = argv[++i];
        } else if (!strcmp(cmd, "classify") && (!strcmp(s, "--top") || !strcmp(s, "--threads") || !strcmp(s, "--quality"))) {
            char *end;
            long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10) : -1;
            const int q = !strcmp(s, "--quality");
            if (i + 1 >= argc || *end || v < (q ? 2 : 1) || v > (!strcmp(s, "--top") ? 100000 : q ? 31 : 64))
                return usage_error(cmd, !strcmp(s, "--top") ? "%s needs a positive integer"
                                        : q ? "%s needs a JPEG qscale from 2 (best) to 31" : "%s needs an integer from 1 to 64", s);
            i++;
            *(!strcmp(s, "--top") ? &a->top : q ? &a->quality : &a->threads) = (int)v;
        } else if (!strcmp(cmd, "classify") && !strcmp(s, "--raw")) {
            a->raw = 1;
        } else if ((!strcmp(cmd, "train") || !strcmp(cmd, "eval")) &&
                   (!strcmp(s, "--data") || !strcmp(s, "--weights") || !strcmp(s, "--checkpoint") || !strcmp(s, "--split") ||
                    !strcmp(s, "--backend"))) {
            if (i + 1 >= argc) return usage_error(cmd, "%s needs a value", s);
            const char **slot = !strcmp(s, "--data") ? &a->data : !strcmp(s, "--weights") ? &a->weights
                              : !strcmp(s, "--checkpoint") ? &a->checkpoint : !strcmp(s, "--split") ? &a->split : &a->backend;
            *slot = argv[++i];
        } else if ((!strcmp(cmd, "train") && (!strcmp(s, "--threads") || !strcmp(s, "--checkpoint-every") ||
                                               !strcmp(s, "--patience") || !strcmp(s, "--max-steps"))) ||
                   ((!strcmp(cmd, "train") || !strcmp(cmd, "eval")) && !strcmp(s, "--val-every"))) {
            char *end;
            long long v = i + 1 < argc ? strtoll(argv[i + 1], &end, 10) : -1;
            if (i + 1 >= argc || *end || v < 0 || v > 100000000) return usage_error(cmd, "%s needs a non-negative integer", s);
            if (!strcmp(s, "--threads") && v > 256)
                return usage_error(cmd, "%s takes at most 256 loader threads", s);
            i++;
            if (!strcmp(s, "--threads")) a->threads = (int)v;
            else if (!strcmp(s, "--checkpoint-every")) a->checkpoint_every = (int)v;
            else if (!strcmp(s, "--patience")) a->patience = (int)v;
            else if (!strcmp(s, "--val-every")) a->val_every = (int)v;
            else a->max_steps = v;
        } else if (!strcmp(cmd, "train") && (!strcmp(s, "--resume") || !strcmp(s, "--quiet") || !strcmp(s, "--in-process"))) {
            if (!strcmp(s, "--resume")) a->resume = 1;
            else if (!strcmp(s, "--quiet")) a->quiet = 1;
            else a->in_process = 1;
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
        } else if ((want_model || !strcmp(cmd, "jit")) && !a->model) {
            a->model = s;
        } else if (!strcmp(cmd, "classify")) {
            if (!a->videos && !(a->videos = calloc((size_t)argc, sizeof *a->videos))) return usage_error(cmd, "%s", "out of memory");
            a->videos[a->n_videos++] = s;
        } else {
            return usage_error(cmd, "unexpected argument %s", s);
        }
    }
    if (a->json && strcmp(cmd, "plan") && strcmp(cmd, "eval") && strcmp(cmd, "bench") && strcmp(cmd, "classify"))
        return usage_error(cmd, "unknown option %s", "--json");
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

/* --peak, --bandwidth: a finite number in [lo, hi] (a device's FLOP/s or bytes/s); 0 or -1 */
static int device_rate(const char *text, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    const double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int cmd_plan(int argc, char **argv) {
    args_t a;
    int r = parse_args("plan", usage_plan, argc, argv, &a, 1);
    if (r >= 0) return r;
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    warn_weights(&s);
    double peak = 0, bandwidth = 0;
    if (a.peak && device_rate(a.peak, 1e9, 1e18, &peak))
        return usage_error("plan", "%s needs a positive number of FLOP/s (from 1e9 to 1e18)", "--peak");
    if (a.bandwidth && device_rate(a.bandwidth, 1e6, 1e15, &bandwidth))
        return usage_error("plan", "%s needs a positive number of bytes per second (from 1e6 to 1e15)", "--bandwidth");
    gen_plan p;
    if (gen_make_plan(&s, !a.no_search, &p) != 0) {
        fprintf(stderr, "error: %s: out of memory while planning.\n", a.model);
        return 1;
    }
    if (peak > 0) p.roof_peak = peak;
    if (bandwidth > 0) p.roof_bandwidth = bandwidth;
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

typedef struct {
    gen_ir ir;
    gen_mem mem;
    gen_graph graph;
} built_graph;

static int build_graph(const gen_spec *s, int train, built_graph *b) {
    memset(b, 0, sizeof *b);
    if (gen_lower(s, s->memory.recompute, train, &b->ir)) return -1;
    gen_pack(&b->ir, &b->mem);
    if (gen_graph_build(&b->ir, &b->mem, &b->graph)) {
        gen_ir_free(&b->ir);
        return -1;
    }
    return 0;
}

static void free_graph(built_graph *b) {
    gen_graph_free(&b->graph);
    gen_ir_free(&b->ir);
}

static int cmd_step(int argc, char **argv) {
    args_t a;
    int r = parse_args("step", usage_step, argc, argv, &a, 1);
    if (r >= 0) return r;
    if (!a.inputs) return usage_error("step", "%s", "--inputs I.safetensors is required");
    if (!a.out) return usage_error("step", "%s", "--out O.safetensors is required");
    rt_backend_opts bo = {a.backend, a.precision, 0, a.kernels, NULL, NULL, NULL, NULL, 0, 0};
    {
        char e2[256];
        if ((r = rt_backend_check(&bo, e2, sizeof e2))) {
            fprintf(stderr, "error: %s.\n", e2);
            return r;
        }
    }
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    s.precision = PREC_FP32; /* both backends store fp32 */
    built_graph bg;
    avgen_consts k;
    if (build_graph(&s, 1, &bg)) {
        fprintf(stderr, "error: out of memory while lowering %s.\n", s.name);
        return 1;
    }
    gen_consts(&s, &k);
    char err[1024] = "", tag[300];
    snprintf(tag, sizeof tag, "avgen step: %s", s.name);
    const rt_step_opts so = {a.params, a.inputs, a.out, a.init_out, a.update_out, tag};
    const int rc = rt_step_run(&bg.graph.g, &k, (uint64_t)s.train.seed, &so, &bo, NULL, NULL, NULL, stderr, err, sizeof err);
    free_graph(&bg);
    if (rc) fprintf(stderr, "error: %s.\n", err);
    return rc;
}

static int cmd_bench(int argc, char **argv) {
    args_t a;
    int r = parse_args("bench", usage_bench, argc, argv, &a, 1);
    if (r >= 0) return r;
    char err[1024] = "";
    const rt_backend_opts bo = {"cuda", a.precision, 0, a.kernels, NULL, NULL, NULL, NULL, 0, 0};
    if ((r = rt_backend_check(&bo, err, sizeof err))) {
        fprintf(stderr, "error: %s.\n", err);
        return r;
    }
    double peak = 0, bandwidth = 0;
    if (a.peak && device_rate(a.peak, 1e9, 1e18, &peak))
        return usage_error("bench", "%s needs a positive number of FLOP/s (from 1e9 to 1e18)", "--peak");
    if (a.bandwidth && device_rate(a.bandwidth, 1e6, 1e15, &bandwidth))
        return usage_error("bench", "%s needs a positive number of bytes per second (from 1e6 to 1e15)", "--bandwidth");
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    s.precision = PREC_FP32; /* the CUDA backend stores fp32; --precision picks the GEMM arithmetic */
    built_graph bg;
    avgen_consts k;
    if (build_graph(&s, 1, &bg)) {
        fprintf(stderr, "error: out of memory while lowering %s.\n", s.name);
        return 1;
    }
    gen_consts(&s, &k);
    static const char *kinds[AVGEN_OP_KIND_COUNT];
    for (int i = 0; i < AVGEN_OP_KIND_COUNT; i++) kinds[i] = gen_opkind_name((gen_opkind)i);
    rt_bench_opts o;
    memset(&o, 0, sizeof o);
    o.warmup = a.warmup, o.steps = a.steps, o.peak_flops = peak, o.bandwidth = bandwidth, o.name = s.name;
    o.kind_names = kinds, o.json_path = a.json ? "/dev/stdout" : NULL, o.planned_peak = bg.mem.peak;
    /* the interpreter runs the ops (NULL phase functions) */
    const int rc = rt_bench_run(&bg.graph.g, &k, (uint64_t)s.train.seed, &bo, NULL, NULL, NULL, &o,
                                a.json ? stderr : stdout, err, sizeof err);
    if (rc) fprintf(stderr, "error: %s.\n", err);
    free_graph(&bg);
    return rc;
}

static int cmd_diff(int argc, char **argv) { return st_diff_main(argc, argv); }

/* --------------------------------------------------------------------------------- train, eval, compare */

/* The backend options of train and eval: on the GPU (--backend cuda, or auto with one) bf16 GEMMs unless
 * --precision says otherwise. */
static rt_backend_opts loop_backend(const args_t *a) {
    rt_backend_opts bo = {a->backend, a->precision, 0, a->kernels, NULL, NULL, NULL, NULL, 0, 0};
    if (a->backend && strcmp(a->backend, "cpu") && !bo.precision) bo.precision = "bf16";
    return bo;
}

static int check_backend(const char *cmd, const char *backend) {
    if (!backend || !strcmp(backend, "cpu") || !strcmp(backend, "auto")) return 0;
    if (!strcmp(backend, "cuda")) return 0;
    fprintf(stderr, "error: avgen %s --backend %s is not a backend; expected auto, cpu or cuda.\n", cmd, backend);
    return 2;
}

static const char *weights_of(const args_t *a, const gen_spec *s) {
    if (a->weights) return a->weights;
    return s->backbone.weights[0] ? s->backbone.weights_path : NULL;
}

/* Runs argv (a compiler), output to log; 0 when it exits 0. */
static int run_logged(char *const *argv, const char *log) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (!f || dup2(fileno(stdout), 2) < 0) _exit(127);
        execv(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) < 0) return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int newer(const char *a, const char *b) { /* a is newer than b, or b is missing */
    struct stat sa, sb;
    if (stat(b, &sb)) return 1;
    if (stat(a, &sa)) return 0;
    return sa.st_mtim.tv_sec > sb.st_mtim.tv_sec ||
           (sa.st_mtim.tv_sec == sb.st_mtim.tv_sec && sa.st_mtim.tv_nsec > sb.st_mtim.tv_nsec);
}

/* Generates the configuration's program into dir (fp32, the CPU backend) and compiles it when stale.
 * 0 with prog set, or -1 with err (then avgen trains in-process). */
static int build_program(const gen_spec *spec, const char *dir, char *prog, size_t plen, int quiet, char *err,
                         size_t errlen) {
    struct stat st;
    if (stat(AVGEN_TC_AVRT, &st) || stat(AVGEN_TC_RUNTIME_INCLUDE "/rt_model.h", &st) || stat(AVGEN_TC_CC, &st)) {
        snprintf(err, errlen, "the runtime this avgen was built with (%s) is not there any more", AVGEN_TC_AVRT);
        return -1;
    }
    gen_spec s = *spec;
    s.precision = PREC_FP32;
    char msg[1024];
    if (gen_emit(&s, dir, 1, msg, sizeof msg)) {
        snprintf(err, errlen, "%s", msg);
        return -1;
    }
    /* NAME-train (which avgen train becomes) and NAME-infer (the deployable classifier of the run: avgen classify's
     * twin), each from the folder's model.c, kernels_src.c and its main, linked with the runtime */
    static const char *const which[2] = {"train", "infer"};
    int said = 0;
    for (int w = 0; w < 2; w++) {
        char model_c[1400], main_c[1400], ksrc_c[1400], bin[1400], log[1400];
        snprintf(model_c, sizeof model_c, "%s/model.c", dir);
        snprintf(main_c, sizeof main_c, "%s/main_%s.c", dir, which[w]);
        snprintf(ksrc_c, sizeof ksrc_c, "%s/kernels_src.c", dir);
        snprintf(bin, sizeof bin, "%s/%s-%s", dir, s.name, which[w]);
        snprintf(log, sizeof log, "%s/build%s.log", dir, w ? "-infer" : "");
        if (!w) snprintf(prog, plen, "%s", bin);
        if (!newer(model_c, bin) && !newer(main_c, bin) && !newer(ksrc_c, bin) && !newer(AVGEN_TC_AVRT, bin))
            continue; /* up to date */
        if (!quiet && !said++) fprintf(stderr, "avgen train: building the programs of %s (once per configuration)\n", s.name);
        char *argv[128];
        int n = 0;
        char inc1[1300], inc2[1300];
        snprintf(inc1, sizeof inc1, "-I%s", dir);
        snprintf(inc2, sizeof inc2, "-I%s", AVGEN_TC_RUNTIME_INCLUDE);
        argv[n++] = (char *)AVGEN_TC_CC;
        for (int i = 0; avgen_tc_flags[i] && n < 100; i++) argv[n++] = (char *)avgen_tc_flags[i];
        argv[n++] = inc1, argv[n++] = inc2, argv[n++] = model_c, argv[n++] = main_c, argv[n++] = ksrc_c;
        argv[n++] = (char *)AVGEN_TC_AVRT;
        for (int i = 0; avgen_tc_libs[i] && n < 120; i++) argv[n++] = (char *)avgen_tc_libs[i];
        /* the compiler writes a temporary file, renamed when complete: a killed build never leaves a half binary */
        char tmp[1500];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", bin, (long)getpid());
        argv[n++] = "-o", argv[n++] = tmp, argv[n] = NULL;
        if (run_logged(argv, log) || rename(tmp, bin)) {
            unlink(tmp);
            snprintf(err, errlen, "compiling the program failed (see %.900s)", log);
            return -1;
        }
    }
    return 0;
}

static int cmd_train(int argc, char **argv) {
    args_t a;
    int r = parse_args("train", usage_train, argc, argv, &a, 1);
    if (r >= 0) return r;
    if (!a.data) return usage_error("train", "%s", "--data PREPARED is required");
    if ((r = check_backend("train", a.backend))) return r;
    {  /* --precision and --kernels too, before anything is written or built */
        const rt_backend_opts chk = {a.backend, a.precision, 0, a.kernels, NULL, NULL, NULL, NULL, 0, 0};
        char e2[512];
        if ((r = rt_backend_check(&chk, e2, sizeof e2))) {
            fprintf(stderr, "error: %s.\n", e2);
            return r;
        }
    }
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    s.precision = PREC_FP32; /* the CPU backend */
    const char *w = weights_of(&a, &s);
    if (!w) warn_weights(&s);
    char run[1024];
    if (a.out) snprintf(run, sizeof run, "%s", a.out);
    else {
        mkdir("runs", 0777);
        snprintf(run, sizeof run, "runs/%s", s.name);
    }
    struct stat st;
    char cj[1200];
    snprintf(cj, sizeof cj, "%s/checkpoint.json", run);
    if (!a.resume && stat(cj, &st) == 0) {
        fprintf(stderr, "error: %s already holds a run; pass --resume to continue it or --out for a new folder.\n", run);
        return 2;
    }
    if (rt_mkdirs(run)) {
        fprintf(stderr, "error: cannot create %s (%s).\n", run, strerror(errno));
        return 1;
    }
    char mj[1200], hash[17];
    snprintf(mj, sizeof mj, "%s/model.json", run);
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)gen_resume_hash(&s)); /* --resume checks it */
    char *canon = gen_spec_to_json(&s);
    size_t cl = strlen(canon);
    char *withnl = malloc(cl + 2);
    if (withnl) memcpy(withnl, canon, cl), withnl[cl] = '\n', withnl[cl + 1] = 0;
    int wrote = withnl && rt_write_atomic(mj, withnl) == 0;
    free(withnl);
    free(canon);
    if (!wrote) {
        fprintf(stderr, "error: cannot write %s (%s).\n", mj, strerror(errno));
        return 1;
    }
    if (!a.in_process) {
        /* The configuration's own program: build it when stale, then become it. */
        char pdir[1200], prog[1400], berr[1024];
        snprintf(pdir, sizeof pdir, "%s/program", run);
        if (build_program(&s, pdir, prog, sizeof prog, a.quiet, berr, sizeof berr) == 0) {
            char nb[7][32];
            const char *pv[40];
            int n = 0;
            pv[n++] = prog, pv[n++] = "--train", pv[n++] = "--data", pv[n++] = a.data, pv[n++] = "--out", pv[n++] = run;
            if (w) pv[n++] = "--weights", pv[n++] = w;
            if (a.resume) pv[n++] = "--resume";
            if (a.quiet) pv[n++] = "--quiet";
            snprintf(nb[0], 32, "%d", a.threads > 0 ? a.threads : 2);
            snprintf(nb[1], 32, "%d", a.checkpoint_every);
            snprintf(nb[2], 32, "%d", a.patience);
            snprintf(nb[3], 32, "%d", a.val_every > 1 ? a.val_every : 5);
            snprintf(nb[4], 32, "%lld", a.max_steps);
            pv[n++] = "--threads", pv[n++] = nb[0], pv[n++] = "--checkpoint-every", pv[n++] = nb[1];
            pv[n++] = "--patience", pv[n++] = nb[2], pv[n++] = "--val-every", pv[n++] = nb[3];
            pv[n++] = "--max-steps", pv[n++] = nb[4];
            if (a.backend) pv[n++] = "--backend", pv[n++] = a.backend;
            if (a.precision) pv[n++] = "--precision", pv[n++] = a.precision;
            if (a.kernels) pv[n++] = "--kernels", pv[n++] = a.kernels;
            pv[n] = NULL;
            fflush(NULL);
            execv(prog, (char *const *)pv);
            fprintf(stderr, "avgen train: cannot run %s (%s); training in-process\n", prog, strerror(errno));
        } else if (!a.quiet) {
            fprintf(stderr, "avgen train: %s; training in-process\n", berr);
        }
    }
    /* In-process: the same graphs, interpreted. */
    built_graph tg, eg;
    if (build_graph(&s, 1, &tg) || build_graph(&s, 0, &eg)) {
        fprintf(stderr, "error: out of memory while lowering %s.\n", s.name);
        return 1;
    }
    avgen_consts k;
    gen_consts(&s, &k);
    gen_plan p;
    gen_make_plan(&s, 0, &p);
    rt_train_cfg c;
    memset(&c, 0, sizeof c);
    c.train_g = &tg.graph.g, c.eval_g = &eg.graph.g, c.k = &k;
    c.data = a.data, c.run_dir = run, c.weights = w, c.name = s.name, c.resume = a.resume, c.config_hash = hash;
    c.epochs = s.train.epochs, c.grad_accum = s.train.grad_accum, c.warmup = s.train.warmup;
    c.schedule = s.train.schedule == SCHED_COSINE ? RT_SCHED_COSINE : s.train.schedule == SCHED_STEP ? RT_SCHED_STEP : RT_SCHED_CONSTANT;
    c.step_every = s.train.step_every, c.step_gamma = s.train.step_gamma;
    c.frames = s.video.frames, c.stride = s.video.stride;
    c.threads = a.threads > 0 ? a.threads : 2;
    c.checkpoint_every = a.checkpoint_every, c.patience = a.patience, c.val_every = a.val_every > 1 ? a.val_every : 5;
    c.max_steps = a.max_steps, c.quiet = a.quiet, c.seed = (uint64_t)s.train.seed;
    c.audio_rows = s.audio.target_frames, c.mel_bins = s.audio.mel_bins, c.window_seconds = s.audio.window_seconds;
    c.norm_mean = s.audio.norm_mean, c.norm_std = s.audio.norm_std, c.trainable_params = p.trainable;
    rt_backend_opts bo = loop_backend(&a);
    c.backend = &bo;
    char err[1024] = "";
    r = rt_train(&c, err, sizeof err);
    free_graph(&tg);
    free_graph(&eg);
    if (r) fprintf(stderr, "%serror: %s.\n", a.quiet ? "" : "\n", err);
    else if (!a.quiet) fprintf(stderr, "\navgen train: done: %s (log.jsonl, summary.json, best.safetensors)\n", run);
    return r;
}

/* Class names by label, from the manifest. */
static void class_names(const char *data, char names[][128], int n) {
    ld_class_names(data, names, n);
    for (int i = 0; i < n; i++)
        if (!names[i][0]) snprintf(names[i], 128, "%d", i);
}

/* The first field (its path, and both values) at which a and b differ, of those both have, leaving out the fields that
 * do not change what a trained model computes from a clip; 1 when there is one. */
static int spec_differs(json_object *a, json_object *b, const char *path, char *where, size_t n, char *va, char *vb,
                        size_t vn) {
    static const char *const free_fields[] = {"name", "description", "train", "memory", "precision", "video.frames",
                                              "video.stride", "backbone.weights"};
    for (size_t i = 0; i < sizeof free_fields / sizeof *free_fields; i++)
        if (!strcmp(path, free_fields[i])) return 0;
    if (json_object_is_type(a, json_type_object) && json_object_is_type(b, json_type_object)) {
        json_object_object_foreach(a, key, av) {
            json_object *bv;
            char sub[256];
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", key);
            if (json_object_object_get_ex(b, key, &bv) && spec_differs(av, bv, sub, where, n, va, vb, vn)) return 1;
        }
        return 0;
    }
    if (json_object_equal(a, b)) return 0;
    snprintf(where, n, "%s", path);
    snprintf(va, vn, "%s", json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    snprintf(vb, vn, "%s", json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    return 1;
}

/* eval and classify: the description given against the one the checkpoint's run trained with (its model.json), where
 * there is one. A field that changes what the model computes from a clip (the backbone, the adapters, the head,
 * the image and its normalisation, the sound's features: audio.norm_mean after a --set forgotten) must match, or the
 * answers would be wrong without a word; the clip length, the batch and the training settings may differ. 0, or 2
 * with the sentence printed. */
static int check_run_description(const char *cmd, const gen_spec *s, const char *checkpoint, int seeded_backbone) {
    char run[1400], mj[1500];
    struct stat st;
    if (stat(checkpoint, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(run, sizeof run, "%s", checkpoint);
    else {
        char tmp[1400];
        snprintf(tmp, sizeof tmp, "%s", checkpoint);
        snprintf(run, sizeof run, "%s", dirname(tmp));
    }
    snprintf(mj, sizeof mj, "%s/model.json", run);
    json_object *theirs = json_object_from_file(mj);
    if (!theirs) return 0; /* not a run folder of avgen train */
    json_object *ours = gen_spec_to_json_object(s);
    char where[256] = "", va[200] = "", vb[200] = "";
    int differs = ours && spec_differs(ours, theirs, "", where, sizeof where, va, vb, sizeof va);
    /* without backbone weights the frozen backbone is drawn from train.seed, and no checkpoint holds it */
    json_object *t1, *t2, *s1, *s2;
    if (!differs && seeded_backbone && json_object_object_get_ex(ours, "train", &t1) &&
        json_object_object_get_ex(theirs, "train", &t2) && json_object_object_get_ex(t1, "seed", &s1) &&
        json_object_object_get_ex(t2, "seed", &s2) && !json_object_equal(s1, s2)) {
        differs = 1;
        snprintf(where, sizeof where, "train.seed (without backbone weights, the backbone's)");
        snprintf(va, sizeof va, "%s", json_object_to_json_string(s1));
        snprintf(vb, sizeof vb, "%s", json_object_to_json_string(s2));
    }
    json_object_put(ours);
    json_object_put(theirs);
    if (!differs) return 0;
    char field[256];
    snprintf(field, sizeof field, "%s", where);
    field[strcspn(field, " ")] = 0;
    fprintf(stderr, "error: avgen %s: %s is %s in the description given but %s in the run's %s, which the checkpoint was "
                    "trained with; give the run's settings (--set %s=%s) or its description (%s).\n",
            cmd, where, va, vb, mj, field, vb, mj);
    return 2;
}

static int cmd_eval(int argc, char **argv) {
    args_t a;
    int r = parse_args("eval", usage_eval, argc, argv, &a, 1);
    if (r >= 0) return r;
    if (!a.data) return usage_error("eval", "%s", "--data PREPARED is required");
    if (!a.checkpoint) return usage_error("eval", "%s", "--checkpoint RUN|FILE is required");
    if ((r = check_backend("eval", a.backend))) return r;
    const char *split = a.split ? a.split : "test";
    if (strcmp(split, "test") && strcmp(split, "train") && strcmp(split, "val"))
        return usage_error("eval", "--split %s is not test, train or val", split);
    gen_spec s;
    if ((r = load(&a, &s))) return r;
    s.precision = PREC_FP32;
    if ((r = check_run_description("eval", &s, a.checkpoint, !weights_of(&a, &s)))) return r;
    /* the checkpoint: a run folder (best, else latest) or a file */
    char ck[1400], outdir[1024], err[1024] = "";
    struct stat st;
    snprintf(outdir, sizeof outdir, "%s", a.out ? a.out : ".");
    if (stat(a.checkpoint, &st) == 0 && S_ISDIR(st.st_mode) && !a.out) snprintf(outdir, sizeof outdir, "%s", a.checkpoint);
    if ((r = rt_checkpoint_path(a.checkpoint, ck, sizeof ck, err, sizeof err))) {
        fprintf(stderr, "error: %s.\n", err);
        return r;
    }
    built_graph eg;
    if (build_graph(&s, 0, &eg)) {
        fprintf(stderr, "error: out of memory while lowering %s.\n", s.name);
        return 1;
    }
    avgen_consts k;
    gen_consts(&s, &k);
    avgen_ctx c;
    st_file *wf = NULL;
    ld_loader *l = NULL;
    rt_eval_result res;
    int have_res = 0;
    const char *w = weights_of(&a, &s);
    r = 0;
    if ((r = rt_ctx_init(&c, &eg.graph.g, &k, err, sizeof err))) { free_graph(&eg); fprintf(stderr, "error: %s.\n", err); return r; }
    if (w && !(wf = st_open(w, err, sizeof err))) r = 2;
    if (!r) r = rt_init_params(&c, wf, (uint64_t)s.train.seed, NULL, NULL, err, sizeof err);
    if (!r && rt_load_checkpoint(&c, ck, err, sizeof err)) r = 2;
    rt_backend_opts bo = loop_backend(&a);
    bo.prefetch_inputs = 1; /* the next batch goes up while a forward pass runs */
    int cuda = 0;
    if (!r && (r = rt_backend_check(&bo, err, sizeof err)) == 0 && rt_backend_attach(&c, &bo, &cuda, err, sizeof err)) r = 1;
    if (!r) {
        ld_config lc;
        memset(&lc, 0, sizeof lc);
        lc.dir = a.data, lc.split = !strcmp(split, "val") ? "train" : split;
        lc.holdout = !strcmp(split, "val") ? LD_VAL_ONLY : LD_ALL, lc.val_every = a.val_every > 1 ? a.val_every : 5;
        lc.frames = s.video.frames, lc.stride = s.video.stride, lc.batch = s.train.batch, lc.train = 0;
        lc.threads = 2, lc.ring = 5, lc.audio_rows = s.audio.target_frames, lc.mel_bins = s.audio.mel_bins;
        lc.window_seconds = s.audio.window_seconds, lc.norm_mean = s.audio.norm_mean, lc.norm_std = s.audio.norm_std;
        if (cuda) lc.host_alloc = rt_cuda_host_alloc, lc.host_free = rt_cuda_host_free; /* uploaded from there */
        if (!(l = ld_open(&lc, err, sizeof err))) r = 2;
        else if (ld_classes(l) > s.head.classes) {
            snprintf(err, sizeof err, "%s has %d classes but the configuration's head has %d (head.classes)", a.data,
                     ld_classes(l), s.head.classes);
            r = 2;
        } else if (ld_size(l) != s.backbone.image_size) {
            snprintf(err, sizeof err, "%s holds %dx%d frames but the configuration's image is %d", a.data, ld_size(l),
                     ld_size(l), s.backbone.image_size);
            r = 2;
        } else if (rt_evaluate(&c, NULL, l, &res, err, sizeof err)) r = 1;
        else have_res = 1;
    }
    if (!r) {
        const int C = s.head.classes;
        char (*names)[128] = calloc((size_t)C, 128);
        class_names(a.data, names, C);
        json_object *o = json_object_new_object(), *cl = json_object_new_object(), *vi = json_object_new_object();
        json_object_object_add(cl, "top1", json_object_new_double(rt_acc_top1(&res.clip)));
        json_object_object_add(cl, "top5", json_object_new_double(rt_acc_top5(&res.clip)));
        json_object_object_add(cl, "count", json_object_new_int64(res.clip.n));
        json_object_object_add(vi, "top1", json_object_new_double(rt_acc_top1(&res.video)));
        json_object_object_add(vi, "top5", json_object_new_double(rt_acc_top5(&res.video)));
        json_object_object_add(vi, "count", json_object_new_int64(res.video.n));
        json_object_object_add(o, "name", json_object_new_string(s.name));
        json_object_object_add(o, "split", json_object_new_string(split));
        json_object_object_add(o, "checkpoint", json_object_new_string(ck));
        json_object_object_add(o, "clip", cl);
        json_object_object_add(o, "video", vi);
        json_object_object_add(o, "loss", json_object_new_double(res.loss));
        json_object_object_add(o, "bad_clips", json_object_new_int64(res.bad_clips));
        json_object *pc = json_object_new_array();
        for (int i = 0; i < C; i++) {
            double acc = rt_acc_class(&res.video, i);
            if (acc < 0) continue;
            int64_t n = 0;
            for (int j = 0; j < C; j++) n += res.video.confusion[(size_t)i * C + j];
            json_object *e = json_object_new_object();
            json_object_object_add(e, "label", json_object_new_int(i));
            json_object_object_add(e, "class", json_object_new_string(names[i]));
            json_object_object_add(e, "accuracy", json_object_new_double(acc));
            json_object_object_add(e, "videos", json_object_new_int64(n));
            json_object_array_add(pc, e);
        }
        json_object_object_add(o, "per_class", pc);
        char p1[1200], p2[1200], p3[1200];
        snprintf(p1, sizeof p1, "%s/eval-%s.json", outdir, split);
        snprintf(p2, sizeof p2, "%s/confusion-%s.csv", outdir, split);
        snprintf(p3, sizeof p3, "%s/confusion-%s.png", outdir, split);
        const char *txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                JSON_C_TO_STRING_NOSLASHESCAPE);
        size_t tl = strlen(txt);
        char *tn = malloc(tl + 2);
        if (tn) memcpy(tn, txt, tl), tn[tl] = '\n', tn[tl + 1] = 0;
        errno = 0;
        int wrote = tn && rt_write_atomic(p1, tn) == 0;
        free(tn);
        if (!wrote || rt_acc_write_csv(&res.video, p2) || rt_acc_write_png(&res.video, p3, C <= 20 ? 24 : 10)) {
            snprintf(err, sizeof err, "cannot write the results into %.900s (%s)", outdir,
                     errno ? strerror(errno) : "out of memory");
            r = 1;
        }
        if (a.json) puts(txt);
        else {
            printf("%s on %s (%s): %lld clips of %lld videos\n", s.name, split, a.data, (long long)res.clip.n,
                   (long long)res.video.n);
            printf("  %-8s %8s %8s\n", "", "top-1", "top-5");
            printf("  %-8s %8.4f %8.4f\n", "clip", rt_acc_top1(&res.clip), rt_acc_top5(&res.clip));
            printf("  %-8s %8.4f %8.4f\n", "video", rt_acc_top1(&res.video), rt_acc_top5(&res.video));
            printf("  per class (video level):\n");
            for (int i = 0; i < C; i++) {
                double acc = rt_acc_class(&res.video, i);
                if (acc >= 0) printf("    %-24s %6.3f\n", names[i], acc);
            }
            printf("  wrote %s, %s, %s\n", p1, p2, p3);
        }
        json_object_put(o);
        free(names);
    }
    if (have_res) rt_eval_free(&res);
    ld_close(l);
    st_close(wf);
    if (c.dev) rt_cuda_detach(&c);
    rt_ctx_free(&c);
    free_graph(&eg);
    if (r) fprintf(stderr, "error: %s.\n", err);
    return r;
}

static int cmd_classify(int argc, char **argv) {
    args_t a;
    int r = parse_args("classify", usage_classify, argc, argv, &a, 1);
    if (r >= 0) {
        free(a.videos);
        return r;
    }
    if (!a.checkpoint) r = usage_error("classify", "%s", "--checkpoint RUN|FILE is required");
    else if (a.raw && a.quality) r = usage_error("classify", "%s", "--quality is the JPEG quality and --raw stores no JPEG; give one of them");
    else if (!a.n_videos) r = usage_error("classify", "%s", "no video file given");
    else r = check_backend("classify", a.backend);
    gen_spec s;
    if (!r) r = load(&a, &s);
    if (!r) r = check_run_description("classify", &s, a.checkpoint, !weights_of(&a, &s));
    if (r) {
        free(a.videos);
        return r;
    }
    s.precision = PREC_FP32;
    built_graph eg;
    if (build_graph(&s, 0, &eg)) {
        fprintf(stderr, "error: out of memory while lowering %s.\n", s.name);
        free(a.videos);
        return 1;
    }
    avgen_consts k;
    gen_consts(&s, &k);
    const char *w = weights_of(&a, &s);
    if (!w) warn_weights(&s);
    rt_backend_opts bo = loop_backend(&a);
    rt_classify_cfg c;
    memset(&c, 0, sizeof c);
    c.g = &eg.graph.g, c.k = &k, c.name = s.name, c.prog = "avgen classify";
    c.checkpoint = a.checkpoint, c.weights = w, c.classes = a.classes, c.seed = (uint64_t)s.train.seed;
    c.frames = s.video.frames, c.stride = s.video.stride, c.fps = s.video.fps, c.quality = a.raw ? 0 : a.quality ? a.quality : 3;
    c.audio_rows = s.audio.target_frames, c.mel_bins = s.audio.mel_bins, c.window_seconds = s.audio.window_seconds;
    c.norm_mean = s.audio.norm_mean, c.norm_std = s.audio.norm_std;
    c.top = a.top > 0 ? a.top : 5, c.json = a.json, c.threads = a.threads > 0 ? a.threads : 2, c.backend = &bo;
    c.videos = a.videos, c.n_videos = a.n_videos;
    char err[1024] = "";
    r = rt_classify(&c, stdout, err, sizeof err);
    if (r) fprintf(stderr, "error: %s.\n", err);
    free_graph(&eg);
    free(a.videos);
    return r;
}

static int cmd_compare(int argc, char **argv) {
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_compare, stdout);
            return 0;
        }
        if (argv[i][0] == '-') return usage_error("compare", "unknown option %s", argv[i]);
        n++;
    }
    if (n == 0) return usage_error("compare", "%s", "at least one run folder is required");
    printf("%-28s %-8s %12s %10s %10s %10s %10s\n", "run", "fusion", "trainable", "clips/s", "val top-1", "test clip",
           "test video");
    int bad = 0;
    for (int i = 0; i < argc; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/summary.json", argv[i]);
        json_object *sm = json_object_from_file(p), *x;
        if (!sm) {
            fprintf(stderr, "error: %s cannot be read; expected a run folder written by avgen train.\n", p);
            bad = 1;
            continue;
        }
        snprintf(p, sizeof p, "%s/model.json", argv[i]);
        json_object *mj = json_object_from_file(p);
        snprintf(p, sizeof p, "%s/eval-test.json", argv[i]);
        json_object *ev = json_object_from_file(p), *cl, *vi;
        const char *fusion = mj && json_object_object_get_ex(mj, "fusion", &x) ? json_object_get_string(x) : "?";
        long long tp = json_object_object_get_ex(sm, "trainable_params", &x) ? json_object_get_int64(x) : -1;
        double cps = json_object_object_get_ex(sm, "clips_per_s", &x) ? json_object_get_double(x) : 0;
        double val = json_object_object_get_ex(sm, "best_val_top1", &x) ? json_object_get_double(x) : -1;
        /* the numbers it shows, as avgen train writes them: a count, a rate, an accuracy (or -1: none yet) */
        const char *what = NULL;
        static const char *const keys[] = {"trainable_params", "clips_per_s", "best_val_top1"};
        for (int k = 0; k < 3 && !what; k++) {
            if (!json_object_object_get_ex(sm, keys[k], &x)) continue;
            const double v = json_object_get_double(x);
            const int number = json_object_is_type(x, json_type_int) || json_object_is_type(x, json_type_double);
            if (!number || !isfinite(v) || (k < 2 && v < 0) || (k == 2 && v != -1 && (v < 0 || v > 1))) what = keys[k];
        }
        if (what) {
            json_object_object_get_ex(sm, what, &x);
            fprintf(stderr, "error: %s/summary.json: %s = %.60s is not what avgen train writes (%s); expected a run "
                    "folder written by avgen train.\n", argv[i], what, json_object_to_json_string(x),
                    !strcmp(what, "best_val_top1") ? "an accuracy from 0 to 1" : "a non-negative number");
            json_object_put(sm), json_object_put(mj), json_object_put(ev);
            bad = 1;
            continue;
        }
        char tc[32] = "-", tv[32] = "-", vs[32] = "-";
        if (ev && json_object_object_get_ex(ev, "clip", &cl) && json_object_object_get_ex(cl, "top1", &x))
            snprintf(tc, sizeof tc, "%.4f", json_object_get_double(x));
        if (ev && json_object_object_get_ex(ev, "video", &vi) && json_object_object_get_ex(vi, "top1", &x))
            snprintf(tv, sizeof tv, "%.4f", json_object_get_double(x));
        if (val >= 0) snprintf(vs, sizeof vs, "%.4f", val);
        const char *base = strrchr(argv[i], '/');
        base = base && base[1] ? base + 1 : argv[i];
        printf("%-28s %-8s %12lld %10.1f %10s %10s %10s\n", base, fusion, tp, cps, vs, tc, tv);
        json_object_put(sm), json_object_put(mj), json_object_put(ev);
    }
    return bad ? 2 : 0;
}

static int cmd_jit(int argc, char **argv) {
    args_t a;
    int r = parse_args("jit", usage_jit, argc, argv, &a, 0);
    if (r >= 0) return r;
    /* parse_args takes a lone positional argument as the model: an emitted folder, or a description */
    const size_t ml = a.model ? strlen(a.model) : 0;
    const int model = ml > 5 && !strcmp(a.model + ml - 5, ".json");
    const char *dir = model ? NULL : a.model;
    if (a.out || a.json || (a.nsets && !model))
        return usage_error("jit", "%s", "takes an emitted folder (no --set) or a description (with --set if any); no -o or --json");
    const int arch = a.arch ? a.arch : 90;
    char err[4096] = "", name[1200];
    char *src = NULL;
    const char *text = rt_kernels_library_source();
    snprintf(name, sizeof name, "rt_cuda_kernels.cuh");
    if (model) {
        gen_spec s;
        if ((r = load(&a, &s))) return r;
        avgen_consts k;
        gen_consts(&s, &k);
        if (!(src = rt_kernels_library_for(&k))) {
            fprintf(stderr, "error: out of memory.\n");
            return 1;
        }
        text = src;
    } else if (dir) {
        char p1[1100], p2[1100];
        snprintf(p1, sizeof p1, "%s/kernels.cu", dir);
        snprintf(p2, sizeof p2, "%s/rt_cuda_kernels.cuh", dir);
        char *cu = rt_read_file(p1, NULL), *hdr = rt_read_file(p2, NULL);
        if (!cu || !hdr) {
            fprintf(stderr, "error: %s cannot be read; expected a folder written by avgen emit (for a description, run "
                            "avgen emit MODEL.json -o DIR first).\n", cu ? p2 : p1);
            free(cu), free(hdr);
            return 2;
        }
        src = rt_kernels_inline(cu, hdr);
        free(cu), free(hdr);
        if (!src) {
            fprintf(stderr, "error: %s does not include rt_cuda_kernels.cuh; expected a folder written by avgen emit.\n", p1);
            return 2;
        }
        /* the name the program gives its embedded source (NAME/kernels.cu), so the cache's source dump agrees */
        const char *base = strrchr(dir, '/');
        base = base && base[1] ? base + 1 : dir;
        snprintf(name, sizeof name, "%s/kernels.cu", base);
        text = src;
    }
    r = rt_kernels_jit(text, name, arch, stdout, err, sizeof err);
    if (r) fprintf(stderr, "error: %s.\n", err);
    free(src);
    return r;
}

static int cmd_devices(int argc, char **argv) {
    args_t a;
    int r = parse_args("devices", usage_devices, argc, argv, &a, 0);
    if (r >= 0) return r;
    rt_device_info d[16];
    char why[512], nwhy[512];
    int ma = 0, mi = 0;
    if (rt_nvrtc_version(&ma, &mi, nwhy, sizeof nwhy)) {
        printf("NVRTC %d.%d: CUDA kernels can be compiled here\n", ma, mi);
        /* the kernel cache --kernels nvrtc and avgen jit use (docs/kernels.md) */
        const char *cd = rt_nvrtc_cache_dir();
        int entries = 0;
        double bytes = 0;
        DIR *dd = opendir(cd);
        for (struct dirent *de; dd && (de = readdir(dd));) {
            const size_t l = strlen(de->d_name);
            if (l < 8 || strcmp(de->d_name + l - 8, ".kernels")) continue;
            char p[4400];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s", cd, de->d_name);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) entries++, bytes += (double)st.st_size;
        }
        if (dd) closedir(dd);
        printf("kernel cache %s: %d builds, %.1f MB (delete the folder to reclaim it)\n", cd, entries, bytes / 1e6);
    } else {
        printf("%s\n", nwhy);
    }
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
                      : !strcmp(t, "step") ? usage_step : !strcmp(t, "diff") ? usage_diff
                      : !strcmp(t, "train") ? usage_train : !strcmp(t, "eval") ? usage_eval
                      : !strcmp(t, "classify") ? usage_classify
                      : !strcmp(t, "compare") ? usage_compare : !strcmp(t, "bench") ? usage_bench
                      : !strcmp(t, "jit") ? usage_jit : usage_main;
        int is_known = !*t;
        for (int i = 0; i < k_n_commands; i++) is_known |= !strcmp(t, k_commands[i]);
        if (!is_known) {
            fprintf(stderr, "avgen help: unknown command \"%s\"; see avgen --help\n", t);
            return 2;
        }
        if (!strcmp(t, "synth") || !strcmp(t, "prep") || !strcmp(t, "bench-loader") || !strcmp(t, "sweep")) {
            char *hv[] = {(char *)t, "--help", NULL};
            return !strcmp(t, "synth") ? gen_synth_main(2, hv) : !strcmp(t, "prep") ? gen_prep_main(2, hv)
                 : !strcmp(t, "sweep") ? gen_sweep_main(2, hv, "avgen") : gen_bench_loader_main(2, hv);
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
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "synth")) return gen_synth_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "prep")) return gen_prep_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench-loader")) return gen_bench_loader_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "sweep")) {
        /* the job lines run this very avgen */
        char self[4096];
        const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n > 0) self[n] = 0;
        else snprintf(self, sizeof self, "%s", argv[0]);
        return gen_sweep_main(argc - 1, argv + 1, self);
    }
    if (!strcmp(cmd, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "classify")) return cmd_classify(argc - 2, argv + 2);
    if (!strcmp(cmd, "compare")) return cmd_compare(argc - 2, argv + 2);
    if (!strcmp(cmd, "jit")) return cmd_jit(argc - 2, argv + 2);
    const char *sug = gen_suggest(cmd, k_commands, k_n_commands);
    fprintf(stderr, "avgen: unknown command \"%s\"%s%s%s; see avgen --help\n", cmd, sug ? " (did you mean " : "",
            sug ? sug : "", sug ? "?)" : "");
    return 2;
}
