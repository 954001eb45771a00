//! Loopback ports for the servers a test starts (tocsin, nats-server, simulators), shared
//! by the end-to-end harness (`tests/common`) and the bus harness (`tests/bus`).

use std::collections::HashSet;
use std::net::{TcpListener, UdpSocket};
use std::sync::{Mutex, OnceLock};

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32768)
}

/// A port free for both TCP and UDP on 127.0.0.1, chosen below the kernel's ephemeral range
/// so that no client socket (ours or the daemon's) can be handed it between a kill and a
/// restart. Ports are never handed out twice in one test process.
pub fn free_port() -> u16 {
    static TAKEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let taken = TAKEN.get_or_init(|| Mutex::new(HashSet::new()));
    let hi = ephemeral_low().clamp(12000, 60000);
    for _ in 0..10_000 {
        let p: u16 = rand::random_range(10000..hi);
        let mut t = taken.lock().unwrap_or_else(|e| e.into_inner());
        if t.contains(&p) {
            continue;
        }
        let tcp = TcpListener::bind(("127.0.0.1", p));
        let udp = UdpSocket::bind(("127.0.0.1", p));
        if tcp.is_ok() && udp.is_ok() {
            t.insert(p);
            return p;
        }
    }
    panic!("no free port found");
}
