/* evaluate: an eval-mode forward over every clip a loader gives, with clip-level and video-level
 * accuracy (a video's prediction is the mean of its clips' logits) and the mean cross-entropy. */
#ifndef AVGEN_EVALUATE_H
#define AVGEN_EVALUATE_H
#include <stddef.h>
#include <stdint.h>

#include "loader.h"
#include "metrics.h"
#include "rt_model.h"

typedef struct {
    double loss;              /* mean clip cross-entropy */
    rt_acc clip, video;
    int64_t clips, bad_clips;
    int videos;
} rt_eval_result;

/* Runs epoch 0 of an evaluation loader (train = 0) through the eval graph; fwd NULL interprets it. */
int rt_evaluate(avgen_ctx *ev, rt_phase_fn fwd, ld_loader *l, rt_eval_result *r, char *err, size_t errlen);
void rt_eval_free(rt_eval_result *r);
#endif
