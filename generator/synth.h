/* avgen synth: a generator of small UCF101-shaped data sets of synthetic videos with audio, written
 * through FFmpeg's libraries (libavformat/libavcodec), for the data pipeline's tests and demos.
 *
 *   avgen synth --out DIR [--classes K] [--videos N] [--cue audio|video|both] [--seed S]
 *               [--seconds F] [--size WxH] [--fps R] [--sample-rate HZ] [--markers] [--force]
 *
 * Layout written under DIR (the UCF101 layout):
 *   DIR/<Class>/v_<Stem>_gGG_cCC.avi        GG = group 01.., CC = clip within the group 01..
 *   DIR/ucfTrainTestlist/classInd.txt       "1 <Class>" ... (1-based, classes in alphabetical order)
 *   DIR/ucfTrainTestlist/trainlist0S.txt    "<Class>/v_<Stem>_gGG_cCC.avi <label>" for S = 1, 2, 3
 *   DIR/ucfTrainTestlist/testlist0S.txt     "<Class>/v_<Stem>_gGG_cCC.avi" (no label)
 * Every list line ends in CRLF. <Stem> equals <Class> except for the class "HandstandHops" (always the
 * second class), whose files are named v_HandStandHops_... as UCF101's HandstandPushups folder holds
 * v_HandStandPushups_... files. Classes 1..21 have fixed names (ArmSwing, HandstandHops, HulaHoop, ...);
 * classes 22..101 are ZzSynth022..ZzSynth101, so folder order is classInd order for any K.
 * The N videos are spread over the K classes (the first N mod K classes get one more). A class with n
 * videos has G = clamp(ceil(n / 5), min(n, 3), 25) groups; group g holds floor(n/G) clips, plus one for
 * the first n mod G groups. A group shares its background (colour, texture) and shape style. Split s
 * (1..3) tests the groups g (0-based) with (g - (s-1)*c) mod G < c, c = max(1, round(7 G / 25)): with
 * G = 25 that is UCF101's g01-g07, g08-g14, g15-g21; train and test never share a group.
 *
 * Content. Frames: a per-group background (base colour + gradient, stripes, checker or blobs) with a
 * small per-clip brightness jitter, a primary shape and sometimes (per group) a smaller distractor
 * shape that moves at random. The primary shape's motion is one of three kinds: linear drift that
 * wraps around the frame edges, a circular orbit, or a sinusoidal oscillation along an axis.
 *   --cue video|both: class c fixes the kind (c mod 3) and its parameter: u = (c/3 + 0.5) / (number of
 *     classes of that kind) gives the drift direction 2*pi*u (speed 0.45 min(W, H) px/s), the orbit's
 *     angular speed 2*pi*(0.5 + u) rad/s (counter-clockwise on screen for even c/3, clockwise for odd),
 *     or the oscillation's axis pi*u and frequency 0.6 + 1.2 u Hz; speeds jitter +-8% per clip, start
 *     position and phase are random.
 *   --cue audio: kind and parameter are drawn at random per clip, independent of the class; group
 *     appearance is random per group in every mode, so with --cue audio the frames carry no class
 *     information at all.
 * Sound (stereo, slightly panned): a tone at f0 plus its second harmonic (0.3), slow tremolo and
 * vibrato with random rates, plus low-passed noise at a per-group level; peak amplitude below 0.36.
 *   --cue audio|both: log2(f0 / 220 Hz) = 3 (c + 0.5 + j) / K with j uniform in [-0.25, 0.25]: class c
 *     owns the band [220 * 2^(3c/K), 220 * 2^(3(c+1)/K)) Hz (220..1760 Hz over all classes).
 *   --cue video: log2(f0 / 220 Hz) uniform in [0, 3] per clip, independent of the class.
 * The same arguments and seed give byte-identical files (bit-exact encoder and muxer flags).
 *
 * Codecs: MPEG-4 Part 2 video (FFmpeg's native mpeg4 encoder, fourcc XVID as in UCF101, yuv420p, fixed
 * quantiser 4, GOP 12, no B-frames) and MP3 audio (libmp3lame, 128 kb/s CBR stereo) in AVI. When
 * libmp3lame is missing or cannot take the sample rate: MP2 (mp2 encoder), else 16-bit PCM.
 *
 * Frame-index barcode (every frame; barcode on in the CLI, optional in synth_write_file):
 *   The top-left 64x16 pixels hold 16 blocks of 8x8 pixels: row 0 (y 0..7) blocks x = 0..7 carry bits
 *   15..8, row 1 (y 8..15) blocks x = 0..7 carry bits 7..0 (most significant bit first, left to right,
 *   top row first). Block (bx, by) covers x in [8 bx, 8 bx + 8), y in [8 by, 8 by + 8). A 1 bit is white
 *   (Y = 235), a 0 bit black (Y = 16); chroma in the region is neutral (U = V = 128), so after a
 *   conversion to RGB the blocks are grey (0 or 255 in R, G and B alike). Value = frame index mod 65536
 *   (index 0 = the first frame, pts 0). Read back: mean of each block (luma or any RGB channel),
 *   1 if the mean >= 128; synth_barcode_read does this on the central 4x4 pixels of each block. The
 *   blocks sit on the codec's 8x8 DCT grid, so lossy coding keeps the block means far from 128.
 *
 * Audio marker (--markers in the CLI; tone_burst_s >= 0 in synth_write_file):
 *   A sine burst of SYNTH_BURST_HZ (1000 Hz), peak SYNTH_BURST_AMP (0.9) of full scale, in both
 *   channels, starting at phase 0 at content sample round(T * sample_rate) and lasting
 *   SYNTH_BURST_SECONDS (0.05 s); the other sound is muted during the burst and stays below 0.36 peak
 *   elsewhere. Read back: decode the audio stream from its first packet (pts 0); the burst onset is the
 *   first decoded sample with |x| > 0.5; expect it within +-2 ms of T. The encoder's delay (MP3: the
 *   encoder delay + 529 samples) is compensated at write time: the written signal is advanced by the
 *   codec's delay and the audio packets start at pts 0, so decoded sample n is content sample n (the
 *   first ~25 ms of an MP3 stream are the codec's priming, near silence). In the CLI,
 *   T = synth_marker_time(F, R): the start of frame floor(n_frames / 2).
 *
 * Durations: n_frames = synth_frame_count(F, R) = max(1, round(F * R)); the audio carries
 * n_frames / R seconds of content (an MP3 stream ends with up to ~1.5 codec frames of padding).
 * Frame rates within 1e-4 of k * 1000/1001 (29.97, 23.976, 59.94) are stored as k*1000/1001 exactly;
 * --fps also takes a fraction such as 30000/1001.
 */
#ifndef AVGEN_GENERATOR_SYNTH_H
#define AVGEN_GENERATOR_SYNTH_H
#include <stddef.h>
#include <stdint.h>

#define SYNTH_BARCODE_BITS 16     /* bits of the frame-index barcode */
#define SYNTH_BARCODE_BLOCK 8     /* block side in pixels */
#define SYNTH_BARCODE_W 64        /* barcode region: x in [0, 64), y in [0, 16) */
#define SYNTH_BARCODE_H 16
#define SYNTH_BURST_HZ 1000.0
#define SYNTH_BURST_AMP 0.9
#define SYNTH_BURST_SECONDS 0.05
#define SYNTH_MAX_CLASSES 101

/* The `avgen synth` command. argv[0] is the command name (ignored); options follow. Returns 0 on
 * success, 2 on a bad argument or a refused non-empty DIR (one sentence on stderr), 1 on an I/O or
 * codec failure (one sentence naming the file). --help prints the usage to stdout and returns 0. */
int gen_synth_main(int argc, char **argv);

/* Writes one AVI file at `path` (atomically: path.tmp, then rename) with a fixed, deterministic scene
 * (one shape drifting over a gradient, a 440 Hz tone with a little noise):
 *   seconds > 0 (n_frames = max(1, round(seconds * fps))), fps in [1, 240] (29.97 is stored as
 *   30000/1001), width x height even with width >= 64, height >= 16 (<= 4096 each),
 *   sample_rate 0: no audio stream at all; else 8000..192000 Hz (MP3 where libmp3lame takes the rate),
 *   silent_audio != 0: every sample is digital zero (no burst either; MP3 decodes it to exact zeros),
 *   barcode != 0: the frame-index barcode above,
 *   tone_burst_s >= 0: the marker burst at that time (seconds from the start); < 0: none.
 * Returns 0, 2 for invalid parameters, 1 for an I/O or codec failure; failures print one sentence
 * naming the file on stderr. */
int synth_write_file(const char *path, double seconds, double fps, int width, int height, int sample_rate,
                     int silent_audio, int barcode, double tone_burst_s);

/* Reads the barcode from the top-left of an 8-bit plane at native resolution: `plane` points at pixel
 * (0, 0), `linesize` is the byte distance between rows, `pixel_stride` between pixels (1 for a luma
 * plane or GRAY8, 3 for RGB24 / BGR24 with `plane` pointing at any channel, 4 for RGBA). Returns the
 * 16-bit value, or -1 when a block's mean is ambiguous (between 64 and 192: not a barcode). */
int synth_barcode_read(const uint8_t *plane, ptrdiff_t linesize, int pixel_stride);

/* max(1, round(seconds * fps)) with fps normalised as the writer does. */
int synth_frame_count(double seconds, double fps);
/* The CLI's --markers burst time: the start of frame floor(n_frames / 2), in seconds. */
double synth_marker_time(double seconds, double fps);

#endif
