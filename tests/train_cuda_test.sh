#!/usr/bin/env bash
# The training loop on the CUDA backend, run on the CUDA emulator (the program built with avrt_emu), on a
# synthetic set: 8 optimizer steps with validation each epoch and a checkpoint every step.
#   fp32 GEMMs against the CPU backend (the same program): every step's loss and gradient norm within
#   1e-5 (relative), the validation accuracies equal, the last checkpoint within 1e-4 per tensor (but
#   ln_before.bias, zero in exact arithmetic, whose Adam steps take the sign of rounding, and its moments);
#   a run stopped after 4 steps and resumed: the log and the last checkpoint bit-identical to the
#   uninterrupted run's (the device state goes to the checkpoint and comes back exactly); the steps replayed
#   as CUDA graphs (counted in summary.json) bit-identical to eager steps (AVGEN_CUDA_GRAPH=0);
#   the next batch uploaded on a second stream while a step runs: the same bits (4 steps, two epochs) with either
#   stream made late by the emulator, and without the second stream (AVGEN_PREFETCH=0);
#   bf16 GEMMs (the default of --train on the GPU): finishes, every loss within 5% of fp32's;
#   bf16 activations (AVGEN_BF16_OPERANDS=1) through training and validation, losses within 5% of bf16 GEMMs; on
#   the emulator's tracing build (4 steps, two epochs), no race, read of memory never written or op outside its
#   tensors, and the same losses;
#   validation that runs out of device memory: reported (also with --quiet, and in the log), then off;
#   avgen train and avgen eval --backend cuda without a GPU, and bad options: one sentence, non-zero exit.
# usage: train_cuda_test.sh AVGEN REPO_ROOT TRAIN_EMU_PROGRAM [TRAIN_EMUTRACE_PROGRAM]
set -u
AVGEN=$1
ROOT=$2
P=$3
. "$(dirname "$0")/lib.sh" train-cuda
# A batch handed back to the loader is overwritten at once, and the emulator runs an upload from the host late
# (at the stream's next operation): a step that still reads a batch it has given back trains on garbage.
export AVGEN_LOADER_SCRIBBLE=1

"$AVGEN" synth --out "$TMP/syn" --classes 3 --videos 18 --seconds 1.2 --size 96x64 --cue audio --seed 5 >/dev/null 2>&1 \
  && ok || bad "synth"
"$AVGEN" prep --src "$TMP/syn" --splits "$TMP/syn/ucfTrainTestlist" --out "$TMP/prep" --size 48 >/dev/null 2>&1 \
  && ok || bad "prep"
A=(--train --data "$TMP/prep" --val-every 3 --checkpoint-every 1 --quiet)
run "cpu" "$P" "${A[@]}" --out "$TMP/cpu" --max-steps 8
run "cuda fp32" "$P" "${A[@]}" --out "$TMP/cuda" --max-steps 8 --backend cuda --precision fp32
run "cuda bf16" "$P" "${A[@]}" --out "$TMP/bf16" --max-steps 8 --backend cuda
# bf16 activations (AVGEN_BF16_OPERANDS=1): the training context and the validation context (which shares the
# frozen weights and their bf16 copy) both repack their activation arenas
run "cuda bf16 activations" env AVGEN_BF16_OPERANDS=1 "$P" "${A[@]}" --out "$TMP/ops" --max-steps 8 --backend cuda
# the trainable weights the grouped projections read as bf16, rounded once a step into a copy (the default) or by
# each op (AVGEN_FEWER_LAUNCHES=0; with the BatchNorm statistics apart too): the same bits in every step, validation
# and checkpoint, so the copy is rounded again after every update and in the validation context's every forward
run "cuda bf16 activations, fewer launches off" env AVGEN_BF16_OPERANDS=1 AVGEN_FEWER_LAUNCHES=0 "$P" "${A[@]}" \
  --out "$TMP/opsfew0" --max-steps 8 --backend cuda
if [ -s "$TMP/ops/log.jsonl" ] && [ "$(grep -o '"\(loss\|grad_norm\|val_loss\|val_top1\)":[^,}]*' "$TMP/ops/log.jsonl")" = \
  "$(grep -o '"\(loss\|grad_norm\|val_loss\|val_top1\)":[^,}]*' "$TMP/opsfew0/log.jsonl")" ] &&
  cmp -s "$TMP/ops/best.safetensors" "$TMP/opsfew0/best.safetensors"; then ok
else bad "bf16 activations with AVGEN_FEWER_LAUNCHES=0: not the same losses, gradient norms, validation or best checkpoint"; fi
# the same on the emulator's tracing build (TRACE_PROGRAM, when built): no race, no read of memory never written
# and no op touching a tensor not its own, in any kernel or cuBLASLt call of training and validation, and the same
# losses (docs/emulator.md)
# (4 steps: two epochs, the first validated; the first 4 of the 8 steps above)
if [ -n "${4:-}" ]; then
  run "traced bf16 activations" env AVGEN_BF16_OPERANDS=1 AVGEN_EMU_RACES=1 AVGEN_EMU_INITCHECK=1 AVGEN_EMU_OPCHECK=1 \
    "$4" "${A[@]}" --out "$TMP/traced" --max-steps 4 --backend cuda &&
    { if [ "$(grep -c '"loss":' "$TMP/traced/log.jsonl")" = 4 ] && [ "$(grep -c '"val_top1": *[0-9]' "$TMP/traced/log.jsonl")" = 1 ] &&
        [ "$(grep -o '"loss":[^,]*' "$TMP/ops/log.jsonl" | head -4)" = "$(grep -o '"loss":[^,]*' "$TMP/traced/log.jsonl")" ]
      then ok; else bad "traced training: not the first 4 losses of the plain emulator's, or no validation"; fi; }
fi

# steps: loss and grad_norm; epochs: validation top-1
python3 - "$TMP/cpu/log.jsonl" "$TMP/cuda/log.jsonl" "$TMP/bf16/log.jsonl" "$TMP/ops/log.jsonl" <<'EOF' && ok || bad "the CUDA logs against the CPU log"
import json, sys
def rows(p):
    return [json.loads(l) for l in open(p)]
cpu, gpu, b16, ops = (rows(p) for p in sys.argv[1:5])
steps = lambda r: [x for x in r if "step" in x]
epochs = lambda r: [x for x in r if "epoch_end" in x]
assert len(steps(cpu)) == len(steps(gpu)) == len(steps(b16)) == 8, (len(steps(cpu)), len(steps(gpu)), len(steps(b16)))
for a, b in zip(steps(cpu), steps(gpu)):
    for k in ("loss", "grad_norm"):
        assert abs(a[k] - b[k]) <= 1e-5 * abs(a[k]), (a["step"], k, a[k], b[k])
    assert a["lr"] == b["lr"]
assert [e["val_top1"] for e in epochs(cpu)] == [e["val_top1"] for e in epochs(gpu)]
assert len(epochs(cpu)) >= 2
for a, b in zip(steps(gpu), steps(b16)):
    assert abs(a["loss"] - b["loss"]) <= 0.05 * abs(a["loss"]), (a["step"], a["loss"], b["loss"])
assert len(steps(ops)) == 8 and len(epochs(ops)) == len(epochs(gpu))
assert all("val_top1" in e for e in epochs(ops)) and not any("validation_error" in x for x in ops)
for a, b in zip(steps(b16), steps(ops)):
    assert abs(a["loss"] - b["loss"]) <= 0.05 * abs(a["loss"]), (a["step"], a["loss"], b["loss"])
EOF
last() { python3 -c "import json,sys; print(sys.argv[1] + '/' + json.load(open(sys.argv[1] + '/checkpoint.json'))['file'])" "$1"; }
if out=$("$AVGEN" diff "$(last "$TMP/cuda")" "$(last "$TMP/cpu")" --rtol 1e-4 --rtol-for ln_before.bias=10 2>&1); then ok
else bad "the CUDA checkpoint against the CPU one: $(tail -4 <<<"$out")"; fi
for f in best.safetensors summary.json; do [ -s "$TMP/cuda/$f" ] && ok || bad "the CUDA run has no $f"; done

# each step part (zeroing + forward + backward, the same without the zeroing, the update) ran eagerly once, then as
# CUDA graph launches: at least 7 updates and 7 first batches of an accumulation of the 8 steps; without graphs
# (AVGEN_CUDA_GRAPH=0) none, and the same bits (below)
replays=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['cuda_graph_launches'])" "$TMP/cuda/summary.json" 2>/dev/null)
[ "${replays:-0}" -ge 14 ] && ok || bad "the CUDA run launched ${replays:-no} step parts as CUDA graphs (8 steps of 2 batches)"
run "cuda fp32, no graphs" env AVGEN_CUDA_GRAPH=0 "$P" "${A[@]}" --out "$TMP/eager" --max-steps 8 --backend cuda --precision fp32
replays=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['cuda_graph_launches'])" "$TMP/eager/summary.json" 2>/dev/null)
[ "$replays" = 0 ] && ok || bad "AVGEN_CUDA_GRAPH=0 still replayed $replays graphs"

run "cuda 4 steps" "$P" "${A[@]}" --out "$TMP/res" --max-steps 4 --backend cuda --precision fp32
cp -r "$TMP/res" "$TMP/four"  # (4 steps, two epochs, the first validated: what the stream checks below compare with)
run "cuda resumed" "$P" "${A[@]}" --out "$TMP/res" --max-steps 8 --backend cuda --precision fp32 --resume
strip() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    for k in ('clips_per_s', 'pairs_per_s', 'data_wait_s'): o.pop(k, None)
    print(json.dumps(o, sort_keys=True))
" "$1"; }
if cmp -s <(strip "$TMP/res/log.jsonl") <(strip "$TMP/cuda/log.jsonl"); then ok
else bad "the resumed CUDA run's log differs: $(diff <(strip "$TMP/res/log.jsonl") <(strip "$TMP/cuda/log.jsonl") | head -4)"; fi
if cmp -s "$(last "$TMP/res")" "$(last "$TMP/cuda")"; then ok; else bad "the resumed CUDA run's checkpoint differs"; fi
if cmp -s <(strip "$TMP/eager/log.jsonl") <(strip "$TMP/cuda/log.jsonl") && cmp -s "$(last "$TMP/eager")" "$(last "$TMP/cuda")"
then ok; else bad "the steps as CUDA graphs differ from the eager steps: $(diff <(strip "$TMP/eager/log.jsonl") <(strip "$TMP/cuda/log.jsonl") | head -4)"; fi

# The next batch goes up on a stream of its own while a step runs (rt_cuda_stage_input), and validation's next batch
# while a forward pass runs. The emulator makes streams lag (AVGEN_EMU_LAG_STREAM: their work runs only when waited
# for; the training context creates streams 1 (steps) and 2 (uploads), validation's 3 and 4): with the uploads late a
# step that does not wait for them trains on the batch before; with the steps late an upload that does not wait for
# the step before to take its batch overwrites it. Either way the same bits as the run above; and without the second
# stream (AVGEN_PREFETCH=0: each batch set just before its step) too. (4 steps: two epochs, the first validated.)
for lag in 2,3 1,4; do
  run "cuda fp32, streams $lag lagging" env AVGEN_EMU_LAG_STREAM=$lag "$P" "${A[@]}" --out "$TMP/lag$lag" --max-steps 4 \
    --backend cuda --precision fp32
done
run "cuda fp32, no prefetch" env AVGEN_PREFETCH=0 "$P" "${A[@]}" --out "$TMP/nopf" --max-steps 4 --backend cuda --precision fp32
[ "$(grep -c '"val_top1": *[0-9]' "$TMP/four/log.jsonl")" = 1 ] && [ "$(grep -c '"epoch_end"' "$TMP/four/log.jsonl")" = 2 ] && ok ||
  bad "the 4-step run is not two epochs with a validation: $(cat "$TMP/four/log.jsonl")"
for r in lag2,3 lag1,4 nopf; do
  if cmp -s <(strip "$TMP/$r/log.jsonl") <(strip "$TMP/four/log.jsonl") && cmp -s "$(last "$TMP/$r")" "$(last "$TMP/four")"
  then ok; else bad "$r: the run differs from the default one: $(diff <(strip "$TMP/$r/log.jsonl") <(strip "$TMP/four/log.jsonl") | head -4)"; fi
done
out=$(AVGEN_PREFETCH=2 "$P" "${A[@]}" --out "$TMP/x2" --max-steps 1 --backend cuda 2>&1)
rc=$?
[ $rc != 0 ] && grep -q "AVGEN_PREFETCH=2: expected 0 or 1" <<<"$out" && ok || bad "AVGEN_PREFETCH=2: exit $rc: $out"

# Validation that does not fit the device (the emulator's memory cut to 60 MB: the training context fits, the
# evaluation context's workspace does not): said on stderr despite --quiet and once in the log, and the
# training goes on to the end without validation.
out=$(AVGEN_EMU_MEMORY=60000000 "$P" "${A[@]}" --out "$TMP/oom" --max-steps 8 --backend cuda --precision fp32 2>&1)
rc=$?
if [ $rc = 0 ] && grep -q "validation failed: .*device memory.*; no more validation" <<<"$out" &&
  [ "$(grep -c validation_error "$TMP/oom/log.jsonl")" = 1 ] && [ "$(grep -c '"step"' "$TMP/oom/log.jsonl")" = 8 ] &&
  [ -s "$TMP/oom/summary.json" ]; then ok; else bad "validation out of device memory: exit $rc: $out"; fi

# Bad options, and avgen train on a machine without a GPU (the real CUDA runtime there).
expect2 "--precision fp16 is not a precision" "$P" "${A[@]}" --out "$TMP/x" --backend cuda --precision fp16
out=$("$P" "${A[@]}" --out "$TMP/y" --backend cuda --kernels nvrtc 2>&1)
rc=$?
[ $rc != 0 ] && grep -q "runs the kernels built into this binary only" <<<"$out" && ok || bad "--kernels nvrtc on the emulator: $rc $out"
M=$ROOT/models/tiny-lavish.json
SETS=(--set head.classes=3 --set train.batch=2 --set train.epochs=12 --set video.frames=2 --set train.warmup=3
      --set train.schedule=cosine --set train.grad_accum=2)
if ! nvidia-smi >/dev/null 2>&1; then
  out=$("$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/z" --backend cuda --quiet --in-process "${SETS[@]}" 2>&1)
  rc=$?
  [ $rc != 0 ] && grep -q "CUDA" <<<"$out" && [ "$(grep -c . <<<"$out")" -le 2 ] && ok \
    || bad "avgen train --backend cuda without a GPU: exit $rc: $out"
fi
if ! nvidia-smi >/dev/null 2>&1; then
  out=$("$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP/cpu" --backend cuda "${SETS[@]}" 2>&1)
  rc=$?
  [ $rc != 0 ] && grep -q "no usable CUDA device\|no CUDA device" <<<"$out" && ok || bad "avgen eval --backend cuda without a GPU: exit $rc: $out"
fi
expect2 "--precision fp16 is not a precision" "$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP/cpu" --backend cuda \
  --precision fp16 "${SETS[@]}"
finish
