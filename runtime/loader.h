/* loader: clips from a prepared folder (avgen prep) as batches for the training step. Worker threads
 * decode clips (T frames at a stride; JPEG frames by random access, no decoding from the start) and
 * compute each frame's 1 s audio window as a normalised fbank [A, M] into a ring of reusable host
 * buffers, ahead of the consumer. Batches come out in a fixed order that depends only on the seed and
 * the epoch, never on thread timing.
 *
 * Clips. Training: each epoch visits every selected video once in a shuffled order, one clip per
 * video at a uniformly random start. Evaluation: every non-overlapping clip of every video in manifest
 * order. A clip spans (T - 1) * stride + 1 frames; a video shorter than that gives one clip from frame
 * 0 with its last frame repeated (counted as padded). Frame t of a clip is paired with the window
 * centred on its timestamp (sample round(frame * 16000 / fps)).
 * Validation groups: with holdout = LD_TRAIN_ONLY / LD_VAL_ONLY the training split's groups g with
 * g % val_every == 0 are held out (UCF101 split 1, val_every 5: g10, g15, g20, g25). */
#ifndef AVGEN_LOADER_H
#define AVGEN_LOADER_H
#include <stddef.h>
#include <stdint.h>

enum { LD_ALL, LD_TRAIN_ONLY, LD_VAL_ONLY };

typedef struct {
    const char *dir;          /* prepared folder */
    const char *split;        /* "train" or "test" */
    int holdout;              /* LD_ALL, LD_TRAIN_ONLY (train minus validation groups), LD_VAL_ONLY */
    int val_every;            /* validation groups: group % val_every == 0 (default 5) */
    int frames, stride;       /* T and the frame stride */
    int batch;                /* B */
    int train;                /* 1: shuffled, random starts; 0: every clip in order */
    uint64_t seed;
    int threads;              /* worker threads (>= 1) */
    int ring;                 /* batch buffers (>= 2) */
    int audio_rows, mel_bins; /* A, M */
    double window_seconds, norm_mean, norm_std;
    /* the batches' frames, audio and labels buffers (NULL: malloc and free): page-locked memory, for a CUDA
     * backend that uploads them straight from there (rt_cuda_host_alloc; it may fall back to malloc itself) */
    void *(*host_alloc)(size_t bytes);
    void (*host_free)(void *p);
} ld_config;

typedef struct {
    uint8_t *frames;          /* [B, T, S, S, 3] */
    float *audio;             /* [B, T, A, M] */
    int64_t *labels;          /* [B] */
    int32_t *video;           /* [B] index into the manifest's selected videos */
    int32_t *start;           /* [B] first frame of each clip */
    uint8_t *valid;           /* [B] 0 for a clip that could not be read (corrupt) or batch padding */
    int count;                /* clips in this batch (the last evaluation batch may be short) */
    int64_t index;            /* batch number within the epoch */
} ld_batch;

typedef struct {
    int64_t clips, padded_clips, corrupt_frames, bad_clips;
    double wait_seconds;      /* consumer time blocked on workers */
} ld_stats;

typedef struct ld_loader ld_loader;

/* Reads the manifest (videos with a prepared output and a label), checks the prepared size against the
 * first file. NULL with err (one sentence) on failure, among them a row with impossible values (a label
 * outside the manifest's classes, more frames or samples than its prepared file's header holds, a negative
 * count, group or clip; see read_manifest in loader.c). */
ld_loader *ld_open(const ld_config *cfg, char *err, size_t errlen);
int ld_size(const ld_loader *l);             /* S of the prepared frames */
int ld_videos(const ld_loader *l);           /* selected videos */
const char *ld_video_name(const ld_loader *l, int i);
int ld_video_label(const ld_loader *l, int i);
int ld_classes(const ld_loader *l);          /* 1 + the largest label in the manifest */
int64_t ld_batches_per_epoch(const ld_loader *l);
/* Starts epoch e (0, 1, ...): plans its clips and wakes the workers. */
int ld_start_epoch(ld_loader *l, int64_t epoch);
/* The next batch of the current epoch, or NULL at its end. Blocks until the workers have it. */
const ld_batch *ld_next(ld_loader *l);
/* Gives the last batch's buffer back to the workers. With AVGEN_LOADER_SCRIBBLE=1 in the environment (a test
 * hook) its frames, audio and labels are overwritten at once, so that a reader still using them shows. */
void ld_release(ld_loader *l, const ld_batch *b);
ld_stats ld_get_stats(const ld_loader *l);
void ld_close(ld_loader *l);

/* The class names of a prepared folder by label (its manifest's "class" of each "label" >= 0): names[l] for
 * l < n, "" where no row names label l. The number of labels named, or -1 when dir has no readable
 * manifest.jsonl. */
int ld_class_names(const char *dir, char (*names)[128], int n);
#endif
