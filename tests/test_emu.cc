// test_emu.cc: the CUDA emulator (runtime/emu) and, on it, the fused attention kernels of
// runtime/rt_cuda_kernels.cuh against a float64 reference that rounds the same operands to bf16 at the same
// points (so the two agree to about 1e-5 and a kernel error of a fraction of a percent shows, which the
// end-to-end bf16 parity of tests/emu_test.sh cannot resolve).
//   emulator: shuffles, __syncthreads with static shared memory, dynamic shared memory (over 48 KiB only once
//   the kernel opted in; NaN again at each block), a shuffle that part
//   of a warp skips, lanes at different shuffles, threads at different __syncthreads or at one after others
//   exited, __trap, a misaligned vector access and (AVGEN_EMU_RACECHECK=1, on for every launch here) a
//   shared-memory race are faults, shared memory another block wrote is NaN, an oversized block is refused, device memory starts as NaN and
//   faults past its end, a captured graph runs on launch only, cuBLASLt matmuls against a direct sum;
//   attention: k_attn_fwd, k_attn_bwd_dq, k_attn_bwd_dkv for head widths 64, 32 and 16 at N = 197, 150, 130, 49 and 7, and
//   their _bf twins from a bf16 qkv (the same bits) into a bf16 dqkv (the fp32 result rounded); their
//   shape-literal instances (the generic kernels' bits; a launch with other shapes traps);
//   k_ln_bwd_cs (LayerNorm backward with the weight and bias gradients' column sums) against k_ln_bwd and
//   float64 sums, at widths 768, 740, 40 and 32, with and without the gate.
#include "emu/cuda_emu.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vector>

#include "rt_cuda.h"
#include "rt_cuda_kernels.cuh"

namespace avgen_emu {
void clear_fault();
}

static int pass, fail;
#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (cond) pass++;                                                                                              \
        else {                                                                                                         \
            fail++;                                                                                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
        }                                                                                                              \
    } while (0)

// Launches f as kernel `name` (func: the kernel, for its shared-memory opt-in) and waits for it.
static cudaError_t run(const char *name, dim3 g, dim3 b, size_t smem, std::function<void()> f, cudaStream_t s = NULL,
                       const void *func = nullptr) {
    const cudaError_t e = avgen_emu::launch(name, g, b, smem, s, std::move(f), func);
    return e != cudaSuccess ? e : cudaDeviceSynchronize();
}

// Launches f as run does and expects the emulator to fault (then forgets the fault); false when it did not.
static bool faults(const char *name, dim3 g, dim3 b, size_t smem, std::function<void()> f, const void *func = nullptr) {
    const bool ok = run(name, g, b, smem, std::move(f), NULL, func) == cudaErrorLaunchFailure;
    avgen_emu::clear_fault();
    return ok;
}

// --------------------------------------------------------------------------------------- emulator
__global__ void t_warp(float *out) { out[blockIdx.x * blockDim.x + threadIdx.x] = warp_sum((float)(threadIdx.x & 31)); }
__global__ void t_block(double *out) {
    const double s = block_sum_d((double)threadIdx.x + 1000.0 * blockIdx.x);
    if (threadIdx.x == 7) out[blockIdx.x] = s;
}
__global__ void t_dyn(float *out, int n) {
    AVGEN_DYNAMIC_SMEM(float, sm);
    sm[threadIdx.x] = (float)threadIdx.x;
    __syncthreads();
    out[threadIdx.x] = sm[(threadIdx.x + 1) % n];  // a neighbour's value: visible only after the barrier
}
__global__ void t_diverge(float *out) {
    if (threadIdx.x < 16) out[threadIdx.x] = warp_sum(1.0f);
}
__global__ void t_trap() {
    if (threadIdx.x == 3) __trap();
}
// half the block at one __syncthreads, half at another (undefined on a GPU: it may hang)
__global__ void t_two_barriers(float *out) {
    if (threadIdx.x < 32) {
        out[threadIdx.x] = 1.0f;
        __syncthreads();
    } else {
        __syncthreads();
        out[threadIdx.x] = 2.0f;
    }
}
// half a warp at one shuffle, half at another (undefined on a GPU)
__global__ void t_two_shuffles(float *out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    else v = __shfl_xor_sync(0xffffffffu, v, 2);
    out[threadIdx.x] = v;
}
// threads that returned early while the others wait at __syncthreads
__global__ void t_exit_barrier(float *out) {
    if (threadIdx.x >= 40) return;
    out[threadIdx.x] = 1.0f;
    __syncthreads();
}
// one __syncthreads in a loop every thread runs as often: not a fault
__global__ void t_loop_barrier(float *out) {
    AVGEN_SHARED(float, sm, 64);
    float v = 0;
    for (int i = 0; i < 4; i++) {
        if ((int)(threadIdx.x >> 5) == i % 2) sm[threadIdx.x] = (float)i;
        __syncthreads();
        v += sm[(threadIdx.x + 32) % 64];
        __syncthreads();
    }
    out[threadIdx.x] = v;
}
__global__ void t_inc(float *x) { x[threadIdx.x] += 1.0f; }
__global__ void t_race(float *out) {
    AVGEN_SHARED(float, sm, 64);
    sm[threadIdx.x] = (float)threadIdx.x;
    out[threadIdx.x] = sm[(threadIdx.x + 1) % 64];  // no barrier: the neighbour may not have written yet
}
__global__ void t_unwritten(float *out) {  // block 0 writes shared memory, every block reads it
    AVGEN_SHARED(float, sm, 32);
    if (blockIdx.x == 0) sm[threadIdx.x] = 1.0f;
    __syncthreads();
    out[blockIdx.x * 32 + threadIdx.x] = sm[threadIdx.x];
}
__global__ void t_misaligned(float *out) { vst(out + 1 + 4 * threadIdx.x, make_float4(1, 2, 3, 4)); }

static void test_emulator() {
    float *w;
    cudaMalloc((void **)&w, sizeof(float) * 128);
    CHECK(isnan(w[0]) && isnan(w[127]), "device memory does not start as NaN");
    CHECK(run("t_warp", dim3(2), dim3(64), 0, [=] { t_warp(w); }) == cudaSuccess, "t_warp failed");
    bool ok = true;
    for (int i = 0; i < 128; i++) ok = ok && w[i] == 496.0f;
    CHECK(ok, "warp_sum of lane ids is not 496 in every lane");

    double *bs;
    cudaMalloc((void **)&bs, sizeof(double) * 3);
    CHECK(run("t_block", dim3(3), dim3(256), 0, [=] { t_block(bs); }) == cudaSuccess, "t_block failed");
    for (int b = 0; b < 3; b++) CHECK(bs[b] == 32640.0 + 256000.0 * b, "block %d sum %.1f", b, bs[b]);

    CHECK(run("t_dyn", dim3(1), dim3(96), 96 * sizeof(float), [=] { t_dyn(w, 96); }) == cudaSuccess, "t_dyn failed");
    ok = true;
    for (int i = 0; i < 96; i++) ok = ok && w[i] == (float)((i + 1) % 96);
    CHECK(ok, "dynamic shared memory is not shared across the block");

    CHECK(avgen_emu::launch("t_big", dim3(1), dim3(2048), 0, NULL, [] {}) == cudaErrorInvalidConfiguration,
          "a block of 2048 threads was accepted");
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration && cudaGetLastError() == cudaSuccess,
          "the launch error is not reported once");
    CHECK(avgen_emu::launch("t_smem", dim3(1), dim3(32), 64 * 1024, NULL, [] {}) != cudaSuccess,
          "64 KiB of dynamic shared memory was accepted");
    cudaGetLastError();
    // more than 48 KiB once the kernel opted in to as much, and no more; a block's dynamic shared memory is
    // NaN at its start even where the block before it wrote
    {
        const void *kd = (const void *)&t_dyn;
        CHECK(avgen_emu::launch("t_dyn", dim3(1), dim3(96), 64 * 1024, NULL, [=] { t_dyn(w, 96); }, kd) != cudaSuccess,
              "64 KiB of dynamic shared memory was accepted without the kernel's opt-in");
        cudaGetLastError();
        CHECK(cudaFuncSetAttribute(kd, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess,
              "the opt-in to 64 KiB was refused");
        CHECK(run("t_dyn", dim3(1), dim3(96), 64 * 1024, [=] { t_dyn(w, 96); }) != cudaSuccess,
              "64 KiB was accepted for a launch that does not name the kernel");
        cudaGetLastError();
        CHECK(avgen_emu::launch("t_dyn", dim3(1), dim3(96), 64 * 1024, NULL, [=] { t_dyn(w, 96); }, kd) == cudaSuccess &&
                  cudaDeviceSynchronize() == cudaSuccess,
              "64 KiB of dynamic shared memory was refused after the opt-in");
        CHECK(avgen_emu::launch("t_dyn", dim3(1), dim3(96), 64 * 1024 + 4, NULL, [=] { t_dyn(w, 96); }, kd) != cudaSuccess,
              "more than the opted-in dynamic shared memory was accepted");
        cudaGetLastError();
        CHECK(cudaFuncSetAttribute(kd, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024) == cudaErrorInvalidValue,
              "an opt-in past 227 KiB was accepted");
        cudaGetLastError();
        float *rd;
        cudaMalloc((void **)&rd, sizeof(float) * 2);
        CHECK(run("t_dyn_stale", dim3(2), dim3(32), 64, [=] {
                  AVGEN_DYNAMIC_SMEM(float, sm);
                  if (blockIdx.x == 0 && threadIdx.x == 0) sm[0] = 1.0f;
                  if (blockIdx.x == 1 && threadIdx.x == 0) rd[1] = sm[0];
              }) == cudaSuccess,
              "t_dyn_stale failed");
        CHECK(isnan(rd[1]), "a block read %g from dynamic shared memory the block before it wrote", rd[1]);
        cudaFree(rd);
    }

    CHECK(faults("t_diverge", dim3(1), dim3(32), 0, [=] { t_diverge(w); }),
          "a shuffle reached by half a warp was not a fault");
    CHECK(faults("t_trap", dim3(1), dim3(32), 0, [] { t_trap(); }), "__trap was not a fault");
    CHECK(faults("t_two_barriers", dim3(1), dim3(64), 0, [=] { t_two_barriers(w); }),
          "threads at two different __syncthreads were not a fault");
    CHECK(faults("t_two_shuffles", dim3(1), dim3(32), 0, [=] { t_two_shuffles(w); }),
          "lanes at two different shuffles were not a fault");
    CHECK(faults("t_exit_barrier", dim3(1), dim3(64), 0, [=] { t_exit_barrier(w); }),
          "threads waiting at __syncthreads after others exited were not a fault");
    CHECK(run("t_loop_barrier", dim3(1), dim3(64), 0, [=] { t_loop_barrier(w); }) == cudaSuccess,
          "a __syncthreads in a loop every thread runs was a fault");
    // shared memory a block did not write is NaN there; a misaligned float4 store is a fault
    CHECK(run("t_unwritten", dim3(2), dim3(32), 0, [=] { t_unwritten(w); }) == cudaSuccess, "t_unwritten failed");
    CHECK(w[3] == 1.0f && isnan(w[32 + 3]), "shared memory of another block was visible (%g, %g)", w[3], w[35]);
    CHECK(faults("t_misaligned", dim3(1), dim3(4), 0, [=] { t_misaligned(w); }),
          "a misaligned float4 store was not a fault");
    // AVGEN_EMU_RACECHECK=1 (set by main): a read of another thread's shared memory without a barrier
    CHECK(faults("t_race", dim3(1), dim3(64), 0, [=] { t_race(w); }), "a shared-memory race was not found");

    // a captured graph runs only when launched, and each launch runs it again
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    for (int i = 0; i < 32; i++) w[i] = 0.0f;
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    avgen_emu::launch("t_inc", dim3(1), dim3(32), 0, s, [=] { t_inc(w); });
    cudaGraph_t g;
    cudaStreamEndCapture(s, &g);
    CHECK(w[5] == 0.0f, "a captured launch ran during capture");
    cudaGraphExec_t ge;
    cudaGraphInstantiate(&ge, g, 0);
    cudaGraphLaunch(ge, s);
    cudaGraphLaunch(ge, s);
    cudaStreamSynchronize(s);
    CHECK(w[5] == 2.0f && w[31] == 2.0f, "two graph launches gave %g", w[5]);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(s);

    // an access past the end of an allocation (beyond its 256-byte rounding) faults
    fflush(stdout);
    const pid_t pid = fork();
    if (pid == 0) {
        volatile float *v = w;
        v[128 + 64] = 1.0f;
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "a write past the end of device memory did not fault");
    cudaFree(w);
    cudaFree(bs);
}

// ------------------------------------------------------------------------------------- cuBLASLt
// The larger of a worst error so far and e, NaN (from memory never written: the emulator fills it with 0xff)
// once seen: fmax would drop it.
static double worse(double w, double e) { return e > w || e != e ? e : w; }
static unsigned lcg = 12345;
static float frand() {
    lcg = lcg * 1664525u + 1013904223u;
    return (float)((lcg >> 8) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
// n floats of device memory, each scale * frand() + shift
static float *dev_rand(size_t n, float scale, float shift) {
    float *p;
    cudaMalloc((void **)&p, sizeof(float) * n);
    for (size_t i = 0; i < n; i++) p[i] = scale * frand() + shift;
    return p;
}

static void test_lt() {
    // the emulator's entry points under cuBLASLt's own names (cuda_emu.cc)
    auto create = cublasLtCreate;
    auto desc_create = cublasLtMatmulDescCreate;
    auto desc_set = cublasLtMatmulDescSetAttribute;
    auto layout_create = cublasLtMatrixLayoutCreate;
    auto layout_set = cublasLtMatrixLayoutSetAttribute;
    auto matmul = cublasLtMatmul;
    cublasLtHandle_t h;
    create(&h);
    // column-major D[m,n] = op(A) op(B) + C + bias, batched, A transposed
    const int m = 5, n = 3, k = 7, batch = 2;
    std::vector<float> A(k * m * batch), B(k * n * batch), C(m * n * batch), D(m * n * batch), bias(m);
    for (auto *v : {&A, &B, &C}) for (float &x : *v) x = frand();
    for (float &x : bias) x = frand();
    for (int epi = 0; epi < 2; epi++) {
        const int nb = epi ? 1 : batch;  // the bias epilogue is unbatched
        cublasLtMatmulDesc_t d;
        desc_create(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        desc_set(d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
        desc_set(d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
        if (epi) {
            const cublasLtEpilogue_t e = CUBLASLT_EPILOGUE_BIAS;
            const float *bp = bias.data();
            desc_set(d, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e);
            desc_set(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bp, sizeof bp);
        }
        cublasLtMatrixLayout_t la, lb, lc;
        layout_create(&la, CUDA_R_32F, k, m, k);
        layout_create(&lb, CUDA_R_32F, k, n, k);
        layout_create(&lc, CUDA_R_32F, m, n, m);
        const int32_t bc = nb;
        const int64_t sa = k * m, sb = k * n, sc = m * n;
        layout_set(la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
        layout_set(lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
        layout_set(lc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &bc, sizeof bc);
        layout_set(la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sa, sizeof sa);
        layout_set(lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sb, sizeof sb);
        layout_set(lc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &sc, sizeof sc);
        const float one = 1.0f;
        CHECK(matmul(h, d, &one, A.data(), la, B.data(), lb, &one, C.data(), lc, D.data(), lc, NULL, NULL, 0, NULL) == 0,
              "matmul failed");
        double worst = 0;
        for (int b = 0; b < nb; b++)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) {
                    double r = C[b * sc + i + j * m] + (epi ? bias[i] : 0.0);
                    for (int q = 0; q < k; q++) r += (double)A[b * sa + q + i * k] * B[b * sb + q + j * k];
                    worst = worse(worst, fabs(r - D[b * sc + i + j * m]));
                }
        CHECK(worst < 1e-5, "cuBLASLt matmul (epilogue %d) is off by %g", epi, worst);
    }
}

// ------------------------------------------------------------------------------------ attention
static float bf(float x) { return avgen_emu_bf(f2bf(x)); }

// The kernels' arithmetic in double, with their bf16 operands: per row, keys in chunks of 64 with the
// online softmax (P rounded to bf16 against the running maximum); backward from the forward's lse.
struct AttnRef {
    int P, N, H, HD;
    float scale;
    std::vector<float> qkv, dO;
    std::vector<double> delta;
    std::vector<double> O, lse, dqkv;
    double q(int p, int i, int h, int d, int which) const {
        const int D = H * HD;
        return bf(qkv[((size_t)p * N + i) * 3 * D + which * D + h * HD + d]);
    }
    double s(int p, int h, int i, int j) const {
        double a = 0;
        for (int d = 0; d < HD; d++) a += q(p, i, h, d, 0) * q(p, j, h, d, 1);
        return (double)(float)a * scale;
    }
    void forward() {
        const int D = H * HD;
        O.assign((size_t)P * N * D, 0.0), lse.assign((size_t)P * H * N, 0.0);
        for (int p = 0; p < P; p++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < N; i++) {
                    double m = -INFINITY, l = 0;
                    std::vector<double> o(HD, 0.0);
                    for (int c0 = 0; c0 < N; c0 += 64) {
                        const int c1 = c0 + 64 < N ? c0 + 64 : N;
                        double x = m;
                        for (int j = c0; j < c1; j++) x = fmax(x, s(p, h, i, j));
                        const double a = exp(m - x);
                        m = x, l *= a;
                        for (double &v : o) v *= a;
                        for (int j = c0; j < c1; j++) {
                            const double e = exp(s(p, h, i, j) - m);
                            l += e;
                            for (int d = 0; d < HD; d++) o[d] += bf((float)e) * q(p, j, h, d, 2);
                        }
                    }
                    for (int d = 0; d < HD; d++) O[((size_t)p * N + i) * D + h * HD + d] = o[d] / l;
                    lse[((size_t)p * H + h) * N + i] = m + log(l);
                }
    }
    void backward() {
        const int D = H * HD;
        dqkv.assign((size_t)P * N * 3 * D, 0.0);
        for (int p = 0; p < P; p++)
            for (int h = 0; h < H; h++)
                for (int i = 0; i < N; i++)
                    for (int j = 0; j < N; j++) {
                        const size_t st = ((size_t)p * H + h) * N;
                        const double pr = exp(s(p, h, i, j) - (float)lse[st + i]);
                        double dp = 0;
                        for (int d = 0; d < HD; d++) dp += bf(dO[((size_t)p * N + i) * D + h * HD + d]) * q(p, j, h, d, 2);
                        const double ds = pr * ((double)(float)dp - (float)delta[st + i]) * scale;
                        for (int d = 0; d < HD; d++) {
                            const double dod = bf(dO[((size_t)p * N + i) * D + h * HD + d]);
                            dqkv[((size_t)p * N + i) * 3 * D + h * HD + d] += bf((float)ds) * q(p, j, h, d, 1);
                            dqkv[((size_t)p * N + j) * 3 * D + D + h * HD + d] += bf((float)ds) * q(p, i, h, d, 0);
                            dqkv[((size_t)p * N + j) * 3 * D + 2 * D + h * HD + d] += bf((float)pr) * dod;
                        }
                    }
    }
};

template <class T> static double rel_l2(const T *a, const std::vector<double> &b, size_t n, size_t stride = 1, size_t off = 0,
                                        size_t width = 0) {
    double num = 0, den = 0;
    for (size_t e = 0; e < n; e++) {
        if (width && (e % stride) - off >= width) continue;  // only columns [off, off + width) of rows of stride
        num += ((double)a[e] - b[e]) * ((double)a[e] - b[e]), den += b[e] * b[e];
    }
    return sqrt(num / (den > 0 ? den : 1e-300));
}

template <int HD> static void test_attention(int P, int N, int H) {
    AttnRef r{P, N, H, HD, 1.0f / sqrtf((float)HD), {}, {}, {}, {}, {}, {}};
    const int D = H * HD;
    r.qkv.resize((size_t)P * N * 3 * D), r.dO.resize((size_t)P * N * D), r.delta.resize((size_t)P * H * N);
    for (float &x : r.qkv) x = 2.0f * frand();
    for (float &x : r.dO) x = frand();
    for (double &x : r.delta) x = 0.1 * frand();
    r.forward();
    r.backward();
    float *qkv, *O, *lse, *dO, *dqkv;
    double *delta;
    cudaMalloc((void **)&qkv, sizeof(float) * r.qkv.size());
    cudaMalloc((void **)&dO, sizeof(float) * r.dO.size());
    cudaMalloc((void **)&O, sizeof(float) * r.O.size());
    cudaMalloc((void **)&lse, sizeof(float) * r.lse.size());
    cudaMalloc((void **)&dqkv, sizeof(float) * r.dqkv.size());
    cudaMalloc((void **)&delta, sizeof(double) * r.delta.size());
    memcpy(qkv, r.qkv.data(), sizeof(float) * r.qkv.size());
    memcpy(dO, r.dO.data(), sizeof(float) * r.dO.size());
    memcpy(delta, r.delta.data(), sizeof(double) * r.delta.size());
    const dim3 grid(1, H, P), block(kAttnThreads);
    const size_t sm = rt_cuda_attn_smem(N, HD);  // as the backend launches them, opted in as it does
    for (const void *k : {(const void *)&k_attn_fwd<HD>, (const void *)&k_attn_bwd_dq<HD>, (const void *)&k_attn_bwd_dkv<HD>,
                          (const void *)&k_attn_fwd_bf<HD>, (const void *)&k_attn_bwd_dq_bf<HD>,
                          (const void *)&k_attn_bwd_dkv_bf<HD>})
        CHECK(sm <= 48 * 1024 || cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm) == cudaSuccess,
              "opt-in to %zu bytes refused", sm);
    const float sc = r.scale;
    CHECK(run("k_attn_fwd", grid, block, sm, [=] { k_attn_fwd<HD>(qkv, O, lse, N, H, sc); }, NULL, (const void *)&k_attn_fwd<HD>) == cudaSuccess, "fwd failed");
    const double eo = rel_l2(O, r.O, r.O.size()), el = rel_l2(lse, r.lse, r.lse.size());
    CHECK(eo < 1e-4 && el < 1e-6, "HD %d N %d: forward O %.2e lse %.2e from the reference", HD, N, eo, el);
    // backward from the reference's lse (as float, what the kernels read)
    std::vector<float> lse_k(lse, lse + r.lse.size());
    for (size_t e = 0; e < r.lse.size(); e++) lse[e] = (float)r.lse[e];
    CHECK(run("k_attn_bwd_dq", grid, block, sm, [=] { k_attn_bwd_dq<HD>(dO, qkv, lse, delta, dqkv, N, H, sc); }, NULL, (const void *)&k_attn_bwd_dq<HD>) ==
              cudaSuccess,
          "dq failed");
    CHECK(run("k_attn_bwd_dkv", grid, block, sm, [=] { k_attn_bwd_dkv<HD>(dO, qkv, lse, delta, dqkv, N, H, sc); }, NULL, (const void *)&k_attn_bwd_dkv<HD>) ==
              cudaSuccess,
          "dkv failed");
    const size_t n3 = r.dqkv.size();
    const double eq = rel_l2(dqkv, r.dqkv, n3, 3 * D, 0, D), ek = rel_l2(dqkv, r.dqkv, n3, 3 * D, D, D),
                 ev = rel_l2(dqkv, r.dqkv, n3, 3 * D, 2 * D, D);
    CHECK(eq < 1e-4 && ek < 1e-4 && ev < 1e-4, "HD %d N %d: backward dQ %.2e dK %.2e dV %.2e from the reference", HD, N, eq,
          ek, ev);
    printf("attention HD %d N %d P %d: O %.1e lse %.1e dQ %.1e dK %.1e dV %.1e (relative L2 from the reference)\n", HD, N,
           P, eo, el, eq, ek, ev);

    // qkv as bf16 (its rounded values) gives the same values: O and dqkv as bf16 are the fp32 results rounded,
    // lse the same bits
    unsigned short *q16, *dq16, *O2;
    float *lse2;
    cudaMalloc((void **)&q16, 2 * r.qkv.size());
    cudaMalloc((void **)&dq16, 2 * n3);
    cudaMalloc((void **)&O2, 2 * r.O.size());
    cudaMalloc((void **)&lse2, sizeof(float) * r.lse.size());
    for (size_t e = 0; e < r.qkv.size(); e++) q16[e] = f2bf(r.qkv[e]);
    CHECK(run("k_attn_fwd", grid, block, sm, [=] { k_attn_fwd_bf<HD>(q16, O2, lse2, N, H, sc); }, NULL, (const void *)&k_attn_fwd_bf<HD>) == cudaSuccess, "fwd16 failed");
    size_t odiff = 0;
    for (size_t e = 0; e < r.O.size(); e++) odiff += O2[e] != f2bf(O[e]);
    CHECK(odiff == 0 && !memcmp(lse2, lse_k.data(), sizeof(float) * r.lse.size()),
          "HD %d N %d: the forward from a bf16 qkv differs from the fp32 one (%zu elements of O)", HD, N, odiff);
    // delta from a bf16 O, or a bf16 dO: the same bits as from their values in fp32
    double *dl1, *dl2, *dl3, *dl4;
    float *Ob, *dOb;
    unsigned short *dO16;
    cudaMalloc((void **)&dl1, sizeof(double) * r.delta.size()), cudaMalloc((void **)&dl2, sizeof(double) * r.delta.size());
    cudaMalloc((void **)&dl3, sizeof(double) * r.delta.size()), cudaMalloc((void **)&dl4, sizeof(double) * r.delta.size());
    cudaMalloc((void **)&Ob, sizeof(float) * r.O.size()), cudaMalloc((void **)&dOb, sizeof(float) * r.dO.size());
    cudaMalloc((void **)&dO16, 2 * r.dO.size());
    for (size_t e = 0; e < r.O.size(); e++) Ob[e] = bf(O[e]);
    for (size_t e = 0; e < r.dO.size(); e++) dO16[e] = f2bf(r.dO[e]), dOb[e] = bf(r.dO[e]);
    const dim3 dg((unsigned)((P * N + 7) / 8)), db(256);
    CHECK(run("k_attn_delta", dg, db, 0, [=] { k_attn_delta(dO, NULL, Ob, NULL, dl1, P, N, D, H, HD); }) == cudaSuccess &&
              run("k_attn_delta", dg, db, 0, [=] { k_attn_delta(dO, NULL, NULL, O2, dl2, P, N, D, H, HD); }) == cudaSuccess &&
              run("k_attn_delta", dg, db, 0, [=] { k_attn_delta(dOb, NULL, NULL, O2, dl3, P, N, D, H, HD); }) == cudaSuccess &&
              run("k_attn_delta", dg, db, 0, [=] { k_attn_delta(NULL, dO16, NULL, O2, dl4, P, N, D, H, HD); }) == cudaSuccess,
          "delta failed");
    CHECK(!memcmp(dl1, dl2, sizeof(double) * r.delta.size()), "HD %d N %d: delta from a bf16 O differs", HD, N);
    CHECK(!memcmp(dl3, dl4, sizeof(double) * r.delta.size()), "HD %d N %d: delta from a bf16 dO differs", HD, N);
    // (and rounding dO changes delta here, so the check above could see a kernel that read dO unrounded)
    CHECK(memcmp(dl2, dl3, sizeof(double) * r.delta.size()), "HD %d N %d: rounding dO leaves delta as it was", HD, N);
    cudaFree(dl1), cudaFree(dl2), cudaFree(dl3), cudaFree(dl4), cudaFree(Ob), cudaFree(dOb);
    // the twins read dO as bf16: the values the fp32 kernels round it to, so the same results rounded
    CHECK(run("k_attn_bwd_dq", grid, block, sm, [=] { k_attn_bwd_dq_bf<HD>(dO16, q16, lse, delta, dq16, N, H, sc); }, NULL, (const void *)&k_attn_bwd_dq_bf<HD>) ==
              cudaSuccess,
          "dq16 failed");
    CHECK(run("k_attn_bwd_dkv", grid, block, sm, [=] { k_attn_bwd_dkv_bf<HD>(dO16, q16, lse, delta, dq16, N, H, sc); }, NULL, (const void *)&k_attn_bwd_dkv_bf<HD>) ==
              cudaSuccess,
          "dkv16 failed");
    size_t diff = 0;
    for (size_t e = 0; e < n3; e++) diff += dq16[e] != f2bf(dqkv[e]);
    CHECK(diff == 0, "HD %d N %d: %zu elements of the bf16 dqkv are not the fp32 one rounded", HD, N, diff);
    for (void *p : {(void *)qkv, (void *)O, (void *)lse, (void *)dO, (void *)dqkv, (void *)delta, (void *)q16, (void *)dq16,
                    (void *)O2, (void *)lse2, (void *)dO16})
        cudaFree(p);
}

// Shape-literal instances (AVGEN_ATTN_SHAPE, as an emitted kernels.cu ends): each of the six fused-attention
// kernels with N and H as literals computes the same bits as the generic kernel, and an instance launched with
// another N or H traps rather than computing for the wrong shape.
AVGEN_ATTN_SHAPE(64, 197, 2)
AVGEN_ATTN_SHAPE(64, 49, 3)
AVGEN_ATTN_SHAPE(16, 7, 2)
template <int HD, int N, int H> static void test_attention_shapes(int P) {
    const int D = H * HD;
    const size_t nq = (size_t)P * N * 3 * D, no = (size_t)P * N * D, nl = (size_t)P * H * N;
    const float sc = 1.0f / sqrtf((float)HD);
    const dim3 grid(1, H, P), block(kAttnThreads);
    const size_t sm = rt_cuda_attn_smem(N, HD);
    float *qkv = dev_rand(nq, 2.0f, 0.0f), *dO = dev_rand(no, 1.0f, 0.0f);
    double *delta;
    unsigned short *q16, *dO16;
    cudaMalloc((void **)&delta, sizeof(double) * nl), cudaMalloc((void **)&q16, 2 * nq), cudaMalloc((void **)&dO16, 2 * no);
    for (size_t e = 0; e < nl; e++) delta[e] = 0.1 * frand();
    for (size_t e = 0; e < nq; e++) q16[e] = f2bf(qkv[e]);
    for (size_t e = 0; e < no; e++) dO16[e] = f2bf(dO[e]);
    for (const void *k : {(const void *)&k_attn_fwd<HD>, (const void *)&k_attn_bwd_dq<HD>, (const void *)&k_attn_bwd_dkv<HD>,
                          (const void *)&k_attn_fwd_bf<HD>, (const void *)&k_attn_bwd_dq_bf<HD>,
                          (const void *)&k_attn_bwd_dkv_bf<HD>, (const void *)&k_attn_fwd<HD, N, H>,
                          (const void *)&k_attn_bwd_dq<HD, N, H>, (const void *)&k_attn_bwd_dkv<HD, N, H>,
                          (const void *)&k_attn_fwd_bf<HD, N, H>, (const void *)&k_attn_bwd_dq_bf<HD, N, H>,
                          (const void *)&k_attn_bwd_dkv_bf<HD, N, H>})
        CHECK(sm <= 48 * 1024 || cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm) == cudaSuccess,
              "opt-in to %zu bytes refused", sm);
    float *O[2], *lse[2], *dq[2];
    unsigned short *O16[2], *dq16[2];
    for (int v = 0; v < 2; v++) {  // v = 0: the generic kernels, 1: the instances
        cudaMalloc((void **)&O[v], 4 * no), cudaMalloc((void **)&lse[v], 4 * nl), cudaMalloc((void **)&dq[v], 4 * nq);
        cudaMalloc((void **)&O16[v], 2 * no), cudaMalloc((void **)&dq16[v], 2 * nq);
        float *o = O[v], *l = lse[v], *d = dq[v];
        unsigned short *o16 = O16[v], *d16 = dq16[v];
        const float *lin = lse[0];  // the backward reads the generic forward's log-sum-exp
        auto fwd = v ? &k_attn_fwd<HD, N, H> : &k_attn_fwd<HD>;
        auto fwd16 = v ? &k_attn_fwd_bf<HD, N, H> : &k_attn_fwd_bf<HD>;
        auto bq = v ? &k_attn_bwd_dq<HD, N, H> : &k_attn_bwd_dq<HD>;
        auto bkv = v ? &k_attn_bwd_dkv<HD, N, H> : &k_attn_bwd_dkv<HD>;
        auto bq16 = v ? &k_attn_bwd_dq_bf<HD, N, H> : &k_attn_bwd_dq_bf<HD>;
        auto bkv16 = v ? &k_attn_bwd_dkv_bf<HD, N, H> : &k_attn_bwd_dkv_bf<HD>;
        const bool ok =
            run("k_attn_fwd", grid, block, sm, [=] { fwd(qkv, o, l, N, H, sc); }, NULL, (const void *)fwd) == cudaSuccess &&
            run("k_attn_fwd_bf", grid, block, sm, [=] { fwd16(q16, o16, NULL, N, H, sc); }, NULL, (const void *)fwd16) ==
                cudaSuccess &&
            run("k_attn_bwd_dq", grid, block, sm, [=] { bq(dO, qkv, lin, delta, d, N, H, sc); }, NULL, (const void *)bq) ==
                cudaSuccess &&
            run("k_attn_bwd_dkv", grid, block, sm, [=] { bkv(dO, qkv, lin, delta, d, N, H, sc); }, NULL, (const void *)bkv) ==
                cudaSuccess &&
            run("k_attn_bwd_dq_bf", grid, block, sm, [=] { bq16(dO16, q16, lin, delta, d16, N, H, sc); }, NULL,
                (const void *)bq16) == cudaSuccess &&
            run("k_attn_bwd_dkv_bf", grid, block, sm, [=] { bkv16(dO16, q16, lin, delta, d16, N, H, sc); }, NULL,
                (const void *)bkv16) == cudaSuccess;
        CHECK(ok, "HD %d N %d H %d: %s kernels failed", HD, N, H, v ? "the instance's" : "the generic");
    }
    CHECK(!memcmp(O[0], O[1], 4 * no) && !memcmp(lse[0], lse[1], 4 * nl) && !memcmp(O16[0], O16[1], 2 * no),
          "HD %d N %d H %d: the instance's forward is not the generic kernel's bits", HD, N, H);
    CHECK(!memcmp(dq[0], dq[1], 4 * nq) && !memcmp(dq16[0], dq16[1], 2 * nq),
          "HD %d N %d H %d: the instance's backward is not the generic kernel's bits", HD, N, H);
    // another N or H than its literals: a fault
    float *o = O[1], *l = lse[1];
    CHECK(faults("k_attn_fwd", grid, block, sm, [=] { k_attn_fwd<HD, N, H>(qkv, o, l, N - 1, H, sc); },
                 (const void *)&k_attn_fwd<HD, N, H>),
          "HD %d N %d H %d: an instance launched with N - 1 did not trap", HD, N, H);
    CHECK(faults("k_attn_bwd_dkv", grid, block, sm, [=] { k_attn_bwd_dkv<HD, N, H>(dO, qkv, l, delta, dq[1], N, H + 1, sc); },
                 (const void *)&k_attn_bwd_dkv<HD, N, H>),
          "HD %d N %d H %d: an instance launched with H + 1 did not trap", HD, N, H);
    printf("attention instances HD %d N %d H %d P %d: the generic kernels' bits; other shapes trap\n", HD, N, H, P);
    for (void *p : {(void *)qkv, (void *)dO, (void *)delta, (void *)q16, (void *)dO16, (void *)O[0], (void *)O[1],
                    (void *)lse[0], (void *)lse[1], (void *)dq[0], (void *)dq[1], (void *)O16[0], (void *)O16[1],
                    (void *)dq16[0], (void *)dq16[1]})
        cudaFree(p);
}

// ------------------------------------------------------------------------------------------- GELU
// k_gelu and k_gelu_bwd with each tensor fp32 or bf16: a bf16 input gives the bits of its values in fp32, a
// bf16 output is the fp32 one rounded; n = 4096 takes the vector loop, 4097 and 7 the scalar one.
static void test_gelu(long long n) {
    float *pre, *preb, *da, *dab, *act, *dpre;
    unsigned short *pre16, *da16, *act16, *dpre16;
    cudaMalloc((void **)&pre, 4 * n), cudaMalloc((void **)&preb, 4 * n), cudaMalloc((void **)&da, 4 * n);
    cudaMalloc((void **)&dab, 4 * n), cudaMalloc((void **)&act, 4 * n), cudaMalloc((void **)&dpre, 4 * n);
    cudaMalloc((void **)&pre16, 2 * n), cudaMalloc((void **)&da16, 2 * n), cudaMalloc((void **)&act16, 2 * n);
    cudaMalloc((void **)&dpre16, 2 * n);
    for (long long i = 0; i < n; i++) {
        pre[i] = 4.0f * frand(), da[i] = frand();
        pre16[i] = f2bf(pre[i]), da16[i] = f2bf(da[i]), preb[i] = bf(pre[i]), dab[i] = bf(da[i]);
    }
    const dim3 gr((unsigned)((n + 1023) / 1024)), bl(256);
    size_t bad = 0;
    CHECK(run("k_gelu", gr, bl, 0, [=] { k_gelu(preb, NULL, act, NULL, n); }) == cudaSuccess &&
              run("k_gelu", gr, bl, 0, [=] { k_gelu(NULL, pre16, NULL, act16, n); }) == cudaSuccess,
          "k_gelu failed");
    for (long long i = 0; i < n; i++) bad += act16[i] != f2bf(act[i]) || fabs(act[i] - 0.5 * preb[i] * erfc(-preb[i] / sqrt(2.0))) > 1e-5 * (1 + fabs(act[i]));
    CHECK(bad == 0, "n %lld: %zu GELU values from bf16 differ", n, bad);
    CHECK(run("k_gelu_bwd", gr, bl, 0, [=] { k_gelu_bwd(dab, NULL, preb, NULL, dpre, NULL, n); }) == cudaSuccess &&
              run("k_gelu_bwd", gr, bl, 0, [=] { k_gelu_bwd(NULL, da16, NULL, pre16, NULL, dpre16, n); }) == cudaSuccess,
          "k_gelu_bwd failed");
    bad = 0;
    for (long long i = 0; i < n; i++) {
        const double x = preb[i], gd = 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
        bad += dpre16[i] != f2bf(dpre[i]) || fabs(dpre[i] - dab[i] * gd) > 1e-5 * (1 + fabs(dpre[i]));
    }
    CHECK(bad == 0, "n %lld: %zu GELU gradients from bf16 differ", n, bad);
    // mixed: an fp32 gradient with a bf16 input, into fp32
    CHECK(run("k_gelu_bwd", gr, bl, 0, [=] { k_gelu_bwd(da, NULL, NULL, pre16, dpre, NULL, n); }) == cudaSuccess,
          "k_gelu_bwd (mixed) failed");
    bad = 0;
    for (long long i = 0; i < n; i++) bad += dpre[i] != da[i] * gelu_grad_f(preb[i]);
    CHECK(bad == 0, "n %lld: %zu mixed GELU gradients differ", n, bad);
    for (void *p : {(void *)pre, (void *)preb, (void *)da, (void *)dab, (void *)act, (void *)dpre, (void *)pre16, (void *)da16,
                    (void *)act16, (void *)dpre16})
        cudaFree(p);
}

// ------------------------------------------------------------------------- LayerNorm backward + sums
// k_ln_bwd_cs<V> against k_ln_bwd<V> (the same row code: dx and the gate's row sums bit-identical) and the
// weight and bias gradients' column sums in float64 on the host (k_colsum's CS_LN terms), after
// k_colsum_finish; D below 32 V leaves lanes idle, and rows not a multiple of 4 leave warps idle.
template <int V> static void test_ln_bwd_cs(long long rows, int D, bool gated) {
    std::vector<float> hdy(rows * D), hx(rows * D), hmu(rows), hrs(rows), hw(D), hb(D), hg{0.7f};
    for (float &v : hdy) v = frand();
    for (float &v : hx) v = 3.0f * frand() + 0.5f;
    for (float &v : hw) v = 1.0f + 0.5f * frand();
    for (float &v : hb) v = 0.3f * frand();
    for (long long r = 0; r < rows; r++) {
        double m = 0, q = 0;
        for (int d = 0; d < D; d++) m += hx[r * D + d];
        m /= D;
        for (int d = 0; d < D; d++) q += (hx[r * D + d] - m) * (hx[r * D + d] - m);
        hmu[r] = (float)m, hrs[r] = (float)(1.0 / sqrt(q / D + 1e-6));
    }
    auto up = [](const std::vector<float> &h) {
        float *p;
        cudaMalloc((void **)&p, sizeof(float) * h.size());
        memcpy(p, h.data(), sizeof(float) * h.size());
        return p;
    };
    float *dy = up(hdy), *x = up(hx), *mu = up(hmu), *rs = up(hrs), *w = up(hw), *b = up(hb), *g = gated ? up(hg) : NULL;
    float *dx1, *dx2, *gw, *gb;
    double *rd1, *rd2, *part;
    const long long rpb = 16, blocks = (rows + rpb - 1) / rpb;
    cudaMalloc((void **)&dx1, sizeof(float) * rows * D), cudaMalloc((void **)&dx2, sizeof(float) * rows * D);
    cudaMalloc((void **)&rd1, sizeof(double) * rows), cudaMalloc((void **)&rd2, sizeof(double) * rows);
    cudaMalloc((void **)&part, sizeof(double) * 2 * blocks * D);
    cudaMalloc((void **)&gw, sizeof(float) * D), cudaMalloc((void **)&gb, sizeof(float) * D);
    for (int d = 0; d < D; d++) gw[d] = 0.25f, gb[d] = -0.5f;  // the sums are added to what is there
    double *r1 = gated ? rd1 : NULL, *r2 = gated ? rd2 : NULL;
    const float *bb = gated ? b : NULL;
    CHECK(run("k_ln_bwd", dim3((unsigned)((rows + 3) / 4)), dim3(128), 0,
              [=] { k_ln_bwd<V>(dy, x, mu, rs, w, bb, g, dx1, D, 0, r1, rows, D); }) == cudaSuccess, "k_ln_bwd failed");
    CHECK(run("k_ln_bwd_cs", dim3((unsigned)blocks), dim3(128), 0,
              [=] { k_ln_bwd_cs<V>(dy, x, mu, rs, w, bb, g, dx2, D, r2, rows, D, rpb, part); }) == cudaSuccess,
          "k_ln_bwd_cs failed");
    CHECK(run("k_colsum_finish", dim3((D + kColsumCols - 1) / kColsumCols), dim3(128), 0, [=] { k_colsum_finish(part, (int)blocks, D, gw, gb, NULL, NULL); }) ==
              cudaSuccess,
          "k_colsum_finish failed");
    CHECK(!memcmp(dx1, dx2, sizeof(float) * rows * D), "V %d D %d: dx differs from k_ln_bwd's", V, D);
    if (gated) CHECK(!memcmp(rd1, rd2, sizeof(double) * rows), "V %d D %d: the gate's row sums differ", V, D);
    double worst = 0;
    for (int d = 0; d < D; d++) {
        double s0 = 0, s1 = 0;
        for (long long r = 0; r < rows; r++) {
            const float dO = gated ? hdy[r * D + d] * hg[0] : hdy[r * D + d];
            s0 += (double)dO * (((double)hx[r * D + d] - hmu[r]) * hrs[r]), s1 += dO;
        }
        worst = worse(worst, fabs((double)gw[d] - (float)(0.25 + s0)) / fmax(1.0, fabs(s0)));
        worst = worse(worst, fabs((double)gb[d] - (float)(-0.5 + s1)) / fmax(1.0, fabs(s1)));
    }
    // (the kernel forms each xhat in float, the reference in double: about 1e-6 of the sums' scale; a lost or
    // doubled row would be 1e-3)
    CHECK(worst < 4e-6, "V %d D %d rows %lld: column sums off by %g", V, D, rows, worst);
    for (void *p : {(void *)dy, (void *)x, (void *)mu, (void *)rs, (void *)w, (void *)b, (void *)g, (void *)dx1, (void *)dx2,
                    (void *)rd1, (void *)rd2, (void *)part, (void *)gw, (void *)gb})
        cudaFree(p);
}

// ----------------------------------------------------------------------- BatchNorm applied on load
// k_layernorm_bn<V> on the BatchNorm input u against k_layernorm<V> on k_bn_apply's output (LayerNorm + gate,
// with and without the residual res against k_layernorm_res<V>), and k_ln_bwd_cs_bn<V> against k_ln_bwd_cs<V>
// the same way: the same bits (the BatchNorm is applied with k_bn_apply's arithmetic).
template <int V> static void test_bn_on_load(long long rows, int D) {
    const size_t n = (size_t)rows * D;
    float *u = dev_rand(n, 3.0f, 1.5f), *bw = dev_rand(D, 0.5f, 1.0f), *bb = dev_rand(D, 0.3f, 0.0f), *rstd = dev_rand(D, 0.2f, 0.8f);
    float *lw = dev_rand(D, 0.5f, 1.0f), *lb = dev_rand(D, 0.3f, 0.0f), *gate = dev_rand(1, 0.0f, 0.7f), *res = dev_rand(n, 1.0f, 0.0f);
    float *dy = dev_rand(n, 1.0f, 0.0f), *ub, *y1, *y2, *mu1, *mu2, *rs1, *rs2, *dx1, *dx2;
    float *mean;  // the BatchNorm's mean (k_bn_stats's)
    double *rd1, *rd2, *p1, *p2;
    cudaMalloc((void **)&mean, sizeof(float) * D);
    for (int c = 0; c < D; c++) mean[c] = 1.5f + 0.1f * frand();
    for (float **q : {&ub, &y1, &y2, &dx1, &dx2}) cudaMalloc((void **)q, sizeof(float) * n);
    for (float **q : {&mu1, &mu2, &rs1, &rs2}) cudaMalloc((void **)q, sizeof(float) * rows);
    cudaMalloc((void **)&rd1, sizeof(double) * rows), cudaMalloc((void **)&rd2, sizeof(double) * rows);
    const long long rpb = 16, blocks = (rows + rpb - 1) / rpb;
    cudaMalloc((void **)&p1, sizeof(double) * 2 * blocks * D), cudaMalloc((void **)&p2, sizeof(double) * 2 * blocks * D);
    const BnLoad bn = {mean, rstd, bw, bb, NULL};
    const dim3 bg((unsigned)(rows < 2048 ? rows : 2048), (unsigned)((D + 127) / 128)), bbk(D >= 128 ? 128 : (D + 31) / 32 * 32);
    CHECK(run("k_bn_apply", bg, bbk, 0, [=] { k_bn_apply(u, ub, mean, rstd, NULL, NULL, 1e-5f, bw, bb, rows, D, 0, NULL, NULL); }) ==
              cudaSuccess,
          "k_bn_apply failed");
    const dim3 lg((unsigned)((rows + 3) / 4)), lb128(128);
    for (int withres = 0; withres < 2; withres++) {
        const float *r = withres ? res : NULL;
        if (withres)
            CHECK(run("k_layernorm_res", lg, lb128, 0,
                      [=] { k_layernorm_res<V>(ub, D, lw, lb, y1, D, mu1, rs1, gate, rows, D, 1e-5f, r); }) == cudaSuccess,
                  "k_layernorm_res failed");
        else
            CHECK(run("k_layernorm", lg, lb128, 0,
                      [=] { k_layernorm<V>(ub, D, lw, lb, y1, D, mu1, rs1, NULL, gate, rows, D, 1e-5f, NULL); }) == cudaSuccess,
                  "k_layernorm failed");
        CHECK(run("k_layernorm_bn", lg, lb128, 0, [=] { k_layernorm_bn<V>(u, lw, lb, y2, mu2, rs2, gate, rows, D, 1e-5f, r, bn); }) ==
                  cudaSuccess,
              "k_layernorm_bn failed");
        CHECK(!memcmp(y1, y2, sizeof(float) * n) && !memcmp(mu1, mu2, sizeof(float) * rows) &&
                  !memcmp(rs1, rs2, sizeof(float) * rows),
              "V %d D %d res %d: k_layernorm_bn differs from k_layernorm on the BatchNorm output", V, D, withres);
    }
    if constexpr (V > 0) {
        CHECK(run("k_ln_bwd_cs", dim3((unsigned)blocks), lb128, 0,
                  [=] { k_ln_bwd_cs<V>(dy, ub, mu1, rs1, lw, lb, gate, dx1, D, rd1, rows, D, rpb, p1); }) == cudaSuccess &&
                  run("k_ln_bwd_cs_bn", dim3((unsigned)blocks), lb128, 0,
                      [=] { k_ln_bwd_cs_bn<V>(dy, u, mu1, rs1, lw, lb, gate, dx2, rd2, rows, D, rpb, p2, bn); }) == cudaSuccess,
              "k_ln_bwd_cs(_bn) failed");
        CHECK(!memcmp(dx1, dx2, sizeof(float) * n) && !memcmp(rd1, rd2, sizeof(double) * rows) &&
                  !memcmp(p1, p2, sizeof(double) * 2 * blocks * D),
              "V %d D %d: k_ln_bwd_cs_bn differs from k_ln_bwd_cs on the BatchNorm output", V, D);
    }
    for (void *q : {(void *)u, (void *)bw, (void *)bb, (void *)rstd, (void *)lw, (void *)lb, (void *)gate, (void *)res,
                    (void *)dy, (void *)ub, (void *)y1, (void *)y2, (void *)mu1, (void *)mu2, (void *)rs1, (void *)rs2,
                    (void *)dx1, (void *)dx2, (void *)mean, (void *)rd1, (void *)rd2, (void *)p1, (void *)p2})
        cudaFree(q);
}

// ----------------------------------------------------------------------- BatchNorm kernels on bf16 tensors
// Each BatchNorm kernel with its input stored as bf16 (and its output written as bf16) against the same
// kernel on the fp32 values of those bf16 numbers (and its fp32 output rounded): the same bits. Also the
// BatchNorm-on-load readers (k_layernorm_bn, k_ln_bwd_cs_bn) with a bf16 BatchNorm input.
template <int V> static void test_bn_bf16(long long rows, int D) {
    const size_t n = (size_t)rows * D;
    float *x = dev_rand(n, 3.0f, 1.5f), *dy = dev_rand(n, 1.0f, 0.0f), *w = dev_rand(D, 0.5f, 1.0f), *b = dev_rand(D, 0.3f, 0.0f);
    float *rstd = dev_rand(D, 0.2f, 0.8f), *mu = dev_rand(D, 0.1f, 1.5f), *lw = dev_rand(D, 0.5f, 1.0f), *lb = dev_rand(D, 0.3f, 0.0f);
    float *gate = dev_rand(1, 0.0f, 0.7f), *y1, *y2, *m1, *m2, *r1, *r2, *mr1, *mr2;
    unsigned short *x16, *o16;
    float *mean;
    double *p1, *p2, *s0, *s1, *rd1, *rd2;
    cudaMalloc((void **)&x16, 2 * n), cudaMalloc((void **)&o16, 2 * n);
    for (size_t i = 0; i < n; i++) x16[i] = f2bf(x[i]), x[i] = avgen_emu_bf(x16[i]);  // x: the bf16 values
    for (float **q : {&y1, &y2}) cudaMalloc((void **)q, sizeof(float) * n);
    for (float **q : {&m1, &m2, &r1, &r2, &mr1, &mr2}) cudaMalloc((void **)q, sizeof(float) * (rows > D ? rows : D));
    cudaMalloc((void **)&mean, sizeof(float) * D), cudaMalloc((void **)&s0, sizeof(double) * D);
    cudaMalloc((void **)&s1, sizeof(double) * D);
    cudaMalloc((void **)&rd1, sizeof(double) * rows), cudaMalloc((void **)&rd2, sizeof(double) * rows);
    for (int c = 0; c < D; c++) mean[c] = 1.5f + 0.1f * frand(), s0[c] = frand(), s1[c] = frand();
    const long long rpc = 16, chunks = (rows + rpc - 1) / rpc;
    cudaMalloc((void **)&p1, sizeof(double) * 2 * chunks * D), cudaMalloc((void **)&p2, sizeof(double) * 2 * chunks * D);
    const dim3 bg((unsigned)(rows < 2048 ? rows : 2048), (unsigned)((D + 127) / 128)), bbk(D >= 128 ? 128 : (D + 31) / 32 * 32);
    const dim3 cg((unsigned)((D + 127) / 128), (unsigned)chunks), cb(128);
    auto same16 = [&](const float *f, const unsigned short *h) {
        for (size_t i = 0; i < n; i++)
            if (f2bf(f[i]) != h[i]) return false;
        return true;
    };
    for (int mode : {CS_MOM, CS_BN, CS_BN_RELU}) {  // x (CS_MOM: a) as bf16
        const bool mom = mode == CS_MOM;
        CHECK(run("k_colsum", cg, cb, 0, [=] { k_colsum(mode, mom ? x : dy, x, NULL, NULL, mu, rstd, w, b, NULL, rows, D, rpc, p1, NULL, NULL); }) ==
                      cudaSuccess &&
                  run("k_colsum", cg, cb, 0, [=] {
                      k_colsum(mode, mom ? x : dy, x, NULL, NULL, mu, rstd, w, b, NULL, rows, D, rpc, p2, mom ? x16 : NULL, mom ? NULL : x16);
                  }) == cudaSuccess,
              "k_colsum failed");
        CHECK(!memcmp(p1, p2, sizeof(double) * 2 * chunks * D), "D %d mode %d: k_colsum on bf16 differs", D, mode);
    }
    CHECK(run("k_bn_stats", dim3((D + 127) / 128), dim3(128), 0,
              [=] { k_bn_stats(s0, s1, x, rows, D, 1e-5f, m1, r1, mr1, mr1, 0, NULL); }) == cudaSuccess &&
              run("k_bn_stats", dim3((D + 127) / 128), dim3(128), 0,
                  [=] { k_bn_stats(s0, s1, x, rows, D, 1e-5f, m2, r2, mr2, mr2, 0, x16); }) == cudaSuccess,
          "k_bn_stats failed");
    CHECK(!memcmp(m1, m2, sizeof(float) * D) && !memcmp(r1, r2, sizeof(float) * D), "D %d: k_bn_stats on bf16 differs", D);
    for (int relu = 0; relu < 2; relu++) {
        CHECK(run("k_bn_apply", bg, bbk, 0, [=] { k_bn_apply(x, y1, mean, rstd, NULL, NULL, 1e-5f, w, b, rows, D, relu, NULL, NULL); }) ==
                      cudaSuccess &&
                  run("k_bn_apply", bg, bbk, 0, [=] { k_bn_apply(NULL, NULL, mean, rstd, NULL, NULL, 1e-5f, w, b, rows, D, relu, x16, o16); }) ==
                      cudaSuccess,
              "k_bn_apply failed");
        CHECK(same16(y1, o16), "D %d relu %d: k_bn_apply on bf16 differs", D, relu);
        CHECK(run("k_bn_bwd_dx", bg, bbk, 0, [=] { k_bn_bwd_dx(dy, x, mu, rstd, w, b, s0, s1, y1, rows, D, relu, NULL, NULL, NULL); }) ==
                      cudaSuccess &&
                  run("k_bn_bwd_dx", bg, bbk, 0, [=] { k_bn_bwd_dx(dy, NULL, mu, rstd, w, b, s0, s1, NULL, rows, D, relu, x16, o16, NULL); }) ==
                      cudaSuccess,
              "k_bn_bwd_dx failed");
        CHECK(same16(y1, o16), "D %d relu %d: k_bn_bwd_dx on bf16 differs", D, relu);
    }
    // dy as bf16 too (the LayerNorm + gate's backward writes it so): k_colsum's a and k_bn_bwd_dx's dy
    unsigned short *dy16;
    cudaMalloc((void **)&dy16, 2 * n);
    for (size_t i = 0; i < n; i++) dy16[i] = f2bf(dy[i]), dy[i] = avgen_emu_bf(dy16[i]);
    CHECK(run("k_colsum", cg, cb, 0, [=] { k_colsum(CS_BN, dy, x, NULL, NULL, mu, rstd, w, b, NULL, rows, D, rpc, p1, NULL, NULL); }) ==
                  cudaSuccess &&
              run("k_colsum", cg, cb, 0, [=] { k_colsum(CS_BN, NULL, NULL, NULL, NULL, mu, rstd, w, b, NULL, rows, D, rpc, p2, dy16, x16); }) ==
                  cudaSuccess &&
              run("k_bn_bwd_dx", bg, bbk, 0, [=] { k_bn_bwd_dx(dy, x, mu, rstd, w, b, s0, s1, y1, rows, D, 0, NULL, NULL, NULL); }) ==
                  cudaSuccess &&
              run("k_bn_bwd_dx", bg, bbk, 0, [=] { k_bn_bwd_dx(NULL, NULL, mu, rstd, w, b, s0, s1, NULL, rows, D, 0, x16, o16, dy16); }) ==
                  cudaSuccess,
          "k_colsum / k_bn_bwd_dx on a bf16 dy failed");
    CHECK(!memcmp(p1, p2, sizeof(double) * 2 * chunks * D) && same16(y1, o16), "D %d: the BatchNorm backward on a bf16 dy differs", D);
    // the on-load readers: u as bf16 (x16) against u as the fp32 values of those numbers (x)
    float *bm;  // the loaders' mean: k_bn_stats's float one (m1, which the LayerNorms below reuse for their own)
    cudaMalloc((void **)&bm, sizeof(float) * D);
    memcpy(bm, m1, sizeof(float) * D);
    const BnLoad bn32 = {bm, rstd, w, b, NULL}, bn16 = {bm, rstd, w, b, x16};
    const dim3 lg((unsigned)((rows + 3) / 4)), lb128(128);
    CHECK(run("k_layernorm_bn", lg, lb128, 0, [=] { k_layernorm_bn<V>(x, lw, lb, y1, m1, r1, gate, rows, D, 1e-5f, NULL, bn32); }) ==
                  cudaSuccess &&
              run("k_layernorm_bn", lg, lb128, 0, [=] { k_layernorm_bn<V>(x, lw, lb, y2, m2, r2, gate, rows, D, 1e-5f, NULL, bn16); }) ==
                  cudaSuccess,
          "k_layernorm_bn failed");
    CHECK(!memcmp(y1, y2, sizeof(float) * n) && !memcmp(m1, m2, sizeof(float) * rows) && !memcmp(r1, r2, sizeof(float) * rows),
          "V %d D %d: k_layernorm_bn on a bf16 input differs", V, D);
    if constexpr (V > 0) {
        const long long rpb = 16, blocks = (rows + rpb - 1) / rpb;
        CHECK(blocks <= chunks, "test sizes");
        CHECK(run("k_ln_bwd_cs_bn", dim3((unsigned)blocks), lb128, 0,
                  [=] { k_ln_bwd_cs_bn<V>(dy, x, m1, r1, lw, lb, gate, y1, rd1, rows, D, rpb, p1, bn32); }) == cudaSuccess &&
                  run("k_ln_bwd_cs_bn", dim3((unsigned)blocks), lb128, 0,
                      [=] { k_ln_bwd_cs_bn<V>(dy, x, m1, r1, lw, lb, gate, y2, rd2, rows, D, rpb, p2, bn16); }) == cudaSuccess,
              "k_ln_bwd_cs_bn failed");
        CHECK(!memcmp(y1, y2, sizeof(float) * n) && !memcmp(rd1, rd2, sizeof(double) * rows) &&
                  !memcmp(p1, p2, sizeof(double) * 2 * blocks * D),
              "V %d D %d: k_ln_bwd_cs_bn on a bf16 input differs", V, D);
        // its dx written as bf16 (k_ln_bwd_cs_bn16)
        CHECK(run("k_ln_bwd_cs_bn16", dim3((unsigned)blocks), lb128, 0,
                  [=] { k_ln_bwd_cs_bn16<V>(dy, x, m1, r1, lw, lb, gate, o16, rd2, rows, D, rpb, p2, bn16, NULL); }) == cudaSuccess,
              "k_ln_bwd_cs_bn16 failed");
        CHECK(same16(y1, o16) && !memcmp(rd1, rd2, sizeof(double) * rows) && !memcmp(p1, p2, sizeof(double) * 2 * blocks * D),
              "V %d D %d: k_ln_bwd_cs_bn16 differs from k_ln_bwd_cs_bn", V, D);
        // with dy written as bf16 beside (fused_dy16), on a dy that bf16 does not hold exactly: f2bf of each
        // element (k_to_bf16's bits), everything else unchanged
        float *dyf;
        unsigned short *c16, *q16;
        cudaMalloc((void **)&dyf, sizeof(float) * n), cudaMalloc((void **)&c16, 2 * n), cudaMalloc((void **)&q16, 2 * n);
        size_t inexact = 0;
        for (size_t i = 0; i < n; i++) {
            dyf[i] = dy[i] * (1.0f + 0.001f * (float)(i % 7 + 1));
            inexact += avgen_emu_bf(f2bf(dyf[i])) != dyf[i];
        }
        CHECK(run("k_ln_bwd_cs_bn16", dim3((unsigned)blocks), lb128, 0,
                  [=] { k_ln_bwd_cs_bn16<V>(dyf, x, m1, r1, lw, lb, gate, o16, rd1, rows, D, rpb, p1, bn16, NULL); }) ==
                      cudaSuccess &&
                  run("k_ln_bwd_cs_bn16", dim3((unsigned)blocks), lb128, 0,
                      [=] { k_ln_bwd_cs_bn16<V>(dyf, x, m1, r1, lw, lb, gate, q16, rd2, rows, D, rpb, p2, bn16, c16); }) ==
                      cudaSuccess,
              "k_ln_bwd_cs_bn16 with dy16 failed");
        size_t copied = 0;
        for (size_t i = 0; i < n; i++) copied += c16[i] == f2bf(dyf[i]);
        CHECK(inexact > n / 2 && copied == n && !memcmp(o16, q16, 2 * n) && !memcmp(rd1, rd2, sizeof(double) * rows) &&
                  !memcmp(p1, p2, sizeof(double) * 2 * blocks * D),
              "V %d D %d: k_ln_bwd_cs_bn16's dy16 (%zu of %zu elements its bf16 value, %zu inexact) or its other outputs "
              "differ", V, D, copied, n, inexact);
        for (void *q : {(void *)dyf, (void *)c16, (void *)q16}) cudaFree(q);
    }
    for (void *q : {(void *)x, (void *)dy, (void *)w, (void *)b, (void *)rstd, (void *)mu, (void *)lw, (void *)lb, (void *)gate,
                    (void *)y1, (void *)y2, (void *)m1, (void *)m2, (void *)r1, (void *)r2, (void *)mr1, (void *)mr2, (void *)x16,
                    (void *)o16, (void *)mean, (void *)p1, (void *)p2, (void *)s0, (void *)s1, (void *)rd1, (void *)rd2,
                    (void *)dy16, (void *)bm})
        cudaFree(q);
}

// ------------------------------------------------------------------------- latent exchange, part 1 and 3
// k_lat_dots, k_lat_softmax and k_lat_mix as the backend chains them (lat_exchange in rt_cuda.cu): the forward
// (A1 = softmax(tok . Y), S = tok + A1 Y, the tokens shared by the pairs) and the backward's part 3 (dL1 =
// A1 (dA1 - rowsum(dA1 A1)) with dA1 = dS . Y, dtokp = dS + dL1 Y, dS per pair) against float64 on the host.
// Sizes: N2 past the block's 256 threads (a thread takes several j), D not a multiple of the 256 columns a block
// of k_lat_mix takes, odd P, m up to the bound M.
template <int M> static void test_lat_exchange(int P, int N2, int D, int m) {
    const size_t nA = (size_t)P * m * N2, nS = (size_t)P * m * D;
    float *Y = dev_rand((size_t)P * N2 * D, 1.0f, 0.1f), *tok = dev_rand((size_t)m * D, 0.2f, 0.0f), *dS = dev_rand(nS, 1.0f, 0.0f);
    float *A1, *S, *dL1, *dtokp;
    cudaMalloc((void **)&A1, sizeof(float) * nA), cudaMalloc((void **)&dL1, sizeof(float) * nA);
    cudaMalloc((void **)&S, sizeof(float) * nS), cudaMalloc((void **)&dtokp, sizeof(float) * nS);
    const dim3 gd(P, (N2 + 7) / 8), gs(P), gm(P, (D + 255) / 256), b256(256);
    const long long mD = (long long)m * D;
    CHECK(run("k_lat_dots", gd, b256, 0, [=] { k_lat_dots<M>(tok, 0, Y, A1, N2, D, m); }) == cudaSuccess &&
              run("k_lat_softmax", gs, b256, 0, [=] { k_lat_softmax(A1, NULL, N2, m); }) == cudaSuccess &&
              run("k_lat_mix", gm, b256, 0, [=] { k_lat_mix<M>(A1, tok, 0, 1, Y, S, N2, D, m); }) == cudaSuccess &&
              run("k_lat_dots", gd, b256, 0, [=] { k_lat_dots<M>(dS, mD, Y, dL1, N2, D, m); }) == cudaSuccess &&
              run("k_lat_softmax", gs, b256, 0, [=] { k_lat_softmax(dL1, A1, N2, m); }) == cudaSuccess &&
              run("k_lat_mix", gm, b256, 0, [=] { k_lat_mix<M>(dL1, dS, mD, 0, Y, dtokp, N2, D, m); }) == cudaSuccess,
          "M %d: the latent exchange kernels failed", M);
    double wa = 0, ws = 0, wl = 0, wt = 0;
    std::vector<double> a(N2), g(N2), ga(N2);
    for (int p = 0; p < P; p++)
        for (int i = 0; i < m; i++) {
            const float *y = Y + (size_t)p * N2 * D, *t = tok + (size_t)i * D, *ds = dS + ((size_t)p * m + i) * D;
            const size_t ai = ((size_t)p * m + i) * N2, si = ((size_t)p * m + i) * D;
            double mx = -1e300, se = 0, r = 0;
            for (int j = 0; j < N2; j++) {
                double s = 0, q = 0, qa = 0;
                for (int d = 0; d < D; d++) {
                    const double yv = y[(size_t)j * D + d];
                    s += (double)t[d] * yv, q += (double)ds[d] * yv, qa += fabs((double)ds[d] * yv);
                }
                a[j] = s, g[j] = q, ga[j] = qa, mx = s > mx ? s : mx;
            }
            for (int j = 0; j < N2; j++) se += exp(a[j] - mx);
            for (int j = 0; j < N2; j++) a[j] = exp(a[j] - mx) / se, r += g[j] * a[j];
            double ra = 0;  // r's terms' size
            for (int j = 0; j < N2; j++) ra += a[j] * ga[j];
            for (int j = 0; j < N2; j++) {  // dL1 relative to its terms' size: the dot dA1 and dA1 - r cancel
                const double cond = a[j] * (ga[j] + ra);
                g[j] = a[j] * (g[j] - r);
                wa = worse(wa, fabs(A1[ai + j] - a[j]) / (1e-3 + fabs(a[j])));
                wl = worse(wl, fabs(dL1[ai + j] - g[j]) / (1e-6 + cond));
            }
            for (int d = 0; d < D; d++) {
                double s = t[d], q = ds[d];
                for (int j = 0; j < N2; j++) s += a[j] * y[(size_t)j * D + d], q += g[j] * y[(size_t)j * D + d];
                ws = worse(ws, fabs(S[si + d] - s) / (1 + fabs(s)));
                wt = worse(wt, fabs(dtokp[si + d] - q) / (1 + fabs(q)));
            }
        }
    CHECK(wa < 1e-5 && ws < 1e-5 && wl < 1e-6 && wt < 1e-5,  // false for NaN
          "M %d P %d N2 %d D %d m %d: worst relative errors A1 %.2g, S %.2g, dL1 %.2g, dtokp %.2g", M, P, N2, D, m, wa, ws,
          wl, wt);
    for (void *q : {(void *)Y, (void *)tok, (void *)dS, (void *)A1, (void *)S, (void *)dL1, (void *)dtokp}) cudaFree(q);
}

// ----------------------------------------------------------------------- the adapter's gated fuse applied on load
// k_layernorm_lat<V> on X (the fuse Z = X + gate_av A2 S applied on load) against k_layernorm<V> on the Z that
// k_latent_b<M> stores, k_ln_bwd_cs_lat<V> against k_ln_bwd_cs<V>, and k_lat_z against that Z: the same bits
// (lat_z's arithmetic); k_latent_b without Z writes the same A2. Z itself against a double reference.
template <int V, int M> static void test_lat_on_load(int P, int N, int D, int m) {
    const long long rows = (long long)P * N;
    const size_t n = (size_t)rows * D;
    float *X = dev_rand(n, 2.0f, 0.3f), *S = dev_rand((size_t)P * m * D, 0.5f, 0.0f), *gav = dev_rand(1, 0.0f, 0.6f);
    float *lw = dev_rand(D, 0.5f, 1.0f), *lb = dev_rand(D, 0.3f, 0.0f), *dy = dev_rand(n, 1.0f, 0.0f);
    float *Z, *z2, *A2a, *A2b, *y1, *y2, *mu1, *mu2, *rs1, *rs2, *dx1, *dx2;
    unsigned short *yb1, *yb2;
    double *p1, *p2;
    for (float **q : {&Z, &z2, &y1, &y2, &dx1, &dx2}) cudaMalloc((void **)q, sizeof(float) * n);
    for (float **q : {&A2a, &A2b}) cudaMalloc((void **)q, sizeof(float) * (size_t)rows * m);
    for (float **q : {&mu1, &mu2, &rs1, &rs2}) cudaMalloc((void **)q, sizeof(float) * rows);
    cudaMalloc((void **)&yb1, 2 * n), cudaMalloc((void **)&yb2, 2 * n);
    const long long rpb = 16, blocks = (rows + rpb - 1) / rpb;
    cudaMalloc((void **)&p1, sizeof(double) * 2 * blocks * D), cudaMalloc((void **)&p2, sizeof(double) * 2 * blocks * D);
    const dim3 bgr((unsigned)((rows + 7) / 8)), b256(256), lg((unsigned)((rows + 3) / 4)), lb128(128);
    CHECK(run("k_latent_b", bgr, b256, 0, [=] { k_latent_b<M>(X, S, gav, Z, A2a, rows, N, D, m, NULL, 0, NULL); }) ==
                  cudaSuccess &&
              run("k_latent_b", bgr, b256, 0, [=] { k_latent_b<M>(X, S, gav, NULL, A2b, rows, N, D, m, NULL, 0, NULL); }) ==
                  cudaSuccess,
          "k_latent_b failed");
    CHECK(!memcmp(A2a, A2b, sizeof(float) * (size_t)rows * m), "M %d m %d: k_latent_b without Z writes another A2", M, m);
    {  // with another adapter's logits over X (tok2: a carry, rt_cuda_latdots_reader): k_lat_dots's bits, A2 as before
        for (const int m2 : {1, M}) {
            float *tok2 = dev_rand((size_t)m2 * D, 1.0f, 0.2f), *L1, *L2, *A2c;
            cudaMalloc((void **)&L1, sizeof(float) * (size_t)P * m2 * N), cudaMalloc((void **)&L2, sizeof(float) * (size_t)P * m2 * N);
            cudaMalloc((void **)&A2c, sizeof(float) * (size_t)rows * m);
            CHECK(run("k_lat_dots", dim3(P, (N + 7) / 8), b256, 0, [=] { k_lat_dots<M>(tok2, 0, X, L1, N, D, m2); }) == cudaSuccess &&
                      run("k_latent_b", bgr, b256, 0,
                          [=] { k_latent_b<M>(X, S, gav, NULL, A2c, rows, N, D, m, tok2, m2, L2); }) == cudaSuccess,
                  "k_latent_b with tok2 failed");
            CHECK(!memcmp(L1, L2, sizeof(float) * (size_t)P * m2 * N) && !memcmp(A2c, A2a, sizeof(float) * (size_t)rows * m),
                  "M %d m %d m2 %d: k_latent_b's logits over X differ from k_lat_dots's, or its A2 changed", M, m, m2);
            for (void *q : {(void *)tok2, (void *)L1, (void *)L2, (void *)A2c}) cudaFree(q);
        }
    }
    double worst = 0;
    for (long long r = 0; r < rows; r++)
        for (int d = 0; d < D; d++) {
            double z = 0;
            for (int i = 0; i < m; i++) z += (double)A2a[r * m + i] * S[((size_t)(r / N) * m + i) * D + d];
            z = X[r * D + d] + (double)gav[0] * z;
            worst = worse(worst, fabs(z - Z[r * D + d]) / fmax(1.0, fabs(z)));
        }
    CHECK(worst < 1e-6, "M %d m %d: k_latent_b's Z off by %g", M, m, worst);
    const LatLoad lat = {A2a, S, gav, N, m};
    CHECK(run("k_lat_z", lg, lb128, 0, [=] { k_lat_z(X, z2, rows, D, lat); }) == cudaSuccess, "k_lat_z failed");
    CHECK(!memcmp(Z, z2, sizeof(float) * n), "V %d m %d: k_lat_z differs from k_latent_b's Z", V, m);
    for (int bf = 0; bf < 2; bf++) {
        unsigned short *o1 = bf ? yb1 : NULL, *o2 = bf ? yb2 : NULL;
        CHECK(run("k_layernorm", lg, lb128, 0,
                  [=] { k_layernorm<V>(Z, D, lw, lb, y1, D, mu1, rs1, NULL, NULL, rows, D, 1e-5f, o1); }) == cudaSuccess &&
                  run("k_layernorm_lat", lg, lb128, 0,
                      [=] { k_layernorm_lat<V>(X, lw, lb, y2, mu2, rs2, rows, D, 1e-5f, o2, lat); }) == cudaSuccess,
              "k_layernorm(_lat) failed");
        CHECK((bf ? !memcmp(yb1, yb2, 2 * n) : !memcmp(y1, y2, sizeof(float) * n)) && !memcmp(mu1, mu2, sizeof(float) * rows) &&
                  !memcmp(rs1, rs2, sizeof(float) * rows),
              "V %d D %d m %d bf16 %d: k_layernorm_lat differs from k_layernorm on the stored fuse", V, D, m, bf);
        // the latent op and that LayerNorm as one kernel (k_latent_ln, with a carry's logits): the same bits as
        // k_latent_b (A2), k_lat_dots (the logits) and k_layernorm_lat (y, its mean and rstd)
        if constexpr (V > 0)
            if (m <= kLatLnM) {
                const int m2 = m == 1 ? 2 : 1;
                float *tok2 = dev_rand((size_t)m2 * D, 1.0f, 0.2f), *L1, *L2, *A2c, *y3, *mu3, *rs3;
                unsigned short *yb3;
                cudaMalloc((void **)&L1, sizeof(float) * (size_t)P * m2 * N), cudaMalloc((void **)&L2, sizeof(float) * (size_t)P * m2 * N);
                cudaMalloc((void **)&A2c, sizeof(float) * (size_t)rows * m), cudaMalloc((void **)&y3, sizeof(float) * n);
                cudaMalloc((void **)&mu3, sizeof(float) * rows), cudaMalloc((void **)&rs3, sizeof(float) * rows), cudaMalloc((void **)&yb3, 2 * n);
                unsigned short *o3 = bf ? yb3 : NULL;
                CHECK(run("k_lat_dots", dim3(P, (N + 7) / 8), b256, 0, [=] { k_lat_dots<M>(tok2, 0, X, L1, N, D, m2); }) == cudaSuccess &&
                          run("k_latent_ln", lg, lb128, 0,
                              [=] { k_latent_ln<V>(X, S, gav, A2c, rows, N, D, m, tok2, m2, L2, lw, lb, y3, mu3, rs3, 1e-5f, o3); }) ==
                              cudaSuccess,
                      "k_latent_ln failed");
                CHECK(!memcmp(A2c, A2a, sizeof(float) * (size_t)rows * m) && !memcmp(L1, L2, sizeof(float) * (size_t)P * m2 * N) &&
                          (bf ? !memcmp(yb3, yb2, 2 * n) : !memcmp(y3, y2, sizeof(float) * n)) &&
                          !memcmp(mu3, mu2, sizeof(float) * rows) && !memcmp(rs3, rs2, sizeof(float) * rows),
                      "V %d D %d m %d m2 %d bf16 %d: k_latent_ln differs from k_latent_b, k_lat_dots and k_layernorm_lat", V, D, m,
                      m2, bf);
                for (void *q : {(void *)tok2, (void *)L1, (void *)L2, (void *)A2c, (void *)y3, (void *)mu3, (void *)rs3, (void *)yb3})
                    cudaFree(q);
            }
    }
    if constexpr (V > 0) {
        CHECK(run("k_ln_bwd_cs", dim3((unsigned)blocks), lb128, 0,
                  [=] { k_ln_bwd_cs<V>(dy, Z, mu1, rs1, lw, lb, NULL, dx1, D, NULL, rows, D, rpb, p1); }) == cudaSuccess &&
                  run("k_ln_bwd_cs_lat", dim3((unsigned)blocks), lb128, 0,
                      [=] { k_ln_bwd_cs_lat<V>(dy, X, mu1, rs1, lw, lb, NULL, dx2, NULL, rows, D, rpb, p2, lat); }) == cudaSuccess,
              "k_ln_bwd_cs(_lat) failed");
        CHECK(!memcmp(dx1, dx2, sizeof(float) * n) && !memcmp(p1, p2, sizeof(double) * 2 * blocks * D),
              "V %d D %d m %d: k_ln_bwd_cs_lat differs from k_ln_bwd_cs on the stored fuse", V, D, m);
        // dy and dx as bf16 (k_ln_bwd_cs_lat16) against fp32 dy holding the same numbers, dx rounded
        for (size_t i = 0; i < n; i++) yb1[i] = f2bf(dy[i]), dy[i] = avgen_emu_bf(yb1[i]);
        CHECK(run("k_ln_bwd_cs_lat", dim3((unsigned)blocks), lb128, 0,
                  [=] { k_ln_bwd_cs_lat<V>(dy, X, mu1, rs1, lw, lb, NULL, dx2, NULL, rows, D, rpb, p2, lat); }) == cudaSuccess &&
                  run("k_ln_bwd_cs_lat16", dim3((unsigned)blocks), lb128, 0,
                      [=] { k_ln_bwd_cs_lat16<V>(yb1, X, mu1, rs1, lw, yb2, rows, D, rpb, p1, lat); }) == cudaSuccess,
              "k_ln_bwd_cs_lat(16) failed");
        bool same = !memcmp(p1, p2, sizeof(double) * 2 * blocks * D);
        for (size_t i = 0; i < n && same; i++) same = f2bf(dx2[i]) == yb2[i];
        CHECK(same, "V %d D %d m %d: k_ln_bwd_cs_lat16 differs from k_ln_bwd_cs_lat on the same values", V, D, m);
        // the latent backward's row and dS kernels on that bf16 gradient against its fp32 values
        float *dL2a, *dL2b, *gXa, *gXb, *dSa, *dSb;
        double *rga, *rgb;
        for (float **q : {&dL2a, &dL2b}) cudaMalloc((void **)q, sizeof(float) * (size_t)rows * m);
        for (float **q : {&gXa, &gXb}) cudaMalloc((void **)q, sizeof(float) * n);
        for (float **q : {&dSa, &dSb}) cudaMalloc((void **)q, sizeof(float) * (size_t)P * m * D);
        cudaMalloc((void **)&rga, sizeof(double) * rows), cudaMalloc((void **)&rgb, sizeof(double) * rows);
        for (size_t i = 0; i < n; i++) gXa[i] = gXb[i] = frand();
        const unsigned short *dz16 = yb2;
        float *dzf = dx2;
        for (size_t i = 0; i < n; i++) dzf[i] = avgen_emu_bf(dz16[i]);
        CHECK(run("k_latbwd_rows", bgr, b256, 0, [=] { k_latbwd_rows<M>(dzf, S, A2a, gav, rga, dL2a, gXa, rows, N, D, m, NULL, LatGy{}); }) ==
                      cudaSuccess &&
                  run("k_latbwd_rows", bgr, b256, 0,
                      [=] { k_latbwd_rows<M>(NULL, S, A2a, gav, rgb, dL2b, gXb, rows, N, D, m, dz16, LatGy{}); }) == cudaSuccess &&
                  run("k_latbwd_ds", dim3(P, (D + 127) / 128), dim3(128), 0,
                      [=] { k_latbwd_ds<M>(dzf, X, A2a, dL2a, gav, dSa, N, D, m, NULL); }) == cudaSuccess &&
                  run("k_latbwd_ds", dim3(P, (D + 127) / 128), dim3(128), 0,
                      [=] { k_latbwd_ds<M>(NULL, X, A2a, dL2a, gav, dSb, N, D, m, dz16); }) == cudaSuccess,
              "k_latbwd_rows / k_latbwd_ds failed");
        CHECK(!memcmp(rga, rgb, sizeof(double) * rows) && !memcmp(dL2a, dL2b, sizeof(float) * (size_t)rows * m) &&
                  !memcmp(gXa, gXb, sizeof(float) * n) && !memcmp(dSa, dSb, sizeof(float) * (size_t)P * m * D),
              "M %d m %d: the latent backward on a bf16 dZ differs from its fp32 values", M, m);
        for (void *q : {(void *)dL2a, (void *)dL2b, (void *)gXa, (void *)gXb, (void *)dSa, (void *)dSb, (void *)rga, (void *)rgb})
            cudaFree(q);
    }
    for (void *q : {(void *)X, (void *)S, (void *)gav, (void *)lw, (void *)lb, (void *)dy, (void *)Z, (void *)z2, (void *)A2a,
                    (void *)A2b, (void *)y1, (void *)y2, (void *)mu1, (void *)mu2, (void *)rs1, (void *)rs2, (void *)dx1,
                    (void *)dx2, (void *)yb1, (void *)yb2, (void *)p1, (void *)p2})
        cudaFree(q);
}

// k_ln_bwd_bf<V> (dy stored as bf16) against k_ln_bwd<V> on dy's values in fp32: the same bits, dx accumulated.
template <int V> static void test_ln_bwd_bf(long long rows, int D) {
    const size_t n = (size_t)rows * D;
    float *dyf, *x, *mu, *rs, *w, *dx1, *dx2;
    unsigned short *dy16;
    for (float **q : {&dyf, &x, &dx1, &dx2}) cudaMalloc((void **)q, sizeof(float) * n);
    for (float **q : {&mu, &rs}) cudaMalloc((void **)q, sizeof(float) * rows);
    cudaMalloc((void **)&w, sizeof(float) * D), cudaMalloc((void **)&dy16, 2 * n);
    for (size_t i = 0; i < n; i++) {
        dy16[i] = f2bf(frand()), dyf[i] = bf(avgen_emu_bf(dy16[i]));
        x[i] = 2.0f * frand() + 0.3f, dx1[i] = dx2[i] = 0.5f * frand();
    }
    for (long long r = 0; r < rows; r++) mu[r] = 0.3f + 0.01f * frand(), rs[r] = 0.9f + 0.1f * frand();
    for (int d = 0; d < D; d++) w[d] = 1.0f + 0.3f * frand();
    const dim3 lg((unsigned)((rows + 3) / 4)), lb(128);
    CHECK(run("k_ln_bwd", lg, lb, 0, [=] { k_ln_bwd<V>(dyf, x, mu, rs, w, NULL, NULL, dx1, D, 1, NULL, rows, D); }) ==
                  cudaSuccess &&
              run("k_ln_bwd_bf", lg, lb, 0, [=] { k_ln_bwd_bf<V>(dy16, x, mu, rs, w, dx2, D, 1, rows, D); }) == cudaSuccess,
          "k_ln_bwd(_bf) failed");
    CHECK(!memcmp(dx1, dx2, sizeof(float) * n), "V %d D %d: k_ln_bwd_bf differs from k_ln_bwd", V, D);
    for (void *q : {(void *)dyf, (void *)x, (void *)mu, (void *)rs, (void *)w, (void *)dx1, (void *)dx2, (void *)dy16}) cudaFree(q);
}

// ------------------------------------------------------------------------ the LayerNorm backward with a latent pair
// k_latbwd_rows_ln<V> (dy fp32) and k_latbwd_rows_lnbf<V> (dy bf16) against what they fuse, one after the other:
// k_ln_bwd<V> / k_ln_bwd_bf<V> adding to gX, then k_latbwd_rows<2> adding its term and the other op's part 4
// term (LatGy): the same bits in gX, dL2 and rowdg. V = 24 at ViT-B's width (the emulated programs are narrower).
template <int V> static void test_latbwd_ln(int P, int N, int D, int m, int bf) {
    const long long rows = (long long)P * N;
    const size_t n = (size_t)rows * D, nS = (size_t)P * m * D, nA = (size_t)P * m * N;
    float *dy = dev_rand(n, 1.0f, 0.0f), *x = dev_rand(n, 2.0f, 0.3f), *w = dev_rand(D, 0.3f, 1.0f), *dZ = dev_rand(n, 1.0f, 0.0f);
    float *S = dev_rand(nS, 0.5f, 0.0f), *A2 = dev_rand((size_t)rows * m, 0.5f, 0.5f), *gav = dev_rand(1, 0.0f, 0.7f);
    float *oA1 = dev_rand(nA, 0.5f, 0.5f), *odS = dev_rand(nS, 1.0f, 0.0f), *odL1 = dev_rand(nA, 0.3f, 0.0f);
    float *otok = dev_rand(nS / P, 0.2f, 0.0f), *mu = dev_rand(rows, 0.01f, 0.3f), *rs = dev_rand(rows, 0.1f, 0.9f);
    float *g1 = dev_rand(n, 1.0f, 0.0f), *g2, *l1, *l2;
    double *r1, *r2;
    unsigned short *dy16;
    cudaMalloc((void **)&g2, sizeof(float) * n), cudaMalloc((void **)&dy16, 2 * n);
    cudaMalloc((void **)&l1, sizeof(float) * (size_t)rows * m), cudaMalloc((void **)&l2, sizeof(float) * (size_t)rows * m);
    cudaMalloc((void **)&r1, sizeof(double) * rows), cudaMalloc((void **)&r2, sizeof(double) * rows);
    memcpy(g2, g1, sizeof(float) * n);
    for (size_t i = 0; i < n; i++) dy16[i] = f2bf(dy[i]);
    const LatGy oy = {oA1, odS, odL1, otok, m};
    const LnBwdIn li = {bf ? (const void *)dy16 : (const void *)dy, x, mu, rs, w};
    const dim3 lg((unsigned)((rows + 3) / 4)), b128(128), rg((unsigned)((rows + 7) / 8)), b256(256);
    CHECK(run(bf ? "k_ln_bwd_bf" : "k_ln_bwd", lg, b128, 0,
              [=] {
                  if (bf) k_ln_bwd_bf<V>(dy16, x, mu, rs, w, g1, D, 1, rows, D);
                  else k_ln_bwd<V>(dy, x, mu, rs, w, NULL, NULL, g1, D, 1, NULL, rows, D);
              }) == cudaSuccess &&
              run("k_latbwd_rows", rg, b256, 0,
                  [=] { k_latbwd_rows<2>(dZ, S, A2, gav, r1, l1, g1, rows, N, D, m, NULL, oy); }) == cudaSuccess &&
              run(bf ? "k_latbwd_rows_lnbf" : "k_latbwd_rows_ln", lg, b128, 0,
                  [=] {
                      if (bf) k_latbwd_rows_lnbf<V>(li, dZ, S, A2, gav, r2, l2, g2, rows, N, D, m, NULL, oy);
                      else k_latbwd_rows_ln<V>(li, dZ, S, A2, gav, r2, l2, g2, rows, N, D, m, NULL, oy);
                  }) == cudaSuccess,
          "V %d bf16 %d: the LayerNorm backward with a latent pair failed", V, bf);
    CHECK(!memcmp(g1, g2, sizeof(float) * n) && !memcmp(l1, l2, sizeof(float) * (size_t)rows * m) &&
              !memcmp(r1, r2, sizeof(double) * rows),
          "V %d D %d m %d bf16 %d: k_latbwd_rows_ln differs from k_ln_bwd then k_latbwd_rows", V, D, m, bf);
    for (void *q : {(void *)dy, (void *)x, (void *)w, (void *)dZ, (void *)S, (void *)A2, (void *)gav, (void *)oA1, (void *)odS,
                    (void *)odL1, (void *)otok, (void *)mu, (void *)rs, (void *)g1, (void *)g2, (void *)l1, (void *)l2,
                    (void *)r1, (void *)r2, (void *)dy16})
        cudaFree(q);
}

// k_latbwd_gy_ln<V> / k_latbwd_gy_lnbf<V> against k_ln_bwd<V> / k_ln_bwd_bf<V> adding to gY, then k_latbwd_gy (its
// float4 path when D % 4 == 0) with the other op's gX term (LatRows, dZ fp32 or bf16): the same bits in gY.
template <int V> static void test_latbwd_gy_ln(int P, int N2, int D, int m, int m2, int bf) {
    const long long rows = (long long)P * N2;
    const size_t n = (size_t)rows * D, nS = (size_t)P * m * D, nA = (size_t)P * m * N2;
    float *dy = dev_rand(n, 1.0f, 0.0f), *x = dev_rand(n, 2.0f, 0.3f), *w = dev_rand(D, 0.3f, 1.0f);
    float *mu = dev_rand(rows, 0.01f, 0.3f), *rs = dev_rand(rows, 0.1f, 0.9f), *A1 = dev_rand(nA, 0.5f, 0.5f);
    float *dS = dev_rand(nS, 1.0f, 0.0f), *dL1 = dev_rand(nA, 0.3f, 0.0f), *tok = dev_rand(nS / P, 0.2f, 0.0f);
    float *dZ = dev_rand(n, 1.0f, 0.0f), *dL2 = dev_rand((size_t)rows * m2, 0.5f, 0.0f), *S2 = dev_rand((size_t)P * m2 * D, 0.5f, 0.0f);
    float *g1 = dev_rand(n, 1.0f, 0.0f), *g2;
    unsigned short *dy16, *dz16;
    cudaMalloc((void **)&g2, sizeof(float) * n), cudaMalloc((void **)&dy16, 2 * n), cudaMalloc((void **)&dz16, 2 * n);
    memcpy(g2, g1, sizeof(float) * n);
    for (size_t i = 0; i < n; i++) dy16[i] = f2bf(dy[i]), dz16[i] = f2bf(dZ[i]);
    const LatRows orow = {bf ? NULL : dZ, bf ? dz16 : NULL, dL2, S2, m2};
    const LnBwdIn li = {bf ? (const void *)dy16 : (const void *)dy, x, mu, rs, w};
    const int cols = D % 4 ? D : D / 4, th = cols < 256 ? (cols + 31) / 32 * 32 : 256;
    const dim3 lg((unsigned)((rows + 3) / 4)), b128(128), gg((unsigned)(rows < 4096 ? rows : 4096), (unsigned)((cols + th - 1) / th));
    CHECK(run(bf ? "k_ln_bwd_bf" : "k_ln_bwd", lg, b128, 0,
              [=] {
                  if (bf) k_ln_bwd_bf<V>(dy16, x, mu, rs, w, g1, D, 1, rows, D);
                  else k_ln_bwd<V>(dy, x, mu, rs, w, NULL, NULL, g1, D, 1, NULL, rows, D);
              }) == cudaSuccess &&
              run("k_latbwd_gy", gg, dim3(th), 0, [=] { k_latbwd_gy(A1, dS, dL1, tok, g1, P, N2, D, m, orow); }) == cudaSuccess &&
              run(bf ? "k_latbwd_gy_lnbf" : "k_latbwd_gy_ln", lg, b128, 0,
                  [=] {
                      if (bf) k_latbwd_gy_lnbf<V>(li, A1, dS, dL1, tok, g2, P, N2, D, m, orow);
                      else k_latbwd_gy_ln<V>(li, A1, dS, dL1, tok, g2, P, N2, D, m, orow);
                  }) == cudaSuccess,
          "V %d bf16 %d: the LayerNorm backward with part 4 failed", V, bf);
    CHECK(!memcmp(g1, g2, sizeof(float) * n), "V %d D %d m %d/%d bf16 %d: k_latbwd_gy_ln differs from k_ln_bwd then k_latbwd_gy",
          V, D, m, m2, bf);
    for (void *q : {(void *)dy, (void *)x, (void *)w, (void *)mu, (void *)rs, (void *)A1, (void *)dS, (void *)dL1, (void *)tok,
                    (void *)dZ, (void *)dL2, (void *)S2, (void *)g1, (void *)g2, (void *)dy16, (void *)dz16})
        cudaFree(q);
}

// ------------------------------------------------------------------------------------- sums over pairs
// k_sum_pairs as the backend launches it ((n + 31) / 32 blocks of 8 warps) against the float64 sum: every column
// added once into dst, none outside n touched; P below, at and above the warps' count, n not a multiple of 32.
static void test_sum_pairs(int P, long long n) {
    float *src = dev_rand((size_t)P * n, 1.0f, 0.25f), *dst = dev_rand((size_t)n + 32, 1.0f, 0.0f);
    std::vector<float> before(dst, dst + n + 32);
    CHECK(run("k_sum_pairs", dim3((unsigned)((n + 31) / 32)), dim3(32 * kSumWarps), 0,
              [=] { k_sum_pairs(src, dst, P, n); }) == cudaSuccess,
          "k_sum_pairs failed");
    double worst = 0;
    for (long long e = 0; e < n; e++) {
        double t = 0;
        for (int p = 0; p < P; p++) t += src[(size_t)p * n + e];
        const double want = (double)(float)((double)before[e] + (double)(float)t);
        worst = worse(worst, fabs(dst[e] - want) / (fabs(want) + 1e-30));
    }
    CHECK(worst <= 1.2e-7, "P %d n %lld: k_sum_pairs %.2e from the float64 sum", P, n, worst);
    CHECK(!memcmp(dst + n, before.data() + n, sizeof(float) * 32), "P %d n %lld: k_sum_pairs wrote past n", P, n);
    cudaFree(src), cudaFree(dst);
}

int main() {
    setenv("AVGEN_EMU_RACECHECK", "1", 1);  // every launch below also runs in reverse order and must agree
    test_emulator();
    test_lt();
    test_attention<64>(1, 197, 2);
    test_attention<64>(2, 49, 1);
    test_attention<16>(3, 7, 2);
    test_attention<64>(2, 150, 1);  // two whole chunks of 64 keys and a part (AVGEN_ATTN_CHUNK)
    test_attention<32>(1, 130, 2);
    test_attention_shapes<64, 197, 2>(1);
    test_attention_shapes<64, 49, 3>(3);
    test_attention_shapes<16, 7, 2>(5);
    test_gelu(4096);
    test_gelu(4097);
    test_gelu(7);
    test_ln_bwd_bf<24>(37, 768);
    test_ln_bwd_bf<0>(9, 100);
    for (int bf = 0; bf < 2; bf++) {
        test_latbwd_ln<24>(3, 49, 768, 2, bf);
        test_latbwd_ln<1>(5, 7, 32, 1, bf);
        test_latbwd_gy_ln<24>(3, 49, 768, 2, 2, bf);
        test_latbwd_gy_ln<2>(2, 9, 62, 3, 1, bf);  // (D % 4 != 0: k_latbwd_gy's scalar path)
    }
    test_bn_on_load<24>(70, 768);
    test_bn_on_load<2>(45, 40);
    test_bn_on_load<0>(9, 100);
    test_bn_bf16<24>(70, 768);
    test_bn_bf16<2>(45, 40);
    test_bn_bf16<0>(9, 100);
    test_sum_pairs(256, 1536);
    test_sum_pairs(7, 37);
    test_sum_pairs(1, 33);
    test_sum_pairs(9, 36864);
    test_lat_exchange<2>(3, 197, 768, 2);
    test_lat_exchange<4>(2, 300, 300, 3);
    test_lat_exchange<16>(1, 5, 32, 16);
    test_lat_on_load<24, 2>(3, 49, 768, 2);
    test_lat_on_load<2, 2>(2, 13, 40, 2);  // (k_latent_ln at each register width)
    test_lat_on_load<1, 2>(3, 5, 32, 1);
    test_lat_on_load<2, 4>(2, 13, 40, 3);
    test_lat_on_load<1, 16>(3, 5, 32, 16);
    test_lat_on_load<0, 8>(1, 9, 100, 5);
    test_ln_bwd_cs<24>(333, 768, true);
    test_ln_bwd_cs<24>(70, 740, false);
    test_ln_bwd_cs<2>(45, 40, true);
    test_ln_bwd_cs<1>(9, 32, false);
    printf("%d passed, %d failed\n", pass, fail);
    return fail ? 1 : 0;
}
