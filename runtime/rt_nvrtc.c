/* rt_nvrtc.c: NVRTC through dlopen, and the cubin cache (see rt_nvrtc.h). The few NVRTC entry points used
 * are declared here with their documented C signatures, so no CUDA header is needed to build this file. */
#include "rt_nvrtc.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
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
    nvrtcResult (*ptx_size)(nvrtcProgram, size_t *);
    nvrtcResult (*ptx)(nvrtcProgram, char *);
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
            SYM(ptx_size, "nvrtcGetPTXSize");
            SYM(ptx, "nvrtcGetPTX");
            SYM(destroy, "nvrtcDestroyProgram");
            SYM(error_string, "nvrtcGetErrorString");
            SYM(add_name, "nvrtcAddNameExpression");
            SYM(lowered, "nvrtcGetLoweredName");
#undef SYM
            if (!nv.version || !nv.create || !nv.compile || !nv.log_size || !nv.log || !nv.cubin_size || !nv.cubin ||
                !nv.ptx_size || !nv.ptx ||
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

static const char k_magic[] = "avgen-kernels 2\n";
#define CHECKSUM_LINE 26 /* "checksum " + 16 hex digits + "\n" */

void rt_cubin_free(rt_cubin *k) {
    free(k->cubin), free(k->log), free(k->lowered);
    k->cubin = NULL, k->log = NULL, k->lowered = NULL, k->n_lowered = 0;
}

void rt_nvrtc_forget(const rt_cubin *k) {
    if (k->path[0]) unlink(k->path);
}

/* Reads a cache entry (docs/kernels.md): "avgen-kernels 2", "key K sm_A", "names N", N lines, "cubin SIZE",
 * SIZE bytes, "checksum C" (FNV-1a of everything before that line). 0 with out->cubin and out->lowered set
 * (one block for the names); 1 when there is no entry; -1 with why when an entry is there but unusable.
 * Only a regular file is opened (no blocking on a FIFO). */
static int read_entry(const char *path, uint64_t key, int arch, int nnames, rt_cubin *out, char *why, size_t whylen) {
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 1;
    struct stat st;
    char *buf = NULL;
    int rc = -1;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        snprintf(why, whylen, "it is not a regular file");
        goto done;
    }
    if (st.st_size <= CHECKSUM_LINE || st.st_size > (1 << 30)) {
        snprintf(why, whylen, "it is empty or too large");
        goto done;
    }
    const size_t n = (size_t)st.st_size;
    size_t got = 0;
    if ((buf = malloc(n + 1)))
        while (got < n) {
            const ssize_t r = read(fd, buf + got, n - got);
            if (r <= 0) break;
            got += (size_t)r;
        }
    if (!buf || got != n) {
        snprintf(why, whylen, "it cannot be read");
        goto done;
    }
    buf[n] = 0;
    /* the checksum covers everything before its line: header, names and cubin */
    const size_t body = n - CHECKSUM_LINE;
    unsigned long long sum = 0;
    char hex[17];
    memcpy(hex, buf + body + 9, 16), hex[16] = 0;
    if (memcmp(buf + body, "checksum ", 9) || buf[n - 1] != '\n' || strspn(hex, "0123456789abcdef") != 16 ||
        sscanf(hex, "%llx", &sum) != 1 || fnv(14695981039346656037ULL, buf, body) != sum) {
        snprintf(why, whylen, "it does not match its checksum (cut short, edited or damaged)");
        goto done;
    }
    char expect[128];
    const int el = snprintf(expect, sizeof expect, "%skey %016llx sm_%d\n", k_magic, (unsigned long long)key, arch);
    if ((size_t)el > body || memcmp(buf, expect, (size_t)el)) {
        snprintf(why, whylen, "it is not an avgen kernel entry for this source, these options and this architecture");
        goto done;
    }
    size_t at = (size_t)el;
    int cnt = -1, used = 0;
    if (sscanf(buf + at, "names %9d%n", &cnt, &used) != 1 || strncmp(buf + at, "names ", 6) || buf[at + (size_t)used] != '\n') {
        snprintf(why, whylen, "its header is damaged");
        goto done;
    }
    if (cnt != nnames) {
        snprintf(why, whylen, "it names %d kernels, not %d", cnt, nnames);
        goto done;
    }
    at += (size_t)used + 1;
    const size_t names_at = at;
    for (int i = 0; i < cnt; i++) {
        const char *nl = memchr(buf + at, '\n', body - at);
        if (!nl || nl == buf + at) {
            snprintf(why, whylen, "its kernel names are cut short");
            goto done;
        }
        for (const char *c = buf + at; c < nl; c++)
            if (*c < 0x21 || *c > 0x7e) {
                snprintf(why, whylen, "its kernel names are damaged");
                goto done;
            }
        at = (size_t)(nl - buf) + 1;
    }
    unsigned long long size = 0;
    used = 0;
    if (at >= body || strncmp(buf + at, "cubin ", 6) || sscanf(buf + at, "cubin %llu%n", &size, &used) != 1 ||
        buf[at + (size_t)used] != '\n' || size > body || at + (size_t)used + 1 + size != body) {
        snprintf(why, whylen, "its cubin is cut short or has trailing bytes");
        goto done;
    }
    const char *cubin = buf + at + used + 1;
    if (size < 64 || memcmp(cubin, "\x7f" "ELF", 4)) {
        snprintf(why, whylen, "its cubin is not an ELF file");
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
    char *names = (char *)(tab + cnt + 1), *end = names + names_bytes;
    memcpy(names, buf + names_at, names_bytes);
    for (int i = 0; i < cnt; i++) {
        char *nl = memchr(names, '\n', (size_t)(end - names));
        tab[i] = names;
        *nl = 0; /* found above */
        names = nl + 1;
    }
    memcpy(cb, cubin, size);
    out->cubin = cb, out->size = size, out->lowered = tab, out->n_lowered = cnt;
    rc = 0;
done:
    free(buf);
    close(fd);
    return rc;
}

static int write_entry(const char *path, uint64_t key, int arch, const rt_cubin *k) {
    size_t hl = 128 + sizeof k_magic;
    for (int i = 0; i < k->n_lowered; i++) hl += strlen(k->lowered[i]) + 1;
    char *buf = malloc(hl + k->size + CHECKSUM_LINE + 1);
    if (!buf) return -1;
    size_t at = (size_t)snprintf(buf, hl, "%skey %016llx sm_%d\nnames %d\n", k_magic, (unsigned long long)key, arch,
                                 k->n_lowered);
    for (int i = 0; i < k->n_lowered; i++) at += (size_t)sprintf(buf + at, "%s\n", k->lowered[i]);
    at += (size_t)sprintf(buf + at, "cubin %zu\n", k->size);
    memcpy(buf + at, k->cubin, k->size);
    at += k->size;
    at += (size_t)sprintf(buf + at, "checksum %016llx\n", (unsigned long long)fnv(14695981039346656037ULL, buf, at));
    int rc = rt_write_atomic_bytes(path, buf, at);
    free(buf);
    return rc;
}

/* The source as compiled, after one comment line with NVRTC's version and the options: beside the entry,
 * so a failure can be reproduced by hand (written before compiling). 0, or -1 with errno. */
static int write_source(const char *path, const char *src, int vmaj, int vmin, const char *archopt,
                        const char *const *opts, int nopts) {
    size_t hl = 64 + strlen(archopt);
    for (int i = 0; i < nopts; i++) hl += strlen(opts[i]) + 1;
    const size_t sl = strlen(src);
    char *dump = malloc(hl + sl + 1);
    if (!dump) return -1;
    size_t h = (size_t)snprintf(dump, hl, "// avgen NVRTC %d.%d, %s", vmaj, vmin, archopt);
    for (int i = 0; i < nopts; i++) h += (size_t)sprintf(dump + h, " %s", opts[i]);
    dump[h++] = '\n';
    memcpy(dump + h, src, sl);
    const int rc = rt_write_atomic_bytes(path, dump, h + sl);
    free(dump);
    return rc;
}

int rt_nvrtc_compile(const char *src, const char *name, int arch, const char *const *opts, int nopts,
                     const char *const *names, int nnames, rt_cubin *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    double t0 = rt_now();
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
    const int got = read_entry(out->path, key, arch, nnames, out, why, sizeof why);
    if (got == 0) {
        out->cache_hit = 1, out->cached = 1;
        out->seconds = rt_now() - t0;
        return 0;
    }
    if (got < 0)
        snprintf(out->note, sizeof out->note, "the cached kernels %.300s were not used (%s): compiling again", out->path, why);
    /* the source first, so that a compile error can be reproduced from it */
    const int have_dir = rt_mkdirs(dir) == 0, dir_errno = errno;
    const int have_src = have_dir && write_source(src_path, src, vmaj, vmin, archopt, opts, nopts) == 0;
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
        snprintf(err, errlen, "NVRTC cannot compile %s for sm_%d (%s; the source is %s)%s%.*s", name, arch,
                 nv.error_string(r), have_src ? src_path : "not saved: the cache folder cannot be written",
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
            snprintf(err, errlen, "NVRTC compiled %s but has no kernel named by %s (%s)", name, names[i],
                     r != 0 ? nv.error_string(r) : "no lowered name");
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
    /* Cache (best effort: a cache folder that cannot be written only costs a compile at the next start). */
    if (!have_dir) snprintf(out->cache_err, sizeof out->cache_err, "%s", strerror(dir_errno));
    else if (write_entry(out->path, key, arch, out)) snprintf(out->cache_err, sizeof out->cache_err, "%s", strerror(errno));
    else out->cached = 1;
    out->seconds = rt_now() - t0;
    return 0;
}

char *rt_nvrtc_ptx(const char *src, const char *name, int arch, const char *const *opts, int nopts, char *err,
                   size_t errlen) {
    if (load()) {
        snprintf(err, errlen, "%s", nv.why);
        return NULL;
    }
    char archopt[64];
    snprintf(archopt, sizeof archopt, "--gpu-architecture=compute_%d", arch);
    const char **all = malloc(sizeof(char *) * (size_t)(nopts + 1));
    if (!all) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    all[0] = archopt;
    for (int i = 0; i < nopts; i++) all[i + 1] = opts[i];
    nvrtcProgram prog = NULL;
    nvrtcResult r = nv.create(&prog, src, name, 0, NULL, NULL);
    if (r == 0) r = nv.compile(prog, nopts + 1, all);
    free(all);
    char *ptx = NULL;
    size_t n = 0;
    if (r != 0) {
        size_t ls = 0;
        char *log = NULL;
        if (prog && nv.log_size(prog, &ls) == 0 && ls > 1 && (log = malloc(ls))) nv.log(prog, log);
        snprintf(err, errlen, "NVRTC cannot compile %s for compute_%d (%s)%s%.*s", name, arch, nv.error_string(r),
                 log ? ": " : "", log ? 1500 : 0, log ? log : "");
        free(log);
    } else if (nv.ptx_size(prog, &n) != 0 || n == 0 || !(ptx = malloc(n + 1)) || nv.ptx(prog, ptx) != 0) {
        snprintf(err, errlen, "NVRTC compiled %s but gave no PTX for compute_%d", name, arch);
        free(ptx);
        ptx = NULL;
    } else {
        ptx[n] = 0;
    }
    if (prog) nv.destroy(&prog);
    return ptx;
}
