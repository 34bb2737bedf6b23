/* st_diff.c: see st_diff.h. */
#include "st_diff.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "avgen diff: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see avgen diff --help)\n");
    return 2;
}

int st_diff_main(int argc, char **argv) {
    double rtol = 1e-4, atol = 1e-6;
    int only_common = 0, grad_floor = 0;
    enum { kMaxFor = 16 };
    const char *for_suffix[kMaxFor];
    size_t for_len[kMaxFor];
    double for_rtol[kMaxFor];
    int n_for = 0;
    const char *fa = NULL, *fb = NULL;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            fputs(ST_DIFF_USAGE, stdout);
            return 0;
        } else if (!strcmp(s, "--rtol") || !strcmp(s, "--atol")) {
            char *end;
            double v = i + 1 < argc ? strtod(argv[i + 1], &end) : -1;
            if (i + 1 >= argc || end == argv[i + 1] || *end || !(v >= 0))
                return usage_error("%s needs a non-negative number", s);
            *(!strcmp(s, "--rtol") ? &rtol : &atol) = v;
            i++;
        } else if (!strcmp(s, "--rtol-for")) {
            const char *v = i + 1 < argc ? argv[i + 1] : NULL, *eq = v ? strrchr(v, '=') : NULL;
            char *end;
            const double r = eq ? strtod(eq + 1, &end) : -1;
            if (!eq || eq == v || !eq[1] || *end || !(r >= 0)) return usage_error("%s needs SUFFIX=RTOL", s);
            if (n_for == kMaxFor) return usage_error("%s is given too often (16 at most)", s);
            for_suffix[n_for] = v, for_len[n_for] = (size_t)(eq - v), for_rtol[n_for++] = r;
            i++;
        } else if (!strcmp(s, "--only-common")) {
            only_common = 1;
        } else if (!strcmp(s, "--grad-floor")) {
            grad_floor = 1;
        } else if (s[0] == '-' && s[1]) {
            return usage_error("unknown option %s", s);
        } else if (!fa) fa = s;
        else if (!fb) fb = s;
        else return usage_error("unexpected argument %s", s);
    }
    if (!fb) return usage_error("%s", "two safetensors files are required");
    char err[512];
    st_file *A = st_open(fa, err, sizeof err), *B = A ? st_open(fb, err, sizeof err) : NULL;
    if (!A || !B) {
        fprintf(stderr, "error: %s.\n", err);
        st_close(A);
        return 2;
    }
    int bad = 0, n = 0, missing = 0;
    double worst = 0, grad_rms = 0;
    if (grad_floor) {
        double ss = 0, cnt = 0;
        for (size_t i = 0; i < st_count(B); i++) {
            const st_tensor *t = st_at(B, i);
            if (strncmp(t->name, "grad.", 5) || t->dtype != ST_F32) continue;
            for (int64_t e = 0; e < t->numel; e++) {
                float v;
                memcpy(&v, (const char *)t->data + 4 * e, 4);
                ss += (double)v * v;
            }
            cnt += (double)t->numel;
        }
        grad_rms = cnt > 0 ? sqrt(ss / cnt) : 0;
    }
    const char *worst_name = "";
    for (size_t i = 0; i < st_count(A); i++) {
        const st_tensor *ta = st_at(A, i), *tb = st_find(B, ta->name);
        if (!tb) {
            if (!only_common) printf("  %-60s only in %s\n", ta->name, fa), missing++;
            continue;
        }
        n++;
        int same_shape = ta->ndim == tb->ndim;
        for (int d = 0; same_shape && d < ta->ndim; d++) same_shape = ta->shape[d] == tb->shape[d];
        if (!same_shape) {
            printf("  %-60s shapes differ (%d and %d dimensions, %lld and %lld elements)\n", ta->name, ta->ndim, tb->ndim,
                   (long long)ta->numel, (long long)tb->numel);
            bad++, worst = INFINITY, worst_name = ta->name;
            continue;
        }
        double num = 0, den = 0, maxabs = 0;
        int nonfinite = 0;
        float *va = malloc(sizeof(float) * (size_t)(ta->numel + 1)), *vb = malloc(sizeof(float) * (size_t)(tb->numel + 1));
        if (!va || !vb) { free(va); free(vb); fprintf(stderr, "error: out of memory.\n"); st_close(A); st_close(B); return 1; }
        const int fla = st_to_f32(ta, va) == 0, flb = st_to_f32(tb, vb) == 0;
        if (fla != flb) { /* a floating-point tensor against an integer one: not the same data */
            printf("  %-60s dtypes differ (%s and %s)\n", ta->name, st_dtype_name(ta->dtype), st_dtype_name(tb->dtype));
            free(va);
            free(vb);
            bad++, worst = INFINITY, worst_name = ta->name;
            continue;
        }
        if (!fla) {
            for (int64_t e = 0; e < ta->numel; e++) { /* integers: compare as int64 */
                int64_t x = 0, y = 0;
                memcpy(&x, (const char *)ta->data + e * st_dtype_size(ta->dtype), st_dtype_size(ta->dtype) < 8 ? st_dtype_size(ta->dtype) : 8);
                memcpy(&y, (const char *)tb->data + e * st_dtype_size(tb->dtype), st_dtype_size(tb->dtype) < 8 ? st_dtype_size(tb->dtype) : 8);
                va[e] = (float)x, vb[e] = (float)y;
            }
        }
        for (int64_t e = 0; e < ta->numel; e++) {
            if (!isfinite(va[e]) || !isfinite(vb[e])) nonfinite++;
            double d = (double)va[e] - vb[e];
            num += d * d, den += (double)vb[e] * vb[e];
            if (fabs(d) > maxabs) maxabs = fabs(d);
        }
        free(va);
        free(vb);
        double floor_ = fmax(atol, grad_rms) * sqrt((double)(ta->numel ? ta->numel : 1));
        double rel = nonfinite ? INFINITY : sqrt(num) / fmax(sqrt(den), floor_ > 0 ? floor_ : 1e-300);
        double tol = rtol;  // the last --rtol-for whose suffix ends the name, else --rtol
        const size_t nl = strlen(ta->name);
        for (int f = 0; f < n_for; f++)
            if (nl >= for_len[f] && !memcmp(ta->name + nl - for_len[f], for_suffix[f], for_len[f])) tol = for_rtol[f];
        int ok = !nonfinite && rel <= tol;
        if (!ok) bad++;
        if (!ok || rel > worst) {
            if (rel > worst) worst = rel, worst_name = ta->name;
        }
        if (!ok) printf("  %-60s rel %.3e  max abs %.3e%s  DIFFERS\n", ta->name, rel, maxabs, nonfinite ? "  non-finite" : "");
    }
    for (size_t i = 0; !only_common && i < st_count(B); i++)
        if (!st_find(A, st_at(B, i)->name)) printf("  %-60s only in %s\n", st_at(B, i)->name, fb), missing++;
    printf("%d tensors compared: %d differ (rtol %g, floor %g per element), %d in one file only; worst %.3e (%s)\n", n,
           bad, rtol, fmax(atol, grad_rms), missing, worst, worst_name);
    st_close(A);
    st_close(B);
    return bad || (!only_common && missing) || n == 0 ? 1 : 0;
}
