/* ModelSpec: a validated JSON model description (docs/model-json.md), with every default filled in and
 * the derived shapes (token counts, fbank rows) computed once. Parsing is table-driven (spec_schema.c) so
 * that unknown keys, wrong types and ranges are all reported the same way; cross-field checks (dim
 * divisible by heads, ...) follow in spec.c (derive_and_check). Errors are one sentence each, naming the
 * JSON path. */
#ifndef AVGEN_SPEC_H
#define AVGEN_SPEC_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GEN_MAX_DEPTH 64
#define GEN_MAX_ERRORS 32
#define GEN_ERR_LEN 512

typedef enum { FUSION_LAVISH, FUSION_LATE, FUSION_VISION, FUSION_AUDIO } gen_fusion;
typedef enum { OPT_ADAM, OPT_ADAMW } gen_optimizer;
typedef enum { SCHED_CONSTANT, SCHED_COSINE, SCHED_STEP } gen_schedule;
typedef enum { PREC_FP32, PREC_BF16 } gen_precision;
typedef enum { RECOMPUTE_NONE, RECOMPUTE_ATTENTION, RECOMPUTE_BLOCK, RECOMPUTE_COUNT } gen_recompute;

typedef struct {
    char name[128];          /* "name" field, else the file name without .json */
    char description[256];
    struct {
        char kind[16];       /* "vit" */
        int image_size, patch_size, channels, dim, depth, heads, mlp_dim;
        double ln_eps;
        char weights[1024];  /* as written; "" = random init (tests and benchmarks only) */
        char weights_path[2048]; /* resolved against the description's folder, for opening */
    } backbone;
    struct {
        int frames, fps, stride, size;
        double mean[3], std[3];
    } video;
    struct {
        int sample_rate;
        double window_seconds;
        int mel_bins, target_frames;
        double norm_mean, norm_std;
    } audio;
    gen_fusion fusion;
    struct {
        int latent_tokens, reduction, groups;
        bool batchnorm;
        bool on_layer[GEN_MAX_DEPTH];
        bool all_layers;     /* adapter.layers = "all" */
        bool attn, mlp;      /* sublayers */
    } adapter;
    struct { int hidden, classes; } head;
    struct {
        int batch, epochs;
        gen_optimizer optimizer;
        double lr, head_lr, weight_decay, beta1, beta2, eps;
        gen_schedule schedule;
        int warmup, grad_accum, step_every;
        double step_gamma;
        int64_t seed;
    } train;
    gen_precision precision;
    struct {
        gen_recompute recompute;
        int64_t budget;      /* bytes */
    } memory;

    /* derived (spec_derive) */
    int n_v, n_a;            /* tokens per visual / audio image, CLS included */
    int patches_v, patch_rows_a, patch_cols_a;
    int fbank_frames;        /* rows of one window before zero padding */
    int head_dim;
    int pairs;               /* B * T */
    bool use_v, use_a, has_adapters;
    int n_adapted_layers;
} gen_spec;

typedef struct {
    int n, dropped;          /* dropped: problems beyond GEN_MAX_ERRORS, not stored */
    char msg[GEN_MAX_ERRORS][GEN_ERR_LEN];
} gen_errors;

void gen_errorf(gen_errors *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An override `path.to.field=value`; value is read as JSON when it parses as JSON, else as a string. */
typedef struct { const char *assignment; } gen_override;

/* Reads, overrides, validates. source_name is used in messages and for the default name; base_dir
 * resolves a relative backbone.weights path ("" = current directory). Returns 0 or the number of errors. */
int gen_spec_parse_text(const char *text, size_t len, const char *source_name, const char *base_dir,
                        const char *const *overrides, int n_overrides, gen_spec *out, gen_errors *errs);
int gen_spec_load(const char *path, const char *const *overrides, int n_overrides, gen_spec *out, gen_errors *errs);

/* The resolved description (every field, defaults filled) as canonical JSON text; caller frees. */
char *gen_spec_to_json(const gen_spec *s);
struct json_object;
struct json_object *gen_spec_to_json_object(const gen_spec *s);
uint64_t gen_hash64(const void *data, size_t n, uint64_t seed);
/* What a resumed training run must find unchanged: the resolved description's hash, train.epochs aside. */
uint64_t gen_resume_hash(const gen_spec *s);

const char *gen_fusion_name(gen_fusion);
const char *gen_recompute_name(gen_recompute);
const char *gen_precision_name(gen_precision);
const char *gen_optimizer_name(gen_optimizer);
const char *gen_schedule_name(gen_schedule);

/* Every JSON path the schema knows, for docs and tests: returns the count, fills up to max. */
int gen_schema_paths(const char **paths, int max);

/* "80GiB", "512 MiB", "1.5e9", 1000 -> bytes; returns 0 or -1 if malformed. */
int gen_parse_bytes(const char *s, int64_t *out);
void gen_format_bytes(int64_t bytes, char *buf, size_t n);

#endif
