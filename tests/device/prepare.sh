#!/usr/bin/env bash
# tests/device/prepare.sh [KIT]: builds, on this machine, everything tests/device/run.sh needs on the GPU
# machine (which has no FFmpeg or json-c development files): the generated programs of the device checks,
# emitted by build/avgen and built with the runtime-only build (AVGEN_DATA=OFF: static cudart, json-c
# linked statically, cuBLASLt and NVRTC loaded at run time, so they need only libc and the driver there),
# avgen-diff, the step fixtures and the PyTorch baseline. KIT defaults to device-kit/ (git-ignored);
# carry it: device run "tests/device/run.sh" with carry ["device-kit"].
# Environment: AVGEN (default build/avgen), CUDA_ARCH (default 90: H100 and H200), JOBS (default nproc).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
KIT=${1:-$ROOT/device-kit}
AVGEN=${AVGEN:-$ROOT/build/avgen}
ARCH=${CUDA_ARCH:-90}
JOBS=${JOBS:-$(nproc)}
[ -x "$AVGEN" ] || { echo "prepare.sh: $AVGEN is missing; run scripts/build first" >&2; exit 2; }
TORCH_REF=$ROOT/../shared/bench/torch_lavish.py
rm -rf "$KIT"
mkdir -p "$KIT/programs" "$KIT/fixtures" "$KIT/bin"
emit() { # emit NAME MODEL.json [--set ...]
  local name=$1 model=$2
  shift 2
  "$AVGEN" emit "$model" -o "$KIT/programs/$name" --set "name=$name" --set precision=fp32 --force "$@" >/dev/null 2>&1 ||
    { echo "prepare.sh: avgen emit $name failed" >&2; exit 1; }
}
for f in lavish-odd-batch lavish-partial late; do
  emit "fx-$f" "$ROOT/tests/fixtures/step/$f/config.json"
  mkdir -p "$KIT/fixtures/$f"
  cp "$ROOT/tests/fixtures/step/$f/"{params,inputs,expected}.safetensors "$KIT/fixtures/$f/"
done
emit tiny-lavish "$ROOT/models/tiny-lavish.json"
emit tiny-lavish-block "$ROOT/models/tiny-lavish.json" --set memory.recompute=block
emit tiny-lavish-attn "$ROOT/models/tiny-lavish.json" --set memory.recompute=attention --set adapter.batchnorm=false
emit tiny-vision "$ROOT/models/tiny-vision.json"
emit tiny-audio "$ROOT/models/tiny-audio.json"
emit tiny-late "$ROOT/models/tiny-late.json"
emit vitb-b1t2 "$ROOT/models/lavish-vitb16-ucf51.json" --set train.batch=1 --set video.frames=2
for b in 4 32 75 130; do  # 75, 130: the planner's largest batches at T=8 in 78 GiB, fp32 and bf16 activations (avgen plan)
  emit "vitb-t8-b$b" "$ROOT/models/lavish-vitb16-ucf51.json" --set train.batch=$b --set video.frames=8 --set memory.budget=78GiB
done
# fx-lavish-odd-batch carries its own nvcc build of its kernels.cu (its shapes are not the runtime's built-in ones):
# run.sh checks it against the runtime's copy and NVRTC
cmake -S "$ROOT" -B "$KIT/build" -DAVGEN_DATA=OFF -DAVGEN_PROGRAMS="$KIT/programs" -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
  -DAVGEN_NVCC_KERNEL_PROGRAMS=fx-lavish-odd-batch -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$KIT/build" -j "$JOBS" >"$KIT/build.log" 2>&1 || { tail -30 "$KIT/build.log" >&2; exit 1; }
cp "$KIT/build/avgen-diff" "$KIT/bin/"
# Only the training programs travel (the carry limit is 64 MiB): the inference programs and the large
# generated tables (model.c, plan.json) are dropped; the other emitted files stay for reference.
for d in "$KIT"/programs/*/; do
  rm -f "$d"bin/*-infer "$d"model.c "$d"plan.json
done
rm -rf "$KIT/build"
# ViT-B/16 B=1 T=2: the resolved description and fixed inputs for the float64 PyTorch reference
# (tests/reference/lavish_ref.py, run on the GPU machine's CPU with the parameters the program initialises).
"$AVGEN" check "$ROOT/models/lavish-vitb16-ucf51.json" --set train.batch=1 --set video.frames=2 --print-json \
  >"$KIT/vitb-b1t2.json" 2>/dev/null
cp "$ROOT/tests/reference/lavish_ref.py" "$KIT/"
python3 "$ROOT/tests/device/vitb_inputs.py" "$KIT/vitb-b1t2-inputs.safetensors"
# The training stage's data: a synthetic set at tiny-lavish's frame size, prepared with raw frames (the kit's
# programs read raw frames without FFmpeg, which the GPU machine lacks)
"$AVGEN" synth --out "$KIT/syn" --classes 5 --videos 15 --seconds 1.2 --size 64x48 --cue audio --seed 5 >/dev/null 2>&1 &&
  "$AVGEN" prep --src "$KIT/syn" --splits "$KIT/syn/ucfTrainTestlist" --out "$KIT/train-data" --size 48 --raw \
    >/dev/null 2>&1 || { echo "prepare.sh: the training data (avgen synth, avgen prep --raw) failed" >&2; exit 1; }
rm -rf "$KIT/syn"
# and the training-loop benchmark's, at ViT-B/16's frame size (224; run.sh repeats its rows)
"$AVGEN" synth --out "$KIT/syn" --classes 3 --videos 8 --seconds 1.2 --size 224x224 --cue audio --seed 6 >/dev/null 2>&1 &&
  "$AVGEN" prep --src "$KIT/syn" --splits "$KIT/syn/ucfTrainTestlist" --out "$KIT/bench-data" --size 224 --raw \
    >/dev/null 2>&1 || { echo "prepare.sh: the benchmark data (avgen synth, avgen prep --raw) failed" >&2; exit 1; }
rm -rf "$KIT/syn"
if [ -f "$TORCH_REF" ]; then cp "$TORCH_REF" "$KIT/"; else echo "prepare.sh: warning: $TORCH_REF not found; no PyTorch baseline" >&2; fi
git -C "$ROOT" rev-parse --short HEAD > "$KIT/commit" 2>/dev/null || true
# NVRTC builds of the programs the nvrtc stage starts after the first (fx-lavish-odd-batch, tiny-lavish), for
# sm_$ARCH, into a kernel cache that travels: run.sh times one cold compile (vitb-b1t2) and reads these, which
# saves the GPU machine two compiles (an estimate of 20 s each there: the fourth run took 8.8-10.4 s for 58 kernels,
# there are 133 now). They are used only when that machine's
# NVRTC is this one's version (the cache key has it); otherwise it compiles them.
mkdir -p "$KIT/kcache"
for m in fx-lavish-odd-batch tiny-lavish; do
  AVGEN_CACHE_DIR=$KIT/kcache "$KIT/programs/$m/bin/$m-train" --jit --arch "$ARCH" >/dev/null 2>&1 ||
    echo "prepare.sh: warning: no NVRTC build of $m for the kit (the GPU machine compiles it)" >&2
done
rm -f "$KIT"/kcache/*.cu  # (the sources beside the entries: for reproducing a compile error by hand)
# The carry limit is 64 MiB: the programs (stripped), their kernel cache and the data sets travel compressed
# (run.sh unpacks them there).
strip "$KIT"/programs/*/bin/* 2>/dev/null || true
tar czf "$KIT/programs.tgz" -C "$KIT" programs kcache train-data bench-data
rm -rf "$KIT/programs" "$KIT/kcache" "$KIT/train-data" "$KIT/bench-data"
du -sh "$KIT"
[ "$(du -sm "$KIT" | cut -f1)" -lt 64 ] || { echo "prepare.sh: $KIT is over the 64 MiB carry limit" >&2; exit 1; }
