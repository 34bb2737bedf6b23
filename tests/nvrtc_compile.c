/* nvrtc_compile [--arch N] [--nvcc NVCC] FILE...: compiles CUDA sources as the program does, no GPU needed.
 *
 * With NVRTC (the default; as the run-time JIT does: rt_nvrtc, include path = the file's folder,
 * -std=c++17) each FILE becomes a cubin for sm_N (default 90) with ptxas -v: every kernel's registers and
 * spills are printed and a spill fails the run; exit 77 (skipped) when NVRTC is not installed. With
 * --nvcc, FILE is compiled by `NVCC -std=c++17 -arch=sm_N -c` instead (registers: tests/cuda_ptxas.sh).
 * When a source holds the CUDA backend's kernel library, the kernels the backend launches
 * (runtime/rt_cuda_kernel_list.h) are requested by name too (NVRTC), and the run fails unless the cubin's
 * entry functions are exactly those.
 *
 * An emitted kernels.cu is the configuration's constants (the prelude: #define lines and static_asserts)
 * followed by #include "rt_cuda_kernels.cuh", the library beside it (NVRTC gets the library inlined, as the
 * generated program embeds it), then the configuration's shape-literal instances (AVGEN_ATTN_SHAPE lines,
 * rt_kernels_shapes; NVRTC requests them by name too). The library's kernels use none of the constants, so
 * every shipped model's kernels.cu compiles to the same kernels and instances of the same templates. CTest
 * gives this tool all of them at once, after the library itself: the first file is compiled whole, with the
 * shape lines of all the files (each shape once); each further one whose library is the same text, and which
 * the library provably does not depend on (its prelude holds nothing but #define, static_assert and
 * comments, and no name it defines occurs as a token of the library outside comments and literals, which has
 * no token pasting either; after the include only shape lines and comments), has its prelude compiled alone
 * (its static_asserts checked, in well under a second) instead of the same kernels again; any other is
 * compiled whole. The output says which for each file. */
#include <ctype.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rt_cuda_kernel_list.h"
#include "rt_kernels.h"
#include "rt_nvrtc.h"

#define INCLUDE_LINE RT_KERNELS_INCLUDE_LINE
#ifndef AVGEN_NVCC_KERNEL_FLAGS
#define AVGEN_NVCC_KERNEL_FLAGS "" /* a build without the CUDA toolkit: --nvcc is not run */
#endif

static int g_arch = 90, g_nvrtc_major, g_nvrtc_minor;
static const char *g_nvcc;
static char g_tmp[512];
/* the shape lines of all the files (each shape once), and those compiled with the first whole library (at
 * most AVGEN_CUDA_MAX_SHAPES, what one build takes: a file with others is compiled whole) */
static int g_shapes[64][3], g_nshapes, g_done[AVGEN_CUDA_MAX_SHAPES][3], g_ndone;

/* 1 when shape t is one of the n of set. */
static int has_shape(const int (*set)[3], int n, const int t[3]) {
    for (int j = 0; j < n; j++)
        if (!memcmp(set[j], t, 3 * sizeof(int))) return 1;
    return 0;
}

/* 1 when every shape of src was compiled with the first whole library. */
static int shapes_done(const char *src) {
    int t[AVGEN_CUDA_MAX_SHAPES][3];
    char err[300];
    const int n = rt_kernels_shapes(src, t, AVGEN_CUDA_MAX_SHAPES, err, sizeof err);
    for (int i = 0; i < n; i++)
        if (!has_shape((const int (*)[3])g_done, g_ndone, t[i])) return 0;
    return n >= 0;
}

/* Adds src's shapes to g_shapes (a malformed line: nothing; the file's own compile reports it). */
static void gather_shapes(const char *src) {
    int t[AVGEN_CUDA_MAX_SHAPES][3];
    char err[300];
    const int n = rt_kernels_shapes(src, t, AVGEN_CUDA_MAX_SHAPES, err, sizeof err);
    for (int i = 0; i < n; i++)
        if (!has_shape((const int (*)[3])g_shapes, g_nshapes, t[i]) && g_nshapes < 64) memcpy(g_shapes[g_nshapes++], t[i], sizeof t[i]);
}

/* src followed by the lines of the gathered shapes it lacks (malloc'd): what the first whole compile takes. */
static char *with_gathered_shapes(const char *src, int *added) {
    int t[AVGEN_CUDA_MAX_SHAPES][3];
    char err[300];
    int n = rt_kernels_shapes(src, t, AVGEN_CUDA_MAX_SHAPES, err, sizeof err);
    if (n < 0) n = 0;
    const size_t len = strlen(src);
    char *out = malloc(len + 200 + (size_t)g_nshapes * 48);
    if (!out) return NULL;
    memcpy(out, src, len + 1);
    size_t at = len;
    if (at && out[at - 1] != '\n') out[at++] = '\n';
    at += (size_t)sprintf(out + at, "// the other files' shape-literal instances (nvrtc_compile)\n");
    *added = 0;
    g_ndone = 0;
    for (int j = 0; j < n; j++) memcpy(g_done[g_ndone++], t[j], sizeof t[j]);
    for (int i = 0; i < g_nshapes && g_ndone < AVGEN_CUDA_MAX_SHAPES; i++) {
        if (has_shape((const int (*)[3])t, n, g_shapes[i])) continue;
        at += (size_t)sprintf(out + at, "AVGEN_ATTN_SHAPE(%d, %d, %d)\n", g_shapes[i][0], g_shapes[i][1], g_shapes[i][2]), ++*added;
        memcpy(g_done[g_ndone++], g_shapes[i], sizeof g_shapes[i]);
    }
    return out;
}

/* The prelude of an emitted kernels.cu: its length, when src is exactly prelude + INCLUDE_LINE + epilogue,
 * the prelude holds only blank lines, // comments, #define NAME ... and one-line static_assert(...), and the
 * epilogue only blank lines, // comments and well-formed shape lines (rt_kernels_shapes); then the names
 * the prelude defines go to names[] (NUL-separated, at most cap bytes). 0 when src is not of that form (why
 * says where). */
static size_t split_prelude(const char *src, char *names, size_t cap, int *nnames, int *nasserts, char *why, size_t whylen) {
    const char *inc = strstr(src, INCLUDE_LINE);
    if (!inc || strstr(inc + 1, "#include") || (inc != src && inc[-1] != '\n')) {
        snprintf(why, whylen, "not one include of rt_cuda_kernels.cuh, at the start of a line");
        return 0;
    }
    if (inc == src) {
        snprintf(why, whylen, "no constants before the include");
        return 0;
    }
    if (inc - src >= 2 && inc[-2] == '\\') { /* a line continued into the include line */
        snprintf(why, whylen, "a prelude line continued into the include");
        return 0;
    }
    for (const char *l = inc + strlen(INCLUDE_LINE); *l;) {
        const char *p = l;
        while (*p == ' ' || *p == '\t' || *p == '\r') p++;
        if (*p && *p != '\n' && strncmp(p, "//", 2) && strncmp(l, "AVGEN_ATTN_SHAPE(", 17)) {
            snprintf(why, whylen, "text after the library's include other than shape lines and comments");
            return 0;
        }
        const char *e = strchr(l, '\n');
        if (e && e > inc && e[-1] == '\\') {
            snprintf(why, whylen, "a line continued after the library's include");
            return 0;
        }
        l = e ? e + 1 : l + strlen(l);
    }
    {
        int t[AVGEN_CUDA_MAX_SHAPES][3];
        char err[300];
        if (rt_kernels_shapes(inc, t, AVGEN_CUDA_MAX_SHAPES, err, sizeof err) < 0) {
            snprintf(why, whylen, "%s", err);
            return 0;
        }
    }
    size_t used = 0;
    *nnames = *nasserts = 0;
    for (const char *l = src; l < inc;) {
        const char *e = memchr(l, '\n', (size_t)(inc - l));
        const size_t n = e ? (size_t)(e - l) : (size_t)(inc - l);
        const char *p = l;
        while (p < l + n && (*p == ' ' || *p == '\t' || *p == '\r')) p++;
        if (p == l + n || !strncmp(p, "//", 2)) {
            /* blank or a comment line */
        } else if (!strncmp(p, "#define ", 8)) {
            p += 8;
            while (*p == ' ') p++;
            size_t k = 0;
            while (p + k < l + n && (isalnum((unsigned char)p[k]) || p[k] == '_')) k++;
            if (!k || p[k] == '(' || used + k + 1 > cap) {
                snprintf(why, whylen, "a #define that is not a plain constant: %.*s", (int)n, l);
                return 0;
            }
            memcpy(names + used, p, k);
            names[used + k] = 0;
            used += k + 1;
            ++*nnames;
        } else if (!strncmp(p, "static_assert(", 14) && n >= 2 && !strncmp(l + n - 2, ");", 2)) {
            ++*nasserts;
        } else {
            snprintf(why, whylen, "a prelude line that is neither a #define nor a static_assert: %.*s", (int)n, l);
            return 0;
        }
        l += n + (e ? 1 : 0);
    }
    return (size_t)(inc - src);
}

/* The first of the NUL-separated names that occurs in the library as an identifier token (comments, string
 * and character literals skipped; lines continued with a backslash joined first), "##" when the library pastes
 * tokens (names could be made; "%:" too), "a raw string" for one (not scanned), or NULL. A literal ends at
 * the end of its line at the latest, and a quote between digits is a digit separator: a scan that errs
 * reads more tokens, never fewer. */
static const char *library_uses(const char *lib0, const char *names, int nnames) {
    char *lib = malloc(strlen(lib0) + 1);
    if (!lib) return "(out of memory)";
    char *o = lib;
    for (const char *p = lib0; *p; p++) {
        if (p[0] == '\\' && p[1] == '\n') p++;
        else *o++ = *p;
    }
    *o = 0;
    const char *found = NULL;
    for (const char *p = lib; *p && !found;) {
        if (p[0] == '/' && p[1] == '/') {
            while (*p && *p != '\n') p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            p = e ? e + 2 : p + strlen(p);
        } else if (*p == '"' || *p == '\'') {
            const char q = *p++;
            while (*p && *p != q && *p != '\n') p += (*p == '\\' && p[1] && p[1] != '\n') ? 2 : 1;
            if (*p == q) p++;
        } else if ((p[0] == '#' && p[1] == '#') || (p[0] == '%' && p[1] == ':')) {
            found = "##";
        } else if (isalpha((unsigned char)*p) || *p == '_') {
            const char *s = p;
            while (isalnum((unsigned char)*p) || *p == '_') p++;
            if (*p == '"' && p[-1] == 'R') found = "a raw string"; /* R"(...)", u8R"(...)" */
            const char *nm = names;
            for (int i = 0; i < nnames && !found; i++, nm += strlen(nm) + 1)
                if (strlen(nm) == (size_t)(p - s) && !strncmp(nm, s, (size_t)(p - s))) found = nm;
        } else if (isdigit((unsigned char)*p)) {
            /* 1e5f, 0x1ULL, 1'000: not names */
            while (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || (*p == '\'' && isalnum((unsigned char)p[1]))) p++;
        } else {
            p++;
        }
    }
    free(lib);
    return found;
}

/* The PTX of a kernel library (label: for messages): fails (CHECK) on every floating-point add, subtract,
 * multiply or FMA without a rounding modifier, which is what the compiler may contract or reassociate: with
 * nvcc's -fmad=false and NVRTC's --fmad=false every one carries .rn, so the GPU runs the arithmetic the source
 * writes (each FMA explicit: __fmaf_rn, __fma_rn), which is what the CUDA emulator runs. */
static void check_ptx_rounding(const char *ptx, const char *label) {
    long ops = 0, fmas = 0, loose = 0;
    char entry[200] = "?";
    for (const char *l = ptx; l && *l;) {
        const char *e = strchr(l, '\n');
        const size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), l);
        l = e ? e + 1 : NULL;
        const char *en = strstr(line, ".entry ");
        if (en) {
            snprintf(entry, sizeof entry, "%.*s", (int)strcspn(en + 7, "( \t"), en + 7);
            continue;
        }
        char *p = line + strspn(line, " \t");
        if (*p == '@') p += strcspn(p, " \t"), p += strspn(p, " \t"); /* a predicate */
        char op[64];
        snprintf(op, sizeof op, "%.*s", (int)strcspn(p, " \t;"), p);
        const size_t bl = strcspn(op, ".");
        if (!op[bl] || !((bl == 3 && (!strncmp(op, "add", 3) || !strncmp(op, "sub", 3) || !strncmp(op, "mul", 3) ||
                                      !strncmp(op, "fma", 3) || !strncmp(op, "mad", 3)))))
            continue;
        int fp = 0, rnd = 0;
        for (char *t = strtok(op + bl + 1, "."); t; t = strtok(NULL, ".")) {
            if (!strncmp(t, "f16", 3) || !strncmp(t, "bf16", 4) || !strncmp(t, "f32", 3) || !strncmp(t, "f64", 3)) fp = 1;
            if (!strcmp(t, "rn") || !strcmp(t, "rz") || !strcmp(t, "rm") || !strcmp(t, "rp")) rnd = 1;
        }
        if (!fp) continue;
        ops++;
        if (bl == 3 && !strncmp(p, "fma", 3)) fmas++;
        if (!rnd && loose++ < 5) printf("  CONTRACTIBLE (no rounding modifier) in %s: %s\n", entry, p);
    }
    printf("%s: PTX with %ld floating-point adds, subtracts, multiplies and FMAs (%ld FMAs), %ld without a rounding "
           "modifier\n", label, ops, fmas, loose);
    CHECK_MSG(ops > 1000, "%s: only %ld floating-point operations found in its PTX: the format changed?", label, ops);
    CHECK_MSG(loose == 0, "%s: %ld floating-point operations of its PTX have no rounding modifier: the compiler may "
              "contract them into FMAs, so the GPU would not run the arithmetic the CUDA emulator runs (build with "
              "-fmad=false / --fmad=false)", label, loose);
}

/* One source through NVRTC: registers and spills printed; failures counted by CHECK. */
static void compile_nvrtc(const char *src, const char *name, const char *incdir) {
    char err[8192], inc[1100], cmd[700];
    snprintf(inc, sizeof inc, "--include-path=%s", incdir);
    /* the runtime's options (rt_kernels_build), and ptxas's report */
    int nro = 0;
    const char *const *ro = rt_kernels_options(&nro);
    const char *opts[16];
    int no = 0;
    for (int i = 0; i < nro && no < 14; i++) opts[no++] = ro[i];
    opts[no++] = "--ptxas-options=-v", opts[no++] = inc;
    rt_cubin k;
    const int library = strstr(src, "AVGEN_RT_CUDA_KERNELS_CUH") != NULL;
    int shapes[AVGEN_CUDA_MAX_SHAPES][3];
    const int ns = library ? rt_kernels_shapes(src, shapes, AVGEN_CUDA_MAX_SHAPES, err, sizeof err) : 0;
    /* the list's kernels, then each shape's instances: what rt_kernels_build requests */
    const char **names = NULL;
    const int nk = library && ns >= 0 ? rt_kernels_exprs(src, &names, err, sizeof err) : 0;
    if (ns < 0 || nk < 0) {
        CHECK_MSG(0, "%s: %s", name, err);
        return;
    }
    if (library) { /* its PTX, with the runtime's options alone */
        char *ptx = rt_nvrtc_ptx(src, name, g_arch, ro, nro, err, sizeof err);
        CHECK_MSG(ptx != NULL, "%s does not compile to PTX: %s", name, err);
        if (ptx) {
            char label[1200];
            snprintf(label, sizeof label, "NVRTC compute_%d, %s", g_arch, name);
            check_ptx_rounding(ptx, label);
        }
        free(ptx);
    }
    if (rt_nvrtc_compile(src, name, g_arch, opts, no, names, nk, &k, err, sizeof err) != 0) {
        CHECK_MSG(0, "%s does not compile: %s", name, err);
        free(names);
        return;
    }
    /* the order the backend binds them in (bind_kernels): after the list, shape s's kernel j at list + s * K + j,
     * each lowered to its kernel's name with the shape's literals */
    int misplaced = 0;
    for (int i = rt_kernels_count(); library && i < k.n_lowered && i < nk; i++) {
        const int s = (i - rt_kernels_count()) / AVGEN_CUDA_SHAPE_KERNEL_COUNT, j = (i - rt_kernels_count()) % AVGEN_CUDA_SHAPE_KERNEL_COUNT;
        char want[64], lits[128];
        rt_kernels_shape_expr(j, shapes[s], want, sizeof want);
        *strchr(want, '<') = 0; /* "&k_attn_fwd" */
        snprintf(lits, sizeof lits, "%zu%sILi%dELi%dELi%dEE", strlen(want + 1), want + 1, shapes[s][0], shapes[s][1], shapes[s][2]);
        if (!strstr(k.lowered[i], lits)) misplaced++, printf("  MISPLACED instance %d: %s, expected %s\n", i, k.lowered[i], lits);
    }
    CHECK_MSG(misplaced == 0, "%s: %d instances not where the backend looks for them", name, misplaced);
    /* a fresh cache each time: the ptxas report comes with a compile, not with a cache hit */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", g_tmp);
    if (system(cmd)) { /* best effort */
    }
    int kernels = 0, spills = 0, unlisted = 0;
    const char *kname = NULL;
    for (char *line = k.log ? strtok(k.log, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        const char *f = strstr(line, "Compiling entry function '");
        if (f) kname = f + 26;
        const int nl = kname ? (int)strcspn(kname, "'") : 1;
        if (f && library) {
            /* every entry function must be one the backend launches */
            int listed = 0;
            for (int i = 0; i < k.n_lowered && !listed; i++)
                listed = (int)strlen(k.lowered[i]) == nl && !strncmp(k.lowered[i], kname, (size_t)nl);
            if (!listed) {
                printf("  NOT LISTED in runtime/rt_cuda_kernel_list.h: %.*s\n", nl, kname);
                unlisted++;
            }
        }
        long st = 0, ld = 0, regs = 0;
        const char *sf = strstr(line, "stack frame, ");
        if (sf && sscanf(sf + 13, "%ld bytes spill stores, %ld", &st, &ld) == 2 && (st || ld)) {
            printf("  SPILL %ld/%ld bytes  %.*s\n", st, ld, nl, kname ? kname : "?");
            spills++;
        }
        const char *u = strstr(line, "Used ");
        if (u && sscanf(u, "Used %ld registers", &regs) == 1) {
            kernels++;
            printf("  %3ld registers  %.*s\n", regs, nl, kname ? kname : "?");
        }
    }
    printf("NVRTC %d.%d, sm_%d: %s: %d kernels, %d functions spill registers; cubin %zu bytes in %.2f s\n", g_nvrtc_major,
           g_nvrtc_minor, g_arch, name, kernels, spills, k.size, k.seconds);
    rt_cubin_free(&k);
    if (library) {
        CHECK_MSG(kernels > 0, "%s: no kernels", name);
        CHECK_MSG(unlisted == 0, "%d kernels of the library are not in runtime/rt_cuda_kernel_list.h", unlisted);
        CHECK_MSG(kernels == nk, "the cubin has %d kernels, the backend launches %d", kernels, nk);
        printf("kernel list: %d kernels requested by name (%d of them the instances of %d shapes)\n", nk,
               ns * AVGEN_CUDA_SHAPE_KERNEL_COUNT, ns);
    }
    free(names);
    CHECK_MSG(spills == 0, "%s: %d functions spill registers", name, spills);
}

/* n bytes of text into g_tmp/name (its path into path): 1, or 0 after a failed check. */
static int write_tmp(const char *name, const char *text, size_t n, char *path, size_t plen) {
    snprintf(path, plen, "%s/%s", g_tmp, name);
    FILE *f = fopen(path, "w");
    int ok = f && fwrite(text, 1, n, f) == n;
    if (f && fclose(f)) ok = 0;
    CHECK_MSG(ok, "cannot write %s", path);
    return ok;
}

/* One file through nvcc (-c, sm_N) with the build's kernel flags (AVGEN_CUDA_KERNEL_FLAGS); a file holding the
 * kernel library also has its PTX (kept from the same compile) checked. */
static void compile_nvcc(const char *path, const char *incdir, const char *label, int library) {
    char cmd[4000], kdir[600];
    snprintf(kdir, sizeof kdir, "%s/keep", g_tmp);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir '%s' && '%s' -std=c++17 %s -arch=sm_%d -I'%s' -c '%s' -o '%s/k.o' -keep "
             "-keep-dir '%s' 2>&1", kdir, kdir, g_nvcc, AVGEN_NVCC_KERNEL_FLAGS, g_arch, incdir, path, g_tmp, kdir);
    const int rc = system(cmd);
    CHECK_MSG(rc == 0, "nvcc does not compile %s (exit status %d)", label, rc);
    if (rc == 0) printf("nvcc %s, sm_%d: %s compiled\n", AVGEN_NVCC_KERNEL_FLAGS, g_arch, label);
    if (rc == 0 && library) {
        /* the PTX nvcc kept: <file name without .cu>.ptx, the one for compute_N */
        char pb[1024], ptxpath[1800];
        snprintf(pb, sizeof pb, "%s", path);
        char *base = basename(pb), *dot = strrchr(base, '.');
        if (dot) *dot = 0;
        snprintf(ptxpath, sizeof ptxpath, "%s/%s.ptx", kdir, base);
        char *ptx = check_slurp(ptxpath);
        CHECK_MSG(ptx != NULL, "nvcc -keep left no PTX at %s", ptxpath);
        if (ptx) {
            char l2[1400];
            snprintf(l2, sizeof l2, "nvcc %s compute_%d, %s", AVGEN_NVCC_KERNEL_FLAGS, g_arch, label);
            check_ptx_rounding(ptx, l2);
        }
        free(ptx);
    }
}

/* One file: the whole of it, or (see the top) its prelude alone when the library it includes is the same
 * text, independent of the prelude, as one already compiled whole. */
static void compile_file(const char *path, char **whole_lib) {
    char dir[1024], hp[1200], why[600] = "", names[8192];
    char *src = check_slurp(path);
    if (!src) {
        CHECK_MSG(0, "cannot read %s", path);
        return;
    }
    char pathbuf[1024];
    snprintf(pathbuf, sizeof pathbuf, "%s", path);
    snprintf(dir, sizeof dir, "%s", dirname(pathbuf));
    char *lib = NULL;
    size_t pre = 0;
    int nn = 0, na = 0;
    if (strstr(src, INCLUDE_LINE)) {
        snprintf(hp, sizeof hp, "%s/rt_cuda_kernels.cuh", dir);
        lib = check_slurp(hp);
        CHECK_MSG(lib != NULL, "%s includes rt_cuda_kernels.cuh, which is not beside it", path);
        if (!lib) {
            free(src);
            return;
        }
        pre = split_prelude(src, names, sizeof names, &nn, &na, why, sizeof why);
        const char *used = pre ? library_uses(lib, names, nn) : NULL;
        if (used) snprintf(why, sizeof why, "the library uses %s", used), pre = 0;
        if (pre && *whole_lib && !shapes_done(src))
            snprintf(why, sizeof why, "its shapes were not all compiled with the library: more than %d in all", AVGEN_CUDA_MAX_SHAPES),
                pre = 0;
        if (pre && *whole_lib && !strcmp(*whole_lib, lib)) {
            /* the same kernels as the file compiled whole: its constants alone */
            printf("%s: its %d #define and %d static_assert lines compiled alone; its library is the text compiled above and "
                   "uses none of its constants, so its kernels are those\n",
                   path, nn, na);
            if (g_nvcc) {
                if (write_tmp("prelude.cu", src, pre, hp, sizeof hp)) compile_nvcc(hp, dir, "its constants", 0);
            } else {
                char err[8192], inc[1100];
                snprintf(inc, sizeof inc, "--include-path=%s", dir);
                const char *opts[] = {"-std=c++17", inc};
                src[pre] = 0;
                rt_cubin k;
                const int rc = rt_nvrtc_compile(src, path, g_arch, opts, 2, NULL, 0, &k, err, sizeof err);
                CHECK_MSG(rc == 0, "the constants of %s do not compile: %s", path, err);
                if (rc == 0) rt_cubin_free(&k);
            }
            free(src);
            free(lib);
            return;
        }
        if (!pre) printf("%s: compiled whole (%s)\n", path, why);
    }
    /* the library compiled whole for the files after it: with all their shapes */
    const int first = !*whole_lib && (pre || (!lib && strstr(src, "AVGEN_RT_CUDA_KERNELS_CUH")));
    int added = 0;
    if (g_nvcc) {
        /* the kernel library itself, or a file that includes it */
        const int is_lib = strstr(lib ? lib : src, "AVGEN_RT_CUDA_KERNELS_CUH") != NULL;
        char *text = first ? with_gathered_shapes(src, &added) : NULL;
        if (added) {
            char label[1300];
            snprintf(label, sizeof label, "%s with the other files' %d shapes", path, added);
            if (write_tmp("whole.cu", text, strlen(text), hp, sizeof hp)) compile_nvcc(hp, dir, label, is_lib);
        } else {
            compile_nvcc(path, dir, path, is_lib);
        }
        free(text);
    } else {
        char *in = lib ? rt_kernels_inline(src, lib) : NULL;
        CHECK_MSG(!lib || in != NULL, "cannot inline the library into %s", path);
        char *text = first && (in || !lib) ? with_gathered_shapes(in ? in : src, &added) : NULL;
        if (lib && in) printf("%s with %s inlined, as the generated program compiles it\n", path, hp);
        if (added) printf("  and the other files' %d shapes\n", added);
        if (!lib || in) compile_nvrtc(added ? text : in ? in : src, path, dir);
        free(text);
        free(in);
    }
    /* further files with this library: their constants alone */
    if (pre && !*whole_lib) *whole_lib = lib, lib = NULL;
    else if (!lib && !*whole_lib && strstr(src, "AVGEN_RT_CUDA_KERNELS_CUH")) *whole_lib = src, src = NULL; /* the library itself */
    free(lib);
    free(src);
}

int main(int argc, char **argv) {
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--arch") && i + 1 < argc)
            g_arch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--nvcc") && i + 1 < argc)
            g_nvcc = argv[++i];
        else
            break;
    }
    if (i >= argc || argv[i][0] == '-' || g_arch < 50) {
        fprintf(stderr, "usage: nvrtc_compile [--arch N] [--nvcc NVCC] FILE...\n");
        return 2;
    }
    char why[512];
    if (!g_nvcc && rt_nvrtc_version(&g_nvrtc_major, &g_nvrtc_minor, why, sizeof why) == 0) {
        printf("%s: skipped\n", why);
        return 77;
    }
    snprintf(g_tmp, sizeof g_tmp, "%s/avgen-nvrtcc-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/" "tmp");
    if (!mkdtemp(g_tmp)) return 1;
    setenv("AVGEN_CACHE_DIR", g_tmp, 1);
    for (int j = i; j < argc; j++) {
        char *src = check_slurp(argv[j]);
        if (src) gather_shapes(src);
        free(src);
    }
    char *whole_lib = NULL;
    for (; i < argc; i++) compile_file(argv[i], &whole_lib);
    free(whole_lib);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd)) { /* best effort */
    }
    return CHECK_DONE();
}
