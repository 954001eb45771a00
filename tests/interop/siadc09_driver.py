"""Drives siadc09 (public-domain "Python SIA DC-09-2026 Primitives", PyPI) against a
receiver: builds frames of every kind with it, sends them, and reads every reply back
with it. Prints JSON.

usage:
  siadc09_driver.py accounts                          the accounts the frames come from
  siadc09_driver.py codes                             siadc09's SIA and Contact ID codes
  siadc09_driver.py run HOST PORT tcp|udp SEQBASE     send every case, report each

What a frame means is taken from siadc09 itself: its DC-03 and DC-05 parsers read the
data block handed to the frame (the events, codes, zones, modifiers and texts), and its
extended-data objects give each block's value as it packs it. The receiver's events are
then compared with that meaning by the test (tests/e2e_interop.rs).
"""
import json
import socket
import sys
import time
from datetime import timedelta

from Cryptodome.Cipher import AES
from siadc09 import account, admcid, dc03, dc05, message, siadcs, util, xdata

# Account, prefix (L), receiver (R), key, reply dialect configured for it at the receiver.
# Together: accounts of 3 to 16 digits, R and L of up to 6, clear and AES-128/192/256.
ACCOUNTS = [
    dict(acct=0x123, pref=None, rcvr=None, key=None, dialect="2013", supervised=True),
    dict(acct=0x1234ABCD, pref=0x123456, rcvr=0xABCDEF,
         key="2b7e151628aed2a6abf7158809cf4f3c", dialect="2026", supervised=True),
    dict(acct=0xF123456789ABCDEF, pref=0x7, rcvr=None,
         key="8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", dialect="2026",
         supervised=False),
    dict(acct=0x5A5A, pref=0x1, rcvr=0x2,
         key="603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
         dialect="2013", supervised=False),
    dict(acct=0x77AA01, pref=0xFFFFFF, rcvr=0x1, key=None, dialect="2026", supervised=True),
]

# Keys sent in [K…] blocks: none of them may ever be seen again.
SENT_KEYS = [
    "00112233445566778899aabbccddeeff",
    "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978",
]


def acct_text(a):
    return "%03X" % a["acct"]


def ctx(a):
    return account.Account(acct=a["acct"], pref=a["pref"], rcvr=a["rcvr"], key=a["key"])


def x(raw):
    """An extended block as siadc09 reads it (its parser picks type and encoding)."""
    return xdata.parse_xdata(raw)


def every_letter(a):
    """One block of each letter DC-09-2026 defines."""
    return [
        x(b"A6f2348c99335df38"),
        x(b"CDP4"),
        x(b"G2"),
        x(b"H13:59:58,12-31-2025"),
        x("IPorte d'entrée ouverte".encode("utf-8")),
        x(b'J{"photo": ["https://v.example/1.jpg", "x]y"], "n": 2}'),
        x(b"K" + SENT_KEYS[0].encode()),
        x("LKüche".encode("utf-8")),
        x(b"M0026b9e4268b"),
        x(b"N1133557799bbddff"),
        x("OBâtiment B".encode("utf-8")),
        x(b"P\x8010"),
        x("RSalle 2".encode("utf-8")),
        x("SSite Nord – entrepôt".encode("utf-8")),
        x(b"TS"),
        x(b"Vhttps://verify.example/34AC4DE3446"),
        x(b"X093W23.456"),
        x(b"Y45N23.456"),
        x(b"Z123.2M"),
    ]


def cases(a):
    """(name, token, data bytes or None, xdata, timestamp) for one account."""
    acct = acct_text(a).encode()
    now = util.now()
    hall = x(b"LHall|Door")
    return [
        ("null", "NULL", None, [], now if a["key"] else None),
        ("xnm", "XNM", None,
         [x(b"G1"), x(b"CDP2"), x(b"N00aabbccddee"), hall, x(b"K" + SENT_KEYS[1].encode())], now),
        ("xnm json", "XNM", None, [x(b'J{"status": "ok", "paths": [1, 2]}')], now),
        ("sia single", "SIA-DCS", b"#" + acct + b"|Nri1/BA01", [], now),
        ("sia multi", "SIA-DCS",
         b"#" + acct + b"|Nri2/id12/ti10:15/BA04^Kitchen door^/FA05/ri3/PA06^Panic^",
         [x("LKüche".encode("utf-8"))], now),
        ("cid new", "ADM-CID", b"#" + acct + b"|1130 01 015", [], now),
        ("cid restore", "ADM-CID", b"#" + acct + b"|3401 02 007", [x(b"G3")], now),
        ("cid status", "ADM-CID", b"#" + acct + b"|6602 00 000", [], now),
        ("every letter", "SIA-DCS", b"#" + acct + b"|Nri1/BA02", every_letter(a), now),
    ]


def extra_cases():
    """Cases sent once per run, from chosen accounts: (account, name, token, data, xdata,
    timestamp, expected reply)."""
    now = util.now()
    stale = now - timedelta(minutes=10)
    w1252 = xdata.XData(prefix="L", value="Küche", label="Location", encoding="cp1252")
    return [
        (ACCOUNTS[0], "cid json array", "ADM-CID", b"#123|1602 00 000",
         [x(b"J[1, [2, 3], {\"a\": \"]\"}]")], now, "ACK"),
        (ACCOUNTS[0], "windows-1252 text", "SIA-DCS", b"#123|Nri1/BA03", [w1252], now, "ACK"),
        (ACCOUNTS[1], "stale 2026", "SIA-DCS", b"#1234ABCD|Nri1/BA05", [], stale, "NAK"),
        (ACCOUNTS[3], "stale 2013", "SIA-DCS", b"#5A5A|Nri1/BA05", [], stale, "NAK"),
        (ACCOUNTS[0], "rsp", "RSP", b"#123|NRP", [x(b"K" + SENT_KEYS[0].encode())], now, None),
    ]


# --- what siadc09 means -------------------------------------------------------------------

def value_text(xd):
    """The block's value as siadc09 packs it, as text."""
    return xd.packvalue() if xd._encoding is not None else ""


def ext_meaning(xds):
    out = []
    for xd in xds:
        if xd.prefix == "K":
            out.append({"letter": "K", "text": None})
        elif xd.prefix == "J":
            out.append({"letter": "J", "json": xd.value, "text": value_text(xd)})
        else:
            out.append({"letter": xd.prefix, "text": value_text(xd)})
    return out


def text_encoding(xds):
    """How the frame's text was written, where it is not ASCII (P excluded: it is
    Windows-1252 by definition)."""
    found = None
    for xd in xds:
        if xd.prefix == "P" or xd._encoding is None:
            continue
        if not xd.pack().isascii():
            if xd._encoding == "cp1252":
                return "windows-1252"
            found = "utf-8"
    return found


def data_meaning(token, data):
    """Events of the data block as siadc09's DC-03 / DC-05 parsers read it."""
    if data is None:
        return []
    if token == "ADM-CID":
        cid = admcid.parse_admcid(data)
        e = cid.event
        return [{"code": e.code, "qualifier": e.qualifier, "group": e.group, "addr": e.addr,
                 "addr_kind": (dc05.EVENT.get(e.code, {}).get("addr") or "none").lower()}]
    if token in ("SIA-DCS", "RSP"):
        group = siadcs.parse_siadcs(data)
        events = []
        for block in group.blocks:
            for ev in getattr(block, "events", []):
                mods = {k: (str(m.value) if m is not None else None) for k, m in ev.modifiers.items()}
                events.append({
                    "code": ev.code,
                    "addr": ev.addr,
                    "addr_kind": (dc03.EVENT.get(ev.code, {}).get("addr") or "none").lower(),
                    "descr": ev.descr,
                    "area": mods.get("ri"),
                    "user": mods.get("id"),
                    "time": mods.get("ti"),
                })
        return events
    return []


# --- the wire -------------------------------------------------------------------------------

def escape(b):
    out = []
    for c in b:
        if c == 0x0A:
            out.append("\\n")
        elif c == 0x0D:
            out.append("\\r")
        elif c == 0x5C:
            out.append("\\\\")
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        else:
            out.append("\\x%02X" % c)
    return "".join(out)


class Link:
    def __init__(self, host, port, transport):
        self.transport = transport
        self.addr = (host, port)
        if transport == "tcp":
            self.sock = socket.create_connection(self.addr, timeout=20)
            self.buf = b""
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def exchange(self, frame, wait):
        self.sock.settimeout(wait)
        if self.transport == "udp":
            self.sock.sendto(frame, self.addr)
            try:
                return self.sock.recv(4096)
            except socket.timeout:
                return None
        self.sock.sendall(frame)
        deadline = time.time() + wait
        while b"\r" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(4096)
            except socket.timeout:
                return None
            if not chunk:
                return None
            self.buf += chunk
        end = self.buf.index(b"\r") + 1
        reply, self.buf = self.buf[:end], self.buf[end:]
        return reply


def ack_pad(reply, key):
    """Length of the pad of an encrypted ACK: up to the first | or ]."""
    start = reply.index(b"[") + 1
    plain = AES.new(bytes.fromhex(key), AES.MODE_CBC, iv=bytes(16)).decrypt(
        bytes.fromhex(reply[start:-1].decode()))
    return min(i for i in (plain.find(b"|"), plain.find(b"]")) if i >= 0)


def read_reply(a, seq, encrypted, reply):
    """The reply as siadc09 reads it."""
    out = {"reply": escape(reply) if reply else None, "reply_parsed": False}
    if not reply:
        return out
    try:
        keys = bytes.fromhex(a["key"]) if a["key"] else None
        m = message.parse_frame(reply, keys=keys)
    except Exception as e:  # siadc09 refused it
        out["reply_error"] = "%s: %s" % (type(e).__name__, e)
        return out
    kind = type(m).__name__
    out["reply_kind"] = {"AckMessage": "ACK", "NakMessage": "NAK", "DuhMessage": "DUH"}.get(kind, kind)
    out["reply_encrypted"] = bool(m.encrypted)
    out["reply_account"] = m.account.acct == a["acct"]
    if out["reply_kind"] == "ACK":
        out["reply_parsed"] = m.seq == seq and out["reply_account"]
        if m.encrypted:
            out["ack_pad"] = ack_pad(reply, a["key"])
    elif out["reply_kind"] == "NAK":
        out["reply_parsed"] = m.timestamp is not None
        if m.timestamp is not None:
            out["nak_skew"] = abs((m.timestamp - util.now()).total_seconds())
    return out


def build(a, token, data, xds, ts, seq):
    config = {"idtoken": token, "seqno": seq, "xdata": xds, "timestamp": ts}
    if data is not None:
        parse = admcid.parse_admcid if token == "ADM-CID" else siadcs.parse_siadcs
        config["data"] = parse(data)
    if token == "XNM":
        m = message.ExtendedNullMessage(ctx(a), timestamp=ts, xdata=xds, seqno=seq)
    elif token == "NULL":
        m = message.NullMessage(ctx(a), timestamp=ts, seqno=seq)
    elif token == "RSP":
        m = message.RspMessage(ctx(a), config=config)
    else:
        m = message.EventMessage(ctx(a), config=config)
    return m.encode()


def run(host, port, transport, seqbase):
    link = Link(host, int(port), transport)
    seq = int(seqbase)
    todo = []
    for a in ACCOUNTS:
        for name, token, data, xds, ts in cases(a):
            todo.append((a, name, token, data, xds, ts, "ACK"))
    todo.extend(extra_cases())
    report = []
    for a, name, token, data, xds, ts, expect in todo:
        seq += 1
        frame = build(a, token, data, xds, ts, seq)
        reply = link.exchange(frame, 10 if expect else 1.5)
        entry = {
            "name": name,
            "account": acct_text(a),
            "seq": "%04d" % seq,
            "token": token,
            "encrypted": a["key"] is not None,
            "dialect": a["dialect"],
            "supervised": a["supervised"],
            "frame": escape(frame),
            "expect_reply": expect,
            "events": data_meaning(token, data),
            "ext": ext_meaning(xds),
            "text_encoding": text_encoding(xds),
        }
        entry.update(read_reply(a, seq, a["key"] is not None, reply))
        report.append(entry)
    return report


def main():
    mode = sys.argv[1]
    if mode == "accounts":
        print(json.dumps([{
            "id": acct_text(a), "key": a["key"], "dialect": a["dialect"],
            "supervised": a["supervised"],
        } for a in ACCOUNTS]))
    elif mode == "codes":
        print(json.dumps({"sia": sorted(dc03.EVENT), "cid": sorted(dc05.EVENT)}))
    elif mode == "run":
        print(json.dumps({"keys": SENT_KEYS, "cases": run(*sys.argv[2:6])}))
    else:
        sys.exit("unknown mode " + mode)


main()
