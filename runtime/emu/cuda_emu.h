// runtime/emu/cuda_emu.h: a CUDA emulator for the tests, on the CPU. The CUDA backend (runtime/rt_cuda.cu,
// kernels runtime/rt_cuda_kernels.cuh) is compiled as host C++ against this header and cuda_emu.cc, which
// implement the CUDA runtime and cuBLASLt calls it makes, so CI checks the backend's host code and every
// kernel against the CPU backend without a GPU (tests/emu_test.sh). It is a checker, not a simulator of
// speed:
//   - a launch runs its blocks one after another; a block's threads are fibers (one stack each) switched
//     at __syncthreads and at every warp-synchronous instruction (shuffles, mma.sync, ldmatrix), so the
//     kernels' own barriers order their shared-memory traffic as on the GPU;
//   - warp-synchronous instructions check that every lane of the warp takes part, at the same instruction: a
//     lane waiting at __syncthreads, at another shuffle, or one that has exited, while the others shuffle, is
//     an error (as on the GPU, where it hangs or is undefined), as are threads of a block at different
//     __syncthreads (by source line) or at one after others of the block exited, __trap, a block of more
//     than 1024 threads and more than 48 KiB of dynamic shared memory for a kernel not opted in to more
//     (cudaFuncSetAttribute, up to an H100's 227 KiB);
//   - AVGEN_EMU_RACECHECK=1 runs each launch twice, blocks and threads in index order and in reverse, from
//     the same memory; different results are a fault (a race, or a read of shared memory never written);
//   - static shared arrays (AVGEN_SHARED) and dynamic shared memory are NaN bytes at each block's start; a
//     vector load or store (vld, vst) at a misaligned address is a fault;
//   - device memory is host memory filled with NaN bytes when allocated (a read of something never written
//     shows), each allocation ending at an inaccessible page (an overrun past its 256-byte rounding faults);
//   - the bf16 instructions (cvt.rn.bf16x2, mma.sync m16n8k16, ldmatrix .trans) follow the PTX ISA's
//     fragment layouts; MMA products are summed in double and rounded once;
//   - cuBLASLt matmuls are computed in double from operands rounded as the compute type says (bf16 for
//     CUBLAS_COMPUTE_32F_FAST_16BF, tf32 for _FAST_TF32; not with AVGEN_EMU_EXACT_GEMM=1), with the bias
//     epilogue (bias fp32 or bf16), fp32 or bf16 results;
//   - streams run each operation when it is issued (but see below); a stream being captured records them into the graph,
//     which cudaGraphLaunch replays; events read a host clock. During a capture, what CUDA does not allow
//     then (allocating, freeing, synchronising, synchronous copies and sets, an asynchronous copy from or to
//     host memory that cudaMallocHost did not give) fails and invalidates the capture, whose end then fails.
//     An asynchronous copy from the host runs late: at the next operation of a stream, synchronisation,
//     synchronous copy or free, so a source changed or handed back before then shows (tests/train_cuda_test.sh
//     with the loader's AVGEN_LOADER_SCRIBBLE=1).
//     A wait for an event (cudaStreamWaitEvent) not yet reached queues the stream's later work until the host
//     waits for it; AVGEN_EMU_LAG_STREAM=N[,N...] makes the N-th stream created queue all its work so (a
//     stream that reads or overwrites another's data without waiting for it shows; docs/emulator.md).
// NVRTC-built kernels are not emulated (the launch table is this build's copies).
#ifndef AVGEN_CUDA_EMU_H
#define AVGEN_CUDA_EMU_H
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <memory>

namespace avgen_emu {
// The running CUDA thread: its index, lane and warp, and which of the two exchange buffers its next
// warp-synchronous instruction uses.
struct Thread {
    uint3 tid;
    int lane, warp, parity;
};
extern Thread *cur;
extern uint3 block_idx;
extern dim3 block_dim, grid_dim;
extern unsigned char *dyn_smem;

// Runs body as the kernel `name` on grid x block threads (smem bytes of dynamic shared memory) in stream s
// (or records it while s is captured). cudaSuccess, or the launch's configuration error (more than 48 KiB of
// dynamic shared memory unless cudaFuncSetAttribute opted func in to as much); an error inside the kernel is
// sticky (reported by the next synchronisation) and printed once.
cudaError_t launch(const char *name, dim3 grid, dim3 block, size_t smem, cudaStream_t s, std::function<void()> body,
                   const void *func = nullptr);
// Barrier of the block's live threads.
void syncthreads(const char *file, int line);
// Every lane of the warp publishes n <= 32 bytes; returns the warp's 32 slots (32 bytes apart), valid until
// this thread's next call.
// what: the instruction and where it is (a string literal, compared by value), so that lanes at different
// warp-synchronous instructions are a fault
const unsigned char *warp_share(const void *mine, size_t n, const char *what);
[[noreturn]] void trap();
// A static shared array's first use in a block: filled with 0xff bytes (NaN), as shared memory a block has
// not written holds garbage on the GPU.
void shared_touch(void *p, size_t bytes);
// A vector access at an address its size does not divide: a fault (the GPU's misaligned address error).
[[noreturn]] void misaligned(const void *p, size_t bytes);

#ifdef AVGEN_EMU_TRACE
// The tracing build (emu_trace.cc; docs/emulator.md): the kernels are compiled with -fsanitize=thread, whose
// instrumentation calls a hook before every load and store; emu_trace.cc implements the hooks (no ThreadSanitizer
// runtime is linked). These are the scheduler's and the device helpers' calls into it.
namespace trace {
bool on();  // AVGEN_EMU_MEMPROFILE, AVGEN_EMU_RACES or AVGEN_EMU_INITCHECK set
void launch_begin(const char *name, const unsigned char *smem, size_t smem_bytes);
void launch_end();
void block_begin();
void barrier();          // the block's threads released from a __syncthreads
void warp_sync(int w);   // the lanes of warp w released from a warp-synchronous instruction
// At a block's end: false when the block raced or read memory never written (why says where), which the scheduler
// reports as a fault.
bool block_end(char *why, size_t n);
void shared_array(const void *p, size_t bytes);  // a static shared array (AVGEN_SHARED)
// inside an allocation of cudaMalloc (cuda_emu.cc): true, with the allocation's [*lo, *hi); false, with the
// [*lo, *hi) around a that holds none
bool device_range(uintptr_t a, uintptr_t *lo, uintptr_t *hi);
// AVGEN_EMU_INITCHECK: which bytes of device memory have been written, by what the emulator does outside the
// kernels (allocations, copies, sets, cuBLASLt), and whether cuBLASLt reads any that were not (false, or true
// with why said)
void dev_alloc(const void *p, size_t bytes);
void dev_free(const void *p);
void dev_written(const void *p, size_t n);
void dev_copied(void *dst, const void *src, size_t n);
bool dev_unwritten(const void *p, size_t n, char *why, size_t wn);
// AVGEN_EMU_OPCHECK: the backend's arenas and tensors (rt_cuda.cu at attach), and around each op's submission the
// ranges it may touch (its tensors, and those it reaches by design: a tensor applied on load, a fused pair's);
// the emulator carries the op with the work (op_submitted, op_enter: a graph replays it later), and a kernel's or
// cuBLASLt's access of an arena outside them is a fault (op_outside: cuBLASLt's, with why said).
bool opcheck_on();
void arena(const void *p, size_t bytes);
void arena_gone(const void *p);
void tensor(const void *p, size_t bytes, const char *name);
void op_begin(const char *name, const void *const *p, const size_t *n, int count);
void op_end();
std::shared_ptr<const void> op_submitted();
void op_enter(const std::shared_ptr<const void> &ctx);
bool op_outside(const void *p, size_t n, bool store, char *why, size_t wn);
// One load or store of `bytes` at p by the running thread, as one instruction (a vector access, a row of
// ldmatrix) at pc, or (null) where this call returns to; the instrumented element accesses it is made of that
// follow are not counted again.
void vector_access(const void *p, size_t bytes, bool store, const void *pc = nullptr);
// For tests/test_emu_trace.cc: a kernel's counts so far (AVGEN_EMU_MEMPROFILE; false when it has not run), and the
// fault of the last launch (a race, a read of memory never written; "" when none).
struct Counts {
    unsigned long long launches, load_requests, load_sectors, load_bytes, store_requests, store_sectors, store_bytes,
        shared_requests, shared_wavefronts, shared_ideal_wavefronts;
};
bool counts(const char *kernel, Counts *c);
const char *last_fault();
}  // namespace trace
#endif
}  // namespace avgen_emu

// ---------------------------------------------------------------------------- device code as host C++
#undef __shared__
#define __shared__ static
#define __launch_bounds__(...)
#define threadIdx (avgen_emu::cur->tid)
#define blockIdx (avgen_emu::block_idx)
#define blockDim (avgen_emu::block_dim)
#define gridDim (avgen_emu::grid_dim)
#define AVGEN_DYNAMIC_SMEM(T, name) T *const name = (T *)avgen_emu::dyn_smem
#define AVGEN_SHARED(T, name, n) \
    static T name[n];            \
    avgen_emu::shared_touch(name, sizeof name)
#ifdef AVGEN_EMU_TRACE
#define AVGEN_EMU_TRACE_VECTOR(p, bytes, store) avgen_emu::trace::vector_access(p, bytes, store)
#else
#define AVGEN_EMU_TRACE_VECTOR(p, bytes, store) ((void)0)
#endif
#define AVGEN_VECTOR_ACCESS(p, bytes, store)                                                                           \
    do {                                                                                                               \
        if ((uintptr_t)(p) % (bytes)) avgen_emu::misaligned(p, bytes);                                                 \
        AVGEN_EMU_TRACE_VECTOR(p, bytes, store);                                                                       \
    } while (0)

// a macro, so that the emulator knows which __syncthreads (by source line) each thread waits at
#define __syncthreads() avgen_emu::syncthreads(__FILE__, __LINE__)
[[noreturn]] inline void __trap() { avgen_emu::trap(); }
// a macro, so that the emulator knows which shuffle (by source line) each lane is at
#define AVGEN_EMU_STR2(x) #x
#define AVGEN_EMU_STR(x) AVGEN_EMU_STR2(x)
#define __shfl_xor_sync(...) avgen_emu_shfl_xor("__shfl_xor_sync at " __FILE__ ":" AVGEN_EMU_STR(__LINE__), __VA_ARGS__)
template <class T> inline T avgen_emu_shfl_xor(const char *what, unsigned mask, T v, int lane_mask, int width = 32) {
    (void)mask;
    static_assert(sizeof(T) <= 32, "shuffle of a value wider than a slot");
    const unsigned char *s = avgen_emu::warp_share(&v, sizeof v, what);
    const int lane = avgen_emu::cur->lane, src = lane ^ lane_mask;
    T r;
    memcpy(&r, s + 32 * ((src & ~(width - 1)) == (lane & ~(width - 1)) ? src : lane), sizeof r);
    return r;
}
inline float __expf(float x) { return expf(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
// The device's explicitly rounded operations: one rounding each, never contracted into an FMA (volatile).
#define AVGEN_EMU_RN(name, T, op)                                                                                      \
    inline T name(T a, T b) {                                                                                          \
        volatile T r = a op b;                                                                                         \
        return r;                                                                                                      \
    }
AVGEN_EMU_RN(__dadd_rn, double, +)
AVGEN_EMU_RN(__dsub_rn, double, -)
AVGEN_EMU_RN(__dmul_rn, double, *)
AVGEN_EMU_RN(__fadd_rn, float, +)
AVGEN_EMU_RN(__fsub_rn, float, -)
AVGEN_EMU_RN(__fmul_rn, float, *)
#undef AVGEN_EMU_RN
inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }  // one rounding, as the device's FMA
inline double __fma_rn(double a, double b, double c) { return fma(a, b, c); }
inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
inline float __int_as_float(int i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}

// bf16 as float (the high half of its bits)
inline float avgen_emu_bf(unsigned short h) { return __int_as_float((int)((unsigned)h << 16)); }
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, c += a b. Fragments (PTX ISA, g = lane / 4,
// t = lane % 4): A register i holds row g + 8 (i & 1), columns 2t + 8 (i >> 1) and +1 (low half first);
// B register j holds rows 2t + 8 j and +1 of column g; C element i is row g + 8 (i >> 1), column 2t + (i & 1).
inline void avgen_emu_mma_bf16(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
    const unsigned mine[6] = {a[0], a[1], a[2], a[3], b0, b1};
    const unsigned char *s = avgen_emu::warp_share(mine, sizeof mine, "mma.sync");
    auto reg = [&](int lane, int r) {
        unsigned v;
        memcpy(&v, s + 32 * lane + 4 * r, 4);
        return v;
    };
    auto half = [](unsigned v, int hi) { return avgen_emu_bf((unsigned short)(hi ? v >> 16 : v & 0xffffu)); };
    auto A = [&](int row, int k) { return half(reg((row & 7) * 4 + (k & 7) / 2, (row >> 3) + 2 * (k >> 3)), k & 1); };
    auto B = [&](int k, int col) { return half(reg(col * 4 + (k & 7) / 2, 4 + (k >> 3)), k & 1); };
    const int lane = avgen_emu::cur->lane, g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; i++) {
        const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
        double acc = 0;
        for (int k = 0; k < 16; k++) acc += (double)A(row, k) * (double)B(k, col);
        c[i] = (float)(acc + (double)c[i]);
    }
}
// ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16: lane l gives the address of row l & 7 of matrix l >> 3;
// register i receives, of matrix i, the elements (2t, g) (low half) and (2t + 1, g).
// In the tracing build it is not instrumented (the lanes read each other's rows here): each lane's row is
// recorded as one 16-byte shared-memory load at the kernel's call site, as the GPU reads it.
#ifdef AVGEN_EMU_TRACE
static __attribute__((noinline, no_sanitize_thread))
#else
inline
#endif
void avgen_emu_ldsm_x4_trans(unsigned r[4], const unsigned short *row) {
    if ((uintptr_t)row % 16) avgen_emu::trap();  // ldmatrix needs 16-byte aligned rows
#ifdef AVGEN_EMU_TRACE
    avgen_emu::trace::vector_access(row, 16, false, __builtin_return_address(0));
#endif
    const unsigned char *s = avgen_emu::warp_share(&row, sizeof row, "ldmatrix");
    const int lane = avgen_emu::cur->lane, g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; i++) {
        const unsigned short *r0, *r1;
        memcpy(&r0, s + 32 * (8 * i + 2 * t), sizeof r0);
        memcpy(&r1, s + 32 * (8 * i + 2 * t + 1), sizeof r1);
        r[i] = (unsigned)r0[g] | (unsigned)r1[g] << 16;
    }
}
#endif
