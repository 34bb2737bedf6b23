/* metrics.c: accuracy bookkeeping and the confusion matrix files. */
#include "metrics.h"
#include "rt_fs.h"

#if !defined(AVGEN_NO_FFMPEG)
#include <libavcodec/avcodec.h>
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int rt_acc_init(rt_acc *a, int classes) {
    memset(a, 0, sizeof *a);
    a->classes = classes;
    a->confusion = calloc((size_t)classes * classes, sizeof(int64_t));
    return a->confusion ? 0 : -1;
}

void rt_acc_add(rt_acc *a, const float *logits, int label) {
    const int C = a->classes;
    int best = 0, rank = 0;
    for (int c = 1; c < C; c++)
        if (logits[c] > logits[best]) best = c;
    /* rank of the true class: how many classes score strictly higher (ties favour the true class) or cannot be
     * compared with it (a NaN on either side: a broken output never counts as right) */
    for (int c = 0; c < C; c++) rank += c != label && !(logits[c] <= logits[label]);
    a->n++;
    a->top1 += rank == 0;
    a->top5 += rank < 5;
    a->confusion[(size_t)label * C + best]++;
}

double rt_acc_top1(const rt_acc *a) { return a->n ? (double)a->top1 / a->n : 0; }
double rt_acc_top5(const rt_acc *a) { return a->n ? (double)a->top5 / a->n : 0; }

double rt_acc_class(const rt_acc *a, int c) {
    int64_t tot = 0;
    for (int p = 0; p < a->classes; p++) tot += a->confusion[(size_t)c * a->classes + p];
    return tot ? (double)a->confusion[(size_t)c * a->classes + c] / tot : -1;
}

void rt_acc_free(rt_acc *a) {
    free(a->confusion);
    a->confusion = NULL;
}

/* Files are written to PATH.tmp and renamed: a reader never sees half of one. */
static int finish(FILE *f, const char *tmp, const char *path, int ok) {
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (ok && rt_not_replaceable(path)) ok = 0, errno = EEXIST;
    if (!ok || rename(tmp, path)) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

int rt_acc_write_csv(const rt_acc *a, const char *path) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "true\\pred");
    for (int c = 0; c < a->classes; c++) fprintf(f, ",%d", c);
    fputc('\n', f);
    for (int r = 0; r < a->classes; r++) {
        fprintf(f, "%d", r);
        for (int c = 0; c < a->classes; c++) fprintf(f, ",%lld", (long long)a->confusion[(size_t)r * a->classes + c]);
        fputc('\n', f);
    }
    return finish(f, tmp, path, !ferror(f));
}

#if !defined(AVGEN_NO_FFMPEG) /* (avgen eval's; the runtime-only build has no FFmpeg and no avgen) */
int rt_acc_write_png(const rt_acc *a, const char *path, int cell) {
    const int C = a->classes, W = C * cell + 1, H = C * cell + 1;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_PNG);
    AVCodecContext *ctx = codec ? avcodec_alloc_context3(codec) : NULL;
    AVFrame *fr = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    int rc = -1;
    if (!ctx || !fr || !pkt) goto done;
    ctx->width = W, ctx->height = H, ctx->pix_fmt = AV_PIX_FMT_RGB24, ctx->time_base = (AVRational){1, 1};
    if (avcodec_open2(ctx, codec, NULL) < 0) goto done;
    fr->format = AV_PIX_FMT_RGB24, fr->width = W, fr->height = H;
    if (av_frame_get_buffer(fr, 0) < 0) goto done;
    for (int y = 0; y < H; y++) {
        uint8_t *row = fr->data[0] + (size_t)y * fr->linesize[0];
        for (int x = 0; x < W; x++) {
            uint8_t *p = row + 3 * x;
            if (x % cell == 0 || y % cell == 0) { /* grid */
                p[0] = p[1] = p[2] = 200;
                continue;
            }
            int r = y / cell, c = x / cell;
            int64_t tot = 0;
            for (int k = 0; k < C; k++) tot += a->confusion[(size_t)r * C + k];
            double v = tot ? (double)a->confusion[(size_t)r * C + c] / tot : 0;
            p[0] = (uint8_t)(255 - 225 * v), p[1] = (uint8_t)(255 - 200 * v), p[2] = (uint8_t)(255 - 90 * v);
        }
    }
    if (avcodec_send_frame(ctx, fr) < 0 || avcodec_send_frame(ctx, NULL) < 0) goto done;
    if (avcodec_receive_packet(ctx, pkt) < 0) goto done;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) goto done;
    rc = finish(f, tmp, path, fwrite(pkt->data, 1, (size_t)pkt->size, f) == (size_t)pkt->size);
done:
    av_packet_free(&pkt);
    av_frame_free(&fr);
    avcodec_free_context(&ctx);
    return rc;
}
#endif
