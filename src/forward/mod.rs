//! Forwarders: tail the journal and hand its events to consumers, each from its own
//! cursor. Reception never waits on them (design invariant 2): they read what is already
//! durable, at their own pace, and catch up after an outage.

pub mod jsonl;
