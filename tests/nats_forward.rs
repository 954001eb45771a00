//! The NATS JetStream sink end to end: real `nats-server -js`, real `tocsin run` processes,
//! panels on real TCP sockets. What is checked is the bus contract of the design: every
//! acknowledged event reaches the stream exactly once (by `Nats-Msg-Id`), also across a
//! crash of the bus and with two receivers getting the same frames; reception never waits
//! on the bus; per-account order is kept.
//!
//! No timing assertions: every wait has a generous deadline that only bounds a hung test.

mod bus;

use std::collections::HashSet;
use std::time::Duration;

use bus::{
    check_messages, panel_frames, read_stream, run_panels, stream_count, wait_until,
    wait_until_async, NatsServer, Replies, Tocsin, TocsinOptions, BACKLOG, CONNECTED, PUBLISHED,
};

const STREAM: &str = "TOCSIN";
/// Long enough for a catch-up on a loaded 2-core machine; a healthy run takes seconds.
const EVENTUAL: Duration = Duration::from_secs(60);

/// Waits until the stream holds at least `n` messages and the daemons' backlogs are 0, then
/// a little longer so that a late duplicate would show, and returns the messages.
async fn settle(nats: &NatsServer, daemons: &[&Tocsin], n: u64) -> Vec<bus::StreamMessage> {
    let url = nats.url();
    wait_until_async(EVENTUAL, &format!("{n} messages in the stream"), || {
        let url = url.clone();
        async move { stream_count(&url, STREAM).await.filter(|&c| c >= n) }
    })
    .await;
    for d in daemons {
        wait_until(EVENTUAL, "backlog back to 0", || {
            (d.metric(BACKLOG) == Some(0.0)).then_some(())
        });
    }
    // Not a timing assertion: a grace period for anything still on its way to land, so
    // that "exactly n" below also catches a late duplicate.
    tokio::time::sleep(Duration::from_millis(500)).await;
    read_stream(&url, STREAM).await
}

fn assert_all_acked(r: &Replies, n: u64) {
    assert_eq!(
        *r,
        Replies {
            ack: n,
            ..Replies::default()
        },
        "every frame must get an ACK (no NAK, no timeout)"
    );
}

/// 500 events over 10 panel connections → exactly 500 messages, distinct ids, each payload
/// an event with its id in the header, subjects by account and class.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_lands_once() {
    let nats = NatsServer::start();
    let tocsin = Tocsin::start(&TocsinOptions::new("rx-a", &nats.url()));
    let panels = panel_frames(1000, 10, 50);
    let replies = run_panels(tocsin.panel_addr, panels, Duration::ZERO).await;
    assert_all_acked(&replies, 500);

    let msgs = settle(&nats, &[&tocsin], 500).await;
    assert_eq!(msgs.len(), 500, "messages in the stream");
    let ids = check_messages(&msgs);
    assert_eq!(ids.len(), 500);
    let accounts: HashSet<_> = msgs
        .iter()
        .map(|m| m.payload["account"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(accounts.len(), 10, "one account per panel");
    for m in &msgs {
        assert_eq!(m.payload["receiver"], "rx-a");
    }
    assert_eq!(tocsin.metric(PUBLISHED), Some(500.0), "published_total");
    // One delivery sample per record (here one event each), at its last PubAck.
    assert_eq!(
        tocsin.metric("tocsin_sink_delivery_seconds_count{sink=\"nats\"}"),
        Some(500.0),
        "delivery latency samples"
    );
}

/// The bus dies (SIGKILL) in the middle of the load: panels keep getting ACKs, the backlog
/// grows, and after a restart on the same store the stream holds every event exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bus_crash_loses_nothing_and_duplicates_nothing() {
    let mut nats = NatsServer::start();
    let tocsin = Tocsin::start(&TocsinOptions::new("rx-a", &nats.url()));
    let addr = tocsin.panel_addr;

    // 10 panels × 60 frames, paced so the load spans the crash.
    let load = tokio::spawn(run_panels(
        addr,
        panel_frames(2000, 10, 60),
        Duration::from_millis(10),
    ));
    wait_until(EVENTUAL, "some events published before the crash", || {
        (tocsin.metric(PUBLISHED)? >= 100.0).then_some(())
    });
    nats.kill();
    // While the bus is down reception goes on; the backlog shows it.
    let backlog = wait_until(EVENTUAL, "a backlog while the bus is down", || {
        tocsin.metric(BACKLOG).filter(|&b| b > 0.0)
    });
    assert!(backlog > 0.0);
    // The sink notices (acks time out or the connection fails) and goes into its retry
    // loop; a second wave then arrives entirely while it is disconnected.
    wait_until(EVENTUAL, "the sink to notice the bus is gone", || {
        (tocsin.metric(CONNECTED)? == 0.0).then_some(())
    });
    let down = run_panels(addr, panel_frames(3000, 5, 20), Duration::ZERO).await;
    let first = load.await.expect("load task");
    assert!(!nats.is_running());
    assert_all_acked(&first, 600);
    assert_all_acked(&down, 100);
    // All 700 frames are journaled (one record each) and the bus is down: the backlog must
    // count every record not yet published, the second wave's included (a gauge frozen at
    // its value from before the outage would not).
    wait_until(
        EVENTUAL,
        "the backlog to count every unpublished record",
        || {
            let m = tocsin.metrics();
            let (backlog, published) = (*m.get(BACKLOG)?, *m.get(PUBLISHED)?);
            (backlog > 0.0 && backlog + published >= 700.0).then_some(())
        },
    );

    nats.restart();
    let msgs = settle(&nats, &[&tocsin], 700).await;
    assert_eq!(
        msgs.len(),
        700,
        "exactly every event once after the crash\n{}",
        tocsin.log()
    );
    assert_eq!(check_messages(&msgs).len(), 700);
}

/// Two receivers (dual path / hot standby) get the same frames and publish to the same
/// stream: the content-derived ids let the duplicate window keep one copy of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_receivers_publish_each_event_once() {
    let nats = NatsServer::start();
    let a = Tocsin::start(&TocsinOptions::new("rx-a", &nats.url()));
    let b = Tocsin::start(&TocsinOptions::new("rx-b", &nats.url()));
    // Built once: the same bytes (same panel timestamp) go to both receivers.
    let panels = panel_frames(4000, 5, 40);
    let (ra, rb) = tokio::join!(
        run_panels(a.panel_addr, panels.clone(), Duration::ZERO),
        run_panels(b.panel_addr, panels, Duration::ZERO)
    );
    assert_all_acked(&ra, 200);
    assert_all_acked(&rb, 200);

    let msgs = settle(&nats, &[&a, &b], 200).await;
    assert_eq!(
        msgs.len(),
        200,
        "one message per event, not one per receiver"
    );
    assert_eq!(check_messages(&msgs).len(), 200);
    // Both receivers did publish everything; the stream dropped the second copies.
    assert_eq!(a.metric(PUBLISHED), Some(200.0));
    assert_eq!(b.metric(PUBLISHED), Some(200.0));
}

/// One account sending 0001..0050 in order: its messages in the stream are in that order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_account_order_is_kept() {
    let nats = NatsServer::start();
    let tocsin = Tocsin::start(&TocsinOptions::new("rx-a", &nats.url()));
    // The ordered account plus noise from others on their own connections.
    let mut panels = panel_frames(5000, 1, 50);
    panels.extend(panel_frames(6000, 4, 50));
    let replies = run_panels(tocsin.panel_addr, panels, Duration::ZERO).await;
    assert_all_acked(&replies, 250);

    let msgs = settle(&nats, &[&tocsin], 250).await;
    assert_eq!(msgs.len(), 250);
    check_messages(&msgs);
    let seqs: Vec<u64> = msgs
        .iter()
        .filter(|m| m.payload["account"] == "5000")
        .map(|m| {
            m.payload["seq"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("numeric seq")
        })
        .collect();
    assert_eq!(
        seqs,
        (1..=50).collect::<Vec<u64>>(),
        "account 5000 in order"
    );
}
