/* rt_cuda: the CUDA backend of a generated graph. The host context (rt_model.h) stays the staging area:
 * rt_cuda_attach mirrors its arenas on the device and uploads them; from then on rt_run_phase, the
 * generated step (AVGEN_OP_* macros) and rt_zero_grads run on the device, asynchronously on one stream,
 * with no device synchronisation inside a step; rt_cuda_download brings arenas back for dumps and
 * checkpoints. GEMMs go through cuBLASLt (loaded with dlopen, so binaries start without the toolkit),
 * one descriptor, layout set and algorithm per distinct GEMM, chosen at first use and reused.
 *
 * Precision: every tensor is stored in fp32. "fp32" computes GEMMs in strict fp32 (the parity mode);
 * "bf16" lets cuBLASLt round GEMM operands to bf16 on tensor cores with fp32 accumulation
 * (CUBLAS_COMPUTE_32F_FAST_16BF); "tf32" the same with TF32. Softmax, LayerNorm and BatchNorm
 * statistics, losses and the optimizer are fp32 (double for sums over rows) in every mode. */
#ifndef AVGEN_RT_CUDA_H
#define AVGEN_RT_CUDA_H
#include <stddef.h>

#include "rt_kernels.h"
#include "rt_model.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { RT_CUDA_FP32, RT_CUDA_BF16, RT_CUDA_TF32 };

typedef struct {
    int device;    /* CUDA device ordinal */
    int precision; /* RT_CUDA_FP32, RT_CUDA_BF16 or RT_CUDA_TF32 */
    int kernels;   /* RT_KERNELS_NVCC (the copy compiled into this binary) or RT_KERNELS_NVRTC (compiled at run
                      time for the device's exact architecture, cached; rt_kernels.h) */
    const char *kernel_src;      /* NVRTC: the source to compile (a generated program's kernels.cu, library
                                    included); NULL: the runtime's kernel library */
    const char *kernel_src_name; /* its name in messages and the cache's source dump */
    const avgen_kernel_table *kernel_table; /* nvcc: a generated program's own build of its kernels.cu
                                               (kernels_nvcc.cu), launched instead of this runtime's copy
                                               unless AVGEN_PROGRAM_KERNELS=0; NULL: the runtime's */
    const avgen_ctx *share_frozen; /* a context attached to the same device (or NULL): when its frozen arena
                                      holds every frozen tensor of this graph at the same offset, this context
                                      uses it (and its bf16 copy) in place of its own; detach this one first */
    int prefetch_inputs;           /* 1: a second stream and a device copy of the input arena, so that the next
                                      batch goes up while a step runs (rt_cuda_stage_input; AVGEN_PREFETCH=0: no) */
} rt_cuda_opts;

/* Parses "fp32", "bf16" or "tf32"; -1 otherwise. */
int rt_cuda_precision(const char *name);

/* 1 when this build has the CUDA backend and a device can be used; else 0 with one sentence in why. */
int rt_cuda_usable(char *why, size_t whylen);

/* Allocates the device arenas, uploads every host arena (and c->frames_f32), creates the stream and the
 * cuBLASLt handle. 0, or 1 with err set (no device, out of device memory, cuBLASLt missing). */
int rt_cuda_attach(avgen_ctx *c, const rt_cuda_opts *o, char *err, size_t errlen);
/* Host arena -> device (e.g. new inputs) and device -> host (dumps, checkpoints). Both wait for the
 * stream; 0, or 1 with err set (including the first error any op met since the last check). */
int rt_cuda_upload(avgen_ctx *c, int arena, char *err, size_t errlen);
int rt_cuda_download(avgen_ctx *c, int arena, char *err, size_t errlen);
/* One tensor device -> host (e.g. the logits and loss of the activation arena, which can be tens of GiB);
 * waits for the stream; 0, or 1 with err. */
int rt_cuda_download_tensor(avgen_ctx *c, int tensor, char *err, size_t errlen);
/* The sum of squares of every trainable tensor's gradient (the training log's grad_norm, before the
 * accumulation scale), summed on the device in a fixed order; waits for the stream; 0, or 1 with err. */
int rt_cuda_grad_sumsq(avgen_ctx *c, double *out, char *err, size_t errlen);
/* Waits for the stream; 0, or 1 with the first CUDA or cuBLASLt error since the last check. */
int rt_cuda_sync(avgen_ctx *c, char *err, size_t errlen);
void rt_cuda_detach(avgen_ctx *c);

/* Device scratch one op takes beyond its tensors (attention scores, partial sums, im2col), and the
 * largest over a graph's ops (at least 1 MiB): what rt_cuda_attach allocates, and what the planner
 * counts (runtime/rt_scratch.c; no CUDA needed). fused_attention: 1 for a run whose attention ops use the
 * fused kernels (bf16 GEMMs, rt_cuda_attention_fusable), which keep no score matrices; 0 for the GEMM path
 * (fp32 and tf32 GEMMs), which needs them. The planner counts the fused path, the default run's. */
size_t rt_cuda_op_scratch(const avgen_graph *g, const avgen_consts *k, int op, int fused_attention);
/* (Op scratch also holds the carries live at op: rt_cuda_carry.) */
size_t rt_cuda_scratch_bytes(const avgen_graph *g, const avgen_consts *k, int fused_attention);
/* 1 when the fused attention kernels serve this configuration: head width 16, 32 or 64, at most 65535
 * (frame, audio) pairs a step (the kernels' grid) and a stream's sequence short enough that a head's staged
 * side fits RT_CUDA_ATTN_SMEM_MAX bytes of shared memory (rt_cuda_attn_smem; N <= 320 at head width 64). */
int rt_cuda_attention_fusable(const avgen_consts *k);
/* The fused attention kernels' dynamic shared memory for a sequence of n tokens and head width hd: two bf16
 * tiles of n rounded up to 64 rows (row stride hd + 8) and two floats a row (runtime/rt_cuda_kernels.cuh). */
size_t rt_cuda_attn_smem(int n, int hd);
/* That for the configuration's longest stream and its head width. */
size_t rt_cuda_attn_smem_of(const avgen_consts *k);
/* The configuration's shapes for the shape-literal fused-attention kernels (runtime/rt_cuda_kernel_list.h:
 * AVGEN_CUDA_SHAPE_KERNELS): (head width, tokens, heads) of the frame stream, then of the audio stream when
 * it differs, into t; their count (0 when the fused kernels do not serve it, rt_cuda_attention_fusable).
 * rt_cuda_shape_lines writes them as the lines an emitted kernels.cu ends with ("AVGEN_ATTN_SHAPE(64, 197,
 * 12)\n" each) into buf (always terminated); the line count. */
int rt_cuda_attn_shapes(const avgen_consts *k, int t[2][3]);
int rt_cuda_shape_lines(const avgen_consts *k, char *buf, size_t len);
/* The most shared memory a block may opt in to on every GPU the fused kernels serve (sm_86 and sm_89: 99 KiB;
 * sm_80 163 KiB, sm_90 227 KiB). */
#define RT_CUDA_ATTN_SMEM_MAX (99 * 1024)
/* The grouped projection's weight gradient is a long reduction (K = rows) onto a small matrix, which one
 * GEMM spreads over a handful of CTAs: it is split into chunks of this many rows (0: not split), whose
 * partial products are summed in chunk order. Cin and Cout: the input and output channels (a chunk that
 * divides the rows is taken when its starts stay aligned in X and dY). */
long long rt_cuda_dw_chunk(long long rows, long long Cin, long long Cout);
/* Bytes of the bf16 copies the backend keeps with bf16 activations (AVGEN_BF16_OPERANDS=1), from the arenas' sizes
 * (arena_bytes[AVGEN_ARENA_COUNT]): half the frozen arena (the frozen GEMM operands) and half the parameter arena
 * (the grouped projections' trainable weights, rounded once a step). The planner and the bench count this. */
long long rt_cuda_bf16_copy_bytes(const int64_t *arena_bytes);
/* Floats of op scratch the split needs (0 when not split). */
double rt_cuda_dw_part_floats(long long rows, long long Cin, long long Cout, long long G);
/* What rt_cuda_group_linear_dw calls: gemm with rt_cuda.cu's gemm() semantics (row-major C[M,N] = op(A)
 * op(B), + C when beta1; op(A) is [M,K], stored [K,M] when ta; op(B) is [K,N], stored [N,K] when tb;
 * batch matrices at strides sa, sb, sc elements; A and B of es bytes an element: 4 fp32, 2 bf16; C fp32),
 * and sum: dst[e] += sum over p < parts, in order, of src[p n + e]. */
typedef struct {
    void *ctx;
    void (*gemm)(void *ctx, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb,
                 float *C, int ldc, int beta1, int batch, long long sa, long long sb, long long sc);
    void (*sum)(void *ctx, const float *src, float *dst, int parts, long long n);
    int es; /* bytes an element of dY and X: 4 (fp32) or 2 (bf16) */
} rt_dw_ops;
/* dW [Cout, Cin/G] += per group g (output channels g Cout/G.., input channels g Cin/G..) dY_g^T X_g over
 * the rows of dY [rows, Cout] and X [rows, Cin]: one GEMM batched over the groups, or, when
 * rt_cuda_dw_chunk splits, per group the full chunks as one GEMM batched over chunks (and the rest, if the chunk
 * does not divide the rows, as one more), into part (rt_cuda_dw_part_floats: [chunk][group][W]), then one sum of
 * every group's chunks onto dW. */
/* bf16 activations (--precision bf16 and AVGEN_BF16_OPERANDS=1): flags[t] = 1 (g->n_tensors entries) for
 * each fp32 activation the CUDA backend stores as bf16 (in the first half of its slot), each written once
 * and read only where a bf16 reader exists:
 *   a LayerNorm's output and the GELU output of LINEAR_GELU: the first operand of GEMMs against frozen
 *     weights (QKV, LINEAR_GELU, LINEAR_RESIDUAL), which read it and the frozen weights' bf16 copy as bf16
 *     (the values cuBLASLt's bf16 arithmetic rounds fp32 operands to anyway), or of the adapter's grouped
 *     projection (the LayerNorm before it), which rounds its trainable weight to bf16 as it runs, and whose
 *     backward rounds dY to bf16 for the weight gradient;
 *   the GELU's input (LINEAR_GELU's first output; its GEMM's input bf16, weight and bias frozen): the GEMM
 *     writes it as bf16, the GELU and its backward read it;
 *   fc2's input gradient (LINEAR_DX against a frozen weight, read only by GELU_LINEAR_DX): a bf16 GEMM
 *     result (the incoming gradient rounded to bf16 first), which the GELU backward reads;
 *   with fused_attention: qkv (its GEMM's input bf16, weights and biases frozen), which only the fused
 *     attention kernels read; the attention output, which the output projection (a frozen-weight GEMM)
 *     and the backward's delta read; qkv's gradient, which only QKV_DX reads against frozen weights; the
 *     three of one attention bf16 together or not at all.
 * Returns the count (-1: out of host memory). */
int rt_cuda_bf16_operands(const avgen_graph *g, int fused_attention, unsigned char *flags);
/* How the CUDA backend stores an activation (a class per tensor): as the graph says (fp32), as bf16 (half
 * the bytes), or not at all (a BatchNorm output or an adapter's gated fuse, applied on load by its readers). */
enum { RT_CUDA_T_FP32 = 0, RT_CUDA_T_BF16 = 1, RT_CUDA_T_VIRTUAL = 2 };
/* BatchNorm applied on load (on unless AVGEN_FUSE_BN=0): marks RT_CUDA_T_VIRTUAL in cls (when given; tensors
 * already classed are left alone) every training BatchNorm output that only the adapter's LayerNorm + gate
 * (forward, its input) and its backward (as x) read, all while the BatchNorm input is live: the BatchNorm
 * op computes the statistics only, and those readers load the input and apply the BatchNorm themselves.
 * Returns the count. */
int rt_cuda_bn_on_load(const avgen_graph *g, unsigned char *cls);
/* The adapter's gated fuse applied on load (on unless AVGEN_FUSE_LATENT=0): marks RT_CUDA_T_VIRTUAL in cls
 * (when given; tensors already classed are left alone) every ADAPTER_LATENT output Z = X + gate_av A2 S that
 * only the LayerNorm before the adapter (forward, its input) and its trainable backward (as x) read, all
 * while X, S and A2 are live: the latent op writes A1, S and A2 only, and those readers compute Z from them
 * as they load it. Returns the count. */
int rt_cuda_lat_on_load(const avgen_graph *g, unsigned char *cls);
/* The latent backward pairs: j's index minus one when ops j - 1 and j are ADAPTER_LATENT_BWD ops of one phase
 * that each add to the other's two stream gradients (j's X is j - 1's Y and the other way round, the same pairs
 * and width), op j - 1 not itself the second of a pair, op j writing no activation that is not older than op
 * j - 1 (so nothing can share the memory of what op j - 1 reads) nor anything op j - 1 reads or writes but those
 * gradients, neither reading the other's writes but where they add to the gradients; else -1. The CUDA backend
 * runs such a pair at op j as one: each gradient read and written once, with both ops' terms added in the two
 * ops' order (the same bits), unless AVGEN_FUSE_LATENT_BWD=0. The IR puts the two streams' adapters' latent
 * ops one after the other. */
int rt_cuda_latbwd_first(const avgen_graph *g, int j);
/* Carries: a value one op computes in a pass it makes anyway, for a later op that would otherwise make a pass of
 * its own for it, kept in op scratch from the one op to the other (rt_cuda_op_scratch counts it at every op in
 * between, below that op's own scratch). Two kinds:
 * - The gradient a LAYERNORM_GATE_BWD op i reads (its input 0, the residual stream's gradient) when the next op
 *   to touch that tensor is a LINEAR_DX against a frozen weight (input 1) reading it as its input 0, in the same
 *   phase: rt_cuda_dy16_reader gives that op, else -1. With bf16 GEMM operands that GEMM needs the gradient as
 *   bf16; the backend's fused LayerNorm + gate backward (k_ln_bwd_cs_bn16) writes it so as it reads it, instead
 *   of the GEMM rounding it in a pass of its own over the fp32 gradient (k_to_bf16), unless AVGEN_FUSE_DY16=0.
 *   The IR puts each adapter's LayerNorm + gate backward just before the input-gradient GEMM of the sub-layer it
 *   sits beside.
 * - The logits of the latent exchange of an ADAPTER_LATENT op j (its tokens . each row of its other stream Y),
 *   when an ADAPTER_LATENT op i before it in the same phase has that Y as its own stream X, unchanged up to j,
 *   and j's tokens too: rt_cuda_latdots_reader(g, i) gives j, else -1. Op i's pass over its X (k_latent_b)
 *   computes them as k_lat_dots would (the same bits), so op j makes no pass over its Y for them, unless
 *   AVGEN_FUSE_LATDOTS=0. The IR puts the two streams' adapters at a position one after the other, the vision
 *   one first, so the audio adapter's logits over the frame tokens come with the vision adapter's pass.
 * Readers are at most RT_CUDA_CARRY_REACH ops after their writer. */
int rt_cuda_dy16_reader(const avgen_graph *g, int i);
int rt_cuda_latdots_reader(const avgen_graph *g, int i);
#define RT_CUDA_CARRY_REACH 8
enum { RT_CUDA_CARRY_NONE = 0, RT_CUDA_CARRY_DY16 = 1, RT_CUDA_CARRY_LATDOTS = 2 };
/* Op i's carry: its kind (RT_CUDA_CARRY_*), its reader (*j, else -1) and its bytes in op scratch (*bytes, whole
 * 256-byte units); either pointer may be NULL. */
int rt_cuda_carry(const avgen_graph *g, int i, int *j, int64_t *bytes);
/* The byte offset in op scratch of op i's carry: just above every carry live at op i from before it; and the
 * bytes from the start of op scratch that the carries live at op hold (0: none), where op's own scratch begins. */
int64_t rt_cuda_carry_offset(const avgen_graph *g, int i);
int64_t rt_cuda_carry_extent(const avgen_graph *g, int op);
/* An ADAPTER_LATENT op i followed by the LAYERNORM before its adapter (op i + 1, same phase, its input the latent
 * op's gated fuse Z, applied on load where the backend runs them so: rt_cuda_lat_on_load) that the backend runs in
 * one kernel at op i (k_latent_ln: one read of each row of X for both, the same bits), unless
 * AVGEN_FUSE_LATLN=0: i + 1, else -1. It needs every activation op i reads or writes to live past op i (so none
 * shares memory with the LayerNorm's outputs, written early), a row width with a register path
 * (rt_cuda_ln_values > 0), and at most RT_CUDA_LATLN_MAX_M latents in op i and in the op whose logits it carries
 * (rt_cuda_latdots_reader). The IR puts each adapter's LayerNorm just after its latent op. */
int rt_cuda_latln_next(const avgen_graph *g, int i);
#define RT_CUDA_LATLN_MAX_M 2
/* The values per lane the LayerNorm kernels keep a row of width D in (1, 2 or 24), or 0: the generic loop. */
int rt_cuda_ln_values(int D);
/* The most latent tokens the fused LayerNorm + latent backward kernels take (k_latbwd_rows_ln: registers). */
#define RT_CUDA_LATBWD_LN_MAX_M 2
/* For the first op f of such a pair (f + 1 its second): f - 1 when that op is a frozen LAYERNORM_BWD of the same
 * phase accumulating into the first op's own stream gradient (rows of the same shape, a width the fused kernel
 * takes: rt_cuda_ln_values > 0, and at most 2 latents), the pair writing no activation newer than it and none of
 * its inputs, and neither reading that gradient but where they add to it; else -1. The backend runs it with the pair, in the first op's pass over that gradient (k_latbwd_rows_ln), so
 * the gradient is read and written once for the three ops. The IR puts the vision stream's frozen LayerNorm
 * backward of each sub-block just before its latent pair. */
int rt_cuda_latbwd_ln(const avgen_graph *g, int f);
/* With that one (f - 1), f - 2 when it is likewise a frozen LAYERNORM_BWD that can run with the pair, adding to
 * the other stream's gradient (the audio one): it runs in the first op's part 4 pass over that gradient
 * (k_latbwd_gy_ln); else -1. */
int rt_cuda_latbwd_lny(const avgen_graph *g, int f);
/* What rt_cuda_act_classes applies on load (fuse: a mask of these). */
enum { RT_CUDA_FUSE_BN = 1, RT_CUDA_FUSE_LATENT = 2 };
/* Every tensor's class as the CUDA backend stores it (cls, g->n_tensors entries): with bf16, the bf16
 * activations (rt_cuda_bf16_operands, with or without the fused attention), then, with RT_CUDA_FUSE_BN in
 * fuse, the BatchNorm outputs applied on load (rt_cuda_bn_on_load), with RT_CUDA_FUSE_LATENT the adapters'
 * gated fuse (rt_cuda_lat_on_load); the rest fp32. The counts go to *n_bf16, *n_bn and *n_lat (each may be
 * NULL). The backend, the planner and the bench all class tensors through it. 0, or -1: out of host memory. */
int rt_cuda_act_classes(const avgen_graph *g, int bf16, int fused_attention, int fuse, unsigned char *cls, int *n_bf16,
                        int *n_bn, int *n_lat);
/* The activation arena packed as the planner packs it (by lifetime), each tensor in the bytes its class in cls
 * says (NULL: all fp32): returns the arena's size (-1: out of host memory) and, when offset is given, each
 * activation's offset there (g->n_tensors entries; -1 for tensors not in it, 0 for those not stored). With
 * cls NULL it reproduces the planner's layout. The CUDA backend's activations live there when any class
 * differs from fp32. */
int64_t rt_cuda_pack_act(const avgen_graph *g, const unsigned char *cls, int64_t *offset);
/* The bytes op's tensors hold as the backend stores them (cls as rt_cuda_act_classes gives it; NULL: all fp32):
 * a bf16 tensor half, a tensor applied on load nothing as an output and, as an input, what its readers load
 * instead (its source, in that one's class). A lower bound of the op's memory traffic. */
double rt_cuda_op_bytes(const avgen_graph *g, int op, const unsigned char *cls);
/* The roofline of g's step in seconds: each op kind moving its tensors' bytes (rt_cuda_op_bytes) once at
 * bandwidth bytes/s or doing its ops' FLOPs (recomputed ops' included) at peak FLOP/s, whichever takes longer,
 * summed over kinds. No kernel of these ops can beat it; only fewer bytes can. Each kind's bytes and FLOPs go
 * to kind_bytes and kind_flops (AVGEN_OP_KIND_COUNT entries each; either may be NULL). */
double rt_cuda_roofline(const avgen_graph *g, const unsigned char *cls, double peak, double bandwidth, double *kind_bytes,
                        double *kind_flops);
/* A device's dense bf16 FLOP/s and its memory bytes/s by its name (SXM parts: "H100", "H200", "A100", ...; an
 * "H100 PCIe" has less bandwidth), 0 when unknown: the bench's and the planner's defaults. */
double rt_device_peak(const char *name);
double rt_device_bandwidth(const char *name);
/* That sum from each kind's bytes and FLOPs (AVGEN_OP_KIND_COUNT entries); each kind's seconds to kind_s (may be
 * NULL). A bandwidth or peak of 0 leaves that side out. */
double rt_roofline_sum(const double *kind_bytes, const double *kind_flops, double peak, double bandwidth, double *kind_s);
void rt_cuda_group_linear_dw(const rt_dw_ops *ops, const void *dY, const void *X, float *dW, float *part,
                             long long rows, int Cin, int Cout, int G);

/* One op on the device (asynchronous). Errors are sticky and reported by the next sync. */
void rt_cuda_op(avgen_ctx *c, const avgen_graph *g, int op);
void rt_cuda_zero_grads(avgen_ctx *c);

/* Page-locked host memory (cudaMallocHost), which the device reads at full speed and asynchronously: the
 * loader's batch buffers on the CUDA backend. Falls back to malloc when none can be had (rt_cuda_host_free
 * frees either), so NULL only when out of memory. Thread-safe. */
void *rt_cuda_host_alloc(size_t bytes);
void rt_cuda_host_free(void *p);
/* Copies tensor t's bytes from host memory src (page-locked: rt_cuda_host_alloc, or not) to the device,
 * asynchronously: src must stay unchanged until the next synchronisation (rt_cuda_sync, a download). The
 * batch goes up without a copy into the host arena first. 0, or 1 with err. */
int rt_cuda_upload_tensor(avgen_ctx *c, int t, const void *src, char *err, size_t errlen);
/* The next batch while a step runs (a context attached with prefetch_inputs): rt_cuda_stage_input copies input
 * tensor t from host memory src (page-locked) into the device's staging copy of the input arena on a stream of its
 * own, once the staging's previous batch has been taken; rt_cuda_take_inputs makes the step's stream wait for those
 * copies and moves the staged tensors into place (device to device: about 35 us for ViT-B/16's 52 MB at B = 32,
 * T = 8, by its size at 3 TB/s), asynchronously. src must stay unchanged until the next synchronisation
 * (rt_cuda_sync and the downloads wait for both streams). rt_cuda_can_stage: 1 when the context has the staging (0 without prefetch_inputs, or
 * with AVGEN_PREFETCH=0). 0, or 1 with err. */
int rt_cuda_can_stage(const avgen_ctx *c);
int rt_cuda_stage_input(avgen_ctx *c, int t, const void *src, char *err, size_t errlen);
int rt_cuda_take_inputs(avgen_ctx *c, char *err, size_t errlen);
/* Forgets a staged batch that will not be taken (after a synchronisation: no copy reads it any more). */
void rt_cuda_drop_staged(avgen_ctx *c);

/* A device description for logs ("NVIDIA H100 80GB HBM3, sm_90, 132 SMs"). */
const char *rt_cuda_device_name(const avgen_ctx *c);
/* Where the attached context's kernels came from, one line ("nvcc: 121 kernels built into the avgen runtime",
 * "nvcc: NAME/kernels.cu compiled into this program", or the NVRTC build: compiled or read from the cache, and
 * how long); *mode: RT_KERNELS_*; *seconds: NVRTC compile or
 * cache read plus the driver's load (0 for nvcc); *cache_hit: 1 when the cubin came from the cache. Any
 * out pointer may be NULL. */
const char *rt_cuda_kernels_info(const avgen_ctx *c, int *mode, double *seconds, int *cache_hit);

#define RT_CUDA_KERNEL_SLOTS 192 /* at least the kernels of rt_cuda_kernel_list.h, one for the GEMMs and the
                                    shape-literal instances (AVGEN_CUDA_MAX_SHAPES x AVGEN_CUDA_SHAPE_KERNEL_COUNT) */
typedef struct {
    int warmup, steps;              /* warm-up steps (>= 0; < 0: 5) and timed steps (<= 0: 20); set to those run */
    double median_ms, mean_ms, min_ms, max_ms;
    double graph_capture_ms;        /* one-off: capturing the step as a CUDA graph */
    int graph;                      /* 1 when the timed steps were CUDA graph replays */
    double first_step_ms;           /* the first (cold) eager step, with cuBLASLt algorithm selection */
    float last_loss;                /* the loss of the last timed step (every step updates the parameters) */
    /* steps as the training loop runs them, host-timed (median ms): each with its batch uploaded from page-locked
     * host memory, its loss and gradient norm read back; loop_ms with the next batch uploaded on the second stream
     * while a step runs (a context attached with prefetch_inputs; else -1), loop_plain_ms with each batch uploaded
     * on the step's stream just before it (AVGEN_PREFETCH=0's way) */
    double loop_ms, loop_plain_ms;
    double input_bytes;             /* a batch's bytes (the input arena) */
    size_t arena_bytes, scratch_bytes, workspace_bytes; /* what avgen allocated */
    size_t bf16_weights_bytes;      /* and the frozen weights' bf16 copy (AVGEN_BF16_OPERANDS=1), 0 without */
    size_t stage_bytes;             /* and the next batch's device copy (prefetch_inputs), 0 without */
    size_t device_used_bytes;       /* cudaMemGetInfo: in use after the run minus before attach */
    int n_gemm_plans;
    int n_bias_fused, n_bias_kernel; /* GEMMs with a bias: in cuBLASLt's epilogue, or a kernel after it */
    int n_gemm_tuned;                /* AVGEN_GEMM_AUTOTUNE=1: GEMMs whose algorithm was timed among candidates */
    int n_gemm_tune_changed;         /* of those, the ones where the fastest was not cuBLASLt's first choice */
    double gemm_tune_ms;             /* the time the trials took (in the first step) */
    int n_bias_bf16;                 /* of the epilogue ones, bf16 results whose bias cuBLASLt took as bf16 only */
    int n_bf16_tensors;              /* activations stored as bf16 (AVGEN_BF16_OPERANDS=1; rt_cuda_bf16_operands) */
    int attention_fused;             /* 1: the fused bf16 attention kernels ran; 0: per-head GEMMs + softmax */
    int n_bn_fused;                  /* BatchNorms applied on load, their outputs not stored (rt_cuda_bn_on_load) */
    int n_lat_fused;                 /* adapters' gated fuse applied on load, not stored (rt_cuda_lat_on_load) */
    int n_latbwd_pairs;              /* latent backward pairs run as one (rt_cuda_latbwd_first) */
    int n_dy16_carries;              /* gradients carried as bf16 from a LayerNorm + gate backward to the GEMM after it
                                        (rt_cuda_dy16_reader) */
    int n_latdots_carries;           /* latent exchange logits carried from the other stream's adapter's pass
                                        (rt_cuda_latdots_reader) */
    int n_latln_fused;               /* latent ops run with the LayerNorm after them (rt_cuda_latln_next) */
    int n_attn_literal;              /* of the fused attention's shapes (rt_cuda_attn_shapes), those run by shape-literal
                                        instances (kernel_ms names them: "k_attn_fwd_bf<64, 197, 12>") */
    double family_ms[64];           /* per op kind, one profiled eager step (events around every op) */
    double *op_ms;                  /* the same step per op (g->n_ops entries, malloc'd: the caller frees) */
    /* per kernel, one more eager step with events around every launch (and every cuBLASLt matmul, the
     * last slot): name, launches and time in all; n_kernel_slots entries */
    int n_kernel_slots;
    char kernel_name[RT_CUDA_KERNEL_SLOTS][64];
    int kernel_calls[RT_CUDA_KERNEL_SLOTS];
    double kernel_ms[RT_CUDA_KERNEL_SLOTS];
} rt_cuda_bench_result;

typedef void (*rt_cuda_phase_fn)(avgen_ctx *c);

/* A training step on the device, as the training loop runs it: rt_cuda_train_fwd_bwd zeroes the gradients
 * (zero_grads: the first batch of an accumulation) and runs the forward and backward phases (fwd, bwd: the
 * generated code, or NULL for the op tables), rt_cuda_train_update the update phase. Each of these parts runs
 * eagerly at its first call (cuBLASLt chooses its algorithms then), is captured as a CUDA graph at its second
 * and replayed from then on: one launch a part, no synchronisation inside. A replayed update reads this step's
 * optimizer scalars (bias corrections, learning rates, gradient scale: set on the host as the ADAM op does)
 * from pinned memory, after the previous copy from it is done (the host waits for that, if ever it has to).
 * AVGEN_CUDA_GRAPH=0 runs every call eagerly; a capture CUDA refuses is said on stderr and the steps go on
 * eagerly. Asynchronous; errors show at the next sync. rt_cuda_graph_launches: how many parts ran as graph
 * launches so far (the capturing call's launch included). */
void rt_cuda_train_fwd_bwd(avgen_ctx *c, int zero_grads, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd);
void rt_cuda_train_update(avgen_ctx *c, rt_cuda_phase_fn upd);
/* The forward phase alone (evaluation and validation batches), the same way: a graph once warm. */
void rt_cuda_forward(avgen_ctx *c, rt_cuda_phase_fn fwd);
long long rt_cuda_graph_launches(const avgen_ctx *c);

/* Times training steps (zero grads, forward, backward, update) on the attached context as training runs
 * them (rt_cuda_train_fwd_bwd, rt_cuda_train_update): one cold eager step, then the step captured as CUDA
 * graphs and replayed warmup + steps times, each timed with events (AVGEN_CUDA_GRAPH=0: eager steps); then steps
 * as the training loop runs them (loop_ms, loop_plain_ms: uploads and read-backs included, host-timed); then
 * one eager step with events around every op for the per-kind breakdown, and one with
 * events around every kernel launch and cuBLASLt matmul for the per-kernel breakdown. The phase
 * functions are the generated straight-line code, or NULL for the interpreter. 0, or 1 with err. */
int rt_cuda_bench(avgen_ctx *c, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd,
                  rt_cuda_bench_result *r, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
