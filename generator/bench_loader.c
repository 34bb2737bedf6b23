/* avgen bench-loader: clips/s and frames/s of the clip loader on a prepared folder for several clip
 * lengths and thread counts (a benchmark, not a test). bench/loader.sh sets it beside the ffmpeg CLI
 * decoding the source videos on the same machine. */
#include "bench_loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loader.h"

static const char *const usage =
    "usage: avgen bench-loader --data PREPARED [--frames 8,16,64] [--threads 1,2,...] [--batch 8]\n"
    "                          [--seconds 3] [--stride 1] [--json]\n"
    "\n"
    "Runs the training clip loader (random clips, JPEG frames, fbank windows) on a folder written by\n"
    "avgen prep for each clip length T and thread count, for about --seconds each, and prints clips/s,\n"
    "frames/s and (frame, audio) pairs/s, frames/s per thread, and how many cores would feed 5,000\n"
    "pairs/s (the single-thread rate's extrapolation). The consumer does no work: this is the loader's\n"
    "ceiling. Default threads: 1 up to the number of cores.\n";

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int parse_list(const char *s, int *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > 4096) return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

int gen_bench_loader_main(int argc, char **argv) {
    const char *data = NULL;
    int frames[16] = {8, 16, 64}, nf = 3, threads[64], nt = 0, batch = 8, stride = 1, json = 0;
    double seconds = 3;
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) { json = 1; continue; }
        static const char *const takes_value[] = {"--data", "--frames", "--threads", "--batch", "--stride", "--seconds"};
        int known = 0;
        for (size_t k = 0; k < sizeof takes_value / sizeof takes_value[0]; k++) known |= !strcmp(a, takes_value[k]);
        if (!known) {
            fprintf(stderr, "avgen bench-loader: unknown option %s (see --help)\n", a);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "avgen bench-loader: %s needs a value (see --help)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        int ok = 1;
        if (!strcmp(a, "--data")) data = v;
        else if (!strcmp(a, "--frames")) ok = (nf = parse_list(v, frames, 16)) > 0;
        else if (!strcmp(a, "--threads")) ok = (nt = parse_list(v, threads, 64)) > 0;
        else if (!strcmp(a, "--batch")) ok = parse_list(v, &batch, 1) == 1;
        else if (!strcmp(a, "--stride")) ok = parse_list(v, &stride, 1) == 1;
        else if (!strcmp(a, "--seconds")) ok = (seconds = atof(v)) > 0;
        else ok = 0;
        if (!ok) {
            fprintf(stderr, "avgen bench-loader: %s %s is not valid (see --help)\n", a, v);
            return 2;
        }
    }
    if (!data) {
        fprintf(stderr, "avgen bench-loader: --data PREPARED is required (see --help)\n");
        return 2;
    }
    if (nt == 0)
        for (int t = 1; t <= cores && nt < 64; t *= 2) threads[nt++] = t;
    if (!json)
        printf("%-4s %-8s %10s %12s %12s %16s %14s\n", "T", "threads", "clips/s", "frames/s", "pairs/s", "frames/s/thread",
               "cores@5000/s");
    for (int a = 0; a < nf; a++) {
        double single = 0;
        for (int b = 0; b < nt; b++) {
            ld_config c;
            memset(&c, 0, sizeof c);
            c.dir = data, c.split = "train", c.frames = frames[a], c.stride = stride, c.batch = batch, c.train = 1;
            c.seed = 1, c.threads = threads[b], c.ring = 2 * threads[b] + 1, c.audio_rows = 102, c.mel_bins = 128;
            c.window_seconds = 1.0, c.norm_mean = -4.1426, c.norm_std = 3.2001, c.holdout = LD_ALL, c.val_every = 5;
            char err[512];
            ld_loader *l = ld_open(&c, err, sizeof err);
            if (!l) {
                fprintf(stderr, "avgen bench-loader: %s\n", err);
                return 2;
            }
            int64_t clips = 0, epoch = 0;
            ld_start_epoch(l, epoch);
            const ld_batch *bt = ld_next(l); /* warm-up batch */
            if (bt) ld_release(l, bt);
            double t0 = now();
            while (now() - t0 < seconds) {
                bt = ld_next(l);
                if (!bt) {
                    ld_start_epoch(l, ++epoch);
                    continue;
                }
                clips += bt->count;
                ld_release(l, bt);
            }
            double el = now() - t0;
            ld_close(l);
            double cps = clips / el, fps = cps * frames[a];
            if (threads[b] == 1) single = fps;
            double per = fps / threads[b];
            if (json)
                printf("{\"frames\": %d, \"threads\": %d, \"clips_per_s\": %.2f, \"frames_per_s\": %.1f, \"pairs_per_s\": %.1f, "
                       "\"frames_per_s_per_thread\": %.1f}\n", frames[a], threads[b], cps, fps, fps, per);
            else
                printf("%-4d %-8d %10.1f %12.1f %12.1f %16.1f %14.1f\n", frames[a], threads[b], cps, fps, fps, per,
                       single > 0 ? 5000.0 / single : 0);
            fflush(stdout);
        }
    }
    return 0;
}
