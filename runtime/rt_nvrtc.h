/* rt_nvrtc: run-time compilation of generated CUDA source to a cubin for one exact architecture, with an
 * on-disk cache. NVRTC is loaded with dlopen (libnvrtc.so.13, or AVGEN_NVRTC_LIB), so a binary starts on a
 * machine without the CUDA toolkit and says what it cannot do there. NVRTC needs no GPU: CI compiles every
 * emitted kernel file with it.
 *
 * Cache: $XDG_CACHE_HOME/avgen (default ~/.cache/avgen; AVGEN_CACHE_DIR overrides) holds one entry
 * <key>-sm_<arch>.kernels per build: its key and architecture, the lowered (mangled) names of the requested
 * name expressions and the cubin, then a checksum of all of it (format in docs/kernels.md); beside it,
 * <key>-sm_<arch>.cu holds the exact source with a comment line giving the options, written before the
 * compile, so a failure can be reproduced with nvcc by hand. key = 64-bit FNV-1a over the source, every
 * option, the name expressions, NVRTC's version and the architecture. Entries are written to a temporary
 * name and renamed: a reader never sees half of one; an entry that fails its checks (cut short, edited,
 * another key, other names) is compiled again and replaced. The folder must be trusted: its cubins run on
 * the GPU. */
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
                                 --ptxas-options=-v), else NULL */
    char **lowered;           /* the lowered name of every requested name expression, in order */
    int n_lowered;
    char note[700];           /* why a cache entry was not used, when one existed (else empty) */
    int cached;               /* 1 when the entry is in the cache (read from it, or written after the compile) */
    char cache_err[160];      /* why a fresh compile could not be cached (cached == 0) */
    char path[4200];          /* the cache entry */
} rt_cubin;

/* NVRTC's version (e.g. 13.0); 0 with why set when the library cannot be loaded. */
int rt_nvrtc_version(int *major, int *minor, char *why, size_t whylen);

/* Compiles src (named name, for messages) for sm_<arch> (e.g. 90) with the given options (in addition to
 * --gpu-architecture), or reads the cached result. names: NVRTC name expressions ("&kernel",
 * "&kernel<4>") whose lowered names come back in out->lowered (for cudaLibraryGetKernel). 0 on success;
 * -1 with err holding one sentence and, for a compile error, NVRTC's log (the first lines). */
int rt_nvrtc_compile(const char *src, const char *name, int arch, const char *const *opts, int nopts,
                     const char *const *names, int nnames, rt_cubin *out, char *err, size_t errlen);
void rt_cubin_free(rt_cubin *k);
/* Compiles src for the virtual architecture compute_<arch> with the given options and returns its PTX
 * (malloc'd, NUL-terminated; no cache): what the tests read to check the arithmetic NVRTC emits. NULL with
 * err as rt_nvrtc_compile's. */
char *rt_nvrtc_ptx(const char *src, const char *name, int arch, const char *const *opts, int nopts, char *err,
                   size_t errlen);
/* Removes the cache entry of k (e.g. the driver refused to load it), so the next request compiles. */
void rt_nvrtc_forget(const rt_cubin *k);

/* The cache folder in use (created on demand). */
const char *rt_nvrtc_cache_dir(void);
#endif
