# tests/lib.sh: the shell tests' shared harness, sourced as `. "$(dirname "$0")/lib.sh" NAME`: a temporary
# folder $TMP removed on exit (kept with KEEP_TMP=1, to look into a failure), pass and fail counters, and the
# checks the scripts share.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/avgen-$1-XXXXXX")
trap '[ -n "${KEEP_TMP:-}" ] || rm -rf "$TMP"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
# run DESCRIPTION command...: the command succeeds, or the failure is recorded with its output
run() {
  local what=$1
  shift
  local out
  if out=$("$@" 2>&1); then ok; else bad "$what: $out"; fi
}
# expect2 NEEDLE command...: the command exits 2 (bad input) saying NEEDLE
expect2() {
  local needle=$1
  shift
  local out rc
  out=$("$@" 2>&1)
  rc=$?
  if [ "$rc" = 2 ] && grep -qF -- "$needle" <<<"$out"; then ok; else bad "$* -> exit $rc: $out (wanted '$needle')"; fi
}
# finish: prints the counts; the script's exit status is 0 when nothing failed
finish() {
  echo "$pass passed, $fail failed"
  [ "$fail" = 0 ]
}
