//! Station redundancy end to end: real `nats-server` processes (a three-node JetStream
//! cluster on loopback, or one node), real `tocsin run` receivers, panels on real sockets.
//!
//! - [`station_survives_a_bus_node_and_a_receiver`]: two receivers active-active on an R3
//!   stream, dual-path panels spread over both (and `tocsin load --fallback`). Mid-load
//!   the stream's leader node is killed with SIGKILL and started again, then one receiver.
//!   Every frame any panel saw ACKed is in the stream exactly once, by `Nats-Msg-Id` and by
//!   its content; no panel saw a NAK; ACKs went on while the bus elected a new leader.
//!   Prints one `cluster-check:` line that `scripts/cluster-loop.sh` collects.
//! - [`a_server_that_lost_acknowledged_events_gets_them_back`]: one node loses the last
//!   events it acknowledged (its store is put back as it was earlier, as a crash before
//!   its writes reached the disk leaves it); after it restarts every one is back, once.
//!   (Deleting the last messages through the JetStream API would be simpler, but
//!   nats-server 2.9 then forgets the ids of the remaining ones on restart.)
//!
//! Deadlines only bound a hung test; the failover time is printed, not asserted (the bar
//! is measured on a quiet machine).

mod bus;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bus::cluster::NatsCluster;
use bus::dual::{latency_ms, run_dual_panels, tally, PanelLog};
use bus::{
    check_messages, panel_frames, read_stream, run_panels, stream_count, wait_until, NatsServer,
    StreamMessage, Tocsin, TocsinOptions, BACKLOG, CONNECTED, PUBLISHED, REPUBLISHED_DUPLICATE,
    REPUBLISHED_RESTORED,
};

const STREAM: &str = "TOCSIN";
const EVENTUAL: Duration = Duration::from_secs(90);

/// Events acknowledged by the bus to this receiver, first publishes and republishes.
fn pubacks(t: &Tocsin) -> f64 {
    let m = t.metrics();
    [PUBLISHED, REPUBLISHED_DUPLICATE, REPUBLISHED_RESTORED]
        .iter()
        .map(|k| m.get(*k).copied().unwrap_or(0.0))
        .sum()
}

/// Waits until every receiver's backlog is 0 and the stream stops growing, then reads it.
async fn settle(url: &str, daemons: &[&Tocsin]) -> Vec<StreamMessage> {
    for d in daemons {
        wait_until(EVENTUAL, "backlog back to 0", || {
            (d.metric(BACKLOG) == Some(0.0)).then_some(())
        });
    }
    // Not a timing assertion: two equal counts 700 ms apart, so a late duplicate shows.
    let start = Instant::now();
    let mut last = None;
    loop {
        let count = stream_count(url, STREAM).await;
        if count.is_some() && count == last {
            break;
        }
        assert!(start.elapsed() < EVENTUAL, "the stream kept changing");
        last = count;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    read_stream(url, STREAM).await
}

/// `tocsin load` with a fallback path, until SIGINT: its JSON summary.
struct Load {
    child: std::process::Child,
}

impl Load {
    fn start(to: std::net::SocketAddr, fallback: std::net::SocketAddr) -> Load {
        let child = Command::new(env!("CARGO_BIN_EXE_tocsin"))
            .args([
                "load",
                "--to",
                &to.to_string(),
                "--fallback",
                &fallback.to_string(),
            ])
            .args([
                "--conns",
                "4",
                "--duration",
                "10m",
                "--rate",
                "80",
                "--timeout",
                "4s",
            ])
            .args(["--mix", "sia,cid", "--json"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tocsin load");
        Load { child }
    }

    /// Ctrl-C ends the run with its summary.
    fn finish(mut self) -> serde_json::Value {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let out = wait_until(Duration::from_secs(30), "tocsin load to exit", || {
            self.child.try_wait().ok().flatten()
        });
        let mut text = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            use std::io::Read;
            let _ = s.read_to_string(&mut text);
        }
        serde_json::from_str(text.trim())
            .unwrap_or_else(|e| panic!("tocsin load ({out}) printed no JSON ({e}): {text}"))
    }
}

/// What the station test checks at the end; a check added later (supervision across the
/// station) takes the same inputs.
struct Outcome<'a> {
    logs: &'a [PanelLog],
    load: &'a serde_json::Value,
    msgs: &'a [StreamMessage],
    /// When the panels stopped (wall clock, RFC 3339): a site heard until then by either
    /// receiver was never silent before it.
    stopped_at: String,
}

fn assert_no_nak(o: &Outcome<'_>) {
    let naks: u64 = o.logs.iter().map(|l| l.naks).sum();
    let given_up: u64 = o.logs.iter().map(|l| l.given_up).sum();
    assert_eq!(naks, 0, "dual-path panels saw NAKs");
    assert_eq!(given_up, 0, "a frame was answered by neither receiver");
    assert_eq!(o.load["nak"], 0, "tocsin load saw NAKs: {}", o.load);
    assert_eq!(
        o.load["given_up"], 0,
        "tocsin load gave frames up: {}",
        o.load
    );
}

fn assert_every_ack_once(o: &Outcome<'_>) {
    // Every message of the stream: a distinct Nats-Msg-Id that is its event's id.
    check_messages(o.msgs);
    let t = tally(o.logs, o.msgs);
    let switches: u64 = o.logs.iter().map(|l| l.switches).sum();
    println!(
        "cluster-check: acked={} lost={} duplicated={} stream={} switches={} load_path_switches={}",
        t.acked,
        t.lost,
        t.duplicated,
        o.msgs.len(),
        switches,
        o.load["path_switches"]
    );
    assert!(t.acked > 500, "too few frames to mean anything: {t:?}");
    assert_eq!(
        (t.lost, t.duplicated),
        (0, 0),
        "ACKed frames lost or duplicated in the stream"
    );
}

/// Supervision spans the station: every panel kept reporting to one receiver or the other
/// until the end, through the bus node's death and a receiver's, so no failure of a
/// silence that began before the panels stopped may appear (failures after they stopped
/// are real: the sites did fall silent then).
fn assert_no_false_failure(o: &Outcome<'_>) {
    let mut failures = 0;
    for m in o.msgs {
        let e = &m.payload;
        let code = e["code"].as_str().unwrap_or("");
        if !matches!(code, "comm_fail" | "path_fail") {
            continue;
        }
        failures += 1;
        let silent_since = e["event_time"].as_str().unwrap_or("");
        assert!(
            silent_since >= o.stopped_at.as_str(),
            "supervision failure while the site kept reporting (panels stopped at {}): {e}",
            o.stopped_at
        );
    }
    println!("supervision: {failures} failures, all after the panels stopped");
}

/// Supervised accounts: the dual-path panels' and `tocsin load`'s, with an interval short
/// enough that a site one receiver cannot see would fail within the test.
fn supervised_accounts(accounts: &[String]) -> String {
    let load = (0..4).map(|i| format!("{}", 100_000 + i));
    accounts
        .iter()
        .cloned()
        .chain(load)
        .map(|id| format!("[[account]]\nid = \"{id}\"\nsupervision = \"6s\"\n\n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn station_survives_a_bus_node_and_a_receiver() {
    let mut cluster = NatsCluster::start(3);
    cluster.wait_jetstream().await;
    // Production settings but the replicas: the failover time printed is the real one.
    let accounts: Vec<String> = (0..16).map(|i| format!("{}", 70_000 + i)).collect();
    let supervised = supervised_accounts(&accounts);
    let options = |id: &str| {
        let mut o = TocsinOptions::servers(id, &cluster.urls());
        o.nats_extra = "replicas = 3\n".into();
        o.extra = supervised.clone();
        o
    };
    let mut a = Tocsin::start(&options("rx-a"));
    let b = Tocsin::start(&options("rx-b"));
    for t in [&a, &b] {
        wait_until(EVENTUAL, "both receivers connected to the bus", || {
            (t.metric(CONNECTED)? == 1.0).then_some(())
        });
    }
    cluster.wait_stream_healthy(STREAM, 3).await;

    // 16 dual-path panels (half on each receiver first), 40 frames/s each, and 4 more from
    // `tocsin load` with rx-a as primary.
    let accounts: Vec<String> = (0..16).map(|i| format!("{}", 70_000 + i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let panels = tokio::spawn(run_dual_panels(
        accounts,
        a.panel_addr,
        b.panel_addr,
        Duration::from_millis(25),
        Arc::clone(&stop),
    ));
    let load = Load::start(a.panel_addr, b.panel_addr);
    let started = Instant::now();
    wait_until(EVENTUAL, "events published by both receivers", || {
        (a.metric(PUBLISHED)? >= 200.0 && b.metric(PUBLISHED)? >= 200.0).then_some(())
    });

    // The stream leader's node dies.
    let leader = cluster
        .stream_leader(STREAM)
        .await
        .expect("the stream has a leader");
    let killed = Instant::now();
    cluster.node(&leader).kill();
    // PubAcks already on the wire when the node died land within moments; any later one
    // comes from a new leader.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (pa, pb) = (pubacks(&a), pubacks(&b));
    let back = |t: &Tocsin, before: f64| {
        wait_until(EVENTUAL, "the sink publishing again", || {
            (pubacks(t) > before).then(|| killed.elapsed())
        })
    };
    let failover_a = back(&a, pa);
    let failover_b = back(&b, pb);
    let resumed = Instant::now();
    println!(
        "failover: stream leader {leader} killed; publishing again after {:.2} s (rx-a), {:.2} s (rx-b)",
        failover_a.as_secs_f64(),
        failover_b.as_secs_f64()
    );
    if std::env::var_os("TOCSIN_TEST_LOGS").is_some() {
        println!("rx-a log:\n{}\nrx-b log:\n{}", a.log(), b.log());
        for n in &cluster.nodes {
            for l in n.log().lines().filter(|l| l.contains("leader")) {
                println!("{}: {l}", n.name.as_deref().unwrap_or("?"));
            }
        }
    }
    cluster.node(&leader).restart();
    cluster.wait_stream_healthy(STREAM, 3).await;

    // Then one receiver dies; its panels move to the other one, and it comes back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.restart();
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A panel's last frame left up to a timeout before this: a real silence after the stop
    // may be dated a little earlier; a false one began at the latest at the receiver's
    // death, several seconds before.
    let stopped_at =
        tocsin::receiver::event::rfc3339(time::UtcDateTime::now() - time::Duration::seconds(2))
            .to_string();
    stop.store(true, Ordering::Relaxed);
    let logs = panels.await.expect("panels");
    let load = load.finish();
    let ended = Instant::now();

    let (n0, p50_0, p99_0, max_0) = latency_ms(&logs, started, killed);
    let (n1, p50_1, p99_1, max_1) = latency_ms(&logs, killed, resumed);
    let (n2, p50_2, p99_2, max_2) = latency_ms(&logs, resumed, ended);
    println!(
        "ack latency ms (count p50 p99 max): before {n0} {p50_0:.1} {p99_0:.1} {max_0:.1}; \
         during the election {n1} {p50_1:.1} {p99_1:.1} {max_1:.1}; after {n2} {p50_2:.1} {p99_2:.1} {max_2:.1}"
    );
    // Reception never waits on the bus: panels were answered while it had no leader.
    assert!(
        n1 > 0,
        "no ACK while the bus elected a new leader ({:?})",
        resumed - killed
    );
    assert!(
        load["path_switches"].as_u64().unwrap_or(0) >= 1,
        "tocsin load never moved to its fallback: {load}"
    );

    let msgs = settle(&cluster.any_url(), &[&a, &b]).await;
    let outcome = Outcome {
        logs: &logs,
        load: &load,
        msgs: &msgs,
        stopped_at,
    };
    assert_no_nak(&outcome);
    assert_every_ack_once(&outcome);
    assert_no_false_failure(&outcome);
    let bus = a.status().expect("/status of rx-a")["bus"].clone();
    assert_eq!(bus["stream"]["replicas"], 3, "{bus}");
    assert!(bus["stream"]["leader"].is_string(), "{bus}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_lost_acknowledged_events_gets_them_back() {
    let mut nats = NatsServer::start();
    let tocsin = Tocsin::start(&TocsinOptions::new("rx-a", &nats.url()));
    let first = run_panels(tocsin.panel_addr, panel_frames(8000, 3, 50), Duration::ZERO).await;
    assert_eq!(first.ack, 150, "{first:?}");
    assert_eq!(settle(&nats.url(), &[&tocsin]).await.len(), 150);
    // A copy of the server's store as it is now (taken with the server down, so the copy
    // is whole): restoring it later is a server that lost what it acknowledged since.
    nats.kill();
    let store = nats.store_dir().join("js");
    let copy = nats.store_dir().join("js-copy");
    let copied = Command::new("cp").arg("-a").arg(&store).arg(&copy).status();
    assert!(copied.is_ok_and(|s| s.success()), "copy of the store");
    nats.restart();
    let second = run_panels(tocsin.panel_addr, panel_frames(8100, 2, 25), Duration::ZERO).await;
    assert_eq!(second.ack, 50, "{second:?}");
    let before = settle(&nats.url(), &[&tocsin]).await;
    assert_eq!(before.len(), 200);
    let ids: HashSet<String> = check_messages(&before);

    nats.kill();
    std::fs::remove_dir_all(&store).expect("remove the store");
    std::fs::rename(&copy, &store).expect("restore the earlier store");
    nats.restart();
    assert_eq!(
        stream_count(&nats.url(), STREAM).await,
        Some(150),
        "the bus lost 50 events"
    );

    wait_until(EVENTUAL, "the lost events published again", || {
        (tocsin.metric(REPUBLISHED_RESTORED)? >= 50.0).then_some(())
    });
    let after = settle(&nats.url(), &[&tocsin]).await;
    assert_eq!(
        after.len(),
        200,
        "every acknowledged event back, once\n{}",
        tocsin.log()
    );
    assert_eq!(check_messages(&after), ids, "the same events");
    assert_eq!(tocsin.metric(REPUBLISHED_RESTORED), Some(50.0));
    assert!(
        tocsin
            .log()
            .contains("the bus had lost events it had acknowledged"),
        "{}",
        tocsin.log()
    );
}
