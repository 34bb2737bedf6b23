/* metrics: top-1 / top-5 accuracy, per-class accuracy and the confusion matrix of a classifier's logits,
 * at clip level and at video level (a video's prediction is the mean of its clips' logits, DATA.md), and
 * the matrix as CSV and as a PNG heatmap (written through libavcodec's PNG encoder). */
#ifndef AVGEN_METRICS_H
#define AVGEN_METRICS_H
#include <stdint.h>

typedef struct {
    int classes;
    int64_t n, top1, top5;
    int64_t *confusion;       /* [true class][predicted class] */
} rt_acc;

int rt_acc_init(rt_acc *a, int classes);          /* 0, or -1 out of memory */
void rt_acc_add(rt_acc *a, const float *logits, int label);
double rt_acc_top1(const rt_acc *a);
double rt_acc_top5(const rt_acc *a);
double rt_acc_class(const rt_acc *a, int c);     /* recall of class c; -1 when it has no example */
void rt_acc_free(rt_acc *a);

/* "true\pred,0,1,...\n" rows of counts. 0 or -1. */
int rt_acc_write_csv(const rt_acc *a, const char *path);
/* A heatmap of the row-normalised matrix (white = 0, dark blue = 1), cell pixels a side. 0 or -1. Not in a build
 * without FFmpeg (AVGEN_NO_FFMPEG: the runtime-only build). */
int rt_acc_write_png(const rt_acc *a, const char *path, int cell);
#endif
