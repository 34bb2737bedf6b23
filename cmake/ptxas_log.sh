#!/usr/bin/env bash
# The CUDA compiler launcher of the runtime's kernels (runtime/rt_cuda.cu, compiled with -Xptxas=-v; CMakeLists.txt):
# runs the compile and keeps ptxas's report of each kernel (registers, spills, for every architecture built) in LOG,
# which the CTest cuda-kernels-ptxas reads, instead of the build's output; anything else on stderr passes through.
# usage: ptxas_log.sh LOG COMMAND...
log=$1
shift
tmp=$log.$$
"$@" 2>"$tmp"
rc=$?
grep -v -e '^ptxas info' -e '^    [0-9]* bytes stack frame' "$tmp" >&2
mv -f "$tmp" "$log"
exit $rc
