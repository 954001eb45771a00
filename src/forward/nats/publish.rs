//! One connection's life: connect, find the stream, publish again the recent records the
//! stream may have lost, then publish from the cursor until the connection fails or the
//! daemon stops.
//!
//! Publishing is pipelined: up to `max_in_flight` messages await their PubAck, and the
//! results are taken in journal order (an ordered finalizer), so the acknowledged LSN
//! advances only over a contiguous prefix of acknowledged records.
//!
//! Publishing again (a *pass*): the records journaled within the republish window before
//! the cursor are published once more, before anything new. The stream drops the ones it
//! still has by their `Nats-Msg-Id` (their ids are younger than its duplicate window, which
//! the configuration guarantees is longer), and stores the ones it had lost after
//! acknowledging them: a single server that crashed before flushing, or a cluster whose
//! new leader had not got the last writes. A pass runs after each connection and again
//! when the stream's leader changes under a live connection.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{Future, StreamExt};

use super::config::{redact, NatsConfig};
use super::connect::{connect, Hooks};
use super::route::{routes, subject};
use super::status::StreamView;
use super::{ForwardError, Sink, CURSOR};
use crate::journal::{JournalHandle, Lsn};
use crate::throttle::{Throttle, Verdict};

/// How often the stream's state (leader, replicas) is read while connected.
const STREAM_POLL: Duration = Duration::from_secs(5);
/// Publishes awaiting their PubAck with none for this long: the stream is asked whether it
/// still has its leader. When the leader died, what was sent to it is lost and no PubAck
/// will come; waiting out the ack timeout would only delay the failover.
const STALL: Duration = Duration::from_secs(1);

/// Where the sink stands in the journal; the caller's, so progress survives a failure.
pub(super) struct Progress {
    /// The last LSN whose events all have a PubAck.
    pub acked: Lsn,
    /// The last LSN written to the cursor file.
    pub stored: Lsn,
    /// Set once the connection was up and the stream found.
    pub connected: bool,
}

/// One published event's outcome: its record's LSN, whether it is the record's last
/// event, whether it was published again, and the PubAck.
type Ack = Pin<Box<dyn Future<Output = (Lsn, bool, Result<(), String>)> + Send>>;

/// Server errors sent on a live connection (a permissions violation, say) repeat with
/// every publish: a line per 30 s at most. The lines of a connection's life (connected,
/// leader changed, events restored) repeat when a connection keeps failing: a few per 30 s.
static SERVER_ERRORS: Throttle = Throttle::new(1);
static LIFE_LINES: Throttle = Throttle::new(3);
static RESTORED_LINES: Throttle = Throttle::new(2);
const LOG_PERIOD_S: u64 = 30;

/// Whether a line of a connection's life may be logged now, and how many were left out.
fn life_line() -> Option<u64> {
    budget(&LIFE_LINES)
}

fn budget(throttle: &Throttle) -> Option<u64> {
    match throttle.check(unix_secs() / LOG_PERIOD_S) {
        Verdict::Log { suppressed } => Some(suppressed),
        Verdict::Drop => None,
    }
}

/// Runs one connection until shutdown (`Ok`) or its first failure.
pub(super) async fn connection(sink: &Sink, p: &mut Progress) -> Result<(), ForwardError> {
    let config = &sink.config;
    // A lost connection ends this attempt at once (the next one restarts from the cursor)
    // instead of letting the client reconnect by itself: publishes queued in the client
    // during the outage would land after the reconnect, ahead of the lost ones republished
    // from the cursor, and break per-account order.
    let lost = Arc::new(tokio::sync::Notify::new());
    let on_lost = Arc::clone(&lost);
    let hooks = Hooks {
        one_round: true,
        on_event: Some(Arc::new(move |event| match event {
            async_nats::Event::Disconnected => on_lost.notify_one(),
            async_nats::Event::ServerError(e) => {
                if let Verdict::Log { suppressed } = SERVER_ERRORS.check(unix_secs() / LOG_PERIOD_S)
                {
                    tracing::warn!(sink = "nats", error = %e, suppressed, "NATS server error");
                }
            }
            _ => {}
        })),
    };
    let client = tokio::select! {
        c = connect(config, &sink.client_name, hooks) => c?,
        _ = sink.shutdown.cancelled() => return Ok(()),
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(config.ack_timeout)
        .max_ack_inflight(config.max_in_flight.max(1))
        .build(client.clone());
    let info = tokio::select! {
        i = super::stream::ensure(&client, config, &sink.bus) => i?,
        _ = sink.shutdown.cancelled() => return Ok(()),
    };
    let view = StreamView::from_info(&info);
    let window = super::stream::republish_window(config, &view);
    let server_info = client.server_info();
    let server = connected_server(config, &server_info);
    sink.bus
        .connected(server.clone(), server_info.server_name.clone());
    sink.bus.stream_seen(view.clone());
    sink.metrics.connected.set(1);
    p.connected = true;
    if let Some(suppressed) = life_line() {
        tracing::info!(
            sink = "nats",
            server = %server,
            server_name = %server_info.server_name,
            stream = %config.stream,
            replicas = view.replicas,
            leader = view.leader.as_deref().unwrap_or("-"),
            from_lsn = p.acked + 1,
            suppressed,
            "publishing"
        );
    }

    let (view_tx, mut views) = tokio::sync::mpsc::channel(4);
    let probe = Arc::new(tokio::sync::Notify::new());
    let watcher = AbortOnDrop(tokio::spawn(watch_stream(
        client.clone(),
        config.stream.clone(),
        Arc::clone(&probe),
        view_tx,
    )));
    let clustered = view.cluster.is_some();
    let mut leader = view.leader;
    // The last PubAck (or the start), and whether a stall probe is out since.
    let mut progress_at = Instant::now();
    let mut probing: Option<Instant> = None;
    let max = config.max_in_flight.max(1);
    let mut reader = sink.journal.reader();
    let mut in_flight: FuturesOrdered<Ack> = FuturesOrdered::new();
    let mut last_store = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut stopping = false;
    while !stopping {
        // One pass: the republish window first, then everything new.
        let start = republish_start(&sink.journal, p.acked, window).await;
        let upto = p.acked;
        let restored = Arc::new(AtomicU64::new(0));
        let mut republish_reported = start > upto;
        if start <= upto {
            tracing::debug!(
                sink = "nats",
                from_lsn = start,
                to_lsn = upto,
                "publishing the republish window again"
            );
        }
        reader.seek(start);
        let mut resync = false;
        loop {
            tokio::select! {
                biased;
                Some((lsn, last_of_record, result)) = in_flight.next(), if !in_flight.is_empty() => {
                    result.map_err(ForwardError::Publish)?;
                    progress_at = Instant::now();
                    if last_of_record {
                        p.acked = p.acked.max(lsn);
                    }
                    if !republish_reported && lsn >= upto {
                        republish_reported = true;
                        report_restored(restored.load(Ordering::Relaxed), start, upto);
                    }
                }
                _ = lost.notified() => {
                    return Err(ForwardError::Publish("connection lost".into()));
                }
                Some(seen) = views.recv() => {
                    let stalled = probing.is_some_and(|asked| progress_at < asked) && !in_flight.is_empty();
                    probing = None;
                    match seen {
                        Some(v) => {
                            let lost_leader = clustered && v.leader != leader;
                            if lost_leader && stalled {
                                return Err(ForwardError::Publish(format!(
                                    "no PubAck for {:.1} s and the stream's leader changed ({} → {})",
                                    progress_at.elapsed().as_secs_f64(),
                                    leader.as_deref().unwrap_or("-"),
                                    v.leader.as_deref().unwrap_or("none yet")
                                )));
                            }
                            if v.leader.is_some() && v.leader != leader {
                                if let Some(suppressed) = life_line() {
                                    tracing::info!(sink = "nats", stream = %config.stream, leader = v.leader.as_deref().unwrap_or("-"), was = leader.as_deref().unwrap_or("-"), suppressed, "stream leader changed; publishing the republish window again");
                                }
                                resync = true;
                                leader = v.leader.clone();
                            }
                            sink.bus.stream_seen(v);
                        }
                        None if stalled && clustered => {
                            return Err(ForwardError::Publish(format!(
                                "no PubAck for {:.1} s and the stream does not answer (leader {} lost?)",
                                progress_at.elapsed().as_secs_f64(),
                                leader.as_deref().unwrap_or("-")
                            )));
                        }
                        None => {}
                    }
                }
                rec = reader.next_wait(), if !resync && in_flight.len() < max => {
                    // `None`: the journal closed (shutdown in progress).
                    let Some(rec) = rec? else { stopping = true; break };
                    let again = rec.lsn <= upto;
                    let record = Published { lsn: rec.lsn, arrived_us: rec.ts_micros, again };
                    publish_record(&js, sink, record, Bytes::from(rec.payload), &restored, &mut in_flight).await?;
                }
                _ = sink.shutdown.cancelled() => { stopping = true; break }
                _ = tick.tick() => {
                    if in_flight.is_empty() {
                        progress_at = Instant::now();
                    } else if probing.is_none() && progress_at.elapsed() >= STALL {
                        probing = Some(Instant::now());
                        probe.notify_one();
                    }
                }
            }
            super::set_backlog(&sink.journal, p.acked, &sink.metrics);
            if p.acked != p.stored && last_store.elapsed() >= Duration::from_millis(500) {
                sink.cursors.store_cursor(CURSOR, p.acked)?;
                p.stored = p.acked;
                last_store = Instant::now();
            }
            if resync && in_flight.is_empty() {
                break;
            }
        }
    }
    drop(watcher);
    // Shutdown: collect the acks already on their way, briefly; the caller stores the cursor.
    let drain = async {
        while let Some((lsn, last, result)) = in_flight.next().await {
            if result.is_err() {
                break;
            }
            if last {
                p.acked = p.acked.max(lsn);
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    Ok(())
}

/// The record being published: its LSN, its arrival (journal) time, and whether it was
/// published before (the republish window).
struct Published {
    lsn: Lsn,
    arrived_us: i64,
    again: bool,
}

/// Publishes the events of one record; their PubAcks join `in_flight`. The PubAck of its
/// last event observes the record's delivery latency (records published again do not:
/// they were delivered before).
async fn publish_record(
    js: &jetstream::Context,
    sink: &Sink,
    record: Published,
    payload: Bytes,
    restored: &Arc<AtomicU64>,
    in_flight: &mut FuturesOrdered<Ack>,
) -> Result<(), ForwardError> {
    let Published {
        lsn,
        arrived_us,
        again,
    } = record;
    let routed = routes(&payload, lsn);
    if routed.is_empty() {
        // Nothing to publish; the record still counts in the ordered prefix.
        in_flight.push_back(Box::pin(std::future::ready((lsn, true, Ok(())))));
        return Ok(());
    }
    let count = routed.len();
    let started = Instant::now();
    for (i, route) in routed.into_iter().enumerate() {
        let subject = subject(&sink.config.subject_prefix, route.account, route.class);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, route.id);
        // A view into the record's buffer: no copy of the event.
        let payload = payload.slice(route.json);
        let ack = js
            .publish_with_headers(subject, headers, payload)
            .await
            .map_err(|e| ForwardError::Publish(e.to_string()))?;
        let latency = sink.metrics.publish_latency.clone();
        let last_of_record = i + 1 == count;
        let delivery = last_of_record.then(|| sink.metrics.delivery.clone());
        let published = sink.metrics.published.clone();
        let republished = sink.bus.metrics.republished.clone();
        let restored = Arc::clone(restored);
        in_flight.push_back(Box::pin(async move {
            let r = match ack.await {
                Ok(a) => {
                    if again {
                        let outcome = if a.duplicate {
                            "duplicate"
                        } else {
                            restored.fetch_add(1, Ordering::Relaxed);
                            "restored"
                        };
                        republished.with_label_values(&[outcome]).inc();
                    } else {
                        latency.observe(started.elapsed().as_secs_f64());
                        published.inc();
                        if let Some(delivery) = &delivery {
                            crate::forward::observe_delivery(delivery, arrived_us, now_micros());
                        }
                    }
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            };
            (lsn, last_of_record, r)
        }));
    }
    Ok(())
}

/// After a pass published the window again: the events the stream had lost.
fn report_restored(restored: u64, from: Lsn, to: Lsn) {
    if restored > 0 {
        // Counted in tocsin_bus_republished_total whether logged or not.
        if let Some(suppressed) = budget(&RESTORED_LINES) {
            tracing::warn!(
                sink = "nats",
                restored,
                from_lsn = from,
                to_lsn = to,
                suppressed,
                "the bus had lost events it had acknowledged; they are published again from the journal"
            );
        }
    }
}

/// The first LSN of a pass: the oldest record of the republish window if it is already
/// published, else the one after the cursor. A journal that cannot be read there only
/// costs the republish (logged): never the records after the cursor.
async fn republish_start(journal: &JournalHandle, acked: Lsn, window: Duration) -> Lsn {
    if window.is_zero() || acked == 0 {
        return acked + 1;
    }
    let window_us = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
    let since = now_micros().saturating_sub(window_us);
    let mut reader = journal.reader();
    let found = tokio::task::spawn_blocking(move || {
        reader.seek_time(since)?;
        reader.next_record().map(|r| r.map(|r| r.lsn))
    })
    .await;
    match found {
        Ok(Ok(Some(lsn))) if lsn <= acked => lsn,
        Ok(Ok(_)) => acked + 1,
        Ok(Err(e)) => {
            tracing::warn!(sink = "nats", error = %e, "cannot read the republish window; publishing from the cursor only");
            acked + 1
        }
        Err(_) => acked + 1,
    }
}

/// Reads the stream's state every few seconds, and at once when asked (a stall), and
/// hands it over: `None` when the stream did not answer.
async fn watch_stream(
    client: async_nats::Client,
    name: String,
    probe: Arc<tokio::sync::Notify>,
    tx: tokio::sync::mpsc::Sender<Option<StreamView>>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STREAM_POLL) => {}
            _ = probe.notified() => {}
        }
        let view = super::stream::look(&client, &name).await;
        if tx.send(view).await.is_err() {
            return;
        }
    }
}

/// The configured URL of the server the client reached, matched by the host and port the
/// server announces; the announced ones when nothing matches (a discovered server).
fn connected_server(config: &NatsConfig, info: &async_nats::ServerInfo) -> String {
    let wildcard = matches!(info.host.as_str(), "0.0.0.0" | "::" | "");
    config
        .server_urls()
        .into_iter()
        .filter_map(|u| u.parse::<async_nats::ServerAddr>().ok().map(|a| (u, a)))
        .find(|(_, a)| a.port() == info.port && (wildcard || a.host() == info.host))
        .map(|(u, _)| redact(u))
        .unwrap_or_else(|| format!("nats://{}:{}", info.host, info.port))
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Receiver time as the journal stamps records.
fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Ends a helper task with the connection that started it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
