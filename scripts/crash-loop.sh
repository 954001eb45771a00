#!/usr/bin/env bash
# crash-loop.sh N — kill the receiver with SIGKILL N times under load, then check that
# every frame that got an ACK is in the journal exactly once.
#
# Uses the release binary (built if missing) and only its own commands: `tocsin run`,
# `tocsin send` (the panels) and `tocsin history`. Everything stays on 127.0.0.1.
#
#   scripts/crash-loop.sh 200
#   PANELS=8 PORT=21500 HTTP_PORT=21501 KEEP=1 scripts/crash-loop.sh 50
#
# PORT defaults to a random port in 20000-29999; the script stops if it is taken.
set -euo pipefail

N=${1:?usage: crash-loop.sh N}
PANELS=${PANELS:-4}
PORT=${PORT:-$((20000 + RANDOM % 10000))}
HTTP_PORT=${HTTP_PORT:-$((PORT + 1))}
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
BIN=${TOCSIN:-$TARGET/release/tocsin}
[ -x "$BIN" ] || cargo build --release --bin tocsin
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/tocsin-crash-loop.XXXXXX")
DATA=$WORK/data
DAEMON=
SENDERS=()

cleanup() {
  for p in "${SENDERS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$DAEMON" ] && kill -9 "$DAEMON" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ -z "${KEEP:-}" ]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

start_daemon() {
  "$BIN" run --listen "127.0.0.1:$PORT" --http "127.0.0.1:$HTTP_PORT" --data-dir "$DATA" \
    >>"$WORK/stdout.jsonl" 2>>"$WORK/stderr.log" &
  DAEMON=$!
  for _ in $(seq 1 300); do
    if ! kill -0 "$DAEMON" 2>/dev/null; then
      echo "daemon exited at start:" >&2
      tail -3 "$WORK/stderr.log" >&2
      DAEMON=
      exit 1
    fi
    if "$BIN" send --to "127.0.0.1:$PORT" --account FFFF --null --timeout 1 >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.05
  done
  echo "daemon did not come up; see $WORK/stderr.log" >&2
  exit 1
}

# One panel: new frames one after the other; each ACK is logged as "account seq".
panel() {
  local id=$1 gen=0 seq=1
  while :; do
    local account
    account=$(printf '%02d%03d' "$id" "$gen")
    if "$BIN" send --to "127.0.0.1:$PORT" --account "$account" --seq "$seq" \
      --sia "Nri1/BA$((seq % 100))" --timeout 5 >/dev/null 2>&1; then
      printf '%s %04d\n' "$account" "$seq" >>"$WORK/acked.$id"
    fi
    seq=$((seq + 1))
    if [ "$seq" -gt 9999 ]; then seq=1; gen=$((gen + 1)); fi
  done
}

start_daemon
for i in $(seq 1 "$PANELS"); do
  panel "$i" &
  SENDERS+=($!)
done

for cycle in $(seq 1 "$N"); do
  sleep "0.$((RANDOM % 9 + 1))"
  kill -9 "$DAEMON"
  wait "$DAEMON" 2>/dev/null || true
  printf 'kill %d/%d: %d acked so far\n' "$cycle" "$N" "$(cat "$WORK"/acked.* 2>/dev/null | wc -l)"
  start_daemon
done

for p in "${SENDERS[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${SENDERS[@]}" 2>/dev/null || true
SENDERS=()
sleep 0.5
kill -TERM "$DAEMON"
rc=0
wait "$DAEMON" || rc=$?
DAEMON=
[ "$rc" -eq 0 ] || { echo "FAIL: exit code $rc after SIGTERM" >&2; exit 1; }

# History as "account seq", one line per event.
"$BIN" history --data-dir "$DATA" --format json |
  sed -E 's/.*"seq":"([0-9]+)".*"account":"([^"]*)".*/\2 \1/' | sort >"$WORK/history"
cat "$WORK"/acked.* | sort >"$WORK/acked"
lost=$(comm -23 "$WORK/acked" <(sort -u "$WORK/history") | wc -l)
dups=$(uniq -d "$WORK/history" | wc -l)
echo "kills: $N  acked: $(wc -l <"$WORK/acked")  events: $(wc -l <"$WORK/history")  lost: $lost  duplicated: $dups"
if [ "$lost" -ne 0 ] || [ "$dups" -ne 0 ]; then
  echo "FAIL (data kept in $WORK)" >&2
  KEEP=1
  exit 1
fi
echo "OK"
