/* classify: a trained configuration applied to video files, what a deployed model does (`NAME-infer VIDEO...`,
 * `avgen classify`). Each video is decoded as `avgen prep --raw` prepares one (frames at the configuration's
 * rate and size, 16 kHz mono audio; runtime/media.h) into a temporary prepared folder, and its clips go through
 * the same loader and eval-mode forward as `avgen eval` (every non-overlapping clip; a video shorter than a
 * clip gives one padded clip): a video's prediction is the mean of its clips' logits, its probabilities their
 * softmax. The answers are named by the class names of the run (RUN/classes.json, written by the training
 * loop) or of a prepared folder. Videos go through in rounds (decoded, classified, their files removed), so
 * the temporary folder holds a round's frames at most; it is removed at the end, on SIGINT, SIGTERM and SIGHUP
 * (blocked in every thread meanwhile and taken by a thread of classify's; one ignored at the start stays
 * ignored), when the answers cannot be written (SIGPIPE is ignored meanwhile: a reader gone fails the write),
 * and, when a run was killed outright, by the next run on the same machine. One call at a time in a process
 * (the signal thread). Needs FFmpeg: not in the runtime-only build. */
#ifndef AVGEN_CLASSIFY_H
#define AVGEN_CLASSIFY_H
#include <stdint.h>
#include <stdio.h>

#include "rt_model.h"
#include "rt_run.h"

typedef struct {
    const avgen_graph *g;      /* the inference (eval-mode) graph */
    const avgen_consts *k;
    rt_phase_fn forward;       /* its generated forward; NULL: the graph interpreted */
    const char *name;          /* the configuration's name */
    const char *prog;          /* what messages on stderr start with ("avgen classify", "NAME-infer") */
    const char *checkpoint;    /* a run folder (best.safetensors, else the latest checkpoint) or a checkpoint file */
    const char *weights;       /* the backbone's safetensors; NULL: initialised from seed, as training without them */
    const char *classes;       /* a run folder (classes.json) or a prepared folder (manifest.jsonl) naming the classes;
                                * NULL: the checkpoint's folder */
    uint64_t seed;
    int frames, stride;        /* T and the frame stride */
    int fps;                   /* the prepared frame rate of the configuration (video.fps) */
    int quality;               /* the frames stored as avgen prep does: JPEG at this qscale (2..31; prep's default 3),
                                * or 0: raw (prep --raw); as the data the run was trained on, for the same inputs */
    int audio_rows, mel_bins;
    double window_seconds, norm_mean, norm_std;
    int top;                   /* classes listed a video (at most the head's) */
    int json;                  /* one JSON object on out instead of a line a video */
    int threads;               /* decoding and loader threads (>= 1) */
    const rt_backend_opts *backend;
    const char *const *videos;
    int n_videos;
} rt_classify_cfg;

/* Classifies cfg->videos and prints the answers to out, in the order given. A video that cannot be classified
 * (missing, unreadable, no sound for a model that listens) is named on stderr in one sentence and in the
 * output, and the others are still classified. 0 when every video was classified; 2 when some was not (err
 * says how many) or the input was refused (checkpoint, weights, options); 1 on a failure while working. */
int rt_classify(const rt_classify_cfg *cfg, FILE *out, char *err, size_t errlen);
#endif
