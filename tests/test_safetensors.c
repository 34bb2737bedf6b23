/* test_safetensors.c: tests runtime/safetensors.{h,c}: dtype helpers, bf16/f16 conversions (exhaustive),
 * writer -> reader round trips of every dtype with awkward shapes, byte-exact compatibility with the
 * reference writer, metadata, prefix lookup, the committed fixtures (directory given as argv[1]), a table
 * of malformed files (one per validation rule), truncation and byte-mutation sweeps, and writer errors.
 * Usage: test_safetensors [FIXTURE_DIR]; temp files live in a mkdtemp directory under $TMPDIR or /tmp. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "safetensors.h"
#include "check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[512];

static const char *tpath(char *buf, const char *name) {
    snprintf(buf, 1024, "%s/%s", g_dir, name);
    return buf;
}

static int write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(len > 0 ? (size_t)len : 1);
    if (p && fread(p, 1, (size_t)len, f) != (size_t)len) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return p;
}

/* 8-byte little-endian length + header + data_len bytes of 0xAB */
static int write_st(const char *path, const char *hdr, size_t hlen, size_t data_len) {
    size_t n = 8 + hlen + data_len;
    unsigned char *p = malloc(n);
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(p + 8, hdr, hlen);
    memset(p + 8 + hlen, 0xAB, data_len);
    int rc = write_bytes(path, p, n);
    free(p);
    return rc;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double dabs(double x) { return x < 0 ? -x : x; } /* no libm needed */
static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static int count_tmp_files(void) {
    DIR *d = opendir(g_dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) n++;
    if (d) closedir(d);
    return n;
}

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) remove_tree(p);
        else unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

/* ------------------------------------------------------------------ dtypes and conversions */

static void test_dtypes(void) {
    static const struct { st_dtype d; const char *name; size_t size; } t[] = {
        {ST_F32, "F32", 4}, {ST_BF16, "BF16", 2}, {ST_F16, "F16", 2}, {ST_F64, "F64", 8},
        {ST_I64, "I64", 8}, {ST_I32, "I32", 4},   {ST_U8, "U8", 1},   {ST_BOOL, "BOOL", 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        st_dtype d = (st_dtype)99;
        CHECK_EQ_I64(st_dtype_size(t[i].d), t[i].size);
        CHECK(strcmp(st_dtype_name(t[i].d), t[i].name) == 0);
        CHECK(st_dtype_parse(t[i].name, &d) == 0 && d == t[i].d);
    }
    st_dtype d;
    CHECK(st_dtype_parse("f32", &d) == -1);
    CHECK(st_dtype_parse("F8_E4M3", &d) == -1);
    CHECK(st_dtype_parse("", &d) == -1);
    CHECK(st_dtype_parse(NULL, &d) == -1);
    CHECK_EQ_I64(st_dtype_size((st_dtype)42), 0);
    CHECK(strcmp(st_dtype_name((st_dtype)42), "?") == 0);
}

/* reference bf16 rounding by comparing distances in double (independent of the bit trick) */
static uint16_t bf16_ref(float f) {
    uint32_t u = f2u(f);
    uint16_t lo = (uint16_t)(u >> 16), hi = (uint16_t)(lo + 1);
    double x = dabs((double)f), vlo = dabs((double)st_bf16_to_f32(lo));
    double vhi = (hi & 0x7fff) == 0x7f80 ? 0x1p128 : dabs((double)st_bf16_to_f32(hi));
    if ((u & 0xffff) == 0) return lo;
    double dlo = x - vlo, dhi = vhi - x;
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1) ? hi : lo;
}

static void test_bf16(void) {
    static const struct { float f; uint16_t h; } exact[] = {
        {0.0f, 0x0000}, {1.0f, 0x3F80}, {-2.0f, 0xC000}, {0.5f, 0x3F00}, {3.140625f, 0x4049},
        {-3.0f, 0xC040}, {65536.0f, 0x4780}, {0x1.fep127f, 0x7F7F}, {0x1p-133f, 0x0001},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++) {
        CHECK_MSG(st_f32_to_bf16(exact[i].f) == exact[i].h, "bf16(%g) = 0x%04x, expected 0x%04x",
                  (double)exact[i].f, st_f32_to_bf16(exact[i].f), exact[i].h);
        CHECK(f2u(st_bf16_to_f32(exact[i].h)) == f2u(exact[i].f));
    }
    CHECK_EQ_I64(st_f32_to_bf16(-0.0f), 0x8000);
    CHECK(signbit(st_bf16_to_f32(0x8000)) && st_bf16_to_f32(0x8000) == 0.0f);
    /* round to nearest even */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x3F808000)), 0x3F80); /* tie, 0x3F80 even: down */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x3F818000)), 0x3F82); /* tie, 0x3F81 odd: up */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x3F808001)), 0x3F81); /* just above the tie */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x3F807FFF)), 0x3F80); /* just below the tie */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0xBF818000)), 0xBF82); /* negative tie rounds the magnitude */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x3FFFFFFF)), 0x4000); /* carry into the exponent */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x00008000)), 0x0000); /* subnormal tie to even zero */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x00018000)), 0x0002);
    /* Inf and overflow */
    CHECK_EQ_I64(st_f32_to_bf16(INFINITY), 0x7F80);
    CHECK_EQ_I64(st_f32_to_bf16(-INFINITY), 0xFF80);
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x7F7FFFFF)), 0x7F80); /* FLT_MAX rounds to +Inf */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x7F7F7FFF)), 0x7F7F);
    CHECK(isinf(st_bf16_to_f32(0x7F80)) && st_bf16_to_f32(0x7F80) > 0);
    CHECK(isinf(st_bf16_to_f32(0xFF80)) && st_bf16_to_f32(0xFF80) < 0);
    /* NaN stays NaN, including payloads that a naive rounding would turn into Inf or carry into the sign */
    CHECK_EQ_I64(st_f32_to_bf16(u2f(0x7FC00000)), 0x7FC0);
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(u2f(0x7F800001)))));
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(u2f(0x7FFFFFFF)))));
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(u2f(0xFF800001)))));
    CHECK(st_f32_to_bf16(u2f(0xFF800001)) & 0x8000);
    CHECK(isnan(st_bf16_to_f32(0x7FC0)) && isnan(st_bf16_to_f32(0x7F81)) && isnan(st_bf16_to_f32(0xFFFF)));
    /* exhaustive: every bf16 converts to f32 and back unchanged (NaNs come back quieted) */
    int bad = 0;
    for (uint32_t h = 0; h <= 0xFFFF; h++) {
        float f = st_bf16_to_f32((uint16_t)h);
        uint16_t back = st_f32_to_bf16(f);
        if (isnan(f) ? back != (h | 0x40) : back != h) bad++;
    }
    CHECK_EQ_I64(bad, 0);
    /* random f32 bit patterns against the distance-based reference */
    bad = 0;
    for (int i = 0; i < 1000000; i++) {
        float f = u2f((uint32_t)rng());
        uint16_t got = st_f32_to_bf16(f);
        if (isnan(f) ? !isnan(st_bf16_to_f32(got)) || (got >> 15) != (f2u(f) >> 31) : got != bf16_ref(f)) bad++;
    }
    CHECK_EQ_I64(bad, 0);
}

static double f16_ref(uint16_t h) {
    int e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = m / 16777216.0;
    else {
        v = 1024 + m;
        for (int p = e - 25; p > 0; p--) v *= 2;
        for (int p = e - 25; p < 0; p++) v /= 2;
    }
    return (h & 0x8000) ? -v : v;
}

static void test_f16(void) {
    CHECK(st_f16_to_f32(0x3C00) == 1.0f);
    CHECK(st_f16_to_f32(0xC000) == -2.0f);
    CHECK(st_f16_to_f32(0x7BFF) == 65504.0f);
    CHECK(st_f16_to_f32(0x0400) == 0x1p-14f);       /* smallest normal */
    CHECK(st_f16_to_f32(0x0001) == 0x1p-24f);       /* smallest subnormal */
    CHECK(st_f16_to_f32(0x03FF) == 1023 * 0x1p-24f); /* largest subnormal */
    CHECK(st_f16_to_f32(0x3555) == 0.333251953125f);
    CHECK(st_f16_to_f32(0x0000) == 0.0f && !signbit(st_f16_to_f32(0x0000)));
    CHECK(st_f16_to_f32(0x8000) == 0.0f && signbit(st_f16_to_f32(0x8000)));
    CHECK(st_f16_to_f32(0x8001) == -0x1p-24f);
    CHECK(isinf(st_f16_to_f32(0x7C00)) && st_f16_to_f32(0x7C00) > 0);
    CHECK(isinf(st_f16_to_f32(0xFC00)) && st_f16_to_f32(0xFC00) < 0);
    CHECK(isnan(st_f16_to_f32(0x7E00)) && isnan(st_f16_to_f32(0x7C01)) && isnan(st_f16_to_f32(0xFFFF)));
    int bad = 0;
    for (uint32_t h = 0; h <= 0xFFFF; h++) {
        float f = st_f16_to_f32((uint16_t)h);
        if (((h >> 10) & 31) == 31) {
            if ((h & 1023) ? !isnan(f) : !isinf(f)) bad++;
        } else if ((double)f != f16_ref((uint16_t)h) || !!signbit(f) != !!(h & 0x8000)) {
            bad++;
        }
    }
    CHECK_EQ_I64(bad, 0);
}

/* ------------------------------------------------------------------ round trips */

static const st_dtype all_dtypes[] = {ST_F32, ST_BF16, ST_F16, ST_F64, ST_I64, ST_I32, ST_U8, ST_BOOL};
#define NDT (sizeof all_dtypes / sizeof all_dtypes[0])
static const struct { const char *tag; int ndim; int64_t shape[4]; int64_t numel; } shapes[] = {
    {"scalar", 0, {0}, 1}, {"empty", 1, {0}, 0}, {"197x49", 2, {197, 49}, 197 * 49}, {"3x1x1x5", 4, {3, 1, 1, 5}, 15},
};
#define NSH (sizeof shapes / sizeof shapes[0])

static void test_roundtrip(void) {
    char path[1024], err[512];
    unsigned char *data[NDT][NSH];
    char names[NDT][NSH][64];
    st_writer *w = st_writer_new();
    CHECK(w != NULL);
    /* added in reverse order to check that the writer sorts */
    for (size_t di = NDT; di-- > 0;)
        for (size_t si = NSH; si-- > 0;) {
            st_dtype d = all_dtypes[di];
            size_t nb = (size_t)shapes[si].numel * st_dtype_size(d);
            data[di][si] = malloc(nb ? nb : 1);
            for (size_t k = 0; k < nb; k++) data[di][si][k] = (unsigned char)(d == ST_BOOL ? rng() & 1 : rng());
            snprintf(names[di][si], sizeof names[di][si], "t.%s.%s", st_dtype_name(d), shapes[si].tag);
            int rc = st_writer_add(w, names[di][si], d, shapes[si].ndim, shapes[si].shape, data[di][si], err, sizeof err);
            CHECK_MSG(rc == 0, "%s", err);
        }
    CHECK(st_writer_metadata(w, "format", "pt") == 0);
    tpath(path, "roundtrip.safetensors");
    CHECK_MSG(st_writer_write(w, path, err, sizeof err) == 0, "%s", err);
    CHECK_EQ_I64(count_tmp_files(), 0);
    /* raw layout: names sorted in the header, padded to 8 with spaces, data contiguous to the end */
    size_t fsz;
    unsigned char *raw = read_bytes(path, &fsz);
    CHECK(raw != NULL && fsz > 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    CHECK_EQ_I64(hlen % 8, 0);
    char *hdr = malloc(hlen + 1);
    memcpy(hdr, raw + 8, hlen);
    hdr[hlen] = 0;
    size_t jend = hlen;
    while (jend > 0 && hdr[jend - 1] == ' ') jend--;
    CHECK(jend > 0 && hdr[jend - 1] == '}' && hlen - jend < 8);
    CHECK(strncmp(hdr, "{\"__metadata__\":{\"format\":\"pt\"},", 32) == 0);
    const char *prev_pos = NULL, *prev_name = NULL;
    int sorted = 1;
    uint64_t total = 0;
    for (size_t di = 0; di < NDT; di++)
        for (size_t si = 0; si < NSH; si++) total += (uint64_t)shapes[si].numel * st_dtype_size(all_dtypes[di]);
    CHECK_EQ_I64(fsz, 8 + hlen + total);
    /* walk names in strcmp order; their header positions must increase */
    const char *order[NDT * NSH];
    size_t no = 0;
    for (size_t di = 0; di < NDT; di++)
        for (size_t si = 0; si < NSH; si++) order[no++] = names[di][si];
    for (size_t i = 1; i < no; i++)
        for (size_t j = i; j > 0 && strcmp(order[j - 1], order[j]) > 0; j--) {
            const char *t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    for (size_t i = 0; i < no; i++) {
        char key[80];
        snprintf(key, sizeof key, "\"%s\":{", order[i]);
        const char *pos = strstr(hdr, key);
        if (!pos || (prev_pos && pos < prev_pos)) sorted = 0;
        prev_pos = pos;
        prev_name = order[i];
    }
    (void)prev_name;
    CHECK_MSG(sorted, "tensor names are not sorted in the header");
    free(hdr);

    st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (f) {
        CHECK_EQ_I64(st_count(f), NDT * NSH);
        CHECK(st_at(f, st_count(f)) == NULL);
        CHECK(strcmp(st_metadata(f, "format"), "pt") == 0);
        for (size_t di = 0; di < NDT; di++)
            for (size_t si = 0; si < NSH; si++) {
                const st_tensor *t = st_find(f, names[di][si]);
                st_dtype d = all_dtypes[di];
                CHECK_MSG(t != NULL, "missing %s", names[di][si]);
                if (!t) continue;
                CHECK(strcmp(t->name, names[di][si]) == 0);
                CHECK(t->dtype == d);
                CHECK_EQ_I64(t->ndim, shapes[si].ndim);
                for (int k = 0; k < t->ndim; k++) CHECK_EQ_I64(t->shape[k], shapes[si].shape[k]);
                CHECK_EQ_I64(t->numel, shapes[si].numel);
                CHECK_EQ_I64(t->nbytes, (uint64_t)shapes[si].numel * st_dtype_size(d));
                CHECK_MSG(t->nbytes == 0 || memcmp(t->data, data[di][si], t->nbytes) == 0, "data of %s differs", t->name);
                float *out = malloc(((size_t)t->numel + 1) * sizeof *out);
                int rc = st_to_f32(t, out);
                if (d == ST_F32 || d == ST_BF16 || d == ST_F16 || d == ST_F64) {
                    CHECK(rc == 0);
                    int bad = 0;
                    for (int64_t k = 0; k < t->numel; k++) {
                        const unsigned char *p = data[di][si];
                        float want;
                        uint16_t h;
                        double x;
                        if (d == ST_F32) memcpy(&want, p + 4 * k, 4);
                        else if (d == ST_F64) { memcpy(&x, p + 8 * k, 8); want = (float)x; }
                        else { memcpy(&h, p + 2 * k, 2); want = d == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h); }
                        if (isnan(want) ? !isnan(out[k]) : (d == ST_F64 ? want != out[k] : f2u(want) != f2u(out[k])))
                            bad++;
                    }
                    CHECK_MSG(bad == 0, "%s: %d elements differ after st_to_f32", t->name, bad);
                } else {
                    CHECK(rc == -1);
                }
                free(out);
            }
        /* st_at: data offsets non-decreasing, every tensor reachable once */
        int ordered = 1;
        const unsigned char *last = NULL;
        for (size_t i = 0; i < st_count(f); i++) {
            const unsigned char *p = st_at(f, i)->data;
            if (last && p < last) ordered = 0;
            last = p;
            CHECK(st_find(f, st_at(f, i)->name) == st_at(f, i));
        }
        CHECK(ordered);
        CHECK(st_find(f, "t.F32") == NULL && st_find(f, "") == NULL && st_find(f, "zzz") == NULL);
        st_close(f);
    }
    /* writing again gives the same bytes */
    char path2[1024];
    tpath(path2, "roundtrip2.safetensors");
    CHECK(st_writer_write(w, path2, err, sizeof err) == 0);
    size_t fsz2;
    unsigned char *raw2 = read_bytes(path2, &fsz2);
    CHECK(raw2 && fsz2 == fsz && memcmp(raw, raw2, fsz) == 0);
    free(raw);
    free(raw2);
    st_writer_free(w);
    for (size_t di = 0; di < NDT; di++)
        for (size_t si = 0; si < NSH; si++) free(data[di][si]);
}

/* The writer must produce exactly what the reference implementation produces (its unit tests' bytes). */
static void check_file_bytes(const char *path, const char *hdr, const void *data, size_t dlen) {
    size_t hlen = strlen(hdr), n;
    unsigned char *raw = read_bytes(path, &n);
    CHECK_EQ_I64(n, 8 + hlen + dlen);
    if (!raw || n != 8 + hlen + dlen) { free(raw); return; }
    CHECK_EQ_I64(raw[0] | raw[1] << 8, hlen);
    CHECK(memcmp(raw + 2, "\0\0\0\0\0\0", 6) == 0);
    CHECK_MSG(memcmp(raw + 8, hdr, hlen) == 0, "header is \"%.*s\", expected \"%s\"", (int)hlen, (char *)raw + 8, hdr);
    CHECK(dlen == 0 || memcmp(raw + 8 + hlen, data, dlen) == 0);
    free(raw);
}

static void test_reference_bytes(void) {
    char path[1024], err[512];
    tpath(path, "ref.safetensors");
    st_writer *w = st_writer_new();
    CHECK(st_writer_write(w, path, err, sizeof err) == 0);
    check_file_bytes(path, "{}      ", NULL, 0);
    st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f && st_count(f) == 0 && st_metadata_count(f) == 0, "%s", err);
    st_close(f);
    CHECK(st_writer_metadata(w, "framework", "pt") == 0);
    CHECK(st_writer_write(w, path, err, sizeof err) == 0);
    check_file_bytes(path, "{\"__metadata__\":{\"framework\":\"pt\"}}     ", NULL, 0);
    st_writer_free(w);

    float v[6] = {0, 1, 2, 3, 4, 5};
    w = st_writer_new();
    CHECK(st_writer_add(w, "attn0", ST_F32, 4, (const int64_t[]){1, 1, 2, 3}, v, err, sizeof err) == 0);
    CHECK(st_writer_write(w, path, err, sizeof err) == 0);
    check_file_bytes(path, "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ", v, 24);
    st_writer_free(w);
}

static void test_metadata(void) {
    char path[1024], err[512];
    tpath(path, "meta.safetensors");
    st_writer *w = st_writer_new();
    uint8_t b = 1;
    CHECK(st_writer_add(w, "x", ST_U8, 1, (const int64_t[]){1}, &b, err, sizeof err) == 0);
    CHECK(st_writer_metadata(w, "zeta", "last") == 0);
    CHECK(st_writer_metadata(w, "format", "np") == 0);
    CHECK(st_writer_metadata(w, "format", "pt") == 0); /* replaces */
    CHECK(st_writer_metadata(w, "quote\"back\\slash", "tab\tnewline\n\x01 ctl") == 0);
    CHECK(st_writer_metadata(w, "unicode", "h\xc3\xa9llo \xe2\x9c\x93") == 0);
    CHECK(st_writer_metadata(w, "empty", "") == 0);
    CHECK(st_writer_metadata(w, "bad", "\xff") == -1); /* not UTF-8 */
    CHECK(st_writer_metadata(w, NULL, "x") == -1);
    CHECK(st_writer_write(w, path, err, sizeof err) == 0);
    st_writer_free(w);
    st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (!f) return;
    CHECK_EQ_I64(st_metadata_count(f), 5);
    CHECK(strcmp(st_metadata(f, "format"), "pt") == 0);
    CHECK(strcmp(st_metadata(f, "zeta"), "last") == 0);
    CHECK(strcmp(st_metadata(f, "quote\"back\\slash"), "tab\tnewline\n\x01 ctl") == 0);
    CHECK(strcmp(st_metadata(f, "unicode"), "h\xc3\xa9llo \xe2\x9c\x93") == 0);
    CHECK(strcmp(st_metadata(f, "empty"), "") == 0);
    CHECK(st_metadata(f, "bad") == NULL && st_metadata(f, "missing") == NULL && st_metadata(f, NULL) == NULL);
    CHECK(strcmp(st_metadata_key(f, 0), "empty") == 0 && strcmp(st_metadata_key(f, 4), "zeta") == 0);
    CHECK(st_metadata_key(f, 5) == NULL);
    st_close(f);
}

static void test_prefix(void) {
    char path[1024], err[512];
    tpath(path, "prefix.safetensors");
    float a = 1, b = 2, c = 3, d = 4, e = 5;
    st_writer *w = st_writer_new();
    CHECK(st_writer_add(w, "vit.embeddings.patch_embeddings.projection.weight", ST_F32, 0, NULL, &a, err, sizeof err) == 0);
    CHECK(st_writer_add(w, "encoder.layer.0.output.dense.bias", ST_F32, 0, NULL, &b, err, sizeof err) == 0);
    CHECK(st_writer_add(w, "classifier.weight", ST_F32, 0, NULL, &c, err, sizeof err) == 0);
    CHECK(st_writer_add(w, "vit.layernorm.weight", ST_F32, 0, NULL, &d, err, sizeof err) == 0);
    CHECK(st_writer_add(w, "layernorm.weight", ST_F32, 0, NULL, &e, err, sizeof err) == 0);
    CHECK(st_writer_write(w, path, err, sizeof err) == 0);
    st_writer_free(w);
    st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (!f) return;
    const st_tensor *t;
    float v;
#define VAL(t) (memcpy(&v, (t)->data, 4), v)
    t = st_find_any_prefix(f, "embeddings.patch_embeddings.projection.weight"); /* "vit." added */
    CHECK(t && VAL(t) == 1);
    t = st_find_any_prefix(f, "vit.embeddings.patch_embeddings.projection.weight"); /* as given */
    CHECK(t && VAL(t) == 1);
    t = st_find_any_prefix(f, "vit.encoder.layer.0.output.dense.bias"); /* "vit." removed */
    CHECK(t && VAL(t) == 2);
    t = st_find_any_prefix(f, "encoder.layer.0.output.dense.bias");
    CHECK(t && VAL(t) == 2);
    t = st_find_any_prefix(f, "classifier.weight");
    CHECK(t && VAL(t) == 3);
    t = st_find_any_prefix(f, "layernorm.weight"); /* both exist: the exact name wins */
    CHECK(t && VAL(t) == 5);
    t = st_find_any_prefix(f, "vit.layernorm.weight");
    CHECK(t && VAL(t) == 4);
    CHECK(st_find(f, "embeddings.patch_embeddings.projection.weight") == NULL);
    CHECK(st_find_any_prefix(f, "vit.") == NULL);
    CHECK(st_find_any_prefix(f, "") == NULL);
    t = st_find_any_prefix(f, "vit.vit.layernorm.weight"); /* only one "vit." is removed */
    CHECK(t && VAL(t) == 4);
    CHECK(st_find_any_prefix(f, "vit.vit.classifier.weight") == NULL);
    CHECK(st_find_any_prefix(f, "missing") == NULL);
    CHECK(st_find_any_prefix(f, NULL) == NULL);
#undef VAL
    st_close(f);
}

/* ------------------------------------------------------------------ fixtures */

static void test_fixtures(const char *dir) {
    char path[1024], err[512];
    float out[8];
    snprintf(path, sizeof path, "%s/pytorch_style.safetensors", dir);
    st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (f) {
        static const char *order[] = {"ids", "std", "empty", "vit.cls_token", "vit.ln.weight", "head.bias", "mask"};
        CHECK_EQ_I64(st_count(f), 7);
        for (size_t i = 0; i < 7 && i < st_count(f); i++)
            CHECK_MSG(strcmp(st_at(f, i)->name, order[i]) == 0, "st_at(%zu) = %s, expected %s", i, st_at(f, i)->name, order[i]);
        CHECK(strcmp(st_metadata(f, "format"), "pt") == 0);
        const st_tensor *t = st_find(f, "ids");
        int64_t ids[2];
        CHECK(t && t->dtype == ST_I64 && t->ndim == 1 && t->shape[0] == 2 && t->nbytes == 16);
        if (t) { memcpy(ids, t->data, 16); CHECK(ids[0] == 7 && ids[1] == -9); }
        CHECK(t && st_to_f32(t, out) == -1);
        t = st_find(f, "std");
        CHECK(t && t->dtype == ST_F64 && t->ndim == 0 && t->numel == 1 && st_to_f32(t, out) == 0 && out[0] == 0.25f);
        t = st_find(f, "empty");
        CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->shape[1] == 2 && t->numel == 0 && t->nbytes == 0);
        CHECK(t && st_to_f32(t, out) == 0);
        t = st_find_any_prefix(f, "cls_token");
        CHECK(t && t->dtype == ST_F32 && st_to_f32(t, out) == 0 && out[0] == 0.5f && out[1] == -1.25f);
        t = st_find_any_prefix(f, "ln.weight");
        CHECK(t && t->dtype == ST_BF16 && st_to_f32(t, out) == 0 && out[0] == 1.0f && out[1] == -3.0f &&
              isinf(out[2]) && out[2] > 0);
        t = st_find(f, "head.bias");
        CHECK(t && t->dtype == ST_F16 && st_to_f32(t, out) == 0 && out[0] == 1.0f && out[1] == 0x1p-24f);
        t = st_find(f, "mask");
        CHECK(t && t->dtype == ST_BOOL && t->nbytes == 3 && memcmp(t->data, "\1\0\1", 3) == 0);
        CHECK(t && st_to_f32(t, out) == -1);
        st_close(f);
    }
    snprintf(path, sizeof path, "%s/unaligned.safetensors", dir);
    f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL, "%s", err);
    if (f) {
        CHECK_EQ_I64(st_count(f), 4);
        const st_tensor *t = st_find(f, "a");
        CHECK(t && ((uintptr_t)t->data & 1) != 0); /* really misaligned */
        CHECK(t && st_to_f32(t, out) == 0 && out[0] == 1.5f && out[1] == -2.0f && out[2] == 1e-3f);
        t = st_find(f, "b");
        CHECK(t && st_to_f32(t, out) == 0 && out[0] == 3.25f && out[1] == 0.0f && signbit(out[1]));
        t = st_find(f, "c");
        CHECK(t && st_to_f32(t, out) == 0 && out[0] == 3.140625f && isnan(out[1]));
        t = st_find(f, "d");
        CHECK(t && st_to_f32(t, out) == 0 && out[0] == -2.0f && out[1] == 65504.0f);
        st_close(f);
    }
}

/* ------------------------------------------------------------------ malformed files */

typedef struct {
    const char *hdr;     /* JSON header text */
    size_t hlen;         /* 0: strlen(hdr) */
    size_t data_len;     /* bytes after the header */
    const char *expect;  /* substring of the error */
} bad_case;

#define T1(dt, shape, offs) "{\"a\":{\"dtype\":" dt ",\"shape\":" shape ",\"data_offsets\":" offs "}}"

static const bad_case bad_cases[] = {
    /* header not JSON / not an object */
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 0, 4, "not valid JSON"},
    {"not json", 0, 0, "not valid JSON"},
    {"{\"a\" 1}", 0, 0, "not valid JSON"},
    {"{\"a\":1,}", 0, 0, "not valid JSON"},
    {"{\"a\xff\":{}}", 0, 0, "not valid JSON"},
    {"[1,2]", 0, 0, "header is a JSON array, not a JSON object"},
    {"\"str\"  ", 0, 0, "header is a JSON string, not a JSON object"},
    {"{} x", 0, 0, "unexpected data after the JSON object"},
    {"{}\0\0\0\0\0\0", 8, 0, "unexpected data after the JSON object"},
    {"{}{}", 0, 0, "unexpected data after the JSON object"},
    /* entries */
    {"{\"a\":1}", 0, 0, "tensor \"a\": entry is a JSON int, expected an object"},
    {"{\"a\":[]}", 0, 0, "tensor \"a\": entry is a JSON array, expected an object"},
    {"{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "missing \"dtype\""},
    {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 0, 4, "missing \"shape\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, 4, "missing \"data_offsets\""},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":1}}", 0, 4, "unexpected key \"extra\""},
    /* dtype */
    {T1("\"F8_E4M3\"", "[1]", "[0,1]"), 0, 1, "unknown dtype \"F8_E4M3\""},
    {T1("\"f32\"", "[1]", "[0,4]"), 0, 4, "unknown dtype \"f32\""},
    {T1("5", "[1]", "[0,4]"), 0, 4, "dtype is not a string"},
    /* shape */
    {T1("\"F32\"", "\"2\"", "[0,8]"), 0, 8, "shape is not an array"},
    {T1("\"F32\"", "[-1]", "[0,0]"), 0, 0, "shape[0] is not a non-negative integer"},
    {T1("\"F32\"", "[1,2.0]", "[0,8]"), 0, 8, "shape[1] is not a non-negative integer"},
    {T1("\"F32\"", "[true]", "[0,4]"), 0, 4, "shape[0] is not a non-negative integer"},
    {T1("\"F32\"", "[null]", "[0,4]"), 0, 4, "shape[0] is not a non-negative integer"},
    {T1("\"F32\"", "[NaN]", "[0,4]"), 0, 4, "shape[0] is not a non-negative integer"},
    {T1("\"F32\"", "[9223372036854775807]", "[0,4]"), 0, 4, "shape[0] is not a non-negative integer below 2^63"},
    {T1("\"F32\"", "[18446744073709551616]", "[0,4]"), 0, 4, "shape[0] is not a non-negative integer below 2^63"},
    {T1("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0,4]"), 0, 4, "shape has 9 dimensions, more than the maximum of 8"},
    {T1("\"I64\"", "[4294967296,4294967296]", "[0,0]"), 0, 0, "shape is too large (element count times I64 size overflows 64 bits)"},
    {T1("\"F64\"", "[1152921504606846976]", "[0,0]"), 0, 0, "overflows 64 bits"},
    {T1("\"U8\"", "[4294967296,4294967296,0]", "[0,0]"), 0, 0, "overflows 64 bits"},
    /* data_offsets */
    {T1("\"F32\"", "[1]", "\"0,4\""), 0, 4, "data_offsets is not an array of two integers"},
    {T1("\"F32\"", "[1]", "[4]"), 0, 4, "data_offsets is not an array of two integers"},
    {T1("\"F32\"", "[1]", "[0,4,8]"), 0, 8, "data_offsets is not an array of two integers"},
    {T1("\"F32\"", "[1]", "[-4,0]"), 0, 4, "data_offsets is not a pair of non-negative integers"},
    {T1("\"F32\"", "[1]", "[0,4.0]"), 0, 4, "data_offsets is not a pair of non-negative integers"},
    {T1("\"F32\"", "[1]", "[0,\"4\"]"), 0, 4, "data_offsets is not a pair of non-negative integers"},
    {T1("\"F32\"", "[1]", "[0,18446744073709551615]"), 0, 4, "data_offsets is not a pair of non-negative integers"},
    {T1("\"F32\"", "[0]", "[8,4]"), 0, 8, "data_offsets begin 8 is greater than end 4"},
    {T1("\"F32\"", "[2]", "[0,8]"), 0, 4, "data_offsets end 8 is beyond the data buffer of 4 bytes"},
    {T1("\"F32\"", "[1]", "[9223372036854775800,9223372036854775804]"), 0, 4, "is beyond the data buffer of 4 bytes"},
    {T1("\"F32\"", "[0]", "[5,5]"), 0, 4, "data_offsets end 5 is beyond the data buffer"},
    {T1("\"F32\"", "[3]", "[0,8]"), 0, 12, "data_offsets span 8 bytes but shape [3] of F32 needs 12 bytes"},
    {T1("\"BF16\"", "[2,3]", "[0,24]"), 0, 24, "data_offsets span 24 bytes but shape [2,3] of BF16 needs 12 bytes"},
    {T1("\"F32\"", "[]", "[0,0]"), 0, 4, "data_offsets span 0 bytes but shape [] of F32 needs 4 bytes"},
    {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 0, 12, "tensors \"a\" [0, 8) and \"b\" [4, 12) overlap"},
    {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
     "\"b\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4, "overlap in the data buffer"},
    {"{\"big\":{\"dtype\":\"U8\",\"shape\":[10],\"data_offsets\":[0,10]},\"a\":{\"dtype\":\"U8\",\"shape\":[1],"
     "\"data_offsets\":[2,3]},\"c\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]}}", 0, 10,
     "tensors \"big\" [0, 10) and \"a\" [2, 3) overlap"},
    /* __metadata__ */
    {"{\"__metadata__\":\"x\"}", 0, 0, "__metadata__ is a JSON string, expected an object of strings"},
    {"{\"__metadata__\":[\"x\"]}", 0, 0, "__metadata__ is a JSON array, expected an object of strings"},
    {"{\"__metadata__\":{\"k\":1}}", 0, 0, "__metadata__ value for key \"k\" is a JSON int, expected a string"},
    {"{\"__metadata__\":{\"k\":{\"n\":\"v\"}}}", 0, 0, "__metadata__ value for key \"k\" is a JSON object"},
    {"{\"__metadata__\":{\"k\":\"a\\u0000b\"}}", 0, 0, "__metadata__ value for key \"k\" contains a NUL character"},
};

static void check_open_fails(const char *path, const char *expect, const char *label) {
    char err[512];
    memset(err, 'x', sizeof err);
    st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f == NULL, "%s: st_open succeeded", label);
    st_close(f);
    CHECK_MSG(f != NULL || memchr(err, 0, sizeof err), "%s: err not terminated", label);
    if (f) return;
    CHECK_MSG(strstr(err, expect) != NULL, "%s: error \"%s\" lacks \"%s\"", label, err, expect);
    CHECK_MSG(strncmp(err, path, strlen(path)) == 0, "%s: error \"%s\" does not start with the path", label, err);
    CHECK_MSG(strchr(err, '\n') == NULL, "%s: error has a newline", label);
}

static void test_malformed(void) {
    char path[1024], label[64];
    tpath(path, "bad.safetensors");
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        size_t hlen = c->hlen ? c->hlen : strlen(c->hdr);
        write_st(path, c->hdr, hlen, c->data_len);
        snprintf(label, sizeof label, "bad_cases[%zu]", i);
        check_open_fails(path, c->expect, label);
    }
    /* deep nesting */
    char deep[2100];
    size_t k = 0;
    k += (size_t)sprintf(deep, "{\"__metadata__\":");
    for (int i = 0; i < 1000; i++) deep[k++] = '[';
    for (int i = 0; i < 1000; i++) deep[k++] = ']';
    deep[k++] = '}';
    write_st(path, deep, k, 0);
    check_open_fails(path, "not valid JSON", "deep nesting");

    /* length field and file size */
    unsigned char raw[32] = {0};
    write_bytes(path, raw, 0);
    check_open_fails(path, "file is empty", "empty file");
    write_bytes(path, "\x05\0\0\0\0", 5);
    check_open_fails(path, "file is 5 bytes, shorter than the 8-byte header length", "5-byte file");
    write_bytes(path, raw, 8);
    check_open_fails(path, "header length is 0", "zero header length (8 bytes)");
    memcpy(raw + 8, "{}      ", 8);
    write_bytes(path, raw, 16);
    check_open_fails(path, "header length is 0", "zero header length (16 bytes)");
    raw[0] = 0xe8, raw[1] = 0x03; /* 1000 */
    write_bytes(path, raw, 20);
    check_open_fails(path, "header length 1000 exceeds the file size 20 (truncated or not a safetensors file)", "hlen > file");
    raw[0] = 13; /* header one byte longer than the file allows */
    raw[1] = 0;
    write_bytes(path, raw, 20);
    check_open_fails(path, "header length 13 exceeds the file size 20", "hlen = file - 7");
    memset(raw, 0xff, 8);
    write_bytes(path, raw, 20);
    check_open_fails(path, "header length 18446744073709551615 exceeds the file size 20", "hlen = 2^64-1");
    /* > 100 MB header in a (sparse) file large enough to hold it */
    {
        uint64_t h = 100000001;
        unsigned char len[8];
        for (int i = 0; i < 8; i++) len[i] = (unsigned char)(h >> (8 * i));
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        CHECK(fd >= 0 && write(fd, len, 8) == 8 && ftruncate(fd, 100000100) == 0);
        if (fd >= 0) close(fd);
        check_open_fails(path, "header length 100000001 exceeds the limit of 100000000 bytes", "100 MB limit");
        fd = open(path, O_WRONLY | O_TRUNC);
        if (fd >= 0) close(fd);
    }
    /* not a file */
    char dir[1024];
    tpath(dir, "subdir.safetensors");
    CHECK(mkdir(dir, 0755) == 0);
    check_open_fails(dir, "is a directory", "directory");
    tpath(path, "does-not-exist.safetensors");
    check_open_fails(path, "cannot open the file", "missing file");
    tpath(path, "fifo.safetensors");
    if (mkfifo(path, 0644) == 0) check_open_fails(path, "is not a regular file", "fifo");
    CHECK(st_open(NULL, NULL, 0) == NULL);
    st_file *f = st_open(path, NULL, 0); /* err may be NULL */
    CHECK(f == NULL);
    char tiny[8];
    f = st_open(dir, tiny, sizeof tiny); /* truncated but terminated */
    CHECK(f == NULL && strlen(tiny) == sizeof tiny - 1);
}

/* valid edge cases that must open */
static void test_valid_edges(void) {
    char path[1024], err[512];
    tpath(path, "edge.safetensors");
    static const struct { const char *hdr; size_t data_len; size_t count; } ok[] = {
        {"{}", 0, 0},
        {"  {}  \t\r\n ", 0, 0},
        {"{\"__metadata__\":{}}", 0, 0},
        {"{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}", 0, 1},
        {"{\"e\":{\"dtype\":\"F32\",\"shape\":[5,0,7],\"data_offsets\":[3,3]}}", 3, 1},
        /* an empty tensor inside another's range does not overlap it */
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"z\":{\"dtype\":\"F32\",\"shape\":[0],"
         "\"data_offsets\":[4,4]}}", 8, 2},
        /* gap before, between and after tensors; keys in any order */
        {"{\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9,10]},\"a\":{\"shape\":[2],\"data_offsets\":[2,4],"
         "\"dtype\":\"BOOL\"}}", 16, 2},
        {"{\"s\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]},\"__metadata__\":{\"k\":\"v\"}}", 4, 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        write_st(path, ok[i].hdr, strlen(ok[i].hdr), ok[i].data_len);
        st_file *f = st_open(path, err, sizeof err);
        CHECK_MSG(f != NULL, "ok[%zu]: %s", i, err);
        if (f) CHECK_EQ_I64(st_count(f), ok[i].count);
        st_close(f);
    }
    st_file *f = NULL;
    write_st(path, ok[6].hdr, strlen(ok[6].hdr), 16);
    f = st_open(path, err, sizeof err);
    if (f) {
        CHECK(strcmp(st_at(f, 0)->name, "a") == 0 && strcmp(st_at(f, 1)->name, "b") == 0);
        CHECK((const char *)st_at(f, 1)->data - (const char *)st_at(f, 0)->data == 7);
        CHECK(st_at(f, 0)->dtype == ST_BOOL && st_at(f, 0)->numel == 2);
    }
    st_close(f);
    st_close(NULL);
    CHECK(st_count(NULL) == 0 && st_at(NULL, 0) == NULL && st_find(NULL, "a") == NULL && st_metadata(NULL, "k") == NULL);
}

/* ------------------------------------------------------------------ sweeps */

static int touch_all(const st_file *f) {
    unsigned sum = 0;
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        for (uint64_t k = 0; k < t->nbytes; k++) sum += ((const unsigned char *)t->data)[k];
    }
    return (int)(sum & 1);
}

static void build_small_file(const char *path) {
    static const float fv[6] = {1, 2, 3, 4, 5, 6};
    static const uint16_t hv[3] = {0x3C00, 0x4000, 0x4200};
    static const int64_t iv[2] = {1, 2};
    char err[256];
    st_writer *w = st_writer_new();
    st_writer_add(w, "vit.w", ST_F32, 2, (const int64_t[]){2, 3}, fv, err, sizeof err);
    st_writer_add(w, "b", ST_F16, 1, (const int64_t[]){3}, hv, err, sizeof err);
    st_writer_add(w, "e", ST_F32, 2, (const int64_t[]){0, 3}, NULL, err, sizeof err);
    st_writer_add(w, "z", ST_I64, 1, (const int64_t[]){2}, iv, err, sizeof err);
    st_writer_metadata(w, "format", "pt");
    CHECK(st_writer_write(w, path, err, sizeof err) == 0);
    st_writer_free(w);
}

static void test_truncation_sweep(void) {
    char src[1024], path[1024], err[512];
    tpath(src, "sweep_src.safetensors");
    tpath(path, "sweep.safetensors");
    build_small_file(src);
    size_t n;
    unsigned char *raw = read_bytes(src, &n);
    CHECK(raw != NULL && n > 100);
    if (!raw) return;
    int failed = 0, succeeded = 0, clean = 1;
    for (size_t len = 0; len < n; len++) {
        write_bytes(path, raw, len);
        err[0] = 0;
        st_file *f = st_open(path, err, sizeof err);
        if (f) {
            succeeded++;
            touch_all(f);
            st_close(f);
        } else {
            failed++;
            if (!err[0] || strncmp(err, path, strlen(path)) != 0) clean = 0;
        }
    }
    CHECK_MSG(clean, "some truncated file failed without a proper message");
    CHECK_EQ_I64(failed + succeeded, n);
    /* the last tensor is non-empty and ends at the end of the file, so no cut can be consistent */
    CHECK_EQ_I64(succeeded, 0);
    /* a few specific cuts give specific messages */
    write_bytes(path, raw, n - 1);
    check_open_fails(path, "data_offsets end", "cut in the data");
    write_bytes(path, raw, 20);
    check_open_fails(path, "exceeds the file size 20", "cut in the header");
    write_bytes(path, raw, 3);
    check_open_fails(path, "shorter than the 8-byte header length", "cut in the length");
    /* extra bytes after the data are tolerated */
    unsigned char *more = malloc(n + 5);
    memcpy(more, raw, n);
    memset(more + n, 0, 5);
    write_bytes(path, more, n + 5);
    st_file *f = st_open(path, err, sizeof err);
    CHECK_MSG(f != NULL && st_count(f) == 4, "%s", err);
    st_close(f);
    free(more);
    free(raw);
}

/* flip every byte of the length and header to a few values: opens must fail cleanly or succeed with data
 * that lies inside the file */
static void test_mutation_sweep(void) {
    char src[1024], path[1024], err[512];
    tpath(src, "sweep_src.safetensors");
    tpath(path, "mut.safetensors");
    size_t n;
    unsigned char *raw = read_bytes(src, &n);
    if (!raw) return;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | raw[i];
    static const unsigned char vals[] = {'0', '1', '9', '-', '"', '{', '}', '[', ']', ',', ':', ' ', 0, 0xff, 0x80, 'e'};
    int opened = 0, failed = 0, clean = 1, inside = 1;
    unsigned char *m = malloc(n);
    for (size_t pos = 0; pos < 8 + hlen; pos++)
        for (size_t v = 0; v < sizeof vals; v++) {
            if (raw[pos] == vals[v]) continue;
            memcpy(m, raw, n);
            m[pos] = vals[v];
            write_bytes(path, m, n);
            err[0] = 0;
            st_file *f = st_open(path, err, sizeof err);
            if (!f) {
                failed++;
                if (!err[0] || strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n')) clean = 0;
                continue;
            }
            opened++;
            /* all data must lie within the data buffer: check via distances between tensors and the total */
            for (size_t i = 0; i < st_count(f); i++) {
                const st_tensor *t = st_at(f, i);
                if (t->nbytes > n || t->ndim < 0 || t->ndim > ST_MAX_DIMS) inside = 0;
            }
            touch_all(f);
            st_close(f);
        }
    CHECK_MSG(clean, "some mutated file failed without a proper message");
    CHECK(failed > 0 && opened > 0); /* e.g. digits in metadata values still open */
    CHECK(inside);
    free(m);
    free(raw);
}

/* ------------------------------------------------------------------ writer */

static void test_writer_errors(void) {
    char path[1024], err[512];
    float x[4] = {0};
    st_writer *w = st_writer_new();
    err[0] = 0;
    CHECK(st_writer_add(w, "a", ST_F32, 1, (const int64_t[]){4}, x, err, sizeof err) == 0);
    CHECK(st_writer_add(w, "a", ST_F32, 1, (const int64_t[]){4}, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "tensor \"a\": duplicate name");
    CHECK(st_writer_add(w, "b", (st_dtype)99, 1, (const int64_t[]){4}, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "bad dtype 99");
    CHECK(st_writer_add(w, "b", (st_dtype)-1, 1, (const int64_t[]){4}, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "bad dtype");
    CHECK(st_writer_add(w, "b", ST_F32, 2, (const int64_t[]){2, -2}, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "dimension 1 is -2");
    CHECK(st_writer_add(w, "b", ST_F32, 9, (const int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "bad ndim 9");
    CHECK(st_writer_add(w, "b", ST_F32, -1, NULL, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "bad ndim -1");
    CHECK(st_writer_add(w, "b", ST_F32, 1, NULL, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "bad ndim 1");
    CHECK(st_writer_add(w, "b", ST_F32, 1, (const int64_t[]){4}, NULL, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "data is NULL");
    CHECK(st_writer_add(w, "b", ST_F64, 2, (const int64_t[]){1ll << 31, 1ll << 31}, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "overflows");
    CHECK(st_writer_add(w, "b", ST_F64, 2, (const int64_t[]){1ll << 40, 1ll << 40}, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "overflows");
    CHECK(st_writer_add(w, "", ST_F32, 0, NULL, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "empty or reserved");
    CHECK(st_writer_add(w, "__metadata__", ST_F32, 0, NULL, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "empty or reserved");
    CHECK(st_writer_add(w, "bad\xc3", ST_F32, 0, NULL, x, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "not valid UTF-8");
    CHECK(st_writer_add(w, "e", ST_F32, 1, (const int64_t[]){0}, NULL, err, sizeof err) == 0); /* NULL ok when empty */
    CHECK(st_writer_add(w, "q\"uote\\\n", ST_U8, 1, (const int64_t[]){1}, x, err, sizeof err) == 0);
    CHECK(st_writer_add(NULL, "c", ST_F32, 0, NULL, x, err, sizeof err) == -1);

    /* into a missing directory: clear message, nothing left behind */
    tpath(path, "no/such/dir/out.safetensors");
    CHECK(st_writer_write(w, path, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, path);
    CHECK_STR_CONTAINS(err, "cannot create the temporary file");
    CHECK_STR_CONTAINS(err, "No such file or directory");
    /* onto an existing directory (or device, FIFO, socket): refused before a temporary file is made */
    tpath(path, "subdir.safetensors");
    CHECK(st_writer_write(w, path, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "exists and is not a regular file");
    CHECK_EQ_I64(count_tmp_files(), 0);
    tpath(path, "fifo-out.safetensors");
    CHECK_MSG(mkfifo(path, 0600) == 0, "mkfifo %s: %s", path, strerror(errno));
    CHECK(st_writer_write(w, path, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "exists and is not a regular file");
    struct stat fst;
    CHECK(lstat(path, &fst) == 0 && S_ISFIFO(fst.st_mode)); /* still the FIFO */
    unlink(path);
    CHECK_EQ_I64(count_tmp_files(), 0);
    CHECK(st_writer_write(w, NULL, err, sizeof err) == -1);

    /* atomic replacement: an open reader keeps the old data, a new open sees the new file */
    tpath(path, "replace.safetensors");
    CHECK(st_writer_write(w, path, err, sizeof err) == 0);
    st_file *old = st_open(path, err, sizeof err);
    CHECK_MSG(old != NULL, "%s", err);
    CHECK(old && st_find(old, "q\"uote\\\n") != NULL);
    st_writer *w2 = st_writer_new();
    double d = 2.5;
    CHECK(st_writer_add(w2, "only", ST_F64, 0, NULL, &d, err, sizeof err) == 0);
    CHECK(st_writer_write(w2, path, err, sizeof err) == 0);
    CHECK_EQ_I64(count_tmp_files(), 0);
    st_file *nw = st_open(path, err, sizeof err);
    CHECK(nw && st_count(nw) == 1 && st_find(nw, "only"));
    CHECK(old && st_count(old) == 3 && st_find(old, "a") && memcmp(st_find(old, "a")->data, x, 16) == 0);
    st_close(old);
    st_close(nw);
    st_writer_free(w2);
    st_writer_free(w);
    st_writer_free(NULL);
}

int main(int argc, char **argv) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/avgen-st-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "mkdtemp(%s) failed: %s\n", g_dir, strerror(errno));
        return 1;
    }
    test_dtypes();
    test_bf16();
    test_f16();
    test_roundtrip();
    test_reference_bytes();
    test_metadata();
    test_prefix();
    if (argc > 1) test_fixtures(argv[1]);
    else printf("note: no fixture directory given (argv[1]); skipping the committed-fixture checks\n");
    test_malformed();
    test_valid_edges();
    test_truncation_sweep();
    test_mutation_sweep();
    test_writer_errors();
    remove_tree(g_dir);
    return CHECK_DONE();
}
