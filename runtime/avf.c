/* avf.c: prepared-video files (see avf.h); JPEG through libavcodec's mjpeg encoder and decoder. Built with
 * AVGEN_NO_FFMPEG (the runtime-only build of the GPU machine, which has no FFmpeg): raw frames only, and a file of
 * JPEG frames is refused when opened. */
#include "avf.h"

#include <errno.h>
#include <fcntl.h>
#if !defined(AVGEN_NO_FFMPEG)
#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libswscale/swscale.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const char k_magic[8] = {'A', 'V', 'G', 'E', 'N', 'F', '1', '\n'};

struct avf_writer {
    FILE *f;
    char path[2048], tmp[2100];
    int size, fps_num, fps_den, codec, quality;
    uint64_t *offsets;
    uint32_t *sums;
    int frames, cap;
    uint64_t pos;
#if !defined(AVGEN_NO_FFMPEG)
    AVCodecContext *enc;
    struct SwsContext *sws;
    AVFrame *yuv;
    AVPacket *pkt;
#endif
};

uint32_t avf_checksum(const void *data, size_t n) {
    const uint8_t *p = data;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

avf_writer *avf_writer_open(const char *path, int size, int fps_num, int fps_den, int codec, int quality, char *err,
                            size_t errlen) {
#if defined(AVGEN_NO_FFMPEG)
    if (codec == AVF_JPEG) {
        snprintf(err, errlen, "JPEG frames need FFmpeg, which this build does not have; store them raw");
        return NULL;
    }
#endif
    avf_writer *w = calloc(1, sizeof *w);
    if (!w) { snprintf(err, errlen, "out of memory"); return NULL; }
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld.%lx", path, (long)getpid(), (unsigned long)pthread_self());
    w->size = size, w->fps_num = fps_num, w->fps_den = fps_den, w->codec = codec, w->quality = quality;
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        snprintf(err, errlen, "cannot create %s (%s)", w->tmp, strerror(errno));
        free(w);
        return NULL;
    }
    uint8_t hdr[AVF_HEADER_BYTES] = {0};
    fwrite(hdr, 1, sizeof hdr, w->f); /* the real header is written last */
    w->pos = AVF_HEADER_BYTES;
#if !defined(AVGEN_NO_FFMPEG)
    if (codec == AVF_JPEG) {
        const AVCodec *c = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
        w->enc = c ? avcodec_alloc_context3(c) : NULL;
        w->yuv = av_frame_alloc();
        w->pkt = av_packet_alloc();
        if (!w->enc || !w->yuv || !w->pkt) {
            snprintf(err, errlen, "this FFmpeg has no MJPEG encoder");
            avf_writer_abort(w);
            return NULL;
        }
        w->enc->width = w->enc->height = size;
        w->enc->pix_fmt = AV_PIX_FMT_YUVJ420P;
        w->enc->time_base = (AVRational){fps_den, fps_num};
        w->enc->flags |= AV_CODEC_FLAG_QSCALE;
        w->enc->global_quality = FF_QP2LAMBDA * quality;
        w->enc->thread_count = 1;
        w->yuv->format = AV_PIX_FMT_YUVJ420P, w->yuv->width = w->yuv->height = size;
        /* RGB -> full-range YUV 4:2:0 (what JPEG stores; YUVJ420P is the same layout) */
        w->sws = sws_getContext(size, size, AV_PIX_FMT_RGB24, size, size, AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
        if (w->sws) {
            const int *coef = sws_getCoefficients(SWS_CS_ITU601);
            sws_setColorspaceDetails(w->sws, coef, 1, coef, 1, 0, 1 << 16, 1 << 16);
        }
        if (avcodec_open2(w->enc, c, NULL) < 0 || av_frame_get_buffer(w->yuv, 0) < 0 || !w->sws) {
            snprintf(err, errlen, "cannot open the MJPEG encoder");
            avf_writer_abort(w);
            return NULL;
        }
    }
#endif
    return w;
}

static int append(avf_writer *w, const void *data, size_t n) {
    if (w->frames + 2 > w->cap) {
        int cap = w->cap ? w->cap * 2 : 256;
        uint64_t *o = realloc(w->offsets, sizeof(uint64_t) * (size_t)cap);
        if (!o) return -1;
        w->offsets = o;
        uint32_t *su = realloc(w->sums, sizeof(uint32_t) * (size_t)cap);
        if (!su) return -1;
        w->sums = su, w->cap = cap;
    }
    w->sums[w->frames] = avf_checksum(data, n);
    w->offsets[w->frames++] = w->pos;
    if (fwrite(data, 1, n, w->f) != n) return -1;
    w->pos += n;
    return 0;
}

int avf_writer_frame(avf_writer *w, const uint8_t *rgb) {
    if (w->codec == AVF_RAW) return append(w, rgb, (size_t)3 * w->size * w->size);
#if defined(AVGEN_NO_FFMPEG)
    return -1;
#else
    if (av_frame_make_writable(w->yuv) < 0) return -1;
    const uint8_t *src[4] = {rgb, NULL, NULL, NULL};
    int stride[4] = {3 * w->size, 0, 0, 0};
    sws_scale(w->sws, src, stride, 0, w->size, w->yuv->data, w->yuv->linesize);
    w->yuv->quality = w->enc->global_quality;
    w->yuv->pts = w->frames;
    if (avcodec_send_frame(w->enc, w->yuv) < 0) return -1;
    int rc = -1;
    while (avcodec_receive_packet(w->enc, w->pkt) >= 0) {
        rc = append(w, w->pkt->data, (size_t)w->pkt->size);
        av_packet_unref(w->pkt);
    }
    return rc;
#endif
}

static void free_writer(avf_writer *w) {
    if (w->f) fclose(w->f);
#if !defined(AVGEN_NO_FFMPEG)
    avcodec_free_context(&w->enc);
    av_frame_free(&w->yuv);
    av_packet_free(&w->pkt);
    sws_freeContext(w->sws);
#endif
    free(w->offsets);
    free(w->sums);
    free(w);
}

void avf_writer_abort(avf_writer *w) {
    if (!w) return;
    if (w->f) fclose(w->f), w->f = NULL;
    unlink(w->tmp);
    free_writer(w);
}

int avf_writer_finish(avf_writer *w, const float *audio, int64_t samples, int sample_rate, char *err, size_t errlen) {
    if (w->frames == 0) {
        snprintf(err, errlen, "%s: no frames were written", w->path);
        avf_writer_abort(w);
        return -1;
    }
    /* append() keeps room for one more offset: the end of the last payload goes there */
    w->offsets[w->frames] = w->pos;
    /* index and audio, each aligned to 8 bytes */
    static const uint8_t zeros[8] = {0};
    uint64_t index_off = (w->pos + 7) / 8 * 8;
    if (fwrite(zeros, 1, (size_t)(index_off - w->pos), w->f) != index_off - w->pos) goto fail;
    w->pos = index_off;
    if (fwrite(w->offsets, sizeof(uint64_t), (size_t)w->frames + 1, w->f) != (size_t)w->frames + 1) goto fail;
    w->pos += sizeof(uint64_t) * ((size_t)w->frames + 1);
    if (fwrite(w->sums, sizeof(uint32_t), (size_t)w->frames, w->f) != (size_t)w->frames) goto fail;
    w->pos += sizeof(uint32_t) * (size_t)w->frames;
    uint64_t audio_off = (w->pos + 7) / 8 * 8;
    if (fwrite(zeros, 1, (size_t)(audio_off - w->pos), w->f) != audio_off - w->pos) goto fail;
    if (samples > 0 && fwrite(audio, sizeof(float), (size_t)samples, w->f) != (size_t)samples) goto fail;
    double mean = 0;
    for (int64_t i = 0; i < samples; i++) mean += audio[i];
    mean = samples > 0 ? mean / samples : 0;
    uint8_t hdr[AVF_HEADER_BYTES] = {0};
    memcpy(hdr, k_magic, 8);
    put32(hdr + 8, 1);
    put32(hdr + 12, (uint32_t)w->size);
    put32(hdr + 16, (uint32_t)w->frames);
    put32(hdr + 20, (uint32_t)w->fps_num);
    put32(hdr + 24, (uint32_t)w->fps_den);
    put32(hdr + 28, (uint32_t)sample_rate);
    put32(hdr + 32, (uint32_t)w->codec);
    put32(hdr + 36, (uint32_t)w->quality);
    put64(hdr + 40, (uint64_t)samples);
    memcpy(hdr + 48, &mean, 8);
    put64(hdr + 56, index_off);
    put64(hdr + 64, audio_off);
    put32(hdr + 72, samples > 0 ? avf_checksum(audio, sizeof(float) * (size_t)samples) : 0);
    if (fseek(w->f, 0, SEEK_SET) || fwrite(hdr, 1, sizeof hdr, w->f) != sizeof hdr || fflush(w->f) || fsync(fileno(w->f)))
        goto fail;
    if (fclose(w->f)) { w->f = NULL; goto fail; }
    w->f = NULL;
    if (rename(w->tmp, w->path)) goto fail;
    free_writer(w);
    return 0;
fail:
    snprintf(err, errlen, "cannot write %s (%s)", w->path, strerror(errno));
    avf_writer_abort(w);
    return -1;
}

/* --------------------------------------------------------------------------------------------- reading */

int avf_header_counts(const char *path, int64_t *frames, int64_t *samples) {
    uint8_t h[AVF_HEADER_BYTES];
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    const size_t n = fread(h, 1, sizeof h, fp);
    fclose(fp);
    if (n != sizeof h || memcmp(h, k_magic, 8) || get32(h + 8) != 1) return -1;
    const uint64_t sa = get64(h + 40);
    *frames = get32(h + 16), *samples = sa > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)sa;
    return 0;
}

int avf_open(const char *path, avf_file *f, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < AVF_HEADER_BYTES) {
        snprintf(err, errlen, "%s: not a prepared video (too short)", path);
        close(fd);
        return -1;
    }
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        snprintf(err, errlen, "%s: cannot map (%s)", path, strerror(errno));
        return -1;
    }
    const uint8_t *b = m;
    f->base = b, f->file_bytes = (size_t)st.st_size;
    const char *why = NULL;
    if (memcmp(b, k_magic, 8)) why = "not a prepared video (bad magic)";
    else if (get32(b + 8) != 1) why = "unsupported version";
    if (!why) {
        f->size = (int)get32(b + 12), f->frames = (int)get32(b + 16), f->fps_num = (int)get32(b + 20);
        f->fps_den = (int)get32(b + 24), f->sample_rate = (int)get32(b + 28), f->codec = (int)get32(b + 32);
        f->quality = (int)get32(b + 36), f->samples = (int64_t)get64(b + 40);
        memcpy(&f->audio_mean, b + 48, 8);
        uint64_t io = get64(b + 56), ao = get64(b + 64), n = f->file_bytes;
        if (f->size <= 0 || f->size > 8192 || f->frames <= 0 || f->fps_num <= 0 || f->fps_den <= 0 || f->codec > 1)
            why = "corrupt header";
        else if (io < AVF_HEADER_BYTES || io > n || n - io < 8 * ((uint64_t)f->frames + 1) + 4 * (uint64_t)f->frames ||
                 ao % 4 || ao > n ||
                 (n - ao) / 4 < (uint64_t)f->samples)
            why = "truncated (index or audio beyond the end of the file)";
        else {
            f->offsets = (const uint64_t *)(b + io); /* io is a multiple of 8 by construction: check below */
            f->checksums = (const uint32_t *)(b + io + 8 * ((uint64_t)f->frames + 1));
            if (io % 8) why = "corrupt index alignment";
            for (int k = 0; !why && k < f->frames; k++) {
                uint64_t a = f->offsets[k], z = f->offsets[k + 1];
                if (a < AVF_HEADER_BYTES || z < a || z > io) why = "corrupt frame index";
                else if (f->codec == AVF_RAW && z - a != (uint64_t)3 * f->size * f->size) why = "corrupt raw frame size";
            }
            f->audio = (const float *)(b + ao);
            if (!why && f->samples > 0 && avf_checksum(f->audio, sizeof(float) * (size_t)f->samples) != get32(b + 72))
                why = "the audio track is damaged (checksum mismatch)";
#if defined(AVGEN_NO_FFMPEG)
            if (!why && f->codec == AVF_JPEG)
                why = "its frames are JPEG, which this build (without FFmpeg) cannot decode; prepare the data with "
                      "avgen prep --raw";
#endif
        }
    }
    if (why) {
        snprintf(err, errlen, "%s: %s", path, why);
        munmap(m, f->file_bytes);
        memset(f, 0, sizeof *f);
        return -1;
    }
    return 0;
}

void avf_close(avf_file *f) {
    if (f->base) munmap((void *)f->base, f->file_bytes);
    memset(f, 0, sizeof *f);
}

#if defined(AVGEN_NO_FFMPEG)
struct avf_decoder {
    int unused;
};

avf_decoder *avf_decoder_new(void) { return calloc(1, sizeof(avf_decoder)); }

void avf_decoder_free(avf_decoder *d) { free(d); }
#else
struct avf_decoder {
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    struct SwsContext *sws;
};

avf_decoder *avf_decoder_new(void) {
    avf_decoder *d = calloc(1, sizeof *d);
    const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_MJPEG);
    if (!d || !c) { free(d); return NULL; }
    d->dec = avcodec_alloc_context3(c);
    d->pkt = av_packet_alloc();
    d->frame = av_frame_alloc();
    if (!d->dec || !d->pkt || !d->frame) { avf_decoder_free(d); return NULL; }
    d->dec->thread_count = 1;
    if (avcodec_open2(d->dec, c, NULL) < 0) { avf_decoder_free(d); return NULL; }
    return d;
}

void avf_decoder_free(avf_decoder *d) {
    if (!d) return;
    avcodec_free_context(&d->dec);
    av_packet_free(&d->pkt);
    av_frame_free(&d->frame);
    sws_freeContext(d->sws);
    free(d);
}
#endif

int avf_read_frame(avf_decoder *d, const avf_file *f, int k, uint8_t *rgb) {
    if (k < 0 || k >= f->frames) return -1;
    const uint8_t *p = f->base + f->offsets[k];
    const size_t n = (size_t)(f->offsets[k + 1] - f->offsets[k]);
    if (avf_checksum(p, n) != f->checksums[k]) return -1;
    if (f->codec == AVF_RAW) {
        memcpy(rgb, p, n);
        return 0;
    }
#if defined(AVGEN_NO_FFMPEG)
    (void)d;
    return -1;
#else
    /* av_packet_from_data would take ownership: copy into a padded buffer instead */
    if (av_new_packet(d->pkt, (int)n) < 0) return -1;
    memcpy(d->pkt->data, p, n);
    int rc = avcodec_send_packet(d->dec, d->pkt);
    av_packet_unref(d->pkt);
    if (rc < 0 || avcodec_receive_frame(d->dec, d->frame) < 0) {
        avcodec_flush_buffers(d->dec);
        return -1;
    }
    AVFrame *fr = d->frame;
    if (fr->width != f->size || fr->height != f->size) {
        av_frame_unref(fr);
        return -1;
    }
    int full = fr->format == AV_PIX_FMT_YUVJ420P || fr->color_range == AVCOL_RANGE_JPEG;
    enum AVPixelFormat src = fr->format == AV_PIX_FMT_YUVJ420P ? AV_PIX_FMT_YUV420P : fr->format;
    d->sws = sws_getCachedContext(d->sws, fr->width, fr->height, src, f->size, f->size, AV_PIX_FMT_RGB24, SWS_BILINEAR,
                                  NULL, NULL, NULL);
    if (!d->sws) { av_frame_unref(fr); return -1; }
    const int *coef = sws_getCoefficients(SWS_CS_ITU601);
    sws_setColorspaceDetails(d->sws, coef, full, coef, 1, 0, 1 << 16, 1 << 16);
    uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
    int stride[4] = {3 * f->size, 0, 0, 0};
    sws_scale(d->sws, (const uint8_t *const *)fr->data, fr->linesize, 0, fr->height, dst, stride);
    av_frame_unref(fr);
    return 0;
#endif
}
