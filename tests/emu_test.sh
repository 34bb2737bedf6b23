#!/usr/bin/env bash
# The CUDA backend on the CUDA emulator (runtime/emu: its host code and every kernel compiled as host C++
# and run on the CPU) against the CPU backend, without a GPU: the parity stage of tests/device/run.sh.
# For each program NAME-train-emu (random inputs from the seed) and the PyTorch fixture's program (its
# parameters, with live gates, and inputs):
#   fp32 GEMMs: the step's dump and the Adam update within 1e-5 per tensor (relative L2) of the CPU
#     backend's (the fixture with the gradient-scale floor: see below), and two CUDA steps bit-identical; the
#     fixture also within 1e-5 of float64 PyTorch (gradient-scale floor);
#   bf16 GEMMs (fused attention) and the GEMM attention path (AVGEN_ATTENTION=gemm), every GEMM operand
#     rounded to bf16: 2e-2 with the gradient-scale floor (the fixture 0.15), the gates' gradients 0.3
#     (sums whose terms cancel: avgen diff --rtol-for, docs/step-dump.md);
#   bf16 with exact emulated GEMMs (AVGEN_EMU_EXACT_GEMM=1), which leaves the fused attention kernels'
#     own bf16 arithmetic: 2e-3 (the fixture 1e-2), gates 5e-2;
#   tf32: 2e-3 (the fixture 1e-2), gates 1e-2;
#   bf16 activations (AVGEN_BF16_OPERANDS=1): within bf16's tolerance of the CPU backend, and within 1.5e-2
#     (the fixture 0.15), gates 5e-2, of bf16 GEMMs: the GEMM operands it stores as bf16 are the values the
#     emulated cuBLASLt rounds fp32 operands to, but the GELU's input and fc2's input gradient (read by the
#     GELU kernels), the LayerNorms' input gradients (read by their backward), the attention output and its
#     gradient (both read by the backward's delta) and the adapters' projection outputs (read by their BatchNorms) are rounded
#     too (worst seen: 6e-3; the fixture, whose live gates make the adapters' gradients sensitive, 5.5e-2
#     on a projection's weight gradient, where plain bf16 GEMMs are 6.5e-2 from the CPU backend);
# the tolerances are about 3x the worst seen (the emulator is deterministic);
# qkv stored as bf16 with the bias cuBLASLt would take only as bf16 (AVGEN_EMU_BIAS16_ONLY=1): 2e-2 of bf16;
# one program's --bench (CUDA graph capture and replay, per-op and per-kernel events) writes its JSON;
# the race check (AVGEN_EMU_RACECHECK=1) on bf16 operands, the fixture with its Adam update, emu-wide;
# the fused attention's shape-literal instances (emu-wide) against the generic kernels, bit for bit;
# bad settings fail with one sentence.
# usage: emu_test.sh AVGEN FIXTURE_DIR FIXTURE_PROG PROG...
set -u
AVGEN=$1
FIX=$2
FPROG=$3
shift 3
. "$(dirname "$0")/lib.sh" emu

# diffok WHAT A B RTOL [options]: avgen diff passes
diffok() {
  local what=$1 a=$2 b=$3 rtol=$4
  shift 4
  local out
  if out=$("$AVGEN" diff "$a" "$b" --rtol "$rtol" "$@" 2>&1); then ok; else bad "$what: $(tail -5 <<<"$out")"; fi
}
gates() { echo --rtol-for ".gate=$1" --rtol-for ".gate_av=$1"; }
# samebits WHAT REF OUT [VAR=VALUE]... PROG STEP_ARGS...: the step (dumped to OUT) is REF bit for bit
calls() { grep -o "\"$1\":\\[[0-9]*" "$2" 2>/dev/null | head -1 | cut -d[ -f2; }  # a kernel's launches in a bench JSON (none: empty)
samebits() {
  local what=$1 ref=$2 out=$3
  shift 3
  run "$what" env "$@" --out "$out" && { if cmp -s "$out" "$ref"; then ok; else bad "$what: not the same bits as $ref"; fi; }
}

# check NAME PROG FP32_OPTS TOL_BF16 TOL_EXACT TOL_TF32 TOL_OPS STEP_ARGS...
check() {
  local n=$1 p=$2 f32=$3 tb=$4 tx=$5 tt=$6 to=$7
  shift 7
  local d=$TMP/$n
  run "$n cpu" "$p" --step "$@" --out "$d-cpu.st" --update-out "$d-cpu-upd.st" --backend cpu || return
  run "$n cuda fp32" "$p" --step "$@" --out "$d-cuda.st" --update-out "$d-cuda-upd.st" --backend cuda || return
  diffok "$n fp32" "$d-cuda.st" "$d-cpu.st" $f32
  diffok "$n adam update" "$d-cuda-upd.st" "$d-cpu-upd.st" 1e-5 --rtol-for ln_before.bias=1e-2
  run "$n cuda fp32 again" "$p" --step "$@" --out "$d-cuda2.st" --backend cuda &&
    { if cmp -s "$d-cuda.st" "$d-cuda2.st"; then ok; else bad "$n: two CUDA steps differ"; fi; }
  run "$n bf16" "$p" --step "$@" --out "$d-bf16.st" --backend cuda --precision bf16 &&
    diffok "$n bf16" "$d-bf16.st" "$d-cpu.st" "$tb" --grad-floor $(gates 0.3)
  run "$n bf16 operands" env AVGEN_BF16_OPERANDS=1 "$p" --step "$@" --out "$d-bf16ops.st" --backend cuda \
    --precision bf16 && { diffok "$n bf16 operands" "$d-bf16ops.st" "$d-cpu.st" "$tb" --grad-floor $(gates 0.3)
      diffok "$n bf16 operands vs bf16 GEMMs" "$d-bf16ops.st" "$d-bf16.st" "$to" --grad-floor $(gates 5e-2); }
  run "$n bf16 exact GEMMs" env AVGEN_EMU_EXACT_GEMM=1 "$p" --step "$@" --out "$d-bf16x.st" --backend cuda \
    --precision bf16 && diffok "$n bf16 exact GEMMs" "$d-bf16x.st" "$d-cpu.st" "$tx" --grad-floor $(gates 5e-2)
  run "$n gemm attention" env AVGEN_ATTENTION=gemm "$p" --step "$@" --out "$d-attg.st" --backend cuda \
    --precision bf16 && diffok "$n gemm attention" "$d-attg.st" "$d-cpu.st" "$tb" --grad-floor $(gates 0.3)
  run "$n tf32" "$p" --step "$@" --out "$d-tf32.st" --backend cuda --precision tf32 &&
    diffok "$n tf32" "$d-tf32.st" "$d-cpu.st" "$tt" --grad-floor $(gates 1e-2)
}

for p in "$@"; do
  check "$(basename "$p" -train-emu)" "$p" 1e-5 2e-2 2e-3 2e-3 1.5e-2 --inputs random
done
# The fixture's live gates make sums that cancel: its fp32 check has the gradient-scale floor (ln_before.bias's
# gradient is zero in exact arithmetic: rounding noise only), and ln_before.bias takes Adam's first step
# lr * sign(g) with the sign of rounding. Both backends' products sum in double (the emulator's GEMMs, the CPU
# backend's matrix products): worst seen 3.6e-6, and 1.6e-6 and 3.8e-6 from float64 PyTorch.
check fixture "$FPROG" "1e-5 --grad-floor" 0.15 1e-2 1e-2 0.15 --params "$FIX/params.safetensors" --inputs "$FIX/inputs.safetensors"
[ -f "$TMP/fixture-cuda.st" ] && diffok "fixture fp32 vs torch" "$TMP/fixture-cuda.st" "$FIX/expected.safetensors" 1e-5 --grad-floor

# The benchmark's code paths: graph capture and replay, per-op and per-kernel timing, the JSON.
p=$1
run "bench" "$p" --bench --warmup 1 --steps 2 --precision bf16 --json "$TMP/bench.json"
for field in '"graph":true' '"attention":"fused"' '"kernel_ms":{' '"k_attn_fwd<' '"cuBLASLt matmul"'; do
  if grep -qF "$field" "$TMP/bench.json" 2>/dev/null; then ok; else bad "bench JSON lacks $field"; fi
done
# the bench's steps are training's (graph launches, each step's own Adam scalars): the last step's loss has the
# same bits as eager steps' (AVGEN_CUDA_GRAPH=0)
run "bench, eager steps" env AVGEN_CUDA_GRAPH=0 "$p" --bench --warmup 1 --steps 2 --precision bf16 --json "$TMP/bench-eager.json"
ll() { grep -o '"last_loss":"[^"]*"' "$1" 2>/dev/null; }
if [ -n "$(ll "$TMP/bench.json")" ] && [ "$(ll "$TMP/bench.json")" = "$(ll "$TMP/bench-eager.json")" ] &&
  grep -qF '"graph":false' "$TMP/bench-eager.json" && ! grep -qE '"last_loss":"-?(nan|inf)' "$TMP/bench.json"; then ok
else bad "bench: the last loss with graphs $(ll "$TMP/bench.json") is not the eager steps' $(ll "$TMP/bench-eager.json")"; fi

# the training loop's steps (uploads, read-backs): timed with the next batch uploaded on the second stream and with
# each batch uploaded before its step; AVGEN_PREFETCH=0 has no second stream, so only the latter
jf() { grep -o "\"$1\":[-0-9.]*" "$2" 2>/dev/null | head -1 | cut -d: -f2; }
if awk -v a="$(jf loop_ms "$TMP/bench.json")" -v b="$(jf loop_plain_ms "$TMP/bench.json")" -v s="$(jf stage_bytes "$TMP/bench.json")" \
     -v i="$(jf input_bytes "$TMP/bench.json")" 'BEGIN { exit !(a > 0 && b > 0 && s > 0 && s == i) }'; then ok
else bad "bench JSON: loop_ms, loop_plain_ms, stage_bytes, input_bytes: $(grep -o '"loop[^,]*,"loop[^,]*,"in[^,]*,"st[^,]*' "$TMP/bench.json")"; fi
if awk -v a="$(jf loop_ms "$TMP/bench-eager.json")" -v b="$(jf loop_plain_ms "$TMP/bench-eager.json")" 'BEGIN { exit !(a > 0 && b > 0) }'
then ok; else bad "bench JSON (eager steps): the loop's times"; fi
run "bench, no prefetch" env AVGEN_PREFETCH=0 "$p" --bench --warmup 0 --steps 1 --precision bf16 --json "$TMP/bench-nopf.json"
# --warmup 0 runs no warm-up step (it had been taken for the default, 5)
grep -qF '"warmup":0,"steps":1,' "$TMP/bench-nopf.json" && grep -qF '"warmup":1,"steps":2,' "$TMP/bench.json" && ok ||
  bad "bench JSON: warm-up and timed steps: $(grep -o '"warmup":[0-9]*,"steps":[0-9]*' "$TMP/bench-nopf.json" "$TMP/bench.json")"
if [ "$(jf loop_ms "$TMP/bench-nopf.json")" = "-1.0000" ] && [ "$(jf stage_bytes "$TMP/bench-nopf.json")" = 0 ] &&
  awk -v b="$(jf loop_plain_ms "$TMP/bench-nopf.json")" 'BEGIN { exit !(b > 0) }'; then ok
else bad "bench JSON with AVGEN_PREFETCH=0: $(grep -o '"loop[^,]*,"loop[^,]*,"in[^,]*,"st[^,]*' "$TMP/bench-nopf.json")"; fi

# bf16 storage of qkv where cuBLASLt takes the bias of a bf16 result only as bf16 (the emulator's
# AVGEN_EMU_BIAS16_ONLY=1; qkv and fc1's GELU input): the fallback adds the bias's bf16 copy; close to, not
# the same as, the fp32 bias.
run "bias16 step" env AVGEN_BF16_OPERANDS=1 AVGEN_EMU_BIAS16_ONLY=1 "$p" --step --inputs random --out "$TMP/b16.st" \
  --backend cuda --precision bf16 &&
  diffok "bf16 bias of bf16 GEMM results" "$TMP/b16.st" "$TMP/$(basename "$p" -train-emu)-bf16ops.st" 2e-2 --grad-floor $(gates 0.3)
# bf16 activations without the fused attention (AVGEN_ATTENTION=gemm): LayerNorm and GELU outputs, GELU
# inputs and fc2's input gradients only
run "bf16 operands, gemm attention" env AVGEN_BF16_OPERANDS=1 AVGEN_ATTENTION=gemm "$p" --step --inputs random \
  --out "$TMP/opsg.st" --backend cuda --precision bf16 &&
  diffok "bf16 operands, gemm attention" "$TMP/opsg.st" "$TMP/$(basename "$p" -train-emu)-cpu.st" 2e-2 --grad-floor $(gates 0.3)
run "bias16 bench" env AVGEN_BF16_OPERANDS=1 AVGEN_EMU_BIAS16_ONLY=1 "$p" --bench --warmup 1 --steps 1 --precision bf16 \
  --json "$TMP/bench16.json"
for re in '"bias_bf16_gemms":[1-9]' '"bf16_tensors":[1-9]'; do
  if grep -q "$re" "$TMP/bench16.json" 2>/dev/null; then ok; else bad "bench JSON with bf16 operands lacks $re"; fi
done
if grep -q '"bias_bf16_gemms":0' "$TMP/bench.json" 2>/dev/null; then ok; else bad "bias_bf16_gemms is not 0 without bf16 operands"; fi
# the roofline: 0 for a device of unknown bandwidth and peak (the emulator), else from --peak and --bandwidth
if grep -q '"roofline_ms":0.0000' "$TMP/bench.json" 2>/dev/null; then ok; else bad "bench JSON: a roofline without a bandwidth"; fi
run "bench roofline" "$p" --bench --warmup 0 --steps 1 --precision bf16 --peak 1e9 --bandwidth 1e8 --json "$TMP/roof.json"
if grep -q '"roofline_ms":[1-9]' "$TMP/roof.json" 2>/dev/null; then ok; else bad "bench JSON: no roofline with --peak and --bandwidth"; fi
# bf16 activations repack the activation arena (rt_cuda_pack_act): what the backend allocates (arenas, op
# scratch, workspace, the frozen weights' bf16 copy, the next batch's device copy) is exactly the plan adjusted by
# the same functions, and
# the arenas are smaller than without
jnum() { grep -o "\"$1\":[0-9]*" "$2" 2>/dev/null | head -1 | cut -d: -f2; }
alloc16=$(( $(jnum allocated_bytes "$TMP/bench16.json") + $(jnum scratch_bytes "$TMP/bench16.json") + \
  $(jnum workspace_bytes "$TMP/bench16.json") + $(jnum bf16_weights_bytes "$TMP/bench16.json") + \
  $(jnum stage_bytes "$TMP/bench16.json") ))
if [ "$alloc16" = "$(jnum planned_bytes "$TMP/bench16.json")" ]; then ok; else
  bad "bf16 activations: allocated $alloc16 bytes, planned $(jnum planned_bytes "$TMP/bench16.json")"; fi
if [ "$(jnum allocated_bytes "$TMP/bench16.json")" -lt "$(jnum allocated_bytes "$TMP/bench.json")" ]; then ok; else
  bad "bf16 activations: the arenas did not shrink"; fi

# AVGEN_EMU_RACECHECK=1: every launch also runs with blocks and threads in reverse order and must leave the
# same memory (no race between threads or blocks, no read of shared memory never written); the step's dump
# is then the same as without the check.
rc_check() { # rc_check NAME COMMAND...: COMMAND --out F twice, the second race-checked: the same dump
  local n=$1
  shift
  run "$n reference" "$@" --out "$TMP/$n-x.st" || return
  run "$n race check" env AVGEN_EMU_RACECHECK=1 "$@" --out "$TMP/$n-rc.st" || return
  if cmp -s "$TMP/$n-rc.st" "$TMP/$n-x.st"; then ok; else bad "$n: the race-checked step differs"; fi
}
rc_check ops env AVGEN_BF16_OPERANDS=1 "$p" --step --inputs random --backend cuda --precision bf16
rc_check fixture-rc "$FPROG" --step --params "$FIX/params.safetensors" --inputs "$FIX/inputs.safetensors" \
  --update-out "$TMP/fxu.st" --backend cuda
for q in "$@"; do
  [ "$(basename "$q" -train-emu)" = emu-wide ] || continue
  rc_check wide "$q" --step --inputs random --backend cuda --precision bf16
  # the latent logits carried (below) at a width where each lane sums several terms (D 128; the tiny programs' lanes
  # sum one or two; D 128 has no register path, so no latent op runs with its LayerNorm here); emu-kernels checks
  # the logits themselves bit for bit on random rows
  samebits "latent logits and latent op with its LayerNorm apart, emu-wide" "$TMP/wide-x.st" "$TMP/wide-dots.st" \
    AVGEN_FUSE_LATDOTS=0 AVGEN_FUSE_LATLN=0 "$q" --step --inputs random --backend cuda --precision bf16
done

# AVGEN_FUSED_LN_BWD=0 (the unfused LayerNorm backward, for timing both on a GPU): the same step within 1e-5.
run "unfused LayerNorm backward" env AVGEN_FUSED_LN_BWD=0 "$p" --step --inputs random --out "$TMP/lnsplit.st" --backend cuda &&
  diffok "unfused LayerNorm backward" "$TMP/lnsplit.st" "$TMP/$(basename "$p" -train-emu)-cuda.st" 1e-5

# AVGEN_FUSE_RESIDUAL=0 (the adapter output added to the residual in a pass of its own): the same step within 1e-5.
run "unfused residual" env AVGEN_FUSE_RESIDUAL=0 "$p" --step --inputs random --out "$TMP/resplit.st" --backend cuda &&
  diffok "unfused residual" "$TMP/resplit.st" "$TMP/$(basename "$p" -train-emu)-cuda.st" 1e-5
# (the adapter's last LayerNorm is k_layernorm_bn here, with its BatchNorm applied on load: it adds res too)
if grep -qF '"k_layernorm_bn<' "$TMP/bench.json" 2>/dev/null && ! grep -qF '"k_bias_res"' "$TMP/bench.json"; then ok
else bad "bench JSON: k_bias_res ran or no k_layernorm_bn (the residual fusion did not happen)"; fi

# AVGEN_GEMM_AUTOTUNE=1 (each new GEMM plan's algorithm timed among cuBLASLt's candidates: the emulator offers
# AVGEN_EMU_ALGOS of them, all with the same arithmetic): the trials rerun the GEMM on its own operands, so the
# step must keep the same bits, which it would not if an accumulation into C were rerun; the bench reports them.
n1=$(basename "$p" -train-emu)
for ref in cuda:fp32 bf16:bf16; do  # the default step's dump (check above) : its precision
  samebits "GEMM autotuning, ${ref#*:}" "$TMP/$n1-${ref%:*}.st" "$TMP/tune-${ref#*:}.st" \
    AVGEN_GEMM_AUTOTUNE=1 AVGEN_EMU_ALGOS=3 "$p" --step --inputs random --backend cuda --precision "${ref#*:}"
done
run "GEMM autotuning bench" env AVGEN_GEMM_AUTOTUNE=1 AVGEN_EMU_ALGOS=2 "$p" --bench --warmup 0 --steps 1 --precision bf16 \
  --json "$TMP/benchtune.json"
if [ "$(jnum gemm_tuned "$TMP/benchtune.json")" -gt 0 ] && [ "$(jnum gemm_tuned "$TMP/bench.json")" = 0 ]; then ok
else bad "bench JSON: gemm_tuned $(jnum gemm_tuned "$TMP/benchtune.json") with AVGEN_GEMM_AUTOTUNE=1, $(jnum gemm_tuned "$TMP/bench.json") without"; fi
# BatchNorm applied on load (the default; AVGEN_FUSE_BN=0: its output stored and read back): the same values
# loaded, so the same bits, fp32 and bf16; the BatchNorm outputs take no memory; the LayerNorm backward's
# path without k_ln_bwd_cs (AVGEN_FUSED_LN_BWD=0 above) materialises it in op scratch instead.
# A BatchNorm's statistics and count where its moments' sums are finished (the default, k_colsum_finish_bn;
# AVGEN_FEWER_LAUNCHES=0: k_bn_stats and k_inc64 launched after them): the same bits, the running statistics and
# the count included (the dump's buffers), on the fixture (fp32, bf16 activations), this program and tiny-lavish-block
# (its forward recomputed in the backward, which must not update them again); the bench counts the launches. The
# fixture's bf16-activation run also covers the trainable weights rounded to bf16 once a step (below).
samebits "BatchNorm statistics apart (AVGEN_FEWER_LAUNCHES=0)" "$TMP/fixture-cuda.st" "$TMP/fewsplit.st" \
  AVGEN_FEWER_LAUNCHES=0 "$FPROG" --step --params "$FIX/params.safetensors" --inputs "$FIX/inputs.safetensors" --backend cuda
samebits "BatchNorm statistics apart, bf16 activations" "$TMP/fixture-bf16ops.st" "$TMP/fewsplitops.st" \
  AVGEN_FEWER_LAUNCHES=0 AVGEN_BF16_OPERANDS=1 "$FPROG" --step --params "$FIX/params.safetensors" --inputs "$FIX/inputs.safetensors" --backend cuda --precision bf16
samebits "BatchNorm statistics apart, $n1" "$TMP/$n1-cuda.st" "$TMP/fewsplitp.st" AVGEN_FEWER_LAUNCHES=0 "$p" --step \
  --inputs random --backend cuda
for q in "$@"; do
  [ "$(basename "$q" -train-emu)" = tiny-lavish-block ] || continue
  samebits "BatchNorm statistics apart, tiny-lavish-block" "$TMP/tiny-lavish-block-cuda.st" "$TMP/fewsplitb.st" \
    AVGEN_FEWER_LAUNCHES=0 "$q" --step --inputs random --backend cuda
done
for v in 1 0; do
  run "BatchNorm statistics bench ($v)" env AVGEN_FEWER_LAUNCHES=$v AVGEN_BF16_OPERANDS=1 "$p" --bench --warmup 0 --steps 1 \
    --precision bf16 --json "$TMP/benchfew$v.json"
done
b1=$(calls k_colsum_finish_bn "$TMP/benchfew1.json") b0=$(calls k_colsum_finish_bn "$TMP/benchfew0.json")
s1=$(calls k_bn_stats "$TMP/benchfew1.json") s0=$(calls k_bn_stats "$TMP/benchfew0.json")
i1=$(calls k_inc64 "$TMP/benchfew1.json") i0=$(calls k_inc64 "$TMP/benchfew0.json")
# and with bf16 activations the trainable weights the grouped projections read, rounded once a step (k_to_bf16_segs;
# AVGEN_FEWER_LAUNCHES=0: each op rounds its own with k_to_bf16)
w1=$(calls k_to_bf16_segs "$TMP/benchfew1.json") w0=$(calls k_to_bf16_segs "$TMP/benchfew0.json")
t1=$(calls k_to_bf16 "$TMP/benchfew1.json") t0=$(calls k_to_bf16 "$TMP/benchfew0.json")
if [ "${b1:-0}" -gt 0 ] && [ -z "$b0$s1$i1$w0" ] && [ "${s0:-0}" = "$b1" ] && [ "${i0:-0}" = "$b1" ] && [ "$w1" = 1 ] &&
  [ "${t0:-0}" -gt "${t1:-0}" ]; then ok
else bad "bench JSON: k_colsum_finish_bn ${b1:-none} launches (AVGEN_FEWER_LAUNCHES=0: ${b0:-none}), k_bn_stats ${s1:-none} (${s0:-none}), k_inc64 ${i1:-none} (${i0:-none}), k_to_bf16_segs ${w1:-none} (${w0:-none}), k_to_bf16 ${t1:-none} (${t0:-none})"; fi
samebits "BatchNorm stored (AVGEN_FUSE_BN=0)" "$TMP/$n1-cuda.st" "$TMP/bnsplit.st" AVGEN_FUSE_BN=0 "$p" --step --inputs random \
  --backend cuda
samebits "BatchNorm stored, bf16" "$TMP/$n1-bf16.st" "$TMP/bnsplit16.st" AVGEN_FUSE_BN=0 "$p" --step --inputs random \
  --backend cuda --precision bf16
run "BatchNorm stored bench" env AVGEN_FUSE_BN=0 "$p" --bench --warmup 0 --steps 1 --precision bf16 --json "$TMP/benchbn.json"
if grep -q '"bn_on_load":[1-9]' "$TMP/bench.json" && grep -q '"bn_on_load":0' "$TMP/benchbn.json" &&
  [ "$(jnum allocated_bytes "$TMP/bench.json")" -lt "$(jnum allocated_bytes "$TMP/benchbn.json")" ]; then ok
else bad "BatchNorm on load: not counted, or its outputs still take memory"; fi
alloc=$(( $(jnum allocated_bytes "$TMP/bench.json") + $(jnum scratch_bytes "$TMP/bench.json") + \
  $(jnum workspace_bytes "$TMP/bench.json") + $(jnum stage_bytes "$TMP/bench.json") ))
if [ "$alloc" = "$(jnum planned_bytes "$TMP/bench.json")" ]; then ok; else
  bad "BatchNorm on load: allocated $alloc bytes, planned $(jnum planned_bytes "$TMP/bench.json")"; fi

# The two streams' latent backward ops at an adapter position run as one, with the two streams' frozen
# LayerNorm backward before them in the same passes (the default; AVGEN_FUSE_LATENT_BWD=0: one after the other):
# each gradient gets the ops' terms in their order, so the same bits, fp32, bf16 and bf16 activations (dy fp32
# and bf16); on the fixture, whose live gates make the latent terms nonzero (the tiny programs' gate_av = 0
# zeroes them); the bench counts the pairs.
FX=(--params "$FIX/params.safetensors" --inputs "$FIX/inputs.safetensors" --backend cuda)
samebits "latent backward pairs apart (AVGEN_FUSE_LATENT_BWD=0)" "$TMP/fixture-cuda.st" "$TMP/lbsplit.st" \
  AVGEN_FUSE_LATENT_BWD=0 "$FPROG" --step "${FX[@]}"
samebits "latent backward pairs apart, bf16" "$TMP/fixture-bf16.st" "$TMP/lbsplit16.st" AVGEN_FUSE_LATENT_BWD=0 "$FPROG" \
  --step "${FX[@]}" --precision bf16
samebits "latent backward pairs apart, bf16 activations" "$TMP/fixture-bf16ops.st" "$TMP/lbsplitops.st" \
  AVGEN_FUSE_LATENT_BWD=0 AVGEN_BF16_OPERANDS=1 "$FPROG" --step "${FX[@]}" --precision bf16
run "latent backward pairs apart bench" env AVGEN_FUSE_LATENT_BWD=0 "$p" --bench --warmup 0 --steps 1 --precision bf16 \
  --json "$TMP/benchlb.json"
if [ "$(jnum latent_bwd_pairs "$TMP/bench.json")" -gt 0 ] && [ "$(jnum latent_bwd_pairs "$TMP/benchlb.json")" = 0 ] &&
  grep -qF '"k_latbwd_rows_ln<' "$TMP/bench.json" && ! grep -qF '"k_latbwd_rows_ln<' "$TMP/benchlb.json" &&
  grep -qF '"k_latbwd_gy_ln<' "$TMP/bench.json" && ! grep -qF '"k_latbwd_gy_ln<' "$TMP/benchlb.json"; then ok
else bad "bench JSON: latent_bwd_pairs $(jnum latent_bwd_pairs "$TMP/bench.json"), $(jnum latent_bwd_pairs "$TMP/benchlb.json") with AVGEN_FUSE_LATENT_BWD=0, or k_latbwd_rows_ln / k_latbwd_gy_ln (the LayerNorm backward ops with the pair) did not run with the pairs only"; fi

# Carries in op scratch (the defaults): the residual stream's gradient as bf16 from the adapter's LayerNorm + gate
# backward to the input-gradient GEMM after it (bf16 activations; AVGEN_FUSE_DY16=0: the GEMM rounds it in a pass of
# its own, k_to_bf16), and the latent exchange's logits over the frame tokens from the vision adapter's pass over
# them to the audio adapter (AVGEN_FUSE_LATDOTS=0: its own pass, k_lat_dots); and each latent op run with the
# LayerNorm after it (k_latent_ln; AVGEN_FUSE_LATLN=0: k_latent_b, then k_layernorm_lat): the same bits, on the
# fixture (live gates) and a tiny program, fp32, bf16 and bf16 activations; the bench counts them, the kernels they
# replace run once less for each, and the planned memory still covers what is allocated.
samebits "gradient carried as bf16 apart (AVGEN_FUSE_DY16=0)" "$TMP/fixture-bf16ops.st" "$TMP/dy16split.st" \
  AVGEN_FUSE_DY16=0 AVGEN_BF16_OPERANDS=1 "$FPROG" --step "${FX[@]}" --precision bf16
samebits "latent logits apart (AVGEN_FUSE_LATDOTS=0)" "$TMP/fixture-cuda.st" "$TMP/dotsplit.st" AVGEN_FUSE_LATDOTS=0 \
  "$FPROG" --step "${FX[@]}"
samebits "latent logits apart, bf16" "$TMP/fixture-bf16.st" "$TMP/dotsplit16.st" AVGEN_FUSE_LATDOTS=0 "$FPROG" \
  --step "${FX[@]}" --precision bf16
samebits "latent logits and gradients apart, bf16 activations" "$TMP/fixture-bf16ops.st" "$TMP/bothsplit.st" \
  AVGEN_FUSE_LATDOTS=0 AVGEN_FUSE_DY16=0 AVGEN_BF16_OPERANDS=1 "$FPROG" --step "${FX[@]}" --precision bf16
samebits "latent op and LayerNorm apart (AVGEN_FUSE_LATLN=0)" "$TMP/fixture-cuda.st" "$TMP/latlnsplit.st" \
  AVGEN_FUSE_LATLN=0 "$FPROG" --step "${FX[@]}"
samebits "latent op and LayerNorm apart, bf16 activations" "$TMP/fixture-bf16ops.st" "$TMP/latlnsplitops.st" \
  AVGEN_FUSE_LATLN=0 AVGEN_BF16_OPERANDS=1 "$FPROG" --step "${FX[@]}" --precision bf16
run "$n1 bf16 activations, carried" env AVGEN_BF16_OPERANDS=1 "$p" --step --inputs random --backend cuda --precision bf16 \
  --out "$TMP/dy16on.st"
samebits "carries apart, $n1" "$TMP/dy16on.st" "$TMP/dy16off.st" AVGEN_FUSE_DY16=0 AVGEN_FUSE_LATDOTS=0 \
  AVGEN_FUSE_LATLN=0 AVGEN_BF16_OPERANDS=1 "$p" --step --inputs random --backend cuda --precision bf16
for v in 1 0; do
  run "carries bench ($v)" env AVGEN_FUSE_DY16=$v AVGEN_FUSE_LATDOTS=$v AVGEN_FUSE_LATLN=$v AVGEN_BF16_OPERANDS=1 "$p" \
    --bench --warmup 0 --steps 1 --precision bf16 --json "$TMP/benchdy$v.json"
done
c16=$(jnum dy16_carries "$TMP/benchdy1.json") cdots=$(jnum latdots_carries "$TMP/benchdy1.json")
# (k_to_bf16: none left with the carries, where the trainable weights are rounded all at once, k_to_bf16_segs)
k1=$(calls k_to_bf16 "$TMP/benchdy1.json") k0=$(calls k_to_bf16 "$TMP/benchdy0.json")
k1=${k1:-0}
d1=$(calls 'k_lat_dots<2>' "$TMP/benchdy1.json") d0=$(calls 'k_lat_dots<2>' "$TMP/benchdy0.json")
alloc=$(( $(jnum allocated_bytes "$TMP/benchdy1.json") + $(jnum scratch_bytes "$TMP/benchdy1.json") + \
  $(jnum workspace_bytes "$TMP/benchdy1.json") + $(jnum stage_bytes "$TMP/benchdy1.json") ))
# a gradient is carried only where its writer takes the fused path: not with the BatchNorm output stored
run "carries bench, BatchNorm stored" env AVGEN_FUSE_BN=0 AVGEN_BF16_OPERANDS=1 "$p" --bench --warmup 0 --steps 1 \
  --precision bf16 --json "$TMP/benchdybn.json"
if [ "$(jnum dy16_carries "$TMP/benchdybn.json")" = 0 ]; then ok
else bad "bench JSON: dy16_carries $(jnum dy16_carries "$TMP/benchdybn.json") with AVGEN_FUSE_BN=0, where no gradient is carried"; fi
calls_all() { grep -o "\"$1<[0-9]*>\":\\[[0-9]*" "$2" 2>/dev/null | cut -d[ -f2 | awk '{ s += $1 } END { print s + 0 }'; }
cll=$(jnum latent_ln_fused "$TMP/benchdy1.json") ll1=$(calls_all k_latent_ln "$TMP/benchdy1.json")
l1=$(calls_all k_layernorm_lat "$TMP/benchdy1.json") l0=$(calls_all k_layernorm_lat "$TMP/benchdy0.json")
if [ "${cll:-0}" -gt 0 ] && [ "$(jnum latent_ln_fused "$TMP/benchdy0.json")" = 0 ] && [ "${ll1:-0}" = "$cll" ] &&
  [ $((l0 - l1)) = "$cll" ] && ! grep -qF '"k_latent_ln<' "$TMP/benchdy0.json"; then ok
else bad "bench JSON: latent_ln_fused ${cll:-none} (AVGEN_FUSE_LATLN=0: $(jnum latent_ln_fused "$TMP/benchdy0.json")), k_latent_ln launches ${ll1:-none}, k_layernorm_lat ${l1:-none} against ${l0:-none}"; fi
if [ "${c16:-0}" -gt 0 ] && [ "${cdots:-0}" -gt 0 ] && [ "$(jnum dy16_carries "$TMP/benchdy0.json")" = 0 ] &&
  [ "$(jnum latdots_carries "$TMP/benchdy0.json")" = 0 ] && [ -n "$k0" ] && [ -n "$d1" ] && [ -n "$d0" ] &&
  [ $((k0 - k1)) = "$c16" ] && [ $((d0 - d1)) = "$cdots" ] && [ "$alloc" -le "$(jnum planned_bytes "$TMP/benchdy1.json")" ]; then ok
else bad "bench JSON: dy16_carries ${c16:-none}, latdots_carries ${cdots:-none} (both 0 with the switches off: $(jnum dy16_carries "$TMP/benchdy0.json"), $(jnum latdots_carries "$TMP/benchdy0.json")), k_to_bf16 launches ${k1:-none} against ${k0:-none}, k_lat_dots ${d1:-none} against ${d0:-none}, allocated $alloc of $(jnum planned_bytes "$TMP/benchdy1.json") planned"; fi

# The fused attention's shape-literal instances (AVGEN_ATTN_SHAPE; the emulator's build has emu-wide's and
# tiny-lavish's shapes built in, as the GPU build has ViT-B/16's): the same bits as the generic kernels
# (AVGEN_SHAPE_KERNELS=0), with bf16 GEMMs and with bf16 activations (the _bf twins); the start says which
# shapes run literal instances; the bench counts them, and its per-kernel times show that every fused-attention
# launch ran an instance (tiny-lavish: forward and backward; emu-wide, one layer: the forward), none generic.
shapes_check() { # shapes_check PROG NAME HD H N1 N2 KERNELS...
  local q=$1 n=$2 hd=$3 h=$4 n1=$5 n2=$6
  shift 6
  samebits "$n: attention instances vs generic (AVGEN_SHAPE_KERNELS=0)" "$TMP/$n-bf16.st" "$TMP/$n-gen.st" \
    AVGEN_SHAPE_KERNELS=0 "$q" --step --inputs random --backend cuda --precision bf16
  samebits "$n: attention instances vs generic, bf16 activations" "$TMP/$n-bf16ops.st" "$TMP/$n-gen16.st" \
    AVGEN_SHAPE_KERNELS=0 AVGEN_BF16_OPERANDS=1 "$q" --step --inputs random --backend cuda --precision bf16
  local out
  out=$("$q" --step --inputs random --backend cuda --precision bf16 --out "$TMP/x.st" 2>&1)
  grep -qF "fused attention (head width $hd, $h heads): literal shapes for N = $n1, $n2" <<<"$out" && ok ||
    bad "$n: the start does not say that both shapes run literal instances: $out"
  out=$(AVGEN_SHAPE_KERNELS=0 "$q" --step --inputs random --backend cuda --precision bf16 --out "$TMP/x.st" 2>&1)
  grep -qF "generic kernels for N = $n1, $n2 (AVGEN_SHAPE_KERNELS=0)" <<<"$out" && ok ||
    bad "$n with AVGEN_SHAPE_KERNELS=0: the start does not say so: $out"
  local j=$TMP/$n-shapes
  run "$n bench" env AVGEN_BF16_OPERANDS=1 "$q" --bench --warmup 0 --steps 1 --precision bf16 --json "$j.json"
  run "$n bench, generic" env AVGEN_BF16_OPERANDS=1 AVGEN_SHAPE_KERNELS=0 "$q" --bench --warmup 0 --steps 1 --precision bf16 \
    --json "$j-0.json"
  if [ "$(jnum attention_literal_shapes "$j.json")" = 2 ] && [ "$(jnum attention_literal_shapes "$j-0.json")" = 0 ]; then ok
  else bad "$n bench JSON: attention_literal_shapes $(jnum attention_literal_shapes "$j.json"), $(jnum attention_literal_shapes "$j-0.json") with AVGEN_SHAPE_KERNELS=0"; fi
  local k
  for k in "$@"; do
    if grep -qF "\"$k<$hd, $n1, $h>\":[" "$j.json" && grep -qF "\"$k<$hd, $n2, $h>\":[" "$j.json" &&
      ! grep -qF "\"$k<$hd>\"" "$j.json" && grep -qF "\"$k<$hd>\":[" "$j-0.json" && ! grep -qF "\"$k<$hd, " "$j-0.json"; then ok
    else bad "$n bench JSON: $k did not run as its instances for N = $n1 and $n2 only (or AVGEN_SHAPE_KERNELS=0 ran instances)"; fi
  done
}
for q in "$@"; do
  case $(basename "$q" -train-emu) in
  emu-wide) shapes_check "$q" emu-wide 64 2 197 49 k_attn_fwd_bf ;;
  tiny-lavish) shapes_check "$q" tiny-lavish 16 4 10 13 k_attn_fwd_bf k_attn_bwd_dq_bf k_attn_bwd_dkv_bf ;;
  esac
done
# The fixture's program carries its own build of its kernels (kernels_nvcc.cu, which nvcc compiles into the
# program on the GPU build and the emulator's build compiles as host C++: avgen_add_emu NVCC_KERNELS): every
# launch goes through its table, its shapes (N = 5 and 7, which the runtime's copy does not have built in) run
# literal instances, and the steps above ran them. The same bits as the runtime's copy (AVGEN_PROGRAM_KERNELS=0),
# whose fused attention runs the generic kernels for those shapes; the start and the bench say which.
run "fixture bench" "$FPROG" --bench --warmup 0 --steps 1 --precision bf16 --json "$TMP/benchfx.json"
run "fixture bench, the runtime's kernels" env AVGEN_PROGRAM_KERNELS=0 "$FPROG" --bench --warmup 0 --steps 1 --precision bf16 \
  --json "$TMP/benchfx0.json"
if [ "$(jnum attention_literal_shapes "$TMP/benchfx.json")" = 2 ] && grep -qF '"k_attn_fwd<16, 5, 2>":[' "$TMP/benchfx.json" &&
  grep -qF '"k_attn_bwd_dkv<16, 7, 2>":[' "$TMP/benchfx.json" && ! grep -qF '"k_attn_fwd<16>"' "$TMP/benchfx.json" &&
  [ "$(jnum attention_literal_shapes "$TMP/benchfx0.json")" = 0 ] && grep -qF '"k_attn_fwd<16>":[' "$TMP/benchfx0.json"; then ok
else bad "fixture bench JSON: its own kernels did not run its shapes' instances, or the runtime's copy ran instances"; fi
out=$("$FPROG" --step "${FX[@]}" --precision bf16 --out "$TMP/x.st" 2>&1)
grep -qF "nvcc: fixture-lavish/kernels.cu compiled into this program (fatbin), " <<<"$out" &&
  grep -qF "12 shape-literal instances; fused attention (head width 16, 2 heads): literal shapes for N = 5, 7" <<<"$out" && ok ||
  bad "fixture: the start does not say that its own kernels run, with literal shapes for N = 5, 7: $out"
out=$(AVGEN_PROGRAM_KERNELS=0 "$FPROG" --step "${FX[@]}" --precision bf16 --out "$TMP/x.st" 2>&1)
grep -qF "this program's own build is not used (AVGEN_PROGRAM_KERNELS=0)" <<<"$out" &&
  grep -qF "generic kernels for N = 5, 7 (not built in; --kernels nvrtc compiles them)" <<<"$out" && ok ||
  bad "fixture with AVGEN_PROGRAM_KERNELS=0: the start does not say that the runtime's generic kernels run: $out"
samebits "fixture: its own kernels vs the runtime's, fp32" "$TMP/fixture-cuda.st" "$TMP/fx-rk.st" AVGEN_PROGRAM_KERNELS=0 \
  "$FPROG" --step "${FX[@]}"
samebits "fixture: its own kernels vs the runtime's, bf16" "$TMP/fixture-bf16.st" "$TMP/fx-rk16.st" AVGEN_PROGRAM_KERNELS=0 \
  "$FPROG" --step "${FX[@]}" --precision bf16
samebits "fixture: its own kernels vs the runtime's, bf16 activations" "$TMP/fixture-bf16ops.st" "$TMP/fx-rkops.st" \
  AVGEN_PROGRAM_KERNELS=0 AVGEN_BF16_OPERANDS=1 "$FPROG" --step "${FX[@]}" --precision bf16

# The adapters' gated fuse applied on load by the LayerNorm before (the default; AVGEN_FUSE_LATENT=0: stored and
# read back): the same values loaded, so the same bits, fp32 and bf16; it takes no memory. The LayerNorm
# backward without k_ln_bwd_cs (AVGEN_FUSED_LN_BWD=0 above) rebuilds it in op scratch (k_lat_z).
samebits "gated fuse stored (AVGEN_FUSE_LATENT=0)" "$TMP/$n1-cuda.st" "$TMP/latsplit.st" AVGEN_FUSE_LATENT=0 "$p" --step \
  --inputs random --backend cuda
samebits "gated fuse stored, bf16" "$TMP/$n1-bf16.st" "$TMP/latsplit16.st" AVGEN_FUSE_LATENT=0 "$p" --step --inputs random \
  --backend cuda --precision bf16
run "gated fuse stored bench" env AVGEN_FUSE_LATENT=0 "$p" --bench --warmup 0 --steps 1 --precision bf16 --json "$TMP/benchlat.json"
if grep -q '"fuse_on_load":[1-9]' "$TMP/bench.json" && grep -q '"fuse_on_load":0' "$TMP/benchlat.json" &&
  grep -qE '"k_(layernorm_lat|latent_ln)<' "$TMP/bench.json" && grep -qF '"k_ln_bwd_cs_lat<' "$TMP/bench.json" &&
  ! grep -qF '"k_layernorm_lat<' "$TMP/benchlat.json" &&
  [ "$(jnum allocated_bytes "$TMP/bench.json")" -lt "$(jnum allocated_bytes "$TMP/benchlat.json")" ]; then ok
else bad "gated fuse on load: not counted, its kernels did not run, or it still takes memory"; fi
# with bf16 activations the fuse's LayerNorm backward reads and writes bf16 gradients (k_ln_bwd_cs_lat16); with
# the fuse stored, the same arithmetic around widened copies (the same bits); without k_ln_bwd_cs, within 1e-5
for v in AVGEN_FUSE_LATENT AVGEN_FUSE_BN; do
  samebits "$v=0, bf16 activations" "$TMP/$n1-bf16ops.st" "$TMP/split-$v.st" "$v=0" AVGEN_BF16_OPERANDS=1 "$p" --step \
    --inputs random --backend cuda --precision bf16
  # and on the fixture, whose live gates make the fuse's latent term nonzero (gate_av = 0 zeroes it above)
  samebits "$v=0 on the fixture" "$TMP/fixture-cuda.st" "$TMP/fxsplit-$v.st" "$v=0" "$FPROG" --step "${FX[@]}"
  samebits "$v=0 on the fixture, bf16 activations" "$TMP/fixture-bf16ops.st" "$TMP/fxsplit16-$v.st" "$v=0" \
    AVGEN_BF16_OPERANDS=1 "$FPROG" --step "${FX[@]}" --precision bf16
done
run "unfused LayerNorm backward, bf16 activations" env AVGEN_FUSED_LN_BWD=0 AVGEN_BF16_OPERANDS=1 "$p" --step --inputs random \
  --out "$TMP/lnsplitops.st" --backend cuda --precision bf16 &&
  diffok "unfused LayerNorm backward, bf16 activations" "$TMP/lnsplitops.st" "$TMP/$n1-bf16ops.st" 1e-5
run "gated fuse rebuilt" env AVGEN_FUSED_LN_BWD=0 "$p" --bench --warmup 0 --steps 1 --precision bf16 --json "$TMP/benchlz.json"
if grep -qF '"k_lat_z"' "$TMP/benchlz.json"; then ok; else bad "AVGEN_FUSED_LN_BWD=0: the gated fuse was not rebuilt (k_lat_z)"; fi

# Bad settings: one sentence, non-zero exit.
fails() { # fails NEEDLE command...
  local needle=$1
  shift
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" != 0 ] && grep -qF -- "$needle" <<<"$out"; then ok; else bad "$* -> exit $rc: $out (wanted '$needle')"; fi
}
# a device too small (the emulator's memory cut to 30 MB, less than the workspace): one sentence before any
# allocation, with the way out that applies
fails "not enough device memory: this step needs" env AVGEN_EMU_MEMORY=30000000 "$p" --step --inputs random --out "$TMP/x.st" \
  --backend cuda --precision bf16
fails "or store activations in bf16 (AVGEN_BF16_OPERANDS=1)" env AVGEN_EMU_MEMORY=30000000 "$p" --step --inputs random \
  --out "$TMP/x.st" --backend cuda --precision bf16
fails "(0.00 GiB of it activations, some in bf16)" env AVGEN_BF16_OPERANDS=1 AVGEN_EMU_MEMORY=30000000 "$p" --step --inputs random \
  --out "$TMP/x.st" --backend cuda --precision bf16
fails "a positive --peak and --bandwidth" "$p" --bench --bandwidth 3e12x
fails "runs the kernels built into this binary only" "$p" --step --inputs random --out "$TMP/x.st" --backend cuda --kernels nvrtc
fails "AVGEN_BF16_OPERANDS=1 needs --precision bf16" env AVGEN_BF16_OPERANDS=1 "$p" --step --inputs random --out "$TMP/x.st" \
  --backend cuda
# each switch read as 0 or 1 refuses anything else, naming itself
for v in AVGEN_FUSE_BN=on AVGEN_FUSE_LATENT=no AVGEN_FUSE_RESIDUAL=2 AVGEN_FUSED_LN_BWD=yes AVGEN_FUSE_LATENT_BWD=2 \
  AVGEN_FUSE_DY16=yes AVGEN_FUSE_LATDOTS=off AVGEN_FUSE_LATLN=2 AVGEN_GEMM_AUTOTUNE=2 AVGEN_SHAPE_KERNELS=off; do
  fails "$v: expected 0 or 1" env "$v" "$p" --step --inputs random --out "$TMP/x.st" --backend cuda
done
fails "AVGEN_PROGRAM_KERNELS=no: expected 0 or 1" env AVGEN_PROGRAM_KERNELS=no "$FPROG" --step "${FX[@]}" --out "$TMP/x.st"
fails "AVGEN_ATTENTION=sometimes: expected gemm or fused" env AVGEN_ATTENTION=sometimes "$p" --step --inputs random \
  --out "$TMP/x.st" --backend cuda
fails "AVGEN_ATTENTION=fused: the fused attention kernels need --precision bf16" env AVGEN_ATTENTION=fused "$p" --step \
  --inputs random --out "$TMP/x.st" --backend cuda
finish
