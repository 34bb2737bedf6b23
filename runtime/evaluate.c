/* evaluate.c: see evaluate.h. */
#include "evaluate.h"

#include "rt_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A batch's frames and audio (tensors ft, at; -1: absent) staged for the pass that takes them. 0, or -1 with err. */
static int stage(avgen_ctx *ev, const ld_batch *b, int ft, int at, char *err, size_t errlen) {
    return (ft >= 0 && rt_stage_input(ev, ft, b->frames, err, errlen)) || (at >= 0 && rt_stage_input(ev, at, b->audio, err, errlen))
               ? -1
               : 0;
}

int rt_evaluate(avgen_ctx *ev, rt_phase_fn fwd, ld_loader *l, rt_eval_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    const int C = ev->k->classes, NV = ld_videos(l);
    int lt = rt_find(ev->g, "logits"), ft = rt_find(ev->g, "frames"), at = rt_find(ev->g, "audio");
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
    int rc = b && stage(ev, b, ft, at, err, errlen) ? -1 : 0;
    while (b && !rc) {
        if (rt_take_inputs(ev, err, errlen)) {
            rc = -1;
            break;
        }
        rt_run_forward(ev, fwd);
        nx = ld_next(l);
        if (nx && stage(ev, nx, ft, at, err, errlen)) {
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
        char e2[64];
        if (ev->dev) rt_cuda_sync(ev, e2, sizeof e2);
        if (b) ld_release(l, b);
        if (nx) ld_release(l, nx);
        rt_drop_inputs(ev);
        free(vsum), free(vcount);
        rt_eval_free(r);
        return -1;
    }
    float *mean = malloc(sizeof(float) * (size_t)C);
    for (int v = 0; v < NV && mean; v++) {
        if (!vcount[v]) continue;
        for (int c = 0; c < C; c++) mean[c] = (float)(vsum[(size_t)v * C + c] / vcount[v]);
        if (ld_video_label(l, v) < C) rt_acc_add(&r->video, mean, ld_video_label(l, v));
        r->videos++;
    }
    free(mean);
    r->loss = r->clips ? loss / r->clips : 0;
    free(vsum);
    free(vcount);
    return 0;
}

void rt_eval_free(rt_eval_result *r) {
    rt_acc_free(&r->clip);
    rt_acc_free(&r->video);
}
