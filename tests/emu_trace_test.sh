#!/usr/bin/env bash
# The CUDA backend on the CUDA emulator's tracing build (runtime/emu/emu_trace.cc; docs/emulator.md): every kernel
# of a training step checked for races, and its memory traffic counted.
#   each tiny program and emu-wide (ViT-B's sequence lengths at width 128), fp32 and bf16 GEMMs and bf16
#   activations, the step and its Adam update: no race (AVGEN_EMU_RACES=1), no read of memory never written
#   (AVGEN_EMU_INITCHECK=1: in a kernel, or by cuBLASLt), no op touching a tensor not its own (AVGEN_EMU_OPCHECK=1),
#   and the dumps bit for bit the plain emulator's (the
#   instrumentation changes no arithmetic); the memory profile written (AVGEN_EMU_MEMPROFILE), a line a kernel,
#   with each instruction by source line beside it;
#   emu-vitb2 (two ViT-B/16 layers at full width, B = 1, T = 1; bf16 GEMMs, fp32 activations as on the GPU by
#   default, and bf16 activations): none of those faults, and every kernel coalesced, which is what the profile is for: a kernel moving 10,000
#   sectors or more asks for at most 10% more 32-byte sectors than the bytes it loads or stores fill, and at most
#   15% more shared-memory wavefronts than its requests need without bank conflicts. k_im2col is let off: it reads
#   the uint8 frames a byte a thread (pixels 3 bytes apart, in 16-pixel rows), about 0.3% of the step's sectors.
# usage: emu_trace_test.sh VITB2_TRACE_PROG TRACE_PROG... (each TRACE_PROG NAME-train-emutrace beside its
# NAME-train-emu)
set -u
VITB=$1
shift
. "$(dirname "$0")/lib.sh" emu-trace
CHECKS="AVGEN_EMU_RACES=1 AVGEN_EMU_INITCHECK=1 AVGEN_EMU_OPCHECK=1"

for q in "$@"; do
  n=$(basename "$q" -train-emutrace)
  plain=${q%trace}
  for v in fp32:fp32: bf16:bf16: bf16ops:bf16:AVGEN_BF16_OPERANDS=1; do
    IFS=: read -r tag prec extra <<<"$v"
    d=$TMP/$n-$tag
    run "$n $tag plain" env $extra "$plain" --step --inputs random --out "$d-plain.st" --update-out "$d-plain-upd.st" \
      --backend cuda --precision "$prec" || continue
    out=$(env $extra $CHECKS AVGEN_EMU_MEMPROFILE="$d.tsv" "$q" --step --inputs random --out "$d-trace.st" \
      --update-out "$d-trace-upd.st" --backend cuda --precision "$prec" 2>&1)
    if [ $? != 0 ]; then bad "$n $tag traced: $out"; continue; fi
    if cmp -s "$d-plain.st" "$d-trace.st" && cmp -s "$d-plain-upd.st" "$d-trace-upd.st"; then ok
    else bad "$n $tag: the traced step's dumps differ from the plain emulator's"; fi
    # the profile: its header, a line for each kernel that ran (the step's launches at least a few kernels), and
    # the instructions named by source line in the backend's kernels
    if head -1 "$d.tsv" | grep -q "^kernel	launches	load_requests	load_sectors	load_ideal_sectors" &&
      [ "$(wc -l <"$d.tsv")" -ge 8 ] && grep -q "	runtime/rt_cuda_kernels.cuh:[0-9]" "$d.tsv.lines"; then ok
    else bad "$n $tag: no memory profile in $d.tsv: $(head -3 "$d.tsv" "$d.tsv.lines" 2>&1)"; fi
  done
done

# ViT-B/16 widths, fp32 activations (the default) and bf16 activations: no fault, then coalescing
for v in fp32acts: bf16acts:AVGEN_BF16_OPERANDS=1; do
  IFS=: read -r tag extra <<<"$v"
  f=$TMP/vitb-$tag
  out=$(env $extra $CHECKS AVGEN_EMU_MEMPROFILE="$f.tsv" "$VITB" --step --inputs random --out "$f.st" --backend cuda \
    --precision bf16 2>&1)
  if [ $? = 0 ]; then ok; else bad "emu-vitb2 $tag traced: $(tail -5 <<<"$out")"; fi
  if [ ! -f "$f.tsv" ]; then bad "emu-vitb2 $tag: no memory profile"; continue; fi
  worse=$(awk -F'\t' 'NR > 1 && $1 != "k_im2col" {
      if ($4 + $8 >= 10000 && ($4 > 1.1 * $5 || $8 > 1.1 * $9))
        printf "%s: %d load sectors for %d, %d store sectors for %d; ", $1, $4, $5, $8, $9
      if ($14 >= 10000 && $14 > 1.15 * $15) printf "%s: %d shared wavefronts for %d; ", $1, $14, $15
    }' "$f.tsv")
  kernels=$(($(wc -l <"$f.tsv") - 1))
  if [ -z "$worse" ] && [ "$kernels" -ge 30 ]; then ok; else bad "emu-vitb2 $tag: $kernels kernels profiled; not coalesced: $worse"; fi
  [ -z "$worse" ] || sort -t'	' -k8 -nr "$f.tsv.lines" | head -10 >&2
done
finish
