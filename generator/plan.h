/* Planner: parameter counts, FLOPs by op family, and memory arenas for each recompute policy.
 * Activations and their gradients are packed into one arena by lifetime (greedy, largest first, lowest
 * fitting offset); frozen weights, trainable state (fp32 params, grads, Adam moments, BN buffers),
 * loader inputs and the GEMM workspace get their own arenas; the CUDA backend's op scratch is counted
 * beside them. The peak is their sum. */
#ifndef AVGEN_PLAN_H
#define AVGEN_PLAN_H
#include "avgen_graph.h"
#include "ir.h"

#include <stdio.h>

#define GEN_ALIGN 256
#define GEN_GEMM_WORKSPACE (32LL << 20) /* cuBLASLt workspace, one per process */

typedef struct {
    int64_t arena[ARENA_COUNT];
    int64_t act_lower_bound;  /* max over ops of the bytes live at that op */
    int64_t workspace, scratch, peak; /* scratch: the CUDA backend's largest op scratch (rt_cuda.h) */
    double executed_flops;    /* model FLOPs + recomputed forward work */
    int fits;
    int max_batch;            /* largest train.batch whose peak fits the budget (0: none) */
    /* What the CUDA backend allocates for this graph (meaningful for a plan of fp32 storage): its activation
     * arena repacked (rt_cuda_pack_act) without the BatchNorm outputs and the adapters' gated fuse it applies
     * on load (n_bn and n_lat of them), and the peak with it; the same with bf16 activations too
     * (AVGEN_BF16_OPERANDS=1, fused attention: n_bf16 of them), whose peak also counts the frozen weights'
     * bf16 copy */
    int n_bf16, n_bn, n_lat;
    int64_t act_cuda, peak_cuda, act_bf16, peak_bf16;
    int nops, ntensors;
} gen_mem;

/* The CUDA backend's roofline inputs (rt_cuda_roofline) per op kind (avgen_graph.h's numbering): its ops'
 * FLOPs (recomputed ones included), and its tensors' bytes as the backend stores them with fp32 and with bf16
 * activations; have: set. */
typedef struct {
    int have;
    double flops[AVGEN_OP_KIND_COUNT], bytes_fp32[AVGEN_OP_KIND_COUNT], bytes_bf16[AVGEN_OP_KIND_COUNT];
} gen_roof;

typedef struct {
    int64_t frozen, trainable, adapters, head, buffers, per_adapter;
    int adapter_count;
    double flops[PH_COUNT][FAM_COUNT];  /* model FLOPs of one step, recompute none */
    double other_flops;                 /* norms, softmax, elementwise, optimizer */
    double step_flops, pair_flops, visual_image_forward, audio_image_forward;
    gen_mem train[RECOMPUTE_COUNT];
    gen_mem infer;
    /* What the CUDA backend of this version allocates under the selected policy: activations stored in
     * fp32 whatever the description's precision (cuda.max_batch for that), or with bf16 activations
     * (cuda.peak_bf16, max_batch_bf16); the batch searches are -1 when not made */
    gen_mem cuda;
    int max_batch_bf16;
    /* The roofline of cuda's graph, and its device: dense bf16 FLOP/s and memory bytes/s (gen_make_plan: an
     * H100 SXM's, 989e12 and 3.35e12; the caller may change them before printing) */
    gen_roof roof;
    double roof_peak, roof_bandwidth;
} gen_plan;

/* Places every tensor of ir in its arena (sets offsets) and fills m. */
void gen_pack(gen_ir *ir, gen_mem *m);
/* Everything `avgen plan` reports; search_batch also finds the largest batch that fits. */
int gen_make_plan(const gen_spec *s, int search_batch, gen_plan *p);

struct json_object;
struct json_object *gen_plan_to_json(const gen_spec *s, const gen_plan *p);
void gen_plan_print(FILE *f, const gen_spec *s, const gen_plan *p);
#endif
