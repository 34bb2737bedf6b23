/* The runtime's view of a lowered, planned IR (runtime/avgen_graph.h), built in memory: what `avgen step`
 * runs directly and what the emitter writes out as C tables. */
#ifndef AVGEN_GEN_GRAPH_H
#define AVGEN_GEN_GRAPH_H
#include "avgen_graph.h"
#include "plan.h"

typedef struct {
    avgen_graph g;
    avgen_tensor_desc *tensors;
    avgen_op_desc *ops;
    int32_t *refs;
} gen_graph;

/* ir must be packed (gen_pack) with m; names point into ir, which must outlive the graph. */
int gen_graph_build(const gen_ir *ir, const gen_mem *m, gen_graph *out);
void gen_graph_free(gen_graph *g);
void gen_consts(const gen_spec *s, avgen_consts *k);
#endif
