#!/usr/bin/env bash
# avgen step and the generated CPU programs against the PyTorch reference fixtures (tests/fixtures/step,
# made by tests/reference/make_fixtures.sh): per tensor relative L2 error <= 1e-5 with the gradient-scale
# floor (avgen diff --grad-floor); every recompute policy gives bit-identical dumps; the generated program's
# straight-line step gives exactly avgen step's dump; the generated inference program gives the reference
# eval-mode logits; bad inputs fail with one sentence and exit status 2.
# usage: step_test.sh AVGEN REPO_ROOT GENERATED_TRAIN GENERATED_INFER
set -u
AVGEN=$1
ROOT=$2
GTRAIN=$3
GINFER=$4
FIX=$ROOT/tests/fixtures/step
. "$(dirname "$0")/lib.sh" step

for f in lavish-odd-batch lavish-partial late; do
  d=$FIX/$f
  run "$f: step" "$AVGEN" step "$d/config.json" --params "$d/params.safetensors" --inputs "$d/inputs.safetensors" \
    --out "$TMP/$f.safetensors"
  run "$f: against the reference" "$AVGEN" diff "$TMP/$f.safetensors" "$d/expected.safetensors" --rtol 1e-5 --grad-floor
  for rc in attention block; do
    run "$f: step ($rc)" "$AVGEN" step "$d/config.json" --set memory.recompute=$rc --params "$d/params.safetensors" \
      --inputs "$d/inputs.safetensors" --out "$TMP/$f.$rc.safetensors"
    if cmp -s "$TMP/$f.safetensors" "$TMP/$f.$rc.safetensors"; then ok; else bad "$f: recompute $rc changes the dump"; fi
  done
done

# The generated program (built from lavish-odd-batch's description) runs the same ops in straight-line code.
d=$FIX/lavish-odd-batch
run "generated --step" "$GTRAIN" --step --params "$d/params.safetensors" --inputs "$d/inputs.safetensors" \
  --out "$TMP/generated.safetensors"
if cmp -s "$TMP/generated.safetensors" "$TMP/lavish-odd-batch.safetensors"; then ok; else bad "generated step differs from avgen step"; fi
# The CPU backend's matrix products split their rows over AVGEN_CPU_THREADS threads: the same bits for any count,
# at a width where every product has rows for several threads (N = 197 tokens, width 128); a count that is not an
# integer from 1 to 256 is refused with one sentence.
wide=(models/tiny-lavish.json --set backbone.image_size=224 --set video.size=224 --set backbone.dim=128
  --set backbone.heads=2 --set backbone.mlp_dim=256 --set backbone.depth=1 --set audio.mel_bins=128
  --set train.batch=1 --set video.frames=2)
for t in 1 2 5; do
  run "step with $t CPU threads" env AVGEN_CPU_THREADS=$t "$AVGEN" step "$ROOT/${wide[@]}" --inputs random \
    --out "$TMP/threads$t.safetensors"
done
if cmp -s "$TMP/threads1.safetensors" "$TMP/threads2.safetensors" && cmp -s "$TMP/threads1.safetensors" "$TMP/threads5.safetensors"
then ok; else bad "the CPU step's bits depend on AVGEN_CPU_THREADS"; fi
# the parameters initialised from the seed (tensors drawn in parallel, each from its own stream): the same
for t in 1 3; do
  run "init with $t CPU threads" env AVGEN_CPU_THREADS=$t "$AVGEN" step "$ROOT/${wide[@]}" --inputs random \
    --out "$TMP/x.safetensors" --init-out "$TMP/init$t.safetensors"
done
if cmp -s "$TMP/init1.safetensors" "$TMP/init3.safetensors"; then ok; else bad "the initial parameters depend on AVGEN_CPU_THREADS"; fi
expect2 "AVGEN_CPU_THREADS=0: expected the number of CPU threads, 1 to 256" env AVGEN_CPU_THREADS=0 "$AVGEN" step \
  "$d/config.json" --inputs "$d/inputs.safetensors" --out "$TMP/x.safetensors"
expect2 "AVGEN_CPU_THREADS=two: expected" env AVGEN_CPU_THREADS=two "$GTRAIN" --step --inputs "$d/inputs.safetensors" \
  --out "$TMP/x.safetensors"
expect2 "AVGEN_CPU_THREADS=300: expected" env AVGEN_CPU_THREADS=300 "$GINFER" --params "$d/params.safetensors" \
  --inputs "$d/inputs.safetensors" --out "$TMP/x.safetensors"
# an option given twice: refused (which was meant cannot be told), nothing written
expect2 "--out given twice" "$AVGEN" step "$d/config.json" --inputs "$d/inputs.safetensors" --out "$TMP/twice1.st" \
  --out "$TMP/twice2.st"
expect2 "-o given twice" "$AVGEN" emit "$d/config.json" --out "$TMP/twice-a" -o "$TMP/twice-b"
expect2 "--json given twice" "$AVGEN" plan "$d/config.json" --json --json
expect2 "--inputs given twice" "$GTRAIN" --step --inputs "$d/inputs.safetensors" --inputs random --out "$TMP/twice3.st"
expect2 "--step given twice" "$GTRAIN" --step --step --inputs random --out "$TMP/twice3.st"
expect2 "--out given twice" "$GINFER" --params "$d/params.safetensors" --inputs "$d/inputs.safetensors" \
  --out "$TMP/twice4.st" --out "$TMP/twice5.st"
if ls "$TMP"/twice* >/dev/null 2>&1; then bad "an option given twice still wrote: $(ls "$TMP"/twice*)"; else ok; fi
run "generated inference" "$GINFER" --params "$d/params.safetensors" --inputs "$d/inputs.safetensors" --out "$TMP/eval.safetensors"
run "eval logits against the reference" "$AVGEN" diff "$TMP/eval.safetensors" "$d/expected_eval.safetensors" --rtol 1e-5

# --init-out writes the full parameter set; feeding it back reproduces the step exactly.
run "init-out" "$AVGEN" step "$d/config.json" --inputs "$d/inputs.safetensors" --out "$TMP/a.safetensors" \
  --init-out "$TMP/init.safetensors"
run "step from init-out" "$AVGEN" step "$d/config.json" --params "$TMP/init.safetensors" \
  --inputs "$d/inputs.safetensors" --out "$TMP/b.safetensors"
if cmp -s "$TMP/a.safetensors" "$TMP/b.safetensors"; then ok; else bad "a step from --init-out parameters differs"; fi
# Backbone names without the "vit." prefix load too.
python3 - "$TMP/init.safetensors" "$TMP/noprefix.safetensors" <<'EOF' && ok || bad "rewrite without vit. prefix"
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
h2 = {(k[4:] if k.startswith("vit.") else k): v for k, v in h.items()}
hb = json.dumps(h2).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hb)) + hb + raw[8 + n:])
EOF
run "step without vit. prefix" "$AVGEN" step "$d/config.json" --params "$TMP/noprefix.safetensors" \
  --inputs "$d/inputs.safetensors" --out "$TMP/c.safetensors"
if cmp -s "$TMP/a.safetensors" "$TMP/c.safetensors"; then ok; else bad "backbone names without vit. load differently"; fi

# Bad input: one sentence, exit 2.
expect2 "--inputs I.safetensors is required" "$AVGEN" step "$d/config.json" --out "$TMP/x.safetensors"
expect2 "cannot" "$AVGEN" step "$d/config.json" --inputs "$TMP/none.safetensors" --out "$TMP/x.safetensors"
expect2 "input frames has shape [3,2,3,32,32]; expected [2,2,3,32,32]" "$AVGEN" step "$d/config.json" --set train.batch=2 --inputs "$d/inputs.safetensors" \
  --out "$TMP/x.safetensors" --params "$d/params.safetensors"
expect2 "vit.embeddings.cls_token has shape [1,1,32] in the file; expected [1,1,64]" "$AVGEN" step "$d/config.json" \
  --set backbone.dim=64 --inputs "$d/inputs.safetensors" --params "$d/params.safetensors" --out "$TMP/x.safetensors"
# Without a usable GPU, --backend cuda and avgen bench say why in one sentence and exit 1; with one they run.
nogpu() {
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" = 0 ] || { [ "$rc" = 1 ] && grep -qE "no usable CUDA device|no CUDA device|has no CUDA backend|cuBLASLt cannot" <<<"$out"; }; then ok
  else bad "$* -> exit $rc: $out (wanted success or a reason for no GPU)"; fi
}
nogpu "$AVGEN" step "$d/config.json" --backend cuda --params "$d/params.safetensors" --inputs "$d/inputs.safetensors" --out "$TMP/x.safetensors"
nogpu "$AVGEN" bench "$d/config.json" --steps 2 --warmup 1
# --backend auto falls back to the CPU and gives the CPU's dump exactly when there is no GPU.
run "auto backend" "$AVGEN" step "$d/config.json" --backend auto --params "$d/params.safetensors" --inputs "$d/inputs.safetensors" \
  --out "$TMP/auto.safetensors"
if cmp -s "$TMP/auto.safetensors" "$TMP/lavish-odd-batch.safetensors" || "$AVGEN" devices | grep -q '^cuda:'; then ok
else bad "--backend auto without a GPU differs from the CPU step"; fi
expect2 "--backend gpu is not a backend; expected cpu, cuda or auto" "$AVGEN" step "$d/config.json" --backend gpu --inputs "$d/inputs.safetensors" --out "$TMP/x.safetensors"
expect2 "--precision bf16 needs the CUDA backend" "$AVGEN" step "$d/config.json" --precision bf16 --inputs "$d/inputs.safetensors" --out "$TMP/x.safetensors"
expect2 "--precision fp16 is not a precision" "$AVGEN" bench "$d/config.json" --precision fp16
expect2 "--peak needs a positive number" "$AVGEN" bench "$d/config.json" --peak -3
expect2 "--steps needs an integer from 1 to 100000" "$AVGEN" bench "$d/config.json" --steps 0
expect2 "--warmup needs an integer from 0 to 100000" "$AVGEN" bench "$d/config.json" --warmup -1
python3 - "$d/inputs.safetensors" "$TMP/badlabel.safetensors" <<'EOF' && ok || bad "label rewrite"
import json, struct, sys
raw = bytearray(open(sys.argv[1], "rb").read())
n = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + n])
a = h["labels"]["data_offsets"][0]
raw[8 + n + a:8 + n + a + 8] = struct.pack("<q", 99)
open(sys.argv[2], "wb").write(raw)
EOF
expect2 "labels[0] = 99 is out of range" "$AVGEN" step "$d/config.json" --inputs "$TMP/badlabel.safetensors" --out "$TMP/x.safetensors"
# Non-finite inputs and parameters, a negative running variance, a parameter file naming none of the parameters.
python3 - "$d/inputs.safetensors" "$d/params.safetensors" "$TMP" <<'EOF' && ok || bad "poisoned files"
import json, struct, sys
def poison(src, dst, name, value):
    raw = bytearray(open(src, "rb").read())
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    a = h[name]["data_offsets"][0]
    raw[8 + n + a + 4:8 + n + a + 8] = struct.pack("<f", value)
    open(dst, "wb").write(raw)
poison(sys.argv[1], sys.argv[3] + "/nan-audio.safetensors", "audio", float("nan"))
poison(sys.argv[2], sys.argv[3] + "/inf-param.safetensors", "mlp_class.weight", float("-inf"))
poison(sys.argv[2], sys.argv[3] + "/neg-var.safetensors", "audio_adapter_blocks_p1.0.bn1.running_var", -0.5)
EOF
expect2 "input audio holds a non-finite value (nan at element 1); expected finite numbers" "$AVGEN" step "$d/config.json" \
  --inputs "$TMP/nan-audio.safetensors" --out "$TMP/x.safetensors"
expect2 "parameter mlp_class.weight holds a non-finite value (-inf at element 1)" "$AVGEN" step "$d/config.json" \
  --params "$TMP/inf-param.safetensors" --inputs "$d/inputs.safetensors" --out "$TMP/x.safetensors"
expect2 "audio_adapter_blocks_p1.0.bn1.running_var holds a negative variance (-0.5 at element 1)" "$GINFER" \
  --params "$TMP/neg-var.safetensors" --inputs "$d/inputs.safetensors" --out "$TMP/x.safetensors"
expect2 "the parameter file holds none of this configuration's" "$AVGEN" step "$d/config.json" \
  --params "$d/inputs.safetensors" --inputs "$d/inputs.safetensors" --out "$TMP/x.safetensors"
# Output paths: empty, or something a rename must not replace (a FIFO, a folder), refused before the step runs.
mkfifo "$TMP/fifo"
mkdir -p "$TMP/folder"
expect2 "--out is empty; expected a file path" "$AVGEN" step "$d/config.json" --inputs random --out ""
expect2 "--out $TMP/fifo exists and is not a regular file" "$AVGEN" step "$d/config.json" --inputs random --out "$TMP/fifo"
expect2 "--update-out $TMP/folder exists and is not a regular file" "$GTRAIN" --step --inputs random \
  --out "$TMP/x.safetensors" --update-out "$TMP/folder"
expect2 "--out $TMP/fifo exists and is not a regular file" "$GINFER" --params "$d/params.safetensors" \
  --inputs "$d/inputs.safetensors" --out "$TMP/fifo"
[ -p "$TMP/fifo" ] && ok || bad "the FIFO was replaced"
# diff: the same numbers under another shape, or an integer tensor against a float one, differ.
python3 - "$TMP" <<'EOF' && ok || bad "diff files"
import json, struct, sys
def st(path, tensors):
    h, data = {}, b""
    for name, dtype, shape, raw in tensors:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    hb = json.dumps(h).encode()
    hb += b" " * (-len(hb) % 8)
    open(path, "wb").write(struct.pack("<Q", len(hb)) + hb + data)
f4 = struct.pack("<4f", 1, 2, 3, 4)
st(sys.argv[1] + "/d1.st", [("x", "F32", [2, 2], f4), ("y", "F32", [1], struct.pack("<f", 1))])
st(sys.argv[1] + "/d2.st", [("x", "F32", [4], f4), ("y", "I32", [1], struct.pack("<i", 1065353216))])
EOF
out=$("$AVGEN" diff "$TMP/d1.st" "$TMP/d2.st" 2>&1)
[ $? = 1 ] && grep -q "x .*shapes differ" <<<"$out" && grep -q "y .*dtypes differ (F32 and I32)" <<<"$out" && ok \
  || bad "diff of other shapes and dtypes: $out"
expect2 "--rtol needs a non-negative number" "$AVGEN" diff --rtol "" "$TMP/d1.st" "$TMP/d1.st"
head -c 100 "$d/params.safetensors" >"$TMP/trunc.safetensors"
expect2 "trunc.safetensors" "$AVGEN" step "$d/config.json" --params "$TMP/trunc.safetensors" --inputs "$d/inputs.safetensors" \
  --out "$TMP/x.safetensors"
# diff exits 1 when dumps differ (a dump against the reference of another configuration).
"$AVGEN" diff "$TMP/a.safetensors" "$FIX/lavish-odd-batch/expected.safetensors" --rtol 1e-12 >/dev/null 2>&1
[ $? = 1 ] && ok || bad "diff does not report differing dumps"

finish
