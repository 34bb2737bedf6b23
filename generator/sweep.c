/* avgen sweep: see sweep.h. */
#include "sweep.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plan.h"
#include "rt_cuda.h"
#include "rt_fs.h"
#include "spec.h"

static const char *const usage =
    "usage: avgen sweep MODEL.json [--frames 8,16,32,64] [--batch 1,2,4,8,16,32,64,max] [--bf16-activations]\n"
    "                   [--peak FLOPS] [--bandwidth BYTES_PER_S] [--json] [--set path=value]...\n"
    "                   [--jobs FILE --results DIR]\n"
    "       avgen sweep --collect DIR [--json]\n"
    "\n"
    "Clip length T against batch B for one description, to find what fits and what is fastest.\n"
    "Without a GPU: for each (T, B) of the lists, the CUDA backend's planned peak memory with fp32 activations\n"
    "(its default) and with bf16 ones (AVGEN_BF16_OPERANDS=1) against memory.budget, the model FLOPs of a\n"
    "step, the roofline (every op kind moving its bytes at --bandwidth or doing its FLOPs at --peak, an H100\n"
    "SXM's by default: no step is faster) and the pairs/s it bounds; \"max\" in --batch is the largest batch\n"
    "that fits at that T (--bf16-activations: with bf16 activations; so also for \"fits\" and the jobs).\n"
    "--jobs FILE writes one `avgen bench ... --json` command line for each cell that fits, its result to\n"
    "DIR/sweep-tT-bB.json and its log beside it: independent jobs, for a scheduler or for `bash FILE` on one\n"
    "GPU. --collect DIR then reads the results (any avgen bench --json output in DIR) and prints the measured\n"
    "step time, pairs/s, clips/s, MFU and memory of each cell, the fastest at each T marked, the fastest\n"
    "overall named, and the jobs that left no result. --json prints one object instead (docs/bench.md).\n";

#define MAX_LIST 64
#define MAX_SETS 64

typedef struct {
    int frames, batch, max;    /* max: 1 when B is the largest that fits at T */
    int pairs;
    double gflop;
    int64_t peak32, peak16;    /* the CUDA backend's planned peak, fp32 and bf16 activations */
    int fits32, fits16;
    double roof32_ms, roof16_ms;
} cell;

static int by_tb(const void *a, const void *b) {
    const cell *x = a, *y = b;
    return x->frames != y->frames ? (x->frames > y->frames) - (x->frames < y->frames) : (x->batch > y->batch) - (x->batch < y->batch);
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "avgen sweep: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see avgen sweep --help)\n");
    return 2;
}

/* A comma-separated list of positive integers (and "max" where allowed: -1). Its length, or -1. */
static int parse_list(const char *text, int *out, int allow_max, int hi) {
    int n = 0;
    const char *p = text;
    while (*p) {
        if (n == MAX_LIST) return -1;
        if (allow_max && !strncmp(p, "max", 3) && (p[3] == ',' || !p[3])) {
            out[n++] = -1, p += 3;
        } else {
            char *end;
            errno = 0;
            const long v = strtol(p, &end, 10);
            if (end == p || errno || v < 1 || v > hi || (*end && *end != ',')) return -1;
            out[n++] = (int)v, p = end;
        }
        if (*p == ',') {
            p++;
            if (!*p) return -1;
        }
    }
    return n;
}

/* The description with the user's overrides, then T and B (0: the description's). 0, or 2 with the errors printed. */
static int load_at(const char *model, const char *const *sets, int nsets, int frames, int batch, gen_spec *s) {
    const char *ov[MAX_SETS + 2];
    char ft[48], bt[48];
    int n = 0;
    for (int i = 0; i < nsets; i++) ov[n++] = sets[i];
    if (frames > 0) snprintf(ft, sizeof ft, "video.frames=%d", frames), ov[n++] = ft;
    if (batch > 0) snprintf(bt, sizeof bt, "train.batch=%d", batch), ov[n++] = bt;
    gen_errors e;
    if (gen_spec_load(model, ov, n, s, &e) == 0) return 0;
    for (int i = 0; i < e.n; i++) fprintf(stderr, "error: %s\n", e.msg[i]);
    if (e.dropped) fprintf(stderr, "error: (%d more problems not shown)\n", e.dropped);
    return 2;
}

static double gib(int64_t b) { return (double)b / (1024.0 * 1024 * 1024); }

/* A string as one shell word ('...', a ' as '\'') */
static void shell_word(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputs("'\\''", f);
        else fputc(*s, f);
    }
    fputc('\'', f);
}

/* 0 when everything printed reached stdout, else 1 with a sentence (a full disk, a reader gone). */
static int out_ok(void) {
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return 0;
    fprintf(stderr, "error: avgen sweep: cannot write the table (%s).\n", strerror(errno ? errno : EIO));
    return 1;
}

/* ----------------------------------------------------------------------------------------------- collect */

typedef struct {
    char file[300];
    int frames, batch, bf16;
    double median_ms, pairs_s, clips_s, mfu, planned, used;
    char device[128];
} result;

static int by_cell(const void *a, const void *b) {
    const result *x = a, *y = b;
    if (x->frames != y->frames) return x->frames - y->frames;
    if (x->batch != y->batch) return x->batch - y->batch;
    return x->bf16 - y->bf16;
}

static double num(json_object *o, const char *k, double dflt) {
    json_object *x;
    return json_object_object_get_ex(o, k, &x) ? json_object_get_double(x) : dflt;
}

static int collect(const char *dir, int json) {
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "error: avgen sweep --collect: %s cannot be read (%s); expected the results folder of a sweep's jobs.\n",
                dir, strerror(errno));
        return 2;
    }
    result *r = NULL;
    int n = 0, cap = 0, n_missing = 0;
    char missing[64][300];
    struct dirent *e;
    while ((e = readdir(d))) {
        const size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") || l >= 290) continue;
        char p[2400];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        json_object *o = json_object_from_file(p), *x;
        const int ok = o && json_object_object_get_ex(o, "median_ms", &x) && json_object_object_get_ex(o, "frames", &x) &&
                       json_object_object_get_ex(o, "batch", &x) && num(o, "median_ms", 0) > 0;
        if (!ok) {
            /* a job that failed or has not run: its log's last line says why */
            if (n_missing < 64) snprintf(missing[n_missing], sizeof missing[0], "%.*s", (int)(l - 5), e->d_name);
            n_missing++;
            json_object_put(o);
            continue;
        }
        if (n == cap) {
            result *nr = realloc(r, sizeof *r * (size_t)(cap = cap ? 2 * cap : 64));
            if (!nr) {
                json_object_put(o);
                break;
            }
            r = nr;
        }
        result *q = &r[n++];
        memset(q, 0, sizeof *q);
        snprintf(q->file, sizeof q->file, "%s", e->d_name);
        q->frames = (int)num(o, "frames", 0), q->batch = (int)num(o, "batch", 0), q->bf16 = num(o, "bf16_tensors", 0) > 0;
        q->median_ms = num(o, "median_ms", 0), q->pairs_s = num(o, "pairs_per_s", 0), q->clips_s = num(o, "clips_per_s", 0);
        q->mfu = num(o, "mfu", 0), q->planned = num(o, "planned_bytes", 0), q->used = num(o, "device_used_bytes", 0);
        if (json_object_object_get_ex(o, "device", &x)) snprintf(q->device, sizeof q->device, "%s", json_object_get_string(x));
        json_object_put(o);
    }
    closedir(d);
    if (!n && !n_missing) {
        fprintf(stderr, "error: avgen sweep --collect: %s holds no result of avgen bench --json; run the sweep's jobs first.\n", dir);
        free(r);
        return 2;
    }
    if (n) qsort(r, (size_t)n, sizeof *r, by_cell);
    int best = -1;
    for (int i = 0; i < n; i++)
        if (best < 0 || r[i].pairs_s > r[best].pairs_s) best = i;
    /* the fastest at each T */
    int *top = calloc((size_t)(n ? n : 1), sizeof *top);
    for (int i = 0; i < n && top; i++) {
        top[i] = 1;
        for (int j = 0; j < n; j++)
            if (r[j].frames == r[i].frames && r[j].pairs_s > r[i].pairs_s) top[i] = 0;
    }
    if (json) {
        json_object *o = json_object_new_object(), *a = json_object_new_array(), *m = json_object_new_array();
        for (int i = 0; i < n; i++) {
            json_object *c = json_object_new_object();
            json_object_object_add(c, "file", json_object_new_string(r[i].file));
            json_object_object_add(c, "frames", json_object_new_int(r[i].frames));
            json_object_object_add(c, "batch", json_object_new_int(r[i].batch));
            json_object_object_add(c, "bf16_activations", json_object_new_boolean(r[i].bf16));
            json_object_object_add(c, "median_ms", json_object_new_double(r[i].median_ms));
            json_object_object_add(c, "pairs_per_s", json_object_new_double(r[i].pairs_s));
            json_object_object_add(c, "clips_per_s", json_object_new_double(r[i].clips_s));
            json_object_object_add(c, "mfu", json_object_new_double(r[i].mfu));
            json_object_object_add(c, "planned_bytes", json_object_new_double(r[i].planned));
            json_object_object_add(c, "device_used_bytes", json_object_new_double(r[i].used));
            json_object_object_add(c, "fastest_at_frames", json_object_new_boolean(top && top[i]));
            json_object_object_add(c, "fastest", json_object_new_boolean(i == best));
            json_object_array_add(a, c);
        }
        for (int i = 0; i < n_missing && i < 64; i++) json_object_array_add(m, json_object_new_string(missing[i]));
        json_object_object_add(o, "device", json_object_new_string(n ? r[0].device : ""));
        json_object_object_add(o, "results", a);
        json_object_object_add(o, "no_result", m);
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        printf("sweep results in %s%s%s: %d measured, %d without a result\n", dir, n ? " on " : "", n ? r[0].device : "", n,
               n_missing);
        if (n) printf("  %5s %6s %5s %10s %9s %9s %6s %18s\n", "T", "B", "act", "step ms", "pairs/s", "clips/s", "MFU",
                      "memory used/plan");
        for (int i = 0; i < n; i++)
            printf("  %5d %6d %5s %10.1f %9.1f %9.2f %5.1f%% %8.2f/%.2f GiB%s\n", r[i].frames, r[i].batch,
                   r[i].bf16 ? "bf16" : "fp32", r[i].median_ms, r[i].pairs_s, r[i].clips_s, 100 * r[i].mfu, r[i].used / 1073741824.0,
                   r[i].planned / 1073741824.0, top && top[i] ? "  * fastest at this T" : "");
        if (best >= 0)
            printf("fastest: T %d, B %d (%s activations): %.1f pairs/s, %.2f clips/s\n", r[best].frames, r[best].batch,
                   r[best].bf16 ? "bf16" : "fp32", r[best].pairs_s, r[best].clips_s);
        for (int i = 0; i < n_missing && i < 64; i++)
            printf("no result: %s (the job failed or has not run: see %s/%s.log)\n", missing[i], dir, missing[i]);
    }
    free(top);
    free(r);
    return out_ok();
}

/* --------------------------------------------------------------------------------------------------- main */

int gen_sweep_main(int argc, char **argv, const char *self) {
    const char *model = NULL, *sets[MAX_SETS], *jobs = NULL, *results = NULL, *coll = NULL, *frames_s = NULL, *batch_s = NULL;
    const char *peak_s = NULL, *bw_s = NULL;
    int nsets = 0, json = 0, bf16 = 0;
    const char *seen[32];
    int nseen = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] == '-' && a[1] && strcmp(a, "--set")) {
            for (int j = 0; j < nseen; j++)
                if (!strcmp(seen[j], a)) return usage_error("%s given twice", a);
            if (nseen < 32) seen[nseen++] = a;
        }
        const char **slot = !strcmp(a, "--frames") ? &frames_s : !strcmp(a, "--batch") ? &batch_s : !strcmp(a, "--jobs") ? &jobs
                          : !strcmp(a, "--results") ? &results : !strcmp(a, "--collect") ? &coll : !strcmp(a, "--peak") ? &peak_s
                          : !strcmp(a, "--bandwidth") ? &bw_s : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--set")) {
            if (i + 1 >= argc) return usage_error("%s needs a value path.to.field=value", a);
            if (nsets == MAX_SETS) return usage_error("at most %s --set options", "64");
            sets[nsets++] = argv[++i];
        } else if (slot) {
            if (i + 1 >= argc) return usage_error("%s needs a value", a);
            *slot = argv[++i];
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--bf16-activations")) {
            bf16 = 1;
        } else if (a[0] == '-' && a[1]) {
            return usage_error("unknown option %s", a);
        } else if (!model) {
            model = a;
        } else {
            return usage_error("unexpected argument %s", a);
        }
    }
    if (coll) {
        if (model || jobs || results || frames_s || batch_s || nsets || bf16 || peak_s || bw_s)
            return usage_error("%s takes the results folder alone (and --json)", "--collect");
        return collect(coll, json);
    }
    if (!model) return usage_error("%s", "a model description MODEL.json is required");
    if (!jobs != !results) return usage_error("%s", "--jobs FILE and --results DIR go together");
    if (jobs) { /* one job a line: no line break may go into one */
        if (strpbrk(model, "\n\r") || strpbrk(results, "\n\r")) return usage_error("%s", "a path with a line break cannot go into the job list");
        for (int i = 0; i < nsets; i++)
            if (strpbrk(sets[i], "\n\r")) return usage_error("--set %s: a line break cannot go into the job list", sets[i]);
    }
    int tl[MAX_LIST], bl[MAX_LIST];
    const int nt = parse_list(frames_s ? frames_s : "8,16,32,64", tl, 0, 100000);
    const int nb = parse_list(batch_s ? batch_s : "1,2,4,8,16,32,64,max", bl, 1, 1000000);
    if (nt < 1) return usage_error("--frames %s is not a list of positive clip lengths such as 8,16,32,64", frames_s);
    if (nb < 1) return usage_error("--batch %s is not a list of positive batches and max, such as 1,2,4,max", batch_s);
    double peak = rt_device_peak("H100 SXM"), bw = rt_device_bandwidth("H100 SXM");
    char *end;
    if (peak_s && (peak = strtod(peak_s, &end), *end || !(peak >= 1e9 && peak <= 1e18)))
        return usage_error("%s needs a positive number of FLOP/s (from 1e9 to 1e18)", "--peak");
    if (bw_s && (bw = strtod(bw_s, &end), *end || !(bw >= 1e6 && bw <= 1e15)))
        return usage_error("%s needs a positive number of bytes per second (from 1e6 to 1e15)", "--bandwidth");
    gen_spec base;
    int rc = load_at(model, sets, nsets, 0, 0, &base);
    if (rc) return rc;

    /* the cells: each T's largest batch first (for "max"), then every B of the list */
    cell *cells = calloc((size_t)nt * (nb + 1), sizeof *cells);
    int nc = 0, *maxb = calloc((size_t)nt, sizeof *maxb);
    if (!cells || !maxb) {
        free(cells), free(maxb);
        fprintf(stderr, "error: out of memory\n");
        return 1;
    }
    for (int ti = 0; ti < nt && !rc; ti++) {
        gen_spec s;
        gen_plan p;
        if ((rc = load_at(model, sets, nsets, tl[ti], 0, &s))) break;
        if (gen_make_plan(&s, 1, &p)) {
            fprintf(stderr, "error: %s: out of memory while planning T %d.\n", model, tl[ti]);
            rc = 1;
            break;
        }
        maxb[ti] = bf16 ? p.max_batch_bf16 : p.cuda.max_batch;
        for (int bi = 0; bi < nb; bi++) {
            const int B = bl[bi] < 0 ? maxb[ti] : bl[bi];
            if (B < 1) continue; /* max, where even B 1 does not fit */
            int dup = 0;
            for (int c = 0; c < nc; c++) dup |= cells[c].frames == tl[ti] && cells[c].batch == B;
            if (dup) {
                for (int c = 0; c < nc; c++)
                    if (cells[c].frames == tl[ti] && cells[c].batch == B && bl[bi] < 0) cells[c].max = 1;
                continue;
            }
            gen_spec sb;
            if ((rc = load_at(model, sets, nsets, tl[ti], B, &sb))) break;
            if (gen_make_plan(&sb, 0, &p)) {
                fprintf(stderr, "error: %s: out of memory while planning T %d, B %d.\n", model, tl[ti], B);
                rc = 1;
                break;
            }
            cell *c = &cells[nc++];
            c->frames = tl[ti], c->batch = B, c->max = bl[bi] < 0 || B == maxb[ti], c->pairs = sb.pairs;
            c->gflop = p.step_flops / 1e9;
            c->peak32 = p.cuda.peak_cuda, c->peak16 = p.cuda.peak_bf16;
            c->fits32 = c->peak32 <= sb.memory.budget, c->fits16 = c->peak16 <= sb.memory.budget;
            c->roof32_ms = 1e3 * rt_roofline_sum(p.roof.bytes_fp32, p.roof.flops, peak, bw, NULL);
            c->roof16_ms = 1e3 * rt_roofline_sum(p.roof.bytes_bf16, p.roof.flops, peak, bw, NULL);
        }
    }
    if (rc) {
        free(cells), free(maxb);
        return rc;
    }
    qsort(cells, (size_t)nc, sizeof *cells, by_tb);

    /* the job list */
    int njobs = 0;
    char model_abs[PATH_MAX], results_abs[PATH_MAX];
    if (jobs) {
        /* absolute paths: a scheduler runs the jobs from a folder of its own */
        if (rt_mkdirs(results) || !realpath(results, results_abs) || !realpath(model, model_abs)) {
            fprintf(stderr, "error: avgen sweep: cannot create or resolve %s (%s).\n", results, strerror(errno));
            free(cells), free(maxb);
            return 1;
        }
        model = model_abs, results = results_abs;
        FILE *f = fopen(jobs, "w");
        if (!f) {
            fprintf(stderr, "error: avgen sweep: cannot write %s (%s).\n", jobs, strerror(errno));
            free(cells), free(maxb);
            return 1;
        }
        fprintf(f, "# avgen sweep of %s: one avgen bench a line, each independent of the others (one GPU each);\n"
                   "# `bash THIS_FILE` runs them in turn on one GPU. Then: avgen sweep --collect ",
                model);
        shell_word(f, results);
        fputc('\n', f);
        for (int i = 0; i < nc; i++) {
            const cell *c = &cells[i];
            if (!(bf16 ? c->fits16 : c->fits32)) continue;
            char stem[64];
            snprintf(stem, sizeof stem, "sweep-t%d-b%d%s", c->frames, c->batch, bf16 ? "-bf16act" : "");
            if (bf16) fputs("AVGEN_BF16_OPERANDS=1 ", f);
            shell_word(f, self);
            fputs(" bench ", f);
            shell_word(f, model);
            for (int k = 0; k < nsets; k++) fputs(" --set ", f), shell_word(f, sets[k]);
            fprintf(f, " --set video.frames=%d --set train.batch=%d --json >", c->frames, c->batch);
            char path[PATH_MAX + 80];
            snprintf(path, sizeof path, "%s/%s.json", results, stem);
            shell_word(f, path);
            fputs(" 2>", f);
            snprintf(path, sizeof path, "%s/%s.log", results, stem);
            shell_word(f, path);
            fputc('\n', f);
            njobs++;
        }
        if (fclose(f)) {
            fprintf(stderr, "error: avgen sweep: cannot write %s (%s).\n", jobs, strerror(errno));
            free(cells), free(maxb);
            return 1;
        }
    }

    if (json) {
        json_object *o = json_object_new_object(), *a = json_object_new_array(), *mx = json_object_new_array();
        json_object_object_add(o, "name", json_object_new_string(base.name));
        json_object_object_add(o, "budget_bytes", json_object_new_int64(base.memory.budget));
        json_object_object_add(o, "activations", json_object_new_string(bf16 ? "bf16" : "fp32"));
        json_object_object_add(o, "peak_flops", json_object_new_double(peak));
        json_object_object_add(o, "bandwidth", json_object_new_double(bw));
        for (int i = 0; i < nc; i++) {
            const cell *c = &cells[i];
            json_object *e = json_object_new_object();
            json_object_object_add(e, "frames", json_object_new_int(c->frames));
            json_object_object_add(e, "batch", json_object_new_int(c->batch));
            json_object_object_add(e, "max", json_object_new_boolean(c->max));
            json_object_object_add(e, "pairs", json_object_new_int(c->pairs));
            json_object_object_add(e, "step_gflop", json_object_new_double(c->gflop));
            json_object_object_add(e, "peak_fp32_activations", json_object_new_int64(c->peak32));
            json_object_object_add(e, "fits_fp32_activations", json_object_new_boolean(c->fits32));
            json_object_object_add(e, "peak_bf16_activations", json_object_new_int64(c->peak16));
            json_object_object_add(e, "fits_bf16_activations", json_object_new_boolean(c->fits16));
            json_object_object_add(e, "roofline_ms_fp32_activations", json_object_new_double(c->roof32_ms));
            json_object_object_add(e, "roofline_ms_bf16_activations", json_object_new_double(c->roof16_ms));
            const double r = bf16 ? c->roof16_ms : c->roof32_ms;
            json_object_object_add(e, "pairs_per_s_at_most", json_object_new_double(r > 0 ? c->pairs / (r / 1e3) : 0));
            json_object_array_add(a, e);
        }
        for (int ti = 0; ti < nt; ti++) {
            json_object *e = json_object_new_object();
            json_object_object_add(e, "frames", json_object_new_int(tl[ti]));
            json_object_object_add(e, "max_batch", json_object_new_int(maxb[ti] > 0 ? maxb[ti] : 0));
            json_object_array_add(mx, e);
        }
        json_object_object_add(o, "cells", a);
        json_object_object_add(o, "largest_batch", mx);
        if (jobs) json_object_object_add(o, "jobs", json_object_new_int(njobs));
        puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(o);
    } else {
        printf("%s: clip length T x batch B on the CUDA backend's plan (memory.budget %.2f GiB; roofline at %.2f TB/s "
               "and %.0f TFLOP/s)\n", base.name, gib(base.memory.budget), bw / 1e12, peak / 1e12);
        printf("  %5s %8s %7s %10s %16s %16s %16s %10s\n", "T", "B", "pairs", "GFLOP", "peak fp32 act.", "peak bf16 act.",
               "roofline ms", "pairs/s");
        printf("  %5s %8s %7s %10s %16s %16s %16s %10s\n", "", "", "", "a step", "", "", "fp32 / bf16 act.", bf16 ? "(bf16 act.)" : "(fp32 act.)");
        for (int i = 0; i < nc; i++) {
            const cell *c = &cells[i];
            char b[32];
            snprintf(b, sizeof b, "%d%s", c->batch, c->max ? " max" : "");
            const double r = bf16 ? c->roof16_ms : c->roof32_ms;
            char gf[32];
            snprintf(gf, sizeof gf, c->gflop >= 1000 ? "%.0f" : "%.4g", c->gflop);
            printf("  %5d %8s %7d %10s %9.2f GiB %-3s %9.2f GiB %-3s %7.3g / %-6.3g %10.0f\n", c->frames, b, c->pairs, gf,
                   gib(c->peak32), c->fits32 ? "" : "no", gib(c->peak16), c->fits16 ? "" : "no", c->roof32_ms, c->roof16_ms,
                   r > 0 ? c->pairs / (r / 1e3) : 0);
        }
        printf("largest batch that fits (%s activations):", bf16 ? "bf16" : "fp32");
        for (int ti = 0; ti < nt; ti++) printf("%s T %d: %d", ti ? "," : "", tl[ti], maxb[ti] > 0 ? maxb[ti] : 0);
        printf("\n(\"no\": the planned peak is over the budget; the roofline bounds the step, measured steps are slower)\n");
        if (jobs)
            printf("wrote %d jobs to %s (results to %s); run them on a GPU, then: avgen sweep --collect %s\n", njobs, jobs,
                   results, results);
    }
    free(cells);
    free(maxb);
    return out_ok();
}
