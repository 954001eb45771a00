#!/usr/bin/env python3
"""Checks an automation run of benches/automation-outage.sh: every event the receiver
journaled reached the automation, in order, none lost; and reception stayed clean.

Expected packets come from the receiver's own events (its stdout sink, in journal order):
each event's frame goes through `tocsin decode --surgard RR:LINE`, which prints the
packets an automation output sends for it. Delivered packets are those automation-sim
acknowledged (heartbeats aside), across all its runs. Read in order, each delivered packet
must be the next expected one or a copy of one already delivered (the at-least-once
resends after the automation vanished mid-packet), and every expected packet must come.

    automation_check.py --bin TOCSIN --events FILE --sim FILE... --load FILE...
                        [--surgard 01:1] [--rate R]

Prints a JSON summary on stdout; exits 1 if a check fails.
"""

import argparse
import json
import subprocess
import sys


def lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                yield json.loads(line)


def expected_packets(binary, events, surgard):
    raws = []
    for e in events:
        raw = e.get("raw") or ""
        # Events of one frame share its raw text: the frame is decoded once.
        if raw and (not raws or raws[-1] != raw):
            raws.append(raw)
    out = subprocess.run(
        [binary, "decode", "--no-time-check", "--surgard", surgard],
        input="\n".join(raws) + "\n",
        capture_output=True,
        text=True,
        check=False,
    )
    packets = []
    decoded = [json.loads(l) for l in out.stdout.splitlines() if l.strip()]
    if len(decoded) != len(raws):
        sys.exit(f"decode gave {len(decoded)} verdicts for {len(raws)} frames: {out.stderr}")
    for v in decoded:
        packets.extend(v.get("surgard", []))
    internal = sum(1 for e in events if not e.get("raw"))
    return packets, len(raws), internal


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--events", required=True)
    p.add_argument("--sim", nargs="+", required=True)
    p.add_argument("--load", nargs="*", default=[])
    p.add_argument("--surgard", default="01:1")
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--min-rate-fraction", type=float, default=0.9)
    args = p.parse_args()

    events = list(lines(args.events))
    expected, frames, internal = expected_packets(args.bin, events, args.surgard)
    delivered = []
    heartbeats = 0
    for path in args.sim:
        for l in lines(path):
            if l.get("answer") != "ack":
                continue
            if l.get("kind") == "heartbeat":
                heartbeats += 1
            else:
                delivered.append(l["raw"])

    # Each delivered packet is the next expected one, or a copy of one already delivered
    # (a resend after the automation vanished before its ACK); anything else came early.
    i = 0
    seen = set()
    early = []
    for packet in delivered:
        if i < len(expected) and packet == expected[i]:
            seen.add(packet)
            i += 1
        elif packet not in seen:
            early.append(packet)
    foreign = set(delivered) - set(expected)
    failures = []
    if early:
        failures.append(f"{len(early)} packets delivered before their turn, e.g. {early[:3]}")
    if internal:
        failures.append(f"{internal} events without a frame (not expected in this run)")
    if i != len(expected):
        failures.append(
            f"only the first {i} of {len(expected)} expected packets were delivered in order"
            f" (next missing: {expected[i]!r})"
        )
    if foreign:
        failures.append(f"{len(foreign)} delivered packets were never expected, e.g. {sorted(foreign)[:3]}")

    phases = []
    for path in args.load:
        with open(path, encoding="utf-8") as f:
            l = json.load(f)
        bad = l["nak"] + l["duh"] + l["timeouts"] + l["errors"]
        rate = l["ack"] / l["duration_s"] if l["duration_s"] else 0.0
        phases.append(
            {
                "file": path,
                "sent": l["sent"],
                "ack": l["ack"],
                "not_acked": bad,
                "ack_per_s": round(rate, 1),
                "latency_us": l["latency_us"],
            }
        )
        if bad or l["ack"] != l["sent"]:
            failures.append(f"{path}: {bad} frames not acknowledged of {l['sent']}")
        if args.rate and rate < args.min_rate_fraction * args.rate:
            failures.append(f"{path}: {rate:.1f} frames/s acknowledged, asked {args.rate}")

    summary = {
        "events": len(events),
        "frames": frames,
        "expected_packets": len(expected),
        "delivered_packets": len(delivered),
        "copies_beyond_first": len(delivered) - len(expected),
        "heartbeats": heartbeats,
        "in_order_and_complete": i == len(expected),
        "load_phases": phases,
        "failures": failures,
    }
    print(json.dumps(summary, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
