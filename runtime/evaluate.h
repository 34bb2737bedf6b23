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
    /* per selected video of the loader (ld_videos of them, in its order): the mean of its clips' logits
     * [videos x classes], and how many clips went into it (0: none could be read, its row is 0) */
    float *video_logits;
    int *video_clips;
} rt_eval_result;

/* The batch's inputs the context's graph has (frames, audio, labels) staged for the step or pass that takes them
 * (rt_stage_input): on a CUDA context attached with prefetch_inputs they go up at once, from the loader's
 * page-locked buffers, on a stream of their own. The batch goes back to the loader after a synchronisation that
 * follows the take (its own step's loss or logits download). 0, or -1 with err. */
int rt_stage_batch(avgen_ctx *c, const ld_batch *b, char *err, size_t errlen);
/* Runs epoch 0 of an evaluation loader (train = 0) through the eval graph; fwd NULL interprets it. */
int rt_evaluate(avgen_ctx *ev, rt_phase_fn fwd, ld_loader *l, rt_eval_result *r, char *err, size_t errlen);
void rt_eval_free(rt_eval_result *r);
#endif
