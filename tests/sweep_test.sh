#!/usr/bin/env bash
# avgen sweep: each (T, B) cell's planned peaks, fit and largest batch are avgen plan's for that configuration; the
# job list has one parseable avgen bench line for each cell that fits (a job run here, without a GPU, fails and is
# reported as a cell without a result); --collect reads avgen bench --json results (a real one from the CUDA
# emulator's tiny-lavish-train-emu, and altered copies) and marks the fastest; bad input gives one sentence, exit 2.
# usage: sweep_test.sh AVGEN REPO_ROOT [TINY_LAVISH_TRAIN_EMU]
set -u
AVGEN=$1
ROOT=$2
EMU=${3:-}
. "$(dirname "$0")/lib.sh" sweep
M=$ROOT/models/tiny-lavish.json

# the cells against avgen plan
"$AVGEN" sweep "$M" --frames 2,5 --batch 1,3,max,3000 --set memory.budget=64MiB --json >"$TMP/s.json" 2>"$TMP/s.err" &&
  ok || bad "sweep: $(cat "$TMP/s.err")"
for tb in "2 1" "2 3" "5 3" "5 3000"; do
  set -- $tb
  "$AVGEN" plan "$M" --set memory.budget=64MiB --set video.frames=$1 --set train.batch=$2 --json >"$TMP/p-$1-$2.json" 2>/dev/null
done
"$AVGEN" plan "$M" --set memory.budget=64MiB --set video.frames=5 --json >"$TMP/p-5.json" 2>/dev/null
python3 - "$TMP" <<'EOF' && ok || bad "sweep against plan: $(head -c 600 "$TMP/s.json")"
import json, sys
d = sys.argv[1]
s = json.load(open(d + "/s.json"))
cells = {(c["frames"], c["batch"]): c for c in s["cells"]}
assert s["name"] == "tiny-lavish" and s["budget_bytes"] == 64 << 20 and s["activations"] == "fp32"
for t, b in ((2, 1), (2, 3), (5, 3), (5, 3000)):
    p = json.load(open("%s/p-%d-%d.json" % (d, t, b)))
    cu, c = p["memory"]["cuda"], cells[(t, b)]
    assert c["peak_fp32_activations"] == cu["fp32_activations"]["peak"], (t, b)
    assert c["peak_bf16_activations"] == cu["bf16_activations"]["peak"], (t, b)
    assert c["fits_fp32_activations"] == (c["peak_fp32_activations"] <= 64 << 20)
    assert c["pairs"] == t * b
    r = p["memory"]["cuda"]["roofline"]
    assert abs(c["roofline_ms_fp32_activations"] - r["fp32_activations_ms"]) < 1e-9 * r["fp32_activations_ms"]
    assert abs(c["roofline_ms_bf16_activations"] - r["bf16_activations_ms"]) < 1e-9 * r["bf16_activations_ms"]
assert not cells[(5, 3000)]["fits_fp32_activations"] and cells[(2, 3)]["fits_fp32_activations"]
# "max": the plan's largest batch at that T, which fits, and one more would not
m5 = json.load(open(d + "/p-5.json"))["memory"]["cuda"]["fp32_activations"]["max_batch"]
mx = [c for c in s["cells"] if c["frames"] == 5 and c["max"]]
assert len(mx) == 1 and mx[0]["batch"] == m5 and mx[0]["fits_fp32_activations"], (mx, m5)
assert {e["frames"]: e["max_batch"] for e in s["largest_batch"]}[5] == m5
# sorted by T, then B
k = [(c["frames"], c["batch"]) for c in s["cells"]]
assert k == sorted(k) and len(k) == len(set(k)) == 8, k
EOF
# the text table: a row a cell, the largest batches named
"$AVGEN" sweep "$M" --frames 2,5 --batch 1,3,max,3000 --set memory.budget=64MiB >"$TMP/s.txt" 2>/dev/null && ok || bad "text"
[ "$(grep -cE '^ +[25] +[0-9]+( max)? ' "$TMP/s.txt")" = 8 ] && grep -q "largest batch that fits (fp32 activations): T 2: " "$TMP/s.txt" &&
  grep -qE '^ +5 +3000 .* no ' "$TMP/s.txt" && ok || bad "text table: $(cat "$TMP/s.txt")"
# with bf16 activations the largest batches are larger
"$AVGEN" sweep "$M" --frames 5 --batch max --set memory.budget=64MiB --bf16-activations --json 2>/dev/null |
  python3 -c "
import json, sys
s = json.load(sys.stdin); c = s['cells'][0]
p = json.load(open(sys.argv[1]))['memory']['cuda']['bf16_activations']['max_batch']
assert s['activations'] == 'bf16' and c['max'] and c['batch'] == p and c['fits_bf16_activations'], (c, p)
" "$TMP/p-5.json" && ok || bad "--bf16-activations"

# the job list: one avgen bench line a cell that fits, the user's --set kept
"$AVGEN" sweep "$M" --frames 2,5 --batch 1,3000 --set memory.budget=64MiB --set "description=it's" --jobs "$TMP/jobs.sh" \
  --results "$TMP/res" >"$TMP/j.txt" 2>/dev/null && ok || bad "--jobs"
bash -n "$TMP/jobs.sh" && ok || bad "the job list is not a shell script: $(cat "$TMP/jobs.sh")"
[ "$(grep -vc '^#' "$TMP/jobs.sh")" = 2 ] && grep -q "wrote 2 jobs to" "$TMP/j.txt" && ok || bad "jobs: $(cat "$TMP/jobs.sh")"
MA=$(realpath "$M")
grep -qF -- " bench '$MA' --set 'memory.budget=64MiB' --set 'description=it'\''s' --set video.frames=5 --set train.batch=1 --json >'$TMP/res/sweep-t5-b1.json' 2>'$TMP/res/sweep-t5-b1.log'" \
  "$TMP/jobs.sh" && ok || bad "a job line: $(grep -v '^#' "$TMP/jobs.sh" | tail -1)"
[ -d "$TMP/res" ] && ok || bad "the results folder was not made"
# the paths are absolute: a job runs from any folder (here it gets as far as the missing GPU)
if ! nvidia-smi >/dev/null 2>&1; then
  (cd / && grep -v '^#' "$TMP/jobs.sh" | tail -1 | bash)
  grep -q "CUDA" "$TMP/res/sweep-t5-b1.log" && ok || bad "a job run from /: $(cat "$TMP/res/sweep-t5-b1.log")"
  rm -f "$TMP/res/sweep-t5-b1."*
fi
# a job run here (no GPU) fails; --collect names it
if ! nvidia-smi >/dev/null 2>&1; then
  grep -v '^#' "$TMP/jobs.sh" | head -1 | bash
  [ $? != 0 ] && [ -s "$TMP/res/sweep-t2-b1.log" ] && ok || bad "a job without a GPU"
  out=$("$AVGEN" sweep --collect "$TMP/res" 2>&1) && grep -q "0 measured, 1 without a result" <<<"$out" &&
    grep -q "no result: sweep-t2-b1 (the job failed or has not run: see $TMP/res/sweep-t2-b1.log)" <<<"$out" && ok ||
    bad "collect of a failed job: $out"
fi

# --collect on results: the emulator's avgen bench --json of tiny-lavish (T 2, B 3), and copies as other cells
if [ -n "$EMU" ]; then
  mkdir -p "$TMP/r2"
  "$EMU" --bench --warmup 0 --steps 1 --json "$TMP/r2/sweep-t2-b3.json" >/dev/null 2>&1 && ok || bad "emulated bench"
  python3 - "$TMP/r2" <<'EOF' && ok || bad "copies"
import json, sys
d = sys.argv[1]
o = json.load(open(d + "/sweep-t2-b3.json"))
for t, b, f in ((2, 6, 1.5), (4, 3, 0.5), (4, 6, 0.8)):
    c = dict(o, frames=t, batch=b, pairs_per_s=o["pairs_per_s"] * f, median_ms=o["median_ms"] * t * b / 6 / f)
    json.dump(c, open("%s/sweep-t%d-b%d.json" % (d, t, b), "w"))
EOF
  : >"$TMP/r2/sweep-t8-b3.json"
  out=$("$AVGEN" sweep --collect "$TMP/r2" 2>&1) && ok || bad "collect: $out"
  grep -q "4 measured, 1 without a result" <<<"$out" && grep -q "on avgen CUDA emulator (CPU)" <<<"$out" &&
    [ "$(grep -c 'fastest at this T' <<<"$out")" = 2 ] && grep -qE '^ +2 +6 +fp32 .*fastest at this T' <<<"$out" &&
    grep -qE '^ +4 +6 +fp32 .*fastest at this T' <<<"$out" && grep -q "^fastest: T 2, B 6 (fp32 activations)" <<<"$out" &&
    grep -q "no result: sweep-t8-b3" <<<"$out" && ok || bad "collect table: $out"
  "$AVGEN" sweep --collect "$TMP/r2" --json | python3 -c "
import json, sys
o = json.load(sys.stdin); r = o['results']
assert [(x['frames'], x['batch']) for x in r] == [(2, 3), (2, 6), (4, 3), (4, 6)]
assert [x['fastest'] for x in r] == [False, True, False, False] and [x['fastest_at_frames'] for x in r] == [False, True, False, True]
assert o['no_result'] == ['sweep-t8-b3'] and o['device'].startswith('avgen CUDA emulator')
assert r[0]['median_ms'] > 0 and r[0]['planned_bytes'] > 0
" && ok || bad "collect --json"
fi

# bad input
expect2 "--frames 0 is not a list of positive clip lengths" "$AVGEN" sweep "$M" --frames 0
expect2 "--frames 2,,4 is not a list" "$AVGEN" sweep "$M" --frames 2,,4
expect2 "--batch 1,x is not a list of positive batches and max" "$AVGEN" sweep "$M" --batch 1,x
expect2 "--jobs FILE and --results DIR go together" "$AVGEN" sweep "$M" --jobs "$TMP/j"
expect2 "--collect takes the results folder alone" "$AVGEN" sweep "$M" --collect "$TMP/r2"
expect2 "cannot be read" "$AVGEN" sweep --collect "$TMP/none"
mkdir -p "$TMP/empty"
expect2 "holds no result of avgen bench --json" "$AVGEN" sweep --collect "$TMP/empty"
expect2 "a model description MODEL.json is required" "$AVGEN" sweep
expect2 "a line break cannot go into the job list" "$AVGEN" sweep "$M" --set "description=a
b" --jobs "$TMP/j2" --results "$TMP/r3"
"$AVGEN" sweep "$M" --frames 2 --batch 1 >/dev/full 2>"$TMP/full.err"
[ $? = 1 ] && grep -q "cannot write the table (No space left on device)" "$TMP/full.err" && ok || bad "/dev/full: $(cat "$TMP/full.err")"
expect2 "unknown option --bogus" "$AVGEN" sweep "$M" --bogus
expect2 "--frames given twice" "$AVGEN" sweep "$M" --frames 2 --frames 4
expect2 "--peak needs a positive number of FLOP/s" "$AVGEN" sweep "$M" --peak 0
expect2 "train.bacth is not a known field" "$AVGEN" sweep "$M" --set train.bacth=2
expect2 "video.frames" "$AVGEN" sweep "$M" --frames 100000
finish
