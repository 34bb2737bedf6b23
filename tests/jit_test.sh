#!/usr/bin/env bash
# The run-time NVRTC build and its cache, without a GPU (docs/kernels.md): `avgen jit` on an emitted folder
# compiles once (cold) and then reads the cache (warm); the generated program's --jit finds its embedded
# kernels_src.c, which is the same source (the same cache entry); a damaged entry is noticed and rebuilt;
# `avgen jit MODEL.json` builds what avgen step and bench compile (the library and the description's shape
# lines), and a cache that cannot be written is an error for jit; --kernels nvrtc without a GPU says so
# (exit 1); bad options exit 2. Skipped (77) without NVRTC.
# usage: jit_test.sh AVGEN REPO_ROOT GENERATED_TRAIN
set -u
AVGEN=$1
ROOT=$2
GTRAIN=$3
. "$(dirname "$0")/lib.sh" jit
if ! "$AVGEN" devices | grep -q "^NVRTC"; then
  echo "NVRTC is not installed: skipped"
  exit 77
fi
export AVGEN_CACHE_DIR=$TMP/cache
"$AVGEN" emit "$ROOT/models/tiny-lavish.json" -o "$TMP/out" >/dev/null 2>&1 || bad "emit"

# expect_out NEEDLE command...: the command exits 0 and prints NEEDLE
expect_out() {
  local needle=$1
  shift
  local out
  if out=$("$@" 2>&1) && grep -qF -- "$needle" <<<"$out"; then ok; else bad "$* -> $out (wanted '$needle')"; fi
}
entry() { sed -n 's/.*cached as \([^ ]*\.kernels\).*/\1/p; s/.*(\([^ ]*\.kernels\)).*/\1/p' <<<"$1" | head -1; }

# The program's own folder (the build emits it with its own overrides): avgen jit compiles its kernels.cu once
# (cold), then reads the cache (warm).
pdir=$(dirname "$(dirname "$GTRAIN")")
[ -f "$pdir/kernels.cu" ] || bad "the program's folder $pdir has no kernels.cu"
out=$("$AVGEN" jit "$pdir" 2>&1) || bad "avgen jit DIR: $out"
grep -q "cold (compiled): NVRTC sm_90: [0-9]* kernels compiled" <<<"$out" && ok || bad "first jit is not a compile: $out"
grep -q "warm: NVRTC sm_90: [0-9]* kernels read from the cache" <<<"$out" && ok || bad "no warm cache read: $out"
e1=$(entry "$out")
cold=$out
[ -s "$e1" ] && ok || bad "no cache entry in: $out"
[ -s "${e1%.kernels}.cu" ] && ok || bad "no source beside the entry $e1"
expect_out "first request (already cached)" "$AVGEN" jit "$pdir"

# The program's embedded source is its folder's kernels.cu with the library inlined: the same entry, read
# from the cache, not compiled again.
out=$("$GTRAIN" --jit 2>&1) || bad "program --jit: $out"
[ -n "$e1" ] && [ "$(entry "$out")" = "$e1" ] && ok || bad "program --jit and avgen jit on its folder ($e1) differ: $out"
grep -q "read from the cache" <<<"$out" && ! grep -q "kernels compiled" <<<"$out" && ok ||
  bad "program --jit compiled what avgen jit on its folder had cached: $out"

# A damaged entry is rebuilt.
head -c 200 "$e1" >"$e1.cut" && mv "$e1.cut" "$e1"
out=$("$AVGEN" jit "$pdir" 2>&1) || bad "jit after damage: $out"
grep -q "were not used" <<<"$out" && grep -q "cold (compiled)" <<<"$out" && ok || bad "damaged entry not rebuilt: $out"

# What avgen step/bench --kernels nvrtc compile for a description (the library, then its shape lines), for
# another architecture: the same kernels as the emitted folder's (its 2 shapes' instances after the list).
# Into a cache that cannot be written: jit fails with a sentence; the compile itself still works.
nk=$(sed -n 's/.*cold (compiled): NVRTC sm_90: \([0-9]*\) kernels compiled.*/\1/p' <<<"$cold" | head -1)
out=$(AVGEN_CACHE_DIR=/dev/null/avgen "$AVGEN" jit "$ROOT/models/tiny-lavish.json" --arch 80 2>&1)
rc=$?
grep -q "rt_cuda_kernels.cuh: NVRTC build for sm_80" <<<"$out" && [ -n "$nk" ] &&
  grep -q "cold (compiled): NVRTC sm_80: $nk kernels compiled" <<<"$out" && ok ||
  bad "avgen jit MODEL.json did not compile the $nk kernels of the program's folder for sm_80: $out"
[ "$rc" = 1 ] && grep -q "could not be cached" <<<"$out" && grep -q "not cached" <<<"$out" && ok || bad "unwritable cache -> exit $rc: $out"
expect2 "is not divisible by backbone.heads = 7" "$AVGEN" jit "$ROOT/models/tiny-lavish.json" --set backbone.heads=7

# --kernels nvrtc needs a GPU at run time; the messages say what is missing.
out=$("$GTRAIN" --step --inputs random --out "$TMP/x.safetensors" --backend cuda --kernels nvrtc 2>&1)
rc=$?
if "$AVGEN" devices | grep -q "^cuda:"; then
  [ "$rc" = 0 ] && ok || bad "--kernels nvrtc on a GPU: exit $rc: $out"
else
  [ "$rc" = 1 ] && grep -q -- "--backend cuda" <<<"$out" && ok || bad "--kernels nvrtc without a GPU: exit $rc: $out"
fi

# --backend auto falls back to the CPU without a GPU and says that --kernels nvrtc has no effect then.
if ! "$AVGEN" devices | grep -q "^cuda:"; then
  out=$("$GTRAIN" --step --inputs random --out "$TMP/auto.safetensors" --backend auto --kernels nvrtc 2>&1) &&
    grep -q "has no effect" <<<"$out" && ok || bad "--backend auto --kernels nvrtc without a GPU: $out"
fi

# kernels.cu holds the shapes, not the training settings: a learning-rate or seed sweep shares one build.
"$AVGEN" emit "$ROOT/models/tiny-lavish.json" -o "$TMP/lr" --set train.lr=0.0002 --set train.seed=5 >/dev/null 2>&1
cmp -s "$TMP/out/kernels.cu" "$TMP/lr/kernels.cu" && cmp -s "$TMP/out/kernels_src.c" "$TMP/lr/kernels_src.c" && ok ||
  bad "kernels.cu changes with the learning rate or the seed"
"$AVGEN" emit "$ROOT/models/tiny-lavish.json" -o "$TMP/b5" --set train.batch=5 >/dev/null 2>&1
cmp -s "$TMP/out/kernels.cu" "$TMP/b5/kernels.cu" && bad "kernels.cu does not change with the batch" || ok

# avgen devices names the kernel cache and counts its builds.
n=$(ls "$AVGEN_CACHE_DIR"/*.kernels 2>/dev/null | wc -l)
out=$("$AVGEN" devices 2>&1)
grep -q "kernel cache $AVGEN_CACHE_DIR: $n builds" <<<"$out" && ok || bad "avgen devices does not count the $n cache builds: $out"

# Bad options.
expect2 "no --set" "$AVGEN" jit "$TMP/out" --set train.lr=1
expect2 "--arch needs an integer" "$GTRAIN" --jit --arch 9x
expect2 "--arch needs a value" "$GTRAIN" --jit --arch
expect2 "--precision fp16 is not a precision" "$GTRAIN" --train --data "$TMP" --out "$TMP/run" --backend cuda --precision fp16
expect2 "--kernels foo is not a kernel source" "$AVGEN" bench "$ROOT/models/tiny-lavish.json" --kernels foo
expect2 "--kernels nvrtc needs the CUDA backend" "$AVGEN" step "$ROOT/models/tiny-lavish.json" --inputs random \
  --out "$TMP/x.safetensors" --kernels nvrtc
expect2 "--kernels foo is not a kernel source" "$GTRAIN" --step --inputs random --out "$TMP/x.safetensors" \
  --backend cuda --kernels foo
expect2 "--arch needs a CUDA architecture" "$AVGEN" jit --arch 3
expect2 "--arch 3 is not a CUDA architecture" "$GTRAIN" --jit --arch 3
expect2 "cannot be read" "$AVGEN" jit "$TMP/none"
expect2 "unexpected argument" "$AVGEN" jit "$TMP/out" extra
expect_out "usage: avgen jit" "$AVGEN" jit --help
finish
