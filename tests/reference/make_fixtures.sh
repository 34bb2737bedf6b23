#!/usr/bin/env bash
# Regenerates the step fixtures in tests/fixtures/step/ with the PyTorch reference (float64):
# for each configuration, the resolved description (config.json), random parameters with live gates
# (params.safetensors), random inputs (inputs.safetensors) and the expected step dump (expected.safetensors).
# Needs Debian's python3-torch; run from anywhere: tests/reference/make_fixtures.sh [path/to/avgen]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
avgen=${1:-$root/build/avgen}
py=/usr/bin/python3
out=$root/tests/fixtures/step
base=(--set backbone.dim=32 --set backbone.heads=2 --set backbone.mlp_dim=64 --set backbone.image_size=32
      --set video.size=32 --set audio.window_seconds=0.5 --set audio.target_frames=48 --set audio.mel_bins=32
      --set head.hidden=16 --set adapter.reduction=4 --set name=fixture)
make() {
  local name=$1 seed=$2
  shift 2
  mkdir -p "$out/$name"
  "$avgen" check "$root/models/tiny-lavish.json" "${base[@]}" "$@" --print-json >"$out/$name/config.json"
  "$py" "$root/tests/reference/lavish_ref.py" fixture "$out/$name/config.json" --out-dir "$out/$name" --seed "$seed"
}
make lavish-odd-batch 11 --set train.batch=3 --set video.frames=2
make lavish-partial 12 --set train.batch=1 --set video.frames=3 --set 'adapter.layers=[1]' \
  --set 'adapter.sublayers=["attn"]' --set adapter.batchnorm=false --set memory.recompute=block
make late 13 --set fusion=late --set train.batch=2 --set video.frames=2
