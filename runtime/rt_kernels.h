/* rt_kernels: the CUDA backend's kernels as NVRTC builds them at run time (DESIGN.md: kernels JIT-compiled
 * with NVRTC at first run, cached). One list of kernels and one set of compile options, shared by the
 * backend's load path (rt_cuda.cu with --kernels nvrtc) and by the commands that fill the cache ahead of
 * time (avgen jit, NAME-train --jit), so they agree on the cache key. Compiling needs no GPU. */
#ifndef AVGEN_RT_KERNELS_H
#define AVGEN_RT_KERNELS_H
#include <stddef.h>
#include <stdio.h>

#include "avgen_graph.h"
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

/* Shape-literal instances (rt_cuda_kernel_list.h: AVGEN_CUDA_SHAPE_KERNELS). rt_kernels_shapes reads the
 * (head width, tokens, heads) of src's lines that start with "AVGEN_ATTN_SHAPE(" (three positive integers,
 * as avgen emit writes them after the library) into t: their count, or -1 with err for a malformed line, a
 * shape the fused attention cannot take, the same shape twice or more than AVGEN_CUDA_MAX_SHAPES.
 * rt_kernels_shape_expr writes kernel k's name expression for shape t ("&k_attn_fwd<64, 197, 12>"); an NVRTC
 * build requests, after the kernel list, for each shape of its source in order, the
 * AVGEN_CUDA_SHAPE_KERNEL_COUNT kernels in list order. */
int rt_kernels_shapes(const char *src, int t[][3], int max, char *err, size_t errlen);
void rt_kernels_shape_expr(int k, const int t[3], char *buf, size_t len);
/* The name expression of entry i of that order (the kernel list's, then for shape t[(i - count) / 6] the
 * instances) into buf; RT_KERNELS_EXPR_MAX bytes hold any ("&k_attn_bwd_dkv_bf<64, 1048576, 1048576>"). What
 * an NVRTC build requests, what a program's nvcc table names (rt_kernels_table_check, avgen emit). */
#define RT_KERNELS_EXPR_MAX 64
void rt_kernels_entry_expr(int i, const int (*t)[3], char *buf, size_t len);
/* Every name expression an NVRTC build of src requests, in that order (the kernel list, then each shape's
 * instances): their count, with *exprs one malloc'd block (free it), or -1 with err. */
int rt_kernels_exprs(const char *src, const char ***exprs, char *err, size_t errlen);

/* A program's own nvcc build (avgen_graph.h: avgen_kernel_table, from its kernels_nvcc.cu). rt_kernels_table_check
 * checks that it holds the kernels this runtime launches under the names it expects, in its order (the launch
 * list, then each shape's instances: what an NVRTC build of that kernels.cu requests): 0, or -1 with one
 * sentence in why (a folder emitted by another avgen: emit it again). The parameters are the CUDA backend's
 * to check (each entry's avgen_kernel_sig, and on the device the driver's layout, as for an NVRTC build). rt_kernels_table_describe: one line on it
 * ("tiny-lavish/kernels.cu compiled by nvcc into this program: 121 kernels and 12 shape-literal instances
 * (16, 10, 4), (16, 13, 4)"), or on the runtime's own copy when t is NULL. */
int rt_kernels_table_check(const avgen_kernel_table *t, char *why, size_t whylen);
void rt_kernels_table_describe(const avgen_kernel_table *t, char *buf, size_t len);
/* The environment switch that makes a program with its own nvcc build run the runtime's copy instead. */
#define RT_KERNELS_PROGRAM_ENV "AVGEN_PROGRAM_KERNELS"

/* The kernel library (runtime/rt_cuda_kernels.cuh), embedded at build time: what NVRTC compiles for
 * `avgen step/bench`; a generated program compiles its own kernels.cu instead (the same library after the
 * configuration's constants). */
const char *rt_kernels_library_source(void);

/* What NVRTC compiles for `avgen step/bench` of configuration k: the library, then k's shape lines
 * (rt_cuda_shape_lines), as an emitted kernels.cu ends; `avgen jit MODEL.json` builds the same text.
 * malloc'd; NULL when out of memory or this build embeds no library. */
char *rt_kernels_library_for(const avgen_consts *k);

/* A generated kernels.cu with its `#include "rt_cuda_kernels.cuh"` line replaced by the header's text: the
 * self-contained source a generated program embeds (kernels_src.c) and NVRTC compiles, and what
 * `avgen jit DIR` builds from an emitted folder, so both find the same cache entry. malloc'd; NULL when
 * the include line is missing or memory runs out. */
char *rt_kernels_inline(const char *kernels_cu, const char *header);
/* The line of an emitted kernels.cu that rt_kernels_inline replaces (at the start of a line). */
#define RT_KERNELS_INCLUDE_LINE "#include \"rt_cuda_kernels.cuh\"\n"

/* avgen's NVRTC options (*n of them; --gpu-architecture is added per build): what rt_kernels_build passes,
 * and what the tests compile the library with. */
const char *const *rt_kernels_options(int *n);

/* Compiles src (named name, for messages) for sm_<arch> with avgen's options, every kernel's name expression
 * and those of src's shape lines (rt_kernels_shapes), or reads the cache (rt_nvrtc.h). 0, or -1 with err. */
int rt_kernels_build(const char *src, const char *name, int arch, rt_cubin *out, char *err, size_t errlen);

/* What `avgen jit` and `NAME-train --jit` do: builds src for sm_<arch> (a cold compile, or a cache hit
 * when it was built before), then looks it up again (warm: a cache read) and prints both times and the
 * kernel count to out. No GPU needed. 0, or 1 with err. */
int rt_kernels_jit(const char *src, const char *name, int arch, FILE *out, char *err, size_t errlen);

/* One line on a build for logs: "NVRTC sm_90: compiled in 21.3 s, 812 KiB (cache: DIR)" or "read from the
 * cache in 4 ms". */
void rt_kernels_describe(const rt_cubin *k, int arch, char *buf, size_t len);
#endif
