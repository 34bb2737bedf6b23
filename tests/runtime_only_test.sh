#!/usr/bin/env bash
# The runtime-only build (AVGEN_DATA=OFF, what tests/device/prepare.sh makes for the GPU machine) still
# configures and builds with one emitted program, with its own nvcc build of its kernels.cu as prepare.sh
# builds fx-lavish-odd-batch (AVGEN_NVCC_KERNEL_PROGRAMS), the program needs nothing but libc, libm and the
# driver at run time, its CPU step matches the PyTorch fixture, and avgen-diff works.
# usage: runtime_only_test.sh AVGEN REPO_ROOT
set -u
AVGEN=$1
ROOT=$2
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
out=$("$P" --train --data x --out y 2>&1)
[ $? = 3 ] && grep -q "built without the data pipeline" <<<"$out" && ok || bad "--train in a runtime-only build: $out"
finish
