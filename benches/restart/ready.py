#!/usr/bin/env python3
"""Starts `tocsin run ...` and prints how long it took to be ready: its TCP port accepting
a connection and GET /readyz answering 200. Leaves the daemon running and prints its PID.

    ready.py --port 19700 --http 19701 --log FILE -- BIN run --listen ... --http ... ...

Output, one line: `<seconds> <pid>`. Exit 1 if the daemon exits or is not ready within
--timeout seconds.
"""
import argparse
import http.client
import socket
import subprocess
import sys
import time


def ready(port: int, http_port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            pass
        c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=0.5)
        c.request("GET", "/readyz")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    log = open(a.log, "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    while True:
        if proc.poll() is not None:
            print(f"daemon exited with {proc.returncode} before ready", file=sys.stderr)
            return 1
        if ready(a.port, a.http):
            print(f"{time.monotonic() - t0:.3f} {proc.pid}")
            return 0
        if time.monotonic() - t0 > a.timeout:
            proc.kill()
            print("not ready in time", file=sys.stderr)
            return 1
        time.sleep(0.005)


if __name__ == "__main__":
    sys.exit(main())
