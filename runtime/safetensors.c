/* safetensors.c: implements safetensors.h. The reader mmaps the file read-only, parses the JSON header
 * with json-c (strict mode, UTF-8 validated) and checks every rule of the format with explicit 64-bit
 * overflow checks before exposing any data pointer; every failure is one sentence naming the file.
 * The writer emits names sorted with data in the same order, pads the header with spaces to a multiple
 * of 8 and writes PATH.tmp.<pid>, fsyncs it and renames it onto PATH. */
#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif
#include "safetensors.h"
#include "rt_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (safetensors data is little-endian)"
#endif

#define ST_MAX_HEADER 100000000ull /* same limit as the reference implementation */
#define ST_I64_MAX ((uint64_t)INT64_MAX)

/* ---------------------------------------------------------------- dtypes */

static const struct { const char *name; size_t size; } st_dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_BF16] = {"BF16", 2}, [ST_F16] = {"F16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},   [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define ST_NDTYPES (sizeof st_dtypes / sizeof st_dtypes[0])

static int dtype_ok(st_dtype d) { return (unsigned)d < ST_NDTYPES; }

size_t st_dtype_size(st_dtype d) { return dtype_ok(d) ? st_dtypes[d].size : 0; }

const char *st_dtype_name(st_dtype d) { return dtype_ok(d) ? st_dtypes[d].name : "?"; }

int st_dtype_parse(const char *s, st_dtype *out) {
    if (!s) return -1;
    for (size_t i = 0; i < ST_NDTYPES; i++)
        if (strcmp(s, st_dtypes[i].name) == 0) {
            if (out) *out = (st_dtype)i;
            return 0;
        }
    return -1;
}

/* ---------------------------------------------------------------- float conversions */

float st_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u); /* NaN: keep sign, quiet */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest, ties to even; overflow correctly gives Inf */
    return (uint16_t)(u >> 16);
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
    float f;
    if (exp == 0) { /* zero or subnormal: mant * 2^-24, exact in float */
        f = (float)mant * 0x1p-24f;
        memcpy(&u, &f, sizeof u);
        u |= sign;
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 112u) << 23) | (mant << 13);
    }
    memcpy(&f, &u, sizeof f);
    return f;
}

int st_to_f32(const st_tensor *t, float *dst) {
    if (!t) return -1;
    const unsigned char *p = (const unsigned char *)t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(dst, p, n * 4);
        return 0;
    case ST_BF16:
    case ST_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = t->dtype == ST_BF16 ? st_bf16_to_f32(h) : st_f16_to_f32(h);
        }
        return 0;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    default:
        return -1;
    }
}

/* ---------------------------------------------------------------- errors */

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- reader */

struct st_entry {
    st_tensor t;
    uint64_t begin, end;
};

struct st_file {
    void *map;
    size_t map_len;
    size_t n;
    struct st_entry *e;         /* sorted by (begin, end, name) */
    const struct st_entry **by_name; /* sorted by name */
    size_t nmeta;
    char **meta_key, **meta_val;
};

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} st_ctx;

/* "PATH: tensor "NAME": DETAIL." */
static void tensor_err(const st_ctx *c, const char *name, const char *fmt, ...) {
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    seterr(c->err, c->errlen, "%s: tensor \"%.200s\": %s", c->path, name, detail);
}

/* A JSON integer in [0, INT64_MAX). json-c clamps out-of-range integers to INT64_MAX / UINT64_MAX, so
 * INT64_MAX itself is rejected too: it may be a clamped larger value. */
static int get_index(json_object *o, uint64_t *out) {
    if (!o || !json_object_is_type(o, json_type_int)) return -1;
    int64_t v = json_object_get_int64(o);
    if (v < 0 || v == INT64_MAX) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_entry(const st_ctx *c, const char *name, json_object *v, struct st_entry *e) {
    if (!json_object_is_type(v, json_type_object)) {
        tensor_err(c, name, "entry is a JSON %s, expected an object with dtype, shape and data_offsets",
                   json_type_to_name(json_object_get_type(v)));
        return -1;
    }
    json_object *jd = NULL, *js = NULL, *jo = NULL;
    json_object_object_foreach(v, key, val) {
        if (strcmp(key, "dtype") == 0) jd = val;
        else if (strcmp(key, "shape") == 0) js = val;
        else if (strcmp(key, "data_offsets") == 0) jo = val;
        else {
            tensor_err(c, name, "unexpected key \"%.100s\" (expected only dtype, shape and data_offsets)", key);
            return -1;
        }
    }
    const char *missing = !jd ? "dtype" : !js ? "shape" : !jo ? "data_offsets" : NULL;
    if (missing) {
        tensor_err(c, name, "missing \"%s\" (expected dtype, shape and data_offsets)", missing);
        return -1;
    }
    /* dtype */
    if (!json_object_is_type(jd, json_type_string)) {
        tensor_err(c, name, "dtype is not a string (expected e.g. \"F32\")");
        return -1;
    }
    if (st_dtype_parse(json_object_get_string(jd), &e->t.dtype) != 0) {
        tensor_err(c, name, "unknown dtype \"%.40s\" (expected one of F32, BF16, F16, F64, I64, I32, U8, BOOL)",
                   json_object_get_string(jd));
        return -1;
    }
    /* shape */
    if (!json_object_is_type(js, json_type_array)) {
        tensor_err(c, name, "shape is not an array (expected an array of non-negative integers)");
        return -1;
    }
    size_t nd = json_object_array_length(js);
    if (nd > ST_MAX_DIMS) {
        tensor_err(c, name, "shape has %zu dimensions, more than the maximum of %d", nd, ST_MAX_DIMS);
        return -1;
    }
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (get_index(json_object_array_get_idx(js, i), &d) != 0) {
            tensor_err(c, name, "shape[%zu] is not a non-negative integer below 2^63", i);
            return -1;
        }
        e->t.shape[i] = (int64_t)d;
        if (d != 0 && numel > ST_I64_MAX / d) overflow = 1;
        else numel *= d;
    }
    size_t esz = st_dtype_size(e->t.dtype);
    /* numel is at most INT64_MAX here unless overflow; a later zero dim does not rescue an overflow */
    if (overflow || numel > ST_I64_MAX / esz) {
        tensor_err(c, name, "shape is too large (element count times %s size overflows 64 bits)",
                   st_dtype_name(e->t.dtype));
        return -1;
    }
    e->t.ndim = (int)nd;
    e->t.numel = (int64_t)numel;
    e->t.nbytes = numel * esz;
    /* data_offsets */
    if (!json_object_is_type(jo, json_type_array) || json_object_array_length(jo) != 2) {
        tensor_err(c, name, "data_offsets is not an array of two integers [begin, end]");
        return -1;
    }
    if (get_index(json_object_array_get_idx(jo, 0), &e->begin) != 0 ||
        get_index(json_object_array_get_idx(jo, 1), &e->end) != 0) {
        tensor_err(c, name, "data_offsets is not a pair of non-negative integers below 2^63");
        return -1;
    }
    if (e->begin > e->end) {
        tensor_err(c, name, "data_offsets begin %llu is greater than end %llu", (unsigned long long)e->begin,
                   (unsigned long long)e->end);
        return -1;
    }
    if (e->end - e->begin != e->t.nbytes) {
        char shape[ST_MAX_DIMS * 22 + 3];
        size_t k = 0;
        shape[k++] = '[';
        for (int i = 0; i < e->t.ndim; i++)
            k += (size_t)snprintf(shape + k, sizeof shape - k, "%s%lld", i ? "," : "", (long long)e->t.shape[i]);
        snprintf(shape + k, sizeof shape - k, "]");
        tensor_err(c, name, "data_offsets span %llu bytes but shape %s of %s needs %llu bytes",
                   (unsigned long long)(e->end - e->begin), shape, st_dtype_name(e->t.dtype),
                   (unsigned long long)e->t.nbytes);
        return -1;
    }
    return 0;
}

static int cmp_offset(const void *a, const void *b) {
    const struct st_entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->t.name, y->t.name);
}

static int cmp_name(const void *a, const void *b) {
    const struct st_entry *const *x = a, *const *y = b;
    return strcmp((*x)->t.name, (*y)->t.name);
}

static int parse_metadata(const st_ctx *c, st_file *f, json_object *m) {
    if (!json_object_is_type(m, json_type_object)) {
        seterr(c->err, c->errlen, "%s: __metadata__ is a JSON %s, expected an object of strings", c->path,
               json_type_to_name(json_object_get_type(m)));
        return -1;
    }
    size_t n = (size_t)json_object_object_length(m);
    f->meta_key = calloc(n ? n : 1, sizeof *f->meta_key);
    f->meta_val = calloc(n ? n : 1, sizeof *f->meta_val);
    if (!f->meta_key || !f->meta_val) goto oom;
    json_object_object_foreach(m, key, val) {
        if (!json_object_is_type(val, json_type_string)) {
            seterr(c->err, c->errlen, "%s: __metadata__ value for key \"%.200s\" is a JSON %s, expected a string",
                   c->path, key, json_type_to_name(json_object_get_type(val)));
            return -1;
        }
        const char *s = json_object_get_string(val);
        if ((size_t)json_object_get_string_len(val) != strlen(s)) {
            seterr(c->err, c->errlen, "%s: __metadata__ value for key \"%.200s\" contains a NUL character",
                   c->path, key);
            return -1;
        }
        f->meta_key[f->nmeta] = strdup(key);
        f->meta_val[f->nmeta] = strdup(s);
        f->nmeta++;
        if (!f->meta_key[f->nmeta - 1] || !f->meta_val[f->nmeta - 1]) goto oom;
    }
    return 0;
oom:
    seterr(c->err, c->errlen, "%s: out of memory while reading the header", c->path);
    return -1;
}

static int parse_header(const st_ctx *c, st_file *f, const char *hdr, size_t hlen, uint64_t data_len) {
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        seterr(c->err, c->errlen, "%s: out of memory while reading the header", c->path);
        return -1;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8 | JSON_TOKENER_ALLOW_TRAILING_CHARS);
    json_object *root = json_tokener_parse_ex(tok, hdr, (int)hlen);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    int rc = -1;
    if (!root || jerr != json_tokener_success) {
        if (jerr == json_tokener_continue || jerr == json_tokener_success)
            seterr(c->err, c->errlen, "%s: header is not valid JSON (it ends in the middle of a value after %zu bytes)",
                   c->path, hlen);
        else
            seterr(c->err, c->errlen, "%s: header is not valid JSON (%s near byte %zu of %zu)", c->path,
                   json_tokener_error_desc(jerr), end, hlen);
        goto out;
    }
    /* json-c stops at a NUL byte; anything after the value must be padding */
    for (size_t i = end; i < hlen; i++) {
        char ch = hdr[i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') {
            seterr(c->err, c->errlen, "%s: header has unexpected data after the JSON object at byte %zu of %zu "
                   "(expected only space padding)", c->path, i, hlen);
            goto out;
        }
    }
    if (!json_object_is_type(root, json_type_object)) {
        seterr(c->err, c->errlen, "%s: header is a JSON %s, not a JSON object of tensors", c->path,
               json_type_to_name(json_object_get_type(root)));
        goto out;
    }
    json_object *meta = NULL;
    size_t n = (size_t)json_object_object_length(root);
    if (json_object_object_get_ex(root, "__metadata__", &meta)) n--;
    if (meta && parse_metadata(c, f, meta) != 0) goto out;
    f->e = calloc(n ? n : 1, sizeof *f->e);
    f->by_name = calloc(n ? n : 1, sizeof *f->by_name);
    if (!f->e || !f->by_name) {
        seterr(c->err, c->errlen, "%s: out of memory while reading the header", c->path);
        goto out;
    }
    json_object_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        struct st_entry *e = &f->e[f->n];
        if (parse_entry(c, key, val, e) != 0) goto out;
        if (e->end > data_len) {
            tensor_err(c, key, "data_offsets end %llu is beyond the data buffer of %llu bytes (truncated file?)",
                       (unsigned long long)e->end, (unsigned long long)data_len);
            goto out;
        }
        if (!(e->t.name = strdup(key))) {
            seterr(c->err, c->errlen, "%s: out of memory while reading the header", c->path);
            goto out;
        }
        f->n++;
    }
    if (f->n) qsort(f->e, f->n, sizeof *f->e, cmp_offset);
    /* overlap: sorted by begin, so a non-empty tensor overlaps an earlier one iff it begins before the
     * furthest end seen so far; empty tensors occupy no bytes and never overlap */
    const struct st_entry *far = NULL;
    for (size_t i = 0; i < f->n; i++) {
        const struct st_entry *e = &f->e[i];
        if (e->begin == e->end) continue;
        if (far && e->begin < far->end) {
            seterr(c->err, c->errlen, "%s: tensors \"%.200s\" [%llu, %llu) and \"%.200s\" [%llu, %llu) overlap in the "
                   "data buffer", c->path, far->t.name, (unsigned long long)far->begin, (unsigned long long)far->end,
                   e->t.name, (unsigned long long)e->begin, (unsigned long long)e->end);
            goto out;
        }
        if (!far || e->end > far->end) far = e;
    }
    for (size_t i = 0; i < f->n; i++) f->by_name[i] = &f->e[i];
    if (f->n) qsort(f->by_name, f->n, sizeof *f->by_name, cmp_name);
    rc = 0;
out:
    json_object_put(root);
    return rc;
}

st_file *st_open(const char *path, char *err, size_t errlen) {
    st_ctx c = {path ? path : "(null)", err, errlen};
    if (err && errlen) err[0] = '\0';
    if (!path) {
        seterr(err, errlen, "(null): no path given");
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* O_NONBLOCK: never hang on a FIFO */
    if (fd < 0) {
        seterr(err, errlen, "%s: cannot open the file (%s)", path, strerror(errno));
        return NULL;
    }
    st_file *f = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        seterr(err, errlen, "%s: cannot stat the file (%s)", path, strerror(errno));
        goto fail;
    }
    if (S_ISDIR(sb.st_mode)) {
        seterr(err, errlen, "%s: is a directory, expected a safetensors file", path);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        seterr(err, errlen, "%s: is not a regular file, expected a safetensors file", path);
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size == 0) {
        seterr(err, errlen, "%s: file is empty, expected at least an 8-byte header length", path);
        goto fail;
    }
    if (size < 8) {
        seterr(err, errlen, "%s: file is %llu bytes, shorter than the 8-byte header length (truncated or not a "
               "safetensors file)", path, (unsigned long long)size);
        goto fail;
    }
    unsigned char lenbuf[8];
    ssize_t got;
    do got = pread(fd, lenbuf, 8, 0);
    while (got < 0 && errno == EINTR);
    if (got != 8) {
        seterr(err, errlen, "%s: cannot read the 8-byte header length (%s)", path,
               got < 0 ? strerror(errno) : "short read");
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | lenbuf[i];
    if (hlen == 0) {
        seterr(err, errlen, "%s: header length is 0, expected a JSON object (not a safetensors file)", path);
        goto fail;
    }
    if (hlen > size - 8) {
        seterr(err, errlen, "%s: header length %llu exceeds the file size %llu (truncated or not a safetensors file)",
               path, (unsigned long long)hlen, (unsigned long long)size);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        seterr(err, errlen, "%s: header length %llu exceeds the limit of %llu bytes (corrupt or not a safetensors "
               "file)", path, (unsigned long long)hlen, ST_MAX_HEADER);
        goto fail;
    }
    if (size > (uint64_t)SIZE_MAX) {
        seterr(err, errlen, "%s: file of %llu bytes is too large to map on this system", path, (unsigned long long)size);
        goto fail;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        seterr(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        seterr(err, errlen, "%s: cannot map the file (%s)", path, strerror(errno));
        goto fail;
    }
    f->map = map;
    f->map_len = (size_t)size;
    close(fd);
    fd = -1;
    const unsigned char *base = (const unsigned char *)map;
    if (parse_header(&c, f, (const char *)base + 8, (size_t)hlen, size - 8 - hlen) != 0) goto fail;
    for (size_t i = 0; i < f->n; i++) f->e[i].t.data = base + 8 + hlen + f->e[i].begin;
    return f;
fail:
    if (fd >= 0) close(fd);
    st_close(f);
    return NULL;
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    if (f->e)
        for (size_t i = 0; i < f->n; i++) free((char *)f->e[i].t.name);
    free(f->e);
    free(f->by_name);
    for (size_t i = 0; i < f->nmeta; i++) {
        free(f->meta_key[i]);
        free(f->meta_val[i]);
    }
    free(f->meta_key);
    free(f->meta_val);
    free(f);
}

size_t st_count(const st_file *f) { return f ? f->n : 0; }

const st_tensor *st_at(const st_file *f, size_t i) { return f && i < f->n ? &f->e[i].t : NULL; }

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name) return NULL;
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int r = strcmp(name, f->by_name[mid]->t.name);
        if (r == 0) return &f->by_name[mid]->t;
        if (r < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

const st_tensor *st_find_any_prefix(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    if (t || !name) return t;
    static const char pre[] = "vit.";
    const size_t plen = sizeof pre - 1;
    if (strncmp(name, pre, plen) == 0) return st_find(f, name + plen);
    size_t n = strlen(name);
    char *buf = malloc(plen + n + 1);
    if (!buf) return NULL;
    memcpy(buf, pre, plen);
    memcpy(buf + plen, name, n + 1);
    t = st_find(f, buf);
    free(buf);
    return t;
}

const char *st_metadata(const st_file *f, const char *key) {
    if (!f || !key) return NULL;
    for (size_t i = 0; i < f->nmeta; i++)
        if (strcmp(f->meta_key[i], key) == 0) return f->meta_val[i];
    return NULL;
}

size_t st_metadata_count(const st_file *f) { return f ? f->nmeta : 0; }

const char *st_metadata_key(const st_file *f, size_t i) { return f && i < f->nmeta ? f->meta_key[i] : NULL; }

/* ---------------------------------------------------------------- writer */

struct st_wentry {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    uint64_t nbytes;
    const void *data;
};

struct st_writer {
    struct st_wentry *e;
    size_t n, cap;
    char **mkey, **mval;
    size_t nmeta, mcap;
};

st_writer *st_writer_new(void) { return calloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) free(w->e[i].name);
    for (size_t i = 0; i < w->nmeta; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->e);
    free(w->mkey);
    free(w->mval);
    free(w);
}

/* Well-formed UTF-8 (no overlongs, surrogates or code points above U+10FFFF): the reader validates it. */
static int utf8_ok(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p++;
        if (c < 0x80) continue;
        int n;
        unsigned lo = 0x80, hi = 0xbf;
        if (c >= 0xc2 && c <= 0xdf) n = 1;
        else if (c >= 0xe0 && c <= 0xef) { n = 2; if (c == 0xe0) lo = 0xa0; if (c == 0xed) hi = 0x9f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; if (c == 0xf0) lo = 0x90; if (c == 0xf4) hi = 0x8f; }
        else return 0;
        if (*p < lo || *p > hi) return 0;
        p++;
        for (int i = 1; i < n; i++, p++)
            if (*p < 0x80 || *p > 0xbf) return 0;
    }
    return 1;
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                  const void *data, char *err, size_t errlen) {
    if (!w || !name) {
        seterr(err, errlen, "st_writer_add: no writer or no name given");
        return -1;
    }
    if (!*name || strcmp(name, "__metadata__") == 0) {
        seterr(err, errlen, "tensor \"%s\": name is empty or reserved", name);
        return -1;
    }
    if (!utf8_ok(name)) {
        seterr(err, errlen, "tensor \"%.200s\": name is not valid UTF-8", name);
        return -1;
    }
    if (!dtype_ok(dtype)) {
        seterr(err, errlen, "tensor \"%.200s\": bad dtype %d", name, (int)dtype);
        return -1;
    }
    if (ndim < 0 || ndim > ST_MAX_DIMS || (ndim > 0 && !shape)) {
        seterr(err, errlen, "tensor \"%.200s\": bad ndim %d (expected 0..%d with a shape array)", name, ndim,
               ST_MAX_DIMS);
        return -1;
    }
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || shape[i] == INT64_MAX) {
            seterr(err, errlen, "tensor \"%.200s\": dimension %d is %lld, expected a non-negative size", name, i,
                   (long long)shape[i]);
            return -1;
        }
        uint64_t d = (uint64_t)shape[i];
        if (d != 0 && numel > ST_I64_MAX / d) overflow = 1;
        else numel *= d;
    }
    if (overflow || numel > ST_I64_MAX / st_dtype_size(dtype)) {
        seterr(err, errlen, "tensor \"%.200s\": shape is too large (byte size overflows 64 bits)", name);
        return -1;
    }
    uint64_t nbytes = numel * st_dtype_size(dtype);
    if (nbytes && !data) {
        seterr(err, errlen, "tensor \"%.200s\": data is NULL for %llu bytes", name, (unsigned long long)nbytes);
        return -1;
    }
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0) {
            seterr(err, errlen, "tensor \"%.200s\": duplicate name", name);
            return -1;
        }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        struct st_wentry *e = realloc(w->e, cap * sizeof *e);
        if (!e) goto oom;
        w->e = e;
        w->cap = cap;
    }
    struct st_wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    if (!(e->name = strdup(name))) goto oom;
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    e->data = data;
    w->n++;
    return 0;
oom:
    seterr(err, errlen, "tensor \"%.200s\": out of memory", name);
    return -1;
}

int st_writer_metadata(st_writer *w, const char *key, const char *value) {
    if (!w || !key || !value || !utf8_ok(key) || !utf8_ok(value)) return -1;
    char *v = strdup(value);
    if (!v) return -1;
    for (size_t i = 0; i < w->nmeta; i++)
        if (strcmp(w->mkey[i], key) == 0) {
            free(w->mval[i]);
            w->mval[i] = v;
            return 0;
        }
    if (w->nmeta == w->mcap) {
        size_t cap = w->mcap ? 2 * w->mcap : 8;
        char **k = realloc(w->mkey, cap * sizeof *k);
        if (k) w->mkey = k;
        char **vv = k ? realloc(w->mval, cap * sizeof *vv) : NULL;
        if (vv) w->mval = vv;
        if (!k || !vv) {
            free(v);
            return -1;
        }
        w->mcap = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return -1;
    }
    w->mkey[w->nmeta] = k;
    w->mval[w->nmeta] = v;
    w->nmeta++;
    return 0;
}

typedef struct {
    char *p;
    size_t len, cap;
    int oom;
} st_buf;

static void buf_put(st_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(st_buf *b, const char *s) { buf_put(b, s, strlen(s)); }

static void buf_u64(st_buf *b, uint64_t v) {
    char t[24];
    int n = snprintf(t, sizeof t, "%llu", (unsigned long long)v);
    buf_put(b, t, (size_t)n);
}

static void buf_json_str(st_buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char t[8];
        switch (*p) {
        case '"': buf_put(b, "\\\"", 2); break;
        case '\\': buf_put(b, "\\\\", 2); break;
        case '\b': buf_put(b, "\\b", 2); break;
        case '\f': buf_put(b, "\\f", 2); break;
        case '\n': buf_put(b, "\\n", 2); break;
        case '\r': buf_put(b, "\\r", 2); break;
        case '\t': buf_put(b, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(t, sizeof t, "\\u%04x", *p);
                buf_put(b, t, 6);
            } else {
                buf_put(b, (const char *)p, 1);
            }
        }
    }
    buf_put(b, "\"", 1);
}

static int cmp_wname(const void *a, const void *b) {
    return strcmp(((const struct st_wentry *)a)->name, ((const struct st_wentry *)b)->name);
}

static int write_all(int fd, const void *data, uint64_t n) {
    const unsigned char *p = data;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (size_t)1 << 30 : (size_t)n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        p += k;
        n -= (uint64_t)k;
    }
    return 0;
}

/* Best effort: make the rename durable. */
static void fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return;
    int fd = open(dir, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int st_writer_write(st_writer *w, const char *path, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!w || !path || !*path) {
        seterr(err, errlen, "st_writer_write: no writer or no path given");
        return -1;
    }
    if (w->n) qsort(w->e, w->n, sizeof *w->e, cmp_wname);
    for (size_t i = 1; i < w->nmeta; i++) /* metadata keys sorted too: output independent of call order */
        for (size_t j = i; j > 0 && strcmp(w->mkey[j - 1], w->mkey[j]) > 0; j--) {
            char *k = w->mkey[j], *v = w->mval[j];
            w->mkey[j] = w->mkey[j - 1];
            w->mval[j] = w->mval[j - 1];
            w->mkey[j - 1] = k;
            w->mval[j - 1] = v;
        }
    /* header */
    st_buf b = {0};
    buf_put(&b, "{", 1);
    int first = 1;
    if (w->nmeta) {
        buf_str(&b, "\"__metadata__\":{");
        for (size_t i = 0; i < w->nmeta; i++) {
            if (i) buf_put(&b, ",", 1);
            buf_json_str(&b, w->mkey[i]);
            buf_put(&b, ":", 1);
            buf_json_str(&b, w->mval[i]);
        }
        buf_put(&b, "}", 1);
        first = 0;
    }
    uint64_t off = 0;
    int too_big = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct st_wentry *e = &w->e[i];
        if (!first) buf_put(&b, ",", 1);
        first = 0;
        buf_json_str(&b, e->name);
        buf_str(&b, ":{\"dtype\":\"");
        buf_str(&b, st_dtype_name(e->dtype));
        buf_str(&b, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d) buf_put(&b, ",", 1);
            buf_u64(&b, (uint64_t)e->shape[d]);
        }
        buf_str(&b, "],\"data_offsets\":[");
        buf_u64(&b, off);
        buf_put(&b, ",", 1);
        if (e->nbytes > ST_I64_MAX - 1 - off) too_big = 1;
        else off += e->nbytes;
        buf_u64(&b, off);
        buf_str(&b, "]}");
    }
    buf_put(&b, "}", 1);
    while (!b.oom && b.len % 8) buf_put(&b, " ", 1);
    if (b.oom) {
        free(b.p);
        seterr(err, errlen, "%s: out of memory while building the header", path);
        return -1;
    }
    if (too_big || b.len > ST_MAX_HEADER) {
        free(b.p);
        seterr(err, errlen, "%s: the tensors or the header (%zu bytes) are too large for a safetensors file", path, b.len);
        return -1;
    }
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)b.len >> (8 * i));

    if (rt_not_replaceable(path)) {
        free(b.p);
        seterr(err, errlen, "%s exists and is not a regular file (a folder, device, FIFO or socket): not replaced", path);
        return -1;
    }
    size_t tlen = strlen(path) + 32;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(b.p);
        seterr(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        seterr(err, errlen, "%s: cannot create the temporary file %s (%s)", path, tmp, strerror(errno));
        free(tmp);
        free(b.p);
        return -1;
    }
    const char *what = "write";
    int ok = write_all(fd, lenbuf, 8) == 0 && write_all(fd, b.p, b.len) == 0;
    for (size_t i = 0; ok && i < w->n; i++) ok = write_all(fd, w->e[i].data, w->e[i].nbytes) == 0;
    if (ok && !(ok = fsync(fd) == 0)) what = "fsync";
    int saved = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        what = "close";
        saved = errno;
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        what = "rename";
        saved = errno;
    }
    if (!ok) {
        unlink(tmp);
        if (strcmp(what, "rename") == 0)
            seterr(err, errlen, "%s: cannot rename the temporary file %s onto it (%s)", path, tmp, strerror(saved));
        else
            seterr(err, errlen, "%s: %s of the temporary file %s failed (%s)", path, what, tmp, strerror(saved));
    } else {
        fsync_parent_dir(path);
    }
    free(tmp);
    free(b.p);
    return ok ? 0 : -1;
}
