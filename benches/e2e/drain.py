"""Waits until tocsin's sinks have delivered every record of a run; prints when each did.

    python3 drain.py HTTP_PORT DATA_DIR LOAD_END [--nats] [--timeout 120]

LOAD_END is the wall-clock time (`date +%s.%N`) at which the load generator exited: every
frame it sent has its reply, so the journal's durable LSN (`tocsin_journal_durable_lsn`,
read from the journal at each scrape) no longer moves. Times printed are seconds after
LOAD_END. Standard library only.

What counts as delivered, per sink, and why:

- file (the JSON-lines sink): its cursor file (`DATA_DIR/journal/cursors/file`) holds the
  durable LSN. The sink stores its cursor only right after flushing its output, so from
  then on the file holds every event up to that LSN. Its backlog gauge
  (`tocsin_forward_backlog_records{sink="file"}`) is not enough on its own: it is set when
  a record is read into the sink's write buffer, not when the buffer reaches the file, and
  only when a record is read (so it can show a stale 0). The moment the gauge first reads
  0 is printed beside, for comparison (`gauge_zero_s`).
- nats: its backlog gauge reads 0. That gauge is the durable LSN minus the last LSN whose
  events all have a PubAck, refreshed after every PubAck and every 250 ms.

The cursor file is read every 10 ms (no cost to tocsin); /metrics is scraped every 50 ms
while a scraped condition is still open (a scrape costs tocsin about 0.1 ms of CPU), and
once more at the end to check that the durable LSN did not move. Prints one JSON line: durable_lsn, file_s, gauge_zero_s,
nats_s, drained_s (the last of them), timed_out.
"""

import json
import os
import re
import sys
import time
import urllib.request

SCRAPE_EVERY = 0.05
CURSOR_EVERY = 0.01


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(tocsin_journal_durable_lsn|tocsin_forward_backlog_records\{sink=\"(\w+)\"\}) (\S+)$", line)
        if m:
            key = m.group(2) or "durable"
            out[key] = float(m.group(3))
    return out


def cursor(data_dir):
    try:
        with open(os.path.join(data_dir, "journal", "cursors", "file"), encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return -1


def main():
    args = sys.argv[1:]
    nats = "--nats" in args
    timeout = 120.0
    if "--timeout" in args:
        timeout = float(args[args.index("--timeout") + 1])
    port, data_dir, load_end = args[0], args[1], float(args[2])
    since = lambda: round(time.time() - load_end, 3)  # noqa: E731
    durable = scrape(port).get("durable", 0)
    file_s = gauge_zero_s = nats_s = None
    last_scrape = time.monotonic()
    deadline = last_scrape + timeout
    while time.monotonic() < deadline:
        if file_s is None and cursor(data_dir) >= durable:
            file_s = since()
        if time.monotonic() - last_scrape >= SCRAPE_EVERY and (gauge_zero_s is None or (nats and nats_s is None)):
            m = scrape(port)
            last_scrape = time.monotonic()
            if gauge_zero_s is None and m.get("file") == 0:
                gauge_zero_s = since()
            if nats and nats_s is None and m.get("nats") == 0:
                nats_s = since()
        if file_s is not None and (nats_s is not None or not nats):
            # Done, unless something was journaled after the first reading: then the
            # checks start again from the new durable LSN.
            m = scrape(port)
            if m.get("durable", durable) == durable:
                if gauge_zero_s is None and m.get("file") == 0:
                    gauge_zero_s = since()
                break
            durable = m["durable"]
            file_s = gauge_zero_s = nats_s = None
        time.sleep(CURSOR_EVERY)
    done = [t for t in (file_s, nats_s if nats else 0.0) if t is not None]
    finished = file_s is not None and (nats_s is not None or not nats)
    print(
        json.dumps(
            {
                "durable_lsn": int(durable),
                "file_s": file_s,
                "gauge_zero_s": gauge_zero_s,
                "nats_s": nats_s,
                "drained_s": max(done) if finished else None,
                "timed_out": not finished,
            }
        )
    )


if __name__ == "__main__":
    main()
