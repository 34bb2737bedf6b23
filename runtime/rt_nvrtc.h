/* rt_nvrtc: run-time compilation of generated CUDA source to a cubin for one exact architecture, with an
 * on-disk cache. NVRTC is loaded with dlopen (libnvrtc.so.13, or AVGEN_NVRTC_LIB), so a binary starts on a
 * machine without the CUDA toolkit and says what it cannot do there. NVRTC needs no GPU: CI compiles every
 * emitted kernel file with it.
 *
 * Cache: $XDG_CACHE_HOME/avgen (default ~/.cache/avgen; AVGEN_CACHE_DIR overrides) holds <key>.cubin and,
 * beside it, <key>.cu with the exact source and a comment line with the options, so a failure can be
 * reproduced with nvcc by hand. key = 64-bit FNV-1a over the source, every option, NVRTC's version and the
 * architecture. Files are written to a temporary name and renamed: a reader never sees half a cubin. */
#ifndef AVGEN_RT_NVRTC_H
#define AVGEN_RT_NVRTC_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *cubin;              /* malloc'd; the caller frees */
    size_t size;
    int cache_hit;            /* 1 when read from the cache */
    uint64_t key;
    double seconds;           /* compile (or cache read) time */
    char *log;                /* malloc'd NVRTC log of a fresh compile when not empty (e.g. with
                                 --ptxas-options=-v), else NULL; the caller frees */
} rt_cubin;

/* NVRTC's version (e.g. 13.0); 0 with why set when the library cannot be loaded. */
int rt_nvrtc_version(int *major, int *minor, char *why, size_t whylen);

/* Compiles src (named name, for messages) for sm_<arch> (e.g. 90) with the given options (in addition to
 * --gpu-architecture). 0 on success; -1 with err holding one sentence and, for a compile error, NVRTC's
 * log (the first lines). */
int rt_nvrtc_compile(const char *src, const char *name, int arch, const char *const *opts, int nopts, rt_cubin *out,
                     char *err, size_t errlen);

/* The cache folder in use (created on demand). */
const char *rt_nvrtc_cache_dir(void);
#endif
