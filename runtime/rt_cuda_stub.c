/* rt_cuda_stub.c: the CUDA backend's entry points in a build without the CUDA toolkit: every one says so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt_cuda.h"

static const char *const k_why = "this build has no CUDA backend (it was configured without the CUDA toolkit)";

int rt_cuda_usable(char *why, size_t whylen) {
    snprintf(why, whylen, "%s", k_why);
    return 0;
}
int rt_cuda_attach(avgen_ctx *c, const rt_cuda_opts *o, char *err, size_t errlen) {
    (void)c, (void)o;
    snprintf(err, errlen, "%s", k_why);
    return 1;
}
static int no(char *err, size_t errlen) {
    snprintf(err, errlen, "%s", k_why);
    return 1;
}
int rt_cuda_upload(avgen_ctx *c, int arena, char *err, size_t errlen) { (void)c, (void)arena; return no(err, errlen); }
int rt_cuda_download(avgen_ctx *c, int arena, char *err, size_t errlen) { (void)c, (void)arena; return no(err, errlen); }
int rt_cuda_download_tensor(avgen_ctx *c, int tensor, char *err, size_t errlen) { (void)c, (void)tensor; return no(err, errlen); }
int rt_cuda_sync(avgen_ctx *c, char *err, size_t errlen) { (void)c; return no(err, errlen); }
int rt_cuda_grad_sumsq(avgen_ctx *c, double *out, char *err, size_t errlen) {
    (void)c;
    *out = 0;
    return no(err, errlen);
}
void rt_cuda_detach(avgen_ctx *c) { (void)c; }
void rt_cuda_op(avgen_ctx *c, const avgen_graph *g, int op) { (void)g, (void)op, c->failed = 1; }
void rt_cuda_zero_grads(avgen_ctx *c) { (void)c; }
void *rt_cuda_host_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
void rt_cuda_host_free(void *p) { free(p); }
int rt_cuda_upload_tensor(avgen_ctx *c, int t, const void *src, char *err, size_t errlen) {
    (void)c, (void)t, (void)src;
    return no(err, errlen);
}
int rt_cuda_can_stage(const avgen_ctx *c) { (void)c; return 0; }
int rt_cuda_stage_input(avgen_ctx *c, int t, const void *src, char *err, size_t errlen) {
    (void)c, (void)t, (void)src;
    return no(err, errlen);
}
int rt_cuda_take_inputs(avgen_ctx *c, char *err, size_t errlen) { (void)c; return no(err, errlen); }
void rt_cuda_drop_staged(avgen_ctx *c) { (void)c; }
void rt_cuda_train_fwd_bwd(avgen_ctx *c, int zero_grads, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd) {
    (void)zero_grads, (void)fwd, (void)bwd, c->failed = 1;
}
void rt_cuda_train_update(avgen_ctx *c, rt_cuda_phase_fn upd) { (void)upd, c->failed = 1; }
void rt_cuda_forward(avgen_ctx *c, rt_cuda_phase_fn fwd) { (void)fwd, c->failed = 1; }
long long rt_cuda_graph_launches(const avgen_ctx *c) { (void)c; return 0; }
const char *rt_cuda_device_name(const avgen_ctx *c) { (void)c; return "no device"; }
const char *rt_cuda_kernels_info(const avgen_ctx *c, int *mode, double *seconds, int *cache_hit) {
    (void)c;
    if (mode) *mode = RT_KERNELS_NVCC;
    if (seconds) *seconds = 0;
    if (cache_hit) *cache_hit = 0;
    return k_why;
}
int rt_cuda_bench(avgen_ctx *c, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd, rt_cuda_bench_result *r,
                  char *err, size_t errlen) {
    (void)c, (void)fwd, (void)bwd, (void)upd, (void)r;
    return no(err, errlen);
}
