/* classify.c: see classify.h. */
#include "classify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "avf.h"
#include "evaluate.h"
#include "loader.h"
#include "media.h"
#include "rt_cuda.h"
#include "rt_fs.h"
#include "safetensors.h"
#include "train.h"

enum { V_OK, V_SILENT, V_NO_AUDIO, V_UNREADABLE, V_MISSING };
static const char *const k_vstatus[] = {"ok", "silent", "no_audio", "unreadable", "missing"};

typedef struct {
    const char *path;
    int status, prepared;      /* prepared: its .avf is in the temporary folder */
    int silent_track;          /* no audio stream: a silent track was made (a model that does not listen) */
    char reason[400];
    int frames;
    int64_t samples;
    int64_t corrupt;
} cl_video;

typedef struct {
    const rt_classify_cfg *cfg;
    const char *dir;           /* the temporary prepared folder */
    int size, listens;
    cl_video *v;
    int lo, hi;                /* the videos of this round */
    atomic_int next, done;
    atomic_int failed;         /* a write into dir failed: fail_msg */
    char fail_msg[1100];
    pthread_mutex_t mu;
} cl_work;

/* Interruption: SIGINT, SIGTERM and SIGHUP (each unless ignored when classify starts: nohup) are blocked in every
 * thread and taken by a thread of their own (sig_thread). While videos are decoded it only sets g_stop: the
 * decoders stop at their next frame, and the main thread removes the folder once they all have (so that no
 * decoder writes a file after it); otherwise it removes the folder itself. Then the process ends by the signal.
 * g_decoding, g_dir, g_lo and g_hi under g_mu. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int g_stop;
static int g_decoding;

/* A video's frames into its prepared file; err: the errno of a write that failed. */
typedef struct {
    avf_writer *w;
    int err;
} frame_sink;

static int on_frame(void *user, int index, const uint8_t *rgb) {
    frame_sink *s = user;
    (void)index;
    if (atomic_load(&g_stop)) return 1;
    errno = 0;
    if (avf_writer_frame(s->w, rgb)) {
        s->err = errno ? errno : EIO;
        return 1;
    }
    return 0;
}

static void work_fail(cl_work *w, const char *msg) {
    pthread_mutex_lock(&w->mu);
    if (!atomic_load(&w->failed)) snprintf(w->fail_msg, sizeof w->fail_msg, "%s", msg);
    atomic_store(&w->failed, 1);
    pthread_mutex_unlock(&w->mu);
}

/* Video i decoded as `avgen prep` prepares one (JPEG at cfg->quality, or raw), into dir/videos/<i>.avf. */
static void prepare(cl_work *w, int i) {
    cl_video *v = &w->v[i];
    struct stat st;
    if (stat(v->path, &st) != 0) {
        v->status = V_MISSING;
        snprintf(v->reason, sizeof v->reason, "cannot be opened (%s)", strerror(errno));
        return;
    }
    if (S_ISDIR(st.st_mode)) {
        v->status = V_UNREADABLE;
        snprintf(v->reason, sizeof v->reason, "a folder, not a video file");
        return;
    }
    media_info info;
    media_probe(v->path, &info);
    if (info.status == MEDIA_UNREADABLE) {
        v->status = V_UNREADABLE;
        snprintf(v->reason, sizeof v->reason, "%s", info.reason[0] ? info.reason : "cannot be read as a video");
        return;
    }
    if (info.status == MEDIA_NO_AUDIO && w->listens) {
        v->status = V_NO_AUDIO;
        snprintf(v->reason, sizeof v->reason, "no usable sound (%s), and this model listens to the sound with the frames",
                 info.reason[0] ? info.reason : "no audio stream");
        return;
    }
    v->status = info.status == MEDIA_SILENT ? V_SILENT : info.status == MEDIA_NO_AUDIO ? V_NO_AUDIO : V_OK;
    char path[2400], err[1024];
    snprintf(path, sizeof path, "%s/videos/%d.avf", w->dir, i);
    const int q = w->cfg->quality;
    avf_writer *aw = avf_writer_open(path, w->size, w->cfg->fps, 1, q ? AVF_JPEG : AVF_RAW, q, err, sizeof err);
    if (!aw) {
        work_fail(w, err);
        return;
    }
    media_target t = {w->size, w->cfg->fps, 1, 16000};
    media_output mo;
    frame_sink sink = {aw, 0};
    const int drc = media_decode(v->path, &t, on_frame, &sink, &mo, err, sizeof err);
    if (atomic_load(&g_stop)) { /* interrupted: the main thread removes the folder */
        avf_writer_abort(aw);
        if (!drc) media_output_free(&mo);
        return;
    }
    if (sink.err) { /* not the video's fault: the temporary folder's (full, say) */
        avf_writer_abort(aw);
        if (!drc) media_output_free(&mo);
        char m[3000];
        snprintf(m, sizeof m, "cannot write the frames of %s into %s (%s)", v->path, w->dir, strerror(sink.err));
        work_fail(w, m);
        return;
    }
    if (drc) {
        avf_writer_abort(aw);
        v->status = V_UNREADABLE;
        snprintf(v->reason, sizeof v->reason, "decoding failed: %.300s", err);
        return;
    }
    float *audio = mo.audio;
    int64_t samples = mo.samples;
    if (samples == 0 && w->listens) {
        avf_writer_abort(aw);
        media_output_free(&mo);
        v->status = V_NO_AUDIO;
        snprintf(v->reason, sizeof v->reason, "no sound from its first frame on (the audio stream ends before the video "
                                              "starts), and this model listens to the sound with the frames");
        return;
    }
    if (samples == 0 && mo.frames > 0) {
        /* a model that does not listen: a silent track as long as the frames, which it never reads */
        samples = ((int64_t)mo.frames * 16000 + w->cfg->fps - 1) / w->cfg->fps;
        audio = calloc((size_t)samples, sizeof(float));
        v->silent_track = 1;
        if (!audio) {
            avf_writer_abort(aw);
            media_output_free(&mo);
            work_fail(w, "out of memory");
            return;
        }
    }
    if (mo.frames == 0) {
        avf_writer_abort(aw);
        media_output_free(&mo);
        v->status = V_UNREADABLE;
        snprintf(v->reason, sizeof v->reason, "no frame of it decodes");
        return;
    }
    const int rc = avf_writer_finish(aw, audio, samples, 16000, err, sizeof err);
    if (audio != mo.audio) free(audio);
    v->frames = mo.frames, v->samples = samples, v->corrupt = mo.corrupt;
    media_output_free(&mo);
    if (rc) {
        work_fail(w, err);
        return;
    }
    v->prepared = 1;
}

static void *worker(void *arg) {
    cl_work *w = arg;
    const int tty = isatty(2) && !w->cfg->json;
    for (;;) {
        const int i = atomic_fetch_add(&w->next, 1);
        if (i >= w->hi || atomic_load(&w->failed) || atomic_load(&g_stop)) break;
        prepare(w, i);
        const int d = atomic_fetch_add(&w->done, 1) + 1;
        if (tty && w->cfg->n_videos > 1) { /* the round's line is ended by the main thread, before its answers */
            pthread_mutex_lock(&w->mu);
            fprintf(stderr, "\r%s: decoded %d/%d videos", w->cfg->prog, d, w->cfg->n_videos);
            pthread_mutex_unlock(&w->mu);
        }
    }
    return NULL;
}

/* The prepared videos' manifest: split "test", one class "?" (label 0), in the order given. */
static int write_manifest(const cl_work *w, char *err, size_t errlen) {
    char path[2400];
    snprintf(path, sizeof path, "%s/manifest.jsonl", w->dir);
    FILE *f = fopen(path, "w");
    int rc = !f;
    for (int i = w->lo; f && i < w->hi; i++) {
        const cl_video *v = &w->v[i];
        if (v->prepared)
            rc |= fprintf(f, "{\"video\": \"%d\", \"class\": \"?\", \"label\": 0, \"split\": \"test\", \"group\": -1, "
                             "\"clip\": -1, \"status\": \"ok\", \"reason\": \"\", \"frames\": %d, \"audio_samples\": %lld, "
                             "\"output\": \"videos/%d.avf\"}\n",
                          i, v->frames, (long long)v->samples, i) < 0;
    }
    if (f && fclose(f)) rc = 1;
    if (rc) snprintf(err, errlen, "cannot write %s (%s)", path, strerror(errno));
    return rc;
}

/* The temporary folder (removed at the end, each round's files after the round, and on a signal) and the round. */
static char g_dir[2300];
static int g_lo, g_hi;

/* The files of videos [lo, hi) and the manifest; with all, the folder too. */
static void remove_files(int lo, int hi, int all) {
    char p[2400];
    for (int i = lo; i < hi; i++) {
        snprintf(p, sizeof p, "%s/videos/%d.avf", g_dir, i);
        unlink(p);
    }
    snprintf(p, sizeof p, "%s/manifest.jsonl", g_dir);
    unlink(p);
    if (all) {
        snprintf(p, sizeof p, "%s/videos", g_dir);
        rmdir(p);
        rmdir(g_dir);
    }
}

/* Ends the process by sig, as it would have ended without classify's thread taking it. */
static void die_by(int sig) {
    signal(sig, SIG_DFL);
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, sig);
    pthread_sigmask(SIG_UNBLOCK, &s, NULL);
    raise(sig);
    _exit(128 + sig);
}

static atomic_int g_quit; /* sig_thread's end (no pthread_cancel: its unwinding upsets the sanitizers) */

static void *sig_thread(void *arg) {
    const sigset_t *set = arg;
    const struct timespec tick = {0, 50 * 1000 * 1000};
    while (!atomic_load(&g_quit)) {
        const int sig = sigtimedwait(set, NULL, &tick);
        if (sig <= 0) continue;
        pthread_mutex_lock(&g_mu);
        atomic_store(&g_stop, sig);
        if (!g_decoding) {
            if (g_dir[0]) remove_files(g_lo, g_hi, 1);
            die_by(sig);
        }
        pthread_mutex_unlock(&g_mu);
    }
    return NULL;
}

/* This machine, as a word for folder names (letters, digits, '-'). */
static void host_word(char *out, size_t n) {
    char h[256] = "";
    gethostname(h, sizeof h - 1);
    size_t k = 0;
    for (const char *p = h; *p && k + 1 < n; p++)
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-') out[k++] = *p;
    if (!k && n > 1) out[k++] = 'h';
    out[k] = 0;
}

/* names[l] for l < C: from dir's classes.json (a run folder) or manifest.jsonl (a prepared folder). The number
 * of classes named, or -1 when dir has neither. */
static int names_from(const char *dir, char (*names)[128], int C) {
    char p[2500];
    snprintf(p, sizeof p, "%s/classes.json", dir);
    json_object *o = json_object_from_file(p), *a;
    if (o && json_object_object_get_ex(o, "classes", &a) && json_object_is_type(a, json_type_array)) {
        int named = 0;
        for (int i = 0; i < C; i++) {
            json_object *x = i < (int)json_object_array_length(a) ? json_object_array_get_idx(a, (size_t)i) : NULL;
            names[i][0] = 0;
            if (x && json_object_is_type(x, json_type_string)) snprintf(names[i], 128, "%s", json_object_get_string(x));
            named += names[i][0] != 0;
        }
        json_object_put(o);
        return named;
    }
    json_object_put(o);
    return ld_class_names(dir, names, C);
}

typedef struct {
    int label;
    double p;
} ranked;

static int by_p(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    return x->p < y->p ? 1 : x->p > y->p ? -1 : x->label - y->label;
}

/* 1 when name is one classify writes into videos/: "<digits>.avf", or its writer's temporary "<digits>.avf.tmp.*". */
static int our_video_file(const char *name) {
    const char *p = name;
    while (*p >= '0' && *p <= '9') p++;
    return p > name && !strncmp(p, ".avf", 4) && (!p[4] || !strncmp(p + 4, ".tmp.", 5));
}

/* Folders of earlier runs of classify on this machine that ended without cleaning up (killed: SIGKILL, a crash),
 * avgen-classify.<pid>@<host>.XXXXXX under tmp, whose process is gone: real folders (not links) of this user,
 * holding only what classify writes, removed without following any link. */
static void sweep(const char *tmp) {
    char host[64], h2[64];
    host_word(host, sizeof host);
    DIR *d = opendir(tmp);
    if (!d) return;
    const int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid = 0;
        char rest[16];
        if (sscanf(e->d_name, "avgen-classify.%ld@%63[A-Za-z0-9-].%15s", &pid, h2, rest) != 3 || pid <= 0 ||
            pid == (long)getpid() || strcmp(h2, host))
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid()) continue;
        const int fd = openat(dfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) continue;
        const int vfd = openat(fd, "videos", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *vd = vfd >= 0 ? fdopendir(vfd) : NULL;
        struct dirent *f;
        while (vd && (f = readdir(vd)))
            if (our_video_file(f->d_name)) unlinkat(vfd, f->d_name, 0);
        if (vd) closedir(vd);
        else if (vfd >= 0) close(vfd);
        unlinkat(fd, "videos", AT_REMOVEDIR);
        unlinkat(fd, "manifest.jsonl", 0);
        close(fd);
        unlinkat(dfd, e->d_name, AT_REMOVEDIR);
    }
    closedir(d);
}

/* One video's answer: a line on out, or an element of the JSON array ja. 1 when it was classified. */
static int report(const rt_classify_cfg *cfg, cl_video *v, const float *lg, int clips, char (*names)[128], ranked *rk,
                  FILE *out, json_object *ja) {
    const int C = cfg->k->classes, top = cfg->top < C ? cfg->top : C, span = (cfg->frames - 1) * cfg->stride + 1;
    if (v->prepared && clips == 0) {
        v->status = V_UNREADABLE;
        snprintf(v->reason, sizeof v->reason, "none of its clips could be read");
    }
    const int ok = v->prepared && clips > 0;
    json_object *e = ja ? json_object_new_object() : NULL;
    if (e) {
        json_object_object_add(e, "video", json_object_new_string(v->path));
        json_object_object_add(e, "status", json_object_new_string(k_vstatus[v->status]));
        json_object_object_add(e, "classified", json_object_new_boolean(ok));
        json_object_array_add(ja, e);
    }
    if (!ok) {
        fprintf(stderr, "%s: %s: %s; not classified\n", cfg->prog, v->path, v->reason);
        if (e) json_object_object_add(e, "reason", json_object_new_string(v->reason));
        else fprintf(out, "%s  not classified: %s\n", v->path, v->reason);
        return 0;
    }
    double mx = -INFINITY, s = 0;
    for (int c = 0; c < C; c++) mx = fmax(mx, lg[c]);
    for (int c = 0; c < C; c++) s += exp((double)lg[c] - mx);
    for (int c = 0; c < C; c++) rk[c].label = c, rk[c].p = exp((double)lg[c] - mx) / s;
    qsort(rk, (size_t)C, sizeof *rk, by_p);
    const double secs = (double)v->frames / cfg->fps;
    if (e) {
        json_object *t = json_object_new_array(), *la = json_object_new_array();
        for (int j = 0; j < top; j++) {
            json_object *x = json_object_new_object();
            json_object_object_add(x, "label", json_object_new_int(rk[j].label));
            json_object_object_add(x, "class", json_object_new_string(names[rk[j].label]));
            json_object_object_add(x, "probability", json_object_new_double(rk[j].p));
            json_object_array_add(t, x);
        }
        for (int c = 0; c < C; c++) json_object_array_add(la, json_object_new_double(lg[c]));
        json_object_object_add(e, "clips", json_object_new_int(clips));
        json_object_object_add(e, "frames", json_object_new_int(v->frames));
        json_object_object_add(e, "seconds", json_object_new_double(secs));
        json_object_object_add(e, "padded", json_object_new_boolean(v->frames < span));
        json_object_object_add(e, "corrupt_packets", json_object_new_int64(v->corrupt));
        json_object_object_add(e, "top", t);
        json_object_object_add(e, "logits", la);
        return 1;
    }
    char note[200] = "";
    if (v->frames < span) snprintf(note, sizeof note, "; shorter than a clip: padded");
    if (v->status == V_SILENT) snprintf(note + strlen(note), sizeof note - strlen(note), "; its sound is silent");
    if (v->silent_track) snprintf(note + strlen(note), sizeof note - strlen(note), "; no sound");
    if (v->corrupt) snprintf(note + strlen(note), sizeof note - strlen(note), "; %lld corrupt packets skipped", (long long)v->corrupt);
    fprintf(out, "%s  ", v->path);
    for (int j = 0; j < top; j++) fprintf(out, "%s%s %.4f", j ? " | " : "", names[rk[j].label], rk[j].p);
    fprintf(out, "  (%d clip%s, %.1f s%s)\n", clips, clips == 1 ? "" : "s", secs, note);
    return 1;
}

int rt_classify(const rt_classify_cfg *cfg, FILE *out, char *err, size_t errlen) {
    const int C = cfg->k->classes, N = cfg->n_videos;
    if (N < 1 || cfg->top < 1 || cfg->threads < 1 || cfg->frames < 1 || cfg->stride < 1 || cfg->fps < 1 ||
        cfg->quality < 0 || cfg->quality == 1 || cfg->quality > 31) {
        snprintf(err, errlen, "classify: no video given, a count (--top, --threads) below 1, or a JPEG quality outside "
                              "2..31");
        return 2;
    }
    /* the checkpoint, the backend, the class names and the model before any video is decoded */
    char ck[2400];
    int rc = rt_checkpoint_path(cfg->checkpoint, ck, sizeof ck, err, errlen);
    if (rc) return rc;
    struct stat st;
    if (stat(ck, &st) != 0) {
        snprintf(err, errlen, "the checkpoint %s cannot be read (%s)", ck, strerror(errno));
        return 2;
    }
    if (cfg->backend && (rc = rt_backend_check(cfg->backend, err, errlen))) return rc;
    char(*names)[128] = calloc((size_t)C, 128);
    ranked *rk = malloc(sizeof *rk * (size_t)C);
    cl_work w;
    memset(&w, 0, sizeof w);
    w.v = calloc((size_t)N, sizeof *w.v);
    pthread_mutex_init(&w.mu, NULL);
    avgen_ctx c;
    int have_ctx = 0, cuda = 0, n_failed = 0, have_signals = 0, have_sth = 0;
    sigset_t oldmask;
    struct sigaction old_pipe;
    pthread_t sth;
    st_file *wf = NULL;
    json_object *jo = NULL, *ja = NULL;
    g_dir[0] = 0;
    if (!names || !rk || !w.v) {
        snprintf(err, errlen, "out of memory");
        rc = 1;
        goto done;
    }
    char where[2400];
    if (cfg->classes) snprintf(where, sizeof where, "%s", cfg->classes);
    else { /* the checkpoint's run folder */
        char tmp[2400];
        snprintf(tmp, sizeof tmp, "%s", ck);
        snprintf(where, sizeof where, "%s", dirname(tmp));
    }
    const int named = names_from(where, names, C);
    if (cfg->classes && named < 0) {
        snprintf(err, errlen, "%s has neither classes.json nor manifest.jsonl; expected a run folder or a prepared folder "
                              "to name the classes", cfg->classes);
        rc = 2;
        goto done;
    }
    if (named <= 0 && cfg->classes)
        fprintf(stderr, "%s: %s names no class; the answers are labels\n", cfg->prog, where);
    else if (named <= 0)
        fprintf(stderr, "%s: %s names no class (no classes.json there: a run of an older avgen); the answers are labels "
                        "(--classes takes a run or prepared folder)\n", cfg->prog, where);
    for (int i = 0; i < C; i++)
        if (!names[i][0]) snprintf(names[i], 128, "%d", i);
    /* from here on, every thread (the CPU backend's, the CUDA runtime's, the loader's, the decoders) has the
     * interrupting signals blocked, and sig_thread takes them; SIGPIPE is ignored, so that a reader gone makes a
     * write fail (and the folder is removed) instead of ending the process */
    sigset_t set;
    sigemptyset(&set);
    const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        struct sigaction sa;
        if (sigaction(sigs[i], NULL, &sa) == 0 && sa.sa_handler != SIG_IGN) sigaddset(&set, sigs[i]);
    }
    pthread_sigmask(SIG_BLOCK, &set, &oldmask);
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old_pipe);
    atomic_store(&g_stop, 0), atomic_store(&g_quit, 0);
    g_decoding = 0;
    have_signals = 1;
    have_sth = pthread_create(&sth, NULL, sig_thread, &set) == 0;
    if ((rc = rt_ctx_init(&c, cfg->g, cfg->k, err, errlen))) goto done;
    have_ctx = 1;
    if (cfg->weights && !(wf = st_open(cfg->weights, err, errlen))) rc = 2;
    if (!rc) rc = rt_init_params(&c, wf, cfg->seed, NULL, NULL, err, errlen);
    if (!rc && rt_load_checkpoint(&c, ck, err, errlen)) rc = 2;
    rt_backend_opts bo;
    memset(&bo, 0, sizeof bo);
    if (cfg->backend) bo = *cfg->backend;
    bo.prefetch_inputs = 1; /* the next batch goes up while a forward pass runs */
    if (!rc && rt_backend_attach(&c, &bo, &cuda, err, errlen)) rc = 1;
    if (rc) goto done;

    /* a temporary prepared folder; rounds of videos decoded into it, classified, removed */
    const char *tmpd = getenv("TMPDIR");
    if (!tmpd || !*tmpd) tmpd = "/tmp";
    sweep(tmpd);
    char host[64];
    host_word(host, sizeof host);
    pthread_mutex_lock(&g_mu);
    snprintf(g_dir, sizeof g_dir, "%s/avgen-classify.%ld@%s.XXXXXX", tmpd, (long)getpid(), host);
    char sub[2400];
    const int made = mkdtemp(g_dir) != NULL;
    pthread_mutex_unlock(&g_mu);
    if (!made) {
        snprintf(err, errlen, "cannot create a temporary folder %s (%s)", g_dir, strerror(errno));
        g_dir[0] = 0;
        rc = 1;
        goto done;
    }
    snprintf(sub, sizeof sub, "%s/videos", g_dir);
    if (rt_mkdirs(sub)) {
        snprintf(err, errlen, "cannot create %s (%s)", sub, strerror(errno));
        rc = 1;
        goto done;
    }
    w.cfg = cfg, w.dir = g_dir, w.size = cfg->k->image;
    w.listens = rt_find(cfg->g, "audio") >= 0;
    for (int i = 0; i < N; i++) w.v[i].path = cfg->videos[i];
    if (cfg->json) jo = json_object_new_object(), ja = json_object_new_array();
    media_quiet();
    /* a round: enough videos to keep the loader's threads and the batch busy, few enough that the temporary
     * folder stays small (a JPEG frame at 224 x 224 is some 10 KiB, a raw one 147 KiB) */
    int round = 8 * cfg->threads > 4 * cfg->k->batch ? 8 * cfg->threads : 4 * cfg->k->batch;
    if (round > 4096) round = 4096; /* vidx below */
    for (int lo = 0; lo < N && !rc; lo += round) {
        const int hi = lo + round < N ? lo + round : N;
        w.lo = lo, w.hi = hi;
        atomic_store(&w.next, lo);
        const int nt = cfg->threads < hi - lo ? cfg->threads : hi - lo;
        pthread_t th[64];
        int started = 0;
        pthread_mutex_lock(&g_mu);
        g_decoding = 1, g_lo = lo, g_hi = hi;
        pthread_mutex_unlock(&g_mu);
        for (; started < nt && started < 64; started++)
            if (pthread_create(&th[started], NULL, worker, &w)) break;
        if (!started) worker(&w);
        for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
        pthread_mutex_lock(&g_mu);
        g_decoding = 0;
        const int sig = atomic_load(&g_stop);
        if (sig) { /* a signal while decoding: every decoder has stopped */
            remove_files(lo, hi, 1);
            die_by(sig);
        }
        pthread_mutex_unlock(&g_mu);
        if (isatty(2) && !cfg->json && N > 1) fputc('\n', stderr); /* the round's progress line */
        if (atomic_load(&w.failed)) {
            snprintf(err, errlen, "%s", w.fail_msg);
            rc = 1;
            remove_files(lo, hi, 0);
            break;
        }
        int n_prep = 0;
        for (int i = lo; i < hi; i++) n_prep += w.v[i].prepared;
        rt_eval_result res;
        memset(&res, 0, sizeof res);
        int have_res = 0, vidx[4096];
        ld_loader *l = NULL;
        memset(vidx, 0, sizeof vidx);
        if (n_prep > 0) {
            ld_config lc;
            memset(&lc, 0, sizeof lc);
            lc.dir = g_dir, lc.split = "test", lc.holdout = LD_ALL, lc.val_every = 5;
            lc.frames = cfg->frames, lc.stride = cfg->stride, lc.batch = cfg->k->batch, lc.train = 0;
            lc.threads = cfg->threads, lc.ring = 2 * cfg->threads + 1;
            lc.audio_rows = cfg->audio_rows, lc.mel_bins = cfg->mel_bins, lc.window_seconds = cfg->window_seconds;
            lc.norm_mean = cfg->norm_mean, lc.norm_std = cfg->norm_std;
            if (cuda) lc.host_alloc = rt_cuda_host_alloc, lc.host_free = rt_cuda_host_free;
            if (write_manifest(&w, err, errlen)) rc = 1;
            else if (!(l = ld_open(&lc, err, errlen))) rc = 1;
            else if (rt_evaluate(&c, cfg->forward, l, &res, err, errlen)) rc = 1;
            else have_res = 1;
            for (int i = 0; have_res && i < ld_videos(l); i++) {
                const int k = atoi(ld_video_name(l, i)) - lo;
                if (k >= 0 && k < hi - lo) vidx[k] = i + 1;
            }
        }
        for (int i = lo; !rc && i < hi; i++) {
            const int li = vidx[i - lo] - 1;
            n_failed += !report(cfg, &w.v[i], li >= 0 ? res.video_logits + (size_t)li * C : NULL,
                                li >= 0 ? res.video_clips[li] : 0, names, rk, out, ja);
        }
        errno = 0;
        if (!rc && (fflush(out) || ferror(out))) { /* a reader gone, a full disk: the answers are lost */
            snprintf(err, errlen, "cannot write the answers (%s)", strerror(errno ? errno : EIO));
            rc = 1;
        }
        if (have_res) rt_eval_free(&res);
        ld_close(l);
        remove_files(lo, hi, 0);
    }
    pthread_mutex_lock(&g_mu);
    remove_files(0, 0, 1);
    g_dir[0] = 0;
    pthread_mutex_unlock(&g_mu);
    if (jo && !rc) {
        json_object_object_add(jo, "model", json_object_new_string(cfg->name ? cfg->name : ""));
        json_object_object_add(jo, "checkpoint", json_object_new_string(ck));
        json_object_object_add(jo, "backend", json_object_new_string(cuda ? "cuda" : "cpu"));
        json_object_object_add(jo, "clip_frames", json_object_new_int(cfg->frames));
        json_object_object_add(jo, "frame_stride", json_object_new_int(cfg->stride));
        json_object_object_add(jo, "fps", json_object_new_int(cfg->fps));
        json_object_object_add(jo, "frames_stored", json_object_new_string(cfg->quality ? "jpeg" : "raw"));
        json_object_object_add(jo, "videos", ja);
        ja = NULL;
        fprintf(out, "%s\n", json_object_to_json_string_ext(jo, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE));
        errno = 0;
        if (fflush(out) || ferror(out)) {
            snprintf(err, errlen, "cannot write the answers (%s)", strerror(errno ? errno : EIO));
            rc = 1;
        }
    }
    if (!rc && n_failed) {
        snprintf(err, errlen, "%d of %d video%s could not be classified", n_failed, N, N == 1 ? "" : "s");
        rc = 2;
    }
done:
    pthread_mutex_lock(&g_mu);
    if (g_dir[0]) remove_files(0, 0, 1), g_dir[0] = 0;
    pthread_mutex_unlock(&g_mu);
    json_object_put(ja);
    json_object_put(jo);
    st_close(wf);
    if (have_ctx) {
        if (c.dev) rt_cuda_detach(&c);
        rt_ctx_free(&c);
    }
    if (have_sth) {
        atomic_store(&g_quit, 1);
        pthread_join(sth, NULL);
    }
    if (have_signals) {
        pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
        sigaction(SIGPIPE, &old_pipe, NULL);
    }
    pthread_mutex_destroy(&w.mu);
    free(w.v);
    free(rk);
    free(names);
    return rc;
}
