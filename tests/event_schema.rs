//! `docs/event.schema.json` against real events. A real `tocsin run` (TCP and UDP panels,
//! a JSON-lines file output, a supervised site, an automation output whose automation NAKs)
//! makes every kind of event the receiver emits: SIA and Contact ID, clear and encrypted,
//! DC-09-2026 extended data (`json`, `text_encoding` both ways, network path and address,
//! supervision category), an unknown account accepted and then refused after a reload, a
//! clear frame where encryption is required, a substitution, `path_fail`, `path_restore`,
//! `comm_fail`, `comm_restore`, open/close, trouble and `automation_set_aside`. Every event,
//! as `tocsin history` prints it, as the JSON-lines file holds it and as stdout shows it,
//! plus every event `tocsin decode` makes of the frames of `proto-fixtures/`, is validated
//! with the 2020-12 validator of Python's `jsonschema` (`tests/event_schema.py`), and so is
//! the example event of the README.
//!
//! The schema is closed, so a field the code adds without describing it fails here; each of
//! the schema's properties must be used by some event, so the run keeps covering them all;
//! an optional property must be missing from some event and a nullable one null in some,
//! so the schema says no less than the code does; and the same events are checked against
//! the schema with one property removed, which must fail, so the check itself is known to
//! bite.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{free_port, key_hex, s, tempdir, view, write_file, Daemon, Fb, Tcp, Udp, WAIT};
use serde_json::{json, Value};
use time::UtcDateTime;
use tocsin::forward::surgard::read::Cutter;
use tocsin::offline::decode_one;
use tocsin::protocol::crypto::Key;
use tocsin::protocol::dc09::CrcForm;
use tocsin::protocol::encode::{encode, FrameSpec};
use tocsin::receiver::decide::TimePolicy;

const KEY: &str = "00112233445566778899AABBCCDDEEFF";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An event and where it came from, for the failure messages.
type Labelled = (String, Value);

// ---------------------------------------------------------------------------------------
// The validator
// ---------------------------------------------------------------------------------------

/// A Python with `jsonschema`'s 2020-12 validator: `python3` on the PATH, else the
/// system's (where Debian's `python3-jsonschema` goes).
fn python() -> String {
    let probe = "from jsonschema import Draft202012Validator";
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", probe])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate.to_string();
        }
    }
    panic!(
        "no Python with jsonschema's Draft202012Validator (tried python3 and /usr/bin/python3): \
         this test validates events against docs/event.schema.json with it. Install the Debian \
         package `python3-jsonschema` (apt-get install python3-jsonschema); scripts/test does \
         it when run as root."
    )
}

/// Runs `tests/event_schema.py` on `events` against `schema`: (success, its report).
fn validate(schema: &Path, events: &[Labelled], work: &Path) -> (bool, Value) {
    let lines: String = events
        .iter()
        .map(|(from, e)| format!("{}\n", json!({"from": from, "event": e})))
        .collect();
    let file = write_file(work, "checked.jsonl", &lines);
    let out = Command::new(python())
        .arg(root().join("tests/event_schema.py"))
        .arg(schema)
        .arg(&file)
        .output()
        .expect("run tests/event_schema.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "event_schema.py printed no report ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), report)
}

// ---------------------------------------------------------------------------------------
// Events of the fixtures, as `tocsin decode` makes them
// ---------------------------------------------------------------------------------------

fn fixture_events() -> Vec<Labelled> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("proto-fixtures"))
        .expect("proto-fixtures directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in &files {
        let doc: toml::Table = toml::from_str(&std::fs::read_to_string(file).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let fixtures = doc.get("fixture").and_then(|f| f.as_array());
        for fx in fixtures.into_iter().flatten() {
            let name = fx.get("name").and_then(|n| n.as_str()).unwrap_or("?");
            let raw: Vec<u8> = match (fx.get("frame"), fx.get("frame_hex")) {
                (Some(f), _) => f.as_str().unwrap().as_bytes().to_vec(),
                (_, Some(h)) => hex::decode(h.as_str().unwrap().replace(' ', "")).unwrap(),
                _ => continue,
            };
            let key = match (fx.get("key_hex"), fx.get("key_ascii")) {
                (Some(k), _) => Some(Key::from_hex(k.as_str().unwrap()).unwrap()),
                (_, Some(k)) => Some(Key::from_ascii(k.as_str().unwrap()).unwrap()),
                _ => None,
            };
            let now = fx
                .get("now")
                .and_then(|n| n.as_str())
                .map(|s| {
                    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                        .unwrap()
                        .to_utc()
                })
                .unwrap_or_else(|| time::macros::utc_datetime!(2024-01-15 12:00:00));
            let policy = TimePolicy {
                disabled: fx
                    .get("no_time_check")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
                ..TimePolicy::default()
            };
            let verdict = decode_one(&raw, key.as_ref(), now, &policy);
            let events = verdict["events"].as_array().cloned().unwrap_or_default();
            for (i, e) in events.into_iter().enumerate() {
                out.push((format!("decode of fixture {name}, event {i}"), e));
            }
        }
    }
    out
}

/// The example event of the README's "Event format" section.
fn readme_example() -> Labelled {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split_once("## Event format")
        .expect("README has an Event format section")
        .1;
    let block = section
        .split_once("```json\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a json block in the Event format section")
        .0;
    let event = serde_json::from_str(block)
        .unwrap_or_else(|e| panic!("the README's example event is not JSON ({e}): {block}"));
    ("README example".to_string(), event)
}

// ---------------------------------------------------------------------------------------
// Events of a running daemon
// ---------------------------------------------------------------------------------------

/// A frame with extended blocks, as a DC-09-2026 panel sends it.
fn with_ext(token: &str, account: &str, seq: &str, data: &str, ext: &[(u8, &[u8])]) -> Vec<u8> {
    let spec = FrameSpec {
        token,
        seq,
        receiver: None,
        line: "1",
        account,
        data: data.as_bytes(),
        ext,
        timestamp: Some(UtcDateTime::now()),
        form: CrcForm::Ascii,
    };
    let mut out = Vec::new();
    encode(&spec, None, &[0u8; 16], &mut out);
    out
}

/// Sends `frame` and checks the reply's token (`ACK`, `NAK`).
fn expect_reply(tcp: &mut Tcp, frame: &[u8], token: &str) {
    let reply = tcp.exchange(frame);
    assert_eq!(
        view(&reply).token,
        token,
        "reply {} to {}",
        common::esc(&reply),
        common::esc(frame)
    );
}

/// The automation computer: ACKs every packet but those of account 7777, which it NAKs.
fn automation(addr: SocketAddr) {
    std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        let mut s = loop {
            match TcpStream::connect(addr) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("automation output not reachable: {e}"),
            }
        };
        let mut cut = Cutter::default();
        let mut b = [0u8; 512];
        loop {
            while let Some(p) = cut.next_packet() {
                let refuse = p.windows(6).any(|w| w == b"187777");
                if s.write_all(&[if refuse { 0x15 } else { 0x06 }]).is_err() {
                    return;
                }
            }
            match s.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => cut.push(&b[..n]),
            }
        }
    });
}

fn config(file: &Path, automation: u16, unknown: &str) -> String {
    format!(
        r#"[receiver]
id = "schema"

[accounts]
unknown = "{unknown}"

[output]
stdout = true
file = "{file}"

[[account]]
id = "1001"

[[account]]
id = "2002"
key = "{KEY}"
key_encoding = "hex"
encryption = "required"

[[account]]
id = "3003"
mac = "001122334455"

[[account]]
id = "6006"
supervision = "2s/2s"

[[account]]
id = "7777"

[[automation]]
name = "auto"
listen = "127.0.0.1:{automation}"
ack_timeout = "200ms"
max_attempts = 1
own_account = "9999"
"#,
        file = file.display()
    )
}

/// Waits for the event `code` on stdout, sending `poll` every 300 ms meanwhile.
fn wait_code_polling(d: &Daemon, code: &str, mut poll: impl FnMut()) {
    let deadline = Instant::now() + WAIT;
    while !d.events().iter().any(|e| s(e, "code") == code) {
        assert!(
            Instant::now() < deadline,
            "no {code} event; stderr:\n{}",
            d.stderr()
        );
        poll();
        std::thread::sleep(Duration::from_millis(300));
    }
}

struct RunEvents {
    history: Vec<Value>,
    file: Vec<Value>,
    stdout: Vec<Value>,
}

fn daemon_events(dir: &Path) -> RunEvents {
    let file = dir.join("events.jsonl");
    let auto_port = free_port();
    let cfg = write_file(dir, "tocsin.toml", &config(&file, auto_port, "accept"));
    let mut d = Daemon::start(&cfg, &dir.join("data"));
    automation(([127, 0, 0, 1], auto_port).into());
    let mut tcp = Tcp::connect(d.addr);

    // SIA and Contact ID, over TCP and UDP; alarm, restore, open/close, trouble.
    expect_reply(&mut tcp, &Fb::sia("1001", 1, "Nri1/BA01").clear(), "ACK");
    let udp = Udp::new(d.addr);
    assert_eq!(
        view(&udp.exchange(&Fb::sia("1001", 2, "Nri1/BR01").clear())).token,
        "ACK"
    );
    expect_reply(&mut tcp, &Fb::cid("1001", 3, "1401 01 003").clear(), "ACK");
    expect_reply(&mut tcp, &Fb::cid("1001", 4, "1302 00 000").clear(), "ACK");
    expect_reply(&mut tcp, &Fb::cid("1001", 9, "3401 01 003").clear(), "ACK");
    // The data block names another account than the header.
    let other = with_ext("ADM-CID", "1001", "0005", "#1002|1130 01 015", &[]);
    expect_reply(&mut tcp, &other, "ACK");
    // Data that does not parse still makes an event.
    expect_reply(&mut tcp, &Fb::cid("1001", 6, "nonsense").clear(), "ACK");

    // Encrypted, and clear where encryption is required.
    let sealed = Fb::sia("2002", 1, "Nri1/FA02").sealed(&key_hex(KEY));
    let reply = tcp.exchange(&sealed);
    assert!(view(&reply).encrypted, "{}", common::esc(&reply));
    expect_reply(&mut tcp, &Fb::sia("2002", 2, "Nri1/FA02").clear(), "NAK");

    // An account that is not configured, accepted by policy.
    expect_reply(&mut tcp, &Fb::sia("5555", 1, "Nri1/BA01").clear(), "ACK");

    // DC-09-2026 extended data: every named block, JSON, UTF-8 text; then Windows-1252.
    let json = br#"{"photo": "https://v.example/1.jpg", "n": [1, 2.50]}"#;
    let blocks: [(u8, &[u8]); 17] = [
        (b'G', b"2"),
        (b'J', json),
        (b'C', b"SP4"),
        (b'N', b"0A0B0C0D0E0F"),
        (b'M', b"001122334455"),
        (b'H', b"10:20:30,01-15-2024"),
        (b'L', "Cuisine, près de la porte".as_bytes()),
        (b'V', b"https://v.example/clip"),
        (b'S', "Dépôt nord".as_bytes()),
        (b'O', b"B2"),
        (b'R', b"Hall"),
        (b'I', b"Door forced"),
        (b'X', b"E2.3522"),
        (b'Y', b"N48.8566"),
        (b'Z', b"35"),
        (b'K', b"00112233445566778899AABBCCDDEEFF"),
        (b'P', b"programming"),
    ];
    let frame = with_ext("SIA-DCS", "1001", "0007", "#1001|Nri1/BA03", &blocks);
    expect_reply(&mut tcp, &frame, "ACK");
    let w1252 = with_ext(
        "SIA-DCS",
        "1001",
        "0008",
        "#1001|Nri1/BA04",
        &[(b'L', b"Caf\xe9"), (b'J', b"eth0")],
    );
    expect_reply(&mut tcp, &w1252, "ACK");

    // A panel that shows another MAC than its account's: substitution.
    let sub = with_ext(
        "SIA-DCS",
        "3003",
        "0001",
        "#3003|Nri1/BA01",
        &[(b'M', b"FFEEDDCCBBAA")],
    );
    expect_reply(&mut tcp, &sub, "ACK");

    // An alarm the automation refuses: set aside, and reported.
    expect_reply(&mut tcp, &Fb::cid("7777", 1, "1130 01 001").clear(), "ACK");
    d.wait_events(1, |e| s(e, "code") == "automation_set_aside");

    // Supervision of a two-path site: L1 falls silent while L2 polls (path_fail), L1 again
    // (path_restore), both silent (comm_fail), heard again (comm_restore).
    let mut seq = 0u16;
    let mut poll = |line: &str| {
        seq += 1;
        let f = Fb::null("6006", seq).rl(None, line).clear();
        assert_eq!(view(&Tcp::connect(d.addr).exchange(&f)).token, "ACK");
    };
    poll("1");
    poll("2");
    wait_code_polling(&d, "path_fail", || poll("2"));
    poll("1");
    wait_code_polling(&d, "path_restore", || poll("2"));
    d.wait_events(1, |e| s(e, "code") == "comm_fail");
    poll("1");
    d.wait_events(1, |e| s(e, "code") == "comm_restore");

    // Unknown accounts refused after a reload: the receiver's own event.
    std::fs::write(&cfg, config(&file, auto_port, "reject")).unwrap();
    d.hup();
    d.wait_stderr("configuration reloaded");
    expect_reply(
        &mut Tcp::connect(d.addr),
        &Fb::sia("5556", 1, "Nri1/BA01").clear(),
        "NAK",
    );
    d.wait_events(1, |e| s(e, "code") == "unknown_account");

    // Stopped, the file output has written everything journaled.
    d.stop();
    let text = std::fs::read_to_string(&file).expect("the JSON-lines file");
    let file_events = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file:?} line ({e}): {l}")))
        .collect();
    RunEvents {
        history: d.history(),
        file: file_events,
        stdout: d.events(),
    }
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

#[test]
fn every_event_validates_against_the_schema() {
    let dir = tempdir();
    let run = daemon_events(dir.path());

    // The three outputs carry the same events.
    let ids = |v: &[Value]| {
        let mut ids: Vec<String> = v.iter().map(|e| s(e, "id").to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&run.history), ids(&run.file), "history and file differ");
    assert_eq!(
        ids(&run.history),
        ids(&run.stdout),
        "history and stdout differ"
    );
    for e in &run.history {
        let same_id = |v: &[Value]| v.iter().find(|x| x["id"] == e["id"]).cloned();
        assert_eq!(
            same_id(&run.file).as_ref(),
            Some(e),
            "file and history differ"
        );
        assert_eq!(
            same_id(&run.stdout).as_ref(),
            Some(e),
            "stdout and history differ"
        );
    }
    for code in [
        "BA",
        "BR",
        "401",
        "302",
        "FA",
        "encryption_required",
        "substitution",
        "automation_set_aside",
        "path_fail",
        "path_restore",
        "comm_fail",
        "comm_restore",
        "unknown_account",
    ] {
        assert!(
            run.history.iter().any(|e| s(e, "code") == code),
            "no {code} event in the run"
        );
    }
    assert!(run.history.iter().any(|e| e["unknown_account"] == true));
    assert!(run.history.iter().any(|e| e["encrypted"] == true));

    let mut all: Vec<Labelled> = fixture_events();
    let fixtures = all.len();
    all.push(readme_example());
    assert!(fixtures >= 70, "only {fixtures} fixture events");
    for (source, events) in [
        ("tocsin history", &run.history),
        ("JSON-lines file", &run.file),
        ("stdout", &run.stdout),
    ] {
        for e in events {
            all.push((
                format!("{source}: {} {}", s(e, "account"), s(e, "code")),
                e.clone(),
            ));
        }
    }

    let schema = root().join("docs/event.schema.json");
    let (ok, report) = validate(&schema, &all, dir.path());
    assert!(ok, "events that do not validate: {report:#}");
    assert_eq!(report["checked"], all.len(), "{report:#}");
    assert_eq!(
        report["unused_properties"],
        json!([]),
        "properties of the schema no event used (the run must make them): {report:#}"
    );
    for (list, why) in [
        (
            "optional_always_present",
            "optional in the schema, yet in every event",
        ),
        (
            "nullable_never_null",
            "nullable in the schema, yet never null",
        ),
    ] {
        assert_eq!(report[list], json!([]), "{why}: {report:#}");
    }
    let values = &report["values"];
    for (field, expected) in [
        ("transport", json!(["internal", "offline", "tcp", "udp"])),
        ("protocol", json!(["ADM-CID", "SIA-DCS", "tocsin"])),
        ("text_encoding", json!(["utf-8", "windows-1252"])),
        ("arming", json!(["closing", "opening"])),
        (
            "code of protocol tocsin",
            json!([
                "automation_set_aside",
                "comm_fail",
                "comm_restore",
                "encryption_required",
                "path_fail",
                "path_restore",
                "substitution",
                "unknown_account"
            ]),
        ),
    ] {
        assert_eq!(values[field], expected, "{field}: {report:#}");
    }

    // The check bites: without one of its properties, the schema rejects these events.
    let mut broken: Value =
        serde_json::from_str(&std::fs::read_to_string(&schema).unwrap()).unwrap();
    broken["properties"]
        .as_object_mut()
        .unwrap()
        .remove("sia_data");
    let broken_path = write_file(dir.path(), "broken.schema.json", &broken.to_string());
    let (ok, report) = validate(&broken_path, &all, dir.path());
    assert!(
        !ok,
        "a schema without sia_data accepted every event: {report:#}"
    );
    let failures = report["failure_count"].as_u64().unwrap();
    assert!(failures > 0, "{report:#}");
    eprintln!(
        "{} events validated ({fixtures} from the fixtures, {} per output of the run)",
        all.len(),
        run.history.len()
    );
}
