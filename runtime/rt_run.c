/* rt_run.c: backend choice, random inputs, step results and the benchmark report (see rt_run.h). */
#include "rt_run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_fs.h"
#include "rt_par.h"

int rt_cuda_precision(const char *name) {
    return !strcmp(name, "fp32") ? RT_CUDA_FP32 : !strcmp(name, "bf16") ? RT_CUDA_BF16 : !strcmp(name, "tf32") ? RT_CUDA_TF32 : -1;
}


int rt_backend_check(const rt_backend_opts *o, char *err, size_t errlen) {
    const char *b = o->backend ? o->backend : "cpu";
    if (strcmp(b, "cpu") && strcmp(b, "cuda") && strcmp(b, "auto")) {
        snprintf(err, errlen, "--backend %s is not a backend; expected cpu, cuda or auto", b);
        return 2;
    }
    if (o->precision && rt_cuda_precision(o->precision) < 0) {
        snprintf(err, errlen, "--precision %s is not a precision; expected fp32, bf16 or tf32", o->precision);
        return 2;
    }
    if (o->precision && rt_cuda_precision(o->precision) != RT_CUDA_FP32 && !strcmp(b, "cpu")) {
        snprintf(err, errlen, "--precision %s needs the CUDA backend; the CPU backend computes in fp32", o->precision);
        return 2;
    }
    if (o->kernels && rt_kernels_mode(o->kernels) < 0) {
        snprintf(err, errlen, "--kernels %s is not a kernel source; expected nvcc or nvrtc", o->kernels);
        return 2;
    }
    if (o->kernels && rt_kernels_mode(o->kernels) == RT_KERNELS_NVRTC && !strcmp(b, "cpu")) {
        snprintf(err, errlen, "--kernels nvrtc needs the CUDA backend (--backend cuda or auto)");
        return 2;
    }
    return 0;
}

int rt_backend_attach(avgen_ctx *c, const rt_backend_opts *o, int *is_cuda, char *err, size_t errlen) {
    const char *b = o->backend ? o->backend : "cpu";
    *is_cuda = 0;
    if (!strcmp(b, "cpu")) return rt_host_fits(c, NULL, err, errlen);
    char why[512];
    if (!rt_cuda_usable(why, sizeof why)) {
        if (!strcmp(b, "auto")) {
            if (rt_host_fits(c, NULL, err, errlen)) return 1;
            if (o->kernels && rt_kernels_mode(o->kernels) == RT_KERNELS_NVRTC)
                fprintf(stderr, "note: --backend auto: %s; the CPU backend runs, so --kernels nvrtc has no effect\n", why);
            return 0;
        }
        snprintf(err, errlen, "--backend cuda: %s", why);
        return 1;
    }
    rt_cuda_opts co = {o->device, o->precision ? rt_cuda_precision(o->precision) : RT_CUDA_FP32,
                       o->kernels ? rt_kernels_mode(o->kernels) : RT_KERNELS_NVCC, o->kernel_src, o->kernel_src_name,
                       o->kernel_table, o->share_frozen, o->prefetch_inputs};
    if (co.kernels == RT_KERNELS_NVRTC)
        fprintf(stderr, "kernels: NVRTC build for this device (cache %s; the first build takes a while)\n",
                rt_nvrtc_cache_dir());
    if (rt_cuda_attach(c, &co, err, errlen)) return 1;
    if (!o->quiet) fprintf(stderr, "kernels: %s\n", rt_cuda_kernels_info(c, NULL, NULL, NULL));
    *is_cuda = 1;
    return 0;
}

int rt_step_results(avgen_ctx *c, char *err, size_t errlen) {
    if (c->dev) {
        /* parameters, gradients, buffers, Adam state; of the activations only what a dump reads */
        if (rt_cuda_download(c, AVGEN_ARENA_TRAIN, err, errlen)) return 1;
        static const char *const acts[] = {"logits", "loss"};
        for (int i = 0; i < 2; i++) {
            const int t = rt_find(c->g, acts[i]);
            if (t >= 0 && rt_cuda_download_tensor(c, t, err, errlen)) return 1;
        }
    }
    if (c->failed) {
        snprintf(err, errlen, "%s", c->err);
        return 2;
    }
    return 0;
}

int rt_step_run(const avgen_graph *g, const avgen_consts *k, uint64_t seed, const rt_step_opts *so, const rt_backend_opts *bo,
                rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd, FILE *log, char *err, size_t errlen) {
    int rc, cuda = 0, nl = 0, ni = 0;
    if ((rc = rt_check_out("--out", so->out, err, errlen)) || (rc = rt_check_out("--update-out", so->update_out, err, errlen)) ||
        (rc = rt_check_out("--init-out", so->init_out, err, errlen)))
        return rc;
    if ((rc = rt_backend_check(bo, err, errlen))) return rc;
    avgen_ctx c;
    if ((rc = rt_ctx_init(&c, g, k, err, errlen))) return rc;
    st_file *pf = NULL, *inf = NULL;
    if (so->params && !(pf = st_open(so->params, err, errlen))) rc = 2;
    if (!rc) rc = rt_init_params(&c, pf, seed, &nl, &ni, err, errlen);
    if (!rc)
        fprintf(log, "%s: %d parameter tensors loaded, %d initialised from seed %llu\n", so->name, nl, ni,
                (unsigned long long)seed);
    if (!rc && so->init_out && rt_write_params(&c, so->init_out, err, errlen)) rc = 1;
    if (!rc && !strcmp(so->inputs, "random")) rt_random_inputs(&c, seed);
    else if (!rc && !(inf = st_open(so->inputs, err, errlen))) rc = 2;
    if (!rc && inf) rc = rt_load_inputs(&c, inf, err, errlen);
    if (!rc) rc = rt_backend_attach(&c, bo, &cuda, err, errlen);
    double t0 = 0, t1 = 0, t2 = 0;
    if (!rc) {
        rt_zero_grads(&c);
        t0 = rt_now();
        rt_run_phase_fn(&c, fwd, AVGEN_PH_FORWARD);
        if (cuda) rc = rt_cuda_sync(&c, err, errlen);
        t1 = rt_now();
    }
    if (!rc) {
        rt_run_phase_fn(&c, bwd, AVGEN_PH_BACKWARD);
        if (cuda) rc = rt_cuda_sync(&c, err, errlen);
        t2 = rt_now();
    }
    if (!rc) rc = rt_step_results(&c, err, errlen);
    if (!rc && rt_write_step_dump(&c, so->out, err, errlen)) rc = 1;
    if (!rc && so->update_out) {
        rt_run_phase_fn(&c, upd, AVGEN_PH_UPDATE);
        rc = rt_step_results(&c, err, errlen);
        if (!rc && rt_write_params(&c, so->update_out, err, errlen)) rc = 1;
    }
    if (!rc) {
        char where[400];
        if (cuda)
            snprintf(where, sizeof where, "%s (%s GEMMs, %s kernels)", rt_cuda_device_name(&c),
                     bo->precision ? bo->precision : "fp32", bo->kernels ? bo->kernels : "nvcc");
        else {
            char e2[160];
            const int nt = rt_par_threads(e2, sizeof e2);
            snprintf(where, sizeof where, "the CPU, %d thread%s", nt, nt == 1 ? "" : "s");
        }
        fprintf(log, "%s: loss %.6f; forward %.3f s, backward %.3f s on %s (%.1f GFLOP/s); wrote %s\n", so->name,
                *(float *)rt_ptr(&c, rt_find(g, "loss")), t1 - t0, t2 - t1, where,
                rt_graph_flops(g, -1) / 1e9 / (t2 - t0 > 0 ? t2 - t0 : 1e-9), so->out);
    }
    if (cuda) rt_cuda_detach(&c);
    st_close(pf);
    st_close(inf);
    rt_ctx_free(&c);
    return rc;
}

double rt_graph_flops(const avgen_graph *g, int phase) {
    double f = 0;
    for (int i = 0; i < g->n_ops; i++)
        if (phase < 0 || g->ops[i].phase == phase) f += g->ops[i].flops;
    return f;
}

int rt_bench_report(avgen_ctx *c, rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd,
                    const rt_bench_opts *o, FILE *out, char *err, size_t errlen) {
    rt_cuda_bench_result r;
    memset(&r, 0, sizeof r);
    r.warmup = o->warmup, r.steps = o->steps;
    if (rt_cuda_bench(c, fwd, bwd, upd, &r, err, errlen)) return 1;
    const avgen_consts *k = c->k;
    const double s = r.median_ms / 1e3;
    const double flops = rt_graph_flops(c->g, -1);
    const double peak = o->peak_flops > 0 ? o->peak_flops : rt_device_peak(rt_cuda_device_name(c));
    const double pairs = (double)k->batch * k->frames;
    const double tflops = flops / s / 1e12;
    /* The planner's peak: arenas + op scratch + workspace (given by the caller), else the arenas alone. */
    int64_t planned = 0;
    for (int a = 0; a < AVGEN_ARENA_COUNT; a++) planned += c->g->arena_bytes[a];
    if (o->planned_peak > 0) planned = o->planned_peak;
    /* bf16 activations (AVGEN_BF16_OPERANDS=1), BatchNorm outputs or adapter fuses not stored: the plan with the
     * activation arena repacked as the backend repacks it (the same functions) and the frozen weights' bf16 copy */
    int64_t planned16 = -1;
    unsigned char *f16 =
        r.n_bf16_tensors > 0 || r.n_bn_fused > 0 || r.n_lat_fused > 0 ? calloc((size_t)c->g->n_tensors + 1, 1) : NULL;
    const int fuse = (r.n_bn_fused > 0 ? RT_CUDA_FUSE_BN : 0) | (r.n_lat_fused > 0 ? RT_CUDA_FUSE_LATENT : 0);
    if (f16 && rt_cuda_act_classes(c->g, r.n_bf16_tensors > 0, r.attention_fused, fuse, f16, NULL, NULL, NULL))
        free(f16), f16 = NULL;
    if (f16) {
        const int64_t act = rt_cuda_pack_act(c->g, f16, NULL);
        if (act >= 0)
            planned16 = planned - c->g->arena_bytes[AVGEN_ARENA_ACT] + act +
                        (r.n_bf16_tensors > 0 ? rt_cuda_bf16_copy_bytes(c->g->arena_bytes) : 0);
    }
    /* the next batch's device copy (the training loop's, which the bench times too): the input arena once more */
    if (r.stage_bytes) {
        planned += c->g->arena_bytes[AVGEN_ARENA_INPUT];
        if (planned16 >= 0) planned16 += c->g->arena_bytes[AVGEN_ARENA_INPUT];
    }
    const int64_t planned32 = planned;
    if (planned16 >= 0) planned = planned16;
    double kernel_s = 0;
    int kernel_hit = 0, kernel_mode = RT_KERNELS_NVCC;
    const char *kinfo = rt_cuda_kernels_info(c, &kernel_mode, &kernel_s, &kernel_hit);
    fprintf(out, "%s on %s\n", o->name ? o->name : "model", rt_cuda_device_name(c));
    fprintf(out, "  kernels    %s\n", kinfo);
    fprintf(out, "  batch %d x %d frames; %s step%s, %d warm-up + %d timed\n", k->batch, k->frames,
            r.graph ? "CUDA graph" : "eager", r.graph ? " replays" : "s", r.warmup, r.steps);
    fprintf(out, "  step       median %.3f ms (min %.3f, mean %.3f, max %.3f); first (cold) step %.1f ms, %s %.1f ms\n",
            r.median_ms, r.min_ms, r.mean_ms, r.max_ms, r.first_step_ms, r.graph ? "graph capture" : "second step (host)",
            r.graph_capture_ms);
    fprintf(out, "  attention  %s\n", r.attention_fused ? "fused bf16 tensor-core kernels (log-sum-exp kept, no score matrix)"
                                                           : "per-head GEMMs batched over pairs, score matrices in op scratch");
    fprintf(out, "  throughput %.1f pairs/s, %.2f clips/s\n", pairs / s, k->batch / s);
    if (r.loop_plain_ms > 0) {  /* host-timed steps with their uploads and read-backs, as rt_train runs them */
        fprintf(out, "  loop       a step as training runs it (a %.1f MB batch uploaded from page-locked memory, its loss and "
                     "gradient norm read back): median ", r.input_bytes / 1e6);
        if (r.loop_ms > 0) fprintf(out, "%.3f ms with the next batch uploaded while a step runs, ", r.loop_ms);
        fprintf(out, "%.3f ms with each batch uploaded before its step%s\n", r.loop_plain_ms, r.loop_ms > 0 ? "" : " (AVGEN_PREFETCH=0)");
    }
    if (r.n_gemm_tuned)
        fprintf(out, "  GEMMs      %d of %d algorithms chosen by timing cuBLASLt's candidates (AVGEN_GEMM_AUTOTUNE=1), %d of them "
                     "not its first choice; %.0f ms of trials in the first step\n",
                r.n_gemm_tuned, r.n_gemm_plans, r.n_gemm_tune_changed, r.gemm_tune_ms);
    fprintf(out, "  compute    %.2f GFLOP per step: %.1f TFLOP/s", flops / 1e9, tflops);
    if (peak > 0) fprintf(out, ", MFU %.1f%% of %.0f TFLOP/s\n", 100 * flops / s / peak, peak / 1e12);
    else fprintf(out, " (MFU: unknown device peak, pass --peak)\n");
    const size_t allocated = r.arena_bytes + r.scratch_bytes + r.workspace_bytes + r.bf16_weights_bytes + r.stage_bytes;
    fprintf(out, "  memory     planned peak %.3f GiB", planned / 1073741824.0);
    if (planned16 >= 0)
        fprintf(out, " with %d bf16 activations, %d BatchNorm outputs and %d adapter fuses not stored (%.3f GiB as the graph "
                     "stores them)",
                r.n_bf16_tensors, r.n_bn_fused, r.n_lat_fused, planned32 / 1073741824.0);
    fprintf(out, "; avgen allocated %.3f GiB (arenas %.3f + op scratch %.3f + cuBLASLt workspace %.3f", allocated / 1073741824.0,
            r.arena_bytes / 1073741824.0, r.scratch_bytes / 1073741824.0, r.workspace_bytes / 1073741824.0);
    if (r.bf16_weights_bytes) fprintf(out, " + bf16 weights %.3f", r.bf16_weights_bytes / 1073741824.0);
    if (r.stage_bytes) fprintf(out, " + next batch %.3f", r.stage_bytes / 1073741824.0);
    fprintf(out, "), %+.1f%% of the plan; device memory in use %.3f GiB\n",
            planned > 0 ? 100.0 * ((double)allocated / (double)planned - 1) : 0.0, r.device_used_bytes / 1073741824.0);
    /* per op kind: model FLOPs and the bytes of its ops' tensors as the backend stores them */
    double kind_fl[AVGEN_OP_KIND_COUNT] = {0}, kind_by[AVGEN_OP_KIND_COUNT] = {0};
    const double bw = o->bandwidth > 0 ? o->bandwidth : rt_device_bandwidth(rt_cuda_device_name(c));
    const double roof_all = rt_cuda_roofline(c->g, f16, peak, bw, kind_by, kind_fl);
    const double roof = bw > 0 && peak > 0 ? roof_all : 0; /* 0: unknown device */
    double total = 0;
    for (int i = 0; i < AVGEN_OP_KIND_COUNT; i++) total += r.family_ms[i];
    fprintf(out, "  time per op kind (one eager step with events around each op, %.3f ms in all; %d distinct GEMMs, bias "
                 "added by cuBLASLt's epilogue in %d (as bf16 in %d), by a kernel in %d; %d activations stored as bf16):\n",
            total, r.n_gemm_plans, r.n_bias_fused, r.n_bias_bf16, r.n_bias_kernel, r.n_bf16_tensors);
    int order[AVGEN_OP_KIND_COUNT];
    for (int i = 0; i < AVGEN_OP_KIND_COUNT; i++) order[i] = i;
    for (int a = 1; a < AVGEN_OP_KIND_COUNT; a++) {
        int v = order[a], b = a - 1;
        while (b >= 0 && r.family_ms[order[b]] < r.family_ms[v]) order[b + 1] = order[b], b--;
        order[b + 1] = v;
    }
    for (int i = 0; i < AVGEN_OP_KIND_COUNT; i++) {
        const int kd = order[i];
        if (r.family_ms[kd] <= 0) continue;
        const double fl = kind_fl[kd], by = kind_by[kd];
        fprintf(out, "    %-22s %9.3f ms %5.1f%%  %8.1f TFLOP/s  %7.0f GB/s of its tensors\n", o->kind_names ? o->kind_names[kd] : "?",
                r.family_ms[kd], total > 0 ? 100 * r.family_ms[kd] / total : 0, fl / (r.family_ms[kd] / 1e3) / 1e12,
                by / (r.family_ms[kd] / 1e3) / 1e9);
    }
    /* the slowest ops: where a kernel family's time goes (bytes: what the op's tensors hold, a lower bound of
     * its memory traffic) */
    if (r.op_ms) {
        const int n = c->g->n_ops, show = n < 15 ? n : 15;
        int *idx = malloc(sizeof(int) * (size_t)(n + 1));
        if (idx) {
            for (int i = 0; i < n; i++) idx[i] = i;
            for (int a = 1; a < n; a++) {
                int v = idx[a], b = a - 1;
                while (b >= 0 && r.op_ms[idx[b]] < r.op_ms[v]) idx[b + 1] = idx[b], b--;
                idx[b + 1] = v;
            }
            fprintf(out, "  slowest ops (of %d):\n", n);
            for (int i = 0; i < show; i++) {
                const avgen_op_desc *op = &c->g->ops[idx[i]];
                const double bytes = rt_cuda_op_bytes(c->g, idx[i], f16);
                const double sec = r.op_ms[idx[i]] / 1e3;
                fprintf(out, "    %-44s %8.3f ms  %8.1f TFLOP/s  %7.0f GB/s of its tensors\n", op->name, r.op_ms[idx[i]],
                        sec > 0 ? op->flops / sec / 1e12 : 0, sec > 0 ? bytes / sec / 1e9 : 0);
            }
            free(idx);
        }
    }
    /* The roofline of this graph: each op kind at the device's bandwidth for its tensors' bytes (each read or
     * written once) or at the peak for its FLOPs, whichever takes longer. No kernel of these ops can make
     * the step faster; only fewer bytes (bf16, fusion across ops) can. */
    if (bw > 0 && peak > 0) {
        fprintf(out, "  roofline   %.1f ms: each op kind moving its tensors' bytes once at %.2f TB/s or doing its FLOPs at the "
                     "peak, whichever is longer; MFU at most %.1f%% with these ops; the step took %.2fx that\n",
                roof * 1e3, bw / 1e12, 100 * flops / roof / peak, s / roof);
    }
    free(f16);
    /* per kernel: which launches of an op kind take its time */
    if (r.n_kernel_slots > 0) {
        int kidx[RT_CUDA_KERNEL_SLOTS], nk = 0;
        double ktot = 0;
        for (int i = 0; i < r.n_kernel_slots; i++)
            if (r.kernel_calls[i]) kidx[nk++] = i, ktot += r.kernel_ms[i];
        for (int a = 1; a < nk; a++) {
            int v = kidx[a], b = a - 1;
            while (b >= 0 && r.kernel_ms[kidx[b]] < r.kernel_ms[v]) kidx[b + 1] = kidx[b], b--;
            kidx[b + 1] = v;
        }
        fprintf(out, "  time per kernel (one eager step with events around each launch, %.3f ms in all):\n", ktot);
        for (int i = 0; i < nk && i < 20; i++)
            fprintf(out, "    %-24s %6d launches %9.3f ms %5.1f%%  %8.1f us each\n", r.kernel_name[kidx[i]],
                    r.kernel_calls[kidx[i]], r.kernel_ms[kidx[i]], ktot > 0 ? 100 * r.kernel_ms[kidx[i]] / ktot : 0,
                    1e3 * r.kernel_ms[kidx[i]] / r.kernel_calls[kidx[i]]);
    }
    if (o->json_path) {
        FILE *f = fopen(o->json_path, "w");
        if (!f) {
            snprintf(err, errlen, "cannot write %s", o->json_path);
            free(r.op_ms);
            return 1;
        }
        fprintf(f, "{\"name\":\"%s\",\"device\":\"%s\",\"batch\":%d,\"frames\":%d,\"graph\":%s,\"warmup\":%d,\"steps\":%d,\"median_ms\":%.4f,"
                   "\"mean_ms\":%.4f,\"min_ms\":%.4f,\"max_ms\":%.4f,\"first_step_ms\":%.3f,\"pairs_per_s\":%.3f,"
                   "\"clips_per_s\":%.4f,\"step_flops\":%.6g,\"tflops\":%.3f,\"mfu\":%.5f,\"planned_bytes\":%lld,"
                   "\"allocated_bytes\":%zu,\"scratch_bytes\":%zu,\"workspace_bytes\":%zu,\"device_used_bytes\":%zu,"
                   "\"kernels\":\"%s\",\"kernel_start_s\":%.4f,\"kernel_cache_hit\":%s,\"gemm_plans\":%d,"
                   "\"bias_epilogue_gemms\":%d,\"bias_kernel_gemms\":%d,\"bias_bf16_gemms\":%d,\"bf16_tensors\":%d,"
                   "\"bf16_weights_bytes\":%zu,\"bn_on_load\":%d,\"fuse_on_load\":%d,\"latent_bwd_pairs\":%d,\"dy16_carries\":%d,\"latdots_carries\":%d,\"latent_ln_fused\":%d,\"attention_literal_shapes\":%d,\"roofline_ms\":%.4f,\"attention\":\"%s\","
                   "\"gemm_tuned\":%d,\"gemm_tune_changed\":%d,\"gemm_tune_ms\":%.3f,\"last_loss\":\"%a\",\"loop_ms\":%.4f,"
                   "\"loop_plain_ms\":%.4f,\"input_bytes\":%.0f,\"stage_bytes\":%zu,\"families_ms\":{",
                o->name ? o->name : "model", rt_cuda_device_name(c), k->batch, k->frames, r.graph ? "true" : "false",
                r.warmup, r.steps, r.median_ms, r.mean_ms, r.min_ms, r.max_ms, r.first_step_ms, pairs / s, k->batch / s, flops, tflops,
                peak > 0 ? flops / s / peak : 0.0, (long long)planned, r.arena_bytes, r.scratch_bytes, r.workspace_bytes,
                r.device_used_bytes, rt_kernels_mode_name(kernel_mode), kernel_s,
                kernel_hit ? "true" : "false", r.n_gemm_plans, r.n_bias_fused, r.n_bias_kernel, r.n_bias_bf16,
                r.n_bf16_tensors, r.bf16_weights_bytes, r.n_bn_fused, r.n_lat_fused, r.n_latbwd_pairs, r.n_dy16_carries, r.n_latdots_carries, r.n_latln_fused, r.n_attn_literal, roof * 1e3, r.attention_fused ? "fused" : "gemm",
                r.n_gemm_tuned, r.n_gemm_tune_changed, r.gemm_tune_ms, (double)r.last_loss, r.loop_ms, r.loop_plain_ms,
                r.input_bytes, r.stage_bytes);
        int first = 1;
        for (int i = 0; i < AVGEN_OP_KIND_COUNT; i++)
            if (r.family_ms[i] > 0)
                fprintf(f, "%s\"%s\":%.4f", first ? "" : ",", o->kind_names ? o->kind_names[i] : "?", r.family_ms[i]), first = 0;
        fprintf(f, "},\"kernel_ms\":{");
        for (int i = 0, first = 1; i < r.n_kernel_slots; i++)
            if (r.kernel_calls[i])
                fprintf(f, "%s\"%s\":[%d,%.4f]", first ? "" : ",", r.kernel_name[i], r.kernel_calls[i], r.kernel_ms[i]), first = 0;
        fprintf(f, "},\"ops_ms\":[");
        for (int i = 0; r.op_ms && i < c->g->n_ops; i++) fprintf(f, "%s[\"%s\",%.4f]", i ? "," : "", c->g->ops[i].name, r.op_ms[i]);
        fprintf(f, "]}\n");
        if (fclose(f)) {
            snprintf(err, errlen, "cannot write %s", o->json_path);
            free(r.op_ms);
            return 1;
        }
    }
    free(r.op_ms);
    return 0;
}

int rt_bench_run(const avgen_graph *g, const avgen_consts *k, uint64_t seed, const rt_backend_opts *bopts,
                 rt_cuda_phase_fn fwd, rt_cuda_phase_fn bwd, rt_cuda_phase_fn upd, const rt_bench_opts *o, FILE *out,
                 char *err, size_t errlen) {
    rt_backend_opts bo = *bopts;
    bo.backend = "cuda";
    if (!bo.precision) bo.precision = "bf16";
    bo.prefetch_inputs = 1; /* the training loop's steps are timed too (rt_cuda_bench: loop_ms) */
    int rc, cuda = 0;
    if ((rc = rt_backend_check(&bo, err, errlen))) return rc;
    avgen_ctx c;
    if ((rc = rt_ctx_init(&c, g, k, err, errlen))) return rc;
    rc = rt_init_params(&c, NULL, seed, NULL, NULL, err, errlen);
    if (!rc) {
        rt_random_inputs(&c, seed);
        rc = rt_backend_attach(&c, &bo, &cuda, err, errlen);
    }
    if (!rc) {
        fprintf(out, "precision: %s GEMMs, fp32 storage\n", bo.precision);
        rc = rt_bench_report(&c, fwd, bwd, upd, o, out, err, errlen);
    }
    if (cuda) rt_cuda_detach(&c);
    rt_ctx_free(&c);
    return rc;
}
