/* rt_kernels.c: see rt_kernels.h. */
#include "rt_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cuda_kernel_list.h"

#define EXPR(f) "&" #f,
static const char *const k_exprs[] = {AVGEN_CUDA_KERNELS(EXPR)};
#undef EXPR

/* The options every run-time build uses. No fast-math flags: NVRTC's defaults (FMA contraction on, IEEE
 * division and square root, no flush to zero) are nvcc's, so both builds compute the same bits. */
static const char *const k_opts[] = {"-std=c++17"};

int rt_kernels_mode(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "nvcc")) return RT_KERNELS_NVCC;
    if (!strcmp(name, "nvrtc")) return RT_KERNELS_NVRTC;
    return -1;
}

const char *rt_kernels_mode_name(int mode) { return mode == RT_KERNELS_NVRTC ? "nvrtc" : "nvcc"; }

int rt_kernels_count(void) { return (int)(sizeof k_exprs / sizeof k_exprs[0]); }

const char *rt_kernels_expr(int i) { return i >= 0 && i < rt_kernels_count() ? k_exprs[i] : NULL; }

int rt_kernels_build(const char *src, const char *name, int arch, rt_cubin *out, char *err, size_t errlen) {
    return rt_nvrtc_compile(src, name, arch, k_opts, (int)(sizeof k_opts / sizeof k_opts[0]), k_exprs, rt_kernels_count(),
                            out, err, errlen);
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

char *rt_kernels_inline(const char *kernels_cu, const char *header) {
    static const char inc[] = "#include \"rt_cuda_kernels.cuh\"\n";
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
