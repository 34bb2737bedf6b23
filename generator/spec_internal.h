/* Internals shared by the spec parser files: the schema table type and small helpers. */
#ifndef AVGEN_SPEC_INTERNAL_H
#define AVGEN_SPEC_INTERNAL_H
#include "spec.h"

typedef enum {
    F_INT, F_I64, F_NUM, F_STR, F_NAME, F_ENUM, F_BOOL, F_NUM3, F_LAYERS, F_SUBLAYERS, F_BETAS, F_BYTES, F_PATH
} gen_ftype;

typedef struct {
    const char *path;
    gen_ftype type;
    double lo, hi;       /* inclusive range; lo is exclusive when lo_open */
    int lo_open;
    const char *const *choices;   /* F_ENUM: NULL-terminated */
    size_t off;          /* into gen_spec */
    const char *def;     /* default as JSON text */
} gen_field;

extern const gen_field gen_fields[];
extern const int gen_n_fields;
extern const char *const gen_sections[];

/* Levenshtein distance, capped; used for "did you mean". */
int gen_edit_distance(const char *a, const char *b);
/* Best match for word among candidates (distance <= max(2, len/3)), or NULL. */
const char *gen_suggest(const char *word, const char *const *cands, int n);
#endif
