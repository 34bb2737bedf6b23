/* The model-description schema as one table: JSON path, type, range, default. Parsing, unknown-key
 * detection with "did you mean", docs checks and the canonical dump all read this table, so a field is
 * added in exactly one place (plus its line in docs/model-json.md, which a test enforces). */
#include "spec_internal.h"

#include <stddef.h>

static const char *const k_kinds[] = {"vit", NULL};
static const char *const k_fusions[] = {"lavish", "late", "vision", "audio", NULL};
static const char *const k_optimizers[] = {"adam", "adamw", NULL};
static const char *const k_schedules[] = {"constant", "cosine", "step", NULL};
static const char *const k_precisions[] = {"fp32", "bf16", NULL};
static const char *const k_recomputes[] = {"none", "attention", "block", NULL};

#define OFF(f) offsetof(gen_spec, f)
#define INF 1e300

const gen_field gen_fields[] = {
    {"name", F_NAME, 0, 0, 0, NULL, OFF(name), "null"},
    {"description", F_STR, 0, 0, 0, NULL, OFF(description), "\"\""},

    {"backbone.kind", F_ENUM, 0, 0, 0, k_kinds, 0, "\"vit\""},
    {"backbone.image_size", F_INT, 1, 4096, 0, NULL, OFF(backbone.image_size), "224"},
    {"backbone.patch_size", F_INT, 1, 512, 0, NULL, OFF(backbone.patch_size), "16"},
    {"backbone.channels", F_INT, 3, 3, 0, NULL, OFF(backbone.channels), "3"},
    {"backbone.dim", F_INT, 1, 16384, 0, NULL, OFF(backbone.dim), "768"},
    {"backbone.depth", F_INT, 1, GEN_MAX_DEPTH, 0, NULL, OFF(backbone.depth), "12"},
    {"backbone.heads", F_INT, 1, 1024, 0, NULL, OFF(backbone.heads), "12"},
    {"backbone.mlp_dim", F_INT, 1, 65536, 0, NULL, OFF(backbone.mlp_dim), "3072"},
    {"backbone.ln_eps", F_NUM, 0, 1, 1, NULL, OFF(backbone.ln_eps), "1e-12"},
    {"backbone.weights", F_PATH, 0, 0, 0, NULL, OFF(backbone.weights), "null"},

    {"video.frames", F_INT, 1, 4096, 0, NULL, OFF(video.frames), "8"},
    {"video.fps", F_INT, 1, 240, 0, NULL, OFF(video.fps), "20"},
    {"video.stride", F_INT, 1, 1024, 0, NULL, OFF(video.stride), "1"},
    {"video.size", F_INT, 1, 4096, 0, NULL, OFF(video.size), "224"},
    {"video.mean", F_NUM3, 0, 1, 0, NULL, OFF(video.mean), "[0.5, 0.5, 0.5]"},
    {"video.std", F_NUM3, 0, 10, 1, NULL, OFF(video.std), "[0.5, 0.5, 0.5]"},

    {"audio.sample_rate", F_INT, 1000, 192000, 0, NULL, OFF(audio.sample_rate), "16000"},
    {"audio.window_seconds", F_NUM, 0, 60, 1, NULL, OFF(audio.window_seconds), "1.0"},
    {"audio.mel_bins", F_INT, 1, 1024, 0, NULL, OFF(audio.mel_bins), "128"},
    {"audio.target_frames", F_INT, 1, 100000, 0, NULL, OFF(audio.target_frames), "102"},
    {"audio.norm_mean", F_NUM, -1e6, 1e6, 0, NULL, OFF(audio.norm_mean), "-4.1426"},
    {"audio.norm_std", F_NUM, 0, 1e6, 1, NULL, OFF(audio.norm_std), "3.2001"},

    {"fusion", F_ENUM, 0, 0, 0, k_fusions, OFF(fusion), "\"lavish\""},

    {"adapter.latent_tokens", F_INT, 1, 1024, 0, NULL, OFF(adapter.latent_tokens), "2"},
    {"adapter.reduction", F_INT, 1, 16384, 0, NULL, OFF(adapter.reduction), "8"},
    {"adapter.groups", F_INT, 1, 16384, 0, NULL, OFF(adapter.groups), "2"},
    {"adapter.batchnorm", F_BOOL, 0, 0, 0, NULL, OFF(adapter.batchnorm), "true"},
    {"adapter.layers", F_LAYERS, 0, 0, 0, NULL, OFF(adapter.on_layer), "\"all\""},
    {"adapter.sublayers", F_SUBLAYERS, 0, 0, 0, NULL, 0, "[\"attn\", \"mlp\"]"},

    {"head.hidden", F_INT, 1, 65536, 0, NULL, OFF(head.hidden), "512"},
    {"head.classes", F_INT, 2, 100000, 0, NULL, OFF(head.classes), "51"},

    {"train.batch", F_INT, 1, 65536, 0, NULL, OFF(train.batch), "4"},
    {"train.epochs", F_INT, 1, 100000, 0, NULL, OFF(train.epochs), "10"},
    {"train.optimizer", F_ENUM, 0, 0, 0, k_optimizers, OFF(train.optimizer), "\"adam\""},
    {"train.lr", F_NUM, 0, 10, 1, NULL, OFF(train.lr), "5e-5"},
    {"train.head_lr", F_NUM, 0, 10, 1, NULL, OFF(train.head_lr), "4e-6"},
    {"train.weight_decay", F_NUM, 0, 10, 0, NULL, OFF(train.weight_decay), "0"},
    {"train.betas", F_BETAS, 0, 0, 0, NULL, OFF(train.beta1), "[0.9, 0.999]"},
    {"train.eps", F_NUM, 0, 1, 1, NULL, OFF(train.eps), "1e-8"},
    {"train.schedule", F_ENUM, 0, 0, 0, k_schedules, OFF(train.schedule), "\"constant\""},
    {"train.warmup", F_INT, 0, 1e9, 0, NULL, OFF(train.warmup), "0"},
    {"train.step_every", F_INT, 1, 100000, 0, NULL, OFF(train.step_every), "1"},
    {"train.step_gamma", F_NUM, 0, 1, 1, NULL, OFF(train.step_gamma), "0.1"},
    {"train.grad_accum", F_INT, 1, 65536, 0, NULL, OFF(train.grad_accum), "1"},
    {"train.seed", F_I64, 0, 9007199254740991.0, 0, NULL, OFF(train.seed), "0"},

    {"precision", F_ENUM, 0, 0, 0, k_precisions, OFF(precision), "\"bf16\""},

    {"memory.recompute", F_ENUM, 0, 0, 0, k_recomputes, OFF(memory.recompute), "\"none\""},
    {"memory.budget", F_BYTES, 1, 0, 0, NULL, OFF(memory.budget), "\"78GiB\""},
};
const int gen_n_fields = (int)(sizeof gen_fields / sizeof gen_fields[0]);

const char *const gen_sections[] = {"backbone", "video", "audio", "adapter", "head", "train", "memory", NULL};

int gen_schema_paths(const char **paths, int max) {
    for (int i = 0; i < gen_n_fields && i < max; i++) paths[i] = gen_fields[i].path;
    return gen_n_fields;
}

const char *gen_fusion_name(gen_fusion f) { return k_fusions[f]; }
const char *gen_recompute_name(gen_recompute r) { return k_recomputes[r]; }
const char *gen_precision_name(gen_precision p) { return k_precisions[p]; }
const char *gen_optimizer_name(gen_optimizer o) { return k_optimizers[o]; }
const char *gen_schedule_name(gen_schedule s) { return k_schedules[s]; }
