/* rt_nvrtc.c: NVRTC through dlopen, and the cubin cache (see rt_nvrtc.h). The few NVRTC entry points used
 * are declared here with their documented C signatures, so no CUDA header is needed to build this file. */
#include "rt_nvrtc.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rt_dl.h"
#include "rt_fs.h"

typedef int nvrtcResult; /* NVRTC_SUCCESS == 0 */
typedef struct _nvrtcProgram *nvrtcProgram;

static struct {
    int loaded, failed;
    char why[512];
    nvrtcResult (*version)(int *, int *);
    nvrtcResult (*create)(nvrtcProgram *, const char *, const char *, int, const char *const *, const char *const *);
    nvrtcResult (*compile)(nvrtcProgram, int, const char *const *);
    nvrtcResult (*log_size)(nvrtcProgram, size_t *);
    nvrtcResult (*log)(nvrtcProgram, char *);
    nvrtcResult (*cubin_size)(nvrtcProgram, size_t *);
    nvrtcResult (*cubin)(nvrtcProgram, char *);
    nvrtcResult (*destroy)(nvrtcProgram *);
    const char *(*error_string)(nvrtcResult);
} nv;
static pthread_mutex_t nv_mu = PTHREAD_MUTEX_INITIALIZER;

static int load(void) {
    pthread_mutex_lock(&nv_mu);
    if (!nv.loaded && !nv.failed) {
        void *h = rt_dl_open("AVGEN_NVRTC_LIB", "libnvrtc.so.13", "libnvrtc.so", "NVRTC", nv.why, sizeof nv.why);
        if (!h) {
            nv.failed = 1;
        } else {
#define SYM(field, name) (*(void **)&nv.field = dlsym(h, name))
            SYM(version, "nvrtcVersion");
            SYM(create, "nvrtcCreateProgram");
            SYM(compile, "nvrtcCompileProgram");
            SYM(log_size, "nvrtcGetProgramLogSize");
            SYM(log, "nvrtcGetProgramLog");
            SYM(cubin_size, "nvrtcGetCUBINSize");
            SYM(cubin, "nvrtcGetCUBIN");
            SYM(destroy, "nvrtcDestroyProgram");
            SYM(error_string, "nvrtcGetErrorString");
#undef SYM
            if (!nv.version || !nv.create || !nv.compile || !nv.log_size || !nv.log || !nv.cubin_size || !nv.cubin ||
                !nv.destroy || !nv.error_string) {
                snprintf(nv.why, sizeof nv.why, "the NVRTC library lacks an entry point avgen needs (too old?)");
                nv.failed = 1;
            } else {
                nv.loaded = 1;
            }
        }
    }
    int ok = nv.loaded;
    pthread_mutex_unlock(&nv_mu);
    return ok ? 0 : -1;
}

int rt_nvrtc_version(int *major, int *minor, char *why, size_t whylen) {
    *major = *minor = 0;
    if (load()) {
        snprintf(why, whylen, "%s", nv.why);
        return 0;
    }
    nv.version(major, minor);
    return *major;
}

const char *rt_nvrtc_cache_dir(void) {
    static char dir[4096];
    const char *e = getenv("AVGEN_CACHE_DIR"), *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (e && *e) snprintf(dir, sizeof dir, "%s", e);
    else if (x && *x) snprintf(dir, sizeof dir, "%s/avgen", x);
    else snprintf(dir, sizeof dir, "%s/.cache/avgen", h && *h ? h : ".");
    return dir;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 1099511628211ULL;
    return h;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int read_file(const char *path, void **data, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    struct stat st;
    if (fstat(fileno(f), &st) || st.st_size <= 0) {
        fclose(f);
        return -1;
    }
    *data = malloc((size_t)st.st_size);
    int ok = *data && fread(*data, 1, (size_t)st.st_size, f) == (size_t)st.st_size;
    fclose(f);
    if (!ok) {
        free(*data);
        *data = NULL;
        return -1;
    }
    *size = (size_t)st.st_size;
    return 0;
}

int rt_nvrtc_compile(const char *src, const char *name, int arch, const char *const *opts, int nopts, rt_cubin *out,
                     char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    double t0 = now();
    if (load()) {
        snprintf(err, errlen, "%s", nv.why);
        return -1;
    }
    int vmaj = 0, vmin = 0;
    nv.version(&vmaj, &vmin);
    char archopt[64];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=sm_%d", arch);
    uint64_t key = fnv(14695981039346656037ULL, src, strlen(src));
    key = fnv(key, archopt, strlen(archopt) + 1);
    for (int i = 0; i < nopts; i++) key = fnv(key, opts[i], strlen(opts[i]) + 1);
    key = fnv(key, &vmaj, sizeof vmaj);
    key = fnv(key, &vmin, sizeof vmin);
    out->key = key;
    const char *dir = rt_nvrtc_cache_dir();
    char cubin_path[4200], src_path[4200];
    snprintf(cubin_path, sizeof cubin_path, "%s/%016llx-sm_%d.cubin", dir, (unsigned long long)key, arch);
    snprintf(src_path, sizeof src_path, "%s/%016llx-sm_%d.cu", dir, (unsigned long long)key, arch);
    if (read_file(cubin_path, &out->cubin, &out->size) == 0) {
        out->cache_hit = 1;
        out->seconds = now() - t0;
        return 0;
    }
    const char **all = malloc(sizeof(char *) * (size_t)(nopts + 1));
    if (!all) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    all[0] = archopt;
    for (int i = 0; i < nopts; i++) all[i + 1] = opts[i];
    nvrtcProgram prog = NULL;
    nvrtcResult r = nv.create(&prog, src, name, 0, NULL, NULL);
    if (r == 0) r = nv.compile(prog, nopts + 1, all);
    free(all);
    if (r != 0) {
        size_t ls = 0;
        char *log = NULL;
        if (prog && nv.log_size(prog, &ls) == 0 && ls > 1 && (log = malloc(ls))) nv.log(prog, log);
        snprintf(err, errlen, "NVRTC cannot compile %s for sm_%d (%s)%s%.*s", name, arch, nv.error_string(r),
                 log ? ": " : "", log ? 1500 : 0, log ? log : "");
        free(log);
        if (prog) nv.destroy(&prog);
        return -1;
    }
    size_t n = 0;
    if (nv.cubin_size(prog, &n) != 0 || n == 0 || !(out->cubin = malloc(n)) || nv.cubin(prog, out->cubin) != 0) {
        snprintf(err, errlen, "NVRTC compiled %s but gave no cubin for sm_%d", name, arch);
        free(out->cubin);
        out->cubin = NULL;
        nv.destroy(&prog);
        return -1;
    }
    out->size = n;
    size_t ls = 0;
    if (nv.log_size(prog, &ls) == 0 && ls > 1 && (out->log = malloc(ls)) && nv.log(prog, out->log) != 0) {
        free(out->log);
        out->log = NULL;
    }
    nv.destroy(&prog);
    /* Cache (best effort: a read-only cache folder only costs a recompile next time), source beside it. */
    if (rt_mkdirs(dir) == 0) {
        size_t sl = strlen(src);
        char *dump = malloc(sl + 1024);
        if (dump) {
            int h = snprintf(dump, 1024, "// avgen NVRTC %d.%d, %s", vmaj, vmin, archopt);
            for (int i = 0; i < nopts && h < 1000; i++) h += snprintf(dump + h, (size_t)(1024 - h), " %s", opts[i]);
            h += snprintf(dump + h, (size_t)(1024 - h), "\n");
            memcpy(dump + h, src, sl);
            rt_write_atomic_bytes(src_path, dump, (size_t)h + sl);
            free(dump);
        }
        rt_write_atomic_bytes(cubin_path, out->cubin, out->size);
    }
    out->seconds = now() - t0;
    return 0;
}
