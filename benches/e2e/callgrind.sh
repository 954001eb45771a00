#!/usr/bin/env bash
# Instructions tocsin executes per acknowledged frame, counted by callgrind; and the durable
# floor's, counted the same way.
#
#   benches/e2e/callgrind.sh [--bin PATH] [--load-bin PATH] [--floor-bin PATH | --no-floor]
#                            [--sink file|none] [--frames "20000 40000"] [--conns 100]
#                            [--top 25]
#
#   This tree:               benches/e2e/callgrind.sh
#   An older commit ("before"): build it elsewhere, e.g.
#       git worktree add /tmp/before <commit> && (cd /tmp/before && cargo build --release)
#       benches/e2e/callgrind.sh --bin /tmp/before/target/release/tocsin
#   A smoke test (a minute, not figures): benches/e2e/callgrind.sh --frames "500 1000" --conns 10
#
# Method: `tocsin run` (the --bin binary, release build; journal on a real disk under the
# cargo target dir; the load's accounts configured; `--sink file`, the default, turns on the
# JSON-lines sink writing to a file on the same disk, `--sink none` turns every sink off)
# runs under `valgrind --tool=callgrind`, and `tocsin load --frames N --conns 100` (the
# --load-bin binary, default the same one; outside valgrind) sends N frames (mix sia,cid,
# closed loop) and counts the ACKs. Then SIGTERM: the daemon shuts down (the sink writes
# every event still to write) and callgrind writes its counts. This is done for two values
# of N, each with a fresh journal; start-up and shutdown are the same in both, so
#   instructions per frame = (Ir(N₂) − Ir(N₁)) ÷ (ACKs(N₂) − ACKs(N₁)).
# Ir is every instruction executed in user space by the process, all threads (tocsin's code,
# the crates compiled into it, libc); the kernel's work for system calls is not in it. The
# split per object (binary, libc) and the functions with the most own instructions per frame
# come from the same difference (benches/e2e/callgrind.py); callgrind_annotate's view of the
# larger run (start-up included) follows. The floor (examples/floor.rs, the --floor-bin
# binary, default this tree's) is counted the same way.
#
# Works with any tocsin that has `tocsin load --frames` and the config keys used below.
# Needs valgrind (Debian package valgrind). Environment: CARGO_TARGET_DIR is honoured;
# BENCH_DIR picks the work directory's parent (default $CARGO_TARGET_DIR/tmp, a real disk);
# KEEP=1 keeps it (callgrind.out.* files for callgrind_annotate or kcachegrind).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
. benches/lib.sh

BIN=
LOAD_BIN=
FLOOR_BIN=
FLOOR=1
SINK=file
FRAMES="20000 40000"
CONNS=100
TOP=25
usage() {
  echo "usage: $0 [--bin PATH] [--load-bin PATH] [--floor-bin PATH | --no-floor] [--sink file|none]" \
    "[--frames \"N1 N2\"] [--conns N] [--top N]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --load-bin) LOAD_BIN=$2; shift 2 ;;
    --floor-bin) FLOOR_BIN=$2; shift 2 ;;
    --no-floor) FLOOR=0; shift ;;
    --sink)
      SINK=$2; shift 2
      case "$SINK" in file | none) ;; *) usage ;; esac ;;
    --frames) FRAMES=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --top) TOP=$2; shift 2 ;;
    *) usage ;;
  esac
done
read -r N1 N2 REST <<<"$FRAMES"
{ [ -n "${N2:-}" ] && [ -z "${REST:-}" ] && [ "$N2" -gt "$N1" ]; } || {
  echo "--frames takes two counts, the second larger" >&2
  exit 2
}
for cmd in valgrind callgrind_annotate; do
  command -v "$cmd" >/dev/null || { echo "missing: $cmd (Debian package valgrind)" >&2; exit 1; }
done

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BUILD=()
[ -z "$BIN" ] && BUILD+=(--bin tocsin)
[ "$FLOOR" = 1 ] && [ -z "$FLOOR_BIN" ] && BUILD+=(--example floor)
if [ ${#BUILD[@]} -gt 0 ]; then
  echo "== building (release): ${BUILD[*]}"
  cargo build --release --quiet "${BUILD[@]}"
fi
BIN=$(realpath "${BIN:-$TARGET/release/tocsin}")
LOAD_BIN=$(realpath "${LOAD_BIN:-$BIN}")
FLOOR_BIN=$(realpath "${FLOOR_BIN:-$TARGET/release/examples/floor}")
"$LOAD_BIN" load --help | grep -q -- '--frames' || {
  echo "$LOAD_BIN has no \`load --frames\`" >&2
  exit 1
}

BASE=${BENCH_DIR:-$TARGET/tmp}
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/callgrind.XXXXXX")
WORK=$(cd "$WORK" && pwd)
SERVER_PID=
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
{
  echo "id,key,key_encoding,encryption"
  for ((i = 0; i < CONNS; i++)); do echo "$((100000 + i)),,,"; done
} >"$WORK/accounts.csv"

# Waits (up to 5 min: valgrind starts slowly) for port $1, or for HTTP /readyz with $2 set.
wait_up() {
  for _ in $(seq 3000); do
    if [ -n "${2:-}" ]; then
      curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
    else
      (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "the server under valgrind did not come up; its log:" >&2
  cat "$RUN_DIR/server.log" >&2
  exit 1
}

# profile KIND N: one process under callgrind answering N frames; its ACK count goes to
# $WORK/KIND-N/acks.
profile() {
  local kind=$1 n=$2 port http
  RUN_DIR=$WORK/$kind-$n
  mkdir -p "$RUN_DIR"
  port=$(free_port)
  http=$(free_port)
  local cg=(valgrind --tool=callgrind --callgrind-out-file="$RUN_DIR/callgrind.out")
  if [ "$kind" = tocsin ]; then
    local output="stdout = false"
    [ "$SINK" = file ] && output="$output
file = \"$RUN_DIR/events.jsonl\""
    cp "$WORK/accounts.csv" "$RUN_DIR/"
    cat >"$RUN_DIR/tocsin.toml" <<EOF
[receiver]
id = "callgrind"
data_dir = "$RUN_DIR/data"
[[listen]]
address = "127.0.0.1:$port"
transport = "tcp"
[http]
address = "127.0.0.1:$http"
[output]
$output
[accounts]
unknown = "reject"
file = "accounts.csv"
EOF
    "${cg[@]}" "$BIN" run --config "$RUN_DIR/tocsin.toml" >/dev/null 2>"$RUN_DIR/server.log" &
    SERVER_PID=$!
    wait_up "$http" ready
  else
    "${cg[@]}" "$FLOOR_BIN" "127.0.0.1:$port" "$RUN_DIR/floor" 2>"$RUN_DIR/server.log" &
    SERVER_PID=$!
    wait_up "$port"
  fi
  "$LOAD_BIN" load --to "127.0.0.1:$port" --conns "$CONNS" --frames "$n" --mix sia,cid \
    --timeout 60s --json >"$RUN_DIR/load.json" 2>"$RUN_DIR/load.err" || true
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=
  [ -s "$RUN_DIR/callgrind.out" ] || { echo "no callgrind output; log:" >&2; cat "$RUN_DIR/server.log" >&2; exit 1; }
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
bad = {k: r.get(k) for k in ("nak", "duh", "timeouts", "errors") if r.get(k)}
if bad:
    print(f"warning: {sys.argv[2]}: not every reply an ACK: {bad}", file=sys.stderr)
print(r["ack"])' "$RUN_DIR/load.json" "$kind $n" >"$RUN_DIR/acks" || {
    echo "tocsin load printed no summary:" >&2
    cat "$RUN_DIR/load.err" >&2
    exit 1
  }
}

declare -A ACKS
KINDS=(tocsin)
[ "$FLOOR" = 1 ] && KINDS+=(floor)
echo "== $BIN ($("$BIN" --version 2>/dev/null || echo '?')), sink: $SINK; $CONNS panels; frames $N1 and $N2"
for kind in "${KINDS[@]}"; do
  for n in "$N1" "$N2"; do
    echo "== $kind under callgrind, $n frames"
    profile "$kind" "$n"
    ACKS[$n]=$(cat "$WORK/$kind-$n/acks")
    echo "   ${ACKS[$n]} ACKs"
  done
  python3 "$ROOT/benches/e2e/callgrind.py" "$kind" \
    "${ACKS[$N1]}" "$WORK/$kind-$N1/callgrind.out" "${ACKS[$N2]}" "$WORK/$kind-$N2/callgrind.out" --top "$TOP" |
    tee "$WORK/$kind.txt"
  echo "   callgrind_annotate, $N2-frame run (start-up included), own instructions:"
  callgrind_annotate --inclusive=no --auto=no "$WORK/$kind-$N2/callgrind.out" 2>/dev/null |
    awk '/^-+$/ {d++; next} d >= 6 && NF' | head -n "$TOP" | sed 's/^/   /' || true
done
if [ "$FLOOR" = 1 ]; then
  python3 - "$WORK/tocsin.txt" "$WORK/floor.txt" <<'PY'
import re, sys
def per(path):
    m = re.search(r"per frame: ([\d,]+) instructions", open(path).read())
    return int(m.group(1).replace(",", "")) if m else None
t, f = per(sys.argv[1]), per(sys.argv[2])
if t and f:
    print(f"== tocsin {t:,} ÷ floor {f:,} instructions per frame = {t / f:.2f}×")
PY
fi
