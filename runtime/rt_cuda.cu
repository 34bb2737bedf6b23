// rt_cuda.cu: the CUDA backend of every op kind (see rt_cuda.h), checked against runtime/rt_cpu_ops.c.
// Layout conventions are the CPU reference's: row-major, activations [rows, width], weights [out, in].
// Every sum that the reference does in double (statistics, bias and BatchNorm gradients, softmax
// normalisers of the loss) is done in double here too, in a fixed order: no atomics, so a step is
// bit-for-bit repeatable. Kernels take their shapes as arguments; the host code below computes grids
// from the op tables once per call. Every launch goes through one table of kernels (launch() below): this
// binary's nvcc-compiled copy, or the same text compiled by NVRTC at attach time (--kernels nvrtc).
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef AVGEN_CUDA_EMU  // (the emulator's build links the C++ library: its launches' names, launch_as)
#include <mutex>
#include <set>
#include <string>
#endif

extern "C" {
#include "rt_cuda.h"
#include "rt_cuda_kernel_list.h"
#include "rt_device.h"
#include "rt_dl.h"
#include "rt_kernels.h"
}

namespace {

// Every kernel (device code, shared with NVRTC and the emitted kernels.cu).
#include "rt_cuda_kernels.cuh"

// The launch table's order and this binary's copies (rt_cuda_kernel_list.h).
#define KADDR(f) (const void *)&f,
#define KNAME(f) #f,
const void *const kBuiltin[] = {AVGEN_CUDA_KERNELS(KADDR)};
const char *const kKernelNames[] = {AVGEN_CUDA_KERNELS(KNAME)};
#undef KADDR
#undef KNAME
constexpr int kNumKernels = (int)(sizeof kBuiltin / sizeof kBuiltin[0]);

// Shape-literal instances (rt_cuda_kernel_list.h: AVGEN_CUDA_SHAPE_KERNELS), per (head width, tokens, heads):
// this binary's copies for AVGEN_CUDA_BUILTIN_SHAPES, or the NVRTC build's for the shape lines of its source.
// A launch whose shape has no instance runs the generic kernel of the launch table.
#define SK_ENUM(f) SK_##f,
enum { AVGEN_CUDA_SHAPE_KERNELS(SK_ENUM) kShapeKernels };
#undef SK_ENUM
static_assert(kShapeKernels == AVGEN_CUDA_SHAPE_KERNEL_COUNT, "AVGEN_CUDA_SHAPE_KERNEL_COUNT");
static_assert(kLatBwdLnMaxM == RT_CUDA_LATBWD_LN_MAX_M, "rt_cuda_latbwd_ln must allow what k_latbwd_rows_ln takes");
struct ShapeSet {
    int hd, n, h;
    const void *k[kShapeKernels];
};
template <int HD, int N, int H>
ShapeSet builtin_shape() {
#define SADDR(f) (const void *)&f<HD, N, H>,
    return ShapeSet{HD, N, H, {AVGEN_CUDA_SHAPE_KERNELS(SADDR)}};
#undef SADDR
}
#define BSHAPE(hd, n, h) builtin_shape<hd, n, h>(),
const ShapeSet kBuiltinShapes[] = {AVGEN_CUDA_BUILTIN_SHAPES(BSHAPE)
#ifdef AVGEN_CUDA_EMU  // and emu-wide's and tiny-lavish's (tests/CMakeLists.txt), so that the emulated tests run instances
                                       BSHAPE(64, 197, 2) BSHAPE(64, 49, 2) BSHAPE(16, 10, 4) BSHAPE(16, 13, 4)
#endif
};
#undef BSHAPE
constexpr int kNumBuiltinShapes = (int)(sizeof kBuiltinShapes / sizeof kBuiltinShapes[0]);
static_assert(kNumBuiltinShapes <= AVGEN_CUDA_MAX_SHAPES, "AVGEN_CUDA_MAX_SHAPES");

// ------------------------------------------------------------------------------------------ state

struct GemmKey {
    int ta, tb, M, N, K, lda, ldb, ldc, batch, beta1;
    int epi;  // 1: bias epilogue (the bias pointer is set at each call)
    long long sa, sb, sc;
    unsigned align_a, align_b, align_c;  // pointer alignments (bytes, power of two, at most 256)
    unsigned align_bias;                 // the bias pointer's (the algorithm is chosen with the first one)
    int ab16;                            // A and B are bf16 (bf16 GEMM operands)
    int c16;                             // C is bf16 too (bf16 storage: qkv)
};

struct GemmPlan {
    GemmKey k;
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    int epi;  // the epilogue in use: the key's (1), 2 for a bf16 C with the bias as bf16 (cuBLASLt had no
              // algorithm with an fp32 bias), or 0 when cuBLASLt had no algorithm with it
};

// An op's part in a latent backward group, which runs at its last op, the pair's second (rt_cuda_latbwd_first):
// there, the pair's first op and the frozen LayerNorm backward ops that run with it (rt_cuda_latbwd_ln, _lny;
// -1: none); deferred: the op is one of those, run there.
struct LatGroup {
    int first, ln, lny;
    bool deferred;
};

struct Dev {
    unsigned char *arena[AVGEN_ARENA_COUNT];
    size_t arena_bytes[AVGEN_ARENA_COUNT];
    float *frames_f32;
    cudaStream_t s;
    cublasLtHandle_t lt;
    void *ws;
    size_t ws_bytes;
    unsigned char *scratch;
    size_t scratch_bytes, scratch_used;
    GemmPlan *plans;
    int n_plans, cap_plans;
    int precision;
    cublasComputeType_t compute;
    // Adam and zeroing tables
    AdamSeg *segs;
    int2 *chunks;  // (segment, first element)
    int n_segs, n_chunks;
    AdamScalars *scal_dev, *scal_host;  // host side pinned
    double *gn_part;                    // the gradient norm's per-chunk sums and their total (n_chunks + 1)
    // errors
    int failed;
    char why[2048];
    char name[320];
    // profiling: events around ops when set
    cudaEvent_t *ev;
    int profiling;
    double gemm_ms_acc;
    int n_epi_fused, n_epi_kernel;  // bias epilogues: in cuBLASLt, or as a separate kernel (no algorithm)
    int n_epi_bias16;               // of the fused ones, those of a bf16 C whose bias cuBLASLt takes as bf16 only
    int gemm_tune;                  // AVGEN_GEMM_AUTOTUNE=1: each GEMM's algorithm timed among cuBLASLt's candidates
    int n_tuned, n_tune_changed;    // GEMMs so timed, and those whose fastest was not cuBLASLt's first choice
    double tune_ms;                 // the time those trials took
    size_t free_before;
    // kernels: the launch table (this binary's copies, or the NVRTC build's handles)
    const void *kern[kNumKernels];
    // the shape-literal instances the launches may take (none with AVGEN_SHAPE_KERNELS=0)
    ShapeSet shapes[AVGEN_CUDA_MAX_SHAPES];
    int n_shapes, shape_kernels, shapes_refused;
    int n_attn_literal;  // of the configuration's attention shapes (rt_cuda_attn_shapes), those with instances
    int kernels_mode;  // RT_KERNELS_*
    int program_kernels;  // AVGEN_PROGRAM_KERNELS (default 1): a program's own nvcc build when it has one
    // a training step's parts as CUDA graphs (rt_cuda_train_fwd_bwd, rt_cuda_train_update; AVGEN_CUDA_GRAPH)
    int use_graphs;
    int update_graphs;  // the update phase is one ADAM op, so a replay can set its scalars as the op does
    int part_calls[4];
    cudaGraphExec_t part_exec[4];
    long long graph_launches;
    // the optimizer's scalars: an event after the last copy that reads scal_host (the host waits for it before
    // writing the next step's), and whether one is pending
    cudaEvent_t scal_ev;
    int scal_pending;
    int attn_fused;    // bf16 GEMMs and not AVGEN_ATTENTION=gemm: the fused attention kernels
    cudaLibrary_t lib;
    rt_cubin cubin;  // the NVRTC build, kept while the library is loaded
    char kinfo[1600];
    double kernel_s;
    int kernel_hit;
    // kernel profiling (bench): events around every launch and cuBLASLt matmul when kprof is set
    struct KEvent {
        int id;  // kernel table index; kNumKernels: a cuBLASLt matmul; after it, shape-literal instances
        cudaEvent_t a, b;
    } *kev;
    int n_kev, cap_kev, kprof;
    // bf16 GEMM operands (AVGEN_BF16_OPERANDS=1 with bf16 GEMMs): the frozen arena's bf16 copy, and per
    // tensor whether it is stored as bf16 (rt_cuda_bf16_operands)
    int bf16_ops;
    int64_t *act_off;  // some activations bf16 or not stored: each one's offset in the repacked arena (rt_cuda_pack_act)
    size_t act_bytes;
    unsigned short *frozen16;
    // and the parameter arena's (same element offsets): the trainable weights the grouped projections read as bf16
    // operands, rounded all at once at the first op that reads one (w16_first; its tensors w16_t), so that op and the
    // rest of the step read them there (AVGEN_FEWER_LAUNCHES; else each op rounds its weight into op scratch)
    unsigned short *train16;
    int w16_first, n_w16;
    int *w16_t;
    int frozen_shared;  // arena[FROZEN] and frozen16 belong to another context (rt_cuda_opts.share_frozen)
    int fused_ln_bwd;   // trainable LayerNorms' backward with its column sums in one kernel (AVGEN_FUSED_LN_BWD)
    int fewer_launches; // small launches merged (AVGEN_FEWER_LAUNCHES): BatchNorm statistics, trainable bf16 weights
    int *ln_res;        // per op: for a LAYERNORM_GATE, the residual it adds to its output (-1: none)
    unsigned char *lr_fused;  // per op: a LINEAR_RESIDUAL whose third addend already holds its residual
    // per op, the latent backward groups (fused_latent_bwd; NULL with AVGEN_FUSE_LATENT_BWD=0)
    LatGroup *lb;
    // Carries in op scratch (rt_cuda_carry; fused_carries; NULL when none is on): per op, where its own scratch
    // begins (below it the carries live at it); for a writer whose carry is on its offset (else -1); for that
    // carry's reader the writer's index (else -1), and whether the writer wrote it in this run of the ops (set
    // there, cleared at the reader).
    int64_t *carry_base, *carry_off;
    int *carry_src;
    unsigned char *carry_ready;
    int n_dy16, n_latdots;  // carries on, by kind
    // Latent ops run with the LayerNorm after them (fused_latln; NULL with AVGEN_FUSE_LATLN=0): per op, whether it
    // is such a latent op (the op after it then does nothing: the two are always run one after the other).
    unsigned char *latln;
    int n_latln;
    unsigned char *t16;  // per tensor its class (RT_CUDA_T_*: fp32, bf16, not stored), NULL when all are fp32
    // Tensors applied on load (RT_CUDA_T_VIRTUAL): per tensor the op that writes it when it is not stored (else
    // -1): a BATCHNORM (rt_cuda_bn_on_load; AVGEN_FUSE_BN=0: none) or an ADAPTER_LATENT (its gated fuse,
    // rt_cuda_lat_on_load; AVGEN_FUSE_LATENT=0: none)
    int *vwriter;
    int n_bn_fused, n_lat_fused;
    // The next batch's inputs, copied up on a stream of their own while a step runs (rt_cuda_opts.prefetch_inputs;
    // AVGEN_PREFETCH=0: none): a staging copy of the input arena, the copy stream, an event after the latest
    // staged copy (the step's stream waits for it before taking them) and one after the latest take (the next
    // batch's copies wait for it before overwriting the staging); per tensor whether it is staged, not yet taken.
    cudaStream_t cs;
    unsigned char *stage;
    cudaEvent_t ev_staged, ev_taken;
    unsigned char *staged;
    int n_staged;
};

// Kernel profiling: records the start event of launch n_kev (id) and returns its end event, or NULL when
// not profiling (or out of memory: profiling stops, the step goes on).
cudaEvent_t *kprof_begin(Dev *d, int id) {
    if (!d->kprof) return NULL;
    if (d->n_kev == d->cap_kev) {
        const int cap = d->cap_kev ? 2 * d->cap_kev : 1024;
        Dev::KEvent *nk = (Dev::KEvent *)realloc(d->kev, sizeof(Dev::KEvent) * cap);
        if (!nk) {
            d->kprof = 0;
            return NULL;
        }
        for (int i = d->cap_kev; i < cap; i++) {
            nk[i].id = -1;
            if (cudaEventCreate(&nk[i].a) != cudaSuccess || cudaEventCreate(&nk[i].b) != cudaSuccess) {
                d->kev = nk, d->cap_kev = i, d->kprof = 0;
                return NULL;
            }
        }
        d->kev = nk, d->cap_kev = cap;
    }
    Dev::KEvent *e = &d->kev[d->n_kev++];
    e->id = id;
    cudaEventRecord(e->a, d->s);
    return &e->b;
}

#define DEV(c) ((Dev *)(c)->dev)

// The first failure of a step is kept (sticky) and reported by the next sync.
__attribute__((format(printf, 2, 3))) void set_fail(Dev *d, const char *fmt, ...) {
    if (d->failed) return;
    d->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->why, sizeof d->why, fmt, ap);
    va_end(ap);
}

bool ck(Dev *d, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return true;
    set_fail(d, "%s: %s", what, cudaGetErrorString(e));
    return false;
}

// Kernel launches: every kernel goes through the table d->kern, found by this binary's copy k (whose
// signature types the arguments, converted as in a direct call), so the nvcc and NVRTC builds run the same
// host code. A refused launch is a sticky error naming the kernel; faults inside kernels surface at the
// next sync.
template <class T> struct NoDeduce { typedef T type; };
template <class... P> struct ArgPack;
template <> struct ArgPack<> {
    void fill(void **) {}
};
template <class H, class... T> struct ArgPack<H, T...> {
    H h;
    ArgPack<T...> t;
    explicit ArgPack(H a, T... r) : h(a), t(r...) {}
    void fill(void **p) {
        p[0] = &h;
        t.fill(p + 1);
    }
};

// launch_as: the same with inst >= 0, a shape-literal instance of k (same parameters; shape_kernel's index
// s * kShapeKernels + j into d->shapes), instead of k's entry in the table.
template <class... P>
void launch_as(Dev *d, void (*k)(P...), int inst, dim3 grid, dim3 block, size_t smem, typename NoDeduce<P>::type... a) {
    if (d->failed) return;
    int id = -1;
    for (int i = 0; i < kNumKernels && id < 0; i++)
        if (kBuiltin[i] == (const void *)k) id = i;
    if (id < 0) {
        set_fail(d, "a kernel is missing from runtime/rt_cuda_kernel_list.h (a bug in avgen)");
        return;
    }
    // the profile's slot: an instance's after the list's and cuBLASLt's (rt_cuda_bench)
    cudaEvent_t *pe = kprof_begin(d, inst >= 0 ? kNumKernels + 1 + inst : id);
    const void *handle = inst >= 0 ? d->shapes[inst / kShapeKernels].k[inst % kShapeKernels] : d->kern[id];
#ifdef AVGEN_CUDA_EMU  // the CUDA emulator of the tests (runtime/emu) runs this build's copies on the CPU
    // (the table's: this build's copies, or a program's own build, kernels_nvcc.cu compiled as host C++)
    void (*fn)(P...) = (void (*)(P...))handle;
    auto args = std::make_tuple(typename NoDeduce<P>::type(a)...);
    // (an instance is named with its shape, kernel<hd>@hd,n,h: a name kept for the process, since the launch may
    // run later, when a stream lags or a captured graph is replayed, and the emulator keeps it)
    const char *name = kKernelNames[id];
    if (inst >= 0) {
        const ShapeSet &ss = d->shapes[inst / kShapeKernels];
        char iname[96];
        snprintf(iname, sizeof iname, "%s@%d,%d,%d", kKernelNames[id], ss.hd, ss.n, ss.h);
        static std::mutex names_mu;
        static std::set<std::string> names;
        std::lock_guard<std::mutex> lock(names_mu);
        name = names.insert(iname).first->c_str();
    }
    const cudaError_t e = avgen_emu::launch(name, grid, block, smem, d->s, [fn, args]() { std::apply(fn, args); }, handle);
#else
    ArgPack<P...> pack(a...);
    void *argv[sizeof...(P) + 1];
    pack.fill(argv);
    const cudaError_t e = cudaLaunchKernel(handle, grid, block, argv, smem, d->s);
#endif
    if (pe) cudaEventRecord(*pe, d->s);
    if (e != cudaSuccess) set_fail(d, "kernel %s%s: %s", kKernelNames[id], inst >= 0 ? " (shape-literal instance)" : "",
                                   cudaGetErrorString(e));
}
template <class... P>
void launch(Dev *d, void (*k)(P...), dim3 grid, dim3 block, size_t smem, typename NoDeduce<P>::type... a) {
    launch_as(d, k, -1, grid, block, smem, a...);
}

// The shape-literal instance of shape kernel sk for (head width, tokens, heads) as launch_as takes it, or -1
// (the generic kernel).
int shape_kernel(const Dev *d, int sk, int hd, int n, int h) {
    for (int i = 0; i < d->n_shapes; i++)
        if (d->shapes[i].hd == hd && d->shapes[i].n == n && d->shapes[i].h == h) return i * kShapeKernels + sk;
    return -1;
}

// ------------------------------------------------------------------------------- cuBLASLt (dlopen)

struct Lt {
    int loaded, failed;
    char why[400];
    decltype(&cublasLtCreate) create;
    decltype(&cublasLtDestroy) destroy;
    decltype(&cublasLtMatmulDescCreate) desc_create;
    decltype(&cublasLtMatmulDescDestroy) desc_destroy;
    decltype(&cublasLtMatmulDescSetAttribute) desc_set;
    decltype(&cublasLtMatrixLayoutCreate) layout_create;
    decltype(&cublasLtMatrixLayoutDestroy) layout_destroy;
    decltype(&cublasLtMatrixLayoutSetAttribute) layout_set;
    decltype(&cublasLtMatmulPreferenceCreate) pref_create;
    decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy;
    decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set;
    decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic;
    decltype(&cublasLtMatmul) matmul;
} lt;

int lt_load(char *why, size_t whylen) {
    if (lt.loaded) return 0;
#ifdef AVGEN_CUDA_EMU  // the emulator's own entry points (runtime/emu/cuda_emu.cc), no library to load
    lt.create = cublasLtCreate, lt.destroy = cublasLtDestroy, lt.desc_create = cublasLtMatmulDescCreate;
    lt.desc_destroy = cublasLtMatmulDescDestroy, lt.desc_set = cublasLtMatmulDescSetAttribute;
    lt.layout_create = cublasLtMatrixLayoutCreate, lt.layout_destroy = cublasLtMatrixLayoutDestroy;
    lt.layout_set = cublasLtMatrixLayoutSetAttribute, lt.pref_create = cublasLtMatmulPreferenceCreate;
    lt.pref_destroy = cublasLtMatmulPreferenceDestroy, lt.pref_set = cublasLtMatmulPreferenceSetAttribute;
    lt.heuristic = cublasLtMatmulAlgoGetHeuristic, lt.matmul = cublasLtMatmul;
    lt.loaded = 1;
    return 0;
#endif
    if (!lt.failed) {
        void *h = rt_dl_open("AVGEN_CUBLASLT_LIB", "libcublasLt.so.13", "libcublasLt.so", "cuBLASLt", lt.why, sizeof lt.why);
        if (!h) {
            lt.failed = 1;
        } else {
#define SYM(f, n) (*(void **)&lt.f = dlsym(h, n), ok = ok && lt.f)
            int ok = 1;
            SYM(create, "cublasLtCreate");
            SYM(destroy, "cublasLtDestroy");
            SYM(desc_create, "cublasLtMatmulDescCreate");
            SYM(desc_destroy, "cublasLtMatmulDescDestroy");
            SYM(desc_set, "cublasLtMatmulDescSetAttribute");
            SYM(layout_create, "cublasLtMatrixLayoutCreate");
            SYM(layout_destroy, "cublasLtMatrixLayoutDestroy");
            SYM(layout_set, "cublasLtMatrixLayoutSetAttribute");
            SYM(pref_create, "cublasLtMatmulPreferenceCreate");
            SYM(pref_destroy, "cublasLtMatmulPreferenceDestroy");
            SYM(pref_set, "cublasLtMatmulPreferenceSetAttribute");
            SYM(heuristic, "cublasLtMatmulAlgoGetHeuristic");
            SYM(matmul, "cublasLtMatmul");
#undef SYM
            if (!ok) {
                snprintf(lt.why, sizeof lt.why, "the cuBLASLt library lacks an entry point avgen needs (too old?)");
                lt.failed = 1;
            } else {
                lt.loaded = 1;
            }
        }
    }
    if (lt.failed) snprintf(why, whylen, "%s", lt.why);
    return lt.failed ? -1 : 0;
}

// ------------------------------------------------------------------------------------- host side

int blocks_for(long long n, int threads) {
    long long b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535LL * 8) b = 65535LL * 8;
    return (int)b;
}

void *scratch(Dev *d, size_t bytes) {
    size_t at = (d->scratch_used + 255) & ~(size_t)255;
    if (at + bytes > d->scratch_bytes) {
        set_fail(d, "op scratch overflow (%zu bytes needed, %zu planned)", at + bytes, d->scratch_bytes);
        return NULL;
    }
    d->scratch_used = at + bytes;
    return d->scratch + at;
}

// AVGEN_GEMM_AUTOTUNE=1: a new plan's algorithm is the fastest of cuBLASLt's first kTuneAlgos candidates, timed
// on the call's own operands (one run to warm up, then three between events; the first of equal times), not
// cuBLASLt's first choice. Only at a plan's first call (the cold step, which runs eagerly: never while a graph
// is captured) and only where running the GEMM again leaves its result unchanged (not an accumulation into C
// itself). It synchronizes the device once per plan, and which candidate wins can differ from run to run (so
// can the result's last bits): off by default, for benchmarks.
constexpr int kTuneAlgos = 8;
// Whether the stream is being captured into a graph (when it cannot be told: as if it were, where nothing may wait).
bool capturing(Dev *d) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    return cudaStreamIsCapturing(d->s, &st) != cudaSuccess || st != cudaStreamCaptureStatusNone;
}
void gemm_tune(Dev *d, GemmPlan *pl, const cublasLtMatmulHeuristicResult_t *cand, int n, const void *a, const void *b,
               const float *beta, const void *cin, void *C) {
    if (cin == C && *beta != 0.0f) return;  // an accumulation: each run would add again
    if (capturing(d)) return;
    cudaEvent_t e0, e1;
    if (cudaEventCreate(&e0) != cudaSuccess) return;
    if (cudaEventCreate(&e1) != cudaSuccess) {
        cudaEventDestroy(e0);
        return;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    const float alpha = 1.0f;
    int best = -1;
    float best_ms = 0;
    auto run = [&](int i) {
        return lt.matmul(d->lt, pl->desc, &alpha, a, pl->la, b, pl->lb, beta, cin, pl->lc, C, pl->lc, &cand[i].algo, d->ws,
                         d->ws_bytes, d->s) == CUBLAS_STATUS_SUCCESS;
    };
    for (int i = 0; i < n; i++) {
        if (cand[i].state != CUBLAS_STATUS_SUCCESS || !run(i)) continue;  // a candidate these operands do not suit
        bool ok = cudaEventRecord(e0, d->s) == cudaSuccess;
        for (int r = 0; r < 3 && ok; r++) ok = run(i);
        float ms = 0;
        if (!ok || cudaEventRecord(e1, d->s) != cudaSuccess || cudaEventSynchronize(e1) != cudaSuccess ||
            cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess)
            continue;
        if (best < 0 || ms < best_ms) best = i, best_ms = ms;
    }
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    d->tune_ms += (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (best < 0) return;
    pl->algo = cand[best].algo;
    d->n_tuned++;
    if (best > 0) d->n_tune_changed++;
}

// C[M,N] = op(A) op(B) (+ C when beta1) (+ bias[n]), row-major; op(A) is [M,K] (ta: A stored [K,M]), op(B)
// is [K,N] (tb: B stored [N,K]). Batched: batch matrices at strides sa, sb, sc (elements). With csrc (and
// beta1), C = op(A) op(B) + csrc (csrc has C's layout; it may be C). With bias (unbatched), cuBLASLt's bias
// epilogue adds bias[n] to every row, or, when it has no algorithm for that, a kernel after the GEMM.
// Column-major cuBLASLt computes C^T = op(B)^T op(A)^T, so the operands swap. ab16: A and B are bf16 (C, the
// bias and csrc fp32), with fp32 arithmetic on them (bf16 GEMM operands). c16 (with ab16, not beta1): C is
// bf16, rounded from the fp32 result with the fp32 bias added; where cuBLASLt has no algorithm for an fp32
// bias with a bf16 C, the bias is added as bf16 (bias16, its bf16 copy), its own type there.
void gemm(Dev *d, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb, void *C,
          int ldc, int beta1, int batch = 1, long long sa = 0, long long sb = 0, long long sc = 0,
          const float *bias = NULL, const float *csrc = NULL, int ab16 = 0, int c16 = 0,
          const unsigned short *bias16 = NULL) {
    if (d->failed) return;
    cublasLtMatmulHeuristicResult_t tune[kTuneAlgos];  // AVGEN_GEMM_AUTOTUNE: a new plan's candidates (gemm_tune)
    int tune_n = 0;
    if (c16 && (!ab16 || beta1 || (bias && !bias16))) {
        set_fail(d, "a GEMM with a bf16 result needs bf16 operands, no addend and a bf16 bias copy (a bug in avgen)");
        return;
    }
    GemmKey key;
    memset(&key, 0, sizeof key);
    key.ta = ta, key.tb = tb, key.M = M, key.N = N, key.K = K, key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.batch = batch, key.beta1 = beta1, key.sa = sa, key.sb = sb, key.sc = sc, key.epi = bias != NULL;
    key.ab16 = ab16, key.c16 = c16;
    if (bias && batch > 1) {
        set_fail(d, "a GEMM with a bias must not be batched (a bug in avgen)");
        return;
    }
    auto align = [](const void *p) -> unsigned {
        const uintptr_t v = (uintptr_t)p;
        const uintptr_t low = v & (~v + 1);
        return (unsigned)(v == 0 || low > 256 ? 256 : low);
    };
    key.align_a = align(A), key.align_b = align(B), key.align_c = align(C);
    if (csrc && align(csrc) < key.align_c) key.align_c = align(csrc);
    if (bias) key.align_bias = align(bias);
    if (bias16 && align(bias16) < key.align_bias) key.align_bias = align(bias16);  // the fallback's bias (c16)
    if (batch > 1) {  // every matrix of a batch starts a stride further: its alignment counts too
        auto lower = [&](unsigned &al, long long stride, int es) {
            const unsigned s = align((const void *)(uintptr_t)(stride * es));
            if (s < al) al = s;
        };
        lower(key.align_a, sa, ab16 ? 2 : 4), lower(key.align_b, sb, ab16 ? 2 : 4), lower(key.align_c, sc, c16 ? 2 : 4);
    }
    GemmPlan *pl = NULL;
    for (int i = 0; i < d->n_plans; i++)
        if (!memcmp(&d->plans[i].k, &key, sizeof key)) {
            pl = &d->plans[i];
            break;
        }
    if (!pl) {
        if (d->n_plans == d->cap_plans) {
            int cap = d->cap_plans ? 2 * d->cap_plans : 64;
            GemmPlan *np = (GemmPlan *)realloc(d->plans, sizeof(GemmPlan) * cap);
            if (!np) {
                set_fail(d, "out of host memory");
                return;
            }
            d->plans = np, d->cap_plans = cap;
        }
        pl = &d->plans[d->n_plans];
        memset(pl, 0, sizeof *pl);
        pl->k = key;
        cublasStatus_t st = lt.desc_create(&pl->desc, ab16 ? CUBLAS_COMPUTE_32F : d->compute, CUDA_R_32F);
        const cudaDataType_t tab = ab16 ? CUDA_R_16BF : CUDA_R_32F;
        cublasOperation_t opa = tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
        if (!st) st = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa);
        if (!st) st = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb);
        // column-major: first operand = B storage, second = A storage, result [N, M]
        if (!st) st = lt.layout_create(&pl->la, tab, tb ? K : N, tb ? N : K, ldb);
        if (!st) st = lt.layout_create(&pl->lb, tab, ta ? M : K, ta ? K : M, lda);
        if (!st) st = lt.layout_create(&pl->lc, c16 ? CUDA_R_16BF : CUDA_R_32F, N, M, ldc);
        if (!st && batch > 1) {
            int32_t bc = batch;
            st = lt.layout_set(pl->la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
            if (!st) st = lt.layout_set(pl->la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb);
            if (!st) st = lt.layout_set(pl->lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
            if (!st) st = lt.layout_set(pl->lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa);
            if (!st) st = lt.layout_set(pl->lc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
            if (!st) st = lt.layout_set(pl->lc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sc, sizeof sc);
        }
        cublasLtMatmulPreference_t pref = NULL;
        if (!st) st = lt.pref_create(&pref);
        uint64_t wsb = d->ws_bytes;
        if (!st) st = lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
        // cuBLASLt's A is our B storage, its B our A (see above); C and D are both C.
        uint32_t aa = key.align_b, ab = key.align_a, ac = key.align_c;
        if (!st) st = lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof aa);
        if (!st) st = lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof ab);
        if (!st) st = lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof ac);
        if (!st) st = lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof ac);
        cublasLtMatmulHeuristicResult_t res;
        int got = 0;
        pl->epi = key.epi;
        if (!st && pl->epi && c16) {
            // a bf16 C: the bias in fp32 if cuBLASLt can, else as bf16 (its default there); no kernel fallback
            const cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BIAS;
            st = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e);
            // (an fp32 bias that cuBLASLt refuses to take, or finds no algorithm for, moves on to the bf16 one)
            for (int bt = 0; bt < 2 && !st && !got; bt++) {
                const int32_t type = bt ? CUDA_R_16BF : CUDA_R_32F;
                const void *bp = bt ? (const void *)bias16 : (const void *)bias;
                cublasStatus_t s2 = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &type, sizeof type);
                if (!s2) s2 = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp);
                if (!s2 && (lt.heuristic(d->lt, pl->desc, pl->la, pl->lb, pl->lc, pl->lc, pref, 1, &res, &got) || got < 1))
                    got = 0;
                if (s2 && bt) st = s2;  // the last try's error is the one reported
                pl->epi = bt ? 2 : 1;
            }
            if (!st && !got) st = CUBLAS_STATUS_NOT_SUPPORTED;
        } else if (!st && pl->epi) {
            const cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BIAS;
            st = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e);
            if (!st) st = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
            if (!st && (lt.heuristic(d->lt, pl->desc, pl->la, pl->lb, pl->lc, pl->lc, pref, 1, &res, &got) || got < 1)) {
                // no algorithm with the epilogue: plain GEMM, bias added by a kernel
                const cublasLtEpilogue_t e0 = CUBLASLT_EPILOGUE_DEFAULT;
                st = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &e0, sizeof e0);
                pl->epi = 0, got = 0;
            }
        }
        if (!st && !got) st = lt.heuristic(d->lt, pl->desc, pl->la, pl->lb, pl->lc, pl->lc, pref, 1, &res, &got);
        // AVGEN_GEMM_AUTOTUNE: cuBLASLt's candidates for the descriptor as it now stands, timed below
        if (!st && got > 0 && d->gemm_tune &&
            (lt.heuristic(d->lt, pl->desc, pl->la, pl->lb, pl->lc, pl->lc, pref, kTuneAlgos, tune, &tune_n) || tune_n < 2))
            tune_n = 0;
        if (pref) lt.pref_destroy(pref);
        if (st || got < 1) {
            set_fail(d, "cuBLASLt has no algorithm for the GEMM M=%d N=%d K=%d ta=%d tb=%d batch=%d%s%s (status %d, %d algorithms)",
                     M, N, K, ta, tb, batch, ab16 ? " bf16" : "", c16 ? " to bf16" : "", (int)st, got);
            return;
        }
        pl->algo = res.algo;
        d->n_plans++;
        if (key.epi) (pl->epi ? d->n_epi_fused : d->n_epi_kernel)++;
        if (pl->epi == 2) d->n_epi_bias16++;
    }
    if (pl->epi) {
        const void *bp = pl->epi == 2 ? (const void *)bias16 : (const void *)bias;
        const cublasStatus_t st = lt.desc_set(pl->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp);
        if (st) {
            set_fail(d, "cuBLASLt cannot take the bias pointer (status %d)", (int)st);
            return;
        }
    }
    const float alpha = 1.0f, beta = beta1 ? 1.0f : 0.0f;
    const void *cin = csrc && beta1 ? (const void *)csrc : C;
    if (tune_n > 1) gemm_tune(d, pl, tune, tune_n, B, A, &beta, cin, C);
    cudaEvent_t *pe = kprof_begin(d, kNumKernels);
    cublasStatus_t st = lt.matmul(d->lt, pl->desc, &alpha, B, pl->la, A, pl->lb, &beta, cin, pl->lc, C, pl->lc, &pl->algo,
                                  d->ws, d->ws_bytes, d->s);
    if (pe) cudaEventRecord(*pe, d->s);
    if (st) {
        set_fail(d, "cuBLASLt matmul failed for M=%d N=%d K=%d (status %d)", M, N, K, (int)st);
        return;
    }
    if (bias && !pl->epi) launch(d, k_bias_cols, dim3(blocks_for((long long)M * N, 256)), dim3(256), 0, (float *)C, (long long)ldc,
                                 bias, (long long)M, N);
}

#define TD(t) (&g->tensors[t])
#define PF(t) ((float *)dptr(c, t))

void *dptr(const avgen_ctx *c, int t) {
    const avgen_tensor_desc *td = &c->g->tensors[t];
    const Dev *d = DEV(c);
    if (td->arena == AVGEN_ARENA_ACT && d->act_off) return d->arena[td->arena] + d->act_off[t];  // repacked
    return d->arena[td->arena] + td->offset;
}

long long numel(const avgen_tensor_desc *t) { return t->bytes / 4; }

// bf16 GEMM operands: whether tensor t is stored as bf16 (rt_cuda_bf16_operands), its bf16 data, and a frozen
// tensor's bf16 copy (same element offset in d->frozen16 as in the frozen arena).
bool is16(const Dev *d, int t) { return d->t16 && t >= 0 && d->t16[t] == RT_CUDA_T_BF16; }
bool virt(const Dev *d, int t) { return d->t16 && t >= 0 && d->t16[t] == RT_CUDA_T_VIRTUAL; }
unsigned short *P16(const avgen_ctx *c, int t) { return (unsigned short *)dptr(c, t); }
const unsigned short *W16(const avgen_ctx *c, int t) { return DEV(c)->frozen16 + c->g->tensors[t].offset / 4; }
// a trainable tensor's bf16 copy (same element offset in d->train16 as in the parameter arena)
unsigned short *W16T(const avgen_ctx *c, int t) { return DEV(c)->train16 + c->g->tensors[t].offset / 4; }

constexpr int kT = 256;  // threads for elementwise kernels
constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLASLt's workspace (the planner's GEN_GEMM_WORKSPACE)
#define GRID(n) dim3(blocks_for((n), kT)), dim3(kT), 0
// for kernels that take four elements a thread when n is a multiple of 4
#define GRID4(n) dim3(blocks_for((n) % 4 ? (n) : (n) / 4, kT)), dim3(kT), 0
// BatchNorm's elementwise kernels: threads over columns (at most 128 a block, a multiple of 32), blocks over
// column groups (y) and row groups (x, at most 2048; each thread loops over its rows).
dim3 bn_block(int C) { return dim3(C >= 128 ? 128 : (unsigned)((C + 31) / 32 * 32)); }
dim3 bn_grid(long long rows, int C) {
    const unsigned bx = bn_block(C).x;
    return dim3((unsigned)(rows < 2048 ? (rows > 0 ? rows : 1) : 2048), (unsigned)((C + bx - 1) / bx));
}
#define BN_GRID(rows, C) bn_grid((rows), (C)), bn_block(C), 0

// rt_cuda_group_linear_dw's operations on this device (ctx is the Dev)
void dw_gemm(void *ctx, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb, float *C,
             int ldc, int beta1, int batch, long long sa, long long sb, long long sc) {
    gemm((Dev *)ctx, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, beta1, batch, sa, sb, sc);
}
// the same with bf16 operands (rt_dw_ops.es 2: a bf16 X, dY rounded to bf16)
void dw_gemm16(void *ctx, int ta, int tb, int M, int N, int K, const void *A, int lda, const void *B, int ldb, float *C,
               int ldc, int beta1, int batch, long long sa, long long sb, long long sc) {
    gemm((Dev *)ctx, ta, tb, M, N, K, A, lda, B, ldb, C, ldc, beta1, batch, sa, sb, sc, NULL, NULL, 1);
}
// dst += the sum of parts rows of n (k_sum_pairs): the row chunks' partial weight gradients, the pairs' token
// gradients
void dw_sum(void *ctx, const float *src, float *dst, int parts, long long n) {
    if (n > 0) launch((Dev *)ctx, k_sum_pairs, dim3((unsigned)((n + 31) / 32)), dim3(32 * kSumWarps), 0, src, dst, parts, n);
}

void colsum(Dev *d, int mode, const float *a, const float *x, const float *rmu, const float *rrs, const float *cmu,
            const float *crs, const float *w, const float *b, const float *scale, long long rows, int C, float *add0,
            float *add1, double *tot0, double *tot1, const unsigned short *a16 = NULL, const unsigned short *x16 = NULL,
            const BnStats *bn = NULL) {
    // About 2048 blocks in all (at least 16 rows a chunk), so narrow tensors still fill the GPU.
    const long long gx = (C + 127) / 128;
    long long want = 2048 / gx;
    if (want < 64) want = 64;
    long long rpc = (rows + want - 1) / want;
    if (rpc < 16) rpc = 16;
    const int chunks = (int)((rows + rpc - 1) / rpc);
    double *part = (double *)scratch(d, sizeof(double) * 2 * (size_t)chunks * C);
    if (!part) return;
    dim3 grid((unsigned)((C + 127) / 128), (unsigned)chunks);
    launch(d, k_colsum, dim3(grid), dim3(128), 0, mode, a, x, rmu, rrs, cmu, crs, w, b, scale, rows, C, rpc, part, a16, x16);
    if (bn)  // (a BatchNorm's moments: its statistics from the sums, k_colsum_finish_bn)
        launch(d, k_colsum_finish_bn, dim3((C + kColsumCols - 1) / kColsumCols), dim3(128), 0, part, chunks, C, *bn);
    else
        launch(d, k_colsum_finish, dim3((C + kColsumCols - 1) / kColsumCols), dim3(128), 0, part, chunks, C, add0, add1, tot0, tot1);
}

// Attention scores S[p, h] = Q_h K_h^T of every pair and head (S is [P, H, N, N]): per head, one GEMM
// batched over pairs, reading Q and K in place from qkv [P, N, 3D].
void attn_scores(Dev *d, const float *qkv, float *S, int P, int N, int D, int H) {
    const int hd = D / H;
    const long long NN = (long long)N * N, S3 = (long long)N * 3 * D;
    for (int h = 0; h < H; h++)
        gemm(d, 0, 1, N, N, hd, qkv + h * hd, 3 * D, qkv + D + h * hd, 3 * D, S + h * NN, N, 0, P, S3, S3, H * NN);
}


// Kernels templated on a width or bound: LAUNCH_T(list, v, kern, grid, block, smem, args...) launches
// kern<V> for the first V of the list equal to v (the last one when none is), the one place that turns a
// run-time value into a kernel's template value.
template <int V> struct IntC {
    static constexpr int value = V;
};
template <int... Vs> struct Vals {};
template <class F> void with_value(Vals<>, int, F &&) {}
template <int V0, int... Vs, class F> void with_value(Vals<V0, Vs...>, int v, F &&f) {
    if (v == V0 || sizeof...(Vs) == 0) f(IntC<V0>{});
    else with_value(Vals<Vs...>{}, v, f);
}
#define LAUNCH_T(list, v, kern, ...) with_value(list{}, (v), [&](auto t_) { launch(d, kern<decltype(t_)::value>, __VA_ARGS__); })
// A fused-attention kernel for head width hd, N tokens and H heads (in scope): its shape-literal instance
// when there is one (shape_kernel), else the generic kernel<hd>.
#define LAUNCH_ATTN(kern, ...)                                                                                       \
    with_value(HeadWidths{}, hd, [&](auto t_) {                                                                      \
        launch_as(d, kern<decltype(t_)::value>, shape_kernel(d, SK_##kern, hd, N, H), __VA_ARGS__);                \
    })

// LayerNorm kernels keep a row in registers for the widths the shipped models use (k_layernorm<V>, V values
// a lane): widths up to 32, up to 64, and 737..768 (ViT-B/16); any other width takes the generic V = 0.
using LnValues = Vals<1, 2, 24, 0>;
int ln_values(int D) { return rt_cuda_ln_values(D); }
using LnCsValues = Vals<1, 2, 24>;  // k_ln_bwd_cs: the register widths only

// LayerNorm backward of a trainable LayerNorm (weight gradient add0, bias gradient add1, both +=): with a
// register width, k_ln_bwd_cs computes dx and the column sums in one read of dy and x, over kLnCsBlocks
// blocks at most (a fixed count, so the sums' order does not depend on the GPU), then k_colsum_finish;
// other widths, or AVGEN_FUSED_LN_BWD=0 (to time both): k_ln_bwd, then colsum. With ld (an input applied on
// load: a BatchNorm output, rt_cuda_bn_on_load, or an adapter's gated fuse, rt_cuda_lat_on_load), x is what
// the loader computes it from: k_ln_bwd_cs_bn or k_ln_bwd_cs_lat computes it as it loads, the other path
// into op scratch first.
constexpr long long kLnCsBlocks = 256;
// k_ln_bwd_cs's rows a block: kLnCsBlocks blocks, at least 16 rows each
long long ln_cs_rows(long long rows) {
    const long long rpb = (rows + kLnCsBlocks - 1) / kLnCsBlocks;
    return rpb < 16 ? 16 : rpb;
}
// The LayerNorm input applied on load: k_ln_bwd_cs with the loader, and the input rebuilt into y (the same bits
// as the forward's loads).
void ln_bwd_cs_onload(Dev *d, const BnLoad &bn, unsigned blocks, const float *dy, const float *x, const float *mu,
                      const float *rs, const float *w, const float *bb, const float *gate, float *dx, double *rowdg,
                      long long rows, int D, long long rpb, double *part) {
    LAUNCH_T(LnCsValues, ln_values(D), k_ln_bwd_cs_bn, dim3(blocks), dim3(128), 0, dy, x, mu, rs, w, bb, gate, dx, rowdg, rows,
             D, rpb, part, bn);
}
void ln_bwd_cs_onload(Dev *d, const LatLoad &lat, unsigned blocks, const float *dy, const float *x, const float *mu,
                      const float *rs, const float *w, const float *bb, const float *gate, float *dx, double *rowdg,
                      long long rows, int D, long long rpb, double *part) {
    LAUNCH_T(LnCsValues, ln_values(D), k_ln_bwd_cs_lat, dim3(blocks), dim3(128), 0, dy, x, mu, rs, w, bb, gate, dx, rowdg, rows,
             D, rpb, part, lat);
}
void rebuild_onload(Dev *d, const BnLoad &bn, const float *x, float *y, long long rows, int D) {
    launch(d, k_bn_apply, BN_GRID(rows, D), x, y, bn.mean, bn.rstd, NULL, NULL, 0.0f, bn.w, bn.b, rows, D, 0,
           bn.u16, (unsigned short *)NULL);
}
void rebuild_onload(Dev *d, const LatLoad &lat, const float *x, float *y, long long rows, int D) {
    launch(d, k_lat_z, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, x, y, rows, D, lat);
}
template <class L = BnLoad>
void ln_bwd_trainable(Dev *d, const float *dy, const float *x, const float *mu, const float *rs, const float *w,
                      const float *bb, const float *gate, float *dx, double *rowdg, long long rows, int D, float *add0,
                      float *add1, const L *ld = NULL) {
    if (ln_values(D) > 0 && d->fused_ln_bwd) {
        const long long rpb = ln_cs_rows(rows), blocks = (rows + rpb - 1) / rpb;
        double *part = (double *)scratch(d, sizeof(double) * 2 * (size_t)blocks * D);
        if (!part) return;
        if (ld)
            ln_bwd_cs_onload(d, *ld, (unsigned)blocks, dy, x, mu, rs, w, bb, gate, dx, rowdg, rows, D, rpb, part);
        else
            LAUNCH_T(LnCsValues, ln_values(D), k_ln_bwd_cs, dim3((unsigned)blocks), dim3(128), 0, dy, x, mu, rs, w, bb, gate, dx,
                     (long long)D, rowdg, rows, D, rpb, part);
        launch(d, k_colsum_finish, dim3((D + kColsumCols - 1) / kColsumCols), dim3(128), 0, (const double *)part, (int)blocks, D, add0, add1, (double *)NULL,
               (double *)NULL);
        return;
    }
    if (ld) {  // the input rebuilt in op scratch
        float *y = (float *)scratch(d, sizeof(float) * (size_t)rows * D);
        if (!y) return;
        rebuild_onload(d, *ld, x, y, rows, D);
        x = y;
    }
    LAUNCH_T(LnValues, ln_values(D), k_ln_bwd, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, dy, x, mu, rs, w, bb, gate, dx,
             (long long)D, 0, rowdg, rows, D);
    colsum(d, CS_LN, dy, x, mu, rs, NULL, NULL, NULL, NULL, gate, rows, D, add0, add1, NULL, NULL);
}
// For a BatchNorm output t that is not stored (rt_cuda_bn_on_load): the BatchNorm's input, and in *bn what
// applying it on load takes (its mean and rstd as k_bn_stats wrote them, weight and bias).
const float *bn_of(const avgen_ctx *c, int t, BnLoad *bn) {
    const Dev *d = DEV(c);
    const avgen_op_desc *b = &c->g->ops[d->vwriter[t]];
    const int32_t *bi = c->g->refs + b->in_at, *bo = c->g->refs + b->out_at;
    *bn = BnLoad{PF(bo[1]), PF(bo[2]), PF(bi[1]), PF(bi[2]),
                 is16(d, bi[0]) ? P16(c, bi[0]) : NULL};
    return PF(bi[0]);  // (with u16, not read: the loads take u16)
}
// For an adapter's gated fuse t that is not stored (rt_cuda_lat_on_load): the residual stream X it adds to,
// and in *lat the rest (A2, S, gate_av; the ADAPTER_LATENT op's output 3, output 1, input 3).
const float *lat_of(const avgen_ctx *c, int t, LatLoad *lat) {
    const Dev *d = DEV(c);
    const avgen_op_desc *a = &c->g->ops[d->vwriter[t]];
    const int32_t *ai = c->g->refs + a->in_at, *ao = c->g->refs + a->out_at;
    *lat = LatLoad{PF(ao[3]), PF(ao[1]), PF(ai[3]), (int)c->g->tensors[ai[0]].shape[1], (int)c->g->tensors[ai[2]].shape[0]};
    return PF(ai[0]);
}
// The latent kernels keep the m latent tokens' values in registers, for m up to 2, 4, 8 or 16.
using LatentBounds = Vals<2, 4, 8, 16>;
int latent_bound(int m) { return m <= 2 ? 2 : m <= 4 ? 4 : m <= 8 ? 8 : 16; }

// The latent exchange's attention of the m latents V over a pair's N2 tokens Y, for every pair: A = the dots
// V_i . Y_j (k_lat_dots, a warp a row j), then in place their softmax (G NULL: the forward's A1) or its backward
// (G = A1, A held dA1: dL1), then out_i = base_i (+) sum_j A[i, j] Y_j (k_lat_mix, a thread a column). vps and
// bps: the stride from one pair's rows of V and base to the next (0: shared by the pairs).
void lat_exchange(Dev *d, const float *V, long long vps, const float *Y, float *A, const float *G, const float *base,
                  long long bps, bool from_base, float *out, int P, int N2, int D, int m, bool dots_done = false) {
    if (!dots_done)  // (else A already holds them: a carry)
        LAUNCH_T(LatentBounds, latent_bound(m), k_lat_dots, dim3(P, (N2 + 7) / 8), dim3(256), 0, V, vps, Y, A, N2, D, m);
    launch(d, k_lat_softmax, dim3(P), dim3(256), 0, A, G, N2, m);
    LAUNCH_T(LatentBounds, latent_bound(m), k_lat_mix, dim3(P, (D + 255) / 256), dim3(256), 0, A, base, bps, (int)from_base, Y,
             out, N2, D, m);
}
// The fused attention kernels' head widths (rt_cuda_attention_fusable).
using HeadWidths = Vals<16, 32, 64>;

// True when tensors a, b, c (n floats each) follow one another on the device: the query, key and value
// weights (or biases) as one stacked matrix (the IR creates them in that order; static arenas keep it).
bool qkv_stacked(const avgen_ctx *c, int a, int b, int cc, size_t n) {
    const float *pa = (const float *)dptr(c, a), *pb = (const float *)dptr(c, b), *pc = (const float *)dptr(c, cc);
    return pb == pa + n && pc == pb + n;
}



// An ADAPTER_LATENT_BWD's tensors and scratch (rt_cuda_op_scratch): X [P, N, D] (its stream), Y [P, N2, D]
// (the other), m latents; gX and gY the two streams' gradients it adds to (NULL: not needed).
struct LatBwd {
    const float *dZ, *X, *Y, *S, *A1, *A2, *tok, *gav;
    const unsigned short *dZ16;  // dZ as bf16 (rt_cuda_bf16_operands)
    float *gX, *gY, *gtok, *ggav;
    int P, N, D, N2, m;
    long long rows;
    float *dL2, *dS, *dL1, *dtokp;
    double *rowdg;
};

bool latbwd_setup(avgen_ctx *c, const avgen_graph *g, int op, LatBwd *b) {
    Dev *d = DEV(c);
    const avgen_op_desc *o = &g->ops[op];
    const int32_t *in = g->refs + o->in_at, *out = g->refs + o->out_at;
    const avgen_tensor_desc *xt = TD(in[1]), *yt = TD(in[2]), *tt = TD(in[6]);
    b->P = (int)xt->shape[0], b->N = (int)xt->shape[1], b->D = (int)xt->shape[2], b->N2 = (int)yt->shape[1];
    b->m = (int)tt->shape[0];
    b->rows = (long long)b->P * b->N;
    if (b->m > kMaxLatents) {
        set_fail(d, "the CUDA adapter kernels support up to %d latent tokens, not %d", kMaxLatents, b->m);
        return false;
    }
    const size_t P = (size_t)b->P, m = (size_t)b->m, D = (size_t)b->D;
    b->dL2 = (float *)scratch(d, sizeof(float) * (size_t)b->rows * m), b->dS = (float *)scratch(d, sizeof(float) * P * m * D);
    b->dL1 = (float *)scratch(d, sizeof(float) * P * m * (size_t)b->N2);
    b->dtokp = (float *)scratch(d, sizeof(float) * P * m * D);
    b->rowdg = (double *)scratch(d, sizeof(double) * (size_t)b->rows);
    if (!b->dL2 || !b->dS || !b->dL1 || !b->dtokp || !b->rowdg) return false;
    b->dZ = PF(in[0]), b->X = PF(in[1]), b->Y = PF(in[2]), b->S = PF(in[3]), b->A1 = PF(in[4]), b->A2 = PF(in[5]);
    b->tok = PF(in[6]), b->gav = PF(in[7]);
    b->dZ16 = is16(d, in[0]) ? P16(c, in[0]) : NULL;
    const int need_x = o->n_out == 4;
    b->gX = need_x ? PF(out[2]) : NULL, b->gY = need_x ? PF(out[3]) : NULL;
    b->gtok = PF(out[0]), b->ggav = PF(out[1]);
    return true;
}

// A frozen LayerNorm's backward (n_out 1: dx += ...), dy fp32 or bf16 (rt_cuda_bf16_operands).
void ln_bwd_frozen(avgen_ctx *c, const avgen_graph *g, int op) {
    Dev *d = DEV(c);
    const int32_t *in = g->refs + g->ops[op].in_at, *out = g->refs + g->ops[op].out_at;
    const avgen_tensor_desc *xt = TD(in[1]);
    const int D = (int)xt->shape[xt->ndim - 1];
    const long long rows = xt->bytes / 4 / D;
    if (is16(d, in[0])) {  // dy written as bf16 by its GEMM (rt_cuda_bf16_operands)
        LAUNCH_T(LnValues, ln_values(D), k_ln_bwd_bf, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, P16(c, in[0]), PF(in[1]),
                 PF(in[2]), PF(in[3]), PF(in[4]), PF(out[0]), D, 1, rows, D);
        return;
    }
    LAUNCH_T(LnValues, ln_values(D), k_ln_bwd, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, PF(in[0]), PF(in[1]), PF(in[2]),
             PF(in[3]), PF(in[4]), NULL, NULL, PF(out[0]), D, 1, NULL, rows, D);
}

// The inputs of frozen LAYERNORM_BWD op ln for the kernels that run it with a latent pair; *bf: dy is bf16.
LnBwdIn ln_bwd_in(const avgen_ctx *c, const avgen_graph *g, int ln, int *bf) {
    const int32_t *in = g->refs + g->ops[ln].in_at;
    *bf = is16(DEV(c), in[0]);
    return LnBwdIn{*bf ? (const void *)P16(c, in[0]) : (const void *)PF(in[0]), PF(in[1]), PF(in[2]), PF(in[3]), PF(in[4])};
}

// Parts 1-3: rowdg, dL2 and (write_x) gX += its term, then oy's (the pair's other op); dS; dL1 and the
// tokens' per-pair gradient. ln >= 0: the frozen LayerNorm backward op that adds to gX first, in the same pass
// (k_latbwd_rows_ln; rt_cuda_latbwd_ln pairs it only with a width and m the kernel takes, and write_x).
void latbwd_chain(avgen_ctx *c, const avgen_graph *g, const LatBwd *b, bool write_x, LatGy oy, int ln) {
    Dev *d = DEV(c);
    if (ln >= 0) {
        int bf;
        const LnBwdIn li = ln_bwd_in(c, g, ln, &bf);
        const dim3 gr((unsigned)((b->rows + 3) / 4)), bl(128);
        if (bf)
            LAUNCH_T(LnCsValues, ln_values(b->D), k_latbwd_rows_lnbf, gr, bl, 0, li, b->dZ, b->S, b->A2, b->gav, b->rowdg, b->dL2,
                     b->gX, b->rows, b->N, b->D, b->m, b->dZ16, oy);
        else
            LAUNCH_T(LnCsValues, ln_values(b->D), k_latbwd_rows_ln, gr, bl, 0, li, b->dZ, b->S, b->A2, b->gav, b->rowdg, b->dL2,
                     b->gX, b->rows, b->N, b->D, b->m, b->dZ16, oy);
    } else {
        const dim3 gr((unsigned)((b->rows + 7) / 8)), bl(256);
        LAUNCH_T(LatentBounds, latent_bound(b->m), k_latbwd_rows, gr, bl, 0, b->dZ, b->S, b->A2, b->gav, b->rowdg, b->dL2,
                 write_x ? b->gX : NULL, b->rows, b->N, b->D, b->m, b->dZ16, oy);
    }
    LAUNCH_T(LatentBounds, latent_bound(b->m), k_latbwd_ds, dim3(b->P, (b->D + 127) / 128), dim3(128), 0, b->dZ, b->X, b->A2,
             b->dL2, b->gav, b->dS, b->N, b->D, b->m, b->dZ16);
    lat_exchange(d, b->dS, (long long)b->m * b->D, b->Y, b->dL1, b->A1, b->dS, (long long)b->m * b->D, false, b->dtokp, b->P,
                 b->N2, b->D, b->m);
}

// Part 4: gY += its term, then orow's (the pair's other op's gX term, those rows being that op's X). ln >= 0:
// the frozen LayerNorm backward op that adds to gY first, in the same pass (k_latbwd_gy_ln; rt_cuda_latbwd_lny
// pairs it only with a width the kernel takes).
void latbwd_gy(avgen_ctx *c, const avgen_graph *g, const LatBwd *b, LatRows orow, int ln) {
    Dev *d = DEV(c);
    const int D = b->D;
    const long long rows2 = (long long)b->P * b->N2;
    if (ln >= 0) {
        int bf;
        const LnBwdIn li = ln_bwd_in(c, g, ln, &bf);
        const dim3 gr((unsigned)((rows2 + 3) / 4)), bl(128);
        if (bf)
            LAUNCH_T(LnCsValues, ln_values(D), k_latbwd_gy_lnbf, gr, bl, 0, li, b->A1, b->dS, b->dL1, b->tok, b->gY, b->P, b->N2, D,
                     b->m, orow);
        else
            LAUNCH_T(LnCsValues, ln_values(D), k_latbwd_gy_ln, gr, bl, 0, li, b->A1, b->dS, b->dL1, b->tok, b->gY, b->P, b->N2, D,
                     b->m, orow);
        return;
    }
    // threads over a row's columns (float4 when D % 4 == 0), at most 256 a block; rows spread over at most 4096
    // blocks
    const int cols = D % 4 ? D : D / 4, th = cols < 256 ? (cols + 31) / 32 * 32 : 256;
    launch(d, k_latbwd_gy, dim3((unsigned)(rows2 < 4096 ? rows2 : 4096), (unsigned)((cols + th - 1) / th)), dim3(th), 0,
           b->A1, b->dS, b->dL1, b->tok, b->gY, b->P, b->N2, D, b->m, orow);
}

void latbwd_grads(Dev *d, const LatBwd *b) {
    dw_sum(d, b->dtokp, b->gtok, b->P, (long long)b->m * b->D);
    launch(d, k_reduce_scalar, dim3(1), dim3(1024), 0, b->rowdg, b->rows, b->ggav);
}

// The ADAM op's host part: the step count and the scalars of this step (bias corrections, learning rates at
// this point of the schedule, gradient scale) into the pinned buffer that its copy to the device reads, also
// when that copy is a node of a replayed graph (rt_cuda_train_update). scal_sent: that copy has been issued
// (eagerly, or as a graph launch; not while the stream is being captured, when nothing runs and no wait is
// allowed).
void scal_sent(Dev *d) {
    if (d->scal_ev && cudaEventRecord(d->scal_ev, d->s) == cudaSuccess) d->scal_pending = 1;
}
void adam_scalars(avgen_ctx *c, Dev *d, bool captured) {
    const avgen_consts *k = c->k;
    // the previous step's copy must have read the buffer (no wait is allowed during a capture: run_part waits
    // before its capture begins)
    if (d->scal_pending && !captured) {
        ck(d, cudaEventSynchronize(d->scal_ev), "the optimizer scalars' copy");
        d->scal_pending = 0;
    }
    c->adam_step++;
    const double t = (double)c->adam_step;
    AdamScalars *h = d->scal_host;
    h->bc1 = 1.0 - pow(k->beta1, t), h->bc2 = 1.0 - pow(k->beta2, t);
    h->lr_adapter = k->lr * c->lr_scale, h->lr_head = k->head_lr * c->lr_scale, h->grad_scale = c->grad_scale;
}

#ifdef AVGEN_EMU_TRACE
}  // namespace
#include <string>
#include <vector>
namespace {
// The CUDA emulator's tracing build, AVGEN_EMU_OPCHECK=1 (docs/emulator.md): the arenas and every stored tensor
// (with the frozen weights' bf16 copy) by name, once attached; then for each op the device memory it may touch:
// the tensors it reads and writes; those of a tensor applied on load (not stored: its writer's inputs and
// outputs, which the loads compute it from); those of the latent backward ops it runs with it (fused_latent_bwd);
// the residual its LayerNorm adds to (fused_residuals). Op scratch, the workspace and the frames are not in an
// arena, so not checked.
void opcheck_attach(avgen_ctx *c) {
    if (!avgen_emu::trace::opcheck_on()) return;
    const Dev *d = DEV(c);
    const avgen_graph *g = c->g;
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++) avgen_emu::trace::arena(d->arena[a], d->arena_bytes[a]);
    if (d->frozen16) avgen_emu::trace::arena(d->frozen16, (size_t)g->arena_bytes[AVGEN_ARENA_FROZEN] / 2 + 16);
    if (d->train16) avgen_emu::trace::arena(d->train16, (size_t)g->arena_bytes[AVGEN_ARENA_TRAIN] / 2 + 16);
    for (int t = 0; t < g->n_tensors; t++) {
        const avgen_tensor_desc *td = &g->tensors[t];
        if (virt(d, t) || !td->bytes) continue;
        avgen_emu::trace::tensor(dptr(c, t), (size_t)(is16(d, t) ? td->bytes / 2 : td->bytes), td->name);
        if (td->arena == AVGEN_ARENA_FROZEN && d->frozen16)
            avgen_emu::trace::tensor(W16(c, t), (size_t)td->bytes / 2, (std::string(td->name) + " (bf16 copy)").c_str());
        if (td->arena == AVGEN_ARENA_TRAIN && d->train16)
            avgen_emu::trace::tensor(W16T(c, t), (size_t)td->bytes / 2, (std::string(td->name) + " (bf16 copy)").c_str());
    }
}
void opcheck_begin(avgen_ctx *c, const avgen_graph *g, int op) {
    if (!avgen_emu::trace::opcheck_on()) return;
    const Dev *d = DEV(c);
    std::vector<const void *> p;
    std::vector<size_t> n;
    std::vector<char> seen((size_t)g->n_tensors, 0);
    std::function<void(int)> add = [&](int t) {
        if (t < 0 || seen[t]) return;
        seen[t] = 1;
        const avgen_tensor_desc *td = &g->tensors[t];
        if (virt(d, t)) {  // applied on load: from what its writer reads and writes
            const avgen_op_desc *w = &g->ops[d->vwriter[t]];
            for (int k = 0; k < w->n_in; k++) add(g->refs[w->in_at + k]);
            for (int k = 0; k < w->n_out; k++) add(g->refs[w->out_at + k]);
            return;
        }
        p.push_back(dptr(c, t)), n.push_back((size_t)(is16(d, t) ? td->bytes / 2 : td->bytes));
        if (td->arena == AVGEN_ARENA_FROZEN && d->frozen16) p.push_back(W16(c, t)), n.push_back((size_t)td->bytes / 2);
        if (td->arena == AVGEN_ARENA_TRAIN && d->train16) p.push_back(W16T(c, t)), n.push_back((size_t)td->bytes / 2);
    };
    if (op == d->w16_first)  // it rounds every trainable bf16 weight of the step (trainable16)
        for (int k = 0; k < d->n_w16; k++) add(d->w16_t[k]);
    std::vector<int> ops = {op};
    if (d->lb && d->lb[op].first >= 0)
        for (const int q : {d->lb[op].first, d->lb[op].ln, d->lb[op].lny})
            if (q >= 0) ops.push_back(q);
    if (d->latln && d->latln[op]) ops.push_back(op + 1);  // the LayerNorm run with it (fused_latln)
    int cj;  // the tokens of the latent op whose logits it carries (rt_cuda_latdots_reader)
    if (d->carry_off && d->carry_off[op] >= 0 && rt_cuda_carry(g, op, &cj, NULL) == RT_CUDA_CARRY_LATDOTS)
        add(g->refs[g->ops[cj].in_at + 2]);
    for (const int q : ops) {
        const avgen_op_desc *o = &g->ops[q];
        for (int k = 0; k < o->n_in; k++) add(g->refs[o->in_at + k]);
        for (int k = 0; k < o->n_out; k++) add(g->refs[o->out_at + k]);
    }
    if (d->ln_res && d->ln_res[op] >= 0) add(d->ln_res[op]);
    avgen_emu::trace::op_begin(g->ops[op].name, p.data(), n.data(), (int)p.size());
}
#endif

void *carry_out(Dev *d, const avgen_graph *g, int i);
void *carry_in(Dev *d, int j);

void round_trainable16(avgen_ctx *c, Dev *d);
// A trainable weight of nw elements as bf16: its copy in train16 where the step rounds them all at once
// (trainable16), else rounded here into op scratch; NULL when op scratch runs out (d->failed).
const unsigned short *weight16(avgen_ctx *c, int t, long long nw) {
    Dev *d = DEV(c);
    if (d->w16_first >= 0 && c->g->tensors[t].arena == AVGEN_ARENA_TRAIN) return W16T(c, t);  // (trainable16 lists them all)
    unsigned short *w16 = (unsigned short *)scratch(d, 2 * (size_t)nw);
    if (w16) launch(d, k_to_bf16, GRID4(nw), (const float *)dptr(c, t), w16, nw);
    return w16;
}

void run_op(avgen_ctx *c, const avgen_graph *g, int op) {
    Dev *d = DEV(c);
    const avgen_op_desc *o = &g->ops[op];
    const int32_t *in = g->refs + o->in_at, *out = g->refs + o->out_at;
    const avgen_consts *k = c->k;
    d->scratch_used = d->carry_base ? (size_t)d->carry_base[op] : 0;  // (above the carries live at op: fused_carries)
    if (op == d->w16_first) round_trainable16(c, d);  // the step's trainable bf16 weights (trainable16), whatever follows
    if (d->lb && d->lb[op].deferred) return;  // runs with the latent backward pair after it (fused_latent_bwd)
    if (op > 0 && d->latln && d->latln[op - 1]) return;  // ran with the latent op before it (fused_latln)
    switch (o->kind) {
    case AVGEN_OP_KIND_PATCH_EMBED: {
        const avgen_tensor_desc *xi = TD(in[0]), *xo = TD(out[0]);
        const int Pp = k->patch, D = k->dim, N = (int)xo->shape[1], P = (int)xo->shape[0];
        const int Nv = k->tokens_v > 0 ? k->tokens_v : (k->image / Pp) * (k->image / Pp) + 1;
        const int audio = o->stream == 'a';
        const int H = audio ? k->audio_rows : k->image, W = audio ? k->mel_bins : k->image;
        const int np = (H / Pp) * (W / Pp), K = 3 * Pp * Pp;
        const void *src;
        int kind;
        if (audio) src = dptr(c, in[0]), kind = 0;
        else if (d->frames_f32) src = d->frames_f32, kind = 1;
        else if (xi->dtype == AVGEN_DT_U8) src = dptr(c, in[0]), kind = 2;
        else src = dptr(c, in[0]), kind = 1;
        float *col = (float *)scratch(d, sizeof(float) * (size_t)P * np * K);
        float *proj = (float *)scratch(d, sizeof(float) * (size_t)P * np * D);
        if (!col || !proj) return;
        launch(d, k_im2col, GRID((long long)P * np * K), src, kind, col, P, H, W, Pp, k->mean[0], k->mean[1], k->mean[2],
                                                  k->std[0], k->std[1], k->std[2]);
        gemm(d, 0, 1, P * np, D, K, col, K, PF(in[1]), K, proj, D, 0);
        launch(d, k_patch_epilogue, GRID((long long)P * N * D), proj, PF(in[2]), PF(in[3]), PF(in[4]), PF(out[0]), P, N, D, Nv);
        break;
    }
    case AVGEN_OP_KIND_LAYERNORM: {
        const avgen_tensor_desc *xt = TD(in[0]);
        const int D = (int)xt->shape[xt->ndim - 1];
        const long long rows = xt->bytes / 4 / D;
        if (virt(d, in[0])) {  // an adapter's LayerNorm before, on its gated fuse applied on load (rt_cuda_lat_on_load)
            LatLoad lat;
            const float *x = lat_of(c, in[0], &lat);
            LAUNCH_T(LnValues, ln_values(D), k_layernorm_lat, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, x, PF(in[1]),
                     PF(in[2]), PF(out[0]), o->n_out > 1 ? PF(out[1]) : NULL, o->n_out > 2 ? PF(out[2]) : NULL, rows, D,
                     o->eps, is16(d, out[0]) ? P16(c, out[0]) : NULL, lat);
            break;
        }
        LAUNCH_T(LnValues, ln_values(D), k_layernorm, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, PF(in[0]), D, PF(in[1]), PF(in[2]), PF(out[0]), D,
                                                                   o->n_out > 1 ? PF(out[1]) : NULL,
                                                                   o->n_out > 2 ? PF(out[2]) : NULL, NULL, NULL, rows, D, o->eps,
                                                                   is16(d, out[0]) ? P16(c, out[0]) : NULL);
        break;
    }
    case AVGEN_OP_KIND_LAYERNORM_GATE: {
        const avgen_tensor_desc *xt = TD(in[0]);
        const int D = (int)xt->shape[2];
        const long long rows = xt->shape[0] * xt->shape[1];
        const float *res = d->ln_res && d->ln_res[op] >= 0 ? PF(d->ln_res[op]) : NULL;
        if (virt(d, in[0])) {  // its input is a BatchNorm's output, applied on load from the BatchNorm's input
            BnLoad bn;
            const float *u = bn_of(c, in[0], &bn);
            LAUNCH_T(LnValues, ln_values(D), k_layernorm_bn, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, u, PF(in[1]),
                     PF(in[2]), PF(out[0]), PF(out[1]), PF(out[2]), PF(in[3]), rows, D, o->eps, res, bn);
            break;
        }
        // with the residual its LINEAR_RESIDUAL adds it to, when that is the only reader (fused_residuals)
        if (res) {
            LAUNCH_T(LnValues, ln_values(D), k_layernorm_res, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, PF(in[0]), D,
                     PF(in[1]), PF(in[2]), PF(out[0]), D, PF(out[1]), PF(out[2]), PF(in[3]), rows, D, o->eps, res);
            break;
        }
        LAUNCH_T(LnValues, ln_values(D), k_layernorm, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, PF(in[0]), D, PF(in[1]), PF(in[2]), PF(out[0]), D,
                                                                   PF(out[1]), PF(out[2]), NULL, PF(in[3]), rows, D, o->eps, NULL);
        break;
    }
    case AVGEN_OP_KIND_CLS_LAYERNORM: {
        const avgen_tensor_desc *xt = TD(in[0]);
        const int P = (int)xt->shape[0], N = (int)xt->shape[1], D = (int)xt->shape[2];
        const int keep = o->n_out == 4;
        LAUNCH_T(LnValues, ln_values(D), k_layernorm, dim3((unsigned)((P + 3) / 4)), dim3(128), 0, PF(in[0]), (long long)N * D, PF(in[1]), PF(in[2]), PF(out[0]),
                                                               D, keep ? PF(out[2]) : NULL, keep ? PF(out[3]) : NULL,
                                                               keep ? PF(out[1]) : NULL, NULL, P, D, o->eps, NULL);
        break;
    }
    case AVGEN_OP_KIND_QKV: {
        const avgen_tensor_desc *ht = TD(in[0]);
        const int D = (int)ht->shape[2], rows = (int)(ht->shape[0] * ht->shape[1]);
        const int a16 = is16(d, in[0]);  // h and the (frozen) weights as bf16
        const void *h = a16 ? (const void *)P16(c, in[0]) : (const void *)PF(in[0]);
        auto wgt = [&](int t) { return a16 ? (const void *)W16(c, t) : (const void *)PF(t); };
        // qkv as bf16 (read only by the fused attention kernels; rt_cuda_bf16_operands, which also requires
        // frozen biases: their bf16 copies come from the frozen arena's)
        const int c16 = is16(d, out[0]);
        auto dst = [&](int j) { return c16 ? (void *)(P16(c, out[0]) + j * D) : (void *)(PF(out[0]) + j * D); };
        if (qkv_stacked(c, in[1], in[3], in[5], (size_t)D * D) && qkv_stacked(c, in[2], in[4], in[6], (size_t)D)) {
            // the three weights form one [3D, D] matrix and the biases one [3D] vector: one GEMM, N = 3D
            gemm(d, 0, 1, rows, 3 * D, D, h, D, wgt(in[1]), D, dst(0), 3 * D, 0, 1, 0, 0, 0, PF(in[2]), NULL, a16, c16,
                 c16 ? W16(c, in[2]) : NULL);
            break;
        }
        for (int j = 0; j < 3; j++)
            gemm(d, 0, 1, rows, D, D, h, D, wgt(in[1 + 2 * j]), D, dst(j), 3 * D, 0, 1, 0, 0, 0, PF(in[2 + 2 * j]), NULL,
                 a16, c16, c16 ? W16(c, in[2 + 2 * j]) : NULL);
        break;
    }
    case AVGEN_OP_KIND_ATTENTION: {
        // Per head h, batched over pairs: S = Q K^T, softmax (scale, log-sum-exp kept), O = P V. Q, K, V are
        // read in place from qkv [P, N, 3D] (row stride 3D); S is [P, H, N, N]. With bf16 GEMMs: one fused
        // tensor-core kernel, no S in memory.
        const avgen_tensor_desc *qt = TD(in[0]);
        const int P = (int)qt->shape[0], N = (int)qt->shape[1], D = (int)qt->shape[2] / 3, H = k->heads, hd = D / H;
        const float scale = (float)(1.0 / sqrt((double)hd));
        if (d->attn_fused) {  // decided at attach: bf16 GEMMs, sm_80+, head width 16/32/64
            const dim3 grid(1, (unsigned)H, (unsigned)P);
            const size_t sm = rt_cuda_attn_smem(N, hd);
            float *lse = o->n_out > 1 ? PF(out[1]) : NULL;
            if (is16(d, in[0]) != is16(d, out[0])) {
                set_fail(d, "%s: qkv and the attention output must both be bf16 or both fp32 (a bug in avgen)", o->name);
                return;
            }
            if (is16(d, in[0]))  // qkv and the output stored as bf16 (rt_cuda_bf16_operands)
                LAUNCH_ATTN(k_attn_fwd_bf, grid, dim3(kAttnThreads), sm, P16(c, in[0]), P16(c, out[0]), lse, N, H, scale);
            else
                LAUNCH_ATTN(k_attn_fwd, grid, dim3(kAttnThreads), sm, PF(in[0]), PF(out[0]), lse, N, H, scale);
            break;
        }
        const long long NN = (long long)N * N, HNN = (long long)H * NN, S3 = (long long)N * 3 * D, SD = (long long)N * D;
        float *S = (float *)scratch(d, sizeof(float) * (size_t)P * HNN);
        if (!S) return;
        const float *qkv = PF(in[0]);
        attn_scores(d, qkv, S, P, N, D, H);
        const long long rows = (long long)P * H * N;
        launch(d, k_softmax_rows, dim3((unsigned)((rows + 7) / 8)), dim3(256), 0, S, o->n_out > 1 ? PF(out[1]) : NULL, rows, N, scale);
        for (int h = 0; h < H; h++)
            gemm(d, 0, 0, N, hd, N, S + h * NN, N, qkv + 2 * D + h * hd, 3 * D, PF(out[0]) + h * hd, D, 0, P, HNN, S3, SD);
        break;
    }
    case AVGEN_OP_KIND_ATTENTION_BWD: {
        // From the saved log-sum-exp: P = exp(scale Q K^T - lse), dV = P^T dO, dP = dO V^T,
        // dS = P (dP - rowsum(dO O)) scale, dQ = dS K, dK = dS^T Q; per head, batched over pairs.
        const avgen_tensor_desc *qt = TD(in[1]);
        const int P = (int)qt->shape[0], N = (int)qt->shape[1], D = (int)qt->shape[2] / 3, H = k->heads, hd = D / H;
        const float scale = (float)(1.0 / sqrt((double)hd));
        const long long NN = (long long)N * N, HNN = (long long)H * NN, S3 = (long long)N * 3 * D, SD = (long long)N * D;
        const long long rows = (long long)P * H * N, n = (long long)P * HNN;
        double *delta = (double *)scratch(d, sizeof(double) * (size_t)rows);
        if (!delta) return;
        // dO, qkv and its gradient all bf16 (rt_cuda_bf16_operands) or all fp32; bf16 only for the fused kernels
        const float *dO = is16(d, in[0]) ? NULL : PF(in[0]), *qkv = PF(in[1]);
        float *dqkv = PF(out[0]);
        if (is16(d, in[0]) != is16(d, in[1]) || is16(d, in[1]) != is16(d, out[0]) || (is16(d, in[0]) && !d->attn_fused)) {
            set_fail(d, "%s: dO, qkv and its gradient must all be bf16, for the fused kernels, or all fp32 (a bug in avgen)",
                     o->name);
            return;
        }
        // the output O as bf16 when the fused forward wrote it so (rt_cuda_bf16_operands)
        launch(d, k_attn_delta, dim3((unsigned)(((long long)P * N + 7) / 8)), dim3(256), 0, dO, is16(d, in[0]) ? P16(c, in[0]) : NULL,
               is16(d, in[2]) ? NULL : PF(in[2]), is16(d, in[2]) ? P16(c, in[2]) : NULL, delta, P, N, D, H, hd);
        if (d->attn_fused) {  // decided at attach: bf16 GEMMs, sm_80+, head width 16/32/64
            const dim3 grid(1, (unsigned)H, (unsigned)P);
            const size_t sm = rt_cuda_attn_smem(N, hd);
            const float *lse = PF(in[3]);
            if (is16(d, in[1])) {  // qkv, its gradient and dO stored as bf16 (rt_cuda_bf16_operands)
                const unsigned short *q16 = P16(c, in[1]), *dO16 = P16(c, in[0]);
                unsigned short *dq16 = P16(c, out[0]);
                LAUNCH_ATTN(k_attn_bwd_dq_bf, grid, dim3(kAttnThreads), sm, dO16, q16, lse, delta, dq16, N, H, scale);
                LAUNCH_ATTN(k_attn_bwd_dkv_bf, grid, dim3(kAttnThreads), sm, dO16, q16, lse, delta, dq16, N, H, scale);
                break;
            }
            LAUNCH_ATTN(k_attn_bwd_dq, grid, dim3(kAttnThreads), sm, dO, qkv, lse, delta, dqkv, N, H, scale);
            LAUNCH_ATTN(k_attn_bwd_dkv, grid, dim3(kAttnThreads), sm, dO, qkv, lse, delta, dqkv, N, H, scale);
            break;
        }
        float *Pm = (float *)scratch(d, sizeof(float) * (size_t)n), *dP = (float *)scratch(d, sizeof(float) * (size_t)n);
        if (!Pm || !dP) return;
        attn_scores(d, qkv, Pm, P, N, D, H);
        launch(d, k_attn_probs, GRID(n), Pm, PF(in[3]), n, N, scale);
        for (int h = 0; h < H; h++) {
            gemm(d, 1, 0, N, hd, N, Pm + h * NN, N, dO + h * hd, D, dqkv + 2 * D + h * hd, 3 * D, 0, P, HNN, SD, S3);
            gemm(d, 0, 1, N, N, hd, dO + h * hd, D, qkv + 2 * D + h * hd, 3 * D, dP + h * NN, N, 0, P, SD, S3, HNN);
        }
        launch(d, k_attn_dscores, GRID(n), Pm, dP, delta, n, N, scale);
        for (int h = 0; h < H; h++) {
            gemm(d, 0, 0, N, hd, N, dP + h * NN, N, qkv + D + h * hd, 3 * D, dqkv + h * hd, 3 * D, 0, P, HNN, S3, S3);
            gemm(d, 1, 0, N, hd, N, dP + h * NN, N, qkv + h * hd, 3 * D, dqkv + D + h * hd, 3 * D, 0, P, HNN, S3, S3);
        }
        break;
    }
    case AVGEN_OP_KIND_LINEAR_RESIDUAL: {
        const avgen_tensor_desc *at = TD(in[0]), *yt = TD(out[0]);
        const int K = (int)at->shape[2], N = (int)yt->shape[2], rows = (int)(yt->shape[0] * yt->shape[1]);
        // y = x W^T + b + res in the GEMM (bias epilogue, C = res); a third addend (an adapter's output) in a
        // pass of its own, or, when its LayerNorm already added res to it (fused_residuals), as C instead
        const int pre = o->n_in > 4 && d->lr_fused && d->lr_fused[op];
        const float *cs = pre ? PF(in[4]) : PF(in[3]);
        if (is16(d, in[0]))  // the GELU output and the (frozen) weight as bf16
            gemm(d, 0, 1, rows, N, K, P16(c, in[0]), K, W16(c, in[1]), K, PF(out[0]), N, 1, 1, 0, 0, 0, PF(in[2]), cs, 1);
        else
            gemm(d, 0, 1, rows, N, K, PF(in[0]), K, PF(in[1]), K, PF(out[0]), N, 1, 1, 0, 0, 0, PF(in[2]), cs);
        if (o->n_in > 4 && !pre)
            launch(d, k_bias_res, GRID((long long)rows * N), PF(out[0]), NULL, PF(in[4]), NULL, (long long)rows * N, N);
        break;
    }
    case AVGEN_OP_KIND_LINEAR_GELU: {
        const avgen_tensor_desc *ht = TD(in[0]), *wt = TD(in[1]);
        const int K = (int)ht->shape[2], rows = (int)(ht->shape[0] * ht->shape[1]), N = (int)wt->shape[0];
        const int ta = out[o->n_out - 1], tp = o->n_out > 1 ? out[0] : ta;
        float *act = PF(ta), *pre = PF(tp);
        // the GELU input as bf16 (rt_cuda_bf16_operands: its GEMM's input is bf16, its weight and bias frozen)
        unsigned short *pre16 = tp != ta && is16(d, tp) ? P16(c, tp) : NULL;
        if (is16(d, in[0]))  // the LayerNorm output and the (frozen) weight as bf16
            gemm(d, 0, 1, rows, N, K, P16(c, in[0]), K, W16(c, in[1]), K, pre16 ? (void *)pre16 : (void *)pre, N, 0, 1, 0, 0, 0,
                 PF(in[2]), NULL, 1, pre16 != NULL, pre16 ? W16(c, in[2]) : NULL);
        else
            gemm(d, 0, 1, rows, N, K, PF(in[0]), K, PF(in[1]), K, pre, N, 0, 1, 0, 0, 0, PF(in[2]));
        launch(d, k_gelu, GRID4((long long)rows * N), pre16 ? NULL : pre, pre16, is16(d, ta) ? NULL : act,
               is16(d, ta) ? P16(c, ta) : NULL, (long long)rows * N);
        break;
    }
    case AVGEN_OP_KIND_LINEAR: {
        const avgen_tensor_desc *xt = TD(in[0]), *wt = TD(in[1]);
        const int M = (int)xt->shape[0], K = (int)xt->shape[1], N = (int)wt->shape[0];
        gemm(d, 0, 1, M, N, K, PF(in[0]), K, PF(in[1]), K, PF(out[0]), N, 0, 1, 0, 0, 0, PF(in[2]));
        break;
    }
    case AVGEN_OP_KIND_ADAPTER_LATENT: {
        const avgen_tensor_desc *xt = TD(in[0]), *yt = TD(in[1]), *tt = TD(in[2]);
        const int P = (int)xt->shape[0], N = (int)xt->shape[1], D = (int)xt->shape[2], N2 = (int)yt->shape[1];
        const int m = (int)tt->shape[0];
        if (m > kMaxLatents) {
            set_fail(d, "the CUDA adapter kernels support up to %d latent tokens, not %d", kMaxLatents, m);
            return;
        }
        // the logits over Y, unless the pass of the adapter before over its X (this Y) computed them (a carry,
        // rt_cuda_latdots_reader): then copied into A1, where the softmax takes them
        const float *dots = (const float *)carry_in(d, op);
        if (dots) ck(d, cudaMemcpyAsync(PF(out[2]), dots, sizeof(float) * (size_t)P * m * N2, cudaMemcpyDeviceToDevice, d->s),
                     "copy of carried logits");
        lat_exchange(d, PF(in[2]), 0, PF(in[1]), PF(out[2]), NULL, PF(in[2]), 0, true, PF(out[1]), P, N2, D, m, dots != NULL);
        const long long rows = (long long)P * N;
        const dim3 gr((unsigned)((rows + 7) / 8)), bl(256);
        // and this pass over X computes those of the adapter after whose Y is this X (rt_cuda_latdots_reader)
        float *L2 = (float *)carry_out(d, g, op);
        int j2 = -1, m2 = 0;
        if (L2) rt_cuda_carry(g, op, &j2, NULL), m2 = (int)TD(g->refs[g->ops[j2].in_at + 2])->shape[0];
        const int mb = m2 > m ? m2 : m;
        if (mb > kMaxLatents) {
            set_fail(d, "the CUDA adapter kernels support up to %d latent tokens, not %d", kMaxLatents, mb);
            return;
        }
        const float *tok2 = L2 ? (const float *)PF(g->refs[g->ops[j2].in_at + 2]) : (const float *)NULL;
        if (d->latln && d->latln[op]) {  // with the LayerNorm after it, on the fuse applied on load (fused_latln)
            const avgen_op_desc *ln = &g->ops[op + 1];
            const int32_t *li = g->refs + ln->in_at, *lo = g->refs + ln->out_at;
            LAUNCH_T(LnCsValues, ln_values(D), k_latent_ln, dim3((unsigned)((rows + 3) / 4)), dim3(128), 0, PF(in[0]),
                     PF(out[1]), PF(in[3]), PF(out[3]), rows, N, D, m, tok2, m2, L2, PF(li[1]), PF(li[2]), PF(lo[0]),
                     ln->n_out > 1 ? PF(lo[1]) : NULL, ln->n_out > 2 ? PF(lo[2]) : NULL, ln->eps,
                     is16(d, lo[0]) ? P16(c, lo[0]) : NULL);
            break;
        }
        // the gated fuse Z not stored when the LayerNorm after it applies it on load (rt_cuda_lat_on_load)
        LAUNCH_T(LatentBounds, latent_bound(mb), k_latent_b, gr, bl, 0, PF(in[0]), PF(out[1]), PF(in[3]),
                 virt(d, out[0]) ? NULL : PF(out[0]), PF(out[3]), rows, N, D, m, tok2, m2, L2);
        break;
    }
    case AVGEN_OP_KIND_ADAPTER_LATENT_BWD: {
        const int f = d->lb ? d->lb[op].first : -1;
        LatBwd first, second;
        if (!latbwd_setup(c, g, op, &second) || (f >= 0 && !latbwd_setup(c, g, f, &first))) return;
        if (f < 0) {  // alone: parts 1-3, part 4, the token and gate gradients
            latbwd_chain(c, g, &second, second.gX != NULL, LatGy{}, -1);
            if (second.gX) latbwd_gy(c, g, &second, LatRows{}, -1);
            latbwd_grads(d, &second);
            break;
        }
        // A pair (first, second) whose gradients are each other's: second's parts 1-3 without its gX pass; first's
        // with its gX pass adding (after the LayerNorm backward's term, when one runs with the pair) second's
        // part 4 on those rows; first's part 4 adding second's gX term on its rows; then their token and gate
        // gradients. Each gradient gets the ops' terms in their order.
        latbwd_chain(c, g, &second, false, LatGy{}, -1);
        latbwd_chain(c, g, &first, true, LatGy{second.A1, second.dS, second.dL1, second.tok, second.m}, d->lb[op].ln);
        latbwd_gy(c, g, &first, LatRows{second.dZ, second.dZ16, second.dL2, second.S, second.m}, d->lb[op].lny);
        latbwd_grads(d, &first);
        latbwd_grads(d, &second);
        break;
    }
    case AVGEN_OP_KIND_GROUP_LINEAR: {
        const avgen_tensor_desc *xt = TD(in[0]), *wt = TD(in[1]);
        const int Cin = (int)xt->shape[2], Cout = (int)wt->shape[0], cin_g = (int)wt->shape[1], G = Cin / cin_g;
        const int cout_g = Cout / G, rows = (int)(xt->shape[0] * xt->shape[1]);
        // one GEMM batched over the groups: group kk reads columns kk*cin_g.. of x, writes kk*cout_g.. of y
        if (is16(d, in[0])) {  // x stored as bf16 (rt_cuda_bf16_operands): the (trainable) weight rounded to bf16 too
            // (rounded at the step's first such op with the others: trainable16; else here, into op scratch)
            const unsigned short *w16 = weight16(c, in[1], (long long)Cout * cin_g);
            if (!w16) return;
            const int c16 = is16(d, out[0]);  // y as bf16 too (its BatchNorm reads it)
            gemm(d, 0, 1, rows, cout_g, cin_g, P16(c, in[0]), Cin, w16, cin_g, c16 ? (void *)P16(c, out[0]) : (void *)PF(out[0]),
                 Cout, 0, G, cin_g, (long long)cout_g * cin_g, cout_g, NULL, NULL, 1, c16);
            break;
        }
        gemm(d, 0, 1, rows, cout_g, cin_g, PF(in[0]), Cin, PF(in[1]), cin_g, PF(out[0]), Cout, 0, G, cin_g,
             (long long)cout_g * cin_g, cout_g);
        break;
    }
    case AVGEN_OP_KIND_GROUP_LINEAR_BWD: {
        const avgen_tensor_desc *xt = TD(in[1]), *wt = TD(in[2]);
        const int Cin = (int)xt->shape[2], Cout = (int)wt->shape[0], cin_g = (int)wt->shape[1], G = Cin / cin_g;
        const int cout_g = Cout / G, rows = (int)(xt->shape[0] * xt->shape[1]);
        // dx: one GEMM batched over the groups; dY stored as bf16 (rt_cuda_bf16_operands: its BatchNorm's backward
        // wrote it so): against the weight rounded to bf16
        const int dy16 = is16(d, in[0]);
        if (dy16) {
            const unsigned short *w16 = weight16(c, in[2], (long long)Cout * cin_g);
            if (!w16) return;
            const int c16 = is16(d, out[0]);  // dx as bf16 too (the LayerNorm backward before reads it)
            gemm(d, 0, 0, rows, cin_g, cout_g, P16(c, in[0]), Cout, w16, cin_g, c16 ? (void *)P16(c, out[0]) : (void *)PF(out[0]),
                 Cin, 0, G, cout_g, (long long)cout_g * cin_g, cin_g, NULL, NULL, 1, c16);
        } else {
            gemm(d, 0, 0, rows, cin_g, cout_g, PF(in[0]), Cout, PF(in[2]), cin_g, PF(out[0]), Cin, 0, G, cout_g,
                 (long long)cout_g * cin_g, cin_g);
        }
        // dW: one GEMM batched over the groups, or split over row chunks (rt_cuda_group_linear_dw)
        const double pf = rt_cuda_dw_part_floats(rows, Cin, Cout, G);
        float *part = pf > 0 ? (float *)scratch(d, sizeof(float) * (size_t)pf) : NULL;
        if (pf > 0 && !part) return;
        if (is16(d, in[1])) {  // x stored as bf16 (rt_cuda_bf16_operands): dW from dY as bf16 (rounded here if needed)
            const long long ny = (long long)rows * Cout;
            unsigned short *y16 = dy16 ? P16(c, in[0]) : (unsigned short *)scratch(d, 2 * (size_t)ny);
            if (!y16) return;
            if (!dy16) launch(d, k_to_bf16, GRID4(ny), PF(in[0]), y16, ny);
            const rt_dw_ops ops = {d, dw_gemm16, dw_sum, 2};
            rt_cuda_group_linear_dw(&ops, y16, P16(c, in[1]), PF(out[1]), part, rows, Cin, Cout, G);
            break;
        }
        const rt_dw_ops ops = {d, dw_gemm, dw_sum, 4};
        rt_cuda_group_linear_dw(&ops, PF(in[0]), PF(in[1]), PF(out[1]), part, rows, Cin, Cout, G);
        break;
    }
    case AVGEN_OP_KIND_BATCHNORM:
    case AVGEN_OP_KIND_BATCHNORM_RELU: {
        const int relu = o->kind == AVGEN_OP_KIND_BATCHNORM_RELU;
        const avgen_tensor_desc *xt = TD(in[0]);
        const int C = (int)xt->shape[2];
        const long long rows = xt->shape[0] * xt->shape[1];
        const int train = o->n_out == 3;
        // x or y stored as bf16 (rt_cuda_bf16_operands: a grouped projection's output, the ReLU's output)
        const unsigned short *x16 = is16(d, in[0]) ? P16(c, in[0]) : NULL;
        unsigned short *y16 = is16(d, out[0]) ? P16(c, out[0]) : NULL;
        if (train) {
            // both moments in one pass over x (shifted by its first row: CS_MOM), then mean, rstd, running stats
            // and the count: where the moments' sums are finished (AVGEN_FEWER_LAUNCHES), else in two launches more
            // BatchNorm applied on load (fused_bn): no output written; its readers apply mean and rstd themselves
            const BnStats bs{PF(in[0]), x16, rows, o->eps, PF(out[1]), PF(out[2]), PF(in[3]), PF(in[4]), !o->recompute,
                             o->recompute ? NULL : (long long *)dptr(c, in[5])};
            if (d->fewer_launches) {
                colsum(d, CS_MOM, PF(in[0]), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, rows, C, NULL, NULL, NULL, NULL, x16,
                       NULL, &bs);
            } else {
                double *sum = (double *)scratch(d, sizeof(double) * C), *ssq = (double *)scratch(d, sizeof(double) * C);
                if (!sum || !ssq) return;
                colsum(d, CS_MOM, PF(in[0]), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, rows, C, NULL, NULL, sum, ssq, x16);
                launch(d, k_bn_stats, dim3((C + 127) / 128), dim3(128), 0, (const double *)sum, (const double *)ssq,
                       (const float *)PF(in[0]), rows, C, o->eps, PF(out[1]), PF(out[2]), PF(in[3]), PF(in[4]), !o->recompute, x16);
                if (!o->recompute) launch(d, k_inc64, dim3(1), dim3(1), 0, (long long *)dptr(c, in[5]));
            }
            if (virt(d, out[0])) break;
            launch(d, k_bn_apply, BN_GRID(rows, C), PF(in[0]), PF(out[0]), (const float *)PF(out[1]), PF(out[2]), NULL, NULL, o->eps, PF(in[1]),
                   PF(in[2]), rows, C, relu, x16, y16);
        } else {
            launch(d, k_bn_apply, BN_GRID(rows, C), PF(in[0]), PF(out[0]), NULL, NULL, PF(in[3]), PF(in[4]), o->eps, PF(in[1]),
                   PF(in[2]), rows, C, relu, x16, y16);
        }
        break;
    }
    case AVGEN_OP_KIND_BATCHNORM_BWD:
    case AVGEN_OP_KIND_BATCHNORM_RELU_BWD: {
        const int relu = o->kind == AVGEN_OP_KIND_BATCHNORM_RELU_BWD;
        const avgen_tensor_desc *xt = TD(in[1]);
        const int C = (int)xt->shape[2];
        const long long rows = xt->shape[0] * xt->shape[1];
        double *sdyx = (double *)scratch(d, sizeof(double) * C), *sdy = (double *)scratch(d, sizeof(double) * C);
        if (!sdyx || !sdy) return;
        const float *b = relu ? PF(in[5]) : NULL;
        // dy, x, dx stored as bf16 (rt_cuda_bf16_operands: the output's gradient, the grouped projection's output
        // and its gradient)
        const unsigned short *dy16 = is16(d, in[0]) ? P16(c, in[0]) : NULL, *x16 = is16(d, in[1]) ? P16(c, in[1]) : NULL;
        unsigned short *dx16 = is16(d, out[0]) ? P16(c, out[0]) : NULL;
        colsum(d, relu ? CS_BN_RELU : CS_BN, PF(in[0]), PF(in[1]), NULL, NULL, PF(in[2]), PF(in[3]), PF(in[4]), b, NULL, rows,
               C, PF(out[1]), PF(out[2]), sdyx, sdy, dy16, x16);
        launch(d, k_bn_bwd_dx, BN_GRID(rows, C), PF(in[0]), PF(in[1]), PF(in[2]), PF(in[3]), PF(in[4]), b, sdy, sdyx, PF(out[0]), rows,
                                        C, relu, x16, dx16, dy16);
        break;
    }
    case AVGEN_OP_KIND_RELU:
        launch(d, k_relu, GRID(numel(TD(in[0]))), PF(in[0]), PF(out[0]), numel(TD(in[0])));
        break;
    case AVGEN_OP_KIND_RELU_BWD:
        launch(d, k_relu_bwd, GRID(numel(TD(in[0]))), PF(in[0]), PF(in[1]), PF(out[0]), numel(TD(in[0])));
        break;
    case AVGEN_OP_KIND_CONCAT_MEAN: {
        const int B = k->batch, T = k->frames, W = (int)TD(out[0])->shape[1];
        int col = 0;
        for (int s = 0; s < o->n_in; s++) {
            const int D = (int)TD(in[s])->shape[1];
            launch(d, k_concat_mean, GRID((long long)B * D), PF(in[s]), PF(out[0]), B, T, D, W, col);
            col += D;
        }
        break;
    }
    case AVGEN_OP_KIND_CONCAT_MEAN_BWD: {
        const int B = k->batch, T = k->frames, W = (int)TD(in[0])->shape[1];
        int col = 0;
        for (int s = 0; s < o->n_out; s++) {
            const int D = (int)TD(out[s])->shape[1];
            launch(d, k_concat_mean_bwd, GRID((long long)B * T * D), PF(in[0]), PF(out[s]), B, T, D, W, col);
            col += D;
        }
        break;
    }
    case AVGEN_OP_KIND_CROSS_ENTROPY: {
        const avgen_tensor_desc *lt_ = TD(in[0]);
        const int B = (int)lt_->shape[0], C = (int)lt_->shape[1];
        launch(d, k_cross_entropy, dim3(1), dim3(256), sizeof(double) * B, PF(in[0]), (const long long *)dptr(c, in[1]), PF(out[0]),
                                                               PF(out[1]), B, C);
        break;
    }
    case AVGEN_OP_KIND_LINEAR_BWD: {
        const avgen_tensor_desc *dyt = TD(in[0]), *xt = TD(in[1]);
        const int M = (int)dyt->shape[0], N = (int)dyt->shape[1], K = (int)xt->shape[1];
        gemm(d, 1, 0, N, K, M, PF(in[0]), N, PF(in[1]), K, PF(out[0]), K, 1);
        colsum(d, CS_SUM, PF(in[0]), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, M, N, PF(out[1]), NULL, NULL, NULL);
        if (o->n_out > 2) gemm(d, 0, 0, M, K, N, PF(in[0]), N, PF(in[2]), K, PF(out[2]), K, 0);
        break;
    }
    case AVGEN_OP_KIND_CLS_LAYERNORM_BWD: {
        const avgen_tensor_desc *gt = TD(out[0]);
        const int P = (int)gt->shape[0], N = (int)gt->shape[1], D = (int)gt->shape[2];
        ck(d, cudaMemsetAsync(PF(out[0]), 0, (size_t)gt->bytes, d->s), "memset");
        LAUNCH_T(LnValues, ln_values(D), k_ln_bwd, dim3((unsigned)((P + 3) / 4)), dim3(128), 0, PF(in[0]), PF(in[1]), PF(in[2]), PF(in[3]), PF(in[4]), NULL, NULL,
                                                             PF(out[0]), (long long)N * D, 0, NULL, P, D);
        break;
    }
    case AVGEN_OP_KIND_LAYERNORM_GATE_BWD: {
        const avgen_tensor_desc *xt = TD(in[1]);
        const int D = (int)xt->shape[2];
        const long long rows = xt->shape[0] * xt->shape[1];
        double *rowdg = (double *)scratch(d, sizeof(double) * rows);
        if (!rowdg) return;
        BnLoad bn;
        const int onload = virt(d, in[1]);
        const float *x = onload ? bn_of(c, in[1], &bn) : PF(in[1]);  // a BatchNorm's output not stored: its input
        if (is16(d, out[0]) && onload && ln_values(D) > 0 && d->fused_ln_bwd) {  // dx as bf16 (rt_cuda_bf16_operands)
            const long long rpb = ln_cs_rows(rows), blocks = (rows + rpb - 1) / rpb;
            double *part = (double *)scratch(d, sizeof(double) * 2 * (size_t)blocks * D);
            if (!part) return;
            // and the gradient as bf16 for the GEMM that reads it next (a carry: fused_carries), in op scratch
            unsigned short *dy16 = (unsigned short *)carry_out(d, g, op);
            LAUNCH_T(LnCsValues, ln_values(D), k_ln_bwd_cs_bn16, dim3((unsigned)blocks), dim3(128), 0, PF(in[0]), x, PF(in[2]),
                     PF(in[3]), PF(in[4]), PF(in[5]), PF(in[6]), P16(c, out[0]), rowdg, rows, D, rpb, part, bn, dy16);
            launch(d, k_colsum_finish, dim3((D + kColsumCols - 1) / kColsumCols), dim3(128), 0, (const double *)part, (int)blocks, D, PF(out[2]), PF(out[3]),
                   (double *)NULL, (double *)NULL);
        } else {  // (a bf16 dx otherwise computed in fp32 in op scratch and rounded: the same bits)
            float *dx = is16(d, out[0]) ? (float *)scratch(d, sizeof(float) * (size_t)rows * D) : PF(out[0]);
            if (!dx) return;
            ln_bwd_trainable(d, PF(in[0]), x, PF(in[2]), PF(in[3]), PF(in[4]), PF(in[5]), PF(in[6]), dx, rowdg, rows, D,
                             PF(out[2]), PF(out[3]), onload ? &bn : NULL);
            if (is16(d, out[0])) launch(d, k_to_bf16, GRID4(rows * D), (const float *)dx, P16(c, out[0]), rows * D);
        }
        launch(d, k_reduce_scalar, dim3(1), dim3(1024), 0, rowdg, rows, PF(out[1]));
        break;
    }
    case AVGEN_OP_KIND_LAYERNORM_BWD: {
        const avgen_tensor_desc *xt = TD(in[1]);
        const int D = (int)xt->shape[xt->ndim - 1];
        const long long rows = xt->bytes / 4 / D;
        const int trainable = o->n_out == 3;
        if (trainable) {
            LatLoad lat;  // its input an adapter's gated fuse applied on load (rt_cuda_lat_on_load)
            const int onload = virt(d, in[1]);
            const float *x = onload ? lat_of(c, in[1], &lat) : PF(in[1]);
            const int dy16 = is16(d, in[0]), dx16 = is16(d, out[0]);  // (rt_cuda_bf16_operands)
            if (onload && dy16 && dx16 && ln_values(D) > 0 && d->fused_ln_bwd) {  // one kernel reads and writes bf16
                const long long rpb = ln_cs_rows(rows), blocks = (rows + rpb - 1) / rpb;
                double *part = (double *)scratch(d, sizeof(double) * 2 * (size_t)blocks * D);
                if (!part) return;
                LAUNCH_T(LnCsValues, ln_values(D), k_ln_bwd_cs_lat16, dim3((unsigned)blocks), dim3(128), 0, P16(c, in[0]), x,
                         PF(in[2]), PF(in[3]), PF(in[4]), P16(c, out[0]), rows, D, rpb, part, lat);
                launch(d, k_colsum_finish, dim3((D + kColsumCols - 1) / kColsumCols), dim3(128), 0, (const double *)part, (int)blocks, D, PF(out[1]), PF(out[2]),
                       (double *)NULL, (double *)NULL);
                break;
            }
            // otherwise a bf16 dy widened, and a bf16 dx rounded, in op scratch around the fp32 kernels (the same bits)
            const long long n = rows * D;
            float *dy = dy16 ? (float *)scratch(d, sizeof(float) * (size_t)n) : PF(in[0]);
            float *dx = dx16 ? (float *)scratch(d, sizeof(float) * (size_t)n) : PF(out[0]);
            if (!dy || !dx) return;
            if (dy16) launch(d, k_from_bf16, GRID(n), (const unsigned short *)P16(c, in[0]), dy, n);
            ln_bwd_trainable(d, dy, x, PF(in[2]), PF(in[3]), PF(in[4]), NULL, NULL, dx, NULL, rows, D, PF(out[1]), PF(out[2]),
                             onload ? &lat : NULL);
            if (dx16) launch(d, k_to_bf16, GRID4(n), (const float *)dx, P16(c, out[0]), n);
            break;
        }
        ln_bwd_frozen(c, g, op);
        break;
    }
    case AVGEN_OP_KIND_LINEAR_DX: {
        const avgen_tensor_desc *dyt = TD(in[0]), *wt = TD(in[1]);
        const int N = (int)wt->shape[0], K = (int)wt->shape[1];
        const long long n = dyt->bytes / 4;
        const int rows = (int)(n / N);
        if (d->bf16_ops && TD(in[1])->arena == AVGEN_ARENA_FROZEN) {
            // bf16 GEMM operands: the gradient rounded to bf16 once (as cuBLASLt's bf16 arithmetic would round
            // it), then a native bf16 GEMM against the frozen weight's bf16 copy; the result as bf16 where
            // only the GELU backward reads it (rt_cuda_bf16_operands)
            unsigned short *dy16 = (unsigned short *)carry_in(d, op);  // written as its LayerNorm read it, or:
            if (!dy16) {
                dy16 = (unsigned short *)scratch(d, sizeof(unsigned short) * (size_t)n);
                if (!dy16) return;
                launch(d, k_to_bf16, GRID4(n), PF(in[0]), dy16, n);
            }
            const int c16 = is16(d, out[0]);
            gemm(d, 0, 0, rows, K, N, dy16, N, W16(c, in[1]), K, c16 ? (void *)P16(c, out[0]) : (void *)PF(out[0]), K, 0, 1, 0,
                 0, 0, NULL, NULL, 1, c16);
            break;
        }
        gemm(d, 0, 0, rows, K, N, PF(in[0]), N, PF(in[1]), K, PF(out[0]), K, 0);
        break;
    }
    case AVGEN_OP_KIND_GELU_LINEAR_DX: {
        const avgen_tensor_desc *wt = TD(in[2]), *dt = TD(in[0]);
        const int N = (int)wt->shape[0], K = (int)wt->shape[1];
        const long long n = numel(dt);
        float *dpre = (float *)scratch(d, sizeof(float) * n);
        if (!dpre) return;
        // the incoming gradient and the GELU input each fp32 or bf16 (rt_cuda_bf16_operands)
        const unsigned short *da16 = is16(d, in[0]) ? P16(c, in[0]) : NULL, *pre16 = is16(d, in[1]) ? P16(c, in[1]) : NULL;
        const float *da = da16 ? NULL : PF(in[0]), *pre = pre16 ? NULL : PF(in[1]);
        if (d->bf16_ops && TD(in[2])->arena == AVGEN_ARENA_FROZEN) {  // dpre and the frozen weight as bf16
            unsigned short *dpre16 = (unsigned short *)dpre;
            launch(d, k_gelu_bwd, GRID4(n), da, da16, pre, pre16, (float *)NULL, dpre16, n);
            const int c16 = is16(d, out[0]);  // the LayerNorm's input gradient as bf16 (rt_cuda_bf16_operands)
            gemm(d, 0, 0, (int)(n / N), K, N, dpre16, N, W16(c, in[2]), K, c16 ? (void *)P16(c, out[0]) : (void *)PF(out[0]), K, 0,
                 1, 0, 0, 0, NULL, NULL, 1, c16);
            break;
        }
        launch(d, k_gelu_bwd, GRID4(n), da, da16, pre, pre16, dpre, (unsigned short *)NULL, n);
        gemm(d, 0, 0, (int)(n / N), K, N, dpre, N, PF(in[2]), K, PF(out[0]), K, 0);
        break;
    }
    case AVGEN_OP_KIND_QKV_DX: {
        const avgen_tensor_desc *dt = TD(in[0]);
        const int D = (int)dt->shape[2] / 3, rows = (int)(dt->shape[0] * dt->shape[1]);
        const int a16 = is16(d, in[0]);  // the gradient of a bf16 qkv and the (frozen) weights as bf16
        auto src = [&](int j) { return a16 ? (const void *)(P16(c, in[0]) + j * D) : (const void *)(PF(in[0]) + j * D); };
        auto wgt = [&](int t) { return a16 ? (const void *)W16(c, t) : (const void *)PF(t); };
        const int c16 = is16(d, out[0]);  // the LayerNorm's input gradient as bf16 (rt_cuda_bf16_operands: stacked)
        if (qkv_stacked(c, in[1], in[2], in[3], (size_t)D * D)) {
            // dX = dqkv [rows, 3D] x [Wq; Wk; Wv] [3D, D]: one GEMM, K = 3D
            gemm(d, 0, 0, rows, D, 3 * D, src(0), 3 * D, wgt(in[1]), D, c16 ? (void *)P16(c, out[0]) : (void *)PF(out[0]), D, 0,
                 1, 0, 0, 0, NULL, NULL, a16, c16);
            break;
        }
        if (c16) {
            set_fail(d, "%s: a bf16 result needs the stacked weights (a bug in avgen)", o->name);
            return;
        }
        for (int j = 0; j < 3; j++)
            gemm(d, 0, 0, rows, D, D, src(j), 3 * D, wgt(in[1 + j]), D, PF(out[0]), D, j > 0, 1, 0, 0, 0, NULL, NULL, a16);
        break;
    }
    case AVGEN_OP_KIND_ADAM: {
        const bool cap = capturing(d);
        adam_scalars(c, d, cap);
        ck(d, cudaMemcpyAsync(d->scal_dev, d->scal_host, sizeof *d->scal_host, cudaMemcpyHostToDevice, d->s),
           "copy of the optimizer scalars");
        if (!cap) scal_sent(d);
        if (d->n_chunks)
            launch(d, k_adam, dim3(d->n_chunks), dim3(256), 0, d->segs, d->chunks, d->scal_dev, k->beta1, k->beta2, k->adam_eps,
                                                  k->weight_decay, k->adamw);
        break;
    }
    default: {
        set_fail(d, "op %s has an unknown kind %d", o->name, (int)o->kind);
        return;
    }
    }
}

double now_s() {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// The parameter layout (offset and size of each) the CUDA ABI gives a kernel of this binary's signature:
// what launch() passes, and what the NVRTC build's kernel must take.
struct ParamLayout {
    int n;
    size_t off[24], size[24];
};
template <class... P>
ParamLayout param_layout(void (*)(P...)) {
    static_assert(sizeof...(P) <= 24, "a kernel with more than 24 parameters");
    ParamLayout L;
    memset(&L, 0, sizeof L);
    size_t at = 0;
    ((at = (at + alignof(P) - 1) / alignof(P) * alignof(P), L.off[L.n] = at, L.size[L.n] = sizeof(P), at += sizeof(P),
      L.n++),
     ...);
    return L;
}

// The parameters of launch-table entry i (kNumKernels + s * kShapeKernels + sk: shape s's instance of shape kernel
// sk, whose parameters are its generic kernel's) as this binary passes them: their layout, and avgen_kernel_sig
// (what a program's own nvcc build carries for each kernel).
struct EntryParams {
    ParamLayout L;
    uint32_t sig;
};
template <class... P>
EntryParams entry_params_of(void (*f)(P...)) {
    return EntryParams{param_layout(f), avgen_kernel_sig(f)};
}
const EntryParams &entry_params(int i) {
#define KPARAMS(f) entry_params_of(&f),
    static const EntryParams list[] = {AVGEN_CUDA_KERNELS(KPARAMS)};
#undef KPARAMS
#define SPARAMS(f) entry_params_of(&f<64>),
    static const EntryParams shapes[] = {AVGEN_CUDA_SHAPE_KERNELS(SPARAMS)};
#undef SPARAMS
    return i < kNumKernels ? list[i] : shapes[(i - kNumKernels) % kShapeKernels];
}

// Puts kernel k (of another build) in launch-table entry i: the list's, or an instance for t (head width, tokens,
// heads) of shape (i - kNumKernels) / kShapeKernels.
void set_entry(Dev *d, int i, const int32_t *t, const void *k) {
    if (i < kNumKernels) {
        d->kern[i] = k;
        return;
    }
    ShapeSet &ss = d->shapes[(i - kNumKernels) / kShapeKernels];
    ss.hd = t[0], ss.n = t[1], ss.h = t[2], ss.k[(i - kNumKernels) % kShapeKernels] = k;
}

// Whether kernel k of another build (build: "the NVRTC build") takes the parameters this binary passes to the
// entry i it fills (label: its name); false with why.
bool params_match(const void *k, int i, const char *label, const char *build, char *why, size_t whylen) {
    const ParamLayout &L = entry_params(i).L;
    for (int j = 0; j <= L.n; j++) {
        size_t off = 0, size = 0;
        const cudaError_t e = cudaFuncGetParamInfo(k, (size_t)j, &off, &size);
        cudaGetLastError();
        if (j == L.n ? e == cudaSuccess : e != cudaSuccess || off != L.off[j] || size != L.size[j]) {
            snprintf(why, whylen, "kernel %s takes other parameters in %s (parameter %d) than this binary passes: the "
                                  "source does not match this avgen", label, build, j);
            return false;
        }
    }
    return true;
}

// Looks up every kernel of the NVRTC build, the list's and then the ns shapes' instances (t: their head
// width, tokens and heads, in the source's order), and checks their parameters (an instance's: its generic
// kernel's). An empty string, or why not.
void bind_kernels(Dev *d, const int (*t)[3], int ns, char *why, size_t whylen) {
    why[0] = 0;
    for (int i = 0; i < kNumKernels + ns * kShapeKernels; i++) {
        const int s = i < kNumKernels ? -1 : (i - kNumKernels) / kShapeKernels, sk = (i - kNumKernels) % kShapeKernels;
        char label[160];
        if (s < 0)
            snprintf(label, sizeof label, "%s", kKernelNames[i]);
        else
            rt_kernels_shape_expr(sk, t[s], label, sizeof label);
        cudaKernel_t k = NULL;
        cudaError_t e = cudaLibraryGetKernel(&k, d->lib, d->cubin.lowered[i]);
        if (e != cudaSuccess) {
            cudaGetLastError();
            snprintf(why, whylen, "kernel %s (%s) is not in the NVRTC build: %s", label, d->cubin.lowered[i], cudaGetErrorString(e));
            return;
        }
        set_entry(d, i, s < 0 ? NULL : t[s], (const void *)k);
        if (!params_match((const void *)k, i, label, "the NVRTC build", why, whylen)) return;
    }
    if (d->shape_kernels) d->n_shapes = ns;
}

// Fills the launch table from a generated program's own nvcc build (its kernels_nvcc.cu): the same names in the
// same order as an NVRTC build of its kernels.cu (rt_kernels_table_check), and on the GPU the same parameters.
// An empty string, or why not.
void bind_table(Dev *d, const avgen_kernel_table *t, char *why, size_t whylen) {
    why[0] = 0;
    if (rt_kernels_table_check(t, why, whylen)) return;
#ifndef AVGEN_CUDA_EMU
    {  // code for this GPU (the program's build names its own architectures)
        struct cudaFuncAttributes fa;
        const cudaError_t e = cudaFuncGetAttributes(&fa, t->fns[0].fn);
        cudaGetLastError();
        if (e != cudaSuccess) {
            snprintf(why, whylen, "%s, compiled by nvcc into this program, cannot run on this GPU (%s): build the program "
                                  "for its architecture (CMAKE_CUDA_ARCHITECTURES)", t->source, cudaGetErrorString(e));
            return;
        }
    }
#endif
    const int ns = t->n_shapes;
    for (int i = 0; i < kNumKernels + ns * kShapeKernels; i++) {
        const void *k = t->fns[i].fn;
        set_entry(d, i, i < kNumKernels ? NULL : t->shapes[(i - kNumKernels) / kShapeKernels], k);
        if (t->fns[i].sig != entry_params(i).sig) {
            snprintf(why, whylen, "kernel %s takes other parameters in %s than this binary passes: emit the folder again "
                                  "with this avgen", t->fns[i].expr + 1, t->source);
            return;
        }
#ifndef AVGEN_CUDA_EMU  // and as the driver sees them (the emulator keeps no parameter information)
        if (!params_match(k, i, t->fns[i].expr + 1, "this program's nvcc build", why, whylen)) return;
#endif
    }
    d->n_shapes = d->shape_kernels ? ns : 0;
}

// A cubin the driver cannot use (as opposed to a driver or memory error, which a new compile would not cure).
bool image_error(cudaError_t e) {
    return e == cudaErrorInvalidKernelImage || e == cudaErrorNoKernelImageForDevice || e == cudaErrorInvalidPtx ||
           e == cudaErrorUnsupportedPtxVersion || e == cudaErrorInvalidSource || e == cudaErrorSharedObjectInitFailed;
}


// With the fused attention: how many of the configuration's shapes run shape-literal instances
// (n_attn_literal), said at kinfo's tail.
void describe_shapes(Dev *d, const avgen_consts *k) {
    int t[2][3];
    const int c = rt_cuda_attn_shapes(k, t);
    if (!c) return;
    char lit[64] = "", gen[64] = "";
    for (int i = 0; i < c; i++) {
        const bool has = shape_kernel(d, 0, t[i][0], t[i][1], t[i][2]) >= 0;
        d->n_attn_literal += has;
        char *b = has ? lit : gen;
        snprintf(b + strlen(b), sizeof lit - strlen(b), "%s%d", b[0] ? ", " : "", t[i][1]);
    }
    const size_t at = strlen(d->kinfo);
    snprintf(d->kinfo + at, sizeof d->kinfo - at, "; fused attention (head width %d, %d heads): %s%s%s%s%s%s", t[0][0], t[0][2],
             lit[0] ? "literal shapes for N = " : "", lit, lit[0] && gen[0] ? ", " : "", gen[0] ? "generic kernels for N = " : "",
             gen, !d->shape_kernels        ? " (AVGEN_SHAPE_KERNELS=0)"
                  : d->shapes_refused       ? " (the instances' shared-memory opt-in was refused)"
                  : gen[0] && d->kernels_mode != RT_KERNELS_NVRTC ? " (not built in; --kernels nvrtc compiles them)"
                                                                   : "");
}

// Fills the launch table: this binary's copies, or the kernel source compiled by NVRTC for the device's
// architecture and loaded as a library. A cached build the driver refuses, or whose kernels do not match,
// is removed from the cache and compiled once more.
bool load_kernels(Dev *d, const rt_cuda_opts *o, const avgen_consts *kc, int arch) {
    for (int i = 0; i < kNumKernels; i++) d->kern[i] = kBuiltin[i];
    d->n_shapes = 0;
    if (!o || o->kernels != RT_KERNELS_NVRTC) {
        const avgen_kernel_table *t = o ? o->kernel_table : NULL;
        if (t && d->program_kernels) {
            char why[600];
            bind_table(d, t, why, sizeof why);
            if (why[0]) {
                set_fail(d, "%s (%s=0 runs the avgen runtime's copy, --kernels nvrtc compiles them)", why,
                         RT_KERNELS_PROGRAM_ENV);
                return false;
            }
            snprintf(d->kinfo, sizeof d->kinfo, "nvcc: %s compiled into this program (fatbin), %d kernels and %d shape-literal "
                                                "instances", t->source, kNumKernels, t->n_shapes * kShapeKernels);
            return true;
        }
        if (d->shape_kernels)
            for (int i = 0; i < kNumBuiltinShapes; i++) d->shapes[d->n_shapes++] = kBuiltinShapes[i];
        snprintf(d->kinfo, sizeof d->kinfo, "nvcc: %d kernels built into the avgen runtime (fatbin)%s", kNumKernels,
                 t ? "; this program's own build is not used (" RT_KERNELS_PROGRAM_ENV "=0)" : "");
        return true;
    }
#ifdef AVGEN_CUDA_EMU
    set_fail(d, "--kernels nvrtc: the CUDA emulator runs the kernels built into this binary only");
    return false;
#endif
    const double t0 = now_s();
    char *own = o->kernel_src ? NULL : rt_kernels_library_for(kc);
    const char *src = o->kernel_src ? o->kernel_src : own;
    const char *name = o->kernel_src ? (o->kernel_src_name ? o->kernel_src_name : "kernels.cu") : "rt_cuda_kernels.cuh";
    if (!src) {
        set_fail(d, "this build carries no kernel source for NVRTC (a bug in avgen)");
        return false;
    }
    int shp[AVGEN_CUDA_MAX_SHAPES][3];
    char err[2048], note[800] = "", why[600];
    const int ns = rt_kernels_shapes(src, shp, AVGEN_CUDA_MAX_SHAPES, err, sizeof err);
    if (ns < 0) {
        set_fail(d, "--kernels nvrtc: %s: %s", name, err);
        free(own);
        return false;
    }
    for (int attempt = 0;; attempt++) {
        if (rt_kernels_build(src, name, arch, &d->cubin, err, sizeof err)) {
            fprintf(stderr, "%s\n", err);  // the whole NVRTC log; the error below keeps its start
            set_fail(d, "--kernels nvrtc: %s", err);
            free(own);
            return false;
        }
        if (d->cubin.note[0]) snprintf(note, sizeof note, "%s; ", d->cubin.note);
        why[0] = 0;
        cudaError_t e = cudaSuccess;
        if (d->cubin.n_lowered != kNumKernels + ns * kShapeKernels) {
            snprintf(why, sizeof why, "the NVRTC build names %d kernels, this binary launches %d", d->cubin.n_lowered,
                     kNumKernels + ns * kShapeKernels);
        } else if ((e = cudaLibraryLoadData(&d->lib, d->cubin.cubin, NULL, NULL, 0, NULL, NULL, 0)) != cudaSuccess) {
            cudaGetLastError();
            d->lib = NULL;
            snprintf(why, sizeof why, "the CUDA driver cannot load the kernels NVRTC compiled for sm_%d (%s)", arch,
                     cudaGetErrorString(e));
        } else {
            bind_kernels(d, shp, ns, why, sizeof why);
        }
        if (!why[0]) break;
        if (d->cubin.cache_hit && attempt == 0 && (e == cudaSuccess || image_error(e))) {
            snprintf(note, sizeof note, "the cached kernels %s were not used (%s): compiled again; ", d->cubin.path, why);
            if (d->lib) cudaLibraryUnload(d->lib);
            d->lib = NULL;
            rt_nvrtc_forget(&d->cubin);
            rt_cubin_free(&d->cubin);
            for (int i = 0; i < kNumKernels; i++) d->kern[i] = kBuiltin[i];
            continue;
        }
        if (!d->cubin.cache_hit && (e == cudaSuccess || image_error(e))) rt_nvrtc_forget(&d->cubin);  // not for later starts
        set_fail(d, "--kernels nvrtc: %s", why);
        free(own);
        return false;
    }
    free(own);
    d->kernel_s = now_s() - t0;
    d->kernels_mode = RT_KERNELS_NVRTC;
    d->kernel_hit = d->cubin.cache_hit;
    char line[700];
    rt_kernels_describe(&d->cubin, arch, line, sizeof line);
    snprintf(d->kinfo, sizeof d->kinfo, "%s%s; loaded, %.1f ms in all", note, line, d->kernel_s * 1e3);
    return true;
}

// A switch in the environment (AVGEN_BF16_OPERANDS and the like): 0 or 1, dflt when unset or empty; any
// other value is an error (-1, d->failed set).
int env_switch(Dev *d, const char *name, int dflt) {
    const char *e = getenv(name);
    if (!e || !*e) return dflt;
    if (!strcmp(e, "0") || !strcmp(e, "1")) return e[0] - '0';
    set_fail(d, "%s=%s: expected 0 or 1", name, e);
    return -1;
}

// A LINEAR_RESIDUAL's third addend (an adapter's output, y = x W^T + b + res + out) costs a pass over y of its
// own. When out is written by one LAYERNORM_GATE before it and read by nothing else, and res is not written
// in between, that LayerNorm adds res as it writes out (k_layernorm's res) and the GEMM takes out as its C:
// ln_res[the LayerNorm] = res, lr_fused[the LINEAR_RESIDUAL] = 1 (AVGEN_FUSE_RESIDUAL=0: none). False when
// out of host memory.
bool fused_residuals(const avgen_graph *g, Dev *d) {
    d->ln_res = (int *)malloc(sizeof(int) * ((size_t)g->n_ops + 1));
    d->lr_fused = (unsigned char *)calloc((size_t)g->n_ops + 1, 1);
    if (!d->ln_res || !d->lr_fused) return false;
    for (int i = 0; i < g->n_ops; i++) d->ln_res[i] = -1;
    if (env_switch(d, "AVGEN_FUSE_RESIDUAL", 1) <= 0) return true;  // off, or not 0 or 1 (d->failed)
    auto writes = [&](int i, int t) {
        const avgen_op_desc *q = &g->ops[i];
        for (int s2 = 0; s2 < q->n_out; s2++)
            if (g->refs[q->out_at + s2] == t) return true;
        return false;
    };
    for (int j = 0; j < g->n_ops; j++) {
        const avgen_op_desc *o = &g->ops[j];
        if (o->kind != AVGEN_OP_KIND_LINEAR_RESIDUAL || o->n_in < 5) continue;
        const int out = g->refs[o->in_at + 4], res = g->refs[o->in_at + 3];
        if (out < 0 || res < 0) continue;
        int writer = -1, nw = 0, others = 0;
        for (int i = 0; i < g->n_ops; i++) {
            if (writes(i, out)) writer = i, nw++;
            const avgen_op_desc *q = &g->ops[i];
            for (int s2 = 0; s2 < q->n_in; s2++) others += g->refs[q->in_at + s2] == out && !(i == j && s2 == 4);
        }
        // (ops run phase by phase, each phase in index order: both in the same phase, the writer first)
        if (nw != 1 || others || writer >= j || g->ops[writer].kind != AVGEN_OP_KIND_LAYERNORM_GATE ||
            g->ops[writer].phase != o->phase || g->refs[g->ops[writer].out_at] != out || d->ln_res[writer] >= 0)
            continue;
        bool res_ready = true;
        for (int i = writer; i < j && res_ready; i++) res_ready = !writes(i, res);
        if (!res_ready || g->tensors[res].bytes != g->tensors[out].bytes) continue;
        d->ln_res[writer] = res, d->lr_fused[j] = 1;
    }
    return true;
}

// The carries (rt_cuda_carry) on: the residual stream's gradient as bf16 for the input-gradient GEMM after its
// LayerNorm + gate backward with bf16 GEMM operands, unless AVGEN_FUSE_DY16=0; the latent exchange's logits over
// the other stream from the pass of the adapter before, unless AVGEN_FUSE_LATDOTS=0. Each gives the same bits as
// its reader's own pass. False when out of host memory.
bool fused_carries(const avgen_graph *g, Dev *d) {
    const int dy16 = env_switch(d, "AVGEN_FUSE_DY16", 1), dots = env_switch(d, "AVGEN_FUSE_LATDOTS", 1);
    if (dy16 < 0 || dots < 0 || (!(dy16 && d->bf16_ops) && !dots)) return true;  // none on, or not 0 or 1 (d->failed)
    const size_t n = (size_t)g->n_ops + 1;
    d->carry_base = (int64_t *)malloc(sizeof(int64_t) * n), d->carry_off = (int64_t *)malloc(sizeof(int64_t) * n);
    d->carry_src = (int *)malloc(sizeof(int) * n), d->carry_ready = (unsigned char *)calloc(n, 1);
    if (!d->carry_base || !d->carry_off || !d->carry_src || !d->carry_ready) return false;
    for (int i = 0; i < g->n_ops; i++) d->carry_off[i] = -1, d->carry_src[i] = -1;
    for (int i = 0; i < g->n_ops; i++) {
        d->carry_base[i] = rt_cuda_carry_extent(g, i);
        int j;
        const int kind = rt_cuda_carry(g, i, &j, NULL);
        // (the gradient's writer only on its fused path, k_ln_bwd_cs_bn16: a bf16 dx, its BatchNorm applied on
        // load, a width with a register path; elsewhere the GEMM rounds the gradient itself)
        const int32_t *wi = g->refs + g->ops[i].in_at, *wo = g->refs + g->ops[i].out_at;
        const bool dy16_writes = kind == RT_CUDA_CARRY_DY16 && dy16 && d->bf16_ops && d->fused_ln_bwd && is16(d, wo[0]) &&
                                 virt(d, wi[1]) && ln_values((int)TD(wi[1])->shape[2]) > 0;
        if (dy16_writes || (kind == RT_CUDA_CARRY_LATDOTS && dots)) {
            d->carry_off[i] = rt_cuda_carry_offset(g, i), d->carry_src[j] = i;
            (kind == RT_CUDA_CARRY_DY16 ? d->n_dy16 : d->n_latdots)++;
        }
    }
    return true;
}

// Latent ops run with the LayerNorm after them (rt_cuda_latln_next), where that LayerNorm applies the gated fuse on
// load, unless AVGEN_FUSE_LATLN=0. False when out of host memory.
bool fused_latln(const avgen_graph *g, Dev *d) {
    if (env_switch(d, "AVGEN_FUSE_LATLN", 1) <= 0) return true;  // off, or not 0 or 1 (d->failed)
    d->latln = (unsigned char *)calloc((size_t)g->n_ops + 1, 1);
    if (!d->latln) return false;
    for (int i = 0; i < g->n_ops; i++)
        if (rt_cuda_latln_next(g, i) == i + 1 && virt(d, g->refs[g->ops[i].out_at])) d->latln[i] = 1, d->n_latln++;
    return true;
}

// Where op i writes its carry (marked ready for its reader), or NULL when it has none on.
void *carry_out(Dev *d, const avgen_graph *g, int i) {
    if (!d->carry_off || d->carry_off[i] < 0) return NULL;
    int j;
    rt_cuda_carry(g, i, &j, NULL);
    d->carry_ready[j] = 1;
    return d->scratch + d->carry_off[i];
}

// The carry op j reads, when its writer wrote it in this run of the ops; else NULL (j computes it itself).
void *carry_in(Dev *d, int j) {
    if (!d->carry_src || d->carry_src[j] < 0 || !d->carry_ready[j]) return NULL;
    d->carry_ready[j] = 0;
    return d->scratch + d->carry_off[d->carry_src[j]];
}

// The latent backward pairs run as one (rt_cuda_latbwd_first), unless AVGEN_FUSE_LATENT_BWD=0. False when out
// of host memory.
// The trainable weights read as bf16 operands (a grouped projection's, whose input or output gradient is stored as
// bf16): w16_t, in op order, and w16_first, the op that rounds them all into train16: the first reader of the earliest
// phase (ops run phase by phase: the forward's before the backward's), which run_op reaches before anything it skips
// (AVGEN_FEWER_LAUNCHES; -1: none, off, or a parameter arena past the segments' int offsets). False when out of host
// memory.
bool trainable16(const avgen_graph *g, Dev *d) {
    d->w16_first = -1, d->n_w16 = 0;
    if (!d->train16 || !d->fewer_launches) return true;
    d->w16_t = (int *)malloc(sizeof(int) * ((size_t)g->n_ops + 1));
    if (!d->w16_t) return false;
    for (int i = 0; i < g->n_ops; i++) {
        const avgen_op_desc *o = &g->ops[i];
        const int32_t *in = g->refs + o->in_at;
        int w = -1;
        if (o->kind == AVGEN_OP_KIND_GROUP_LINEAR && o->n_in >= 2 && is16(d, in[0])) w = in[1];
        if (o->kind == AVGEN_OP_KIND_GROUP_LINEAR_BWD && o->n_in >= 3 && is16(d, in[0])) w = in[2];
        if (w < 0 || g->tensors[w].arena != AVGEN_ARENA_TRAIN) continue;
        if ((g->tensors[w].offset + g->tensors[w].bytes) / 4 > 0x7fffffff) {  // (Bf16Segs holds int offsets)
            d->w16_first = -1, d->n_w16 = 0;
            return true;
        }
        bool seen = false;
        for (int k = 0; k < d->n_w16 && !seen; k++) seen = d->w16_t[k] == w;
        if (!seen) d->w16_t[d->n_w16++] = w;
        if (d->w16_first < 0 || o->phase < g->ops[d->w16_first].phase) d->w16_first = i;
    }
    return true;
}
// Rounds the trainable weights of w16_t into train16 (k_to_bf16_segs, kBf16Segs a launch).
void round_trainable16(avgen_ctx *c, Dev *d) {
    for (int k0 = 0; k0 < d->n_w16; k0 += kBf16Segs) {
        Bf16Segs sg;
        memset(&sg, 0, sizeof sg);
        long long most = 1;
        for (int k = k0; k < d->n_w16 && sg.n < kBf16Segs; k++, sg.n++) {
            const avgen_tensor_desc *td = &c->g->tensors[d->w16_t[k]];
            sg.off[sg.n] = (int)(td->offset / 4), sg.len[sg.n] = (int)(td->bytes / 4);
            if (td->bytes / 4 > most) most = td->bytes / 4;
        }
        launch(d, k_to_bf16_segs, dim3((unsigned)blocks_for((most + 3) / 4, 256), (unsigned)sg.n), dim3(256), 0,
               (const float *)d->arena[AVGEN_ARENA_TRAIN], d->train16, sg);
    }
}

bool fused_latent_bwd(const avgen_graph *g, Dev *d) {
    if (env_switch(d, "AVGEN_FUSE_LATENT_BWD", 1) <= 0) return true;  // off, or not 0 or 1 (d->failed)
    d->lb = (LatGroup *)malloc(sizeof(LatGroup) * (size_t)g->n_ops);
    if (!d->lb) return false;
    for (int j = 0; j < g->n_ops; j++) d->lb[j] = LatGroup{-1, -1, -1, false};
    for (int j = 0; j < g->n_ops; j++) {
        const int f = rt_cuda_latbwd_first(g, j);
        if (f < 0) continue;
        LatGroup *e = &d->lb[j];
        e->first = f, e->ln = rt_cuda_latbwd_ln(g, f), e->lny = rt_cuda_latbwd_lny(g, f);
        for (const int q : {e->first, e->ln, e->lny})
            if (q >= 0) d->lb[q].deferred = true;
    }
    return true;
}

// True when every frozen tensor of g is in the other context's frozen arena at the same offset and size, and
// that context is attached with an arena at least as large (rt_cuda_opts.share_frozen).
bool frozen_compatible(const avgen_graph *g, const avgen_ctx *other) {
    if (!other->dev || g->arena_bytes[AVGEN_ARENA_FROZEN] > other->g->arena_bytes[AVGEN_ARENA_FROZEN]) return false;
    for (int i = 0; i < g->n_tensors; i++) {
        const avgen_tensor_desc *t = &g->tensors[i];
        if (t->arena != AVGEN_ARENA_FROZEN) continue;
        const int j = rt_find(other->g, t->name);
        if (j < 0) return false;
        const avgen_tensor_desc *u = &other->g->tensors[j];
        if (u->arena != AVGEN_ARENA_FROZEN || u->offset != t->offset || u->bytes != t->bytes) return false;
    }
    return true;
}

// The fp32 frames the context keeps on the host (a test input's), 0 when none.
size_t frames_bytes(const avgen_ctx *c) {
    return c->frames_f32 ? sizeof(float) * (size_t)c->k->batch * c->k->frames * 3 * c->k->image * c->k->image : 0;
}

int fail_out(char *err, size_t errlen, const char *msg) {
    snprintf(err, errlen, "%s", msg);
    return 1;
}

}  // namespace

// ------------------------------------------------------------------------------------------- C API

extern "C" int rt_cuda_usable(char *why, size_t whylen) {
    if (rt_cuda_devices(NULL, 0, why, whylen) == 0) return 0;
    if (lt_load(why, whylen)) return 0;
    return 1;
}

extern "C" int rt_cuda_attach(avgen_ctx *c, const rt_cuda_opts *o, char *err, size_t errlen) {
    if (!rt_cuda_usable(err, errlen)) return 1;
    Dev *d = (Dev *)calloc(1, sizeof(Dev));
    if (!d) return fail_out(err, errlen, "out of host memory");
    c->dev = d;
    const avgen_graph *g = c->g;
    d->precision = o ? o->precision : RT_CUDA_FP32;
    d->compute = d->precision == RT_CUDA_BF16 ? CUBLAS_COMPUTE_32F_FAST_16BF
               : d->precision == RT_CUDA_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    const int dev = o ? o->device : 0;
    struct cudaDeviceProp prop;
    if (!ck(d, cudaSetDevice(dev), "cudaSetDevice") || !ck(d, cudaGetDeviceProperties(&prop, dev), "device properties")) goto fail;
    snprintf(d->name, sizeof d->name, "%s, sm_%d%d, %d SMs, %.0f GiB", prop.name, prop.major, prop.minor,
             prop.multiProcessorCount, (double)prop.totalGlobalMem / 1073741824.0);
    {
        size_t fr = 0, tot = 0;
        cudaMemGetInfo(&fr, &tot);
        d->free_before = fr;
    }
    {
        const char *a = getenv("AVGEN_ATTENTION");
        if (a && *a && strcmp(a, "gemm") && strcmp(a, "fused")) {
            set_fail(d, "AVGEN_ATTENTION=%s: expected gemm or fused", a);
            goto fail;
        }
        if ((d->shape_kernels = env_switch(d, "AVGEN_SHAPE_KERNELS", 1)) < 0) goto fail;
        if ((d->program_kernels = env_switch(d, RT_KERNELS_PROGRAM_ENV, 1)) < 0) goto fail;
        if ((d->use_graphs = env_switch(d, "AVGEN_CUDA_GRAPH", 1)) < 0) goto fail;
        int n_adam = 0, n_other = 0;
        for (int i = 0; i < g->n_ops; i++)
            if (g->ops[i].phase == AVGEN_PH_UPDATE) (g->ops[i].kind == AVGEN_OP_KIND_ADAM ? n_adam : n_other)++;
        d->update_graphs = n_adam == 1 && !n_other;
        if (!load_kernels(d, o, c->k, prop.major * 10 + prop.minor)) goto fail;
        // bf16 GEMMs on sm_80 or later with kernels built for it (a binary built only for older GPUs has the
        // fused kernels as traps), head widths 16/32/64; AVGEN_ATTENTION=gemm keeps the GEMM path
        int can = d->precision == RT_CUDA_BF16 && prop.major >= 8 && rt_cuda_attention_fusable(c->k);
        if (can) {
            struct cudaFuncAttributes fa;
            memset(&fa, 0, sizeof fa);
            for (int i = 0; i < kNumKernels; i++)
                if (kBuiltin[i] == (const void *)&k_attn_fwd<64>) {
                    can = cudaFuncGetAttributes(&fa, d->kern[i]) == cudaSuccess && fa.binaryVersion >= 80 &&
                          (fa.ptxVersion == 0 || fa.ptxVersion >= 80);
                    cudaGetLastError();
                }
            // their dynamic shared memory: a head's staged side (rt_cuda_attn_smem), over 48 KiB from N = 129
            // at head width 64, which a kernel takes only once opted in
            const size_t sm = rt_cuda_attn_smem_of(c->k);
            for (int i = 0; i < kNumKernels && can; i++)
                if (!strncmp(kKernelNames[i], "k_attn_fwd", 10) || !strncmp(kKernelNames[i], "k_attn_bwd_d", 12)) {
                    can = sm <= prop.sharedMemPerBlockOptin &&
                          cudaFuncSetAttribute(d->kern[i], cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm) == cudaSuccess;
                    cudaGetLastError();
                }
            // and their shape-literal instances (any refused: the generic kernels for all shapes)
            bool inst = can;
            for (int i = 0; i < d->n_shapes && inst; i++)
                for (int j = 0; j < kShapeKernels && inst; j++) {
                    inst = cudaFuncSetAttribute(d->shapes[i].k[j], cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm) == cudaSuccess;
                    cudaGetLastError();
                }
            if (!inst) d->n_shapes = 0, d->shapes_refused = 1;
        }
        if (a && !strcmp(a, "fused") && !can) {
            set_fail(d, "AVGEN_ATTENTION=fused: the fused attention kernels need --precision bf16, a GPU of compute "
                        "capability 8.0 or later with kernels built for it, a head width of 16, 32 or 64, sequences "
                        "whose staged keys and values fit 99 KiB of shared memory (320 tokens at head width 64) and "
                        "at most 65535 pairs a step");
            goto fail;
        }
        d->attn_fused = can && !(a && !strcmp(a, "gemm"));
        if (d->attn_fused) describe_shapes(d, c->k);
    }
    if (!ck(d, cudaStreamCreateWithFlags(&d->s, cudaStreamNonBlocking), "stream")) goto fail;
    if (o && o->prefetch_inputs) {  // the next batch up while a step runs: its stream, events and flags here, staging below
        const int on = env_switch(d, "AVGEN_PREFETCH", 1);
        if (on < 0) goto fail;
        if (on) {
            if (!ck(d, cudaStreamCreateWithFlags(&d->cs, cudaStreamNonBlocking), "copy stream") ||
                !ck(d, cudaEventCreateWithFlags(&d->ev_staged, cudaEventDisableTiming), "event") ||
                !ck(d, cudaEventCreateWithFlags(&d->ev_taken, cudaEventDisableTiming), "event"))
                goto fail;
            if (!(d->staged = (unsigned char *)calloc((size_t)g->n_tensors, 1))) {
                set_fail(d, "out of host memory");
                goto fail;
            }
        }
    }
    if (lt.create(&d->lt)) {
        set_fail(d, "cuBLASLt could not create a handle");
        goto fail;
    }
    d->frozen_shared = o && o->share_frozen && frozen_compatible(g, o->share_frozen);
    {
        // bf16 activations, off unless AVGEN_BF16_OPERANDS=1 (not yet the default: first measured on a GPU
        // after it was written): the frozen arena's bf16 copy (filled at upload), the tensors stored as bf16,
        // and the activation arena repacked with their slots halved (rt_cuda_pack_act)
        const int ops = env_switch(d, "AVGEN_BF16_OPERANDS", 0);
        if (ops < 0) goto fail;
        if (ops) {
            if (d->precision != RT_CUDA_BF16 || prop.major < 8) {
                set_fail(d, "AVGEN_BF16_OPERANDS=1 needs --precision bf16 and a GPU of compute capability 8.0 or later");
                goto fail;
            }
            if (d->frozen_shared && DEV(o->share_frozen)->frozen16) {
                d->frozen16 = DEV(o->share_frozen)->frozen16;
            } else if (d->frozen_shared) {
                set_fail(d, "AVGEN_BF16_OPERANDS=1: the context whose frozen weights this one shares has no bf16 copy");
                goto fail;
            } else if (!ck(d, cudaMalloc((void **)&d->frozen16, (size_t)g->arena_bytes[AVGEN_ARENA_FROZEN] / 2 + 16),
                           "device memory for the bf16 copy of the frozen weights")) {
                goto fail;
            }
            if (!ck(d, cudaMalloc((void **)&d->train16, (size_t)g->arena_bytes[AVGEN_ARENA_TRAIN] / 2 + 16),
                    "device memory for the bf16 copy of the trainable weights"))
                goto fail;
            d->bf16_ops = 1;
        }
    }
    {
        // BatchNorm applied on load by the LayerNorm + gate after it (rt_cuda_bn_on_load), unless AVGEN_FUSE_BN=0;
        // the adapters' gated fuse applied on load by the LayerNorm after it (rt_cuda_lat_on_load), unless
        // AVGEN_FUSE_LATENT=0; every tensor's class (rt_cuda_act_classes), kept when any is not fp32
        const int fuse_bn = env_switch(d, "AVGEN_FUSE_BN", 1);
        if (fuse_bn < 0) goto fail;
        const int fuse_lat = env_switch(d, "AVGEN_FUSE_LATENT", 1);
        if (fuse_lat < 0) goto fail;
        d->t16 = (unsigned char *)calloc((size_t)g->n_tensors + 1, 1);
        int n16 = 0;
        if (!d->t16 || rt_cuda_act_classes(g, d->bf16_ops, d->attn_fused,
                                           (fuse_bn ? RT_CUDA_FUSE_BN : 0) | (fuse_lat ? RT_CUDA_FUSE_LATENT : 0), d->t16,
                                           &n16, &d->n_bn_fused, &d->n_lat_fused)) {
            set_fail(d, "out of host memory");
            goto fail;
        }
        if (!n16 && !d->n_bn_fused && !d->n_lat_fused) free(d->t16), d->t16 = NULL;
        if (d->n_bn_fused || d->n_lat_fused) {
            d->vwriter = (int *)malloc(sizeof(int) * ((size_t)g->n_tensors + 1));
            if (!d->vwriter) goto fail;
            for (int t = 0; t < g->n_tensors; t++) d->vwriter[t] = -1;
            for (int i = 0; i < g->n_ops; i++) {
                const avgen_op_desc *q = &g->ops[i];
                if ((q->kind == AVGEN_OP_KIND_BATCHNORM || q->kind == AVGEN_OP_KIND_ADAPTER_LATENT) && q->n_out >= 1 &&
                    virt(d, g->refs[q->out_at]))
                    d->vwriter[g->refs[q->out_at]] = i;
            }
        }
    }
    if (d->t16) {  // some activations bf16 or not stored: the activation arena repacked (rt_cuda_pack_act)
        d->act_off = (int64_t *)malloc(sizeof(int64_t) * ((size_t)g->n_tensors + 1));
        if (!d->act_off) goto fail;
        const int64_t act = rt_cuda_pack_act(g, d->t16, d->act_off);
        if (act < 0) goto fail;
        d->act_bytes = (size_t)act;
    }
    {
        // Everything this context will allocate (arenas, op scratch, workspace, frames) against what the GPU has
        // free: one sentence before any allocation fails half-way (avgen plan predicts the same sums)
        d->scratch_bytes = rt_cuda_scratch_bytes(g, c->k, d->attn_fused);
        size_t need = kWorkspaceBytes + d->scratch_bytes + frames_bytes(c) + (d->staged ? (size_t)g->arena_bytes[AVGEN_ARENA_INPUT] : 0),
               act = 0;
        // (the BatchNorm means kept for on-load readers are allocated already, as is the bf16 weight copy)
        for (int a = 0; a < AVGEN_ARENA_COUNT; a++) {
            if (a == AVGEN_ARENA_FROZEN && d->frozen_shared) continue;
            const size_t b = a == AVGEN_ARENA_ACT && d->act_off ? d->act_bytes : (size_t)g->arena_bytes[a];
            need += b;
            if (a == AVGEN_ARENA_ACT) act = b;
        }
        size_t fr = 0, tot = 0;
        if (cudaMemGetInfo(&fr, &tot) == cudaSuccess && fr > 0 && need > fr) {
            set_fail(d, "not enough device memory: this step needs %.2f GiB (%.2f GiB of it activations%s) and the GPU has "
                     "%.2f GiB free; lower train.batch or choose a memory.recompute policy%s (avgen plan says what fits)",
                     need / 1073741824.0, act / 1073741824.0, d->bf16_ops ? ", some in bf16" : "", fr / 1073741824.0,
                     d->bf16_ops || d->precision != RT_CUDA_BF16 ? "" : ", or store activations in bf16 (AVGEN_BF16_OPERANDS=1)");
            goto fail;
        }
        cudaGetLastError();
    }
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++) {
        d->arena_bytes[a] = a == AVGEN_ARENA_ACT && d->act_off ? d->act_bytes : (size_t)g->arena_bytes[a];
        if (a == AVGEN_ARENA_FROZEN && d->frozen_shared) {
            d->arena[a] = DEV(o->share_frozen)->arena[a];
            continue;
        }
        if (!ck(d, cudaMalloc((void **)&d->arena[a], d->arena_bytes[a] ? d->arena_bytes[a] : 1), "device memory for an arena"))
            goto fail;
    }
    if (d->staged && !ck(d, cudaMalloc((void **)&d->stage, g->arena_bytes[AVGEN_ARENA_INPUT] ? (size_t)g->arena_bytes[AVGEN_ARENA_INPUT] : 1),
                         "device memory for the next batch's inputs"))
        goto fail;
    if (c->frames_f32) {
        const size_t n = frames_bytes(c);
        if (!ck(d, cudaMalloc((void **)&d->frames_f32, n), "device memory for the frames") ||
            !ck(d, cudaMemcpy(d->frames_f32, c->frames_f32, n, cudaMemcpyHostToDevice), "upload of the frames"))
            goto fail;
    }
    if ((d->fused_ln_bwd = env_switch(d, "AVGEN_FUSED_LN_BWD", 1)) < 0) goto fail;
    if ((d->gemm_tune = env_switch(d, "AVGEN_GEMM_AUTOTUNE", 0)) < 0) goto fail;
    if ((d->fewer_launches = env_switch(d, "AVGEN_FEWER_LAUNCHES", 1)) < 0) goto fail;
    if (!fused_residuals(g, d) || !fused_latent_bwd(g, d) || !fused_carries(g, d) || !fused_latln(g, d) ||
        !trainable16(g, d)) {
        set_fail(d, "out of host memory");
        goto fail;
    }
    if (d->failed) goto fail;
    d->ws_bytes = kWorkspaceBytes;
    if (!ck(d, cudaMalloc(&d->ws, d->ws_bytes), "device memory for the cuBLASLt workspace")) goto fail;
#ifdef AVGEN_EMU_TRACE
    opcheck_attach(c);
#endif
    {
        const size_t need = d->scratch_bytes;
        if (cudaMalloc((void **)&d->scratch, need) != cudaSuccess) {
            cudaGetLastError();
            const size_t planned = rt_cuda_scratch_bytes(g, c->k, 1);
            set_fail(d, "out of device memory for the op scratch (%.2f GiB)%s", need / 1073741824.0,
                     need > planned ? ": without the fused attention (fp32 or tf32 GEMMs, AVGEN_ATTENTION=gemm) the "
                                      "attention score matrices need more than the plan counts; use --precision bf16 or "
                                      "a smaller batch"
                                    : "");
            goto fail;
        }
    }
    {
        // Trainable tensors with their gradient and Adam moments (the ADAM op's inputs), and every
        // parameter gradient for zeroing: one segment table, chunked.
        int nseg = 0;
        for (int i = 0; i < g->n_tensors; i++) nseg += g->tensors[i].kind == AVGEN_T_PGRAD;
        AdamSeg *hs = (AdamSeg *)calloc((size_t)nseg + 1, sizeof(AdamSeg));
        if (!hs) goto fail;
        int ns = 0;
        for (int i = 0; i < g->n_tensors; i++) {
            const avgen_tensor_desc *t = &g->tensors[i];
            if (t->kind != AVGEN_T_PGRAD || t->param < 0) continue;
            AdamSeg s;
            memset(&s, 0, sizeof s);
            s.g = (float *)dptr(c, i), s.w = (float *)dptr(c, t->param), s.n = t->bytes / 4;
            s.head = g->tensors[t->param].group == AVGEN_GROUP_HEAD;
            for (int j = 0; j < g->n_tensors; j++) {
                const avgen_tensor_desc *u = &g->tensors[j];
                if (u->kind != AVGEN_T_OPTSTATE || u->param != t->param) continue;
                if (!s.m) s.m = (float *)dptr(c, j);
                else s.v = (float *)dptr(c, j);
            }
            hs[ns++] = s;
        }
        long long nchunks = 0;
        for (int i = 0; i < ns; i++) nchunks += (hs[i].n + kAdamChunk - 1) / kAdamChunk;
        int2 *hc = (int2 *)calloc((size_t)nchunks + 1, sizeof(int2));
        if (!hc) {
            free(hs);
            goto fail;
        }
        long long at = 0;
        for (int i = 0; i < ns; i++)
            for (long long e = 0; e < hs[i].n; e += kAdamChunk) hc[at++] = make_int2(i, (int)e);
        d->n_segs = ns, d->n_chunks = (int)nchunks;
        bool ok = ck(d, cudaMalloc((void **)&d->segs, sizeof(AdamSeg) * (ns + 1)), "device memory") &&
                  ck(d, cudaMalloc((void **)&d->chunks, sizeof(int2) * (nchunks + 1)), "device memory") &&
                  ck(d, cudaMemcpy(d->segs, hs, sizeof(AdamSeg) * ns, cudaMemcpyHostToDevice), "upload") &&
                  ck(d, cudaMemcpy(d->chunks, hc, sizeof(int2) * nchunks, cudaMemcpyHostToDevice), "upload") &&
                  ck(d, cudaMalloc((void **)&d->scal_dev, sizeof(AdamScalars)), "device memory") &&
                  ck(d, cudaMallocHost((void **)&d->scal_host, sizeof(AdamScalars)), "pinned host memory") &&
                  ck(d, cudaEventCreate(&d->scal_ev), "event") &&
                  ck(d, cudaMalloc((void **)&d->gn_part, sizeof(double) * (nchunks + 1)), "device memory");
        // Segments without both moments (inference graphs) must not reach the Adam kernel.
        for (int i = 0; i < ns && ok; i++)
            if (!hs[i].m || !hs[i].v) {
                bool any_opt = false;
                for (int j = 0; j < g->n_ops; j++) any_opt = any_opt || g->ops[j].kind == AVGEN_OP_KIND_ADAM;
                if (any_opt) set_fail(d, "a trainable tensor has no Adam moments in this graph"), ok = false;
            }
        free(hs);
        free(hc);
        if (!ok) goto fail;
    }
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++) {
        if (a == AVGEN_ARENA_FROZEN && d->frozen_shared) continue;
        if (a == AVGEN_ARENA_ACT) {  // zeros, as the host's holds before a step (nothing runs there before attach),
            // without moving them (tens of GiB at ViT-B/16's largest batches); repacked, the host's layout does not
            // apply anyway (on d->s: the default stream's work is not ordered before it)
            if (!ck(d, cudaMemsetAsync(d->arena[a], 0, d->arena_bytes[a], d->s), "clearing the activation arena")) goto fail;
            continue;
        }
        if (!ck(d, cudaMemcpy(d->arena[a], c->arena[a], d->arena_bytes[a], cudaMemcpyHostToDevice), "upload of an arena"))
            goto fail;
    }
    // cudaMemcpy from pageable memory may return before the device has the data, and d->s does not wait for
    // the legacy stream: everything uploaded and cleared before the first kernel
    if (!ck(d, cudaDeviceSynchronize(), "upload of the arenas")) goto fail;
    if (d->frozen16 && !d->frozen_shared) {  // the bf16 copy of the frozen weights (bf16 GEMM operands)
        const long long n = (long long)(d->arena_bytes[AVGEN_ARENA_FROZEN] / 4);
        launch(d, k_to_bf16, GRID4(n), (const float *)d->arena[AVGEN_ARENA_FROZEN], d->frozen16, n);
        if (!ck(d, cudaStreamSynchronize(d->s), "the bf16 copy of the frozen weights") || d->failed) goto fail;
    }
    return 0;
fail:
    snprintf(err, errlen, "%s", d->why[0] ? d->why : "the CUDA backend could not start");
    rt_cuda_detach(c);
    return 1;
}

extern "C" int rt_cuda_sync(avgen_ctx *c, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d) return fail_out(err, errlen, "the CUDA backend is not attached");
    ck(d, cudaStreamSynchronize(d->s), "the step");
    if (d->cs) ck(d, cudaStreamSynchronize(d->cs), "the next batch's upload");
    if (d->failed) {
        snprintf(err, errlen, "%s", d->why);
        return 1;
    }
    return 0;
}

extern "C" int rt_cuda_upload(avgen_ctx *c, int arena, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d) return fail_out(err, errlen, "the CUDA backend is not attached");
    if (arena == AVGEN_ARENA_FROZEN && d->frozen_shared) return rt_cuda_sync(c, err, errlen);  // the owner's to change
    if (arena == AVGEN_ARENA_ACT && d->act_off)
        return fail_out(err, errlen, "the activation arena is repacked on the device: the host's layout cannot be uploaded");
    ck(d, cudaMemcpyAsync(d->arena[arena], c->arena[arena], d->arena_bytes[arena], cudaMemcpyHostToDevice, d->s), "upload");
    if (arena == AVGEN_ARENA_FROZEN && d->frozen16) {  // the bf16 copy of the frozen weights (bf16 GEMM operands)
        const long long n = (long long)(d->arena_bytes[arena] / 4);
        launch(d, k_to_bf16, GRID4(n), (const float *)d->arena[arena], d->frozen16, n);
    }
    if (arena == AVGEN_ARENA_INPUT && c->frames_f32 && d->frames_f32) {
        const size_t n = frames_bytes(c);
        ck(d, cudaMemcpyAsync(d->frames_f32, c->frames_f32, n, cudaMemcpyHostToDevice, d->s), "upload of the frames");
    }
    return rt_cuda_sync(c, err, errlen);
}

// rt_cuda_host_alloc's page-locked blocks, so that rt_cuda_host_free knows them from its malloc fallback's.
static pthread_mutex_t host_mu = PTHREAD_MUTEX_INITIALIZER;
static void *host_blocks[1024];
static int n_host_blocks;

extern "C" void *rt_cuda_host_alloc(size_t bytes) {
    void *p = NULL;
    pthread_mutex_lock(&host_mu);
    // portable: page-locked for every device's context, whichever is current now
    static int noted;
    cudaError_t e = cudaErrorMemoryAllocation;
    if (n_host_blocks < (int)(sizeof host_blocks / sizeof host_blocks[0]) &&
        (e = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable)) == cudaSuccess) {
        host_blocks[n_host_blocks++] = p;
    } else {
        cudaGetLastError(), p = NULL;
        if (!noted++)  // slower uploads, the same results: said once
            fprintf(stderr, "note: no page-locked host memory for a %.1f MiB buffer (%s): ordinary memory, slower uploads\n",
                    (double)bytes / 1048576.0, cudaGetErrorString(e));
    }
    pthread_mutex_unlock(&host_mu);
    return p ? p : malloc(bytes ? bytes : 1);
}

extern "C" void rt_cuda_host_free(void *p) {
    if (!p) return;
    pthread_mutex_lock(&host_mu);
    int i = 0;
    while (i < n_host_blocks && host_blocks[i] != p) i++;
    const bool pinned = i < n_host_blocks;
    if (pinned) host_blocks[i] = host_blocks[--n_host_blocks];
    pthread_mutex_unlock(&host_mu);
    if (pinned) cudaFreeHost(p);
    else free(p);
}

extern "C" int rt_cuda_upload_tensor(avgen_ctx *c, int t, const void *src, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d) return fail_out(err, errlen, "the CUDA backend is not attached");
    const avgen_tensor_desc *td = &c->g->tensors[t];
    if (td->arena != AVGEN_ARENA_INPUT) return fail_out(err, errlen, "only inputs are uploaded one by one (a bug in avgen)");
    if (!ck(d, cudaMemcpyAsync(dptr(c, t), src, (size_t)td->bytes, cudaMemcpyHostToDevice, d->s), "upload of an input"))
        return fail_out(err, errlen, d->why);
    return 0;
}

extern "C" int rt_cuda_can_stage(const avgen_ctx *c) {
    const Dev *d = DEV(c);
    return d && d->stage;
}

// (an error of the step running beside the copy, sticky, may show at these calls first)
static const char *const kStaging = "the step, or the next batch's upload beside it";

extern "C" int rt_cuda_stage_input(avgen_ctx *c, int t, const void *src, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d || !d->stage) return fail_out(err, errlen, "this context has no staging for the next batch (a bug in avgen)");
    const avgen_tensor_desc *td = &c->g->tensors[t];
    if (td->arena != AVGEN_ARENA_INPUT) return fail_out(err, errlen, "only inputs are staged (a bug in avgen)");
    // the first tensor of a batch waits until the staging's last batch has been taken (a wait for an event never
    // recorded is none)
    if (!d->n_staged && !ck(d, cudaStreamWaitEvent(d->cs, d->ev_taken, 0), kStaging))
        return fail_out(err, errlen, d->why);
    if (!ck(d, cudaMemcpyAsync(d->stage + td->offset, src, (size_t)td->bytes, cudaMemcpyHostToDevice, d->cs),
            kStaging) ||
        !ck(d, cudaEventRecord(d->ev_staged, d->cs), kStaging))
        return fail_out(err, errlen, d->why);
    if (!d->staged[t]) d->staged[t] = 1, d->n_staged++;
    return 0;
}

extern "C" void rt_cuda_drop_staged(avgen_ctx *c) {
    Dev *d = DEV(c);
    if (!d || !d->staged) return;
    memset(d->staged, 0, (size_t)c->g->n_tensors);
    d->n_staged = 0;
}

extern "C" int rt_cuda_take_inputs(avgen_ctx *c, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d) return fail_out(err, errlen, "the CUDA backend is not attached");
    if (!d->n_staged) return 0;
    bool ok = ck(d, cudaStreamWaitEvent(d->s, d->ev_staged, 0), "the batch's upload");
    for (int t = 0; t < c->g->n_tensors && ok; t++) {
        if (!d->staged[t]) continue;
        const avgen_tensor_desc *td = &c->g->tensors[t];
        ok = ck(d, cudaMemcpyAsync(dptr(c, t), d->stage + td->offset, (size_t)td->bytes, cudaMemcpyDeviceToDevice, d->s),
                "the batch's inputs into place");
    }
    rt_cuda_drop_staged(c);
    if (!ok || !ck(d, cudaEventRecord(d->ev_taken, d->s), "the batch's inputs into place")) return fail_out(err, errlen, d->why);
    return 0;
}

extern "C" int rt_cuda_download(avgen_ctx *c, int arena, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d) return fail_out(err, errlen, "the CUDA backend is not attached");
    if (arena == AVGEN_ARENA_ACT && d->act_off)
        return fail_out(err, errlen, "the activation arena is repacked on the device: download tensors one by one");
    ck(d, cudaMemcpyAsync(c->arena[arena], d->arena[arena], d->arena_bytes[arena], cudaMemcpyDeviceToHost, d->s), "download");
    return rt_cuda_sync(c, err, errlen);
}

extern "C" int rt_cuda_download_tensor(avgen_ctx *c, int tensor, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d) return fail_out(err, errlen, "the CUDA backend is not attached");
    const avgen_tensor_desc *t = &c->g->tensors[tensor];
    if (is16(d, tensor) || virt(d, tensor)) {  // refused, but after the stream's work as any download (callers rely on it)
        char e2[64];
        rt_cuda_sync(c, e2, sizeof e2);
    }
    if (is16(d, tensor)) {
        snprintf(err, errlen, "%s is stored as bf16 on the device (AVGEN_BF16_OPERANDS=1) and cannot be downloaded", t->name);
        return 1;
    }
    if (virt(d, tensor)) {
        snprintf(err, errlen, "%s is not stored on the device (applied on load by its readers; %s keeps it)", t->name,
                 c->g->ops[d->vwriter[tensor]].kind == AVGEN_OP_KIND_BATCHNORM ? "AVGEN_FUSE_BN=0" : "AVGEN_FUSE_LATENT=0");
        return 1;
    }
    ck(d, cudaMemcpyAsync(rt_ptr(c, tensor), dptr(c, tensor), (size_t)t->bytes, cudaMemcpyDeviceToHost, d->s), "download");
    return rt_cuda_sync(c, err, errlen);
}

extern "C" void rt_cuda_detach(avgen_ctx *c) {
    Dev *d = DEV(c);
    if (!d) return;
    if (d->s) cudaStreamSynchronize(d->s);
    if (d->cs) cudaStreamSynchronize(d->cs);
    for (int i = 0; i < 4; i++)
        if (d->part_exec[i]) cudaGraphExecDestroy(d->part_exec[i]);
    for (int i = 0; i < d->n_plans; i++) {
        lt.layout_destroy(d->plans[i].la), lt.layout_destroy(d->plans[i].lb), lt.layout_destroy(d->plans[i].lc);
        lt.desc_destroy(d->plans[i].desc);
    }
    free(d->plans);
    if (d->lt) lt.destroy(d->lt);
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++)
        if (!(a == AVGEN_ARENA_FROZEN && d->frozen_shared)) {
#ifdef AVGEN_EMU_TRACE
            avgen_emu::trace::arena_gone(d->arena[a]);
#endif
            cudaFree(d->arena[a]);
        }
#ifdef AVGEN_EMU_TRACE
    if (!d->frozen_shared) avgen_emu::trace::arena_gone(d->frozen16);
    if (d->train16) avgen_emu::trace::arena_gone(d->train16);
#endif
    cudaFree(d->frames_f32);
    cudaFree(d->stage);
    free(d->staged);
    if (d->ev_staged) cudaEventDestroy(d->ev_staged);
    if (d->ev_taken) cudaEventDestroy(d->ev_taken);
    if (d->cs) cudaStreamDestroy(d->cs);
    cudaFree(d->ws);
    cudaFree(d->scratch);
    if (!d->frozen_shared) cudaFree(d->frozen16);
    cudaFree(d->train16);
    free(d->w16_t);
    free(d->ln_res);
    free(d->lr_fused);
    free(d->lb);
    free(d->carry_base), free(d->carry_off), free(d->carry_src), free(d->carry_ready);
    free(d->latln);
    free(d->t16);
    free(d->vwriter);
    free(d->act_off);
    cudaFree(d->segs);
    cudaFree(d->chunks);
    cudaFree(d->scal_dev);
    cudaFree(d->gn_part);
    if (d->scal_host) cudaFreeHost(d->scal_host);
    if (d->scal_ev) cudaEventDestroy(d->scal_ev);
    for (int i = 0; i < d->cap_kev; i++) cudaEventDestroy(d->kev[i].a), cudaEventDestroy(d->kev[i].b);
    free(d->kev);
    if (d->ev) {
        for (int i = 0; i < 2 * c->g->n_ops; i++) cudaEventDestroy(d->ev[i]);
        free(d->ev);
    }
    if (d->s) cudaStreamDestroy(d->s);
    if (d->lib) cudaLibraryUnload(d->lib);
    rt_cubin_free(&d->cubin);
    free(d);
    c->dev = NULL;
}

extern "C" void rt_cuda_op(avgen_ctx *c, const avgen_graph *g, int op) {
    Dev *d = DEV(c);
    if (d->failed) return;
    if (d->profiling) cudaEventRecord(d->ev[2 * op], d->s);
#ifdef AVGEN_EMU_TRACE
    opcheck_begin(c, g, op);
#endif
    run_op(c, g, op);
#ifdef AVGEN_EMU_TRACE
    avgen_emu::trace::op_end();
#endif
    if (d->profiling) cudaEventRecord(d->ev[2 * op + 1], d->s);
}

extern "C" void rt_cuda_zero_grads(avgen_ctx *c) {
    Dev *d = DEV(c);
    if (d->failed || !d->n_chunks) return;
    launch(d, k_zero_grads, dim3(d->n_chunks), dim3(256), 0, d->segs, d->chunks);
}

extern "C" int rt_cuda_grad_sumsq(avgen_ctx *c, double *out, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d) return fail_out(err, errlen, "the CUDA backend is not attached");
    *out = 0;
    if (!d->n_chunks) return rt_cuda_sync(c, err, errlen);
    launch(d, k_grad_sumsq, dim3(d->n_chunks), dim3(256), 0, d->segs, d->chunks, d->gn_part);
    launch(d, k_sum_d, dim3(1), dim3(1024), 0, (const double *)d->gn_part, (long long)d->n_chunks, d->gn_part + d->n_chunks);
    ck(d, cudaMemcpyAsync(out, d->gn_part + d->n_chunks, sizeof(double), cudaMemcpyDeviceToHost, d->s), "download");
    return rt_cuda_sync(c, err, errlen);
}

extern "C" const char *rt_cuda_device_name(const avgen_ctx *c) { return c->dev ? DEV(c)->name : "no device"; }

extern "C" const char *rt_cuda_kernels_info(const avgen_ctx *c, int *mode, double *seconds, int *cache_hit) {
    const Dev *d = c->dev ? DEV(c) : NULL;
    if (mode) *mode = d ? d->kernels_mode : RT_KERNELS_NVCC;
    if (seconds) *seconds = d ? d->kernel_s : 0;
    if (cache_hit) *cache_hit = d ? d->kernel_hit : 0;
    return d ? d->kinfo : "the CUDA backend is not attached";
}

static void run_phase_fn(avgen_ctx *c, rt_cuda_phase_fn f, int phase) {
    if (f) {
        f(c);
        return;
    }
    for (int i = 0; i < c->g->n_ops; i++)
        if (c->g->ops[i].phase == phase) rt_cuda_op(c, c->g, i);
}

static void one_step(avgen_ctx *c, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd) {
    rt_cuda_zero_grads(c);
    run_phase_fn(c, fwd, AVGEN_PH_FORWARD);
    run_phase_fn(c, bwd, AVGEN_PH_BACKWARD);
    run_phase_fn(c, upd, AVGEN_PH_UPDATE);
}

// A training step's parts (rt_cuda.h): kPartZero, the gradients zeroed then the forward and backward phases; kPart,
// the same without the zeroing (the later batches of an accumulation); kPartUpdate, the update phase; and an
// evaluation's forward phase, kPartForward.
enum { kPartZero, kPart, kPartUpdate, kPartForward };
static void run_part(avgen_ctx *c, int part, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd) {
    Dev *d = DEV(c);
    if (!d || d->failed) return;
    auto body = [&]() {
        if (part == kPartUpdate) {
            run_phase_fn(c, upd, AVGEN_PH_UPDATE);
            return;
        }
        if (part == kPartForward) {
            run_phase_fn(c, fwd, AVGEN_PH_FORWARD);
            return;
        }
        if (part == kPartZero) rt_cuda_zero_grads(c);
        run_phase_fn(c, fwd, AVGEN_PH_FORWARD);
        run_phase_fn(c, bwd, AVGEN_PH_BACKWARD);
    };
    // the first call runs eagerly: cuBLASLt's algorithms (and any timing of them) are chosen then, outside a capture.
    // A replayed update sets its step's scalars on the host first, as its one ADAM op does; an update of any other
    // form runs eagerly (a graph's copy node would give every ADAM op the last one's scalars).
    if (!d->use_graphs || (part == kPartUpdate && !d->update_graphs) || d->part_calls[part]++ == 0) {
        body();
        return;
    }
    if (!d->part_exec[part]) {
        // captured: the ops' host code runs now (the update's scalars for this step), their launches are recorded;
        // the last copy of the scalars must be done before, since no wait is allowed during the capture
        if (d->scal_pending) {
            if (!ck(d, cudaEventSynchronize(d->scal_ev), "the optimizer scalars' copy")) return;
            d->scal_pending = 0;
        }
        const long long step_before = c->adam_step;
        cudaGraph_t graph = NULL;
        cudaError_t e = cudaStreamBeginCapture(d->s, cudaStreamCaptureModeThreadLocal);
        if (e == cudaSuccess) {
            body();
            e = cudaStreamEndCapture(d->s, &graph);
        }
        if (e == cudaSuccess && !d->failed) e = cudaGraphInstantiate(&d->part_exec[part], graph, 0);
        if (graph) cudaGraphDestroy(graph);
        if (d->failed) {  // an op failed while captured (one that a capture does not allow, say): said, with the way out
            cudaGetLastError();
            const size_t at = strlen(d->why);
            snprintf(d->why + at, sizeof d->why - at, " (while capturing a step's work as a CUDA graph; AVGEN_CUDA_GRAPH=0 "
                                                      "runs the steps without graphs)");
            return;
        }
        if (e != cudaSuccess) {  // the capture or the graph itself: said, and the steps go on without graphs
            cudaGetLastError();
            d->part_exec[part] = NULL;
            fprintf(stderr, "note: a step's work could not be captured as a CUDA graph (%s): the steps run without graphs\n",
                    cudaGetErrorString(e));
            d->use_graphs = 0;
            c->adam_step = step_before;
            body();
            return;
        }
    } else if (part == kPartUpdate) {
        adam_scalars(c, d, false);  // replayed: the ADAM op's host part first (it waits for the last copy of the scalars)
    }
    if (ck(d, cudaGraphLaunch(d->part_exec[part], d->s), "launch of a training step's CUDA graph")) d->graph_launches++;
    if (part == kPartUpdate) scal_sent(d);
}

extern "C" void rt_cuda_train_fwd_bwd(avgen_ctx *c, int zero_grads, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd) {
    run_part(c, zero_grads ? kPartZero : kPart, fwd, bwd, NULL);
}

extern "C" void rt_cuda_train_update(avgen_ctx *c, rt_cuda_phase_fn upd) { run_part(c, kPartUpdate, NULL, NULL, upd); }

extern "C" void rt_cuda_forward(avgen_ctx *c, rt_cuda_phase_fn fwd) { run_part(c, kPartForward, fwd, NULL, NULL); }

extern "C" long long rt_cuda_graph_launches(const avgen_ctx *c) { return c->dev ? DEV(c)->graph_launches : 0; }

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median_sorted(const double *v, int n) { return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]); }

extern "C" int rt_cuda_bench(avgen_ctx *c, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd,
                             rt_cuda_bench_result *r, char *err, size_t errlen) {
    Dev *d = DEV(c);
    if (!d) return fail_out(err, errlen, "the CUDA backend is not attached");
    const int warmup = r->warmup >= 0 ? r->warmup : 5, steps = r->steps > 0 ? r->steps : 20;
    r->warmup = warmup, r->steps = steps;  // (the counts run, for the report)
    struct Events {  // destroyed on every return
        cudaEvent_t a = NULL, b = NULL;
        ~Events() {
            if (a) cudaEventDestroy(a);
            if (b) cudaEventDestroy(b);
        }
    } ev2;
    cudaEventCreate(&ev2.a);
    cudaEventCreate(&ev2.b);
    cudaEvent_t &e0 = ev2.a, &e1 = ev2.b;
    // The step as training runs it (run_part): its parts eager at their first call (the cold step: cuBLASLt chooses
    // its algorithms), captured as CUDA graphs at the second, replayed from then on (AVGEN_CUDA_GRAPH=0: eager).
    auto train_step = [&]() {
        rt_cuda_train_fwd_bwd(c, 1, fwd, bwd);
        rt_cuda_train_update(c, upd);
    };
    cudaEventRecord(e0, d->s);
    train_step();
    cudaEventRecord(e1, d->s);
    if (rt_cuda_sync(c, err, errlen)) return 1;
    float ms = 0;
    cudaEventElapsedTime(&ms, e0, e1);
    r->first_step_ms = ms;
    {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        train_step();  // captured (host time) and launched
        clock_gettime(CLOCK_MONOTONIC, &t1);
        r->graph_capture_ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (rt_cuda_sync(c, err, errlen)) return 1;
    }
    const int use_graph = d->use_graphs && d->part_exec[kPartZero] && d->part_exec[kPartUpdate];
    double *times = (double *)calloc((size_t)steps, sizeof(double));
    if (!times) return fail_out(err, errlen, "out of host memory");
    for (int it = 0; it < warmup + steps; it++) {
        cudaEventRecord(e0, d->s);
        train_step();
        cudaEventRecord(e1, d->s);
        if (rt_cuda_sync(c, err, errlen)) {
            free(times);
            return 1;
        }
        if (it >= warmup) {
            cudaEventElapsedTime(&ms, e0, e1);
            times[it - warmup] = ms;
        }
    }
    // the loss of the last timed step: the same bits with and without graphs (the runs' parameters are updated
    // by every step, with each step's optimizer scalars)
    {
        const int lt = rt_find(c->g, "loss");
        r->last_loss = NAN;
        if (lt >= 0 && !virt(d, lt) && !is16(d, lt))
            ck(d, cudaMemcpy(&r->last_loss, dptr(c, lt), sizeof(float), cudaMemcpyDeviceToHost), "download of the loss");
        if (rt_cuda_sync(c, err, errlen)) {
            free(times);
            return 1;
        }
    }
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    double sum = 0;
    for (int i = 0; i < steps; i++) sum += times[i];
    r->median_ms = median_sorted(times, steps);
    r->mean_ms = sum / steps, r->min_ms = times[0], r->max_ms = times[steps - 1];
    r->graph = use_graph;
    // Steps as the training loop runs them (rt_train): with the staging, the next batch goes up on the second
    // stream while a step runs; plainly, each batch goes up on the step's stream before it. Each step's loss and
    // gradient norm come back (the host waits for them). The batch: the host input arena's values (the inputs
    // the step ran on) in page-locked memory, so the parameters move as in the steps above.
    r->input_bytes = (double)c->g->arena_bytes[AVGEN_ARENA_INPUT];
    r->loop_ms = r->loop_plain_ms = -1;
    {
        const size_t nb = (size_t)c->g->arena_bytes[AVGEN_ARENA_INPUT];
        unsigned char *hb = (unsigned char *)rt_cuda_host_alloc(nb ? nb : 1);
        if (!hb) {
            free(times);
            return fail_out(err, errlen, "out of host memory");
        }
        memcpy(hb, c->arena[AVGEN_ARENA_INPUT], nb);
        const int lt = rt_find(c->g, "loss");
        double gn = 0;
        for (int staged = d->stage ? 1 : 0, rc = 0; staged >= 0 && !rc; staged--) {
            auto put = [&]() {  // the batch: staged (taken by the next step), or uploaded now
                for (int t = 0; t < c->g->n_tensors && !rc; t++)
                    if (c->g->tensors[t].arena == AVGEN_ARENA_INPUT && c->g->tensors[t].bytes > 0)
                        rc = staged ? rt_cuda_stage_input(c, t, hb + c->g->tensors[t].offset, err, errlen)
                                    : rt_cuda_upload_tensor(c, t, hb + c->g->tensors[t].offset, err, errlen);
            };
            if (staged) put();
            for (int it = 0; it < warmup + steps && !rc; it++) {
                struct timespec t0, t1;
                clock_gettime(CLOCK_MONOTONIC, &t0);
                if (staged) rc = rt_cuda_take_inputs(c, err, errlen);
                else put();
                if (rc) break;
                rt_cuda_train_fwd_bwd(c, 1, fwd, bwd);
                if (staged) put();  // the next batch, while this step runs
                rc = lt >= 0 && !virt(d, lt) && !is16(d, lt) ? rt_cuda_download_tensor(c, lt, err, errlen) : rt_cuda_sync(c, err, errlen);
                if (rc || (rc = rt_cuda_grad_sumsq(c, &gn, err, errlen))) break;
                rt_cuda_train_update(c, upd);
                clock_gettime(CLOCK_MONOTONIC, &t1);
                if (it >= warmup) times[it - warmup] = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
            }
            // the last update, and the batch staged after the last step (not taken): no copy reads hb any more
            char e2[64];
            if (!rc) rc = rt_cuda_sync(c, err, errlen);
            else rt_cuda_sync(c, e2, sizeof e2);
            rt_cuda_drop_staged(c);
            if (!rc) {
                qsort(times, (size_t)steps, sizeof(double), cmp_double);
                (staged ? r->loop_ms : r->loop_plain_ms) = median_sorted(times, steps);
            }
            if (rc) {
                rt_cuda_host_free(hb);
                free(times);
                return 1;
            }
        }
        rt_cuda_host_free(hb);
    }
    free(times);
    // Profiled eager step: events around every op.
    const int n = c->g->n_ops;
    if (!d->ev) {
        d->ev = (cudaEvent_t *)calloc((size_t)2 * n, sizeof(cudaEvent_t));
        if (!d->ev) return fail_out(err, errlen, "out of host memory");
        for (int i = 0; i < 2 * n; i++) cudaEventCreate(&d->ev[i]);
    }
    d->profiling = 1;
    for (int i = 0; i < n; i++) cudaEventRecord(d->ev[2 * i], d->s), cudaEventRecord(d->ev[2 * i + 1], d->s);
    one_step(c, NULL, NULL, NULL);
    d->profiling = 0;
    if (rt_cuda_sync(c, err, errlen)) return 1;
    memset(r->family_ms, 0, sizeof r->family_ms);
    free(r->op_ms);
    r->op_ms = (double *)calloc((size_t)n + 1, sizeof(double));
    for (int i = 0; i < n; i++) {
        float t = 0;
        cudaEventElapsedTime(&t, d->ev[2 * i], d->ev[2 * i + 1]);
        const int kind = c->g->ops[i].kind;
        if (kind < 64) r->family_ms[kind] += t;
        if (r->op_ms) r->op_ms[i] = t;
    }
    // Profiled eager step: events around every kernel launch and cuBLASLt matmul.
    // (slots: the list's kernels, cuBLASLt, then each shape's instances)
    static_assert(kNumKernels + 1 + AVGEN_CUDA_MAX_SHAPES * kShapeKernels <= RT_CUDA_KERNEL_SLOTS,
                  "RT_CUDA_KERNEL_SLOTS is too small");
    r->n_kernel_slots = kNumKernels + 1 + d->n_shapes * kShapeKernels;
    for (int i = 0; i < r->n_kernel_slots; i++) {
        if (i <= kNumKernels) {
            snprintf(r->kernel_name[i], sizeof r->kernel_name[i], "%s", i < kNumKernels ? kKernelNames[i] : "cuBLASLt matmul");
        } else {
            const int s = (i - kNumKernels - 1) / kShapeKernels, sk = (i - kNumKernels - 1) % kShapeKernels;
            const int t[3] = {d->shapes[s].hd, d->shapes[s].n, d->shapes[s].h};
            char e[64];
            rt_kernels_shape_expr(sk, t, e, sizeof e);
            snprintf(r->kernel_name[i], sizeof r->kernel_name[i], "%s", e + 1);  // without the "&"
        }
        r->kernel_calls[i] = 0, r->kernel_ms[i] = 0;
    }
    d->kprof = 1, d->n_kev = 0;
    one_step(c, NULL, NULL, NULL);
    d->kprof = 0;
    if (rt_cuda_sync(c, err, errlen)) return 1;
    for (int i = 0; i < d->n_kev; i++) {
        float t = 0;
        cudaEventElapsedTime(&t, d->kev[i].a, d->kev[i].b);
        r->kernel_calls[d->kev[i].id]++, r->kernel_ms[d->kev[i].id] += t;
    }
    size_t fr = 0, tot = 0;
    cudaMemGetInfo(&fr, &tot);
    r->device_used_bytes = d->free_before > fr ? d->free_before - fr : 0;
    r->arena_bytes = 0;
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++) r->arena_bytes += d->arena_bytes[a];
    r->scratch_bytes = d->scratch_bytes, r->workspace_bytes = d->ws_bytes, r->n_gemm_plans = d->n_plans;
    r->stage_bytes = d->stage ? (size_t)c->g->arena_bytes[AVGEN_ARENA_INPUT] : 0;
    r->bf16_weights_bytes = (d->frozen16 && !d->frozen_shared ? d->arena_bytes[AVGEN_ARENA_FROZEN] / 2 : 0) +
                            (d->train16 ? d->arena_bytes[AVGEN_ARENA_TRAIN] / 2 : 0);
    r->n_bias_fused = d->n_epi_fused, r->n_bias_kernel = d->n_epi_kernel, r->n_bias_bf16 = d->n_epi_bias16;
    r->n_gemm_tuned = d->n_tuned, r->n_gemm_tune_changed = d->n_tune_changed, r->gemm_tune_ms = d->tune_ms;
    r->n_bf16_tensors = 0;
    for (int i = 0; d->t16 && i < c->g->n_tensors; i++) r->n_bf16_tensors += d->t16[i] == RT_CUDA_T_BF16;
    r->n_bn_fused = d->n_bn_fused;
    r->n_lat_fused = d->n_lat_fused;
    r->n_latbwd_pairs = 0;
    for (int j = 0; d->lb && j < c->g->n_ops; j++) r->n_latbwd_pairs += d->lb[j].first >= 0;
    r->n_dy16_carries = d->n_dy16, r->n_latdots_carries = d->n_latdots, r->n_latln_fused = d->n_latln;
    r->n_attn_literal = d->n_attn_literal;
    r->attention_fused = d->attn_fused;
    return 0;
}
