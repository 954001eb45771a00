#!/usr/bin/env python3
"""Sends what a broken panel, a port scanner or an attacker sends to a receiver, until killed.

    garbage.py HOST PORT SEED

Each round picks one of the kinds below over TCP or UDP, waits briefly for whatever the
receiver answers (a NAK, a DUH, nothing, or a closed connection: all are fine), and counts
it. On SIGTERM it prints one JSON line with the counts per kind and exits.
"""

import json
import random
import signal
import socket
import sys

HOST, PORT, SEED = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(SEED)
counts = {}
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)


def crc16(data: bytes) -> int:
    # CRC-16/ARC, as DC-09 frames carry it.
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(body: bytes, crc_ok=True, len_ok=True) -> bytes:
    crc = crc16(body) ^ (0 if crc_ok else 0x5A5A)
    length = len(body) + (0 if len_ok else 3)
    return b"\n%04X%04X%s\r" % (crc, length, body)


def body(account: str) -> bytes:
    return b'"SIA-DCS"0001R1L0#%s[#%s|Nri1/BA01]' % (account.encode(), account.encode())


KINDS = {
    "random_bytes": lambda: bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 400))),
    "bad_crc": lambda: frame(body("123456"), crc_ok=False),
    "bad_length": lambda: frame(body("123456"), len_ok=False),
    "no_cr_64k": lambda: b"\n" + b"A" * 70000,
    "half_frame": lambda: frame(body("123456"))[: rng.randint(1, 30)],
    "bad_token": lambda: frame(b'"X\x00\xffDCS"0001R1L0#1234[]'),
    "huge_account": lambda: frame(body("F" * 200)),
    "binary_in_data": lambda: frame(b'"SIA-DCS"0001R1L0#1234[#1234|Nri1/BA' + bytes(range(256)) + b"]"),
    "encrypted_garbage": lambda: frame(b'"*SIA-DCS"0001R1L0#1234[' + bytes(rng.getrandbits(8) for _ in range(48)).hex().encode() + b"]"),
}


def tcp(data: bytes):
    with socket.create_connection((HOST, PORT), timeout=2) as s:
        s.sendall(data)
        s.settimeout(0.05)
        try:
            s.recv(4096)
        except OSError:
            pass


def udp(data: bytes):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.05)
        s.sendto(data[:65000], (HOST, PORT))
        try:
            s.recv(4096)
        except OSError:
            pass


while not stop:
    kind = rng.choice(list(KINDS))
    transport = rng.choice(("tcp", "udp"))
    try:
        (tcp if transport == "tcp" else udp)(KINDS[kind]())
        key = f"{transport}/{kind}"
    except OSError as e:
        key = f"{transport}/{kind}/error:{type(e).__name__}"
    counts[key] = counts.get(key, 0) + 1

print(json.dumps(counts, sort_keys=True))
