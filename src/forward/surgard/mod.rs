//! Sur-Gard automation output: the station's existing automation software (the operators'
//! alarm-handling package) gets tocsin's alarms the way it gets them from a Sur-Gard
//! receiver (MLR2 / System III / System 5), over TCP, with the guarantees of the bus.
//!
//! Each `[[automation]]` block is one output: one more sink tailing the journal from its
//! own cursor (`automation-<name>`), independent of the others and of the bus. The parts:
//!
//! | file | does | knows nothing of |
//! | --- | --- | --- |
//! | [`packet`] | event in, packets out (pure), heartbeats | sockets, time, the journal |
//! | [`codes`] | the Contact ID codes of tocsin's own events | |
//! | [`source`] | reads events from journal records; which events make packets | sockets |
//! | [`link`] | delivery state machine: one in flight, ACK/NAK/silence, heartbeats, up/down | sockets, tokio |
//! | [`output`] | the task: journal → queue → link ↔ socket; cursor; set-aside events | packet formats |
//! | [`set_aside`] | the event reporting a packet the automation refused | sockets |
//! | [`read`] | reading packets back (automation-sim, tests, fuzz) | |
//! | [`config`], [`accounts`] | `[[automation]]` and `account_map` checked | |
//! | [`watch`] | metrics and the `/status` entry | |
//!
//! Invariants: an event is done for an output only when the automation ACKed every packet
//! made from it (or one was set aside after `max_attempts` NAKs, which is journaled as an
//! event); the output's cursor never passes an event not done, so retention keeps it (the
//! smallest cursor holds back deletion) and a restart resumes there; reception never waits
//! on an output.

pub mod accounts;
pub mod codes;
pub mod config;
pub mod link;
pub mod output;
pub mod packet;
pub mod read;
pub mod set_aside;
pub mod source;
pub mod watch;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{AutomationConfig, OutputSpec};
pub use watch::{Families, OutputState};

use crate::journal::JournalHandle;
use crate::receiver::event::Event;

/// The packets an automation gets for these events (one record's, or one frame's), in
/// order: what `tocsin decode --surgard` shows.
pub fn packets(
    events: &[Event],
    format: &packet::Format,
    map: &accounts::AccountMap,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for e in source::senders(events) {
        packet::write_event(e, format, map, &mut out);
    }
    out
}

/// The status records of the outputs, made before their tasks so `/status` has them
/// from the start.
pub fn states(specs: &[OutputSpec], families: &Families) -> Vec<Arc<OutputState>> {
    specs
        .iter()
        .map(|s| Arc::new(OutputState::new(s, families)))
        .collect()
}

/// Starts one task per output; each stops (and stores its cursor) when `stop` fires.
pub fn spawn(
    specs: &[OutputSpec],
    states: &[Arc<OutputState>],
    journal: &JournalHandle,
    receiver: &str,
    stop: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    specs
        .iter()
        .zip(states)
        .map(|(spec, state)| {
            let (spec, state, journal) = (spec.clone(), Arc::clone(state), journal.clone());
            let (receiver, stop) = (receiver.to_string(), stop.clone());
            tokio::spawn(async move {
                let name = spec.name.clone();
                if let Err(e) = output::run(spec, journal, state, receiver, stop).await {
                    tracing::error!(output = %name, error = %e, "automation output stopped");
                }
            })
        })
        .collect()
}
