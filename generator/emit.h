/* Emitter: writes build-out/<name>/ for a validated spec: plan.json, model.h, model.c, kernels.cu,
 * main_train.c, main_infer.c, CMakeLists.txt, filled from templates/ (embedded in the avgen binary) and
 * from the lowered, planned IR. Deterministic: the same description gives byte-identical files, and a
 * file whose content did not change is not rewritten (build systems see no change). */
#ifndef AVGEN_EMIT_H
#define AVGEN_EMIT_H
#include <stddef.h>

#include "spec.h"

/* Returns 0 (msg: a short summary), 1 on an I/O failure or 2 when the plan does not fit the budget and
 * force is 0 (msg: one sentence). */
int gen_emit(const gen_spec *s, const char *dir, int force, char *msg, size_t msglen);

/* Embedded template text by file name ("model.h.tmpl"), or NULL. */
const char *gen_template(const char *name);
#endif
