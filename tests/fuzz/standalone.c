/* A driver for LLVMFuzzerTestOneInput where libFuzzer is not available (gcc, plain CTest runs):
 *
 *   standalone [-n ITER] [-seed S] CORPUS_FILES_OR_DIRS...
 *
 * Runs every corpus file once, then ITER inputs made by deterministic mutations of the corpus (a seeded
 * PRNG, so a run is reproducible): bit flips, byte inserts and deletes, chunk copies, splices of two corpus
 * inputs, number tokens replaced by interesting values, string tokens replaced by field names and enum
 * values, extra 0x00-separated overrides, truncation. The target aborts on a broken invariant, so when this
 * returns every input passed; it prints "N passed, 0 failed". Before the process dies (abort, or a
 * sanitizer report) the input that killed it is written to ./crash-standalone-<index> (or to the folder
 * named by $AVGEN_FUZZ_ARTIFACT_DIR); run `standalone that-file` to reproduce. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Incremented by the target for each input it accepts as valid (weak: any target works without it). */
extern long avgen_fuzz_accepted __attribute__((weak));

/* Called by ASan/UBSan just before they end the process (weak: absent without sanitizers). */
extern void __sanitizer_set_death_callback(void (*)(void)) __attribute__((weak));

#define FZ_MAX_INPUT (64 * 1024)

typedef struct { uint8_t *d; size_t n; char *name; } blob;

static blob *corpus;
static int ncorpus, capcorpus;

/* Mutants the target accepted, mutated again half of the time: reaching the checks behind the parser
 * needs valid inputs, and most single mutations of a valid input make it invalid. */
#define POOL_MAX 256
static blob pool[POOL_MAX];
static int npool;

/* ----------------------------------------------------------------------------- crash reproduction */

static const uint8_t *cur_data;
static size_t cur_size;
static char crash_path[4096];

static void dump_current(void) {
    static volatile sig_atomic_t done;
    if (done || !cur_data || !crash_path[0]) return;
    done = 1;
    int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return;
    size_t off = 0;
    while (off < cur_size) {
        ssize_t w = write(fd, cur_data + off, cur_size - off);
        if (w <= 0) break;
        off += (size_t)w;
    }
    close(fd);
    static const char msg[] = "standalone: the failing input is in ";
    (void)!write(2, msg, sizeof msg - 1);
    (void)!write(2, crash_path, strlen(crash_path));
    (void)!write(2, "\n", 1);
}

static void on_signal(int sig) {
    dump_current();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void run_one(const uint8_t *d, size_t n, long index, const char *what) {
    const char *dir = getenv("AVGEN_FUZZ_ARTIFACT_DIR");
    cur_size = n;
    snprintf(crash_path, sizeof crash_path, "%s%scrash-standalone-%ld", dir && *dir ? dir : ".",
             "/", index);
    if (getenv("AVGEN_FUZZ_VERBOSE")) fprintf(stderr, "standalone: input %ld (%s, %zu bytes)\n", index, what ? what : "a mutant", n);
    /* An exact-size copy so that reads past the end are caught by ASan. */
    uint8_t *exact = malloc(n ? n : 1);
    if (!exact) abort();
    memcpy(exact, d, n);
    cur_data = exact;
    LLVMFuzzerTestOneInput(exact, n);
    cur_data = NULL;
    free(exact);
}

/* ---------------------------------------------------------------------------------- corpus loading */

static void add_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "standalone: cannot open %s\n", path);
        exit(2);
    }
    uint8_t *buf = malloc(FZ_MAX_INPUT);
    if (!buf) abort();
    size_t n = fread(buf, 1, FZ_MAX_INPUT, f);
    fclose(f);
    if (ncorpus == capcorpus) {
        capcorpus = capcorpus ? 2 * capcorpus : 64;
        corpus = realloc(corpus, sizeof *corpus * (size_t)capcorpus);
        if (!corpus) abort();
    }
    corpus[ncorpus++] = (blob){buf, n, strdup(path)};
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void add_path(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "standalone: %s does not exist\n", path);
        exit(2);
    }
    if (!S_ISDIR(st.st_mode)) {
        add_file(path);
        return;
    }
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "standalone: cannot read the folder %s\n", path);
        exit(2);
    }
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, de->d_name);
        if (stat(full, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            names = realloc(names, sizeof *names * (size_t)cap);
            if (!names) abort();
        }
        names[n++] = strdup(full);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str); /* readdir order is not stable: sort for reproducibility */
    for (int i = 0; i < n; i++) {
        add_file(names[i]);
        free(names[i]);
    }
    free(names);
}

/* ------------------------------------------------------------------------------------------ PRNG */

static uint64_t rng_state;
static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* -------------------------------------------------------------------------------------- mutations */

typedef struct { uint8_t d[FZ_MAX_INPUT]; size_t n; } buf_t;

static void replace(buf_t *b, size_t at, size_t len, const void *with, size_t wl) {
    if (at > b->n) at = b->n;
    if (len > b->n - at) len = b->n - at;
    if (b->n - len + wl > FZ_MAX_INPUT) return;
    memmove(b->d + at + wl, b->d + at + len, b->n - at - len);
    memcpy(b->d + at, with, wl);
    b->n = b->n - len + wl;
}

static const char *const k_numbers[] = {
    "0", "-1", "1", "2", "3", "4", "8", "16", "64", "65", "768", "1024", "4096", "4097", "65536", "65537",
    "100000", "2147483647", "2147483648", "-2147483649", "4294967296", "9007199254740991", "9007199254740992",
    "9223372036854775807", "9223372036854775808", "-9223372036854775809", "1e309", "-1e309", "1e308", "1e-320",
    "1e18", "9e18", "1e17", "0.5", "-0", "-0.0", "1.0", "4.0", "1e3", "0.999", "1e-12", "12", "13", "60", "60.0001",
    "16000", "16001", "192000", "240", "512", "513", "24", "48", "96"};

static const char *const k_strings[] = {
    "lavish", "late", "vision", "audio", "adam", "adamw", "constant", "cosine", "step", "fp32", "bf16", "none",
    "attention", "block", "all", "attn", "mlp", "vit", "80GiB", "1KiB", "512 MiB", "1.5e9", "0B", "-1GiB",
    "1e30TB", "nan", "inf", "0x10", "", " ", "a\\nb", "\\u0000", "\\ud800", "model", "CMakeLists.txt", "/",
    ".", "-x", "name.with.dots", "batch", "dim", "depth", "layers", "sublayers", "betas", "budget", "recompute",
    "weights", "backbone", "video", "train", "memory", "head", "adapter", "precision", "fusion", "description"};

static const char **g_paths; /* every schema path (gen_schema_paths) */
static int g_npaths;
int gen_schema_paths(const char **paths, int max);

static int is_num_start(const uint8_t *d, size_t i, size_t n) {
    if (d[i] == '-') return i + 1 < n && d[i + 1] >= '0' && d[i + 1] <= '9';
    return d[i] >= '0' && d[i] <= '9' && (i == 0 || !((d[i - 1] >= '0' && d[i - 1] <= '9') || d[i - 1] == '.' ||
                                                      d[i - 1] == 'e' || d[i - 1] == 'E' || d[i - 1] == '-' ||
                                                      d[i - 1] == '+'));
}

/* The k-th number token (ignoring the insides of strings roughly: a token must follow a JSON separator). */
static int find_number(const buf_t *b, size_t *at, size_t *len) {
    size_t starts[512];
    int ns = 0;
    for (size_t i = 0; i < b->n && ns < 512; i++)
        if (is_num_start(b->d, i, b->n)) starts[ns++] = i;
    if (!ns) return 0;
    size_t s = starts[below((size_t)ns)], e = s + 1;
    while (e < b->n && strchr("0123456789.eE+-", b->d[e]) && b->d[e]) e++;
    *at = s, *len = e - s;
    return 1;
}

/* A random string token "...", content only (between the quotes). */
static int find_string(const buf_t *b, size_t *at, size_t *len) {
    size_t starts[512], ends[512];
    int ns = 0;
    for (size_t i = 0; i < b->n && ns < 512; i++) {
        if (b->d[i] != '"') continue;
        size_t j = i + 1;
        while (j < b->n && b->d[j] != '"') j += b->d[j] == '\\' ? 2 : 1;
        if (j >= b->n) break;
        starts[ns] = i + 1, ends[ns] = j, ns++;
        i = j;
    }
    if (!ns) return 0;
    size_t k = below((size_t)ns);
    *at = starts[k], *len = ends[k] - starts[k];
    return 1;
}

static const char *random_path(void) {
    if (g_npaths && below(4)) {
        const char *p = g_paths[below((size_t)g_npaths)];
        if (below(3) == 0) { /* the last component alone */
            const char *dot = strrchr(p, '.');
            return dot ? dot + 1 : p;
        }
        return p;
    }
    return k_strings[below(sizeof k_strings / sizeof *k_strings)];
}

static const char *random_number(void) { return k_numbers[below(sizeof k_numbers / sizeof *k_numbers)]; }

/* One mutation. Most keep the JSON well-formed (tokens replaced, members and overrides added) so that many
 * inputs get past the parser to the checks and the lowering; the rest break the syntax. */
static void mutate(buf_t *b) {
    static const uint8_t k_bytes[] = "{}[]\":,0123456789-.eE \n\t\\truefalsnl\x00\x7f\xff";
    size_t at, len;
    switch (below(20)) {
    case 0: /* bit flip */
        if (b->n) b->d[below(b->n)] ^= (uint8_t)(1u << below(8));
        break;
    case 1: { /* insert an interesting byte */
        uint8_t c = below(4) ? k_bytes[below(sizeof k_bytes - 1)] : (uint8_t)rnd();
        replace(b, below(b->n + 1), 0, &c, 1);
        break;
    }
    case 2: /* delete a few bytes */
        if (b->n) replace(b, below(b->n), 1 + below(8), "", 0);
        break;
    case 3: { /* copy a chunk elsewhere, inserted or overwriting */
        if (!b->n) break;
        size_t s = below(b->n), l = 1 + below(b->n - s < 64 ? b->n - s : 64);
        uint8_t tmp[64];
        memcpy(tmp, b->d + s, l);
        replace(b, below(b->n + 1), below(3) ? 0 : l, tmp, l);
        break;
    }
    case 4: { /* splice: a prefix of this input and a suffix of another corpus input */
        const blob *o = &corpus[below((size_t)ncorpus)];
        size_t cut = below(b->n + 1), from = below(o->n + 1);
        if (cut + (o->n - from) > FZ_MAX_INPUT) break;
        memcpy(b->d + cut, o->d + from, o->n - from);
        b->n = cut + (o->n - from);
        break;
    }
    case 5: /* truncation */
        b->n = below(b->n + 1);
        break;
    case 6: case 7: case 8: case 9: case 10: { /* a number token becomes an interesting value */
        if (!find_number(b, &at, &len)) break;
        const char *v = random_number();
        replace(b, at, len, v, strlen(v));
        break;
    }
    case 11: case 12: case 13: case 14: { /* a string (value or key) becomes a field name or an enum value */
        if (!find_string(b, &at, &len)) break;
        const char *v = random_path();
        replace(b, at, len, v, strlen(v));
        break;
    }
    case 15: case 16: { /* an override \0path=value (the first one ends the JSON) */
        char ov[160];
        const char *v = below(2) ? random_number() : random_path();
        int l = snprintf(ov, sizeof ov, "%c%s=%s", 0, random_path(), v);
        if (l > 0 && b->n + (size_t)l <= FZ_MAX_INPUT) replace(b, b->n, 0, ov, (size_t)l);
        break;
    }
    case 17: { /* a number token becomes a string or null, or a string becomes a number */
        if (below(2) ? !find_number(b, &at, &len) : !find_string(b, &at, &len)) break;
        const char *const vs[] = {"\"4\"", "null", "true", "[]", "{}", "[1, 2]", "4"};
        const char *v = vs[below(sizeof vs / sizeof *vs)];
        if (at > 0 && b->d[at - 1] == '"' && at + len < b->n) at--, len += 2; /* the quotes go too */
        replace(b, at, len, v, strlen(v));
        break;
    }
    case 18: case 19: { /* a new member "key": value after some '{' */
        size_t opens[256];
        int no = 0;
        for (size_t i = 0; i < b->n && no < 256; i++)
            if (b->d[i] == '{') opens[no++] = i;
        if (!no) break;
        char m[160];
        const char *v = below(3) ? random_number() : random_path();
        int quote = v[0] < '0' || v[0] > '9';
        if (v[0] == '-') quote = 0;
        int l = snprintf(m, sizeof m, "\"%s\": %s%s%s,", random_path(), quote ? "\"" : "", v, quote ? "\"" : "");
        if (l > 0) replace(b, opens[below((size_t)no)] + 1, 0, m, (size_t)l);
        break;
    }
    }
}

/* ------------------------------------------------------------------------------------------- main */

int main(int argc, char **argv) {
    long iters = 1000;
    uint64_t seed = 1;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) iters = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "-seed") == 0 && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--") == 0) { i++; break; }
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "usage: %s [-n ITER] [-seed S] CORPUS_FILES_OR_DIRS...\n", argv[0]);
            return 2;
        } else add_path(argv[i]);
    }
    for (; i < argc; i++) add_path(argv[i]);
    if (ncorpus == 0) {
        fprintf(stderr, "usage: %s [-n ITER] [-seed S] CORPUS_FILES_OR_DIRS...\n", argv[0]);
        return 2;
    }
    static const char *paths[256];
    g_npaths = gen_schema_paths(paths, 256);
    if (g_npaths > 256) g_npaths = 256;
    g_paths = paths;

    /* Under a sanitizer its own handlers report faults (with a stack) and call dump_current; without one,
     * the signal handlers save the input. abort() (a broken invariant) is caught either way. */
    if (__sanitizer_set_death_callback) {
        __sanitizer_set_death_callback(dump_current);
    } else {
        signal(SIGSEGV, on_signal);
        signal(SIGBUS, on_signal);
        signal(SIGFPE, on_signal);
    }
    signal(SIGABRT, on_signal);

    long passed = 0;
    for (int k = 0; k < ncorpus; k++) {
        run_one(corpus[k].d, corpus[k].n, k, corpus[k].name);
        passed++;
    }
    rng_state = seed;
    buf_t *b = malloc(sizeof *b);
    if (!b) abort();
    for (long it = 0; it < iters; it++) {
        const blob *src = npool && below(2) ? &pool[below((size_t)npool)] : &corpus[below((size_t)ncorpus)];
        memcpy(b->d, src->d, src->n);
        b->n = src->n;
        int nm = below(3) ? 1 : 2 + (int)below(3);
        for (int k = 0; k < nm; k++) mutate(b);
        long before = &avgen_fuzz_accepted ? avgen_fuzz_accepted : 0;
        run_one(b->d, b->n, ncorpus + it, src->name);
        passed++;
        if (&avgen_fuzz_accepted && avgen_fuzz_accepted != before) {
            blob *slot = npool < POOL_MAX ? &pool[npool++] : &pool[below(POOL_MAX)];
            uint8_t *copy = malloc(b->n ? b->n : 1);
            if (!copy) abort();
            memcpy(copy, b->d, b->n);
            free(slot->d);
            slot->d = copy, slot->n = b->n, slot->name = NULL;
        }
    }
    free(b);
    for (int k = 0; k < npool; k++) free(pool[k].d);
    for (int k = 0; k < ncorpus; k++) free(corpus[k].d), free(corpus[k].name);
    free(corpus);
    printf("%ld passed, 0 failed\n", passed);
    return 0;
}
