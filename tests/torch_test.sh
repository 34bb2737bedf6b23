#!/usr/bin/env bash
# The CPU backend against the PyTorch reference (tests/reference/lavish_ref.py, float64) on fresh random
# configurations: every fusion mode of the tiny model with live gates, odd batch, adapter subsets; and the
# full ViT-B/16 LAVISH at B=1, T=1 (N = 197 and 49 tokens) with MODEL.md's initialisation. Needs Debian's
# python3-torch; exits 77 (skipped) without it.
# In the sanitizer build (third argument "sanitized"), the full-size step runs under the sanitizers but is not
# compared: the plain build compares the same step, and PyTorch's float64 reference of it is half a minute.
# usage: torch_test.sh AVGEN REPO_ROOT [sanitized]
set -u
AVGEN=$1
ROOT=$2
SANITIZED=${3:-}
PY=/usr/bin/python3
"$PY" -c "import torch" 2>/dev/null || { echo "python3-torch is not installed: skipped"; exit 77; }
. "$(dirname "$0")/lib.sh" torch
# report NAME LOG STATUS: count a command chain's outcome; print its last log line, or the whole log on failure
report() {
  if [ "$3" = 0 ]; then
    pass=$((pass + 1))
    echo "ok   $1: $(tail -1 "$2")"
  else
    fail=$((fail + 1))
    echo "FAIL $1:" >&2
    cat "$2" >&2
  fi
}
check() { # check NAME MODEL SEED [--set ...]: fixture from the reference, avgen step, diff
  local name=$1 model=$2 seed=$3
  shift 3
  local d=$TMP/$name
  mkdir -p "$d"
  if "$AVGEN" check "$ROOT/models/$model.json" "$@" --print-json >"$d/config.json" 2>"$d/log" &&
    "$PY" "$ROOT/tests/reference/lavish_ref.py" fixture "$d/config.json" --out-dir "$d" --seed "$seed" >>"$d/log" 2>&1 &&
    "$AVGEN" step "$d/config.json" --params "$d/params.safetensors" --inputs "$d/inputs.safetensors" \
      --out "$d/out.safetensors" >>"$d/log" 2>&1 &&
    "$AVGEN" diff "$d/out.safetensors" "$d/expected.safetensors" --rtol 1e-5 --grad-floor >>"$d/log" 2>&1; then
    report "$name" "$d/log" 0
  else
    report "$name" "$d/log" 1
  fi
}
check lavish tiny-lavish 21
check lavish-odd tiny-lavish 22 --set train.batch=5 --set video.frames=3
check lavish-mlp-only tiny-lavish 23 --set 'adapter.layers=[0]' --set 'adapter.sublayers=["mlp"]' --set memory.recompute=attention
check lavish-nobn tiny-lavish 24 --set adapter.batchnorm=false --set adapter.groups=4 --set adapter.latent_tokens=3
check late tiny-late 25
check vision tiny-vision 26 --set train.batch=1
check audio tiny-audio 27
check adamw-noop tiny-lavish 28 --set train.optimizer=adamw --set backbone.heads=2

# One optimizer update against torch.optim (two parameter groups: adapters at train.lr, head at
# train.head_lr). Adam adds weight_decay * p to the gradient; AdamW decays the weights. ln_before.bias has
# an exactly-zero gradient in exact arithmetic, so without an L2 term its Adam step is driven by the sign
# of rounding noise: it is left out of the AdamW comparison.
f=$ROOT/tests/fixtures/step/lavish-odd-batch
for opt in adam adamw; do
  d=$TMP/update-$opt
  mkdir -p "$d"
  if "$AVGEN" check "$f/config.json" --set train.optimizer=$opt --set train.weight_decay=0.05 --set train.lr=1e-2        --set train.head_lr=3e-3 --print-json >"$d/config.json" 2>"$d/log" &&
     "$AVGEN" step "$d/config.json" --params "$f/params.safetensors" --inputs "$f/inputs.safetensors"        --out "$d/o.safetensors" --update-out "$d/u.safetensors" >>"$d/log" 2>&1 &&
     "$PY" "$ROOT/tests/reference/lavish_ref.py" dump "$d/config.json" --params "$f/params.safetensors"        --inputs "$f/inputs.safetensors" --out "$d/r.safetensors" --update-out "$d/ur.safetensors" >>"$d/log" 2>&1 &&
     "$PY" -c "
import sys; sys.path.insert(0, '$ROOT/tests/reference'); import lavish_ref as r
t = r.load('$d/ur.safetensors')
if '$opt' == 'adamw': t = {k: v for k, v in t.items() if not k.endswith('ln_before.bias')}
r.save('$d/ur2.safetensors', t)" >>"$d/log" 2>&1 &&
     "$AVGEN" diff "$d/u.safetensors" "$d/ur2.safetensors" --rtol 1e-5 --only-common >>"$d/log" 2>&1; then
    report "$opt update" "$d/log" 0
  else
    report "$opt update" "$d/log" 1
  fi
done

# The project's shared baseline script (shared/bench/torch_lavish.py, beside the repository) as a second,
# independent reference, with MODEL.md's initialisation (gates zero): there its backward is sound. (With live
# gates its BatchNorm2d gradients are wrong on Debian's torch 1.13: docs/step-dump.md.)
SHARED=$ROOT/../shared/bench/torch_lavish.py
if [ -f "$SHARED" ]; then
  d=$TMP/shared
  mkdir -p "$d"
  if "$AVGEN" check "$ROOT/models/tiny-lavish.json" --print-json >"$d/config.json" 2>/dev/null &&
     "$PY" "$SHARED" dump --image 48 --dim 64 --depth 2 --heads 4 --mlp 128 --audio-frames 102 --mel 32 --frames 2 \
       --batch 3 --classes 5 --hidden 32 --reduction 4 --groups 2 --double --seed 4 --write-params "$d/p.safetensors" \
       --write-inputs "$d/i.safetensors" --out "$d/ref.safetensors" >"$d/log" 2>&1 &&
     "$AVGEN" step "$d/config.json" --params "$d/p.safetensors" --inputs "$d/i.safetensors" --out "$d/out.safetensors" \
       >>"$d/log" 2>&1 &&
     "$AVGEN" diff "$d/out.safetensors" "$d/ref.safetensors" --rtol 1e-5 --grad-floor >>"$d/log" 2>&1; then
    report "shared torch_lavish.py (gates zero)" "$d/log" 0
  else
    report "shared torch_lavish.py (gates zero)" "$d/log" 1
  fi
fi

# Full size: ViT-B/16 LAVISH, one pair. MODEL.md's initialisation (gates 0) keeps the comparison well
# conditioned; with live gates the adapters' softmaxes over the raw residual stream saturate and even
# PyTorch's own fp32 and fp64 disagree, so that regime is left to the tiny configurations above.
d=$TMP/vitb
mkdir -p "$d"
"$AVGEN" check "$ROOT/models/lavish-vitb16-ucf51.json" --set train.batch=1 --set video.frames=1 --print-json \
  >"$d/config.json" 2>/dev/null
"$PY" -c "
import sys, torch
sys.path.insert(0, '$ROOT/tests/reference')
import lavish_ref as r
g = torch.Generator().manual_seed(5)
r.save('$d/inputs.safetensors', {'frames': torch.randn(1, 1, 3, 224, 224, generator=g),
       'audio': torch.randn(1, 1, 102, 128, generator=g), 'labels': torch.tensor([7])})
"
if [ "$SANITIZED" = sanitized ]; then
  "$AVGEN" step "$d/config.json" --inputs "$d/inputs.safetensors" --out "$d/out.safetensors" >"$d/log" 2>&1
  report "vitb16 B=1 T=1 under the sanitizers (compared in the plain build)" "$d/log" $?
elif "$AVGEN" step "$d/config.json" --inputs "$d/inputs.safetensors" --out "$d/out.safetensors" \
     --init-out "$d/params.safetensors" >"$d/log" 2>&1 &&
   "$PY" "$ROOT/tests/reference/lavish_ref.py" dump "$d/config.json" --params "$d/params.safetensors" \
     --inputs "$d/inputs.safetensors" --out "$d/expected.safetensors" >>"$d/log" 2>&1 &&
   "$AVGEN" diff "$d/out.safetensors" "$d/expected.safetensors" --rtol 1e-5 >>"$d/log" 2>&1; then
  pass=$((pass + 1))
  echo "ok   vitb16 B=1 T=1: $(grep 'avgen step: loss' "$d/log"); $(tail -1 "$d/log")"
else
  fail=$((fail + 1))
  echo "FAIL vitb16:" >&2
  cat "$d/log" >&2
fi
finish
