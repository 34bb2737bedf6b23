/* Training pieces with known answers: learning-rate schedule values, accuracy and confusion bookkeeping
 * on hand-computed cases, and gradient accumulation: two accumulated batches of B give the gradients of
 * one batch of 2B (without BatchNorm, whose batch statistics are per accumulated batch by design).
 * usage: test_train_units REPO_ROOT */
#include <math.h>
#include <stdlib.h>

#include "check.h"
#include "metrics.h"
#include "model_harness.h"
#include "train.h"

static void test_schedule(void) {
    rt_train_cfg c;
    memset(&c, 0, sizeof c);
    c.warmup = 4, c.schedule = RT_SCHED_CONSTANT;
    CHECK(fabs(rt_lr_multiplier(&c, 0, 100, 10) - 0.25) < 1e-12);
    CHECK(fabs(rt_lr_multiplier(&c, 3, 100, 10) - 1.0) < 1e-12);
    CHECK(fabs(rt_lr_multiplier(&c, 50, 100, 10) - 1.0) < 1e-12);
    c.schedule = RT_SCHED_COSINE;
    CHECK(fabs(rt_lr_multiplier(&c, 4, 104, 10) - 1.0) < 1e-12);          /* start of the cosine */
    CHECK(fabs(rt_lr_multiplier(&c, 54, 104, 10) - 0.5) < 1e-12);         /* half way */
    CHECK(fabs(rt_lr_multiplier(&c, 104, 104, 10) - 0.0) < 1e-12);        /* the end */
    CHECK(fabs(rt_lr_multiplier(&c, 29, 104, 10) - 0.5 * (1 + cos(M_PI * 0.25))) < 1e-12);
    c.warmup = 0, c.schedule = RT_SCHED_STEP, c.step_every = 2, c.step_gamma = 0.1;
    CHECK(fabs(rt_lr_multiplier(&c, 19, 100, 10) - 1.0) < 1e-12);         /* epochs 0, 1 */
    CHECK(fabs(rt_lr_multiplier(&c, 20, 100, 10) - 0.1) < 1e-12);         /* epoch 2 */
    CHECK(fabs(rt_lr_multiplier(&c, 45, 100, 10) - 0.01) < 1e-12);        /* epoch 4 */
}

static void test_metrics(void) {
    rt_acc a;
    CHECK(rt_acc_init(&a, 6) == 0);
    const float l0[6] = {5, 1, 0, 0, 0, 0};    /* true 0: top-1 right */
    const float l1[6] = {5, 4, 3, 2, 1, 0};    /* true 4: rank 4 -> top-5 only */
    const float l2[6] = {5, 4, 3, 2, 1, 0};    /* true 5: rank 5 -> neither */
    const float l3[6] = {0, 2, 2, 0, 0, 0};    /* true 2: tie with 1 -> counted right (ties favour the truth) */
    rt_acc_add(&a, l0, 0);
    rt_acc_add(&a, l1, 4);
    rt_acc_add(&a, l2, 5);
    rt_acc_add(&a, l3, 2);
    CHECK_EQ_I64(a.n, 4);
    CHECK(fabs(rt_acc_top1(&a) - 0.5) < 1e-12);
    CHECK(fabs(rt_acc_top5(&a) - 0.75) < 1e-12);
    CHECK_EQ_I64(a.confusion[0 * 6 + 0], 1);
    CHECK_EQ_I64(a.confusion[4 * 6 + 0], 1);
    CHECK_EQ_I64(a.confusion[5 * 6 + 0], 1);
    CHECK(fabs(rt_acc_class(&a, 0) - 1.0) < 1e-12);
    CHECK(fabs(rt_acc_class(&a, 4) - 0.0) < 1e-12);
    CHECK(rt_acc_class(&a, 3) < 0); /* no example */
    rt_acc_free(&a);
    /* a NaN logit is never right: neither the true class's nor another's (a broken model scored 0, not 1) */
    CHECK(rt_acc_init(&a, 3) == 0);
    const float n0[3] = {NAN, NAN, NAN}, n1[3] = {1, NAN, 0}, n2[3] = {NAN, 1, 0};
    rt_acc_add(&a, n0, 0);
    rt_acc_add(&a, n1, 0);
    rt_acc_add(&a, n2, 1);
    CHECK_EQ_I64(a.top1, 0);
    CHECK_EQ_I64(a.top5, 3); /* three classes: every class is within the top 5 */
    rt_acc_free(&a);
}

/* Gradients of one step on labels/inputs of batch `b` (copied from a 2B source at offset off). */
static void grads_of(harness *h, const float *frames, const float *audio, const int64_t *labels, int off, int B) {
    const avgen_consts *k = &h->k;
    const size_t fpc = (size_t)k->frames * 3 * k->image * k->image, apc = (size_t)k->frames * k->audio_rows * k->mel_bins;
    memcpy(h->ctx.frames_f32, frames + off * fpc, sizeof(float) * fpc * B);
    memcpy(harness_f32(h, "audio"), audio + off * apc, sizeof(float) * apc * B);
    memcpy(rt_ptr(&h->ctx, rt_find(&h->graph.g, "labels")), labels + off, sizeof(int64_t) * B);
    rt_run_phase(&h->ctx, AVGEN_PH_FORWARD);
    rt_run_phase(&h->ctx, AVGEN_PH_BACKWARD);
}

static void test_accumulation(const char *root, const char *fusion, int bn) {
    char fs[64];
    snprintf(fs, sizeof fs, "fusion=%s", fusion);
    const char *s4[] = {fs, bn ? "adapter.batchnorm=true" : "adapter.batchnorm=false", "train.batch=4", "video.frames=2"};
    const char *s2[] = {fs, bn ? "adapter.batchnorm=true" : "adapter.batchnorm=false", "train.batch=2", "video.frames=2"};
    harness h4, h2;
    if (harness_open(&h4, root, "tiny-lavish", s4, 4, 1) || harness_open(&h2, root, "tiny-lavish", s2, 4, 1)) return;
    char err[256];
    rt_init_params(&h4.ctx, NULL, 3, NULL, NULL, err, sizeof err);
    rt_init_params(&h2.ctx, NULL, 3, NULL, NULL, err, sizeof err);
    /* live gates, so the adapters' gradients are not trivially zero */
    for (int i = 0; i < h4.graph.g.n_tensors; i++) {
        const char *n = h4.graph.g.tensors[i].name;
        size_t l = strlen(n);
        if ((l > 5 && !strcmp(n + l - 5, ".gate")) || (l > 8 && !strcmp(n + l - 8, ".gate_av"))) {
            *(float *)rt_ptr(&h4.ctx, i) = 0.5f;
            *(float *)rt_ptr(&h2.ctx, rt_find(&h2.graph.g, n)) = 0.5f;
        }
    }
    const avgen_consts *k = &h4.k;
    const size_t fpc = (size_t)k->frames * 3 * k->image * k->image, apc = (size_t)k->frames * k->audio_rows * k->mel_bins;
    float *frames = malloc(sizeof(float) * fpc * 4), *audio = malloc(sizeof(float) * apc * 4);
    int64_t labels[4] = {1, 3, 0, 2};
    uint64_t r = 12345;
    for (size_t i = 0; i < fpc * 4; i++) r = r * 6364136223846793005ULL + 1, frames[i] = (float)((double)(r >> 40) / (1 << 24) - 0.5);
    for (size_t i = 0; i < apc * 4; i++) r = r * 6364136223846793005ULL + 1, audio[i] = (float)((double)(r >> 40) / (1 << 24) - 0.5);
    h4.ctx.frames_f32 = malloc(sizeof(float) * fpc * 4);
    h2.ctx.frames_f32 = malloc(sizeof(float) * fpc * 2);
    rt_zero_grads(&h4.ctx);
    grads_of(&h4, frames, audio, labels, 0, 4);
    rt_zero_grads(&h2.ctx);
    grads_of(&h2, frames, audio, labels, 0, 2);
    grads_of(&h2, frames, audio, labels, 2, 2); /* accumulates */
    double worst = 0;
    int compared = 0;
    for (int i = 0; i < h4.graph.g.n_tensors; i++) {
        const avgen_tensor_desc *t = &h4.graph.g.tensors[i];
        if (t->kind != AVGEN_T_PGRAD) continue;
        const float *g4 = rt_ptr(&h4.ctx, i), *g2 = rt_ptr(&h2.ctx, rt_find(&h2.graph.g, t->name));
        double num = 0, den = 0;
        for (int64_t e = 0; e < t->bytes / 4; e++) {
            double d = g4[e] - 0.5 * g2[e];
            num += d * d, den += (double)g4[e] * g4[e];
        }
        double rel = sqrt(num) / fmax(sqrt(den), 1e-6);
        if (rel > worst) worst = rel;
        compared++;
    }
    printf("accumulation %s %s: %d gradients, worst relative difference %.3g\n", fusion, bn ? "with BatchNorm" : "",
           compared, worst);
    if (bn)
        CHECK_MSG(worst > 1e-3, "with BatchNorm the accumulated gradients should differ (per-batch statistics)");
    else
        CHECK_MSG(worst < 1e-5, "%s: 2 x B=2 accumulated differs from B=4 by %.3g", fusion, worst);
    free(frames);
    free(audio);
    harness_close(&h4);
    harness_close(&h2);
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : ".";
    test_schedule();
    test_metrics();
    test_accumulation(root, "late", 0);
    test_accumulation(root, "lavish", 0);
    test_accumulation(root, "lavish", 1);
    return CHECK_DONE();
}
