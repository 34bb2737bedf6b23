/* Test helper: a model description lowered, planned and made runnable on the CPU in one call. */
#ifndef AVGEN_TESTS_MODEL_HARNESS_H
#define AVGEN_TESTS_MODEL_HARNESS_H
#include <stdio.h>
#include <string.h>

#include "graph.h"
#include "rt_model.h"

typedef struct {
    gen_spec spec;
    gen_ir ir;
    gen_mem mem;
    gen_graph graph;
    avgen_consts k;
    avgen_ctx ctx;
} harness;

/* Loads ROOT/models/MODEL.json with overrides, forces fp32 (the CPU backend), lowers for train or inference. */
static int harness_open(harness *h, const char *root, const char *model, const char *const *sets, int nsets, int train) {
    char path[1200], err[1024];
    gen_errors e;
    memset(h, 0, sizeof *h);
    snprintf(path, sizeof path, "%s/models/%s.json", root, model);
    if (gen_spec_load(path, sets, nsets, &h->spec, &e)) {
        fprintf(stderr, "%s\n", e.msg[0]);
        return -1;
    }
    h->spec.precision = PREC_FP32;
    if (gen_lower(&h->spec, h->spec.memory.recompute, train, &h->ir)) return -1;
    gen_pack(&h->ir, &h->mem);
    if (gen_graph_build(&h->ir, &h->mem, &h->graph)) return -1;
    gen_consts(&h->spec, &h->k);
    if (rt_ctx_init(&h->ctx, &h->graph.g, &h->k, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return 0;
}

static void harness_close(harness *h) {
    rt_ctx_free(&h->ctx);
    gen_graph_free(&h->graph);
    gen_ir_free(&h->ir);
}

static float *harness_f32(harness *h, const char *name) {
    int t = rt_find(&h->graph.g, name);
    return t < 0 ? NULL : (float *)rt_ptr(&h->ctx, t);
}
#endif
