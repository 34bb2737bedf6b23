/* media: reading real videos with FFmpeg's libraries (never the ffmpeg CLI). Probing decides whether a
 * video has usable audio (DATA.md: a stream counts only if it has a positive rate, channel count and
 * decoded duration and it decodes; peak below -90 dBFS is "silent"). Decoding normalises a video for
 * training: frames resampled to a target rate by timestamp (output frame k shows the source frame whose
 * display interval contains t_k = k / fps, measured from the first video frame), the whole frame scaled
 * to S x S RGB, audio resampled to 16 kHz mono (channels averaged) and aligned so that sample 0 is the
 * first video frame's time. Corrupt packets are counted, never fatal on their own. */
#ifndef AVGEN_MEDIA_H
#define AVGEN_MEDIA_H
#include <stddef.h>
#include <stdint.h>

typedef enum { MEDIA_OK, MEDIA_SILENT, MEDIA_NO_AUDIO, MEDIA_UNREADABLE } media_status;
const char *media_status_name(media_status s); /* "ok", "silent", "no_audio", "unreadable" */

#define MEDIA_SILENT_DB (-90.0)

typedef struct {
    media_status status;
    char reason[256];         /* one sentence when status is not ok */
    int width, height;
    double fps;               /* the video stream's average frame rate, 0 if unknown */
    double duration;          /* seconds (container) */
    int audio_rate, audio_channels;
    double audio_seconds;     /* decoded audio duration */
    double audio_peak_db;     /* dBFS of the largest decoded sample, -inf for digital zero */
} media_info;

/* Probes a file: opens it, decodes its first video frame and all of its audio. 0 on success (the status
 * tells the audio verdict), or -1 when the file is unreadable (status MEDIA_UNREADABLE, reason set). */
int media_probe(const char *path, media_info *info);

/* Called once per output frame, in order, with an S x S RGB24 image (row-major, 3 bytes a pixel). A
 * non-zero return stops decoding. */
typedef int (*media_frame_fn)(void *user, int index, const uint8_t *rgb);

typedef struct {
    int size;                 /* S */
    int fps_num, fps_den;     /* target frame rate */
    int sample_rate;          /* target audio rate (16000) */
} media_target;

typedef struct {
    int frames;               /* output frames delivered */
    float *audio;             /* mono samples at target rate (malloc'd; NULL when no audio) */
    int64_t samples;
    int64_t corrupt;          /* packets or frames that failed to decode */
    double src_fps;
    int src_width, src_height;
} media_output;

/* Decodes a whole file as described above. 0 on success; -1 with err set (one sentence). */
int media_decode(const char *path, const media_target *t, media_frame_fn on_frame, void *user, media_output *out,
                 char *err, size_t errlen);
void media_output_free(media_output *out);
/* Silences FFmpeg's own logging (avgen counts and reports corrupt data itself). */
void media_quiet(void);
#endif
