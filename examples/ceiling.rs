//! The ceiling of this machine for a DC-09 receiver: a TCP server that answers every frame
//! with an ACK and does nothing else (no decision, no journal, no fsync, no event).
//!
//! `benches/e2e/run.sh` runs it beside `tocsin run` and pysiaalarm and drives all three with
//! the same `tocsin load`: whatever frames/s this server reaches on the same cores is the
//! most any receiver could, so tocsin's share of it is what its own work costs.
//!
//! Why it parses at all: `tocsin load` checks every reply (CRC, sequence, account), so a
//! constant byte string would count as a wrong reply. The ACK is built per frame from the
//! frame's header with the library's own `protocol::dc09::parse_frame` (it also checks the
//! CRC and the length, ~0.16 µs a frame) and `protocol::response::ack` (~0.05 µs): the
//! simplest correct choice, and a fraction of a microsecond against the several
//! microseconds of system calls of one round trip over loopback. A frame that does not
//! parse gets no reply, as a receiver answers a bad CRC.
//!
//! The shape is the one tocsin uses for its sockets, so that only the work per frame
//! differs: a multi-threaded tokio runtime (one worker per CPU), a listen backlog of 4096,
//! `TCP_NODELAY`, one task per connection reading into a reusable buffer, cutting at CR
//! (frames start with LF and end with CR), and one `write_all` per read with the replies of
//! every frame that read completed.
//!
//! ```sh
//! cargo build --release --example ceiling
//! target/release/examples/ceiling 127.0.0.1:19700
//! ```

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use tocsin::protocol::dc09::parse_frame;
use tocsin::protocol::response::ack;

/// Bytes without a CR after which a connection is dropped: nothing sent by a panel is that long.
const MAX_PENDING: usize = 64 * 1024;

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:19700".to_string())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(addr))
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    eprintln!("ceiling: listening on {}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream));
            }
            // Out of descriptors or a connection reset while queued: keep serving the others.
            Err(e) => {
                eprintln!("ceiling: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Serves one connection until the peer closes it.
async fn answer(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut inbuf: Vec<u8> = Vec::with_capacity(1024);
    let mut outbuf: Vec<u8> = Vec::with_capacity(256);
    loop {
        match stream.read_buf(&mut inbuf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // Every complete frame in the buffer gets its reply; the rest waits for more bytes.
        let mut consumed = 0;
        while let Some(cr) = inbuf
            .get(consumed..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\r'))
        {
            let end = consumed + cr + 1;
            if let Some(Ok(frame)) = inbuf.get(consumed..end).map(parse_frame) {
                ack(&frame.header, frame.crc_form, &mut outbuf);
            }
            consumed = end;
        }
        inbuf.drain(..consumed);
        if inbuf.len() > MAX_PENDING {
            return;
        }
        if !outbuf.is_empty() {
            if stream.write_all(&outbuf).await.is_err() {
                return;
            }
            outbuf.clear();
        }
    }
}
