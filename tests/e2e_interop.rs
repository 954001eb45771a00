//! End to end: interoperability with a sender nobody here wrote, `dc09_spt` (PyPI package
//! `dc09_spt`, a DC-09 dialler in Python), over TCP and UDP, in clear and with AES.
//!
//! The harness installs it into a virtualenv under the target directory if it is not there
//! yet. `dc09_spt` 0.0.4 depends on PyCrypto, which no longer builds on current Pythons, so
//! the virtualenv gets PyCryptodome and `dc09_spt` without its declared dependency; the
//! driver script (`tests/interop/dc09_spt_driver.py`) bridges the one API difference. If
//! Python or the install is missing, the tests fail and say what is missing.
//!
//! dc09_spt 0.0.4 writes sequence numbers in hex from its tenth message on: each sender
//! instance here sends fewer than ten.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::*;
use serde_json::Value;

const DRIVER: &str = include_str!("interop/dc09_spt_driver.py");
const HEX128: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
const HEX256: &str = "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4";
const ASCII128: &str = "dc09spt-ascii-16";
const ASCII256: &str = "dc09spt-ascii-key-of-32-bytes-ok";

fn config() -> String {
    format!(
        r#"
[receiver]
id = "e2e-interop"

[accounts]
unknown = "reject"

[[account]]
id = "7701"

[[account]]
id = "7702"

[[account]]
id = "7703"
key = "{ASCII128}"
key_encoding = "ascii"
encryption = "required"

[[account]]
id = "7704"
key = "{HEX256}"
key_encoding = "hex"
encryption = "required"

[[account]]
id = "7705"
key = "{HEX128}"
key_encoding = "hex"
encryption = "required"

[[account]]
id = "7706"
key = "{ASCII256}"
key_encoding = "ascii"
encryption = "required"
"#
    )
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The virtualenv's python with dc09_spt importable, installed on first use.
fn python() -> &'static Path {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = PY.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dc09-venv");
        let py = venv.join("bin").join("python");
        let ready = |py: &Path| {
            Command::new(py)
                .args(["-c", "import dc09_spt, Crypto.Cipher.AES"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if ready(&py) {
            return Ok(py);
        }
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).map_err(|e| {
            format!("python3 with the venv module is needed for the dc09_spt interop tests (Debian: apt-get install python3 python3-venv): {e}")
        })?;
        run(Command::new(&py).args(["-m", "pip", "install", "--quiet", "pycryptodome"]))
            .map_err(|e| format!("cannot install pycryptodome from PyPI: {e}"))?;
        run(Command::new(&py).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "dc09_spt==0.0.4",
        ]))
        .map_err(|e| format!("cannot install dc09_spt from PyPI: {e}"))?;
        if ready(&py) {
            Ok(py)
        } else {
            Err(format!("{} cannot import dc09_spt after install", py.display()))
        }
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("dc09_spt interop: {e}"),
    }
}

struct Case {
    transport: &'static str,
    account: &'static str,
    key: Option<(&'static str, &'static str)>,
    line: &'static str,
    receiver: &'static str,
}

/// Runs dc09_spt against the receiver for one account: a poll, a SIA event, a Contact ID
/// event, a poll by hand. Checks what dc09_spt saw, then what the station recorded.
fn interop(rx: &Rx, c: &Case) {
    let dir = rx.dir.path();
    let script = write_file(dir, "dc09_spt_driver.py", DRIVER);
    let (kind, key) = c.key.unwrap_or(("none", ""));
    let out = Command::new(python())
        .arg(&script)
        .args(["127.0.0.1", &rx.d.addr.port().to_string(), c.transport])
        .args([c.account, kind, key, c.line, c.receiver])
        .output()
        .expect("run the dc09_spt driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("dc09_spt {} account {} key {kind}", c.transport, c.account);
    assert!(
        out.status.success(),
        "{what}: driver failed ({}):\n{stdout}\n{stderr}\nreceiver log:\n{}",
        out.status,
        rx.d.stderr()
    );
    let report: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{what}: driver output is not JSON ({e}):\n{stdout}\n{stderr}"));
    let ctx = format!(
        "{what}: {report}\n{stderr}\nreceiver log:\n{}",
        rx.d.stderr()
    );
    // dc09_spt's own view: the poll was ACKed (path OK, callback for the restoral message),
    // both events were ACKed (queue empty, sender idle), the hand poll returned True.
    assert_eq!(report["poll_count"], 1, "{ctx}");
    assert_eq!(report["path_ok"], 1, "{ctx}");
    let callbacks = report["callbacks"].as_array().expect("callbacks");
    assert_eq!(callbacks.len(), 1, "{ctx}");
    assert_eq!(callbacks[0][1]["code"], "YK", "{ctx}");
    assert_eq!(report["msgs_sent"], 3, "{ctx}");
    assert_eq!(report["msgs_queued"], 0, "{ctx}");
    assert_eq!(report["send_active"], false, "{ctx}");
    assert_eq!(report["direct_poll"], true, "{ctx}");

    // The station's view: exactly the three events, once each.
    let h = history(&rx.d.data_dir, &["--account", c.account]);
    let mut codes: Vec<(&str, &str)> = h.iter().map(|e| (s(e, "code"), s(e, "zone"))).collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![("130", "015"), ("FA", "5"), ("YK", "1")],
        "{what}: {h:#?}"
    );
    for e in &h {
        assert_eq!(s(e, "transport"), c.transport, "{e}");
        assert_eq!(e["encrypted"], c.key.is_some(), "{e}");
        assert_eq!(s(e, "line_no"), c.line, "{e}");
        assert_eq!(
            s(e, "receiver_no"),
            c.receiver,
            "receiver number as dc09_spt wrote it: {e}"
        );
    }
    let cid = h.iter().find(|e| s(e, "code") == "130").unwrap();
    assert_eq!(s(cid, "protocol"), "ADM-CID");
    assert_eq!(s(cid, "partition"), "02");
    assert_eq!(s(cid, "class"), "alarm");
    let fa = h.iter().find(|e| s(e, "code") == "FA").unwrap();
    assert_eq!(s(fa, "category"), "fire");
}

fn polls(rx: &Rx, token: &str) -> f64 {
    rx.d.metrics().sum(
        "tocsin_frames_total",
        &[("token", token), ("outcome", "ack"), ("reason", "null")],
    )
}

#[test]
fn dc09_spt_plain_over_tcp() {
    let mut rx = start(&config());
    interop(
        &rx,
        &Case {
            transport: "tcp",
            account: "7701",
            key: None,
            line: "1",
            receiver: "",
        },
    );
    assert_eq!(polls(&rx, "NULL"), 2.0);
    rx.d.stop();
}

#[test]
fn dc09_spt_plain_over_udp() {
    let mut rx = start(&config());
    interop(
        &rx,
        &Case {
            transport: "udp",
            account: "7702",
            key: None,
            line: "0",
            receiver: "2",
        },
    );
    assert_eq!(polls(&rx, "NULL"), 2.0);
    rx.d.stop();
}

#[test]
fn dc09_spt_aes_over_tcp() {
    let mut rx = start(&config());
    for (account, key) in [("7703", ASCII128), ("7706", ASCII256)] {
        interop(
            &rx,
            &Case {
                transport: "tcp",
                account,
                key: Some(("ascii", key)),
                line: "1",
                receiver: "",
            },
        );
    }
    assert_eq!(polls(&rx, "*NULL"), 4.0);
    rx.d.stop();
}

#[test]
fn dc09_spt_aes_over_udp() {
    let mut rx = start(&config());
    for (account, key) in [("7704", HEX256), ("7705", HEX128)] {
        interop(
            &rx,
            &Case {
                transport: "udp",
                account,
                key: Some(("hex", key)),
                line: "3",
                receiver: "5",
            },
        );
    }
    assert_eq!(polls(&rx, "*NULL"), 4.0);
    rx.d.stop();
}
