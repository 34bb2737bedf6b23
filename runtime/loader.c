/* loader.c: the clip loader (see loader.h). One mutex and condition variable guard the ring: a worker
 * claims batch b only when slot b % ring has been released, fills it without the lock, then marks it
 * ready; the consumer takes batches strictly in order. Clip contents come from the epoch's plan, so they
 * are the same for any number of threads. */
#include "loader.h"

#include <json-c/json.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "avf.h"
#include "fbank.h"
#if !defined(AVGEN_NO_FFMPEG)
#include "media.h"
#endif
#include "rt_fs.h"

typedef struct {
    char name[512];
    char path[2400];
    int label, group, frames;
} ld_video;

typedef struct {
    int video, start;
} ld_clip;

struct ld_loader {
    ld_config cfg;
    int S, fps_num, fps_den, classes;
    ld_video *v;
    int nv;
    ld_clip *clips;
    int64_t nclips, nbatches, epoch;
    ld_batch *slots;
    int64_t *slot_batch;
    int *slot_ready;
    int64_t next_fill, next_out;
    int active, stop;
    int scribble; /* AVGEN_LOADER_SCRIBBLE=1: a released batch is overwritten at once (ld_release) */
    size_t frames_bytes, audio_bytes, labels_bytes; /* a batch's buffers (from cfg.host_alloc) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t *th;
    ld_stats stats;
};

static uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* --------------------------------------------------------------------------------------------- work */

typedef struct {
    ld_loader *l;
    avf_decoder *dec;
    rt_fbank *fb;
    float *wave;
    int64_t wave_cap;
    float *rows;              /* fbank rows of a clip's audio span */
    size_t rows_cap;
} worker_state;

/* One clip into batch slot position i. Returns 0, or -1 when a frame is corrupt (counted). */
static int fill_clip(worker_state *w, ld_batch *b, int i, const ld_clip *c) {
    ld_loader *l = w->l;
    const ld_config *g = &l->cfg;
    const ld_video *v = &l->v[c->video];
    const int T = g->frames, S = l->S, A = g->audio_rows, M = g->mel_bins;
    uint8_t *fr = b->frames + (size_t)i * T * S * S * 3;
    float *au = b->audio + (size_t)i * T * A * M;
    b->labels[i] = v->label, b->video[i] = c->video, b->start[i] = c->start;
    char err[512];
    avf_file f;
    int opened = avf_open(v->path, &f, err, sizeof err) == 0;
    if (!opened || f.size != S || f.sample_rate != 16000) {
        /* unreadable, or prepared with other settings than the folder's first video: never a wrong clip */
        if (opened) avf_close(&f);
        pthread_mutex_lock(&l->mu);
        l->stats.corrupt_frames += T;
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    int bad = 0, padded = 0;
    for (int t = 0; t < T; t++) {
        int k = c->start + t * g->stride;
        if (k >= f.frames) k = f.frames - 1, padded = 1;
        if (avf_read_frame(w->dec, &f, k, fr + (size_t)t * S * S * 3)) bad++;
    }
    /* Audio: the whole waveform without its mean (MODEL.md section 5), a 1 s window per frame. A Kaldi
     * fbank row depends only on its own 25 ms of samples, so when every window starts on the 10 ms hop
     * grid (20 fps at 16 kHz: frame k's window starts at 800 k - 8000) the clip's rows are computed once
     * over the union of its windows and each window is a slice: the same numbers as rt_fbank_window, with
     * 6x (T 8) to 15x (T 64) less work. Other cases fall back to rt_fbank_window per frame. */
    if (f.samples > w->wave_cap) {
        float *nw = realloc(w->wave, sizeof(float) * (size_t)f.samples);
        if (nw) w->wave = nw, w->wave_cap = f.samples;
    }
    const int win = (int)llround(g->window_seconds * 16000), hop = rt_fbank_frame_shift(w->fb);
    const int wrows = rt_fbank_num_frames(w->fb, win);
    int64_t starts[4096], lo = INT64_MAX, hi = 0;
    int aligned = f.samples >= win && T <= 4096 && f.samples <= w->wave_cap;
    for (int t = 0; t < T && aligned; t++) {
        int k = c->start + t * g->stride;
        if (k >= f.frames) k = f.frames - 1;
        int64_t center = (int64_t)llround((double)k * 16000.0 * f.fps_den / f.fps_num);
        int64_t st = center - win / 2;
        if (st > f.samples - win) st = f.samples - win;
        if (st < 0) st = 0;
        starts[t] = st;
        if (st % hop) aligned = 0;
        if (st < lo) lo = st;
        if (st + win > hi) hi = st + win;
    }
    if (f.samples <= w->wave_cap)
        for (int64_t s = 0; s < f.samples; s++) w->wave[s] = (float)(f.audio[s] - f.audio_mean);
    if (aligned) {
        int rows = rt_fbank_num_frames(w->fb, hi - lo);
        if ((size_t)rows * M > w->rows_cap) {
            float *nr = realloc(w->rows, sizeof(float) * (size_t)rows * M);
            if (nr) w->rows = nr, w->rows_cap = (size_t)rows * M;
        }
        if ((size_t)rows * M > w->rows_cap) aligned = 0;
        else rt_fbank_compute(w->fb, w->wave + lo, hi - lo, w->rows);
        for (int t = 0; t < T && aligned; t++) {
            const float *src = w->rows + (size_t)((starts[t] - lo) / hop) * M;
            float *dst = au + (size_t)t * A * M;
            for (size_t i = 0; i < (size_t)wrows * M; i++)
                dst[i] = (float)((src[i] - g->norm_mean) / (2.0 * g->norm_std));
            memset(dst + (size_t)wrows * M, 0, sizeof(float) * (size_t)(A - wrows) * M);
        }
    }
    for (int t = 0; t < T && !aligned && f.samples <= w->wave_cap; t++) {
        int k = c->start + t * g->stride;
        if (k >= f.frames) k = f.frames - 1;
        int64_t center = (int64_t)llround((double)k * 16000.0 * f.fps_den / f.fps_num);
        if (rt_fbank_window(w->fb, w->wave, f.samples, center, win, g->norm_mean, g->norm_std, A, au + (size_t)t * A * M))
            bad++;
    }
    if (f.samples > w->wave_cap) bad++;
    avf_close(&f);
    pthread_mutex_lock(&l->mu);
    l->stats.clips++;
    l->stats.padded_clips += padded;
    l->stats.corrupt_frames += bad;
    pthread_mutex_unlock(&l->mu);
    return bad ? -1 : 0;
}

static void fill_batch(worker_state *w, ld_batch *b, int64_t bi) {
    ld_loader *l = w->l;
    const int B = l->cfg.batch;
    b->index = bi;
    b->count = 0;
    int bad = 0;
    for (int i = 0; i < B; i++) {
        int64_t ci = bi * B + i;
        if (ci >= l->nclips) {
            if (!l->cfg.train) { /* evaluation: a short last batch */
                b->valid[i] = 0, b->labels[i] = -1, b->video[i] = -1, b->start[i] = -1;
                continue;
            }
            ci %= l->nclips; /* training: wrap around to keep B real clips */
        }
        b->count++;
        b->valid[i] = fill_clip(w, b, i, &l->clips[ci]) == 0;
        bad += !b->valid[i];
    }
    if (bad) {
        pthread_mutex_lock(&l->mu);
        l->stats.bad_clips += bad;
        pthread_mutex_unlock(&l->mu);
    }
}

static void *worker(void *arg) {
    worker_state *w = arg;
    ld_loader *l = w->l;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        int64_t b = l->next_fill;
        int s = (int)(b % l->cfg.ring);
        if (l->active && b < l->nbatches && l->slot_batch[s] < 0) {
            l->next_fill++;
            l->slot_batch[s] = b, l->slot_ready[s] = 0;
            pthread_mutex_unlock(&l->mu);
            fill_batch(w, &l->slots[s], b);
            pthread_mutex_lock(&l->mu);
            l->slot_ready[s] = 1;
            pthread_cond_broadcast(&l->cv);
        } else {
            pthread_cond_wait(&l->cv, &l->mu);
        }
    }
    pthread_mutex_unlock(&l->mu);
    avf_decoder_free(w->dec);
    rt_fbank_free(w->fb);
    free(w->wave);
    free(w->rows);
    free(w);
    return NULL;
}

/* ----------------------------------------------------------------------------------------- manifest */

/* Rows are checked as they are read (docs/prepared-data.md): a row with values no `avgen prep` writes (a label
 * outside the manifest's classes for a row with a prepared video, a frame or sample count beyond its prepared
 * file, a negative count, group or clip) is refused with one sentence naming the manifest, the line and video,
 * the key, its value and what was expected, rather than trained on or skipped silently. Only the header of each
 * selected prepared file is read here; a file that cannot be read is left to the workers (corrupt clips). */

static const char *const k_status[] = {"ok", "silent", "no_audio", "unreadable"};

/* An integer key into *v: 1, 0 when absent (*v untouched), -1 with err when present but not an integer. */
static int int_key(json_object *o, const char *key, int64_t *v, const char *row, char *err, size_t errlen) {
    json_object *x;
    if (!json_object_object_get_ex(o, key, &x)) return 0;
    if (!json_object_is_type(x, json_type_int)) {
        snprintf(err, errlen, "%s: \"%s\" is %s; expected an integer", row, key, json_object_to_json_string(x));
        return -1;
    }
    *v = json_object_get_int64(x);
    return 1;
}

typedef struct {
    char *name;
    int64_t label;
    int line;     /* the first usable row of the class (0: none checked yet) */
} ld_class;

/* One row (line lineno, pass 1): checks it and adds it to l->v when the configuration selects it. 0, or -1 with
 * err. cl[0..ncl) are the usable rows' classes (counted in pass 0); bound is their number, or 0 when some usable
 * row names no class (no upper bound on labels then). */
static int take_row(ld_loader *l, json_object *o, const char *p, int lineno, ld_class *cl, int ncl, int bound,
                    int *cap_v, char *err, size_t errlen) {
    json_object *x;
    const char *video = json_object_object_get_ex(o, "video", &x) ? json_object_get_string(x) : "";
    char row[3000];
    if (video && *video) snprintf(row, sizeof row, "%s:%d (%s)", p, lineno, video);
    else snprintf(row, sizeof row, "%s:%d", p, lineno);
    const char *split = json_object_object_get_ex(o, "split", &x) ? json_object_get_string(x) : "";
    const char *out = json_object_object_get_ex(o, "output", &x) ? json_object_get_string(x) : NULL;
    const char *status = json_object_object_get_ex(o, "status", &x) ? json_object_get_string(x) : NULL;
    const char *cls = json_object_object_get_ex(o, "class", &x) ? json_object_get_string(x) : NULL;
    const int prepared = out && *out, usable = prepared || (status && !strcmp(status, "ok"));
    int64_t label = -1, group = -1, clip = -1, frames = 0, samples = 0;
    int has_label, has_frames, has_samples;
    if ((has_label = int_key(o, "label", &label, row, err, errlen)) < 0 || int_key(o, "group", &group, row, err, errlen) < 0 ||
        int_key(o, "clip", &clip, row, err, errlen) < 0 || (has_frames = int_key(o, "frames", &frames, row, err, errlen)) < 0 ||
        (has_samples = int_key(o, "audio_samples", &samples, row, err, errlen)) < 0)
        return -1;
    int st = -1;
    for (int k = 0; status && k < 4; k++)
        if (!strcmp(status, k_status[k])) st = k;
    if (status && st < 0) {
        snprintf(err, errlen, "%s: \"status\" is \"%s\"; expected \"ok\", \"silent\", \"no_audio\" or \"unreadable\"", row, status);
        return -1;
    }
    if (split && *split && strcmp(split, "train") && strcmp(split, "test")) {
        snprintf(err, errlen, "%s: \"split\" is \"%s\"; expected \"train\" or \"test\"", row, split);
        return -1;
    }
    if (prepared && st > 1) {
        snprintf(err, errlen, "%s: \"status\" is \"%s\" but \"output\" names %s; expected \"ok\" or \"silent\" for a row with a "
                 "prepared video", row, status, out);
        return -1;
    }
    if (usable && !prepared) {
        snprintf(err, errlen, "%s: \"output\" is %s; expected the prepared video (videos/<Class>/<stem>.avf) of a row with "
                 "status \"ok\"", row, out ? "\"\"" : "null");
        return -1;
    }
    const char *key = NULL; /* a refused value: key, value, what was expected */
    char value[64], want[1200];
    if (usable && !has_label)
        key = "label", snprintf(want, sizeof want, "a label for a row with a prepared video");
    else if (usable && (label < 0 || label > INT32_MAX || (bound && label >= bound))) {
        key = "label";
        if (bound) snprintf(want, sizeof want, "0..%d (the manifest's %d classes with a prepared video)", bound - 1, bound);
        else snprintf(want, sizeof want, "0..%d for a row with a prepared video", INT32_MAX);
    } else if (label < -1 || label > INT32_MAX)
        key = "label", snprintf(want, sizeof want, "-1 (a class with no prepared video) or 0..%d", INT32_MAX);
    else if (group < -1 || group > INT32_MAX)
        key = "group", snprintf(want, sizeof want, "-1 (none) or 0..%d", INT32_MAX);
    else if (clip < -1 || clip > INT32_MAX)
        key = "clip", snprintf(want, sizeof want, "-1 (none) or 0..%d", INT32_MAX);
    else if (usable && (!has_frames || frames < 1 || frames > INT32_MAX))
        key = "frames", snprintf(want, sizeof want, "1..%d for a row with a prepared video", INT32_MAX);
    else if (frames < 0 || frames > INT32_MAX)
        key = "frames", snprintf(want, sizeof want, "0..%d", INT32_MAX);
    else if (samples < 0)
        key = "audio_samples", snprintf(want, sizeof want, "0 or more");
    if (!key && usable && cls) { /* one label a class and one class a label, as avgen prep gives them */
        for (int i = 0; i < ncl && !key; i++) {
            if (!cl[i].line) continue;
            if (!strcmp(cl[i].name, cls) && cl[i].label != label)
                key = "label", snprintf(want, sizeof want, "%lld, the label of class \"%s\" at line %d", (long long)cl[i].label,
                                        cls, cl[i].line);
            else if (strcmp(cl[i].name, cls) && cl[i].label == label)
                key = "label", snprintf(want, sizeof want, "a label of class \"%s\" alone (line %d gives %lld to class \"%s\")",
                                        cls, cl[i].line, (long long)label, cl[i].name);
        }
        for (int i = 0; i < ncl && !key; i++)
            if (!cl[i].line && !strcmp(cl[i].name, cls)) cl[i].label = label, cl[i].line = lineno;
    }
    if (key) {
        int64_t v = !strcmp(key, "label") ? label : !strcmp(key, "group") ? group : !strcmp(key, "clip") ? clip
                  : !strcmp(key, "frames") ? frames : samples;
        int present = json_object_object_get_ex(o, key, &x);
        if (present) snprintf(value, sizeof value, "%lld", (long long)v);
        snprintf(err, errlen, "%s: \"%s\" is %s; expected %s", row, key, present ? value : "missing", want);
        return -1;
    }
    if (label + 1 > l->classes) l->classes = (int)(label + 1);
    int take = prepared && label >= 0 && frames > 0 && !strcmp(split, l->cfg.split);
    if (take && !strcmp(l->cfg.split, "train") && l->cfg.holdout != LD_ALL) {
        int val = group >= 0 && group % l->cfg.val_every == 0;
        take = l->cfg.holdout == LD_VAL_ONLY ? val : !val;
    }
    if (!take) return 0;
    if (l->nv == *cap_v) {
        int nc = *cap_v ? *cap_v * 2 : 256;
        ld_video *nv = realloc(l->v, sizeof *l->v * (size_t)nc);
        if (!nv) { snprintf(err, errlen, "out of memory reading %s", p); return -1; }
        l->v = nv, *cap_v = nc;
    }
    ld_video *v = &l->v[l->nv];
    snprintf(v->name, sizeof v->name, "%s", video ? video : "");
    snprintf(v->path, sizeof v->path, "%s/%s", l->cfg.dir, out);
    v->label = (int)label, v->group = (int)group, v->frames = (int)frames;
    int64_t hf, hs;
    if (!avf_header_counts(v->path, &hf, &hs) && (frames > hf || (has_samples && samples > hs))) {
        const int fr = frames > hf;
        snprintf(err, errlen, "%s: \"%s\" is %lld; expected at most %lld, the %s that %s holds", row,
                 fr ? "frames" : "audio_samples", (long long)(fr ? frames : samples), (long long)(fr ? hf : hs),
                 fr ? "frames" : "audio samples", out);
        return -1;
    }
    l->nv++;
    return 0;
}

static int read_manifest(ld_loader *l, char *err, size_t errlen) {
    char p[2400];
    snprintf(p, sizeof p, "%s/manifest.jsonl", l->cfg.dir);
    FILE *f = fopen(p, "r");
    if (!f) {
        snprintf(err, errlen, "cannot read %s; expected a folder written by avgen prep", p);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int cap_v = 0, rc = 0, ncl = 0, cap_cl = 0, unnamed = 0;
    ld_class *cl = NULL;
    /* pass 0: the classes of the usable rows (a prepared video, or status "ok"), labelled 0 .. their number - 1;
     * pass 1: every row checked, the selected ones taken */
    for (int pass = 0; pass < 2 && !rc; pass++) {
        rewind(f);
        int lineno = 0;
        while (!rc && getline(&line, &cap, f) > 0) {
            lineno++;
            json_object *o = json_tokener_parse(line), *x;
            if (!o || !json_object_is_type(o, json_type_object)) {
                snprintf(err, errlen, "%s:%d: not a JSON object", p, lineno);
                rc = -1;
            } else if (pass == 1) {
                rc = take_row(l, o, p, lineno, cl, ncl, unnamed ? 0 : ncl, &cap_v, err, errlen);
            } else {
                const char *out = json_object_object_get_ex(o, "output", &x) ? json_object_get_string(x) : NULL;
                const char *status = json_object_object_get_ex(o, "status", &x) ? json_object_get_string(x) : NULL;
                const char *cls = json_object_object_get_ex(o, "class", &x) ? json_object_get_string(x) : NULL;
                if ((out && *out) || (status && !strcmp(status, "ok"))) {
                    int seen = !cls;
                    unnamed |= !cls;
                    for (int i = 0; i < ncl && !seen; i++) seen = !strcmp(cl[i].name, cls);
                    if (!seen && ncl == cap_cl) {
                        ld_class *nc = realloc(cl, sizeof *cl * (size_t)(cap_cl ? cap_cl * 2 : 64));
                        if (nc) cl = nc, cap_cl = cap_cl ? cap_cl * 2 : 64;
                    }
                    if (!seen && (ncl == cap_cl || !(cl[ncl].name = strdup(cls)))) {
                        snprintf(err, errlen, "out of memory reading %s", p);
                        rc = -1;
                    } else if (!seen) {
                        cl[ncl].label = -1, cl[ncl++].line = 0;
                    }
                }
            }
            json_object_put(o);
        }
    }
    for (int i = 0; i < ncl; i++) free(cl[i].name);
    free(cl);
    free(line);
    fclose(f);
    if (rc) return -1;
    if (l->nv == 0) {
        snprintf(err, errlen, "%s selects no prepared video for split \"%s\"%s", p, l->cfg.split,
                 l->cfg.holdout == LD_VAL_ONLY ? " in the validation groups" : "");
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------------------------------------------- API */

ld_loader *ld_open(const ld_config *cfg, char *err, size_t errlen) {
    if (cfg->frames < 1 || cfg->stride < 1 || cfg->batch < 1 || cfg->threads < 1 || cfg->audio_rows < 1 ||
        cfg->mel_bins < 1 || !(cfg->norm_std > 0) || !(cfg->window_seconds > 0)) {
        snprintf(err, errlen, "loader: frames, stride, batch, threads, audio rows, mel bins, the window length and the "
                              "audio std must all be positive");
        return NULL;
    }
    ld_loader *l = calloc(1, sizeof *l);
    if (!l) { snprintf(err, errlen, "out of memory"); return NULL; }
    l->cfg = *cfg;
    if (!l->cfg.host_alloc || !l->cfg.host_free) l->cfg.host_alloc = malloc, l->cfg.host_free = free;
    const char *scr = getenv("AVGEN_LOADER_SCRIBBLE");
    l->scribble = scr && !strcmp(scr, "1");
    if (l->cfg.ring < 2) l->cfg.ring = 2;
    if (l->cfg.val_every < 2) l->cfg.val_every = 5;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (read_manifest(l, err, errlen)) { ld_close(l); return NULL; }
    avf_file f;
    if (avf_open(l->v[0].path, &f, err, errlen)) { ld_close(l); return NULL; }
    l->S = f.size, l->fps_num = f.fps_num, l->fps_den = f.fps_den;
    avf_close(&f);
#if !defined(AVGEN_NO_FFMPEG)
    media_quiet();
#endif
    rt_fbank *probe = rt_fbank_new(16000, cfg->mel_bins);
    int rows = probe ? rt_fbank_num_frames(probe, (int64_t)llround(cfg->window_seconds * 16000)) : 0;
    rt_fbank_free(probe);
    if (rows <= 0 || rows > cfg->audio_rows) {
        snprintf(err, errlen, "loader: a %.3g s window gives %d fbank rows; audio rows %d must hold them", cfg->window_seconds,
                 rows, cfg->audio_rows);
        ld_close(l);
        return NULL;
    }
    const int R = l->cfg.ring, B = cfg->batch, T = cfg->frames, S = l->S;
    l->slots = calloc((size_t)R, sizeof *l->slots);
    l->slot_batch = malloc(sizeof(int64_t) * (size_t)R);
    l->slot_ready = calloc((size_t)R, sizeof(int));
    if (!l->slots || !l->slot_batch || !l->slot_ready) { snprintf(err, errlen, "out of memory"); ld_close(l); return NULL; }
    l->frames_bytes = (size_t)B * T * S * S * 3;
    l->audio_bytes = sizeof(float) * (size_t)B * T * cfg->audio_rows * cfg->mel_bins;
    l->labels_bytes = sizeof(int64_t) * (size_t)B;
    for (int s = 0; s < R; s++) {
        ld_batch *b = &l->slots[s];
        l->slot_batch[s] = -1;
        b->frames = l->cfg.host_alloc(l->frames_bytes);
        b->audio = l->cfg.host_alloc(l->audio_bytes);
        b->labels = l->cfg.host_alloc(l->labels_bytes);
        b->video = malloc(sizeof(int32_t) * (size_t)B);
        b->start = malloc(sizeof(int32_t) * (size_t)B);
        b->valid = malloc((size_t)B);
        if (!b->frames || !b->audio || !b->labels || !b->video || !b->start || !b->valid) {
            snprintf(err, errlen, "cannot allocate %d batch buffers of %.1f MiB", R,
                     (double)(l->frames_bytes + l->audio_bytes) / 1048576.0);
            ld_close(l);
            return NULL;
        }
    }
    l->th = calloc((size_t)cfg->threads, sizeof(pthread_t));
    for (int i = 0; l->th && i < cfg->threads; i++) {
        worker_state *w = calloc(1, sizeof *w);
        if (w) w->l = l, w->dec = avf_decoder_new(), w->fb = rt_fbank_new(16000, cfg->mel_bins);
        if (!w || !w->dec || !w->fb || pthread_create(&l->th[i], NULL, worker, w)) {
            snprintf(err, errlen, "cannot start loader thread %d", i);
            if (w) avf_decoder_free(w->dec), rt_fbank_free(w->fb), free(w);
            l->cfg.threads = i;
            ld_close(l);
            return NULL;
        }
    }
    return l;
}

int ld_size(const ld_loader *l) { return l->S; }
int ld_videos(const ld_loader *l) { return l->nv; }
const char *ld_video_name(const ld_loader *l, int i) { return l->v[i].name; }
int ld_video_label(const ld_loader *l, int i) { return l->v[i].label; }
int ld_classes(const ld_loader *l) { return l->classes; }
int64_t ld_batches_per_epoch(const ld_loader *l) { return l->nbatches; }

int ld_start_epoch(ld_loader *l, int64_t epoch) {
    const ld_config *g = &l->cfg;
    const int span = (g->frames - 1) * g->stride + 1;
    pthread_mutex_lock(&l->mu);
    /* wait until the workers are idle on the previous epoch's batches */
    while (l->active && l->next_fill > l->next_out) {
        int busy = 0;
        for (int s = 0; s < g->ring; s++) busy |= l->slot_batch[s] >= 0 && !l->slot_ready[s];
        if (!busy) break;
        pthread_cond_wait(&l->cv, &l->mu);
    }
    for (int s = 0; s < g->ring; s++) l->slot_batch[s] = -1, l->slot_ready[s] = 0;
    free(l->clips);
    int64_t cap = 0;
    for (int i = 0; i < l->nv; i++) cap += g->train ? 1 : (l->v[i].frames < span ? 1 : l->v[i].frames / span);
    l->clips = malloc(sizeof *l->clips * (size_t)(cap + 1));
    if (!l->clips) {
        l->active = 0, l->nbatches = 0, l->nclips = 0;
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    l->nclips = 0;
    if (g->train) {
        int *order = malloc(sizeof(int) * (size_t)l->nv);
        if (!order) {
            l->active = 0, l->nbatches = 0, l->nclips = 0;
            pthread_mutex_unlock(&l->mu);
            return -1;
        }
        for (int i = 0; i < l->nv; i++) order[i] = i;
        uint64_t r = mix(g->seed ^ mix((uint64_t)epoch + 1));
        for (int i = l->nv - 1; i > 0; i--) {
            r = mix(r);
            int j = (int)(r % (uint64_t)(i + 1));
            int t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (int i = 0; i < l->nv; i++) {
            const ld_video *v = &l->v[order[i]];
            r = mix(r);
            int starts = v->frames - span + 1;
            l->clips[l->nclips++] = (ld_clip){order[i], starts > 1 ? (int)(r % (uint64_t)starts) : 0};
        }
        free(order);
        l->nbatches = (l->nclips + g->batch - 1) / g->batch;
    } else {
        for (int i = 0; i < l->nv; i++) {
            const ld_video *v = &l->v[i];
            if (v->frames < span) l->clips[l->nclips++] = (ld_clip){i, 0};
            else
                for (int s = 0; s + span <= v->frames; s += span) l->clips[l->nclips++] = (ld_clip){i, s};
        }
        l->nbatches = (l->nclips + g->batch - 1) / g->batch;
    }
    l->epoch = epoch, l->next_fill = 0, l->next_out = 0, l->active = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

const ld_batch *ld_next(ld_loader *l) {
    double t0 = rt_now();
    pthread_mutex_lock(&l->mu);
    if (!l->active || l->next_out >= l->nbatches) {
        pthread_mutex_unlock(&l->mu);
        return NULL;
    }
    int64_t b = l->next_out;
    int s = (int)(b % l->cfg.ring);
    while (!(l->slot_batch[s] == b && l->slot_ready[s])) pthread_cond_wait(&l->cv, &l->mu);
    l->next_out++;
    l->stats.wait_seconds += rt_now() - t0;
    pthread_mutex_unlock(&l->mu);
    return &l->slots[s];
}

void ld_release(ld_loader *l, const ld_batch *b) {
    pthread_mutex_lock(&l->mu);
    int s = (int)(b - l->slots);
    if (l->scribble && s >= 0 && s < l->cfg.ring) {  /* a test hook: whoever still reads the batch reads garbage */
        memset(l->slots[s].frames, 0xa5, l->frames_bytes);
        memset(l->slots[s].audio, 0xff, l->audio_bytes);
        memset(l->slots[s].labels, 0xff, l->labels_bytes);
    }
    if (s >= 0 && s < l->cfg.ring) l->slot_batch[s] = -1, l->slot_ready[s] = 0;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
}

ld_stats ld_get_stats(const ld_loader *l) {
    ld_stats s;
    pthread_mutex_lock((pthread_mutex_t *)&l->mu);
    s = l->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&l->mu);
    return s;
}

void ld_close(ld_loader *l) {
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; l->th && i < l->cfg.threads; i++) pthread_join(l->th[i], NULL);
    free(l->th);
    for (int s = 0; l->slots && s < l->cfg.ring; s++) {
        ld_batch *b = &l->slots[s];
        l->cfg.host_free(b->frames), l->cfg.host_free(b->audio), l->cfg.host_free(b->labels);
        free(b->video), free(b->start), free(b->valid);
    }
    free(l->slots);
    free(l->slot_batch);
    free(l->slot_ready);
    free(l->clips);
    free(l->v);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

int ld_class_names(const char *dir, char (*names)[128], int n) {
    for (int i = 0; i < n; i++) names[i][0] = 0;
    char p[2400];
    snprintf(p, sizeof p, "%s/manifest.jsonl", dir);
    FILE *f = fopen(p, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    int named = 0;
    while (getline(&line, &cap, f) > 0) {
        json_object *o = json_tokener_parse(line), *x, *y;
        if (o && json_object_object_get_ex(o, "label", &x) && json_object_object_get_ex(o, "class", &y) &&
            json_object_is_type(x, json_type_int) && json_object_is_type(y, json_type_string)) {
            const int64_t l = json_object_get_int64(x);
            if (l >= 0 && l < n && !names[l][0]) {
                snprintf(names[l], 128, "%s", json_object_get_string(y));
                named += names[l][0] != 0;
            }
        }
        json_object_put(o);
    }
    free(line);
    fclose(f);
    return named;
}
