//! The receiver layer: per-frame decisions, deduplication, normalized events and
//! supervision. Pure like the protocol layer: time and state come in as values, decisions
//! and events go out; sockets and disk are elsewhere.

pub mod accounts;
pub mod decide;
pub mod dedup;
pub mod event;
pub mod event_id;
pub mod json;
pub mod normalize;
pub mod record;
pub mod supervision;
pub mod supervision_event;
pub mod supervision_state;
