/* avgen_graph.h: the tables a generated program is made of, shared by the generated code (model.c) and
 * the runtime (CPU reference ops, the step driver): every tensor with its arena, offset, shape and
 * lifetime, and every op with its kind and its input/output tensors, in execution order. avgen emit
 * copies this header into each generated folder so the folder compiles on its own. */
#ifndef AVGEN_GRAPH_H
#define AVGEN_GRAPH_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { AVGEN_ARENA_FROZEN, AVGEN_ARENA_TRAIN, AVGEN_ARENA_ACT, AVGEN_ARENA_INPUT, AVGEN_ARENA_COUNT };
enum { AVGEN_DT_F32, AVGEN_DT_BF16, AVGEN_DT_I64, AVGEN_DT_U8 };
enum { AVGEN_PH_FORWARD, AVGEN_PH_BACKWARD, AVGEN_PH_UPDATE };
/* Tensor kinds, as generator/ir.h gen_tkind. */
enum { AVGEN_T_INPUT, AVGEN_T_FROZEN, AVGEN_T_TRAINABLE, AVGEN_T_BUFFER, AVGEN_T_PGRAD, AVGEN_T_OPTSTATE,
       AVGEN_T_ACT, AVGEN_T_GRAD };
/* Parameter groups: backbone (frozen), adapters (train.lr), head (train.head_lr). */
enum { AVGEN_GROUP_BACKBONE, AVGEN_GROUP_ADAPTER, AVGEN_GROUP_HEAD, AVGEN_GROUP_NONE };

/* Op kinds, as generator/ir.h GEN_OPKINDS (same order). */
enum {
    AVGEN_OP_KIND_PATCH_EMBED, AVGEN_OP_KIND_LAYERNORM, AVGEN_OP_KIND_QKV, AVGEN_OP_KIND_ATTENTION,
    AVGEN_OP_KIND_LINEAR_RESIDUAL, AVGEN_OP_KIND_LINEAR_GELU, AVGEN_OP_KIND_ADAPTER_LATENT,
    AVGEN_OP_KIND_GROUP_LINEAR, AVGEN_OP_KIND_BATCHNORM_RELU, AVGEN_OP_KIND_BATCHNORM, AVGEN_OP_KIND_RELU,
    AVGEN_OP_KIND_LAYERNORM_GATE, AVGEN_OP_KIND_CLS_LAYERNORM, AVGEN_OP_KIND_CONCAT_MEAN, AVGEN_OP_KIND_LINEAR,
    AVGEN_OP_KIND_CROSS_ENTROPY, AVGEN_OP_KIND_LINEAR_DX, AVGEN_OP_KIND_GELU_LINEAR_DX,
    AVGEN_OP_KIND_ATTENTION_BWD, AVGEN_OP_KIND_QKV_DX, AVGEN_OP_KIND_LAYERNORM_BWD,
    AVGEN_OP_KIND_ADAPTER_LATENT_BWD, AVGEN_OP_KIND_GROUP_LINEAR_BWD, AVGEN_OP_KIND_BATCHNORM_RELU_BWD,
    AVGEN_OP_KIND_BATCHNORM_BWD, AVGEN_OP_KIND_RELU_BWD, AVGEN_OP_KIND_LAYERNORM_GATE_BWD,
    AVGEN_OP_KIND_CLS_LAYERNORM_BWD, AVGEN_OP_KIND_CONCAT_MEAN_BWD, AVGEN_OP_KIND_LINEAR_BWD, AVGEN_OP_KIND_ADAM,
    AVGEN_OP_KIND_COUNT
};

typedef struct {
    const char *name;
    uint8_t kind, dtype, arena, ndim;
    int64_t shape[5];
    int64_t offset, bytes;
    int32_t first, last;       /* op indices of first and last use, -1 if unused */
    int32_t param;             /* gradients and Adam moments: the parameter's tensor index, else -1 */
    uint8_t group;
} avgen_tensor_desc;

typedef struct {
    const char *name;
    uint16_t kind;
    uint8_t phase, accumulate, recompute;
    int16_t layer;
    char stream;               /* 'v', 'a' or 0 */
    int32_t in_at, n_in, out_at, n_out;   /* into the refs table */
    double flops;
    float eps;                 /* LayerNorm / BatchNorm epsilon where it applies */
} avgen_op_desc;

typedef struct {
    const avgen_tensor_desc *tensors;
    const avgen_op_desc *ops;
    const int32_t *refs;
    int32_t n_tensors, n_ops;
    int64_t arena_bytes[AVGEN_ARENA_COUNT];
} avgen_graph;

/* Constants of a configuration the ops need beyond the tables. */
typedef struct {
    int batch, frames, image, patch, dim, heads, tokens_v, tokens_a, audio_rows, mel_bins, classes;
    float mean[3], std[3];
    double lr, head_lr, weight_decay, beta1, beta2, adam_eps;
    int adamw;
} avgen_consts;

/* A generated program's own nvcc build of its kernels.cu (kernels_nvcc.cu, written by avgen emit, compiled
 * into the program with avgen_add_model(... NVCC_KERNELS)): every kernel an NVRTC build of that kernels.cu
 * requests, in the same order and under the same name expression ("&k_layernorm<1>", then for each shape
 * the fused attention's six instances, "&k_attn_fwd<64, 197, 12>", ...), with the program's compiled
 * kernel. The runtime launches these instead of its own copy (docs/kernels.md). */
typedef struct {
    const char *expr;
    const void *fn;
    uint32_t sig; /* avgen_kernel_sig of its parameters */
} avgen_kernel_fn;
typedef struct avgen_kernel_table {
    const char *source;        /* "NAME/kernels.cu", for messages */
    int32_t n_kernels;         /* the launch list's length when emitted (runtime/rt_cuda_kernel_list.h) */
    int32_t n_shapes;          /* shape-literal (head width, tokens, heads) triples */
    const int32_t (*shapes)[3];
    const avgen_kernel_fn *fns; /* n_kernels + 6 n_shapes */
} avgen_kernel_table;

#ifdef __cplusplus
}
/* A kernel's parameters as one number (their count and each one's size and alignment, folded), which the table
 * of a program's own nvcc build carries for each kernel and the runtime compares with what it passes. */
extern "C++" {  /* (also when this header is included inside extern "C") */
template <class... P>
constexpr uint32_t avgen_kernel_sig(void (*)(P...)) {
    uint32_t h = 2166136261u;
    ((h = (h ^ (uint32_t)(sizeof(P) * 64 + alignof(P))) * 16777619u), ...);
    return (h ^ (uint32_t)sizeof...(P)) * 16777619u;
}
}
#endif
#endif
