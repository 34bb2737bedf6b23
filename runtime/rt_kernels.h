/* rt_kernels: the CUDA backend's kernels as NVRTC builds them at run time (DESIGN.md: kernels JIT-compiled
 * with NVRTC at first run, cached). One list of kernels and one set of compile options, shared by the
 * backend's load path (rt_cuda.cu with --kernels nvrtc) and by the commands that fill the cache ahead of
 * time (avgen jit, NAME-train --jit), so they agree on the cache key. Compiling needs no GPU. */
#ifndef AVGEN_RT_KERNELS_H
#define AVGEN_RT_KERNELS_H
#include <stddef.h>
#include <stdio.h>

#include "rt_nvrtc.h"

/* Where the CUDA backend's kernels come from: the copy nvcc compiled into this binary (fatbin for sm_80 and
 * sm_90), or a cubin NVRTC compiles at run time for the device's exact architecture. */
enum { RT_KERNELS_NVCC = 0, RT_KERNELS_NVRTC = 1 };
/* "nvcc" or "nvrtc" -> RT_KERNELS_*; -1 otherwise. */
int rt_kernels_mode(const char *name);
const char *rt_kernels_mode_name(int mode);

/* The kernels the host code launches (runtime/rt_cuda_kernel_list.h): how many, and kernel i's NVRTC
 * name expression ("&k_layernorm", "&k_latent_b<4>"). */
int rt_kernels_count(void);
const char *rt_kernels_expr(int i);

/* The kernel library (runtime/rt_cuda_kernels.cuh), embedded at build time: what NVRTC compiles for
 * `avgen step/bench`; a generated program compiles its own kernels.cu instead (the same library after the
 * configuration's constants). */
const char *rt_kernels_library_source(void);

/* A generated kernels.cu with its `#include "rt_cuda_kernels.cuh"` line replaced by the header's text: the
 * self-contained source a generated program embeds (kernels_src.c) and NVRTC compiles, and what
 * `avgen jit DIR` builds from an emitted folder, so both find the same cache entry. malloc'd; NULL when
 * the include line is missing or memory runs out. */
char *rt_kernels_inline(const char *kernels_cu, const char *header);

/* Compiles src (named name, for messages) for sm_<arch> with avgen's options and every kernel's name
 * expression, or reads the cache (rt_nvrtc.h). 0, or -1 with err. */
int rt_kernels_build(const char *src, const char *name, int arch, rt_cubin *out, char *err, size_t errlen);

/* What `avgen jit` and `NAME-train --jit` do: builds src for sm_<arch> (a cold compile, or a cache hit
 * when it was built before), then looks it up again (warm: a cache read) and prints both times and the
 * kernel count to out. No GPU needed. 0, or 1 with err. */
int rt_kernels_jit(const char *src, const char *name, int arch, FILE *out, char *err, size_t errlen);

/* One line on a build for logs: "NVRTC sm_90: compiled in 21.3 s, 812 KiB (cache: DIR)" or "read from the
 * cache in 4 ms". */
void rt_kernels_describe(const rt_cubin *k, int arch, char *buf, size_t len);
#endif
