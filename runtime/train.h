/* train: the training loop around a generated graph: epochs of shuffled clips from the loader, gradient
 * accumulation, Adam/AdamW with warm-up then a constant, cosine or step schedule (adapters at train.lr,
 * the head at train.head_lr), validation on held-out training groups each epoch with early stopping,
 * checkpoints written atomically (resume continues to exactly the losses of an uninterrupted run), a
 * JSON-lines log and a progress bar. Used by `avgen train` (interpreted graph) and by generated
 * programs (their straight-line phase functions). */
#ifndef AVGEN_TRAIN_H
#define AVGEN_TRAIN_H
#include <stdint.h>

#include "rt_model.h"
#include "rt_run.h"

enum { RT_SCHED_CONSTANT, RT_SCHED_COSINE, RT_SCHED_STEP };

typedef struct {
    const avgen_graph *train_g, *eval_g;
    const avgen_consts *k;
    rt_phase_fn forward, backward, update, eval_forward; /* NULL: run the graph's ops in order */
    const char *data;          /* prepared folder */
    const char *run_dir;       /* checkpoints, log.jsonl, summary.json */
    const char *weights;       /* backbone safetensors, or NULL: initialised from seed (tests only) */
    const char *name;          /* the configuration's name, for the summary */
    const char *config_hash;   /* identifies everything that shapes the run but train.epochs: --resume refuses another */
    int resume;                /* continue from run_dir/checkpoint.json */
    int epochs, grad_accum, warmup, schedule, step_every;
    double step_gamma;
    int frames, stride, threads;
    int checkpoint_every;      /* optimizer steps between checkpoints (0: every epoch only) */
    int patience;              /* epochs without validation improvement before stopping (0: never) */
    int val_every;             /* validation groups: training groups with group % val_every == 0 */
    int64_t max_steps;         /* stop after this many optimizer steps (0: no limit; for tests) */
    int quiet;                 /* no progress bar */
    uint64_t seed;
    int audio_rows, mel_bins;
    double window_seconds, norm_mean, norm_std;
    int64_t trainable_params;
    /* where the steps run: NULL or backend "cpu": the CPU backend; "cuda" (or "auto" with a usable GPU): the
     * CUDA backend at its precision, which keeps parameters, gradients and optimizer state on the device
     * and brings back only the loss, the gradient norm and, for checkpoints and validation, the state */
    const rt_backend_opts *backend;
} rt_train_cfg;

/* 0 done, 1 failure (I/O), 2 bad input (data, weights), 3 stopped on a non-finite loss. err: one sentence. */
int rt_train(const rt_train_cfg *cfg, char *err, size_t errlen);

/* The learning-rate multiplier after `step` optimizer steps (0-based) of `total`, with `per_epoch` steps an
 * epoch: linear warm-up over cfg->warmup steps from 1/warmup to 1, then constant, cosine to 0 at `total`,
 * or step_gamma^(epoch / step_every). */
double rt_lr_multiplier(const rt_train_cfg *cfg, int64_t step, int64_t total, int64_t per_epoch);

/* Copies every parameter and buffer present in both contexts by name (training -> evaluation). */
void rt_copy_params(avgen_ctx *dst, const avgen_ctx *src);
/* Loads trainable parameters, Adam moments and BatchNorm buffers from a checkpoint file. 0, or -1 with err. */
int rt_load_checkpoint(avgen_ctx *c, const char *path, char *err, size_t errlen);
/* The checkpoint file that a --checkpoint argument names: for a run folder its best.safetensors, else the latest
 * checkpoint its checkpoint.json points to; any other path as it is. 0, or 2 with err (a folder with neither). */
int rt_checkpoint_path(const char *arg, char *path, size_t n, char *err, size_t errlen);
#endif
