/* rt_cuda_kernel_list.h: every kernel of runtime/rt_cuda_kernels.cuh that the host code launches, in a fixed
 * order. rt_cuda.cu launches through a table indexed in this order, filled either from its own
 * nvcc-compiled copy of the kernels or from a cubin that NVRTC compiled at run time, looked up by the names
 * NVRTC lowers "&" X to (rt_kernels.c). A kernel missing here cannot be launched; the nvrtc-kernels
 * test fails when this list and the kernels of the library differ. Plain C: no CUDA header needed. */
#ifndef AVGEN_RT_CUDA_KERNEL_LIST_H
#define AVGEN_RT_CUDA_KERNEL_LIST_H
#define AVGEN_CUDA_KERNELS(X)                                                                                   \
    X(k_im2col) X(k_patch_epilogue) X(k_layernorm<0>) X(k_layernorm<1>) X(k_layernorm<2>) X(k_layernorm<24>)    \
    X(k_layernorm_res<0>) X(k_layernorm_res<1>) X(k_layernorm_res<2>) X(k_layernorm_res<24>)                  \
    X(k_ln_bwd<0>) X(k_ln_bwd<1>) X(k_ln_bwd<2>) X(k_ln_bwd<24>) X(k_ln_bwd_cs<1>) X(k_ln_bwd_cs<2>)          \
    X(k_ln_bwd_cs<24>) X(k_layernorm_bn<0>) X(k_layernorm_bn<1>) X(k_layernorm_bn<2>) X(k_layernorm_bn<24>)         \
    X(k_ln_bwd_cs_bn<1>) X(k_ln_bwd_cs_bn<2>) X(k_ln_bwd_cs_bn<24>) X(k_layernorm_lat<0>) X(k_layernorm_lat<1>)           \
    X(k_layernorm_lat<2>) X(k_layernorm_lat<24>) X(k_ln_bwd_cs_lat<1>) X(k_ln_bwd_cs_lat<2>) X(k_ln_bwd_cs_lat<24>) X(k_lat_z) \
    X(k_ln_bwd_cs_lat16<1>) X(k_ln_bwd_cs_lat16<2>) X(k_ln_bwd_cs_lat16<24>) X(k_from_bf16) \
    X(k_ln_bwd_cs_bn16<1>) X(k_ln_bwd_cs_bn16<2>) X(k_ln_bwd_cs_bn16<24>) X(k_ln_bwd_bf<0>) X(k_ln_bwd_bf<1>)             \
    X(k_ln_bwd_bf<2>) X(k_ln_bwd_bf<24>) X(k_colsum) X(k_colsum_finish) X(k_colsum_finish_bn) X(k_inc64)    \
    X(k_bn_apply) X(k_bn_bwd_dx) X(k_relu) X(k_relu_bwd) X(k_bias_res) X(k_bias_cols)    \
    X(k_gelu) X(k_gelu_bwd) X(k_softmax_rows) X(k_attn_probs) X(k_attn_dscores) X(k_attn_delta)            \
    X(k_attn_fwd<16>) X(k_attn_fwd<32>) X(k_attn_fwd<64>) X(k_attn_bwd_dq<16>) X(k_attn_bwd_dq<32>)             \
    X(k_attn_bwd_dq<64>) X(k_attn_bwd_dkv<16>) X(k_attn_bwd_dkv<32>) X(k_attn_bwd_dkv<64>) X(k_attn_fwd_bf<16>) \
    X(k_attn_fwd_bf<32>) X(k_attn_fwd_bf<64>) X(k_attn_bwd_dq_bf<16>) X(k_attn_bwd_dq_bf<32>)                   \
    X(k_attn_bwd_dq_bf<64>) X(k_attn_bwd_dkv_bf<16>) X(k_attn_bwd_dkv_bf<32>) X(k_attn_bwd_dkv_bf<64>)          \
    X(k_lat_dots<2>)                                                                                            \
    X(k_lat_dots<4>) X(k_lat_dots<8>) X(k_lat_dots<16>) X(k_lat_softmax) X(k_lat_mix<2>) X(k_lat_mix<4>) X(k_lat_mix<8>) X(k_lat_mix<16>) X(k_latent_b<2>) X(k_latent_b<4>) X(k_latent_b<8>)      \
    X(k_latent_b<16>) X(k_latbwd_rows<2>) X(k_latbwd_rows<4>) X(k_latbwd_rows<8>) X(k_latbwd_rows<16>)          \
    X(k_latbwd_ds<2>) X(k_latbwd_ds<4>) X(k_latbwd_ds<8>) X(k_latbwd_ds<16>)                  \
    X(k_latbwd_gy) X(k_sum_pairs) X(k_reduce_scalar)  \
    X(k_concat_mean) X(k_concat_mean_bwd) X(k_cross_entropy) X(k_adam) X(k_zero_grads) X(k_to_bf16) X(k_to_bf16_segs)  \
    X(k_grad_sumsq) X(k_sum_d) X(k_bn_stats) X(k_latbwd_rows_ln<1>) X(k_latbwd_rows_ln<2>) X(k_latbwd_rows_ln<24>)   \
    X(k_latbwd_rows_lnbf<1>) X(k_latbwd_rows_lnbf<2>) X(k_latbwd_rows_lnbf<24>) X(k_latbwd_gy_ln<1>)             \
    X(k_latbwd_gy_ln<2>) X(k_latbwd_gy_ln<24>) X(k_latbwd_gy_lnbf<1>) X(k_latbwd_gy_lnbf<2>) X(k_latbwd_gy_lnbf<24>) \
    X(k_latent_ln<1>) X(k_latent_ln<2>) X(k_latent_ln<24>)

/* The kernels that also exist with the configuration's shapes as literals (rt_cuda_kernels.cuh:
 * AVGEN_ATTN_SHAPE(HD, N, H)), in this order: the fused attention's six, per (head width, tokens, heads).
 * The nvcc copy has them for AVGEN_CUDA_BUILTIN_SHAPES; the NVRTC build for the (HD, N, H) lines of its
 * source (an emitted kernels.cu's, or those avgen step and bench add to the library: rt_cuda_shape_lines),
 * requested by name after the list above (rt_kernels_shape_expr). Any other shape runs the generic kernel. */
#define AVGEN_CUDA_SHAPE_KERNELS(X) \
    X(k_attn_fwd) X(k_attn_fwd_bf) X(k_attn_bwd_dq) X(k_attn_bwd_dq_bf) X(k_attn_bwd_dkv) X(k_attn_bwd_dkv_bf)
#define AVGEN_CUDA_SHAPE_KERNEL_COUNT 6
/* (head width, tokens, heads) built into the nvcc copy: ViT-B/16's frames (197 tokens) and audio images (49) */
#define AVGEN_CUDA_BUILTIN_SHAPES(X) X(64, 197, 12) X(64, 49, 12)
/* the most (HD, N, H) lines one NVRTC build takes */
#define AVGEN_CUDA_MAX_SHAPES 8
#endif
