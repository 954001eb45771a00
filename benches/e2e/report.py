"""Writes the results of benches/e2e/run.sh or idle.sh as a section of BENCHMARKS.md.

    python3 report.py e2e RESULTS_DIR OUT [SECTION]
    python3 report.py idle RESULT_JSON OUT

Each script owns one section of OUT, between `<!-- NAME:begin -->` and `<!-- NAME:end -->`;
the other sections and any text around them are kept. Standard library only.
"""

import json
import os
import re
import sys

RECEIVERS = [
    ("ceiling", "ceiling"),
    ("floor", "durable floor"),
    ("sink", "tocsin (JSON-lines sink)"),
    ("tocsin", "tocsin (no sink)"),
    ("pysia", "pysiaalarm"),
]
HEADER = (
    "# Benchmarks\n\n"
    "Figures from the scripts in `benches/`, each of which says at its top how to run it and\n"
    "what it does. Numbers come from a shared 2-core machine: compare within one run, not\n"
    "across runs.\n"
)
SECTIONS = ["e2e", "e2e-bus", "e2e-interval", "idle"]

# The bars, at 1000 and 10 000 panels (ratios within one run).
FRAMES_VS_FLOOR = 0.85
CPU_VS_FLOOR = 1.3
DRAIN_S = 1.0
DELIVERY_P99_S = 1.0


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def rate(v):
    if v is None:
        return "–"
    if v >= 1_000_000:
        return f"{v / 1e6:.1f} M"
    if v >= 1000:
        return f"{v / 1000:.1f} k"
    return f"{v:.0f}"


def lat(us):
    """A latency in µs, in the unit that reads best."""
    if us is None:
        return "–"
    if us < 1000:
        return f"{us} µs"
    if us < 10_000:
        return f"{us / 1000:.1f} ms"
    if us < 1_000_000:
        return f"{us / 1000:.0f} ms"
    return f"{us / 1e6:.1f} s"


def pct(x):
    return "–" if x is None else f"{x * 100:.0f} %"


def times(x):
    return "–" if x is None else f"{x:.1f}×"


def ratio(a, b):
    if a is None or not b:
        return None
    return a / b


def replace_section(out, name, body):
    text = HEADER
    if os.path.exists(out):
        with open(out, encoding="utf-8") as f:
            text = f.read()
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.rstrip()}\n{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        # Keep the sections in a fixed order whichever script runs first.
        later = [s for s in SECTIONS[SECTIONS.index(name) + 1 :] if f"<!-- {s}:begin -->" in text]
        if later:
            at = text.index(f"<!-- {later[0]}:begin -->")
            text = text[:at] + block + "\n\n" + text[at:]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


def read_number(path):
    try:
        with open(path, encoding="utf-8") as f:
            return float(f.read().strip())
    except (OSError, ValueError):
        return None


def frames(r):
    return r.get("frames_per_s")


def latency(r, q):
    return (r.get("latency_us") or {}).get(q)


def parse_metrics(path):
    """Prometheus text as a list of (name, labels dict, value); empty when missing."""
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip() or line.startswith("#"):
                    continue
                head, _, value = line.rstrip("\n").rpartition(" ")
                name, _, rest = head.partition("{")
                labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
                try:
                    out.append((name, labels, float(value)))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def metric_sum(samples, name, **want):
    """Sum of the samples of `name` whose labels include `want`; None when there is none."""
    vals = [v for n, l, v in samples if n == name and all(l.get(k) == x for k, x in want.items())]
    return sum(vals) if vals else None


def hist_p(before, after, name, q, **want):
    """Upper bucket bound (s) under which a fraction q of the samples taken between two
    scrapes fall, and the number of samples; (None, 0) without samples. inf: past the
    last bound."""
    def buckets(samples):
        out = {}
        for n, l, v in samples:
            if n == name + "_bucket" and all(l.get(k) == x for k, x in want.items()):
                le = float("inf") if l.get("le") == "+Inf" else float(l.get("le", "nan"))
                out[le] = out.get(le, 0.0) + v
        return out

    b, a = buckets(before), buckets(after)
    if not a:
        return None, 0
    count = a.get(float("inf"), 0) - b.get(float("inf"), 0)
    if count <= 0:
        return None, 0
    for le in sorted(a):
        if a[le] - b.get(le, 0) >= q * count:
            return le, int(count)
    return float("inf"), int(count)


def bound(s):
    if s is None:
        return "–"
    if s == float("inf"):
        return "> 10 s"
    return "≤ " + lat(round(s * 1e6))


def secs(s):
    return "–" if s is None else f"{s:.2f} s"


def verdict(value, goal, at_most):
    if value is None:
        return "–"
    ok = value <= goal if at_most else value >= goal
    return "met" if ok else "**not met**"


def e2e(results, out, section="e2e"):
    meta = load_json(os.path.join(results, "meta.json"))
    fs_before = load_json(os.path.join(results, "fsync-before.json"))
    fs_after = load_json(os.path.join(results, "fsync-after.json"))
    conns = [int(n) for n in meta.get("conns", "").split()]
    present = meta.get("receivers", " ".join(k for k, _ in RECEIVERS)).split()
    bus = meta.get("bus") == "1"
    receivers = [
        (k, "tocsin (sinks: JSON lines, NATS)" if k == "sink" and bus else name)
        for k, name in RECEIVERS
        if k in present
    ]

    res = {(rx, n): load_json(os.path.join(results, f"{rx}-{n}.json")) for rx, _ in receivers for n in conns}

    def answered(rx, n):
        r = res.get((rx, n)) or {}
        return sum(r.get(k) or 0 for k in ("ack", "nak", "duh"))

    def cpu_per_frame(rx, n, suffix="cpu-ms"):
        """µs of server CPU per answered frame."""
        ms = read_number(os.path.join(results, f"{rx}-{n}.{suffix}"))
        a = answered(rx, n)
        return None if ms is None or not a else ms * 1000 / a

    def fr(rx, n):
        return frames(res.get((rx, n)) or {})

    def drain(n):
        return load_json(os.path.join(results, f"sink-{n}.drain.json"))

    def sink_metrics(rx, n):
        return (
            parse_metrics(os.path.join(results, f"{rx}-{n}.metrics-before")),
            parse_metrics(os.path.join(results, f"{rx}-{n}.metrics-after")),
        )

    def delivery_p(n, sink, q):
        b, a = sink_metrics("sink", n)
        return hist_p(b, a, "tocsin_sink_delivery_seconds", q, sink=sink)

    def delivery_p99(n, sink):
        return delivery_p(n, sink, 0.99)

    def delivery_text(n, sink):
        p50, _ = delivery_p(n, sink, 0.5)
        p99, count = delivery_p99(n, sink)
        return f"{bound(p50)} / {bound(p99)} ({count} records)"

    lines = []
    w = lines.append
    interval = meta.get("commit_interval", "0s")
    title = "## Receivers compared: ceiling, durable floor, tocsin with and without its sink, pysiaalarm"
    if section == "e2e-bus":
        title += " (with `--bus`: the sink also publishes to a local JetStream)"
    elif section != "e2e":
        title += f" (`[journal] commit_interval = \"{interval}\"`)"
    w(title)
    w("")
    w(f"Command: `{meta.get('command', '').strip()}`  ")
    w(f"Date: {meta.get('date')} (sweep {meta.get('elapsed')} s), tocsin commit {meta.get('commit')}  ")
    w(
        f"Machine: {meta.get('cores')} cores, {meta.get('cpu')}, {meta.get('mem')} GiB, "
        f"{meta.get('kernel')}, {meta.get('rustc')}; load average {meta.get('loadavg')} "
        f"(the machine is shared with other builds and tests)  "
    )
    w(
        f"Disk: journals, the floor's file, the events file{' and the NATS store' if bus else ''} "
        f"under `{meta.get('work_dir')}` on {meta.get('journal_dev')} "
        f"({meta.get('journal_fs')}; disk {meta.get('disk') or '?'})  "
    )
    w(
        f"Settings: each point {meta.get('duration')} measured after a {meta.get('warmup')} "
        f"warm-up run, mix `{meta.get('mix')}`, accounts 100000…{100000 + int(meta.get('accounts') or 1) - 1}, "
        f"frames carry `R1`, sources {meta.get('sources')}, 10 s reply timeout, open-file limit "
        f"{meta.get('nofile')}; pysiaalarm {meta.get('pysia')} on Python {meta.get('python')}; "
        f"tocsin's `[journal] commit_interval` {interval}; "
        + (f"tocsin's sink also publishes to a local {meta.get('nats')} (JetStream)" if bus else "no bus")
    )
    w("")
    for label, f in (("before", fs_before), ("after", fs_after)):
        l = f.get("latency_us") or {}
        if l:
            w(
                f"- fdatasync of 200-byte appends on the same disk ({label} the sweep, "
                f"`tocsin fsync-probe`, {f.get('count')} samples): mean {l.get('mean')} µs, "
                f"p50 {l.get('p50')} µs, p99 {l.get('p99')} µs, max {l.get('max')} µs"
            )
    w("")

    w("| conns | receiver | frames/s | ÷ floor | ACK p50 / p99 | server CPU per frame | ÷ floor |")
    w("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for n in conns:
        floor_fr, floor_cpu = fr("floor", n), cpu_per_frame("floor", n)
        for rx, name in receivers:
            r = res.get((rx, n)) or {}
            cpu = cpu_per_frame(rx, n)
            cpu_text = "–" if cpu is None else f"{cpu:.1f} µs"
            if rx == "sink":
                drained = cpu_per_frame(rx, n, "cpu-drained-ms")
                if drain(n).get("timed_out") or drained is None:
                    cpu_text = f"not drained ({cpu_text} during the load)"
                    cpu = None
                else:
                    cpu_text = f"{drained:.1f} µs until drained ({cpu_text} during the load)"
                    cpu = drained
            same = rx == "floor"
            w(
                f"| {n} | {name} | {rate(frames(r))} "
                f"| {'' if same else pct(ratio(frames(r), floor_fr))} "
                f"| {lat(latency(r, 'p50'))} / {lat(latency(r, 'p99'))} | {cpu_text} "
                f"| {'' if same else times(ratio(cpu, floor_cpu))} |"
            )
    w("")
    w("Frames/s count answered frames (ACK, NAK or DUH) over the measured run; ACK latencies")
    w("are the time a panel waits for its reply, the first second of each run left out. Server")
    w("CPU is user + system time of the whole process (every thread) from /proc/PID/stat over")
    w("the measured run, connection set-up included, divided by the answered frames; for tocsin")
    w("with its sink, counted until the sink had written every event of the run (below).")
    w("")

    if any(rx == "sink" for rx, _ in receivers):
        head = "| conns | drained after | file sink's backlog gauge at 0 after | delivery p50 / p99, file"
        if bus:
            head += " | NATS sink drained after | delivery p50 / p99, NATS (to PubAck) | nats-server CPU per frame"
        w(head + " |")
        w("| ---: " * (7 if bus else 4) + "|")
        for n in conns:
            d = drain(n)
            row = (
                f"| {n} | {secs(d.get('drained_s')) if not d.get('timed_out') else 'not within ' + meta.get('drain_timeout', 'the timeout')} "
                f"| {secs(d.get('gauge_zero_s'))} | {delivery_text(n, 'file')}"
            )
            if bus:
                nats_cpu = cpu_per_frame("sink", n, "nats-cpu-ms")
                row += (
                    f" | {secs(d.get('nats_s'))} | {delivery_text(n, 'nats')} "
                    f"| {'–' if nats_cpu is None else f'{nats_cpu:.1f} µs'}"
                )
            w(row + " |")
        w("")
        w("Drained: after the load stopped, the file sink's cursor reached the journal's durable")
        w("LSN (it is stored right after a flush, so the file then holds every event)" + (
            ", and the NATS sink's backlog gauge (durable LSN − last LSN with every PubAck) read 0"
            if bus else ""))
        w("(`benches/e2e/drain.py`, polling every 10–50 ms). The gauge of the file sink is set when a")
        w("record enters its write buffer, so it reaches 0 before the file holds everything.")
        w("Delivery: `tocsin_sink_delivery_seconds`, arrival to the flush that put the record's lines")
        w("in the file (an upper bound: lines the buffer passed on earlier count from that flush)")
        w("or to the record's last PubAck; percentiles as bucket bounds, over the run and its drain.")
        if meta.get("events_written"):
            w(f"Events in the file at the end of the sweep (warm-ups included): {meta['events_written']}.")
        w("")

    tocsins = [(rx, name) for rx, name in receivers if rx in ("sink", "tocsin")]
    if tocsins:
        w("tocsin's journal over each measured run (from its metrics): fdatasync calls per second,")
        w("their mean latency, records made durable per fdatasync (group commit).")
        w("")
        w("| conns | receiver | fsyncs/s | mean fsync | records per fsync |")
        w("| ---: | --- | ---: | ---: | ---: |")
        for n in conns:
            for rx, name in tocsins:
                b, a = sink_metrics(rx, n)

                def delta(metric):
                    x, y = metric_sum(b, metric), metric_sum(a, metric)
                    return None if x is None or y is None else y - x

                syncs = delta("tocsin_journal_fsync_seconds_count")
                sync_s = delta("tocsin_journal_fsync_seconds_sum")
                recs = delta("tocsin_journal_batch_records_sum")
                batches = delta("tocsin_journal_batch_records_count")
                secs_run = (res.get((rx, n)) or {}).get("duration_s")
                w(
                    f"| {n} | {name} | {rate(syncs / secs_run) if syncs and secs_run else '–'} "
                    f"| {lat(round(sync_s / syncs * 1e6)) if syncs else '–'} "
                    f"| {f'{recs / batches:.1f}' if batches else '–'} |"
                )
        w("")

    w("Bars (at 1000 and 10 000 panels; ratios within this run):")
    w("")
    w("| bar | conns | measured | goal | verdict |")
    w("| --- | ---: | ---: | ---: | :---: |")
    for n in conns:
        v = ratio(fr("sink", n), fr("floor", n))
        w(f"| tocsin (sink) frames/s ÷ floor frames/s | {n} | {pct(v)} | ≥ {pct(FRAMES_VS_FLOOR)} | {verdict(v, FRAMES_VS_FLOOR, False)} |")
    for n in conns:
        if drain(n).get("timed_out"):
            w(f"| tocsin (sink, until drained) CPU per frame ÷ floor's | {n} | not drained | ≤ {CPU_VS_FLOOR}× | **not met** |")
            continue
        v = ratio(cpu_per_frame("sink", n, "cpu-drained-ms"), cpu_per_frame("floor", n))
        w(f"| tocsin (sink, until drained) CPU per frame ÷ floor's | {n} | {times(v) if v is None else f'{v:.2f}×'} | ≤ {CPU_VS_FLOOR}× | {verdict(v, CPU_VS_FLOOR, True)} |")
    for n in conns:
        d = drain(n)
        v = None if d.get("timed_out") else d.get("drained_s")
        shown = secs(v) if d and not d.get("timed_out") else ("not drained" if d else "–")
        met = verdict(v, DRAIN_S, True) if d and not d.get("timed_out") else ("**not met**" if d else "–")
        w(f"| sinks drained after the load stopped | {n} | {shown} | ≤ {DRAIN_S:.0f} s | {met} |")
    for sink in ("file", "nats") if bus else ("file",):
        for n in conns:
            v, c = delivery_p99(n, sink)
            w(f"| delivery latency p99, {sink} sink | {n} | {bound(v)} | ≤ {DELIVERY_P99_S:.0f} s | {verdict(v, DELIVERY_P99_S, True) if c else '–'} |")
    for n in conns:
        r = res.get(("sink", n)) or {}
        bad = sum(r.get(k) or 0 for k in ("nak", "duh", "timeouts", "errors")) if r else None
        w(f"| every reply an ACK, tocsin (sink) | {n} | {'–' if bad is None else f'{bad} not ACK'} | 0 | {'–' if bad is None else ('met' if bad == 0 and r.get('ack') else '**not met**')} |")
    w("")

    w("Replies (measured runs): every reply is checked by `tocsin load`; `errors` are wrong or")
    w("unparsable replies, closed connections and failed connects.")
    w("")
    w("| receiver | conns | sent | ACK | NAK | DUH | timeouts | errors | reconnects | connect time |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    notes = []
    for rx, name in receivers:
        for n in conns:
            r = res.get((rx, n)) or {}
            if not r:
                w(f"| {name} | {n} | no summary | | | | | | | |")
                continue
            w(
                f"| {name} | {n} | {r.get('sent')} | {r.get('ack')} | {r.get('nak')} | {r.get('duh')} "
                f"| {r.get('timeouts')} | {r.get('errors')} | {r.get('reconnects')} | {r.get('connect_s')} s |"
            )
            kinds = {k: v for k, v in (r.get("error_kinds") or {}).items() if v}
            if kinds:
                notes.append(f"- {name} at {n}: errors {kinds}")
            if r.get("first_connect_error"):
                notes.append(f"- {name} at {n}: first connect error: {r['first_connect_error']}")
    w("")
    for line in notes:
        w(line)
    counters = ""
    try:
        with open(os.path.join(results, "pysia-counters.txt"), encoding="utf-8") as f:
            counters = f.read().strip()
    except OSError:
        pass
    if counters:
        w(f"- {counters} (whole run, warm-ups included)")
    if meta.get("hwm"):
        w(f"- peak resident memory over the sweep: {meta['hwm']}")
    w("")
    w("Runs of an earlier form of this comparison (no floor, no sink): \"Previous runs\" below.")
    replace_section(out, section, "\n".join(lines))


def idle(result, out):
    r = load_json(result)
    lines = []
    w = lines.append
    w("## Idle panels: resident memory per connection")
    w("")
    w(f"Command: `{r.get('command', '').strip()}`  ")
    w(f"Date: {r.get('date')}, tocsin commit {r.get('commit')}  ")
    w(f"Machine: {r.get('cores')} cores, {r.get('cpu')}, {r.get('kernel')}")
    w("")
    w(
        f"{r.get('conns')} TCP panels (`tocsin load --conns {r.get('conns')} --mix null "
        f"--rate {r.get('rate')}`, i.e. each panel sends one NULL every {r.get('interval_s')} s, "
        f"from {r.get('sources')}) against `tocsin run` (journal on disk, defaults otherwise). "
        f"`VmRSS` of the daemon from `/proc/PID/status` (user-space memory: the kernel's socket "
        f"buffers are not in it):"
    )
    w("")
    w("| moment | connections open at tocsin | VmRSS | per panel over the baseline |")
    w("| --- | ---: | ---: | ---: |")
    conns = int(r.get("conns") or 1)
    base = r.get("rss_before_kib")
    for label, fds, key in (
        ("before (daemon started, no panel)", r.get("open_before"), "rss_before_kib"),
        ("all panels connected, before most first NULLs", r.get("open_up"), "rss_up_kib"),
        ("every panel has sent its first NULL and had its ACK", r.get("open_after"), "rss_after_kib"),
    ):
        v = r.get(key)
        per = "–" if key == "rss_before_kib" or v is None or base is None else f"{(v - base) / conns:.2f} KiB"
        w(f"| {label} | {fds} | {v / 1024:.1f} MiB | {per} |" if v is not None else f"| {label} | {fds} | – | – |")
    w("")
    w(
        f"Frames tocsin had answered when memory was read: {r.get('frames_up')} once all were "
        f"connected, {r.get('frames_after')} at the last reading (one NULL per panel needs {conns})."
    )
    w("")
    per = r.get("per_panel_kib")
    if per is not None:
        verdict = "met" if per <= 10 else "**not met**"
        w(
            f"Result: (after − before) ÷ {conns} = **{per:.2f} KiB per idle panel**; "
            f"100 000 panels ≈ {per * 100000 / 1024:.0f} MiB. Bar ≤ 10 KiB: {verdict}."
        )
    w("")
    w(
        f"Load summary: {r.get('ack')} ACK, {r.get('nak')} NAK, {r.get('timeouts')} timeouts, "
        f"{r.get('errors')} errors over the whole run of {r.get('duration_s')} s (two or three NULLs per "
        f"panel); connecting took {r.get('connect_s')} s."
    )
    replace_section(out, "idle", "\n".join(lines))


def main():
    if len(sys.argv) not in (4, 5) or sys.argv[1] not in ("e2e", "idle"):
        sys.exit(__doc__)
    if sys.argv[1] == "e2e":
        section = sys.argv[4] if len(sys.argv) == 5 else "e2e"
        if section not in SECTIONS:
            sys.exit(f"unknown section {section}: one of {SECTIONS}")
        e2e(sys.argv[2], sys.argv[3], section)
    else:
        idle(sys.argv[2], sys.argv[3])


if __name__ == "__main__":
    main()
