/* rt_run: what `avgen step`, `avgen bench` and the generated programs share around a context: choosing
 * and attaching a backend, random inputs, bringing a step's results back to the host, and the benchmark
 * report (docs/bench.md). */
#ifndef AVGEN_RT_RUN_H
#define AVGEN_RT_RUN_H
#include <stdint.h>
#include <stdio.h>

#include "rt_cuda.h"
#include "rt_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const char *backend;   /* "cpu", "cuda" or "auto" (CUDA when a device is usable); NULL: "cpu" */
    const char *precision; /* CUDA GEMM precision: "fp32", "bf16" or "tf32"; NULL: "fp32" */
    int device;
    const char *kernels;   /* CUDA kernels: "nvcc" (built in) or "nvrtc" (compiled at run time); NULL: "nvcc" */
    const char *kernel_src, *kernel_src_name; /* NVRTC source (a program's kernels.cu); NULL: the library */
    const avgen_kernel_table *kernel_table;  /* rt_cuda_opts.kernel_table (NULL: the runtime's copy) */
    const avgen_ctx *share_frozen;           /* rt_cuda_opts.share_frozen (NULL: none) */
    int quiet;                               /* no "kernels: ..." line on stderr */
    int prefetch_inputs;                     /* rt_cuda_opts.prefetch_inputs (training and evaluation loops) */
} rt_backend_opts;

/* Checks the options: 0, or 2 with one sentence in err (an unknown backend, precision or kernel source). */
int rt_backend_check(const rt_backend_opts *o, char *err, size_t errlen);
/* Attaches the chosen backend to a context whose parameters and inputs are on the host (CPU: nothing to
 * do). *is_cuda tells which one runs. 0, or 1 with err (asked for CUDA where none can run). */
int rt_backend_attach(avgen_ctx *c, const rt_backend_opts *o, int *is_cuda, char *err, size_t errlen);
/* Waits for the step and brings the trainable arena (parameters, gradients, buffers, Adam state) and the
 * logits and loss back to the host (CUDA); 0, or 1 with err. Also reports an op's bad-data failure. */
int rt_step_results(avgen_ctx *c, char *err, size_t errlen);

typedef struct {
    const char *params;     /* parameters (safetensors) or NULL: MODEL.md section 6 initialisation from seed */
    const char *inputs;     /* inputs (safetensors), or "random": drawn from the seed */
    const char *out;        /* the step dump (docs/step-dump.md) */
    const char *init_out;   /* when set: the full parameter set used */
    const char *update_out; /* when set: one optimizer update after the dump, then every parameter and buffer */
    const char *name;       /* the configuration, for the log line */
} rt_step_opts;

/* One training step (no update in the dump) on the chosen backend: what `avgen step` and `NAME-train --step`
 * run. fwd, bwd, upd: the generated straight-line code, or NULL for the interpreter. Logs the parameters
 * loaded and the step's loss and times to log. 0, or 1 (a failure while working) or 2 (bad input) with err. */
int rt_step_run(const avgen_graph *g, const avgen_consts *k, uint64_t seed, const rt_step_opts *so, const rt_backend_opts *bo,
                rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd, FILE *log, char *err, size_t errlen);

/* Sum of the op FLOPs of one phase (-1: all phases). */
double rt_graph_flops(const avgen_graph *g, int phase);

typedef struct {
    int warmup, steps;      /* warm-up steps (>= 0; < 0: 5) and timed steps (>= 1; 0: 20) */
    double peak_flops;      /* dense bf16 peak for MFU; 0: from the device name (H100/H200 989e12) */
    double bandwidth;       /* memory bandwidth for the roofline (bytes/s); 0: from the device name (H100 3.35e12) */
    const char *json_path;  /* when set: the result as one JSON object */
    const char *name;       /* configuration name for the report */
    int64_t planned_peak;   /* the planner's training peak in bytes (model.h / plan), 0 if unknown */
    const char *const *kind_names; /* op kind names, AVGEN_OP_KIND_COUNT of them */
} rt_bench_opts;

/* Times training steps on the attached CUDA context (rt_cuda_bench) and prints the report: step time,
 * pairs/s, clips/s, TFLOP/s, MFU, memory against the plan, time per op kind. 0, or 1 with err. */
int rt_bench_report(avgen_ctx *c, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd,
                    const rt_bench_opts *o, FILE *out, char *err, size_t errlen);

/* The whole benchmark of one graph: parameters initialised from seed (MODEL.md section 6), random inputs,
 * the CUDA backend attached with bo's GEMM precision (NULL: bf16) and kernels, rt_bench_report, cleanup.
 * What `avgen bench` and `NAME-train --bench` run. 0, 1 (no GPU, a CUDA error) or 2 (bad options), with err. */
int rt_bench_run(const avgen_graph *g, const avgen_consts *k, uint64_t seed, const rt_backend_opts *bo, rt_cuda_phase_fn fwd,
                 rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd, const rt_bench_opts *o, FILE *out, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
