//! The metric series every frame moves, looked up once.
//!
//! `tocsin_frames_total`, `tocsin_ack_latency_seconds` and `tocsin_events_total` are
//! labelled families; finding a child by its label values hashes them and takes the
//! family's lock. Each label combination a frame can produce is numbered here instead, and
//! its child kept in a slot ([`Slots`]), so counting a frame is an atomic add.

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};

use super::metrics::{token_slot, Metrics, Slots, TOKEN_LABELS};
use crate::protocol::codes::EventClass;
use crate::receiver::decide::{DuhReason, FrameSummary, NakReason, Outcome, SilenceReason};
use crate::receiver::event::{Event, Transport};

/// The per-frame series of [`Metrics`], numbered by transport, token, outcome and class
/// so that counting a frame is an atomic add, not a lookup by label values.
pub struct FrameSeries {
    frames_family: IntCounterVec,
    latency_family: HistogramVec,
    events_family: IntCounterVec,
    /// `tocsin_frames_total`, by transport, token and outcome (which gives reply and reason).
    frames: Slots<IntCounter>,
    /// `tocsin_ack_latency_seconds`, by transport and reply.
    latency: Slots<Histogram>,
    /// `tocsin_events_total`, by class.
    events: Slots<IntCounter>,
}

/// Transports, numbered by [`transport_slot`].
const TRANSPORTS: usize = 4;
/// Outcomes, numbered by [`outcome_slot`].
const OUTCOMES: usize = 17;
/// Replies (`ack`, `nak`, `duh`, `none`).
const REPLIES: usize = 4;

fn transport_slot(t: Transport) -> usize {
    match t {
        Transport::Tcp => 0,
        Transport::Udp => 1,
        Transport::Offline => 2,
        Transport::Internal => 3,
    }
}

/// The outcome's number below [`OUTCOMES`], and its reply's below [`REPLIES`].
fn outcome_slot(o: Outcome) -> (usize, usize) {
    match o {
        Outcome::AckNew => (0, 0),
        Outcome::AckDuplicate => (1, 0),
        Outcome::AckNull => (2, 0),
        Outcome::Nak(r) => (
            match r {
                NakReason::Timestamp => 3,
                NakReason::Decrypt => 4,
                NakReason::NoKey => 5,
                NakReason::UnknownAccount => 6,
                NakReason::EncryptionRequired => 7,
                NakReason::Journal => 8,
            },
            1,
        ),
        Outcome::Duh(r) => (
            match r {
                DuhReason::UnknownToken => 9,
                DuhReason::Content => 10,
            },
            2,
        ),
        Outcome::Silent(r) => (
            match r {
                SilenceReason::Crc => 11,
                SilenceReason::Length => 12,
                SilenceReason::Framing => 13,
                SilenceReason::Syntax => 14,
                SilenceReason::TooLong => 15,
                SilenceReason::Reply => 16,
            },
            3,
        ),
    }
}

impl FrameSeries {
    pub fn new(m: &Metrics) -> FrameSeries {
        FrameSeries {
            frames_family: m.frames.clone(),
            latency_family: m.ack_latency.clone(),
            events_family: m.events.clone(),
            frames: Slots::new(TRANSPORTS * TOKEN_LABELS * OUTCOMES),
            latency: Slots::new(TRANSPORTS * REPLIES),
            events: Slots::new(EventClass::ALL.len()),
        }
    }

    pub fn frame(&self, transport: Transport, summary: &FrameSummary, ended: Outcome, took: f64) {
        let t = transport_slot(transport);
        let (token, token_text) = token_slot(&summary.token, summary.encrypted);
        let (outcome, reply) = outcome_slot(ended);
        let (reply_text, reason_text) = (ended.reply_label(), ended.reason_label());
        let transport_text = transport.as_str();
        self.frames.with(
            (t * TOKEN_LABELS + token) * OUTCOMES + outcome,
            || {
                self.frames_family.with_label_values(&[
                    transport_text,
                    token_text,
                    reply_text,
                    reason_text,
                ])
            },
            IntCounter::inc,
        );
        self.latency.with(
            t * REPLIES + reply,
            || {
                self.latency_family
                    .with_label_values(&[transport_text, reply_text])
            },
            |h| h.observe(took),
        );
    }

    pub fn event(&self, class: EventClass, n: u64) {
        self.events.with(
            class as usize,
            || self.events_family.with_label_values(&[class.as_str()]),
            |c| c.inc_by(n),
        );
    }

    /// Counts events given as a count per class (indexed by `class as usize`).
    pub fn events(&self, counts: &ClassCounts) {
        for class in EventClass::ALL {
            match counts.get(class as usize) {
                Some(&n) if n > 0 => self.event(class, n),
                _ => {}
            }
        }
    }
}

/// Events of one frame by class, indexed by `class as usize`: counted before the record
/// takes the events, without a list of them.
pub type ClassCounts = [u64; EventClass::ALL.len()];

pub fn class_counts(events: &[Event]) -> ClassCounts {
    let mut counts = [0; EventClass::ALL.len()];
    for e in events {
        if let Some(n) = counts.get_mut(e.class as usize) {
            *n += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Every outcome, so that a slot shared by two label sets would be caught here.
    fn all_outcomes() -> Vec<Outcome> {
        let mut all = vec![Outcome::AckNew, Outcome::AckDuplicate, Outcome::AckNull];
        all.extend(
            [
                NakReason::Timestamp,
                NakReason::Decrypt,
                NakReason::NoKey,
                NakReason::UnknownAccount,
                NakReason::EncryptionRequired,
                NakReason::Journal,
            ]
            .map(Outcome::Nak),
        );
        all.extend([DuhReason::UnknownToken, DuhReason::Content].map(Outcome::Duh));
        all.extend(
            [
                SilenceReason::Crc,
                SilenceReason::Length,
                SilenceReason::Framing,
                SilenceReason::Syntax,
                SilenceReason::TooLong,
                SilenceReason::Reply,
            ]
            .map(Outcome::Silent),
        );
        all
    }

    #[test]
    fn each_label_set_has_a_slot_of_its_own() {
        let outcomes = all_outcomes();
        let slots: HashSet<usize> = outcomes.iter().map(|&o| outcome_slot(o).0).collect();
        assert_eq!(slots.len(), outcomes.len());
        assert!(slots.iter().all(|&s| s < OUTCOMES));
        for o in outcomes {
            let reply = ["ack", "nak", "duh", "none"]
                .get(outcome_slot(o).1)
                .copied();
            assert_eq!(reply, Some(o.reply_label()), "{o:?}");
        }
        let tokens = ["SIA-DCS", "ADM-CID", "NULL", "XNM", "RSP", "", "XYZ"];
        let mut seen = std::collections::HashMap::new();
        for t in tokens {
            for encrypted in [false, true] {
                let (slot, label) = token_slot(t, encrypted);
                assert!(slot < TOKEN_LABELS);
                assert_eq!(*seen.entry(slot).or_insert(label), label);
            }
        }
        assert_eq!(seen.len(), TOKEN_LABELS);
        let transports = [
            Transport::Tcp,
            Transport::Udp,
            Transport::Offline,
            Transport::Internal,
        ];
        let slots: HashSet<usize> = transports.iter().map(|&t| transport_slot(t)).collect();
        assert_eq!(slots.len(), TRANSPORTS);
        assert!(slots.iter().all(|&s| s < TRANSPORTS));
    }

    #[test]
    fn classes_are_counted_by_their_own_slot() {
        let m = Metrics::new().unwrap();
        let series = FrameSeries::new(&m);
        let mut counts = [0; EventClass::ALL.len()];
        for (n, class) in EventClass::ALL.iter().enumerate() {
            if let Some(c) = counts.get_mut(*class as usize) {
                *c = n as u64 + 1;
            }
        }
        series.events(&counts);
        for (n, class) in EventClass::ALL.iter().enumerate() {
            let got = m.events.with_label_values(&[class.as_str()]).get();
            assert_eq!(got, n as u64 + 1, "{}", class.as_str());
        }
    }
}
