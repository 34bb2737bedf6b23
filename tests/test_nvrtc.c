/* Run-time CUDA compilation without a GPU: NVRTC (loaded with dlopen) compiles a kernel to a cubin for
 * sm_90; the second request is a cache hit with the same bytes and the source is dumped beside the cubin;
 * other options give another key; a compile error comes back as one sentence with NVRTC's log; a missing
 * NVRTC library is reported, not a crash. Exits 77 (skipped) when NVRTC is not installed.
 * usage: test_nvrtc */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "rt_nvrtc.h"

static const char *k_src =
    "extern \"C\" __global__ void axpy(float a, const float *x, float *y, int n) {\n"
    "    int i = blockIdx.x * blockDim.x + threadIdx.x;\n"
    "    if (i < n) y[i] += a * x[i];\n"
    "}\n";

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
    rt_cubin a, b, c;
    const char *opts[] = {"-DAVGEN_TEST=1"};
    CHECK_MSG(rt_nvrtc_compile(k_src, "axpy.cu", 90, NULL, 0, &a, err, sizeof err) == 0, "%s", err);
    CHECK(a.size > 100 && a.cubin && !memcmp(a.cubin, "\x7f" "ELF", 4) && !a.cache_hit);
    CHECK_MSG(rt_nvrtc_compile(k_src, "axpy.cu", 90, NULL, 0, &b, err, sizeof err) == 0, "%s", err);
    CHECK(b.cache_hit && b.size == a.size && !memcmp(a.cubin, b.cubin, a.size) && b.key == a.key);
    CHECK_MSG(rt_nvrtc_compile(k_src, "axpy.cu", 90, opts, 1, &c, err, sizeof err) == 0, "%s", err);
    CHECK(!c.cache_hit && c.key != a.key);
    printf("compile %.3f s, cache hit %.6f s\n", a.seconds, b.seconds);
    char srcdump[700];
    snprintf(srcdump, sizeof srcdump, "%s/%016llx-sm_90.cu", dir, (unsigned long long)a.key);
    struct stat st;
    CHECK_MSG(stat(srcdump, &st) == 0 && st.st_size > (off_t)strlen(k_src), "no source dump %s", srcdump);
    rt_cubin d;
    CHECK(rt_nvrtc_compile("__global__ void broken( { }", "broken.cu", 90, NULL, 0, &d, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "NVRTC cannot compile broken.cu for sm_90");
    CHECK_STR_CONTAINS(err, "error");
    free(a.cubin), free(b.cubin), free(c.cubin);
    free(a.log), free(b.log), free(c.log);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) return 1;
    return CHECK_DONE();
}
