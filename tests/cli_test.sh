#!/usr/bin/env bash
# The avgen command line as a user meets it: help on every command, check/plan/emit on every shipped
# description, one clear sentence and exit status 2 for each kind of bad input, plan --json readable by
# another tool, emit byte-identical across runs and folders, the emitted folder building on its own.
# usage: cli_test.sh AVGEN REPO_ROOT
set -u
AVGEN=$1
ROOT=$2
. "$(dirname "$0")/lib.sh" cli

# expect STATUS SUBSTRING -- command...: exit status and a substring of stdout+stderr
expect() {
  local want=$1 needle=$2
  shift 3
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" != "$want" ]; then bad "$* -> exit $rc, expected $want: $out"; return; fi
  if [ -n "$needle" ] && ! grep -qF -- "$needle" <<<"$out"; then bad "$* -> output lacks '$needle': $out"; return; fi
  ok
}

# Help everywhere.
expect 0 "usage: avgen COMMAND" -- "$AVGEN" --help
expect 0 "usage: avgen COMMAND" -- "$AVGEN" help
for c in check plan emit devices step diff synth prep bench-loader train eval classify compare bench sweep jit; do
  expect 0 "usage: avgen $c" -- "$AVGEN" $c --help
  expect 0 "usage: avgen $c" -- "$AVGEN" help $c
done
expect 2 "usage: avgen COMMAND" -- "$AVGEN"
expect 2 'unknown command "chek" (did you mean check?)' -- "$AVGEN" chek
expect 2 'avgen help: unknown command "bogus"' -- "$AVGEN" help bogus
expect 2 "--threads takes at most 256 loader threads" -- "$AVGEN" train "$ROOT/models/tiny-lavish.json" --data "$TMP" \
  --threads 100000
expect 2 "--src, --splits and --out are required" -- "$AVGEN" prep --src /nonexistent
expect 2 "is not a folder" -- "$AVGEN" prep --src /nonexistent --splits /nonexistent --out "$TMP/p"
expect 2 "--quality is the JPEG quality and --raw stores no JPEG; give one of them" -- "$AVGEN" prep --src /x --splits /x \
  --out "$TMP/p" --raw --quality 5
expect 2 "--data PREPARED is required" -- "$AVGEN" bench-loader
expect 2 "avgen bench-loader: unknown option --bogus" -- "$AVGEN" bench-loader --data "$TMP" --bogus
expect 0 "avgen 0." -- "$AVGEN" --version
expect 2 "unknown option --bogus" -- "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --bogus
expect 2 "--peak needs a positive number of FLOP/s" -- "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --peak -1
expect 2 "--bandwidth needs a positive number of bytes per second" -- "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --bandwidth 4.8TB
expect 2 "--peak needs a positive number of FLOP/s (from 1e9 to 1e18)" -- "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --peak inf
expect 2 "--bandwidth needs a positive number of bytes per second" -- "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --bandwidth 1e-320
expect 0 "roofline at 4.80 TB/s and 989 TFLOP/s" -- "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --bandwidth 4.8e12 --no-batch-search
expect 2 "a model description MODEL.json is required" -- "$AVGEN" check
expect 2 "an output folder -o DIR is required" -- "$AVGEN" emit "$ROOT/models/tiny-lavish.json"
expect 2 "unexpected argument" -- "$AVGEN" check "$ROOT/models/tiny-lavish.json" extra.json

# Without a GPU the binary starts and says why it has no device.
expect 0 "CPU backend still works" -- "$AVGEN" devices

# Every shipped description checks, plans and emits.
for m in "$ROOT"/models/*.json; do
  expect 0 ": valid" -- "$AVGEN" check "$m"
  expect 0 "Memory per recompute policy" -- "$AVGEN" plan "$m" --no-batch-search
done
expect 0 "frozen 85798656, trainable 4656275 (adapters 3843168, head 813107)" -- "$AVGEN" check "$ROOT/models/lavish-vitb16-ucf51.json"
expect 0 "backbone.weights is not set" -- "$AVGEN" check "$ROOT/models/lavish-vitb16-ucf51.json"
expect 0 '"train": {' -- "$AVGEN" check "$ROOT/models/tiny-lavish.json" --print-json

# plan --json: valid JSON with the documented keys and the right numbers.
if "$AVGEN" plan "$ROOT/models/lavish-vitb16-ucf51.json" --json >"$TMP/plan.json" 2>"$TMP/plan.err"; then
  if python3 - "$TMP/plan.json" <<'EOF'
import json, sys
p = json.load(open(sys.argv[1]))
assert p["format"] == "avgen-plan" and p["version"] == 1
assert p["params"]["frozen"] == 85798656 and p["params"]["trainable"] == 4656275
assert p["params"]["trainable_groups"] == {"adapters": 3843168, "head": 813107}
assert abs(p["flops"]["visual_image_forward"] / 35.1e9 - 1) < 0.01
assert p["shapes"]["tokens_visual"] == 197 and p["shapes"]["tokens_audio"] == 49
for rc in ("none", "attention", "block"):
    m = p["memory"]["train"][rc]
    assert m["peak"] == sum(m[k] for k in ("frozen_params", "trainable_state", "activations", "inputs", "workspace", "scratch"))
    assert m["max_batch"] >= 4 and m["fits"] is True
assert p["memory"]["train"]["block"]["activations"] < p["memory"]["train"]["none"]["activations"]
# the CUDA backend of this version: fp32 activations (more than the bf16 plan), or some of them bf16 (fewer
# bytes, a larger batch; the peak's parts add up)
c = p["memory"]["cuda"]
f32, b16 = c["fp32_activations"], c["bf16_activations"]
assert c["policy"] == "none" and f32["peak"] > p["memory"]["train"]["none"]["peak"]
assert b16["bf16_tensors"] == 690 and 0 < b16["activations"] < f32["activations"]
# fp32, less the BatchNorm outputs and the adapters' gated fuse (applied on load)
assert f32["bn_on_load"] == 48 and f32["fuse_on_load"] == 48
assert f32["activations"] < p["memory"]["train"]["none"]["activations"] * 2
assert b16["peak"] == f32["peak"] - f32["activations"] + b16["activations"] + b16["bf16_weights"] + b16["bf16_trainable"]
assert b16["bf16_weights"] == p["memory"]["train"]["none"]["frozen_params"] == 171597312  # the bf16 plan counts them so too
# (and the parameter arena's bf16 copy: the trainable weights the grouped projections read as bf16, rounded once a step)
assert b16["bf16_trainable"] * 2 == p["memory"]["train"]["none"]["trainable_state"]
# (the bf16 plan stores every activation, in bf16; the backend leaves some out and keeps others fp32: either
# may fit more)
assert 4 <= f32["max_batch"] < b16["max_batch"]
# the roofline: the kinds add up to it (each at its bytes or its FLOPs, whichever takes longer), bf16 activations
# move fewer bytes, the FLOPs are the plan's, and no kind is faster than its FLOPs at the peak
r = c["roofline"]
assert r["peak_flops"] == 989e12 and r["bandwidth"] == 3.35e12
ks = r["kinds"].values()
assert abs(sum(k["bf16_activations_ms"] for k in ks) - r["bf16_activations_ms"]) < 1e-6 * r["bf16_activations_ms"]
assert abs(sum(max(k["bytes_fp32_activations"] / 3.35e12, k["flops"] / 989e12) for k in ks) * 1e3 - r["fp32_activations_ms"]) < 1e-3
assert all(k["bytes_bf16_activations"] <= k["bytes_fp32_activations"] for k in ks)
assert r["bf16_activations_ms"] < r["fp32_activations_ms"]
assert abs(sum(k["flops"] for k in ks) / p["flops"]["per_step"] - 1) < 1e-9  # policy none: no recomputed FLOPs
assert r["bf16_activations_ms"] > p["flops"]["per_step"] / 989e12 * 1e3
EOF
  then ok; else bad "plan --json content"; fi
else
  bad "plan --json failed: $(cat "$TMP/plan.err")"
fi

# Bad input: one sentence naming the path, exit 2; never a crash.
printf '{"train": {"batch": 4,}}' >"$TMP/trailing.json"
expect 2 "trailing.json:1:23: invalid JSON" -- "$AVGEN" check "$TMP/trailing.json"
printf '{"train": {"bacth": 4}}' >"$TMP/typo.json"
expect 2 "train.bacth is not a known field; did you mean train.batch?" -- "$AVGEN" plan "$TMP/typo.json"
expect 2 "train.bacth is not a known field; did you mean train.batch?" -- "$AVGEN" emit "$TMP/typo.json" -o "$TMP/x"
printf '{"backbone": {"heads": 7}}' >"$TMP/heads.json"
expect 2 "backbone.dim = 768 is not divisible by backbone.heads = 7" -- "$AVGEN" check "$TMP/heads.json"
printf '{"backbone": {"weights": "missing.safetensors"}}' >"$TMP/weights.json"
expect 2 'backbone.weights = "missing.safetensors" cannot be read' -- "$AVGEN" check "$TMP/weights.json"
: >"$TMP/vit.safetensors"
printf '{"backbone": {"weights": "vit.safetensors"}}' >"$TMP/weights_ok.json"
expect 0 ": valid" -- "$AVGEN" check "$TMP/weights_ok.json"
expect 2 "cannot open the model description" -- "$AVGEN" check "$TMP/nope.json"
expect 2 "not a regular file" -- "$AVGEN" check "$TMP"
head -c 3000 /dev/urandom >"$TMP/garbage.json"
expect 2 "invalid JSON" -- "$AVGEN" check "$TMP/garbage.json"
expect 2 "train.batch = 0 is out of range" -- "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --set train.batch=0
expect 2 "--set train.bacth=2: train.bacth is not a known field; did you mean train.batch?" -- \
  "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --set train.bacth=2
expect 0 "B 5 x T 2 = 10 pairs" -- "$AVGEN" plan "$ROOT/models/tiny-lavish.json" --set train.batch=5 --no-batch-search
expect 0 "adapters on layers 1 (mlp)" -- "$AVGEN" check "$ROOT/models/tiny-lavish.json" --set 'adapter.layers=[1]' \
  --set 'adapter.sublayers=["mlp"]'

# emit: deterministic, unchanged files are not rewritten, another folder gets the same bytes.
expect 0 "wrote" -- "$AVGEN" emit "$ROOT/models/tiny-lavish.json" -o "$TMP/a"
expect 0 "0 of 11 files changed" -- "$AVGEN" emit "$ROOT/models/tiny-lavish.json" -o "$TMP/a"
expect 0 "11 of 11 files changed" -- "$AVGEN" emit "$ROOT/models/tiny-lavish.json" -o "$TMP/b/nested"
if diff -r "$TMP/a" "$TMP/b/nested" >/dev/null; then ok; else bad "emit output differs between folders"; fi
for f in plan.json model.h model.c kernels.cu kernels_src.c kernels_nvcc.cu main_train.c main_infer.c CMakeLists.txt avgen_graph.h \
  rt_cuda_kernels.cuh; do
  [ -s "$TMP/a/$f" ] && ok || bad "emit did not write $f"
done
if grep -qF "$TMP" -r "$TMP/a"; then bad "emitted files contain the output path"; else ok; fi
expect 0 "wrote" -- "$AVGEN" emit "$ROOT/models/lavish-vitb16-ucf51.json" -o "$TMP/v1"
expect 0 "wrote" -- "$AVGEN" emit "$ROOT/models/lavish-vitb16-ucf51.json" -o "$TMP/v2"
if cmp -s "$TMP/v1/model.c" "$TMP/v2/model.c" && cmp -s "$TMP/v1/plan.json" "$TMP/v2/plan.json"; then ok; else bad "ViT-B emit not byte-identical"; fi
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['format']=='avgen-build' and d['train']['ops']" \
  "$TMP/v1/plan.json" && ok || bad "emitted plan.json"
# A plan that does not fit: refused with one sentence, unless forced.
expect 2 "exceeds memory.budget" -- "$AVGEN" emit "$ROOT/models/lavish-vitb16-ucf51.json" -o "$TMP/big" --set train.batch=512
expect 0 "wrote" -- "$AVGEN" emit "$ROOT/models/tiny-lavish.json" -o "$TMP/forced" --set memory.budget=1000 --force
printf 'x' >"$TMP/afile"
expect 1 "is not a folder" -- "$AVGEN" emit "$ROOT/models/tiny-lavish.json" -o "$TMP/afile/sub"

# The emitted folder builds on its own with its CMakeLists.txt and the program checks its own plan.
if command -v cmake >/dev/null; then
  if cmake -S "$TMP/a" -B "$TMP/a/build" >"$TMP/cmake.log" 2>&1 && cmake --build "$TMP/a/build" >>"$TMP/cmake.log" 2>&1; then
    expect 0 "plan consistent" -- "$TMP/a/build/tiny-lavish-train" --check-plan
    expect 0 "tiny-lavish (description hash" -- "$TMP/a/build/tiny-lavish-infer" --describe
  else
    bad "the emitted CMakeLists.txt does not build: $(tail -5 "$TMP/cmake.log")"
  fi
fi

finish
