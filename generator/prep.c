/* avgen prep: probe every listed video, keep those with usable audio, write each as a prepared video
 * (frames at the target rate scaled to S x S as JPEG, 16 kHz mono audio; runtime/avf.h) on all cores,
 * then the manifest and the training set's fbank statistics. Resumable: each video's record is written
 * atomically after its prepared file, so a killed run (even kill -9) loses only the videos in flight
 * and a re-run redoes exactly those. */
#include "prep.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "avf.h"
#include "fbank.h"
#include "media.h"
#include "rt_fs.h"

static const char *const usage =
    "usage: avgen prep --src DIR --splits DIR --out DIR [--split N] [--fps 20] [--size 224] [--jobs N]\n"
    "                  [--quality 3 | --raw] [--include-silent]\n"
    "\n"
    "Prepares UCF101 (or any DIR/<Class>/<video> folder with UCF-style split lists: classInd.txt,\n"
    "trainlist0N.txt, testlist0N.txt) for training: probes every video of split N's lists (usable audio,\n"
    "silent audio, no audio, unreadable, with the reason), keeps those with audio, and writes each as a\n"
    "prepared video: frames at --fps scaled (whole frame) to --size x --size and stored as JPEG of\n"
    "quality --quality (2 best .. 31), 16 kHz mono audio. Then OUT/manifest.jsonl (one object a listed\n"
    "video) and OUT/stats.json (the training set's fbank mean and std for audio.norm_mean/norm_std).\n"
    "Classes are those with at least one kept video, re-indexed 0.. in alphabetical order. Runs on --jobs\n"
    "threads (default: every core) with a progress bar; an interrupted run resumes where it stopped.\n"
    "Formats: docs/prepared-data.md.\n"
    "  --raw              store the frames uncompressed (RGB24: 3 x size^2 bytes a frame, ~15x JPEG q3;\n"
    "                     what a build without FFmpeg, such as the GPU machine's, reads; no faster)\n"
    "  --include-silent   also keep videos whose audio is digital silence (default: exclude)\n";

typedef struct {
    char rel[512];        /* as listed: Class/v_..._gGG_cCC.avi */
    char path[2048];      /* resolved under --src */
    char cls[128];        /* canonical class name (classInd) */
    char stem[256];       /* file name without extension */
    int group, clip;
    int test;             /* split membership */
    int label;            /* filled after probing */
    media_status status;
    char reason[256];
    int frames;
    int64_t samples;
    char output[1024];    /* relative to --out, "" when not kept */
    int skipped;          /* resumed from an earlier run */
} entry;

typedef struct {
    const char *src, *out;
    int fps, size, quality, include_silent; /* quality 0: raw frames (--raw) */
    entry *e;
    int n;
    atomic_int next;
    pthread_mutex_t mu;
    int done, resumed;
    double t0;
    int tty;
    atomic_int failed;    /* I/O failure: stop */
    char fail_msg[4096];
} prep_ctx;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ------------------------------------------------------------------------------------------ lists */

/* Next line without CR/LF and surrounding white space; NULL at the end. */
static char *next_line(char **cur) {
    char *s = *cur;
    if (!s || !*s) return NULL;
    char *e = strchr(s, '\n');
    *cur = e ? e + 1 : s + strlen(s);
    if (e) *e = 0;
    size_t l = strlen(s);
    while (l && (s[l - 1] == '\r' || isspace((unsigned char)s[l - 1]))) s[--l] = 0;
    while (isspace((unsigned char)*s)) s++;
    return s;
}

/* A path under root whose components match rel case-insensitively (exact first). */
static int resolve_ci(const char *root, const char *rel, char *out, size_t n) {
    snprintf(out, n, "%s/%s", root, rel);
    struct stat st;
    if (stat(out, &st) == 0) return 0;
    char cur[2048], part[512];
    snprintf(cur, sizeof cur, "%s", root);
    const char *p = rel;
    while (*p) {
        const char *sl = strchr(p, '/');
        size_t l = sl ? (size_t)(sl - p) : strlen(p);
        snprintf(part, sizeof part, "%.*s", (int)l, p);
        DIR *d = opendir(cur);
        if (!d) return -1;
        struct dirent *de;
        int found = 0;
        while ((de = readdir(d))) {
            if (!strcasecmp(de->d_name, part)) {
                size_t cl = strlen(cur);
                snprintf(cur + cl, sizeof cur - cl, "/%s", de->d_name);
                found = 1;
                break;
            }
        }
        closedir(d);
        if (!found) return -1;
        p = sl ? sl + 1 : p + l;
    }
    snprintf(out, n, "%s", cur);
    return 0;
}

static int parse_group_clip(const char *stem, int *g, int *c) {
    const char *p = strstr(stem, "_g");
    while (p) {
        int gg, cc, n = 0;
        if (sscanf(p, "_g%d_c%d%n", &gg, &cc, &n) == 2 && n > 0) {
            *g = gg, *c = cc;
            return 0;
        }
        p = strstr(p + 2, "_g");
    }
    return -1;
}

/* ----------------------------------------------------------------------------------------- records */

static void record_path(const prep_ctx *c, const entry *e, char *out, size_t n) {
    snprintf(out, n, "%s/records/%s/%s.json", c->out, e->cls, e->stem);
}

static int load_record(prep_ctx *c, entry *e, const struct stat *src) {
    char rp[2400];
    record_path(c, e, rp, sizeof rp);
    json_object *o = json_object_from_file(rp);
    if (!o) return -1;
    json_object *v;
    int ok = 1;
#define GETI(k) (json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1)
    ok &= GETI("source_bytes") == (int64_t)src->st_size;
    ok &= GETI("source_mtime") == (int64_t)src->st_mtime;
    ok &= GETI("source_mtime_ns") == (int64_t)src->st_mtim.tv_nsec;
    ok &= GETI("fps") == c->fps && GETI("size") == c->size && GETI("quality") == c->quality;
    ok &= GETI("include_silent") == c->include_silent;
    const char *st = json_object_object_get_ex(o, "status", &v) ? json_object_get_string(v) : "";
    int s = -1;
    for (int k = 0; k < 4; k++)
        if (!strcmp(st, media_status_name((media_status)k))) s = k;
    ok &= s >= 0;
    if (ok) {
        e->status = (media_status)s;
        snprintf(e->reason, sizeof e->reason, "%s", json_object_object_get_ex(o, "reason", &v) ? json_object_get_string(v) : "");
        e->frames = (int)GETI("frames");
        e->samples = GETI("audio_samples");
        snprintf(e->output, sizeof e->output, "%s", json_object_object_get_ex(o, "output", &v) && json_object_get_string(v) ? json_object_get_string(v) : "");
        if (e->output[0]) { /* the prepared file must still be there and valid */
            char full[2400], err[256];
            snprintf(full, sizeof full, "%s/%s", c->out, e->output);
            avf_file f;
            if (avf_open(full, &f, err, sizeof err)) ok = 0;
            else {
                /* the file must be what this record and these settings describe */
                ok &= f.size == c->size && f.fps_num == c->fps && f.fps_den == 1 && f.frames == e->frames &&
                      f.samples == e->samples && f.quality == c->quality &&
                      f.codec == (c->quality ? AVF_JPEG : AVF_RAW);
                avf_close(&f);
            }
        }
    }
#undef GETI
    json_object_put(o);
    return ok ? 0 : -1;
}

static int save_record(prep_ctx *c, const entry *e, const struct stat *src) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "video", json_object_new_string(e->rel));
    json_object_object_add(o, "status", json_object_new_string(media_status_name(e->status)));
    json_object_object_add(o, "reason", json_object_new_string(e->reason));
    json_object_object_add(o, "frames", json_object_new_int(e->frames));
    json_object_object_add(o, "audio_samples", json_object_new_int64(e->samples));
    json_object_object_add(o, "output", e->output[0] ? json_object_new_string(e->output) : NULL);
    json_object_object_add(o, "source_bytes", json_object_new_int64((int64_t)src->st_size));
    json_object_object_add(o, "source_mtime", json_object_new_int64((int64_t)src->st_mtime));
    json_object_object_add(o, "source_mtime_ns", json_object_new_int64((int64_t)src->st_mtim.tv_nsec));
    json_object_object_add(o, "fps", json_object_new_int(c->fps));
    json_object_object_add(o, "size", json_object_new_int(c->size));
    json_object_object_add(o, "quality", json_object_new_int(c->quality));
    json_object_object_add(o, "include_silent", json_object_new_int(c->include_silent));
    char rp[2400], dir[2400];
    record_path(c, e, rp, sizeof rp);
    snprintf(dir, sizeof dir, "%s/records/%s", c->out, e->cls);
    int rc = rt_mkdirs(dir) || rt_write_atomic(rp, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
    return rc;
}

/* -------------------------------------------------------------------------------------------- work */

static int on_frame(void *user, int index, const uint8_t *rgb) {
    (void)index;
    return avf_writer_frame((avf_writer *)user, rgb) ? 1 : 0;
}

static void progress(prep_ctx *c, int final) {
    double el = now() - c->t0;
    double rate = el > 0 ? (c->done - c->resumed) / el : 0;
    double eta = rate > 0 ? (c->n - c->done) / rate : 0;
    int w = 30, fill = c->n ? c->done * w / c->n : w;
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
    bar[w] = 0;
    if (c->tty || final || c->done % (c->n / 20 + 1) == 0)
        fprintf(stderr, "%s[%s] %d/%d videos (%d resumed), %.1f videos/s, ETA %d:%02d%s", c->tty ? "\r" : "", bar, c->done,
                c->n, c->resumed, rate, (int)eta / 60, (int)eta % 60, c->tty && !final ? "" : "\n");
}

static void process(prep_ctx *c, entry *e) {
    struct stat st;
    if (stat(e->path, &st) != 0) {
        e->status = MEDIA_UNREADABLE;
        snprintf(e->reason, sizeof e->reason, "missing (%s)", strerror(errno));
        memset(&st, 0, sizeof st);
        save_record(c, e, &st);
        return;
    }
    if (load_record(c, e, &st) == 0) {
        e->skipped = 1;
        return;
    }
    media_info info;
    media_probe(e->path, &info);
    e->status = info.status;
    snprintf(e->reason, sizeof e->reason, "%s", info.reason);
    e->frames = 0, e->samples = 0, e->output[0] = 0;
    if (info.status == MEDIA_OK || (info.status == MEDIA_SILENT && c->include_silent)) {
        char rel[1024], full[2400], dir[2400], err[1024];
        snprintf(rel, sizeof rel, "videos/%s/%s.avf", e->cls, e->stem);
        snprintf(full, sizeof full, "%s/%s", c->out, rel);
        snprintf(dir, sizeof dir, "%s/videos/%s", c->out, e->cls);
        if (rt_mkdirs(dir)) {
            pthread_mutex_lock(&c->mu);
            c->failed = 1;
            snprintf(c->fail_msg, sizeof c->fail_msg, "cannot create %s (%s)", dir, strerror(errno));
            pthread_mutex_unlock(&c->mu);
            return;
        }
        avf_writer *w = avf_writer_open(full, c->size, c->fps, 1, c->quality ? AVF_JPEG : AVF_RAW, c->quality, err,
                                       sizeof err);
        media_target t = {c->size, c->fps, 1, 16000};
        media_output mo;
        if (!w) {
            pthread_mutex_lock(&c->mu);
            c->failed = 1;
            snprintf(c->fail_msg, sizeof c->fail_msg, "%s", err);
            pthread_mutex_unlock(&c->mu);
            return;
        }
        if (media_decode(e->path, &t, on_frame, w, &mo, err, sizeof err)) {
            avf_writer_abort(w);
            e->status = MEDIA_UNREADABLE;
            snprintf(e->reason, sizeof e->reason, "decoding failed: %.200s", err);
        } else if (avf_writer_finish(w, mo.audio, mo.samples, 16000, err, sizeof err)) {
            media_output_free(&mo);
            pthread_mutex_lock(&c->mu);
            c->failed = 1;
            snprintf(c->fail_msg, sizeof c->fail_msg, "%s", err);
            pthread_mutex_unlock(&c->mu);
            return;
        } else if (mo.samples == 0) {
            /* an audio stream that holds nothing at or after the first video frame */
            media_output_free(&mo);
            snprintf(full, sizeof full, "%s/%s", c->out, rel);
            unlink(full);
            e->status = MEDIA_NO_AUDIO;
            snprintf(e->reason, sizeof e->reason, "the audio stream ends before the video starts");
        } else {
            e->frames = mo.frames, e->samples = mo.samples;
            snprintf(e->output, sizeof e->output, "%s", rel);
            if (mo.corrupt) snprintf(e->reason, sizeof e->reason, "%lld corrupt packets skipped", (long long)mo.corrupt);
            else e->reason[0] = 0;
            media_output_free(&mo);
        }
    }
    if (save_record(c, e, &st)) {
        pthread_mutex_lock(&c->mu);
        c->failed = 1;
        snprintf(c->fail_msg, sizeof c->fail_msg, "cannot write the record of %s under %s/records", e->rel, c->out);
        pthread_mutex_unlock(&c->mu);
    }
}

static void *worker(void *arg) {
    prep_ctx *c = arg;
    for (;;) {
        int i = atomic_fetch_add(&c->next, 1);
        if (i >= c->n || c->failed) break;
        process(c, &c->e[i]);
        pthread_mutex_lock(&c->mu);
        c->done++;
        c->resumed += c->e[i].skipped;
        progress(c, 0);
        pthread_mutex_unlock(&c->mu);
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int gen_prep_main(int argc, char **argv) {
    const char *src = NULL, *splits = NULL, *out = NULL;
    int split = 1, fps = 20, size = 224, jobs = (int)sysconf(_SC_NPROCESSORS_ONLN), quality = 3, include_silent = 0;
    int raw = 0, quality_given = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--include-silent")) { include_silent = 1; continue; }
        if (!strcmp(a, "--raw")) { raw = 1; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "avgen prep: unknown option or missing value: %s (see avgen prep --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        long x = strtol(v, &end, 10);
        int isnum = *v && !*end;
        if (!strcmp(a, "--src")) src = v;
        else if (!strcmp(a, "--splits")) splits = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--split") && isnum && x >= 1 && x <= 3) split = (int)x;
        else if (!strcmp(a, "--fps") && isnum && x >= 1 && x <= 240) fps = (int)x;
        else if (!strcmp(a, "--size") && isnum && x >= 16 && x <= 4096 && x % 2 == 0) size = (int)x;
        else if (!strcmp(a, "--jobs") && isnum && x >= 1 && x <= 1024) jobs = (int)x;
        else if (!strcmp(a, "--quality") && isnum && x >= 2 && x <= 31) quality = (int)x, quality_given = 1;
        else {
            fprintf(stderr, "avgen prep: %s %s is not valid; expected %s (see avgen prep --help)\n", a, v,
                    !strcmp(a, "--split") ? "1, 2 or 3" : !strcmp(a, "--fps") ? "an integer from 1 to 240"
                    : !strcmp(a, "--size") ? "an even integer from 16 to 4096" : !strcmp(a, "--jobs") ? "an integer from 1 to 1024"
                    : !strcmp(a, "--quality") ? "an integer from 2 (best) to 31" : "a known option");
            return 2;
        }
    }
    if (!src || !splits || !out) {
        fprintf(stderr, "avgen prep: --src, --splits and --out are required (see avgen prep --help)\n");
        return 2;
    }
    if (raw && quality_given) {
        fprintf(stderr, "avgen prep: --quality is the JPEG quality and --raw stores no JPEG; give one of them\n");
        return 2;
    }
    if (raw) quality = 0;
    struct stat st;
    if (stat(src, &st) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "avgen prep: --src %s is not a folder; expected the folder of <Class>/<video> files\n", src);
        return 2;
    }
    /* classInd.txt */
    char p[2400];
    snprintf(p, sizeof p, "%s/classInd.txt", splits);
    char *ci = rt_read_file(p, NULL);
    if (!ci) {
        fprintf(stderr, "avgen prep: cannot read %s (%s); expected the split lists folder (ucfTrainTestlist)\n", p,
                strerror(errno));
        return 2;
    }
    char *classes[1024];
    int nc = 0;
    char *cur = ci, *line;
    int lineno = 0;
    while ((line = next_line(&cur))) {
        lineno++;
        if (!*line) continue;
        int idx, off = 0;
        if (sscanf(line, "%d %n", &idx, &off) != 1 || !line[off] || nc >= 1024) {
            fprintf(stderr, "avgen prep: %s:%d: \"%s\" is not a class line; expected \"<index> <ClassName>\"\n", p, lineno, line);
            free(ci);
            return 2;
        }
        classes[nc++] = line + off;
    }
    if (nc < 2) {
        fprintf(stderr, "avgen prep: %s lists %d classes; expected at least 2\n", p, nc);
        free(ci);
        return 2;
    }
    /* the split's lists */
    entry *e = NULL;
    int n = 0, cap = 0;
    char *texts[2] = {NULL, NULL};
    for (int t = 0; t < 2; t++) {
        snprintf(p, sizeof p, "%s/%s%02d.txt", splits, t ? "testlist" : "trainlist", split);
        texts[t] = rt_read_file(p, NULL);
        if (!texts[t]) {
            fprintf(stderr, "avgen prep: cannot read %s (%s)\n", p, strerror(errno));
            free(ci), free(texts[0]), free(e);
            return 2;
        }
        cur = texts[t];
        lineno = 0;
        while ((line = next_line(&cur))) {
            lineno++;
            if (!*line) continue;
            char rel[512];
            if (sscanf(line, "%511s", rel) != 1) continue; /* a trailing label is ignored */
            const char *sl = strchr(rel, '/');
            if (!sl) {
                fprintf(stderr, "avgen prep: %s:%d: \"%s\" has no class folder; expected <Class>/<video>\n", p, lineno, rel);
                free(ci), free(texts[0]), free(texts[1]), free(e);
                return 2;
            }
            int k = -1;
            for (int j = 0; j < nc; j++)
                if ((int)strlen(classes[j]) == (int)(sl - rel) && !strncasecmp(classes[j], rel, (size_t)(sl - rel))) k = j;
            if (k < 0) {
                fprintf(stderr, "avgen prep: %s:%d: the class folder of \"%s\" is not in classInd.txt\n", p, lineno, rel);
                free(ci), free(texts[0]), free(texts[1]), free(e);
                return 2;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 1024;
                entry *ne = realloc(e, sizeof *e * (size_t)cap);
                if (!ne) { fprintf(stderr, "avgen prep: out of memory\n"); free(e); return 1; }
                e = ne;
            }
            entry *x = &e[n++];
            memset(x, 0, sizeof *x);
            snprintf(x->rel, sizeof x->rel, "%s", rel);
            snprintf(x->cls, sizeof x->cls, "%s", classes[k]);
            const char *base = strrchr(rel, '/') + 1;
            snprintf(x->stem, sizeof x->stem, "%s", base);
            char *dot = strrchr(x->stem, '.');
            if (dot) *dot = 0;
            x->group = x->clip = -1;
            parse_group_clip(x->stem, &x->group, &x->clip);
            x->test = t;
            if (resolve_ci(src, rel, x->path, sizeof x->path)) snprintf(x->path, sizeof x->path, "%s/%s", src, rel);
        }
    }
    if (n == 0) {
        fprintf(stderr, "avgen prep: the lists of split %d name no video\n", split);
        free(ci), free(texts[0]), free(texts[1]);
        return 2;
    }
    if (rt_mkdirs(out)) {
        fprintf(stderr, "avgen prep: cannot create %s (%s)\n", out, strerror(errno));
        free(ci), free(texts[0]), free(texts[1]), free(e);
        return 1;
    }
    rt_remove_partial(out, 3);
    media_quiet();

    prep_ctx c;
    memset(&c, 0, sizeof c);
    c.src = src, c.out = out, c.fps = fps, c.size = size, c.quality = quality, c.include_silent = include_silent;
    c.e = e, c.n = n, c.t0 = now(), c.tty = isatty(2);
    atomic_init(&c.next, 0);
    atomic_init(&c.failed, 0);
    pthread_mutex_init(&c.mu, NULL);
    if (jobs > n) jobs = n;
    fprintf(stderr, "avgen prep: %d videos listed in split %d (%d classes in classInd.txt), %d threads\n", n, split, nc, jobs);
    pthread_t th[1024];
    int started = 0;
    for (int i = 0; i < jobs; i++)
        if (pthread_create(&th[started], NULL, worker, &c) == 0) started++;
    if (!started) worker(&c); /* no thread could start: work on this one */
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    progress(&c, 1);
    if (c.failed) {
        fprintf(stderr, "avgen prep: %s; stopped (re-run to resume)\n", c.fail_msg);
        free(ci), free(texts[0]), free(texts[1]), free(e);
        return 1;
    }

    /* Labels: classes with a kept video, alphabetical. */
    char *kept[1024];
    int nk = 0;
    for (int j = 0; j < nc; j++) {
        int has = 0;
        for (int i = 0; i < n && !has; i++) has = e[i].output[0] && !strcmp(e[i].cls, classes[j]);
        if (has) kept[nk++] = classes[j];
    }
    qsort(kept, (size_t)nk, sizeof *kept, cmp_str);
    for (int i = 0; i < n; i++) {
        e[i].label = -1;
        for (int j = 0; j < nk; j++)
            if (!strcmp(e[i].cls, kept[j])) e[i].label = j;
    }

    /* Manifest, in list order (train list, then test list). */
    size_t mcap = 1 << 16, mlen = 0;
    char *man = malloc(mcap);
    for (int i = 0; i < n && man; i++) {
        const entry *x = &e[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "video", json_object_new_string(x->rel));
        json_object_object_add(o, "class", json_object_new_string(x->cls));
        json_object_object_add(o, "label", json_object_new_int(x->label));
        json_object_object_add(o, "split", json_object_new_string(x->test ? "test" : "train"));
        json_object_object_add(o, "group", json_object_new_int(x->group));
        json_object_object_add(o, "clip", json_object_new_int(x->clip));
        json_object_object_add(o, "status", json_object_new_string(media_status_name(x->status)));
        json_object_object_add(o, "reason", json_object_new_string(x->reason));
        json_object_object_add(o, "frames", json_object_new_int(x->frames));
        json_object_object_add(o, "audio_samples", json_object_new_int64(x->samples));
        json_object_object_add(o, "output", x->output[0] ? json_object_new_string(x->output) : NULL);
        const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        size_t l = strlen(s);
        while (mlen + l + 2 > mcap) {
            char *nm = realloc(man, mcap * 2);
            if (!nm) { free(man); man = NULL; break; }
            man = nm, mcap *= 2;
        }
        if (man) memcpy(man + mlen, s, l), mlen += l, man[mlen++] = '\n', man[mlen] = 0;
        json_object_put(o);
    }
    snprintf(p, sizeof p, "%s/manifest.jsonl", out);
    if (!man || rt_write_atomic(p, man)) {
        fprintf(stderr, "avgen prep: cannot write %s\n", p);
        free(man), free(ci), free(texts[0]), free(texts[1]), free(e);
        return 1;
    }
    free(man);

    /* fbank statistics over the training videos (whole waveforms, DC removed, before normalisation). */
    rt_fbank *fb = rt_fbank_new(16000, 128);
    double sum = 0, sumsq = 0, count = 0;
    int stat_videos = 0;
    for (int i = 0; i < n && fb; i++) {
        if (e[i].test || !e[i].output[0] || e[i].status != MEDIA_OK) continue;
        char full[2400], err[256];
        snprintf(full, sizeof full, "%s/%s", out, e[i].output);
        avf_file f;
        if (avf_open(full, &f, err, sizeof err)) continue;
        int rows = rt_fbank_num_frames(fb, f.samples);
        float *w = malloc(sizeof(float) * (size_t)(f.samples + 1)), *o = malloc(sizeof(float) * (size_t)rows * 128 + 1);
        if (w && o && rows > 0) {
            for (int64_t s2 = 0; s2 < f.samples; s2++) w[s2] = (float)(f.audio[s2] - f.audio_mean);
            rt_fbank_compute(fb, w, f.samples, o);
            for (size_t k = 0; k < (size_t)rows * 128; k++) sum += o[k], sumsq += (double)o[k] * o[k];
            count += (double)rows * 128;
            stat_videos++;
        }
        free(w), free(o);
        avf_close(&f);
    }
    rt_fbank_free(fb);
    double mean = count > 0 ? sum / count : 0, sd = count > 1 ? sqrt(fmax(0, sumsq / count - mean * mean)) : 0;
    char stats[1024];
    snprintf(stats, sizeof stats,
             "{\"fbank_mean\": %.6f, \"fbank_std\": %.6f, \"videos\": %d, \"values\": %.0f, \"fps\": %d, \"size\": %d, "
             "\"sample_rate\": 16000, \"mel_bins\": 128, \"classes\": %d, \"split\": %d}\n",
             mean, sd, stat_videos, count, fps, size, nk, split);
    snprintf(p, sizeof p, "%s/stats.json", out);
    if (rt_write_atomic(p, stats)) {
        fprintf(stderr, "avgen prep: cannot write %s\n", p);
        free(ci), free(texts[0]), free(texts[1]), free(e);
        return 1;
    }

    /* Summary table. */
    int cnt[2][5] = {{0}};
    for (int i = 0; i < n; i++) cnt[e[i].test][e[i].status]++, cnt[e[i].test][4] += e[i].output[0] != 0;
    printf("split %d       %8s %8s %8s %10s %8s\n", split, "ok", "silent", "no_audio", "unreadable", "kept");
    for (int t = 0; t < 2; t++)
        printf("  %-10s %8d %8d %8d %10d %8d\n", t ? "test" : "train", cnt[t][0], cnt[t][1], cnt[t][2], cnt[t][3], cnt[t][4]);
    printf("%d classes with kept videos (labels 0..%d, alphabetical); training fbank mean %.4f, std %.4f over %d videos\n",
           nk, nk - 1, mean, sd, stat_videos);
    printf("wrote %s/manifest.jsonl and %s/stats.json (set audio.norm_mean = %.4f, audio.norm_std = %.4f)\n", out, out, mean, sd);
    for (int i = 0; i < n; i++)
        if (e[i].status == MEDIA_UNREADABLE) fprintf(stderr, "  unreadable: %s: %s\n", e[i].rel, e[i].reason);
    free(ci), free(texts[0]), free(texts[1]), free(e);
    return 0;
}
