//! The panels' side of the daemon: every configured TCP and UDP listener bound, and their
//! orderly stop (no new connection, then every frame in flight answered, its fsync and
//! reply included).
//!
//! A port still held (an old process exiting) is retried until it frees, and the daemon
//! is not ready meanwhile; any other bind error stops the start: a receiver missing a port
//! it was told to serve would leave panels failing over without anyone knowing why.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::DaemonError;
use crate::net::counters::{ConnectionCounters, JunkCounters};
use crate::net::{tcp, udp};
use crate::ops::config::Config;
use crate::station::Station;

/// The listeners of a running daemon.
pub(super) struct Listeners {
    pub(super) tcp: Vec<SocketAddr>,
    pub(super) udp: Vec<SocketAddr>,
    /// Stops the accept loops (and tells connections to finish their frame).
    accept_stop: CancellationToken,
    /// Every connection task and UDP exchange in flight.
    tracker: TaskTracker,
    servers: Vec<JoinHandle<()>>,
}

impl Listeners {
    /// Binds every listener of `config` and starts serving frames into `station`.
    /// `Ok(None)`: `shutdown` fired while a port was still held.
    pub(super) async fn start(
        config: &Config,
        station: &Arc<Station>,
        shutdown: &CancellationToken,
    ) -> Result<Option<Listeners>, DaemonError> {
        let mut l = Listeners {
            tcp: Vec::new(),
            udp: Vec::new(),
            accept_stop: shutdown.child_token(),
            tracker: TaskTracker::new(),
            servers: Vec::new(),
        };
        let slots = Arc::new(Semaphore::new(config.limits.max_connections));
        let peers = Arc::new(tcp::PeerCounts::default());
        let wait = config.limits.bind_wait;
        let metrics = &station.metrics;
        let connections = Arc::new(ConnectionCounters::new(
            &metrics.connections,
            metrics.connections_open.clone(),
        ));
        let junk = |transport| JunkCounters::new(&metrics.junk, &metrics.junk_bytes, transport);
        let tcp_junk = Arc::new(junk("tcp"));
        for listen in config.listeners() {
            if listen.transport.tcp() {
                let Some(listener) =
                    bind_retry(listen.address, "tcp", bind_tcp, wait, shutdown).await?
                else {
                    return Ok(None);
                };
                l.tcp.push(listener.local_addr().unwrap_or(listen.address));
                let ctx = tcp::TcpContext {
                    station: Arc::clone(station),
                    limits: config.limits.for_connections(),
                    connections: Arc::clone(&connections),
                    junk: Arc::clone(&tcp_junk),
                    slots: Arc::clone(&slots),
                    peers: Arc::clone(&peers),
                    shutdown: l.accept_stop.clone(),
                    tracker: l.tracker.clone(),
                };
                l.servers.push(tokio::spawn(tcp::serve(listener, ctx)));
                station.metrics.listeners.with_label_values(&["tcp"]).inc();
            }
            if listen.transport.udp() {
                let Some(socket) =
                    bind_retry(listen.address, "udp", bind_udp, wait, shutdown).await?
                else {
                    return Ok(None);
                };
                l.udp.push(socket.local_addr().unwrap_or(listen.address));
                l.servers.push(tokio::spawn(udp::serve(
                    socket,
                    Arc::clone(station),
                    junk("udp"),
                    l.accept_stop.clone(),
                    l.tracker.clone(),
                )));
                station.metrics.listeners.with_label_values(&["udp"]).inc();
            }
        }
        Ok(Some(l))
    }

    /// Accepts no more, then waits (3 s at most) for the frames in flight to be answered.
    pub(super) async fn drain(self) {
        self.accept_stop.cancel();
        for s in self.servers {
            let _ = s.await;
        }
        tracing::debug!("listeners closed");
        self.tracker.close();
        if tokio::time::timeout(Duration::from_secs(3), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not finish within 3 s");
        }
    }
}

/// Binds `addr`, waiting while the port is held by another socket.
async fn bind_retry<T>(
    addr: SocketAddr,
    transport: &'static str,
    bind: fn(SocketAddr) -> std::io::Result<T>,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<Option<T>, DaemonError> {
    let mut warned = false;
    let give_up = Instant::now() + wait;
    loop {
        match bind(addr) {
            Ok(s) => return Ok(Some(s)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < give_up => {
                if !warned {
                    tracing::warn!(%addr, transport, wait_s = wait.as_secs(), "address in use; waiting for it (not ready until bound)");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = shutdown.cancelled() => return Ok(None),
                }
            }
            Err(source) => {
                return Err(DaemonError::Bind {
                    addr,
                    transport,
                    source,
                })
            }
        }
    }
}

fn bind_tcp(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // A deep backlog absorbs the reconnect wave after a network outage.
    socket.listen(4096)?;
    tokio::net::TcpListener::from_std(socket.into())
}

fn bind_udp(addr: SocketAddr) -> std::io::Result<tokio::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    // Bursts of datagrams wait in the kernel while tasks handle earlier ones.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    tokio::net::UdpSocket::from_std(socket.into())
}
