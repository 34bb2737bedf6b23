#!/usr/bin/env bash
# tests/device/dryrun.sh AVGEN BUILD_OUT ROOT: runs tests/device/run.sh here, without a GPU, on a kit of the build's
# CUDA-emulator programs (docs/emulator.md), so that the script the lent GPU machine runs (rarely, for minutes) has run
# before it gets there: every stage but the NVRTC one (the emulator refuses --kernels nvrtc) reaches each of its checks
# and its summary, with no shell error, and its checks pass on the emulator (but the few tolerance comparisons that
# the GPU fails too, below).
# BUILD_OUT: the build's build-out/ (the emitted test programs and their NAME-train-emu). The kit's stand-ins:
#   fx-lavish-odd-batch  fixture-lavish (the same description, lavish-odd-batch's config.json; the one fixture of
#                        the FIXTURES loop)
#   tiny-lavish, -audio  the same tiny programs (the parity stage's loop over TINY_MODELS, with two of them; the
#                        CTest cuda-emu compares all of them)
#   vitb-b1t2            emu-wide (ViT-B/16's sequence lengths 197 and 49, head width 64, its input shapes; width 128,
#                        one layer): its step runs the shape-literal attention instances as ViT-B/16's does
#   vitb-t8-b3           tiny-lavish (B = 3) for the benchmark jobs, each timing one step, and the training loop's
#   train-data,          a raw-frame synthetic set at tiny-lavish's frame size (48), as prepare.sh makes the train
#   bench-data           stage's (bench-data, 224 there, is the same set here)
#   torch_lavish.py      a stand-in that prints the real one's result line (the emulator has no GPU for PyTorch)
#   compute-sanitizer    a stand-in on PATH that runs the program and prints the tool's summary line
# What it checks is the script (its control flow, its greps of the programs' output, its summary table), and the
# emulated backend against the CPU backend through the script's own comparisons: nothing about the GPU.
set -u
AVGEN=$1
BO=$(cd "$2" && pwd)
ROOT=$(cd "$3" && pwd)
. "$(dirname "$0")/../lib.sh" dryrun
KIT=$TMP/kit
mkdir -p "$KIT/programs" "$KIT/bin" "$KIT/fixtures" "$TMP/path"
stand_in() { # stand_in KIT_NAME BUILD_NAME: the kit's NAME-train is the build's emulated program
  local e=$BO/$2/bin/$2-train-emu
  [ -x "$e" ] || { bad "no emulated program $e (the build makes it where the CUDA emulator is built)"; return 1; }
  mkdir -p "$KIT/programs/$1/bin"
  ln -s "$e" "$KIT/programs/$1/bin/$1-train"
}
stand_in fx-lavish-odd-batch fixture-lavish
for m in tiny-lavish tiny-audio; do stand_in $m $m; done
stand_in vitb-b1t2 emu-wide
stand_in vitb-t8-b3 tiny-lavish
[ "$fail" = 0 ] || { finish; exit 1; }
printf '#!/bin/sh\nexec "%s" diff "$@"\n' "$AVGEN" >"$KIT/bin/avgen-diff"
cp -r "$ROOT/tests/fixtures/step/lavish-odd-batch" "$KIT/fixtures/"
cp "$ROOT/tests/reference/lavish_ref.py" "$KIT/"
echo dryrun >"$KIT/commit"
# the resolved description of vitb-b1t2's stand-in, as prepare.sh writes ViT-B/16's (avgen check --print-json)
/usr/bin/python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))["description"], open(sys.argv[2], "w"))' \
  "$BO/emu-wide/plan.json" "$KIT/vitb-b1t2.json" || bad "emu-wide's description"
# (label 3: emu-wide has 5 classes)
/usr/bin/python3 "$ROOT/tests/device/vitb_inputs.py" "$KIT/vitb-b1t2-inputs.safetensors" 3 || bad "vitb_inputs.py"
# the training stage's data, as prepare.sh makes it
"$AVGEN" synth --out "$TMP/syn" --classes 5 --videos 15 --seconds 1.2 --size 64x48 --cue audio --seed 5 >/dev/null 2>&1 &&
  "$AVGEN" prep --src "$TMP/syn" --splits "$TMP/syn/ucfTrainTestlist" --out "$KIT/train-data" --size 48 --raw \
    >/dev/null 2>&1 || bad "the training data (avgen synth, avgen prep --raw)"
ln -s train-data "$KIT/bench-data"  # (the training-loop benchmark's, at the stand-in's frame size)
cat >"$KIT/torch_lavish.py" <<'PY'
import json, sys
# the dry run's stand-in for shared/bench/torch_lavish.py bench: its last line, as the real one prints it
b = int(sys.argv[sys.argv.index("--batch") + 1])
print(json.dumps({"impl": "pytorch-" + ("compile" if "--compile" in sys.argv else "eager"), "dtype": "bf16",
                  "batch": b, "frames": 8, "step_ms_median": 1000.0, "pairs_per_s": b * 8.0, "mfu": 0.0}))
PY
cat >"$TMP/path/compute-sanitizer" <<'SH'
#!/bin/sh
# the dry run's stand-in for compute-sanitizer: runs the program, prints the tool's summary line
tool=memcheck
while [ $# -gt 0 ]; do
  case $1 in
    --tool) tool=$2; shift 2 ;;
    --leak-check|--error-exitcode) shift 2 ;;
    --*) shift ;;
    *) break ;;
  esac
done
"$@" || exit 9
[ "$tool" = racecheck ] && echo "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)" ||
  echo "========= ERROR SUMMARY: 0 errors"
SH
chmod +x "$KIT/bin/avgen-diff" "$TMP/path/compute-sanitizer"
(cd "$KIT" && tar czf programs.tgz programs) && rm -rf "$KIT/programs" || bad "packing the kit"
B=3
PATH=$TMP/path:$PATH KIT=$KIT OUT=$TMP/out STAGES="parity train memcheck bench" FIXTURES=lavish-odd-batch TINY_MODELS="tiny-lavish tiny-audio" \
  PYTHON=/usr/bin/python3 \
  BENCH_BATCHES=$B BENCH_FP32=$B BENCH_ATTN_GEMM=$B BENCH_BF16OPS=$B BENCH_OPS_ONLY=$B BENCH_BN_STORED=$B \
  BENCH_LAT_STORED=$B BENCH_LN_SPLIT=$B BENCH_LB_APART=$B BENCH_GENERIC=$B BENCH_TUNE=$B TORCH_COMPILE=$B BENCH_TRAIN=$B \
  BENCH_TRAIN_STEPS=6 \
  BENCH_STEPS="--warmup 0 --steps 1" TRAIN_STEPS=4 bash "$ROOT/tests/device/run.sh" >"$TMP/run.log" 2>&1
rc=$?
S=$TMP/out/summary.txt
show() { sed 's/^/    /' "$TMP/run.log" >&2; }
# its exit status: the number of failed checks
[ "$rc" = "$(grep -c '^  FAIL  ' "$S")" ] && ok || { bad "run.sh exited $rc"; show; }
# a shell error (an unset variable, a bad test) prints to stderr without counting as a failed check
if grep -qE 'unbound variable|syntax error|command not found|integer expression expected|No such file' "$TMP/run.log"; then
  bad "run.sh printed shell errors: $(grep -E 'unbound|syntax|not found|integer expression|No such file' "$TMP/run.log" | head -3)"
else ok; fi
# Every check it makes must be in the summary (a check missing from it is a branch that stopped running). The
# comparisons with a tolerance may fail: on the emulator as on the GPU, a few gradients whose terms cancel (the adapters'
# gates, ln_before.bias) are further from the CPU backend than 1e-5 in fp32 or 2e-2 in bf16 (bench/RESULTS.md, the
# fourth run's 8 known failures); they must have compared the tensors, though. The others must pass.
compared() { # compared CHECK...: each check's line is in the summary, passed or with the comparison's counts
  local w
  for w in "$@"; do
    if grep -qF -- "  ok    $w:" "$S" || grep -F -- "  FAIL  $w:" "$S" | grep -q "tensors compared"; then ok
    else bad "no comparison \"$w\" in the summary"; fi
  done
}
passed() { # passed CHECK...: each check passed
  local w
  for w in "$@"; do
    if grep -qF -- "  ok    $w" "$S"; then ok; else bad "no passed check \"$w\" in the summary"; fi
  done
}
for m in fx-lavish-odd-batch tiny-lavish tiny-audio vitb-b1t2; do
  compared "$m fp32 strict" "$m fp32 floored" "$m adam update" "$m bf16" "$m bf16 activations"
  passed "$m: two CUDA steps bit-identical"
done
compared "fx-lavish-odd-batch cuda vs torch fp64"
# run.sh runs the float64 reference and PyTorch's benchmark where its Python has torch (CI installs Debian's)
torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && torch=1
[ $torch = 1 ] || echo "dryrun: no torch for /usr/bin/python3: the float64 reference and PyTorch's rows are not checked"
[ $torch = 1 ] && compared "vitb-b1t2 cpu vs torch fp64" "vitb-b1t2 cuda fp32 vs torch fp64" "vitb-b1t2 cuda bf16 vs torch fp64" \
  "vitb-b1t2 cuda bf16 activations vs torch fp64"
passed "training fp32 against the CPU backend" "training fp32 validation" "training CUDA graphs against eager steps" \
  "training stopped at half and resumed" "training bf16 losses" "training ops losses"
passed "latent backward pairs apart, fp32: the same bits" "latent backward pairs apart, bf16: the same bits" \
  "fx-lavish-odd-batch bf16ops: carries, latent + LayerNorm kernel and BatchNorm statistics with their sums or apart: the same bits" \
  "vitb-b1t2 bf16ops: carries, latent + LayerNorm kernel and BatchNorm statistics with their sums or apart: the same bits" \
  "vitb-b1t2 cuda: carries, latent + LayerNorm kernel and BatchNorm statistics with their sums or apart: the same bits" \
  "tiny-lavish fp32: steps as CUDA graphs bit-identical to eager" "tiny-lavish bf16: steps as CUDA graphs bit-identical" \
  "vitb-b1t2 bf16: attention instances the same bits as the generic kernels" \
  "vitb-b1t2 bf16ops: attention instances the same bits as the generic kernels" \
  "memcheck fx-lavish-odd-batch: ERROR SUMMARY" "memcheck tiny-lavish bf16: ERROR SUMMARY" \
  "memcheck tiny-lavish bf16 operands: ERROR SUMMARY" "racecheck tiny-lavish: RACECHECK"
for j in bf16 bf16-ops bf16-opstune fp32 bf16-gemmattn bf16-lnsplit bf16-bnstored bf16-latstored bf16-lbapart bf16-generic; do
  passed "avgen B=$B $j: "
done
passed "avgen B=$B training loop: 6 steps"
[ $torch = 1 ] && passed "torch eager B=$B bf16" "torch compile B=$B bf16"
# no failure but those comparisons'
n=$(grep '^  FAIL  ' "$S" | grep -vc "tensors compared")
[ "$n" = 0 ] && ok || bad "$n failed checks that are not tolerance comparisons: $(grep '^  FAIL  ' "$S" | grep -v "tensors compared")"
# the summary table: a row for each of the 10 avgen jobs, with PyTorch eager and compile beside it
if [ $torch = 1 ]; then
  n=$(grep -cE '^  B=  3 .* eager 1000\.0 ms \([0-9.]+x\)  compile 1000\.0 ms' "$S")
else n=$(grep -cE '^  B=  3 .* MFU .* memory [0-9.]+ GiB in use' "$S"); fi
[ "$n" = 10 ] && ok || bad "the summary table has $n rows (with both PyTorch times where torch is), not 10: $(grep -A12 '== summary' "$S")"
grep -qE "^  B=  3 training loop +[0-9.]+ ms a step \(median of 2, .*, the bench's step [0-9.]+ ms \([0-9.]+x\)" "$S" && ok ||
  bad "the summary has no training-loop row: $(grep -A14 '== summary' "$S")"
grep -qE "^== [0-9]+ passed, $rc failed" "$S" && ok || bad "the summary's last line: $(tail -1 "$S")"
# logs/ and bench/ travel back as one archive of at most 16 MiB (the device's limit on a file): no checkpoint or step
# dump in them (a ViT-B/16 one is larger)
n=$(find "$TMP/out/logs" "$TMP/out/bench" -name '*.safetensors' -o -name '*.st' | wc -l)
[ "$n" = 0 ] && ok || bad "tensor files in logs/ or bench/: $(find "$TMP/out/logs" "$TMP/out/bench" -name '*.safetensors' -o -name '*.st')"
# a stage misspelt is refused, not skipped
out=$(KIT=$KIT OUT=$TMP/out2 STAGES="parity bnech" bash "$ROOT/tests/device/run.sh" 2>&1)
[ $? = 100 ] && grep -q 'STAGES has "bnech"' <<<"$out" && ok || bad "STAGES=\"parity bnech\": $out"
[ "$fail" = 0 ] || { echo "the summary:" >&2; sed 's/^/    /' "$S" >&2; }
finish
