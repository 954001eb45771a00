//! The journal's proof that one record is on disk.
//!
//! An ACK hands the responsibility for an alarm to the station, so it may leave only once
//! the record holding the frame's events is written and fdatasync'd. Only the journal
//! knows when that is, and [`Durable`] is how it says so: it has no public constructor, so
//! outside this module the only way to hold one is to have awaited
//! [`JournalHandle::append_durable`](super::JournalHandle::append_durable) for that record
//! and got `Ok`. It carries back the ticket the appender gave with the record, so an ACK
//! waiting for one frame cannot be released by the proof of another frame's record. It is
//! neither `Clone` nor `Copy`: one proof releases one reply.

use super::Lsn;

/// A record is durable: written, and its `fdatasync` returned success.
#[derive(Debug, PartialEq, Eq)]
pub struct Durable {
    lsn: Lsn,
    ticket: u128,
}

impl Durable {
    pub(super) fn new(lsn: Lsn, ticket: u128) -> Durable {
        Durable { lsn, ticket }
    }

    /// Where the record is.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// What the appender gave with the record, unchanged.
    pub fn ticket(&self) -> u128 {
        self.ticket
    }
}
