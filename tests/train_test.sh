#!/usr/bin/env bash
# avgen train / eval / compare end to end on a synthetic set (audio carries the class): an uninterrupted
# run; the same run killed with SIGKILL at random moments (checkpoints every step, so some kills land in
# the middle of a write) and resumed until done, whose per-step losses must equal the uninterrupted
# run's exactly and whose checkpoint pointer is valid after every kill; eval --json with clip and video
# top-1/top-5 and the confusion files; compare; a non-finite loss stops the run and keeps the last good
# checkpoint; bad input gives one sentence and exit 2.
# The generated program's --train (its straight-line step) must give the same log as avgen train.
# usage: train_test.sh AVGEN REPO_ROOT [GENERATED_TRAIN]
set -u
AVGEN=$1
ROOT=$2
GTRAIN=${3:-}
. "$(dirname "$0")/lib.sh" train
M=$ROOT/models/tiny-lavish.json
SETS=(--set head.classes=3 --set train.batch=2 --set train.epochs=12 --set video.frames=2 --set train.warmup=3
      --set train.schedule=cosine --set train.grad_accum=2)

"$AVGEN" synth --out "$TMP/syn" --classes 3 --videos 18 --seconds 1.2 --size 96x64 --cue audio --seed 5 >/dev/null 2>&1 \
  && ok || bad "synth"
"$AVGEN" prep --src "$TMP/syn" --splits "$TMP/syn/ucfTrainTestlist" --out "$TMP/prep" --size 48 >/dev/null 2>&1 \
  && ok || bad "prep"

# The uninterrupted reference run.
"$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/runA" "${SETS[@]}" --val-every 3 --checkpoint-every 1 --quiet \
  2>"$TMP/a.err" && ok || bad "train: $(cat "$TMP/a.err")"
for f in log.jsonl summary.json checkpoint.json best.safetensors model.json; do
  [ -s "$TMP/runA/$f" ] && ok || bad "the run has no $f"
done
losses() { python3 -c "
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if 'step' in o: print(o['step'], repr(o['loss']), repr(o['lr']), repr(o['grad_norm']))
    else: print('epoch', o['epoch_end'], repr(o['train_loss']), repr(o['val_top1']))
" "$1"; }
losses "$TMP/runA/log.jsonl" >"$TMP/a.txt"
steps=$(grep -c -v '^epoch' "$TMP/a.txt")
[ "$steps" -ge 20 ] && ok || bad "only $steps steps"
python3 - "$TMP/runA/log.jsonl" <<'EOF' && ok || bad "log.jsonl fields or the warm-up/cosine schedule"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
st = [r for r in rows if "step" in r]
for k in ("step", "epoch", "loss", "lr", "head_lr", "grad_norm", "clips_per_s", "pairs_per_s", "data_wait_s", "memory_bytes"):
    assert all(k in r for r in st), k
assert abs(st[0]["lr"] - 1e-3 / 3) < 1e-9 and abs(st[2]["lr"] - 1e-3) < 1e-9      # warm-up over 3 steps
assert st[-1]["lr"] < st[3]["lr"] / 5                                                # cosine decays
assert any("epoch_end" in r and r["val_top1"] >= 0 for r in rows)                    # validation ran
EOF

# Killed at random moments and resumed until it finishes.
kills=0
"$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/runB" "${SETS[@]}" --val-every 3 --checkpoint-every 1 --quiet \
  >/dev/null 2>&1 &
pid=$!
for i in $(seq 1 40); do
  sleep "0.0$((RANDOM % 9 + 1))"
  kill -9 $pid 2>/dev/null && kills=$((kills + 1))
  wait $pid 2>/dev/null
  if [ -s "$TMP/runB/summary.json" ]; then break; fi
  if [ -f "$TMP/runB/checkpoint.json" ]; then
    python3 -c "
import json, os, sys
c = json.load(open(sys.argv[1] + '/checkpoint.json'))
assert os.path.getsize(sys.argv[1] + '/' + c['file']) > 0
" "$TMP/runB" || bad "checkpoint.json points to a missing file after a kill"
    resume=--resume
  else
    rm -rf "$TMP/runB"
    resume=
  fi
  "$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/runB" "${SETS[@]}" --val-every 3 --checkpoint-every 1 --quiet \
    $resume >/dev/null 2>"$TMP/b.err" &
  pid=$!
done
wait $pid 2>/dev/null
[ -s "$TMP/runB/summary.json" ] && ok || bad "the resumed run did not finish: $(cat "$TMP/b.err")"
[ "$kills" -ge 2 ] && ok || bad "only $kills kills landed"
losses "$TMP/runB/log.jsonl" >"$TMP/b.txt"
if cmp -s "$TMP/a.txt" "$TMP/b.txt"; then ok; else bad "after $kills kills and resumes the log differs: $(diff "$TMP/a.txt" "$TMP/b.txt" | head -5)"; fi
ls "$TMP/runB" | grep -q '\.tmp\.' && bad "temporary files left in the run folder" || ok

# avgen train builds and runs the configuration's program; --in-process runs the same step inside avgen.
[ -x "$TMP/runA/program/trainprog-train" ] || [ -n "$(ls "$TMP/runA/program/"*-train 2>/dev/null)" ] && ok \
  || bad "avgen train did not build the configuration's program"
"$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/runI" "${SETS[@]}" --val-every 3 --checkpoint-every 1 --quiet \
  --in-process 2>"$TMP/i.err" && ok || bad "train --in-process: $(cat "$TMP/i.err")"
losses "$TMP/runI/log.jsonl" >"$TMP/i.txt"
if cmp -s "$TMP/a.txt" "$TMP/i.txt"; then ok; else bad "in-process log differs: $(diff "$TMP/a.txt" "$TMP/i.txt" | head -3)"; fi

# The generated program trains to exactly the same losses.
if [ -n "$GTRAIN" ]; then
  "$GTRAIN" --train --data "$TMP/prep" --out "$TMP/runG" --val-every 3 --checkpoint-every 1 --quiet 2>"$TMP/g.err" \
    && ok || bad "generated --train: $(cat "$TMP/g.err")"
  losses "$TMP/runG/log.jsonl" >"$TMP/g.txt"
  if cmp -s "$TMP/a.txt" "$TMP/g.txt"; then ok; else bad "generated program's log differs: $(diff "$TMP/a.txt" "$TMP/g.txt" | head -3)"; fi
fi

# Evaluation and comparison.
out=$("$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP/runA" "${SETS[@]}" --json 2>"$TMP/e.err")
python3 -c "
import json, sys
o = json.loads(sys.argv[1])
for k in ('clip', 'video'):
    assert 0 <= o[k]['top1'] <= o[k]['top5'] <= 1
assert o['split'] == 'test' and len(o['per_class']) == 3
assert all(0 <= c['accuracy'] <= 1 for c in o['per_class'])
" "$out" && ok || bad "eval --json: $out $(cat "$TMP/e.err")"
for f in eval-test.json confusion-test.csv confusion-test.png; do [ -s "$TMP/runA/$f" ] && ok || bad "eval wrote no $f"; done
head -c 8 "$TMP/runA/confusion-test.png" | od -An -c | grep -q 'P   N   G' && ok || bad "confusion-test.png is not a PNG"
"$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP/runA" "${SETS[@]}" --split val --val-every 3 >/dev/null 2>&1 \
  && ok || bad "eval --split val"
"$AVGEN" compare "$TMP/runA" "$TMP/runB" >"$TMP/cmp.txt" 2>&1 && grep -q "runA" "$TMP/cmp.txt" && ok || bad "compare: $(cat "$TMP/cmp.txt")"

# compare refuses a summary.json that avgen train did not write; eval says why it cannot write its results.
cp -r "$TMP/runB" "$TMP/runS"
printf '{"clips_per_s": -1e400, "trainable_params": 5}\n' >"$TMP/runS/summary.json"
expect2 "runS/summary.json: clips_per_s = -1e400 is not what avgen train writes" "$AVGEN" compare "$TMP/runA" "$TMP/runS"
out=$("$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP/runA" "${SETS[@]}" --out "$TMP/no/such" 2>&1)
[ $? = 1 ] && grep -q "cannot write the results into $TMP/no/such (No such file or directory)" <<<"$out" && ok \
  || bad "eval --out into a missing folder: $out"

# A non-finite loss stops the run and keeps the last good checkpoint: both head weights set to 3e38 (finite, so
# the checkpoint loads) overflow the logits. A checkpoint or parameter file holding a NaN is refused when loaded.
poison() {  # RUN VALUE TENSOR...: those tensors of RUN's checkpoint all set to VALUE; prints the file
  python3 - "$@" <<'EOF'
import json, struct, sys
d = sys.argv[1]
c = json.load(open(d + "/checkpoint.json"))
p = d + "/" + c["file"]
raw = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
for name in sys.argv[3:]:
    a, b = h[name]["data_offsets"]
    for i in range(a, b, 4):
        raw[8 + n + i:8 + n + i + 4] = struct.pack("<f", float(sys.argv[2]))
open(p, "wb").write(raw)
print(p)
EOF
}
cp -r "$TMP/runA" "$TMP/runNaN"
pn=$(poison "$TMP/runNaN" nan mlp_class.weight) && ok || bad "poisoning the checkpoint with NaN"
expect2 "tensor mlp_class.weight holds a non-finite value (nan at element 0)" "$AVGEN" train "$M" --data "$TMP/prep" \
  --out "$TMP/runNaN" "${SETS[@]}" --set train.epochs=20 --resume --quiet
expect2 "parameter mlp_class.weight holds a non-finite value" "$AVGEN" step "$M" "${SETS[@]}" --inputs random \
  --params "$pn" --out "$TMP/nan-step.st"
cp -r "$TMP/runA" "$TMP/runN"
poison "$TMP/runN" 3e38 mlp_class.weight mlp_class_2.weight >/dev/null && ok || bad "poisoning the checkpoint"
before=$(cat "$TMP/runN/checkpoint.json")
"$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/runN" "${SETS[@]}" --set train.epochs=20 --val-every 3 --resume --quiet \
  2>"$TMP/n.err"
rc=$?
[ "$rc" = 3 ] && grep -q "the loss became NaN" "$TMP/n.err" && ok || bad "non-finite loss: exit $rc: $(cat "$TMP/n.err")"
[ "$before" = "$(cat "$TMP/runN/checkpoint.json")" ] && ok || bad "the last good checkpoint was replaced"

# Bad input.
expect2 "--data PREPARED is required" "$AVGEN" train "$M"
expect2 "already holds a run" "$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/runA" "${SETS[@]}"
expect2 "holds 48x48 frames but the configuration's image is 224x224" "$AVGEN" train "$ROOT/models/lavish-vitb16-ucf51.json" \
  --data "$TMP/prep" --out "$TMP/runV" --quiet
expect2 "cannot read" "$AVGEN" train "$M" --data "$TMP/nothing" --out "$TMP/runX" "${SETS[@]}" --quiet
expect2 "--backend gpu is not a backend" "$AVGEN" train "$M" --data "$TMP/prep" --backend gpu "${SETS[@]}"
expect2 "was trained with another configuration" "$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/runA" "${SETS[@]}" \
  --set train.seed=9 --resume --quiet
[ -n "$GTRAIN" ] && expect2 "--threads 300 is not a loader thread count from 0 (the default) to 256" "$GTRAIN" --train \
  --data "$TMP/prep" --out "$TMP/runT" --threads 300
expect2 "expected a run folder" "$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP" "${SETS[@]}"
expect2 "--split x is not test, train or val" "$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP/runA" --split x

finish
