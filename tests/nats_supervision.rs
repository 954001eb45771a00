//! Supervision spanning the station: two real `tocsin run` receivers on one real
//! `nats-server -js`, a panel on a real TCP socket reporting to one of them only.
//!
//! - While the panel reports to A, B raises no failure: a site is silent only when no
//!   receiver heard it.
//! - When it falls silent, both raise the failure, under one id, so the stream keeps one
//!   message (the consoles see it once); heard again, one restore, likewise.
//! - With the bus down, a silent site's failure still comes, late by the hold at most,
//!   never missed; once the bus is back the stream holds it once.
//! - A receiver started while the bus is down does not know its peers yet: it holds its
//!   failures until it reads the station's beats, and so raises none for a site only its
//!   peer hears.
//!
//! No timing assertion is tight: deadlines bound a hung test; the one lower bound (the
//! hold did delay the failure) cannot be broken by a slow machine.

mod bus;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::{
    http_get, read_stream, stream_count, wait_until, wait_until_async, NatsServer, Panel, Tocsin,
    TocsinOptions, BACKLOG,
};
use serde_json::Value;
use time::UtcDateTime;
use tocsin::protocol::dc09::CrcForm;
use tocsin::protocol::encode::{encode, FrameSpec};

const STREAM: &str = "TOCSIN";
const ACCOUNT: &str = "3001";
/// Interval 6 s, grace 1 s, and 3 s for a peer's news: a failure 10 s after the last poll.
const SUPERVISION: &str = "6s";
const HOLD_S: u64 = 6;

fn options(id: &str, url: &str) -> TocsinOptions {
    options_with_hold(id, url, HOLD_S)
}

fn options_with_hold(id: &str, url: &str, hold_s: u64) -> TocsinOptions {
    let mut o = TocsinOptions::new(id, url);
    o.nats_extra.push_str(&format!(
        "\n[supervision]\nhold = \"{hold_s}s\"\n\n[[account]]\nid = \"{ACCOUNT}\"\nsupervision = \"{SUPERVISION}\"\n"
    ));
    o
}

/// A clear NULL poll from the account.
fn poll(seq: u16) -> Vec<u8> {
    let seq = format!("{seq:04}");
    let spec = FrameSpec {
        token: "NULL",
        seq: &seq,
        receiver: None,
        line: "0",
        account: ACCOUNT,
        data: b"",
        ext: &[],
        timestamp: Some(UtcDateTime::now()),
        form: CrcForm::Ascii,
    };
    let mut out = Vec::new();
    encode(&spec, None, &[0; 16], &mut out);
    out
}

/// The supervision events a receiver journaled for the account, oldest first.
fn supervision_events(data_dir: &Path) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_tocsin"))
        .arg("history")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--format", "json", "--account", ACCOUNT])
        .output()
        .expect("run tocsin history");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["class"] == "supervision")
        .collect()
}

/// How long after the last hearing a failure event was raised, by the receiver's own
/// stamps: `received_at` minus `event_time` (the start of the silence).
fn raised_after(e: &Value) -> Duration {
    let t = |field: &str| {
        let text = e[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {e}"));
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|err| panic!("{field} {text}: {err}"))
    };
    Duration::try_from(t("received_at") - t("event_time")).unwrap_or_default()
}

fn with_code<'a>(events: &'a [Value], code: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["code"] == code).collect()
}

/// Waits until `t` journaled `n` events of `code`; returns them.
fn wait_code(t: &Tocsin, code: &str, n: usize, within: Duration) -> Vec<Value> {
    wait_until(within, &format!("{n} {code} at {}", t.http_addr), || {
        let ev = supervision_events(t.data_dir.path());
        let found: Vec<Value> = with_code(&ev, code).into_iter().cloned().collect();
        (found.len() >= n).then_some(found)
    })
}

fn status(t: &Tocsin) -> Value {
    http_get(t.http_addr, "/status")
        .and_then(|(_, body)| serde_json::from_str(&body).ok())
        .unwrap_or(Value::Null)
}

/// Waits until each receiver hears the other.
fn wait_peers(a: &Tocsin, b: &Tocsin) {
    for (t, peer) in [(a, "rx-b"), (b, "rx-a")] {
        wait_until(
            Duration::from_secs(30),
            &format!("peer {peer} live"),
            || {
                let s = status(t);
                s["supervision"]["peers"]
                    .as_array()?
                    .iter()
                    .any(|p| p["receiver"] == peer && p["state"] == "live")
                    .then_some(())
            },
        );
    }
}

/// The stream's supervision messages for the account, once both sinks caught up.
async fn stream_supervision(url: &str, daemons: &[&Tocsin]) -> Vec<bus::StreamMessage> {
    for d in daemons {
        wait_until(Duration::from_secs(60), "sink backlog 0", || {
            (d.metric(BACKLOG) == Some(0.0)).then_some(())
        });
    }
    let u = url.to_string();
    wait_until_async(Duration::from_secs(30), "the stream", || {
        let u = u.clone();
        async move { stream_count(&u, STREAM).await }
    })
    .await;
    // A grace period so that a late duplicate would show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    read_stream(url, STREAM)
        .await
        .into_iter()
        .filter(|m| m.payload["account"] == ACCOUNT && m.payload["class"] == "supervision")
        .collect()
}

fn codes(msgs: &[bus::StreamMessage]) -> Vec<String> {
    msgs.iter()
        .map(|m| m.payload["code"].as_str().unwrap_or("?").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_site_heard_by_one_receiver_is_silent_to_none() {
    let nats = NatsServer::start();
    let a = Tocsin::start(&options("rx-a", &nats.url()));
    let b = Tocsin::start(&options("rx-b", &nats.url()));
    wait_peers(&a, &b);

    // Polls to A only, one a second, for 14 s (past B's 10 s, had B only its own ears),
    // and on while the receivers are looked at.
    let polling = Arc::new(AtomicBool::new(true));
    let poller = {
        let (polling, addr) = (Arc::clone(&polling), a.panel_addr);
        tokio::spawn(async move {
            let mut panel = Panel::connect(addr).await;
            let mut seq = 0;
            let mut last_ack = Instant::now();
            while polling.load(Ordering::Acquire) {
                seq += 1;
                assert_eq!(panel.send(&poll(seq)).await, "ACK");
                last_ack = Instant::now();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            (panel, seq, last_ack)
        })
    };
    tokio::time::sleep(Duration::from_secs(14)).await;
    for t in [&a, &b] {
        let s = status(t);
        assert_eq!(s["supervision"]["failed"], 0, "{s}");
        let ev = supervision_events(t.data_dir.path());
        assert_eq!(
            ev,
            Vec::<Value>::new(),
            "a failure while A hears the site:\n{}",
            t.log()
        );
    }
    polling.store(false, Ordering::Release);
    let (mut panel, seq, silent) = poller.await.expect("poller");
    assert!(seq >= 14, "{seq} polls");

    // Silence: both raise it, under one id.
    let fa = wait_code(&a, "comm_fail", 1, Duration::from_secs(40));
    let fb = wait_code(&b, "comm_fail", 1, Duration::from_secs(40));
    println!(
        "station-wide supervision: failure raised {:.1} s (rx-a) and {:.1} s (rx-b) after the \
         last poll (interval 6 s + grace 1 s + share delay 3 s); seen {:.1} s after it",
        raised_after(&fa[0]).as_secs_f64(),
        raised_after(&fb[0]).as_secs_f64(),
        silent.elapsed().as_secs_f64()
    );
    assert_eq!(fa.len(), 1, "{fa:#?}");
    assert_eq!(fb.len(), 1, "{fb:#?}");
    assert_eq!(
        fa[0]["id"], fb[0]["id"],
        "one failure, one id: {fa:#?} {fb:#?}"
    );
    assert_eq!(
        (fa[0]["receiver"].as_str(), fb[0]["receiver"].as_str()),
        (Some("rx-a"), Some("rx-b"))
    );

    // Heard again (by A): one restore, one id.
    assert_eq!(panel.send(&poll(seq + 1)).await, "ACK");
    let ra = wait_code(&a, "comm_restore", 1, Duration::from_secs(30));
    let rb = wait_code(&b, "comm_restore", 1, Duration::from_secs(30));
    assert_eq!(ra[0]["id"], rb[0]["id"], "{ra:#?} {rb:#?}");

    // The consoles' view: the stream keeps each once.
    let msgs = stream_supervision(&nats.url(), &[&a, &b]).await;
    assert_eq!(codes(&msgs), ["comm_fail", "comm_restore"], "{msgs:#?}");
    assert_eq!(msgs[0].msg_id.as_deref(), fa[0]["id"].as_str());
    assert_eq!(msgs[1].msg_id.as_deref(), ra[0]["id"].as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_bus_down_a_failure_is_late_never_missed() {
    let mut nats = NatsServer::start();
    let a = Tocsin::start(&options("rx-a", &nats.url()));
    let b = Tocsin::start(&options("rx-b", &nats.url()));
    wait_peers(&a, &b);

    let mut panel = Panel::connect(a.panel_addr).await;
    for seq in 1..=3 {
        if seq > 1 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        assert_eq!(panel.send(&poll(seq)).await, "ACK");
    }
    let last_poll = Instant::now();
    // The last beat reaches B, then the bus dies; the site stays silent. The peers are
    // unheard 5 s later, before the 10 s deadline.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    nats.kill();

    let fa = wait_code(&a, "comm_fail", 1, Duration::from_secs(60));
    let fb = wait_code(&b, "comm_fail", 1, Duration::from_secs(60));
    let (late_a, late_b) = (raised_after(&fa[0]), raised_after(&fb[0]));
    println!(
        "bus down: failure raised {:.1} s (rx-a) and {:.1} s (rx-b) after the last poll \
         (10 s with the bus up, hold {HOLD_S} s); seen {:.1} s after it",
        late_a.as_secs_f64(),
        late_b.as_secs_f64(),
        last_poll.elapsed().as_secs_f64()
    );
    // Held: the peers were unheard by the 10 s deadline, so the failure waited for the hold
    // (16 s); at worst late by the hold, not missed.
    for (late, t) in [(late_a, &a), (late_b, &b)] {
        assert!(
            late >= Duration::from_secs(15),
            "not held: {late:?}\n{}",
            t.log()
        );
    }
    assert!(
        a.log().contains("peer receiver rx-b unheard"),
        "{}",
        a.log()
    );
    assert_eq!(fa[0]["id"], fb[0]["id"], "{fa:#?} {fb:#?}");

    // The bus is back: both publish their journal, the stream keeps the failure once.
    nats.restart();
    let msgs = stream_supervision(&nats.url(), &[&a, &b]).await;
    assert_eq!(codes(&msgs), ["comm_fail"], "{msgs:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_started_without_the_bus_waits_for_its_peers() {
    let mut nats = NatsServer::start();
    let b = Tocsin::start(&options("rx-b", &nats.url()));
    // The site reports to B only, once a second, all along.
    let polling = Arc::new(AtomicBool::new(true));
    let poller = {
        let (polling, addr) = (Arc::clone(&polling), b.panel_addr);
        tokio::spawn(async move {
            let mut panel = Panel::connect(addr).await;
            let mut seq = 0;
            while polling.load(Ordering::Acquire) {
                seq += 1;
                assert_eq!(panel.send(&poll(seq)).await, "ACK");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            seq
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A starts while the bus is down: it has never heard the site, nor any peer. Past
    // its own deadline for the site (interval 6 s + grace 1 s) it must still wait.
    nats.kill();
    let a = Tocsin::start(&options_with_hold("rx-a", &nats.url(), 40));
    tokio::time::sleep(Duration::from_secs(9)).await;
    let s = status(&a);
    assert_eq!(s["supervision"]["holding"], true, "{s}");
    assert_eq!(s["supervision"]["failed"], 0, "{s}");

    // The bus is back: A reads B's beats, learns that B hears the site, and raises nothing.
    nats.restart();
    wait_peers(&a, &b);
    tokio::time::sleep(Duration::from_secs(4)).await;
    polling.store(false, Ordering::Release);
    let seq = poller.await.expect("poller");
    assert!(seq >= 14, "{seq} polls");
    let s = status(&a);
    assert_eq!(s["supervision"]["holding"], false, "{s}");
    let ev = supervision_events(a.data_dir.path());
    assert_eq!(
        ev,
        Vec::<Value>::new(),
        "a failure for a site the peer heard all along:\n{}",
        a.log()
    );
}
