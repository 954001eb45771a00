//! TCP reception: the accept loop and one task per connection.
//!
//! Limits are taken before work is done: a connection slot (semaphore permit) before
//! `accept`, so the cap is real; a per-address count right after, so one site or one
//! scanner cannot take every slot; an idle timeout between frames (only a whole frame
//! counts as activity: a peer trickling junk, or a frame that never ends, is closed when
//! it runs out); a write timeout on each reply; a junk budget per connection. Accept
//! errors (out of descriptors, mostly) back off and retry: the listener never ends because
//! of them. Every line a peer can make the daemon repeat goes through a rate limit.
//!
//! A connection handles its frames one at a time, as panels send them (each waits for its
//! ACK). Shutdown is observed only between frames, so a frame being answered is finished,
//! fsync and reply included.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::codec::{Cut, Dc09Codec, READ_ROOM};
use super::counters::{ConnectionCounters, JunkCounters};
use super::Limits;
use crate::receiver::event::Transport;
use crate::station::Station;
use crate::throttle::{Throttle, Verdict};

/// Send buffer of a panel's connection. A panel reads each reply before it sends the next
/// frame, so a few replies is all it ever has in flight; a peer that sends frames and never
/// reads their replies fills this instead of the kernel's default (which grows to
/// megabytes: tens of thousands of frames decided, journaled and synced for a peer that
/// takes nothing), and is closed after the write timeout.
const REPLY_BUFFER: usize = 16 * 1024;

/// Receive buffer of a panel's connection: a frame is at most a few kilobytes and a panel
/// sends the next only after its ACK; the kernel's default grows to megabytes, which a
/// peer that floods bytes the daemon will not read (junk past its budget, frames behind a
/// reply it does not take) would hold, thousands of connections at once.
const FRAME_BUFFER: usize = 64 * 1024;

/// Junk log lines a minute at most, all connections together.
static JUNK_LOG: Throttle = Throttle::per_minute(10);
/// Connections refused, and accept failures (out of descriptors), all listeners together.
static ACCEPT_LOG: Throttle = Throttle::per_minute(5);
/// Replies that could not be written (a peer that does not read them, or went away).
static REPLY_LOG: Throttle = Throttle::per_minute(5);

/// Connections per remote address, shared by all TCP listeners.
#[derive(Default)]
pub struct PeerCounts {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// Holds one connection's place in [`PeerCounts`]; gives it back on drop.
struct PeerSlot {
    counts: Arc<PeerCounts>,
    ip: IpAddr,
}

impl PeerCounts {
    fn try_take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut counts = self.counts.lock();
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            counts: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.counts.lock();
        if let Some(n) = counts.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Everything a TCP listener needs besides its socket.
#[derive(Clone)]
pub struct TcpContext {
    pub station: Arc<Station>,
    pub limits: Limits,
    pub connections: Arc<ConnectionCounters>,
    pub junk: Arc<JunkCounters>,
    pub slots: Arc<Semaphore>,
    pub peers: Arc<PeerCounts>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

/// Accepts connections until `ctx.shutdown` fires.
pub async fn serve(listener: TcpListener, ctx: TcpContext) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return,
            p = Arc::clone(&ctx.slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (socket, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                if let Verdict::Log { suppressed } = ACCEPT_LOG.check_now() {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, suppressed, "accept failed");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Some(slot) = ctx
            .peers
            .try_take(peer.ip(), ctx.limits.max_connections_per_peer)
        else {
            ctx.connections.refused.inc();
            if let Verdict::Log { suppressed } = ACCEPT_LOG.check_now() {
                tracing::warn!(peer = %peer, limit = ctx.limits.max_connections_per_peer, suppressed, "connection refused: too many from this address");
            }
            drop(socket);
            continue;
        };
        ctx.connections.accepted.inc();
        ctx.connections.open.inc();
        let _ = socket.set_nodelay(true);
        let sock = socket2::SockRef::from(&socket);
        let _ = sock.set_send_buffer_size(REPLY_BUFFER);
        let _ = sock.set_recv_buffer_size(FRAME_BUFFER);
        let conn = Connection {
            station: Arc::clone(&ctx.station),
            limits: ctx.limits.clone(),
            // A child of the listener's token: waiting for it locks the child's own
            // mutex, where the shared token's would be one lock that every connection
            // takes on every poll, bouncing between the cores.
            shutdown: ctx.shutdown.child_token(),
            peer,
            junk: Arc::clone(&ctx.junk),
            connections: Arc::clone(&ctx.connections),
        };
        ctx.tracker.spawn(async move {
            conn.run(socket).await;
            drop(slot);
            drop::<OwnedSemaphorePermit>(permit);
        });
    }
}

struct Connection {
    station: Arc<Station>,
    limits: Limits,
    shutdown: CancellationToken,
    peer: SocketAddr,
    junk: Arc<JunkCounters>,
    connections: Arc<ConnectionCounters>,
}

impl Connection {
    async fn run(self, socket: TcpStream) {
        let (rd, mut wr) = socket.into_split();
        let mut frames = FramedRead::with_capacity(rd, Dc09Codec::new(), READ_ROOM);
        let mut junk_bytes: u64 = 0;
        let label = self.peer.to_string();
        // One idle timer for the connection's life, and it is not moved on each frame: when
        // it fires, it is pushed to the last frame's time plus the timeout if that is still
        // ahead. Resetting it per frame cost a timer-wheel update per frame; this costs one
        // per timeout period at most.
        let idle = tokio::time::sleep(self.limits.idle_timeout);
        tokio::pin!(idle);
        let mut last_heard = tokio::time::Instant::now();
        // Made once too: each `cancelled()` future registers with the token under its
        // lock; one per frame was that lock taken and released twice a frame.
        let shutdown = self.shutdown.cancelled();
        tokio::pin!(shutdown);
        let how = loop {
            // Frames first: when one is already buffered, the loop takes it without polling
            // the shutdown future (a lock in the token each time); the cheap flag below
            // still stops a connection that never runs dry.
            if self.shutdown.is_cancelled() {
                break "shutdown";
            }
            let next = tokio::select! {
                biased;
                n = frames.next() => n,
                _ = &mut shutdown => break "shutdown",
                _ = &mut idle => {
                    let due = last_heard + self.limits.idle_timeout;
                    if tokio::time::Instant::now() < due {
                        idle.as_mut().reset(due);
                        continue;
                    }
                    self.connections.idle.inc();
                    break "idle";
                }
            };
            // One clock read serves the idle deadline and the frame's latency.
            let arrived = tokio::time::Instant::now();
            let cut = match next {
                None => break "eof",
                Some(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "read failed");
                    break "error";
                }
                Some(Ok(cut)) => cut,
            };
            match cut {
                Cut::Frame(bytes) => {
                    last_heard = arrived;
                    let reply = self
                        .station
                        .handle_frame(
                            &bytes,
                            Transport::Tcp,
                            Some(self.peer),
                            Some(&label),
                            arrived.into_std(),
                        )
                        .await;
                    if let Some(reply) = reply {
                        // A reply almost always fits the socket buffer: write it at once and
                        // arm the write timeout only for what is left.
                        let sent = match wr.try_write(&reply) {
                            Ok(n) => n,
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                            Err(e) => {
                                if let Verdict::Log { suppressed } = REPLY_LOG.check_now() {
                                    tracing::warn!(peer = %self.peer, error = %e, suppressed, "reply could not be written");
                                }
                                break "error";
                            }
                        };
                        let rest = reply.get(sent..).unwrap_or_default();
                        if rest.is_empty() {
                            continue;
                        }
                        match tokio::time::timeout(self.limits.write_timeout, wr.write_all(rest))
                            .await
                        {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => {
                                if let Verdict::Log { suppressed } = REPLY_LOG.check_now() {
                                    tracing::warn!(peer = %self.peer, error = %e, suppressed, "reply could not be written");
                                }
                                break "error";
                            }
                            Err(_) => {
                                if let Verdict::Log { suppressed } = REPLY_LOG.check_now() {
                                    tracing::warn!(peer = %self.peer, suppressed, "reply not taken within the write timeout");
                                }
                                break "write_timeout";
                            }
                        }
                    }
                }
                Cut::Junk { len, reason } => {
                    self.junk.count(reason, len);
                    if let Verdict::Log { suppressed } = JUNK_LOG.check_now() {
                        tracing::warn!(peer = %self.peer, bytes = len, reason = reason.as_str(), suppressed, "dropped bytes that are not a DC-09 frame");
                    }
                    junk_bytes = junk_bytes.saturating_add(len as u64);
                    if junk_bytes > self.limits.max_junk_bytes {
                        if let Verdict::Log { suppressed } = JUNK_LOG.check_now() {
                            tracing::warn!(peer = %self.peer, junk_bytes, hold_s = self.limits.idle_timeout.as_secs(), suppressed, "too much junk on this connection: no longer read, closed after the idle timeout");
                        }
                        // Closing at once would invite a reconnect loop that costs a scan of
                        // every byte again. Not reading lets TCP flow control stop the
                        // sender instead, for free, until the connection is dropped.
                        tokio::select! {
                            _ = &mut shutdown => {}
                            _ = tokio::time::sleep(self.limits.idle_timeout) => {}
                        }
                        break "junk";
                    }
                }
            }
        };
        // Replies were written with write_all; shutting the write side flushes and sends
        // FIN, so a panel that reads until close sees its ACK.
        let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
        self.connections.closed.inc();
        self.connections.open.dec();
        tracing::debug!(peer = %self.peer, how, "connection closed");
    }
}
