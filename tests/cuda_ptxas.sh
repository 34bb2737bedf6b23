#!/usr/bin/env bash
# The CUDA backend's kernels as the build compiled them (runtime/rt_cuda.cu with -Xptxas=-v, for every architecture
# it builds; the report kept by cmake/ptxas_log.sh): prints registers and spills of every kernel for each
# architecture and fails when any kernel spills registers or an architecture built has no report (no GPU needed).
# usage: cuda_ptxas.sh LOG ARCH...   (LOG: the build's rt_cuda.ptxas.log; ARCH: CMAKE_CUDA_ARCHITECTURES' entries,
# such as 80, 90-real; a -virtual one has no cubin and no report)
set -u
LOG=$1
shift
if [ ! -s "$LOG" ]; then
  echo "no ptxas report in $LOG: rebuild the runtime (cmake --build BUILD --target avrt)"
  exit 1
fi
status=0
for a in "$@"; do
  case $a in *-virtual) continue ;; esac
  arch=${a%-real}
  echo "sm_$arch: kernel, registers, spill stores/loads (bytes)"
  awk -v arch="sm_$arch" '
    /Compiling entry function/ { mine = index($0, "for '"'"'" arch "'"'"'") > 0
      match($0, /_Z[^ '"'"']*/); name = substr($0, RSTART, RLENGTH) }
    /spill stores/ { st = $5; ld = $9 }
    /Used [0-9]+ registers/ && mine { for (i = 1; i <= NF; i++) if ($i == "registers,") r = $(i - 1)
      printf "  %4d regs  spills %s/%s  %s\n", r, st, ld, name
      n++; if (st + 0 > 0 || ld + 0 > 0) bad++ }
    END { if (n < 20) { print "  only " n + 0 " kernels found for " arch " in the ptxas report: the report format changed?"; exit 1 }
          exit bad > 0 }' "$LOG" >"$LOG.table.$$" || status=1
  c++filt <"$LOG.table.$$" | sed -e 's/(anonymous namespace):://g' -e 's/(.*//'
  rm -f "$LOG.table.$$"
done
[ $status -eq 0 ] && echo "no kernel spills registers" || echo "SPILLS found"
exit $status
