/* Tests for `avgen synth` (generator/synth.c): the UCF101 layout and split lists, every file readable by
 * libavformat with the right streams, the frame-index barcode read back from decoded frames, the audio
 * marker's position, the class cue in the sound, byte-identical output for a seed, the single-file
 * writer's edge cases (no audio, silent audio, one frame, 29.97 and 12 fps) and the argument errors. */
#include "check.h"
#include "synth.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static char g_tmp[1024]; /* the test's temporary folder */

/* ------------------------------------------------------------------------------------------ helpers */

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *p = realloc(buf, 2 * cap + 1);
            if (!p) { free(buf); buf = NULL; break; }
            buf = p, cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static void rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        char sub[4400];
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else unlink(path);
}

static FILE *capture_begin(int fd, int *saved) {
    fflush(fd == 1 ? stdout : stderr);
    FILE *t = tmpfile();
    *saved = dup(fd);
    if (t) dup2(fileno(t), fd);
    return t;
}

static char *capture_end(int fd, int saved, FILE *t) {
    fflush(fd == 1 ? stdout : stderr);
    dup2(saved, fd);
    close(saved);
    if (!t) return strdup("");
    long n = ftell(t);
    char *s = malloc(n > 0 ? (size_t)n + 1 : 1);
    rewind(t);
    size_t k = n > 0 ? fread(s, 1, (size_t)n, t) : 0;
    s[k] = 0;
    fclose(t);
    return s;
}

/* Runs gen_synth_main with the given arguments (NULL-terminated), capturing stdout and stderr. */
static int run_synth(char **out, char **err, ...) {
    char *argv[64];
    int argc = 0;
    argv[argc++] = "synth";
    va_list ap;
    va_start(ap, err);
    char *a;
    while ((a = va_arg(ap, char *)) && argc < 63) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int so, se;
    FILE *to = capture_begin(1, &so), *te = capture_begin(2, &se);
    int rc = gen_synth_main(argc, argv);
    char *o = capture_end(2, se, te), *p = capture_end(1, so, to);
    if (err) *err = o; else free(o);
    if (out) *out = p; else free(p);
    return rc;
}

/* ----------------------------------------------------------------------------------- decode probe */

typedef struct {
    int opened, nb_streams, n_video, n_audio;
    int width, height;
    double fps, duration;
    unsigned vtag;
    enum AVCodecID vcodec, acodec;
    int sample_rate, channels;
    int frames;           /* decoded video frames */
    int barcode_bad;      /* index of the first frame whose barcode != its index, or -1 */
    int barcode_got;
    int64_t first_apts;   /* first audio packet's pts in samples */
    int64_t samples;      /* decoded audio samples per channel */
    int64_t onset;        /* first sample with |x| > 0.5 (channel 0), or -1 */
    double max_abs;
    float *pcm;           /* channel 0, when keep_pcm */
} probe_t;

static double sample_at(const AVFrame *f, int ch, int i) {
    switch (f->format) {
    case AV_SAMPLE_FMT_FLTP: return ((const float *)f->extended_data[ch])[i];
    case AV_SAMPLE_FMT_FLT: return ((const float *)f->data[0])[i * f->ch_layout.nb_channels + ch];
    case AV_SAMPLE_FMT_S16P: return ((const int16_t *)f->extended_data[ch])[i] / 32768.0;
    case AV_SAMPLE_FMT_S16: return ((const int16_t *)f->data[0])[i * f->ch_layout.nb_channels + ch] / 32768.0;
    case AV_SAMPLE_FMT_S32P: return ((const int32_t *)f->extended_data[ch])[i] / 2147483648.0;
    case AV_SAMPLE_FMT_S32: return ((const int32_t *)f->data[0])[i * f->ch_layout.nb_channels + ch] / 2147483648.0;
    default: return NAN;
    }
}

static void take_video(probe_t *p, AVFrame *f) {
    int v = synth_barcode_read(f->data[0], f->linesize[0], 1);
    if (p->barcode_bad < 0 && v != p->frames) p->barcode_bad = p->frames, p->barcode_got = v;
    p->frames++;
}

static void take_audio(probe_t *p, AVFrame *f, int keep_pcm, int64_t *cap) {
    for (int i = 0; i < f->nb_samples; i++) {
        double x = sample_at(f, 0, i);
        double ax = fabs(x);
        if (ax > p->max_abs) p->max_abs = ax;
        if (p->onset < 0 && ax > 0.5) p->onset = p->samples;
        if (keep_pcm) {
            if (p->samples >= *cap) {
                *cap = *cap ? *cap * 2 : 65536;
                float *q = realloc(p->pcm, sizeof *q * (size_t)*cap);
                if (!q) continue;
                p->pcm = q;
            }
            p->pcm[p->samples] = (float)x;
        }
        p->samples++;
    }
}

/* Opens `path`, reads the stream parameters, decodes up to max_frames video frames (checking the
 * barcode of each) and, when decode_audio, the whole audio stream. */
static int probe(const char *path, int max_frames, int decode_audio, int keep_pcm, probe_t *p) {
    memset(p, 0, sizeof *p);
    p->barcode_bad = -1, p->onset = -1, p->first_apts = AV_NOPTS_VALUE;
    AVFormatContext *fc = NULL;
    if (avformat_open_input(&fc, path, NULL, NULL) < 0) return -1;
    p->opened = 1;
    if (avformat_find_stream_info(fc, NULL) < 0) { avformat_close_input(&fc); return -1; }
    p->nb_streams = (int)fc->nb_streams;
    p->duration = fc->duration > 0 ? fc->duration / (double)AV_TIME_BASE : 0;
    int vi = -1, ai = -1;
    for (unsigned i = 0; i < fc->nb_streams; i++) {
        AVCodecParameters *cp = fc->streams[i]->codecpar;
        if (cp->codec_type == AVMEDIA_TYPE_VIDEO) {
            p->n_video++, vi = (int)i;
            p->width = cp->width, p->height = cp->height, p->vcodec = cp->codec_id, p->vtag = cp->codec_tag;
            AVRational r = fc->streams[i]->avg_frame_rate;
            p->fps = r.den ? av_q2d(r) : 0;
        } else if (cp->codec_type == AVMEDIA_TYPE_AUDIO) {
            p->n_audio++, ai = (int)i;
            p->sample_rate = cp->sample_rate, p->channels = cp->ch_layout.nb_channels, p->acodec = cp->codec_id;
        }
    }
    AVCodecContext *vd = NULL, *ad = NULL;
    if (vi >= 0 && max_frames > 0) {
        const AVCodec *c = avcodec_find_decoder(fc->streams[vi]->codecpar->codec_id);
        vd = avcodec_alloc_context3(c);
        avcodec_parameters_to_context(vd, fc->streams[vi]->codecpar);
        vd->thread_count = 1;
        if (avcodec_open2(vd, c, NULL) < 0) avcodec_free_context(&vd);
    }
    if (ai >= 0 && decode_audio) {
        const AVCodec *c = avcodec_find_decoder(fc->streams[ai]->codecpar->codec_id);
        ad = avcodec_alloc_context3(c);
        avcodec_parameters_to_context(ad, fc->streams[ai]->codecpar);
        if (avcodec_open2(ad, c, NULL) < 0) avcodec_free_context(&ad);
    }
    AVPacket *pkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    int64_t cap = 0;
    while (av_read_frame(fc, pkt) >= 0) {
        if (vd && pkt->stream_index == vi && p->frames < max_frames) {
            if (avcodec_send_packet(vd, pkt) >= 0)
                while (avcodec_receive_frame(vd, f) >= 0) take_video(p, f);
        } else if (pkt->stream_index == ai) {
            if (p->first_apts == AV_NOPTS_VALUE && pkt->pts != AV_NOPTS_VALUE)
                p->first_apts = av_rescale_q(pkt->pts, fc->streams[ai]->time_base, (AVRational){1, p->sample_rate});
            if (ad && avcodec_send_packet(ad, pkt) >= 0)
                while (avcodec_receive_frame(ad, f) >= 0) take_audio(p, f, keep_pcm, &cap);
        }
        av_packet_unref(pkt);
    }
    if (vd && avcodec_send_packet(vd, NULL) >= 0)
        while (avcodec_receive_frame(vd, f) >= 0)
            if (p->frames < max_frames) take_video(p, f);
    if (ad && avcodec_send_packet(ad, NULL) >= 0)
        while (avcodec_receive_frame(ad, f) >= 0) take_audio(p, f, keep_pcm, &cap);
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&vd);
    avcodec_free_context(&ad);
    avformat_close_input(&fc);
    return 0;
}

/* Frequency (Hz) in 200..2000 with the most energy, on a 1/48-octave grid (Goertzel). */
static double dominant_freq(const float *x, int64_t n, int sr) {
    double best = 0, best_f = 0;
    for (double l2 = log2(200.0); l2 <= log2(2000.0); l2 += 1.0 / 48) {
        double f = pow(2.0, l2), w = 2 * M_PI * f / sr, c = 2 * cos(w), s1 = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            double s0 = x[i] + c * s1 - s2;
            s2 = s1, s1 = s0;
        }
        double pw = s1 * s1 + s2 * s2 - c * s1 * s2;
        if (pw > best) best = pw, best_f = f;
    }
    return best_f;
}

/* ------------------------------------------------------------------------------------ list parsing */

typedef struct {
    char cls[64], stem[64];
    int group, clip, label;
} entry_t;

/* "Class/v_Stem_gGG_cCC.avi[ label]" -> entry; returns 0 when the line has that form. */
static int parse_entry(const char *line, int with_label, entry_t *e) {
    char rest[256];
    int n = 0;
    memset(e, 0, sizeof *e);
    e->label = -1;
    if (sscanf(line, "%63[^/]/v_%63[^_]_g%2d_c%2d.avi%n", e->cls, e->stem, &e->group, &e->clip, &n) != 4) return -1;
    snprintf(rest, sizeof rest, "%s", line + n);
    if (with_label) {
        int m = 0;
        if (sscanf(rest, " %d%n", &e->label, &m) != 1 || rest[m] || rest[0] != ' ') return -1;
    } else if (rest[0]) return -1;
    return 0;
}

/* Splits a CRLF file into lines; counts lines that do not end in CRLF. Returns the line count. */
static int split_lines(char *text, size_t len, char ***lines_out, int *bad_eol) {
    int n = 0, cap = 16;
    char **lines = malloc(sizeof *lines * cap);
    *bad_eol = 0;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '\n') continue;
        if (i == 0 || text[i - 1] != '\r') (*bad_eol)++;
        size_t end = (i > 0 && text[i - 1] == '\r') ? i - 1 : i;
        text[end] = 0;
        if (n == cap) lines = realloc(lines, sizeof *lines * (cap *= 2));
        lines[n++] = text + start;
        start = i + 1;
    }
    if (start < len) (*bad_eol)++; /* last line without an end */
    *lines_out = lines;
    return n;
}

/* ---------------------------------------------------------------------------------------- tests */

#define MAXF 64

typedef struct {
    char rel[MAXF][128];
    int n;
} filelist_t;

static void list_videos(const char *root, filelist_t *fl) {
    fl->n = 0;
    DIR *d = opendir(root);
    struct dirent *e;
    char sub[4400];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "ucfTrainTestlist")) continue;
        snprintf(sub, sizeof sub, "%s/%s", root, e->d_name);
        DIR *d2 = opendir(sub);
        struct dirent *e2;
        while (d2 && (e2 = readdir(d2))) {
            if (e2->d_name[0] == '.') continue;
            if (fl->n < MAXF) snprintf(fl->rel[fl->n++], 128, "%.60s/%.60s", e->d_name, e2->d_name);
        }
        if (d2) closedir(d2);
    }
    if (d) closedir(d);
}

static int find_rel(const filelist_t *fl, const char *rel) {
    for (int i = 0; i < fl->n; i++)
        if (!strcmp(fl->rel[i], rel)) return i;
    return -1;
}

/* The main data set: 3 classes, 12 videos (4 per class in 3 groups), markers on. */
static void test_dataset(const char *root) {
    char path[4400], *err = NULL;
    const char *classes[3] = {"ArmSwing", "HandstandHops", "HulaHoop"};
    int rc = run_synth(NULL, &err, "--out", root, "--classes", "3", "--videos", "12", "--seconds", "1", "--size",
                       "160x120", "--markers", "--seed", "7", (char *)NULL);
    CHECK_MSG(rc == 0, "synth exit %d: %s", rc, err);
    CHECK_STR_CONTAINS(err, "wrote 12 videos of 3 classes");
    free(err);
    if (rc) return;

    /* classInd */
    snprintf(path, sizeof path, "%s/ucfTrainTestlist/classInd.txt", root);
    size_t len;
    char *text = read_all(path, &len), **lines = NULL;
    CHECK_MSG(text != NULL, "cannot read %s", path);
    if (text) {
        int bad, n = split_lines(text, len, &lines, &bad);
        CHECK_EQ_I64(n, 3);
        CHECK_EQ_I64(bad, 0);
        for (int i = 0; i < n && i < 3; i++) {
            char want[80];
            snprintf(want, sizeof want, "%d %s", i + 1, classes[i]);
            CHECK_MSG(!strcmp(lines[i], want), "classInd line %d is \"%s\", expected \"%s\"", i + 1, lines[i], want);
        }
        free(lines), free(text);
    }

    /* the files on disk */
    filelist_t fl;
    list_videos(root, &fl);
    CHECK_EQ_I64(fl.n, 12);
    int case_differs = 0;
    for (int i = 0; i < fl.n; i++) {
        entry_t e;
        CHECK_MSG(parse_entry(fl.rel[i], 0, &e) == 0, "bad file name %s", fl.rel[i]);
        CHECK_MSG(strcasecmp(e.cls, e.stem) == 0, "%s: stem and folder differ beyond letter case", fl.rel[i]);
        if (strcmp(e.cls, e.stem)) case_differs++;
        CHECK_MSG(e.group >= 1 && e.group <= 3 && e.clip >= 1 && e.clip <= 2, "%s: group/clip out of range", fl.rel[i]);
        CHECK_MSG(!strstr(fl.rel[i], ".tmp"), "temporary file left: %s", fl.rel[i]);
    }
    CHECK_EQ_I64(case_differs, 4); /* HandstandHops/v_HandStandHops_... */
    snprintf(path, sizeof path, "%s/HandstandHops/v_HandStandHops_g01_c01.avi", root);
    CHECK_MSG(access(path, R_OK) == 0, "missing %s", path);

    /* the split lists */
    int test_groups_by_split[4] = {0};
    for (int split = 1; split <= 3; split++) {
        int seen[MAXF] = {0};
        int train_groups[3][32] = {{0}}, test_groups[3][32] = {{0}};
        for (int test = 0; test <= 1; test++) {
            snprintf(path, sizeof path, "%s/ucfTrainTestlist/%slist%02d.txt", root, test ? "test" : "train", split);
            text = read_all(path, &len);
            CHECK_MSG(text != NULL, "cannot read %s", path);
            if (!text) continue;
            CHECK_MSG(len >= 2 && text[len - 2] == '\r' && text[len - 1] == '\n', "%s does not end in CRLF", path);
            int bad, n = split_lines(text, len, &lines, &bad);
            CHECK_MSG(bad == 0, "%s: %d lines without CRLF", path, bad);
            CHECK_MSG(n > 0, "%s is empty", path);
            for (int i = 0; i < n; i++) {
                entry_t e;
                int ok = parse_entry(lines[i], !test, &e) == 0;
                CHECK_MSG(ok, "%s line %d: \"%s\" is not %s", path, i + 1, lines[i],
                          test ? "a path without a label" : "a path and a label");
                if (!ok) continue;
                int c;
                for (c = 0; c < 3 && strcmp(classes[c], e.cls); c++) {}
                CHECK_MSG(c < 3, "%s: unknown class %s", path, e.cls);
                if (c == 3) continue;
                if (!test) CHECK_MSG(e.label == c + 1, "%s: %s has label %d, expected %d", path, lines[i], e.label, c + 1);
                char rel[160];
                snprintf(rel, sizeof rel, "%s/v_%s_g%02d_c%02d.avi", e.cls, e.stem, e.group, e.clip);
                int k = find_rel(&fl, rel);
                CHECK_MSG(k >= 0, "%s lists %s, which does not exist", path, rel);
                if (k >= 0) seen[k]++;
                if (e.group >= 0 && e.group < 32) (test ? test_groups : train_groups)[c][e.group] = 1;
            }
            free(lines), free(text);
        }
        for (int k = 0; k < fl.n; k++) CHECK_MSG(seen[k] == 1, "split %d lists %s %d times", split, fl.rel[k], seen[k]);
        for (int c = 0; c < 3; c++)
            for (int g = 0; g < 32; g++) {
                CHECK_MSG(!(train_groups[c][g] && test_groups[c][g]), "split %d: %s group %d is in train and test",
                          split, classes[c], g);
                if (test_groups[c][g] && c == 0) test_groups_by_split[split] |= 1 << g;
            }
    }
    /* with 3 groups per class each split tests a different one: g01, g02, g03 */
    CHECK_EQ_I64(test_groups_by_split[1], 1 << 1);
    CHECK_EQ_I64(test_groups_by_split[2], 1 << 2);
    CHECK_EQ_I64(test_groups_by_split[3], 1 << 3);

    /* every file: streams, sizes, rates, durations; barcodes of every frame of some, of 4 frames of the rest */
    double marker = synth_marker_time(1.0, 25);
    CHECK(fabs(marker - 0.48) < 1e-9);
    for (int i = 0; i < fl.n; i++) {
        probe_t p;
        int full = i % 4 == 0;
        snprintf(path, sizeof path, "%s/%s", root, fl.rel[i]);
        int r = probe(path, full ? 1000 : 4, full, full, &p);
        CHECK_MSG(r == 0, "libavformat cannot open %s", path);
        if (r) continue;
        CHECK_MSG(p.nb_streams == 2 && p.n_video == 1 && p.n_audio == 1, "%s: %d streams (%d video, %d audio)", path,
                  p.nb_streams, p.n_video, p.n_audio);
        CHECK_MSG(p.width == 160 && p.height == 120, "%s: %dx%d", path, p.width, p.height);
        CHECK_MSG(p.vcodec == AV_CODEC_ID_MPEG4 && p.vtag == MKTAG('X', 'V', 'I', 'D'), "%s: not MPEG-4/XVID", path);
        CHECK_MSG(fabs(p.fps - 25) < 0.01, "%s: %g fps", path, p.fps);
        CHECK_MSG(fabs(p.duration - 1.0) < 0.1, "%s: duration %g s", path, p.duration);
        CHECK_MSG(p.sample_rate == 44100 && p.channels == 2, "%s: %d Hz, %d channels", path, p.sample_rate, p.channels);
        CHECK_MSG(p.frames == (full ? 25 : 4), "%s: decoded %d frames", path, p.frames);
        CHECK_MSG(p.barcode_bad < 0, "%s: frame %d carries barcode %d", path, p.barcode_bad, p.barcode_got);
        if (full) {
            double t = p.onset / 44100.0;
            CHECK_MSG(p.first_apts == 0, "%s: first audio packet at sample %lld", path, (long long)p.first_apts);
            CHECK_MSG(p.onset >= 0 && fabs(t - marker) < 0.002, "%s: burst onset at %.4f s, expected %.4f s", path, t,
                      marker);
            double before = 0; /* the sound stays well below the detection threshold up to 3 ms before the burst */
            for (int64_t k = 0; p.pcm && k < p.samples && k < (int64_t)((marker - 0.003) * 44100); k++)
                before = fmax(before, fabs(p.pcm[k]));
            CHECK_MSG(before > 0.05 && before < 0.42, "%s: peak %.3f before the burst", path, before);
            CHECK_MSG(fabs(p.samples / 44100.0 - 1.0) < 0.06, "%s: %.4f s of decoded audio", path, p.samples / 44100.0);
        }
        free(p.pcm);
    }
}

/* Same seed, same bytes; another seed, other bytes. */
static void test_determinism(const char *a, const char *b, const char *c) {
    int rc1 = run_synth(NULL, NULL, "--out", b, "--classes", "3", "--videos", "12", "--seconds", "1", "--size",
                        "160x120", "--markers", "--seed", "7", (char *)NULL);
    int rc2 = run_synth(NULL, NULL, "--out", c, "--classes", "3", "--videos", "6", "--seconds", "1", "--size",
                        "160x120", "--markers", "--seed", "8", (char *)NULL);
    CHECK_EQ_I64(rc1, 0);
    CHECK_EQ_I64(rc2, 0);
    filelist_t fl;
    list_videos(a, &fl);
    const char *lists[] = {"classInd.txt", "trainlist01.txt", "testlist01.txt", "trainlist02.txt",
                           "testlist02.txt", "trainlist03.txt", "testlist03.txt"};
    int n_same = 0, n_other_differs = 0, n_other = 0;
    char pa[4400], pb[4400];
    for (int i = 0; i < fl.n + 7; i++) {
        const char *rel = i < fl.n ? fl.rel[i] : NULL;
        char tmp[128];
        if (!rel) snprintf(tmp, sizeof tmp, "ucfTrainTestlist/%s", lists[i - fl.n]), rel = tmp;
        snprintf(pa, sizeof pa, "%s/%s", a, rel);
        snprintf(pb, sizeof pb, "%s/%s", b, rel);
        size_t la, lb;
        char *x = read_all(pa, &la), *y = read_all(pb, &lb);
        int same = x && y && la == lb && !memcmp(x, y, la);
        CHECK_MSG(same, "%s differs between two runs with the same seed", rel);
        n_same += same;
        free(y);
        snprintf(pb, sizeof pb, "%s/%s", c, rel);
        if (i < fl.n && (y = read_all(pb, &lb))) {
            n_other++;
            n_other_differs += !(la == lb && !memcmp(x, y, la));
            free(y);
        }
        free(x);
    }
    CHECK_EQ_I64(n_same, fl.n + 7);
    CHECK_MSG(n_other > 0 && n_other_differs == n_other, "seed 8: %d of %d common files differ from seed 7",
              n_other_differs, n_other);
}

/* --cue audio: the sound's pitch is in the class band; --cue video: frames still carry barcodes. */
static void test_cues(const char *root_a, const char *root_v) {
    int rc = run_synth(NULL, NULL, "--out", root_a, "--classes", "3", "--videos", "6", "--seconds", "0.6", "--size",
                       "64x48", "--cue", "audio", "--sample-rate", "22050", (char *)NULL);
    CHECK_EQ_I64(rc, 0);
    filelist_t fl;
    list_videos(root_a, &fl);
    CHECK_EQ_I64(fl.n, 6);
    const char *classes[3] = {"ArmSwing", "HandstandHops", "HulaHoop"};
    char path[4400];
    for (int i = 0; i < fl.n; i++) {
        probe_t p;
        snprintf(path, sizeof path, "%s/%s", root_a, fl.rel[i]);
        if (probe(path, 15, 1, 1, &p)) { CHECK_MSG(0, "cannot open %s", path); continue; }
        CHECK_MSG(p.sample_rate == 22050, "%s: %d Hz", path, p.sample_rate);
        CHECK_MSG(p.width == 64 && p.height == 48 && p.barcode_bad < 0, "%s: size or barcode wrong", path);
        int c;
        for (c = 0; c < 3 && strncmp(fl.rel[i], classes[c], strlen(classes[c])); c++) {}
        if (c < 3 && p.pcm && p.samples > 8000) {
            double f = dominant_freq(p.pcm + 1500, 6000, 22050);
            double lo = 220 * pow(2, c), hi = 220 * pow(2, c + 1);
            CHECK_MSG(f > lo && f < hi, "%s: pitch %.1f Hz is outside class %d's band [%g, %g)", path, f, c + 1, lo, hi);
        } else CHECK_MSG(0, "%s: no audio decoded", path);
        free(p.pcm);
    }
    rc = run_synth(NULL, NULL, "--out", root_v, "--classes", "2", "--videos", "4", "--seconds", "0.3", "--size",
                   "96x64", "--cue", "video", "--fps", "30000/1001", (char *)NULL);
    CHECK_EQ_I64(rc, 0);
    list_videos(root_v, &fl);
    CHECK_EQ_I64(fl.n, 4);
    for (int i = 0; i < fl.n; i++) {
        probe_t p;
        snprintf(path, sizeof path, "%s/%s", root_v, fl.rel[i]);
        if (probe(path, 100, 0, 0, &p)) { CHECK_MSG(0, "cannot open %s", path); continue; }
        CHECK_MSG(fabs(p.fps - 30000.0 / 1001) < 1e-3, "%s: %g fps", path, p.fps);
        CHECK_MSG(p.frames == 9 && p.barcode_bad < 0, "%s: %d frames, bad barcode at %d", path, p.frames, p.barcode_bad);
    }
}

/* The single-file writer's edge cases. */
static void test_single_files(const char *dir) {
    char path[4400];
    probe_t p;
    /* no audio stream */
    snprintf(path, sizeof path, "%s/noaudio.avi", dir);
    CHECK_EQ_I64(synth_write_file(path, 0.5, 25, 128, 96, 0, 0, 1, -1), 0);
    if (!probe(path, 100, 1, 0, &p)) {
        CHECK_MSG(p.nb_streams == 1 && p.n_video == 1 && p.n_audio == 0, "noaudio: %d streams", p.nb_streams);
        CHECK_MSG(p.frames == 13 && p.barcode_bad < 0, "noaudio: %d frames, bad barcode at %d", p.frames, p.barcode_bad);
    } else CHECK_MSG(0, "cannot open %s", path);
    /* digitally silent audio */
    snprintf(path, sizeof path, "%s/silent.avi", dir);
    CHECK_EQ_I64(synth_write_file(path, 0.5, 25, 128, 96, 44100, 1, 1, 0.2), 0);
    if (!probe(path, 0, 1, 0, &p)) {
        CHECK_MSG(p.n_audio == 1 && p.samples > 20000, "silent: %lld samples", (long long)p.samples);
        CHECK_MSG(p.max_abs == 0, "silent: peak %g, expected exact zeros", p.max_abs);
    } else CHECK_MSG(0, "cannot open %s", path);
    /* one frame */
    snprintf(path, sizeof path, "%s/short.avi", dir);
    CHECK_EQ_I64(synth_write_file(path, 0.04, 25, 64, 16, 44100, 0, 1, -1), 0);
    if (!probe(path, 100, 1, 0, &p)) {
        CHECK_MSG(p.frames == 1 && p.barcode_bad < 0, "short: %d frames", p.frames);
        CHECK_MSG(p.n_audio == 1 && p.samples > 0, "short: %lld audio samples", (long long)p.samples);
    } else CHECK_MSG(0, "cannot open %s", path);
    /* 29.97 fps with a marker, 48 kHz */
    snprintf(path, sizeof path, "%s/ntsc.avi", dir);
    CHECK_EQ_I64(synth_write_file(path, 1.0, 29.97, 160, 120, 48000, 0, 1, 0.3), 0);
    CHECK_EQ_I64(synth_frame_count(1.0, 29.97), 30);
    if (!probe(path, 100, 1, 0, &p)) {
        CHECK_MSG(fabs(p.fps - 30000.0 / 1001) < 1e-4, "ntsc: %.6f fps", p.fps);
        CHECK_MSG(p.frames == 30 && p.barcode_bad < 0, "ntsc: %d frames, bad barcode at %d", p.frames, p.barcode_bad);
        CHECK_MSG(p.sample_rate == 48000, "ntsc: %d Hz", p.sample_rate);
        CHECK_MSG(fabs(p.onset / 48000.0 - 0.3) < 0.002, "ntsc: burst onset at %.4f s", p.onset / 48000.0);
    } else CHECK_MSG(0, "cannot open %s", path);
    /* 12 fps, no barcode */
    snprintf(path, sizeof path, "%s/slow.avi", dir);
    CHECK_EQ_I64(synth_write_file(path, 1.0, 12, 96, 64, 16000, 0, 0, -1), 0);
    if (!probe(path, 100, 0, 0, &p)) {
        CHECK_MSG(fabs(p.fps - 12) < 1e-6 && p.frames == 12, "slow: %g fps, %d frames", p.fps, p.frames);
        CHECK_MSG(p.frames > 0 && p.barcode_bad == 0 && p.barcode_got == -1, "slow: a barcode where none was asked");
        CHECK_MSG(p.sample_rate == 16000, "slow: %d Hz", p.sample_rate);
    } else CHECK_MSG(0, "cannot open %s", path);
    /* bad parameters and an unwritable path */
    int se;
    FILE *t = capture_begin(2, &se);
    int r1 = synth_write_file(path, 1.0, 25, 63, 48, 44100, 0, 1, -1);
    int r2 = synth_write_file(path, 0, 25, 64, 48, 44100, 0, 1, -1);
    snprintf(path, sizeof path, "%s/no/such/folder/x.avi", dir);
    int r3 = synth_write_file(path, 0.2, 25, 64, 48, 44100, 0, 1, -1);
    char *err = capture_end(2, se, t);
    CHECK_EQ_I64(r1, 2);
    CHECK_EQ_I64(r2, 2);
    CHECK_EQ_I64(r3, 1);
    CHECK_STR_CONTAINS(err, "size 63x48 is not valid");
    CHECK_STR_CONTAINS(err, "no/such/folder/x.avi");
    free(err);
}

static void expect_usage(int want, const char *needle, ...) {
    char *argv[32];
    int argc = 0;
    argv[argc++] = "synth";
    va_list ap;
    va_start(ap, needle);
    char *a;
    while ((a = va_arg(ap, char *)) && argc < 31) argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    int so, se;
    FILE *to = capture_begin(1, &so), *te = capture_begin(2, &se);
    int rc = gen_synth_main(argc, argv);
    char *err = capture_end(2, se, te), *out = capture_end(1, so, to);
    CHECK_MSG(rc == want, "synth %s ... -> exit %d, expected %d (%s)", argc > 1 ? argv[1] : "", rc, want, err);
    const char *hay = want == 0 ? out : err;
    CHECK_MSG(strstr(hay, needle) != NULL, "synth %s ... -> output lacks \"%s\": %s", argc > 1 ? argv[1] : "", needle,
              hay);
    if (want == 2) {
        int nl = 0;
        for (const char *s = err; *s; s++) nl += *s == '\n';
        CHECK_MSG(nl == 1, "usage error is not one line: %s", err);
    }
    free(err), free(out);
}

static void test_arguments(const char *root, const char *fresh) {
    char file[1100];
    snprintf(file, sizeof file, "%s/afile", g_tmp);
    FILE *f = fopen(file, "w");
    if (f) fclose(f);
    char under_file[4400];
    snprintf(under_file, sizeof under_file, "%s/sub", file);
    expect_usage(0, "usage: avgen synth", "--help", (char *)NULL);
    expect_usage(0, "usage: avgen synth", "--out", fresh, "--classes", "1", "-h", (char *)NULL);
    expect_usage(2, "an output folder --out DIR is required", (char *)NULL);
    expect_usage(2, "unknown option --bogus", "--out", fresh, "--bogus", (char *)NULL);
    expect_usage(2, "unexpected argument \"extra\"", "--out", fresh, "extra", (char *)NULL);
    expect_usage(2, "--classes needs a value", "--out", fresh, "--classes", (char *)NULL);
    expect_usage(2, "--classes 1 is not valid", "--out", fresh, "--classes", "1", (char *)NULL);
    expect_usage(2, "--classes abc is not valid", "--out", fresh, "--classes", "abc", (char *)NULL);
    expect_usage(2, "--classes 102 is not valid", "--out", fresh, "--classes=102", (char *)NULL);
    expect_usage(2, "--videos 7 is too few for 4 classes", "--out", fresh, "--videos", "7", (char *)NULL);
    expect_usage(2, "--videos 0 is not valid", "--out", fresh, "--videos", "0", (char *)NULL);
    expect_usage(2, "--cue sideways is not valid", "--out", fresh, "--cue", "sideways", (char *)NULL);
    expect_usage(2, "--seed -3 is not valid", "--out", fresh, "--seed", "-3", (char *)NULL);
    expect_usage(2, "--seconds -1 is not valid", "--out", fresh, "--seconds", "-1", (char *)NULL);
    expect_usage(2, "--seconds nan is not valid", "--out", fresh, "--seconds", "nan", (char *)NULL);
    expect_usage(2, "--size 320 is not valid", "--out", fresh, "--size", "320", (char *)NULL);
    expect_usage(2, "--size 62x48 is not valid", "--out", fresh, "--size", "62x48", (char *)NULL);
    expect_usage(2, "--size 161x120 is not valid", "--out", fresh, "--size", "161x120", (char *)NULL);
    expect_usage(2, "--fps 0 is not valid", "--out", fresh, "--fps", "0", (char *)NULL);
    expect_usage(2, "--fps 1/0 is not valid", "--out", fresh, "--fps", "1/0", (char *)NULL);
    expect_usage(2, "--sample-rate 7 is not valid", "--out", fresh, "--sample-rate", "7", (char *)NULL);
    expect_usage(2, "--force takes no value", "--out", fresh, "--force=1", (char *)NULL);
    expect_usage(2, "is not empty; pass --force", "--out", root, "--videos", "8", (char *)NULL);
    expect_usage(1, "is not a folder", "--out", file, (char *)NULL);
    expect_usage(1, "cannot create the folder", "--out", under_file, (char *)NULL);
    struct stat st;
    CHECK_MSG(stat(fresh, &st) != 0, "a failed argument check created %s", fresh);
    /* --force writes into a non-empty folder */
    char *err = NULL;
    int rc = run_synth(NULL, &err, "--out", root, "--force", "--classes", "2", "--videos", "4", "--seconds", "0.2",
                       "--size", "64x48", (char *)NULL);
    CHECK_MSG(rc == 0, "--force: exit %d: %s", rc, err);
    free(err);
}

int main(void) {
    av_log_set_level(AV_LOG_ERROR);
    const char *base = getenv("TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/avgen-synth-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_tmp)) {
        fprintf(stderr, "cannot create a temporary folder under %s: %s\n", base && *base ? base : "/tmp", strerror(errno));
        return 1;
    }
    char a[1100], b[1100], c[1100], ca[1100], cv[1100], single[1100], fresh[1100];
    snprintf(a, sizeof a, "%s/a", g_tmp);
    snprintf(b, sizeof b, "%s/b", g_tmp);
    snprintf(c, sizeof c, "%s/c", g_tmp);
    snprintf(ca, sizeof ca, "%s/cue-audio", g_tmp);
    snprintf(cv, sizeof cv, "%s/cue-video", g_tmp);
    snprintf(single, sizeof single, "%s/single", g_tmp);
    snprintf(fresh, sizeof fresh, "%s/fresh", g_tmp);
    mkdir(single, 0777);

    /* the barcode reader on a synthetic plane */
    uint8_t plane[16 * 64 * 3];
    for (int j = 0; j < 16; j++)
        for (int i = 0; i < 64; i++) {
            int bit = (0xA53C >> (15 - ((j / 8) * 8 + i / 8))) & 1;
            for (int k = 0; k < 3; k++) plane[(j * 64 + i) * 3 + k] = bit ? 240 : 10;
        }
    CHECK_EQ_I64(synth_barcode_read(plane, 64 * 3, 3), 0xA53C);
    CHECK_EQ_I64(synth_barcode_read(plane + 1, 64 * 3, 3), 0xA53C);
    plane[(3 * 64 + 3) * 3] = 128, plane[(3 * 64 + 4) * 3] = 128, plane[(4 * 64 + 3) * 3] = 128;
    plane[(4 * 64 + 4) * 3] = 128, plane[(2 * 64 + 2) * 3] = 128, plane[(2 * 64 + 3) * 3] = 128;
    plane[(2 * 64 + 4) * 3] = 128, plane[(2 * 64 + 5) * 3] = 128, plane[(3 * 64 + 5) * 3] = 128;
    plane[(4 * 64 + 5) * 3] = 128, plane[(5 * 64 + 2) * 3] = 128, plane[(5 * 64 + 3) * 3] = 128;
    plane[(5 * 64 + 4) * 3] = 128, plane[(5 * 64 + 5) * 3] = 128, plane[(3 * 64 + 2) * 3] = 128;
    plane[(4 * 64 + 2) * 3] = 128;
    CHECK_EQ_I64(synth_barcode_read(plane, 64 * 3, 3), -1);
    CHECK_EQ_I64(synth_frame_count(4.0, 25), 100);
    CHECK_EQ_I64(synth_frame_count(0.001, 25), 1);

    test_dataset(a);
    test_determinism(a, b, c);
    test_cues(ca, cv);
    test_single_files(single);
    test_arguments(a, fresh);

    rm_rf(g_tmp);
    return CHECK_DONE();
}
