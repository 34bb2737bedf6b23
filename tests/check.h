/* Minimal test harness for avgen's C tests: CHECK* macros count failures and print where they happen;
 * CHECK_DONE() prints "N passed, M failed" and returns the exit status (non-zero on any failure).
 * Header-only so each test is one self-contained executable registered in CTest. */
#ifndef AVGEN_TESTS_CHECK_H
#define AVGEN_TESTS_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed_, check_failed_;

#define CHECK(cond) do { if (cond) check_passed_++; else { check_failed_++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)
#define CHECK_MSG(cond, ...) do { if (cond) check_passed_++; else { check_failed_++; \
    fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)
#define CHECK_EQ_I64(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    CHECK_MSG(a_ == b_, "%s = %lld, expected %s = %lld", #a, a_, #b, b_); } while (0)
#define CHECK_STR_CONTAINS(hay, needle) do { const char *h_ = (hay), *n_ = (needle); \
    CHECK_MSG(h_ && strstr(h_, n_), "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); } while (0)
#define CHECK_DONE() (printf("%d passed, %d failed\n", check_passed_, check_failed_), check_failed_ != 0)

/* A whole file as a NUL-terminated string (malloc'd), or NULL. */
static inline char *check_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? (char *)malloc((size_t)n + 1) : NULL;
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    if (b) b[n] = 0;
    fclose(f);
    return b;
}
#endif
