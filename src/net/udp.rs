//! UDP reception: one frame per datagram, the reply to the datagram's source.
//!
//! The receive loop never waits on the journal: each datagram is handled on its own task
//! (a frame with new events waits for its fsync there), bounded by a semaphore so a flood
//! turns into kernel-buffer drops, not memory growth. A datagram that cannot be a frame at
//! all (no LF and DC-09 envelope at its start) is junk, counted on the spot and dropped: a
//! flood of random datagrams costs a counter each, not a task, a decode and a journal
//! record.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::codec::datagram_junk;
use super::counters::JunkCounters;
use crate::protocol::dc09::MAX_FRAME_LEN;
use crate::receiver::event::Transport;
use crate::station::Station;
use crate::throttle::{Throttle, Verdict};

static SEND_LOG: Throttle = Throttle::per_minute(5);
static JUNK_LOG: Throttle = Throttle::per_minute(5);

/// Datagrams being handled at once per UDP socket.
const IN_FLIGHT: usize = 4096;

/// Serves one UDP socket until `shutdown` fires.
pub async fn serve(
    socket: UdpSocket,
    station: Arc<Station>,
    junk: JunkCounters,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let socket = Arc::new(socket);
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    // One byte more than the largest frame: a datagram that fills it was too long.
    let mut buf = vec![0u8; MAX_FRAME_LEN + 1];
    // One future for the socket's life: a new `cancelled()` future registers with the
    // token, which every listener and connection shares, under its lock and leaves it
    // under the lock again; two a datagram made several trips through that lock.
    let stop = shutdown.cancelled();
    tokio::pin!(stop);
    loop {
        let received = tokio::select! {
            biased;
            _ = &mut stop => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let (n, peer) = match received {
            Ok(r) => r,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; they concern one
                // peer, not the socket.
                tracing::debug!(error = %e, "udp receive error");
                continue;
            }
        };
        let bytes = buf.get(..n).unwrap_or_default();
        if let Some(reason) = datagram_junk(bytes) {
            junk.count(reason, n);
            if let Verdict::Log { suppressed } = JUNK_LOG.check_now() {
                tracing::warn!(peer = %peer, bytes = n, reason = reason.as_str(), suppressed, "dropped a datagram that is not a DC-09 frame");
            }
            continue;
        }
        let datagram = bytes.to_vec();
        // A slot per frame being handled, taken once the datagram is known to be one:
        // junk costs no slot, and while every slot is taken nothing more is received.
        let permit = tokio::select! {
            biased;
            _ = &mut stop => return,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let station = Arc::clone(&station);
        let socket = Arc::clone(&socket);
        tracker.spawn(async move {
            if let Some(reply) = station
                .handle_frame(
                    &datagram,
                    Transport::Udp,
                    Some(peer),
                    None,
                    std::time::Instant::now(),
                )
                .await
            {
                if let Err(e) = socket.send_to(&reply, peer).await {
                    if let Verdict::Log { suppressed } = SEND_LOG.check_now() {
                        tracing::warn!(peer = %peer, error = %e, suppressed, "udp reply could not be sent");
                    }
                }
            }
            drop(permit);
        });
    }
}
