/* rt_cpu_ops.c: the CPU reference of every op kind (MODEL.md sections 2-4), fp32 storage. Matrix
 * products (vectorisable axpy loops over rows, split over the CPU threads), statistics, softmax normalisers,
 * losses and sums over rows (bias, BatchNorm, gate gradients) accumulate in double.
 * Loops are plain and shapes come from the tensor tables: this file is the oracle the CUDA backend is
 * checked against, so it favours the obvious over the fast. Gradients of trainable parameters are
 * accumulated (+=): the driver zeroes them at the start of an accumulation cycle. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_model.h"
#include "rt_par.h"

/* ------------------------------------------------------------------------------------- matrix products */

/* Every product sums in double and rounds once, so the oracle's products are as accurate as their fp32 inputs
 * allow (not sqrt(K) fp32 roundings, which showed as 2e-5 on the gates' gradients at ViT-B size: sums whose terms
 * cancel). Rows of C are split over the CPU threads (rt_par.h); each element's sum runs in k order, with the same
 * operations, whichever thread computes it: the results do not depend on the thread count. */
typedef struct {
    int M, N, K;
    const float *A, *B;
    int lda, ldb;
    float *C;
    int ldc, acc;
} mm_args;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MM_CLONES
#endif
/* a chunk of rows should hold at least this many multiply-adds (some 0.3 ms) to be worth a thread: with 64K the
 * tiny demo models trained 10% slower on two threads than on one (waking a worker costs about as much) */
#define MM_GRAIN 524288L

static void mm_run(rt_par_fn rows, mm_args *m) {
    const long per_row = (long)m->N * (m->K ? m->K : 1);
    rt_par_for(rt_par_count(), m->M, per_row ? (MM_GRAIN + per_row - 1) / per_row : m->M, rows, m);
}

/* rows [lo, hi) of C (+)= A B: each row as axpys over the rows of B into a double row */
MM_CLONES static void mm_nn_rows(void *p, long lo, long hi) {
    const mm_args *m = p;
    double *d = malloc(sizeof(double) * (size_t)(m->N > 0 ? m->N : 1));
    if (!d) abort();
    for (long i = lo; i < hi; i++) {
        float *c = m->C + (size_t)i * m->ldc;
        for (int n = 0; n < m->N; n++) d[n] = m->acc ? (double)c[n] : 0.0;
        const float *a = m->A + (size_t)i * m->lda;
        for (int k = 0; k < m->K; k++) {
            const double av = a[k];
            const float *b = m->B + (size_t)k * m->ldb;
            for (int n = 0; n < m->N; n++) d[n] += av * b[n];
        }
        for (int n = 0; n < m->N; n++) c[n] = (float)d[n];
    }
    free(d);
}

/* C[M,N] (+)= A[M,K] B[K,N] */
static void mm_nn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int acc) {
    mm_args m = {M, N, K, A, B, lda, ldb, C, ldc, acc};
    mm_run(mm_nn_rows, &m);
}

typedef struct {
    int N, K, ldb;
    const float *B;
    float *bt;
} tr_args;

/* rows [lo, hi) of bt = B^T (bt[k][n] = B[n][k]) in 32 x 32 tiles, so reads and writes both stay in cache */
static void transpose_rows(void *p, long lo, long hi) {
    const tr_args *t = p;
    for (long k0 = lo; k0 < hi; k0 += 32)
        for (int n0 = 0; n0 < t->N; n0 += 32)
            for (long k = k0; k < hi && k < k0 + 32; k++)
                for (int n = n0; n < t->N && n < n0 + 32; n++) t->bt[(size_t)k * t->N + n] = t->B[(size_t)n * t->ldb + k];
}

/* C[M,N] (+)= A[M,K] B[N,K]^T (x W^T): B is transposed once, then the product is mm_nn's. */
static void mm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int acc) {
    float *bt = malloc(sizeof(float) * (size_t)K * (size_t)N + 1);
    if (!bt) abort();
    tr_args t = {N, K, ldb, B, bt};
    rt_par_for(rt_par_count(), K, N > 0 ? (MM_GRAIN / 16 + N - 1) / N : K, transpose_rows, &t);
    mm_nn(M, N, K, A, lda, bt, N, C, ldc, acc);
    free(bt);
}

/* rows [lo, hi) of C (+)= A^T B: over the rows k of A and B, each row i of C a double row; zeros of A skipped */
MM_CLONES static void mm_tn_rows(void *p, long lo, long hi) {
    const mm_args *m = p;
    double *d = calloc((size_t)(hi - lo) * (size_t)(m->N > 0 ? m->N : 1), sizeof(double));
    if (!d) abort();
    for (int k = 0; k < m->K; k++) {
        const float *a = m->A + (size_t)k * m->lda, *b = m->B + (size_t)k * m->ldb;
        for (long i = lo; i < hi; i++) {
            const double av = a[i];
            if (av == 0.0) continue;
            double *c = d + (size_t)(i - lo) * m->N;
            for (int n = 0; n < m->N; n++) c[n] += av * b[n];
        }
    }
    for (long i = lo; i < hi; i++) {
        float *c = m->C + (size_t)i * m->ldc;
        const double *s = d + (size_t)(i - lo) * m->N;
        for (int n = 0; n < m->N; n++) c[n] = (float)(m->acc ? (double)c[n] + s[n] : s[n]);
    }
    free(d);
}

/* C[M,N] (+)= A[K,M]^T B[K,N] (weight gradients: dY^T X). */
static void mm_tn(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int acc) {
    mm_args m = {M, N, K, A, B, lda, ldb, C, ldc, acc};
    mm_run(mm_tn_rows, &m);
}

/* ------------------------------------------------------------------------------------------- helpers */

static double gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double gelu_grad(double x) { return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI); }

/* In-place softmax of a row; returns the log-sum-exp. */
static double softmax_row(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (int i = 0; i < n; i++) s += exp((double)x[i] - mx);
    for (int i = 0; i < n; i++) x[i] = (float)(exp((double)x[i] - mx) / s);
    return mx + log(s);
}

/* LayerNorm of one row: y = (x - mean) * rstd * w + b; returns mean and rstd. */
static void ln_row(const float *x, const float *w, const float *b, float *y, int D, double eps, float *mu_out,
                   float *rs_out) {
    double s = 0, ss = 0;
    for (int d = 0; d < D; d++) s += x[d];
    double mu = s / D;
    for (int d = 0; d < D; d++) ss += ((double)x[d] - mu) * ((double)x[d] - mu);
    double rs = 1.0 / sqrt(ss / D + eps);
    for (int d = 0; d < D; d++) y[d] = (float)(((double)x[d] - mu) * rs * (w ? w[d] : 1.0) + (b ? b[d] : 0.0));
    if (mu_out) *mu_out = (float)mu;
    if (rs_out) *rs_out = (float)rs;
}

/* LayerNorm backward of one row given dy (gradient of the output), x, mean, rstd, weight:
 * dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * w; accumulates dw, db when given. */
static void ln_row_bwd(const float *dy, const float *x, double mu, double rs, const float *w, float *dx, int acc,
                       int D, double *dw, double *db) {
    double sg = 0, sgx = 0;
    for (int d = 0; d < D; d++) {
        double xh = ((double)x[d] - mu) * rs, g = (double)dy[d] * w[d];
        sg += g, sgx += g * xh;
        if (dw) dw[d] += (double)dy[d] * xh;
        if (db) db[d] += dy[d];
    }
    sg /= D, sgx /= D;
    for (int d = 0; d < D; d++) {
        double xh = ((double)x[d] - mu) * rs, g = (double)dy[d] * w[d];
        float v = (float)(rs * (g - sg - xh * sgx));
        dx[d] = acc ? dx[d] + v : v;
    }
}

static void add_to(float *dst, const double *src, int n) {
    for (int i = 0; i < n; i++) dst[i] += (float)src[i];
}

static double *dzeros(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) abort();
    return p;
}

static float *fzeros(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}

/* ------------------------------------------------------------------------------------------ the ops */

#define TD(t) (&g->tensors[t])
#define PF(t) ((float *)rt_ptr(c, t))
#define IN(i) in[i]
#define OUT(i) out[i]

static void fail(avgen_ctx *c, const char *fmt, const char *name, long long v) {
    if (c->failed) return;
    c->failed = 1;
    snprintf(c->err, sizeof c->err, fmt, name, v);
}

/* PATCH_EMBED: frames (f32 [B,T,3,S,S] normalised, or u8 [B,T,S,S,3]) or the audio image (f32 [B,T,A,M],
 * replicated to 3 channels), P x P stride-P conv, CLS prepended, position embeddings added (linearly
 * resampled from N_v rows for audio). */
static void op_patch_embed(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                           const int32_t *out) {
    const avgen_consts *k = c->k;
    const avgen_tensor_desc *xi = TD(IN(0)), *xo = TD(OUT(0));
    const int Pp = k->patch, D = k->dim, N = (int)xo->shape[1], P = (int)xo->shape[0];
    const float *W = PF(IN(1)), *bias = PF(IN(2)), *cls = PF(IN(3)), *pos = PF(IN(4));
    float *x = PF(OUT(0));
    const int Nv = k->tokens_v > 0 ? k->tokens_v : (k->image / Pp) * (k->image / Pp) + 1;
    const int audio = o->stream == 'a';
    int H, Wd;
    if (audio) H = k->audio_rows, Wd = k->mel_bins;
    else H = Wd = k->image;
    const int gh = H / Pp, gw = Wd / Pp, npatch = gh * gw, K = 3 * Pp * Pp;
    /* Position rows: the table itself, or its linear resampling to N rows (align_corners=False). */
    float *pe = fzeros((size_t)N * D);
    const float *pos_src = pos;
    for (int i = 0; i < N; i++) {
        if (N == Nv) {
            memcpy(pe + (size_t)i * D, pos_src + (size_t)i * D, sizeof(float) * D);
            continue;
        }
        double s = ((double)i + 0.5) * Nv / N - 0.5;
        if (s < 0) s = 0;
        int x0 = (int)floor(s), x1 = x0 + 1 < Nv ? x0 + 1 : Nv - 1;
        double w = s - x0;
        for (int d = 0; d < D; d++)
            pe[(size_t)i * D + d] = (float)((1 - w) * pos_src[(size_t)x0 * D + d] + w * pos_src[(size_t)x1 * D + d]);
    }
    float *col = fzeros((size_t)npatch * K);
    for (int p = 0; p < P; p++) {
        /* im2col of one image: row = patch, column = (channel, ky, kx) as the conv weight is laid out */
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++) {
                float *r = col + (size_t)(py * gw + px) * K;
                for (int ch = 0; ch < 3; ch++)
                    for (int ky = 0; ky < Pp; ky++)
                        for (int kx = 0; kx < Pp; kx++) {
                            int yy = py * Pp + ky, xx = px * Pp + kx;
                            float v;
                            if (audio) {
                                v = PF(IN(0))[((size_t)p * H + yy) * Wd + xx];
                            } else if (c->frames_f32) {
                                v = c->frames_f32[(((size_t)p * 3 + ch) * H + yy) * Wd + xx];
                            } else if (xi->dtype == AVGEN_DT_U8) {
                                const unsigned char *u = (const unsigned char *)rt_ptr(c, IN(0));
                                v = (u[(((size_t)p * H + yy) * Wd + xx) * 3 + ch] / 255.0f - k->mean[ch]) / k->std[ch];
                            } else {
                                v = PF(IN(0))[(((size_t)p * 3 + ch) * H + yy) * Wd + xx];
                            }
                            r[(ch * Pp + ky) * Pp + kx] = v;
                        }
            }
        float *xp = x + (size_t)p * N * D;
        for (int d = 0; d < D; d++) xp[d] = cls[d] + pe[d];
        mm_nt(npatch, D, K, col, K, W, K, xp + D, D, 0);
        for (int i = 1; i < N; i++)
            for (int d = 0; d < D; d++) xp[(size_t)i * D + d] += bias[d] + pe[(size_t)i * D + d];
    }
    free(col);
    free(pe);
    (void)g;
}

static void op_layernorm(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                         const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(0));
    const int D = (int)xt->shape[xt->ndim - 1];
    const long rows = (long)(xt->bytes / 4 / D);
    const float *x = PF(IN(0)), *w = PF(IN(1)), *b = PF(IN(2));
    float *y = PF(OUT(0)), *mu = o->n_out > 1 ? PF(OUT(1)) : NULL, *rs = o->n_out > 2 ? PF(OUT(2)) : NULL;
    for (long r = 0; r < rows; r++)
        ln_row(x + r * D, w, b, y + r * D, D, o->eps, mu ? mu + r : NULL, rs ? rs + r : NULL);
}

static void op_qkv(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *ht = TD(IN(0));
    const int D = (int)ht->shape[2], rows = (int)(ht->shape[0] * ht->shape[1]);
    const float *h = PF(IN(0));
    float *qkv = PF(OUT(0));
    for (int j = 0; j < 3; j++) {
        const float *W = PF(IN(1 + 2 * j)), *b = PF(IN(2 + 2 * j));
        mm_nt(rows, D, D, h, D, W, D, qkv + j * D, 3 * D, 0);
        for (int r = 0; r < rows; r++)
            for (int d = 0; d < D; d++) qkv[(size_t)r * 3 * D + j * D + d] += b[d];
    }
}

static void op_attention(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                         const int32_t *out) {
    const avgen_tensor_desc *qt = TD(IN(0));
    const int P = (int)qt->shape[0], N = (int)qt->shape[1], D = (int)qt->shape[2] / 3, H = c->k->heads, hd = D / H;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const float *qkv = PF(IN(0));
    float *ao = PF(OUT(0)), *lse = o->n_out > 1 ? PF(OUT(1)) : NULL;
    float *s = fzeros((size_t)N * N);
    for (int p = 0; p < P; p++)
        for (int h = 0; h < H; h++) {
            const float *q = qkv + (size_t)p * N * 3 * D + h * hd, *kk = q + D, *v = q + 2 * D;
            mm_nt(N, N, hd, q, 3 * D, kk, 3 * D, s, N, 0);
            for (int i = 0; i < N; i++) {
                for (int j = 0; j < N; j++) s[(size_t)i * N + j] *= scale;
                double l = softmax_row(s + (size_t)i * N, N);
                if (lse) lse[((size_t)p * H + h) * N + i] = (float)l;
            }
            mm_nn(N, hd, N, s, N, v, 3 * D, ao + (size_t)p * N * D + h * hd, D, 0);
        }
    free(s);
}

/* y = a W^T + b + residual (+ adapter output). */
static void op_linear_residual(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                               const int32_t *out) {
    const avgen_tensor_desc *at = TD(IN(0)), *yt = TD(OUT(0));
    const int K = (int)at->shape[2], N = (int)yt->shape[2], rows = (int)(yt->shape[0] * yt->shape[1]);
    const float *b = PF(IN(2)), *res = PF(IN(3)), *extra = o->n_in > 4 ? PF(IN(4)) : NULL;
    float *y = PF(OUT(0));
    mm_nt(rows, N, K, PF(IN(0)), K, PF(IN(1)), K, y, N, 0);
    for (long r = 0; r < rows; r++)
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)r * N + n;
            y[i] += b[n] + res[i] + (extra ? extra[i] : 0.0f);
        }
}

static void op_linear_gelu(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                           const int32_t *out) {
    const avgen_tensor_desc *ht = TD(IN(0));
    const int K = (int)ht->shape[2], rows = (int)(ht->shape[0] * ht->shape[1]);
    const avgen_tensor_desc *wt = TD(IN(1));
    const int N = (int)wt->shape[0];
    const float *b = PF(IN(2));
    float *act = PF(OUT(o->n_out - 1)), *pre = o->n_out > 1 ? PF(OUT(0)) : act;
    mm_nt(rows, N, K, PF(IN(0)), K, PF(IN(1)), K, pre, N, 0);
    for (size_t i = 0; i < (size_t)rows * N; i++) {
        pre[i] += b[i % N];
        act[i] = (float)gelu(pre[i]);
    }
}

/* The LAVISH latent-token exchange for each pair: A1 = softmax(tok Y^T), S = tok + A1 Y,
 * A2 = softmax(X S^T), Z = X + gate_av (A2 S). */
static void op_adapter_latent(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(0)), *yt = TD(IN(1)), *tt = TD(IN(2));
    const int P = (int)xt->shape[0], N = (int)xt->shape[1], D = (int)xt->shape[2], N2 = (int)yt->shape[1];
    const int m = (int)tt->shape[0];
    const float *X = PF(IN(0)), *Y = PF(IN(1)), *tok = PF(IN(2)), gav = PF(IN(3))[0];
    float *Z = PF(OUT(0)), *S = PF(OUT(1)), *A1 = PF(OUT(2)), *A2 = PF(OUT(3));
    for (int p = 0; p < P; p++) {
        const float *x = X + (size_t)p * N * D, *y = Y + (size_t)p * N2 * D;
        float *s = S + (size_t)p * m * D, *a1 = A1 + (size_t)p * m * N2, *a2 = A2 + (size_t)p * N * m;
        float *z = Z + (size_t)p * N * D;
        mm_nt(m, N2, D, tok, D, y, D, a1, N2, 0);
        for (int i = 0; i < m; i++) softmax_row(a1 + (size_t)i * N2, N2);
        memcpy(s, tok, sizeof(float) * (size_t)m * D);
        mm_nn(m, D, N2, a1, N2, y, D, s, D, 1);
        mm_nt(N, m, D, x, D, s, D, a2, m, 0);
        for (int i = 0; i < N; i++) softmax_row(a2 + (size_t)i * m, m);
        mm_nn(N, D, m, a2, m, s, D, z, D, 0);
        for (size_t i = 0; i < (size_t)N * D; i++) z[i] = x[i] + gav * z[i];
    }
}

/* Grouped 1x1 projection: W [Cout, Cin/G, 1, 1]; output channel o of group o / (Cout/G) reads that group's inputs. */
static void op_group_linear(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(0)), *wt = TD(IN(1));
    const int Cin = (int)xt->shape[2], Cout = (int)wt->shape[0], cin_g = (int)wt->shape[1], G = Cin / cin_g;
    const int cout_g = Cout / G, rows = (int)(xt->shape[0] * xt->shape[1]);
    const float *x = PF(IN(0)), *W = PF(IN(1));
    float *y = PF(OUT(0));
    for (int k = 0; k < G; k++)
        mm_nt(rows, cout_g, cin_g, x + k * cin_g, Cin, W + (size_t)k * cout_g * cin_g, cin_g, y + k * cout_g, Cout, 0);
}

/* BatchNorm over channels (last dim), statistics over every row; optional ReLU. Train mode (outputs
 * mean and rstd) updates the running statistics unless this is a recompute; eval uses them. */
static void op_batchnorm(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                         const int32_t *out, int relu) {
    const avgen_tensor_desc *xt = TD(IN(0));
    const int C = (int)xt->shape[2];
    const long rows = (long)(xt->shape[0] * xt->shape[1]);
    const float *x = PF(IN(0)), *w = PF(IN(1)), *b = PF(IN(2));
    float *rm = PF(IN(3)), *rv = PF(IN(4));
    int64_t *nbt = (int64_t *)rt_ptr(c, IN(5));
    float *y = PF(OUT(0));
    const int train = o->n_out == 3;
    double *mu = dzeros((size_t)C), *var = dzeros((size_t)C);
    if (train) {
        for (long r = 0; r < rows; r++)
            for (int ch = 0; ch < C; ch++) mu[ch] += x[r * C + ch];
        for (int ch = 0; ch < C; ch++) mu[ch] /= rows;
        for (long r = 0; r < rows; r++)
            for (int ch = 0; ch < C; ch++) {
                double d = x[r * C + ch] - mu[ch];
                var[ch] += d * d;
            }
        for (int ch = 0; ch < C; ch++) {
            double biased = var[ch] / rows, unbiased = rows > 1 ? var[ch] / (rows - 1) : var[ch];
            var[ch] = biased;
            PF(OUT(1))[ch] = (float)mu[ch];
            PF(OUT(2))[ch] = (float)(1.0 / sqrt(biased + o->eps));
            if (!o->recompute) {
                rm[ch] = (float)(0.9 * rm[ch] + 0.1 * mu[ch]);
                rv[ch] = (float)(0.9 * rv[ch] + 0.1 * unbiased);
            }
        }
        if (!o->recompute) nbt[0] += 1;
    } else {
        for (int ch = 0; ch < C; ch++) mu[ch] = rm[ch], var[ch] = rv[ch];
    }
    for (long r = 0; r < rows; r++)
        for (int ch = 0; ch < C; ch++) {
            double v = (x[r * C + ch] - mu[ch]) / sqrt(var[ch] + o->eps) * w[ch] + b[ch];
            y[r * C + ch] = (float)(relu && v < 0 ? 0 : v);
        }
    free(mu);
    free(var);
}

static void op_layernorm_gate(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                              const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(0));
    const int D = (int)xt->shape[2];
    const long rows = (long)(xt->shape[0] * xt->shape[1]);
    const float *x = PF(IN(0)), *w = PF(IN(1)), *b = PF(IN(2)), gate = PF(IN(3))[0];
    float *y = PF(OUT(0)), *mu = PF(OUT(1)), *rs = PF(OUT(2));
    for (long r = 0; r < rows; r++) {
        ln_row(x + r * D, w, b, y + r * D, D, o->eps, mu + r, rs + r);
        for (int d = 0; d < D; d++) y[r * D + d] *= gate;
    }
}

/* Final LayerNorm on each pair's CLS row only. Training also keeps the row (cls_in) for backward. */
static void op_cls_layernorm(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                             const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(0));
    const int P = (int)xt->shape[0], N = (int)xt->shape[1], D = (int)xt->shape[2];
    const float *x = PF(IN(0)), *w = PF(IN(1)), *b = PF(IN(2));
    float *y = PF(OUT(0));
    for (int p = 0; p < P; p++) {
        const float *row = x + (size_t)p * N * D;
        float mu, rs;
        ln_row(row, w, b, y + (size_t)p * D, D, o->eps, &mu, &rs);
        if (o->n_out == 4) {
            memcpy(PF(OUT(1)) + (size_t)p * D, row, sizeof(float) * D);
            PF(OUT(2))[p] = mu;
            PF(OUT(3))[p] = rs;
        }
    }
}

/* f[b] = mean over the T frames of [a_cls ; v_cls] (inputs in that order). */
static void op_concat_mean(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                           const int32_t *out) {
    const int B = c->k->batch, T = c->k->frames;
    const avgen_tensor_desc *ft = TD(OUT(0));
    const int W = (int)ft->shape[1];
    float *f = PF(OUT(0));
    int col = 0;
    for (int s = 0; s < o->n_in; s++) {
        const avgen_tensor_desc *ct = TD(IN(s));
        const int D = (int)ct->shape[1];
        const float *cls = PF(IN(s));
        for (int b = 0; b < B; b++)
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int t = 0; t < T; t++) acc += cls[((size_t)b * T + t) * D + d];
                f[(size_t)b * W + col + d] = (float)(acc / T);
            }
        col += D;
    }
}

static void op_linear(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(0)), *wt = TD(IN(1));
    const int M = (int)xt->shape[0], K = (int)xt->shape[1], N = (int)wt->shape[0];
    const float *b = PF(IN(2));
    float *y = PF(OUT(0));
    mm_nt(M, N, K, PF(IN(0)), K, PF(IN(1)), K, y, N, 0);
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) y[(size_t)i * N + n] += b[n];
}

/* Mean softmax cross-entropy over the batch; writes d(loss)/d(logits) at once. */
static void op_cross_entropy(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *lt = TD(IN(0)), *yt = TD(IN(1));
    const int B = (int)lt->shape[0], C = (int)lt->shape[1];
    const float *logits = PF(IN(0));
    float *loss = PF(OUT(0)), *dl = PF(OUT(1));
    double total = 0;
    for (int b = 0; b < B; b++) {
        int64_t y = yt->dtype == AVGEN_DT_I64 ? ((const int64_t *)rt_ptr(c, IN(1)))[b] : 0;
        if (y < 0 || y >= C) {
            fail(c, "labels: %s is out of range (expected 0 <= label < classes)", "a label", (long long)y);
            y = 0;
        }
        memcpy(dl + (size_t)b * C, logits + (size_t)b * C, sizeof(float) * C);
        double lse = softmax_row(dl + (size_t)b * C, C);
        total += lse - logits[(size_t)b * C + y];
        for (int k = 0; k < C; k++) dl[(size_t)b * C + k] /= B;
        dl[(size_t)b * C + y] -= 1.0f / B;
    }
    loss[0] = (float)(total / B);
}

/* ------------------------------------------------------------------------------------------ backward */

/* Head linear: gW += dy^T x, gb += sum dy, and dx = dy W when asked. */
static void op_linear_bwd(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                          const int32_t *out) {
    const avgen_tensor_desc *dyt = TD(IN(0)), *xt = TD(IN(1));
    const int M = (int)dyt->shape[0], N = (int)dyt->shape[1], K = (int)xt->shape[1];
    const float *dy = PF(IN(0)), *x = PF(IN(1)), *W = PF(IN(2));
    mm_tn(N, K, M, dy, N, x, K, PF(OUT(0)), K, 1);
    double *db = dzeros((size_t)N);
    for (int i = 0; i < M; i++)
        for (int n = 0; n < N; n++) db[n] += dy[(size_t)i * N + n];
    add_to(PF(OUT(1)), db, N);
    free(db);
    if (o->n_out > 2) mm_nn(M, K, N, dy, N, W, K, PF(OUT(2)), K, 0);
}

static void op_concat_mean_bwd(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                               const int32_t *out) {
    const int B = c->k->batch, T = c->k->frames;
    const avgen_tensor_desc *ft = TD(IN(0));
    const int W = (int)ft->shape[1];
    const float *df = PF(IN(0));
    int col = 0;
    for (int s = 0; s < o->n_out; s++) {
        const int D = (int)TD(OUT(s))->shape[1];
        float *d = PF(OUT(s));
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int j = 0; j < D; j++) d[((size_t)b * T + t) * D + j] = df[(size_t)b * W + col + j] / T;
        col += D;
    }
}

/* Writes the whole stream gradient: zero, then each pair's CLS row from the final LayerNorm. */
static void op_cls_layernorm_bwd(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                                 const int32_t *out) {
    const avgen_tensor_desc *gt = TD(OUT(0));
    const int P = (int)gt->shape[0], N = (int)gt->shape[1], D = (int)gt->shape[2];
    const float *dcls = PF(IN(0)), *x = PF(IN(1)), *mu = PF(IN(2)), *rs = PF(IN(3)), *w = PF(IN(4));
    float *gx = PF(OUT(0));
    memset(gx, 0, (size_t)gt->bytes);
    for (int p = 0; p < P; p++)
        ln_row_bwd(dcls + (size_t)p * D, x + (size_t)p * D, mu[p], rs[p], w, gx + (size_t)p * N * D, 0, D, NULL, NULL);
    (void)o;
}

static void op_layernorm_gate_bwd(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                                  const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(1));
    const int D = (int)xt->shape[2];
    const long rows = (long)(xt->shape[0] * xt->shape[1]);
    const float *gy = PF(IN(0)), *x = PF(IN(1)), *mu = PF(IN(2)), *rs = PF(IN(3)), *w = PF(IN(4)), *b = PF(IN(5));
    const float gate = PF(IN(6))[0];
    float *dx = PF(OUT(0));
    double dgate = 0, *dw = dzeros((size_t)D), *db = dzeros((size_t)D);
    float *dO = fzeros((size_t)D);
    for (long r = 0; r < rows; r++) {
        for (int d = 0; d < D; d++) {
            double xh = ((double)x[r * D + d] - mu[r]) * rs[r];
            dgate += (double)gy[r * D + d] * (xh * w[d] + b[d]);
            dO[d] = gy[r * D + d] * gate;
        }
        ln_row_bwd(dO, x + r * D, mu[r], rs[r], w, dx + r * D, 0, D, dw, db);
    }
    PF(OUT(1))[0] += (float)dgate;
    add_to(PF(OUT(2)), dw, D);
    add_to(PF(OUT(3)), db, D);
    free(dw);
    free(db);
    free(dO);
    (void)o;
}

/* BatchNorm (train mode) backward, optionally through the ReLU after it. */
static void op_batchnorm_bwd(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                             const int32_t *out, int relu) {
    const avgen_tensor_desc *xt = TD(IN(1));
    const int C = (int)xt->shape[2];
    const long rows = (long)(xt->shape[0] * xt->shape[1]);
    const float *dy = PF(IN(0)), *x = PF(IN(1)), *mu = PF(IN(2)), *rs = PF(IN(3)), *w = PF(IN(4));
    const float *b = relu ? PF(IN(5)) : NULL;
    float *dx = PF(OUT(0));
    double *sdy = dzeros((size_t)C), *sdyx = dzeros((size_t)C);
    float *g2 = fzeros((size_t)rows * C);
    for (long r = 0; r < rows; r++)
        for (int ch = 0; ch < C; ch++) {
            size_t i = (size_t)r * C + ch;
            double xh = ((double)x[i] - mu[ch]) * rs[ch];
            double gg = dy[i];
            if (relu && xh * w[ch] + b[ch] <= 0) gg = 0;
            g2[i] = (float)gg;
            sdy[ch] += gg, sdyx[ch] += gg * xh;
        }
    for (long r = 0; r < rows; r++)
        for (int ch = 0; ch < C; ch++) {
            size_t i = (size_t)r * C + ch;
            double xh = ((double)x[i] - mu[ch]) * rs[ch];
            dx[i] = (float)(w[ch] * rs[ch] * (g2[i] - sdy[ch] / rows - xh * sdyx[ch] / rows));
        }
    add_to(PF(OUT(1)), sdyx, C);
    add_to(PF(OUT(2)), sdy, C);
    free(sdy);
    free(sdyx);
    free(g2);
    (void)o;
}

static void op_relu_bwd(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *t = TD(IN(0));
    const size_t n = (size_t)(t->bytes / 4);
    const float *dy = PF(IN(0)), *y = PF(IN(1));
    float *dx = PF(OUT(0));
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0 ? dy[i] : 0.0f;
}

static void op_group_linear_bwd(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(1)), *wt = TD(IN(2));
    const int Cin = (int)xt->shape[2], Cout = (int)wt->shape[0], cin_g = (int)wt->shape[1], G = Cin / cin_g;
    const int cout_g = Cout / G, rows = (int)(xt->shape[0] * xt->shape[1]);
    const float *dy = PF(IN(0)), *x = PF(IN(1)), *W = PF(IN(2));
    float *dx = PF(OUT(0)), *gW = PF(OUT(1));
    for (int k = 0; k < G; k++) {
        mm_nn(rows, cin_g, cout_g, dy + k * cout_g, Cout, W + (size_t)k * cout_g * cin_g, cin_g, dx + k * cin_g, Cin, 0);
        mm_tn(cout_g, cin_g, rows, dy + k * cout_g, Cout, x + k * cin_g, Cin, gW + (size_t)k * cout_g * cin_g, cin_g, 1);
    }
}

/* LayerNorm backward: the adapters' ln_before (trainable: writes dx, accumulates dw and db) or a frozen
 * backbone LayerNorm (accumulates dx into the stream gradient, its last input and only output). */
static void op_layernorm_bwd(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                             const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(1));
    const int D = (int)xt->shape[xt->ndim - 1];
    const long rows = (long)(xt->bytes / 4 / D);
    const float *dy = PF(IN(0)), *x = PF(IN(1)), *mu = PF(IN(2)), *rs = PF(IN(3)), *w = PF(IN(4));
    const int trainable = o->n_out == 3;
    float *dx = PF(OUT(0));
    double *dw = trainable ? dzeros((size_t)D) : NULL, *db = trainable ? dzeros((size_t)D) : NULL;
    for (long r = 0; r < rows; r++) ln_row_bwd(dy + r * D, x + r * D, mu[r], rs[r], w, dx + r * D, !trainable, D, dw, db);
    if (trainable) {
        add_to(PF(OUT(1)), dw, D);
        add_to(PF(OUT(2)), db, D);
        free(dw);
        free(db);
    }
}

/* Backward of the latent exchange (see op_adapter_latent), per pair:
 * dC = gate_av dZ, dgate_av = sum(dZ . A2 S), dA2 = dC S^T, dS = A2^T dC,
 * dL2 = A2 (dA2 - rowsum(dA2 A2)), dX = dZ + dL2 S, dS += dL2^T X,
 * dtok = dS + dL1 Y with dA1 = dS Y^T, dL1 = A1 (dA1 - rowsum(dA1 A1)), dY = A1^T dS + dL1^T tok. */
static void op_adapter_latent_bwd(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in,
                                  const int32_t *out) {
    const avgen_tensor_desc *xt = TD(IN(1)), *yt = TD(IN(2)), *tt = TD(IN(6));
    const int P = (int)xt->shape[0], N = (int)xt->shape[1], D = (int)xt->shape[2], N2 = (int)yt->shape[1];
    const int m = (int)tt->shape[0];
    const float *dZ = PF(IN(0)), *X = PF(IN(1)), *Y = PF(IN(2)), *S = PF(IN(3)), *A1 = PF(IN(4)), *A2 = PF(IN(5));
    const float *tok = PF(IN(6)), gav = PF(IN(7))[0];
    const int need_x = o->n_out == 4;
    float *gX = need_x ? PF(OUT(2)) : NULL, *gY = need_x ? PF(OUT(3)) : NULL;
    float *Cm = fzeros((size_t)N * D), *dC = fzeros((size_t)N * D), *dA2 = fzeros((size_t)N * m);
    float *dS = fzeros((size_t)m * D), *dA1 = fzeros((size_t)m * N2), *dtok = fzeros((size_t)m * D);
    double dg = 0;
    for (int p = 0; p < P; p++) {
        const float *dz = dZ + (size_t)p * N * D, *x = X + (size_t)p * N * D, *y = Y + (size_t)p * N2 * D;
        const float *s = S + (size_t)p * m * D, *a1 = A1 + (size_t)p * m * N2, *a2 = A2 + (size_t)p * N * m;
        mm_nn(N, D, m, a2, m, s, D, Cm, D, 0);
        for (size_t i = 0; i < (size_t)N * D; i++) {
            dg += (double)dz[i] * Cm[i];
            dC[i] = gav * dz[i];
        }
        mm_nt(N, m, D, dC, D, s, D, dA2, m, 0);
        mm_tn(m, D, N, a2, m, dC, D, dS, D, 0);
        for (int i = 0; i < N; i++) { /* dA2 -> dL2 in place */
            double r = 0;
            for (int j = 0; j < m; j++) r += (double)dA2[i * m + j] * a2[i * m + j];
            for (int j = 0; j < m; j++) dA2[i * m + j] = (float)(a2[i * m + j] * (dA2[i * m + j] - r));
        }
        if (need_x) {
            float *gx = gX + (size_t)p * N * D;
            for (size_t i = 0; i < (size_t)N * D; i++) gx[i] += dz[i];
            mm_nn(N, D, m, dA2, m, s, D, gx, D, 1);
        }
        mm_tn(m, D, N, dA2, m, x, D, dS, D, 1);
        for (size_t i = 0; i < (size_t)m * D; i++) dtok[i] += dS[i];
        mm_nt(m, N2, D, dS, D, y, D, dA1, N2, 0);
        for (int i = 0; i < m; i++) { /* dA1 -> dL1 in place */
            double r = 0;
            for (int j = 0; j < N2; j++) r += (double)dA1[i * N2 + j] * a1[i * N2 + j];
            for (int j = 0; j < N2; j++) dA1[i * N2 + j] = (float)(a1[i * N2 + j] * (dA1[i * N2 + j] - r));
        }
        mm_nn(m, D, N2, dA1, N2, y, D, dtok, D, 1);
        if (need_x) {
            float *gy = gY + (size_t)p * N2 * D;
            mm_tn(N2, D, m, a1, N2, dS, D, gy, D, 1);
            mm_tn(N2, D, m, dA1, N2, tok, D, gy, D, 1);
        }
    }
    float *gtok = PF(OUT(0));
    for (size_t i = 0; i < (size_t)m * D; i++) gtok[i] += dtok[i];
    PF(OUT(1))[0] += (float)dg;
    free(Cm), free(dC), free(dA2), free(dS), free(dA1), free(dtok);
}

static void op_linear_dx(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *dyt = TD(IN(0)), *wt = TD(IN(1));
    const int N = (int)wt->shape[0], K = (int)wt->shape[1];
    const int rows = (int)(dyt->bytes / 4 / N);
    mm_nn(rows, K, N, PF(IN(0)), N, PF(IN(1)), K, PF(OUT(0)), K, 0);
}

static void op_gelu_linear_dx(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *wt = TD(IN(2));
    const int N = (int)wt->shape[0], K = (int)wt->shape[1];
    const avgen_tensor_desc *dt = TD(IN(0));
    const size_t n = (size_t)(dt->bytes / 4);
    const float *da = PF(IN(0)), *pre = PF(IN(1));
    float *dpre = fzeros(n);
    for (size_t i = 0; i < n; i++) dpre[i] = (float)(da[i] * gelu_grad(pre[i]));
    mm_nn((int)(n / N), K, N, dpre, N, PF(IN(2)), K, PF(OUT(0)), K, 0);
    free(dpre);
}

/* Attention backward per (pair, head) from the saved log-sum-exp: P = exp(scale Q K^T - lse),
 * dV = P^T dO, dP = dO V^T, dS = P (dP - rowsum(dO O)), dQ = scale dS K, dK = scale dS^T Q. */
static void op_attention_bwd(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *qt = TD(IN(1));
    const int P = (int)qt->shape[0], N = (int)qt->shape[1], D = (int)qt->shape[2] / 3, H = c->k->heads, hd = D / H;
    const float scale = (float)(1.0 / sqrt((double)hd));
    const float *dO = PF(IN(0)), *qkv = PF(IN(1)), *O = PF(IN(2)), *lse = PF(IN(3));
    float *dqkv = PF(OUT(0));
    float *pm = fzeros((size_t)N * N), *dp = fzeros((size_t)N * N);
    for (int p = 0; p < P; p++)
        for (int h = 0; h < H; h++) {
            const size_t base = (size_t)p * N * 3 * D + h * hd;
            const float *q = qkv + base, *kk = q + D, *v = q + 2 * D;
            const float *dout = dO + (size_t)p * N * D + h * hd, *o = O + (size_t)p * N * D + h * hd;
            float *dq = dqkv + base, *dk = dq + D, *dv = dq + 2 * D;
            mm_nt(N, N, hd, q, 3 * D, kk, 3 * D, pm, N, 0);
            for (int i = 0; i < N; i++) {
                const double l = lse[((size_t)p * H + h) * N + i];
                for (int j = 0; j < N; j++) pm[(size_t)i * N + j] = (float)exp((double)pm[(size_t)i * N + j] * scale - l);
            }
            mm_tn(N, hd, N, pm, N, dout, D, dv, 3 * D, 0);
            mm_nt(N, N, hd, dout, D, v, 3 * D, dp, N, 0);
            for (int i = 0; i < N; i++) {
                double di = 0;
                for (int d = 0; d < hd; d++) di += (double)dout[(size_t)i * D + d] * o[(size_t)i * D + d];
                for (int j = 0; j < N; j++) {
                    size_t ij = (size_t)i * N + j;
                    dp[ij] = (float)(pm[ij] * (dp[ij] - di) * scale);
                }
            }
            mm_nn(N, hd, N, dp, N, kk, 3 * D, dq, 3 * D, 0);
            mm_tn(N, hd, N, dp, N, q, 3 * D, dk, 3 * D, 0);
        }
    free(pm);
    free(dp);
}

static void op_qkv_dx(avgen_ctx *c, const avgen_graph *g, const int32_t *in, const int32_t *out) {
    const avgen_tensor_desc *dt = TD(IN(0));
    const int D = (int)dt->shape[2] / 3, rows = (int)(dt->shape[0] * dt->shape[1]);
    const float *dqkv = PF(IN(0));
    float *dh = PF(OUT(0));
    for (int j = 0; j < 3; j++) mm_nn(rows, D, D, dqkv + j * D, 3 * D, PF(IN(1 + j)), D, dh, D, j > 0);
}

/* Adam / AdamW over every trainable tensor: adapters at train.lr, the head at train.head_lr. Adam adds
 * weight_decay * p to the gradient (L2); AdamW decays the weights directly. */
static void op_adam(avgen_ctx *c, const avgen_graph *g, const avgen_op_desc *o, const int32_t *in) {
    const avgen_consts *k = c->k;
    c->adam_step++;
    const double t = (double)c->adam_step;
    const double bc1 = 1.0 - pow(k->beta1, t), bc2 = 1.0 - pow(k->beta2, t);
    for (int i = 0; i < o->n_in; i++) {
        const int p = IN(i);
        const avgen_tensor_desc *pt = TD(p);
        if (pt->kind != AVGEN_T_TRAINABLE) continue;
        int gi = -1, mi = -1, vi = -1;
        for (int j = 0; j < o->n_in; j++) {
            const avgen_tensor_desc *u = TD(IN(j));
            if (u->param != p) continue;
            if (u->kind == AVGEN_T_PGRAD) gi = IN(j);
            else if (u->kind == AVGEN_T_OPTSTATE && mi < 0) mi = IN(j);
            else if (u->kind == AVGEN_T_OPTSTATE) vi = IN(j);
        }
        if (gi < 0 || mi < 0 || vi < 0) continue;
        const double lr = (pt->group == AVGEN_GROUP_HEAD ? k->head_lr : k->lr) * c->lr_scale;
        float *w = PF(p), *gr = PF(gi), *m = PF(mi), *v = PF(vi);
        const size_t n = (size_t)(pt->bytes / 4);
        for (size_t e = 0; e < n; e++) {
            double gg = (double)gr[e] * c->grad_scale;
            if (!k->adamw) gg += k->weight_decay * w[e];
            m[e] = (float)(k->beta1 * m[e] + (1 - k->beta1) * gg);
            v[e] = (float)(k->beta2 * v[e] + (1 - k->beta2) * gg * gg);
            double upd = (m[e] / bc1) / (sqrt(v[e] / bc2) + k->adam_eps);
            double nw = w[e];
            if (k->adamw) nw -= lr * k->weight_decay * nw;
            w[e] = (float)(nw - lr * upd);
        }
    }
}

void rt_cpu_op(avgen_ctx *c, const avgen_graph *g, int op) {
    const avgen_op_desc *o = &g->ops[op];
    const int32_t *in = g->refs + o->in_at, *out = g->refs + o->out_at;
    switch (o->kind) {
    case AVGEN_OP_KIND_PATCH_EMBED: op_patch_embed(c, g, o, in, out); break;
    case AVGEN_OP_KIND_LAYERNORM: op_layernorm(c, g, o, in, out); break;
    case AVGEN_OP_KIND_QKV: op_qkv(c, g, in, out); break;
    case AVGEN_OP_KIND_ATTENTION: op_attention(c, g, o, in, out); break;
    case AVGEN_OP_KIND_LINEAR_RESIDUAL: op_linear_residual(c, g, o, in, out); break;
    case AVGEN_OP_KIND_LINEAR_GELU: op_linear_gelu(c, g, o, in, out); break;
    case AVGEN_OP_KIND_ADAPTER_LATENT: op_adapter_latent(c, g, in, out); break;
    case AVGEN_OP_KIND_GROUP_LINEAR: op_group_linear(c, g, in, out); break;
    case AVGEN_OP_KIND_BATCHNORM_RELU: op_batchnorm(c, g, o, in, out, 1); break;
    case AVGEN_OP_KIND_BATCHNORM: op_batchnorm(c, g, o, in, out, 0); break;
    case AVGEN_OP_KIND_RELU: {
        const size_t n = (size_t)(TD(IN(0))->bytes / 4);
        const float *x = PF(IN(0));
        float *y = PF(OUT(0));
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0 ? x[i] : 0.0f;
        break;
    }
    case AVGEN_OP_KIND_LAYERNORM_GATE: op_layernorm_gate(c, g, o, in, out); break;
    case AVGEN_OP_KIND_CLS_LAYERNORM: op_cls_layernorm(c, g, o, in, out); break;
    case AVGEN_OP_KIND_CONCAT_MEAN: op_concat_mean(c, g, o, in, out); break;
    case AVGEN_OP_KIND_LINEAR: op_linear(c, g, in, out); break;
    case AVGEN_OP_KIND_CROSS_ENTROPY: op_cross_entropy(c, g, in, out); break;
    case AVGEN_OP_KIND_LINEAR_DX: op_linear_dx(c, g, in, out); break;
    case AVGEN_OP_KIND_GELU_LINEAR_DX: op_gelu_linear_dx(c, g, in, out); break;
    case AVGEN_OP_KIND_ATTENTION_BWD: op_attention_bwd(c, g, in, out); break;
    case AVGEN_OP_KIND_QKV_DX: op_qkv_dx(c, g, in, out); break;
    case AVGEN_OP_KIND_LAYERNORM_BWD: op_layernorm_bwd(c, g, o, in, out); break;
    case AVGEN_OP_KIND_ADAPTER_LATENT_BWD: op_adapter_latent_bwd(c, g, o, in, out); break;
    case AVGEN_OP_KIND_GROUP_LINEAR_BWD: op_group_linear_bwd(c, g, in, out); break;
    case AVGEN_OP_KIND_BATCHNORM_RELU_BWD: op_batchnorm_bwd(c, g, o, in, out, 1); break;
    case AVGEN_OP_KIND_BATCHNORM_BWD: op_batchnorm_bwd(c, g, o, in, out, 0); break;
    case AVGEN_OP_KIND_RELU_BWD: op_relu_bwd(c, g, in, out); break;
    case AVGEN_OP_KIND_LAYERNORM_GATE_BWD: op_layernorm_gate_bwd(c, g, o, in, out); break;
    case AVGEN_OP_KIND_CLS_LAYERNORM_BWD: op_cls_layernorm_bwd(c, g, o, in, out); break;
    case AVGEN_OP_KIND_CONCAT_MEAN_BWD: op_concat_mean_bwd(c, g, o, in, out); break;
    case AVGEN_OP_KIND_LINEAR_BWD: op_linear_bwd(c, g, o, in, out); break;
    case AVGEN_OP_KIND_ADAM: op_adam(c, g, o, in); break;
    default:
        fail(c, "op %s has an unknown kind %lld", o->name, (long long)o->kind);
    }
}
