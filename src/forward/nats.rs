//! The NATS JetStream sink: every event in the journal, published once per id.
//!
//! The journal, not JetStream, is the durability point (a PubAck is not an fsync in
//! nats-server 2.9); this task only moves what is already durable. Publishing is pipelined:
//! up to `max_in_flight` messages await their PubAck, and the results are taken in journal
//! order (an ordered finalizer), so the cursor advances only over a contiguous prefix of
//! acknowledged records. On any failure the task reconnects with backoff and publishes again
//! from the cursor; the `Nats-Msg-Id` header (the event id) lets the stream's duplicate
//! window drop what had already landed. Per-account order holds because one connection
//! publishes in journal order and a retry restarts from the first unacknowledged record.
//!
//! Subjects: `<prefix>.events.<account>.<class>`, with account and class made safe as NATS
//! tokens (anything outside `[A-Za-z0-9_-]` becomes `_`).

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{Future, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::SinkMetrics;
use crate::journal::{CursorStore, JournalHandle, Lsn};
use crate::receiver::record::{self, Routed};

/// `[bus.nats]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub url: String,
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// The stream's duplicate window: how long JetStream remembers message ids.
    #[serde(default = "default_dup", with = "crate::ops::units::duration")]
    pub duplicate_window: Duration,
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// PubAcks awaited at once. One at a time reaches a few thousand messages per second;
    /// hundreds in flight reach tens of thousands.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// How long a PubAck may take before the connection is considered broken.
    #[serde(default = "default_ack_timeout", with = "crate::ops::units::duration")]
    pub ack_timeout: Duration,
}

fn default_stream() -> String {
    "TOCSIN".into()
}
fn default_prefix() -> String {
    "tocsin".into()
}
fn default_dup() -> Duration {
    Duration::from_secs(120)
}
fn default_replicas() -> usize {
    1
}
fn default_in_flight() -> usize {
    512
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(5)
}

impl NatsConfig {
    pub fn with_url(url: &str) -> NatsConfig {
        NatsConfig {
            url: url.to_string(),
            stream: default_stream(),
            subject_prefix: default_prefix(),
            duplicate_window: default_dup(),
            replicas: default_replicas(),
            max_in_flight: default_in_flight(),
            ack_timeout: default_ack_timeout(),
        }
    }
}

/// The cursor name of this sink in the journal.
pub const CURSOR: &str = "nats";

/// Why one connection's publishing stopped (it is retried).
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("connect: {0}")]
    Connect(String),
    #[error("stream {stream}: {detail}")]
    Stream { stream: String, detail: String },
    #[error("publish: {0}")]
    Publish(String),
    #[error("journal: {0}")]
    Journal(#[from] crate::journal::JournalError),
}

/// Makes `s` a single NATS subject token.
pub fn token(s: &str) -> String {
    let mut out = String::with_capacity(s.len().max(1));
    push_token(&mut out, s);
    out
}

/// Appends `s` to `out` as a single NATS subject token: anything outside
/// `[A-Za-z0-9_-]` becomes `_`, and an empty string `_`.
fn push_token(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('_');
        return;
    }
    out.extend(s.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// `<prefix>.events.<account>.<class>`, built without the formatting machinery and the
/// two intermediate token strings: it runs once per published event.
fn subject(prefix: &str, account: &str, class: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + account.len() + class.len() + 9);
    s.push_str(prefix);
    s.push_str(".events.");
    push_token(&mut s, account);
    s.push('.');
    push_token(&mut s, class);
    s
}

/// What the sink reads of a journal record: the events as raw JSON, published verbatim.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    events: Vec<&'a RawValue>,
}

/// What the sink reads of an event: enough for its subject and id.
#[derive(Deserialize)]
struct Routing<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    account: &'a str,
    #[serde(borrow)]
    class: &'a str,
}

/// The events of a journal payload to publish: from the record's index, or by parsing
/// a record written before the index existed. What cannot be read is logged and skipped
/// (the record still counts as forwarded: retrying would not make it readable).
fn routes(payload: &[u8], lsn: Lsn) -> Vec<Routed<'_>> {
    match record::routed(payload) {
        Some(Ok(events)) => events,
        Some(Err(e)) => {
            tracing::warn!(lsn, error = %e, "journal record not published");
            Vec::new()
        }
        None => legacy_routes(payload, lsn),
    }
}

fn legacy_routes(payload: &[u8], lsn: Lsn) -> Vec<Routed<'_>> {
    // UTF-8 is checked once for the whole record; parsing from `&str` then skips the
    // per-string check that parsing from bytes does for borrowed values.
    let Some(text) = std::str::from_utf8(payload).ok() else {
        return Vec::new();
    };
    let events = serde_json::from_str::<Envelope<'_>>(text)
        .map(|e| e.events)
        .unwrap_or_default();
    let base = text.as_ptr() as usize;
    events
        .into_iter()
        .filter_map(|raw| match serde_json::from_str::<Routing<'_>>(raw.get()) {
            Ok(route) => {
                // The raw value borrows from `text`: its offset is its address minus the base.
                let start = (raw.get().as_ptr() as usize).checked_sub(base)?;
                Some(Routed {
                    id: route.id,
                    account: route.account,
                    class: route.class,
                    json: start..start + raw.get().len(),
                })
            }
            Err(_) => {
                tracing::warn!(lsn, "event without id, account or class: not published");
                None
            }
        })
        .collect()
}

type Ack = Pin<Box<dyn Future<Output = (Lsn, bool, Result<(), String>)> + Send>>;

/// Runs the sink until `shutdown`, reconnecting after failures.
pub async fn run(
    journal: JournalHandle,
    config: NatsConfig,
    metrics: Arc<SinkMetrics>,
    shutdown: CancellationToken,
) -> Result<(), ForwardError> {
    let cursors = CursorStore::open(journal.data_dir())?;
    let mut backoff = Duration::from_millis(100);
    // The last LSN whose events all have a PubAck. Kept across failed connections, so a
    // retry starts after what was acknowledged, not after what happened to be stored.
    let mut acked = cursors.load_cursor(CURSOR)?.unwrap_or(0);
    loop {
        metrics.connected.set(0);
        set_backlog(&journal, acked, &metrics);
        let from = acked;
        let mut stored = acked;
        let outcome = publish_from(
            &journal,
            &config,
            &cursors,
            &mut acked,
            &mut stored,
            &metrics,
            &shutdown,
        )
        .await;
        metrics.connected.set(0);
        if acked != stored {
            cursors.store_cursor(CURSOR, acked)?;
        }
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => {
                metrics.errors.inc();
                if acked > from {
                    // Progress was made on that connection: the bus was reachable, so
                    // start the backoff again from its shortest step.
                    backoff = Duration::from_millis(100);
                }
                tracing::warn!(sink = "nats", url = %config.url, error = %e, retry_in_ms = backoff.as_millis() as u64, "bus unavailable; events stay in the journal and will be published");
                // While disconnected the backlog still grows with every frame received:
                // keep the gauge current, it is what an operator watches during an outage.
                let wait = tokio::time::sleep(backoff);
                tokio::pin!(wait);
                let mut refresh = tokio::time::interval(Duration::from_millis(250));
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        _ = refresh.tick() => set_backlog(&journal, acked, &metrics),
                        _ = shutdown.cancelled() => return Ok(()),
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn set_backlog(journal: &JournalHandle, acked: Lsn, metrics: &SinkMetrics) {
    metrics
        .backlog
        .set(journal.durable_lsn().saturating_sub(acked) as i64);
}

/// Publishes from `*acked + 1` on one connection until shutdown or the first failure.
/// `acked` and `stored` are the caller's so that progress survives a failure.
async fn publish_from(
    journal: &JournalHandle,
    config: &NatsConfig,
    cursors: &CursorStore,
    acked: &mut Lsn,
    stored: &mut Lsn,
    metrics: &SinkMetrics,
    shutdown: &CancellationToken,
) -> Result<(), ForwardError> {
    // A lost connection ends this attempt at once (the next one restarts from the cursor)
    // instead of letting the client reconnect by itself: publishes queued in the client
    // during the outage would land after the reconnect, ahead of the lost ones republished
    // from the cursor, and break per-account order. One reconnect attempt at most (0 means
    // "unlimited" to async-nats), so a dropped client does not linger retrying forever.
    let lost = Arc::new(tokio::sync::Notify::new());
    let on_event = Arc::clone(&lost);
    let connect = async_nats::ConnectOptions::new()
        .name("tocsin")
        .connection_timeout(Duration::from_secs(3))
        .max_reconnects(1)
        .event_callback(move |event| {
            if matches!(event, async_nats::Event::Disconnected) {
                on_event.notify_one();
            }
            std::future::ready(())
        })
        .connect(config.url.as_str());
    let client = tokio::select! {
        c = connect => c.map_err(|e| ForwardError::Connect(e.to_string()))?,
        _ = shutdown.cancelled() => return Ok(()),
    };
    let js = jetstream::ContextBuilder::new()
        .timeout(config.ack_timeout)
        .max_ack_inflight(config.max_in_flight.max(1))
        .build(client.clone());
    let subjects = format!("{}.events.>", config.subject_prefix);
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![subjects],
        storage: stream::StorageType::File,
        num_replicas: config.replicas.max(1),
        duplicate_window: config.duplicate_window,
        ..Default::default()
    })
    .await
    .map_err(|e| ForwardError::Stream {
        stream: config.stream.clone(),
        detail: e.to_string(),
    })?;
    metrics.connected.set(1);
    tracing::info!(sink = "nats", url = %config.url, stream = %config.stream, from_lsn = *acked + 1, "publishing");

    let mut reader = journal.reader();
    reader.seek(*acked + 1);
    let mut in_flight: FuturesOrdered<Ack> = FuturesOrdered::new();
    let mut last_store = Instant::now();
    let max = config.max_in_flight.max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            biased;
            Some((lsn, last_of_record, result)) = in_flight.next(), if !in_flight.is_empty() => {
                result.map_err(ForwardError::Publish)?;
                if last_of_record {
                    *acked = lsn;
                }
            }
            _ = lost.notified() => {
                return Err(ForwardError::Publish("connection lost".into()));
            }
            rec = reader.next_wait(), if in_flight.len() < max => {
                // `None`: the journal closed (shutdown in progress).
                let Some(rec) = rec? else { break };
                let lsn = rec.lsn;
                let payload = Bytes::from(rec.payload);
                let routed = routes(&payload, lsn);
                if routed.is_empty() {
                    // Nothing to publish; the record still counts in the ordered prefix.
                    in_flight.push_back(Box::pin(std::future::ready((lsn, true, Ok(())))));
                    continue;
                }
                let count = routed.len();
                let started = Instant::now();
                for (i, route) in routed.into_iter().enumerate() {
                    let subject = subject(&config.subject_prefix, route.account, route.class);
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert(async_nats::header::NATS_MESSAGE_ID, route.id);
                    // A view into the record's buffer: no copy of the event.
                    let payload = payload.slice(route.json);
                    let ack = js
                        .publish_with_headers(subject, headers, payload)
                        .await
                        .map_err(|e| ForwardError::Publish(e.to_string()))?;
                    let latency = metrics.publish_latency.clone();
                    let published = metrics.published.clone();
                    in_flight.push_back(Box::pin(async move {
                        let r = ack.await.map(|_| ()).map_err(|e| e.to_string());
                        if r.is_ok() {
                            latency.observe(started.elapsed().as_secs_f64());
                            published.inc();
                        }
                        (lsn, i + 1 == count, r)
                    }));
                }
            }
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        set_backlog(journal, *acked, metrics);
        if *acked != *stored && last_store.elapsed() >= Duration::from_millis(500) {
            cursors.store_cursor(CURSOR, *acked)?;
            *stored = *acked;
            last_store = Instant::now();
        }
    }
    // Shutdown: collect the acks already on their way, briefly; the caller stores the cursor.
    let drain = async {
        while let Some((lsn, last, result)) = in_flight.next().await {
            if result.is_err() {
                break;
            }
            if last {
                *acked = lsn;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    Ok(())
}
