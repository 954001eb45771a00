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

RECEIVERS = [("ceiling", "ceiling"), ("tocsin", "tocsin"), ("pysia", "pysiaalarm")]
HEADER = (
    "# Benchmarks\n\n"
    "Written by `benches/e2e/run.sh` (receivers compared under one load generator) and\n"
    "`benches/e2e/idle.sh` (memory of idle panels); each script rewrites its own section.\n"
    "Numbers come from a shared 2-core machine: compare within one run, not across runs.\n"
)
SECTIONS = ["e2e", "e2e-interval", "idle"]


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


def read_metrics(path):
    """`name value` lines as a dict; empty when the file is missing."""
    out = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2:
                    out[parts[0]] = float(parts[1])
    except OSError:
        pass
    return out


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


def e2e(results, out, section="e2e"):
    meta = load_json(os.path.join(results, "meta.json"))
    fs_before = load_json(os.path.join(results, "fsync-before.json"))
    fs_after = load_json(os.path.join(results, "fsync-after.json"))
    conns = [int(n) for n in meta.get("conns", "").split()]
    mix = meta.get("mix", "").split(",")
    journaled = sum(1 for k in mix if k != "null") / max(len(mix), 1)

    def fsync_mean(n):
        """Mean fdatasync latency (µs) of the probes around tocsin's run at n connections."""
        probes = [load_json(os.path.join(results, f"fsync-{n}-{w}.json")) for w in ("before", "after")]
        means = [p["latency_us"]["mean"] for p in probes if p.get("latency_us")]
        return sum(means) / len(means) if means else None

    res = {
        (rx, n): load_json(os.path.join(results, f"{rx}-{n}.json"))
        for rx, _ in RECEIVERS
        for n in conns
    }

    def bound(n):
        m = fsync_mean(n)
        if not m or journaled == 0:
            return None
        return n / (journaled * m * 1e-6)

    lines = []
    w = lines.append
    interval = meta.get("commit_interval", "0s")
    if section == "e2e":
        w("## Receivers compared: ceiling, tocsin, pysiaalarm")
    else:
        w(f"## Receivers compared, tocsin with `[journal] commit_interval = \"{interval}\"`")
    w("")
    w(f"Command: `{meta.get('command', '').strip()}`  ")
    w(f"Date: {meta.get('date')} (sweep {meta.get('elapsed')} s), tocsin commit {meta.get('commit')}  ")
    w(
        f"Machine: {meta.get('cores')} cores, {meta.get('cpu')}, {meta.get('mem')} GiB, "
        f"{meta.get('kernel')}, {meta.get('rustc')}; load average {meta.get('loadavg')} "
        f"(the machine is shared with other builds and tests)  "
    )
    w(
        f"Journal: `{meta.get('journal_dir')}` on {meta.get('journal_dev')} "
        f"({meta.get('journal_fs')}; disk {meta.get('disk') or '?'})  "
    )
    w(
        f"Settings: each point {meta.get('duration')} measured after a {meta.get('warmup')} "
        f"warm-up run, mix `{meta.get('mix')}`, accounts 100000…{100000 + int(meta.get('accounts', 1)) - 1}, "
        f"frames carry `R1`, sources {meta.get('sources')}, 10 s reply timeout, open-file limit "
        f"{meta.get('nofile')}; pysiaalarm {meta.get('pysia')} on Python {meta.get('python')}; "
        f"tocsin's `[journal] commit_interval` {interval}"
    )
    w("")
    for label, f in (("before", fs_before), ("after", fs_after)):
        l = f.get("latency_us") or {}
        if l:
            w(
                f"- fdatasync of 200-byte appends in the journal directory ({label} the sweep, "
                f"`tocsin fsync-probe`, {f.get('count')} samples): mean {l.get('mean')} µs, "
                f"p50 {l.get('p50')} µs, p99 {l.get('p99')} µs, max {l.get('max')} µs"
            )
    w(
        f"- disk bound = connections ÷ ({journaled:.2f} journaled per frame × mean fdatasync "
        f"latency of two 1000-sample probes taken just before and just after tocsin's run at "
        f"that point): group commit lets every waiting panel share one fsync, and a "
        f"closed-loop panel has one frame in flight"
    )
    w("")
    w(
        "| conns | ceiling frames/s | p50 / p99 | tocsin frames/s | p50 / p99 | "
        "pysiaalarm frames/s | p50 / p99 | tocsin ÷ ceiling | tocsin ÷ pysiaalarm | "
        "fsync mean (probe) | disk bound | tocsin ÷ disk bound | tocsin ÷ min(disk, ceiling) |"
    )
    w("| ---: " * 13 + "|")
    for n in conns:
        c, t, p = res[("ceiling", n)], res[("tocsin", n)], res[("pysia", n)]
        b = bound(n)
        eff = min(x for x in (b, frames(c)) if x) if (b or frames(c)) else None
        w(
            f"| {n} | {rate(frames(c))} | {lat(latency(c, 'p50'))} / {lat(latency(c, 'p99'))} "
            f"| {rate(frames(t))} | {lat(latency(t, 'p50'))} / {lat(latency(t, 'p99'))} "
            f"| {rate(frames(p))} | {lat(latency(p, 'p50'))} / {lat(latency(p, 'p99'))} "
            f"| {pct(ratio(frames(t), frames(c)))} | {times(ratio(frames(t), frames(p)))} "
            f"| {lat(round(fsync_mean(n))) if fsync_mean(n) else '–'} "
            f"| {rate(b)} | {pct(ratio(frames(t), b))} | {pct(ratio(frames(t), eff))} |"
        )
    w("")
    w("Frames/s count answered frames (ACK, NAK or DUH) over the measured run; latencies are")
    w("the time a panel waits for its reply, the first second of each run left out. A closed")
    w("loop cannot beat either bound, the disk's (durable ACKs) or the ceiling's (CPU and")
    w("loopback on these cores), so the last column is tocsin's share of the tighter one.")
    w("")

    w("Where the time goes (measured runs): CPU time of each receiver process (user + system,")
    w("from /proc/PID/stat, connection set-up included) per answered frame, and what tocsin's")
    w("journal did (from its metrics): fdatasync calls per second, their mean latency, and")
    w("records per fsync (group commit). The probes cannot run during tocsin's run without")
    w("disturbing it, and the shared disk changes pace within seconds, so the last two columns")
    w("give the disk bound again with the mean latency of tocsin's own fsyncs in the run: the")
    w("same disk at the same moment (with batches instead of 200-byte appends).")
    w("")
    w(
        "| conns | ceiling CPU/frame | tocsin CPU/frame | pysiaalarm CPU/frame | "
        "tocsin fsyncs/s | tocsin mean fsync | records per fsync | disk bound (tocsin's fsyncs) "
        "| tocsin ÷ it |"
    )
    w("| ---: " * 9 + "|")
    own_share = {}
    for n in conns:
        cells = []
        for rx, _ in RECEIVERS:
            r = res[(rx, n)]
            ms = read_number(os.path.join(results, f"{rx}-{n}.cpu-ms"))
            answered = sum(r.get(k) or 0 for k in ("ack", "nak", "duh"))
            cells.append("–" if ms is None or not answered else f"{ms * 1000 / answered:.1f} µs")
        before = read_metrics(os.path.join(results, f"tocsin-{n}.journal-before"))
        after = read_metrics(os.path.join(results, f"tocsin-{n}.journal-after"))

        def delta(name):
            if name in before and name in after:
                return after[name] - before[name]
            return None

        syncs = delta("tocsin_journal_fsync_seconds_count")
        sync_s = delta("tocsin_journal_fsync_seconds_sum")
        recs = delta("tocsin_journal_batch_records_sum")
        batches = delta("tocsin_journal_batch_records_count")
        secs = res[("tocsin", n)].get("duration_s")
        own_bound = n / (journaled * sync_s / syncs) if syncs and sync_s and journaled else None
        own_share[n] = ratio(frames(res[("tocsin", n)]), own_bound)
        w(
            f"| {n} | {' | '.join(cells)} "
            f"| {rate(syncs / secs) if syncs and secs else '–'} "
            f"| {lat(round(sync_s / syncs * 1e6)) if syncs else '–'} "
            f"| {f'{recs / batches:.1f}' if batches else '–'} "
            f"| {rate(own_bound)} | {pct(own_share[n])} |"
        )
    w("")

    w("Bars:")
    w("")
    w("| bar | conns | measured | met |")
    w("| --- | ---: | ---: | :---: |")

    def bar(text, n, value, fmt, goal):
        if n not in conns:
            return
        met = "–" if value is None else ("yes" if value >= goal else "**no**")
        w(f"| {text} | {n} | {fmt(value)} | {met} |")

    for n in (1000, 10000):
        bar("tocsin ≥ 70 % of the ceiling", n, ratio(frames(res[("tocsin", n)]), frames(res[("ceiling", n)])) if n in conns else None, pct, 0.70)
    for n in (1000, 10000):
        bar("tocsin ≥ 15× pysiaalarm", n, ratio(frames(res[("tocsin", n)]), frames(res[("pysia", n)])) if n in conns else None, times, 15.0)
    for n in (10, 100):
        bar("tocsin ≥ 80 % of the disk bound", n, ratio(frames(res[("tocsin", n)]), bound(n)) if n in conns else None, pct, 0.80)
    for n in (10, 100):
        bar("(same, bound from tocsin's own fsyncs in the run)", n, own_share.get(n), pct, 0.80)
    w("")

    w("Replies (measured runs): every reply is checked by `tocsin load`; `errors` are wrong or")
    w("unparsable replies, closed connections and failed connects.")
    w("")
    w("| receiver | conns | sent | ACK | NAK | DUH | timeouts | errors | reconnects | connect time |")
    w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    notes = []
    for rx, name in RECEIVERS:
        for n in conns:
            r = res[(rx, n)]
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
    if meta.get("tocsin_hwm_kib"):
        w(f"- tocsin's peak resident memory over the sweep: {int(meta['tocsin_hwm_kib']) // 1024} MiB")
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
