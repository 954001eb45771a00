//! The durable floor: the least work any receiver that ACKs only after an fsync must do.
//! It reads each frame, hands its bytes to one writer thread that appends every queued
//! frame with one write and one `fdatasync` (group commit), and only then writes the ACK.
//! No decision, no event, no dedup, no metrics.
//!
//! `benches/e2e/run.sh` runs it beside `tocsin run` (and the no-disk ceiling, and
//! pysiaalarm) under the same `tocsin load`: tocsin's frames/s and CPU per frame against
//! this server's, in one run, say what tocsin's own work costs on top of durability.
//!
//! What it keeps as tocsin does, so that only tocsin's extra work differs: a
//! multi-threaded tokio runtime, one task per connection, `TCP_NODELAY`, a listen backlog
//! of 4096; a journal file preallocated with `fallocate` (so `fdatasync` has no size to
//! commit), written with positioned writes and wrapped round when full (the bench never
//! reads it back). The ACK is built from the frame's header with the library's
//! `protocol::dc09::parse_frame` and `protocol::response::ack`, as the ceiling server does,
//! because `tocsin load` checks every reply; a frame that does not parse gets no reply.
//!
//! ```sh
//! cargo build --release --example floor
//! target/release/examples/floor 127.0.0.1:19701 /path/on/a/real/disk
//! ```

use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, oneshot};

use tocsin::protocol::dc09::parse_frame;
use tocsin::protocol::response::ack;

/// Bytes without a CR after which a connection is dropped.
const MAX_PENDING: usize = 64 * 1024;

/// Size of the preallocated journal file; writes wrap round at its end.
const FILE_SIZE: u64 = 256 << 20;

/// One frame to make durable, and who waits for it.
struct Append {
    bytes: Vec<u8>,
    done: oneshot::Sender<()>,
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:19701".to_string())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".to_string()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("floor.journal");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)?;
    rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, FILE_SIZE)?;
    file.sync_all()?;

    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("floor-writer".into())
        .spawn(move || writer(file, rx))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(addr, tx))
}

/// Group commit: everything queued goes out in one write and one `fdatasync`, then every
/// waiter of that batch is answered.
fn writer(file: File, mut rx: mpsc::UnboundedReceiver<Append>) {
    let mut pos: u64 = 0;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut waiters = Vec::with_capacity(4096);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(a) = next {
            // A length before each frame, as any journal must to be read back.
            buf.extend_from_slice(&(a.bytes.len() as u32).to_le_bytes());
            buf.extend_from_slice(&a.bytes);
            waiters.push(a.done);
            next = rx.try_recv().ok();
        }
        if pos + buf.len() as u64 > FILE_SIZE {
            pos = 0;
        }
        if let Err(e) = file.write_all_at(&buf, pos).and_then(|()| file.sync_data()) {
            eprintln!("floor: journal write failed: {e}");
            std::process::exit(1);
        }
        pos += buf.len() as u64;
        buf.clear();
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}

async fn serve(addr: SocketAddr, journal: mpsc::UnboundedSender<Append>) -> std::io::Result<()> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    eprintln!("floor: listening on {}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, journal.clone()));
            }
            Err(e) => {
                eprintln!("floor: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one connection until the peer closes it.
async fn answer(mut stream: TcpStream, journal: mpsc::UnboundedSender<Append>) {
    let _ = stream.set_nodelay(true);
    let mut inbuf: Vec<u8> = Vec::with_capacity(1024);
    let mut outbuf: Vec<u8> = Vec::with_capacity(256);
    let mut pending = Vec::new();
    loop {
        match stream.read_buf(&mut inbuf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut consumed = 0;
        while let Some(cr) = inbuf
            .get(consumed..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\r'))
        {
            let end = consumed + cr + 1;
            if let Some(raw) = inbuf.get(consumed..end) {
                if let Ok(frame) = parse_frame(raw) {
                    ack(&frame.header, frame.crc_form, &mut outbuf);
                    let (done, wait) = oneshot::channel();
                    if journal
                        .send(Append {
                            bytes: raw.to_vec(),
                            done,
                        })
                        .is_err()
                    {
                        return;
                    }
                    pending.push(wait);
                }
            }
            consumed = end;
        }
        inbuf.drain(..consumed);
        if inbuf.len() > MAX_PENDING {
            return;
        }
        // ACK after durable: every frame of this read is in the file and synced.
        for w in pending.drain(..) {
            if w.await.is_err() {
                return;
            }
        }
        if !outbuf.is_empty() {
            if stream.write_all(&outbuf).await.is_err() {
                return;
            }
            outbuf.clear();
        }
    }
}
