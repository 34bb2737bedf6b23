/* test_fbank.c: tests runtime/fbank.{h,c}: argument checks, frame counts, the model window's placement
 * (start, middle and end clamps, a file shorter than the window, extreme centres), normalisation before zero
 * padding, determinism and concurrent use of separate objects; and torchaudio references written by
 * tests/reference/fbank_ref.py: max |error| <= 1e-3 in the log domain for every case.
 * Usage: test_fbank FIXTURE_DIR                 unit tests + FIXTURE_DIR/ref.safetensors (committed)
 *        test_fbank --live MEDIA_DIR SCRIPT [PYTHON]   runs SCRIPT live on MEDIA_DIR (default /usr/bin/python3)
 *                                               and compares; exit 77 (skipped) without torchaudio or media
 *        test_fbank --bench                     time per 1 s window (16 kHz, 128 mels) */
#include "fbank.h"
#include "safetensors.h"
#include "check.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SR 16000
#define MEL 128
#define WIN 16000
#define ROWS 98
#define TARGET 102
#define NORM_MEAN (-4.1426)
#define NORM_STD 3.2001
#define TOL_LOG 1e-3    /* max |error| of a log-mel value whose energy float32 resolves (below) */
#define RESOLVED 1e-8   /* ... i.e. whose energy is at least this fraction of its frame's total mel energy */

/* Deterministic noise in [-amp, amp). */
static void fill_noise(float *x, int64_t n, uint64_t seed, float amp) {
    uint64_t s = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = amp * (2.0f * (float)((s >> 40) & 0xFFFFFF) / 16777216.0f - 1.0f);
    }
}

static float norm1(float x) { return (float)(((double)x - NORM_MEAN) / (2.0 * NORM_STD)); }

/* Reference for rt_fbank_window built from rt_fbank_compute: fbank of wave[start..start+WIN) (zeros past
 * n_total), normalised, zero rows up to TARGET. */
static void window_by_hand(rt_fbank *fb, const float *wave, int64_t n_total, int64_t start, float *out) {
    float *seg = calloc(WIN, sizeof *seg);
    for (int64_t i = 0; i < WIN && start + i < n_total; i++) seg[i] = wave[start + i];
    int rows = rt_fbank_compute(fb, seg, WIN, out);
    for (int i = 0; i < rows * MEL; i++) out[i] = norm1(out[i]);
    memset(out + rows * MEL, 0, (size_t)(TARGET - rows) * MEL * sizeof *out);
    free(seg);
}

static void test_arguments(void) {
    CHECK(rt_fbank_new(0, MEL) == NULL);
    CHECK(rt_fbank_new(99, MEL) == NULL);
    CHECK(rt_fbank_new(-16000, MEL) == NULL);
    CHECK(rt_fbank_new(1000001, MEL) == NULL);
    CHECK(rt_fbank_new(SR, 0) == NULL);
    CHECK(rt_fbank_new(SR, -1) == NULL);
    CHECK(rt_fbank_new(SR, 4097) == NULL);
    rt_fbank_free(NULL);

    rt_fbank *fb = rt_fbank_new(SR, MEL);
    CHECK(fb != NULL);
    if (!fb) return;
    CHECK_EQ_I64(rt_fbank_mel_bins(fb), MEL);
    CHECK_EQ_I64(rt_fbank_frame_length(fb), 400);
    CHECK_EQ_I64(rt_fbank_frame_shift(fb), 160);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, 16000), 98);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, 0), 0);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, -5), 0);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, 399), 0);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, 400), 1);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, 559), 1);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, 560), 2);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, 16079), 98);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, 16080), 99);
    CHECK_EQ_I64(rt_fbank_num_frames(fb, INT64_MAX), INT32_MAX);
    CHECK_EQ_I64(rt_fbank_num_frames(NULL, 16000), 0);

    float x[400] = {0}, out[2 * MEL];
    out[0] = 42.0f;
    CHECK_EQ_I64(rt_fbank_compute(NULL, x, 400, out), -1);
    CHECK_EQ_I64(rt_fbank_compute(fb, NULL, 400, out), -1);
    CHECK_EQ_I64(rt_fbank_compute(fb, x, 400, NULL), -1);
    CHECK_EQ_I64(rt_fbank_compute(fb, x, 399, out), 0);
    CHECK_EQ_I64(rt_fbank_compute(fb, x, -1, out), 0);
    CHECK(out[0] == 42.0f);
    /* silence: every mel energy is 0 and floored at FLT_EPSILON */
    CHECK_EQ_I64(rt_fbank_compute(fb, x, 400, out), 1);
    int floor_ok = 1;
    for (int m = 0; m < MEL; m++) floor_ok &= fabsf(out[m] - logf(FLT_EPSILON)) < 1e-6f;
    CHECK_MSG(floor_ok, "silence gives log(FLT_EPSILON) = %.7f, got %.7f", logf(FLT_EPSILON), out[0]);
    rt_fbank_free(fb);

    /* other rates as torchaudio derives them: int(sr * 25 * 0.001), int(sr * 10 * 0.001), next power of 2 */
    fb = rt_fbank_new(44100, 64);
    CHECK(fb && rt_fbank_frame_length(fb) == 1102 && rt_fbank_frame_shift(fb) == 441);
    rt_fbank_free(fb);
    fb = rt_fbank_new(100, 1);
    CHECK(fb && rt_fbank_frame_length(fb) == 2 && rt_fbank_frame_shift(fb) == 1);
    rt_fbank_free(fb);

    CHECK(rt_fbank_mean(NULL, 10) == 0.0);
    float four[4] = {1, 2, 3, 4};
    CHECK(rt_fbank_mean(four, 4) == 2.5);
    CHECK(rt_fbank_mean(four, 0) == 0.0);
    enum { BIG = 3000000 };
    float *big = malloc(BIG * sizeof *big);
    for (int i = 0; i < BIG; i++) big[i] = 0.1f;
    CHECK_MSG(fabs(rt_fbank_mean(big, BIG) - (double)0.1f) < 1e-12, "mean %.17g", rt_fbank_mean(big, BIG));
    free(big);
}

static void test_window(void) {
    rt_fbank *fb = rt_fbank_new(SR, MEL);
    if (!fb) {
        CHECK(fb != NULL);
        return;
    }
    enum { N = 25600 };
    float *wave = malloc(N * sizeof *wave);
    fill_noise(wave, N, 7, 0.3f);
    for (int i = 0; i < N; i++) wave[i] += 0.25f * sinf(0.05f * (float)i);
    float *out = malloc((TARGET + 1) * MEL * sizeof *out), *ref = malloc(TARGET * MEL * sizeof *ref);
    const float sentinel = 12345.0f;

    /* centre -> start = clamp(centre - 8000, 0, N - 16000 = 9600) */
    static const struct { int64_t center, start; } cases[] = {
        {0, 0}, {8000, 0}, {8001, 1}, {12800, 4800}, {17600, 9600}, {17601, 9600}, {N, 9600}, {N + 100000, 9600},
        {-5, 0}, {INT64_MIN, 0}, {INT64_MIN + 7999, 0}, {INT64_MAX, 9600},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        out[TARGET * MEL] = sentinel;
        int rc = rt_fbank_window(fb, wave, N, cases[c].center, WIN, NORM_MEAN, NORM_STD, TARGET, out);
        window_by_hand(fb, wave, N, cases[c].start, ref);
        CHECK_MSG(rc == 0 && memcmp(out, ref, TARGET * MEL * sizeof *out) == 0 && out[TARGET * MEL] == sentinel,
                  "centre %lld: expected the window starting at %lld", (long long)cases[c].center,
                  (long long)cases[c].start);
    }
    /* normalisation comes before the zero padding: rows 98..101 are exactly 0, not (0 - mean) / (2 std) */
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 12800, WIN, NORM_MEAN, NORM_STD, TARGET, out), 0);
    int pad_zero = 1;
    for (int i = ROWS * MEL; i < TARGET * MEL; i++) pad_zero &= out[i] == 0.0f && !signbit(out[i]);
    CHECK(pad_zero);
    float raw[ROWS * MEL];
    CHECK_EQ_I64(rt_fbank_compute(fb, wave + 4800, WIN, raw), ROWS);
    double worst = 0;
    for (int i = 0; i < ROWS * MEL; i++) {
        double d = fabs((double)out[i] - ((double)raw[i] - NORM_MEAN) / (2 * NORM_STD));
        if (d > worst) worst = d;
    }
    CHECK_MSG(worst < 1e-6, "normalised rows differ from (x - mean) / (2 std) by %g", worst);
    /* target_rows == frame count: no padding; smaller: rejected, out untouched */
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 12800, WIN, NORM_MEAN, NORM_STD, ROWS, out), 0);
    out[0] = sentinel;
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 12800, WIN, NORM_MEAN, NORM_STD, ROWS - 1, out), -1);
    CHECK(out[0] == sentinel);

    /* a file shorter than the window: it starts at 0 wherever the centre is, zeros after the file */
    for (int64_t center = -100; center <= 20000; center += 5050) {
        CHECK_EQ_I64(rt_fbank_window(fb, wave, 9600, center, WIN, NORM_MEAN, NORM_STD, TARGET, out), 0);
        window_by_hand(fb, wave, 9600, 0, ref);
        CHECK_MSG(memcmp(out, ref, TARGET * MEL * sizeof *out) == 0, "short file, centre %lld", (long long)center);
    }
    /* exactly one window long: always the whole file */
    CHECK_EQ_I64(rt_fbank_window(fb, wave, WIN, 15999, WIN, NORM_MEAN, NORM_STD, TARGET, out), 0);
    window_by_hand(fb, wave, WIN, 0, ref);
    CHECK(memcmp(out, ref, TARGET * MEL * sizeof *out) == 0);
    /* an empty file: every frame is silence (log floor, normalised), then the zero rows */
    CHECK_EQ_I64(rt_fbank_window(fb, NULL, 0, 0, WIN, NORM_MEAN, NORM_STD, TARGET, out), 0);
    int empty_ok = 1;
    for (int i = 0; i < TARGET * MEL; i++)
        empty_ok &= i < ROWS * MEL ? fabsf(out[i] - norm1(logf(FLT_EPSILON))) < 1e-6f : out[i] == 0.0f;
    CHECK(empty_ok);
    /* an odd window length: half = w / 2 rounded down */
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 12800, WIN + 1, NORM_MEAN, NORM_STD, TARGET, out), 0);
    float *seg_out = malloc(TARGET * MEL * sizeof *seg_out);
    CHECK_EQ_I64(rt_fbank_compute(fb, wave + 4800, WIN + 1, seg_out), ROWS);
    CHECK(fabsf(out[5] - norm1(seg_out[5])) == 0.0f);
    free(seg_out);

    /* bad arguments */
    out[0] = sentinel;
    CHECK_EQ_I64(rt_fbank_window(NULL, wave, N, 0, WIN, NORM_MEAN, NORM_STD, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, WIN, NORM_MEAN, NORM_STD, TARGET, NULL), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, NULL, N, 0, WIN, NORM_MEAN, NORM_STD, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, -1, 0, WIN, NORM_MEAN, NORM_STD, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, 399, NORM_MEAN, NORM_STD, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, 0, NORM_MEAN, NORM_STD, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, -WIN, NORM_MEAN, NORM_STD, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, WIN, NORM_MEAN, 0.0, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, WIN, NORM_MEAN, -1.0, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, WIN, NORM_MEAN, NAN, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, WIN, NORM_MEAN, INFINITY, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, WIN, NAN, NORM_STD, TARGET, out), -1);
    CHECK_EQ_I64(rt_fbank_window(fb, wave, N, 0, WIN, NORM_MEAN, NORM_STD, -1, out), -1);
    CHECK(out[0] == sentinel);

    free(wave);
    free(out);
    free(ref);
    rt_fbank_free(fb);
}

/* Separate objects in concurrent threads (creation included) give the serial results bit for bit. */
enum { THREADS = 4, TWAVE = 40000 };
static float *g_twave, *g_tserial;
static void *thread_main(void *arg) {
    int id = (int)(intptr_t)arg, bad = 0;
    float *out = malloc(TARGET * MEL * sizeof *out);
    for (int rep = 0; rep < 8; rep++) {
        rt_fbank *fb = rt_fbank_new(SR, MEL);
        if (!fb || !out) return (void *)(intptr_t)1;
        for (int k = 0; k < 4; k++) {
            int64_t c = (int64_t)((id * 4 + k) * 2000);
            rt_fbank_window(fb, g_twave, TWAVE, c, WIN, NORM_MEAN, NORM_STD, TARGET, out);
            bad |= memcmp(out, g_tserial + (size_t)(id * 4 + k) * TARGET * MEL, TARGET * MEL * sizeof *out) != 0;
        }
        rt_fbank_free(fb);
    }
    free(out);
    return (void *)(intptr_t)bad;
}

static void test_threads(void) {
    g_twave = malloc(TWAVE * sizeof *g_twave);
    g_tserial = malloc((size_t)THREADS * 4 * TARGET * MEL * sizeof *g_tserial);
    fill_noise(g_twave, TWAVE, 99, 0.5f);
    rt_fbank *fb = rt_fbank_new(SR, MEL);
    for (int i = 0; fb && i < THREADS * 4; i++)
        rt_fbank_window(fb, g_twave, TWAVE, (int64_t)i * 2000, WIN, NORM_MEAN, NORM_STD, TARGET,
                        g_tserial + (size_t)i * TARGET * MEL);
    rt_fbank_free(fb);
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) CHECK(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i) == 0);
    for (int i = 0; i < THREADS; i++) {
        void *r = NULL;
        pthread_join(th[i], &r);
        CHECK_MSG(r == NULL, "thread %d differs from the serial result", i);
    }
    free(g_twave);
    free(g_tserial);
}

/* ------------------------------------------------------------------------------ torchaudio references */
static const char *meta(const st_file *f, const char *key, const char *fallback) {
    const char *v = st_metadata(f, key);
    return v ? v : fallback;
}

static float *load_f32(const st_tensor *t) {
    float *p = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *p);
    if (p && st_to_f32(t, p) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Error statistics of log-mel values against torchaudio's.
 * torchaudio computes in float32: the FFT of a frame rounds every bin with an error of order
 * u * sqrt(frame energy) (u = 2^-24), so the log of a mel energy E carries an error of order
 * 2u * sqrt(E_frame / E), E_frame = the frame's total mel energy. Where E >= RESOLVED * E_frame that is below
 * 1e-4 and the tolerance is TOL_LOG. Below that (near-floor values beside a loud tone) torch's own value is
 * float32 noise: it moves by up to ~6e-3 when 9 of its 400 Hann coefficients change by one ulp, and torch in
 * float64 differs from torch in float32 by ~1e-2; such a value must be within TOL_LOG + 2u sqrt(E_frame / E). */
typedef struct {
    double max_err, max_resolved, max_noisy, max_noisy_ratio;   /* ratio: error / its tolerance */
    long long values, noisy, failures;
} err_stats;

static void compare_rows(const double *got, const double *want, int64_t rows, int mel, err_stats *st) {
    const double u = 0x1p-24;
    for (int64_t r = 0; r < rows; r++) {
        const double *g = got + r * mel, *w = want + r * mel;
        double total = 0;
        for (int m = 0; m < mel; m++) total += exp(w[m]);
        for (int m = 0; m < mel; m++) {
            const double e = fabs(g[m] - w[m]), frac = exp(w[m]) / total;
            double tol = TOL_LOG;
            if (!(e <= st->max_err)) st->max_err = e;   /* NaN propagates */
            st->values++;
            if (frac >= RESOLVED) {
                st->max_resolved = fmax(st->max_resolved, e);
            } else {
                tol += 2.0 * u * sqrt(1.0 / frac);
                st->noisy++;
                st->max_noisy = fmax(st->max_noisy, e);
                st->max_noisy_ratio = fmax(st->max_noisy_ratio, e / tol);
            }
            if (!(e <= tol) && st->failures++ < 5)
                fprintf(stderr, "  row %lld mel %d: %.7f, torchaudio %.7f: |err| %.3g > %.3g (energy %.3g of the "
                        "frame's)\n", (long long)r, m, g[m], w[m], e, tol, frac);
        }
    }
}

static void merge_stats(err_stats *all, const err_stats *st) {
    if (!(st->max_err <= all->max_err)) all->max_err = st->max_err;
    all->max_resolved = fmax(all->max_resolved, st->max_resolved);
    all->max_noisy = fmax(all->max_noisy, st->max_noisy);
    all->max_noisy_ratio = fmax(all->max_noisy_ratio, st->max_noisy_ratio);
    all->values += st->values;
    all->noisy += st->noisy;
    all->failures += st->failures;
}

static void report(const char *kind, const char *name, int64_t n, const char *what, long long count,
                   const err_stats *st) {
    CHECK_MSG(st->failures == 0 && st->values > 0, "%s %s: %lld of %lld values out of tolerance", kind, name,
              st->failures, st->values);
    printf("  %-7s %-22s %6lld samples %3lld %-7s max |err| %.2g", kind, name, (long long)n, count, what,
           st->max_resolved);
    if (st->noisy)
        printf("; %lld of %lld values below float32 resolution: max |err| %.2g (%.0f%% of their tolerance)",
               st->noisy, st->values, st->max_noisy, 100 * st->max_noisy_ratio);
    printf("\n");
}

/* Compares every NAME.input / NAME.expected and NAME.file / centers / windows of a fbank_ref.py file.
 * Returns the number of cases compared. */
static int compare_reference(const char *path) {
    char err[512];
    st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (!f) return 0;
    const int sr = atoi(meta(f, "sample_rate", "0")), mel = atoi(meta(f, "mel_bins", "0"));
    const int window = atoi(meta(f, "window_samples", "0")), target = atoi(meta(f, "target_rows", "0"));
    const double nmean = atof(meta(f, "norm_mean", "nan")), nstd = atof(meta(f, "norm_std", "nan"));
    rt_fbank *fb = rt_fbank_new(sr, mel);
    CHECK_MSG(fb != NULL, "%s: bad metadata sample_rate %d mel_bins %d", path, sr, mel);
    if (!fb) {
        st_close(f);
        return 0;
    }
    printf("%s (%s)\n", path, meta(f, "generator", "?"));
    int cases = 0;
    err_stats all = {0};
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        char name[256], key[300];
        err_stats st = {0};
        if (has_suffix(t->name, ".input")) {
            snprintf(name, sizeof name, "%.*s", (int)(strlen(t->name) - 6), t->name);
            snprintf(key, sizeof key, "%s.expected", name);
            const st_tensor *e = st_find(f, key);
            CHECK_MSG(e && e->ndim == 2 && e->shape[1] == mel && t->ndim == 1, "%s: bad tensors", name);
            if (!e || e->ndim != 2 || e->shape[1] != mel || t->ndim != 1) continue;
            const int64_t nv = e->numel ? e->numel : 1;
            float *x = load_f32(t), *want = load_f32(e), *got = malloc((size_t)nv * sizeof *got);
            double *gd = malloc((size_t)nv * sizeof *gd), *wd = malloc((size_t)nv * sizeof *wd);
            int frames = rt_fbank_num_frames(fb, t->shape[0]);
            CHECK_MSG(frames == e->shape[0], "%s: %d frames, torchaudio %lld", name, frames, (long long)e->shape[0]);
            if (frames == e->shape[0] && rt_fbank_compute(fb, x, t->shape[0], got) == frames) {
                for (int64_t k = 0; k < e->numel; k++) {
                    gd[k] = got[k];
                    wd[k] = want[k];
                }
                compare_rows(gd, wd, frames, mel, &st);
            }
            report("compute", name, t->shape[0], "frames", frames, &st);
            free(x);
            free(want);
            free(got);
            free(gd);
            free(wd);
        } else if (has_suffix(t->name, ".file")) {
            snprintf(name, sizeof name, "%.*s", (int)(strlen(t->name) - 5), t->name);
            snprintf(key, sizeof key, "%s.centers", name);
            const st_tensor *c = st_find(f, key);
            snprintf(key, sizeof key, "%s.windows", name);
            const st_tensor *w = st_find(f, key);
            int ok = c && w && c->dtype == ST_I64 && c->ndim == 1 && w->ndim == 3 && w->shape[0] == c->shape[0] &&
                     w->shape[1] == target && w->shape[2] == mel && t->ndim == 1;
            CHECK_MSG(ok, "%s: bad tensors", name);
            if (!ok) continue;
            const int64_t n = t->shape[0];
            const int rows = rt_fbank_num_frames(fb, window);
            float *wave = load_f32(t), *want = load_f32(w);
            float *got = malloc((size_t)target * (size_t)mel * sizeof *got);
            double *gd = malloc((size_t)rows * (size_t)mel * sizeof *gd), *wd = malloc((size_t)rows * (size_t)mel * sizeof *wd);
            const double mean = rt_fbank_mean(wave, n);   /* the caller's whole-file DC removal */
            for (int64_t k = 0; k < n; k++) wave[k] = (float)(wave[k] - mean);
            for (int64_t j = 0; j < c->shape[0]; j++) {
                int64_t center;
                memcpy(&center, (const char *)c->data + j * 8, 8);
                const float *wj = want + j * target * mel;
                if (rt_fbank_window(fb, wave, n, center, window, nmean, nstd, target, got) != 0) {
                    CHECK_MSG(0, "%s: rt_fbank_window failed at centre %lld", name, (long long)center);
                    continue;
                }
                for (int64_t k = 0; k < (int64_t)rows * mel; k++) {   /* back to the log domain */
                    gd[k] = (double)got[k] * 2.0 * nstd + nmean;
                    wd[k] = (double)wj[k] * 2.0 * nstd + nmean;
                }
                compare_rows(gd, wd, rows, mel, &st);
                int pad_ok = 1;
                for (int64_t k = (int64_t)rows * mel; k < (int64_t)target * mel; k++)
                    pad_ok &= got[k] == 0.0f && wj[k] == 0.0f;
                CHECK_MSG(pad_ok, "%s: centre %lld: padded rows are not all zero", name, (long long)center);
            }
            report("window", name, n, "windows", (long long)c->shape[0], &st);
            free(wave);
            free(want);
            free(got);
            free(gd);
            free(wd);
        } else {
            continue;
        }
        cases++;
        merge_stats(&all, &st);
    }
    printf("%d cases, %lld values: max |err| %.3g where float32 resolves the energy (tolerance %g); %lld values below "
           "float32 resolution: max |err| %.3g, %.0f%% of their tolerance\n", cases, all.values, all.max_resolved,
           TOL_LOG, all.noisy, all.max_noisy, 100 * all.max_noisy_ratio);
    rt_fbank_free(fb);
    st_close(f);
    return cases;
}

static int run_live(const char *media, const char *script, const char *python) {
    struct stat sb;
    if (stat(media, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        printf("media folder %s not found: skipped\n", media);
        return 77;
    }
    const char *tmpdir = getenv("TMPDIR");
    char dir[512], out[600];
    snprintf(dir, sizeof dir, "%s/avgen-fbank-XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }
    snprintf(out, sizeof out, "%s/live.safetensors", dir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(python, python, script, "live", media, out, (char *)NULL);
        fprintf(stderr, "cannot run %s: %s\n", python, strerror(errno));
        _exit(77);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid) status = -1;
    int rc;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
        printf("no torchaudio reference (no torchaudio for %s, or no recordings): skipped\n", python);
        rc = 77;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s %s live failed (status %d)\n", python, script, status);
        rc = 1;
    } else {
        CHECK(compare_reference(out) >= 8);
        rc = CHECK_DONE();
    }
    unlink(out);
    rmdir(dir);
    return rc;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int run_bench(void) {
    enum { N = 10 * SR, REPS = 1000 };
    float *wave = malloc(N * sizeof *wave), *out = malloc(TARGET * MEL * sizeof *out);
    fill_noise(wave, N, 3, 0.5f);
    double t0 = now_s();
    rt_fbank *fb = rt_fbank_new(SR, MEL);
    double t1 = now_s();
    double sink = 0;
    for (int r = 0; r < REPS; r++) {
        rt_fbank_window(fb, wave, N, (int64_t)(r * 1447) % N, WIN, NORM_MEAN, NORM_STD, TARGET, out);
        sink += out[r % (ROWS * MEL)];
    }
    double t2 = now_s();
    printf("rt_fbank_new %.3f ms; %d windows of 1 s (98 frames x 128 mels): %.1f us per window (checksum %g)\n",
           (t1 - t0) * 1e3, REPS, (t2 - t1) / REPS * 1e6, sink);
    rt_fbank_free(fb);
    free(wave);
    free(out);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "--bench") == 0) return run_bench();
    if (argc >= 4 && strcmp(argv[1], "--live") == 0)
        return run_live(argv[2], argv[3], argc >= 5 ? argv[4] : "/usr/bin/python3");
    if (argc != 2) {
        fprintf(stderr, "usage: test_fbank FIXTURE_DIR | --live MEDIA_DIR SCRIPT [PYTHON] | --bench\n");
        return 2;
    }
    test_arguments();
    test_window();
    test_threads();
    char path[1024];
    snprintf(path, sizeof path, "%s/ref.safetensors", argv[1]);
    CHECK(compare_reference(path) >= 10);
    return CHECK_DONE();
}
