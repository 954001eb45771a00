//! `tocsin send`: one frame, as a panel would send it, and a verdict on the reply. For
//! integrators commissioning a panel or a receiver.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use time::UtcDateTime;

use tocsin::protocol::crypto::Key;
use tocsin::protocol::dc09::{parse_frame, CrcForm};
use tocsin::protocol::encode::{encode, FrameSpec};
use tocsin::protocol::text::escape;

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// Receiver address, HOST:PORT.
    #[arg(long)]
    pub to: String,
    /// Send over UDP instead of TCP.
    #[arg(long)]
    pub udp: bool,
    /// AES key as hex (32/48/64 digits): the frame is encrypted.
    #[arg(long, conflicts_with = "key_ascii")]
    pub key: Option<String>,
    /// AES key as 16/24/32 ASCII characters.
    #[arg(long)]
    pub key_ascii: Option<String>,
    #[arg(long)]
    pub account: String,
    /// SIA DC-03 data, e.g. `Nri1/BA01` (the `#acct|` prefix is added unless given).
    #[arg(long, group = "payload")]
    pub sia: Option<String>,
    /// Contact ID data, e.g. `1130 01 015`.
    #[arg(long, group = "payload")]
    pub cid: Option<String>,
    /// A NULL supervision poll.
    #[arg(long, group = "payload")]
    pub null: bool,
    #[arg(long, default_value = "1")]
    pub seq: u16,
    #[arg(long, default_value = "0")]
    pub line: String,
    /// Receiver number to put in the frame (none by default).
    #[arg(long)]
    pub receiver: Option<String>,
    /// Seconds to wait for the reply.
    #[arg(long, default_value = "10")]
    pub timeout: f64,
    /// Omit the timestamp (clear frames only).
    #[arg(long)]
    pub no_timestamp: bool,
}

pub fn run(args: SendArgs) -> Result<i32> {
    let key = match (&args.key, &args.key_ascii) {
        (Some(k), _) => Some(Key::from_hex(k).context("--key")?),
        (_, Some(k)) => Some(Key::from_ascii(k).context("--key-ascii")?),
        _ => None,
    };
    let (token, data) = match (&args.sia, &args.cid, args.null) {
        (Some(s), _, _) => ("SIA-DCS", with_account(&args.account, s)),
        (_, Some(c), _) => ("ADM-CID", with_account(&args.account, c)),
        (_, _, true) => ("NULL", String::new()),
        _ => bail!("give one of --sia, --cid or --null"),
    };
    if args.seq > 9999 {
        bail!("--seq must be 0..=9999");
    }
    let seq = format!("{:04}", args.seq);
    let now = UtcDateTime::now();
    let spec = FrameSpec {
        token,
        seq: &seq,
        receiver: args.receiver.as_deref(),
        line: &args.line,
        account: &args.account,
        data: data.as_bytes(),
        ext: &[],
        timestamp: if args.no_timestamp && key.is_none() {
            None
        } else {
            Some(now)
        },
        form: CrcForm::Ascii,
    };
    let mut random = [0u8; 16];
    rand::fill(&mut random);
    let mut frame = Vec::new();
    encode(&spec, key.as_ref(), &random, &mut frame);
    println!("sent   {}", escape(&frame));

    let timeout = Duration::from_secs_f64(args.timeout.max(0.1));
    let addr = args
        .to
        .to_socket_addrs()
        .with_context(|| format!("--to {}", args.to))?
        .next()
        .with_context(|| format!("--to {} resolves to nothing", args.to))?;
    let started = Instant::now();
    let reply = if args.udp {
        let sock = UdpSocket::bind(if addr.is_ipv6() {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        })?;
        sock.set_read_timeout(Some(timeout))?;
        sock.send_to(&frame, addr)?;
        let mut buf = [0u8; 2048];
        match sock.recv_from(&mut buf) {
            Ok((n, _)) => buf.get(..n).map(<[u8]>::to_vec),
            Err(_) => None,
        }
    } else {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(&frame)?;
        read_reply(&mut s)
    };
    let elapsed = started.elapsed();
    let Some(reply) = reply else {
        println!("reply  (none within {:.1}s)", timeout.as_secs_f64());
        println!("verdict TIMEOUT");
        return Ok(1);
    };
    println!(
        "reply  {}  ({:.1} ms)",
        escape(&reply),
        elapsed.as_secs_f64() * 1000.0
    );
    let parsed = match parse_frame(&reply) {
        Ok(f) => f,
        Err(e) => {
            println!("verdict BAD REPLY: {e}");
            return Ok(1);
        }
    };
    let h = &parsed.header;
    if h.token == "ACK" && h.seq != seq {
        println!("verdict BAD REPLY: ACK for sequence {} (sent {seq})", h.seq);
        return Ok(1);
    }
    if h.token == "ACK" && h.encrypted {
        let mut scratch = Vec::new();
        if let Err(e) = parsed.open(key.as_ref(), &mut scratch) {
            println!("verdict BAD REPLY: encrypted ACK does not open with the key: {e}");
            return Ok(1);
        }
    }
    match h.token {
        "ACK" => {
            println!("verdict ACK");
            Ok(0)
        }
        "NAK" => {
            let mut scratch = Vec::new();
            let t = parsed
                .open(None, &mut scratch)
                .ok()
                .and_then(|c| c.timestamp);
            println!(
                "verdict NAK (receiver time {})",
                t.map(tocsin::receiver::event::panel_rfc3339)
                    .unwrap_or_else(|| "?".into())
            );
            Ok(1)
        }
        "DUH" => {
            println!("verdict DUH (the receiver did not understand the frame)");
            Ok(1)
        }
        other => {
            println!("verdict BAD REPLY: token {other}");
            Ok(1)
        }
    }
}

fn with_account(account: &str, data: &str) -> String {
    if data.starts_with('#') {
        data.to_string()
    } else {
        format!("#{account}|{data}")
    }
}

/// Reads until a CR ends a reply frame, or the timeout.
fn read_reply(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return if buf.is_empty() { None } else { Some(buf) },
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n)?);
                if buf.contains(&b'\r') && buf.contains(&b'\n') {
                    return Some(buf);
                }
            }
            Err(_) => return if buf.is_empty() { None } else { Some(buf) },
        }
    }
}
