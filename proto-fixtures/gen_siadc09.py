#!/usr/bin/env python3
"""Generate proto-fixtures/siadc09.toml: DC-09-2026 frames built with siadc09 1.0.1 (PyPI,
public domain, "Python SIA DC-09-2026 Primitives"), with the decode and reply expected.

siadc09 draws its pads at random; this script hands it a fixed pad instead (bytes that are
never `|`, `[` or `]`, as its own pad table), so re-running reproduces the committed file
byte for byte. Framing, headers, extended blocks, encryption and hex are siadc09's own.
Needs Python >= 3.11 with siadc09 1.0.1 (which brings pycryptodomex):

    python3 -m pip install siadc09==1.0.1
    python3 proto-fixtures/gen_siadc09.py > proto-fixtures/siadc09.toml
"""
import datetime as dt
import json

from siadc09 import account, admcid, message, siadcs, util, xdata

ORIGIN = "siadc09 1.0.1 (PyPI, public domain) siadc09/message.py, built by proto-fixtures/gen_siadc09.py"
NOW = dt.datetime(2026, 3, 3, 10, 0, 0, tzinfo=dt.UTC)
K128 = "2b7e151628aed2a6abf7158809cf4f3c"
K192 = "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b"
K256 = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"
SENT_KEY = "00112233445566778899aabbccddeeff"


def fixed_pad(n):
    return bytearray((0x30 + i) for i in range(n))


util.genpad = fixed_pad
message.genpad = fixed_pad


def x(raw):
    return xdata.parse_xdata(raw)


def build(token, acct, data=None, xds=(), key=None, seq=1, pref=None, rcvr=None, ts=NOW):
    a = account.Account(acct=acct, pref=pref, rcvr=rcvr, key=key)
    config = {"idtoken": token, "seqno": seq, "xdata": list(xds), "timestamp": ts}
    if data is not None:
        config["data"] = (admcid.parse_admcid if token == "ADM-CID" else siadcs.parse_siadcs)(data)
    if token == "XNM":
        m = message.ExtendedNullMessage(a, timestamp=ts, xdata=list(xds), seqno=seq)
    elif token == "NULL":
        m = message.NullMessage(a, timestamp=ts, seqno=seq)
    elif token == "RSP":
        m = message.RspMessage(a, config=config)
    else:
        m = message.EventMessage(a, config=config)
    return m.encode()


def toml_str(b):
    """A TOML basic string of the frame bytes (they are UTF-8 here)."""
    return json.dumps(b.decode("utf-8"), ensure_ascii=False)


def esc(b):
    out = []
    for c in b:
        out.append({10: "\\\\n", 13: "\\\\r", 34: '\\"', 92: "\\\\\\\\"}.get(c) or (chr(c) if 32 <= c < 127 else "\\\\x%02X" % c))
    return "".join(out)


def ack(seq, acct, pref=None, rcvr=None):
    body = '"ACK"%04d' % seq
    if rcvr is not None:
        body += "R%X" % rcvr
    body += "L%X" % pref if pref is not None else "L0"
    body += "#%03X[]" % acct
    b = body.encode()
    return b"\n%04X%04X" % (util.crc(b), len(b)) + b + b"\r"


FIXTURES = []


def fixture(name, frame, expect, key=None, note=None):
    FIXTURES.append((name, frame, expect, key, note))


def main():
    ts = '"2026-03-03T10:00:00Z"'
    f = build("XNM", 0x1234, xds=[x(b"G2"), x(b"CDP4"), x(b"N1133557799bbddff")])
    fixture("siadc09 XNM clear, network path G2, supervision category, network address", f, [
        "ok = true", "response = \"%s\"" % esc(ack(1, 0x1234)), "events = []",
        "[fixture.expect.frame]", 'token = "XNM"', 'account = "1234"', 'data = ""',
        'ext = ["G2", "CDP4", "N1133557799bbddff"]', "timestamp = %s" % ts, "deviations = []",
    ])
    f = build("XNM", 0x1234ABCD, xds=[x(b"LHall|Door"), x(b"G1")], key=K128, seq=2,
              pref=0x123456, rcvr=0xABCDEF)
    fixture("siadc09 *XNM AES-128, empty data block (no |), [LHall|Door] after it", f, [
        "ok = true", 'response_token = "*ACK"', "events = []",
        "[fixture.expect.frame]", 'token = "XNM"', "encrypted = true", 'receiver_no = "ABCDEF"',
        'line_no = "123456"', 'account = "1234ABCD"', 'data = ""', 'ext = ["LHall|Door", "G1"]',
        "timestamp = %s" % ts, "pad_len = 27", 'deviations = ["lowercase_hex", "no_pad_terminator"]',
    ], key=K128, note="the pad ends at the data block's ], before the | inside [L…]")
    f = build("NULL", 0xF123456789ABCDEF, key=K192, seq=3, pref=7)
    fixture("siadc09 *NULL AES-192, 16-digit account", f, [
        "ok = true", 'response_token = "*ACK"', "events = []",
        "[fixture.expect.frame]", 'token = "NULL"', 'account = "F123456789ABCDEF"', 'line_no = "7"',
        'data = ""', "ext = []", "timestamp = %s" % ts,
    ], key=K192)
    f = build("SIA-DCS", 0x123, b"#123|Nri2/id12/ti10:15/BA04^Kitchen door^/FA05/ri3/PA06^Panic^",
              [x("LKüche".encode())], seq=4)
    fixture("siadc09 SIA-DCS three events, modifiers, caret texts, UTF-8 location", f, [
        "ok = true", "response = \"%s\"" % esc(ack(4, 0x123)),
        "[fixture.expect.frame]", 'account = "123"', 'ext = ["LKüche"]',
        "[[fixture.expect.events]]", 'code = "BA"', 'zone = "04"', 'partition = "2"', 'user = "12"',
        'event_time = "10:15"', 'names = ["Kitchen door"]', 'location = "Küche"', 'text_encoding = "utf-8"',
        "[[fixture.expect.events]]", 'code = "FA"', 'zone = "05"', 'partition = "2"', 'location = "Küche"',
        "[[fixture.expect.events]]", 'code = "PA"', 'zone = "06"', 'partition = "3"', 'names = ["Panic"]',
    ])
    f = build("SIA-DCS", 0x123, b"#123|Nri1/BA01",
              [x(b'J{"photo": ["https://v.example/1.jpg", "x]y"], "n": 2}'), x(b"K" + SENT_KEY.encode())],
              seq=5)
    fixture("siadc09 SIA-DCS with a JSON block holding ] and a key block", f, [
        "ok = true", "response = \"%s\"" % esc(ack(5, 0x123)),
        "[fixture.expect.frame]",
        'ext = ["J{\\"photo\\": [\\"https://v.example/1.jpg\\", \\"x]y\\"], \\"n\\": 2}", "K*"]',
        "[[fixture.expect.events]]", 'code = "BA"', 'ext = ["J{\\"photo\\": [\\"https://v.example/1.jpg\\", \\"x]y\\"], \\"n\\": 2}", "K*"]',
        "[fixture.expect.events.json]", 'photo = ["https://v.example/1.jpg", "x]y"]', "n = 2",
    ], note="the key's value is never shown: K* in ext, [K*] in raw")
    f = build("ADM-CID", 0x5A5A, b"#5A5A|1103 01 004", [x(b"G3")], key=K256, seq=6, pref=1, rcvr=2)
    fixture("siadc09 *ADM-CID AES-256, DC-05-2016 code 103 fall detected", f, [
        "ok = true", 'response_token = "*ACK"',
        "[fixture.expect.frame]", 'token = "ADM-CID"', 'data = "#5A5A|1103 01 004"', 'ext = ["G3"]',
        "[[fixture.expect.events]]", 'code = "103"', 'qualifier = "new"', 'class = "alarm"',
        'category = "medical"', 'zone = "004"', 'partition = "01"', 'network_path = "3"',
    ], key=K256)
    f = build("ADM-CID", 0x77AA01, b"#77AA01|1750 00 001", seq=7)
    fixture("siadc09 ADM-CID user-assigned code 750", f, [
        "ok = true", "response = \"%s\"" % esc(ack(7, 0x77AA01)),
        "[[fixture.expect.events]]", 'code = "750"', 'class = "other"', 'category = "other"',
    ])
    f = build("RSP", 0x123, b"#123|NRP", [x(b"K" + SENT_KEY.encode())], seq=8)
    fixture("siadc09 RSP (an answer: read, not answered)", f, [
        "ok = true", "response_null = true",
        "[fixture.expect.frame]", 'token = "RSP"', 'ext = ["K*"]',
    ])
    print("# DC-09-2026 frames built with siadc09 1.0.1 (PyPI, public domain). Generated by")
    print("# proto-fixtures/gen_siadc09.py (fixed pads); do not edit by hand.")
    for name, frame, expect, key, note in FIXTURES:
        print()
        print("[[fixture]]")
        print("name = %s" % json.dumps(name, ensure_ascii=False))
        print("origin = %s" % json.dumps(ORIGIN))
        if note:
            print("note = %s" % json.dumps(note, ensure_ascii=False))
        print("frame = %s" % toml_str(frame))
        if key:
            print('key_hex = "%s"' % key)
        print('now = "2026-03-03T10:00:05Z"')
        print()
        print("[fixture.expect]")
        for line in expect:
            print(line)


main()
