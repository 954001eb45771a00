#!/usr/bin/env bash
# Soak: does tocsin stay flat under hours of mixed traffic? Resident memory, open files and
# threads over time, while it serves at once:
#
#   - persistent panels (TCP), SIA, Contact ID and NULL, paced;
#   - panels over UDP, paced;
#   - connection churn: one TCP connection per frame;
#   - garbage over TCP and UDP (benches/soak/garbage.py: bad CRC, bad length, random
#     bytes, 70 kB without a CR, half frames, bad tokens, long accounts, undecryptable
#     frames), as fast as one Python process sends it;
#   - dual-path supervised accounts, some of them naming more paths than are supervised.
#
#   benches/soak/run.sh [--duration 10m] [--every 15s] [--rate 4000]
#
# The dedup window is capped low ([dedup] max_keys = 200000) so that it reaches its bound in
# the first minute: after that, nothing the traffic does should make memory grow. Prints a
# table of samples and a verdict on growth after the first third of the run; the daemon must
# still ACK a fresh frame at the end, and the garbage must have been answered (NAK or DUH
# counted in tocsin_frames_total).
set -euo pipefail
cd "$(dirname "$0")/../.."
. benches/lib.sh
DURATION=10m
EVERY=15s
RATE=4000
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION=$2; shift 2 ;;
    --every) EVERY=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    *) echo "usage: $0 [--duration 10m] [--every 15s] [--rate R]" >&2; exit 2 ;;
  esac
done
secs() { python3 -c 'import sys,re; m=re.fullmatch(r"(\d+)(s|m|h)",sys.argv[1]); print(int(m[1])*{"s":1,"m":60,"h":3600}[m[2]])' "$1"; }
TOTAL=$(secs "$DURATION")
STEP=$(secs "$EVERY")
ulimit -n "$(ulimit -Hn)"
TARGET=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin tocsin
BIN=$TARGET/release/tocsin
mkdir -p "$TARGET/tmp"
WORK=$(mktemp -d "$TARGET/tmp/soak.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(free_port)
HTTP=$(free_port)
{
  cat <<CONF
[receiver]
id = "soak"
data_dir = "$WORK/data"
[[listen]]
address = "127.0.0.1:$PORT"
[http]
address = "127.0.0.1:$HTTP"
[output]
stdout = false
[dedup]
max_keys = 200000
[journal]
max_bytes = "2GiB"
[limits]
max_connections_per_peer = 16000
[accounts]
unknown = "accept"
CONF
  # Accounts 300000..300049: dual path, supervised.
  for i in $(seq 300000 300049); do
    printf '[[account]]\nid = "%s"\nsupervision = "30s/60s"\n' "$i"
  done
} >"$WORK/tocsin.toml"
"$BIN" check-config "$WORK/tocsin.toml" >/dev/null
"$BIN" run --config "$WORK/tocsin.toml" >/dev/null 2>"$WORK/tocsin.log" &
TOCSIN_PID=$!
PIDS+=("$TOCSIN_PID")
wait_ready "$HTTP" "$WORK/tocsin.log"

LOAD=("$BIN" load --to "127.0.0.1:$PORT" --duration "$DURATION")
# Rates: R in all, split 50 % persistent TCP, 25 % UDP, 15 % churn, 10 % supervised.
"${LOAD[@]}" --conns 1000 --accounts 50000 --rate $((RATE / 2)) >"$WORK/tcp.json" 2>/dev/null &
PIDS+=($!)
"${LOAD[@]}" --udp --conns 200 --accounts 20000 --rate $((RATE / 4)) >"$WORK/udp.json" 2>/dev/null &
PIDS+=($!)
"${LOAD[@]}" --connect-per-frame --conns 50 --accounts 5000 --rate $((RATE * 15 / 100)) >"$WORK/churn.json" 2>/dev/null &
PIDS+=($!)
python3 benches/soak/garbage.py 127.0.0.1 "$PORT" 1 >"$WORK/garbage.json" &
GARBAGE_PID=$!
PIDS+=("$GARBAGE_PID")
# Supervised accounts over many line numbers: 50 accounts, the load's own account
# numbering is 100000 + i, so a second generator is pointed at 300000.. with `send`.
(
  end=$((SECONDS + TOTAL))
  n=0
  while [ $SECONDS -lt $end ]; do
    acct=$((300000 + n % 50))
    line=$(( (n / 50) % 12 ))
    "$BIN" send --to "127.0.0.1:$PORT" --account "$acct" --null --line "$line" >/dev/null 2>&1 || true
    n=$((n + 1))
  done
) &
PIDS+=($!)

metric() { # sum of a metric family's samples in file $1 matching regex $2
  awk -v re="$2" '$0 ~ "^"re && $1 !~ /^#/ {s += $NF} END {printf "%.0f", s}' "$1"
}
echo "== soak: $DURATION, sample every $EVERY (rate $RATE frames/s from the load generators)"
printf '%8s %10s %10s %6s %8s %10s %10s %8s %8s %9s\n' t_s rss_kib anon_kib fds threads frames acked nak duh dedup
: >"$WORK/samples"
start=$SECONDS
while :; do
  t=$((SECONDS - start))
  curl -sf "http://127.0.0.1:$HTTP/metrics" >"$WORK/m" || { echo "metrics unreachable: daemon down?" >&2; cat "$WORK/tocsin.log" >&2; exit 1; }
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$TOCSIN_PID/status")
  anon=$(awk '/^RssAnon/ {print $2}' "/proc/$TOCSIN_PID/status")
  fds=$(ls "/proc/$TOCSIN_PID/fd" | wc -l)
  thr=$(awk '/^Threads/ {print $2}' "/proc/$TOCSIN_PID/status")
  frames=$(metric "$WORK/m" 'tocsin_frames_total')
  acked=$(metric "$WORK/m" 'tocsin_frames_total\{[^}]*outcome="ack"')
  nak=$(metric "$WORK/m" 'tocsin_frames_total\{[^}]*outcome="nak"')
  duh=$(metric "$WORK/m" 'tocsin_frames_total\{[^}]*outcome="duh"')
  dedup=$(metric "$WORK/m" 'tocsin_dedup_keys')
  printf '%8s %10s %10s %6s %8s %10s %10s %8s %8s %9s\n' "$t" "$rss" "$anon" "$fds" "$thr" "$frames" "$acked" "$nak" "$duh" "$dedup" | tee -a "$WORK/samples"
  [ "$t" -ge "$TOTAL" ] && break
  sleep "$STEP"
done
PEAK=$(awk '/^VmHWM/ {print $2}' "/proc/$TOCSIN_PID/status")
kill "$GARBAGE_PID" 2>/dev/null || true
wait "$GARBAGE_PID" 2>/dev/null || true
sleep 2
REPLY=$("$BIN" send --to "127.0.0.1:$PORT" --account 424242 --sia 'Nri1/BA01' 2>&1 || true)
curl -sf "http://127.0.0.1:$HTTP/metrics" >"$WORK/m"
echo "== garbage sent: $(cat "$WORK/garbage.json")"
echo "== refused paths counted: $(metric "$WORK/m" 'tocsin_supervision_paths_refused_total')"
echo "== final frame: $REPLY" | head -3
python3 - "$WORK/samples" "$PEAK" <<'PY'
import sys
rows = [list(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
t = [r[0] for r in rows]
third = [r for r in rows if r[0] >= t[-1] / 3]
def span(col):
    return min(r[col] for r in third), max(r[col] for r in third)
lo, hi = span(1)
alo, ahi = span(2)
print(f"== resident memory after the first third: {lo / 1024:.1f} .. {hi / 1024:.1f} MiB "
      f"(+{(hi - lo) / 1024:.1f} MiB), of it anonymous {alo / 1024:.1f} .. {ahi / 1024:.1f} MiB; "
      f"peak over the whole run (VmHWM) {int(sys.argv[2]) / 1024:.1f} MiB; "
      f"open files {int(min(r[3] for r in third))} .. {int(max(r[3] for r in third))}; "
      f"threads {int(min(r[4] for r in third))} .. {int(max(r[4] for r in third))}")
PY
case "$REPLY" in *ACK*) echo "== daemon still acknowledges: yes" ;; *) echo "== daemon still acknowledges: NO" ; exit 1 ;; esac
