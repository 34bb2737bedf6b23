/* nvrtc_compile FILE.cu [ARCH]: compiles a CUDA source with NVRTC (as the run-time JIT does: rt_nvrtc,
 * include path = the file's folder, -std=c++17) to a cubin for sm_ARCH (default 90) with ptxas -v, prints
 * every kernel's registers and spills, and exits 1 when it does not compile or a kernel spills registers,
 * 77 (skipped) when NVRTC is not installed. No GPU needed. Used by CTest on the kernel library
 * (runtime/rt_cuda_kernels.cuh) and on every shipped model's emitted kernels.cu (with the library beside it
 * inlined, as the generated program embeds it). When the source holds
 * the CUDA backend's kernel library, the kernels the backend launches (runtime/rt_cuda_kernel_list.h) are
 * requested by name too, and the test fails unless the cubin's entry functions are exactly those. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "rt_kernels.h"
#include "rt_nvrtc.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: nvrtc_compile FILE.cu [ARCH]\n");
        return 2;
    }
    char why[512], err[8192], tmp[512], inc[1100], dirbuf[1024];
    int ma = 0, mi = 0;
    if (rt_nvrtc_version(&ma, &mi, why, sizeof why) == 0) {
        printf("%s: skipped\n", why);
        return 77;
    }
    /* a fresh cache: the ptxas report comes with a compile, not with a cache hit */
    snprintf(tmp, sizeof tmp, "%s/avgen-nvrtcc-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/" "tmp");
    if (!mkdtemp(tmp)) return 1;
    setenv("AVGEN_CACHE_DIR", tmp, 1);
    const int arch = argc > 2 ? atoi(argv[2]) : 90;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    char *src = check_slurp(argv[1]);
    if (!src) {
        fprintf(stderr, "nvrtc_compile: cannot read %s\n", argv[1]);
        if (system(cmd)) { /* best effort */
        }
        return 1;
    }
    snprintf(dirbuf, sizeof dirbuf, "%s", argv[1]);
    snprintf(inc, sizeof inc, "--include-path=%s", dirname(dirbuf));
    /* an emitted kernels.cu: the library inlined, as the program embeds it (kernels_src.c) */
    if (strstr(src, "#include \"rt_cuda_kernels.cuh\"\n")) {
        char hp[1200];
        snprintf(hp, sizeof hp, "%s/rt_cuda_kernels.cuh", dirbuf);
        char *hdr = check_slurp(hp), *in = hdr ? rt_kernels_inline(src, hdr) : NULL;
        free(hdr);
        if (in) {
            free(src);
            src = in;
            printf("%s with %s inlined, as the generated program compiles it\n", argv[1], hp);
        }
    }
    const char *opts[] = {"-std=c++17", "--ptxas-options=-v", inc};
    rt_cubin k;
    const int library = strstr(src, "AVGEN_RT_CUDA_KERNELS_CUH") != NULL;
    const int nk = library ? rt_kernels_count() : 0;
    const char **names = calloc((size_t)nk + 1, sizeof(char *));
    for (int i = 0; names && i < nk; i++) names[i] = rt_kernels_expr(i);
    if (!names || rt_nvrtc_compile(src, argv[1], arch, opts, 3, names, nk, &k, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        free(src);
        if (system(cmd)) { /* best effort */
        }
        return 1;
    }
    int kernels = 0, spills = 0, unlisted = 0;
    const char *name = NULL;
    for (char *line = k.log ? strtok(k.log, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        const char *f = strstr(line, "Compiling entry function '");
        if (f) name = f + 26;
        const int nl = name ? (int)strcspn(name, "'") : 1;
        if (f && library) {
            /* every entry function must be one the backend launches */
            int listed = 0;
            for (int i = 0; i < k.n_lowered && !listed; i++)
                listed = (int)strlen(k.lowered[i]) == nl && !strncmp(k.lowered[i], name, (size_t)nl);
            if (!listed) {
                printf("  NOT LISTED in runtime/rt_cuda_kernel_list.h: %.*s\n", nl, name);
                unlisted++;
            }
        }
        long st = 0, ld = 0, regs = 0;
        const char *sf = strstr(line, "stack frame, ");
        if (sf && sscanf(sf + 13, "%ld bytes spill stores, %ld", &st, &ld) == 2 && (st || ld)) {
            printf("  SPILL %ld/%ld bytes  %.*s\n", st, ld, nl, name ? name : "?");
            spills++;
        }
        const char *u = strstr(line, "Used ");
        if (u && sscanf(u, "Used %ld registers", &regs) == 1) {
            kernels++;
            printf("  %3ld registers  %.*s\n", regs, nl, name ? name : "?");
        }
    }
    printf("NVRTC %d.%d, sm_%d: %s: %d kernels, %d functions spill registers; cubin %zu bytes in %.2f s\n", ma, mi, arch, argv[1],
           kernels, spills, k.size, k.seconds);
    rt_cubin_free(&k);
    free(src);
    if (system(cmd)) { /* best effort */
    }
    CHECK(kernels > 0);
    if (library) {
        CHECK_MSG(unlisted == 0, "%d kernels of the library are not in runtime/rt_cuda_kernel_list.h", unlisted);
        CHECK_MSG(kernels == nk, "the cubin has %d kernels, the backend launches %d", kernels, nk);
        printf("kernel list: %d kernels requested by name\n", nk);
    }
    free(names);
    CHECK_MSG(spills == 0, "%d functions spill registers", spills);
    return CHECK_DONE();
}
