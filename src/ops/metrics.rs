//! Prometheus metrics, all prefixed `tocsin_`.
//!
//! Labels are bounded by construction: tokens outside the known set are `other`, reasons
//! come from enums, and no account number is ever a label (a station has a million).

use std::sync::OnceLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Children of a labelled family, each looked up once and then kept in a numbered slot.
///
/// `with_label_values` hashes the label values and takes the family's lock on every call;
/// on the path of every frame that was several lookups a frame. A slot is filled on its
/// first use, not before, so a series still appears on `/metrics` only once it has
/// happened (or once something registered it at zero), exactly as with direct lookups.
pub struct Slots<M> {
    slots: Box<[OnceLock<M>]>,
}

impl<M> Slots<M> {
    /// `len` empty slots; the caller numbers the label combinations.
    pub fn new(len: usize) -> Slots<M> {
        Slots {
            slots: (0..len).map(|_| OnceLock::new()).collect(),
        }
    }

    /// Runs `f` on the child in `slot`, which `lookup` finds the first time. A slot out
    /// of range falls back to the lookup every time: slower, never wrong.
    pub fn with(&self, slot: usize, lookup: impl FnOnce() -> M, f: impl FnOnce(&M)) {
        match self.slots.get(slot) {
            Some(cell) => f(cell.get_or_init(lookup)),
            None => f(&lookup()),
        }
    }
}

/// Every metric the daemon exports.
pub struct Metrics {
    pub registry: Registry,
    pub frames: IntCounterVec,
    pub events: IntCounterVec,
    pub junk: IntCounterVec,
    pub junk_bytes: IntCounterVec,
    pub connections_open: IntGauge,
    pub connections: IntCounterVec,
    pub ack_latency: HistogramVec,
    pub journal_fsync: Histogram,
    pub journal_batch: Histogram,
    pub journal_append: Histogram,
    pub journal_bytes: IntCounter,
    pub journal_failures: IntCounter,
    pub journal_errors: IntCounterVec,
    pub journal_refused: IntCounterVec,
    pub journal_reopens: IntCounter,
    pub journal_space_low: IntGauge,
    pub journal_min_free: IntGauge,
    pub dedup_keys: IntGauge,
    pub dedup_evicted: IntCounter,
    pub reloads: IntCounterVec,
    pub listeners: IntGaugeVec,
    pub sink_backlog: IntGaugeVec,
    pub sink_published: IntCounterVec,
    pub sink_latency: HistogramVec,
    pub sink_delivery: HistogramVec,
    pub sink_connected: IntGaugeVec,
    pub sink_errors: IntCounterVec,
    pub journal_disk_free: IntGauge,
    pub journal_disk_total: IntGauge,
    pub journal_size: IntGauge,
    pub journal_durable_lsn: IntGauge,
    pub supervision_paths: IntGauge,
    pub supervision_failed: IntGauge,
    pub supervision_refused: IntCounter,
    pub http_refused: IntCounterVec,
    pub supervision_held: IntGauge,
    pub supervision_heard_dropped: IntCounter,
    pub supervision_peers: IntGaugeVec,
    pub supervision_beats: IntCounterVec,
    pub supervision_bus_errors: IntCounter,
    pub clock_steps: IntCounterVec,
    pub clock_last_step: IntGauge,
    /// `tocsin_bus_*`: there with or without a bus, so rules and dashboards always find them.
    pub bus: crate::forward::nats::BusMetrics,
    pub key_blocks: IntCounter,
    /// `tocsin_automation_*`, labelled by output.
    pub automation: crate::forward::surgard::Families,
}

fn gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

/// Latency buckets from 50 µs to 5 s: an ACK is one fsync (a fraction of a millisecond
/// on a quiet disk) and the panel gives up after seconds.
fn latency_buckets() -> Vec<f64> {
    vec![
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
        1.0, 2.5, 5.0,
    ]
}

/// Delivery buckets from 1 ms to 10 s: a sink that keeps up delivers within a second of
/// arrival; one that lags shows by how much.
fn delivery_buckets() -> Vec<f64> {
    vec![
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ]
}

impl Metrics {
    pub fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let frames = counter_vec(
            &r,
            "tocsin_frames_total",
            "Frames received, by transport, ID token, reply sent (ack, nak, duh, none) and reason.",
            &["transport", "token", "outcome", "reason"],
        )?;
        let events = counter_vec(
            &r,
            "tocsin_events_total",
            "Events journaled, by class.",
            &["class"],
        )?;
        let junk = counter_vec(
            &r,
            "tocsin_junk_total",
            "Runs of bytes dropped before frame decoding (not a frame, too long, truncated).",
            &["transport", "reason"],
        )?;
        let junk_bytes = counter_vec(
            &r,
            "tocsin_junk_bytes_total",
            "Bytes dropped before frame decoding.",
            &["transport", "reason"],
        )?;
        let connections_open =
            IntGauge::new("tocsin_connections_open", "TCP connections open now.")?;
        r.register(Box::new(connections_open.clone()))?;
        let connections = counter_vec(
            &r,
            "tocsin_connections_total",
            "TCP connections by event: accepted, closed, refused (per-peer limit), idle (closed by the idle timeout).",
            &["event"],
        )?;
        let ack_latency = HistogramVec::new(
            HistogramOpts::new(
                "tocsin_ack_latency_seconds",
                "Time from a complete frame to its reply being handed to the socket, by transport and outcome.",
            )
            .buckets(latency_buckets()),
            &["transport", "outcome"],
        )?;
        r.register(Box::new(ack_latency.clone()))?;
        let journal_fsync = histogram(
            &r,
            "tocsin_journal_fsync_seconds",
            "Duration of each journal fdatasync.",
            latency_buckets(),
        )?;
        let journal_batch = histogram(
            &r,
            "tocsin_journal_batch_records",
            "Records made durable by one fsync (group commit).",
            vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
            ],
        )?;
        let journal_append = histogram(
            &r,
            "tocsin_journal_append_seconds",
            "Time from handing records to the journal to their durability.",
            latency_buckets(),
        )?;
        let journal_bytes = IntCounter::new(
            "tocsin_journal_bytes_total",
            "Bytes written to the journal.",
        )?;
        r.register(Box::new(journal_bytes.clone()))?;
        let journal_failures = IntCounter::new(
            "tocsin_journal_failed_batches_total",
            "Journal batches whose write or fsync failed (their frames got a NAK).",
        )?;
        r.register(Box::new(journal_failures.clone()))?;
        let journal_errors = counter_vec(
            &r,
            "tocsin_journal_errors_total",
            "Frames that could not be journaled, by what the receiver did.",
            &["action"],
        )?;
        let journal_refused = counter_vec(
            &r,
            "tocsin_journal_refused_total",
            "Frames the journal refused (they got a NAK), by cause: disk_full (ENOSPC or EDQUOT), min_free (a new segment would go under [journal] min_free), failed (a write or sync failed and the journal was not re-opened yet), closed.",
            &["reason"],
        )?;
        let journal_reopens = IntCounter::new(
            "tocsin_journal_reopens_total",
            "Times the journal was re-opened and re-verified in-process after a failed write or sync.",
        )?;
        r.register(Box::new(journal_reopens.clone()))?;
        let journal_space_low = gauge(
            &r,
            "tocsin_journal_space_low",
            "1 while the journal cannot take a new segment without going under [journal] min_free: frames get NAK once the active segment is full.",
        )?;
        let journal_min_free = gauge(
            &r,
            "tocsin_journal_min_free_bytes",
            "[journal] min_free in bytes on the journal's file system.",
        )?;
        let dedup_keys = IntGauge::new("tocsin_dedup_keys", "Content keys in the dedup window.")?;
        r.register(Box::new(dedup_keys.clone()))?;
        let dedup_evicted = IntCounter::new(
            "tocsin_dedup_evicted_total",
            "Content keys dropped from the dedup window before their time because it was full ([dedup] max_keys).",
        )?;
        r.register(Box::new(dedup_evicted.clone()))?;
        let reloads = counter_vec(
            &r,
            "tocsin_reloads_total",
            "Configuration reloads by result.",
            &["result"],
        )?;
        let listeners = IntGaugeVec::new(
            Opts::new("tocsin_listeners", "Listeners bound, by transport."),
            &["transport"],
        )?;
        r.register(Box::new(listeners.clone()))?;
        let sink_backlog = IntGaugeVec::new(
            Opts::new(
                "tocsin_forward_backlog_records",
                "Journal records not yet delivered, by sink.",
            ),
            &["sink"],
        )?;
        r.register(Box::new(sink_backlog.clone()))?;
        let sink_published = counter_vec(
            &r,
            "tocsin_forward_published_total",
            "Events delivered (a PubAck received, or a line written), by sink.",
            &["sink"],
        )?;
        let sink_latency = HistogramVec::new(
            HistogramOpts::new(
                "tocsin_forward_publish_seconds",
                "Time from publishing an event to its acknowledgement, by sink.",
            )
            .buckets(latency_buckets()),
            &["sink"],
        )?;
        r.register(Box::new(sink_latency.clone()))?;
        let sink_delivery = HistogramVec::new(
            HistogramOpts::new(
                "tocsin_sink_delivery_seconds",
                "Time from a record's arrival to its delivery by a sink (its lines written to the file, or its last PubAck), one sample per record, by sink.",
            )
            .buckets(delivery_buckets()),
            &["sink"],
        )?;
        r.register(Box::new(sink_delivery.clone()))?;
        let sink_connected = IntGaugeVec::new(
            Opts::new(
                "tocsin_forward_connected",
                "1 while the sink is connected to its destination.",
            ),
            &["sink"],
        )?;
        r.register(Box::new(sink_connected.clone()))?;
        let sink_errors = counter_vec(
            &r,
            "tocsin_forward_errors_total",
            "Sink failures (connection lost, publish refused), each followed by a retry.",
            &["sink"],
        )?;
        let journal_disk_free = gauge(
            &r,
            "tocsin_journal_disk_free_bytes",
            "Free bytes on the filesystem of the data directory (for unprivileged users).",
        )?;
        let journal_disk_total = gauge(
            &r,
            "tocsin_journal_disk_total_bytes",
            "Size of the filesystem of the data directory.",
        )?;
        let journal_size = gauge(
            &r,
            "tocsin_journal_size_bytes",
            "Bytes taken by journal segments (preallocated size).",
        )?;
        let journal_durable_lsn = gauge(
            &r,
            "tocsin_journal_durable_lsn",
            "Sequence number of the last durable journal record.",
        )?;
        let supervision_paths = gauge(
            &r,
            "tocsin_supervision_paths",
            "Reporting paths under supervision.",
        )?;
        let supervision_failed = gauge(
            &r,
            "tocsin_supervision_failed_paths",
            "Supervised paths now silent past their interval.",
        )?;
        let supervision_refused = IntCounter::new(
            "tocsin_supervision_paths_refused_total",
            format!("Frames over a path not supervised because its site already had {} paths (the most one site may have).", crate::receiver::supervision::MAX_PATHS_PER_SITE),
        )?;
        r.register(Box::new(supervision_refused.clone()))?;
        let supervision_held = gauge(
            &r,
            "tocsin_supervision_held_paths",
            "Supervised paths past their deadline whose failure waits ([supervision] hold) because a peer receiver cannot be heard.",
        )?;
        let supervision_heard_dropped = IntCounter::new(
            "tocsin_supervision_heard_dropped_total",
            "Acknowledged frames whose hearing did not reach supervision (its queue was full); every path then counts as heard, so a failure may be late, never false.",
        )?;
        r.register(Box::new(supervision_heard_dropped.clone()))?;
        let supervision_peers = IntGaugeVec::new(
            Opts::new(
                "tocsin_supervision_peers",
                "Peer receivers sharing supervision over the bus, by state (live: heard within 5 s; unheard: not, and failures are held).",
            ),
            &["state"],
        )?;
        r.register(Box::new(supervision_peers.clone()))?;
        let supervision_beats = counter_vec(
            &r,
            "tocsin_supervision_beats_total",
            "Supervision beats (what a receiver heard in a second) sent to and received from the bus.",
            &["direction"],
        )?;
        let supervision_bus_errors = IntCounter::new(
            "tocsin_supervision_bus_errors_total",
            "Failures to reach the bus for supervision sharing (connect, stream, publish, consume), each retried.",
        )?;
        r.register(Box::new(supervision_bus_errors.clone()))?;
        let clock_steps = counter_vec(
            &r,
            "tocsin_clock_steps_total",
            "Steps of the wall clock of more than 2 s against the monotonic clock, by direction. Supervision deadlines do not move with them; event times do.",
            &["direction"],
        )?;
        let clock_last_step = gauge(
            &r,
            "tocsin_clock_last_step_seconds",
            "Size of the last wall-clock step, in seconds (negative: backward).",
        )?;
        let key_blocks = IntCounter::new(
            "tocsin_key_blocks_total",
            "Extended [K…] blocks (encryption keys) received; masked, never stored nor used.",
        )?;
        r.register(Box::new(key_blocks.clone()))?;
        let build = IntGaugeVec::new(
            Opts::new(
                "tocsin_build_info",
                "Build information; the value is always 1.",
            ),
            &["version"],
        )?;
        r.register(Box::new(build.clone()))?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let automation = crate::forward::surgard::Families::register(&r)?;
        // Series that exist from the start, at zero, so rates and alerts work before the
        // first occurrence.
        for class in crate::protocol::codes::EventClass::ALL {
            events.with_label_values(&[class.as_str()]);
        }
        for reason in ["not_a_frame", "too_long", "truncated"] {
            junk.with_label_values(&["tcp", reason]);
            junk_bytes.with_label_values(&["tcp", reason]);
        }
        for reason in ["not_a_frame", "truncated"] {
            junk.with_label_values(&["udp", reason]);
            junk_bytes.with_label_values(&["udp", reason]);
        }
        for event in ["accepted", "closed", "refused", "idle"] {
            connections.with_label_values(&[event]);
        }
        for result in ["ok", "failed"] {
            reloads.with_label_values(&[result]);
        }
        for action in ["nak", "audit_lost"] {
            journal_errors.with_label_values(&[action]);
        }
        for reason in ["disk_full", "min_free", "failed"] {
            journal_refused.with_label_values(&[reason]);
        }
        let http_refused = counter_vec(
            &r,
            "tocsin_http_refused_total",
            "HTTP requests refused by the access rules: unauthorized (no valid token), locked (off loopback without a token: only /healthz and /readyz served).",
            &["reason"],
        )?;
        for reason in ["unauthorized", "locked"] {
            http_refused.with_label_values(&[reason]);
        }
        for direction in ["forward", "backward"] {
            clock_steps.with_label_values(&[direction]);
        }
        for direction in ["sent", "received"] {
            supervision_beats.with_label_values(&[direction]);
        }
        for state in ["live", "unheard"] {
            supervision_peers.with_label_values(&[state]);
        }
        let bus = crate::forward::nats::BusMetrics::register(&r)?;
        Ok(Metrics {
            bus,
            registry: r,
            frames,
            events,
            junk,
            junk_bytes,
            connections_open,
            connections,
            ack_latency,
            journal_fsync,
            journal_batch,
            journal_append,
            journal_bytes,
            journal_failures,
            journal_errors,
            journal_refused,
            journal_reopens,
            journal_space_low,
            journal_min_free,
            dedup_keys,
            dedup_evicted,
            reloads,
            listeners,
            sink_backlog,
            sink_published,
            sink_latency,
            sink_delivery,
            sink_connected,
            sink_errors,
            journal_disk_free,
            journal_disk_total,
            journal_size,
            journal_durable_lsn,
            supervision_paths,
            supervision_failed,
            supervision_refused,
            http_refused,
            supervision_held,
            supervision_heard_dropped,
            supervision_peers,
            supervision_beats,
            supervision_bus_errors,
            clock_steps,
            clock_last_step,
            key_blocks,
            automation,
        })
    }

    /// The metrics of one sink.
    pub fn sink(&self, name: &str) -> crate::forward::SinkMetrics {
        crate::forward::SinkMetrics {
            backlog: self.sink_backlog.with_label_values(&[name]),
            published: self.sink_published.with_label_values(&[name]),
            publish_latency: self.sink_latency.with_label_values(&[name]),
            delivery: self.sink_delivery.with_label_values(&[name]),
            connected: self.sink_connected.with_label_values(&[name]),
            errors: self.sink_errors.with_label_values(&[name]),
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec only fails on a broken metric family, which registration
        // already refused.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

/// Values of the token label; [`token_slot`] numbers them.
pub const TOKEN_LABELS: usize = 12;

/// The token label: known tokens as themselves (with `*` when encrypted), anything else
/// `other`, so a sender cannot create label values.
pub fn token_label(token: &str, encrypted: bool) -> &'static str {
    token_slot(token, encrypted).1
}

/// The token label and its number below [`TOKEN_LABELS`], for [`Slots`].
pub fn token_slot(token: &str, encrypted: bool) -> (usize, &'static str) {
    match (token, encrypted) {
        ("SIA-DCS", false) => (0, "SIA-DCS"),
        ("SIA-DCS", true) => (1, "*SIA-DCS"),
        ("ADM-CID", false) => (2, "ADM-CID"),
        ("ADM-CID", true) => (3, "*ADM-CID"),
        ("NULL", false) => (4, "NULL"),
        ("NULL", true) => (5, "*NULL"),
        ("", _) => (6, "none"),
        ("XNM", false) => (8, "XNM"),
        ("XNM", true) => (9, "*XNM"),
        ("RSP", false) => (10, "RSP"),
        ("RSP", true) => (11, "*RSP"),
        _ => (7, "other"),
    }
}
