/* Finite-difference check of the generated backward on a tiny LAVISH configuration: for every trainable
 * tensor, central differences of the loss along the tensor's own gradient direction and along a random
 * direction agree with the backward pass. Gates are set non-zero so that every gradient path is live.
 * The CPU backend computes in fp32, so the loss is recomputed from the logits in double and the step is
 * chosen large enough for fp32 noise to stay well below the tolerance.
 * usage: test_gradcheck REPO_ROOT */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "model_harness.h"

static uint64_t rs = 88172645463325252ULL;
static double urand(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1.0p-53;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(2 * M_PI * urand()); }

/* Cross-entropy from the logits in double (the op's float loss would add rounding noise). */
static double loss_of(harness *h) {
    rt_run_phase(&h->ctx, AVGEN_PH_FORWARD);
    const float *lg = harness_f32(h, "logits");
    const int64_t *y = (const int64_t *)rt_ptr(&h->ctx, rt_find(&h->graph.g, "labels"));
    const int B = h->k.batch, C = h->k.classes;
    double total = 0;
    for (int b = 0; b < B; b++) {
        double mx = -1e300, s = 0;
        for (int c = 0; c < C; c++) mx = fmax(mx, lg[b * C + c]);
        for (int c = 0; c < C; c++) s += exp(lg[b * C + c] - mx);
        total += mx + log(s) - lg[b * C + y[b]];
    }
    return total / B;
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : ".";
    const char *sets[] = {"train.batch=3", "video.frames=2", "backbone.depth=2"};
    harness h;
    if (harness_open(&h, root, "tiny-lavish", sets, 3, 1)) return 1;
    const avgen_graph *g = &h.graph.g;
    char err[512];
    CHECK(rt_init_params(&h.ctx, NULL, 7, NULL, NULL, err, sizeof err) == 0);
    /* Live gates and non-trivial norms everywhere. */
    for (int i = 0; i < g->n_tensors; i++) {
        const avgen_tensor_desc *t = &g->tensors[i];
        if (t->kind != AVGEN_T_TRAINABLE && t->kind != AVGEN_T_FROZEN) continue;
        float *p = rt_ptr(&h.ctx, i);
        size_t n = (size_t)(t->bytes / 4);
        const char *nm = t->name;
        size_t l = strlen(nm);
        if ((l > 5 && !strcmp(nm + l - 5, ".gate")) || (l > 8 && !strcmp(nm + l - 8, ".gate_av")))
            for (size_t e = 0; e < n; e++) p[e] = (float)(0.3 + 0.5 * urand());
        else if (strstr(nm, "bn") || strstr(nm, "ln_") || strstr(nm, "layernorm"))
            for (size_t e = 0; e < n; e++) p[e] += (float)(0.1 * nrand());
        else if (strstr(nm, "my_tokens"))
            for (size_t e = 0; e < n; e++) p[e] *= 0.2f;
    }
    /* Inputs: random normalised frames, audio, labels. */
    const int B = h.k.batch, T = h.k.frames, S = h.k.image;
    h.ctx.frames_f32 = malloc(sizeof(float) * (size_t)B * T * 3 * S * S);
    /* Small inputs and latent tokens keep the adapters' softmax logits (raw residual stream x latents)
     * moderate: saturated, they make the loss nearly piecewise in a gate and finite differences useless. */
    for (size_t i = 0; i < (size_t)B * T * 3 * S * S; i++) h.ctx.frames_f32[i] = (float)(0.3 * nrand());
    float *au = harness_f32(&h, "audio");
    for (size_t i = 0; i < (size_t)B * T * h.k.audio_rows * h.k.mel_bins; i++) au[i] = (float)(0.3 * nrand());
    int64_t *y = (int64_t *)rt_ptr(&h.ctx, rt_find(g, "labels"));
    for (int b = 0; b < B; b++) y[b] = (b * 2 + 1) % h.k.classes;

    rt_zero_grads(&h.ctx);
    rt_run_phase(&h.ctx, AVGEN_PH_FORWARD);
    rt_run_phase(&h.ctx, AVGEN_PH_BACKWARD);
    CHECK(!h.ctx.failed);

    double l0 = loss_of(&h), l1 = loss_of(&h);
    CHECK_MSG(l0 == l1, "the forward pass is not a function of its inputs: %.17g then %.17g", l0, l1);
    int tensors = 0;
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < g->n_tensors; i++) {
        const avgen_tensor_desc *t = &g->tensors[i];
        if (t->kind != AVGEN_T_PGRAD) continue;
        const int p = t->param;
        const size_t n = (size_t)(t->bytes / 4);
        float *w = rt_ptr(&h.ctx, p);
        const float *gr = rt_ptr(&h.ctx, i);
        float *w0 = malloc(sizeof(float) * n), *u = malloc(sizeof(float) * n);
        memcpy(w0, w, sizeof(float) * n);
        double gn = 0;
        for (size_t e = 0; e < n; e++) gn += (double)gr[e] * gr[e];
        gn = sqrt(gn);
        CHECK_MSG(gn > 0, "%s: the gradient is zero everywhere although every gate is live", t->name);
        for (int dir = 0; dir < 2 && gn > 0; dir++) {
            /* dir 0: the gradient's own direction; dir 1: a random unit direction */
            double un = 0, gu = 0;
            for (size_t e = 0; e < n; e++) {
                u[e] = dir == 0 ? gr[e] : (float)nrand();
                un += (double)u[e] * u[e];
            }
            un = sqrt(un);
            for (size_t e = 0; e < n; e++) u[e] = (float)(u[e] / un), gu += (double)gr[e] * u[e];
            const double eps = 1e-3; /* larger steps meet BatchNorm/ReLU kinks; smaller ones fp32 noise */
            for (size_t e = 0; e < n; e++) w[e] = (float)(w0[e] + eps * u[e]);
            double lp = loss_of(&h);
            for (size_t e = 0; e < n; e++) w[e] = (float)(w0[e] - eps * u[e]);
            double lm = loss_of(&h);
            memcpy(w, w0, sizeof(float) * n);
            double fd = (lp - lm) / (2 * eps);
            /* Error relative to the gradient's norm (the largest directional derivative of this tensor). */
            double rel = fabs(fd - gu) / fmax(gn, 1e-2); /* ln_before.bias is exactly zero in exact arithmetic */
            if (rel > worst) worst = rel, worst_name = t->name;
            CHECK_MSG(rel < 2e-2, "%s (%s direction): finite difference %.6g, backward %.6g (|g| %.3g)", t->name,
                      dir ? "random" : "gradient", fd, gu, gn);
        }
        tensors++;
        free(w0);
        free(u);
    }
    printf("finite differences on %d trainable tensors; worst error %.3g of |g| (%s)\n", tensors, worst, worst_name);
    CHECK(tensors >= 100);
    harness_close(&h);
    return CHECK_DONE();
}
