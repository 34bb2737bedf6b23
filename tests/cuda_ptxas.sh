#!/usr/bin/env bash
# The CUDA backend's kernels compiled for sm_80 and sm_90 with ptxas -v: prints registers, shared memory
# and spills of every kernel and fails when any kernel spills registers (no GPU needed).
# usage: cuda_ptxas.sh NVCC SOURCE INCLUDE_DIR [FLAG...]   (FLAGs: the build's kernel flags, AVGEN_CUDA_KERNEL_FLAGS)
set -u
NVCC=$1
SRC=$2
INC=$3
shift 3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/avgen-ptxas-XXXXXX")
trap 'rm -rf "$TMP"' EXIT
status=0
for arch in 80 90; do
  if ! "$NVCC" -std=c++17 -O3 "$@" -arch=sm_$arch -cubin -Xptxas -v -I"$INC" "$SRC" -o "$TMP/k.cubin" >"$TMP/log" 2>&1; then
    cat "$TMP/log"
    exit 1
  fi
  echo "sm_$arch: kernel, registers, spill stores/loads (bytes)"
  awk -v arch=$arch '
    /Compiling entry function/ { match($0, /_Z[^ '"'"']*/); name = substr($0, RSTART, RLENGTH) }
    /spill stores/ { st = $5; ld = $9 }
    /Used [0-9]+ registers/ { for (i = 1; i <= NF; i++) if ($i == "registers,") r = $(i - 1)
      printf "  %4d regs  spills %s/%s  %s\n", r, st, ld, name
      n++; if (st + 0 > 0 || ld + 0 > 0) bad++ }
    END { if (n < 20) { print "  only " n " kernels found in ptxas output: the report format changed?"; exit 1 }
          exit bad > 0 }' "$TMP/log" >"$TMP/table" || status=1
  c++filt <"$TMP/table" | sed -e 's/(anonymous namespace):://g' -e 's/(.*//' 
done
[ $status -eq 0 ] && echo "no kernel spills registers" || echo "SPILLS found"
exit $status
