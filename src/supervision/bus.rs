//! Station-wide supervision over the bus: this receiver's beats out, its peers' beats in.
//!
//! The mechanism is a JetStream stream of batched beats, `<stream>_HEARD` on subjects
//! `<prefix>.heard.<receiver>`: every receiver publishes one message a second listing
//! the paths it heard since the last (one entry per path, however many frames), and
//! reads everyone's with an ordered consumer. Why a stream and not a plain subject: a
//! beat published while a peer is cut off is kept, and the peer's consumer resumes from
//! the last sequence it saw, so a split bus delays hearings instead of losing them; a
//! publisher retries until the PubAck, merging what it heard meanwhile. Why not a KV
//! bucket: one key per path would make a write per path and a watch delivery per path,
//! where a beat is one write a second per receiver whatever the station's size. The
//! stream is kept in memory with a short age limit: beats are only worth minutes, and
//! they stay off the file store that holds the alarms.
//!
//! The connection is made by [`connect`], the one place this module builds a client from
//! `[bus.nats]`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use compact_str::CompactString;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::peers::{Beat, BeatEntry};
use crate::forward::nats::{token, NatsConfig};
use crate::ops::metrics::Metrics;
use crate::receiver::supervision::Stamp;

/// How long beats stay in the stream: a peer cut off for longer than this loses the
/// hearings of the start of the cut (and holds, then raises, their failures meanwhile).
const KEEP_BEATS: Duration = Duration::from_secs(300);

/// The stream's size at most; past it the oldest beats go first.
const KEEP_BYTES: i64 = 64 << 20;

/// The consumer sees this receiver's own beats too, one a second: nothing at all for this
/// long means it is stuck (a server restarted with the stream made anew, sequences from 1
/// again), and it is made again.
const QUIET_LIMIT: Duration = Duration::from_secs(10);

/// Entries per message: a beat of a very large station is cut into messages far under
/// NATS's default 1 MB payload limit (an entry is about 40 bytes).
const ENTRIES_PER_MESSAGE: usize = 4000;

/// Why the bus could not be used (each is retried).
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("stream {stream}: {detail}")]
    Stream { stream: String, detail: String },
    #[error("publish: {0}")]
    Publish(String),
    #[error("consume: {0}")]
    Consume(String),
}

/// Connects to the bus of `[bus.nats]` with the station's servers, credentials and TLS,
/// as the event sink does. The client reconnects by itself, to any server.
pub async fn connect(config: &NatsConfig) -> Result<async_nats::Client, BusError> {
    crate::forward::nats::connect(
        config,
        "tocsin-supervision",
        crate::forward::nats::Hooks::default(),
    )
    .await
    .map_err(|e| BusError::Connect {
        url: servers(config),
        detail: e.to_string(),
    })
}

/// The configured servers, as they may be shown (credentials in a URL are refused by the
/// configuration check, and redacted here all the same).
fn servers(config: &NatsConfig) -> String {
    config
        .server_urls()
        .iter()
        .map(|u| crate::forward::nats::redact(u))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the supervision task hands over each beat period.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Paths heard here since the last beat, with when.
    pub heard: Vec<(CompactString, CompactString, Stamp)>,
    /// Hearings were lost at this moment (the frame path's queue was full).
    pub lost_at: Option<Instant>,
    /// The last beat: this receiver stops.
    pub bye: bool,
}

/// A beat read from the bus, with when it arrived. This receiver's own beats come too,
/// their hearings left out: one coming back proves the reading works, which is what a
/// receiver that has just started waits for before it trusts that it knows its peers.
#[derive(Debug)]
pub struct Incoming {
    pub beat: Beat,
    pub received: Instant,
    pub own: bool,
}

/// Names of the stream and subjects.
struct Names {
    stream: String,
    filter: String,
    mine: String,
}

impl Names {
    fn new(config: &NatsConfig, me: &str) -> Names {
        Names {
            stream: format!("{}_HEARD", config.stream),
            filter: format!("{}.heard.>", config.subject_prefix),
            mine: format!("{}.heard.{}", config.subject_prefix, token(me)),
        }
    }
}

/// Logs the first failure of a run of them and the recovery, not every retry: a bus down
/// for an hour is two lines.
struct Trouble {
    what: &'static str,
    failing: bool,
}

impl Trouble {
    fn failed(&mut self, e: &BusError, metrics: &Metrics) {
        metrics.supervision_bus_errors.inc();
        if !self.failing {
            self.failing = true;
            tracing::warn!(error = %e, "supervision sharing: {} failing; retrying (failures wait for unheard peers, see docs/supervision.md)", self.what);
        }
    }
    fn ok(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!("supervision sharing: {} works again", self.what);
        }
    }
}

/// Runs the sharing until `out` closes (after the bye) or `stop` fires: connects, makes
/// sure the stream exists, then publishes what `out` brings and sends peers' beats to
/// `into`.
pub async fn run(
    config: NatsConfig,
    me: String,
    mut out: mpsc::Receiver<Outgoing>,
    into: mpsc::Sender<Incoming>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let names = Names::new(&config, &me);
    let mut pending = Pending::default();
    let mut trouble = Trouble {
        what: "connection",
        failing: false,
    };
    let mut backoff = Duration::from_millis(200);
    // Connect and create the stream, keeping what `out` brings meanwhile.
    let js = loop {
        let attempt = async {
            let client = connect(&config).await?;
            let js = jetstream::ContextBuilder::new()
                .timeout(config.ack_timeout)
                .build(client);
            ensure_stream(&js, &names, &config).await?;
            Ok::<_, BusError>(js)
        };
        tokio::select! {
            r = attempt => match r {
                Ok(js) => break js,
                Err(e) => trouble.failed(&e, &metrics),
            },
            _ = stop.cancelled() => return,
        }
        let wait = tokio::time::sleep(backoff);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => break,
                o = out.recv() => match o {
                    Some(o) => pending.merge(o),
                    None => return,
                },
                _ = stop.cancelled() => return,
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    };
    trouble.ok();
    tracing::info!(servers = %servers(&config), stream = %names.stream, subject = %names.mine, "supervision shared over the bus");
    let reader = tokio::spawn(consume(
        js.clone(),
        Names::new(&config, &me),
        config.clone(),
        me.clone(),
        into,
        Arc::clone(&metrics),
        stop.clone(),
    ));
    publish(js, &names, &config, me, out, pending, metrics).await;
    reader.abort();
    let _ = reader.await;
}

async fn ensure_stream(
    js: &jetstream::Context,
    names: &Names,
    config: &NatsConfig,
) -> Result<(), BusError> {
    js.get_or_create_stream(stream::Config {
        name: names.stream.clone(),
        subjects: vec![names.filter.clone()],
        storage: stream::StorageType::Memory,
        num_replicas: config.replicas.max(1),
        max_age: KEEP_BEATS,
        max_bytes: KEEP_BYTES,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|e| BusError::Stream {
        stream: names.stream.clone(),
        detail: e.to_string(),
    })
}

/// What waits to be published: hearings merged per path (the latest kept), so a bus down
/// for an hour holds one entry per path heard, not one per frame.
#[derive(Default)]
struct Pending {
    heard: HashMap<(CompactString, CompactString), Stamp>,
    lost_at: Option<Instant>,
    bye: bool,
    /// Something to say (a beat is sent even when nothing was heard: it says "alive").
    due: bool,
}

impl Pending {
    fn merge(&mut self, o: Outgoing) {
        for (account, path, at) in o.heard {
            self.heard
                .entry((account, path))
                .and_modify(|s| {
                    if at.at > s.at {
                        *s = at;
                    }
                })
                .or_insert(at);
        }
        self.lost_at = match (self.lost_at, o.lost_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.bye |= o.bye;
        self.due = true;
    }

    /// The beat messages, ages taken now.
    fn beats(&self, me: &str, now: Instant) -> Vec<Beat> {
        let age = |t: Instant| {
            u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX)
        };
        let entries: Vec<BeatEntry> = self
            .heard
            .iter()
            .map(|((account, path), s)| {
                BeatEntry(account.clone(), path.clone(), age(s.at), s.wall_ms)
            })
            .collect();
        let mut beats: Vec<Beat> = entries
            .chunks(ENTRIES_PER_MESSAGE)
            .map(|chunk| Beat {
                from: me.to_string(),
                bye: false,
                lost_age_ms: None,
                heard: chunk.to_vec(),
            })
            .collect();
        if beats.is_empty() {
            beats.push(Beat {
                from: me.to_string(),
                bye: false,
                lost_age_ms: None,
                heard: Vec::new(),
            });
        }
        if let Some(first) = beats.first_mut() {
            first.lost_age_ms = self.lost_at.map(age);
        }
        if let Some(last) = beats.last_mut() {
            last.bye = self.bye;
        }
        beats
    }
}

/// Publishes what `out` brings, retrying failed beats (merged with the next ones) until
/// `out` closes; the last beat (the bye) gets one try of a few seconds.
async fn publish(
    js: jetstream::Context,
    names: &Names,
    config: &NatsConfig,
    me: String,
    mut out: mpsc::Receiver<Outgoing>,
    mut pending: Pending,
    metrics: Arc<Metrics>,
) {
    let mut trouble = Trouble {
        what: "publishing beats",
        failing: false,
    };
    let mut backoff = Duration::from_millis(200);
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let retry = async {
            match retry_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let closing = tokio::select! {
            o = out.recv() => match o {
                Some(o) => {
                    pending.merge(o);
                    false
                }
                None => true,
            },
            _ = retry => false,
        };
        if closing {
            if pending.bye {
                let last = send(&js, &names.mine, &pending, &me);
                let _ = tokio::time::timeout(Duration::from_secs(3), last).await;
            }
            return;
        }
        if !pending.due || (retry_at.is_some_and(|t| tokio::time::Instant::now() < t)) {
            continue;
        }
        // After a failure the stream may be gone (a restarted server keeps no memory
        // stream): make sure it is there before trying again.
        let ready = if retry_at.is_some() {
            ensure_stream(&js, names, config).await
        } else {
            Ok(())
        };
        if let Err(e) = ready {
            trouble.failed(&e, &metrics);
            retry_at = Some(tokio::time::Instant::now() + backoff);
            backoff = (backoff * 2).min(Duration::from_secs(5));
            continue;
        }
        match send(&js, &names.mine, &pending, &me).await {
            Ok(sent) => {
                metrics
                    .supervision_beats
                    .with_label_values(&["sent"])
                    .inc_by(sent);
                pending = Pending::default();
                retry_at = None;
                backoff = Duration::from_millis(200);
                trouble.ok();
            }
            Err(e) => {
                trouble.failed(&e, &metrics);
                retry_at = Some(tokio::time::Instant::now() + backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publishes the pending beats and waits for their PubAcks; the number sent.
async fn send(
    js: &jetstream::Context,
    subject: &str,
    pending: &Pending,
    me: &str,
) -> Result<u64, BusError> {
    let beats = pending.beats(me, Instant::now());
    let mut acks = Vec::with_capacity(beats.len());
    for beat in &beats {
        let payload = serde_json::to_vec(beat).map_err(|e| BusError::Publish(e.to_string()))?;
        let ack = js
            .publish(subject.to_string(), payload.into())
            .await
            .map_err(|e| BusError::Publish(e.to_string()))?;
        acks.push(ack);
    }
    for ack in acks {
        ack.await.map_err(|e| BusError::Publish(e.to_string()))?;
    }
    Ok(beats.len() as u64)
}

/// Reads every receiver's beats (from the newest at first, then without a gap: the
/// consumer resumes from the last sequence it delivered) and hands the peers' ones to the
/// supervision task.
async fn consume(
    js: jetstream::Context,
    names: Names,
    config: NatsConfig,
    me: String,
    into: mpsc::Sender<Incoming>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut trouble = Trouble {
        what: "reading beats",
        failing: false,
    };
    let mut next: Option<u64> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        let opened = tokio::select! {
            m = open(&js, &names, &config, next) => m,
            _ = stop.cancelled() => return,
        };
        match opened {
            Ok(mut messages) => loop {
                let m = tokio::select! {
                    m = tokio::time::timeout(QUIET_LIMIT, messages.next()) => m,
                    _ = stop.cancelled() => return,
                };
                match m {
                    Ok(Some(Ok(msg))) => {
                        trouble.ok();
                        backoff = Duration::from_millis(200);
                        let received = Instant::now();
                        if let Ok(info) = msg.info() {
                            next = Some(info.stream_sequence + 1);
                        }
                        let mut beat: Beat = match serde_json::from_slice(&msg.payload) {
                            Ok(b) => b,
                            Err(e) => {
                                let e = BusError::Consume(format!("a beat that is not one: {e}"));
                                trouble.failed(&e, &metrics);
                                continue;
                            }
                        };
                        let own = beat.from == me;
                        if own {
                            beat.heard = Vec::new();
                        } else {
                            metrics
                                .supervision_beats
                                .with_label_values(&["received"])
                                .inc();
                        }
                        let incoming = Incoming {
                            beat,
                            received,
                            own,
                        };
                        if into.send(incoming).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(Err(e))) => {
                        trouble.failed(&BusError::Consume(e.to_string()), &metrics);
                        break;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        let quiet = format!("no beat at all for {} s", QUIET_LIMIT.as_secs());
                        trouble.failed(&BusError::Consume(quiet), &metrics);
                        break;
                    }
                }
            },
            Err(e) => trouble.failed(&e, &metrics),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// An ordered consumer of the beats from `next` (the newest when `None`). A stream whose
/// last sequence is below `next` was made anew: it is read from its start.
async fn open(
    js: &jetstream::Context,
    names: &Names,
    config: &NatsConfig,
    next: Option<u64>,
) -> Result<consumer::pull::Ordered, BusError> {
    let consume = |e: String| BusError::Consume(e);
    ensure_stream(js, names, config).await?;
    let mut s = js
        .get_stream(&names.stream)
        .await
        .map_err(|e| consume(e.to_string()))?;
    let last = s
        .info()
        .await
        .map_err(|e| consume(e.to_string()))?
        .state
        .last_sequence;
    let deliver_policy = match next {
        None => consumer::DeliverPolicy::New,
        Some(n) if n <= last.saturating_add(1) => {
            consumer::DeliverPolicy::ByStartSequence { start_sequence: n }
        }
        Some(_) => consumer::DeliverPolicy::All,
    };
    s.create_consumer(consumer::pull::OrderedConfig {
        filter_subject: names.filter.clone(),
        deliver_policy,
        ..Default::default()
    })
    .await
    .map_err(|e| consume(e.to_string()))?
    .messages()
    .await
    .map_err(|e| consume(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_keeps_the_latest_per_path_and_ages_at_sending() {
        let t0 = Instant::now();
        let at = |ms: u64, wall: i64| Stamp {
            at: t0 + Duration::from_millis(ms),
            wall_ms: wall,
        };
        let mut p = Pending::default();
        p.merge(Outgoing {
            heard: vec![("1".into(), "L1".into(), at(100, 1_100))],
            ..Outgoing::default()
        });
        p.merge(Outgoing {
            heard: vec![
                ("1".into(), "L1".into(), at(900, 1_900)),
                ("2".into(), "L1".into(), at(500, 1_500)),
            ],
            lost_at: Some(t0),
            bye: false,
        });
        let beats = p.beats("rx", t0 + Duration::from_millis(1_000));
        assert_eq!(beats.len(), 1);
        let mut heard = beats[0].heard.clone();
        heard.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            heard,
            vec![
                BeatEntry("1".into(), "L1".into(), 100, 1_900),
                BeatEntry("2".into(), "L1".into(), 500, 1_500),
            ]
        );
        assert_eq!(beats[0].lost_age_ms, Some(1_000));
        // Nothing heard: still a beat.
        let empty = Pending::default().beats("rx", t0);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].heard.is_empty());
    }

    #[test]
    fn large_beats_are_cut() {
        let t0 = Instant::now();
        let mut p = Pending::default();
        p.merge(Outgoing {
            heard: (0..ENTRIES_PER_MESSAGE + 1)
                .map(|i| {
                    (
                        CompactString::from(i.to_string()),
                        CompactString::from("L1"),
                        Stamp { at: t0, wall_ms: 0 },
                    )
                })
                .collect(),
            lost_at: None,
            bye: true,
        });
        let beats = p.beats("rx", t0);
        assert_eq!(beats.len(), 2);
        assert!(!beats[0].bye && beats[1].bye);
        assert!(serde_json::to_vec(&beats[0]).unwrap().len() < 1 << 20);
    }
}
