/* avf: the prepared-video file `avgen prep` writes and the clip loader reads: every frame of a video
 * already resampled to the target rate and scaled to S x S, stored as JPEG (or raw RGB) with an offset
 * index for random access, followed by the whole 16 kHz mono audio track as float32. One file a video;
 * written to a temporary name and renamed, so a file that exists is complete.
 *
 * Layout (little-endian):
 *   0   char[8]  "AVGENF1\n"
 *   8   u32 version (1), u32 size S, u32 frames, u32 fps_num, u32 fps_den, u32 sample_rate,
 *       u32 codec (0 raw RGB24, 1 JPEG), u32 quality (JPEG qscale, 2 best .. 31)
 *   40  u64 samples, f64 audio_mean (mean of the whole waveform), u64 index_offset, u64 audio_offset
 *   72  u32 audio_checksum, u32 reserved (0)
 *   80  frame payloads ...
 *   index_offset (8-aligned): u64 offsets[frames + 1] (payload k is [offsets[k], offsets[k+1]) from the
 *       file start), then u32 checksums[frames]
 *   audio_offset (8-aligned): float32 samples[samples]
 * Checksums are FNV-1a 32 of the payload bytes: a frame or an audio track that was damaged after it was
 * written is detected and reported, never delivered as a wrong clip. */
#ifndef AVGEN_AVF_H
#define AVGEN_AVF_H
#include <stddef.h>
#include <stdint.h>

enum { AVF_RAW = 0, AVF_JPEG = 1 };
#define AVF_HEADER_BYTES 80
uint32_t avf_checksum(const void *data, size_t n);

typedef struct avf_writer avf_writer;
/* Opens PATH.tmp.<pid>.<thread> for writing; nothing appears at path until avf_writer_finish. */
avf_writer *avf_writer_open(const char *path, int size, int fps_num, int fps_den, int codec, int quality, char *err,
                            size_t errlen);
int avf_writer_frame(avf_writer *w, const uint8_t *rgb);   /* S x S RGB24; 0 or -1 */
/* Writes the index and audio, fsyncs, renames onto the final path; frees the writer. 0 or -1 with err. */
int avf_writer_finish(avf_writer *w, const float *audio, int64_t samples, int sample_rate, char *err, size_t errlen);
void avf_writer_abort(avf_writer *w);                       /* removes the temporary file, frees */

typedef struct {
    int size, frames, fps_num, fps_den, sample_rate, codec, quality;
    int64_t samples;
    double audio_mean;
    const float *audio;       /* samples floats (may be unaligned-safe: the writer aligns it to 4 bytes) */
    const uint8_t *base;
    const uint64_t *offsets;
    const uint32_t *checksums;
    size_t file_bytes;
} avf_file;

/* Maps and validates a prepared file (magic, version, every offset inside the file, the audio checksum).
 * 0, or -1 with err. */
int avf_open(const char *path, avf_file *f, char *err, size_t errlen);
/* The frame and audio sample counts of path's header alone (no mapping, no checks beyond the magic and version):
 * 0, or -1 when it cannot be read or is not a prepared video. What the manifest reader checks rows against. */
int avf_header_counts(const char *path, int64_t *frames, int64_t *samples);
void avf_close(avf_file *f);

/* Frame decoding (JPEG; raw frames are copied); one decoder per thread. */
typedef struct avf_decoder avf_decoder;
avf_decoder *avf_decoder_new(void);
void avf_decoder_free(avf_decoder *d);
/* Frame k of f as S x S RGB24 into rgb. 0, or -1 when the payload's checksum fails or it does not decode. */
int avf_read_frame(avf_decoder *d, const avf_file *f, int k, uint8_t *rgb);
#endif
