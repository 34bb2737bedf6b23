/* rt_kernels.c: see rt_kernels.h. */
#include "rt_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cuda.h"
#include "rt_cuda_kernel_list.h"

#define EXPR(f) "&" #f,
static const char *const k_exprs[] = {AVGEN_CUDA_KERNELS(EXPR)};
#undef EXPR

/* The options every run-time build uses. No fast-math flags (IEEE division and square root, no flush to zero,
 * as nvcc's defaults) and no FMA contraction (--fmad=false, as the nvcc builds' -fmad=false): both builds, and
 * the CUDA emulator, compute the multiplies, adds and FMAs the source writes, so the same bits. */
static const char *const k_opts[] = {"-std=c++17", "--fmad=false"};

const char *const *rt_kernels_options(int *n) {
    *n = (int)(sizeof k_opts / sizeof k_opts[0]);
    return k_opts;
}

int rt_kernels_mode(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "nvcc")) return RT_KERNELS_NVCC;
    if (!strcmp(name, "nvrtc")) return RT_KERNELS_NVRTC;
    return -1;
}

const char *rt_kernels_mode_name(int mode) { return mode == RT_KERNELS_NVRTC ? "nvrtc" : "nvcc"; }

int rt_kernels_count(void) { return (int)(sizeof k_exprs / sizeof k_exprs[0]); }

const char *rt_kernels_expr(int i) { return i >= 0 && i < rt_kernels_count() ? k_exprs[i] : NULL; }

#define SNAME(f) #f,
static const char *const k_shape_kernels[] = {AVGEN_CUDA_SHAPE_KERNELS(SNAME)};
#undef SNAME
_Static_assert(sizeof k_shape_kernels / sizeof k_shape_kernels[0] == AVGEN_CUDA_SHAPE_KERNEL_COUNT,
               "AVGEN_CUDA_SHAPE_KERNEL_COUNT");

/* A head width the fused attention takes. */
static int fused_width(long hd) { return hd == 16 || hd == 32 || hd == 64; }

/* A decimal integer in [lo, hi] at *p (spaces before it skipped; no leading zero, which C would read as
 * octal), then *p past it; 0 when there is none. */
static int shape_int(const char **p, long lo, long hi, long *v) {
    while (**p == ' ') ++*p;
    if (**p < '0' || **p > '9' || (**p == '0' && (*p)[1] >= '0' && (*p)[1] <= '9')) return 0;
    char *e;
    *v = strtol(*p, &e, 10);
    *p = e;
    while (**p == ' ') ++*p;
    return *v >= lo && *v <= hi;
}

int rt_kernels_shapes(const char *src, int t[][3], int max, char *err, size_t errlen) {
    static const char key[] = "AVGEN_ATTN_SHAPE(";
    int n = 0, line = 1;
    for (const char *l = src; l && *l; line++) {
        const char *e = strchr(l, '\n');
        const char *b = l;
        while (*b == ' ' || *b == '\t') b++;
        if (b != l && !strncmp(b, key, sizeof key - 1)) {
            snprintf(err, errlen, "line %d: AVGEN_ATTN_SHAPE must start its line (an indented one would be compiled but not "
                                  "used)", line);
            return -1;
        }
        if (!strncmp(l, key, sizeof key - 1)) {
            const char *p = l + sizeof key - 1;
            long v[3];
            int ok = shape_int(&p, 1, 1 << 20, &v[0]) && *p++ == ',' && shape_int(&p, 1, 1 << 20, &v[1]) && *p++ == ',' &&
                     shape_int(&p, 1, 1 << 20, &v[2]) && *p++ == ')';
            while (ok && (*p == ' ' || *p == '\r')) p++;
            const int len = (int)(e ? e - l : (long)strlen(l));
            if (!ok || (*p && *p != '\n')) {
                snprintf(err, errlen, "line %d, %.*s: expected AVGEN_ATTN_SHAPE(head width, tokens, heads) with three positive "
                                      "integers and nothing after it", line, len > 120 ? 120 : len, l);
                return -1;
            }
            if (!fused_width(v[0])) {
                snprintf(err, errlen, "line %d, %.*s: the fused attention takes head widths 16, 32 and 64, not %ld", line,
                         len > 120 ? 120 : len, l, v[0]);
                return -1;
            }
            for (int i = 0; i < n && i < max; i++)
                if (t[i][0] == v[0] && t[i][1] == v[1] && t[i][2] == v[2]) {
                    snprintf(err, errlen, "line %d: the shape (%ld, %ld, %ld) is named twice", line, v[0], v[1], v[2]);
                    return -1;
                }
            if (n >= max) {
                snprintf(err, errlen, "line %d: more than %d AVGEN_ATTN_SHAPE lines", line, max);
                return -1;
            }
            t[n][0] = (int)v[0], t[n][1] = (int)v[1], t[n][2] = (int)v[2];
            n++;
        }
        l = e ? e + 1 : NULL;
    }
    return n;
}

void rt_kernels_shape_expr(int k, const int t[3], char *buf, size_t len) {
    snprintf(buf, len, "&%s<%d, %d, %d>", k >= 0 && k < AVGEN_CUDA_SHAPE_KERNEL_COUNT ? k_shape_kernels[k] : "?", t[0], t[1],
             t[2]);
}

void rt_kernels_entry_expr(int i, const int (*t)[3], char *buf, size_t len) {
    const int nk = rt_kernels_count();
    if (i < nk) snprintf(buf, len, "%s", rt_kernels_expr(i));
    else rt_kernels_shape_expr((i - nk) % AVGEN_CUDA_SHAPE_KERNEL_COUNT, t[(i - nk) / AVGEN_CUDA_SHAPE_KERNEL_COUNT], buf, len);
}

int rt_kernels_exprs(const char *src, const char ***exprs, char *err, size_t errlen) {
    int t[AVGEN_CUDA_MAX_SHAPES][3];
    const int ns = rt_kernels_shapes(src, t, AVGEN_CUDA_MAX_SHAPES, err, errlen);
    if (ns < 0) return -1;
    const int nk = rt_kernels_count(), total = nk + ns * AVGEN_CUDA_SHAPE_KERNEL_COUNT;
    const char **names = malloc(sizeof(char *) * (size_t)total + (size_t)(total - nk) * RT_KERNELS_EXPR_MAX);
    if (!names) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *buf = (char *)(names + total);
    for (int i = 0; i < nk; i++) names[i] = k_exprs[i];
    for (int i = nk; i < total; i++) {
        char *b = buf + (size_t)(i - nk) * RT_KERNELS_EXPR_MAX;
        rt_kernels_entry_expr(i, (const int (*)[3])t, b, RT_KERNELS_EXPR_MAX);
        names[i] = b;
    }
    *exprs = names;
    return total;
}

int rt_kernels_table_check(const avgen_kernel_table *t, char *why, size_t whylen) {
    const char *src = t && t->source ? t->source : "kernels.cu";
    const int nk = rt_kernels_count();
    if (!t || !t->fns) {
        snprintf(why, whylen, "%s: the nvcc build's kernel table is empty (a bug in avgen)", src);
        return -1;
    }
    if (t->n_kernels != nk) {
        snprintf(why, whylen, "%s was compiled with %d kernels and this runtime launches %d: emit the folder again with "
                              "this avgen", src, (int)t->n_kernels, nk);
        return -1;
    }
    if (t->n_shapes < 0 || t->n_shapes > AVGEN_CUDA_MAX_SHAPES || (t->n_shapes && !t->shapes)) {
        snprintf(why, whylen, "%s: the nvcc build names %d shapes (at most %d)", src, (int)t->n_shapes, AVGEN_CUDA_MAX_SHAPES);
        return -1;
    }
    for (int s = 0; s < t->n_shapes; s++) {
        const int32_t *v = t->shapes[s];
        if (!fused_width(v[0]) || v[1] < 1 || v[2] < 1) {
            snprintf(why, whylen, "%s: the nvcc build's shape (%d, %d, %d) is not one the fused attention takes", src, (int)v[0],
                     (int)v[1], (int)v[2]);
            return -1;
        }
    }
    for (int i = 0; i < nk + t->n_shapes * AVGEN_CUDA_SHAPE_KERNEL_COUNT; i++) {
        char want[RT_KERNELS_EXPR_MAX];
        rt_kernels_entry_expr(i, t->shapes, want, sizeof want);
        if (!t->fns[i].expr || strcmp(t->fns[i].expr, want) || !t->fns[i].fn) {
            snprintf(why, whylen, "%s: the nvcc build's kernel %d is %s where this runtime launches %s: emit the folder again "
                                  "with this avgen", src, i, t->fns[i].expr ? t->fns[i].expr : "(none)", want);
            return -1;
        }
    }
    return 0;
}

void rt_kernels_table_describe(const avgen_kernel_table *t, char *buf, size_t len) {
#ifndef AVGEN_HAVE_CUDA
    if (!t) {
        snprintf(buf, len, "none: this avgen was built without the CUDA toolkit");
        return;
    }
#endif
    static const int32_t builtin[][3] = {
#define BS(hd, n, h) {hd, n, h},
        AVGEN_CUDA_BUILTIN_SHAPES(BS)
#undef BS
    };
    const int ns = t ? (int)t->n_shapes : (int)(sizeof builtin / sizeof builtin[0]);
    const int32_t(*sh)[3] = t ? t->shapes : builtin;
    int at = t ? snprintf(buf, len, "%s compiled by nvcc into this program: ", t->source ? t->source : "kernels.cu")
               : snprintf(buf, len, "the avgen runtime's copy, compiled by nvcc: ");
    at += snprintf(buf + at, len > (size_t)at ? len - (size_t)at : 0, "%d kernels and %d shape-literal instances",
                   t ? (int)t->n_kernels : rt_kernels_count(), ns * AVGEN_CUDA_SHAPE_KERNEL_COUNT);
    for (int s = 0; s < ns && sh && at > 0 && (size_t)at < len; s++)
        at += snprintf(buf + at, len - (size_t)at, "%s(%d, %d, %d)", s ? ", " : " ", (int)sh[s][0], (int)sh[s][1], (int)sh[s][2]);
}

int rt_kernels_build(const char *src, const char *name, int arch, rt_cubin *out, char *err, size_t errlen) {
    const char **names = NULL;
    char why[300];
    const int total = rt_kernels_exprs(src, &names, why, sizeof why);
    if (total < 0) {
        snprintf(err, errlen, "%s: %s", name, why);
        return -1;
    }
    const int rc = rt_nvrtc_compile(src, name, arch, k_opts, (int)(sizeof k_opts / sizeof k_opts[0]), names, total, out, err,
                                    errlen);
    free(names);
    return rc;
}

void rt_kernels_describe(const rt_cubin *k, int arch, char *buf, size_t len) {
    if (k->cache_hit)
        snprintf(buf, len, "NVRTC sm_%d: %d kernels read from the cache in %.1f ms (%s)", arch, k->n_lowered, k->seconds * 1e3,
                 k->path);
    else if (k->cached)
        snprintf(buf, len, "NVRTC sm_%d: %d kernels compiled in %.1f s, cubin %.0f KiB, cached as %s", arch, k->n_lowered,
                 k->seconds, (double)k->size / 1024.0, k->path);
    else
        snprintf(buf, len, "NVRTC sm_%d: %d kernels compiled in %.1f s, cubin %.0f KiB, not cached (%s: %s)", arch,
                 k->n_lowered, k->seconds, (double)k->size / 1024.0, rt_nvrtc_cache_dir(), k->cache_err);
}

/* Generated at build time by cmake/embed_templates.cmake from runtime/rt_cuda_kernels.cuh. */
const char *rt_embedded_file(const char *name);

const char *rt_kernels_library_source(void) { return rt_embedded_file("rt_cuda_kernels.cuh"); }

char *rt_kernels_library_for(const avgen_consts *k) {
    const char *lib = rt_kernels_library_source();
    if (!lib) return NULL;
    static const char note[] = "// avgen step and bench: the configuration's shape-literal instances\n";
    char shape_lines[400];
    rt_cuda_shape_lines(k, shape_lines, sizeof shape_lines);
    const size_t n = strlen(lib), m = strlen(shape_lines);
    char *src = malloc(n + sizeof note + m + 2);
    if (!src) return NULL;
    memcpy(src, lib, n);
    size_t at = n;
    if (m) {
        if (n && lib[n - 1] != '\n') src[at++] = '\n';
        memcpy(src + at, note, sizeof note - 1);
        at += sizeof note - 1;
        memcpy(src + at, shape_lines, m);
        at += m;
    }
    src[at] = 0;
    return src;
}

char *rt_kernels_inline(const char *kernels_cu, const char *header) {
    static const char inc[] = RT_KERNELS_INCLUDE_LINE;
    const char *at = strstr(kernels_cu, inc);
    if (!at || (at != kernels_cu && at[-1] != '\n')) return NULL;
    const size_t pre = (size_t)(at - kernels_cu), hl = strlen(header), rest = strlen(at + sizeof inc - 1);
    char *out = malloc(pre + hl + rest + 2);
    if (!out) return NULL;
    memcpy(out, kernels_cu, pre);
    memcpy(out + pre, header, hl);
    size_t n = pre + hl;
    if (hl && header[hl - 1] != '\n') out[n++] = '\n';
    memcpy(out + n, at + sizeof inc - 1, rest + 1);
    return out;
}

int rt_kernels_jit(const char *src, const char *name, int arch, FILE *out, char *err, size_t errlen) {
    rt_cubin cold, warm;
    char line[900];
    fprintf(out, "%s: NVRTC build for sm_%d, cache %s\n", name, arch, rt_nvrtc_cache_dir());
    fflush(out);
    if (rt_kernels_build(src, name, arch, &cold, err, errlen)) return 1;
    if (cold.note[0]) fprintf(out, "  %s\n", cold.note);
    rt_kernels_describe(&cold, arch, line, sizeof line);
    fprintf(out, "  %s: %s\n", cold.cache_hit ? "first request (already cached)" : "cold (compiled)", line);
    if (!cold.cached) {
        snprintf(err, errlen, "the kernels could not be cached in %s (%s)", rt_nvrtc_cache_dir(), cold.cache_err);
        rt_cubin_free(&cold);
        return 1;
    }
    if (rt_kernels_build(src, name, arch, &warm, err, errlen)) {
        rt_cubin_free(&cold);
        return 1;
    }
    rt_kernels_describe(&warm, arch, line, sizeof line);
    fprintf(out, "  warm: %s\n", line);
    const int same = warm.cache_hit && warm.size == cold.size && !memcmp(warm.cubin, cold.cubin, cold.size);
    rt_cubin_free(&cold);
    rt_cubin_free(&warm);
    if (!same) {
        snprintf(err, errlen, "the second request for the same kernels was not served from the cache %s", rt_nvrtc_cache_dir());
        return 1;
    }
    return 0;
}
