// test_emu_trace.cc: the CUDA emulator's tracing build (runtime/emu/emu_trace.cc; docs/emulator.md), on small
// kernels whose traffic and races are known. This file is compiled with -fsanitize=thread's instrumentation,
// as the backend is in avrt_emu_trace.
//   memory profile: a warp's loads as one request with the 32-byte sectors it touches (consecutive floats 4,
//   every eighth float 32, one float for all lanes 1), a vector access as one request (not its elements),
//   shared-memory bank conflicts (stride 1, 2, 32 and 33 words; 8-byte accesses in two phases; ldmatrix rows
//   128 bytes apart, 8 to a bank, and 144 bytes apart, none), counts summed over launches;
//   races: shared memory written and read by two threads (two warps, or lanes of one warp) with no barrier
//   between is one, with __syncthreads (or, in a warp, a shuffle) it is not; device memory written by two
//   blocks, or written by one and read by another, is one; two threads writing the two bf16 halves of one
//   word are not; the report names both source lines;
//   memory never written (AVGEN_EMU_INITCHECK=1): device memory a kernel reads that nothing wrote since its
//   allocation is a fault naming the byte and the line, and so is such memory a copy brought from another
//   allocation, while a set, a copy from the host or a kernel's store makes it written, byte for byte; shared
//   memory its block did not write (written by the block before it is not); cuBLASLt operands never written
//   (C only with beta != 0), and its result written;
//   each op's tensors (AVGEN_EMU_OPCHECK=1): a kernel of an op writing an arena's tensor that is not the op's
//   is a fault naming the op and the tensor, also when replayed from a graph after the op's submission ended
//   (the op travels with the work), and so is cuBLASLt writing its D there; outside an op nothing is checked.
#include "emu/cuda_emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <string>
#include <vector>

#include "check.h"
#include "rt_cuda_kernels.cuh"

namespace avgen_emu {
void clear_fault();
}

static cudaError_t run(const char *name, dim3 g, dim3 b, std::function<void()> f) {
    const cudaError_t e = avgen_emu::launch(name, g, b, 0, NULL, std::move(f));
    const cudaError_t r = e != cudaSuccess ? e : cudaDeviceSynchronize();
    avgen_emu::clear_fault();
    return r;
}
static avgen_emu::trace::Counts counts(const char *name) {
    avgen_emu::trace::Counts c;
    if (!avgen_emu::trace::counts(name, &c)) memset(&c, 0, sizeof c);
    return c;
}

// ------------------------------------------------------------------------------------ memory profile
__global__ void p_copy(const float *x, float *y) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    y[i] = x[i];
}
__global__ void p_strided(const float *x, float *y) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    y[i] = x[8 * i];
}
__global__ void p_broadcast(const float *x, float *y) { y[threadIdx.x] = x[0]; }
__global__ void p_vector(const float *x, float *y) {
    const int i = threadIdx.x;
    float4 v = vld<float4>(x + 4 * i);
    v.x += 1;  // (its elements are read and written one by one here: they must not count again)
    vst(y + 4 * i, v);
}
__global__ void p_bank(float *y, int stride) {
    AVGEN_SHARED(float, s, 32 * 33);
    s[threadIdx.x * stride] = (float)threadIdx.x;
    __syncthreads();
    y[threadIdx.x] = s[threadIdx.x * stride];
}
__global__ void p_bank8(double *y) {
    AVGEN_SHARED(double, s, 32);
    s[threadIdx.x] = threadIdx.x;
    __syncthreads();
    y[threadIdx.x] = s[31 - threadIdx.x];
}
// lanes on different paths: only some lanes of the warp (p_guard); lanes that loop different numbers of times,
// lane l reading l % 4 floats, a row of 32 floats each time (p_loop); a local array, on the thread's stack, which is
// no memory traffic (p_local)
__global__ void p_guard(const float *x, float *y, int n) {
    const int i = threadIdx.x;
    if (i < n) y[i] = x[i];
}
__global__ void p_loop(const float *x, float *y) {
    const int i = threadIdx.x;
    float s = 0;
    for (int k = 0; k < i % 4; k++) s += x[32 * k + i];
    y[i] = s;
}
__global__ void p_local(const float *x, float *y, int n) {
    volatile float t[8];
    asm volatile("" ::"r"(t) : "memory");  // (its address escapes: the instrumentation reports its accesses)
    const float v = x[threadIdx.x];
    for (int k = 0; k < 8; k++) t[k] = v + (float)k;
    float s = 0;
    for (int k = 0; k < 8; k++) s += t[(k + n) & 7];
    y[threadIdx.x] = s;
}
// ldmatrix.x4 of four 8 x 8 bf16 matrices, rows `stride` halves apart
__global__ void p_ldsm(unsigned *out, int stride) {
    AVGEN_SHARED(unsigned short, s, 32 * 72);
    for (int i = threadIdx.x; i < 32 * 72; i += 32) s[i] = (unsigned short)i;
    __syncthreads();
    unsigned r[4];
    ldsm_x4_trans(r, &s[threadIdx.x * stride]);
    out[threadIdx.x] = r[0] ^ r[1] ^ r[2] ^ r[3];
}

static void test_profile(float *x, float *y, double *yd, unsigned *u) {
    using avgen_emu::trace::Counts;
    CHECK_MSG(run("p_copy", dim3(2), dim3(64), [=] { p_copy(x, y); }) == cudaSuccess, "p_copy failed");
    Counts c = counts("p_copy");  // 4 warps, each a request of 128 bytes in 4 sectors, both ways
    CHECK_MSG(c.launches == 1 && c.load_requests == 4 && c.load_sectors == 16 && c.load_bytes == 512 &&
                  c.store_requests == 4 && c.store_sectors == 16 && c.store_bytes == 512 && c.shared_requests == 0,
              "consecutive floats: %llu launches, loads %llu requests %llu sectors %llu bytes, stores %llu %llu %llu",
              c.launches, c.load_requests, c.load_sectors, c.load_bytes, c.store_requests, c.store_sectors,
              c.store_bytes);
    CHECK_MSG(run("p_copy", dim3(1), dim3(32), [=] { p_copy(x, y); }) == cudaSuccess, "p_copy failed");
    c = counts("p_copy");
    CHECK_MSG(c.launches == 2 && c.load_requests == 5 && c.load_sectors == 20, "a second launch adds: %llu, %llu, %llu",
              c.launches, c.load_requests, c.load_sectors);

    CHECK_MSG(run("p_strided", dim3(1), dim3(32), [=] { p_strided(x, y); }) == cudaSuccess, "p_strided failed");
    c = counts("p_strided");  // every eighth float: a sector a lane
    CHECK_MSG(c.load_requests == 1 && c.load_sectors == 32 && c.load_bytes == 128 && c.store_sectors == 4,
              "every eighth float: %llu requests %llu sectors %llu bytes", c.load_requests, c.load_sectors,
              c.load_bytes);

    CHECK_MSG(run("p_broadcast", dim3(1), dim3(32), [=] { p_broadcast(x, y); }) == cudaSuccess, "p_broadcast failed");
    c = counts("p_broadcast");  // the same float for every lane: one sector, 4 bytes
    CHECK_MSG(c.load_requests == 1 && c.load_sectors == 1 && c.load_bytes == 4, "one float for all: %llu %llu %llu",
              c.load_requests, c.load_sectors, c.load_bytes);

    CHECK_MSG(run("p_vector", dim3(1), dim3(32), [=] { p_vector(x, y); }) == cudaSuccess, "p_vector failed");
    c = counts("p_vector");  // one float4 a lane: one request of 512 bytes in 16 sectors each way
    CHECK_MSG(c.load_requests == 1 && c.load_sectors == 16 && c.load_bytes == 512 && c.store_requests == 1 &&
                  c.store_sectors == 16 && c.store_bytes == 512,
              "float4: loads %llu requests %llu sectors %llu bytes, stores %llu %llu %llu", c.load_requests,
              c.load_sectors, c.load_bytes, c.store_requests, c.store_sectors, c.store_bytes);

    CHECK_MSG(run("p_guard", dim3(1), dim3(32), [=] { p_guard(x, y, 20); }) == cudaSuccess, "p_guard failed");
    c = counts("p_guard");  // 20 lanes: one request of 80 bytes in 3 sectors each way
    CHECK_MSG(c.load_requests == 1 && c.load_sectors == 3 && c.load_bytes == 80 && c.store_requests == 1 &&
                  c.store_sectors == 3,
              "20 lanes of 32: loads %llu requests %llu sectors %llu bytes, stores %llu requests %llu sectors",
              c.load_requests, c.load_sectors, c.load_bytes, c.store_requests, c.store_sectors);
    CHECK_MSG(run("p_guard48", dim3(1), dim3(48), [=] { p_guard(x, y, 48); }) == cudaSuccess, "p_guard failed");
    c = counts("p_guard48");  // 48 threads: a warp of 32 lanes and one of 16, a request each way each
    CHECK_MSG(c.load_requests == 2 && c.load_sectors == 6 && c.load_bytes == 192 && c.store_requests == 2,
              "48 threads: loads %llu requests %llu sectors %llu bytes, stores %llu requests", c.load_requests,
              c.load_sectors, c.load_bytes, c.store_requests);
    CHECK_MSG(run("p_loop", dim3(1), dim3(32), [=] { p_loop(x, y); }) == cudaSuccess, "p_loop failed");
    c = counts("p_loop");  // the k-th row read by the 24, 16, 8 lanes that get that far: 3 requests of 4 sectors
    CHECK_MSG(c.load_requests == 3 && c.load_sectors == 12 && c.load_bytes == 4 * (24 + 16 + 8) &&
                  c.store_requests == 1 && c.store_sectors == 4,
              "lanes looping 0-3 times: loads %llu requests %llu sectors %llu bytes, stores %llu requests %llu sectors",
              c.load_requests, c.load_sectors, c.load_bytes, c.store_requests, c.store_sectors);
    CHECK_MSG(run("p_local", dim3(1), dim3(64), [=] { p_local(x, y, 3); }) == cudaSuccess, "p_local failed");
    c = counts("p_local");  // x read and y written once by each thread (a request a warp), t not counted
    CHECK_MSG(c.load_requests == 2 && c.load_sectors == 8 && c.store_requests == 2 && c.store_sectors == 8 &&
                  c.shared_requests == 0,
              "a local array: loads %llu requests %llu sectors, stores %llu requests %llu sectors, shared %llu",
              c.load_requests, c.load_sectors, c.store_requests, c.store_sectors, c.shared_requests);

    const struct {
        int stride;
        unsigned long long waves;
    } banks[] = {{1, 1}, {2, 2}, {32, 32}, {33, 1}};
    for (auto b : banks) {
        const std::string name = "p_bank" + std::to_string(b.stride);
        CHECK_MSG(run(name.c_str(), dim3(1), dim3(32), [=] { p_bank(y, b.stride); }) == cudaSuccess, "p_bank failed");
        c = counts(name.c_str());  // the store and the load, each as many wavefronts as words to a bank
        CHECK_MSG(c.shared_requests == 2 && c.shared_wavefronts == 2 * b.waves && c.shared_ideal_wavefronts == 2,
                  "shared stride %d: %llu requests, %llu wavefronts (ideal %llu), expected %llu", b.stride,
                  c.shared_requests, c.shared_wavefronts, c.shared_ideal_wavefronts, 2 * b.waves);
    }
    CHECK_MSG(run("p_bank8", dim3(1), dim3(32), [=] { p_bank8(yd); }) == cudaSuccess, "p_bank8 failed");
    c = counts("p_bank8");  // 8-byte accesses: two half-warp phases each
    CHECK_MSG(c.shared_requests == 2 && c.shared_wavefronts == 4 && c.shared_ideal_wavefronts == 4,
              "8-byte shared: %llu requests %llu wavefronts (ideal %llu)", c.shared_requests, c.shared_wavefronts,
              c.shared_ideal_wavefronts);
    for (int stride : {64, 72}) {  // 128-byte rows: all 8 rows of a matrix on the same 4 banks; 144: none shared
        const std::string name = "p_ldsm" + std::to_string(stride);
        CHECK_MSG(run(name.c_str(), dim3(1), dim3(32), [=] { p_ldsm(u, stride); }) == cudaSuccess, "p_ldsm failed");
        c = counts(name.c_str());
        const unsigned long long want = stride == 64 ? 32 : 4;  // 4 phases of 8 rows
        // (the fill above: 72 requests of 2-byte stores, one wavefront each)
        CHECK_MSG(c.shared_requests == 73 && c.shared_wavefronts == 72 + want && c.shared_ideal_wavefronts == 76,
                  "ldmatrix rows %d halves apart: %llu requests, %llu wavefronts (ideal %llu), expected %llu for it",
                  stride, c.shared_requests, c.shared_wavefronts, c.shared_ideal_wavefronts, want);
    }
}

// ------------------------------------------------------------------------------------------- races
// (each first writes its word and waits, so that no read is of memory never written: AVGEN_EMU_INITCHECK)
__global__ void r_block(float *y, int sync) {
    AVGEN_SHARED(float, s, 64);
    s[threadIdx.x] = 0;
    __syncthreads();
    s[threadIdx.x] = (float)threadIdx.x;
    if (sync) __syncthreads();
    y[threadIdx.x] = s[(threadIdx.x + 32) % 64];  // the other warp's
}
__global__ void r_warp(float *y, int shuffle) {
    AVGEN_SHARED(float, s, 32);
    s[threadIdx.x] = 0;
    __syncthreads();
    s[threadIdx.x] = (float)threadIdx.x;
    float v = 0;
    if (shuffle) v = warp_sum(1.0f);
    y[threadIdx.x] = s[threadIdx.x ^ 1] + v;  // the neighbouring lane's
}
__global__ void r_reuse(float *y, int sync) {  // each thread its own word, then its neighbour's: read, then written
    AVGEN_SHARED(float, s, 64);
    s[threadIdx.x] = 1;
    __syncthreads();
    const float v = s[(threadIdx.x + 32) % 64];
    if (sync) __syncthreads();
    s[threadIdx.x] = v;
    __syncthreads();
    y[threadIdx.x] = s[threadIdx.x];
}
__global__ void r_blocks_write(float *y) {
    if (threadIdx.x == 0) y[0] = (float)blockIdx.x;
}
__global__ void r_blocks_read(float *y) {
    if (blockIdx.x == 0 && threadIdx.x == 0) y[0] = 1;
    if (blockIdx.x == 1 && threadIdx.x == 0) y[1] = y[0];
}
__global__ void r_global_sync(float *y) {
    if (threadIdx.x == 0) y[0] = 2;
    __syncthreads();
    if (threadIdx.x == 40) y[1] = y[0];
}
__global__ void r_halves(unsigned short *h) { h[blockIdx.x * blockDim.x + threadIdx.x] = (unsigned short)threadIdx.x; }

static void test_races(float *y, unsigned short *h) {
    const struct {
        const char *name;
        dim3 grid, block;
        std::function<void()> f;
        bool race;
        const char *why;
    } cases[] = {
        {"r_block", dim3(1), dim3(64), [=] { r_block(y, 0); }, true, "without __syncthreads"},
        {"r_block", dim3(1), dim3(64), [=] { r_block(y, 1); }, false, "with __syncthreads"},
        {"r_warp", dim3(1), dim3(32), [=] { r_warp(y, 0); }, true, "lanes of a warp, nothing between"},
        {"r_warp", dim3(1), dim3(32), [=] { r_warp(y, 1); }, false, "lanes of a warp, a shuffle between"},
        {"r_reuse", dim3(1), dim3(64), [=] { r_reuse(y, 0); }, true, "a word read, then written by another"},
        {"r_reuse", dim3(1), dim3(64), [=] { r_reuse(y, 1); }, false, "the same with __syncthreads"},
        {"r_blocks_write", dim3(3), dim3(32), [=] { r_blocks_write(y); }, true, "two blocks writing a word"},
        {"r_blocks_read", dim3(2), dim3(32), [=] { r_blocks_read(y); }, true, "a block reading another's write"},
        {"r_global_sync", dim3(1), dim3(64), [=] { r_global_sync(y); }, false, "device memory across __syncthreads"},
        {"r_halves", dim3(2), dim3(64), [=] { r_halves(h); }, false, "bf16 halves of words by two threads"},
    };
    for (auto &t : cases) {
        const cudaError_t e = run(t.name, t.grid, t.block, t.f);
        const std::string why = avgen_emu::trace::last_fault();
        CHECK_MSG((e == cudaErrorLaunchFailure) == t.race && (why.empty() == !t.race),
                  "%s (%s): %s, race report \"%s\"", t.name, t.why, cudaGetErrorName(e), why.c_str());
        // the report names both accesses by source line (addr2line, from the line tables of this file)
        if (t.race)
            CHECK_MSG(why.find("test_emu_trace.cc:") != std::string::npos &&
                          why.find("test_emu_trace.cc:") != why.rfind("test_emu_trace.cc:"),
                      "%s: the report does not name two lines of this file: %s", t.name, why.c_str());
    }
}

// ------------------------------------------------------------------------------------------- initcheck
__global__ void i_read(const float *x, float *y, int n) {
    if ((int)threadIdx.x < n) y[threadIdx.x] = x[threadIdx.x];
}
__global__ void i_write(float *x) { x[threadIdx.x] = 1; }
__global__ void i_shared(float *y, int write) {
    AVGEN_SHARED(float, s, 32);
    if (write || blockIdx.x == 0) s[threadIdx.x] = 1;  // block 1 without write: what block 0 left is not its own
    __syncthreads();
    y[blockIdx.x * 32 + threadIdx.x] = s[threadIdx.x ^ 1];
}
// two 4-byte static shared arrays side by side, the first's bits covering 8 bytes: the write to the second is the
// second's (thread 0 registers both, as AVGEN_SHARED does at its first use in a block, and writes both; after the
// barrier each thread reads one, with a store to device memory between two reads)
__global__ void i_adjacent(float *y) {
    static float pair[2];
    if (threadIdx.x == 0) {
        avgen_emu::trace::shared_array(&pair[0], sizeof(float));
        avgen_emu::trace::shared_array(&pair[1], sizeof(float));
        pair[0] = 1, pair[1] = 2;
    }
    __syncthreads();
    y[threadIdx.x] = pair[threadIdx.x & 1];
}

static void test_initcheck(float *y) {
    float *x;
    cudaMalloc((void **)&x, 64 * sizeof(float));
    auto reads = [&](int n) { return run("i_read", dim3(1), dim3(32), [=] { i_read(x, y, n); }); };
    auto fault = [] { return std::string(avgen_emu::trace::last_fault()); };
    CHECK_MSG(reads(32) == cudaErrorLaunchFailure &&
                  fault().find("reads device memory never written: byte 0 of a 256-byte "
                               "allocation") == 0 &&
                  fault().find("test_emu_trace.cc:") != std::string::npos,
              "a fresh allocation read: %s", fault().c_str());
    std::vector<float> h(64, 2.0f);
    cudaMemcpy(x, h.data(), 16 * sizeof(float), cudaMemcpyHostToDevice);  // the first 16 written
    CHECK_MSG(reads(16) == cudaSuccess && fault().empty(), "16 floats copied up, 16 read: %s", fault().c_str());
    CHECK_MSG(reads(17) == cudaErrorLaunchFailure && fault().find("byte 64 of") != std::string::npos,
              "17 read of 16 written: %s", fault().c_str());
    cudaMemset(x + 16, 0, 8 * sizeof(float));
    CHECK_MSG(reads(24) == cudaSuccess, "8 more set: %s", fault().c_str());
    CHECK_MSG(run("i_write", dim3(1), dim3(32), [=] { i_write(x); }) == cudaSuccess, "i_write failed");
    CHECK_MSG(reads(32) == cudaSuccess, "32 written by a kernel: %s", fault().c_str());
    float *z;
    cudaMalloc((void **)&z, 64 * sizeof(float));
    cudaMemcpy(z, x + 20, 32 * sizeof(float), cudaMemcpyDeviceToDevice);  // 12 written, 20 not
    CHECK_MSG(run("i_read", dim3(1), dim3(32), [=] { i_read(z, y, 12); }) == cudaSuccess, "copied, written: %s",
              fault().c_str());
    CHECK_MSG(run("i_read", dim3(1), dim3(32), [=] { i_read(z, y, 13); }) == cudaErrorLaunchFailure &&
                  fault().find("byte 48 of") != std::string::npos,
              "copied from bytes never written: %s", fault().c_str());
    CHECK_MSG(run("i_shared", dim3(2), dim3(32), [=] { i_shared(y, 1); }) == cudaSuccess, "shared written: %s",
              fault().c_str());
    CHECK_MSG(run("i_shared", dim3(2), dim3(32), [=] { i_shared(y, 0); }) == cudaErrorLaunchFailure &&
                  fault().find("reads shared memory its block never wrote") == 0,
              "shared memory of the block before: %s", fault().c_str());
    CHECK_MSG(run("i_adjacent", dim3(1), dim3(32), [=] { i_adjacent(y); }) == cudaSuccess,
              "two 4-byte shared arrays side by side, both written: %s", fault().c_str());

    // cuBLASLt: D = A^T B (+ C), 4 x 4 x 4; B never written, then C with beta 1
    cublasLtHandle_t lh;
    cublasLtCreate(&lh);
    cublasLtMatmulDesc_t d;
    cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    const cublasOperation_t ta = CUBLAS_OP_T;
    cublasLtMatmulDescSetAttribute(d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
    cublasLtMatrixLayout_t l;
    cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 4, 4, 4);
    float *A, *B, *C, *D;
    for (float **p : {&A, &B, &C, &D}) cudaMalloc((void **)p, 16 * sizeof(float));
    cudaMemcpy(A, h.data(), 16 * sizeof(float), cudaMemcpyHostToDevice);
    const float one = 1, zero = 0;
    auto mm = [&](const float *beta) {
        const cublasStatus_t st = cublasLtMatmul(lh, d, &one, A, l, B, l, beta, C, l, D, l, NULL, NULL, 0, NULL);
        const cudaError_t e = cudaDeviceSynchronize();
        avgen_emu::clear_fault();
        return st == CUBLAS_STATUS_SUCCESS && e == cudaSuccess;
    };
    CHECK_MSG(!mm(&zero), "cuBLASLt read B, never written, without a fault");
    cudaMemcpy(B, h.data(), 16 * sizeof(float), cudaMemcpyHostToDevice);
    CHECK_MSG(mm(&zero), "cuBLASLt with A and B written, beta 0 (C not read) failed");
    CHECK_MSG(!mm(&one), "cuBLASLt read C, never written, without a fault (beta 1)");
    CHECK_MSG(run("i_read", dim3(1), dim3(32), [=] { i_read(D, y, 16); }) == cudaSuccess, "cuBLASLt's result: %s",
              fault().c_str());
}

// ------------------------------------------------------------------------------------------- opcheck
__global__ void o_write(float *x, int at) { x[at + threadIdx.x] = 1; }

static void test_opcheck() {
    namespace tr = avgen_emu::trace;
    float *ar;  // an arena of tensors a, b, c (64 floats each) and 64 floats in no tensor
    cudaMalloc((void **)&ar, 256 * sizeof(float));
    cudaMemset(ar, 0, 256 * sizeof(float));
    tr::arena(ar, 256 * sizeof(float));
    tr::tensor(ar, 256, "a");
    tr::tensor(ar + 64, 256, "b");
    tr::tensor(ar + 128, 256, "c");
    tr::tensor(ar + 128, 128, "c2");  // (in the packed arena tensors live at the same bytes at different times)
    const void *p[] = {ar, ar + 64};
    const size_t n[] = {256, 256};
    auto fault = [] { return std::string(avgen_emu::trace::last_fault()); };
    auto writes = [&](int at) { return run("o_write", dim3(1), dim3(64), [=] { o_write(ar, at); }); };
    tr::op_begin("op1", p, n, 2);  // a and b, side by side: one range
    CHECK_MSG(writes(0) == cudaSuccess && writes(64) == cudaSuccess && writes(32) == cudaSuccess, "op1 on a and b: %s",
              fault().c_str());
    CHECK_MSG(writes(100) == cudaErrorLaunchFailure &&
                  fault().find("op op1 writes byte 0 of tensor c or c2, not one of its tensors") == 0,
              "op1 writing into c: %s", fault().c_str());
    CHECK_MSG(writes(192) == cudaErrorLaunchFailure &&
                  fault().find("op op1 writes byte 768 of a 1024-byte arena, in no tensor (") == 0,
              "op1 writing past the tensors: %s", fault().c_str());
    // captured during op1, replayed after it: still op1's
    cudaStream_t s;
    cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
    cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    avgen_emu::launch("o_write", dim3(1), dim3(64), 0, s, [=] { o_write(ar, 128); });
    cudaGraph_t g;
    cudaStreamEndCapture(s, &g);
    tr::op_end();
    CHECK_MSG(writes(128) == cudaSuccess, "outside an op, c written: %s", fault().c_str());
    cudaGraphExec_t ge;
    cudaGraphInstantiate(&ge, g, 0);
    cudaGraphLaunch(ge, s);
    const cudaError_t e = cudaStreamSynchronize(s);
    CHECK_MSG(e == cudaErrorLaunchFailure && fault().find("op op1 writes byte 0 of tensor c or c2,") == 0,
              "op1's launch replayed from a graph: %s, %s", cudaGetErrorName(e), fault().c_str());
    avgen_emu::clear_fault();
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaStreamDestroy(s);
    // cuBLASLt: D = A^T B (4 x 4) with A in a, B in b, D in c: op1 may not write c
    cublasLtHandle_t lh;
    cublasLtCreate(&lh);
    cublasLtMatmulDesc_t d;
    cublasLtMatmulDescCreate(&d, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatrixLayout_t l;
    cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, 4, 4, 4);
    const float one = 1, zero = 0;
    auto mm = [&](float *D) {
        tr::op_begin("op1", p, n, 2);
        const cublasStatus_t st =
            cublasLtMatmul(lh, d, &one, ar, l, ar + 64, l, &zero, D, l, D, l, NULL, NULL, 0, NULL);
        tr::op_end();
        const cudaError_t e = cudaDeviceSynchronize();
        avgen_emu::clear_fault();
        return st == CUBLAS_STATUS_SUCCESS && e == cudaSuccess;
    };
    CHECK_MSG(mm(ar + 32), "cuBLASLt writing a's second half in op1 failed");
    CHECK_MSG(!mm(ar + 128), "cuBLASLt writing c in op1 was not a fault");
    tr::arena_gone(ar);
    CHECK_MSG(writes(192) == cudaSuccess, "an arena gone is not checked: %s", fault().c_str());
}

int main() {
    // (read at the first launch; the profile is written at exit, into the test's folder: tests/emu_test.sh checks
    // a program's)
    setenv("AVGEN_EMU_MEMPROFILE", "test_emu_trace.tsv", 1);
    setenv("AVGEN_EMU_RACES", "1", 1);
    setenv("AVGEN_EMU_INITCHECK", "1", 1);
    setenv("AVGEN_EMU_OPCHECK", "1", 1);
    float *x, *y;
    double *yd;
    unsigned *u;
    unsigned short *h;
    cudaMalloc((void **)&x, 4096 * sizeof(float));
    cudaMalloc((void **)&y, 4096 * sizeof(float));
    cudaMalloc((void **)&yd, 64 * sizeof(double));
    cudaMalloc((void **)&u, 64 * sizeof(unsigned));
    cudaMalloc((void **)&h, 256 * sizeof(unsigned short));
    std::vector<float> one(4096, 1.0f);
    cudaMemcpy(x, one.data(), 4096 * sizeof(float), cudaMemcpyHostToDevice);
    for (void *p : {(void *)y, (void *)yd, (void *)u, (void *)h}) cudaMemset(p, 0, 64);
    test_profile(x, y, yd, u);
    test_races(y, h);
    test_initcheck(y);
    test_opcheck();
    return CHECK_DONE();
}
