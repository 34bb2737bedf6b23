#!/usr/bin/env bash
# The runtime-only build (AVGEN_DATA=OFF, what tests/device/prepare.sh makes for the GPU machine) still
# configures and builds with one emitted program, with its own nvcc build of its kernels.cu as prepare.sh
# builds fx-lavish-odd-batch (AVGEN_NVCC_KERNEL_PROGRAMS), the program needs nothing but libc, libm and the
# driver at run time, its CPU step matches the PyTorch fixture, avgen-diff works, and it trains on raw-frame prepared
# data as the full build's program does; its inference program refuses video files in one sentence.
# usage: runtime_only_test.sh AVGEN REPO_ROOT FULL_BUILD_PROGRAM (fixture-lavish-train: the same description)
set -u
AVGEN=$1
ROOT=$2
FULL=$3
. "$(dirname "$0")/lib.sh" rtonly
F=$ROOT/tests/fixtures/step/lavish-odd-batch
mkdir -p "$TMP/programs"
"$AVGEN" emit "$F/config.json" -o "$TMP/programs/fx" --set name=fx --set precision=fp32 >/dev/null 2>&1 && ok || bad "emit"
if cmake -S "$ROOT" -B "$TMP/build" -DAVGEN_DATA=OFF -DAVGEN_PROGRAMS="$TMP/programs" -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DAVGEN_NVCC_KERNEL_PROGRAMS=fx -DCMAKE_BUILD_TYPE=Release >"$TMP/cmake.log" 2>&1 && cmake --build "$TMP/build" -j 2 >>"$TMP/cmake.log" 2>&1; then ok
else
  bad "runtime-only build: $(tail -20 "$TMP/cmake.log")"
  finish
  exit 1
fi
P=$TMP/programs/fx/bin/fx-train
[ -x "$P" ] && ok || bad "the program $P was not built"
libs=$(ldd "$P" | awk '{print $1}' | grep -v -E '^(linux-vdso|/lib(64)?/ld-linux|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so)' || true)
if [ -z "$libs" ]; then ok; else bad "the program links more than libc: $libs"; fi
out=$("$P" --describe 2>&1) && grep -q "fx/kernels.cu compiled by nvcc into this program: [0-9]* kernels and 12 shape-literal" <<<"$out" &&
  ok || bad "the program's own nvcc kernels: $out"
"$P" --step --params "$F/params.safetensors" --inputs "$F/inputs.safetensors" --out "$TMP/s.safetensors" >/dev/null 2>&1 && ok ||
  bad "program step"
out=$("$TMP/build/avgen-diff" "$TMP/s.safetensors" "$F/expected.safetensors" --rtol 1e-5 --grad-floor 2>&1) && ok ||
  bad "against the fixture: $out"
# Training in the runtime-only build: its loader reads raw-frame prepared data (avgen prep --raw) without FFmpeg, and
# trains as the full build's program of the same description does (FULL: fixture-lavish-train), bit for bit.
"$AVGEN" synth --out "$TMP/syn" --classes 5 --videos 15 --seconds 1.0 --size 64x48 --cue audio --seed 3 >/dev/null 2>&1 &&
  ok || bad "synth"
run "prep --raw" "$AVGEN" prep --src "$TMP/syn" --splits "$TMP/syn/ucfTrainTestlist" --out "$TMP/raw" --size 32 --raw --jobs 2
run "prep (JPEG)" "$AVGEN" prep --src "$TMP/syn" --splits "$TMP/syn/ucfTrainTestlist" --out "$TMP/jpeg" --size 32 --jobs 2
T=(--train --max-steps 4 --checkpoint-every 2 --val-every 2 --quiet)
run "runtime-only training" "$P" "${T[@]}" --data "$TMP/raw" --out "$TMP/run-rt"
run "full build training" "$FULL" "${T[@]}" --data "$TMP/raw" --out "$TMP/run-full"
losses() { grep -o '"loss": *[^,]*' "$1/log.jsonl" 2>/dev/null; }
[ "$(losses "$TMP/run-rt" | wc -l)" = 4 ] && [ "$(losses "$TMP/run-rt")" = "$(losses "$TMP/run-full")" ] &&
  cmp -s "$TMP/run-rt/ckpt-00000004.safetensors" "$TMP/run-full/ckpt-00000004.safetensors" && ok ||
  bad "the runtime-only program's training differs from the full build's: $(losses "$TMP/run-rt" | tr '\n' ' ') / $(losses "$TMP/run-full" | tr '\n' ' ')"
# JPEG frames: one sentence, at start (avgen prep --raw itself: tests/test_data.c)
out=$("$P" "${T[@]}" --data "$TMP/jpeg" --out "$TMP/run-jpeg" 2>&1)
rc=$?
[ $rc != 0 ] && grep -q "its frames are JPEG, which this build (without FFmpeg) cannot decode; prepare the data with avgen prep --raw" \
  <<<"$out" && [ "$(wc -l <<<"$out")" = 1 ] && ok || bad "JPEG data in the runtime-only build: exit $rc: $out"
# Video files: the inference program says in one sentence that it cannot decode them (no FFmpeg)
out=$("$TMP/programs/fx/bin/fx-infer" --checkpoint "$TMP/run-rt" "$TMP/syn/ucfTrainTestlist/classInd.txt" 2>&1)
rc=$?
[ $rc = 3 ] && grep -q "built without FFmpeg (the runtime-only build), so it cannot decode video files" <<<"$out" &&
  [ "$(wc -l <<<"$out")" = 1 ] && ok || bad "video files in the runtime-only build: exit $rc: $out"
finish
