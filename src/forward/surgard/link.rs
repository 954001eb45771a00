//! Delivery over one automation link, as a state machine without I/O (the sans-IO shape of
//! `quinn-proto`): the driver hands it packets, connection changes, the bytes the
//! automation sends back and the time; it says what to write, when it next needs the
//! clock, and what happened ([`LinkEvent`]). No sockets, no tokio, no journal.
//!
//! Rules (`spec/surgard-mlr2.md` §1):
//! - **One packet in flight.** The head of the queue is sent; the next one only once the
//!   head is settled.
//! - **Done only on ACK.** A NAK sends the same packet again; after `max_attempts` NAKs it is
//!   set aside ([`LinkEvent::SetAside`]) so that one packet the automation refuses cannot
//!   hold every alarm behind it. Silence past `ack_timeout` sends it again too, but never
//!   sets it aside: an absent automation loses nothing, the journal holds the backlog.
//! - **Answers are matched to copies.** The protocol carries no sequence number, so after a
//!   resend on silence a late answer to the first copy could be taken for the answer to the
//!   next packet. The machine counts the copies sent and the answers received; the head is
//!   settled only when every copy is answered or the last copy's deadline has passed, and an
//!   answer beyond the copies sent is stray (counted, ignored). A new connection starts the
//!   count afresh: answers cannot cross connections.
//! - **Heartbeats supervise the link.** When nothing was sent for `heartbeat`, a heartbeat
//!   goes out (and once when a connection opens with nothing queued); it is in flight like a
//!   packet. Any answer means the automation is there.
//! - **Up and down.** The link is up once the automation answered on this connection, down
//!   when it is disconnected or a copy went unanswered past its deadline. After
//!   [`SILENCE_LIMIT`] unanswered copies in a row the driver is told to hang up
//!   ([`LinkEvent::Hangup`]): a connection that swallows packets is worth a fresh one.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::packet::{ACK, NAK};

/// Unanswered copies in a row after which the connection is given up.
pub const SILENCE_LIMIT: u32 = 3;

/// The link's timers and limit, from `[[automation]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub ack_timeout: Duration,
    pub heartbeat: Duration,
    pub max_attempts: u32,
}

/// What the driver is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent<T> {
    /// The head was acknowledged. `latency` runs from its first copy on this connection.
    Delivered {
        token: T,
        latency: Duration,
    },
    /// The automation refused the head `naks` times; it left the queue.
    SetAside {
        token: T,
        packet: Vec<u8>,
        naks: u32,
    },
    /// A NAK for the head (it will be sent again unless set aside).
    Nak {
        naks: u32,
    },
    /// A copy went unanswered past its deadline.
    Timeout,
    HeartbeatAnswered,
    /// An answer with no copy waiting for it.
    Stray,
    Up,
    Down,
    /// Close this connection (too many unanswered copies).
    Hangup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum What {
    Head,
    Heartbeat,
}

/// The packet on its way: the head of the queue, or a heartbeat.
#[derive(Debug)]
struct Flight {
    what: What,
    /// Copies written on this connection, and answers received for them.
    sent: u32,
    answered: u32,
    acked: bool,
    /// A copy must be written (first send, after a NAK, after a timeout).
    resend: bool,
    deadline: Instant,
    first_sent: Option<Instant>,
}

#[derive(Debug)]
struct Conn {
    last_sent: Instant,
    silences: u32,
    answered_once: bool,
}

/// The state of one output's link. `T` travels with each packet back to the driver.
#[derive(Debug)]
pub struct Link<T> {
    timing: Timing,
    heartbeat: Vec<u8>,
    queue: VecDeque<(Vec<u8>, T)>,
    conn: Option<Conn>,
    flight: Option<Flight>,
    /// NAKs the head got, across connections.
    naks: u32,
    up: bool,
    events: VecDeque<LinkEvent<T>>,
}

impl<T> Link<T> {
    pub fn new(timing: Timing, heartbeat: Vec<u8>) -> Link<T> {
        Link {
            timing,
            heartbeat,
            queue: VecDeque::new(),
            conn: None,
            flight: None,
            naks: 0,
            up: false,
            events: VecDeque::new(),
        }
    }

    /// Queues a packet behind the others.
    pub fn push(&mut self, packet: Vec<u8>, token: T) {
        self.queue.push_back((packet, token));
    }

    /// Packets queued, the one in flight included.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Nothing queued and nothing in flight.
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.flight.is_none()
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// A connection opened: the packet that was in flight is sent again first.
    pub fn connected(&mut self, now: Instant) {
        self.disconnected();
        self.conn = Some(Conn {
            last_sent: now,
            silences: 0,
            answered_once: false,
        });
    }

    /// The connection closed (or was closed).
    pub fn disconnected(&mut self) {
        self.conn = None;
        self.set_down();
        if let Some(f) = self.flight.take() {
            match (f.what, f.acked) {
                // Acknowledged, only waiting out answers to other copies: done.
                (What::Head, true) => self.complete(f, None),
                // Sent again on the next connection, answers counted afresh.
                (What::Head, false) => {
                    self.flight = Some(Flight::new(What::Head, f.deadline));
                }
                (What::Heartbeat, _) => {}
            }
        }
    }

    /// The bytes to write now, if any. Call until `None` after every other call.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        let conn = self.conn.as_mut()?;
        if self.flight.is_none() {
            let what = if !self.queue.is_empty() {
                What::Head
            } else if !conn.answered_once
                || now.saturating_duration_since(conn.last_sent) >= self.timing.heartbeat
            {
                What::Heartbeat
            } else {
                return None;
            };
            self.flight = Some(Flight::new(what, now));
        }
        let f = self.flight.as_mut()?;
        if !f.resend {
            return None;
        }
        f.resend = false;
        f.sent += 1;
        f.deadline = now + self.timing.ack_timeout;
        f.first_sent.get_or_insert(now);
        conn.last_sent = now;
        match f.what {
            What::Head => self.queue.front().map(|(p, _)| p.as_slice()),
            What::Heartbeat => Some(&self.heartbeat),
        }
    }

    /// Bytes from the automation. Anything but ACK and NAK is ignored.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        for &b in bytes {
            match b {
                ACK => self.answer(true, now),
                NAK => self.answer(false, now),
                _ => {}
            }
        }
    }

    fn answer(&mut self, ack: bool, now: Instant) {
        let Some(f) = self.flight.as_mut().filter(|f| f.answered < f.sent) else {
            self.events.push_back(LinkEvent::Stray);
            return;
        };
        f.answered += 1;
        if ack {
            f.acked = true;
        } else if f.what == What::Head {
            self.naks += 1;
            self.events.push_back(LinkEvent::Nak { naks: self.naks });
        }
        if let Some(c) = self.conn.as_mut() {
            c.silences = 0;
            c.answered_once = true;
        }
        if !self.up && self.conn.is_some() {
            self.up = true;
            self.events.push_back(LinkEvent::Up);
        }
        self.settle(now);
    }

    /// Once every copy is answered: done, set aside, or send again.
    fn settle(&mut self, now: Instant) {
        let Some(f) = self.flight.take() else { return };
        if f.answered < f.sent {
            self.flight = Some(f);
            return;
        }
        if f.acked || f.what == What::Heartbeat {
            self.complete(f, Some(now));
        } else if self.naks >= self.timing.max_attempts {
            let naks = std::mem::take(&mut self.naks);
            if let Some((packet, token)) = self.queue.pop_front() {
                self.events.push_back(LinkEvent::SetAside {
                    token,
                    packet,
                    naks,
                });
            }
        } else {
            self.flight = Some(Flight { resend: true, ..f });
        }
    }

    fn complete(&mut self, f: Flight, now: Option<Instant>) {
        match f.what {
            What::Heartbeat => self.events.push_back(LinkEvent::HeartbeatAnswered),
            What::Head => {
                self.naks = 0;
                if let Some((_, token)) = self.queue.pop_front() {
                    let latency = match (now, f.first_sent) {
                        (Some(n), Some(s)) => n.saturating_duration_since(s),
                        _ => Duration::ZERO,
                    };
                    self.events
                        .push_back(LinkEvent::Delivered { token, latency });
                }
            }
        }
    }

    /// When the machine next needs [`Link::handle_timeout`], if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn = self.conn.as_ref()?;
        match &self.flight {
            Some(f) if !f.resend => Some(f.deadline),
            Some(_) => None,
            None if self.queue.is_empty() => Some(conn.last_sent + self.timing.heartbeat),
            None => None,
        }
    }

    /// The clock reached a deadline given by [`Link::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(f) = self.flight.as_mut() else {
            return;
        };
        if f.resend || now < f.deadline || self.conn.is_none() {
            return;
        }
        if f.acked {
            // Acknowledged; the other copies' answers did not come: done.
            if let Some(f) = self.flight.take() {
                self.complete(f, Some(now));
            }
            return;
        }
        f.resend = true;
        self.events.push_back(LinkEvent::Timeout);
        self.set_down();
        if let Some(c) = self.conn.as_mut() {
            c.silences += 1;
            if c.silences >= SILENCE_LIMIT {
                self.events.push_back(LinkEvent::Hangup);
            }
        }
    }

    fn set_down(&mut self) {
        if self.up {
            self.up = false;
            self.events.push_back(LinkEvent::Down);
        }
    }

    /// The next thing that happened, oldest first.
    pub fn poll_event(&mut self) -> Option<LinkEvent<T>> {
        self.events.pop_front()
    }
}

impl Flight {
    fn new(what: What, deadline: Instant) -> Flight {
        Flight {
            what,
            sent: 0,
            answered: 0,
            acked: false,
            resend: true,
            deadline,
            first_sent: None,
        }
    }
}

#[cfg(test)]
mod tests;
