/* JSON model description -> gen_spec: strict JSON parse (json-c), --set overrides, unknown keys with
 * "did you mean", per-field type and range checks from the schema table, then the cross-field checks and
 * derived shapes. Every problem becomes one sentence naming the JSON path, the value and what was
 * expected; all problems are collected so a user fixes them in one pass. */
#include "spec_internal.h"

#include <ctype.h>
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Messages echo user text (keys, paths, --set assignments): control characters are escaped so that
 * every message stays one line. */
void gen_errorf(gen_errors *e, const char *fmt, ...) {
    if (e->n >= GEN_MAX_ERRORS) { e->dropped++; return; }
    char raw[GEN_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    char *out = e->msg[e->n];
    size_t j = 0;
    for (const unsigned char *c = (const unsigned char *)raw; *c && j + 7 < GEN_ERR_LEN; c++) {
        if (*c >= 0x20 && *c != 0x7f) out[j++] = (char)*c;
        else if (*c == '\n') out[j++] = '\\', out[j++] = 'n';
        else if (*c == '\t') out[j++] = '\\', out[j++] = 't';
        else j += (size_t)snprintf(out + j, GEN_ERR_LEN - j, "\\x%02x", *c);
    }
    out[j] = 0;
    e->n++;
}

/* ------------------------------------------------------------------------------------------ helpers */

int gen_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int c = prev[j - 1] + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (prev[j] + 1 < c) c = prev[j] + 1;
            if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
            cur[j] = c;
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

const char *gen_suggest(const char *word, const char *const *cands, int n) {
    const char *best = NULL;
    int bd = 1 << 30, lim = (int)strlen(word) / 3;
    if (lim < 2) lim = 2;
    for (int i = 0; i < n; i++) {
        int d = gen_edit_distance(word, cands[i]);
        if (d < bd) bd = d, best = cands[i];
    }
    return bd <= lim ? best : NULL;
}

uint64_t gen_hash64(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    if (!h) h = 14695981039346656037ULL; /* FNV-1a 64 */
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* A JSON value as a short text for messages. */
static const char *vtext(json_object *v, char *buf, size_t n) {
    const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (strlen(s) > 60) snprintf(buf, n, "%.57s...", s);
    else snprintf(buf, n, "%s", s);
    /* json-c clamps an integer beyond 64 bits to the largest it holds: the file's may be larger */
    if (json_object_is_type(v, json_type_int) &&
        (json_object_get_int64(v) == INT64_MAX || json_object_get_uint64(v) == UINT64_MAX ||
         json_object_get_int64(v) == INT64_MIN))
        snprintf(buf + strlen(buf), n - strlen(buf), " (or beyond)");
    return buf;
}

static const char *tname(json_object *v) {
    switch (json_object_get_type(v)) {
    case json_type_null: return "null";
    case json_type_boolean: return "a boolean";
    case json_type_double: return "a number";
    case json_type_int: return "an integer";
    case json_type_object: return "an object";
    case json_type_array: return "an array";
    case json_type_string: return "a string";
    }
    return "a value";
}

static int is_number(json_object *v) {
    return json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double);
}

static double num(json_object *v) { return json_object_get_double(v); }

/* Integral JSON number (an integral double such as 4.0 or 1e3 also counts). */
static int as_int64(json_object *v, int64_t *out) {
    if (json_object_is_type(v, json_type_int)) {
        errno = 0;
        *out = json_object_get_int64(v);
        return 1;
    }
    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (isfinite(d) && d == floor(d) && fabs(d) < 9.2e18) { *out = (int64_t)d; return 1; }
    }
    return 0;
}

int gen_parse_bytes(const char *s, int64_t *out) {
    while (isspace((unsigned char)*s)) s++;
    for (const char *c = s; *c; c++)
        if (*c == 'x' || *c == 'X' || *c == 'p' || *c == 'P') return -1; /* no hex floats */
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v) || v < 0) return -1;
    while (isspace((unsigned char)*end)) end++;
    char unit[8] = "";
    size_t ul = 0;
    while (*end && !isspace((unsigned char)*end) && ul + 1 < sizeof unit) unit[ul++] = *end++;
    unit[ul] = 0;
    while (isspace((unsigned char)*end)) end++;
    if (*end) return -1;
    static const struct { const char *u; double m; } units[] = {
        {"", 1}, {"B", 1}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0},
        {"TiB", 1099511627776.0}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].u) == 0) {
            double b = v * units[i].m;
            if (b > 9.0e18) return -1;
            *out = (int64_t)llround(b);
            return 0;
        }
    }
    return -1;
}

void gen_format_bytes(int64_t b, char *buf, size_t n) {
    double v = (double)b;
    if (v >= 1073741824.0) snprintf(buf, n, "%.2f GiB", v / 1073741824.0);
    else if (v >= 1048576.0) snprintf(buf, n, "%.2f MiB", v / 1048576.0);
    else if (v >= 1024.0) snprintf(buf, n, "%.2f KiB", v / 1024.0);
    else snprintf(buf, n, "%lld B", (long long)b);
}

/* ------------------------------------------------------------------------------------ JSON parsing */

static json_object *parse_strict(const char *text, size_t len, int *err_line, int *err_col, const char **why) {
    json_tokener *tok = json_tokener_new_ex(64);
    if (!tok) { *why = "out of memory"; return NULL; }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    if (len >= INT_MAX) { json_tokener_free(tok); *why = "file too large"; *err_line = *err_col = 1; return NULL; }
    /* Parse a NUL-terminated copy including the NUL, so that a bare scalar such as `null` or `5` ends
     * (the caller's text need not be terminated). */
    char *copy = len < INT_MAX ? malloc(len + 1) : NULL;
    if (!copy) { json_tokener_free(tok); *why = "out of memory"; *err_line = *err_col = 1; return NULL; }
    memcpy(copy, text, len);
    copy[len] = 0;
    json_object *o = json_tokener_parse_ex(tok, copy, (int)len + 1);
    free(copy);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t off = json_tokener_get_parse_end(tok);
    if (!o && jerr == json_tokener_continue) { *why = "unexpected end of input"; off = len; }
    else if (!o && jerr == json_tokener_success) *why = "the value is null; expected a JSON object";
    else if (!o) *why = json_tokener_error_desc(jerr);
    else {
        /* Anything but white space after the value is an error. */
        for (size_t i = off; i < len; i++)
            if (!isspace((unsigned char)text[i])) {
                json_object_put(o);
                o = NULL;
                *why = "unexpected text after the JSON value";
                off = i;
                break;
            }
    }
    if (!o) {
        int line = 1, col = 1;
        for (size_t i = 0; i < off && i < len; i++) {
            if (text[i] == '\n') line++, col = 1;
            else col++;
        }
        *err_line = line, *err_col = col;
    }
    json_tokener_free(tok);
    return o;
}

/* Duplicate keys: json-c keeps the last value of a key given twice in one object, silently. text is valid JSON
 * (parse_strict accepted it); every object key (as written, escapes included) is collected with the number of
 * its object, sorted, and the first key found twice in one object is reported: 1 with its text in key and its
 * second occurrence's line in *line, else 0 (also when memory runs out: a check, not a parser). */
typedef struct {
    size_t obj, at, len;
} json_key;
static int cmp_key(const void *a, const void *b, void *text) {
    const json_key *x = a, *y = b;
    if (x->obj != y->obj) return x->obj < y->obj ? -1 : 1;
    const size_t n = x->len < y->len ? x->len : y->len;
    const int c = memcmp((const char *)text + x->at, (const char *)text + y->at, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}
static int duplicate_key(const char *text, size_t len, char *key, size_t keylen, int *line) {
    size_t stack[80], objs = 0, nk = 0, cap = 0; /* stack: the object number, or (size_t)-1 for an array */
    int depth = 0, expect_key[80] = {0};
    json_key *k = NULL;
    for (size_t i = 0; i < len; i++) {
        const char ch = text[i];
        if (ch == '{' || ch == '[') {
            if (depth == 80) break; /* deeper than parse_strict allows: not reached */
            stack[depth] = ch == '{' ? objs++ : (size_t)-1;
            expect_key[depth++] = ch == '{';
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            depth--;
        } else if (ch == ',' && depth > 0) {
            expect_key[depth - 1] = stack[depth - 1] != (size_t)-1;
        } else if (ch == '"') {
            const size_t start = ++i;
            while (i < len && text[i] != '"') i += text[i] == '\\' ? 2 : 1;
            if (depth > 0 && expect_key[depth - 1]) {
                expect_key[depth - 1] = 0;
                if (nk == cap) {
                    json_key *m = realloc(k, sizeof *k * (cap = cap ? 2 * cap : 64));
                    if (!m) break;
                    k = m;
                }
                k[nk++] = (json_key){stack[depth - 1], start, (i < len ? i : len) - start};
            }
        }
    }
    if (nk > 1) qsort_r(k, nk, sizeof *k, cmp_key, (void *)text);
    int found = 0;
    for (size_t j = 1; j < nk && !found; j++) {
        if (k[j].obj != k[j - 1].obj || k[j].len != k[j - 1].len || memcmp(text + k[j].at, text + k[j - 1].at, k[j].len))
            continue;
        found = 1;
        snprintf(key, keylen, "%.*s", (int)(k[j].len < 200 ? k[j].len : 200), text + k[j].at);
        *line = 1;
        for (size_t i = 0; i < k[j].at; i++) *line += text[i] == '\n';
    }
    free(k);
    return found;
}

static const gen_field *field_by_path(const char *path) {
    for (int i = 0; i < gen_n_fields; i++)
        if (strcmp(gen_fields[i].path, path) == 0) return &gen_fields[i];
    return NULL;
}

/* The first field of a section, e.g. "train.batch" for "train". */
static const char *field_by_prefix(const char *sec) {
    size_t l = strlen(sec);
    for (int i = 0; i < gen_n_fields; i++)
        if (!strncmp(gen_fields[i].path, sec, l) && gen_fields[i].path[l] == '.') return gen_fields[i].path;
    return ".";
}

static int is_section(const char *name) {
    for (int i = 0; gen_sections[i]; i++)
        if (strcmp(gen_sections[i], name) == 0) return 1;
    return 0;
}

/* "did you mean" for an unknown key at `parent` (NULL = top level). */
static void suggest_key(const char *parent, const char *key, char *out, size_t n) {
    const char *cands[128];
    int nc = 0;
    size_t pl = parent ? strlen(parent) : 0;
    if (!parent)
        for (int i = 0; gen_sections[i]; i++) cands[nc++] = gen_sections[i];
    for (int i = 0; i < gen_n_fields && nc < 128; i++) {
        const char *p = gen_fields[i].path;
        const char *dot = strchr(p, '.');
        if (!parent && !dot) cands[nc++] = p;
        if (parent && dot && (size_t)(dot - p) == pl && strncmp(p, parent, pl) == 0) cands[nc++] = dot + 1;
    }
    const char *s = gen_suggest(key, cands, nc);
    if (s) {
        snprintf(out, n, "; did you mean %s%s%s?", parent ? parent : "", parent ? "." : "", s);
        return;
    }
    /* The same name in another section (e.g. "batch" at the top level -> train.batch). */
    for (int i = 0; i < gen_n_fields; i++) {
        const char *dot = strrchr(gen_fields[i].path, '.');
        if (dot && strcmp(dot + 1, key) == 0) {
            snprintf(out, n, "; did you mean %s?", gen_fields[i].path);
            return;
        }
    }
    snprintf(out, n, "; expected one of the fields listed in docs/model-json.md.");
}

static void check_unknown(json_object *root, const char *src, gen_errors *e) {
    char sug[256], vb[80];
    json_object_object_foreach(root, key, val) {
        if (is_section(key)) {
            if (!json_object_is_type(val, json_type_object)) {
                gen_errorf(e, "%s: %s = %s has the wrong type; expected an object.", src, key, vtext(val, vb, sizeof vb));
                continue;
            }
            json_object_object_foreach(val, k2, v2) {
                (void)v2;
                char path[512];
                snprintf(path, sizeof path, "%s.%s", key, k2);
                if (!field_by_path(path)) {
                    suggest_key(key, k2, sug, sizeof sug);
                    gen_errorf(e, "%s: %s is not a known field%s", src, path, sug);
                }
            }
        } else if (!field_by_path(key)) {
            suggest_key(NULL, key, sug, sizeof sug);
            gen_errorf(e, "%s: %s is not a known field%s", src, key, sug);
        }
    }
}

static json_object *lookup(json_object *root, const char *path) {
    char sec[64];
    const char *dot = strchr(path, '.');
    if (!dot) {
        json_object *v;
        return json_object_object_get_ex(root, path, &v) ? v : NULL;
    }
    snprintf(sec, sizeof sec, "%.*s", (int)(dot - path), path);
    json_object *s, *v;
    if (!json_object_object_get_ex(root, sec, &s) || !json_object_is_type(s, json_type_object)) return NULL;
    return json_object_object_get_ex(s, dot + 1, &v) ? v : NULL;
}

/* ------------------------------------------------------------------------------- field conversion */

static void range_text(const gen_field *f, char *buf, size_t n) {
    if (f->type == F_INT || f->type == F_I64) {
        if (f->lo == f->hi) snprintf(buf, n, "the integer %.0f", f->lo);
        else snprintf(buf, n, "an integer from %.0f to %.0f", f->lo, f->hi);
    } else {
        snprintf(buf, n, "a number %s %g and <= %g", f->lo_open ? ">" : ">=", f->lo, f->hi);
    }
}

static int in_range(const gen_field *f, double v) {
    if (!isfinite(v)) return 0;
    if (f->lo_open ? !(v > f->lo) : !(v >= f->lo)) return 0;
    return v <= f->hi;
}

static int enum_index(const char *const *choices, const char *s) {
    for (int i = 0; choices[i]; i++)
        if (strcmp(choices[i], s) == 0) return i;
    return -1;
}

static void enum_list(const char *const *choices, char *buf, size_t n) {
    buf[0] = 0;
    for (int i = 0; choices[i]; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, n - l, "%s\"%s\"", i ? ", " : "", choices[i]);
    }
}

static void convert(const gen_field *f, json_object *v, const char *src, gen_spec *s, gen_errors *e) {
    char vb[80], rb[128];
    char *base = (char *)s;
    const char *p = f->path;
    if (json_object_is_type(v, json_type_string) &&
        (size_t)json_object_get_string_len(v) != strlen(json_object_get_string(v))) {
        /* C strings end at the first NUL: "lavish\u0000x" would be read as "lavish" */
        gen_errorf(e, "%s: %s holds a NUL character (\\u0000); expected text without one.", src, p);
        return;
    }
    switch (f->type) {
    case F_INT:
    case F_I64: {
        int64_t x;
        range_text(f, rb, sizeof rb);
        if (!as_int64(v, &x)) {
            gen_errorf(e, "%s: %s = %s has the wrong type; expected %s.", src, p, vtext(v, vb, sizeof vb), rb);
        } else if ((double)x < f->lo || (double)x > f->hi) {
            gen_errorf(e, "%s: %s = %s is out of range; expected %s.", src, p, vtext(v, vb, sizeof vb), rb);
        } else if (f->type == F_INT) {
            *(int *)(base + f->off) = (int)x;
        } else {
            *(int64_t *)(base + f->off) = x;
        }
        break;
    }
    case F_NUM: {
        range_text(f, rb, sizeof rb);
        if (!is_number(v))
            gen_errorf(e, "%s: %s = %s has the wrong type; expected %s.", src, p, vtext(v, vb, sizeof vb), rb);
        else if (!in_range(f, num(v)))
            gen_errorf(e, "%s: %s = %s is out of range; expected %s.", src, p, vtext(v, vb, sizeof vb), rb);
        else
            *(double *)(base + f->off) = num(v);
        break;
    }
    case F_STR:
    case F_NAME: {
        size_t cap = f->type == F_NAME ? sizeof s->name : sizeof s->description;
        if (json_object_is_type(v, json_type_null) && f->type == F_NAME) break; /* keep the file-derived name */
        if (!json_object_is_type(v, json_type_string)) {
            gen_errorf(e, "%s: %s = %s has the wrong type; expected a string.", src, p, vtext(v, vb, sizeof vb));
            break;
        }
        const char *str = json_object_get_string(v);
        if (strlen(str) >= cap) {
            gen_errorf(e, "%s: %s is %zu characters long; expected at most %zu.", src, p, strlen(str), cap - 1);
            break;
        }
        if (f->type == F_NAME) {
            int ok = str[0] != 0 && str[0] != '.' && str[0] != '-';
            for (const char *c = str; *c; c++)
                if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.')) ok = 0;
            if (!ok) {
                gen_errorf(e, "%s: %s = %s is not a usable name; expected letters, digits, '-', '_' or '.' "
                              "(it names files and folders).", src, p, vtext(v, vb, sizeof vb));
                break;
            }
        }
        snprintf(base + f->off, cap, "%s", str);
        break;
    }
    case F_PATH: {
        if (json_object_is_type(v, json_type_null)) { s->backbone.weights[0] = 0; break; }
        if (!json_object_is_type(v, json_type_string) || !json_object_get_string(v)[0]) {
            gen_errorf(e, "%s: %s = %s has the wrong type; expected a path to a safetensors file or null.", src, p,
                       vtext(v, vb, sizeof vb));
            break;
        }
        if (strlen(json_object_get_string(v)) >= sizeof s->backbone.weights) {
            gen_errorf(e, "%s: %s is too long; expected a path of at most %zu characters.", src, p,
                       sizeof s->backbone.weights - 1);
            break;
        }
        snprintf(s->backbone.weights, sizeof s->backbone.weights, "%s", json_object_get_string(v));
        break;
    }
    case F_ENUM: {
        enum_list(f->choices, rb, sizeof rb);
        if (!json_object_is_type(v, json_type_string)) {
            gen_errorf(e, "%s: %s = %s has the wrong type; expected one of %s.", src, p, vtext(v, vb, sizeof vb), rb);
            break;
        }
        int i = enum_index(f->choices, json_object_get_string(v));
        if (i < 0) {
            int n = 0;
            while (f->choices[n]) n++;
            const char *sg = gen_suggest(json_object_get_string(v), f->choices, n);
            char sb[80] = "";
            if (sg) snprintf(sb, sizeof sb, "; did you mean \"%s\"?", sg);
            gen_errorf(e, "%s: %s = %s is not one of %s%s", src, p, vtext(v, vb, sizeof vb), rb, sg ? sb : ".");
            break;
        }
        if (f->off) *(int *)(base + f->off) = i; /* backbone.kind has a single value and no storage */
        break;
    }
    case F_BOOL:
        if (!json_object_is_type(v, json_type_boolean))
            gen_errorf(e, "%s: %s = %s has the wrong type; expected true or false.", src, p, vtext(v, vb, sizeof vb));
        else
            *(bool *)(base + f->off) = json_object_get_boolean(v);
        break;
    case F_NUM3: {
        double *d = (double *)(base + f->off);
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 3) {
            gen_errorf(e, "%s: %s = %s has the wrong type; expected an array of 3 numbers (R, G, B).", src, p,
                       vtext(v, vb, sizeof vb));
            break;
        }
        for (int i = 0; i < 3; i++) {
            json_object *x = json_object_array_get_idx(v, (size_t)i);
            if (!is_number(x) || !in_range(f, num(x))) {
                gen_errorf(e, "%s: %s[%d] = %s is out of range; expected a number %s %g and <= %g.", src, p, i,
                           vtext(x, vb, sizeof vb), f->lo_open ? ">" : ">=", f->lo, f->hi);
                return;
            }
            d[i] = num(x);
        }
        break;
    }
    case F_BETAS: {
        if (!json_object_is_type(v, json_type_array) || json_object_array_length(v) != 2) {
            gen_errorf(e, "%s: %s = %s has the wrong type; expected an array of 2 numbers [beta1, beta2].", src, p,
                       vtext(v, vb, sizeof vb));
            break;
        }
        for (int i = 0; i < 2; i++) {
            json_object *x = json_object_array_get_idx(v, (size_t)i);
            if (!is_number(x) || !(num(x) >= 0 && num(x) < 1)) {
                gen_errorf(e, "%s: %s[%d] = %s is out of range; expected a number >= 0 and < 1.", src, p, i,
                           vtext(x, vb, sizeof vb));
                return;
            }
        }
        s->train.beta1 = num(json_object_array_get_idx(v, 0));
        s->train.beta2 = num(json_object_array_get_idx(v, 1));
        break;
    }
    case F_BYTES: {
        int64_t b = -1;
        if (json_object_is_type(v, json_type_string)) {
            if (gen_parse_bytes(json_object_get_string(v), &b) != 0) b = -1;
        } else {
            int64_t x;
            if (as_int64(v, &x) && x > 0) b = x;
        }
        if (b <= 0) {
            gen_errorf(e, "%s: %s = %s is not a memory size; expected a positive number of bytes or a string such as "
                          "\"80GiB\" or \"512MiB\".", src, p, vtext(v, vb, sizeof vb));
            break;
        }
        s->memory.budget = b;
        break;
    }
    case F_LAYERS: {
        memset(s->adapter.on_layer, 0, sizeof s->adapter.on_layer);
        s->adapter.all_layers = false;
        if (json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), "all") == 0) {
            for (int i = 0; i < GEN_MAX_DEPTH; i++) s->adapter.on_layer[i] = true; /* trimmed to depth later */
            s->adapter.all_layers = true;
            break;
        }
        if (!json_object_is_type(v, json_type_array)) {
            gen_errorf(e, "%s: %s = %s has the wrong type; expected \"all\" or an array of layer indices.", src, p,
                       vtext(v, vb, sizeof vb));
            break;
        }
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++) {
            json_object *x = json_object_array_get_idx(v, i);
            int64_t l;
            if (!as_int64(x, &l) || l < 0 || l >= GEN_MAX_DEPTH) {
                gen_errorf(e, "%s: %s[%zu] = %s is not a layer index; expected an integer from 0 to backbone.depth - 1.",
                           src, p, i, vtext(x, vb, sizeof vb));
                return;
            }
            if (s->adapter.on_layer[l]) {
                gen_errorf(e, "%s: %s[%zu] = %lld is listed twice; expected each layer at most once.", src, p, i, (long long)l);
                return;
            }
            s->adapter.on_layer[l] = true;
        }
        break;
    }
    case F_SUBLAYERS: {
        s->adapter.attn = s->adapter.mlp = false;
        size_t n = json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
        if (!json_object_is_type(v, json_type_array) || n == 0) {
            gen_errorf(e, "%s: %s = %s has the wrong type; expected a non-empty array of \"attn\" and/or \"mlp\".", src, p,
                       vtext(v, vb, sizeof vb));
            break;
        }
        for (size_t i = 0; i < n; i++) {
            json_object *x = json_object_array_get_idx(v, i);
            const char *str = json_object_is_type(x, json_type_string) ? json_object_get_string(x) : "";
            bool *slot = strcmp(str, "attn") == 0 ? &s->adapter.attn : strcmp(str, "mlp") == 0 ? &s->adapter.mlp : NULL;
            if (!slot || *slot) {
                gen_errorf(e, "%s: %s[%zu] = %s is %s; expected \"attn\" or \"mlp\", each at most once.", src, p, i,
                           vtext(x, vb, sizeof vb), slot ? "listed twice" : "not a sub-layer");
                return;
            }
            *slot = true;
        }
        break;
    }
    }
}

/* ------------------------------------------------------------------------------------- overrides */

static int apply_override(json_object *root, const char *assign, gen_errors *e) {
    const char *eq = strchr(assign, '=');
    if (!eq || eq == assign) {
        gen_errorf(e, "--set %s: expected path.to.field=value.", assign);
        return -1;
    }
    char path[256];
    if ((size_t)(eq - assign) >= sizeof path) {
        gen_errorf(e, "--set: the path is too long.");
        return -1;
    }
    snprintf(path, sizeof path, "%.*s", (int)(eq - assign), assign);
    for (const char *c = path; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_' || *c == '.')) {
            gen_errorf(e, "--set %s: \"%s\" is not a field path; expected names joined by dots, e.g. train.batch.", assign, path);
            return -1;
        }
    if (is_section(path)) {
        gen_errorf(e, "--set %s: %s is a section; expected one of its fields, e.g. %s.%s.", assign, path, path,
                   strchr(field_by_prefix(path), '.') + 1);
        return -1;
    }
    if (!field_by_path(path)) {
        char sug[400];
        const char *dot = strrchr(path, '.');
        if (dot) {
            char parent[256];
            snprintf(parent, sizeof parent, "%.*s", (int)(dot - path), path);
            if (is_section(parent)) {
                suggest_key(parent, dot + 1, sug, sizeof sug);
            } else {
                const char *sec = gen_suggest(parent, gen_sections, 7);
                char guess[300];
                snprintf(guess, sizeof guess, "%s.%s", sec ? sec : "", dot + 1);
                if (sec && field_by_path(guess)) snprintf(sug, sizeof sug, "; did you mean %s?", guess);
                else suggest_key(NULL, path, sug, sizeof sug);
            }
        } else {
            suggest_key(NULL, path, sug, sizeof sug);
        }
        gen_errorf(e, "--set %s: %s is not a known field%s", assign, path, sug);
        return -1;
    }
    const char *val = eq + 1;
    int l, c;
    const char *why;
    json_object *v = NULL; /* JSON null stays a NULL value: an explicit null */
    if (strcmp(val, "null") != 0) {
        v = parse_strict(val, strlen(val), &l, &c, &why);
        if (!v) v = json_object_new_string(val); /* not JSON: a plain string such as fusion=late */
    }
    const char *dot = strchr(path, '.');
    if (!dot) {
        json_object_object_add(root, path, v);
        return 0;
    }
    char sec[64];
    snprintf(sec, sizeof sec, "%.*s", (int)(dot - path), path);
    json_object *s;
    if (!json_object_object_get_ex(root, sec, &s)) {
        s = json_object_new_object();
        json_object_object_add(root, sec, s);
    } else if (!json_object_is_type(s, json_type_object)) {
        gen_errorf(e, "--set %s: %s is not an object in the description.", assign, sec);
        json_object_put(v);
        return -1;
    }
    json_object_object_add(s, dot + 1, v);
    return 0;
}

/* --------------------------------------------------------------------------------- cross-field */

static void derive_and_check(gen_spec *s, const char *src, const char *base_dir, gen_errors *e) {
    const int D = s->backbone.dim, P = s->backbone.patch_size, S = s->backbone.image_size;
    s->use_v = s->fusion != FUSION_AUDIO;
    s->use_a = s->fusion != FUSION_VISION;
    if (S % P)
        gen_errorf(e, "%s: backbone.image_size = %d is not a multiple of backbone.patch_size = %d; expected an image "
                      "made of whole patches.", src, S, P);
    if (D % s->backbone.heads)
        gen_errorf(e, "%s: backbone.dim = %d is not divisible by backbone.heads = %d; expected heads to divide dim.",
                   src, D, s->backbone.heads);
    if (s->video.size != S)
        gen_errorf(e, "%s: video.size = %d differs from backbone.image_size = %d; expected frames of the backbone's "
                      "input size.", src, s->video.size, S);
    s->head_dim = D / (s->backbone.heads ? s->backbone.heads : 1);
    s->patches_v = (S / P) * (S / P);
    s->n_v = s->patches_v + 1;
    s->pairs = s->train.batch * s->video.frames;

    /* Kaldi fbank: 25 ms frames, 10 ms hop, snip_edges. */
    int sr = s->audio.sample_rate;
    double wsamp = s->audio.window_seconds * sr;
    s->fbank_frames = 0;
    if (s->use_a) {
        if (sr % 100)
            gen_errorf(e, "%s: audio.sample_rate = %d is not a multiple of 100; expected a rate whose 10 ms fbank hop "
                          "is a whole number of samples (16000 for the ViT/LAVISH features).", src, sr);
        else if (fabs(wsamp - llround(wsamp)) > 1e-6)
            gen_errorf(e, "%s: audio.window_seconds = %g is not a whole number of samples at %d Hz; expected a "
                          "duration such as 1.0.", src, s->audio.window_seconds, sr);
        else if ((long)llround(wsamp) < sr / 40)
            gen_errorf(e, "%s: audio.window_seconds = %g is shorter than one 25 ms fbank frame; expected at least "
                          "0.025.", src, s->audio.window_seconds);
        else {
            long w = (long)llround(wsamp);
            s->fbank_frames = (int)(1 + (w - sr / 40) / (sr / 100));
            if (s->audio.target_frames < s->fbank_frames)
                gen_errorf(e, "%s: audio.target_frames = %d is smaller than the %d fbank rows of a %g s window; expected "
                              "at least %d.", src, s->audio.target_frames, s->fbank_frames, s->audio.window_seconds,
                           s->fbank_frames);
        }
        if (s->audio.target_frames < P || s->audio.mel_bins < P)
            gen_errorf(e, "%s: the audio image (audio.target_frames = %d rows x audio.mel_bins = %d columns) is smaller "
                          "than one %d x %d patch; expected both at least backbone.patch_size.", src,
                       s->audio.target_frames, s->audio.mel_bins, P, P);
        s->patch_rows_a = s->audio.target_frames / P;
        s->patch_cols_a = s->audio.mel_bins / P;
        s->n_a = s->patch_rows_a * s->patch_cols_a + 1;
    } else {
        s->patch_rows_a = s->patch_cols_a = 0;
        s->n_a = 0;
    }

    /* Adapters. */
    s->n_adapted_layers = 0;
    if (s->fusion == FUSION_LAVISH) {
        int r = s->adapter.reduction, G = s->adapter.groups;
        for (int i = 0; i < s->backbone.depth; i++) s->n_adapted_layers += s->adapter.on_layer[i];
        int past_depth = 0;
        if (!s->adapter.all_layers)
            for (int i = s->backbone.depth; i < GEN_MAX_DEPTH; i++)
                if (s->adapter.on_layer[i]) {
                    gen_errorf(e, "%s: adapter.layers names layer %d, which is out of range; expected layer indices from "
                                  "0 to %d (backbone.depth = %d).", src, i, s->backbone.depth - 1, s->backbone.depth);
                    past_depth = 1;
                    break;
                }
        if (s->n_adapted_layers == 0 && !past_depth)
            gen_errorf(e, "%s: adapter.layers = [] names no layer; expected at least one layer for fusion \"lavish\" "
                          "(use fusion \"late\" for a head on the frozen features).", src);
        if (D % r)
            gen_errorf(e, "%s: adapter.reduction = %d does not divide backbone.dim = %d; expected a divisor of dim.", src, r, D);
        else if ((D / r) % G || D % G)
            gen_errorf(e, "%s: adapter.groups = %d does not divide both backbone.dim = %d and its reduced width %d; "
                          "expected a common divisor.", src, G, D, D / r);
    }
    for (int i = s->backbone.depth; i < GEN_MAX_DEPTH; i++) s->adapter.on_layer[i] = false;
    if (s->fusion != FUSION_LAVISH) memset(s->adapter.on_layer, 0, sizeof s->adapter.on_layer);
    s->has_adapters = s->fusion == FUSION_LAVISH && s->n_adapted_layers > 0 && (s->adapter.attn || s->adapter.mlp);

    /* Sizes that would overflow 64-bit planning: cap one step's tokens x width x depth. */
    double tok = (double)s->pairs * ((s->use_v ? s->n_v : 0) + s->n_a);
    double big = tok * (double)(D > s->backbone.mlp_dim ? D : s->backbone.mlp_dim) * s->backbone.depth * 64.0;
    double pe = (double)D * 3 * P * P;
    double nmax = s->use_v && s->n_v > s->n_a ? s->n_v : s->n_a;
    if (big > 1.0e17 || pe > 1.0e12 || nmax * nmax * s->pairs * s->backbone.heads > 1.0e17)
        gen_errorf(e, "%s: this configuration (%d pairs of %d + %d tokens, width %d, depth %d) is far too large to "
                      "plan; expected a step below about 100 PB of activations.", src, s->pairs, s->n_v, s->n_a, D,
                   s->backbone.depth);

    /* Weights path: kept as written (it is part of the description); resolved against the description's
     * folder into weights_path for opening. */
    s->backbone.weights_path[0] = 0;
    if (s->backbone.weights[0]) {
        char *full = s->backbone.weights_path;
        size_t cap = sizeof s->backbone.weights_path;
        int n = (s->backbone.weights[0] == '/' || !base_dir || !base_dir[0])
                    ? snprintf(full, cap, "%s", s->backbone.weights)
                    : snprintf(full, cap, "%s/%s", base_dir, s->backbone.weights);
        struct stat st;
        if (n < 0 || (size_t)n >= cap)
            gen_errorf(e, "%s: backbone.weights = \"%s\" is too long once resolved; expected a shorter path.", src,
                       s->backbone.weights);
        else if (stat(full, &st) != 0 || access(full, R_OK) != 0)
            gen_errorf(e, "%s: backbone.weights = \"%s\" cannot be read (%s); expected a readable safetensors file "
                          "(relative paths are resolved against the description's folder).", src, s->backbone.weights,
                       strerror(errno));
        else if (!S_ISREG(st.st_mode))
            gen_errorf(e, "%s: backbone.weights = \"%s\" is not a regular file; expected a safetensors file.", src,
                       s->backbone.weights);
    }
}

/* ----------------------------------------------------------------------------------------- entry */

static void default_name(const char *source, char *out, size_t n) {
    const char *b = strrchr(source, '/');
    b = b ? b + 1 : source;
    size_t l = strlen(b);
    if (l > 5 && strcmp(b + l - 5, ".json") == 0) l -= 5;
    size_t j = 0;
    for (size_t i = 0; i < l && j + 1 < n; i++) {
        char c = b[i];
        out[j++] = (isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.') ? c : '_';
    }
    out[j] = 0;
    if (!j || out[0] == '.' || out[0] == '-') snprintf(out, n, "model");
}

int gen_spec_parse_text(const char *text, size_t len, const char *src, const char *base_dir,
                        const char *const *overrides, int n_overrides, gen_spec *s, gen_errors *e) {
    memset(s, 0, sizeof *s);
    e->n = e->dropped = 0;
    int line = 0, col = 0;
    const char *why = "";
    json_object *root = parse_strict(text, len, &line, &col, &why);
    if (!root) {
        gen_errorf(e, "%s:%d:%d: invalid JSON: %s.", src, line, col, why);
        return e->n;
    }
    if (!json_object_is_type(root, json_type_object)) {
        gen_errorf(e, "%s: the description is %s; expected a JSON object such as {\"backbone\": {...}, ...}.", src,
                   tname(root));
        json_object_put(root);
        return e->n;
    }
    char dup[256];
    int dline = 0;
    if (duplicate_key(text, len, dup, sizeof dup, &dline)) {
        gen_errorf(e, "%s:%d: the key \"%s\" is given twice in one object; expected each key once.", src, dline, dup);
        json_object_put(root);
        return e->n;
    }
    for (int i = 0; i < n_overrides; i++) apply_override(root, overrides[i], e);
    if (e->n) {
        json_object_put(root);
        return e->n;
    }
    check_unknown(root, src, e);
    default_name(src, s->name, sizeof s->name);
    for (int i = 0; i < gen_n_fields; i++) {
        const gen_field *f = &gen_fields[i];
        json_object *v = lookup(root, f->path);
        json_object *def = NULL;
        int explicit_null = 0;
        if (v == NULL) {
            /* absent, or present as JSON null */
            const char *dot = strchr(f->path, '.');
            json_object *sec = root, *tmp;
            if (dot) {
                char secname[64];
                snprintf(secname, sizeof secname, "%.*s", (int)(dot - f->path), f->path);
                if (!json_object_object_get_ex(root, secname, &sec) || !json_object_is_type(sec, json_type_object)) sec = NULL;
            }
            explicit_null = sec && json_object_object_get_ex(sec, dot ? dot + 1 : f->path, &tmp);
        }
        if (v == NULL && explicit_null && f->type != F_PATH && f->type != F_NAME) {
            char rb[128] = "a value";
            if (f->type == F_INT || f->type == F_I64 || f->type == F_NUM) range_text(f, rb, sizeof rb);
            else if (f->type == F_ENUM) { strcpy(rb, "one of "); enum_list(f->choices, rb + 7, sizeof rb - 7); }
            else if (f->type == F_BOOL) strcpy(rb, "true or false");
            else if (f->type == F_STR) strcpy(rb, "a string");
            else if (f->type == F_BYTES) strcpy(rb, "a memory size such as \"80GiB\"");
            else if (f->type == F_NUM3 || f->type == F_BETAS) strcpy(rb, "an array of numbers");
            else if (f->type == F_LAYERS) strcpy(rb, "\"all\" or an array of layer indices");
            else if (f->type == F_SUBLAYERS) strcpy(rb, "an array of \"attn\" and/or \"mlp\"");
            gen_errorf(e, "%s: %s = null has the wrong type; expected %s (leave the field out for its default).", src,
                       f->path, rb);
            continue;
        }
        if (v == NULL) v = def = json_tokener_parse(f->def);
        if (v == NULL && (f->type == F_PATH || f->type == F_NAME)) continue; /* default null */
        /* a value from --set: its messages name the override, not only the file */
        char from[1200];
        const char *label = src;
        const size_t pl = strlen(f->path);
        for (int j = n_overrides - 1; j >= 0 && label == src; j--)
            if (!strncmp(overrides[j], f->path, pl) && overrides[j][pl] == '=')
                snprintf(from, sizeof from, "%.500s (--set %.600s)", src, overrides[j]), label = from;
        convert(f, v, label, s, e);
        if (def) json_object_put(def);
    }
    json_object_put(root);
    if (e->n == 0) derive_and_check(s, src, base_dir, e);
    return e->n;
}

int gen_spec_load(const char *path, const char *const *overrides, int n_overrides, gen_spec *s, gen_errors *e) {
    e->n = e->dropped = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        gen_errorf(e, "%s: cannot open the model description (%s).", path, strerror(errno));
        return e->n;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        gen_errorf(e, "%s: not a regular file; expected a JSON model description.", path);
        fclose(f);
        return e->n;
    }
    if (st.st_size > (16 << 20)) {
        gen_errorf(e, "%s: %lld bytes is too large for a model description; expected at most 16 MiB.", path,
                   (long long)st.st_size);
        fclose(f);
        return e->n;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        gen_errorf(e, "%s: cannot read the model description (%s).", path, strerror(errno));
        free(buf);
        fclose(f);
        return e->n;
    }
    fclose(f);
    buf[n] = 0;
    char dir[1024] = ".";
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) ? (int)(slash - path) : 1, path);
    int r = gen_spec_parse_text(buf, n, path, dir, overrides, n_overrides, s, e);
    free(buf);
    return r;
}
