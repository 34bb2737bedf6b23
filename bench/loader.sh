#!/usr/bin/env bash
# The clip loader against the ffmpeg CLI on the same machine (a benchmark, not a test).
#   bench/loader.sh SRC_DIR PREPARED_DIR [avgen]
# SRC_DIR holds the source videos (e.g. avgen synth's output or UCF101), PREPARED_DIR what avgen prep made
# of them. Prints avgen bench-loader's table, the ffmpeg CLI's single-thread decode rate over every
# source video (`ffmpeg -threads 1 -i F -f null -`, the work a loader that decodes the originals would
# do per frame), and the ratio of the loader's frames/s per thread to the CLI's frames/s per core.
set -euo pipefail
src=$1
prep=$2
avgen=${3:-$(dirname "$0")/../build/avgen}
command -v ffmpeg >/dev/null || { echo "the ffmpeg CLI is needed for the comparison (apt-get install ffmpeg)"; exit 2; }
echo "== $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "== avgen bench-loader --data $prep"
table=$("$avgen" bench-loader --data "$prep" --seconds "${SECONDS_EACH:-3}")
echo "$table"
mapfile -t files < <(find "$src" -type f \( -type f -path '*/Class*' \) | sort)
frames=0
start=$(date +%s.%N)
for f in "${files[@]}"; do
  n=$(ffmpeg -hide_banner -nostats -threads 1 -i "$f" -map 0:v:0 -f null - 2>&1 | grep -o 'frame= *[0-9]*' | tail -1 | grep -o '[0-9]*$')
  frames=$((frames + ${n:-0}))
done
end=$(date +%s.%N)
cli=$(python3 -c "print(round($frames / ($end - $start), 1))")
echo "== ffmpeg -threads 1 -i F -f null - over ${#files[@]} source videos: $frames frames, $cli frames/s on one core"
echo "$table" | awk -v cli="$cli" 'NR > 1 { printf "T %-3s threads %-3s loader %8.1f frames/s/thread = %.2fx the CLI per core\n", $1, $2, $6, $6 / cli }'
