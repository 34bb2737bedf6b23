/* safetensors.h: reader and writer for the safetensors format (avgen weights and checkpoints).
 * A file is: 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON (name -> {dtype, shape,
 * data_offsets}, plus optional "__metadata__" of string -> string, space padded), then the data buffer.
 * st_open maps a file read-only and validates the whole header up front; st_writer writes a new file
 * atomically (sorted names, header padded to a multiple of 8, temp file + fsync + rename). */
#ifndef AVGEN_RUNTIME_SAFETENSORS_H
#define AVGEN_RUNTIME_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { ST_F32, ST_BF16, ST_F16, ST_F64, ST_I64, ST_I32, ST_U8, ST_BOOL } st_dtype;

size_t st_dtype_size(st_dtype);                    /* bytes per element; 0 for a value outside the enum */
const char *st_dtype_name(st_dtype);               /* "F32", "BF16", ...; "?" for a value outside the enum */
int st_dtype_parse(const char *s, st_dtype *out);  /* 0 ok, -1 unknown (names are case-sensitive) */

#define ST_MAX_DIMS 8

/* One tensor of an open file; owned by the st_file and valid until st_close.
 * `data` points into the read-only mapping at 8 + N + begin and is NOT necessarily aligned
 * (a header length that is not a multiple of 8, or odd offsets, are legal): read elements with
 * memcpy, or use st_to_f32. A zero-element tensor (some dim is 0) has nbytes 0; a scalar has ndim 0,
 * numel 1. numel and nbytes are guaranteed to fit in int64_t. */
typedef struct {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    int64_t numel;
    uint64_t nbytes;
    const void *data;
} st_tensor;

typedef struct st_file st_file;

/* Opens and validates the whole header; maps the file read-only with mmap. On failure returns NULL and
 * writes one clear sentence naming the file and the problem into err (err may be NULL / errlen 0).
 * Accepted beyond the strict minimum: gaps between tensors, unused bytes after the last tensor, JSON
 * whitespace (not only spaces) after the header object. A duplicate JSON key keeps its last value.
 * The file must not be truncated while it is open (that would SIGBUS on access, as with any mmap). */
st_file *st_open(const char *path, char *err, size_t errlen);
void st_close(st_file *);                          /* NULL is fine */
size_t st_count(const st_file *);
const st_tensor *st_at(const st_file *, size_t i); /* in file order of data offsets; NULL if i >= count */
const st_tensor *st_find(const st_file *, const char *name);  /* exact name, binary search; NULL if absent */
/* Backbone lookup: Hugging Face ViT names may be stored with or without the leading "vit." prefix; looks
 * up `name` as given, then with "vit." added or removed. */
const st_tensor *st_find_any_prefix(const st_file *, const char *name);
const char *st_metadata(const st_file *, const char *key);  /* NULL if absent */
size_t st_metadata_count(const st_file *);         /* number of __metadata__ entries, in file order: */
const char *st_metadata_key(const st_file *, size_t i);     /* NULL if i >= st_metadata_count */

/* Converts any floating tensor (F32, BF16, F16, F64) to float32 into dst (numel floats); handles
 * unaligned data. F64 values out of float range become +-Inf. Returns 0, or -1 for a non-float dtype. */
int st_to_f32(const st_tensor *, float *dst);
float st_bf16_to_f32(uint16_t);
uint16_t st_f32_to_bf16(float);                    /* round to nearest even; NaN stays NaN (quieted, sign kept) */
float st_f16_to_f32(uint16_t);                     /* IEEE binary16, subnormals, Inf and NaN included */

typedef struct st_writer st_writer;
st_writer *st_writer_new(void);                    /* NULL on out of memory */
/* Adds a tensor; the data pointer is referenced (not copied) until st_writer_write returns and must hold
 * numel * st_dtype_size(dtype) bytes (it may be NULL when that is 0). Duplicate names, empty names, the
 * name "__metadata__", bad dtypes, ndim outside 0..8, negative dims and size overflow are errors (return
 * -1 and set err). */
int st_writer_add(st_writer *, const char *name, st_dtype, int ndim, const int64_t *shape,
                  const void *data, char *err, size_t errlen);
/* Sets a __metadata__ entry (copied; setting a key again replaces its value). 0 ok, -1 on NULL or OOM. */
int st_writer_metadata(st_writer *, const char *key, const char *value);
/* Writes names sorted (strcmp order, data laid out in the same order; "__metadata__" first with its keys
 * sorted), header padded with spaces to a multiple of 8, to PATH.tmp.<pid>, fsyncs, then renames onto
 * path: a reader never sees a partial file (and readers that still map the old file keep its old data).
 * 0 ok, -1 with err set (the temp file is removed). The writer can be written again or freed. */
int st_writer_write(st_writer *, const char *path, char *err, size_t errlen);
void st_writer_free(st_writer *);                  /* NULL is fine */

#ifdef __cplusplus
}
#endif
#endif
