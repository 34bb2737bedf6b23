/* media.c: probe and decode with libavformat / libavcodec / libswscale / libswresample (FFmpeg 5.1 API).
 * One decoder thread per file: parallelism comes from decoding several files at once. */
#include "media.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *media_status_name(media_status s) {
    static const char *const n[] = {"ok", "silent", "no_audio", "unreadable"};
    return (unsigned)s < 4 ? n[s] : "?";
}

static const char *averr(int e, char *buf, size_t n) {
    av_strerror(e, buf, n);
    return buf;
}

typedef struct {
    AVFormatContext *fmt;
    AVCodecContext *vdec, *adec;
    int vs, as;
} opened;

static void close_all(opened *o) {
    avcodec_free_context(&o->vdec);
    avcodec_free_context(&o->adec);
    avformat_close_input(&o->fmt);
}

static AVCodecContext *open_decoder(AVStream *st) {
    const AVCodec *dec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!dec) return NULL;
    AVCodecContext *c = avcodec_alloc_context3(dec);
    if (!c) return NULL;
    if (avcodec_parameters_to_context(c, st->codecpar) < 0) {
        avcodec_free_context(&c);
        return NULL;
    }
    c->thread_count = 1;
    c->pkt_timebase = st->time_base;
    if (avcodec_open2(c, dec, NULL) < 0) avcodec_free_context(&c);
    return c;
}

/* Opens the file and the best video and audio streams' decoders; -1 with reason when unusable. */
static int open_file(const char *path, opened *o, char *reason, size_t n) {
    char eb[128];
    memset(o, 0, sizeof *o);
    o->vs = o->as = -1;
    int e = avformat_open_input(&o->fmt, path, NULL, NULL);
    if (e < 0) {
        snprintf(reason, n, "cannot open (%s)", averr(e, eb, sizeof eb));
        return -1;
    }
    if ((e = avformat_find_stream_info(o->fmt, NULL)) < 0) {
        snprintf(reason, n, "cannot read stream information (%s)", averr(e, eb, sizeof eb));
        close_all(o);
        return -1;
    }
    o->vs = av_find_best_stream(o->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (o->vs < 0) {
        snprintf(reason, n, "no video stream");
        close_all(o);
        return -1;
    }
    o->vdec = open_decoder(o->fmt->streams[o->vs]);
    if (!o->vdec) {
        snprintf(reason, n, "no decoder for its video codec (%s)", avcodec_get_name(o->fmt->streams[o->vs]->codecpar->codec_id));
        close_all(o);
        return -1;
    }
    o->as = av_find_best_stream(o->fmt, AVMEDIA_TYPE_AUDIO, -1, o->vs, NULL, 0);
    if (o->as >= 0) o->adec = open_decoder(o->fmt->streams[o->as]);
    return 0;
}

static double peak_of_frame(const AVFrame *f) {
    double peak = 0;
    const int ch = f->ch_layout.nb_channels, n = f->nb_samples;
    const int planar = av_sample_fmt_is_planar(f->format);
    const int nplanes = planar ? ch : 1, per = planar ? n : n * ch;
    for (int p = 0; p < nplanes; p++) {
        const uint8_t *d = f->extended_data[p];
        for (int i = 0; i < per; i++) {
            double v;
            switch (f->format) {
            case AV_SAMPLE_FMT_U8:
            case AV_SAMPLE_FMT_U8P: v = (d[i] - 128) / 128.0; break;
            case AV_SAMPLE_FMT_S16:
            case AV_SAMPLE_FMT_S16P: v = ((const int16_t *)d)[i] / 32768.0; break;
            case AV_SAMPLE_FMT_S32:
            case AV_SAMPLE_FMT_S32P: v = ((const int32_t *)d)[i] / 2147483648.0; break;
            case AV_SAMPLE_FMT_FLT:
            case AV_SAMPLE_FMT_FLTP: v = ((const float *)d)[i]; break;
            case AV_SAMPLE_FMT_DBL:
            case AV_SAMPLE_FMT_DBLP: v = ((const double *)d)[i]; break;
            default: v = 0;
            }
            if (fabs(v) > peak) peak = fabs(v);
        }
    }
    return peak;
}

int media_probe(const char *path, media_info *info) {
    memset(info, 0, sizeof *info);
    info->audio_peak_db = -INFINITY;
    opened o;
    if (open_file(path, &o, info->reason, sizeof info->reason)) {
        info->status = MEDIA_UNREADABLE;
        return -1;
    }
    AVStream *vst = o.fmt->streams[o.vs];
    info->width = vst->codecpar->width, info->height = vst->codecpar->height;
    info->fps = vst->avg_frame_rate.den ? av_q2d(vst->avg_frame_rate) : 0;
    info->duration = o.fmt->duration > 0 ? o.fmt->duration / (double)AV_TIME_BASE : 0;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *fr = av_frame_alloc();
    int got_video = 0;
    double peak = 0;
    int64_t audio_samples = 0;
    int audio_ok = o.adec != NULL;
    if (o.adec) info->audio_rate = o.adec->sample_rate, info->audio_channels = o.adec->ch_layout.nb_channels;
    while (pkt && fr && av_read_frame(o.fmt, pkt) >= 0) {
        if (pkt->stream_index == o.vs && !got_video) {
            if (avcodec_send_packet(o.vdec, pkt) >= 0 && avcodec_receive_frame(o.vdec, fr) >= 0) got_video = 1;
        } else if (pkt->stream_index == o.as && o.adec) {
            if (avcodec_send_packet(o.adec, pkt) >= 0)
                while (avcodec_receive_frame(o.adec, fr) >= 0) {
                    double p = peak_of_frame(fr);
                    if (p > peak) peak = p;
                    audio_samples += fr->nb_samples;
                }
        }
        av_packet_unref(pkt);
    }
    if (!got_video) { /* a decoder may hold the first frame until flushed */
        avcodec_send_packet(o.vdec, NULL);
        if (avcodec_receive_frame(o.vdec, fr) >= 0) got_video = 1;
    }
    if (o.adec) {
        avcodec_send_packet(o.adec, NULL);
        while (avcodec_receive_frame(o.adec, fr) >= 0) {
            double p = peak_of_frame(fr);
            if (p > peak) peak = p;
            audio_samples += fr->nb_samples;
        }
    }
    av_frame_free(&fr);
    av_packet_free(&pkt);
    close_all(&o);
    if (!got_video) {
        info->status = MEDIA_UNREADABLE;
        snprintf(info->reason, sizeof info->reason, "no video frame decodes");
        return -1;
    }
    if (!audio_ok) {
        info->status = MEDIA_NO_AUDIO;
        snprintf(info->reason, sizeof info->reason, "%s", o.as < 0 ? "no audio stream" : "no decoder for its audio codec");
        return 0;
    }
    if (info->audio_rate <= 0 || info->audio_channels <= 0) {
        info->status = MEDIA_NO_AUDIO;
        snprintf(info->reason, sizeof info->reason, "the audio stream has no sample rate or channel count");
        return 0;
    }
    info->audio_seconds = (double)audio_samples / info->audio_rate;
    if (audio_samples <= 0) {
        info->status = MEDIA_NO_AUDIO;
        snprintf(info->reason, sizeof info->reason, "the audio stream does not decode");
        return 0;
    }
    info->audio_peak_db = peak > 0 ? 20 * log10(peak) : -INFINITY;
    if (info->audio_peak_db < MEDIA_SILENT_DB) {
        info->status = MEDIA_SILENT;
        snprintf(info->reason, sizeof info->reason, "the audio peaks at %.1f dBFS, below -90 dBFS (digital silence)",
                 isinf(info->audio_peak_db) ? -999.0 : info->audio_peak_db);
        return 0;
    }
    info->status = MEDIA_OK;
    info->reason[0] = 0;
    return 0;
}

/* ------------------------------------------------------------------------------------------- decode */

typedef struct {
    const media_target *t;
    media_frame_fn on_frame;
    void *user;
    media_output *out;
    struct SwsContext *sws;
    uint8_t *rgb;
    AVFrame *held;           /* the latest decoded video frame, not yet emitted past its interval */
    int64_t held_pts;        /* relative to t0, stream time base */
    int64_t t0;              /* first video frame's timestamp */
    int have_t0;
    AVRational tb;
    int64_t default_dur;     /* one source frame, stream time base */
    int stop;
    /* audio */
    SwrContext *swr;
    int64_t audio_cap;
    int64_t audio_skip;      /* samples to drop (audio started before video) */
    int audio_started;
} dec_state;

static int emit_until(dec_state *s, int64_t end_rel) {
    /* output frames k with t_k < end_rel (stream time base, relative to t0) show the held frame */
    const AVRational frame_tb = {s->t->fps_den, s->t->fps_num};
    while (!s->stop && av_compare_ts(s->out->frames, frame_tb, end_rel, s->tb) < 0) {
        AVFrame *f = s->held;
        s->sws = sws_getCachedContext(s->sws, f->width, f->height, f->format, s->t->size, s->t->size, AV_PIX_FMT_RGB24,
                                      SWS_AREA, NULL, NULL, NULL);
        if (!s->sws) return -1;
        uint8_t *dst[4] = {s->rgb, NULL, NULL, NULL};
        int stride[4] = {3 * s->t->size, 0, 0, 0};
        sws_scale(s->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, stride);
        if (s->on_frame && s->on_frame(s->user, s->out->frames, s->rgb)) s->stop = 1;
        s->out->frames++;
    }
    return 0;
}

static int on_video_frame(dec_state *s, AVFrame *f) {
    int64_t ts = f->best_effort_timestamp;
    if (ts == AV_NOPTS_VALUE) ts = s->have_t0 ? s->t0 + s->held_pts + s->default_dur : 0;
    if (!s->have_t0) s->t0 = ts, s->have_t0 = 1;
    int64_t rel = ts - s->t0;
    if (s->held->format >= 0 && s->held->width > 0) {
        if (rel <= s->held_pts) {
            /* timestamps went backwards (a concatenated file, a reset): continue the timeline one frame on */
            s->t0 -= s->held_pts + s->default_dur - rel;
            rel = s->held_pts + s->default_dur;
        }
        if (emit_until(s, rel)) return -1;
    }
    av_frame_unref(s->held);
    av_frame_ref(s->held, f);
    s->held_pts = rel;
    return 0;
}

static int push_audio(dec_state *s, const uint8_t **in, int n_in) {
    media_output *o = s->out;
    int room = swr_get_out_samples(s->swr, n_in);
    if (room < 0) return -1;
    if (o->samples + room > s->audio_cap) {
        int64_t cap = s->audio_cap ? s->audio_cap * 2 : 1 << 16;
        while (cap < o->samples + room) cap *= 2;
        float *na = realloc(o->audio, sizeof(float) * (size_t)cap);
        if (!na) return -1;
        o->audio = na, s->audio_cap = cap;
    }
    uint8_t *dst[1] = {(uint8_t *)(o->audio + o->samples)};
    int got = swr_convert(s->swr, dst, room, in, n_in);
    if (got < 0) return -1;
    /* drop samples that precede the first video frame */
    if (s->audio_skip > 0) {
        int64_t d = s->audio_skip < got ? s->audio_skip : got;
        memmove(o->audio + o->samples, o->audio + o->samples + d, sizeof(float) * (size_t)(got - d));
        got -= (int)d;
        s->audio_skip -= d;
    }
    o->samples += got;
    return 0;
}

static int on_audio_frame(dec_state *s, AVFrame *f, AVStream *ast, AVStream *vst, const AVCodecContext *adec) {
    /* the resampler was set up for the stream's first format: a frame in another one is skipped (counted) */
    if (f->format != adec->sample_fmt || f->sample_rate != adec->sample_rate ||
        f->ch_layout.nb_channels != adec->ch_layout.nb_channels) {
        s->out->corrupt++;
        return 0;
    }
    if (!s->audio_started) {
        /* Align: sample 0 of the output is the first video frame's time. */
        s->audio_started = 1;
        int64_t apts = f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : 0;
        int64_t vstart = vst->start_time != AV_NOPTS_VALUE ? vst->start_time : 0;
        if (s->have_t0) vstart = s->t0;
        double delta = (apts * av_q2d(ast->time_base)) - (vstart * av_q2d(vst->time_base));
        int64_t shift = (int64_t)llround(delta * s->t->sample_rate);
        if (shift > 0 && shift < (int64_t)s->t->sample_rate * 3600) {
            if (s->audio_cap < shift) {
                float *na = realloc(s->out->audio, sizeof(float) * (size_t)(shift + (1 << 16)));
                if (!na) return -1;
                s->out->audio = na, s->audio_cap = shift + (1 << 16);
            }
            memset(s->out->audio, 0, sizeof(float) * (size_t)shift);
            s->out->samples = shift;
        } else if (shift < 0) {
            s->audio_skip = -shift;
        }
    }
    return push_audio(s, (const uint8_t **)f->extended_data, f->nb_samples);
}

int media_decode(const char *path, const media_target *t, media_frame_fn on_frame, void *user, media_output *out,
                 char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    char reason[256], eb[128];
    opened o;
    if (open_file(path, &o, reason, sizeof reason)) {
        snprintf(err, errlen, "%s: %s", path, reason);
        return -1;
    }
    AVStream *vst = o.fmt->streams[o.vs], *ast = o.as >= 0 ? o.fmt->streams[o.as] : NULL;
    dec_state s;
    memset(&s, 0, sizeof s);
    s.t = t, s.on_frame = on_frame, s.user = user, s.out = out, s.tb = vst->time_base;
    out->src_fps = vst->avg_frame_rate.den ? av_q2d(vst->avg_frame_rate) : 0;
    out->src_width = vst->codecpar->width, out->src_height = vst->codecpar->height;
    AVRational fr = vst->avg_frame_rate.num > 0 ? vst->avg_frame_rate : (vst->r_frame_rate.num > 0 ? vst->r_frame_rate : (AVRational){25, 1});
    s.default_dur = av_rescale_q(1, av_inv_q(fr), s.tb);
    if (s.default_dur <= 0) s.default_dur = 1;
    s.rgb = malloc((size_t)3 * t->size * t->size);
    s.held = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    int rc = 0;
    if (!s.rgb || !s.held || !pkt || !f) {
        snprintf(err, errlen, "%s: out of memory", path);
        rc = -1;
        goto done;
    }
    s.held->format = -1;
    if (o.adec) {
        AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
        if (swr_alloc_set_opts2(&s.swr, &mono, AV_SAMPLE_FMT_FLT, t->sample_rate, &o.adec->ch_layout,
                                o.adec->sample_fmt, o.adec->sample_rate, 0, NULL) < 0 || !s.swr) {
            snprintf(err, errlen, "%s: cannot set up audio resampling", path);
            rc = -1;
            goto done;
        }
        /* mono = the mean of all channels */
        int nc = o.adec->ch_layout.nb_channels;
        double m[64];
        for (int i = 0; i < nc && i < 64; i++) m[i] = 1.0 / nc;
        if (nc > 64 || swr_set_matrix(s.swr, m, nc) < 0 || swr_init(s.swr) < 0) {
            snprintf(err, errlen, "%s: cannot set up audio resampling for %d channels", path, nc);
            rc = -1;
            goto done;
        }
    }
    int e;
    while (!s.stop && (e = av_read_frame(o.fmt, pkt)) >= 0) {
        AVCodecContext *dec = pkt->stream_index == o.vs ? o.vdec : (pkt->stream_index == o.as ? o.adec : NULL);
        if (dec) {
            if (avcodec_send_packet(dec, pkt) < 0) out->corrupt++;
            for (;;) {
                int r = avcodec_receive_frame(dec, f);
                if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) break;
                if (r < 0) { out->corrupt++; break; }
                if (dec == o.vdec) rc = on_video_frame(&s, f);
                else rc = on_audio_frame(&s, f, ast, vst, o.adec);
                av_frame_unref(f);
                if (rc) break;
            }
        }
        av_packet_unref(pkt);
        if (rc) break;
    }
    /* flush both decoders */
    for (int d = 0; !rc && d < 2; d++) {
        AVCodecContext *dec = d == 0 ? o.vdec : o.adec;
        if (!dec) continue;
        avcodec_send_packet(dec, NULL);
        while (!rc && avcodec_receive_frame(dec, f) >= 0) {
            rc = d == 0 ? on_video_frame(&s, f) : on_audio_frame(&s, f, ast, vst, o.adec);
            av_frame_unref(f);
        }
    }
    if (rc) {
        snprintf(err, errlen, "%s: decoding failed (out of memory or a scaling error)", path);
        goto done;
    }
    if (s.stop) {
        snprintf(err, errlen, "%s: the frame consumer failed (writing the prepared file)", path);
        rc = -1;
        goto done;
    }
    if (s.held->format < 0) {
        snprintf(err, errlen, "%s: no video frame decodes", path);
        rc = -1;
        goto done;
    }
    /* the last frame lasts one source frame */
    if (emit_until(&s, s.held_pts + (s.held->pkt_duration > 0 ? s.held->pkt_duration : s.default_dur))) {
        snprintf(err, errlen, "%s: scaling failed", path);
        rc = -1;
        goto done;
    }
    if (s.swr && !rc) {
        if (push_audio(&s, NULL, 0)) { /* drain the resampler */
            snprintf(err, errlen, "%s: audio resampling failed", path);
            rc = -1;
        }
    }
    (void)eb;
done:
    av_frame_free(&f);
    av_frame_free(&s.held);
    av_packet_free(&pkt);
    swr_free(&s.swr);
    sws_freeContext(s.sws);
    free(s.rgb);
    close_all(&o);
    if (rc) media_output_free(out);
    return rc;
}

void media_output_free(media_output *out) {
    free(out->audio);
    out->audio = NULL;
    out->samples = 0;
}

void media_quiet(void) { av_log_set_level(AV_LOG_QUIET); }
