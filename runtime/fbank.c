/* fbank.c: Kaldi log-mel fbank matching torchaudio.compliance.kaldi.fbank (torchaudio 0.13, float32) with the
 * LAVISH settings, and the per-video-frame audio window of MODEL.md sections 1 and 5. The Hann window and the
 * mel triangles are built with torchaudio's float32 operations in its order (at 16 kHz / 128 mels 498 of the 504
 * weights are bit-identical, 6 differ by <= 1.2e-5 through one-ulp differences of torch's vectorised log; 391 of
 * 400 window values are identical, 9 one ulp off); frames are processed in float32 as torch does; power spectra
 * and mel sums are accumulated in double.
 * FFT: FFTW3 single precision (see the note at rt_fbank_new). */
#include "fbank.h"

#include <fftw3.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct rt_fbank {
    int sample_rate, mel_bins;
    int frame_len, frame_shift, nfft;
    float *window;          /* [frame_len] symmetric Hann */
    int *mel_first;         /* [mel_bins] first FFT bin with a positive weight */
    int *mel_count;         /* [mel_bins] number of consecutive FFT bins from mel_first */
    int *mel_offset;        /* [mel_bins] index of that run in mel_weight */
    float *mel_weight;      /* all positive weights, run after run */
    float *frame;           /* FFTW scratch: [nfft] real input */
    fftwf_complex *spec;    /* FFTW scratch: [nfft / 2 + 1] */
    double *power;          /* scratch: [nfft / 2 + 1] */
    fftwf_plan plan;
};

/* FFTW's planner (plan creation and destruction) is not thread-safe; executing a plan is. */
static pthread_mutex_t g_fftw_planner = PTHREAD_MUTEX_INITIALIZER;

void rt_fbank_free(rt_fbank *fb) {
    if (!fb) return;
    if (fb->plan) {
        pthread_mutex_lock(&g_fftw_planner);
        fftwf_destroy_plan(fb->plan);
        pthread_mutex_unlock(&g_fftw_planner);
    }
    fftwf_free(fb->frame);
    fftwf_free(fb->spec);
    free(fb->power);
    free(fb->window);
    free(fb->mel_first);
    free(fb->mel_count);
    free(fb->mel_offset);
    free(fb->mel_weight);
    free(fb);
}

/* torch.hann_window(n, periodic=False, dtype=float32): arange(n) * (2 pi / (n - 1)), cos, * -0.5, + 0.5,
 * every step rounded to float. cos and log (below) are evaluated in double and rounded, i.e. correctly rounded
 * in practice and so independent of the libm's float versions; torch's vectorised Sleef functions (1 ulp)
 * still differ in the last bit for about 2% of the window (9 of 400) and a few filter weights. */
static void hann_window(float *w, int n) {
    if (n == 1) {
        w[0] = 1.0f;
        return;
    }
    const float step = (float)(M_PI * 2.0 / (double)(n - 1));
    for (int i = 0; i < n; i++) {
        float c = (float)cos((double)((float)i * step));
        float m = c * -0.5f;
        w[i] = m + 0.5f;
    }
}

/* get_mel_banks(num_bins, nfft, sr, low 20, high 0 -> Nyquist, no VTLN): the band edges come from Python
 * doubles, the per-bin arithmetic is float32 tensors; only positive weights are kept (max(0, min(up, down))). */
static int build_mel_banks(rt_fbank *fb) {
    const int nb = fb->mel_bins, nbins = fb->nfft / 2;
    const double sr = (double)fb->sample_rate, nyquist = 0.5 * sr;
    const double low = 20.0, high = nyquist;
    const double fft_bin_width = sr / (double)fb->nfft;
    const double mel_low = 1127.0 * log(1.0 + low / 700.0);
    const double mel_high = 1127.0 * log(1.0 + high / 700.0);
    const double delta = (mel_high - mel_low) / (double)(nb + 1);
    const float mel_low_f = (float)mel_low, delta_f = (float)delta, width_f = (float)fft_bin_width;

    float *mel = malloc((size_t)nbins * sizeof *mel);
    float *w = malloc((size_t)nb * (size_t)nbins * sizeof *w);
    fb->mel_first = malloc((size_t)nb * sizeof *fb->mel_first);
    fb->mel_count = malloc((size_t)nb * sizeof *fb->mel_count);
    fb->mel_offset = malloc((size_t)nb * sizeof *fb->mel_offset);
    if (!mel || !w || !fb->mel_first || !fb->mel_count || !fb->mel_offset) {
        free(mel);
        free(w);
        return -1;
    }
    for (int j = 0; j < nbins; j++) {
        float f = width_f * (float)j;
        float r = f / 700.0f;
        float a = 1.0f + r;
        mel[j] = 1127.0f * (float)log((double)a);
    }
    size_t total = 0;
    for (int m = 0; m < nb; m++) {
        float left = mel_low_f + (float)m * delta_f;
        float center = mel_low_f + ((float)m + 1.0f) * delta_f;
        float right = mel_low_f + ((float)m + 2.0f) * delta_f;
        float up_den = center - left, down_den = right - center;
        int first = -1, last = -1;
        for (int j = 0; j < nbins; j++) {
            float up = (mel[j] - left) / up_den;
            float down = (right - mel[j]) / down_den;
            float v = up < down ? up : down;
            if (!(v > 0.0f)) v = 0.0f;
            w[(size_t)m * (size_t)nbins + (size_t)j] = v;
            if (v > 0.0f) {
                if (first < 0) first = j;
                last = j;
            }
        }
        fb->mel_first[m] = first < 0 ? 0 : first;
        fb->mel_count[m] = first < 0 ? 0 : last - first + 1;
        fb->mel_offset[m] = (int)total;
        total += (size_t)fb->mel_count[m];
    }
    fb->mel_weight = malloc((total ? total : 1) * sizeof *fb->mel_weight);
    if (!fb->mel_weight) {
        free(mel);
        free(w);
        return -1;
    }
    for (int m = 0; m < nb; m++)
        memcpy(fb->mel_weight + fb->mel_offset[m], w + (size_t)m * (size_t)nbins + (size_t)fb->mel_first[m],
               (size_t)fb->mel_count[m] * sizeof *w);
    free(mel);
    free(w);
    return 0;
}

/* FFT choice: FFTW3 (Debian libfftw3-dev, pkg-config fftw3f) in single precision, as torch.fft.rfft runs on
 * float32: the standard, maintained FFT library in Debian, SIMD r2c codelets for the 512-point frame, and
 * FFTW_ESTIMATE gives a deterministic plan (FFTW_MEASURE may choose differently, and so round differently,
 * from run to run). There is no measured reason for a hand-written FFT: on the development machine (2 cores of
 * an AMD EPYC) a 1 s window (98 frames, 128 mels) takes about 0.17 ms in all, the FFTs about 15% of it (the
 * double logs and frame preparation dominate); torchaudio takes 2.5 ms on one thread. Measure with
 * `test_fbank --bench`. */
rt_fbank *rt_fbank_new(int sample_rate, int mel_bins) {
    if (sample_rate < 100 || sample_rate > 1000000 || mel_bins < 1 || mel_bins > 4096) return NULL;
    rt_fbank *fb = calloc(1, sizeof *fb);
    if (!fb) return NULL;
    fb->sample_rate = sample_rate;
    fb->mel_bins = mel_bins;
    /* torchaudio: int(sample_frequency * frame_length * 0.001), same double operations in the same order */
    fb->frame_shift = (int)((double)sample_rate * 10.0 * 0.001);
    fb->frame_len = (int)((double)sample_rate * 25.0 * 0.001);
    fb->nfft = 1;
    while (fb->nfft < fb->frame_len) fb->nfft *= 2;
    if (fb->frame_shift < 1 || fb->frame_len < 2 || fb->nfft < 2) goto fail;

    fb->window = malloc((size_t)fb->frame_len * sizeof *fb->window);
    fb->frame = fftwf_alloc_real((size_t)fb->nfft);
    fb->spec = fftwf_alloc_complex((size_t)fb->nfft / 2 + 1);
    fb->power = malloc(((size_t)fb->nfft / 2 + 1) * sizeof *fb->power);
    if (!fb->window || !fb->frame || !fb->spec || !fb->power) goto fail;
    hann_window(fb->window, fb->frame_len);
    if (build_mel_banks(fb) != 0) goto fail;

    pthread_mutex_lock(&g_fftw_planner);
    fb->plan = fftwf_plan_dft_r2c_1d(fb->nfft, fb->frame, fb->spec, FFTW_ESTIMATE);
    pthread_mutex_unlock(&g_fftw_planner);
    if (!fb->plan) goto fail;
    return fb;
fail:
    rt_fbank_free(fb);
    return NULL;
}

int rt_fbank_mel_bins(const rt_fbank *fb) { return fb ? fb->mel_bins : 0; }
int rt_fbank_frame_length(const rt_fbank *fb) { return fb ? fb->frame_len : 0; }
int rt_fbank_frame_shift(const rt_fbank *fb) { return fb ? fb->frame_shift : 0; }

int rt_fbank_num_frames(const rt_fbank *fb, int64_t n_samples) {
    if (!fb || n_samples < fb->frame_len) return 0;
    int64_t m = 1 + (n_samples - fb->frame_len) / fb->frame_shift;
    return m > INT32_MAX ? INT32_MAX : (int)m;
}

/* One frame of src (samples at index >= valid read as zero), rows of log-mel energies into out[mel_bins]. */
static void compute_frame(rt_fbank *fb, const float *src, int64_t start, int64_t valid, float *out) {
    const int L = fb->frame_len, nbins = fb->nfft / 2 + 1;
    float *x = fb->frame;
    const int64_t avail = valid - start;
    const int nv = avail <= 0 ? 0 : avail >= L ? L : (int)avail;
    if (nv > 0) memcpy(x, src + start, (size_t)nv * sizeof *x);
    memset(x + nv, 0, (size_t)(fb->nfft - nv) * sizeof *x);   /* zeros past the data and the FFT padding */
    /* remove_dc_offset: torch.mean in float32 (its cascade sum is accurate to about an ulp; double here) */
    double sum = 0.0;
    for (int i = 0; i < L; i++) sum += x[i];
    const float mean = (float)(sum / (double)L);
    for (int i = 0; i < L; i++) x[i] = x[i] - mean;
    /* pre-emphasis: x[i] - 0.97 * x[max(0, i - 1)], float32, in place from the end */
    const float pre = 0.97f;
    for (int i = L - 1; i > 0; i--) {
        float t = pre * x[i - 1];
        x[i] = x[i] - t;
    }
    {
        float t = pre * x[0];
        x[0] = x[0] - t;
    }
    for (int i = 0; i < L; i++) x[i] *= fb->window[i];
    fftwf_execute(fb->plan);
    for (int k = 0; k < nbins; k++) {
        double re = fb->spec[k][0], im = fb->spec[k][1];
        fb->power[k] = re * re + im * im;
    }
    const double eps = (double)FLT_EPSILON;   /* torch.finfo(torch.float).eps = 1.1920929e-07 */
    for (int m = 0; m < fb->mel_bins; m++) {
        const float *w = fb->mel_weight + fb->mel_offset[m];
        const double *p = fb->power + fb->mel_first[m];
        double e = 0.0;
        for (int j = 0; j < fb->mel_count[m]; j++) e += (double)w[j] * p[j];
        out[m] = (float)log(e > eps ? e : eps);
    }
}

/* fbank of a signal of `total` samples whose first `valid` come from src and the rest are zeros. */
static int compute_padded(rt_fbank *fb, const float *src, int64_t valid, int64_t total, float *out) {
    int64_t m64 = total < fb->frame_len ? 0 : 1 + (total - fb->frame_len) / fb->frame_shift;
    if (m64 > INT_MAX || m64 * (int64_t)fb->mel_bins > INT64_MAX / 4) return -1;
    for (int64_t f = 0; f < m64; f++)
        compute_frame(fb, src, f * fb->frame_shift, valid, out + f * fb->mel_bins);
    return (int)m64;
}

int rt_fbank_compute(rt_fbank *fb, const float *samples, int64_t n, float *out) {
    if (!fb || !samples || !out) return -1;
    if (n < 0) n = 0;
    return compute_padded(fb, samples, n, n, out);
}

int rt_fbank_window(rt_fbank *fb, const float *wave, int64_t n_total, int64_t center_sample, int window_samples,
                    double norm_mean, double norm_std, int target_rows, float *out) {
    if (!fb || !out || n_total < 0 || (!wave && n_total > 0)) return -1;
    if (window_samples < fb->frame_len) return -1;
    if (!isfinite(norm_mean) || !isfinite(norm_std) || !(norm_std > 0.0)) return -1;
    const int rows = rt_fbank_num_frames(fb, window_samples);
    if (target_rows < rows) return -1;

    const int64_t w = window_samples, half = w / 2;
    int64_t start = center_sample < INT64_MIN + half ? 0 : center_sample - half;
    const int64_t max_start = n_total > w ? n_total - w : 0;
    if (start > max_start) start = max_start;
    if (start < 0) start = 0;
    const int64_t valid = n_total - start < w ? n_total - start : w;   /* >= 0: start <= max(0, n_total - w) */
    const float *src = valid > 0 ? wave + start : out;                 /* out is never read when valid == 0 */

    if (compute_padded(fb, src, valid, w, out) != rows) return -1;
    const double denom = 2.0 * norm_std;
    const size_t nvals = (size_t)rows * (size_t)fb->mel_bins;
    for (size_t i = 0; i < nvals; i++) out[i] = (float)(((double)out[i] - norm_mean) / denom);
    memset(out + nvals, 0, (size_t)(target_rows - rows) * (size_t)fb->mel_bins * sizeof *out);
    return 0;
}

double rt_fbank_mean(const float *wave, int64_t n) {
    if (!wave || n <= 0) return 0.0;
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += wave[i];
    return s / (double)n;
}
