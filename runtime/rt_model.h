/* rt_model: a generated graph made runnable on the CPU: arenas in host memory, parameters loaded from a
 * safetensors file or initialised as MODEL.md section 6 says, inputs, the step run op by op (the
 * generated straight-line code or this interpreter call the same rt_cpu_op), and step dumps. */
#ifndef AVGEN_RT_MODEL_H
#define AVGEN_RT_MODEL_H
#include <stddef.h>
#include <stdint.h>

#include "avgen_graph.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct avgen_ctx {
    const avgen_graph *g;
    const avgen_consts *k;
    unsigned char *arena[AVGEN_ARENA_COUNT];
    int64_t adam_step;         /* updates done so far (Adam bias correction) */
    double lr_scale;           /* the schedule's multiplier of train.lr and train.head_lr (1 when unset) */
    double grad_scale;         /* applied to the gradients by the update: 1 / accumulation steps (1 when unset) */
    int failed;                /* set by an op that met bad data (e.g. a label out of range) */
    float *frames_f32;         /* when set: normalised f32 [B,T,3,S,S] frames that replace the uint8 input */
    void *dev;                 /* when set: the CUDA backend's state (rt_cuda.h); ops and zeroing run there */
    char err[512];
    /* inputs rt_stage_input was given and rt_take_inputs has not set yet (where the backend stages none itself) */
    int n_pending;
    int pending_t[8];
    const void *pending_src[8];
} avgen_ctx;

/* A phase of the step (generated straight-line code); NULL where a caller may interpret the graph instead. */
typedef void (*rt_phase_fn)(avgen_ctx *ctx);

/* 0; 1 with err when host memory runs out; 2 with err for a bad AVGEN_CPU_THREADS (rt_par.h) */
int rt_ctx_init(avgen_ctx *c, const avgen_graph *g, const avgen_consts *k, char *err, size_t errlen);
void rt_ctx_free(avgen_ctx *c);
/* 0 when the arenas of c (and of also, another context the same run computes on the CPU, or NULL) fit this
 * machine's physical memory, else 1 with err. The CPU backend writes all of them; the activation arena's pages are
 * only taken as they are written (rt_ctx_init), so a run that would not fit must be refused before it starts: every
 * path that computes on the CPU calls this (rt_backend_attach, the validation context of a CPU training run, the
 * inference program's --params forward). Physical memory only: not a cgroup's limit. */
int rt_host_fits(const avgen_ctx *c, const avgen_ctx *also, char *err, size_t errlen);
void *rt_ptr(const avgen_ctx *c, int tensor);
int rt_find(const avgen_graph *g, const char *name); /* -1 if absent */

/* 0 when the n values of tensor `name` are finite (and, for a variance, not negative); else 2 with one
 * sentence in err naming what ("parameter", "input", ...), the tensor, the value and its element. */
int rt_check_values(const char *what, const char *name, const float *v, int64_t n, char *err, size_t errlen);
/* Every parameter and buffer: from `from` when it holds the name (backbone names with or without
 * "vit."), else initialised from seed. Returns 0, or 2 with err set: a shape or dtype mismatch, a value that is
 * not finite (or a negative running variance: rt_check_values), or a file that holds none of them. */
int rt_init_params(avgen_ctx *c, const st_file *from, uint64_t seed, int *n_loaded, int *n_init, char *err,
                   size_t errlen);
/* frames as uint8 [B,T,S,S,3] (the loader's layout) or normalised f32 [B,T,3,S,S] (step dumps), audio f32
 * [B,T,A,M], labels i64 or i32 [B]. 0, or 2 with err. */
int rt_load_inputs(avgen_ctx *c, const st_file *in, char *err, size_t errlen);
/* Inputs for benchmarks and `--inputs random`: uint8 frames, standard normal audio, labels uniform over
 * the classes, drawn from seed. */
void rt_random_inputs(avgen_ctx *c, uint64_t seed);
void rt_zero_grads(avgen_ctx *c);
/* Runs every op of one phase in order (the interpreter of the generated step). */
void rt_run_phase(avgen_ctx *c, int phase);
/* fn (a generated program's straight-line phase), or, when NULL, rt_run_phase. */
void rt_run_phase_fn(avgen_ctx *c, rt_phase_fn fn, int phase);
/* What the training loop and evaluation run, on the backend the context is attached to (on the CUDA backend as
 * CUDA graphs once warm: rt_cuda_train_fwd_bwd, rt_cuda_train_update, rt_cuda_forward): the gradients zeroed
 * (zero_grads) then the forward and backward phases; the update phase; the forward phase alone. */
void rt_run_fwd_bwd(avgen_ctx *c, int zero_grads, rt_phase_fn fwd, rt_phase_fn bwd);
void rt_run_update(avgen_ctx *c, rt_phase_fn upd);
void rt_run_forward(avgen_ctx *c, rt_phase_fn fwd);
/* Input tensor t's bytes from src: into the host arena, or on the CUDA backend to the device asynchronously
 * (rt_cuda_upload_tensor: src must stay unchanged until the next sync, a download). 0, or -1 with err. */
int rt_set_input(avgen_ctx *c, int t, const void *src, char *err, size_t errlen);
/* The next batch's inputs while the current step runs: rt_stage_input for each input tensor, then rt_take_inputs
 * before the step that reads them. On a CUDA context attached with prefetch_inputs they go up on a second stream at
 * once and the take moves them into place (rt_cuda_stage_input, rt_cuda_take_inputs); elsewhere (the CPU backend,
 * AVGEN_PREFETCH=0) the take sets them (rt_set_input). src must stay unchanged until a synchronisation after the
 * take (the step's loss download). 0, or -1 with err. */
int rt_stage_input(avgen_ctx *c, int t, const void *src, char *err, size_t errlen);
int rt_take_inputs(avgen_ctx *c, char *err, size_t errlen);
/* Forgets the staged inputs that will not be taken (a loop that stops early), once no copy reads their sources or
 * those of inputs set or taken before (on the CUDA backend it waits for the device): the batches can then go back
 * to the loader. */
void rt_drop_inputs(avgen_ctx *c);
/* logits, loss, grad.<name> of every trainable tensor, BatchNorm buffers. */
int rt_write_step_dump(avgen_ctx *c, const char *path, char *err, size_t errlen);
/* Every parameter and buffer (the full set a step used). */
int rt_write_params(avgen_ctx *c, const char *path, char *err, size_t errlen);

/* One CPU reference op (runtime/rt_cpu_ops.c). */
void rt_cpu_op(avgen_ctx *c, const avgen_graph *g, int op);
/* One op on the backend the context is attached to: rt_cuda_op when c->dev is set, else rt_cpu_op. */
void rt_op(avgen_ctx *c, const avgen_graph *g, int op);

#ifdef __cplusplus
}
#endif
#endif
