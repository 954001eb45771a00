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
    if s.is_empty() {
        return "_".into();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
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
    loop {
        let acked = cursors.load_cursor(CURSOR)?.unwrap_or(0);
        metrics.connected.set(0);
        let outcome = publish_from(&journal, &config, &cursors, acked, &metrics, &shutdown).await;
        match outcome {
            Ok(()) => return Ok(()),
            Err(e) => {
                metrics.errors.inc();
                tracing::warn!(sink = "nats", url = %config.url, error = %e, retry_in_ms = backoff.as_millis() as u64, "bus unavailable; events stay in the journal and will be published");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn publish_from(
    journal: &JournalHandle,
    config: &NatsConfig,
    cursors: &CursorStore,
    mut acked: Lsn,
    metrics: &SinkMetrics,
    shutdown: &CancellationToken,
) -> Result<(), ForwardError> {
    let connect = async_nats::ConnectOptions::new()
        .name("tocsin")
        .connection_timeout(Duration::from_secs(3))
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
    tracing::info!(sink = "nats", url = %config.url, stream = %config.stream, from_lsn = acked + 1, "publishing");

    let mut reader = journal.reader();
    reader.seek(acked + 1);
    let mut in_flight: FuturesOrdered<Ack> = FuturesOrdered::new();
    let mut stored = acked;
    let mut last_store = Instant::now();
    let max = config.max_in_flight.max(1);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            biased;
            Some((lsn, last_of_record, result)) = in_flight.next(), if !in_flight.is_empty() => {
                result.map_err(ForwardError::Publish)?;
                if last_of_record {
                    acked = lsn;
                }
            }
            rec = reader.next_wait(), if in_flight.len() < max => {
                // `None`: the journal closed (shutdown in progress).
                let Some(rec) = rec? else { break };
                let lsn = rec.lsn;
                let events = serde_json::from_slice::<Envelope<'_>>(&rec.payload)
                    .map(|e| e.events)
                    .unwrap_or_default();
                if events.is_empty() {
                    in_flight.push_back(Box::pin(std::future::ready((lsn, true, Ok(())))));
                    continue;
                }
                let count = events.len();
                for (i, raw) in events.into_iter().enumerate() {
                    let Ok(route) = serde_json::from_str::<Routing<'_>>(raw.get()) else {
                        tracing::warn!(lsn, "event without id, account or class: not published");
                        continue;
                    };
                    let subject = format!(
                        "{}.events.{}.{}",
                        config.subject_prefix,
                        token(route.account),
                        token(route.class)
                    );
                    let mut headers = async_nats::HeaderMap::new();
                    headers.insert("Nats-Msg-Id", route.id);
                    let payload = Bytes::copy_from_slice(raw.get().as_bytes());
                    let started = Instant::now();
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
        metrics
            .backlog
            .set(journal.durable_lsn().saturating_sub(acked) as i64);
        if acked != stored && last_store.elapsed() >= Duration::from_millis(500) {
            cursors.store_cursor(CURSOR, acked)?;
            stored = acked;
            last_store = Instant::now();
        }
    }
    // Shutdown: collect the acks already on their way, briefly, and keep the cursor there.
    let drain = async {
        while let Some((lsn, last, result)) = in_flight.next().await {
            if result.is_err() {
                break;
            }
            if last {
                acked = lsn;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    if acked != stored {
        cursors.store_cursor(CURSOR, acked)?;
    }
    Ok(())
}
