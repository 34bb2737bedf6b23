/* evaluate.c: see evaluate.h. */
#include "evaluate.h"

#include "rt_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rt_stage_batch(avgen_ctx *c, const ld_batch *b, char *err, size_t errlen) {
    static const char *const names[3] = {"frames", "audio", "labels"};
    const void *const src[3] = {b->frames, b->audio, b->labels};
    for (int i = 0; i < 3; i++) {
        const int t = rt_find(c->g, names[i]);
        if (t >= 0 && rt_stage_input(c, t, src[i], err, errlen)) return -1;
    }
    return 0;
}

int rt_evaluate(avgen_ctx *ev, rt_phase_fn fwd, ld_loader *l, rt_eval_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    const int C = ev->k->classes, NV = ld_videos(l);
    const int lt = rt_find(ev->g, "logits");
    double *vsum = calloc((size_t)NV * C, sizeof(double));
    int *vcount = calloc((size_t)NV, sizeof(int));
    if (lt < 0 || !vsum || !vcount || rt_acc_init(&r->clip, C) || rt_acc_init(&r->video, C)) {
        snprintf(err, errlen, "evaluation: out of memory or no logits in the graph");
        free(vsum), free(vcount);
        rt_eval_free(r);
        return -1;
    }
    if (ld_start_epoch(l, 0)) {
        snprintf(err, errlen, "evaluation: out of memory while planning the clips");
        free(vsum), free(vcount);
        rt_eval_free(r);
        return -1;
    }
    /* b: the batch of this forward pass, staged; nx: the next one, staged while it runs (rt_stage_input: on the CUDA
     * backend, attached by the caller with prefetch_inputs, it goes up on a stream of its own) */
    const ld_batch *b = ld_next(l), *nx = NULL;
    double loss = 0;
    int rc = b && rt_stage_batch(ev, b, err, errlen) ? -1 : 0;
    while (b && !rc) {
        if (rt_take_inputs(ev, err, errlen)) {
            rc = -1;
            break;
        }
        rt_run_forward(ev, fwd);
        nx = ld_next(l);
        if (nx && rt_stage_batch(ev, nx, err, errlen)) {
            rc = -1;
            break;
        }
        /* the logits back: waits for the pass, and so for the batch's upload and the next one's */
        if (ev->dev && rt_cuda_download_tensor(ev, lt, err, errlen)) {
            rc = -1;
            break;
        }
        const float *lg = rt_ptr(ev, lt);
        for (int i = 0; i < b->count; i++) {
            if (!b->valid[i] || b->labels[i] < 0 || b->labels[i] >= C) {
                r->bad_clips++;
                continue;
            }
            const float *x = lg + (size_t)i * C;
            const int y = (int)b->labels[i];
            double mx = -INFINITY, s = 0;
            for (int c = 0; c < C; c++) mx = fmax(mx, x[c]);
            for (int c = 0; c < C; c++) s += exp(x[c] - mx);
            loss += mx + log(s) - x[y];
            rt_acc_add(&r->clip, x, y);
            for (int c = 0; c < C; c++) vsum[(size_t)b->video[i] * C + c] += x[c];
            vcount[b->video[i]]++;
            r->clips++;
        }
        ld_release(l, b);
        b = nx, nx = NULL;
    }
    if (rc) {  /* what is held, handed back once no copy reads it */
        rt_drop_inputs(ev);
        if (b) ld_release(l, b);
        if (nx) ld_release(l, nx);
        free(vsum), free(vcount);
        rt_eval_free(r);
        return -1;
    }
    r->video_logits = calloc((size_t)NV * C, sizeof(float));
    r->video_clips = vcount;
    if (!r->video_logits) {
        snprintf(err, errlen, "evaluation: out of memory");
        free(vsum);
        rt_eval_free(r);
        return -1;
    }
    for (int v = 0; v < NV; v++) {
        if (!vcount[v]) continue;
        float *mean = r->video_logits + (size_t)v * C;
        for (int c = 0; c < C; c++) mean[c] = (float)(vsum[(size_t)v * C + c] / vcount[v]);
        if (ld_video_label(l, v) < C) rt_acc_add(&r->video, mean, ld_video_label(l, v));
        r->videos++;
    }
    r->loss = r->clips ? loss / r->clips : 0;
    free(vsum);
    return 0;
}

void rt_eval_free(rt_eval_result *r) {
    rt_acc_free(&r->clip);
    rt_acc_free(&r->video);
    free(r->video_logits);
    free(r->video_clips);
    r->video_logits = NULL, r->video_clips = NULL;
}
