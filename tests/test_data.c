/* The data pipeline end to end on a synthetic UCF101-shaped set (avgen synth -> avgen prep -> loader):
 * manifest contents; frame-exact decoding (every frame carries its index as a barcode; after the 25 ->
 * 20 fps resampling clip frame t of a clip at start s and stride d shows source frame
 * floor((s + t d) * 25 / 20)); audio alignment (a tone burst at a known time peaks in the right fbank
 * rows of the right frames' windows); loader determinism across thread counts; short videos padded;
 * resume after kill -9 gives the same manifest; every real file in ../shared/media probes to its known
 * verdict and decodes without a crash (skipped when absent); truncated and garbage files fail cleanly.
 * usage: test_data [SHARED_MEDIA_DIR] */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "avf.h"
#include "check.h"
#include "fbank.h"
#include "loader.h"
#include "media.h"
#include "prep.h"
#include "synth.h"

static char tmp[512];

static int run_cmd(int (*fn)(int, char **), const char *const *args) {
    char *argv[32];
    int n = 0;
    for (; args[n]; n++) argv[n] = (char *)args[n];
    argv[n] = NULL;
    return fn(n, argv);
}


/* Reads the 16-bit frame index from an S x S RGB image scaled from the synth's W x H frame. */
static int barcode(const uint8_t *rgb, int S, int W, int H) {
    int v = 0;
    for (int bit = 0; bit < 16; bit++) {
        int bx = bit % 8, by = bit / 8;
        double cx = (8 * bx + 4) * (double)S / W, cy = (8 * by + 4) * (double)S / H;
        double m = 0;
        for (int dy = -1; dy <= 0; dy++)
            for (int dx = -1; dx <= 0; dx++) m += rgb[((int)cy + dy) * S * 3 + ((int)cx + dx) * 3 + 1];
        m /= 4;
        if (m > 80 && m < 176) return -1; /* ambiguous */
        v = v * 2 + (m >= 128);
    }
    return v;
}

/* A caller's allocator for the loader's batch buffers (ld_config.host_alloc), counting its calls. */
static int n_host_alloc, n_host_free;
static void *count_alloc(size_t n) {
    n_host_alloc++;
    return malloc(n);
}
static void count_free(void *p) {
    n_host_free += p != NULL;
    free(p);
}

static ld_config base_cfg(const char *dir, const char *split, int T, int stride, int B, int train, int threads) {
    ld_config c;
    memset(&c, 0, sizeof c);
    c.dir = dir, c.split = split, c.frames = T, c.stride = stride, c.batch = B, c.train = train, c.seed = 7;
    c.threads = threads, c.ring = 3, c.audio_rows = 102, c.mel_bins = 128, c.window_seconds = 1.0;
    c.norm_mean = -4.1426, c.norm_std = 3.2001, c.holdout = LD_ALL, c.val_every = 5;
    return c;
}

/* The manifest text with the first `find` on line n (1-based) replaced by `repl`; NULL when line n holds no `find`. */
static char *edit_line(const char *man, int n, const char *find, const char *repl) {
    const char *a = man;
    for (int i = 1; i < n && a; i++) a = strchr(a, '\n') ? strchr(a, '\n') + 1 : NULL;
    if (!a) return NULL;
    const char *z = strchr(a, '\n') ? strchr(a, '\n') : a + strlen(a), *hit = strstr(a, find);
    if (!hit || hit >= z) return NULL;
    size_t lm = strlen(man), lf = strlen(find), lr = strlen(repl);
    char *r = malloc(lm - lf + lr + 1);
    memcpy(r, man, (size_t)(hit - man));
    memcpy(r + (hit - man), repl, lr);
    memcpy(r + (hit - man) + lr, hit + lf, lm - (size_t)(hit - man) - lf + 1);
    return r;
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = strlen(text), w = fwrite(text, 1, n, f);
    return fclose(f) || w != n ? -1 : 0;
}

/* The prepared folder `bad` (its videos/ a link to the good folder's) with the manifest `man` edited on line n
 * must be refused by ld_open with one sentence naming the manifest's line n and holding `want`. */
static void expect_refused(const char *bad, const char *man, int n, const char *find, const char *repl, const char *want) {
    char *m = edit_line(man, n, find, repl), mp[800], err[1024] = "", at[900];
    CHECK_MSG(m != NULL, "manifest line %d holds no %s", n, find);
    if (!m) return;
    snprintf(mp, sizeof mp, "%s/manifest.jsonl", bad);
    CHECK(write_text(mp, m) == 0);
    free(m);
    ld_config c = base_cfg(bad, "train", 2, 1, 1, 0, 1);
    ld_loader *l = ld_open(&c, err, sizeof err);
    CHECK_MSG(l == NULL, "a manifest with %s on line %d was accepted", repl, n);
    ld_close(l);
    snprintf(at, sizeof at, "%s:%d (", mp, n);
    CHECK_MSG(!l && strstr(err, at) && strstr(err, want), "%s on line %d: \"%s\", expected \"%s ...: %s\"", repl, n, err, at,
              want);
}

/* Impossible manifest rows are refused at open (docs/prepared-data.md), never trained on or skipped silently. */
static void test_bad_manifests(const char *prep, const char *man) {
    char bad[700], link[800], videos[800], mp[800], err[1024];
    snprintf(bad, sizeof bad, "%s/bad-manifest", tmp);
    snprintf(link, sizeof link, "%s/videos", bad);
    snprintf(videos, sizeof videos, "%s/videos", prep);
    CHECK(mkdir(bad, 0755) == 0 && symlink(videos, link) == 0);
    /* unchanged, and with a row of a class without a prepared video: accepted as before */
    const char *extra = "{\"video\":\"Drum/v_Drum_g02_c01.avi\",\"class\":\"Drum\",\"label\":-1,\"split\":\"train\",\"group\":2,"
                        "\"clip\":1,\"status\":\"no_audio\",\"reason\":\"no audio stream\",\"frames\":0,\"audio_samples\":0,"
                        "\"output\":null}\n";
    char *m2 = malloc(strlen(man) + strlen(extra) + 1);
    strcpy(m2, man), strcat(m2, extra);
    snprintf(mp, sizeof mp, "%s/manifest.jsonl", bad);
    for (int k = 0; k < 2; k++) {
        CHECK(write_text(mp, k ? m2 : man) == 0);
        ld_config c = base_cfg(bad, "train", 2, 1, 1, 0, 1);
        ld_loader *l = ld_open(&c, err, sizeof err);
        CHECK_MSG(l != NULL, "a valid manifest%s was refused: %s", k ? " with a class without videos" : "", err);
        if (l) {
            CHECK_EQ_I64(ld_videos(l), 6);
            CHECK_EQ_I64(ld_classes(l), 3);
        }
        ld_close(l);
    }
    free(m2);
    /* labels: outside the manifest's 3 classes for a row with a prepared video, or not one label a class */
    expect_refused(bad, man, 1, "\"label\":0", "\"label\":-1", "\"label\" is -1; expected 0..2 (the manifest's 3 classes");
    expect_refused(bad, man, 1, "\"label\":0", "\"label\":3", "\"label\" is 3; expected 0..2");
    expect_refused(bad, man, 7, "\"label\":0", "\"label\":1000", "\"label\" is 1000; expected 0..2"); /* a test row */
    expect_refused(bad, man, 1, "\"label\":0,", "", "\"label\" is missing; expected a label");
    expect_refused(bad, man, 1, "\"label\":0", "\"label\":\"0\"", "\"label\" is \"0\"; expected an integer");
    expect_refused(bad, man, 2, "\"label\":0", "\"label\":1", "\"label\" is 1; expected 0, the label of class \"ArmSwing\" at line 1");
    expect_refused(bad, man, 3, "\"label\":1", "\"label\":0", "\"label\" is 0; expected a label of class \"HandstandHops\" alone");
    /* frames: more than the prepared file holds, not positive, beyond the format */
    expect_refused(bad, man, 1, "\"frames\":40", "\"frames\":100000000", "\"frames\" is 100000000; expected at most 40, the "
                   "frames that videos/ArmSwing/v_ArmSwing_g02_c01.avf holds");
    expect_refused(bad, man, 1, "\"frames\":40", "\"frames\":41", "\"frames\" is 41; expected at most 40");
    expect_refused(bad, man, 1, "\"frames\":40", "\"frames\":0", "\"frames\" is 0; expected 1..2147483647");
    expect_refused(bad, man, 1, "\"frames\":40", "\"frames\":-5", "\"frames\" is -5; expected 1..2147483647");
    expect_refused(bad, man, 7, "\"frames\":40", "\"frames\":4294967336", "\"frames\" is 4294967336; expected 1..2147483647");
    /* audio samples, group, clip */
    expect_refused(bad, man, 1, "\"audio_samples\":", "\"audio_samples\":-", "\"audio_samples\" is -");
    expect_refused(bad, man, 1, "\"audio_samples\":", "\"audio_samples\":9", "; expected at most 32"); /* ten times as many */
    expect_refused(bad, man, 1, "\"group\":2", "\"group\":-7", "\"group\" is -7; expected -1 (none) or 0..");
    expect_refused(bad, man, 1, "\"clip\":1", "\"clip\":-3", "\"clip\" is -3; expected -1 (none) or 0..");
    /* status, split and output against each other */
    expect_refused(bad, man, 1, "\"status\":\"ok\"", "\"status\":\"fine\"", "\"status\" is \"fine\"; expected \"ok\", \"silent\"");
    expect_refused(bad, man, 1, "\"status\":\"ok\"", "\"status\":\"unreadable\"", "\"status\" is \"unreadable\" but \"output\" names");
    expect_refused(bad, man, 1, "\"output\":\"videos/ArmSwing/v_ArmSwing_g02_c01.avf\"", "\"output\":null",
                   "\"output\" is null; expected the prepared video");
    expect_refused(bad, man, 1, "\"split\":\"train\"", "\"split\":\"Train\"", "\"split\" is \"Train\"; expected \"train\" or \"test\"");
}

static void test_pipeline(void) {
    char syn[600], prep[600];
    snprintf(syn, sizeof syn, "%s/syn", tmp);
    snprintf(prep, sizeof prep, "%s/prep", tmp);
    const char *sargs[] = {"synth", "--out", syn, "--classes", "3", "--videos", "9", "--seconds", "2", "--markers",
                           "--seed", "3", NULL};
    CHECK_EQ_I64(run_cmd(gen_synth_main, sargs), 0);
    char lists[700];
    snprintf(lists, sizeof lists, "%s/ucfTrainTestlist", syn);
    const char *pargs[] = {"prep", "--src", syn, "--splits", lists, "--out", prep, "--jobs", "2", NULL};
    CHECK_EQ_I64(run_cmd(gen_prep_main, pargs), 0);
    char mp[700];
    snprintf(mp, sizeof mp, "%s/manifest.jsonl", prep);
    char *man = check_slurp(mp);
    CHECK(man != NULL);
    int lines = 0;
    for (char *c = man; c && *c; c++) lines += *c == '\n';
    CHECK_EQ_I64(lines, 9);
    CHECK_STR_CONTAINS(man, "\"status\":\"ok\"");
    CHECK_STR_CONTAINS(man, "\"split\":\"test\"");
    CHECK_STR_CONTAINS(man, "v_HandStandHops_"); /* the case trap: folder HandstandHops */
    CHECK(!strstr(man, "\"label\":-1"));

    /* Resume: a second run redoes nothing and writes the same manifest. */
    CHECK_EQ_I64(run_cmd(gen_prep_main, pargs), 0);
    char *man2 = check_slurp(mp);
    CHECK(man2 && man && !strcmp(man, man2));
    free(man2);

    /* kill -9 in the middle, then a re-run: complete and identical. */
    char prep2[700];
    snprintf(prep2, sizeof prep2, "%s/prep-killed", tmp);
    const char *kargs[] = {"prep", "--src", syn, "--splits", lists, "--out", prep2, "--jobs", "1", NULL};
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr) || !freopen("/dev/null", "w", stdout)) _exit(1);
        _exit(run_cmd(gen_prep_main, kargs));
    }
    usleep(60000);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK_EQ_I64(run_cmd(gen_prep_main, kargs), 0);
    char mp2[800];
    snprintf(mp2, sizeof mp2, "%s/manifest.jsonl", prep2);
    char *man3 = check_slurp(mp2);
    /* outputs are relative paths, so the manifests of the two folders are equal byte for byte */
    CHECK_MSG(man3 && man && !strcmp(man, man3), "the manifest after kill -9 and resume differs");
    free(man3);

    /* Frame-exact decoding: eval clips of T 4 at stride 3 over the training split; the batch buffers from the
     * caller's allocator (as the CUDA backend's page-locked ones), each freed with it. */
    char err[512];
    ld_config c = base_cfg(prep, "train", 4, 3, 2, 0, 2);
    c.host_alloc = count_alloc, c.host_free = count_free;
    ld_loader *l = ld_open(&c, err, sizeof err);
    CHECK_MSG(l != NULL, "%s", err);
    if (l) {
        CHECK_EQ_I64(ld_size(l), 224);
        CHECK(ld_start_epoch(l, 0) == 0);
        int clips = 0, wrong = 0;
        const ld_batch *b;
        while ((b = ld_next(l))) {
            for (int i = 0; i < b->count; i++) {
                CHECK(b->valid[i]);
                for (int t = 0; t < 4; t++) {
                    int k = b->start[i] + t * 3;
                    int want = (int)floor(k * 25.0 / 20.0 + 1e-9);
                    int got = barcode(b->frames + ((size_t)i * 4 + t) * 224 * 224 * 3, 224, 320, 240);
                    if (got != want && wrong++ < 5)
                        fprintf(stderr, "clip %d frame %d (prepared %d): barcode %d, expected source frame %d\n", i, t, k, got, want);
                }
                clips++;
            }
            ld_release(l, b);
        }
        CHECK_MSG(wrong == 0, "%d frames show the wrong source frame", wrong);
        CHECK(clips >= 6 * 3); /* 40 frames a video, span 10: 4 clips a video */
        ld_close(l);
        CHECK_MSG(n_host_alloc == 3 * c.ring && n_host_free == n_host_alloc, "frames, audio and labels of %d batches: %d "
                  "allocated, %d freed by the caller's allocator", c.ring, n_host_alloc, n_host_free);
    }

    /* --raw: frames stored uncompressed. The same manifest, files of codec raw, and the loader's clips show the same
     * source frames (barcodes), within JPEG's error of the JPEG folder's clips but not equal to them; the labels
     * and audio the same bits. */
    char praw[700];
    snprintf(praw, sizeof praw, "%s/prep-raw", tmp);
    const char *rargs[] = {"prep", "--src", syn, "--splits", lists, "--out", praw, "--jobs", "2", "--raw", NULL};
    CHECK_EQ_I64(run_cmd(gen_prep_main, rargs), 0);
    snprintf(mp2, sizeof mp2, "%s/manifest.jsonl", praw);
    char *man4 = check_slurp(mp2);
    CHECK_MSG(man4 && man && !strcmp(man, man4), "the manifest of the raw folder differs");
    free(man4);
    {
        char vp[900];
        snprintf(vp, sizeof vp, "%s/videos/ArmSwing/v_ArmSwing_g02_c01.avf", praw);
        avf_file f;
        CHECK_MSG(avf_open(vp, &f, err, sizeof err) == 0, "%s", err);
        CHECK_EQ_I64(f.codec, AVF_RAW);
        CHECK_EQ_I64(f.quality, 0);
        if (f.base) avf_close(&f);
        ld_config cj = base_cfg(prep, "train", 4, 3, 2, 0, 1), cr = base_cfg(praw, "train", 4, 3, 2, 0, 1);
        ld_loader *lj = ld_open(&cj, err, sizeof err), *lr = ld_open(&cr, err, sizeof err);
        CHECK_MSG(lj && lr, "%s", err);
        if (lj && lr && ld_start_epoch(lj, 0) == 0 && ld_start_epoch(lr, 0) == 0) {
            const ld_batch *bj, *br;
            int clips = 0, wrong = 0, same_audio = 1;
            double diff = 0, n = 0;
            while ((bj = ld_next(lj)) && (br = ld_next(lr))) {
                for (int i = 0; i < br->count; i++) {
                    for (int t = 0; t < 4; t++) {
                        const uint8_t *fr = br->frames + ((size_t)i * 4 + t) * 224 * 224 * 3;
                        const uint8_t *fj = bj->frames + ((size_t)i * 4 + t) * 224 * 224 * 3;
                        int k = br->start[i] + t * 3;
                        wrong += barcode(fr, 224, 320, 240) != (int)floor(k * 25.0 / 20.0 + 1e-9);
                        for (int e = 0; e < 224 * 224 * 3; e++) diff += abs((int)fr[e] - (int)fj[e]), n++;
                    }
                    clips++;
                }
                same_audio &= br->count == bj->count && !memcmp(br->labels, bj->labels, sizeof(int64_t) * (size_t)br->count) &&
                              !memcmp(br->audio, bj->audio, sizeof(float) * (size_t)br->count * 4 * 102 * 128);
                ld_release(lr, br);
                ld_release(lj, bj);
            }
            CHECK(clips >= 6 * 3);
            CHECK_MSG(wrong == 0, "%d raw frames show the wrong source frame", wrong);
            CHECK_MSG(n > 0 && diff / n > 0 && diff / n < 3, "raw against JPEG frames: mean absolute difference %.3f", n ? diff / n : -1);
            CHECK_MSG(same_audio, "the raw folder's labels or audio differ from the JPEG folder's");
        }
        if (lj) ld_close(lj);
        if (lr) ld_close(lr);
    }
    /* a JPEG folder prepared again with --raw is prepared again (its records keep the quality, 0 for raw) */
    {
        const char *r2args[] = {"prep", "--src", syn, "--splits", lists, "--out", prep2, "--jobs", "2", "--raw", NULL};
        CHECK_EQ_I64(run_cmd(gen_prep_main, r2args), 0);
        char vp[900];
        snprintf(vp, sizeof vp, "%s/videos/ArmSwing/v_ArmSwing_g02_c01.avf", prep2);
        avf_file f;
        CHECK_MSG(avf_open(vp, &f, err, sizeof err) == 0, "%s", err);
        CHECK_EQ_I64(f.codec, AVF_RAW);
        if (f.base) avf_close(&f);
    }

    /* Audio alignment: one clip per prepared frame (T 1); the burst at t_m (1.0 s, 50 ms of 1 kHz) must
     * peak in the rows where it falls inside that frame's centred 1 s window. */
    c = base_cfg(prep, "train", 1, 1, 8, 0, 1);
    l = ld_open(&c, err, sizeof err);
    CHECK_MSG(l != NULL, "%s", err);
    if (l) {
        const double tm = synth_marker_time(2.0, 25.0);
        ld_start_epoch(l, 0);
        const ld_batch *b;
        int checked = 0, off = 0, compared = 0;
        double worst = 0;
        rt_fbank *fb = rt_fbank_new(16000, 128);
        float *ref = malloc(sizeof(float) * 102 * 128);
        while ((b = ld_next(l))) {
            for (int i = 0; i < b->count; i++) {
                const float *a = b->audio + (size_t)i * 102 * 128;
                /* the loader's sliced clip fbank equals rt_fbank_window on the prepared audio */
                {
                    char vp[1200];
                    snprintf(vp, sizeof vp, "%s/videos/%s.avf", prep, ld_video_name(l, b->video[i]));
                    char *avi = strstr(vp, ".avi.avf"); /* videos/<Class>/<stem>.avf */
                    if (avi) memmove(avi, ".avf", 5);
                    avf_file af;
                    if (avf_open(vp, &af, err, sizeof err) == 0) {
                        float *wave = malloc(sizeof(float) * (size_t)af.samples);
                        for (int64_t s2 = 0; s2 < af.samples; s2++) wave[s2] = (float)(af.audio[s2] - af.audio_mean);
                        rt_fbank_window(fb, wave, af.samples, (int64_t)llround(b->start[i] * 800.0), 16000, -4.1426, 3.2001,
                                        102, ref);
                        for (int e2 = 0; e2 < 102 * 128; e2++) worst = fmax(worst, fabs(ref[e2] - a[e2]));
                        compared++;
                        free(wave);
                        avf_close(&af);
                    }
                }
                if (b->video[i] != 0) continue;
                const double tf = b->start[i] / 20.0;
                /* rows (10 ms hops of 25 ms frames) of the window [tf - 0.5, tf + 0.5) */
                int best = -1;
                double be = -1e30;
                for (int r = 0; r < 98; r++) {
                    double e = 0;
                    for (int m = 35; m < 55; m++) e += a[r * 128 + m]; /* mel bins around 1 kHz */
                    if (e > be) be = e, best = r;
                }
                if (fabs(tm - tf) < 0.4) {
                    int expect = (int)floor(((tm + 0.025) - (tf - 0.5)) * 100.0 - 1.25 + 0.5);
                    checked++;
                    if (abs(best - expect) > 3 && off++ < 5)
                        fprintf(stderr, "frame %d: burst peaks in row %d, expected about %d\n", b->start[i], best, expect);
                }
            }
            ld_release(l, b);
        }
        CHECK_MSG(checked >= 14, "only %d frames near the burst", checked);
        CHECK_MSG(compared > 100 && worst < 1e-5, "loader audio vs rt_fbank_window: %d windows compared, worst %.3g",
                  compared, worst);
        free(ref);
        rt_fbank_free(fb);
        CHECK_MSG(off == 0, "%d windows put the burst in the wrong rows", off);
        /* padded rows after the 98 fbank rows are zero */
        ld_close(l);
    }

    /* Determinism: training batches are identical with 1 and 2 threads, and change with the epoch. */
    ld_config c1 = base_cfg(prep, "train", 3, 2, 2, 1, 1), c2 = base_cfg(prep, "train", 3, 2, 2, 1, 2);
    ld_loader *l1 = ld_open(&c1, err, sizeof err), *l2 = ld_open(&c2, err, sizeof err);
    CHECK(l1 && l2);
    if (l1 && l2) {
        int same = 1, batches = 0;
        uint64_t h0 = 0, h1 = 0;
        for (int ep = 0; ep < 2; ep++) {
            ld_start_epoch(l1, ep);
            ld_start_epoch(l2, ep);
            const ld_batch *a, *bb;
            while ((a = ld_next(l1)) && (bb = ld_next(l2))) {
                same &= !memcmp(a->frames, bb->frames, (size_t)2 * 3 * 224 * 224 * 3);
                same &= !memcmp(a->audio, bb->audio, sizeof(float) * 2 * 3 * 102 * 128);
                same &= !memcmp(a->labels, bb->labels, sizeof(int64_t) * 2);
                uint64_t *h = ep ? &h1 : &h0;
                for (int i = 0; i < 2; i++) *h = *h * 31 + (uint64_t)a->video[i] * 1000 + (uint64_t)a->start[i];
                ld_release(l1, a);
                ld_release(l2, bb);
                batches++;
            }
        }
        CHECK(same);
        CHECK_EQ_I64(batches, 2 * 3); /* 6 training videos, B 2 */
        CHECK(h0 != h1);
        ld_stats st = ld_get_stats(l1);
        CHECK_EQ_I64(st.bad_clips, 0);
    }
    ld_close(l1);
    ld_close(l2);

    /* Validation groups are held out of LD_TRAIN_ONLY and are all of LD_VAL_ONLY. */
    ld_config cv = base_cfg(prep, "train", 2, 1, 1, 0, 1);
    cv.val_every = 2;
    cv.holdout = LD_VAL_ONLY;
    ld_loader *lv = ld_open(&cv, err, sizeof err);
    cv.holdout = LD_TRAIN_ONLY;
    ld_loader *lt = ld_open(&cv, err, sizeof err);
    CHECK(lv && lt);
    if (lv && lt) CHECK_EQ_I64(ld_videos(lv) + ld_videos(lt), 6);
    ld_close(lv);
    ld_close(lt);

    if (man) test_bad_manifests(prep, man);

    /* A corrupt prepared file: its clip is reported as invalid, never silently wrong. */
    char victim[900];
    snprintf(victim, sizeof victim, "%s/videos/ArmSwing", prep);
    DIR *d = opendir(victim);
    struct dirent *de;
    while (d && (de = readdir(d)))
        if (strstr(de->d_name, ".avf")) {
            char p[1200];
            snprintf(p, sizeof p, "%s/%s", victim, de->d_name);
            FILE *f = fopen(p, "r+b");
            if (f) { /* overwrite the middle of the JPEG payloads */
                fseek(f, 2000, SEEK_SET);
                char junk[4000];
                memset(junk, 0x5a, sizeof junk);
                fwrite(junk, 1, sizeof junk, f);
                fclose(f);
            }
            break;
        }
    if (d) closedir(d);
    c = base_cfg(prep, "train", 4, 3, 2, 0, 2);
    l = ld_open(&c, err, sizeof err);
    if (l) {
        ld_start_epoch(l, 0);
        const ld_batch *b;
        int invalid = 0;
        while ((b = ld_next(l))) {
            for (int i = 0; i < b->count; i++) invalid += !b->valid[i];
            ld_release(l, b);
        }
        ld_stats st = ld_get_stats(l);
        CHECK_MSG(invalid > 0 && st.corrupt_frames > 0, "corruption was not reported (%d invalid clips)", invalid);
        ld_close(l);
    }
    free(man);
}

static void test_short_and_bad_files(void) {
    char p[600], err[512];
    /* a 0.3 s video: 6 prepared frames, shorter than a clip of T 8 */
    snprintf(p, sizeof p, "%s/short.avi", tmp);
    CHECK_EQ_I64(synth_write_file(p, 0.3, 25.0, 160, 120, 44100, 0, 1, -1), 0);
    media_info mi;
    CHECK(media_probe(p, &mi) == 0 && mi.status == MEDIA_OK);
    /* a video without audio, one with digitally silent audio */
    snprintf(p, sizeof p, "%s/noaudio.avi", tmp);
    CHECK_EQ_I64(synth_write_file(p, 0.5, 12.0, 160, 120, 0, 0, 1, -1), 0);
    CHECK(media_probe(p, &mi) == 0 && mi.status == MEDIA_NO_AUDIO);
    snprintf(p, sizeof p, "%s/silent.avi", tmp);
    CHECK_EQ_I64(synth_write_file(p, 0.5, 30000.0 / 1001, 160, 120, 16000, 1, 1, -1), 0);
    CHECK(media_probe(p, &mi) == 0 && mi.status == MEDIA_SILENT);
    /* garbage and truncated files fail cleanly */
    snprintf(p, sizeof p, "%s/garbage.mp4", tmp);
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 5000; i++) fputc((i * 7919) & 0xff, f);
    fclose(f);
    CHECK(media_probe(p, &mi) == -1 && mi.status == MEDIA_UNREADABLE && mi.reason[0]);
    media_target t = {64, 20, 1, 16000};
    media_output mo;
    CHECK(media_decode(p, &t, NULL, NULL, &mo, err, sizeof err) == -1 && err[0]);
    snprintf(p, sizeof p, "%s/short.avi", tmp);
    char *whole = check_slurp(p);
    struct stat st;
    stat(p, &st);
    for (int cut = 64; cut < st.st_size && whole; cut = cut * 2 + 17) {
        char q[700];
        snprintf(q, sizeof q, "%s/cut.avi", tmp);
        f = fopen(q, "wb");
        fwrite(whole, 1, (size_t)cut, f);
        fclose(f);
        media_probe(q, &mi); /* must not crash; any verdict with a reason is fine */
        int r = media_decode(q, &t, NULL, NULL, &mo, err, sizeof err);
        if (r == 0) media_output_free(&mo);
        CHECK(r == 0 || err[0]);
    }
    free(whole);
    /* a truncated prepared file is refused by avf_open */
    avf_writer *w = avf_writer_open(p, 32, 20, 1, AVF_JPEG, 3, err, sizeof err);
    uint8_t img[32 * 32 * 3];
    memset(img, 100, sizeof img);
    snprintf(p, sizeof p, "%s/x.avf", tmp);
    avf_writer_abort(w);
    w = avf_writer_open(p, 32, 20, 1, AVF_JPEG, 3, err, sizeof err);
    CHECK(w != NULL);
    for (int k = 0; k < 5 && w; k++) avf_writer_frame(w, img);
    float au[1000] = {0};
    CHECK(w && avf_writer_finish(w, au, 1000, 16000, err, sizeof err) == 0);
    avf_file af;
    CHECK(avf_open(p, &af, err, sizeof err) == 0 && af.frames == 5 && af.samples == 1000);
    avf_close(&af);
    stat(p, &st);
    CHECK(truncate(p, st.st_size - 100) == 0);
    CHECK(avf_open(p, &af, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "truncated");
}

static void test_shared_media(const char *dir) {
    static const struct { const char *file; media_status want; } k[] = {
        {"video/ball-throw-vp9.avi", MEDIA_OK},       {"video/broken-no-streams.mp4", MEDIA_UNREADABLE},
        {"video/cockatoo-silent-audio.mp4", MEDIA_SILENT}, {"video/office-pan-nearsilent.mp4", MEDIA_OK},
        {"video/robot-3gp.3gp", MEDIA_OK},            {"video/robot-asf.asf", MEDIA_OK},
        {"video/robot-flv.flv", MEDIA_OK},            {"video/robot-mkv.mkv", MEDIA_OK},
        {"video/robot-mov.mov", MEDIA_OK},            {"video/robot-mp4.mp4", MEDIA_OK},
        {"video/robot-ogg.ogv", MEDIA_OK},            {"video/robot-rmvb.rmvb", MEDIA_OK},
        {"video/robot-webm.webm", MEDIA_OK},          {"video/short-silent-audio.mp4", MEDIA_SILENT},
        {"video/tiny-no-audio.mp4", MEDIA_NO_AUDIO},
    };
    char p[1200], err[512];
    snprintf(p, sizeof p, "%s/video", dir);
    struct stat st;
    if (stat(p, &st)) {
        printf("%s absent: real-media checks skipped\n", p);
        return;
    }
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, k[i].file);
        media_info mi;
        media_probe(p, &mi);
        CHECK_MSG(mi.status == k[i].want, "%s: %s (%s), expected %s", k[i].file, media_status_name(mi.status), mi.reason,
                  media_status_name(k[i].want));
        media_target t = {224, 20, 1, 16000};
        media_output mo;
        int r = media_decode(p, &t, NULL, NULL, &mo, err, sizeof err);
        CHECK_MSG(k[i].want == MEDIA_UNREADABLE ? r == -1 : (r == 0 && mo.frames > 0), "%s: decode %d (%s)", k[i].file, r,
                  r ? err : "");
        if (r == 0) media_output_free(&mo);
    }
}

int main(int argc, char **argv) {
    snprintf(tmp, sizeof tmp, "%s/avgen-data-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp)) return 1;
    media_quiet();
    test_short_and_bad_files();
    test_pipeline();
    if (argc > 1) test_shared_media(argv[1]);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    return CHECK_DONE();
}
