#!/usr/bin/env python3
"""Generate proto-fixtures/synthetic.toml: synthetic DC-09 edge cases with exact CRCs,
lengths, ciphertexts and receiver responses.

Deterministic (fixed pads), so re-running reproduces the committed file byte for byte.
Needs Python >= 3.11 and the `cryptography` package (AES-CBC, zero IV, no padding).

    python3 proto-fixtures/gen_synthetic.py > proto-fixtures/synthetic.toml
"""
import datetime as dt
import sys

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ORIGIN = "synthetic (proto-fixtures/gen_synthetic.py)"
NOW = "2024-03-01T10:00:00Z"


def crc16_arc(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(body: str | bytes, lower=False, binary=False, cr_in_crc=False, decimal_len=False) -> bytes:
    if isinstance(body, str):
        body = body.encode("latin-1")
    c = crc16_arc(body + b"\r" if cr_in_crc else body)
    n = len(body) + (1 if cr_in_crc else 0)
    ln = ("%04d" % n if decimal_len else "%04X" % n).encode()
    if binary:
        return b"\n" + bytes([c >> 8, c & 0xFF]) + ln + body + b"\r"
    cs = ("%04x" if lower else "%04X") % c
    return b"\n" + cs.encode() + ln + body + b"\r"


def ts(now: str, delta=0) -> str:
    t = dt.datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(seconds=delta)
    return t.strftime("_%H:%M:%S,%m-%d-%Y")


def iso(now: str, delta=0) -> str:
    t = dt.datetime.strptime(now, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(seconds=delta)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def aes(key: bytes, data: bytes) -> bytes:
    e = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    return e.update(data) + e.finalize()


def enc_frame(token, seq, head, tail: str, key: bytes, pad_byte: int, pipe=True, lower=False) -> bytes:
    """head = 'L0#1234', tail = '#1234|Nri1/BA01]_hh:mm:ss,MM-DD-YYYY' (everything after the pad terminator)."""
    t = tail.encode("latin-1")
    base = len(t) + (1 if pipe else 0)
    n = 16 - base % 16 if base % 16 else 16
    pt = bytes([pad_byte]) * n + (b"|" if pipe else b"") + t
    assert len(pt) % 16 == 0
    ct = aes(key, pt).hex()
    ct = ct.lower() if lower else ct.upper()
    return frame('"*%s"%s%s[%s' % (token, seq, head, ct))


def reply(token: str, seq: str, head: str, binary=False) -> bytes:
    return frame('"%s"%s%s[]' % (token, seq, head), binary=binary)


def nak(now: str) -> bytes:
    return frame('"NAK"0000R0L0A0[]' + ts(now))


def esc(b: bytes) -> str:
    o = []
    for x in b:
        if x == 10: o.append("\\n")
        elif x == 13: o.append("\\r")
        elif x == 92: o.append("\\\\")
        elif 32 <= x < 127: o.append(chr(x))
        else: o.append("\\x%02X" % x)
    return "".join(o)


def tstr(s: str) -> str:
    o = ['"']
    for ch in s:
        c = ord(ch)
        if ch == "\\": o.append("\\\\")
        elif ch == '"': o.append('\\"')
        elif ch == "\n": o.append("\\n")
        elif ch == "\r": o.append("\\r")
        elif c < 0x20 or c == 0x7F: o.append("\\u%04X" % c)
        else: o.append(ch)
    return "".join(o) + '"'


def tval(v):
    if isinstance(v, bool): return "true" if v else "false"
    if isinstance(v, str): return tstr(v)
    if isinstance(v, list): return "[" + ", ".join(tval(x) for x in v) + "]"
    raise TypeError(v)


FIX = []


def fx(name, fr: bytes, *, now=NOW, resp=None, frame_exp=None, events=None, error=None, ok=None,
       key_hex=None, key_ascii=None, note=None):
    e = {"ok": (error is None) if ok is None else ok}
    if isinstance(resp, bytes): e["response"] = esc(resp)
    elif resp == "null": e["response_null"] = True
    elif resp == "*ACK": e["response_token"] = "*ACK"
    if frame_exp is not None: e["frame"] = frame_exp
    if events is not None: e["events"] = events
    if error is not None: e["error"] = error
    FIX.append(dict(name=name, frame=fr, now=now, expect=e, key_hex=key_hex, key_ascii=key_ascii, note=note))


def FR(token, seq, account, line_no, data, *, rcv=None, enc=False, ext=(), tstamp=None, dev=()):
    d = {"token": token, "encrypted": enc, "seq": seq}
    if rcv is not None: d["receiver_no"] = rcv
    d.update(line_no=line_no, account=account, data=data, ext=list(ext))
    if tstamp: d["timestamp"] = tstamp
    d.update(crc_ok=True, length_ok=True, deviations=list(dev))
    return d


def S(code, q="new", **kw):
    d = {"protocol": "SIA-DCS", "code": code, "qualifier": q}
    for k, v in kw.items(): d["class" if k == "cls" else k] = v
    return d


def C(code, q, part, **kw):
    d = {"protocol": "ADM-CID", "code": code, "qualifier": q, "partition": part}
    for k, v in kw.items(): d["class" if k == "cls" else k] = v
    return d


T = ts(NOW, -2)
TI = iso(NOW, -2)

# ---- sequence numbers and accounts
fx("seq 9999 (last before wrap)", frame('"SIA-DCS"9999L0#1234[#1234|Nri1/BA01]' + T),
   resp=reply("ACK", "9999", "L0#1234"), frame_exp=FR("SIA-DCS", "9999", "1234", "0", "#1234|Nri1/BA01", tstamp=TI),
   events=[S("BA", zone="01", partition="1", cls="alarm", category="burglary")])
fx("seq 0000 on an event (Eaton/Pyronix habit), CID periodic test", frame('"ADM-CID"0000L0#1234[#1234|1602 00 000]' + T),
   resp=reply("ACK", "0000", "L0#1234"), frame_exp=FR("ADM-CID", "0000", "1234", "0", "#1234|1602 00 000", tstamp=TI),
   events=[C("602", "new", "00", zone="000", cls="test")])
fx("16-character hex account", frame('"NULL"0007L0#0123456789ABCDEF[]' + T),
   resp=reply("ACK", "0007", "L0#0123456789ABCDEF"), frame_exp=FR("NULL", "0007", "0123456789ABCDEF", "0", "", tstamp=TI), events=[])
fx("10-digit decimal account with leading zero kept", frame('"SIA-DCS"0008L0#0123456789[#0123456789|Nri1/OP2]' + T),
   resp=reply("ACK", "0008", "L0#0123456789"), frame_exp=FR("SIA-DCS", "0008", "0123456789", "0", "#0123456789|Nri1/OP2", tstamp=TI),
   events=[S("OP", user="2", partition="1", cls="open_close")])
fx("receiver R12 and line L3 echoed in the ACK", frame('"SIA-DCS"0009R12L3#1234[#1234|Nri1/CL5]' + T),
   resp=reply("ACK", "0009", "R12L3#1234"), frame_exp=FR("SIA-DCS", "0009", "1234", "3", "#1234|Nri1/CL5", rcv="12", tstamp=TI),
   events=[S("CL", user="5", partition="1", cls="open_close")])
fx("empty L (no line digits) echoed as is", frame('"SIA-DCS"0010L#1234[#1234|Nri1/BA02]' + T),
   resp=reply("ACK", "0010", "L#1234"), frame_exp=FR("SIA-DCS", "0010", "1234", "", "#1234|Nri1/BA02", tstamp=TI, dev=["empty_line"]),
   events=[S("BA", zone="02", partition="1")])
fx("no #acct in the header: account taken from the data", frame('"SIA-DCS"0011L0[#5678|Nri1/BA03]' + T),
   frame_exp=FR("SIA-DCS", "0011", "5678", "0", "#5678|Nri1/BA03", tstamp=TI, dev=["no_account"]),
   events=[S("BA", zone="03", partition="1")], note="response not asserted (no header account to echo)")

# ---- SIA payload shapes
fx("multi-event SIA with area switching", frame('"SIA-DCS"0012L0#1234[#1234|Nri1/BA01/BA02/ri2/FA05]' + T),
   resp=reply("ACK", "0012", "L0#1234"), frame_exp=FR("SIA-DCS", "0012", "1234", "0", "#1234|Nri1/BA01/BA02/ri2/FA05", tstamp=TI),
   events=[S("BA", zone="01", partition="1"), S("BA", zone="02", partition="1"),
           S("FA", zone="05", partition="2", cls="alarm", category="fire")])
fx("modifiers ti/id/ri before a code without address", frame('"SIA-DCS"0013L0#1234[#1234|Nti19:44/id1/ri4/RP]' + T),
   resp=reply("ACK", "0013", "L0#1234"), frame_exp=FR("SIA-DCS", "0013", "1234", "0", "#1234|Nti19:44/id1/ri4/RP", tstamp=TI),
   events=[S("RP", partition="4", cls="test")])
fx("caret text after an event (user name)", frame('"SIA-DCS"0014L0#1234[#1234|Nri1/CL501^John Smith^]' + T),
   resp=reply("ACK", "0014", "L0#1234"), frame_exp=FR("SIA-DCS", "0014", "1234", "0", "#1234|Nri1/CL501^John Smith^", tstamp=TI),
   events=[S("CL", user="501", partition="1", cls="open_close")])
fx("missing / between modifier and event (Nri2BA05)", frame('"SIA-DCS"0015L0#1234[#1234|Nri2BA05]' + T),
   resp=reply("ACK", "0015", "L0#1234"), frame_exp=FR("SIA-DCS", "0015", "1234", "0", "#1234|Nri2BA05", tstamp=TI),
   events=[S("BA", zone="05", partition="2")])
fx("X-SIA text tail *'…'NM after the event", frame("\"SIA-DCS\"0016L0#1234[#1234|Nri1/BA0003*'FRONT DOOR   'NM]" + T),
   resp=reply("ACK", "0016", "L0#1234"), frame_exp=FR("SIA-DCS", "0016", "1234", "0", "#1234|Nri1/BA0003*'FRONT DOOR   'NM", tstamp=TI),
   events=[S("BA", zone="0003", partition="1")])
fx("A text block after the event block", frame('"SIA-DCS"0017L0#1234[#1234|NRR|Apower up]' + T),
   resp=reply("ACK", "0017", "L0#1234"), frame_exp=FR("SIA-DCS", "0017", "1234", "0", "#1234|NRR|Apower up", tstamp=TI),
   events=[S("RR", cls="other")])
fx("O block (old event) gives qualifier status", frame('"SIA-DCS"0018L0#1234[#1234|Ori1/BA01]' + T),
   resp=reply("ACK", "0018", "L0#1234"), frame_exp=FR("SIA-DCS", "0018", "1234", "0", "#1234|Ori1/BA01", tstamp=TI),
   events=[S("BA", "status", zone="01", partition="1")])
fx("SIA restore code BH", frame('"SIA-DCS"0019L0#1234[#1234|Nri1/BH01]' + T),
   resp=reply("ACK", "0019", "L0#1234"), frame_exp=FR("SIA-DCS", "0019", "1234", "0", "#1234|Nri1/BH01", tstamp=TI),
   events=[S("BH", "restore", zone="01", partition="1", cls="restore", category="burglary")])
fx("unknown SIA code ZX: class other, still acknowledged", frame('"SIA-DCS"0020L0#1234[#1234|Nri1/ZX01]' + T),
   resp=reply("ACK", "0020", "L0#1234"), frame_exp=FR("SIA-DCS", "0020", "1234", "0", "#1234|Nri1/ZX01", tstamp=TI),
   events=[S("ZX", cls="other")])
fx("data without leading #acct| (|N… form)", frame('"SIA-DCS"0021L0#1234[|Nri1/WA003]' + T),
   resp=reply("ACK", "0021", "L0#1234"), frame_exp=FR("SIA-DCS", "0021", "1234", "0", "|Nri1/WA003", tstamp=TI),
   events=[S("WA", zone="003", partition="1", cls="alarm")])

# ---- extended blocks
xb = ["AAB12CD34EF56", "H10:59:58,03-01-2024", "IIntruder hall", "LGround floor", "M0026B9E4268B", "OBuilding 7",
      "Pprog", "RHall", "SSite 13", "T1", "Vhttps://example.invalid/p1.jpg", "X006E07.7777777", "Y49N06.6666666", "Z120"]
fx("every 2013 extended-data identifier once", frame('"SIA-DCS"0022L0#1234[#1234|Nri1/BA01]' + "".join("[%s]" % x for x in xb) + T),
   resp=reply("ACK", "0022", "L0#1234"), frame_exp=FR("SIA-DCS", "0022", "1234", "0", "#1234|Nri1/BA01", ext=xb, tstamp=TI),
   events=[S("BA", zone="01", partition="1")])
xu = ["Qunknown-id", "Vhttps://example.invalid/a.jpg", "Vhttps://example.invalid/b.jpg"]
fx("unknown [Q…] block preserved, repeated [V] blocks", frame('"ADM-CID"0023L0#1234[#1234|1130 02 001]' + "".join("[%s]" % x for x in xu) + T),
   resp=reply("ACK", "0023", "L0#1234"), frame_exp=FR("ADM-CID", "0023", "1234", "0", "#1234|1130 02 001", ext=xu, tstamp=TI),
   events=[C("130", "new", "02", zone="001")])

# ---- Contact ID shapes
fx("CID without spaces", frame('"ADM-CID"0024L0#1234[#1234|113001015]' + T),
   resp=reply("ACK", "0024", "L0#1234"), frame_exp=FR("ADM-CID", "0024", "1234", "0", "#1234|113001015", tstamp=TI),
   events=[C("130", "new", "01", zone="015")])
fx("CID with hex digits B-F in group and zone", frame('"ADM-CID"0025L0#1234[#1234|1130 0B 0CF]' + T),
   resp=reply("ACK", "0025", "L0#1234"), frame_exp=FR("ADM-CID", "0025", "1234", "0", "#1234|1130 0B 0CF", tstamp=TI),
   events=[C("130", "new", "0B", zone="0CF")])
fx("CID in DC-05 16-digit telephone form (AAAA 18 QXYZ GG CCC S)", frame('"ADM-CID"0026L0#1234[#1234|123418113001015E]' + T),
   resp=reply("ACK", "0026", "L0#1234"), frame_exp=FR("ADM-CID", "0026", "1234", "0", "#1234|123418113001015E", tstamp=TI),
   events=[C("130", "new", "01", zone="015")], note="checksum digit E verified with the mod-15 rule (contact-id.md §1)")
fx("CID closing (arm) by user: 3401 -> user, no zone", frame('"ADM-CID"0027L0#1234[#1234|3401 01 003]' + T),
   resp=reply("ACK", "0027", "L0#1234"), frame_exp=FR("ADM-CID", "0027", "1234", "0", "#1234|3401 01 003", tstamp=TI),
   events=[C("401", "restore", "01", user="003", cls="open_close")])
fx("CID opening (disarm) by user: 1401", frame('"ADM-CID"0028L0#1234[#1234|1401 02 012]' + T),
   resp=reply("ACK", "0028", "L0#1234"), frame_exp=FR("ADM-CID", "0028", "1234", "0", "#1234|1401 02 012", tstamp=TI),
   events=[C("401", "new", "02", user="012", cls="open_close")])
fx("CID restore qualifier 3 on a burglary", frame('"ADM-CID"0029L0#1234[#1234|3130 01 015]' + T),
   resp=reply("ACK", "0029", "L0#1234"), frame_exp=FR("ADM-CID", "0029", "1234", "0", "#1234|3130 01 015", tstamp=TI),
   events=[C("130", "restore", "01", zone="015", cls="restore")])
fx("CID status qualifier 6", frame('"ADM-CID"0030L0#1234[#1234|6301 00 000]' + T),
   resp=reply("ACK", "0030", "L0#1234"), frame_exp=FR("ADM-CID", "0030", "1234", "0", "#1234|6301 00 000", tstamp=TI),
   events=[C("301", "status", "00", zone="000", cls="trouble")])

# ---- encryption: every key size, hex and ASCII keys
KEYS = [
    ("AES-128 hex key", bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C"), "hex"),
    ("AES-128 ASCII key", b"AAAAAAAAAAAAAAAA", "ascii"),
    ("AES-192 hex key", bytes.fromhex("8E73B0F7DA0E6452C810F32B809079E562F8EAD2522C6B7B"), "hex"),
    ("AES-192 ASCII key", b"tocsin-192-bit-ascii-key", "ascii"),
    ("AES-256 hex key", bytes.fromhex("603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4"), "hex"),
    ("AES-256 ASCII key", b"tocsin-256-bit-ascii-key-32-char", "ascii"),
]
for i, (label, key, kind) in enumerate(KEYS):
    seq = "%04d" % (40 + i)
    kw = {"key_hex": key.hex().upper()} if kind == "hex" else {"key_ascii": key.decode()}
    fx("*SIA-DCS " + label, enc_frame("SIA-DCS", seq, "L0#1234", "#1234|Nri1/BA01]" + T, key, 0x30 + i),
       resp="*ACK", frame_exp=FR("SIA-DCS", seq, "1234", "0", "#1234|Nri1/BA01", enc=True, tstamp=TI),
       events=[S("BA", zone="01", partition="1")], **kw)
K192 = KEYS[2][1]
K256 = KEYS[4][1]
fx("*NULL AES-192 (supervision, no event)", enc_frame("NULL", "0000", "L0#1234", "]" + T, K192, 0xA5),
   resp="*ACK", frame_exp=FR("NULL", "0000", "1234", "0", "", enc=True, tstamp=TI), events=[], key_hex=K192.hex().upper())
fx("*NULL Hikvision-style pad without | terminator", enc_frame("NULL", "0000", "R0L0#1234", "]" + T, K256, ord("p"), pipe=False),
   resp="*ACK", frame_exp=FR("NULL", "0000", "1234", "0", "", rcv="0", enc=True, tstamp=TI, dev=["no_pad_terminator"]), events=[],
   key_hex=K256.hex().upper())
fx("*ADM-CID lower-case ciphertext with [X][Y] inside the encryption",
   enc_frame("ADM-CID", "0050", "L0#1234", "#1234|1130 01 015][X019E12.3456][Y50N05.1234]" + T, K256, 0x00, lower=True),
   resp="*ACK", frame_exp=FR("ADM-CID", "0050", "1234", "0", "#1234|1130 01 015", enc=True, ext=["X019E12.3456", "Y50N05.1234"], tstamp=TI,
                             dev=["lowercase_hex"]),
   events=[C("130", "new", "01", zone="015")], key_hex=K256.hex().upper())

# ---- timestamp window (encrypted: always enforced)
K128 = KEYS[0][1]
for label, delta, good in [("40 s old: accepted (edge)", -40, True), ("20 s ahead: accepted (edge)", 20, True),
                           ("41 s old: NAK with receiver time", -41, False), ("21 s ahead: NAK", 21, False),
                           ("exactly one day ahead (Ajax 2021): NAK", 86400, False)]:
    fr = enc_frame("SIA-DCS", "0060", "L0#1234", "#1234|Nri1/BA01]" + ts(NOW, delta), K128, 0x41)
    if good:
        fx("timestamp " + label, fr, resp="*ACK", frame_exp=FR("SIA-DCS", "0060", "1234", "0", "#1234|Nri1/BA01", enc=True, tstamp=iso(NOW, delta)),
           events=[S("BA", zone="01", partition="1")], key_hex=K128.hex().upper())
    else:
        fx("timestamp " + label, fr, resp=nak(NOW), error={"kind": "timestamp"}, key_hex=K128.hex().upper())
fx("encrypted with the wrong key: NAK", enc_frame("SIA-DCS", "0061", "L0#1234", "#1234|Nri1/BA01]" + T, K128, 0x42),
   resp=nak(NOW), error={"kind": "decrypt"}, key_hex="2B7E151628AED2A6ABF7158809CF4F3D")
fx("ciphertext not a multiple of 16 bytes: NAK", frame('"*SIA-DCS"0062L0#1234[' + "0123456789ABCDEF" * 3),
   resp=nak(NOW), error={"kind": "decrypt"}, key_hex=K128.hex().upper())

# ---- vendor framing deviations
body = '"SIA-DCS"0070L0#1234[#1234|Nri1/BA01]' + T
fx("binary CRC (2 raw bytes) answered in the same form", frame(body, binary=True),
   resp=reply("ACK", "0070", "L0#1234", binary=True), frame_exp=FR("SIA-DCS", "0070", "1234", "0", "#1234|Nri1/BA01", tstamp=TI, dev=["binary_crc"]),
   events=[S("BA", zone="01", partition="1")])
body = '"ADM-CID"0071L0#1234[#1234|1130 01 015]' + T
fx("ELDES style: CRC and LLL include the CR", frame(body, cr_in_crc=True),
   frame_exp=FR("ADM-CID", "0071", "1234", "0", "#1234|1130 01 015", tstamp=TI, dev=["cr_in_crc"]),
   events=[C("130", "new", "01", zone="015")], note="response not asserted (ELDES reply form unknown)")
body = '"SIA-DCS"0072L0#1234[#1234|Nri1/BA01][S0123456]'  # 47 bytes
assert len(body) == 47
fx("decimal length field (0047 for a 47-byte body)", frame(body, decimal_len=True),
   resp=reply("ACK", "0072", "L0#1234"), frame_exp=FR("SIA-DCS", "0072", "1234", "0", "#1234|Nri1/BA01", ext=["S0123456"], dev=["decimal_length"]),
   events=[S("BA", zone="01", partition="1")])
fx("lower-case hex CRC", frame('"SIA-DCS"0073L0#1234[#1234|Nri1/BA07]' + T, lower=True),
   resp=reply("ACK", "0073", "L0#1234"), frame_exp=FR("SIA-DCS", "0073", "1234", "0", "#1234|Nri1/BA07", tstamp=TI, dev=["lowercase_hex"]),
   events=[S("BA", zone="07", partition="1")])
f = frame('"NULL"0074L0#1234[]' + T)
fx("trailing NUL bytes after the CR", f + b"\x00\x00\x00", resp=reply("ACK", "0074", "L0#1234"),
   frame_exp=FR("NULL", "0074", "1234", "0", "", tstamp=TI, dev=["trailing_nul"]), events=[])
f = frame('"NULL"0075L0#1234[]' + T)
fx("leading garbage before the LF", b"\x00\xffJUNK" + f, resp=reply("ACK", "0075", "L0#1234"),
   frame_exp=FR("NULL", "0075", "1234", "0", "", tstamp=TI, dev=["leading_garbage"]), events=[])
f = frame('"NULL"0076L0#1234[]' + T)
fx("trailing garbage after the CR (LLL is honoured)", f + b"XYZ", resp=reply("ACK", "0076", "L0#1234"),
   frame_exp=FR("NULL", "0076", "1234", "0", "", tstamp=TI, dev=["trailing_garbage"]), events=[])

# ---- errors
good = frame('"SIA-DCS"0080L0#1234[#1234|Nri1/BA01]' + T)
bad = bytearray(good); bad[1:5] = b"%04X" % ((int(good[1:5], 16) ^ 0x0101))
fx("bad CRC: silence", bytes(bad), resp="null", error={"kind": "crc"})
bad = bytearray(good); bad[5:9] = b"%04X" % (int(good[5:9], 16) + 1)
fx("wrong length (one more than the body): silence", bytes(bad), resp="null", error={"kind": "length"})
fx("unknown token: DUH", frame('"XYZ-ABC"0081L0#1234[#1234|something]' + T), resp=reply("DUH", "0081", "L0#1234"),
   error={"kind": "token"})
fx("unknown token with R: DUH echoes R", frame('"SIA-DCX"0082R5L2#1234[]'), resp=reply("DUH", "0082", "R5L2#1234"),
   error={"kind": "token"})
fx("Aritech/Ecoline LFQ keep-alive line", b"\nLFQ=600#CRC=BDF3##\r", resp="null", error={"kind": "syntax"})
fx("Osborne-Hoffman SR line", b"SR0001L0001    006969XX    [ID00000000]\r", resp="null", error={"kind": "syntax"})
fx("no CR at all (truncated frame)", frame('"NULL"0083L0#1234[]')[:-1], resp="null", ok=False)


def main(out=sys.stdout):
    w = out.write
    w("# Synthetic DC-09 edge cases. GENERATED by gen_synthetic.py - do not edit by hand.\n")
    w("# now = %s unless stated; frame timestamps are now-2 s unless the case is about the window.\n\n" % NOW)
    names = set()
    for f in FIX:
        assert f["name"] not in names, f["name"]
        names.add(f["name"])
        w("[[fixture]]\nname = %s\norigin = %s\n" % (tstr(f["name"]), tstr(ORIGIN)))
        if f["note"]: w("note = %s\n" % tstr(f["note"]))
        b = f["frame"]
        printable = all(x in (10, 13) or 32 <= x < 127 for x in b)
        w(("frame = %s\n" % tstr(b.decode())) if printable else ("frame_hex = %s\n" % tstr(b.hex())))
        if f["key_hex"]: w("key_hex = %s\n" % tstr(f["key_hex"]))
        if f["key_ascii"]: w("key_ascii = %s\n" % tstr(f["key_ascii"]))
        w("now = %s\n\n[fixture.expect]\n" % tstr(f["now"]))
        e = f["expect"]
        for k in ("ok", "response", "response_null", "response_token"):
            if k in e: w("%s = %s\n" % (k, tval(e[k])))
        if e.get("events") == []: w("events = []\n")
        if "frame" in e:
            w("[fixture.expect.frame]\n")
            for k, v in e["frame"].items(): w("%s = %s\n" % (k, tval(v)))
        if "error" in e:
            w("[fixture.expect.error]\n")
            for k, v in e["error"].items(): w("%s = %s\n" % (k, tval(v)))
        for ev in e.get("events") or []:
            w("[[fixture.expect.events]]\n")
            for k, v in ev.items(): w("%s = %s\n" % (k, tval(v)))
        w("\n")


if __name__ == "__main__":
    main()
