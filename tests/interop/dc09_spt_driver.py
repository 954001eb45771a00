"""Drives dc09_spt (a third-party DC-09 dialler) against a receiver; prints a JSON report.

usage: dc09_spt_driver.py HOST PORT tcp|udp ACCOUNT none|hex|ascii KEY LINE RECEIVER
"""
import json
import sys
import time

# dc09_spt 0.0.4 was written for PyCrypto, which no longer builds on current Pythons.
# PyCryptodome has the same Crypto.Cipher.AES but refuses the str values PyCrypto took
# (dc09_spt passes its IV and plaintext as str). This shim hands it the same bytes PyCrypto
# would have used (all ASCII here) and changes nothing else: framing, CRC, pad, hex and the
# reading of answers stay dc09_spt's own code.
from Crypto.Cipher import AES as _AES
import dc09_spt  # noqa: E402  (loads dc09_spt.msg.dc09_msg)


def _b(v):
    return v.encode("latin-1") if isinstance(v, str) else v


class _AESCompat:
    MODE_CBC = _AES.MODE_CBC

    @staticmethod
    def new(key, mode, iv):
        cipher = _AES.new(_b(key), mode, _b(iv))

        class _Wrapped:
            def encrypt(self, data):
                return cipher.encrypt(_b(data))

            def decrypt(self, data):
                return cipher.decrypt(_b(data))

        return _Wrapped()


# The package re-exports the class under the module's name, so reach the module itself.
sys.modules["dc09_spt.msg.dc09_msg"].AES = _AESCompat

from dc09_spt import dc09_spt  # noqa: E402

host, port, transport, account, key_kind, key_text, line, receiver = sys.argv[1:9]
if key_kind == "none":
    key = None
elif key_kind == "hex":
    key = bytes.fromhex(key_text)
else:
    key = key_text.encode("ascii")

spt = dc09_spt.dc09_spt(account, receiver=int(receiver) if receiver else None, line=int(line))
spt.set_path("main", "primary", host, int(port), key=key, type=transport)
callbacks = []
spt.set_callback(lambda mtype, msg: callbacks.append([mtype, dict(msg)]))
deadline = time.time() + 60

# 1. Supervision: the first poll that gets an ACK marks the path OK, which makes dc09_spt
#    queue ok_msg (a SIA "YK" communications restoral) and call the callback.
spt.start_poll(3600, None, 0.2, {"type": "SIA-DCS", "code": "YK"})
while time.time() < deadline and not callbacks:
    time.sleep(0.05)
state_after_poll = spt.state()
spt.stop_poll()

# 2. Events: a SIA (with a text) and a Contact ID. A message that gets no ACK goes back to
#    the queue and is retried, so an empty queue and an idle sender mean all were ACKed.
spt.send_msg("SIA", {"code": "FA", "zone": 5, "area": 1, "text": "interop"})
spt.send_msg("CID", {"code": "130", "q": 1, "zone": 15, "area": 2})
while time.time() < deadline:
    st = spt.state()
    if st["msgs queued"] == 0 and not st.get("send active", False):
        break
    time.sleep(0.05)
final = spt.state()

# 3. A poll by hand: transfer_msg returns True only for an ACK.
path = spt.tpaths["main"]["primary"]["path"]
direct_poll = spt.transfer_msg(0, "NULL", "]", path)

print(json.dumps({
    "callbacks": callbacks,
    "poll_count": state_after_poll.get("poll count", 0),
    "path_ok": final.get("main primary path ok"),
    "msgs_sent": final["msgs sent"],
    "msgs_queued": final["msgs queued"],
    "send_active": bool(final.get("send active", False)),
    "direct_poll": direct_poll,
}))
