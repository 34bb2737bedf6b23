/* test_dw_split: the CUDA backend's grouped-projection weight gradient (rt_cuda_group_linear_dw), whose
 * row-chunked form runs only on a GPU, executed here with a CPU GEMM of the same semantics as rt_cuda.cu's
 * gemm() and compared with a direct sum: the chunk arithmetic (group offsets, batch strides, the last
 * partial chunk, the accumulation onto dW) for row counts that split with and without a remainder and
 * that do not split; and the scratch it writes against rt_cuda_dw_part_floats (what the planner counts). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cuda.h"

static int failures;
static size_t part_used; /* the highest part element written, + 1 */
static const float *part_base;
static size_t part_cap;

/* row-major C[M,N] (+)= op(A) op(B); op(A)[m][k] = ta ? A[k lda + m] : A[m lda + k]; batched by strides */
static void cpu_gemm(void *ctx, int ta, int tb, int M, int N, int K, const void *Av, int lda, const void *Bv, int ldb,
                     float *C, int ldc, int beta1, int batch, long long sa, long long sb, long long sc) {
    (void)ctx;
    const float *A = Av, *B = Bv;
    for (int bt = 0; bt < batch; bt++) {
        const float *a = A + bt * sa, *b = B + bt * sb;
        float *c = C + bt * sc;
        for (int m = 0; m < M; m++)
            for (int n = 0; n < N; n++) {
                double s = 0;
                for (int k = 0; k < K; k++)
                    s += (double)(ta ? a[(size_t)k * lda + m] : a[(size_t)m * lda + k]) *
                         (tb ? b[(size_t)n * ldb + k] : b[(size_t)k * ldb + n]);
                float *o = &c[(size_t)m * ldc + n];
                if (part_base && o >= part_base && o < part_base + part_cap) {
                    const size_t at = (size_t)(o - part_base) + 1;
                    if (at > part_used) part_used = at;
                }
                *o = (float)(beta1 ? *o + s : s);
            }
    }
}

static void cpu_sum(void *ctx, const float *src, float *dst, int parts, long long n) {
    (void)ctx;
    for (long long e = 0; e < n; e++) {
        double s = 0;
        for (int p = 0; p < parts; p++) s += src[p * n + e];
        dst[e] += (float)s;
    }
}

static float frand(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void check(long long rows, int Cin, int Cout, int G) {
    const int cin_g = Cin / G, cout_g = Cout / G;
    unsigned seed = (unsigned)(rows * 131 + Cin * 7 + Cout * 3 + G);
    float *dY = malloc(sizeof(float) * (size_t)rows * Cout), *X = malloc(sizeof(float) * (size_t)rows * Cin);
    float *dW = malloc(sizeof(float) * (size_t)Cout * cin_g);
    double *ref = malloc(sizeof(double) * (size_t)Cout * cin_g);
    const double pf = rt_cuda_dw_part_floats(rows, Cin, Cout, G);
    part_cap = (size_t)pf + 64; /* room past the end: an overrun shows as part_used > pf */
    float *part = malloc(sizeof(float) * part_cap);
    if (!dY || !X || !dW || !ref || !part) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (long long i = 0; i < rows * Cout; i++) dY[i] = frand(&seed);
    for (long long i = 0; i < rows * Cin; i++) X[i] = frand(&seed);
    for (int i = 0; i < Cout * cin_g; i++) dW[i] = frand(&seed), ref[i] = dW[i]; /* accumulates onto dW */
    for (int o = 0; o < Cout; o++) {
        const int g = o / cout_g;
        for (int j = 0; j < cin_g; j++) {
            double s = 0;
            for (long long r = 0; r < rows; r++) s += (double)dY[r * Cout + o] * X[r * Cin + g * cin_g + j];
            ref[o * cin_g + j] += s;
        }
    }
    part_base = part, part_used = 0;
    const rt_dw_ops ops = {NULL, cpu_gemm, cpu_sum, 4};
    rt_cuda_group_linear_dw(&ops, dY, X, dW, part, rows, Cin, Cout, G);
    double num = 0, den = 0;
    for (int i = 0; i < Cout * cin_g; i++) num += (dW[i] - ref[i]) * (dW[i] - ref[i]), den += ref[i] * ref[i];
    const double rel = sqrt(num / (den > 0 ? den : 1));
    const long long chunk = rt_cuda_dw_chunk(rows, Cin, Cout);
    const int ok = rel <= 1e-6 && part_used <= (size_t)pf && (chunk ? part_used == (size_t)pf : pf == 0);
    printf("%s rows %lld Cin %d Cout %d G %d: chunk %lld, scratch %.0f floats (%zu written), rel error %.2e\n",
           ok ? "ok  " : "FAIL", rows, Cin, Cout, G, chunk, pf, part_used, rel);
    if (!ok) failures++;
    free(dY), free(X), free(dW), free(ref), free(part);
}

int main(void) {
    check(5000, 64, 16, 2);   /* splits: 5000 = 50 x 100 (no rest; 100 x 16 and 100 x 64 aligned) */
    check(5003, 64, 16, 2);   /* 5003 = 5003 (prime): 79 rows a chunk rounded to 80, 62 full chunks and a rest of 43 */
    check(5120, 64, 16, 2);   /* 64 chunks of 80 */
    check(3000, 12, 6, 2);    /* 60 chunks of 50 would start unaligned (50 x 6 elements): 75 of 40 */
    check(2998, 12, 6, 2);    /* 2998 = 2 x 1499: no count from 48 to 96 divides it: 48 rows a chunk, 62 and a rest of 22 */
    check(394, 96, 24, 2);    /* ViT-B B=1 T=2's row count (chunk 16) */
    check(51, 12, 6, 3);      /* three groups, chunk 16, rest 3 */
    check(31, 8, 4, 1);       /* too few rows: one GEMM */
    check(2000, 30, 12, 1);   /* one group */
    /* ViT-B/16 at B = 32, T = 8: 64 chunks of 4 pairs' tokens (vision 197 a pair, audio 49); B = 60: 94560 = 60 x 1576;
     * 3000 rows of 6 channels: 40 (50 unaligned); 2998: 48 (a multiple of 8, and a rest); 31 rows: not split */
    const long long want[][4] = {{50432, 768, 96, 788}, {12544, 768, 96, 196}, {94560, 768, 96, 1576},
                                 {3000, 12, 6, 40}, {2998, 12, 6, 48}, {31, 8, 4, 0}};
    for (int i = 0; i < 6; i++)
        if (rt_cuda_dw_chunk(want[i][0], want[i][1], want[i][2]) != want[i][3]) {
            printf("FAIL chunk of %lld rows (Cin %lld, Cout %lld): %lld, not %lld\n", want[i][0], want[i][1], want[i][2],
                   rt_cuda_dw_chunk(want[i][0], want[i][1], want[i][2]), want[i][3]);
            failures++;
        }
    printf("%s\n", failures ? "test_dw_split: FAILED" : "test_dw_split: all passed");
    return failures ? 1 : 0;
}
