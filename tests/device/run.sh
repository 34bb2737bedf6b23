#!/usr/bin/env bash
# tests/device/run.sh: the checks that need a GPU, in one call on the lent GPU machine (DEVELOPERS.md).
# Runs the programs carried in device-kit/ (made here by tests/device/prepare.sh):
#   1. parity: every configuration's training step (forward, backward) and one Adam update on the CUDA
#      backend against the CPU backend in the same run, through step dumps: fp32 per tensor relative L2
#      error <= 1e-5 (strict, and with the gradient-scale floor for gradients whose terms cancel), bf16
#      GEMMs <= 2e-2, also with bf16 GEMM operands (AVGEN_BF16_OPERANDS=1); the PyTorch fixtures' expected
#      dumps; two CUDA runs bit-identical; the latent backward pairs run apart bit-identical to run as one;
#      ViT-B/16's shape-literal attention instances bit-identical to the generic kernels; steps replayed as CUDA
#      graphs (as training runs them) bit-identical to eager steps;
#   1b. training (the loop of --train) of tiny-lavish on the kit's raw-frame prepared data: fp32 against the CPU
#      backend step by step, CUDA graphs against eager steps and a resumed run against the whole run bit for bit,
#      bf16 GEMMs and bf16 activations against fp32;
#   2. the run-time NVRTC build (--kernels nvrtc): cold (compile; vitb-b1t2, the others from the kit's
#      prepared cache) and warm (cache) start times, and the
#      step dumps bit-identical to the nvcc-built kernels' (fp32 and bf16 GEMMs; tiny-lavish's NVRTC build
#      runs its own shapes' attention instances, its nvcc build the generic kernels); fx-lavish-odd-batch
#      carries its own nvcc build of its kernels.cu (prepare.sh), whose instances run, bit-identical to the
#      runtime's copy (AVGEN_PROGRAM_KERNELS=0, generic kernels) and to NVRTC;
#   3. compute-sanitizer memcheck of a tiny configuration's step (fp32, bf16, bf16 operands), racecheck;
#   4. benchmarks: ViT-B/16 LAVISH T=8 training steps (bf16 GEMMs) beside PyTorch eager and torch.compile
#      (shared/bench/torch_lavish.py) on the same card in the same call, and the training loop with its loader
#      (BENCH_TRAIN).
# Results go to $OUT (summary.txt, logs/, bench/*.json); the exit status is the number of failed checks
# (capped at 100). Stages can be chosen: STAGES="parity train nvrtc memcheck bench" (default all five); the
# BENCH_* lists below can be set empty (BENCH_FP32= times no fp32 step). tests/device/dryrun.sh (CTest
# device-script-dryrun) runs this script without a GPU on a kit of CUDA-emulator programs, all stages but nvrtc.
# usage: device run with carry ["device-kit"], timeout ~540 s (the device returns at most 8 files, so the
# logs travel as one archive):
#   D=$(mktemp -d); R=$OUT; OUT=$D timeout 520 tests/device/run.sh; rc=$?; cp $D/summary.txt $R/;
#   tar czf $R/results.tgz -C $D logs bench; echo rc=$rc
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${KIT:-$ROOT/device-kit}
OUT=${OUT:-$ROOT/device-out}
STAGES=${STAGES:-parity train nvrtc memcheck bench}
BENCH_BATCHES=${BENCH_BATCHES-32 75 4}  # in order of importance; 75: the largest batch the planner fits in 78 GiB (T=8,
                                        # fp32 activations; avgen plan)
BENCH_FP32=${BENCH_FP32-32}        # batches also timed with strict fp32 GEMMs
BENCH_ATTN_GEMM=${BENCH_ATTN_GEMM-32}  # batches also timed with bf16 GEMMs but the GEMM attention path
BENCH_BF16OPS=${BENCH_BF16OPS-32 75}  # batches also timed with bf16 activations (AVGEN_BF16_OPERANDS=1)
BENCH_OPS_ONLY=${BENCH_OPS_ONLY-130}  # batches timed with bf16 activations only (130: the largest they fit in 78 GiB)
BENCH_BN_STORED=${BENCH_BN_STORED-32}  # batches also timed with the BatchNorm outputs stored (AVGEN_FUSE_BN=0)
BENCH_LAT_STORED=${BENCH_LAT_STORED-32}  # batches also timed with the adapters' gated fuse stored (AVGEN_FUSE_LATENT=0)
BENCH_LN_SPLIT=${BENCH_LN_SPLIT-32}   # batches also timed without the fused LayerNorm backward (AVGEN_FUSED_LN_BWD=0)
BENCH_LB_APART=${BENCH_LB_APART-32}  # batches also timed with the latent backward pairs apart (AVGEN_FUSE_LATENT_BWD=0)
BENCH_GENERIC=${BENCH_GENERIC-32}  # batches also timed with the generic attention kernels (AVGEN_SHAPE_KERNELS=0)
BENCH_TRAIN=${BENCH_TRAIN-32}  # batches whose training loop (--train: the loader on every core, bf16 GEMMs) is timed on
                              # the kit's raw-frame ViT-B-size synthetic set, its rows repeated (bench-data)
BENCH_TRAIN_STEPS=${BENCH_TRAIN_STEPS:-24}  # its optimizer steps (the first 4 not timed)
BENCH_TUNE=${BENCH_TUNE-32}  # batches also timed with bf16 activations and GEMM algorithms chosen by timing (AVGEN_GEMM_AUTOTUNE=1)
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}  # where compute-sanitizer is looked for after PATH and nvcc's folder
TORCH_COMPILE=${TORCH_COMPILE-32}   # batches also timed with torch.compile (compiling ViT-B took over 240 s in the first
                                    # run: in a full run it gets what is left; for a call of its own, set the other
                                    # BENCH_* lists empty, STAGES=bench, BENCH_DEADLINE=500 RUN_LIMIT=560)
TORCH_COMPILE_TIMEOUT=${TORCH_COMPILE_TIMEOUT:-480}  # its own limit (cut to what is left of RUN_LIMIT)
BENCH_DEADLINE=${BENCH_DEADLINE:-430}  # seconds into the run after which no further benchmark starts
RUN_LIMIT=${RUN_LIMIT:-505}  # seconds the whole run may take (inside the caller's timeout): a job's own timeout is cut to
                             # what is left of it (less 15 s for the summary), and a job left under 60 s is skipped
BENCH_STEPS=${BENCH_STEPS:---warmup 5 --steps 20}  # each benchmark's warm-up and timed steps (avgen and PyTorch)
FIXTURES=${FIXTURES-lavish-odd-batch lavish-partial late}  # the PyTorch step fixtures of the parity stage (kit/fixtures)
TINY_MODELS=${TINY_MODELS-tiny-lavish tiny-lavish-block tiny-lavish-attn tiny-vision tiny-audio tiny-late}  # the parity
                                   # stage's programs on random inputs
TRAIN_STEPS=${TRAIN_STEPS:-8}  # the train stage's optimizer steps (even: a run stopped at half of them is resumed)
PYTHON=${PYTHON:-python3}  # the Python with torch (the float64 reference, the PyTorch baseline, the summary table)
for st in $STAGES; do
  case $st in parity | train | nvrtc | memcheck | bench) ;;
    *) echo "run.sh: STAGES has \"$st\"; the stages are parity, train, nvrtc, memcheck and bench" >&2; exit 100 ;;
  esac
done
mkdir -p "$OUT/logs" "$OUT/bench" "$OUT/dumps"
S=$OUT/summary.txt
: >"$S"
say() { echo "$*" | tee -a "$S"; }
pass=0
fail=0
ok() { pass=$((pass + 1)); say "  ok    $*"; }
bad() { fail=$((fail + 1)); say "  FAIL  $*"; }
T0=$(date +%s)
since() { echo $(($(date +%s) - T0))s; }

# prepare.sh packs the programs (the carry limit): unpacked once, beside the archive
if [ ! -d "$KIT/programs" ] && [ -f "$KIT/programs.tgz" ]; then
  tar xzf "$KIT/programs.tgz" -C "$KIT" || { echo "run.sh: cannot unpack $KIT/programs.tgz" >&2; exit 100; }
fi
[ -d "$KIT/programs" ] || { echo "run.sh: $KIT is missing; run tests/device/prepare.sh here and carry device-kit" >&2; exit 100; }
say "avgen device checks, kit $(cat "$KIT/commit" 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ)"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>&1 | sed 's/^/  gpu: /' | tee -a "$S"
else say "  gpu: (no nvidia-smi on PATH)"; fi
prog() { echo "$KIT/programs/$1/bin/$1-train"; }
DIFF=$KIT/bin/avgen-diff

# run NAME ARGS...: runs a program step, output in logs/NAME.log; fails the check on a non-zero status.
run() {
  local name=$1
  shift
  timeout "${STEP_TIMEOUT:-90}" "$@" >"$OUT/logs/$name.log" 2>&1
  local rc=$?
  [ $rc -eq 0 ] && return 0
  bad "$name: exit $rc ($(tail -c 300 "$OUT/logs/$name.log" | tr '\n' ' '))"
  return 1
}
# cmpdump WHAT A B RTOL [diff options]: A against B
cmpdump() {
  local what=$1 a=$2 b=$3 rtol=$4
  shift 4
  local out
  out=$("$DIFF" "$a" "$b" --rtol "$rtol" "$@" 2>&1)
  local rc=$?
  echo "$out" >"$OUT/logs/diff-$what.log"
  if [ $rc -eq 0 ]; then ok "$what: $(echo "$out" | tail -1 | sed 's/.*worst/worst/')"; else bad "$what: $(echo "$out" | tail -4 | tr '\n' ' ')"; fi
}

# parity NAME STEP_ARGS...: CPU vs CUDA fp32 (strict and floored), CUDA bf16, repeatability, Adam update.
parity() {
  local name=$1
  shift
  local p d
  p=$(prog "$name")
  d=$OUT/dumps/$name
  local t=$SECONDS
  run "$name-cpu" "$p" --step "$@" --out "$d-cpu.st" --update-out "$d-cpu-upd.st" --backend cpu || return
  local tcpu=$((SECONDS - t))
  run "$name-cuda" "$p" --step "$@" --out "$d-cuda.st" --update-out "$d-cuda-upd.st" --backend cuda || return
  run "$name-cuda2" "$p" --step "$@" --out "$d-cuda2.st" --backend cuda || return
  run "$name-bf16" "$p" --step "$@" --out "$d-bf16.st" --backend cuda --precision bf16 || return
  # bf16 activations (AVGEN_BF16_OPERANDS=1): GEMM operands, GELU inputs, fc2's input gradients, and with
  # the fused attention qkv, its output and gradient as bf16 (docs/bench.md), in a repacked activation arena
  run "$name-bf16ops" env AVGEN_BF16_OPERANDS=1 "$p" --step "$@" --out "$d-bf16ops.st" --backend cuda --precision bf16 || return
  say "  $name: CPU step ${tcpu}s"
  cmpdump "$name fp32 strict" "$d-cuda.st" "$d-cpu.st" 1e-5
  cmpdump "$name fp32 floored" "$d-cuda.st" "$d-cpu.st" 1e-5 --grad-floor
  # (ln_before.bias: its gradient is zero in exact arithmetic, some 1e-9 in floats, near Adam's eps = 1e-8, so its
  # update g / (sqrt(v) + eps) follows the rounding of g: 1.4e-4 to 7.9e-4 apart in the emulated fixture step; the same
  # exception as tests/train_cuda_test.sh's checkpoints. Its gradient is still compared above.)
  cmpdump "$name adam update" "$d-cuda-upd.st" "$d-cpu-upd.st" 1e-5 --rtol-for ln_before.bias=10
  cmpdump "$name bf16" "$d-bf16.st" "$d-cpu.st" 2e-2 --grad-floor
  cmpdump "$name bf16 activations" "$d-bf16ops.st" "$d-cpu.st" 2e-2 --grad-floor
  "$DIFF" "$d-bf16ops.st" "$d-bf16.st" --rtol 0 --grad-floor 2>&1 | tail -1 | sed "s/^/  info  $name bf16 activations vs bf16 GEMMs: /" | tee -a "$S"
  if cmp -s "$d-cuda.st" "$d-cuda2.st"; then ok "$name: two CUDA steps bit-identical"; else bad "$name: two CUDA steps differ"; fi
}

if [[ " $STAGES " == *" parity "* ]]; then
  say "== parity: CUDA backend against the CPU backend ($(since))"
  for f in $FIXTURES; do
    fx=$KIT/fixtures/$f
    parity "fx-$f" --params "$fx/params.safetensors" --inputs "$fx/inputs.safetensors"
    [ -f "$OUT/dumps/fx-$f-cuda.st" ] && cmpdump "fx-$f cuda vs torch fp64" "$OUT/dumps/fx-$f-cuda.st" "$fx/expected.safetensors" 1e-4 --grad-floor
  done
  # the two streams' latent backward ops run apart (AVGEN_FUSE_LATENT_BWD=0) give the same bits as the pair run as
  # one (the default), on the fixture whose live gates make the fused terms nonzero
  fx=$KIT/fixtures/lavish-odd-batch d=$OUT/dumps/fx-lavish-odd-batch
  for v in cuda:fp32: bf16ops:bf16:AVGEN_BF16_OPERANDS=1; do
    IFS=: read -r ref prec extra <<<"$v"
    [ -f "$d-$ref.st" ] && run "fx-lbapart-$prec" env AVGEN_FUSE_LATENT_BWD=0 $extra "$(prog fx-lavish-odd-batch)" --step \
      --params "$fx/params.safetensors" --inputs "$fx/inputs.safetensors" --out "$d-lbapart-$prec.st" --backend cuda \
      --precision "$prec" &&
      { if cmp -s "$d-lbapart-$prec.st" "$d-$ref.st"; then ok "latent backward pairs apart, $prec: the same bits"
        else bad "latent backward pairs apart, $prec: not the same bits as run as one"; fi; }
  done
  for m in $TINY_MODELS; do
    parity "$m" --inputs random
  done
  # steps as CUDA graphs (how training and the bench run them: each step's own Adam scalars) against eager steps
  # (AVGEN_CUDA_GRAPH=0): the loss after 5 updating steps, bit for bit, fp32 and bf16 GEMMs
  for prec in fp32 bf16; do
    b=$OUT/bench/graphs-tiny-lavish-$prec
    run "tiny-lavish-graphs-$prec" "$(prog tiny-lavish)" --bench --warmup 1 --steps 2 --precision $prec --json "$b.json" &&
      run "tiny-lavish-eager-$prec" env AVGEN_CUDA_GRAPH=0 "$(prog tiny-lavish)" --bench --warmup 1 --steps 2 --precision $prec \
        --json "$b-eager.json" &&
      { l1=$(grep -o '"last_loss":"[^"]*"' "$b.json"); l2=$(grep -o '"last_loss":"[^"]*"' "$b-eager.json")
        if [ -n "$l1" ] && [ "$l1" = "$l2" ] && ! grep -qE '"last_loss":"-?(nan|inf)' "$b.json" &&
          grep -q '"graph":true' "$b.json" && grep -q '"graph":false' "$b-eager.json"
        then ok "tiny-lavish $prec: steps as CUDA graphs bit-identical to eager ($l1)"
        else bad "tiny-lavish $prec: graph steps $l1, eager $l2 (or no graph)"; fi; }
  done
  # ViT-B/16 LAVISH B=1 T=2 (MODEL.md initialisation, gates 0): both backends also against float64 PyTorch.
  v=$OUT/dumps/vitb-b1t2
  run vitb-init "$(prog vitb-b1t2)" --step --inputs "$KIT/vitb-b1t2-inputs.safetensors" --out "$v-init-step.st" \
    --init-out "$v-params.st" --backend cuda && rm -f "$v-init-step.st"
  parity vitb-b1t2 --params "$v-params.st" --inputs "$KIT/vitb-b1t2-inputs.safetensors"
  # the fused attention's shape-literal instances (built in for ViT-B/16's N = 197 and 49) give the generic
  # kernels' bits (AVGEN_SHAPE_KERNELS=0), bf16 GEMMs and bf16 activations (the _bf twins)
  # (the reference steps above must have run the instances, and these the generic kernels: their start lines say so)
  for w in bf16: bf16ops:AVGEN_BF16_OPERANDS=1; do
    IFS=: read -r ref extra <<<"$w"
    if [ ! -f "$v-$ref.st" ]; then bad "vitb-b1t2 $ref: no step dump to compare the generic attention kernels with"; continue; fi
    grep -q "literal shapes for N = 197, 49" "$OUT/logs/vitb-b1t2-$ref.log" ||
      bad "vitb-b1t2 $ref: the step did not run ViT-B/16's attention instances: $(grep -m1 '^kernels:' "$OUT/logs/vitb-b1t2-$ref.log")"
    run "vitb-generic-$ref" env AVGEN_SHAPE_KERNELS=0 $extra "$(prog vitb-b1t2)" --step \
      --params "$v-params.st" --inputs "$KIT/vitb-b1t2-inputs.safetensors" --out "$v-generic-$ref.st" --backend cuda \
      --precision bf16 &&
      { if cmp -s "$v-generic-$ref.st" "$v-$ref.st" && grep -q "generic kernels for N = 197, 49" "$OUT/logs/vitb-generic-$ref.log"
        then ok "vitb-b1t2 $ref: attention instances the same bits as the generic kernels"
        else bad "vitb-b1t2 $ref: attention instances differ from the generic kernels (or the generic run used instances)"; fi; }
  done
  # the carries in op scratch and the latent op run with its LayerNorm (the defaults) give the same bits as apart:
  # with bf16 activations the residual stream's gradient as bf16 from the adapter's LayerNorm + gate backward for the
  # GEMM after it (AVGEN_FUSE_DY16=0: that GEMM rounds it itself), the latent logits from the vision adapter's pass
  # (AVGEN_FUSE_LATDOTS=0: the audio adapter's own pass), k_latent_ln (AVGEN_FUSE_LATLN=0: k_latent_b, then
  # k_layernorm_lat), and a BatchNorm's statistics where its moments are summed (AVGEN_FEWER_LAUNCHES=0: k_bn_stats and
  # k_inc64 after them); the fixture (live gates) and ViT-B/16 B=1 T=2 (whose lanes sum 24 terms each)
  for w in fx-lavish-odd-batch:bf16ops vitb-b1t2:bf16ops vitb-b1t2:cuda; do
    IFS=: read -r m ref <<<"$w"
    dm=$OUT/dumps/$m prec=bf16 extra="AVGEN_BF16_OPERANDS=1"
    [ "$ref" = cuda ] && prec=fp32 extra=
    if [ "$m" = vitb-b1t2 ]; then args=(--params "$v-params.st" --inputs "$KIT/vitb-b1t2-inputs.safetensors")
    else args=(--params "$KIT/fixtures/lavish-odd-batch/params.safetensors" --inputs "$KIT/fixtures/lavish-odd-batch/inputs.safetensors"); fi
    [ -f "$dm-$ref.st" ] && run "$m-carriesapart-$ref" env AVGEN_FUSE_DY16=0 AVGEN_FUSE_LATDOTS=0 AVGEN_FUSE_LATLN=0 AVGEN_FEWER_LAUNCHES=0 $extra \
      "$(prog "$m")" --step "${args[@]}" --out "$dm-carriesapart-$ref.st" --backend cuda --precision "$prec" &&
      { if cmp -s "$dm-carriesapart-$ref.st" "$dm-$ref.st"; then ok "$m $ref: carries, latent + LayerNorm kernel and BatchNorm statistics with their sums or apart: the same bits"
        else bad "$m $ref: the carries, the latent + LayerNorm kernel or the BatchNorm statistics with their sums (AVGEN_FUSE_DY16, _LATDOTS, _LATLN, AVGEN_FEWER_LAUNCHES) change the step's bits"; fi; }
  done
  if "$PYTHON" -c 'import torch' 2>/dev/null && [ -f "$v-params.st" ]; then
    if timeout 240 "$PYTHON" "$KIT/lavish_ref.py" dump "$KIT/vitb-b1t2.json" --params "$v-params.st" \
      --inputs "$KIT/vitb-b1t2-inputs.safetensors" --out "$v-ref64.st" >"$OUT/logs/vitb-ref64.log" 2>&1; then
      # the CPU backend's products sum in double: 1.8e-6 from float64 on the development machine (2026-12-07). The
      # CUDA backend's fp32 is further (cuBLASLt sums in fp32; its kernels round in float), most on the gates'
      # gradients with the least cosine between the incoming gradient and the adapter's output (docs/step-dump.md)
      cmpdump "vitb-b1t2 cpu vs torch fp64" "$v-cpu.st" "$v-ref64.st" 1e-5 --grad-floor
      cmpdump "vitb-b1t2 cuda fp32 vs torch fp64" "$v-cuda.st" "$v-ref64.st" 1e-4 --grad-floor
      cmpdump "vitb-b1t2 cuda bf16 vs torch fp64" "$v-bf16.st" "$v-ref64.st" 2e-2 --grad-floor
      cmpdump "vitb-b1t2 cuda bf16 activations vs torch fp64" "$v-bf16ops.st" "$v-ref64.st" 2e-2 --grad-floor
      "$DIFF" "$v-cuda.st" "$v-ref64.st" --rtol 0 --grad-floor >"$OUT/logs/all-vitb-cuda-vs-ref64.log" 2>&1
      "$DIFF" "$v-cpu.st" "$v-ref64.st" --rtol 0 --grad-floor >"$OUT/logs/all-vitb-cpu-vs-ref64.log" 2>&1
    else
      bad "vitb-b1t2 float64 reference: $(tail -3 "$OUT/logs/vitb-ref64.log" | tr '\n' ' ')"
    fi
  fi
  rm -f "$OUT"/dumps/*.st
fi

if [[ " $STAGES " == *" train "* ]]; then
  say "== the training loop on the GPU: tiny-lavish on the kit's raw-frame prepared data ($(since))"
  # (prepare.sh: avgen synth, avgen prep --raw; the kit's programs read raw frames without FFmpeg.) TRAIN_STEPS (8)
  # optimizer steps, validation every 3rd step, a checkpoint at half of them: fp32 against the CPU backend (every
  # step's loss and gradient norm; the validation accuracies), the steps as CUDA graphs bit-identical to eager steps, a
  # run stopped at half and resumed bit-identical to the whole run, bf16 GEMMs and bf16 activations within 5% of fp32's
  # losses
  p=$(prog tiny-lavish)
  t=$OUT/train
  n=$TRAIN_STEPS h=$((TRAIN_STEPS / 2))
  A=(--train --data "$KIT/train-data" --val-every 3 --checkpoint-every $h --quiet)
  if [ ! -f "$KIT/train-data/manifest.jsonl" ]; then bad "no prepared data in the kit ($KIT/train-data)"
  elif run train-cpu "$p" "${A[@]}" --out "$t/cpu" --max-steps $n &&
    run train-fp32 "$p" "${A[@]}" --out "$t/fp32" --max-steps $n --backend cuda --precision fp32 &&
    run train-fp32-eager env AVGEN_CUDA_GRAPH=0 "$p" "${A[@]}" --out "$t/eager" --max-steps $n --backend cuda --precision fp32 &&
    run train-fp32-half "$p" "${A[@]}" --out "$t/res" --max-steps $h --backend cuda --precision fp32 &&
    run train-fp32-resumed "$p" "${A[@]}" --out "$t/res" --max-steps $n --backend cuda --precision fp32 --resume &&
    run train-bf16 "$p" "${A[@]}" --out "$t/bf16" --max-steps $n --backend cuda &&
    run train-bf16ops env AVGEN_BF16_OPERANDS=1 "$p" "${A[@]}" --out "$t/ops" --max-steps $n --backend cuda; then
    "$PYTHON" - "$t" "$n" >"$OUT/logs/train-compare.log" 2>&1 <<'PY'
import json, os, sys
t, n = sys.argv[1], int(sys.argv[2])
def rows(run):
    return [json.loads(l) for l in open(os.path.join(t, run, "log.jsonl"))]
def last(run):
    d = os.path.join(t, run)
    return open(os.path.join(d, json.load(open(os.path.join(d, "checkpoint.json")))["file"]), "rb").read()
def plain(r):  # a log without its timings
    return [{k: v for k, v in x.items() if k not in ("clips_per_s", "pairs_per_s", "data_wait_s")} for x in r]
steps = lambda r: [x for x in r if "step" in x]
vals = lambda r: [x.get("val_top1") for x in r if "epoch_end" in x]
cpu, gpu = rows("cpu"), rows("fp32")
res = []
def check(name, good, detail):
    res.append(("ok   " if good else "FAIL ") + f" training {name}: {detail}")
worst = max((abs(a[k] - b[k]) / abs(a[k]) for a, b in zip(steps(cpu), steps(gpu)) for k in ("loss", "grad_norm")), default=1)
check("fp32 against the CPU backend", len(steps(gpu)) == len(steps(cpu)) == n and worst <= 1e-4,
      f"{len(steps(gpu))} steps, loss and gradient norm at most {worst:.2e} apart (1e-4)")
check("fp32 validation", vals(cpu) == vals(gpu) and len(vals(gpu)) >= 1, f"top-1 {vals(gpu)}, CPU {vals(cpu)}")
for name, run in (("CUDA graphs against eager steps", "eager"), ("stopped at half and resumed", "res")):
    same = plain(rows(run)) == plain(gpu), last(run) == last("fp32")
    check(name, all(same), "the same log and last checkpoint bits" if all(same) else
          f"the log {'the same' if same[0] else 'differs'}, the last checkpoint {'the same' if same[1] else 'differs'}")
for run in ("bf16", "ops"):
    r = steps(rows(run))
    w = max((abs(a["loss"] - b["loss"]) / abs(a["loss"]) for a, b in zip(steps(gpu), r)), default=1)
    check(f"{run} losses", len(r) == n and w <= 0.05, f"{len(r)} steps, at most {w:.2e} from fp32's (5e-2)")
print("\n".join(res))
PY
    while read -r st what; do
      if [ "$st" = ok ]; then ok "$what"; elif [ "$st" = FAIL ]; then bad "$what"; fi
    done <"$OUT/logs/train-compare.log"
    grep -qE '^(ok|FAIL) ' "$OUT/logs/train-compare.log" || bad "training comparison: $(tail -3 "$OUT/logs/train-compare.log" | tr '\n' ' ')"
  fi
fi

if [[ " $STAGES " == *" nvrtc "* ]]; then
  say "== run-time NVRTC kernels against the nvcc-built ones ($(since))"
  # a fresh kernel cache with the kit's NVRTC builds of fx-lavish-odd-batch and tiny-lavish (prepare.sh, used
  # when this machine's NVRTC is the kit's version): vitb-b1t2's first start compiles (the cold start timed),
  # the others' read the kit's builds (or compile them, which is no failure)
  AVGEN_CACHE_DIR=$(mktemp -d) || exit 100
  export AVGEN_CACHE_DIR
  [ -d "$KIT/kcache" ] && cp "$KIT"/kcache/*.kernels "$AVGEN_CACHE_DIR/" 2>/dev/null
  fx=$KIT/fixtures/lavish-odd-batch
  for m in vitb-b1t2 fx-lavish-odd-batch tiny-lavish; do
    p=$(prog "$m")
    if [ "$m" = fx-lavish-odd-batch ]; then a=(--params "$fx/params.safetensors" --inputs "$fx/inputs.safetensors")
    elif [ "$m" = vitb-b1t2 ]; then a=(--inputs "$KIT/vitb-b1t2-inputs.safetensors")
    else a=(--inputs random); fi
    d=$OUT/dumps/nvrtc-$m
    for prec in fp32 bf16; do
      run "$m-nvcc-$prec" "$p" --step "${a[@]}" --out "$d-nvcc-$prec.st" --update-out "$d-nvcc-$prec-upd.st" --backend cuda \
        --precision $prec || continue
      if [ "$m" = fx-lavish-odd-batch ]; then
        # its own nvcc build (kernels_nvcc.cu) against the runtime's copy: the same bits; with bf16 GEMMs its
        # instances for N = 5 and 7 run, and the runtime's generic kernels
        l=$OUT/logs/$m-nvcc-$prec.log
        grep -q "^kernels: nvcc: fx-lavish-odd-batch/kernels.cu compiled into this program" "$l" ||
          bad "$m $prec: its own nvcc build did not run: $(grep -m1 '^kernels:' "$l")"
        [ "$prec" = bf16 ] && ! grep -q "literal shapes for N = 5, 7" "$l" &&
          bad "$m bf16: its own build's attention instances did not run: $(grep -m1 '^kernels:' "$l")"
        run "$m-runtime-$prec" env AVGEN_PROGRAM_KERNELS=0 "$p" --step "${a[@]}" --out "$d-rt-$prec.st" \
          --update-out "$d-rt-$prec-upd.st" --backend cuda --precision $prec &&
          { if cmp -s "$d-rt-$prec.st" "$d-nvcc-$prec.st" && cmp -s "$d-rt-$prec-upd.st" "$d-nvcc-$prec-upd.st" &&
              grep -q "nvcc: [0-9]* kernels built into the avgen runtime" "$OUT/logs/$m-runtime-$prec.log"
            then ok "$m $prec: its own nvcc build bit-identical to the runtime's copy"
            else bad "$m $prec: its own nvcc build differs from the runtime's copy (or that did not run)"; fi; }
      fi
      for start in cold warm; do
        [ "$prec" = bf16 ] && [ "$start" = cold ] && continue  # the fp32 run filled the cache
        t=$(date +%s%N)
        run "$m-nvrtc-$prec-$start" "$p" --step "${a[@]}" --out "$d-nvrtc-$prec.st" --update-out "$d-nvrtc-$prec-upd.st" \
          --backend cuda --precision $prec --kernels nvrtc || continue
        t=$((($(date +%s%N) - t) / 1000000))
        k=$(grep -m1 '^kernels: NVRTC sm_' "$OUT/logs/$m-nvrtc-$prec-$start.log" | sed 's/^kernels: //; s/ (.*)//; s/, cached as .*;/;/')
        if [ "$start" = cold ] && [ "$m" = vitb-b1t2 ] && ! grep -q "compiled in" <<<"$k"; then bad "$m nvrtc cold start was not a compile: $k"; fi
        if [ "$start" = warm ] && ! grep -q "read from the cache" <<<"$k"; then bad "$m nvrtc warm start missed the cache: $k"; fi
        # with bf16 GEMMs (the fused attention) NVRTC runs the configuration's instances, nvcc tiny-lavish's generic kernels
        if [ "$prec" = bf16 ]; then
          n=$([ "$m" = vitb-b1t2 ] && echo "197, 49" || { [ "$m" = tiny-lavish ] && echo "10, 13" || echo "5, 7"; })
          grep -q "literal shapes for N = $n" "$OUT/logs/$m-nvrtc-$prec-$start.log" ||
            bad "$m nvrtc $prec: its attention instances did not run: $(grep -m1 '^kernels:' "$OUT/logs/$m-nvrtc-$prec-$start.log")"
        fi
        say "  $m $prec $start start: $k; whole step command ${t} ms"
        if cmp -s "$d-nvrtc-$prec.st" "$d-nvcc-$prec.st" && cmp -s "$d-nvrtc-$prec-upd.st" "$d-nvcc-$prec-upd.st"; then
          ok "$m $prec: NVRTC ($start) step and update bit-identical to nvcc"
        else
          bad "$m $prec: NVRTC ($start) dumps differ from nvcc"
          "$DIFF" "$d-nvrtc-$prec.st" "$d-nvcc-$prec.st" --rtol 0 2>&1 | tail -3 | sed 's/^/    /' | tee -a "$S"
        fi
      done
    done
  done
  rm -rf "$AVGEN_CACHE_DIR" "$OUT"/dumps/*.st
  unset AVGEN_CACHE_DIR
fi

if [[ " $STAGES " == *" memcheck "* ]]; then
  say "== compute-sanitizer memcheck ($(since))"
  # on PATH, else beside nvcc, else under CUDA_HOME (configurable, above)
  CS=$(command -v compute-sanitizer || true)
  [ -n "$CS" ] || { n=$(command -v nvcc || true); [ -n "$n" ] && CS=$(dirname "$n")/compute-sanitizer; }
  [ -x "${CS:-}" ] || CS=$CUDA_HOME/bin/compute-sanitizer
  if [ -n "${CS:-}" ] && [ -x "$CS" ]; then
    fx=$KIT/fixtures/lavish-odd-batch
    if timeout 150 "$CS" --tool memcheck --leak-check full --error-exitcode 9 "$(prog fx-lavish-odd-batch)" --step \
      --params "$fx/params.safetensors" --inputs "$fx/inputs.safetensors" --out "$OUT/dumps/memcheck.st" \
      --update-out "$OUT/dumps/memcheck-upd.st" --backend cuda >"$OUT/logs/memcheck.log" 2>&1; then
      ok "memcheck fx-lavish-odd-batch: $(grep -o 'ERROR SUMMARY.*' "$OUT/logs/memcheck.log" | tail -1)"
    else
      bad "memcheck fx-lavish-odd-batch: $(grep -E 'ERROR SUMMARY' "$OUT/logs/memcheck.log" | tail -1)"
      grep -m1 -A12 -E 'Invalid|Error' "$OUT/logs/memcheck.log" | sed 's/^/    /' | tee -a "$S"
    fi
    # bf16 GEMMs: the fused attention kernels (shared-memory tiles) run too
    if timeout 150 "$CS" --tool memcheck --error-exitcode 9 "$(prog tiny-lavish)" --step --inputs random \
      --out "$OUT/dumps/memcheck-bf16.st" --backend cuda --precision bf16 >"$OUT/logs/memcheck-bf16.log" 2>&1; then
      ok "memcheck tiny-lavish bf16: $(grep -o 'ERROR SUMMARY.*' "$OUT/logs/memcheck-bf16.log" | tail -1)"
    else
      bad "memcheck tiny-lavish bf16: $(grep -E 'ERROR SUMMARY' "$OUT/logs/memcheck-bf16.log" | tail -1)"
      grep -m1 -A12 -E 'Invalid|Error' "$OUT/logs/memcheck-bf16.log" | sed 's/^/    /' | tee -a "$S"
    fi
    if AVGEN_BF16_OPERANDS=1 timeout 150 "$CS" --tool memcheck --error-exitcode 9 "$(prog tiny-lavish)" --step --inputs random \
      --out "$OUT/dumps/memcheck-bf16ops.st" --backend cuda --precision bf16 >"$OUT/logs/memcheck-bf16ops.log" 2>&1; then
      ok "memcheck tiny-lavish bf16 operands: $(grep -o 'ERROR SUMMARY.*' "$OUT/logs/memcheck-bf16ops.log" | tail -1)"
    else
      bad "memcheck tiny-lavish bf16 operands: $(grep -E 'ERROR SUMMARY' "$OUT/logs/memcheck-bf16ops.log" | tail -1)"
      grep -m1 -A12 -E 'Invalid|Error' "$OUT/logs/memcheck-bf16ops.log" | sed 's/^/    /' | tee -a "$S"
    fi
    if timeout 150 "$CS" --tool racecheck --error-exitcode 9 "$(prog tiny-lavish)" --step --inputs random \
      --out "$OUT/dumps/racecheck.st" --backend cuda --precision bf16 >"$OUT/logs/racecheck.log" 2>&1; then
      ok "racecheck tiny-lavish: $(grep -o 'RACECHECK SUMMARY.*\|ERROR SUMMARY.*' "$OUT/logs/racecheck.log" | tail -1)"
    else
      bad "racecheck tiny-lavish: $(grep -E 'SUMMARY|hazard' "$OUT/logs/racecheck.log" | head -5 | tr '\n' ' ')"
    fi
  else
    bad "compute-sanitizer not found (not on PATH, beside nvcc or under CUDA_HOME)"
  fi
fi

if [[ " $STAGES " == *" bench "* ]]; then
  say "== benchmarks: ViT-B/16 LAVISH, T=8 ($(since))"
  # The jobs in order of what matters most, so that a run cut short still has the headline numbers: the
  # first two batches of BENCH_BATCHES each with bf16 GEMMs, with bf16 activations and in PyTorch eager; the
  # largest batch only bf16 activations fit; the training loop; the GEMM autotune; torch.compile; the other
  # batches; then the ablations (strict fp32 GEMMs, the GEMM attention path, one fusion off at a time). A job that would start
  # after BENCH_DEADLINE seconds of this run is skipped, and each job's timeout is cut to what is left of
  # RUN_LIMIT (both said in the summary), so the run ends with its summary inside the caller's timeout.
  jobs=()
  set -- $BENCH_BATCHES
  head2="${1:-} ${2:-}"
  batch_jobs() {
    jobs+=("$1:bf16")
    [[ " $BENCH_BF16OPS " == *" $1 "* ]] && jobs+=("$1:bf16-ops")
    jobs+=("$1:torch-eager")
  }
  for b in $head2; do batch_jobs "$b"; done
  for b in $BENCH_OPS_ONLY; do jobs+=("$b:bf16-ops"); done
  for b in $BENCH_TRAIN; do jobs+=("$b:train"); done
  for b in $BENCH_TUNE; do jobs+=("$b:bf16-opstune"); done
  for b in $TORCH_COMPILE; do jobs+=("$b:torch-compile"); done
  shift $(($# < 2 ? $# : 2))
  for b in "$@"; do batch_jobs "$b"; done
  for b in $BENCH_FP32; do jobs+=("$b:fp32"); done
  for b in $BENCH_ATTN_GEMM; do jobs+=("$b:bf16-gemmattn"); done
  for b in $BENCH_LN_SPLIT; do jobs+=("$b:bf16-lnsplit"); done
  for b in $BENCH_BN_STORED; do jobs+=("$b:bf16-bnstored"); done
  for b in $BENCH_LAT_STORED; do jobs+=("$b:bf16-latstored"); done
  for b in $BENCH_LB_APART; do jobs+=("$b:bf16-lbapart"); done
  for b in $BENCH_GENERIC; do jobs+=("$b:bf16-generic"); done
  have_torch=0
  [ -f "$KIT/torch_lavish.py" ] && "$PYTHON" -c 'import torch' 2>/dev/null && have_torch=1
  lim() { [ "$1" -lt "$left" ] && echo "$1" || echo "$left"; }  # a job's timeout: its own, or the $left of RUN_LIMIT
  for job in "${jobs[@]}"; do
    b=${job%%:*} prec=${job#*:}
    if [ $(($(date +%s) - T0)) -ge "$BENCH_DEADLINE" ]; then
      say "  info  skipped B=$b $prec: past BENCH_DEADLINE ($BENCH_DEADLINE s)"
      continue
    fi
    left=$((RUN_LIMIT - 15 - ($(date +%s) - T0)))  # what is left of RUN_LIMIT (lim)
    if [ "$left" -lt 60 ]; then
      say "  info  skipped B=$b $prec: ${left}s left of RUN_LIMIT ($RUN_LIMIT s)"
      continue
    fi
    if [[ $prec == torch-* ]]; then
      # PyTorch at the batches both run; a batch PyTorch cannot fit is a finding, not a failure
      [ $have_torch = 1 ] || continue
      mode=${prec#torch-}
      flag=""
      [ "$mode" = compile ] && flag=--compile
      tl=$(lim $([ "$mode" = compile ] && echo "$TORCH_COMPILE_TIMEOUT" || echo 150))
      timeout "$tl" "$PYTHON" "$KIT/torch_lavish.py" bench --frames 8 --batch "$b" --dtype bf16 $flag $BENCH_STEPS \
        >"$OUT/bench/torch-b$b-$mode.txt" 2>&1
      trc=$?
      if [ $trc = 0 ]; then
        ok "torch $mode B=$b bf16: $(tail -4 "$OUT/bench/torch-b$b-$mode.txt" | tr -s ' ' | tr '\n' ';')"
      elif [ $trc = 124 ]; then  # (compiling takes minutes: not a failure of avgen's)
        say "  info  torch $mode B=$b did not finish within ${tl}s"
      elif grep -qi "out of memory" "$OUT/bench/torch-b$b-$mode.txt"; then
        say "  info  torch $mode B=$b does not fit the device (CUDA out of memory)"
      else
        bad "torch $mode B=$b: $(tail -3 "$OUT/bench/torch-b$b-$mode.txt" | tr '\n' ' ')"
      fi
      continue
    fi
    p=$(prog "vitb-t8-b$b")
    if [ ! -x "$p" ]; then say "  info  no program for B=$b $prec (prepare.sh builds 4, 32 and the planner's largest)"; continue; fi
    if [ "$prec" = train ]; then
      # The training loop as `--train` runs it (the loader's worker threads on every core decoding clips and computing
      # their fbank, the batch uploaded while the step before runs, the step as CUDA graphs, the log), on the kit's
      # synthetic set at the program's frame size, raw frames (prepare.sh) with its rows repeated to make an epoch of
      # several steps: the files are few and stay in the page cache, so this times the loader's CPU work and the GPU,
      # not a disk. No validation (no validation groups).
      bd=$OUT/bench-data-b$b
      mkdir -p "$bd" && ln -sfn "$KIT/bench-data/videos" "$bd/videos" && cp "$KIT/bench-data/stats.json" "$bd/" &&
        "$PYTHON" - "$KIT/bench-data/manifest.jsonl" "$bd/manifest.jsonl" "$b" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = sum(1 for o in rows if o["split"] == "train" and o.get("output"))
reps = max(1, -(-12 * int(sys.argv[3]) // max(train, 1)))  # at least 12 batches an epoch
with open(sys.argv[2], "w") as f:
    for r in range(reps):
        for o in rows:
            o = dict(o, clip=r * 1000 + max(o.get("clip", 0), 0))
            o["video"] = re.sub(r"_c\d+\.", "_c%d." % o["clip"], o["video"])
            f.write(json.dumps(o) + "\n")
PY
      if [ $? != 0 ]; then bad "B=$b train: the repeated manifest of $KIT/bench-data"; continue; fi
      # (the run folder outside bench/, whose files travel back in one archive of at most 16 MiB: a ViT-B/16
      # checkpoint is larger; its log and summary are copied there)
      tr=$OUT/train-bench-b$b
      rm -rf "$tr"
      if timeout "$(lim 150)" "$p" --train --data "$bd" --out "$tr" --max-steps "$BENCH_TRAIN_STEPS" \
        --val-every 1000000 --threads "$(nproc)" --backend cuda --quiet >"$OUT/bench/avgen-b$b-train.txt" 2>&1; then
        cp "$tr/log.jsonl" "$OUT/bench/train-b$b-log.jsonl"
        cp "$tr/summary.json" "$OUT/bench/train-b$b-summary.json"
        rm -f "$tr"/*.safetensors
        ok "avgen B=$b training loop: $(grep -c '"step"' "$tr/log.jsonl") steps (its times: the summary table below)"
      else
        bad "avgen B=$b training loop: $(tail -3 "$OUT/bench/avgen-b$b-train.txt" | tr '\n' ' ')"
      fi
      continue
    fi
    attn=""  # the default: fused with bf16 GEMMs, the GEMM path otherwise
    [ "$prec" = bf16-gemmattn ] && attn=gemm
    ops=0
    [ "$prec" = bf16-ops ] || [ "$prec" = bf16-opstune ] && ops=1
    tune=0  # bf16-opstune: each GEMM's algorithm the fastest of cuBLASLt's candidates (AVGEN_GEMM_AUTOTUNE=1)
    [ "$prec" = bf16-opstune ] && tune=1
    lncs=1  # bf16-lnsplit: trainable LayerNorms' backward as k_ln_bwd + colsum (AVGEN_FUSED_LN_BWD=0)
    [ "$prec" = bf16-lnsplit ] && lncs=0
    bnl=1  # bf16-bnstored: the adapters' BatchNorm outputs stored and read back (AVGEN_FUSE_BN=0)
    [ "$prec" = bf16-bnstored ] && bnl=0
    latl=1  # bf16-latstored: the adapters' gated fuse stored and read back (AVGEN_FUSE_LATENT=0)
    [ "$prec" = bf16-latstored ] && latl=0
    lbp=1  # bf16-lbapart: the two streams' latent backward ops one after the other (AVGEN_FUSE_LATENT_BWD=0)
    [ "$prec" = bf16-lbapart ] && lbp=0
    shk=1  # bf16-generic: the fused attention's generic kernels, not the shape-literal instances (AVGEN_SHAPE_KERNELS=0)
    [ "$prec" = bf16-generic ] && shk=0
    if AVGEN_SHAPE_KERNELS=$shk AVGEN_ATTENTION=$attn AVGEN_BF16_OPERANDS=$ops AVGEN_GEMM_AUTOTUNE=$tune AVGEN_FUSED_LN_BWD=$lncs AVGEN_FUSE_BN=$bnl AVGEN_FUSE_LATENT=$latl AVGEN_FUSE_LATENT_BWD=$lbp timeout $(lim 150) "$p" --bench --precision "${prec%%-*}" $BENCH_STEPS \
      --json "$OUT/bench/avgen-b$b-$prec.json" >"$OUT/bench/avgen-b$b-$prec.txt" 2>&1; then
      ok "avgen B=$b $prec: $(grep -E '^  step|^  throughput|^  compute|^  attention|^  GEMMs' "$OUT/bench/avgen-b$b-$prec.txt" | tr -s ' ' | tr '\n' ';')"
    elif [ $? = 124 ] && [ "$left" -lt 150 ]; then  # its timeout cut to what was left of RUN_LIMIT
      say "  info  avgen B=$b $prec did not finish within the ${left}s left"
    else
      bad "avgen bench B=$b $prec: $(tail -3 "$OUT/bench/avgen-b$b-$prec.txt" | tr '\n' ' ')"
    fi
  done
fi

# One table of the benchmarks: avgen (each precision / attention path) against PyTorch on this card.
if [[ " $STAGES " == *" bench "* ]] && command -v "$PYTHON" >/dev/null; then
  "$PYTHON" - "$OUT/bench" <<'PY' | tee -a "$S"
import glob, json, os, re, sys
d = sys.argv[1]
rows = []
for f in sorted(glob.glob(os.path.join(d, "avgen-b*.json")), key=lambda p: (int(re.search(r"-b(\d+)-", p).group(1)), p)):
    try:
        a = json.load(open(f))
        a["median_ms"]
    except Exception:  # (not a step benchmark's result)
        continue
    b, tag = re.search(r"avgen-b(\d+)-(.+)\.json", os.path.basename(f)).groups()
    t = {}
    for mode in ("eager", "compile"):
        try:
            txt = open(os.path.join(d, f"torch-b{b}-{mode}.txt")).read()
            t[mode] = json.loads(txt[txt.rindex("{"):])["step_ms_median"]
        except Exception:
            pass
    ms = a["median_ms"]
    rows.append(f"  B={b:>3} {tag:<14} {ms:9.1f} ms  {a['pairs_per_s']:8.1f} pairs/s  MFU {100 * a['mfu']:5.1f}%  attention {a.get('attention', '?'):5}"
                + "".join(f"  {m} {t[m]:.1f} ms ({t[m] / ms:.2f}x)" for m in t)
                + f"  memory {a['device_used_bytes'] / 2**30:.2f} GiB in use / {a['planned_bytes'] / 2**30:.2f} planned"
                + (f"  roofline {a['roofline_ms']:.1f} ms ({ms / a['roofline_ms']:.2f}x)" if a.get("roofline_ms") else "")
                + (f"  loop {a['loop_ms']:.1f} ms (next batch up while a step runs) / {a['loop_plain_ms']:.1f} ms (each batch up before its step)"
                   if a.get("loop_ms", -1) > 0 else ""))
print("== summary: avgen step (median) against PyTorch bf16 on the same card")
print("\n".join(rows) if rows else "  no benchmark results")
# the training loop (BENCH_TRAIN) beside the bench's step of the same batch (bf16 GEMMs)
for f in sorted(glob.glob(os.path.join(d, "train-b*-log.jsonl"))):
    b = int(re.search(r"train-b(\d+)-", os.path.basename(f)).group(1))
    st = [x for x in (json.loads(l) for l in open(f)) if "step" in x][4:]  # not the first 4: start-up, graph capture
    if not st:
        continue
    ms = sorted(1e3 * b / x["clips_per_s"] for x in st)[len(st) // 2]
    try:
        bench = json.load(open(os.path.join(d, f"avgen-b{b}-bf16.json")))["median_ms"]
        vs = f", the bench's step {bench:.1f} ms ({ms / bench:.2f}x)"
    except Exception:
        vs = ""
    print(f"  B={b:>3} training loop  {ms:9.1f} ms a step (median of {len(st)}, {b / ms * 1e3:.1f} clips/s), "
          f"waiting for data {sum(x['data_wait_s'] for x in st):.3f} s in all{vs}")
PY
fi

say "== $pass passed, $fail failed ($(since))"
[ $fail -gt 100 ] && fail=100
exit $fail
