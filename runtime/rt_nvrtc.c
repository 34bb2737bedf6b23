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
    nvrtcResult (*add_name)(nvrtcProgram, const char *);
    nvrtcResult (*lowered)(nvrtcProgram, const char *, const char **);
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
            SYM(add_name, "nvrtcAddNameExpression");
            SYM(lowered, "nvrtcGetLoweredName");
#undef SYM
            if (!nv.version || !nv.create || !nv.compile || !nv.log_size || !nv.log || !nv.cubin_size || !nv.cubin ||
                !nv.destroy || !nv.error_string || !nv.add_name || !nv.lowered) {
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

static const char k_magic[] = "avgen-kernels 1\n";

void rt_cubin_free(rt_cubin *k) {
    free(k->cubin), free(k->log), free(k->lowered);
    k->cubin = NULL, k->log = NULL, k->lowered = NULL, k->n_lowered = 0;
}

void rt_nvrtc_forget(const rt_cubin *k) {
    if (k->path[0]) unlink(k->path);
}

/* Reads a cache entry: "avgen-kernels 1\n", "names N\n", N lines, "cubin SIZE CHECKSUM\n", SIZE bytes.
 * 0 with out->cubin and out->lowered set (one block for the names); 1 when there is no entry; -1 with
 * why when the entry is there but unusable. */
static int read_entry(const char *path, int nnames, rt_cubin *out, char *why, size_t whylen) {
    FILE *f = fopen(path, "rb");
    if (!f) return 1;
    struct stat st;
    char *buf = NULL;
    int rc = -1;
    if (fstat(fileno(f), &st) || st.st_size <= 0 || st.st_size > (1 << 30)) {
        snprintf(why, whylen, "it is empty or too large");
        goto done;
    }
    const size_t n = (size_t)st.st_size;
    if (!(buf = malloc(n + 1)) || fread(buf, 1, n, f) != n) {
        snprintf(why, whylen, "it cannot be read");
        goto done;
    }
    buf[n] = 0;
    size_t at = sizeof k_magic - 1;
    int cnt = -1, used = 0;
    if (n < at || memcmp(buf, k_magic, at) || sscanf(buf + at, "names %d%n", &cnt, &used) != 1 ||
        buf[at + (size_t)used] != '\n') {
        snprintf(why, whylen, "it does not start as an avgen kernel entry");
        goto done;
    }
    if (cnt != nnames) {
        snprintf(why, whylen, "it names %d kernels, not %d", cnt, nnames);
        goto done;
    }
    at += (size_t)used + 1;
    const size_t names_at = at;
    for (int i = 0; i < cnt; i++) {
        char *nl = memchr(buf + at, '\n', n - at);
        if (!nl || nl == buf + at) {
            snprintf(why, whylen, "its kernel names are cut short");
            goto done;
        }
        at = (size_t)(nl - buf) + 1;
    }
    unsigned long long size = 0, sum = 0;
    used = 0;
    if (at >= n || sscanf(buf + at, "cubin %llu %llx%n", &size, &sum, &used) != 2 || buf[at + (size_t)used] != '\n' ||
        size > n || at + (size_t)used + 1 + size != n) {
        snprintf(why, whylen, "its cubin is cut short or has trailing bytes");
        goto done;
    }
    const char *cubin = buf + at + used + 1;
    if (fnv(14695981039346656037ULL, cubin, size) != sum) {
        snprintf(why, whylen, "its cubin does not match its checksum");
        goto done;
    }
    /* one allocation for the pointer table and the names, one for the cubin */
    const size_t names_bytes = at - names_at;
    char **tab = malloc(sizeof(char *) * (size_t)(cnt + 1) + names_bytes);
    void *cb = malloc(size);
    if (!tab || !cb) {
        free(tab), free(cb);
        snprintf(why, whylen, "out of memory");
        goto done;
    }
    char *names = (char *)(tab + cnt + 1);
    memcpy(names, buf + names_at, names_bytes);
    for (int i = 0; i < cnt; i++) {
        tab[i] = names;
        names = strchr(names, '\n');
        *names++ = 0;
    }
    memcpy(cb, cubin, size);
    out->cubin = cb, out->size = size, out->lowered = tab, out->n_lowered = cnt;
    rc = 0;
done:
    free(buf);
    fclose(f);
    return rc;
}

static int write_entry(const char *path, const rt_cubin *k) {
    size_t hl = 64 + sizeof k_magic;
    for (int i = 0; i < k->n_lowered; i++) hl += strlen(k->lowered[i]) + 1;
    char *buf = malloc(hl + k->size + 64);
    if (!buf) return -1;
    size_t at = (size_t)snprintf(buf, hl, "%snames %d\n", k_magic, k->n_lowered);
    for (int i = 0; i < k->n_lowered; i++) at += (size_t)sprintf(buf + at, "%s\n", k->lowered[i]);
    at += (size_t)sprintf(buf + at, "cubin %zu %016llx\n", k->size,
                          (unsigned long long)fnv(14695981039346656037ULL, k->cubin, k->size));
    memcpy(buf + at, k->cubin, k->size);
    int rc = rt_write_atomic_bytes(path, buf, at + k->size);
    free(buf);
    return rc;
}

int rt_nvrtc_compile(const char *src, const char *name, int arch, const char *const *opts, int nopts,
                     const char *const *names, int nnames, rt_cubin *out, char *err, size_t errlen) {
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
    for (int i = 0; i < nnames; i++) key = fnv(key, names[i], strlen(names[i]) + 1);
    key = fnv(key, &vmaj, sizeof vmaj);
    key = fnv(key, &vmin, sizeof vmin);
    out->key = key;
    const char *dir = rt_nvrtc_cache_dir();
    char src_path[4200];
    snprintf(out->path, sizeof out->path, "%s/%016llx-sm_%d.kernels", dir, (unsigned long long)key, arch);
    snprintf(src_path, sizeof src_path, "%s/%016llx-sm_%d.cu", dir, (unsigned long long)key, arch);
    char why[200];
    const int got = read_entry(out->path, nnames, out, why, sizeof why);
    if (got == 0) {
        out->cache_hit = 1;
        out->seconds = now() - t0;
        return 0;
    }
    if (got < 0)
        snprintf(out->note, sizeof out->note, "the cached kernels %.300s were not used (%s): compiling again", out->path, why);
    const char **all = malloc(sizeof(char *) * (size_t)(nopts + 1));
    if (!all) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    all[0] = archopt;
    for (int i = 0; i < nopts; i++) all[i + 1] = opts[i];
    nvrtcProgram prog = NULL;
    nvrtcResult r = nv.create(&prog, src, name, 0, NULL, NULL);
    for (int i = 0; i < nnames && r == 0; i++) r = nv.add_name(prog, names[i]);
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
        rt_cubin_free(out);
        nv.destroy(&prog);
        return -1;
    }
    out->size = n;
    /* the lowered names, in one block (pointer table, then the strings) */
    size_t nb = 0;
    const char **low = calloc((size_t)nnames + 1, sizeof(char *));
    for (int i = 0; low && i < nnames; i++) {
        r = nv.lowered(prog, names[i], &low[i]);
        if (r != 0 || !low[i]) {
            snprintf(err, errlen, "NVRTC compiled %s but has no kernel named by %s (%s)", name, names[i], nv.error_string(r));
            free(low);
            rt_cubin_free(out);
            nv.destroy(&prog);
            return -1;
        }
        nb += strlen(low[i]) + 1;
    }
    if (!low || !(out->lowered = malloc(sizeof(char *) * (size_t)(nnames + 1) + nb))) {
        snprintf(err, errlen, "out of memory");
        free(low);
        rt_cubin_free(out);
        nv.destroy(&prog);
        return -1;
    }
    char *at = (char *)(out->lowered + nnames + 1);
    for (int i = 0; i < nnames; i++) {
        out->lowered[i] = at;
        at = stpcpy(at, low[i]) + 1;
    }
    out->n_lowered = nnames;
    free(low);
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
        write_entry(out->path, out);
    }
    out->seconds = now() - t0;
    return 0;
}
