#!/usr/bin/env bash
# fuzz/run-all.sh DURATION — run every fuzz target for DURATION, one after the other, and
# print a table of what each did (Markdown, ready for BENCHMARKS.md).
#
#   fuzz/run-all.sh 30m          # the campaign: 30 minutes a target, on a quiet machine
#   fuzz/run-all.sh 90s          # a smoke run
#   TARGETS="config journal" fuzz/run-all.sh 5m
#
# DURATION is seconds, or a number with s, m or h. The build is cargo-fuzz's without a
# sanitizer (`cargo fuzz build --sanitizer none`), which works on stable Rust; install
# cargo-fuzz with `cargo install cargo-fuzz`. Each target starts from its committed corpus
# (fuzz/corpus/<target>/); what it finds is merged back into that corpus, minimized
# (libFuzzer's -merge=1, as `cargo fuzz cmin` does), so the corpus stays small enough to
# commit. Crashes, timeouts and leaks are kept in fuzz/artifacts/<target>/ and counted in
# the table; the script exits 1 if there is any. A crash found becomes a regression test
# in tests/.
set -euo pipefail

DURATION=${1:?usage: run-all.sh DURATION (e.g. 30m)}
cd "$(dirname "$0")"

case "$DURATION" in
  *h) SECS=$(( ${DURATION%h} * 3600 )) ;;
  *m) SECS=$(( ${DURATION%m} * 60 )) ;;
  *s) SECS=${DURATION%s} ;;
  *) SECS=$DURATION ;;
esac

command -v cargo-fuzz >/dev/null || {
  echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 1
}

ALL=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^tocsin-fuzz$')
TARGETS=${TARGETS:-$ALL}
cargo fuzz build --sanitizer none >&2
BIN_DIR=target/$(rustc -vV | sed -n 's/^host: //p')/release

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/tocsin-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROWS=()
FAILED=0
for t in $TARGETS; do
  mkdir -p "corpus/$t" "artifacts/$t" "$WORK/$t.new" "$WORK/$t.min"
  before_files=$(find "corpus/$t" -type f | wc -l)
  before_art=$(find "artifacts/$t" -type f | wc -l)
  echo "== $t: ${SECS}s from $before_files inputs" >&2
  log=$WORK/$t.log
  # New inputs go to the scratch directory first; the committed corpus is only read.
  rc=0
  "$BIN_DIR/$t" -max_total_time="$SECS" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="artifacts/$t/" "$WORK/$t.new" "corpus/$t" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
  # Minimize the union back into the committed corpus.
  "$BIN_DIR/$t" -merge=1 "$WORK/$t.min" "corpus/$t" "$WORK/$t.new" >>"$log" 2>&1 || true
  if [ -n "$(ls -A "$WORK/$t.min")" ]; then
    rm -rf "corpus/$t"
    mv "$WORK/$t.min" "corpus/$t"
  fi
  files=$(find "corpus/$t" -type f | wc -l)
  kib=$(( ($(find "corpus/$t" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}') + 1023) / 1024 ))
  found=$(( $(find "artifacts/$t" -type f | wc -l) - before_art ))
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    FAILED=1
    echo "!! $t: exit $rc, $found new artifacts in fuzz/artifacts/$t; log tail:" >&2
    tail -20 "$log" >&2
  fi
  execs=$(( ${runs:-0} / (SECS > 0 ? SECS : 1) ))
  ROWS+=("| \`$t\` | ${SECS} s | ${runs:-?} | ${execs} | ${cov:-?} | $before_files → $files ($kib KiB) | ${rss:-?} MiB | $found |")
done

echo
echo "Fuzzing on $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), sanitizer-free build:"
echo
echo "| target | time | inputs run | inputs/s | coverage (edges) | corpus (files) | peak RSS | crashes, timeouts, leaks |"
echo "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
exit "$FAILED"
