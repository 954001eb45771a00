//! The journal record of a one-event SIA frame, as the receiver builds it before the ACK:
//! shared by the journal benchmark and the instruction-count profile, so that both measure
//! the same record.

use tocsin::receiver::event::rfc3339;
use tocsin::receiver::normalize::{self, Arrival};
use tocsin::receiver::record::{JournalRecord, RecordKind};

/// The frame the protocol benchmarks decode.
pub const SIA: &[u8] = b"\n72FA0039\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA01]_12:00:00,01-15-2024\r";

/// The record of [`SIA`] arriving as `arrival` says, with its ACK and content key.
pub fn sia_record(arrival: &Arrival<'_>) -> JournalRecord {
    let events = normalize::decode_clear(SIA, arrival, &mut Vec::new()).unwrap_or_default();
    JournalRecord {
        kind: RecordKind::Frame,
        at: rfc3339(arrival.now),
        transport: Some("tcp".into()),
        peer: arrival.peer_label.map(Into::into),
        raw: events.first().map(|e| e.raw.clone()),
        reply: Some("\\n8F2D0016\"ACK\"0001L0#1234[]\\r".into()),
        outcome: Some("ack".into()),
        reason: Some("new".into()),
        account: Some("1234".into()),
        key: Some("0123456789abcdef0123456789abcdef".into()),
        events,
    }
}
