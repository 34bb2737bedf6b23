/* fbank.h: Kaldi log-mel filterbank features matching torchaudio.compliance.kaldi.fbank with the LAVISH
 * settings (MODEL.md section 5): 25 ms frames, 10 ms hop, snip_edges, per-frame DC removal, pre-emphasis 0.97,
 * symmetric Hann window, FFT size rounded up to a power of two, power spectrum, HTK-mel triangles from 20 Hz to
 * Nyquist, log floored at FLT_EPSILON (within 1e-3 of torchaudio wherever float32 resolves the energy; see
 * tests/test_fbank.c); and the per-video-frame audio window of the model's input (MODEL.md section 1). */
#ifndef AVGEN_RUNTIME_FBANK_H
#define AVGEN_RUNTIME_FBANK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Precomputed window, mel filterbank, FFT plan and per-object scratch buffers.
 * Thread safety: an rt_fbank holds scratch, so rt_fbank_compute / rt_fbank_window on ONE object must not
 * run in two threads at once; use one rt_fbank per worker thread (about 10 KiB each at 16 kHz, 128 mels).
 * Creating and freeing objects from several threads at once is safe: FFTW's planner, which is process-global
 * and not thread-safe, is serialised by a mutex inside fbank.c (other code that plans FFTW transforms must not
 * do so concurrently with rt_fbank_new / rt_fbank_free). */
typedef struct rt_fbank rt_fbank;

/* Settings for sample_rate Hz and mel_bins filters, derived as torchaudio does: frame length
 * (int)(sample_rate * 25 * 0.001), hop (int)(sample_rate * 10 * 0.001), FFT size the next power of two
 * (400 / 160 / 512 at 16 kHz). sample_rate must be in 100..1000000, mel_bins in 1..4096 (torchaudio also
 * insists on mel_bins > 3; the formulas here are defined for any count). NULL on bad arguments or out of
 * memory. */
rt_fbank *rt_fbank_new(int sample_rate, int mel_bins);
void rt_fbank_free(rt_fbank *);                          /* NULL is fine */

int rt_fbank_mel_bins(const rt_fbank *);                 /* columns of the output */
int rt_fbank_frame_length(const rt_fbank *);             /* samples per analysis frame (400 at 16 kHz) */
int rt_fbank_frame_shift(const rt_fbank *);              /* hop in samples (160 at 16 kHz) */

/* Number of frames (rows) of n_samples with snip_edges: 1 + (n - frame_length) / frame_shift, 0 when n is
 * shorter than one frame (or negative). 98 for 16000 samples at 16 kHz. Saturates at INT32_MAX. */
int rt_fbank_num_frames(const rt_fbank *, int64_t n_samples);

/* Log-mel fbank of samples[0..n) without normalisation, as torchaudio's fbank(samples[None], LAVISH settings):
 * out[frames * mel_bins], row-major (time, mel), frames = rt_fbank_num_frames(n). No whole-signal DC is removed
 * here (each frame's own mean is). Returns the frame count (0 writes nothing), or -1 on NULL pointers or a
 * frame count that does not fit an int. */
int rt_fbank_compute(rt_fbank *, const float *samples, int64_t n, float *out);

/* The model's audio input for one video frame.
 * Window: w = window_samples samples of the whole (already DC-removed) waveform wave[0..n_total), starting at
 *     start = clamp(center_sample - w / 2, 0, max(0, n_total - w))     (w / 2 rounds down)
 * i.e. centred on center_sample while it fits, shifted to lie inside the file near its ends. When
 * n_total < w the window starts at sample 0, holds the whole file, and is zero-padded at its end (the
 * zeros come after the whole-file DC removal, as in a loader that subtracts the mean and then pads).
 * The caller picks center_sample, e.g. llround(timestamp_seconds * sample_rate); any value is accepted.
 * Output: its fbank (rt_fbank_num_frames(w) rows), each value normalised (x - norm_mean) / (2 * norm_std)
 * (computed in double, stored as float), then zero rows appended up to target_rows:
 * out[target_rows * mel_bins]. Returns 0; -1 (out untouched) on NULL pointers (wave may be NULL only when
 * n_total is 0), n_total < 0, a window shorter than one frame, norm_std not a finite positive number, norm_mean not
 * finite, or target_rows smaller than the frame count. */
int rt_fbank_window(rt_fbank *, const float *wave, int64_t n_total, int64_t center_sample, int window_samples,
                    double norm_mean, double norm_std, int target_rows, float *out);

/* Mean of wave[0..n) accumulated in double (0 for n <= 0), for the whole-file DC removal:
 * wave[i] = (float)(wave[i] - mean), as LAVISH's loader does `waveform - waveform.mean()`. */
double rt_fbank_mean(const float *wave, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
