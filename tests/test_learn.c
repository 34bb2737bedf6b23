/* It learns: a tiny configuration trained on the CPU backend (forward, backward, Adam, the generated op
 * list) on a synthetic task where only the audio carries the class: each class raises its own band of
 * mel bins, the frames are noise. LAVISH and late fusion must reach >= 95% accuracy on fresh samples in
 * eval mode (BatchNorm running statistics), vision-only must stay near chance.
 * usage: test_learn REPO_ROOT */
#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "check.h"
#include "model_harness.h"

#define K 4
#define STEPS 300

static uint64_t rs;
static double urand(void) {
    rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
    return (double)(rs >> 11) * 0x1.0p-53;
}
static double nrand(void) { return sqrt(-2 * log(urand() + 1e-300)) * cos(2 * M_PI * urand()); }

/* One batch: class k lifts the k-th quarter of the mel bins inside every 16-bin patch column, so every
 * audio patch looks different per class (a band that fills whole patch columns would only move patches
 * around, which attention with small position embeddings cannot see); frames are pure noise. */
static void make_batch(harness *h) {
    const avgen_consts *k = &h->k;
    const int P = k->batch * k->frames, S = k->image, A = k->audio_rows, M = k->mel_bins;
    int64_t *lab = (int64_t *)rt_ptr(&h->ctx, rt_find(&h->graph.g, "labels"));
    for (int b = 0; b < k->batch; b++) lab[b] = (int64_t)(urand() * K) % K;
    if (h->ctx.frames_f32)
        for (size_t i = 0; i < (size_t)P * 3 * S * S; i++) h->ctx.frames_f32[i] = (float)nrand();
    float *au = harness_f32(h, "audio");
    if (au)
        for (int p = 0; p < P; p++) {
            const int c = (int)lab[p / k->frames];
            for (int r = 0; r < A; r++)
                for (int m = 0; m < M; m++)
                    au[((size_t)p * A + r) * M + m] = (float)(0.5 * nrand() + ((m % 16) * K / 16 == c ? 1.5 : 0.0));
        }
}

static double train_and_eval(const char *root, const char *fusion) {
    char fset[64];
    snprintf(fset, sizeof fset, "fusion=%s", fusion);
    const char *sets[] = {fset, "head.classes=4", "train.batch=8", "video.frames=1", "train.lr=1e-3", "train.head_lr=1e-3"};
    harness tr, ev;
    if (harness_open(&tr, root, "tiny-lavish", sets, 6, 1) || harness_open(&ev, root, "tiny-lavish", sets, 6, 0)) return -1;
    char err[512];
    rs = 0x9E3779B97F4A7C15ULL;
    CHECK(rt_init_params(&tr.ctx, NULL, 1, NULL, NULL, err, sizeof err) == 0);
    const size_t nf = (size_t)tr.k.batch * tr.k.frames * 3 * tr.k.image * tr.k.image;
    if (tr.spec.use_v) {
        tr.ctx.frames_f32 = calloc(nf, sizeof(float));
        ev.ctx.frames_f32 = calloc(nf, sizeof(float));
    }
    clock_t t0 = clock();
    double last_loss = 0;
    for (int s = 0; s < STEPS; s++) {
        make_batch(&tr);
        rt_zero_grads(&tr.ctx);
        rt_run_phase(&tr.ctx, AVGEN_PH_FORWARD);
        rt_run_phase(&tr.ctx, AVGEN_PH_BACKWARD);
        rt_run_phase(&tr.ctx, AVGEN_PH_UPDATE);
        last_loss = *harness_f32(&tr, "loss");
    }
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    /* Eval graph: the trained parameters and BatchNorm buffers, copied by name. */
    for (int i = 0; i < ev.graph.g.n_tensors; i++) {
        const avgen_tensor_desc *t = &ev.graph.g.tensors[i];
        if (t->kind != AVGEN_T_FROZEN && t->kind != AVGEN_T_TRAINABLE && t->kind != AVGEN_T_BUFFER) continue;
        int j = rt_find(&tr.graph.g, t->name);
        CHECK_MSG(j >= 0, "%s missing from the training graph", t->name);
        if (j >= 0) memcpy(rt_ptr(&ev.ctx, i), rt_ptr(&tr.ctx, j), (size_t)t->bytes);
    }
    int right = 0, total = 0;
    for (int it = 0; it < 16; it++) {
        /* the eval graph has no labels tensor: draw the batch on the training harness and copy the inputs */
        make_batch(&tr);
        const int64_t *y = (const int64_t *)rt_ptr(&tr.ctx, rt_find(&tr.graph.g, "labels"));
        float *au_tr = harness_f32(&tr, "audio"), *au_ev = harness_f32(&ev, "audio");
        if (au_ev) memcpy(au_ev, au_tr, (size_t)ev.graph.g.tensors[rt_find(&ev.graph.g, "audio")].bytes);
        if (ev.ctx.frames_f32) memcpy(ev.ctx.frames_f32, tr.ctx.frames_f32, nf * sizeof(float));
        rt_run_phase(&ev.ctx, AVGEN_PH_FORWARD);
        const float *lg = harness_f32(&ev, "logits");
        for (int b = 0; b < ev.k.batch; b++) {
            int best = 0;
            for (int c = 1; c < K; c++)
                if (lg[b * K + c] > lg[b * K + best]) best = c;
            right += best == y[b];
            total++;
        }
    }
    double acc = (double)right / total;
    printf("%-7s %d steps in %.2f s, last training loss %.3f, eval accuracy %.3f\n", fusion, STEPS, secs, last_loss, acc);
    harness_close(&tr);
    harness_close(&ev);
    return acc;
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : ".";
    double lavish = train_and_eval(root, "lavish");
    double late = train_and_eval(root, "late");
    double vision = train_and_eval(root, "vision");
    CHECK_MSG(lavish >= 0.95, "LAVISH accuracy %.3f", lavish);
    CHECK_MSG(late >= 0.95, "late fusion accuracy %.3f", late);
    CHECK_MSG(vision >= 0 && vision <= 0.45, "vision-only accuracy %.3f (chance is 0.25)", vision);
    return CHECK_DONE();
}
