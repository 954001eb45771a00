#!/usr/bin/env bash
# cluster-loop.sh N — runs the station redundancy test N times (three nats-server nodes,
# a stream of 3 replicas, two tocsin receivers, dual-path panels; the stream leader's node
# and then one receiver are killed with SIGKILL mid-load) and reports, over all runs, how
# many frames the panels saw ACKed, how many of them are missing from the stream (lost)
# or in it more than once (duplicated), and the failover times.
#
#   scripts/cluster-loop.sh 20
#
# The test itself is tests/nats_station.rs (`station_survives_a_bus_node_and_a_receiver`);
# each run prints one `cluster-check:` and one `failover:` line, collected here. The output
# of a failed run is kept in target/cluster-loop/run-K.log. Exit status 1 if anything was
# lost or duplicated or a run failed.
set -euo pipefail

N=${1:?usage: cluster-loop.sh N}
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
LOGS=$TARGET/cluster-loop
mkdir -p "$LOGS"
TEST=station_survives_a_bus_node_and_a_receiver

cargo test --quiet --test nats_station --no-run

acked=0 lost=0 dup=0 failed=0 worst=0
for k in $(seq 1 "$N"); do
  log=$LOGS/run-$k.log
  if cargo test --quiet --test nats_station "$TEST" -- --exact --nocapture >"$log" 2>&1; then
    ok=yes
  else
    ok=no
    failed=$((failed + 1))
  fi
  check=$(grep -m1 '^cluster-check:' "$log" || true)
  failover=$(grep -m1 '^failover:' "$log" || true)
  get() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$check"; }
  a=$(get acked) l=$(get lost) d=$(get duplicated)
  acked=$((acked + ${a:-0}))
  lost=$((lost + ${l:-0}))
  dup=$((dup + ${d:-0}))
  secs=$(grep -o '[0-9.]* s (rx-[ab])' <<<"$failover" | awk '{ print $1 }' | sort -n | tail -1)
  [ -n "$secs" ] && worst=$(awk -v a="$worst" -v b="$secs" 'BEGIN { print (b > a) ? b : a }')
  printf 'run %3d/%d  %-3s  acked %6s  lost %3s  duplicated %3s  failover %6s s\n' \
    "$k" "$N" "$ok" "${a:-?}" "${l:-?}" "${d:-?}" "${secs:-?}"
  [ "$ok" = yes ] && rm -f "$log"
done

echo
echo "runs $N, failed $failed; frames ACKed $acked, lost $lost, duplicated $dup; worst failover ${worst} s"
[ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "$failed" = 0 ]
