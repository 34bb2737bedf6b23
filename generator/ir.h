/* IR: a model description lowered to one ordered list of ops over tensors with static shapes, for a
 * training step (forward, loss, backward, update) or for inference. Backward computes input gradients
 * only through frozen ops and stops at the lowest adapter; recompute policies re-emit forward ops inside
 * backward so that fewer activations live across the step. The planner (plan.h) reads lifetimes off this
 * list; the emitters turn each op into a call. Shape letters: B clips, T frames, P' = B*T pairs,
 * N tokens, D width, F MLP width, H heads, m latent tokens, C classes. */
#ifndef AVGEN_IR_H
#define AVGEN_IR_H
#include "spec.h"

typedef enum { DT_F32, DT_BF16, DT_I64, DT_U8, DT_COUNT } gen_dtype;

typedef enum {
    T_INPUT,      /* fed by the data loader each step */
    T_FROZEN,     /* backbone parameters */
    T_TRAINABLE,  /* adapter and head parameters (fp32 masters) */
    T_BUFFER,     /* BatchNorm running statistics */
    T_PGRAD,      /* gradient of a trainable parameter (fp32, persistent for accumulation) */
    T_OPTSTATE,   /* Adam moments */
    T_ACT,        /* activation or saved statistic */
    T_GRAD,       /* gradient of an activation */
    T_KIND_COUNT
} gen_tkind;

typedef enum { ARENA_FROZEN, ARENA_TRAIN, ARENA_ACT, ARENA_INPUT, ARENA_COUNT } gen_arena;

typedef enum { GROUP_BACKBONE, GROUP_ADAPTER, GROUP_HEAD, GROUP_NONE } gen_group;

#define GEN_MAX_DIMS 5
typedef struct {
    char name[112];
    gen_tkind kind;
    gen_dtype dtype;
    gen_group group;
    int ndim;
    int64_t shape[GEN_MAX_DIMS];
    int64_t numel, bytes;
    int first, last;     /* op indices of first and last use; -1 when unused */
    int64_t offset;      /* in its arena (planner) */
    int param;           /* for T_PGRAD / T_OPTSTATE: the parameter's tensor id, else -1 */
} gen_tensor;

typedef enum { PH_FWD, PH_BWD, PH_UPDATE, PH_COUNT } gen_phase;

typedef enum {
    FAM_PATCH, FAM_LINEAR, FAM_ATTENTION, FAM_ADAPTER, FAM_NORM, FAM_HEAD, FAM_LOSS, FAM_OPTIMIZER, FAM_COUNT
} gen_family;

#define GEN_OPKINDS(X)                                                                                     \
    X(PATCH_EMBED) X(LAYERNORM) X(QKV) X(ATTENTION) X(LINEAR_RESIDUAL) X(LINEAR_GELU) X(ADAPTER_LATENT)     \
    X(GROUP_LINEAR) X(BATCHNORM_RELU) X(BATCHNORM) X(RELU) X(LAYERNORM_GATE) X(CLS_LAYERNORM)               \
    X(CONCAT_MEAN) X(LINEAR) X(CROSS_ENTROPY)                                                                \
    X(LINEAR_DX) X(GELU_LINEAR_DX) X(ATTENTION_BWD) X(QKV_DX) X(LAYERNORM_BWD) X(ADAPTER_LATENT_BWD)        \
    X(GROUP_LINEAR_BWD) X(BATCHNORM_RELU_BWD) X(BATCHNORM_BWD) X(RELU_BWD) X(LAYERNORM_GATE_BWD)            \
    X(CLS_LAYERNORM_BWD) X(CONCAT_MEAN_BWD) X(LINEAR_BWD) X(ADAM)
#define GEN_OPKIND_ENUM(k) OP_##k,
typedef enum { GEN_OPKINDS(GEN_OPKIND_ENUM) OP_KIND_COUNT } gen_opkind;

typedef struct {
    gen_opkind kind;
    gen_phase phase;
    gen_family fam;
    char name[112];
    int in_at, n_in;     /* tensor ids in ir->refs[in_at .. in_at + n_in) */
    int out_at, n_out;   /* tensor ids written; accumulate means they are read-modify-written */
    int accumulate;
    int recompute;       /* a forward op re-run inside backward (no running-stat update) */
    int layer;           /* -1 outside the encoder */
    char stream;         /* 'v', 'a' or 0 */
    double flops;        /* model FLOPs (2 per multiply-add of GEMM-like work) */
    double other_flops;  /* normalisation, softmax, elementwise: not counted in MFU */
    double bytes;        /* bytes of every input and output; a read-modify-written tensor counts twice */
    int64_t gemm_m, gemm_n, gemm_k, gemm_batch; /* for GEMM-like ops, else 0 */
    double eps;          /* LayerNorm / BatchNorm epsilon where it applies */
} gen_op;

typedef struct {
    gen_spec spec;
    int train;           /* 1: training step; 0: inference (eval-mode forward to logits) */
    gen_recompute recompute;
    gen_tensor *t;
    int nt, cap_t;
    gen_op *ops;
    int nops, cap_ops;
    int *refs;
    int nrefs, cap_refs;
    int lowest_trainable_sublayer; /* 2*layer (+1 for mlp); depth*2 when nothing in the backbone trains */
} gen_ir;

/* Lowers a validated spec. Returns 0, or -1 when out of memory. */
int gen_lower(const gen_spec *s, gen_recompute rc, int train, gen_ir *ir);

void gen_ir_free(gen_ir *ir);

const char *gen_opkind_name(gen_opkind);
const char *gen_family_name(gen_family);
const char *gen_phase_name(gen_phase);
const char *gen_dtype_name(gen_dtype);
const char *gen_tkind_name(gen_tkind);
gen_arena gen_tensor_arena(const gen_tensor *t);
int64_t gen_dtype_size(gen_dtype);

static inline const int *gen_op_in(const gen_ir *ir, const gen_op *o) { return ir->refs + o->in_at; }
static inline const int *gen_op_out(const gen_ir *ir, const gen_op *o) { return ir->refs + o->out_at; }

#endif
