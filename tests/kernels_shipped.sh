#!/usr/bin/env bash
# The emitted kernels.cu of every given model compiles for sm_90, with NVRTC or (--nvcc) with nvcc, no GPU
# needed. nvrtc_compile does the work (tests/nvrtc_compile.c): the first file whole, each further one's
# constants alone when its library is provably the same kernels (the first whole compile takes every file's
# shape-literal instances). First it checks that decision on small made-up folders (a library that uses a
# constant, a macro with arguments, a failing static_assert, shape lines), so a wrong shortcut fails here
# rather than hiding a kernels.cu that does not compile.
# usage: kernels_shipped.sh AVGEN NVRTC_COMPILE [--nvcc NVCC] [FILE...]   (a MODEL.json is emitted, its kernels.cu
# compiled; any other FILE, such as the library itself, is compiled as it is, in the given order; with no FILE, the
# made-up folders only)
set -u
AVGEN=$1
TOOL=$2
shift 2
opts=()
if [ "${1:-}" = --nvcc ]; then
  opts=(--nvcc "$2")
  shift 2
fi
. "$(dirname "$0")/lib.sh" kernels-shipped

# made-up folders: PRELUDE_BODY LIBRARY_BODY -> DIR/kernels.cu and DIR/rt_cuda_kernels.cuh
fake() {
  mkdir -p "$TMP/$1"
  printf '// kernels.cu of %s\n%b\nstatic_assert(AVGEN_D %% 2 == 0, "even");\n\n#include "rt_cuda_kernels.cuh"\n' "$1" "$2" \
    >"$TMP/$1/kernels.cu"
  printf '%b\n' "$3" >"$TMP/$1/rt_cuda_kernels.cuh"
}
lib='// AVGEN_D in a comment\n__device__ const char *k_s = "AVGEN_D \\" AVGEN_E";\n__global__ void k(float *x) { x[0] = 1.5e3f + 0x1fULL + (k_s[0] == '"'"'A'"'"'); }'
fake a '#define AVGEN_D 4' "$lib"
fake b '#define AVGEN_D  8\n#define AVGEN_E 3' "$lib"
fake uses '#define AVGEN_D 6' '__global__ void k(float *x) { x[0] = AVGEN_D; }'
fake paste '#define AVGEN_D 6' '#define CAT(a, b) a##b\n__global__ void k(float *x) { x[0] = 1; }'
fake fn '#define AVGEN_D 2\n#define AVGEN_F(x) x' "$lib"
fake odd '#define AVGEN_D 5' "$lib"
out=$("$TOOL" "${opts[@]}" "$TMP/a/kernels.cu" "$TMP/b/kernels.cu" "$TMP/uses/kernels.cu" "$TMP/paste/kernels.cu" \
  "$TMP/fn/kernels.cu" 2>&1)
rc=$?
if [ $rc = 77 ]; then
  echo "$out"
  exit 77
fi
[ $rc = 0 ] && ok || bad "made-up folders: exit $rc: $out"
grep -q "b/kernels.cu: its 2 #define and 1 static_assert lines compiled alone" <<<"$out" && ok ||
  bad "a second folder with the same independent library was not shortened: $out"
grep -q "uses/kernels.cu: compiled whole (the library uses AVGEN_D)" <<<"$out" && ok ||
  bad "a library that uses a constant was not compiled whole: $out"
grep -q "paste/kernels.cu: compiled whole (the library uses ##)" <<<"$out" && ok ||
  bad "a library that pastes tokens was not compiled whole: $out"
grep -q "fn/kernels.cu: compiled whole (a #define that is not a plain constant" <<<"$out" && ok ||
  bad "a function-like macro was not compiled whole: $out"
out=$("$TOOL" "${opts[@]}" "$TMP/a/kernels.cu" "$TMP/odd/kernels.cu" 2>&1)
rc=$?
# (it fails for the static_assert of the constants compiled alone, not for anything else)
[ $rc != 0 ] && grep -q 'static assertion failed with "even"' <<<"$out" && grep -q "odd/kernels.cu: its 1 #define" <<<"$out" && ok ||
  bad "a failing static_assert in constants compiled alone passed, or failed otherwise: exit $rc: $out"
# the include not at the start of its line: never the shortcut (and here no valid source either)
mkdir -p "$TMP/mid" && cp "$TMP/a/rt_cuda_kernels.cuh" "$TMP/mid/" &&
  printf '#define AVGEN_D 4\nstatic_assert(AVGEN_D %% 2 == 0, "even"); #include "rt_cuda_kernels.cuh"\n' >"$TMP/mid/kernels.cu"
out=$("$TOOL" "${opts[@]}" "$TMP/a/kernels.cu" "$TMP/mid/kernels.cu" 2>&1)
rc=$?
# (that source is invalid as well, so only the first condition tells anything: it was compiled whole)
! grep -q "mid/kernels.cu: its" <<<"$out" && [ $rc != 0 ] && ok || bad "an include in mid-line was shortened or passed: $out"

# shape lines after the include (AVGEN_ATTN_SHAPE): the first library compiled whole takes every file's shapes,
# each once, and a later file with shape lines is shortened; a shape that does not compile fails even when it
# is only a later file's; a malformed shape line is never shortened
slib='#define AVGEN_ATTN_SHAPE(a, b, c) template __global__ void kt<a, b, c>(float *);\n'
slib+='template <int A, int B, int C> __global__ void kt(float *x) { static_assert(B != 13, "no 13"); x[0] = A + B + C; }\n'
slib+='__global__ void k(float *x) { x[0] = 1; }'
shaped() { # NAME SHAPE_LINES
  fake "$1" '#define AVGEN_D 4' "$slib"
  printf '\n// shapes\n%b' "$2" >>"$TMP/$1/kernels.cu"
}
shaped s1 'AVGEN_ATTN_SHAPE(16, 10, 4)\n'
shaped s2 'AVGEN_ATTN_SHAPE(16, 12, 4)\nAVGEN_ATTN_SHAPE(16, 10, 4)\n'
shaped s13 'AVGEN_ATTN_SHAPE(16, 13, 4)\n'
shaped smal 'AVGEN_ATTN_SHAPE(16, x, 4)\n'
out=$("$TOOL" "${opts[@]}" "$TMP/s1/kernels.cu" "$TMP/s2/kernels.cu" 2>&1) && ok || bad "shape lines: $out"
grep -q "other files' 1 shapes" <<<"$out" && ok || bad "the first file was not compiled with the later file's shape: $out"
grep -q "s2/kernels.cu: its 1 #define and 1 static_assert lines compiled alone" <<<"$out" && ok ||
  bad "a later file with shape lines was not shortened: $out"
out=$("$TOOL" "${opts[@]}" "$TMP/s1/kernels.cu" "$TMP/s13/kernels.cu" 2>&1) && bad "a later file's shape that does not compile passed: $out" || ok
# more shapes in all than one build takes (AVGEN_CUDA_MAX_SHAPES, 8): a file whose shapes were not all
# compiled with the first is compiled whole
shaped s8 "$(for n in 20 21 22 23 24 25 26 27; do printf 'AVGEN_ATTN_SHAPE(16, %d, 4)\\n' $n; done)"
out=$("$TOOL" "${opts[@]}" "$TMP/s1/kernels.cu" "$TMP/s8/kernels.cu" 2>&1) && ok || bad "nine shapes in all: $out"
grep -q "s8/kernels.cu: compiled whole (its shapes were not all compiled with the library" <<<"$out" && ok ||
  bad "a file whose shapes the first compile could not all take was shortened: $out"
out=$("$TOOL" "${opts[@]}" "$TMP/s1/kernels.cu" "$TMP/smal/kernels.cu" 2>&1)
grep -q "smal/kernels.cu: compiled whole (line" <<<"$out" && ok || bad "a malformed shape line was shortened: $out"

files=()
for m in "$@"; do
  case $m in
  *.json)
    n=$(basename "$m" .json)
    "$AVGEN" emit "$m" -o "$TMP/models/$n" >/dev/null 2>&1 || bad "avgen emit $m"
    files+=("$TMP/models/$n/kernels.cu")
    ;;
  *) files+=("$m") ;;
  esac
done
if [ ${#files[@]} -gt 0 ]; then
  "$TOOL" "${opts[@]}" "${files[@]}" && ok || bad "the shipped models' kernels.cu"
else
  echo "no FILE given: the made-up folders only"
fi
finish
