//! What the receiver writes in the journal: one record per frame received (the audit
//! trail: bytes in, reply out, outcome) carrying the events the frame produced, and one
//! record per event the receiver raises itself (supervision).
//!
//! The journal stores opaque bytes; this is their schema, JSON so that an operator can
//! read a journal with ordinary tools and so that old records stay readable as fields are
//! added.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::event::Event;

/// One journal record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JournalRecord {
    pub kind: RecordKind,
    /// Receiver time, RFC 3339.
    pub at: CompactString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<CompactString>,
    /// The frame as received, escaped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// The reply sent, escaped; absent when the frame got silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// `ack`, `nak`, `duh` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<CompactString>,
    /// Content key (hex) of an acknowledged new frame: rebuilds the dedup window after a
    /// restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<CompactString>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A frame and what became of it.
    Frame,
    /// Events the receiver raised itself.
    Internal,
}

impl JournalRecord {
    /// A record of events the receiver raised itself (no frame behind them).
    pub fn internal(at: CompactString, events: Vec<Event>) -> JournalRecord {
        JournalRecord {
            kind: RecordKind::Internal,
            at,
            transport: None,
            peer: None,
            raw: None,
            reply: None,
            outcome: None,
            reason: None,
            account: None,
            key: None,
            events,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data to a Vec cannot fail; an empty record would be skipped
        // by readers rather than crash anything.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<JournalRecord, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
