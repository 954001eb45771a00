//! End to end: interoperability with two senders nobody here wrote, over TCP and UDP, in
//! clear and with AES:
//!
//! - `dc09_spt` (PyPI), a DC-09-2013 dialler in Python. `dc09_spt` 0.0.4 depends on
//!   PyCrypto, which no longer builds on current Pythons, so its virtualenv gets
//!   PyCryptodome and `dc09_spt` without its declared dependency; the driver script
//!   (`tests/interop/dc09_spt_driver.py`) bridges the one API difference. dc09_spt 0.0.4
//!   writes sequence numbers in hex from its tenth message on: each sender instance here
//!   sends fewer than ten.
//! - `siadc09` 1.0.1 (PyPI, public domain, Python 3.11 or later), DC-09-2026 primitives:
//!   frames of every kind it builds (NULL, XNM, SIA-DCS with modifiers and texts, ADM-CID
//!   with each qualifier, every extended-data letter, keys and JSON, accounts of 3 to 16
//!   digits, 6-digit `R` and `L`, AES-128/192/256), its replies read back by it, through a
//!   receiver that forwards to a real `nats-server` (`tests/interop/siadc09_driver.py`).
//!
//! The harness installs each into a virtualenv under the target directory if it is not
//! there yet. If Python or the install is missing, the tests fail and say what is missing.

mod bus;
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

// ---------------------------------------------------------------------------------------
// siadc09: DC-09-2026
// ---------------------------------------------------------------------------------------

const SIADC09_DRIVER: &str = include_str!("interop/siadc09_driver.py");

/// The virtualenv's python with siadc09 importable, installed on first use.
fn siadc09_python() -> &'static Path {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = PY.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("siadc09-venv");
        let py = venv.join("bin").join("python");
        let ready = |py: &Path| {
            Command::new(py)
                .args(["-c", "import siadc09, Cryptodome.Cipher.AES; assert siadc09.__version__ == '1.0.1'"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if ready(&py) {
            return Ok(py);
        }
        let version = Command::new("python3")
            .args(["-c", "import sys; print(sys.version_info >= (3, 11))"])
            .output()
            .map_err(|e| format!("python3 is needed for the siadc09 interop tests: {e}"))?;
        if String::from_utf8_lossy(&version.stdout).trim() != "True" {
            return Err("siadc09 needs Python 3.11 or later as python3".into());
        }
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv)).map_err(|e| {
            format!("python3 with the venv module is needed for the siadc09 interop tests (Debian: apt-get install python3-venv): {e}")
        })?;
        run(Command::new(&py).args(["-m", "pip", "install", "--quiet", "siadc09==1.0.1"]))
            .map_err(|e| format!("cannot install siadc09 (and pycryptodomex) from PyPI: {e}"))?;
        if ready(&py) {
            Ok(py)
        } else {
            Err(format!("{} cannot import siadc09 after install", py.display()))
        }
    });
    match r {
        Ok(p) => p,
        Err(e) => panic!("siadc09 interop: {e}"),
    }
}

/// Runs the siadc09 driver with `args`; its JSON output.
fn siadc09(dir: &Path, args: &[&str]) -> Value {
    let script = write_file(dir, "siadc09_driver.py", SIADC09_DRIVER);
    let out = Command::new(siadc09_python())
        .arg(&script)
        .args(args)
        .output()
        .expect("run the siadc09 driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "siadc09 driver {args:?} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("siadc09 driver output is not JSON ({e}):\n{stdout}"))
}

/// A receiver configured for the driver's accounts, forwarding to `nats` and printing
/// events on stdout. Supervised accounts have two paths' worth of intervals, so that every
/// path a frame names is kept apart and can be looked at.
fn siadc09_config(accounts: &Value, nats: &str) -> String {
    let mut c = format!(
        "[receiver]\nid = \"e2e-siadc09\"\n\n[accounts]\nunknown = \"reject\"\n\n\
         [output]\nstdout = true\n\n[bus.nats]\nurl = \"{nats}\"\nack_timeout = \"2s\"\n"
    );
    for a in accounts.as_array().expect("accounts") {
        c.push_str(&format!("\n[[account]]\nid = \"{}\"\n", s(a, "id")));
        if let Some(k) = a["key"].as_str() {
            c.push_str(&format!("key = \"{k}\"\nkey_encoding = \"hex\"\n"));
        }
        c.push_str(&format!("reply_dialect = \"{}\"\n", s(a, "dialect")));
        if a["supervised"] == true {
            c.push_str("supervision = \"1h/2h\"\n");
        }
    }
    c
}

/// What tocsin's event field holds for a letter siadc09 sent, if a field holds it.
fn field_of(letter: &str) -> Option<&'static str> {
    Some(match letter {
        "C" => "supervision_category",
        "G" => "network_path",
        "H" => "event_time",
        "I" => "alarm_text",
        "L" => "location",
        "M" => "mac",
        "N" => "network_address",
        "O" => "building",
        "R" => "room",
        "S" => "site",
        "V" => "verification",
        "X" => "longitude",
        "Y" => "latitude",
        "Z" => "altitude",
        _ => return None,
    })
}

fn hex_value(text: &str) -> i64 {
    i64::from_str_radix(text, 16).unwrap_or_else(|_| panic!("{text:?} is not hex"))
}

/// The reply siadc09 got, checked against what the case expects.
fn check_reply(c: &Value, ctx: &str) {
    match c["expect_reply"].as_str() {
        Some("ACK") => {
            assert_eq!(c["reply_kind"], "ACK", "{ctx}");
            assert_eq!(c["reply_parsed"], true, "siadc09 accepts the ACK: {ctx}");
            assert_eq!(c["reply_encrypted"], c["encrypted"], "{ctx}");
            if c["encrypted"] == true {
                let pad = c["ack_pad"].as_u64().expect("ack pad");
                let range = if c["dialect"] == "2026" {
                    16..=31
                } else {
                    1..=16
                };
                assert!(
                    range.contains(&pad),
                    "pad {pad} for {}: {ctx}",
                    c["dialect"]
                );
            }
        }
        Some("NAK") if c["dialect"] == "2026" => {
            assert_eq!(c["reply_kind"], "NAK", "{ctx}");
            assert_eq!(
                c["reply_parsed"], true,
                "siadc09 reads the NAK's time: {ctx}"
            );
            assert!(c["nak_skew"].as_f64().expect("nak skew") < 60.0, "{ctx}");
        }
        Some("NAK") => {
            // The 2013 form, which siadc09 cannot read: why the 2026 dialect exists.
            assert!(s(c, "reply").contains("\"NAK\"0000R0L0A0[]_"), "{ctx}");
            assert_eq!(c["reply_parsed"], false, "{ctx}");
        }
        _ => assert!(c["reply"].is_null(), "no answer to an answer: {ctx}"),
    }
}

/// The events tocsin made of one case, checked against what siadc09 meant.
fn check_events(c: &Value, events: &[&Value], ctx: &str) {
    let meant = c["events"].as_array().expect("events");
    if c["expect_reply"] != "ACK" || !matches!(s(c, "token"), "SIA-DCS" | "ADM-CID") {
        assert!(events.is_empty(), "no event expected: {ctx}\n{events:#?}");
        return;
    }
    assert_eq!(events.len(), meant.len(), "{ctx}\n{events:#?}");
    for (e, m) in events.iter().zip(meant) {
        let ctx = format!("{ctx}\nmeant {m}\ngot {e}");
        assert_eq!(s(e, "code"), s(m, "code"), "{ctx}");
        assert_ne!(s(e, "class"), "other", "a known code: {ctx}");
        if s(c, "token") == "ADM-CID" {
            let q = match s(m, "qualifier") {
                "1" => "new",
                "3" => "restore",
                _ => "status",
            };
            assert_eq!(s(e, "qualifier"), q, "{ctx}");
            assert_eq!(
                hex_value(s(e, "partition")),
                m["group"].as_i64().unwrap(),
                "{ctx}"
            );
            let field = if s(m, "addr_kind") == "user" {
                "user"
            } else {
                "zone"
            };
            assert_eq!(hex_value(s(e, field)), m["addr"].as_i64().unwrap(), "{ctx}");
        } else {
            if let Some(addr) = m["addr"].as_i64() {
                assert_eq!(hex_value(s(e, "zone")), addr, "{ctx}");
            }
            if let Some(area) = m["area"].as_str() {
                assert_eq!(
                    s(e, "partition").parse::<i64>().ok(),
                    area.parse().ok(),
                    "{ctx}"
                );
            }
            if let Some(user) = m["user"].as_str() {
                assert_eq!(s(e, "user").parse::<i64>().ok(), user.parse().ok(), "{ctx}");
            }
            if let Some(t) = m["time"].as_str() {
                assert!(t.starts_with(s(e, "event_time")), "{ctx}");
            }
            if let Some(d) = m["descr"].as_str() {
                assert!(
                    e["names"].as_array().unwrap().iter().any(|n| n == d),
                    "{ctx}"
                );
            }
        }
        check_ext(c, e, &ctx);
    }
}

/// Every extended block siadc09 sent, in the event's fields and `ext` as it meant them.
fn check_ext(c: &Value, e: &Value, ctx: &str) {
    let sent = c["ext"].as_array().expect("ext");
    let mut texts = Vec::new();
    for x in sent {
        let letter = s(x, "letter");
        match letter {
            "K" => texts.push("K*".to_string()),
            "J" => {
                assert_eq!(e["json"], x["json"], "JSON block as JSON: {ctx}");
                texts.push(format!("J{}", s(x, "text")));
            }
            _ => {
                let text = s(x, "text");
                if let Some(field) = field_of(letter) {
                    assert_eq!(s(e, field), text, "{letter} in {field}: {ctx}");
                }
                texts.push(format!("{letter}{text}"));
            }
        }
    }
    let ext: Vec<String> = e["ext"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    assert_eq!(ext, texts, "{ctx}");
    if !sent.iter().any(|x| x["letter"] == "J") {
        assert!(e["json"].is_null(), "{ctx}");
    }
    assert_eq!(e["text_encoding"], c["text_encoding"], "{ctx}");
}

/// Every file under `dir`, read as bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

/// Whether `haystack` holds `key` (hex), in either case.
fn holds_key(haystack: &[u8], key: &str) -> bool {
    let lower = key.to_ascii_lowercase();
    let upper = key.to_ascii_uppercase();
    haystack
        .windows(key.len())
        .any(|w| w == lower.as_bytes() || w == upper.as_bytes())
}

/// siadc09 sends frames of every kind over TCP and then UDP to one receiver that journals,
/// prints events on stdout and forwards them to a real nats-server: every frame is decoded
/// as siadc09 meant it, every reply is read back by siadc09, no JSON block becomes a
/// supervision path, and no key it sent is anywhere to be found.
#[test]
fn siadc09_frames_of_every_kind_over_tcp_and_udp() {
    let scratch = tempdir();
    let accounts = siadc09(scratch.path(), &["accounts"]);
    let nats = bus::NatsServer::start();
    let mut rx = start(&siadc09_config(&accounts, &nats.url()));
    let port = rx.d.addr.port().to_string();
    let mut cases = Vec::new();
    let mut keys = Vec::new();
    for (transport, seqbase) in [("tcp", "0"), ("udp", "100")] {
        let report = siadc09(
            scratch.path(),
            &["run", "127.0.0.1", &port, transport, seqbase],
        );
        keys = report["keys"].as_array().expect("keys").clone();
        for c in report["cases"].as_array().expect("cases") {
            cases.push((transport, c.clone()));
        }
    }
    assert!(cases.len() >= 100, "{} cases", cases.len());

    let history = history(&rx.d.data_dir, &[]);
    for (transport, c) in &cases {
        let ctx = format!(
            "{transport} {} {} seq {}: {c}\nreceiver log:\n{}",
            s(c, "account"),
            s(c, "name"),
            s(c, "seq"),
            rx.d.stderr()
        );
        check_reply(c, &ctx);
        let events: Vec<&Value> = frame_events(&history, s(c, "account"), s(c, "seq"))
            .into_iter()
            .filter(|e| s(e, "transport") == *transport)
            .collect();
        check_events(c, &events, &ctx);
    }

    // Polls: NULL and XNM, clear and encrypted, counted as polls.
    let m = rx.d.metrics();
    let polls = |token| {
        m.sum(
            "tocsin_frames_total",
            &[("token", token), ("outcome", "ack"), ("reason", "null")],
        )
    };
    assert_eq!(polls("XNM") + polls("*XNM"), 4.0 * 5.0, "{}", rx.d.stderr());
    assert_eq!(polls("NULL") + polls("*NULL"), 2.0 * 5.0);
    // Two keys per account and one in the RSP, over each transport: counted.
    assert_eq!(m.sum("tocsin_key_blocks_total", &[]), 2.0 * 11.0);

    // Supervision: G names the path, a JSON block never does.
    for a in accounts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["supervised"] == true)
    {
        let (code, body) =
            rx.d.get(&format!("/diag/{}", s(a, "id")))
                .expect("GET /diag");
        assert_eq!(code, 200, "{body}");
        let diag: Value = serde_json::from_str(&body).expect("diag JSON");
        let paths: Vec<&str> = diag["paths"]
            .as_array()
            .expect("paths")
            .iter()
            .map(|p| s(p, "path"))
            .collect();
        for p in ["G1", "G2", "G3"] {
            assert!(paths.contains(&p), "{p} in {paths:?}");
        }
        assert!(
            paths.iter().all(|p| !p.starts_with('J')),
            "no J path at all here (every J block siadc09 sends is JSON): {paths:?}"
        );
    }

    // The bus gets every event, and nothing else.
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let url = nats.url();
    let expected = history.len() as u64;
    let published = rt.block_on(bus::wait_until_async(
        std::time::Duration::from_secs(30),
        "every event on the bus",
        || {
            let url = url.clone();
            async move {
                bus::stream_count(&url, "TOCSIN")
                    .await
                    .filter(|&n| n >= expected)
            }
        },
    ));
    assert_eq!(published, expected);
    let messages = rt.block_on(bus::read_stream(&url, "TOCSIN"));
    rx.d.stop();

    // No key siadc09 sent is in the journal, on stdout, in the logs, on the bus (messages
    // and nats-server's own store), nor in what `tocsin history` and `tocsin decode` print.
    let mut places: Vec<(String, Vec<u8>)> = files_under(&rx.d.data_dir)
        .into_iter()
        .chain(files_under(nats.store_dir()))
        .map(|(p, b)| (p.display().to_string(), b))
        .collect();
    places.push((
        "stdout".into(),
        rx.d.events()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
            .into_bytes(),
    ));
    places.push(("stderr".into(), rx.d.stderr().into_bytes()));
    for m in &messages {
        places.push((
            format!("bus message {}", m.stream_seq),
            m.payload.to_string().into_bytes(),
        ));
    }
    let (_, all_history, _) = run_cli(&[
        "history",
        "--data-dir",
        rx.d.data_dir.to_str().unwrap(),
        "--format",
        "json",
    ]);
    // stdout holds, line for line and byte for byte, the events `tocsin history` prints
    // (the sink slices the JSON stored in the journal, history parses and writes it again).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rx.d.stdout_lines().len() < all_history.lines().count()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let printed = rx.d.stdout_lines();
    let history_lines: Vec<&str> = all_history.lines().collect();
    assert_eq!(
        printed.len(),
        history_lines.len(),
        "stdout and history lines"
    );
    for (out, hist) in printed.iter().zip(&history_lines) {
        assert_eq!(out, hist, "stdout and history differ");
    }
    places.push(("tocsin history".into(), all_history.into_bytes()));
    let key_of: std::collections::HashMap<&str, Option<&str>> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (s(a, "id"), a["key"].as_str()))
        .collect();
    for (_, c) in &cases {
        let mut args = vec!["decode", "--no-time-check", s(c, "frame")];
        if let Some(Some(k)) = key_of.get(s(c, "account")) {
            args.extend(["--key", k]);
        }
        let (_, out, err) = run_cli(&args);
        places.push((
            format!("tocsin decode {}", s(c, "name")),
            format!("{out}{err}").into_bytes(),
        ));
    }
    let mut sent_keys = 0;
    for (_, c) in &cases {
        sent_keys += c["ext"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["letter"] == "K")
            .count();
    }
    assert!(sent_keys >= 20, "{sent_keys} keys sent");
    for key in keys.iter().map(|k| k.as_str().unwrap()) {
        for (place, bytes) in &places {
            assert!(!holds_key(bytes, key), "key {key} found in {place}");
        }
    }
    // The check can fail: the frames siadc09 sent hold the keys.
    assert!(cases
        .iter()
        .any(|(_, c)| holds_key(s(c, "frame").as_bytes(), keys[0].as_str().unwrap())));

    // Every SIA and Contact ID code siadc09 knows, tocsin knows.
    let codes = siadc09(scratch.path(), &["codes"]);
    let unknown_sia: Vec<&str> = codes["sia"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .filter(|c| tocsin::protocol::codes::sia_code(c).is_none())
        .collect();
    let unknown_cid: Vec<&str> = codes["cid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .filter(|c| {
            c.parse()
                .ok()
                .and_then(tocsin::protocol::codes::cid_code)
                .is_none()
        })
        .collect();
    assert!(
        unknown_sia.is_empty() && unknown_cid.is_empty(),
        "unknown to tocsin: SIA {unknown_sia:?}, Contact ID {unknown_cid:?}"
    );
    assert!(codes["sia"].as_array().unwrap().len() > 300);
    assert!(codes["cid"].as_array().unwrap().len() > 300);
}
