// rt_cuda_kernels.cuh: the CUDA backend's device code (every kernel of rt_cuda.cu), self-contained: no
// includes, so nvcc (rt_cuda.cu includes it inside its own namespace) and NVRTC (tests/test_nvrtc.c; the
// emitted kernels.cu includes a copy) compile the same text. Semantics: runtime/rt_cpu_ops.c.
// Arithmetic: every build compiles this text without FMA contraction (nvcc -fmad=false, NVRTC --fmad=false;
// the tests read the PTX: no add, multiply or FMA without a rounding mode), so each FMA here is written out
// (__fmaf_rn, __fma_rn: the sums of products below) and the GPU runs exactly the operations written, as the
// CUDA emulator does.
#ifndef AVGEN_RT_CUDA_KERNELS_CUH
#define AVGEN_RT_CUDA_KERNELS_CUH
#ifndef INFINITY
#define INFINITY __int_as_float(0x7f800000)
#endif
// A kernel's dynamic shared memory (the launch's byte count), a static shared array (element type, with
// qualifiers such as __align__; name; count) and a vector access (vld, vst below: its address, bytes, and 1 for a
// store). The CUDA emulator (runtime/emu, which compiles this text as host C++ for the tests) defines its own:
// shared arrays filled with NaN bytes at each block's start, a fault on a misaligned vector access, and in its
// tracing build (docs/emulator.md) the vector access recorded as the one instruction it is on the GPU.
#ifndef AVGEN_DYNAMIC_SMEM
#define AVGEN_DYNAMIC_SMEM(T, name) extern __shared__ T name[]
#endif
#ifndef AVGEN_SHARED
#define AVGEN_SHARED(T, name, n) __shared__ T name[n]
#endif
#ifndef AVGEN_VECTOR_ACCESS
#define AVGEN_VECTOR_ACCESS(p, bytes, store) ((void)0)
#endif

// The optimizer's tables, shared with the host code: one segment per trainable tensor (weights, gradient,
// Adam moments), walked in chunks of kAdamChunk elements; the step's scalars live in device memory so a
// captured CUDA graph picks up new values at every replay.
struct AdamSeg {
    float *w, *g, *m, *v;
    long long n;
    int head;
};

struct AdamScalars {
    double bc1, bc2, lr_adapter, lr_head, grad_scale;
};

constexpr int kAdamChunk = 4096;

// ------------------------------------------------------------------------------------ device helpers

// A vector type V (float2, float4, uint2, unsigned: several elements of T) loaded from or stored to p.
template <class V, class T> __device__ __forceinline__ V vld(const T *p) {
    AVGEN_VECTOR_ACCESS(p, sizeof(V), 0);
    return *(const V *)p;
}
template <class V, class T> __device__ __forceinline__ void vst(T *p, V v) {
    AVGEN_VECTOR_ACCESS(p, sizeof(V), 1);
    *(V *)p = v;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide reduction (blockDim a multiple of 32, at most 1024): each warp reduces with shuffles, then
// every thread combines the warps' results in warp order; every thread gets the result.
template <class T, class Op>
__device__ T block_reduce(T v, T init, Op op) {
    AVGEN_SHARED(T, sh, 32);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    T t = init;
    for (int i = 0; i < nw; i++) t = op(t, sh[i]);
    return t;
}
__device__ double block_sum_d(double v) {
    return block_reduce(v, 0.0, [](double a, double b) { return a + b; });
}
__device__ float block_max(float v) {
    return block_reduce(v, -INFINITY, [](float a, float b) { return fmaxf(a, b); });
}

// GELU in float: 0.5 x erfc(-x / sqrt 2) (erfc keeps its relative accuracy where 1 + erf(x / sqrt 2) would
// cancel, below x = -3 or so) and its derivative Phi(x) + x phi(x); within a few ulp of the CPU reference's
// double arithmetic. (They were double: the FP64 erf and exp held the GELU kernels to about half the memory
// bandwidth on the H100.)
__device__ __forceinline__ float gelu_f(float x) { return 0.5f * x * erfcf(-0.70710678118654752440f * x); }
__device__ __forceinline__ float gelu_grad_f(float x) {
    return 0.5f * erfcf(-0.70710678118654752440f * x) + 0.39894228040143267794f * x * expf(-0.5f * x * x);
}

// A float as bf16 bits, rounded to nearest even (cvt.rn.bf16.f32's rounding, in integer arithmetic so it
// builds for every architecture); NaN stays a quiet NaN.
__device__ __forceinline__ unsigned short f2bf(float f) {
    const unsigned u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// An element as float from fp32 or bf16 storage (bf16: the high half of its float's bits).
__device__ __forceinline__ float ld_f(const float *p) { return *p; }
__device__ __forceinline__ float ld_f(const unsigned short *p) { return __uint_as_float((unsigned)*p << 16); }
// Element i of a tensor stored as fp32 (f) or, when h is non-null, as bf16 (h) (rt_cuda_bf16_operands).
__device__ __forceinline__ float ld_fh(const float *f, const unsigned short *h, size_t i) { return h ? ld_f(h + i) : f[i]; }

// ------------------------------------------------------------------------------------------ kernels

// Patch embedding, step 1: im2col of every image; row = (pair, patch), column = (channel, ky, kx).
// src_kind: 0 audio f32 [P,H,W] (replicated to 3 channels), 1 f32 NCHW [P,3,H,W], 2 uint8 HWC [P,H,W,3].
__global__ void k_im2col(const void *src, int src_kind, float *col, int P, int H, int W, int Pp, float m0, float m1,
                         float m2, float s0, float s1, float s2) {
    const int gw = W / Pp, gh = H / Pp, np = gh * gw, K = 3 * Pp * Pp;
    const long long total = (long long)P * np * K;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total; i += (long long)gridDim.x * blockDim.x) {
        const int kk = (int)(i % K);
        const long long row = i / K;
        const int patch = (int)(row % np), p = (int)(row / np);
        const int ch = kk / (Pp * Pp), ky = (kk / Pp) % Pp, kx = kk % Pp;
        const int yy = (patch / gw) * Pp + ky, xx = (patch % gw) * Pp + kx;
        float v;
        if (src_kind == 0) {
            v = ((const float *)src)[((size_t)p * H + yy) * W + xx];
        } else if (src_kind == 1) {
            v = ((const float *)src)[(((size_t)p * 3 + ch) * H + yy) * W + xx];
        } else {
            const unsigned char u = ((const unsigned char *)src)[(((size_t)p * H + yy) * W + xx) * 3 + ch];
            const float mean = ch == 0 ? m0 : ch == 1 ? m1 : m2, sd = ch == 0 ? s0 : ch == 1 ? s1 : s2;
            v = (u / 255.0f - mean) / sd;
        }
        col[i] = v;
    }
}

// Patch embedding, step 2: x[p,0] = cls + pe[0]; x[p,i] = proj[p, i-1] + bias + pe[i]; pe is the position
// table, linearly resampled from Nv rows when N differs (align_corners=False).
__global__ void k_patch_epilogue(const float *proj, const float *bias, const float *cls, const float *pos, float *x, int P,
                                 int N, int D, int Nv) {
    const long long total = (long long)P * N * D;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < total; e += (long long)gridDim.x * blockDim.x) {
        const int d = (int)(e % D);
        const int i = (int)((e / D) % N);
        const int p = (int)(e / ((long long)N * D));
        float pe;
        if (N == Nv) {
            pe = pos[(size_t)i * D + d];
        } else {
            double s = ((double)i + 0.5) * Nv / N - 0.5;
            if (s < 0) s = 0;
            const int x0 = (int)floor(s), x1 = x0 + 1 < Nv ? x0 + 1 : Nv - 1;
            const double w = s - x0;
            pe = (float)((1 - w) * pos[(size_t)x0 * D + d] + w * pos[(size_t)x1 * D + d]);
        }
        if (i == 0) x[e] = cls[d] + pe;
        else x[e] = proj[((size_t)p * (N - 1) + (i - 1)) * D + d] + bias[d] + pe;
    }
}

// LayerNorm, one warp per row: y = ((x - mean) * rstd * w + b) * gate (+ res). Rows of x start every xs
// elements, rows of y (and res) every ys; xcopy (when given) receives the row as read (the CLS rows kept for
// backward). res: the residual a LINEAR_RESIDUAL would add y to next (fused_residuals in rt_cuda.cu).
// V > 0: the width is at most 32 V and each lane keeps its V values in registers (one read of the row);
// V = 0: any width, the row is read once per pass. Both give the same bits: the row's sums in double in the
// same order, everything per element in float with explicit roundings (__fsub_rn, __fmul_rn, __fmaf_rn, as
// written whatever the compiler's flags, so nvcc, NVRTC and the emulator agree). Per element float, not double: the
// device converts to and from double at a quarter of its double-precision rate (16 an SM a clock on sm_80
// and sm_90), and a row of double arithmetic per element kept these kernels' double pipe nearly as busy as
// their memory. Blocks of 128 threads (4 rows); at most 128 registers a thread.
// BatchNorm applied on load (bn.mean non-null; fused_bn in rt_cuda.cu): the row read is the BatchNorm input u,
// and the value used is k_bn_apply's y = ((u - mean) rstd) w + b (bn_value: the same bits), so the BatchNorm
// output never goes to memory. The kernels without it pass BnLoad{}: the check folds away.
struct BnLoad {
    const float *mean, *rstd, *w, *b;  // the statistics k_bn_stats wrote (mean: its double mean rounded)
    const unsigned short *u16;  // the BatchNorm input stored as bf16 (rows D apart), else NULL: the row given
};
// A BatchNorm's output before the ReLU, in float with explicit roundings (as layernorm_row): what k_bn_apply
// writes, bn_load gives, and k_bn_bwd_dx and k_colsum's CS_BN_RELU test for the ReLU (the same mask).
__device__ __forceinline__ float bn_value(float u, float mean, float rstd, float w, float b) {
    return __fmaf_rn(__fmul_rn(__fsub_rn(u, mean), rstd), w, b);
}
__device__ __forceinline__ float bn_load(const BnLoad &bn, float u, int c) {
    if (!bn.mean) return u;
    return bn_value(u, bn.mean[c], bn.rstd[c], bn.w[c], bn.b[c]);
}
// The adapter's gated fuse applied on load (fused_lat in rt_cuda.cu): the LayerNorm before the adapter reads
// Z_r = X_r + gate_av sum_i A2[r,i] S_(p,i) (p = r / N) from X, A2 and S, so Z is never stored. lat_z sums it
// with explicit FMAs in latent order, as k_latent_b does when it stores Z: stored and loaded Z agree bit for bit.
struct LatLoad {
    const float *A2, *S, *gav;
    int N, m;
};
__device__ __forceinline__ float lat_z(const float *a, const float *s, int m, int D, int d, float g, float x) {
    float z = 0;
    for (int i = 0; i < m; i++) z = __fmaf_rn(a[i], s[(size_t)i * D + d], z);
    return __fmaf_rn(g, z, x);
}
// A row's loader: what a LayerNorm kernel reads at column d of row r whose stored row is xr (load_row).
struct BnRow {
    BnLoad bn;
    const float *xr;
    const unsigned short *hr;
    __device__ __forceinline__ float operator()(int d) const { return bn_load(bn, hr ? ld_f(hr + d) : xr[d], d); }
};
// (with u16, xr is computed by the callers as if u were fp32 and never read)
__device__ __forceinline__ BnRow load_row(const BnLoad &bn, const float *xr, long long r, int D) {
    return BnRow{bn, xr, bn.u16 ? bn.u16 + r * D : NULL};
}
struct LatRow {
    const float *xr, *a, *s;
    float g;
    int m, D;
    __device__ __forceinline__ float operator()(int d) const { return lat_z(a, s, m, D, d, g, xr[d]); }
};
__device__ __forceinline__ LatRow load_row(const LatLoad &l, const float *xr, long long r, int D) {
    return LatRow{xr, l.A2 + r * l.m, l.S + (size_t)(r / l.N) * l.m * D, l.gav[0], l.m, D};
}
template <int V, class L = BnLoad>
__device__ __forceinline__ void layernorm_row(const float *x, long long xs, const float *w, const float *b, float *y,
                                              long long ys, float *mu, float *rs, float *xcopy, const float *gate,
                                              long long rows, int D, float eps, unsigned short *ybf, const float *res,
                                              const L ld) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    const float *xr = x + r * xs;
    const auto lr = load_row(ld, xr, r, D);
    constexpr int VR = V > 0 ? V : 1;
    float v[VR];
    double s = 0;
    if constexpr (V > 0) {
#pragma unroll
        for (int i = 0; i < V; i++) {
            const int d = lane + 32 * i;
            v[i] = d < D ? lr(d) : 0.0f;
            if (d < D) s += v[i];
        }
    } else {
        for (int d = lane; d < D; d += 32) s += lr(d);
    }
    const float mean = (float)(warp_sum_d(s) / D);
    double ss = 0;
    if constexpr (V > 0) {
#pragma unroll
        for (int i = 0; i < V; i++)
            if (lane + 32 * i < D) {
                const float t = __fsub_rn(v[i], mean);
                ss += (double)__fmul_rn(t, t);
            }
    } else {
        for (int d = lane; d < D; d += 32) {
            const float t = __fsub_rn(lr(d), mean);
            ss += (double)__fmul_rn(t, t);
        }
    }
    const float rstd = (float)(1.0 / sqrt(warp_sum_d(ss) / D + (double)eps));
    const float g = gate ? gate[0] : 1.0f;
    float *yr = y + r * ys;
#pragma unroll
    for (int i = 0; i < (V > 0 ? V : 1); i++)
        for (int d = lane + 32 * i; d < D; d += (V > 0 ? D : 32)) {
            const float xv = V > 0 ? v[i] : lr(d);
            float o = __fmaf_rn(__fmul_rn(__fsub_rn(xv, mean), rstd), w ? w[d] : 1.0f, b ? b[d] : 0.0f);
            if (gate) o = __fmul_rn(o, g);
            if (res) o = __fadd_rn(o, res[r * ys + d]);
            if (ybf) ybf[r * ys + d] = f2bf(o);  // bf16 GEMM operand: stored as bf16 only
            else yr[d] = o;
            if (xcopy) xcopy[r * D + d] = xv;
        }
    if (lane == 0) {
        if (mu) mu[r] = mean;
        if (rs) rs[r] = rstd;
    }
}
template <int V>
__global__ void __launch_bounds__(128, 4) k_layernorm(const float *x, long long xs, const float *w, const float *b, float *y,
                                                      long long ys, float *mu, float *rs, float *xcopy, const float *gate,
                                                      long long rows, int D, float eps, unsigned short *ybf) {
    layernorm_row<V>(x, xs, w, b, y, ys, mu, rs, xcopy, gate, rows, D, eps, ybf, NULL, BnLoad{});
}
// With the residual res (the LINEAR_RESIDUAL's, fused_residuals in rt_cuda.cu); its own kernel, so that
// k_layernorm carries no residual (one kernel with both once took k_layernorm<24> past 128 registers).
template <int V>
__global__ void __launch_bounds__(128, 4) k_layernorm_res(const float *x, long long xs, const float *w, const float *b,
                                                          float *y, long long ys, float *mu, float *rs, const float *gate,
                                                          long long rows, int D, float eps, const float *res) {
    layernorm_row<V>(x, xs, w, b, y, ys, mu, rs, NULL, gate, rows, D, eps, NULL, res, BnLoad{});
}
// The adapter's LayerNorm + gate (+ residual, res may be NULL) on its BatchNorm's input u, the BatchNorm
// applied on load (fused_bn in rt_cuda.cu): the BatchNorm output is never stored.
template <int V>
__global__ void __launch_bounds__(128, 4) k_layernorm_bn(const float *u, const float *w, const float *b, float *y, float *mu,
                                                         float *rs, const float *gate, long long rows, int D, float eps,
                                                         const float *res, const BnLoad bn) {
    layernorm_row<V>(u, D, w, b, y, D, mu, rs, NULL, gate, rows, D, eps, NULL, res, bn);
}

// LayerNorm backward, one warp per row: g = dy * gscale * w; dx (+)= rstd * (g - mean(g) - xhat mean(g xhat)).
// With gate (LayerNorm + gate), gscale = gate and rowdg[r] = sum(dy * (xhat w + b)). dx rows every dxs.
// V as for k_layernorm (dy and x of the row in registers when V > 0; the same explicit rounding).
// CS (V > 0 only): the lane also adds the row's terms of the weight and bias gradients of its V columns
// (dy gscale xhat and dy gscale, as k_colsum's CS_LN) to cs0 and cs1.
// OT: dx's type (bf16: written rounded, never accumulated).
// dy16 (V > 0, fp32 dy only; else NULL): dy rounded to bf16 written there too, as k_to_bf16 would (f2bf: the same
// bits), for a bf16 GEMM that reads dy next (fused_dy16 in rt_cuda.cu).
template <int V, bool CS, bool BN = false, class DT = float, class L = BnLoad, class OT = float>
__device__ __forceinline__ void ln_bwd_row(long long r, int lane, const DT *dy, const float *x, const float *mu,
                                           const float *rs, const float *w, const float *bb, const float *gate, OT *dx,
                                           long long dxs, int acc, double *rowdg, int D, double *cs0, double *cs1,
                                           const L ld, unsigned short *dy16 = NULL) {
    const DT *dyr = dy + r * D;
    const float *xr = x + r * D;
    const auto lr = load_row(ld, xr, r, D);
    const float m = mu[r], s = rs[r];
    const float gs = gate ? gate[0] : 1.0f;
    constexpr int VR = V > 0 ? V : 1;
    float vdy[VR], vx[BN ? 1 : VR];
    if constexpr (V > 0) {
#pragma unroll
        for (int i = 0; i < V; i++) {
            const int d = lane + 32 * i;
            vdy[i] = d < D ? ld_f(dyr + d) : 0.0f;
            if constexpr (!BN) vx[i] = d < D ? xr[d] : 0.0f;
            if (dy16 && d < D) dy16[r * D + d] = f2bf(vdy[i]);
        }
    }
    // Two passes over the row's elements d (value i of the lane when V > 0), both with xhat = (x - mean) rstd
    // and g = dy gscale w in float, explicitly rounded (as layernorm_row; only dy and x stay in registers between
    // them): pass 0 sums g, g xhat (and for the gate dy (xhat w + b)) in double; pass 1 writes dx.
    double sg = 0, sgx = 0, dg = 0;
    float sgf = 0, sgxf = 0;  // the means of g and g xhat, for pass 1
    OT *dxr = dx + r * dxs;
    auto pass = [&](int second) {
#pragma unroll
        for (int i = 0; i < (V > 0 ? V : 1); i++)
            for (int d = lane + 32 * i; d < D; d += (V > 0 ? D : 32)) {
                float dyv, xv;
                // BN (applied on load): x is what the loader gives (the BatchNorm applied to u, or the adapter's
                // gated fuse), loaded in both passes (no registers kept for it)
                if constexpr (V > 0) dyv = vdy[i], xv = BN ? lr(d) : vx[i];
                else dyv = ld_f(dyr + d), xv = BN ? lr(d) : xr[d];
                const float dO = gate ? __fmul_rn(dyv, gs) : dyv, wd = w[d];
                const float xh = __fmul_rn(__fsub_rn(xv, m), s), g = __fmul_rn(dO, wd);
                if (!second) {
                    sg += (double)g, sgx += (double)__fmul_rn(g, xh);
                    if (gate) dg += (double)__fmul_rn(dyv, __fmaf_rn(xh, wd, bb[d]));
                } else {
                    const float o = __fmul_rn(s, __fsub_rn(__fsub_rn(g, sgf), __fmul_rn(xh, sgxf)));
                    if constexpr (sizeof(OT) == 2) dxr[d] = f2bf(o);
                    else dxr[d] = acc ? __fadd_rn(dxr[d], o) : o;
                    if constexpr (CS && V > 0) cs0[i] += (double)__fmul_rn(dO, xh), cs1[i] += dO;
                }
            }
    };
    pass(0);
    sgf = (float)(warp_sum_d(sg) / D), sgxf = (float)(warp_sum_d(sgx) / D);
    if (gate) dg = warp_sum_d(dg);
    pass(1);
    if (gate && lane == 0) rowdg[r] = dg;
}
template <int V>
__global__ void __launch_bounds__(128) k_ln_bwd(const float *dy, const float *x, const float *mu, const float *rs, const float *w,
                         const float *bb, const float *gate, float *dx, long long dxs, int acc, double *rowdg,
                         long long rows, int D) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    ln_bwd_row<V, false>(r, threadIdx.x & 31, dy, x, mu, rs, w, bb, gate, dx, dxs, acc, rowdg, D, NULL, NULL, BnLoad{});
}
// k_ln_bwd of a frozen LayerNorm whose input gradient dy a bf16 GEMM wrote as bf16 (rt_cuda_bf16_operands)
template <int V>
__global__ void __launch_bounds__(128) k_ln_bwd_bf(const unsigned short *dy, const float *x, const float *mu, const float *rs,
                                                   const float *w, float *dx, long long dxs, int acc, long long rows, int D) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    ln_bwd_row<V, false, false, unsigned short>(r, threadIdx.x & 31, dy, x, mu, rs, w, NULL, NULL, dx, dxs, acc, NULL, D, NULL,
                                                NULL, BnLoad{});
}
// k_ln_bwd with the weight and bias gradients' column sums (trainable LayerNorms), so dy and x are read
// once: block b takes rows [b rpb, (b + 1) rpb), its 4 warps every fourth row; each lane sums its columns'
// terms in double over its rows, the warps combine in warp order in shared memory, and part[b][2][D] gets
// the block's sums (k_colsum_finish adds the blocks in order: deterministic). Blocks of 128 threads; V > 0.
template <int V, bool BN, class L = BnLoad, class DT = float, class OT = float>
__device__ __forceinline__ void ln_bwd_cs_body(const DT *dy, const float *x, const float *mu, const float *rs,
                                               const float *w, const float *bb, const float *gate, OT *dx, long long dxs,
                                               double *rowdg, long long rows, int D, long long rpb, double *part,
                                               const L bn, unsigned short *dy16 = NULL) {
    AVGEN_SHARED(double, red, 2 * 32 * V);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    double cs0[V], cs1[V];
#pragma unroll
    for (int i = 0; i < V; i++) cs0[i] = cs1[i] = 0;
    const long long r0 = blockIdx.x * rpb, r1 = r0 + rpb < rows ? r0 + rpb : rows;
    for (long long r = r0 + warp; r < r1; r += 4)
        ln_bwd_row<V, true, BN, DT, L, OT>(r, lane, dy, x, mu, rs, w, bb, gate, dx, dxs, 0, rowdg, D, cs0, cs1, bn, dy16);  // dx written, not added
    for (int wi = 0; wi < 4; wi++) {
        if (warp == wi)
#pragma unroll
            for (int i = 0; i < V; i++) {
                const int d = lane + 32 * i;
                red[d] = wi ? red[d] + cs0[i] : cs0[i];
                red[32 * V + d] = wi ? red[32 * V + d] + cs1[i] : cs1[i];
            }
        __syncthreads();
    }
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        part[((long long)blockIdx.x * 2 + 0) * D + d] = red[d];
        part[((long long)blockIdx.x * 2 + 1) * D + d] = red[32 * V + d];
    }
}
template <int V>
__global__ void __launch_bounds__(128) k_ln_bwd_cs(const float *dy, const float *x, const float *mu, const float *rs,
                                                   const float *w, const float *bb, const float *gate, float *dx,
                                                   long long dxs, double *rowdg, long long rows, int D, long long rpb,
                                                   double *part) {
    ln_bwd_cs_body<V, false>(dy, x, mu, rs, w, bb, gate, dx, dxs, rowdg, rows, D, rpb, part, BnLoad{});
}
// The same for the adapter's LayerNorm + gate whose input is its BatchNorm's output, applied on load from the
// BatchNorm input u (fused_bn in rt_cuda.cu; k_layernorm_bn in the forward). (128, 1): with the bounds' block size
// alone, ptxas held this one to 168 registers and spilled.
template <int V>
__global__ void __launch_bounds__(128, 1) k_ln_bwd_cs_bn(const float *dy, const float *u, const float *mu, const float *rs,
                                                      const float *w, const float *bb, const float *gate, float *dx,
                                                      double *rowdg, long long rows, int D, long long rpb, double *part,
                                                      const BnLoad bn) {
    ln_bwd_cs_body<V, true>(dy, u, mu, rs, w, bb, gate, dx, D, rowdg, rows, D, rpb, part, bn);
}
// k_ln_bwd_cs_bn writing dx as bf16 (rt_cuda_bf16_operands: the BatchNorm's output gradient, which only its
// backward reads), and, when dy16 is not NULL, dy as bf16 (the residual stream's gradient, for the bf16 GEMM of
// the input gradient that reads it next: fused_dy16 in rt_cuda.cu)
template <int V>
__global__ void __launch_bounds__(128) k_ln_bwd_cs_bn16(const float *dy, const float *u, const float *mu, const float *rs,
                                                        const float *w, const float *bb, const float *gate, unsigned short *dx,
                                                        double *rowdg, long long rows, int D, long long rpb, double *part,
                                                        const BnLoad bn, unsigned short *dy16) {
    ln_bwd_cs_body<V, true, BnLoad, float, unsigned short>(dy, u, mu, rs, w, bb, gate, dx, D, rowdg, rows, D, rpb, part, bn,
                                                           dy16);
}
// The adapter's LayerNorm before, on the gated fuse of its adapter applied on load from the residual stream X
// (fused_lat in rt_cuda.cu): forward (ybf non-null: the output as bf16 only), its trainable backward (as
// k_ln_bwd_cs), and the fuse rebuilt into memory (the backward without k_ln_bwd_cs). One warp a row.
template <int V>
__global__ void __launch_bounds__(128, 4) k_layernorm_lat(const float *x, const float *w, const float *b, float *y, float *mu,
                                                          float *rs, long long rows, int D, float eps, unsigned short *ybf,
                                                          const LatLoad lat) {
    layernorm_row<V>(x, D, w, b, y, D, mu, rs, NULL, NULL, rows, D, eps, ybf, NULL, lat);
}
template <int V>
__global__ void __launch_bounds__(128) k_ln_bwd_cs_lat(const float *dy, const float *x, const float *mu, const float *rs,
                                                       const float *w, const float *bb, const float *gate, float *dx,
                                                       double *rowdg, long long rows, int D, long long rpb, double *part,
                                                       const LatLoad lat) {
    ln_bwd_cs_body<V, true>(dy, x, mu, rs, w, bb, gate, dx, D, rowdg, rows, D, rpb, part, lat);
}
// k_ln_bwd_cs_lat with dy and dx stored as bf16 (rt_cuda_bf16_operands: the down-projection's input gradient
// and the fuse's gradient)
template <int V>
__global__ void __launch_bounds__(128) k_ln_bwd_cs_lat16(const unsigned short *dy, const float *x, const float *mu,
                                                         const float *rs, const float *w, unsigned short *dx, long long rows,
                                                         int D, long long rpb, double *part, const LatLoad lat) {
    ln_bwd_cs_body<V, true>(dy, x, mu, rs, w, (const float *)NULL, (const float *)NULL, dx, D, (double *)NULL, rows, D, rpb,
                            part, lat);
}
__global__ void k_from_bf16(const unsigned short *x, float *y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = ld_f(x + i);
}
__global__ void k_lat_z(const float *x, float *z, long long rows, int D, const LatLoad lat) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    const auto lr = load_row(lat, x + r * D, r, D);
    for (int d = threadIdx.x & 31; d < D; d += 32) z[r * D + d] = lr(d);
}

// Column sums over row chunks, two at a time, into part[chunk][2][C] (double). Modes:
enum { CS_LN = 0, CS_SUM = 1, CS_BN = 3, CS_BN_RELU = 4, CS_MOM = 5 };
// CS_LN: (dy*scale*xhat_row, dy*scale); CS_SUM: (a, 0);
// CS_BN(_RELU): g = dy (0 where the ReLU was off) -> (g*xhat_col, g); CS_MOM: (t, t^2) with t = a - a[row 0]
// (both moments in one pass, shifted by the column's first value so the variance does not cancel).
// a16, x16: a or x stored as bf16 (then a or x is ignored).
__global__ void k_colsum(int mode, const float *a, const float *x, const float *rmu, const float *rrs, const float *cmu,
                         const float *crs, const float *w, const float *b, const float *scale,
                         long long rows, int C, long long rpc, double *part, const unsigned short *a16,
                         const unsigned short *x16) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const long long chunk = blockIdx.y;
    if (c >= C) return;
    const long long r0 = chunk * rpc, r1 = r0 + rpc < rows ? r0 + rpc : rows;
    const float sc = scale ? scale[0] : 1.0f;
    const double a0 = mode == CS_MOM ? (double)ld_fh(a, a16, c) : 0.0;  // CS_MOM's shift: the column's first value
    double s0 = 0, s1 = 0;
#pragma unroll 4
    for (long long r = r0; r < r1; r++) {  // unrolled: loads of 4 rows in flight, sums still in row order
        const size_t i = (size_t)r * C + c;
        const float av = ld_fh(a, a16, i);
        if (mode == CS_LN) {  // the terms as ln_bwd_row's column sums compute them (float, explicitly rounded)
            const float g = scale ? __fmul_rn(av, sc) : av;
            const float xh = __fmul_rn(__fsub_rn(ld_fh(x, x16, i), rmu[r]), rrs[r]);
            s0 += (double)__fmul_rn(g, xh), s1 += g;
        } else if (mode == CS_SUM) {
            s0 += av;
        } else if (mode == CS_MOM) {
            const double t = (double)av - a0;
            s0 += t, s1 = __fma_rn(t, t, s1);
        } else {  // xhat and the ReLU's mask as the forward computed them (bn_value)
            const float xh = __fmul_rn(__fsub_rn(ld_fh(x, x16, i), cmu[c]), crs[c]);
            double g = av;
            if (mode == CS_BN_RELU && __fmaf_rn(xh, w[c], b[c]) <= 0) g = 0;
            s0 += g * (double)xh, s1 += g;
        }
    }
    part[(chunk * 2 + 0) * C + c] = s0;
    part[(chunk * 2 + 1) * C + c] = s1;
}

// A BatchNorm's statistics (train mode): its input x (or x16 as bf16) of rows rows, eps, the batch mean and rstd
// written, the running mean and variance rm, rv updated when update is set, and count (num_batches_tracked) += 1
// when it is not NULL.
struct BnStats {
    const float *x;
    const unsigned short *x16;
    long long rows;
    float eps;
    float *mean, *rstd, *rm, *rv;
    int update;
    long long *count;
};
// Column c's statistics from CS_MOM's shifted moments s = sum t, q = sum t^2 (t = x - x[row 0]): mean = x[row 0] +
// s / rows, the centred sum of squares q - s^2 / rows (in double, shifted: no cancellation unless a column's spread
// is below 1e-8 of its distance from the first row), mean and rstd (from the biased variance) rounded to float for
// the elementwise passes (bn_value: they subtract the float mean in float, so a column whose mean is far from zero
// against its spread loses about ulp(mean) / std there), and (update) the running mean and unbiased variance with
// momentum 0.1. (k_bn_stats, and k_colsum_finish_bn where its moments are summed: the same arithmetic.)
__device__ void bn_stats_col(int c, double s, double q, const BnStats &b) {
    const long long rows = b.rows;
    const double m = (double)ld_fh(b.x, b.x16, c) + s / rows, ssq = fmax(q - s * s / rows, 0.0);
    b.mean[c] = (float)m;
    const double biased = ssq / rows, unbiased = rows > 1 ? ssq / (rows - 1) : ssq;
    b.rstd[c] = (float)(1.0 / sqrt(biased + b.eps));
    if (b.update) {
        b.rm[c] = (float)(0.9 * b.rm[c] + 0.1 * m);
        b.rv[c] = (float)(0.9 * b.rv[c] + 0.1 * unbiased);
    }
}

// Finishes k_colsum: t0, t1 = the sums over the chunks of each column; add0/add1 += (float) t; tot0/tot1 = t
// (double); with bn (k_colsum_finish_bn: a BatchNorm's moments, CS_MOM), its statistics from t0, t1 (bn_stats_col,
// as k_bn_stats computes them from tot0, tot1) and its count, by block 0's first thread: two launches fewer.
// A block of 128 threads takes 4 columns. A column's sum is that of 128 classes of chunks, class q the
// chunks q, q + 128, ... added in order; then the classes, as block_sum_d adds 128 threads' values (a warp's
// shuffle tree over each 32, then the four in order): the same order whatever the GPU (deterministic) and the
// same as when a block took one column with a thread a class. Thread i takes column i % 4 and the classes
// i / 4 + 32 s (s < 4), so a warp's loads are 8 chunks x 4 adjacent columns: whole 32-byte sectors, where a
// thread a class read 8 bytes of a sector (a quarter of the sectors' bytes; the CUDA emulator's memory profile,
// docs/emulator.md). Launch: (C + 3) / 4 blocks of 128 threads.
constexpr int kColsumCols = 4;  // (the shared-memory layout below is for 4)
__device__ void colsum_finish(const double *part, int chunks, int C, float *add0, float *add1, double *tot0, double *tot1,
                              const BnStats *bn) {
    // [sum][class][column], the columns of class q permuted by (q / 4) % 4: a half-warp's writes (4 classes x 4
    // columns) and reads (16 classes of a column) each touch every bank once
    AVGEN_SHARED(double, cls, 2 * 128 * kColsumCols);
    auto at = [](int q, int col) { return q * kColsumCols + (col ^ ((q >> 2) & 3)); };
    const int col = threadIdx.x % kColsumCols, base = threadIdx.x / kColsumCols, c = blockIdx.x * kColsumCols + col;
    double a0[4] = {0, 0, 0, 0}, a1[4] = {0, 0, 0, 0};
    if (c < C)
        for (int k0 = 0; k0 < chunks; k0 += 128)
#pragma unroll
            for (int s = 0; s < 4; s++) {
                const int k = k0 + base + 32 * s;
                if (k < chunks) a0[s] += part[(k * 2LL + 0) * C + c], a1[s] += part[(k * 2LL + 1) * C + c];
            }
#pragma unroll
    for (int s = 0; s < 4; s++) {
        cls[at(base + 32 * s, col)] = a0[s];
        cls[at(128 + base + 32 * s, col)] = a1[s];
    }
    __syncthreads();
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, cw = blockIdx.x * kColsumCols + w;  // warp w: column w
    double t0 = 0, t1 = 0;
    for (int q = 0; q < 4; q++) {  // block_sum_d's order: each 32 classes by the shuffle tree, then in order
        double v0 = cls[at(32 * q + lane, w)], v1 = cls[at(128 + 32 * q + lane, w)];
        for (int o = 16; o > 0; o >>= 1) v0 += __shfl_xor_sync(0xffffffffu, v0, o), v1 += __shfl_xor_sync(0xffffffffu, v1, o);
        t0 += v0, t1 += v1;
    }
    if (lane == 0 && cw < C) {
        if (add0) add0[cw] += (float)t0;
        if (add1) add1[cw] += (float)t1;
        if (tot0) tot0[cw] = t0;
        if (tot1) tot1[cw] = t1;
        if (bn) bn_stats_col(cw, t0, t1, *bn);
    }
    if (bn && bn->count && blockIdx.x == 0 && threadIdx.x == 0) bn->count[0] += 1;
}
__global__ void __launch_bounds__(128) k_colsum_finish(const double *part, int chunks, int C, float *add0, float *add1,
                                                       double *tot0, double *tot1) {
    colsum_finish(part, chunks, C, add0, add1, tot0, tot1, NULL);
}
__global__ void __launch_bounds__(128) k_colsum_finish_bn(const double *part, int chunks, int C, BnStats bn) {
    colsum_finish(part, chunks, C, NULL, NULL, NULL, NULL, &bn);
}

// BatchNorm statistics from CS_MOM's shifted moments (bn_stats_col), one thread a column.
__global__ void k_bn_stats(const double *s, const double *q, const float *x, long long rows, int C, float eps, float *mean,
                           float *rstd, float *rm, float *rv, int update, const unsigned short *x16) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    bn_stats_col(c, s[c], q[c], BnStats{x, x16, rows, eps, mean, rstd, rm, rv, update, NULL});
}
__global__ void k_inc64(long long *v) { v[0] += 1; }

// BatchNorm's elementwise passes over [rows, C]: a thread per column c (blockIdx.y * blockDim.x + threadIdx.x),
// its per-column values loaded once, over the rows blockIdx.x, + gridDim.x, ... (no 64-bit index division
// per element).
// y = (x - mu) / sqrt(var + eps) * w + b (optionally ReLU); train: mu, rstd from the batch (mean, rstd: k_bn_stats's;
// in float, bn_value), eval: the running statistics (in double). x16, y16: x read, y written as bf16 (then x, y are
// ignored).
__global__ void k_bn_apply(const float *x, float *y, const float *mean, const float *rstd, const float *rm,
                           const float *rv, float eps, const float *w, const float *b, long long rows, int C, int relu,
                           const unsigned short *x16, unsigned short *y16) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const double mu = mean ? 0.0 : (double)rm[c], sc = mean ? 1.0 : sqrt((double)rv[c] + eps);
    const float wc = w[c], bc = b[c], muf = mean ? mean[c] : 0.0f, rsf = mean ? rstd[c] : 0.0f;
#pragma unroll 4
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const size_t i = (size_t)r * C + c;
        float o;
        if (mean) {  // training: the batch's statistics, in float (bn_value, as the loads that apply it)
            o = bn_value(ld_fh(x, x16, i), muf, rsf, wc, bc);
        } else {  // evaluation: the running statistics, in double (never contracted: nvcc as the emulator)
            o = (float)__dadd_rn(__dmul_rn(((double)ld_fh(x, x16, i) - mu) / sc, (double)wc), (double)bc);
        }
        if (relu && o < 0) o = 0;
        if (y16) y16[i] = f2bf(o);
        else y[i] = o;
    }
}

__global__ void k_bn_bwd_dx(const float *dy, const float *x, const float *mu, const float *rs, const float *w,
                            const float *b, const double *sdy, const double *sdyx, float *dx, long long rows, int C,
                            int relu, const unsigned short *x16, unsigned short *dx16, const unsigned short *dy16) {
    const int c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= C) return;
    const float mc = mu[c], rc = rs[c], wc = w[c], bc = b ? b[c] : 0.0f, wr = __fmul_rn(wc, rc);
    const float ms = (float)(sdy[c] / rows), sx = (float)(sdyx[c] / rows);
#pragma unroll 4
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {  // in float (xhat and the ReLU's mask as bn_value)
        const size_t i = (size_t)r * C + c;
        const float xh = __fmul_rn(__fsub_rn(ld_fh(x, x16, i), mc), rc);
        float g = ld_fh(dy, dy16, i);
        if (relu && __fmaf_rn(xh, wc, bc) <= 0) g = 0;
        const float o = __fmul_rn(wr, __fsub_rn(__fsub_rn(g, ms), __fmul_rn(xh, sx)));
        if (dx16) dx16[i] = f2bf(o);
        else dx[i] = o;
    }
}

__global__ void k_relu(const float *x, float *y, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[i] = x[i] > 0 ? x[i] : 0.0f;
}
__global__ void k_relu_bwd(const float *dy, const float *y, float *dx, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

// y[r, n] (+)= b[n] (+ res[r, n]) (+ extra[r, n]), the epilogue of x W^T; b may be NULL (added by the GEMM).
__global__ void k_bias_res(float *y, const float *b, const float *res, const float *extra, long long n, int N) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x) {
        float v = b ? y[i] + b[i % N] : y[i];
        if (res) v += res[i];
        if (extra) v += extra[i];
        y[i] = v;
    }
}
// y[r, n] += b[n] for rows r < rows of a matrix with row stride ldy (a GEMM's bias when cuBLASLt has no
// algorithm with the bias epilogue).
__global__ void k_bias_cols(float *y, long long ldy, const float *b, long long rows, int N) {
    const long long n = rows * N;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        y[(i / N) * ldy + i % N] += b[i % N];
}
// act = GELU(pre) (the bias was added by the GEMM). Each tensor is fp32 or bf16 (bf16 GEMM operands): pre
// from prebf when given, else pre; act to actbf when given, else act. Four elements a thread (float4;
// 8-byte bf16 groups) when n is a multiple of 4.
__device__ __forceinline__ void put4(float *p, float4 v) { vst(p, v); }
__device__ __forceinline__ void put4(unsigned short *p, float4 v) {
    vst(p, make_uint2((unsigned)f2bf(v.x) | (unsigned)f2bf(v.y) << 16, (unsigned)f2bf(v.z) | (unsigned)f2bf(v.w) << 16));
}
// four elements from p (fp32) or, when pb is given, from pb (bf16), at element i (a multiple of 4)
__device__ __forceinline__ float4 get4(const float *p, const unsigned short *pb, long long i) {
    if (!pb) return vld<float4>(p + i);
    const uint2 u = vld<uint2>(pb + i);
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}
__device__ __forceinline__ float get1(const float *p, const unsigned short *pb, long long i) {
    return pb ? ld_f(pb + i) : p[i];
}
// y[i] = bf16(x[i]): the bf16 copy of the frozen weights, a gradient as a bf16 GEMM operand. Four
// elements a thread when n is a multiple of 4 (x and y then 16- and 8-byte aligned: arena slots are).
// y[0..n) = x rounded to bf16 by the grid's threads along x, four elements a thread at a time where vec (x 16-byte
// aligned, n a multiple of 4)
__device__ void to_bf16_grid(const float *x, unsigned short *y, long long n, bool vec) {
    const long long stride = (long long)gridDim.x * blockDim.x, first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long n4 = vec ? n / 4 : 0;
    for (long long i = first; i < n4; i += stride) put4(y + 4 * i, vld<float4>(x + 4 * i));
    for (long long i = 4 * n4 + first; i < n; i += stride) y[i] = f2bf(x[i]);
}
__global__ void k_to_bf16(const float *x, unsigned short *y, long long n) { to_bf16_grid(x, y, n, n % 4 == 0); }
// Trainable weights rounded to bf16 (to_bf16_grid, as k_to_bf16) into the bf16 copy of the parameter arena, all of a
// step's in one launch (rt_cuda.cu: train16): segment blockIdx.y is elements off .. off + len of src, written to the
// same elements of dst. Launch: (blocks, n) of 256 threads.
constexpr int kBf16Segs = 240;
struct Bf16Segs {
    int n;
    int off[kBf16Segs], len[kBf16Segs];  // in elements (4-byte aligned arena offsets / 4)
};
__global__ void k_to_bf16_segs(const float *src, unsigned short *dst, Bf16Segs s) {
    const int seg = blockIdx.y;
    if (seg < s.n) to_bf16_grid(src + s.off[seg], dst + s.off[seg], s.len[seg], s.len[seg] % 4 == 0 && s.off[seg] % 4 == 0);
}
__global__ void k_gelu(const float *pre, const unsigned short *prebf, float *act, unsigned short *actbf, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x, first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long n4 = n % 4 ? 0 : n / 4;
    for (long long i = first; i < n4; i += stride) {
        const float4 x = get4(pre, prebf, 4 * i);
        const float4 y = make_float4(gelu_f(x.x), gelu_f(x.y), gelu_f(x.z), gelu_f(x.w));
        if (actbf) put4(actbf + 4 * i, y);
        else put4(act + 4 * i, y);
    }
    for (long long i = 4 * n4 + first; i < n; i += stride) {
        const float y = gelu_f(get1(pre, prebf, i));
        if (actbf) actbf[i] = f2bf(y);
        else act[i] = y;
    }
}
// dpre = da GELU'(pre); each of the three fp32 or bf16 as in k_gelu (da from dabf, pre from prebf, dpre to
// dprebf when given). Vectorised as k_gelu.
__global__ void k_gelu_bwd(const float *da, const unsigned short *dabf, const float *pre, const unsigned short *prebf,
                           float *dpre, unsigned short *dprebf, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x, first = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    const long long n4 = n % 4 ? 0 : n / 4;
    for (long long i = first; i < n4; i += stride) {
        const float4 g = get4(da, dabf, 4 * i), x = get4(pre, prebf, 4 * i);
        const float4 y = make_float4(g.x * gelu_grad_f(x.x), g.y * gelu_grad_f(x.y), g.z * gelu_grad_f(x.z),
                                     g.w * gelu_grad_f(x.w));
        if (dprebf) put4(dprebf + 4 * i, y);
        else put4(dpre + 4 * i, y);
    }
    for (long long i = 4 * n4 + first; i < n; i += stride) {
        const float v = get1(da, dabf, i) * gelu_grad_f(get1(pre, prebf, i));
        if (dprebf) dprebf[i] = f2bf(v);
        else dpre[i] = v;
    }
}

// Attention as batched GEMMs (host code) around these kernels. Scores S are [P, H, N, N] (row r = (p H + h) N + i,
// the log-sum-exp layout). Softmax of one row per warp, as the reference: x = s * scale in float, double sum.
__global__ void k_softmax_rows(float *S, float *lse, long long rows, int N, float scale) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    float *x = S + r * N;
    float mx = -INFINITY;
    for (int j = lane; j < N; j += 32) mx = fmaxf(mx, x[j] * scale);
    mx = warp_max(mx);
    double se = 0;
    for (int j = lane; j < N; j += 32) se += exp((double)(x[j] * scale) - mx);
    se = warp_sum_d(se);
    for (int j = lane; j < N; j += 32) x[j] = (float)(exp((double)(x[j] * scale) - mx) / se);
    if (lse && lane == 0) lse[r] = (float)(mx + log(se));
}

// Backward: P = exp(scale S - lse) from the recomputed scores, in place.
__global__ void k_attn_probs(float *S, const float *lse, long long n, int N, float scale) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x)
        S[e] = (float)exp((double)S[e] * scale - (double)lse[e / N]);
}

// dS = P (dP - D_r) scale, in place over dP; D_r = rowsum(dO O) of the row.
__global__ void k_attn_dscores(const float *Pm, float *dP, const double *delta, long long n, int N, float scale) {
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x)
        dP[e] = (float)(Pm[e] * ((double)dP[e] - delta[e / N]) * scale);
}

// Attention backward, D_r = rowsum(dO * O) for every (pair, head, query), in double: one warp per token row
// (p, i), which reads dO and O coalesced and writes the H heads' sums (delta is [P, H, N]). dO and O are fp32,
// or bf16 when dO16 or O16 is given (dO16: the output projection's bf16 input gradient; O16: the fused
// forward's bf16 output).
__global__ void k_attn_delta(const float *dO, const unsigned short *dO16, const float *O, const unsigned short *O16,
                             double *delta, int P, int N, int D, int H, int hd) {
    const long long row = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= (long long)P * N) return;
    const long long p = row / N, i = row % N;
    const float *a = dO16 ? NULL : dO + row * D, *b = O ? O + row * D : NULL;
    const unsigned short *a16 = dO16 ? dO16 + row * D : NULL, *b16 = O16 ? O16 + row * D : NULL;
#pragma unroll 4
    for (int h = 0; h < H; h++) {  // unrolled: four heads' loads in flight before their reductions
        double s = 0;
        for (int d = lane; d < hd; d += 32)
            s = __fma_rn(a16 ? ld_f(a16 + h * hd + d) : a[h * hd + d], b16 ? ld_f(b16 + h * hd + d) : b[h * hd + d], s);
        s = warp_sum_d(s);
        if (lane == 0) delta[(p * H + h) * N + i] = s;
    }
}

// ------------------------------------------------------------------ fused attention (bf16 tensor cores)
// For --precision bf16: one kernel for the forward, two for the backward, a block of 4 warps per (pair, head)
// that stages the other side (K and V; Q and dO) whole in shared memory as bf16 (row-major; the operands that
// enter an MMA as [k][n] are read with ldmatrix .trans), each warp taking 16-row tiles and looping over the
// staged side in chunks of 64. Launch: grid 1 x H x P, kAttnThreads threads, rt_cuda_attn_smem(N, HD) bytes of
// dynamic shared memory (runtime/rt_scratch.c: two bf16 tiles of N rounded up to 64 rows, stride HD + 8, and
// two floats a row). Q K^T, P V, dO V^T, dS K, P^T dO and dS^T Q are mma.sync m16n8k16 (bf16 operands, fp32
// accumulation); softmax statistics in fp32; only the log-sum-exp is kept for backward (no score matrix in
// memory). Rows and columns past N are masked (zeros in shared memory, probability 0); 8-column groups past N
// skip their MMAs. No atomics: deterministic. qkv is [P, N, 3D] (Q, K, V of head h at columns h*HD,
// D + h*HD, 2D + h*HD), O and dO are [P, N, D], lse and delta are [P, H, N]. Semantics: the GEMM path above
// (k_softmax_rows, k_attn_probs, k_attn_dscores).

constexpr int kAttnRows = 64;  // rows of a chunk (and of the 4 warps' tiles together)
// Rows of a staged tile: n rounded up to whole chunks (rt_cuda_attn_smem counts the same on the host).
__device__ __forceinline__ int attn_rows(int n) { return (n + kAttnRows - 1) / kAttnRows * kAttnRows; }

// Two floats as a bf16 pair: lo in the low half (the lower index of a fragment).
// These need sm_80 (bf16 conversions and MMA); the host runs the fused kernels only there, and below it
// they compile to a trap, so the library still builds for older GPUs (NVRTC builds for the device's own).
// The CUDA emulator (runtime/emu/cuda_emu.h) provides the three instructions lane by lane.
#if !defined(AVGEN_CUDA_EMU) && (!defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800)
#define AVGEN_BF16_MMA 1
#endif
__device__ __forceinline__ unsigned bf16x2(float lo, float hi) {
    unsigned r = 0;
#if defined(AVGEN_CUDA_EMU)
    r = (unsigned)f2bf(lo) | (unsigned)f2bf(hi) << 16;
#elif defined(AVGEN_BF16_MMA)
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
#else
    __trap();
#endif
    return r;
}
// c += a b: A 16x16 (row), B 16x8 (col), bf16, fp32 accumulators.
__device__ __forceinline__ void mma_bf16(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
#if defined(AVGEN_CUDA_EMU)
    avgen_emu_mma_bf16(c, a, b0, b1);
#elif defined(AVGEN_BF16_MMA)
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
    __trap();
#endif
}
// Four 8x8 bf16 matrices from shared memory, transposed: lane l gives the address of row (l & 7) of matrix
// l >> 3 (16-byte aligned); register i receives, of matrix i, the elements (2t, g) and (2t+1, g) (g = l / 4,
// t = l % 4): a B fragment of m16n8k16 from a row-major [k][n] tile.
__device__ __forceinline__ void ldsm_x4_trans(unsigned r[4], const unsigned short *row) {
#if defined(AVGEN_CUDA_EMU)
    avgen_emu_ldsm_x4_trans(r, row);
#elif defined(AVGEN_BF16_MMA)
    unsigned a;
    asm("{ .reg .u64 p; cvta.to.shared.u64 p, %1; cvt.u32.u64 %0, p; }" : "=r"(a) : "l"(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a)
                 : "memory");
#else
    r[0] = r[1] = r[2] = r[3] = 0;
    __trap();
#endif
}
// Two consecutive elements of an fp32 or bf16 row as a bf16 pair (lo = the first): a bf16 source is
// already in that form (the same bits as rounding its fp32 value, when it was written rounded to nearest).
__device__ __forceinline__ unsigned attn_pair(const float *p) {
    const float2 v = vld<float2>(p);
    return bf16x2(v.x, v.y);
}
__device__ __forceinline__ unsigned attn_pair(const unsigned short *p) { return vld<unsigned>(p); }

// A 4 x 4 transpose within each quad of lanes (lanes 4q to 4q + 3): x[b] of lane t becomes lane b's x[t]. Two
// butterfly stages (partners t ^ 2, then t ^ 1), two shuffles each.
__device__ __forceinline__ void quad_transpose(unsigned x[4]) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int m = 2; m > 0; m >>= 1)
#pragma unroll
        for (int b = 0; b < 4; b++) {
            if (b & m) continue;
            const unsigned r = __shfl_xor_sync(0xffffffffu, (t & m) ? x[b] : x[b | m], m);
            if (t & m) x[b] = r;
            else x[b | m] = r;
        }
}

// A fragments of 16 rows x HD (row stride rs elements, rows >= n zero) from global fp32 or bf16. Lane (g, t) of
// the fragment holds, of row g and g + 8, the pairs of columns 2t, 2t + 1 of each 8-column block. From fp32 a
// lane loads each pair (8 bytes: a quad reads 32 consecutive bytes of a row, a whole sector); from bf16 with HD a
// multiple of 32 it loads a whole block (16 bytes: a quad reads 64 consecutive bytes) and the quad transposes
// blocks into pairs (quad_transpose), where a pair a lane (4 bytes) left each load instruction half a sector of a
// row: twice the sectors (the CUDA emulator's memory profile, docs/emulator.md). The same bits either way.
template <int HD, class T>
__device__ __forceinline__ void attn_load_a(unsigned a[HD / 16][4], const T *src, long long rs, int r0, int n) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    if constexpr (sizeof(T) == 2 && HD % 32 == 0) {
#pragma unroll
        for (int j0 = 0; j0 < HD / 8; j0 += 4)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int row = r0 + g + 8 * h;
                const uint4 v = row < n ? vld<uint4>(src + row * rs + (j0 + t) * 8) : make_uint4(0, 0, 0, 0);
                unsigned x[4] = {v.x, v.y, v.z, v.w};  // block j0 + t: its pairs 0..3
                quad_transpose(x);                      // blocks j0..j0 + 3: pair t of each
#pragma unroll
                for (int b = 0; b < 4; b++) a[(j0 + b) >> 1][h + 2 * ((j0 + b) & 1)] = x[b];
            }
    } else {
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int row = r0 + g + (i & 1) * 8, col = kk * 16 + 2 * t + (i >> 1) * 8;
                a[kk][i] = row < n ? attn_pair(src + row * rs + col) : 0u;
            }
    }
}
constexpr int kAttnThreads = 128;  // threads of a fused-attention block (the launches use exactly this)

// Shape literals (docs/kernels.md): the fused-attention kernels are templates on the sequence length NL and
// the head count HL too. 0 (the default) takes them from the arguments; an instance with literals (an emitted
// kernels.cu names its configuration's after the library, AVGEN_ATTN_SHAPE below) computes with the
// constants, so its masks, trip counts and addresses fold, and traps when launched with other values (a
// launch that does not match its instance is a bug in avgen: an error, never a wrong result).
template <int L>
__device__ __forceinline__ int shape_lit(int v) {
    if (L != 0 && v != L) __trap();
    return L != 0 ? L : v;
}

// Stages all rows of two sources (both fp32 or both bf16; rows >= n zero, up to the next multiple of 64) as bf16
// into tiles ta and tb ([row][d], stride HD + 8 halves: the fragment loads below, plain and ldmatrix, are free
// of bank conflicts; a chunk of 64 rows is the tile at row c0); a bf16 source is copied, an fp32 one rounded to
// nearest. A thread takes units of 16 bytes of a source (8 bf16 or 4 fp32 elements: one load, unit j of a row its
// columns [Wj, Wj + W)), four units (64 bytes) of each source in flight: at 3 blocks an SM 48 KiB in flight, and
// fewer registers than 8 fp32 units (ptxas). The lanes that take a row's units read it whole, each load instruction on
// consecutive 16-byte pieces, and each half-warp's tile stores (8 bytes a lane from fp32) fill a whole bf16 row of
// 128 bytes at head width 64, all 32 banks once. (Until the seventeenth session an fp32 unit was 8 elements: two
// adjacent float4 took twice the sectors a request, then 4j and HD/2 + 4j, whose 8-byte stores put two rows on 4
// shared banks; the CUDA emulator's memory profile, docs/emulator.md.)
__device__ __forceinline__ uint4 attn_raw16(const unsigned short *p) { return vld<uint4>(p); }
__device__ __forceinline__ float4 attn_raw16(const float *p) { return vld<float4>(p); }
__device__ __forceinline__ void attn_put16(unsigned short *t, uint4 v) { vst(t, v); }
__device__ __forceinline__ void attn_put16(unsigned short *t, float4 v) {
    vst(t, make_uint2(bf16x2(v.x, v.y), bf16x2(v.z, v.w)));
}
template <int HD, class TA, class TB>
__device__ __forceinline__ void attn_stage_all(unsigned short *ta, const TA *sa, long long rsa, unsigned short *tb,
                                               const TB *sb, long long rsb, int n) {
    static_assert(sizeof(TA) == sizeof(TB), "both sources fp32 or both bf16");
    constexpr int W = 16 / sizeof(TA), U = HD / W, G = 4;  // elements a unit; units a row; units in flight
    const int units = attn_rows(n) * U;
    using RA = decltype(attn_raw16(sa));
    using RB = decltype(attn_raw16(sb));
    for (int e0 = threadIdx.x; e0 < units; e0 += G * kAttnThreads) {
        RA va[G];
        RB vb[G];
#pragma unroll
        for (int i = 0; i < G; i++) {
            const int e = e0 + i * kAttnThreads, row = e / U, d = e % U * W;
            va[i] = RA();
            vb[i] = RB();
            if (e < units && row < n) {
                va[i] = attn_raw16(sa + row * rsa + d);
                vb[i] = attn_raw16(sb + row * rsb + d);
            }
        }
#pragma unroll
        for (int i = 0; i < G; i++) {
            const int e = e0 + i * kAttnThreads, row = e / U, d = e % U * W;
            if (e < units) {
                attn_put16(&ta[row * (HD + 8) + d], va[i]);
                attn_put16(&tb[row * (HD + 8) + d], vb[i]);
            }
        }
    }
}
// acc[8] (16 rows x 64 columns) = A (16 x HD) B^T with B = tile[64][HD] (the n index is tile's row).
// Columns from nc on are past N: their 8-column groups are left at zero (the callers mask them).
template <int HD>
__device__ __forceinline__ void attn_mma_nt(float acc[8][4], const unsigned a[HD / 16][4], const unsigned short *tile,
                                            int nc) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.0f;
        if (j * 8 >= nc) continue;  // warp-uniform
#pragma unroll
        for (int kk = 0; kk < HD / 16; kk++) {
            const unsigned short *b = tile + (j * 8 + g) * (HD + 8) + kk * 16 + 2 * t;
            mma_bf16(acc[j], a[kk], vld<unsigned>(b), vld<unsigned>(b + 8));
        }
    }
}
// out[HD/8] (16 rows x HD) += P (16 x 64, the accumulators p as A fragments) B with B = tile[64][HD] (the
// k index is tile's row), its fragments loaded transposed with ldmatrix, two n-tiles at a time.
// k-steps from nc on are past N, where P is 0 and the tile is zero: skipped (exactly the same sums).
template <int HD>
__device__ __forceinline__ void attn_mma_pv(float out[HD / 8][4], const float p[8][4], const unsigned short *tile, int nc) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int kk = 0; kk < 4; kk++) {
        if (kk * 16 >= nc) break;  // warp-uniform
        const unsigned a[4] = {bf16x2(p[2 * kk][0], p[2 * kk][1]), bf16x2(p[2 * kk][2], p[2 * kk][3]),
                               bf16x2(p[2 * kk + 1][0], p[2 * kk + 1][1]), bf16x2(p[2 * kk + 1][2], p[2 * kk + 1][3])};
#pragma unroll
        for (int n = 0; n < HD / 8; n += 2) {
            // matrices: (k rows kk*16 + 0..7, n-tile n), (rows + 8, n), (rows 0..7, n + 1), (rows + 8, n + 1)
            unsigned b[4];
            ldsm_x4_trans(b, tile + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * (HD + 8) + (n + (lane >> 4)) * 8);
            mma_bf16(out[n], a, b[0], b[1]);
            mma_bf16(out[n + 1], a, b[2], b[3]);
        }
    }
}
// Writes 16 rows x HD of accumulators (times s0 for row g, s1 for row g + 8) to dst (row stride rs), rows < n,
// as fp32 or, rounded to nearest, as bf16: a pair of columns a lane (8 bytes of fp32: a quad writes a sector of a
// row), or as bf16 with HD a multiple of 32 a whole 8-column block a lane after the quad transposes its pairs into
// blocks (16 bytes: as attn_load_a reads them).
__device__ __forceinline__ void attn_put(float *p, float a, float b) { vst(p, make_float2(a, b)); }
__device__ __forceinline__ void attn_put(unsigned short *p, float a, float b) { vst(p, bf16x2(a, b)); }
template <int HD, class T>
__device__ __forceinline__ void attn_store(T *dst, long long rs, const float acc[HD / 8][4], int r0, int n, float s0, float s1) {
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    if constexpr (sizeof(T) == 2 && HD % 32 == 0) {
#pragma unroll
        for (int j0 = 0; j0 < HD / 8; j0 += 4)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                unsigned x[4];  // blocks j0..j0 + 3: pair t of each, rounded
#pragma unroll
                for (int b = 0; b < 4; b++)
                    x[b] = h ? bf16x2(acc[j0 + b][2] * s1, acc[j0 + b][3] * s1) : bf16x2(acc[j0 + b][0] * s0, acc[j0 + b][1] * s0);
                quad_transpose(x);  // block j0 + t: its pairs 0..3
                const int row = r0 + g + 8 * h;
                if (row < n) vst(dst + row * rs + (j0 + t) * 8, make_uint4(x[0], x[1], x[2], x[3]));
            }
    } else {
#pragma unroll
        for (int j = 0; j < HD / 8; j++) {
            if (r0 + g < n) attn_put(dst + (r0 + g) * rs + j * 8 + 2 * t, acc[j][0] * s0, acc[j][1] * s0);
            if (r0 + g + 8 < n) attn_put(dst + (r0 + g + 8) * rs + j * 8 + 2 * t, acc[j][2] * s1, acc[j][3] * s1);
        }
    }
}

// One block per (pair, head) (grid 1 x H x P, kAttnThreads threads, attn_smem_bytes of dynamic shared
// memory): the head's whole K and V (or, for dK and dV, Q and dO) are staged in shared memory once, then each
// warp takes 16-row tiles w, w + 4, ... against all of it with no further barrier. Every row is computed by the
// same operations in the same order as by the 64-row blocks these kernels had before (the chunks of 64 keys
// stay the online softmax's steps).
// Forward: O = softmax(scale Q K^T) V with the online softmax over key chunks; lse (when given) per row.
// Each kernel has a twin, *_bf, that takes qkv (and, in the backward, dO) and writes O or dqkv as bf16 (bf16
// storage): the same body, instantiated for the other element types (one kernel for both would carry both
// bodies' registers). A bf16 qkv or dO holds the values the fp32 path rounds to when staging or loading, so
// both compute the same values; the twins' outputs are the fp32 kernels' rounded to nearest.
template <int HD, class T, class OT>
__device__ __forceinline__ void attn_fwd_body(unsigned short *Ks, const T *qkv, OT *O, float *lse, int N, int H, float scale) {
    const int p = blockIdx.z, h = blockIdx.y, D = H * HD;
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const long long rs = 3LL * D;
    const T *q = qkv + (long long)p * N * rs + h * HD;
    const int np = attn_rows(N);
    unsigned short *Vs = Ks + np * (HD + 8);
    attn_stage_all<HD>(Ks, q + D, rs, Vs, q + 2 * D, rs, N);
    __syncthreads();
    for (int r0 = (threadIdx.x >> 5) * 16; r0 < N; r0 += kAttnThreads / 2) {
        unsigned qa[HD / 16][4];
        attn_load_a<HD>(qa, q, rs, r0, N);
        float o[HD / 8][4];
#pragma unroll
        for (int j = 0; j < HD / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
        float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f;
        for (int c0 = 0; c0 < N; c0 += kAttnRows) {
            float s[8][4];
            attn_mma_nt<HD>(s, qa, Ks + c0 * (HD + 8), N - c0);
            float x0 = m0, x1 = m1;
#pragma unroll
            for (int j = 0; j < 8; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const bool in = c0 + j * 8 + 2 * t + e < N;
                    s[j][e] = in ? s[j][e] * scale : -INFINITY;
                    s[j][2 + e] = in ? s[j][2 + e] * scale : -INFINITY;
                    x0 = fmaxf(x0, s[j][e]), x1 = fmaxf(x1, s[j][2 + e]);
                }
            x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 1)), x0 = fmaxf(x0, __shfl_xor_sync(0xffffffffu, x0, 2));
            x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 1)), x1 = fmaxf(x1, __shfl_xor_sync(0xffffffffu, x1, 2));
            const float a0 = __expf(m0 - x0), a1 = __expf(m1 - x1);
            m0 = x0, m1 = x1, l0 *= a0, l1 *= a1;
#pragma unroll
            for (int j = 0; j < HD / 8; j++) o[j][0] *= a0, o[j][1] *= a0, o[j][2] *= a1, o[j][3] *= a1;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                s[j][0] = __expf(s[j][0] - m0), s[j][1] = __expf(s[j][1] - m0);
                s[j][2] = __expf(s[j][2] - m1), s[j][3] = __expf(s[j][3] - m1);
                l0 += s[j][0] + s[j][1], l1 += s[j][2] + s[j][3];
            }
            attn_mma_pv<HD>(o, s, Vs + c0 * (HD + 8), N - c0);
        }
        l0 += __shfl_xor_sync(0xffffffffu, l0, 1), l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
        l1 += __shfl_xor_sync(0xffffffffu, l1, 1), l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
        attn_store<HD>(O + (long long)p * N * D + h * HD, D, o, r0, N, 1.0f / l0, 1.0f / l1);
        if (lse && t == 0) {
            float *lr = lse + ((long long)p * H + h) * N;
            if (r0 + g < N) lr[r0 + g] = m0 + logf(l0);
            if (r0 + g + 8 < N) lr[r0 + g + 8] = m1 + logf(l1);
        }
    }
}
template <int HD, int NL = 0, int HL = 0>
__global__ void __launch_bounds__(kAttnThreads, 1) k_attn_fwd(const float *qkv, float *O, float *lse, int N, int H, float scale) {
    AVGEN_DYNAMIC_SMEM(__align__(16) unsigned short, attn_sm);
    attn_fwd_body<HD>(attn_sm, qkv, O, lse, shape_lit<NL>(N), shape_lit<HL>(H), scale);
}
template <int HD, int NL = 0, int HL = 0>
__global__ void __launch_bounds__(kAttnThreads, 1) k_attn_fwd_bf(const unsigned short *qkv, unsigned short *O, float *lse, int N,
                                                              int H, float scale) {
    AVGEN_DYNAMIC_SMEM(__align__(16) unsigned short, attn_sm);
    attn_fwd_body<HD>(attn_sm, qkv, O, lse, shape_lit<NL>(N), shape_lit<HL>(H), scale);
}

// Backward, dQ: per 16-row query tile, over key chunks: P = exp(scale Q K^T - lse), dP = dO V^T,
// dS = P (dP - delta) scale, dQ = dS K (written to dqkv's Q columns).
template <int HD, class T, class DT>
__device__ __forceinline__ void attn_dq_body(unsigned short *Ks, const T *dO, const T *qkv, const float *lse,
                                             const double *delta, DT *dqkv, int N, int H, float scale) {
    const int p = blockIdx.z, h = blockIdx.y, D = H * HD;
    const int g = (threadIdx.x & 31) >> 2, t = threadIdx.x & 3;
    const long long rs = 3LL * D;
    const T *q = qkv + (long long)p * N * rs + h * HD;
    const T *go = dO + (long long)p * N * D + h * HD;
    const int np = attn_rows(N);
    unsigned short *Vs = Ks + np * (HD + 8);
    attn_stage_all<HD>(Ks, q + D, rs, Vs, q + 2 * D, rs, N);
    __syncthreads();
    const long long st = ((long long)p * H + h) * N;
    for (int r0 = (threadIdx.x >> 5) * 16; r0 < N; r0 += kAttnThreads / 2) {
        unsigned qa[HD / 16][4], da[HD / 16][4];
        attn_load_a<HD>(qa, q, rs, r0, N);
        attn_load_a<HD>(da, go, D, r0, N);
        const float ls0 = r0 + g < N ? lse[st + r0 + g] : 0.0f, ls1 = r0 + g + 8 < N ? lse[st + r0 + g + 8] : 0.0f;
        const float dl0 = r0 + g < N ? (float)delta[st + r0 + g] : 0.0f,
                    dl1 = r0 + g + 8 < N ? (float)delta[st + r0 + g + 8] : 0.0f;
        float dq[HD / 8][4];
#pragma unroll
        for (int j = 0; j < HD / 8; j++) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.0f;
        for (int c0 = 0; c0 < N; c0 += kAttnRows) {
            float s[8][4], dp[8][4];
            attn_mma_nt<HD>(s, qa, Ks + c0 * (HD + 8), N - c0);
            attn_mma_nt<HD>(dp, da, Vs + c0 * (HD + 8), N - c0);
#pragma unroll
            for (int j = 0; j < 8; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const bool in = c0 + j * 8 + 2 * t + e < N;
                    const float p0 = in ? __expf(s[j][e] * scale - ls0) : 0.0f, p1 = in ? __expf(s[j][2 + e] * scale - ls1) : 0.0f;
                    s[j][e] = p0 * (dp[j][e] - dl0) * scale;
                    s[j][2 + e] = p1 * (dp[j][2 + e] - dl1) * scale;
                }
            attn_mma_pv<HD>(dq, s, Ks + c0 * (HD + 8), N - c0);
        }
        attn_store<HD>(dqkv + (long long)p * N * rs + h * HD, rs, dq, r0, N, 1.0f, 1.0f);
    }
}
template <int HD, int NL = 0, int HL = 0>
__global__ void __launch_bounds__(kAttnThreads, 1) k_attn_bwd_dq(const float *dO, const float *qkv, const float *lse,
                                                              const double *delta, float *dqkv, int N, int H, float scale) {
    AVGEN_DYNAMIC_SMEM(__align__(16) unsigned short, attn_sm);
    attn_dq_body<HD>(attn_sm, dO, qkv, lse, delta, dqkv, shape_lit<NL>(N), shape_lit<HL>(H), scale);
}
template <int HD, int NL = 0, int HL = 0>
__global__ void __launch_bounds__(kAttnThreads, 1) k_attn_bwd_dq_bf(const unsigned short *dO, const unsigned short *qkv, const float *lse,
                                                                 const double *delta, unsigned short *dqkv, int N, int H,
                                                                 float scale) {
    AVGEN_DYNAMIC_SMEM(__align__(16) unsigned short, attn_sm);
    attn_dq_body<HD>(attn_sm, dO, qkv, lse, delta, dqkv, shape_lit<NL>(N), shape_lit<HL>(H), scale);
}

// Backward, dK and dV: per 16-row key tile, over query chunks: P^T = exp(scale K Q^T - lse), dV = P^T dO,
// dP^T = V dO^T, dS^T = P^T (dP^T - delta) scale, dK = dS^T Q (written to dqkv's K and V columns).
template <int HD, class T, class DT>
__device__ __forceinline__ void attn_dkv_body(unsigned short *Qs, const T *dO, const T *qkv, const float *lse,
                                              const double *delta, DT *dqkv, int N, int H, float scale) {
    const int p = blockIdx.z, h = blockIdx.y, D = H * HD;
    const int t = threadIdx.x & 3;
    const long long rs = 3LL * D;
    const T *q = qkv + (long long)p * N * rs + h * HD;
    const T *go = dO + (long long)p * N * D + h * HD;
    const int np = attn_rows(N);
    unsigned short *Os = Qs + np * (HD + 8);  // dO
    float *lse_s = (float *)(Os + np * (HD + 8)), *del_s = lse_s + np;
    const long long st = ((long long)p * H + h) * N;
    attn_stage_all<HD>(Qs, q, rs, Os, go, D, N);
    for (int i = threadIdx.x; i < np; i += kAttnThreads) {
        lse_s[i] = i < N ? lse[st + i] : 0.0f;
        del_s[i] = i < N ? (float)delta[st + i] : 0.0f;
    }
    __syncthreads();
    for (int r0 = (threadIdx.x >> 5) * 16; r0 < N; r0 += kAttnThreads / 2) {
        unsigned ka[HD / 16][4], va[HD / 16][4];
        attn_load_a<HD>(ka, q + D, rs, r0, N);
        attn_load_a<HD>(va, q + 2 * D, rs, r0, N);
        float dk[HD / 8][4], dv[HD / 8][4];
#pragma unroll
        for (int j = 0; j < HD / 8; j++)
            dk[j][0] = dk[j][1] = dk[j][2] = dk[j][3] = dv[j][0] = dv[j][1] = dv[j][2] = dv[j][3] = 0.0f;
        for (int c0 = 0; c0 < N; c0 += kAttnRows) {
            const unsigned short *qt = Qs + c0 * (HD + 8), *ot = Os + c0 * (HD + 8);
            float s[8][4], dp[8][4];
            attn_mma_nt<HD>(s, ka, qt, N - c0);   // S^T: rows keys, columns queries
            attn_mma_nt<HD>(dp, va, ot, N - c0);  // dP^T
#pragma unroll
            for (int j = 0; j < 8; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int c = j * 8 + 2 * t + e;
                    const bool in = c0 + c < N;
                    const float l = lse_s[c0 + c], dl = del_s[c0 + c];
                    s[j][e] = in ? __expf(s[j][e] * scale - l) : 0.0f;
                    s[j][2 + e] = in ? __expf(s[j][2 + e] * scale - l) : 0.0f;
                    dp[j][e] = s[j][e] * (dp[j][e] - dl) * scale;
                    dp[j][2 + e] = s[j][2 + e] * (dp[j][2 + e] - dl) * scale;
                }
            attn_mma_pv<HD>(dv, s, ot, N - c0);
            attn_mma_pv<HD>(dk, dp, qt, N - c0);
        }
        attn_store<HD>(dqkv + (long long)p * N * rs + D + h * HD, rs, dk, r0, N, 1.0f, 1.0f);
        attn_store<HD>(dqkv + (long long)p * N * rs + 2 * D + h * HD, rs, dv, r0, N, 1.0f, 1.0f);
    }
}
template <int HD, int NL = 0, int HL = 0>
__global__ void __launch_bounds__(kAttnThreads, 1) k_attn_bwd_dkv(const float *dO, const float *qkv, const float *lse,
                                                               const double *delta, float *dqkv, int N, int H, float scale) {
    AVGEN_DYNAMIC_SMEM(__align__(16) unsigned short, attn_sm);
    attn_dkv_body<HD>(attn_sm, dO, qkv, lse, delta, dqkv, shape_lit<NL>(N), shape_lit<HL>(H), scale);
}
template <int HD, int NL = 0, int HL = 0>
__global__ void __launch_bounds__(kAttnThreads, 1) k_attn_bwd_dkv_bf(const unsigned short *dO, const unsigned short *qkv, const float *lse,
                                                                  const double *delta, unsigned short *dqkv, int N, int H,
                                                                  float scale) {
    AVGEN_DYNAMIC_SMEM(__align__(16) unsigned short, attn_sm);
    attn_dkv_body<HD>(attn_sm, dO, qkv, lse, delta, dqkv, shape_lit<NL>(N), shape_lit<HL>(H), scale);
}

#define AVGEN_ATTN_INST(HD)                                                                                            \
    template __global__ void k_attn_fwd<HD>(const float *, float *, float *, int, int, float);                        \
    template __global__ void k_attn_bwd_dq<HD>(const float *, const float *, const float *, const double *, float *, int, \
                                               int, float);                                                          \
    template __global__ void k_attn_bwd_dkv<HD>(const float *, const float *, const float *, const double *, float *,    \
                                                int, int, float);                                                    \
    template __global__ void k_attn_fwd_bf<HD>(const unsigned short *, unsigned short *, float *, int, int, float);             \
    template __global__ void k_attn_bwd_dq_bf<HD>(const unsigned short *, const unsigned short *, const float *,         \
                                                  const double *,                                                    \
                                                  unsigned short *, int, int, float);                                \
    template __global__ void k_attn_bwd_dkv_bf<HD>(const unsigned short *, const unsigned short *, const float *,        \
                                                   const double *,                                                   \
                                                   unsigned short *, int, int, float);
AVGEN_ATTN_INST(16)
AVGEN_ATTN_INST(32)
AVGEN_ATTN_INST(64)
#undef AVGEN_ATTN_INST
// The six kernels with head width HD, N tokens and H heads as literals (runtime/rt_cuda_kernel_list.h:
// AVGEN_CUDA_SHAPE_KERNELS): one line per (HD, N, H) at the start of a line after the library, as an emitted
// kernels.cu has them; the NVRTC build requests these instances by name (rt_kernels_shapes).
#define AVGEN_ATTN_SHAPE(HD, N, H)                                                                                     \
    template __global__ void k_attn_fwd<HD, N, H>(const float *, float *, float *, int, int, float);                  \
    template __global__ void k_attn_fwd_bf<HD, N, H>(const unsigned short *, unsigned short *, float *, int, int,      \
                                                     float);                                                          \
    template __global__ void k_attn_bwd_dq<HD, N, H>(const float *, const float *, const float *, const double *,     \
                                                     float *, int, int, float);                                       \
    template __global__ void k_attn_bwd_dq_bf<HD, N, H>(const unsigned short *, const unsigned short *,               \
                                                        const float *, const double *, unsigned short *, int, int,    \
                                                        float);                                                       \
    template __global__ void k_attn_bwd_dkv<HD, N, H>(const float *, const float *, const float *, const double *,    \
                                                      float *, int, int, float);                                      \
    template __global__ void k_attn_bwd_dkv_bf<HD, N, H>(const unsigned short *, const unsigned short *,              \
                                                         const float *, const double *, unsigned short *, int, int,   \
                                                         float);

// LAVISH latent exchange, part 1, in three kernels so that a pair's tokens Y are read by many blocks at once
// (one block a pair left the memory system mostly idle): A1[i] = softmax(tok_i . Y_j) over j,
// S_i = tok_i + sum_j A1[i, j] Y_j. k_lat_dots writes the logits into A1, k_lat_softmax turns them into
// probabilities in place, k_lat_mix forms S. The backward's part 3 runs the same three on dS, with the
// softmax's backward. Each dot, softmax and sum runs in the same order as when one block did all three.
// Dots: A[p, i, j] = V_p,i . Y_p,j for the latents i < m (pair p's rows of V start at p * vps: 0 when the pairs
// share them, the tokens; m * D for dS). Blocks over (pair, rows j of Y): a warp a row, lanes over d, then a
// warp sum.
template <int M>
__global__ void k_lat_dots(const float *V, long long vps, const float *Y, float *A, int N2, int D, int m) {
    const int p = blockIdx.x, j = blockIdx.y * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (j >= N2) return;
    const float *v = V + p * vps, *y = Y + ((size_t)p * N2 + j) * D;
    float s[M];
#pragma unroll
    for (int i = 0; i < M; i++) s[i] = 0;
    for (int d = lane; d < D; d += 32) {
        const float yv = y[d];
#pragma unroll
        for (int i = 0; i < M; i++)
            if (i < m) s[i] = __fmaf_rn(v[(size_t)i * D + d], yv, s[i]);
    }
#pragma unroll
    for (int i = 0; i < M; i++)
        if (i < m) {
            const float t = warp_sum(s[i]);
            if (lane == 0) A[((size_t)p * m + i) * N2 + j] = t;
        }
}

// In place on A [P, m, N2], one block a pair: the forward (G NULL) softmax over j of each latent's logits; the
// backward (G = A1, A holding dA1[i, j] = dS_i . Y_j) A1 (dA1 - rowsum(dA1 A1)), the softmax's input gradient
// dL1. Each thread reads and writes only its own j (the same ones whatever N2), so in place is safe.
__global__ void k_lat_softmax(float *A, const float *G, int N2, int m) {
    const int p = blockIdx.x;
    for (int i = 0; i < m; i++) {
        float *ai = A + ((size_t)p * m + i) * N2;
        if (G) {
            const float *gi = G + ((size_t)p * m + i) * N2;
            double r = 0;
            for (int j = threadIdx.x; j < N2; j += blockDim.x) r = __fma_rn(ai[j], gi[j], r);
            r = block_sum_d(r);
            __syncthreads();
            for (int j = threadIdx.x; j < N2; j += blockDim.x) ai[j] = (float)(gi[j] * (ai[j] - r));
        } else {
            float mx = -INFINITY;
            for (int j = threadIdx.x; j < N2; j += blockDim.x) mx = fmaxf(mx, ai[j]);
            mx = block_max(mx);
            double se = 0;
            for (int j = threadIdx.x; j < N2; j += blockDim.x) se += exp((double)ai[j] - mx);
            se = block_sum_d(se);
            __syncthreads();
            for (int j = threadIdx.x; j < N2; j += blockDim.x) ai[j] = (float)(exp((double)ai[j] - mx) / se);
        }
    }
}

// out[p, i, d] = base[p, i, d] + sum_j A[p, i, j] Y[p, j, d] (pair p's rows of base start at p * bps), a thread a
// column d, Y read once for all latents. Blocks over (pair, columns in runs of blockDim.x). from_base: the sum
// starts from base (base + a0 y0 + a1 y1 ...); else base is added to the finished sum (base + (a0 y0 + ...)).
template <int M>
__global__ void k_lat_mix(const float *A, const float *base, long long bps, int from_base, const float *Y, float *out,
                          int N2, int D, int m) {
    const int p = blockIdx.x, d = blockIdx.y * blockDim.x + threadIdx.x;
    if (d >= D) return;
    const float *a = A + (size_t)p * m * N2, *y = Y + (size_t)p * N2 * D, *bs = base + p * bps;
    float *o = out + (size_t)p * m * D, s[M];
#pragma unroll
    for (int i = 0; i < M; i++) s[i] = i < m && from_base ? bs[(size_t)i * D + d] : 0.0f;
#pragma unroll 4
    for (int j = 0; j < N2; j++) {
        const float yv = y[(size_t)j * D + d];
#pragma unroll
        for (int i = 0; i < M; i++)
            if (i < m) s[i] = __fmaf_rn(a[(size_t)i * N2 + j], yv, s[i]);
    }
#pragma unroll
    for (int i = 0; i < M; i++)
        if (i < m) o[(size_t)i * D + d] = from_base ? s[i] : bs[(size_t)i * D + d] + s[i];
}

constexpr int kMaxLatents = 16;

// Part 2, one warp per row r of X: A2[r] = softmax(X_r . S_i) over i, Z_r = X_r + gate_av sum_i A2[r,i] S_i
// (lat_z; Z NULL: A2 only).
// M: a compile-time bound on the latent count m (per-latent values stay in registers).
// tok2 (m2 <= M tokens, else NULL): also the logits of the adapter whose other stream X is, tok2_i . X_r, into
// L2[p, i, r - p N] as k_lat_dots writes them (the same lanes' sums in the same order: the same bits), in
// this pass over X (a carry, rt_cuda_latdots_reader).
// latent_row: row r's part (every lane of its warp): A2 written by lane 0 and left in a (the same values in every
// lane), Z when not NULL, and tok2's logits.
template <int M>
__device__ __forceinline__ void latent_row(long long r, int lane, const float *X, const float *S, const float *gav, float *Z,
                                           float *A2, int N, int D, int m, const float *tok2, int m2, float *L2, float a[M]) {
    const int p = (int)(r / N);
    const float *x = X + r * D, *s = S + (size_t)p * m * D;
    if (tok2) {
#pragma unroll
        for (int i = 0; i < M; i++)
            if (i < m2) {
                float t = 0;
                for (int d = lane; d < D; d += 32) t = __fmaf_rn(tok2[(size_t)i * D + d], x[d], t);
                t = warp_sum(t);
                if (lane == 0) L2[((size_t)p * m2 + i) * N + (r - (long long)p * N)] = t;
            }
    }
    float mx = -INFINITY;
#pragma unroll
    for (int i = 0; i < M; i++) {
        a[i] = 0;
        if (i < m) {
            float t = 0;
            for (int d = lane; d < D; d += 32) t = __fmaf_rn(x[d], s[(size_t)i * D + d], t);
            a[i] = warp_sum(t);
            mx = fmaxf(mx, a[i]);
        }
    }
    double se = 0;
#pragma unroll
    for (int i = 0; i < M; i++)
        if (i < m) se += exp((double)a[i] - mx);
#pragma unroll
    for (int i = 0; i < M; i++)
        if (i < m) {
            a[i] = (float)(exp((double)a[i] - mx) / se);
            if (lane == 0) A2[r * m + i] = a[i];
        }
    if (!Z) return;  // Z applied on load by the LayerNorm after it (k_layernorm_lat)
    const float g = gav[0];
    for (int d = lane; d < D; d += 32) {  // lat_z's arithmetic, with the weights in registers
        float z = 0;
#pragma unroll
        for (int i = 0; i < M; i++)
            if (i < m) z = __fmaf_rn(a[i], s[(size_t)i * D + d], z);
        Z[r * D + d] = __fmaf_rn(g, z, x[d]);
    }
}
template <int M>
__global__ void k_latent_b(const float *X, const float *S, const float *gav, float *Z, float *A2, long long rows,
                           int N, int D, int m, const float *tok2, int m2, float *L2) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    float a[M];
    latent_row<M>(r, lane, X, S, gav, Z, A2, N, D, m, tok2, m2, L2, a);
}

// The gated fuse applied on load from the row's weights in registers (the latent op and the LayerNorm after it as
// one kernel, k_latent_ln): lat_z's arithmetic on a[] (the values k_latent_b wrote to A2), so the same bits.
constexpr int kLatLnM = 2;  // the most latents it takes (RT_CUDA_LATLN_MAX_M)
struct LatRegLoad {
    float a[kLatLnM];
    const float *S;
    float g;
    int N, m;
};
struct LatRegRow {
    const float *xr, *s;
    float a[kLatLnM];
    float g;
    int m, D;
    __device__ __forceinline__ float operator()(int d) const {
        float z = 0;
#pragma unroll
        for (int i = 0; i < kLatLnM; i++)
            if (i < m) z = __fmaf_rn(a[i], s[(size_t)i * D + d], z);
        return __fmaf_rn(g, z, xr[d]);
    }
};
__device__ __forceinline__ LatRegRow load_row(const LatRegLoad &l, const float *xr, long long r, int D) {
    LatRegRow w{xr, l.S + (size_t)(r / l.N) * l.m * D, {}, l.g, l.m, D};
#pragma unroll
    for (int i = 0; i < kLatLnM; i++) w.a[i] = l.a[i];
    return w;
}
// An adapter's latent op (its X the residual stream, Z applied on load: k_latent_b without Z) and the LayerNorm
// before the adapter (k_layernorm_lat) as one kernel, one warp a row: the row is read from memory once for both
// (the LayerNorm's loads of it hit the cache the latent part just filled), the same bits as the two kernels
// (rt_cuda_latln_next). m, m2 <= kLatLnM.
template <int V>
__global__ void __launch_bounds__(128, 4) k_latent_ln(const float *X, const float *S, const float *gav, float *A2,
                                                      long long rows, int N, int D, int m, const float *tok2, int m2,
                                                      float *L2, const float *w, const float *b, float *y, float *mu,
                                                      float *rs, float eps, unsigned short *ybf) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (r >= rows) return;
    LatRegLoad l;
    latent_row<kLatLnM>(r, lane, X, S, gav, NULL, A2, N, D, m, tok2, m2, L2, l.a);
    l.S = S, l.g = gav[0], l.N = N, l.m = m;
    layernorm_row<V>(X, D, w, b, y, D, mu, rs, NULL, NULL, rows, D, eps, ybf, NULL, l);
}

// The two streams' adapters at one position run their latent backward as one (rt_cuda_latbwd_first): each
// adds to both streams' gradients, and the pair's passes over a gradient add both adapters' terms, in the
// order the two ops would, in one read and one write. LatGy: the other adapter's part 4 term on these rows
// (its Y is this one's X); LatRows: the other's part 1 term gX (dZ + dL2 S) from its dL2. m = 0: none.
struct LatGy {
    const float *A1, *dS, *dL1, *tok;
    int m;
};
struct LatRows {
    const float *dZ;
    const unsigned short *dZ16;  // dZ as bf16 (then dZ is ignored)
    const float *dL2, *S;
    int m;
};
// Part 4's term of row j of pair p, column d: sum_i A1[p,i,j] dS[p,i,d] + sum_i dL1[p,i,j] tok[i,d] (N2 rows a pair).
__device__ __forceinline__ float lat_gy(const LatGy &o, int p, int j, int N2, int D, int d) {
    float s1 = 0, s2 = 0;
    for (int i = 0; i < o.m; i++) {
        const size_t pi = (size_t)p * o.m + i;
        s1 = __fmaf_rn(o.A1[pi * N2 + j], o.dS[pi * D + d], s1);
        s2 = __fmaf_rn(o.dL1[pi * N2 + j], o.tok[(size_t)i * D + d], s2);
    }
    return s1 + s2;
}
// Part 1's term of row r (of pair p), column d: dZ[r,d] + sum_i dL2[r,i] S[p,i,d], as k_latbwd_rows adds it.
__device__ __forceinline__ float lat_rows(const LatRows &o, long long r, int p, int D, int d) {
    float t = 0;
    for (int i = 0; i < o.m; i++) t = __fmaf_rn(o.dL2[r * o.m + i], o.S[((size_t)p * o.m + i) * D + d], t);
    return ld_fh(o.dZ, o.dZ16, (size_t)r * D + d) + t;
}
// Part 4 on element d of row pj = (p, j) of gY: its term, then orow's (k_latbwd_gy's scalar path).
__device__ __forceinline__ void lat_gy_add(const LatGy &me, const LatRows &orow, float *gY, long long pj, int p, int j, int N2,
                                           int D, int d) {
    float v = gY[(size_t)pj * D + d] + lat_gy(me, p, j, N2, D, d);
    if (orow.m) v += lat_rows(orow, pj, p, D, d);
    gY[(size_t)pj * D + d] = v;
}

// Backward of the exchange, part 1, one warp per row r: rowdg[r] = dZ_r . (A2 S)_r;
// dL2[r] = A2 (dA2 - rowsum(dA2 A2)) with dA2[r,i] = gate_av dZ_r . S_i; gX_r += dZ_r + sum_i dL2[r,i] S_i,
// then (a fused pair) += the other adapter's part 4 term oy. dZ16: dZ stored as bf16 (then dZ is ignored).
template <int M>
__device__ __forceinline__ void latbwd_row(long long r, int lane, const float *dZ, const float *S, const float *A2,
                                           const float *gav, double *rowdg, float *dL2, float *gX, int N, int D, int m,
                                           const unsigned short *dZ16, const LatGy &oy) {
    const int p = (int)(r / N);
    const float *dzf = dZ16 ? NULL : dZ + r * D, *s = S + (size_t)p * m * D, *a2 = A2 + r * m;
    const unsigned short *dzh = dZ16 ? dZ16 + r * D : NULL;
    auto dz = [&](int d) { return dzh ? ld_f(dzh + d) : dzf[d]; };
    const float g = gav[0];
    double dg = 0;
    float da[M], aa[M];
#pragma unroll
    for (int i = 0; i < M; i++) da[i] = 0, aa[i] = i < m ? a2[i] : 0.0f;
    for (int d = lane; d < D; d += 32) {
        float cm = 0;
        const float dzv = dz(d), gz = g * dzv;
#pragma unroll
        for (int i = 0; i < M; i++)
            if (i < m) {
                const float sv = s[(size_t)i * D + d];
                cm = __fmaf_rn(aa[i], sv, cm);
                da[i] = __fmaf_rn(gz, sv, da[i]);
            }
        dg = __fma_rn(dzv, cm, dg);
    }
    dg = warp_sum_d(dg);
    double rsum = 0;
#pragma unroll
    for (int i = 0; i < M; i++)
        if (i < m) {
            da[i] = warp_sum(da[i]);
            rsum = __fma_rn(da[i], aa[i], rsum);
        }
#pragma unroll
    for (int i = 0; i < M; i++)
        if (i < m) {
            da[i] = (float)(aa[i] * (da[i] - rsum));
            if (lane == 0) dL2[r * m + i] = da[i];
        }
    if (lane == 0) rowdg[r] = dg;
    if (gX) {
        const int j = (int)(r - (long long)p * N);
        for (int d = lane; d < D; d += 32) {
            float t = 0;
#pragma unroll
            for (int i = 0; i < M; i++)
                if (i < m) t = __fmaf_rn(da[i], s[(size_t)i * D + d], t);
            float v = gX[r * D + d] + (dz(d) + t);
            if (oy.m) v += lat_gy(oy, p, j, N, D, d);
            gX[r * D + d] = v;
        }
    }
}
template <int M>
__global__ void k_latbwd_rows(const float *dZ, const float *S, const float *A2, const float *gav, double *rowdg,
                              float *dL2, float *gX, long long rows, int N, int D, int m, const unsigned short *dZ16,
                              LatGy oy) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    latbwd_row<M>(r, threadIdx.x & 31, dZ, S, A2, gav, rowdg, dL2, gX, N, D, m, dZ16, oy);
}
// The frozen LayerNorm backward that adds to gX just before a latent backward pair (rt_cuda_latbwd_ln), run by
// the warp on its row first (ln_bwd_row, as k_ln_bwd and k_ln_bwd_bf run it, accumulating into gX), then part 1
// on the same row by the same lanes: the row of gX read from memory and written back once. m <= 2; dy fp32
// (k_latbwd_rows_ln) or bf16 (k_latbwd_rows_lnbf). Blocks of 128 threads, a warp a row.
struct LnBwdIn {
    const void *dy;
    const float *x, *mu, *rs, *w;
};
// A frozen LayerNorm's backward on row r, dx += (as k_ln_bwd and k_ln_bwd_bf: dy of type DT, rows of D)
template <int V, class DT>
__device__ __forceinline__ void ln_bwd_frozen_row(long long r, int lane, const LnBwdIn &ln, float *dx, int D) {
    ln_bwd_row<V, false, false, DT>(r, lane, (const DT *)ln.dy, ln.x, ln.mu, ln.rs, ln.w, NULL, NULL, dx, D, 1, NULL, D, NULL,
                                    NULL, BnLoad{});
}
// the latents latbwd_rows_ln keeps in registers (rt_cuda.h: RT_CUDA_LATBWD_LN_MAX_M, what rt_cuda_latbwd_ln allows)
constexpr int kLatBwdLnMaxM = 2;
template <int V, class DT>
__device__ __forceinline__ void latbwd_rows_ln(const LnBwdIn &ln, const float *dZ, const float *S, const float *A2,
                                               const float *gav, double *rowdg, float *dL2, float *gX, long long rows,
                                               int N, int D, int m, const unsigned short *dZ16, const LatGy &oy) {
    const long long r = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    const int lane = threadIdx.x & 31;
    ln_bwd_frozen_row<V, DT>(r, lane, ln, gX, D);
    latbwd_row<kLatBwdLnMaxM>(r, lane, dZ, S, A2, gav, rowdg, dL2, gX, N, D, m, dZ16, oy);
}
template <int V>
__global__ void __launch_bounds__(128) k_latbwd_rows_ln(LnBwdIn ln, const float *dZ, const float *S, const float *A2,
                                                        const float *gav, double *rowdg, float *dL2, float *gX,
                                                        long long rows, int N, int D, int m, const unsigned short *dZ16,
                                                        LatGy oy) {
    latbwd_rows_ln<V, float>(ln, dZ, S, A2, gav, rowdg, dL2, gX, rows, N, D, m, dZ16, oy);
}
template <int V>
__global__ void __launch_bounds__(128) k_latbwd_rows_lnbf(LnBwdIn ln, const float *dZ, const float *S, const float *A2,
                                                          const float *gav, double *rowdg, float *dL2, float *gX,
                                                          long long rows, int N, int D, int m, const unsigned short *dZ16,
                                                          LatGy oy) {
    latbwd_rows_ln<V, unsigned short>(ln, dZ, S, A2, gav, rowdg, dL2, gX, rows, N, D, m, dZ16, oy);
}

// Part 2: dS[p,i,d] = sum_r A2[r,i] gate_av dZ[r,d] + dL2[r,i] X[r,d] over the pair's rows. One thread per
// (pair, d) for every latent (M: compile-time bound on m), so dZ and X are read once; rows unrolled by 4 so
// loads overlap (each sum still adds its rows in order).
template <int M>
__global__ void k_latbwd_ds(const float *dZ, const float *X, const float *A2, const float *dL2, const float *gav,
                            float *dS, int N, int D, int m, const unsigned short *dZ16) {
    const int p = blockIdx.x, d = blockIdx.y * blockDim.x + threadIdx.x;
    if (d >= D) return;
    const float g = gav[0];
    float s1[M], s2[M];
#pragma unroll
    for (int i = 0; i < M; i++) s1[i] = s2[i] = 0;
#pragma unroll 4
    for (int r = 0; r < N; r++) {
        const size_t row = (size_t)p * N + r;
        const float gz = g * ld_fh(dZ, dZ16, row * D + d), xv = X[row * D + d];
#pragma unroll
        for (int i = 0; i < M; i++)
            if (i < m) {
                s1[i] = __fmaf_rn(A2[row * m + i], gz, s1[i]);
                s2[i] = __fmaf_rn(dL2[row * m + i], xv, s2[i]);
            }
    }
#pragma unroll
    for (int i = 0; i < M; i++)
        if (i < m) dS[((size_t)p * m + i) * D + d] = s1[i] + s2[i];
}

// Part 3: dL1 and each pair's share of the token gradient, k_lat_dots, k_lat_softmax and k_lat_mix (part 1) on dS.

// Part 4: gY[p,j] += sum_i A1[p,i,j] dS[p,i] + dL1[p,i,j] tok_i, then (a fused pair) += the other adapter's
// part 1 term orow. Blocks take rows (p, j) = pj from blockIdx.x on, gridDim.x apart (a block per row was a
// hundred thousand blocks of one float4 a thread, bound by launching blocks), threads over d (blockIdx.y *
// blockDim.x + threadIdx.x): four consecutive d a thread (float4) when D is a multiple of 4, else one. The
// same sums, in the same order, whatever the grid.
__global__ void k_latbwd_gy(const float *A1, const float *dS, const float *dL1, const float *tok, float *gY, int P,
                            int N2, int D, int m, LatRows orow) {
    const int t = blockIdx.y * blockDim.x + threadIdx.x;
    const int rows = P * N2, vec = (D & 3) == 0, d = vec ? 4 * t : t;
    if (d >= D) return;
    for (int pj = blockIdx.x; pj < rows; pj += gridDim.x) {
        const int p = pj / N2, j = pj % N2;
        if (vec) {
            float4 s1 = make_float4(0, 0, 0, 0), s2 = s1;
            for (int i = 0; i < m; i++) {
                const float a = A1[((size_t)p * m + i) * N2 + j], l = dL1[((size_t)p * m + i) * N2 + j];
                const float4 ds = vld<float4>(dS + ((size_t)p * m + i) * D + d), tk = vld<float4>(tok + (size_t)i * D + d);
                s1.x = __fmaf_rn(a, ds.x, s1.x), s1.y = __fmaf_rn(a, ds.y, s1.y);
                s1.z = __fmaf_rn(a, ds.z, s1.z), s1.w = __fmaf_rn(a, ds.w, s1.w);
                s2.x = __fmaf_rn(l, tk.x, s2.x), s2.y = __fmaf_rn(l, tk.y, s2.y);
                s2.z = __fmaf_rn(l, tk.z, s2.z), s2.w = __fmaf_rn(l, tk.w, s2.w);
            }
            float *g = gY + (size_t)pj * D + d;
            float4 v = vld<float4>(g);
            v.x += s1.x + s2.x, v.y += s1.y + s2.y, v.z += s1.z + s2.z, v.w += s1.w + s2.w;
            if (orow.m) {  // lat_rows on four columns: dL2 loaded once, S as float4
                float4 t = make_float4(0, 0, 0, 0);
                for (int i = 0; i < orow.m; i++) {
                    const float l = orow.dL2[(size_t)pj * orow.m + i];
                    const float4 sv = vld<float4>(orow.S + ((size_t)p * orow.m + i) * D + d);
                    t.x = __fmaf_rn(l, sv.x, t.x), t.y = __fmaf_rn(l, sv.y, t.y);
                    t.z = __fmaf_rn(l, sv.z, t.z), t.w = __fmaf_rn(l, sv.w, t.w);
                }
                const size_t e = (size_t)pj * D + d;
                v.x += ld_fh(orow.dZ, orow.dZ16, e) + t.x, v.y += ld_fh(orow.dZ, orow.dZ16, e + 1) + t.y;
                v.z += ld_fh(orow.dZ, orow.dZ16, e + 2) + t.z, v.w += ld_fh(orow.dZ, orow.dZ16, e + 3) + t.w;
            }
            vst(g, v);
        } else {
            lat_gy_add(LatGy{A1, dS, dL1, tok, m}, orow, gY, pj, p, j, N2, D, d);
        }
    }
}

// k_latbwd_gy with the frozen LayerNorm backward that adds to gY just before the pair (rt_cuda_latbwd_lny): a
// warp a row of gY (blocks of 128 threads), the LayerNorm backward on it first (ln_bwd_row, accumulating), then
// part 4 and orow's term on the same row by the same lanes (lat_gy, lat_rows: k_latbwd_gy's sums per element).
template <int V, class DT>
__device__ __forceinline__ void latbwd_gy_ln(const LnBwdIn &ln, const float *A1, const float *dS, const float *dL1,
                                             const float *tok, float *gY, int P, int N2, int D, int m, const LatRows &orow) {
    const long long pj = blockIdx.x * (long long)(blockDim.x >> 5) + (threadIdx.x >> 5);
    if (pj >= (long long)P * N2) return;
    const int lane = threadIdx.x & 31, p = (int)(pj / N2), j = (int)(pj - (long long)p * N2);
    ln_bwd_frozen_row<V, DT>(pj, lane, ln, gY, D);
    const LatGy me = {A1, dS, dL1, tok, m};
    for (int d = lane; d < D; d += 32) lat_gy_add(me, orow, gY, pj, p, j, N2, D, d);
}
template <int V>
__global__ void __launch_bounds__(128) k_latbwd_gy_ln(LnBwdIn ln, const float *A1, const float *dS, const float *dL1,
                                                      const float *tok, float *gY, int P, int N2, int D, int m, LatRows orow) {
    latbwd_gy_ln<V, float>(ln, A1, dS, dL1, tok, gY, P, N2, D, m, orow);
}
template <int V>
__global__ void __launch_bounds__(128) k_latbwd_gy_lnbf(LnBwdIn ln, const float *A1, const float *dS, const float *dL1,
                                                        const float *tok, float *gY, int P, int N2, int D, int m, LatRows orow) {
    latbwd_gy_ln<V, unsigned short>(ln, A1, dS, dL1, tok, gY, P, N2, D, m, orow);
}

// dst[e] += sum over p < P of src[p, e] (double), e < n: the latent tokens' per-pair gradients (P pairs, n = m D,
// a few thousand columns) or the row chunks' partial weight gradients. A block of kSumWarps warps takes 32
// consecutive columns; warp w sums the rows p = w, w + kSumWarps, ... in order, eight loads in flight, and the
// warps' sums are added in warp order: a fixed order (deterministic), and (n + 31) / 32 blocks where one thread
// a column gave six blocks looping over all 256 pairs at ViT-B/16, B = 32. Launch: (n + 31) / 32 blocks of
// 32 kSumWarps threads.
constexpr int kSumWarps = 8;
__global__ void __launch_bounds__(32 * kSumWarps) k_sum_pairs(const float *src, float *dst, int P, long long n) {
    AVGEN_SHARED(double, part, kSumWarps * 32);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    const long long e = blockIdx.x * 32LL + lane;
    double s = 0;
    if (e < n) {
#pragma unroll 8
        for (int p = w; p < P; p += kSumWarps) s += src[(size_t)p * n + e];
    }
    part[w * 32 + lane] = s;
    __syncthreads();
    if (w == 0 && e < n) {
        double t = 0;
        for (int i = 0; i < kSumWarps; i++) t += part[i * 32 + lane];
        dst[e] += (float)t;
    }
}

// dst[0] += sum of v[0..n) (double), one block.
__global__ void __launch_bounds__(1024) k_reduce_scalar(const double *v, long long n, float *dst) {
    double s = 0;
#pragma unroll 8
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += v[i];
    s = block_sum_d(s);
    if (threadIdx.x == 0) dst[0] += (float)s;
}

// Group projection y (rows, Cout) from x (rows, Cin) is a GEMM per group (host code).

// f[b, col + d] = mean over t of cls[b*T + t, d].
__global__ void k_concat_mean(const float *cls, float *f, int B, int T, int D, int W, int col) {
    const int n = B * D;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
        const int b = e / D, d = e % D;
        double acc = 0;
        for (int t = 0; t < T; t++) acc += cls[((size_t)b * T + t) * D + d];
        f[(size_t)b * W + col + d] = (float)(acc / T);
    }
}
__global__ void k_concat_mean_bwd(const float *df, float *d, int B, int T, int D, int W, int col) {
    const int n = B * T * D;
    for (int e = blockIdx.x * blockDim.x + threadIdx.x; e < n; e += gridDim.x * blockDim.x) {
        const int j = e % D, bt = e / D, b = bt / T;
        d[e] = df[(size_t)b * W + col + j] / T;
    }
}

// Mean softmax cross-entropy; one block; writes the loss and d(loss)/d(logits).
__global__ void k_cross_entropy(const float *logits, const long long *labels, float *loss, float *dl, int B, int C) {
    AVGEN_DYNAMIC_SMEM(double, per);
    for (int b = threadIdx.x; b < B; b += blockDim.x) {
        const float *l = logits + (size_t)b * C;
        float mx = -INFINITY;
        for (int k = 0; k < C; k++) mx = fmaxf(mx, l[k]);
        double s = 0;
        for (int k = 0; k < C; k++) s += exp((double)l[k] - mx);
        long long y = labels[b];
        if (y < 0 || y >= C) y = 0;  // checked on the host when the inputs were loaded
        per[b] = mx + log(s) - l[y];
        for (int k = 0; k < C; k++) {
            float pk = (float)(exp((double)l[k] - mx) / s);
            dl[(size_t)b * C + k] = pk / B;
        }
        dl[(size_t)b * C + y] -= 1.0f / B;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0;
        for (int b = 0; b < B; b++) t += per[b];
        loss[0] = (float)(t / B);
    }
}

// Adam / AdamW over every trainable tensor, one block per chunk of kAdamChunk elements; the same double
// arithmetic as the reference.
__global__ void k_adam(const AdamSeg *segs, const int2 *chunks, const AdamScalars *sc, double b1, double b2, double eps,
                       double wd, int adamw) {
    const int2 ch = chunks[blockIdx.x];
    const AdamSeg sg = segs[ch.x];
    const double lr = sg.head ? sc->lr_head : sc->lr_adapter, bc1 = sc->bc1, bc2 = sc->bc2, gs = sc->grad_scale;
    const long long end = ch.y + (long long)kAdamChunk < sg.n ? ch.y + (long long)kAdamChunk : sg.n;
    for (long long e = ch.y + threadIdx.x; e < end; e += blockDim.x) {
        double gg = (double)sg.g[e] * gs;
        if (!adamw) gg += wd * sg.w[e];
        const float m = (float)(b1 * sg.m[e] + (1 - b1) * gg);
        const float v = (float)(b2 * sg.v[e] + (1 - b2) * gg * gg);
        sg.m[e] = m, sg.v[e] = v;
        const double upd = (m / bc1) / (sqrt(v / bc2) + eps);
        double nw = sg.w[e];
        if (adamw) nw -= lr * wd * nw;
        sg.w[e] = (float)(nw - lr * upd);
    }
}
__global__ void k_zero_grads(const AdamSeg *segs, const int2 *chunks) {
    const int2 ch = chunks[blockIdx.x];
    const AdamSeg sg = segs[ch.x];
    const long long end = ch.y + (long long)kAdamChunk < sg.n ? ch.y + (long long)kAdamChunk : sg.n;
    for (long long e = ch.y + threadIdx.x; e < end; e += blockDim.x) sg.g[e] = 0.0f;
}

// The gradient's squared norm (the training log's grad_norm), in two fixed-order steps: per Adam chunk,
// part[chunk] = sum of g^2; then dst[0] = sum of part in chunk order (one block of 1024 threads).
__global__ void k_grad_sumsq(const AdamSeg *segs, const int2 *chunks, double *part) {
    const int2 ch = chunks[blockIdx.x];
    const AdamSeg sg = segs[ch.x];
    const long long end = ch.y + (long long)kAdamChunk < sg.n ? ch.y + (long long)kAdamChunk : sg.n;
    double s = 0;
    for (long long e = ch.y + threadIdx.x; e < end; e += blockDim.x) s = __fma_rn(sg.g[e], sg.g[e], s);
    s = block_sum_d(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}
__global__ void __launch_bounds__(1024) k_sum_d(const double *v, long long n, double *dst) {
    double s = 0;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += v[i];
    s = block_sum_d(s);
    if (threadIdx.x == 0) dst[0] = s;
}

// Every instantiation the host code launches, explicit so NVRTC compiles them too.
#define AVGEN_LN_INST(V)                                                                                               \
    template __global__ void k_layernorm<V>(const float *, long long, const float *, const float *, float *, long long,    \
                                            float *, float *, float *, const float *, long long, int, float,           \
                                            unsigned short *);                                                         \
    template __global__ void k_layernorm_res<V>(const float *, long long, const float *, const float *, float *,          \
                                                long long, float *, float *, const float *, long long, int, float,     \
                                                const float *);                                                        \
    template __global__ void k_ln_bwd<V>(const float *, const float *, const float *, const float *, const float *,       \
                                         const float *, const float *, float *, long long, int, double *, long long, int); \
    template __global__ void k_layernorm_bn<V>(const float *, const float *, const float *, float *, float *, float *,     \
                                               const float *, long long, int, float, const float *, const BnLoad);      \
    template __global__ void k_ln_bwd_bf<V>(const unsigned short *, const float *, const float *, const float *,          \
                                            const float *, float *, long long, int, long long, int);                  \
    template __global__ void k_layernorm_lat<V>(const float *, const float *, const float *, float *, float *, float *,    \
                                                long long, int, float, unsigned short *, const LatLoad);
AVGEN_LN_INST(0)
AVGEN_LN_INST(1)
AVGEN_LN_INST(2)
AVGEN_LN_INST(24)
#undef AVGEN_LN_INST
#define AVGEN_LN_CS_INST(V)                                                                                            \
    template __global__ void k_ln_bwd_cs<V>(const float *, const float *, const float *, const float *, const float *,    \
                                            const float *, const float *, float *, long long, double *, long long, int,  \
                                            long long, double *);                                                      \
    template __global__ void k_ln_bwd_cs_bn<V>(const float *, const float *, const float *, const float *, const float *, \
                                               const float *, const float *, float *, double *, long long, int, long long, \
                                               double *, const BnLoad);                                                \
    template __global__ void k_ln_bwd_cs_lat<V>(const float *, const float *, const float *, const float *, const float *, \
                                                const float *, const float *, float *, double *, long long, int, long long, \
                                                double *, const LatLoad);                                              \
    template __global__ void k_ln_bwd_cs_bn16<V>(const float *, const float *, const float *, const float *, const float *, \
                                                 const float *, const float *, unsigned short *, double *, long long, int,  \
                                                 long long, double *, const BnLoad, unsigned short *);                  \
    template __global__ void k_ln_bwd_cs_lat16<V>(const unsigned short *, const float *, const float *, const float *,   \
                                                  const float *, unsigned short *, long long, int, long long, double *,  \
                                                  const LatLoad);
AVGEN_LN_CS_INST(1)
AVGEN_LN_CS_INST(2)
AVGEN_LN_CS_INST(24)
#undef AVGEN_LN_CS_INST
#define AVGEN_LATLN_FWD_INST(V)                                                                                        \
    template __global__ void k_latent_ln<V>(const float *, const float *, const float *, float *, long long, int, int,  \
                                            int, const float *, int, float *, const float *, const float *, float *,   \
                                            float *, float *, float, unsigned short *);
AVGEN_LATLN_FWD_INST(1)
AVGEN_LATLN_FWD_INST(2)
AVGEN_LATLN_FWD_INST(24)
#undef AVGEN_LATLN_FWD_INST
// The latent backward pair's first rows pass with the frozen LayerNorm backward before it (m <= 2).
#define AVGEN_LATLN_INST(V)                                                                                            \
    template __global__ void k_latbwd_rows_ln<V>(LnBwdIn, const float *, const float *, const float *, const float *,  \
                                                 double *, float *, float *, long long, int, int, int,                 \
                                                 const unsigned short *, LatGy);                                       \
    template __global__ void k_latbwd_rows_lnbf<V>(LnBwdIn, const float *, const float *, const float *, const float *, \
                                                   double *, float *, float *, long long, int, int, int,               \
                                                   const unsigned short *, LatGy);                                     \
    template __global__ void k_latbwd_gy_ln<V>(LnBwdIn, const float *, const float *, const float *, const float *,    \
                                               float *, int, int, int, int, LatRows);                                  \
    template __global__ void k_latbwd_gy_lnbf<V>(LnBwdIn, const float *, const float *, const float *, const float *,  \
                                                 float *, int, int, int, int, LatRows);
AVGEN_LATLN_INST(1)
AVGEN_LATLN_INST(2)
AVGEN_LATLN_INST(24)
#undef AVGEN_LATLN_INST
// The latent kernels, for each bound M on the latents a block (or warp) keeps in registers.
#define AVGEN_LATENT_INST(M)                                                                                           \
    template __global__ void k_lat_dots<M>(const float *, long long, const float *, float *, int, int, int);         \
    template __global__ void k_lat_mix<M>(const float *, const float *, long long, int, const float *, float *, int,   \
                                          int, int);                                                                   \
    template __global__ void k_latent_b<M>(const float *, const float *, const float *, float *, float *, long long,    \
                                           int, int, int, const float *, int, float *);                                \
    template __global__ void k_latbwd_rows<M>(const float *, const float *, const float *, const float *, double *,    \
                                              float *, float *, long long, int, int, int, const unsigned short *,      \
                                              LatGy);                                                                  \
    template __global__ void k_latbwd_ds<M>(const float *, const float *, const float *, const float *, const float *, \
                                            float *, int, int, int, const unsigned short *);
AVGEN_LATENT_INST(2)
AVGEN_LATENT_INST(4)
AVGEN_LATENT_INST(8)
AVGEN_LATENT_INST(16)
#undef AVGEN_LATENT_INST

// The list of every kernel the host code launches is runtime/rt_cuda_kernel_list.h: add new kernels there.
#endif
