/* gen_ir -> avgen_graph, and the per-configuration constants the ops read. */
#include "graph.h"

#include <stdlib.h>
#include <string.h>

int gen_graph_build(const gen_ir *ir, const gen_mem *m, gen_graph *out) {
    memset(out, 0, sizeof *out);
    out->tensors = calloc((size_t)ir->nt + 1, sizeof *out->tensors);
    out->ops = calloc((size_t)ir->nops + 1, sizeof *out->ops);
    out->refs = calloc((size_t)ir->nrefs + 1, sizeof *out->refs);
    if (!out->tensors || !out->ops || !out->refs) {
        gen_graph_free(out);
        return -1;
    }
    for (int i = 0; i < ir->nt; i++) {
        const gen_tensor *t = &ir->t[i];
        avgen_tensor_desc *d = &out->tensors[i];
        d->name = t->name;
        d->kind = (uint8_t)t->kind, d->dtype = (uint8_t)t->dtype, d->arena = (uint8_t)gen_tensor_arena(t);
        d->ndim = (uint8_t)t->ndim;
        for (int k = 0; k < t->ndim; k++) d->shape[k] = t->shape[k];
        d->offset = t->offset, d->bytes = t->bytes, d->first = t->first, d->last = t->last;
        d->param = t->param, d->group = (uint8_t)t->group;
    }
    for (int i = 0; i < ir->nops; i++) {
        const gen_op *o = &ir->ops[i];
        avgen_op_desc *d = &out->ops[i];
        d->name = o->name;
        d->kind = (uint16_t)o->kind, d->phase = (uint8_t)o->phase, d->accumulate = (uint8_t)o->accumulate;
        d->recompute = (uint8_t)o->recompute, d->layer = (int16_t)o->layer, d->stream = o->stream;
        d->in_at = o->in_at, d->n_in = o->n_in, d->out_at = o->out_at, d->n_out = o->n_out;
        d->flops = o->flops, d->eps = (float)o->eps;
    }
    memcpy(out->refs, ir->refs, sizeof(int32_t) * (size_t)ir->nrefs);
    out->g.tensors = out->tensors, out->g.ops = out->ops, out->g.refs = out->refs;
    out->g.n_tensors = ir->nt, out->g.n_ops = ir->nops;
    for (int a = 0; a < ARENA_COUNT; a++) out->g.arena_bytes[a] = m->arena[a];
    return 0;
}

void gen_graph_free(gen_graph *g) {
    free(g->tensors);
    free(g->ops);
    free(g->refs);
    memset(g, 0, sizeof *g);
}

void gen_consts(const gen_spec *s, avgen_consts *k) {
    memset(k, 0, sizeof *k);
    k->batch = s->train.batch, k->frames = s->video.frames, k->image = s->backbone.image_size;
    k->patch = s->backbone.patch_size, k->dim = s->backbone.dim, k->heads = s->backbone.heads;
    /* a stream the description does not use has no tokens (as plan.json says) */
    k->tokens_v = s->use_v ? s->n_v : 0, k->tokens_a = s->use_a ? s->n_a : 0, k->audio_rows = s->audio.target_frames;
    k->mel_bins = s->audio.mel_bins, k->classes = s->head.classes;
    for (int i = 0; i < 3; i++) k->mean[i] = (float)s->video.mean[i], k->std[i] = (float)s->video.std[i];
    k->lr = s->train.lr, k->head_lr = s->train.head_lr, k->weight_decay = s->train.weight_decay;
    k->beta1 = s->train.beta1, k->beta2 = s->train.beta2, k->adam_eps = s->train.eps;
    k->adamw = s->train.optimizer == OPT_ADAMW;
}
