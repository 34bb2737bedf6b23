#!/usr/bin/env bash
# Video files classified with a trained run (avgen classify, and the run's own program NAME-infer): on a synthetic
# set, whose test videos classify decodes and stores exactly as prep did (JPEG q3; raw with --raw on a set
# prepared with --raw), the answers must agree with
# avgen eval's (video top-1 and clip count), both programs must print the same bytes, the output must be
# well-formed (probabilities sorted, summing to 1 over all classes, the run's class names) and repeatable at any
# thread count; bad input (missing and unreadable files, no video, bad options, a checkpoint that is not there)
# gives one sentence and exit 2, the other videos still classified; with ../shared/media: a video without sound
# (refused by a model that listens, classified by a vision-only one), a silent one, one shorter than a clip
# (padded), other containers; with the CUDA emulator's build of tiny-lavish-infer: --backend cuda against the CPU.
# usage: classify_test.sh AVGEN REPO_ROOT [SHARED_MEDIA_DIR] [TINY_LAVISH_INFER_EMU]
set -u
AVGEN=$1
ROOT=$2
MEDIA=${3:-}
EMU=${4:-}
. "$(dirname "$0")/lib.sh" classify
M=$ROOT/models/tiny-lavish.json  # as it is: the configuration of the emulator's tiny-lavish-infer-emu

"$AVGEN" synth --out "$TMP/syn" --classes 3 --videos 18 --seconds 1.2 --size 96x64 --cue audio --seed 7 >/dev/null 2>&1 \
  && ok || bad "synth"
"$AVGEN" prep --src "$TMP/syn" --splits "$TMP/syn/ucfTrainTestlist" --out "$TMP/prep" --size 48 >/dev/null 2>&1 \
  && ok || bad "prep"
"$AVGEN" prep --src "$TMP/syn" --splits "$TMP/syn/ucfTrainTestlist" --out "$TMP/praw" --size 48 --raw >/dev/null 2>&1 \
  && ok || bad "prep --raw"
"$AVGEN" train "$M" --data "$TMP/prep" --out "$TMP/run" --max-steps 30 --quiet 2>"$TMP/train.err" && ok ||
  bad "train: $(cat "$TMP/train.err")"
INFER=$TMP/run/program/tiny-lavish-infer
[ -x "$INFER" ] && ok || bad "avgen train did not build the run's inference program"
# the run names its classes (labels in alphabetical order of the prepared classes)
python3 - "$TMP/run/classes.json" "$TMP/prep/manifest.jsonl" <<'EOF' && ok || bad "classes.json"
import json, sys
c = json.load(open(sys.argv[1]))["classes"]
m = {}
for l in open(sys.argv[2]):
    o = json.loads(l)
    if o["label"] >= 0: m[o["label"]] = o["class"]
assert len(c) == 5 and c[:3] == [m[0], m[1], m[2]] and c[3:] == ["", ""], c
EOF

# the test split's source videos, in manifest order (as eval reads them)
mapfile -t VIDS < <(python3 -c "
import json, sys
for l in open(sys.argv[1]):
    o = json.loads(l)
    if o['split'] == 'test' and o['output']: print(sys.argv[2] + '/' + o['video'])
" "$TMP/prep/manifest.jsonl" "$TMP/syn")
[ "${#VIDS[@]}" = 6 ] && ok || bad "expected 6 test videos, got ${#VIDS[@]}"

"$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP/run" --json >"$TMP/eval.json" 2>"$TMP/eval.err" && ok ||
  bad "eval: $(cat "$TMP/eval.err")"
"$AVGEN" classify "$M" --checkpoint "$TMP/run" --json "${VIDS[@]}" >"$TMP/c.json" 2>"$TMP/c.err" && ok ||
  bad "classify: $(cat "$TMP/c.err")"
"$INFER" --checkpoint "$TMP/run" --json "${VIDS[@]}" >"$TMP/i.json" 2>"$TMP/i.err" && ok ||
  bad "NAME-infer: $(cat "$TMP/i.err")"
cmp -s "$TMP/c.json" "$TMP/i.json" && ok || bad "avgen classify and the run's NAME-infer differ: $(diff "$TMP/c.json" "$TMP/i.json" | head -5)"
grep -q "no --weights" "$TMP/i.err" && ok || bad "NAME-infer without --weights did not warn: $(cat "$TMP/i.err")"
# and on raw frames, against eval on the data prepared with --raw
"$AVGEN" eval "$M" --data "$TMP/praw" --checkpoint "$TMP/run" --out "$TMP" --json >"$TMP/evalr.json" 2>"$TMP/evalr.err" && ok ||
  bad "eval raw: $(cat "$TMP/evalr.err")"
"$INFER" --checkpoint "$TMP/run" --raw --json "${VIDS[@]}" >"$TMP/r.json" 2>/dev/null && ok || bad "NAME-infer --raw"
for p in "c.json eval.json jpeg" "r.json evalr.json raw"; do
  set -- $p
  python3 - "$TMP/$1" "$TMP/$2" "$TMP/run/classes.json" "$3" <<'EOF' && ok || bad "classify against eval ($p)"
import json, math, os, sys
c, e = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
names = json.load(open(sys.argv[3]))["classes"]
assert c["model"] == "tiny-lavish" and c["backend"] == "cpu" and c["clip_frames"] == 2 and c["fps"] == 20, c
assert c["frames_stored"] == sys.argv[4], c["frames_stored"]
vs = c["videos"]
assert len(vs) == 6 and all(v["classified"] and v["status"] == "ok" for v in vs)
right = 0
for v in vs:
    top, lg = v["top"], v["logits"]
    assert len(top) == 5 and len(lg) == 5 and v["clips"] == 12 and v["frames"] == 24 and not v["padded"], v
    p = [t["probability"] for t in top]
    assert p == sorted(p, reverse=True) and abs(sum(p) - 1) < 1e-9, p
    # the softmax of the mean logits
    mx = max(lg); z = sum(math.exp(x - mx) for x in lg)
    assert all(abs(t["probability"] - math.exp(lg[t["label"]] - mx) / z) < 1e-9 for t in top)
    assert all(t["class"] == (names[t["label"]] or str(t["label"])) for t in top), top
    truth = os.path.basename(os.path.dirname(v["video"]))
    right += top[0]["class"] == truth
# the same clips through the same forward as eval: its video top-1 and clip count
assert abs(right / 6 - e["video"]["top1"]) < 1e-12, (right, e["video"])
assert sum(v["clips"] for v in vs) == e["clip"]["count"], e["clip"]
EOF
done
python3 - "$TMP/c.json" "$TMP/r.json" <<'EOF' && ok || bad "JPEG and raw frames"
import json, sys
a, b = (json.load(open(p))["videos"] for p in sys.argv[1:3])
d = max(abs(x - y) for u, v in zip(a, b) for x, y in zip(u["logits"], v["logits"]))
assert 0 < d < 0.1, d  # not the same frames, nearly
EOF
# a video's answer is its own: given alone (no other video whose answer it could take, another batch and padding)
# it gets the logits it got among the six, bit for bit (the eval-mode forward treats each clip apart)
"$INFER" --checkpoint "$TMP/run" --json "${VIDS[4]}" >"$TMP/one4.json" 2>/dev/null &&
  "$INFER" --checkpoint "$TMP/run" --json "${VIDS[1]}" >"$TMP/one1.json" 2>/dev/null && ok || bad "one video"
python3 - "$TMP/one4.json" "$TMP/one1.json" "$TMP/c.json" <<'EOF' && ok || bad "a video's logits depend on the others given"
import json, sys
a, b, c = (json.load(open(p))["videos"] for p in sys.argv[1:4])
assert a[0]["video"] == c[4]["video"] and a[0]["logits"] == c[4]["logits"]
assert b[0]["video"] == c[1]["video"] and b[0]["logits"] == c[1]["logits"]
assert c[4]["logits"] != c[1]["logits"]
EOF
# text: one line a video with --top classes; repeatable, at any thread count
"$INFER" --checkpoint "$TMP/run" --top 2 --threads 1 "${VIDS[@]}" >"$TMP/t1.txt" 2>/dev/null && ok || bad "text output"
"$INFER" --checkpoint "$TMP/run" --top 2 --threads 3 "${VIDS[@]}" >"$TMP/t3.txt" 2>/dev/null && ok || bad "--threads 3"
cmp -s "$TMP/t1.txt" "$TMP/t3.txt" && ok || bad "--threads 1 and 3 differ"
# in rounds (one thread: 12 videos a round, 4 batches of 3): the same answers
"$INFER" --checkpoint "$TMP/run" --top 2 --threads 1 "${VIDS[@]}" "${VIDS[@]}" "${VIDS[@]}" >"$TMP/t18.txt" 2>/dev/null &&
  cat "$TMP/t1.txt" "$TMP/t1.txt" "$TMP/t1.txt" | cmp -s - "$TMP/t18.txt" && ok || bad "18 videos in two rounds"
python3 - "$TMP/t1.txt" "$TMP/c.json" <<'EOF' && ok || bad "text lines: $(cat "$TMP/t1.txt")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
vs = json.load(open(sys.argv[2]))["videos"]
assert len(lines) == 6
for l, v in zip(lines, vs):
    assert l.startswith(v["video"] + "  "), l
    assert "%s %.4f | %s %.4f  (12 clips, 1.2 s)" % (v["top"][0]["class"], v["top"][0]["probability"],
                                                   v["top"][1]["class"], v["top"][1]["probability"]) in l, l
EOF
# class names from a prepared folder, or labels when the run has none
"$AVGEN" classify "$M" --checkpoint "$TMP/run" --classes "$TMP/prep" --json "${VIDS[@]}" 2>/dev/null |
  python3 -c "import json,sys; assert json.load(sys.stdin)['videos'][0]['top'][0]['class'] in ('ArmSwing','HandstandHops','HulaHoop')" \
  && ok || bad "--classes PREPARED"
mv "$TMP/run/classes.json" "$TMP/classes.json"
"$INFER" --checkpoint "$TMP/run" "${VIDS[0]}" >"$TMP/l.txt" 2>"$TMP/l.err" && grep -q "names no class" "$TMP/l.err" &&
  grep -qE "  [0-4] 0\.[0-9]{4} \| [0-4] " "$TMP/l.txt" && ok || bad "no classes.json: $(cat "$TMP/l.err" "$TMP/l.txt")"
mv "$TMP/classes.json" "$TMP/run/classes.json"

# bad input: one sentence, exit 2; the other videos still classified
printf 'not a video\n' >"$TMP/text.mp4"
out=$("$INFER" --checkpoint "$TMP/run" "${VIDS[0]}" "$TMP/nope.avi" "$TMP/text.mp4" "$TMP" 2>"$TMP/bad.err")
rc=$?
[ $rc = 2 ] && ok || bad "bad videos: exit $rc"
grep -q "nope.avi: cannot be opened (No such file or directory); not classified" "$TMP/bad.err" && ok || bad "missing: $(cat "$TMP/bad.err")"
grep -q "text.mp4: cannot open (" "$TMP/bad.err" && ok || bad "unreadable: $(cat "$TMP/bad.err")"
grep -q "a folder, not a video file" "$TMP/bad.err" && ok || bad "folder: $(cat "$TMP/bad.err")"
grep -q "3 of 4 videos could not be classified" "$TMP/bad.err" && ok || bad "summary: $(cat "$TMP/bad.err")"
[ "$(grep -c "clips, 1.2 s" <<<"$out")" = 1 ] && [ "$(grep -c "not classified" <<<"$out")" = 3 ] && ok ||
  bad "the good video among bad ones: $out"
expect2 "no video file given" "$INFER" --checkpoint "$TMP/run"
expect2 "video files need --checkpoint" "$INFER" "${VIDS[0]}"
expect2 "two different uses" "$INFER" --checkpoint "$TMP/run" --out "$TMP/x.st" "${VIDS[0]}"
expect2 "--top needs a positive integer" "$INFER" --checkpoint "$TMP/run" --top 0 "${VIDS[0]}"
expect2 "--threads needs an integer from 1 to 64" "$INFER" --checkpoint "$TMP/run" --threads x "${VIDS[0]}"
expect2 "go with --checkpoint" "$INFER" --json --params a --inputs b --out c
expect2 "go with --checkpoint" "$INFER" --raw --params a --inputs b --out c
expect2 "--top given twice" "$INFER" --checkpoint "$TMP/run" --top 1 --top 2 "${VIDS[0]}"
expect2 "--quality needs a JPEG qscale from 2 (best) to 31" "$INFER" --checkpoint "$TMP/run" --quality 1 "${VIDS[0]}"
expect2 "give one of them" "$INFER" --checkpoint "$TMP/run" --quality 5 --raw "${VIDS[0]}"
expect2 "give one of them" "$AVGEN" classify "$M" --checkpoint "$TMP/run" --quality 5 --raw "${VIDS[0]}"
expect2 "--quality needs a JPEG qscale from 2 (best) to 31" "$AVGEN" classify "$M" --checkpoint "$TMP/run" --quality 40 "${VIDS[0]}"
expect2 "neither best.safetensors nor checkpoint.json" "$INFER" --checkpoint "$TMP/prep" "${VIDS[0]}"
expect2 "cannot be read" "$INFER" --checkpoint "$TMP/none.safetensors" "${VIDS[0]}"
expect2 "expected a run folder or a prepared folder" "$INFER" --checkpoint "$TMP/run" --classes "$TMP/syn" "${VIDS[0]}"
expect2 "not a backend" "$INFER" --checkpoint "$TMP/run" --backend tpu "${VIDS[0]}"
expect2 "not a safetensors file" "$INFER" --checkpoint "$TMP/run" --weights "$TMP/text.mp4" "${VIDS[0]}"
expect2 "no video file given" "$AVGEN" classify "$M" --checkpoint "$TMP/run"
expect2 "--checkpoint RUN|FILE is required" "$AVGEN" classify "$M" "${VIDS[0]}"
expect2 "not a backend" "$AVGEN" classify "$M" --checkpoint "$TMP/run" --backend tpu "${VIDS[0]}"
expect2 "--top needs a positive integer" "$AVGEN" classify "$M" --checkpoint "$TMP/run" --top -1 "${VIDS[0]}"
# a description other than the run's, where it changes what the model computes (a --set forgotten), is refused by
# classify and eval alike; the clip length, the batch and the training settings may differ (below: video.frames)
expect2 "audio.norm_mean is -3.0 in the description given but -4.1426 in the run's $TMP/run/model.json" \
  "$AVGEN" classify "$M" --checkpoint "$TMP/run" --set audio.norm_mean=-3 "${VIDS[0]}"
expect2 "backbone.image_size is 32 in the description given but 48" \
  "$AVGEN" eval "$M" --data "$TMP/prep" --checkpoint "$TMP/run/$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['file'])" \
  "$TMP/run/checkpoint.json")" --set video.size=32 \
  --set backbone.image_size=32
"$AVGEN" classify "$M" --checkpoint "$TMP/run" --set train.batch=2 --set train.lr=1 --set name=other "${VIDS[0]}" \
  >/dev/null 2>&1 && ok || bad "classify with another batch, learning rate and name"
# without backbone weights the backbone is the seed's: train.seed must be the run's then
expect2 "train.seed (without backbone weights, the backbone's) is 5 in the description given but 0" \
  "$AVGEN" classify "$M" --checkpoint "$TMP/run" --set train.seed=5 "${VIDS[0]}"
# nothing left behind in TMPDIR
mkdir -p "$TMP/tmpdir"
TMPDIR=$TMP/tmpdir "$INFER" --checkpoint "$TMP/run" "${VIDS[0]}" "$TMP/nope.avi" >/dev/null 2>&1
[ -z "$(ls -A "$TMP/tmpdir")" ] && ok || bad "classify left $(ls -A "$TMP/tmpdir") in TMPDIR"
# a run killed outright leaves its folder, which the next run removes (its process is gone); another live one's is kept
# a run killed outright leaves its folder, which the next run on this machine removes (its process gone); another
# live run's is kept, and so is anything that is not a real folder of classify's (a link to elsewhere, or another
# machine's), nor a file classify does not write
H=$(hostname | tr -cd 'A-Za-z0-9-')
sleep 30 &
live=$!
D=$TMP/tmpdir/avgen-classify.999999999@$H.abcdef
mkdir -p "$D/videos" "$TMP/tmpdir/avgen-classify.$live@$H.abcdef/videos" "$TMP/tmpdir/avgen-classify.999999999@elsewhere.abcdef" \
  "$TMP/precious"
: >"$D/videos/0.avf"
: >"$D/videos/12.avf.tmp.99.1"
: >"$D/manifest.jsonl"
: >"$TMP/precious/0.avf"
: >"$TMP/precious/manifest.jsonl"
mkdir -p "$TMP/precious/videos" && : >"$TMP/precious/videos/1.avf"
ln -s "$TMP/precious" "$TMP/tmpdir/avgen-classify.999999998@$H.evil"
TMPDIR=$TMP/tmpdir "$INFER" --checkpoint "$TMP/run" "${VIDS[0]}" >/dev/null 2>&1
[ "$(ls -A "$TMP/tmpdir" | sort | tr '\n' ' ')" = "avgen-classify.$live@$H.abcdef avgen-classify.999999998@$H.evil avgen-classify.999999999@elsewhere.abcdef " ] &&
  [ "$(ls -AR "$TMP/precious" | grep -c avf)" = 2 ] && [ -e "$TMP/precious/manifest.jsonl" ] && ok ||
  bad "the sweep of killed runs' folders: $(ls -A "$TMP/tmpdir") / $(ls -AR "$TMP/precious")"
kill $live 2>/dev/null
rm -rf "$TMP/tmpdir"/*
# interrupted (SIGINT, SIGTERM, SIGHUP): nothing left behind, and the process ends by the signal
for sig in INT TERM HUP; do
  rm -rf "$TMP/tmpdir"/*
  # (started with the signal's default action: a shell's background job ignores SIGINT, which classify keeps)
  TMPDIR=$TMP/tmpdir python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
    "$INFER" --checkpoint "$TMP/run" "${VIDS[@]}" "${VIDS[@]}" "${VIDS[@]}" >/dev/null 2>&1 &
  pid=$!
  for i in $(seq 1 100); do [ -n "$(ls "$TMP/tmpdir"/*/videos 2>/dev/null)" ] && break; sleep 0.02; done
  kill -$sig $pid
  wait $pid 2>/dev/null
  rc=$?
  [ $rc -gt 128 ] && [ -z "$(ls -A "$TMP/tmpdir")" ] && ok || bad "SIG$sig: exit $rc, left $(ls -AR "$TMP/tmpdir")"
done
# a signal ignored when it starts (nohup) stays ignored
(
  trap '' HUP
  TMPDIR=$TMP/tmpdir exec "$INFER" --checkpoint "$TMP/run" "${VIDS[@]}" "${VIDS[@]}" >"$TMP/hup.txt" 2>/dev/null
) &
pid=$!
for i in $(seq 1 100); do [ -n "$(ls "$TMP/tmpdir"/*/videos 2>/dev/null)" ] && break; sleep 0.02; done
kill -HUP $pid
wait $pid
rc=$?
[ $rc = 0 ] && [ "$(wc -l <"$TMP/hup.txt")" = 12 ] && [ -z "$(ls -A "$TMP/tmpdir")" ] && ok || bad "SIGHUP ignored: exit $rc"
# the reader of the answers gone (a pipe closed): the write fails, one sentence, exit 1, nothing left behind
TMPDIR=$TMP/tmpdir "$INFER" --checkpoint "$TMP/run" --threads 2 "${VIDS[@]}" "${VIDS[@]}" "${VIDS[@]}" 2>"$TMP/pipe.err" | head -1 >/dev/null
rc=${PIPESTATUS[0]}
[ $rc = 1 ] && grep -q "cannot write the answers (Broken pipe)" "$TMP/pipe.err" && [ -z "$(ls -A "$TMP/tmpdir")" ] && ok ||
  bad "a closed pipe: exit $rc, $(cat "$TMP/pipe.err"), left $(ls -A "$TMP/tmpdir")"
"$INFER" --checkpoint "$TMP/run" "${VIDS[0]}" >/dev/full 2>"$TMP/full.err"
[ $? = 1 ] && grep -q "cannot write the answers (No space left on device)" "$TMP/full.err" && ok || bad "/dev/full: $(cat "$TMP/full.err")"
# the temporary folder's disk full (a file size limit): not the video's fault: exit 1, one sentence, nothing left
(
  trap '' XFSZ
  ulimit -f 100
  TMPDIR=$TMP/tmpdir exec "$INFER" --checkpoint "$TMP/run" --raw "${VIDS[@]}" >/dev/null 2>"$TMP/fsize.err"
)
rc=$?
[ $rc = 1 ] && grep -q "cannot write the frames of .* into $TMP/tmpdir/avgen-classify\..* (File too large)" "$TMP/fsize.err" &&
  [ -z "$(ls -A "$TMP/tmpdir")" ] && ok || bad "a write that fails: exit $rc, $(cat "$TMP/fsize.err"), left $(ls -AR "$TMP/tmpdir")"

if [ -n "$MEDIA" ] && [ -d "$MEDIA/video" ]; then
  # a video without sound: refused by a model that listens, classified by one that only looks
  "$INFER" --checkpoint "$TMP/run" "$MEDIA/video/tiny-no-audio.mp4" >/dev/null 2>"$TMP/na.err"
  rc=$?
  [ $rc = 2 ] && grep -q "no usable sound (no audio stream), and this model listens" "$TMP/na.err" && ok ||
    bad "no audio with lavish: exit $rc $(cat "$TMP/na.err")"
  V=$ROOT/models/tiny-vision.json
  "$AVGEN" train "$V" --data "$TMP/prep" --out "$TMP/runv" --max-steps 3 --quiet 2>"$TMP/tv.err" && ok ||
    bad "train tiny-vision: $(cat "$TMP/tv.err")"
  "$TMP/runv/program/tiny-vision-infer" --checkpoint "$TMP/runv" --json "$MEDIA/video/tiny-no-audio.mp4" \
    "$MEDIA/video/robot-mkv.mkv" 2>/dev/null >"$TMP/v.json" && ok || bad "vision-only on a video without sound"
  python3 - "$TMP/v.json" <<'EOF' && ok || bad "vision-only: $(cat "$TMP/v.json")"
import json, sys
v = json.load(open(sys.argv[1]))["videos"]
# frames at 20 fps as avgen prep makes them (11 at 12 fps over 1 s; 147 at 25 fps), clips of 2
assert v[0]["classified"] and v[0]["status"] == "no_audio" and v[0]["frames"] == 19 and v[0]["clips"] == 9, v[0]
assert v[1]["classified"] and v[1]["status"] == "ok" and v[1]["frames"] == 118 and v[1]["clips"] == 59, v[1]
EOF
  # silent sound, and shorter than a clip of 16 frames (the same checkpoint at another clip length)
  "$AVGEN" classify "$M" --checkpoint "$TMP/run" --set video.frames=16 --json "$MEDIA/video/short-silent-audio.mp4" \
    "$MEDIA/video/robot-webm.webm" 2>/dev/null >"$TMP/s.json" && ok || bad "short, silent"
  python3 - "$TMP/s.json" <<'EOF' && ok || bad "short, silent: $(cat "$TMP/s.json")"
import json, sys
o = json.load(open(sys.argv[1]))
v = o["videos"]
assert o["clip_frames"] == 16
assert v[0]["classified"] and v[0]["status"] == "silent" and v[0]["padded"] and v[0]["clips"] == 1, v[0]
assert v[0]["frames"] == 7, v[0]
assert v[1]["classified"] and v[1]["status"] == "ok" and not v[1]["padded"] and v[1]["clips"] == 111 // 16, v[1]
EOF
  "$INFER" --checkpoint "$TMP/run" "$MEDIA/video/broken-no-streams.mp4" >/dev/null 2>"$TMP/b.err"
  [ $? = 2 ] && grep -q "broken-no-streams.mp4: " "$TMP/b.err" && ok || bad "broken file: $(cat "$TMP/b.err")"
fi

if [ -n "$EMU" ]; then
  # the forward passes on the CUDA backend (the emulator): the CPU backend's answers, logits within fp32's rounding
  "$EMU" --checkpoint "$TMP/run" --backend cuda --precision fp32 --json "${VIDS[@]}" >"$TMP/e.json" 2>"$TMP/e.err" &&
    ok || bad "emulated cuda: $(cat "$TMP/e.err")"
  "$EMU" --checkpoint "$TMP/run" --backend cuda --json "${VIDS[@]:0:2}" >"$TMP/eb.json" 2>"$TMP/eb.err" &&
    ok || bad "emulated cuda bf16: $(cat "$TMP/eb.err")"
  python3 - "$TMP/e.json" "$TMP/eb.json" "$TMP/c.json" <<'EOF' && ok || bad "cuda against cpu"
import json, sys
e, b, c = (json.load(open(p)) for p in sys.argv[1:4])
assert e["backend"] == "cuda" and b["backend"] == "cuda"
for x, y in zip(e["videos"], c["videos"]):
    assert [t["label"] for t in x["top"]] == [t["label"] for t in y["top"]], (x["top"], y["top"])
    d = max(abs(p - q) for p, q in zip(x["logits"], y["logits"]))
    s = max(abs(q) for q in y["logits"])
    assert d <= 1e-5 * s + 1e-6, (d, s)
# bf16 GEMMs: the same top class, logits within bf16's tolerance
for x, y in zip(b["videos"], c["videos"]):
    assert x["top"][0]["label"] == y["top"][0]["label"]
    d = max(abs(p - q) for p, q in zip(x["logits"], y["logits"]))
    s = max(abs(q) for q in y["logits"])
    assert d <= 2e-2 * s + 1e-3, (d, s)
EOF
fi
finish
