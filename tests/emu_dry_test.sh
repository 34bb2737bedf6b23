#!/usr/bin/env bash
# The CUDA emulator's dry run (docs/emulator.md) of ViT-B/16 LAVISH at the benchmark's sizes, T = 8, B = 32: one
# training step's host code, every launch and GEMM checked and logged (AVGEN_EMU_LAUNCHES), nothing computed.
#   - The step goes through without the host memory its activations would take on the CPU (tens of GiB: the host
#     keeps only what it reads back), and the CPU backend refuses it where this machine has less.
#   - The launches a step makes, counted (bench/launches.py), against the numbers below: a change in them is a
#     change of what the GPU is asked to do, so it must be deliberate (update them with a note of why).
#   - The matmuls' FLOPs are the plan's GEMM FLOPs (avgen plan): each counted product runs once, as a GEMM.
#   - At ViT-B/16 every fused attention launch is a shape-literal instance.
# usage: emu_dry_test.sh AVGEN SOURCE_DIR EMU_VITB_B32_TRAIN_EMU
set -u
AVGEN=$1
SRC=$2
PROG=$3
. "$(dirname "$0")/lib.sh" emu-dry
PY=$(command -v python3) || { echo "python3 is missing"; exit 1; }
MODEL=$SRC/models/lavish-vitb16-ucf51.json
SETS=(--set train.batch=32 --set video.frames=8)

# Launches of one training step (forward and backward): kernels and cuBLASLt matmuls, fp32 activations and bf16
# activations (AVGEN_BF16_OPERANDS=1), both with bf16 GEMMs.
#   2,703 and 2,896 until the twenty-first session; then 192 fewer kernels (a BatchNorm's statistics and count where its
#   moments are summed: WANT_APART more with AVGEN_FEWER_LAUNCHES=0), 192 fewer GEMMs (the grouped projections'
#   weight gradient in chunks that divide the rows) and 96 fewer sums (both groups' chunks summed at once); with bf16
#   activations also the trainable weights rounded to bf16 in one launch a step, not one an op (191 fewer). (The frozen
#   weights' bf16 copy, made once at start, is among them.)
WANT_KERNELS=1643
WANT_GEMMS=580
WANT_KERNELS16=1645
WANT_GEMMS16=580
WANT_APART=192

# dry LOG [ENV=VALUE...]: a dry step of the program, its launches logged to LOG; its output in $TMP/out
dry() {
  local log=$1
  shift
  env AVGEN_EMU_DRY=1 AVGEN_EMU_LAUNCHES="$log" "$@" "$PY" -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(r.stdout + r.stderr)
print("max resident MiB: %d" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024))
sys.exit(r.returncode)' "$PROG" --step --backend cuda --inputs random --out "$TMP/dump.safetensors" --precision bf16 >"$TMP/out" 2>&1
}
# field JSON KEY: a top-level number of launches.py's JSON
field() { "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

plan_json=$TMP/plan.json
"$AVGEN" plan "$MODEL" "${SETS[@]}" --json --no-batch-search >"$plan_json" 2>/dev/null || bad "avgen plan failed"
act_bytes=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["memory"]["cuda"]["fp32_activations"]["activations"])' "$plan_json" 2>/dev/null)
gemm_gflop=$("$PY" -c '
import json, sys
k = json.load(open(sys.argv[1]))["memory"]["cuda"]["roofline"]["kinds"]
gemm = ("PATCH_EMBED", "QKV", "LINEAR_RESIDUAL", "LINEAR_GELU", "GROUP_LINEAR", "LINEAR", "LINEAR_DX", "GELU_LINEAR_DX",
        "QKV_DX", "GROUP_LINEAR_BWD", "LINEAR_BWD")
print(sum(k[n]["flops"] for n in gemm if n in k) / 1e9)' "$plan_json" 2>/dev/null)

for mode in fp32 bf16; do
  log=$TMP/launches-$mode.tsv
  if [ $mode = fp32 ]; then
    dry "$log"
    rc=$?
    wk=$WANT_KERNELS wg=$WANT_GEMMS
  else
    dry "$log" AVGEN_BF16_OPERANDS=1
    rc=$?
    wk=$WANT_KERNELS16 wg=$WANT_GEMMS16
  fi
  out=$(cat "$TMP/out")
  if [ $rc = 0 ] && grep -q "dry run: nothing computed" <<<"$out"; then ok; else bad "$mode: the dry step: exit $rc: $out"; fi
  # the host memory it took: the program, its parameters and inputs, not the activations (GiB of them); and what it
  # moved between host and device: the parameters, the inputs, the results, not the activation arena either way
  rss=$(sed -n 's/^max resident MiB: //p' <<<"$out")
  if [ -n "$rss" ] && [ "$rss" -lt 2048 ]; then ok; else bad "$mode: the dry step took ${rss:-?} MiB of host memory"; fi
  if "$PY" "$SRC/bench/launches.py" "$log" --json >"$TMP/sum.json" 2>"$TMP/err"; then ok; else bad "$mode: launches.py: $(cat "$TMP/err")"; fi
  moved=$("$PY" -c '
import json, sys
c = json.load(open(sys.argv[1]))["copies"]
print(c.get("H2D", {}).get("bytes", 0) + c.get("D2H", {}).get("bytes", 0), c.get("set", {}).get("bytes", 0))' "$TMP/sum.json" 2>/dev/null)
  read -r hd sets <<<"$moved"
  if [ -n "$hd" ] && [ "$hd" -gt 0 ] && [ "$hd" -lt $((1 << 30)) ] && [ "${sets:-0}" -gt $((10 << 30)) ]; then ok; else
    bad "$mode: ${hd:-?} bytes copied between host and device (the activations, ${act_bytes:-?} in fp32, must stay on the device), ${sets:-?} set on it (the activation arena cleared there)"
  fi
  kernels=$(field "$TMP/sum.json" kernel_launches) gemms=$(field "$TMP/sum.json" gemms)
  if [ "$kernels" = "$wk" ] && [ "$gemms" = "$wg" ]; then ok; else
    bad "$mode: a step launches $kernels kernels and $gemms GEMMs, not $wk and $wg (if that is deliberate, update this test)"
  fi
  # every product the plan counts runs once, as a GEMM
  got=$(field "$TMP/sum.json" gemm_gflop)
  if "$PY" -c 'import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(not abs(a - b) <= 1e-6 * b)' "$got" "${gemm_gflop:-0}"; then ok; else
    bad "$mode: the GEMMs do $got GFLOP, the plan counts ${gemm_gflop:-?}"
  fi
  # the fused attention: shape-literal instances only (ViT-B/16's N = 197 and 49 are built in)
  attn=$(awk -F'\t' '$1 == "kernel" && $2 ~ /^k_attn_(fwd|bwd_dq|bwd_dkv)/' "$log")
  if [ -n "$attn" ] && ! grep -v "@64,\(197\|49\),12" <<<"$attn" | grep -q .; then ok; else
    bad "$mode: a fused attention launch is not a shape-literal instance: $(grep -v "@64,\(197\|49\),12" <<<"$attn" | head -3)"
  fi
done

# AVGEN_FEWER_LAUNCHES=0: the BatchNorm statistics and counts launched apart again
dry "$TMP/launches-apart.tsv" AVGEN_FEWER_LAUNCHES=0
rc=$?
apart=$(awk -F'\t' '$1 == "kernel"' "$TMP/launches-apart.tsv" 2>/dev/null | wc -l)
stats=$(awk -F'\t' '$2 == "k_bn_stats" || $2 == "k_inc64"' "$TMP/launches-apart.tsv" 2>/dev/null | wc -l)
if [ $rc = 0 ] && [ "$apart" = $((WANT_KERNELS + WANT_APART)) ] && [ "$stats" = "$WANT_APART" ] &&
  ! grep -q "k_bn_stats\|k_inc64" "$TMP/launches-fp32.tsv"; then ok
else bad "AVGEN_FEWER_LAUNCHES=0: exit $rc, $apart kernel launches, $stats of k_bn_stats and k_inc64 (wanted $((WANT_KERNELS + WANT_APART)), $WANT_APART)"; fi

# The activation arena not repacked (every BatchNorm output and adapter fuse stored: AVGEN_FUSE_BN=0,
# AVGEN_FUSE_LATENT=0, so the device arena has the host's layout): still cleared on the device, not uploaded.
dry "$TMP/launches-stored.tsv" AVGEN_FUSE_BN=0 AVGEN_FUSE_LATENT=0
rc=$?
h2d=$("$PY" "$SRC/bench/launches.py" "$TMP/launches-stored.tsv" --json 2>/dev/null |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)["copies"].get("H2D", {}).get("bytes", -1))' 2>/dev/null)
if [ $rc = 0 ] && [ -n "$h2d" ] && [ "$h2d" -ge 0 ] && [ "$h2d" -lt $((1 << 30)) ]; then ok; else
  bad "outputs stored: exit $rc, ${h2d:-?} bytes uploaded (the activation arena must not be): $(tail -2 "$TMP/out")"
fi

# The summary's text form names the counts.
out=$("$PY" "$SRC/bench/launches.py" "$TMP/launches-fp32.tsv" 2>&1)
grep -q "^$((WANT_KERNELS + WANT_GEMMS)) launches: $WANT_KERNELS kernels, $WANT_GEMMS cuBLASLt matmuls" <<<"$out" && ok ||
  bad "launches.py's summary: $(head -3 <<<"$out")"

# The CPU backend needs the whole activation arena in host memory: refused where the machine has less.
mem_kib=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
if [ -n "$act_bytes" ] && [ -n "$mem_kib" ] && [ "$act_bytes" -gt $((mem_kib * 1024)) ]; then
  out=$("$PROG" --step --backend cpu --inputs random --out "$TMP/cpu.safetensors" 2>&1)
  rc=$?
  if [ $rc != 0 ] && grep -q "the CPU backend needs .* GiB of host memory for this configuration's tensors" <<<"$out" &&
     [ ! -e "$TMP/cpu.safetensors" ]; then ok; else bad "--backend cpu beyond host memory: exit $rc: $out"; fi
else
  echo "note: this machine has ${mem_kib:-?} KiB of memory, enough for the CPU backend's ${act_bytes:-?} bytes: not checked"
fi

# Bad input: a launch log that cannot be written, a file that is not a launch log.
out=$(AVGEN_EMU_DRY=1 AVGEN_EMU_LAUNCHES="$TMP/no/such/dir/x.tsv" "$PROG" --step --backend cuda --inputs random \
  --out "$TMP/x.safetensors" 2>&1)
rc=$?
[ $rc = 2 ] && grep -q "cannot write AVGEN_EMU_LAUNCHES file" <<<"$out" && ok || bad "an unwritable launch log: exit $rc: $out"
echo "not a log" >"$TMP/bad.tsv"
out=$("$PY" "$SRC/bench/launches.py" "$TMP/bad.tsv" 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "is not an AVGEN_EMU_LAUNCHES log" <<<"$out" && ok || bad "launches.py on a file that is no log: exit $rc: $out"
printf 'what\tname\tgrid\tblock\tsmem\tcaptured\nkernel\tk\t1,1\t1,1,1\t0\t0\n' >"$TMP/bad.tsv"
out=$("$PY" "$SRC/bench/launches.py" "$TMP/bad.tsv" 2>&1)
rc=$?
[ $rc = 1 ] && grep -q "line 2: the grid is not x,y,z" <<<"$out" && ok || bad "launches.py on a bad grid: exit $rc: $out"
finish
