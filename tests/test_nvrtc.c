/* Run-time CUDA compilation without a GPU: NVRTC (loaded with dlopen) compiles kernels to a cubin for
 * sm_90 and lowers the requested name expressions (a C kernel and a template instantiation); the second
 * request is a cache hit with the same bytes and names, and the source is dumped beside the entry; other
 * options or other names give another key; a damaged entry (a flipped byte, cut short, empty, a damaged or
 * NUL-holding name, another kernel count, another architecture, a cubin of the wrong size, trailing bytes)
 * is noticed, compiled again and replaced; a FIFO in the cache is not read; rt_nvrtc_forget removes an
 * entry; a compile error comes back as one sentence with NVRTC's log and the path of the saved source; a
 * name the source lacks is an error; a cache folder that cannot be written is reported; a missing NVRTC
 * library is reported, not a crash. The kernel library is embedded with its kernel list (its compile is the
 * nvrtc-kernels and jit tests'). Exits 77 (skipped) when NVRTC is not installed.
 * usage: test_nvrtc */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "rt_cuda_kernel_list.h"
#include "rt_kernels.h"
#include "rt_nvrtc.h"

static const char *k_src =
    "extern \"C\" __global__ void axpy(float a, const float *x, float *y, int n) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n) y[i] += a * x[i];\n"
    "}\n"
    "template <int K> __global__ void scale(float *y, int n) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n) y[i] *= K;\n"
    "}\n"
    "template __global__ void scale<3>(float *, int);\n";

static const char *const k_names[] = {"&axpy", "&scale<3>"};

static int compile(const char *src, const char *const *opts, int nopts, const char *const *names, int nn, rt_cubin *k,
                   char *err, size_t errlen) {
    return rt_nvrtc_compile(src, "axpy.cu", 90, opts, nopts, names, nn, k, err, errlen);
}

/* Rewrites the file with byte `at` xor-ed (at >= 0) or cut to `keep` bytes (at < 0). */
static void damage(const char *path, long at, long keep) {
    char *b = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    b = malloc((size_t)n);
    if (b && fread(b, 1, (size_t)n, f) == (size_t)n) {
        fclose(f);
        if (at >= 0 && at < n) b[at] ^= 0x5a;
        f = fopen(path, "wb");
        if (f) fwrite(b, 1, (size_t)(at >= 0 ? n : keep), f);
    }
    if (f) fclose(f);
    free(b);
}

static uint64_t fnv(const void *p, size_t n) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char *)p)[i]) * 1099511628211ULL;
    return h;
}

/* Rewrites a cache entry with a valid checksum: the first `from` in its text part replaced by `to`; from == ""
 * appends a byte to the cubin instead; nul puts a NUL byte where `to` ends (after "ax"). 0 on success. */
static int rewrite(const char *path, const char *from, const char *to, int nul) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    static char buf[4 << 20], out[4 << 20];
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (n < 26) return -1;
    size_t body = n - 26, m = 0;
    if (!*from) {
        memcpy(out, buf, body);
        m = body;
        out[m++] = 'x';
    } else {
        char *at = memmem(buf, body, from, strlen(from));
        if (!at) return -1;
        const size_t pre = (size_t)(at - buf), fl = strlen(from), tl = strlen(to);
        memcpy(out, buf, pre);
        memcpy(out + pre, to, tl);
        m = pre + tl;
        if (nul) out[m++] = 0, out[m++] = 'y', out[m++] = '\n';
        memcpy(out + m, at + fl, body - pre - fl);
        m += body - pre - fl;
    }
    m += (size_t)sprintf(out + m, "checksum %016llx\n", (unsigned long long)fnv(out, m));
    f = fopen(path, "wb");
    if (!f) return -1;
    const int ok = fwrite(out, 1, m, f) == m;
    return fclose(f) == 0 && ok ? 0 : -1;
}

int main(void) {
    char dir[512], why[512], err[4096];
    snprintf(dir, sizeof dir, "%s/avgen-nvrtc-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/" "tmp");
    if (!mkdtemp(dir)) return 1;
    setenv("AVGEN_CACHE_DIR", dir, 1);
    /* a missing library is a clear message (in a child: the loaded state is per process) */
    pid_t pid = fork();
    if (pid == 0) {
        setenv("AVGEN_NVRTC_LIB", "/nonexistent/libnvrtc.so", 1);
        int ma, mi;
        _exit(rt_nvrtc_version(&ma, &mi, why, sizeof why) == 0 && strstr(why, "cannot be loaded") ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int ma = 0, mi = 0;
    if (rt_nvrtc_version(&ma, &mi, why, sizeof why) == 0) {
        printf("%s: skipped\n", why);
        return 77;
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    printf("NVRTC %d.%d, cache %s\n", ma, mi, rt_nvrtc_cache_dir());
    rt_cubin a, b, c, e;
    const char *opts[] = {"-DAVGEN_TEST=1"};
    CHECK_MSG(compile(k_src, NULL, 0, k_names, 2, &a, err, sizeof err) == 0, "%s", err);
    CHECK(a.size > 100 && a.cubin && !memcmp(a.cubin, "\x7f" "ELF", 4) && !a.cache_hit && !a.note[0]);
    CHECK(a.n_lowered == 2 && a.lowered && !strcmp(a.lowered[0], "axpy") && strstr(a.lowered[1], "scale") &&
          strcmp(a.lowered[1], "scale<3>"));
    printf("lowered: %s, %s\n", a.lowered[0], a.lowered[1]);
    CHECK_MSG(compile(k_src, NULL, 0, k_names, 2, &b, err, sizeof err) == 0, "%s", err);
    CHECK(b.cache_hit && b.size == a.size && !memcmp(a.cubin, b.cubin, a.size) && b.key == a.key && !b.note[0]);
    CHECK(b.n_lowered == 2 && !strcmp(b.lowered[0], a.lowered[0]) && !strcmp(b.lowered[1], a.lowered[1]));
    printf("compile %.3f s, cache hit %.6f s\n", a.seconds, b.seconds);
    rt_cubin_free(&b);
    CHECK_MSG(compile(k_src, opts, 1, k_names, 2, &c, err, sizeof err) == 0, "%s", err);
    CHECK(!c.cache_hit && c.key != a.key);
    rt_cubin_free(&c);
    CHECK_MSG(compile(k_src, NULL, 0, k_names, 1, &c, err, sizeof err) == 0, "%s", err);
    CHECK(!c.cache_hit && c.key != a.key && c.n_lowered == 1);
    rt_cubin_free(&c);
    char srcdump[700];
    snprintf(srcdump, sizeof srcdump, "%s/%016llx-sm_90.cu", dir, (unsigned long long)a.key);
    struct stat st;
    CHECK_MSG(stat(srcdump, &st) == 0 && st.st_size > (off_t)strlen(k_src), "no source dump %s", srcdump);
    CHECK_MSG(stat(a.path, &st) == 0 && (size_t)st.st_size > a.size, "no cache entry %s", a.path);
    /* damaged entries, each noticed (with why), compiled again and replaced; the rebuilt entry is then used:
     * raw damage (the checksum catches it), and damage with a valid checksum (the parser catches it) */
    const long n = (long)st.st_size;
    struct {
        long flip, keep;            /* raw: xor byte flip, or cut to keep bytes */
        const char *from, *to;      /* checksummed: replace from by to in the header ("" appends to the cubin) */
        const char *expect;
    } cases[] = {
        {n - 40, -1, NULL, NULL, "checksum"},  {-1, n - 100, NULL, NULL, "checksum"}, {-1, 20, NULL, NULL, "empty"},
        {-1, 0, NULL, NULL, "empty"},          {3, -1, NULL, NULL, "checksum"},
        {-1, -1, "\naxpy\n", "\nax\001y\n", "names are damaged"},
        {-1, -1, "\naxpy\n", "\nax", "names are damaged"},  /* a NUL byte in a name (see rewrite) */
        {-1, -1, "names 2\naxpy\n", "names 1\n", "names 1 kernels, not 2"},
        {-1, -1, "sm_90\n", "sm_80\n", "not an avgen kernel entry for this"},
        {-1, -1, "cubin ", "cubin 0\nXcubin ", "cubin is cut short"},
        {-1, -1, "", "", "trailing bytes"},
    };
    const int ncases = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < ncases; i++) {
        if (cases[i].from) CHECK_MSG(rewrite(a.path, cases[i].from, cases[i].to, i == 6) == 0, "case %d: rewrite", i);
        else damage(a.path, cases[i].flip, cases[i].keep);
        CHECK_MSG(compile(k_src, NULL, 0, k_names, 2, &b, err, sizeof err) == 0, "%s", err);
        CHECK_MSG(!b.cache_hit && strstr(b.note, cases[i].expect), "case %d: hit %d, note \"%s\"", i, b.cache_hit, b.note);
        CHECK(b.size == a.size && !memcmp(a.cubin, b.cubin, a.size) && b.cached);
        rt_cubin_free(&b);
        CHECK_MSG(compile(k_src, NULL, 0, k_names, 2, &b, err, sizeof err) == 0, "%s", err);
        CHECK_MSG(b.cache_hit && !b.note[0], "case %d: the rebuilt entry is not used", i);
        rt_cubin_free(&b);
    }
    /* a FIFO where the entry should be: not opened for reading (no hang), compiled, then not cached */
    unlink(a.path);
    CHECK(mkfifo(a.path, 0600) == 0);
    CHECK_MSG(compile(k_src, NULL, 0, k_names, 2, &b, err, sizeof err) == 0, "%s", err);
    CHECK_MSG(!b.cache_hit && strstr(b.note, "not a regular file"), "fifo: note \"%s\"", b.note);
    rt_cubin_free(&b);
    unlink(a.path);
    /* a cache folder that cannot be written: the compile works and says it is not cached */
    setenv("AVGEN_CACHE_DIR", "/dev/null/avgen", 1);
    CHECK_MSG(compile(k_src, NULL, 0, k_names, 2, &b, err, sizeof err) == 0, "%s", err);
    CHECK(!b.cache_hit && !b.cached && b.cache_err[0]);
    char line[900];
    rt_kernels_describe(&b, 90, line, sizeof line);
    CHECK_STR_CONTAINS(line, "not cached");
    rt_cubin_free(&b);
    setenv("AVGEN_CACHE_DIR", dir, 1);
    rt_nvrtc_forget(&a);
    CHECK(stat(a.path, &st) != 0);
    CHECK_MSG(compile(k_src, NULL, 0, k_names, 2, &b, err, sizeof err) == 0, "%s", err);
    CHECK(!b.cache_hit && !b.note[0]);
    rt_cubin_free(&b);
    /* errors */
    CHECK(rt_nvrtc_compile("__global__ void broken( { }", "broken.cu", 90, NULL, 0, NULL, 0, &e, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "NVRTC cannot compile broken.cu for sm_90");
    CHECK_STR_CONTAINS(err, "error");
    {   /* the source of the failed compile is saved, and the error names it */
        const char *sp = strstr(err, "the source is ");
        char path[600] = "";
        if (sp) sscanf(sp + 14, "%599[^);]", path);
        char *dumped = path[0] ? check_slurp(path) : NULL;
        CHECK_MSG(dumped && strstr(dumped, "__global__ void broken( { }") && !strncmp(dumped, "// avgen NVRTC", 14),
                  "no saved source for the failed compile (%s)", err);
        free(dumped);
    }
    const char *missing[] = {"&axpy", "&nothere"};
    CHECK(compile(k_src, NULL, 0, missing, 2, &e, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "nothere");
    rt_cubin_free(&a);
    /* the kernel library the CUDA backend builds: embedded, with its kernel list (the build itself, which fails
     * when a listed name is not found, is compiled once per build by the nvrtc-kernels and jit tests) */
    const char *lib = rt_kernels_library_source();
    CHECK(lib && strstr(lib, "k_layernorm"));
    CHECK(rt_kernels_count() >= 30 && !strcmp(rt_kernels_expr(0), "&k_im2col") && !rt_kernels_expr(rt_kernels_count()));
    {   /* shape lines (rt_kernels_shapes): at the start of a line, three positive integers, head widths 16/32/64,
         * each shape once, at most AVGEN_CUDA_MAX_SHAPES; the name expressions NVRTC gets for them */
        int t[AVGEN_CUDA_MAX_SHAPES][3];
        char why[300];
        CHECK(rt_kernels_shapes("x\nAVGEN_ATTN_SHAPE(64, 197, 12)\n// AVGEN_ATTN_SHAPE(64, 3, 1)\n#define AVGEN_ATTN_SHAPE(a)\n"
                                "AVGEN_ATTN_SHAPE(16,7,2)  \r\n", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == 2);
        CHECK(t[0][0] == 64 && t[0][1] == 197 && t[0][2] == 12 && t[1][0] == 16 && t[1][1] == 7 && t[1][2] == 2);
        CHECK(rt_kernels_shapes("", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == 0);
        CHECK(rt_kernels_shapes("a\nAVGEN_ATTN_SHAPE(64, N, 12)\n", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1);
        CHECK_STR_CONTAINS(why, "line 2, AVGEN_ATTN_SHAPE(64, N, 12): expected AVGEN_ATTN_SHAPE(head width, tokens, heads)");
        CHECK(rt_kernels_shapes("AVGEN_ATTN_SHAPE(64, 0, 12)", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1);
        CHECK(rt_kernels_shapes("AVGEN_ATTN_SHAPE(64, 010, 12)", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1); /* octal in C */
        CHECK(rt_kernels_shapes("x\n\t AVGEN_ATTN_SHAPE(64, 10, 12)", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1);
        CHECK_STR_CONTAINS(why, "line 2: AVGEN_ATTN_SHAPE must start its line");
        CHECK(rt_kernels_shapes("AVGEN_ATTN_SHAPE(64, 5, 12) x", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1);
        CHECK(rt_kernels_shapes("AVGEN_ATTN_SHAPE(64, 5)", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1);
        CHECK(rt_kernels_shapes("AVGEN_ATTN_SHAPE(48, 5, 2)", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1);
        CHECK_STR_CONTAINS(why, "head widths 16, 32 and 64, not 48");
        CHECK(rt_kernels_shapes("AVGEN_ATTN_SHAPE(16, 5, 2)\nAVGEN_ATTN_SHAPE(16, 5, 2)\n", t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1);
        CHECK_STR_CONTAINS(why, "line 2: the shape (16, 5, 2) is named twice");
        char many[2000] = "";
        for (int i = 1; i <= AVGEN_CUDA_MAX_SHAPES + 1; i++) sprintf(many + strlen(many), "AVGEN_ATTN_SHAPE(16, %d, 2)\n", i);
        CHECK(rt_kernels_shapes(many, t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == -1);
        CHECK_STR_CONTAINS(why, "more than 8 AVGEN_ATTN_SHAPE lines");
        char e[64];
        const int v[3] = {64, 49, 12};
        rt_kernels_shape_expr(0, v, e, sizeof e);
        CHECK_MSG(!strcmp(e, "&k_attn_fwd<64, 49, 12>"), "%s", e);
        rt_kernels_shape_expr(AVGEN_CUDA_SHAPE_KERNEL_COUNT - 1, v, e, sizeof e);
        CHECK_MSG(!strcmp(e, "&k_attn_bwd_dkv_bf<64, 49, 12>"), "%s", e);
        /* avgen step's source: the library, then the configuration's lines (none: the library itself) */
        avgen_consts k = {0};
        k.batch = 1, k.frames = 2, k.dim = 768, k.heads = 12, k.tokens_v = 0, k.tokens_a = 49; /* audio only */
        char *ls = rt_kernels_library_for(&k);
        CHECK(ls && !strncmp(ls, lib, strlen(lib)) && rt_kernels_shapes(ls, t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == 1 &&
              t[0][0] == 64 && t[0][1] == 49 && t[0][2] == 12);
        free(ls);
        k.heads = 16; /* head width 48: no fused attention, no lines */
        ls = rt_kernels_library_for(&k);
        CHECK(ls && !strcmp(ls, lib));
        free(ls);
        CHECK(rt_kernels_shapes(lib, t, AVGEN_CUDA_MAX_SHAPES, why, sizeof why) == 0); /* the library names none itself */
    }
    {
        /* A program's own nvcc build (kernels_nvcc.cu): its table must name this runtime's kernels in its order,
         * then each shape's six instances, as an NVRTC build of its kernels.cu requests them. */
        const char **ex = NULL;
        char why[400];
        const int n = rt_kernels_exprs("x\nAVGEN_ATTN_SHAPE(16, 5, 2)\nAVGEN_ATTN_SHAPE(16, 7, 2)\n", &ex, why, sizeof why);
        CHECK(n == rt_kernels_count() + 2 * AVGEN_CUDA_SHAPE_KERNEL_COUNT);
        avgen_kernel_fn *fns = calloc((size_t)n, sizeof *fns);
        static const int32_t shp[2][3] = {{16, 5, 2}, {16, 7, 2}};
        static int dummy;
        for (int i = 0; i < n; i++) fns[i].expr = ex[i], fns[i].fn = &dummy;
        avgen_kernel_table kt = {"fx/kernels.cu", rt_kernels_count(), 2, shp, fns};
        CHECK_MSG(rt_kernels_table_check(&kt, why, sizeof why) == 0, "%s", why);
        char line[400];
        rt_kernels_table_describe(&kt, line, sizeof line);
        CHECK_MSG(strstr(line, "fx/kernels.cu compiled by nvcc into this program") && strstr(line, "12 shape-literal instances "
                                                                                                    "(16, 5, 2), (16, 7, 2)"), "%s", line);
        rt_kernels_table_describe(NULL, line, sizeof line);
        CHECK_MSG(strstr(line, "avgen runtime's copy") && strstr(line, "(64, 197, 12), (64, 49, 12)"), "%s", line);
        /* each way a table can disagree: one sentence naming what */
        kt.n_kernels--;
        CHECK(rt_kernels_table_check(&kt, why, sizeof why) == -1 && strstr(why, "emit the folder again"));
        kt.n_kernels++;
        fns[3].expr = ex[4];
        CHECK_MSG(rt_kernels_table_check(&kt, why, sizeof why) == -1 && strstr(why, "kernel 3 is &k_layernorm<2> where this "
                                                                                  "runtime launches &k_layernorm<1>"), "%s", why);
        fns[3].expr = ex[3];
        fns[n - 1].fn = NULL;
        CHECK(rt_kernels_table_check(&kt, why, sizeof why) == -1);
        fns[n - 1].fn = &dummy;
        kt.shapes = (const int32_t(*)[3])shp + 1; /* the instances name (16, 5, 2) first */
        kt.n_shapes = 1;
        CHECK(rt_kernels_table_check(&kt, why, sizeof why) == -1 && strstr(why, "&k_attn_fwd<16, 5, 2> where this runtime "
                                                                                "launches &k_attn_fwd<16, 7, 2>"));
        static const int32_t bad[1][3] = {{48, 5, 2}};
        kt.shapes = bad;
        CHECK(rt_kernels_table_check(&kt, why, sizeof why) == -1 && strstr(why, "(48, 5, 2)"));
        kt.n_shapes = AVGEN_CUDA_MAX_SHAPES + 1;
        CHECK(rt_kernels_table_check(&kt, why, sizeof why) == -1);
        kt.shapes = shp, kt.n_shapes = 0; /* no instances: the launch list alone is a whole table */
        CHECK(rt_kernels_table_check(&kt, why, sizeof why) == 0);
        CHECK(rt_kernels_table_check(NULL, why, sizeof why) == -1);
        free(fns);
        free(ex);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) return 1;
    return CHECK_DONE();
}
