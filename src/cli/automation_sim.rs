//! `tocsin automation-sim`: a stand-in for the station's automation computer, to try a
//! Sur-Gard automation output without the real software (and for the tests). It ACKs each
//! packet (or NAKs, or stays silent, every Nth as asked) and prints each one as a JSON line
//! on stdout: its number `n`, the connection's number `conn`, the time `t` (seconds since
//! the start), the `answer` given, the `raw` packet and its decoded fields.
//! Connection events go to stderr.
//!
//! Blocking std sockets, one connection at a time: an automation computer serves one
//! receiver link per port.

use std::io::{BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Map, Value};

use tocsin::forward::surgard::packet::{ACK, NAK};
use tocsin::forward::surgard::read::{parse_packet, Cutter, Packet};
use tocsin::protocol::text::decode_w1252;

#[derive(clap::Args, Debug)]
pub struct AutomationSimArgs {
    /// Wait on ADDR for tocsin to connect (an output with `connect = "ADDR"`).
    #[arg(
        long,
        value_name = "ADDR",
        required_unless_present = "connect",
        conflicts_with = "connect"
    )]
    pub listen: Option<String>,
    /// Dial tocsin at ADDR (an output with `listen = "ADDR"`), again whenever the
    /// connection ends.
    #[arg(long, value_name = "ADDR")]
    pub connect: Option<String>,
    /// Answer every Nth packet with NAK instead of ACK.
    #[arg(long, value_name = "N")]
    pub nak_every: Option<u64>,
    /// Leave every Nth packet unanswered.
    #[arg(long, value_name = "N")]
    pub silent_every: Option<u64>,
}

/// Answers and prints packets; counts them across connections.
struct Sim<W: Write> {
    args: AutomationSimArgs,
    out: W,
    count: u64,
    /// Connections served so far (the current one's number).
    conns: u64,
    started: Instant,
}

pub fn run(args: AutomationSimArgs) -> Result<i32> {
    let stdout = std::io::stdout();
    let mut sim = Sim {
        args,
        out: BufWriter::new(stdout.lock()),
        count: 0,
        conns: 0,
        started: Instant::now(),
    };
    if let Some(addr) = sim.args.listen.clone() {
        let listener =
            TcpListener::bind(&addr).with_context(|| format!("cannot listen on {addr}"))?;
        eprintln!("automation-sim: listening on {}", listener.local_addr()?);
        loop {
            let (stream, peer) = listener.accept().context("accept")?;
            eprintln!("automation-sim: connection from {peer}");
            sim.serve(stream)?;
            eprintln!("automation-sim: connection from {peer} closed");
        }
    }
    let addr = sim.args.connect.clone().unwrap_or_default();
    loop {
        match TcpStream::connect(&addr) {
            Ok(stream) => {
                eprintln!("automation-sim: connected to {addr}");
                sim.serve(stream)?;
                eprintln!("automation-sim: connection to {addr} closed");
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

impl<W: Write> Sim<W> {
    /// Serves one connection until it closes. Errors only for stdout.
    fn serve(&mut self, mut stream: TcpStream) -> Result<()> {
        let _ = stream.set_nodelay(true);
        self.conns += 1;
        let mut cutter = Cutter::default();
        let mut buf = [0u8; 8192];
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => n,
            };
            cutter.push(buf.get(..n).unwrap_or_default());
            let mut answers = Vec::new();
            while let Some(p) = cutter.next_packet() {
                self.count += 1;
                let every =
                    |n: Option<u64>| n.is_some_and(|n| n > 0 && self.count.is_multiple_of(n));
                let parsed = parse_packet(&p);
                let answer = if every(self.args.silent_every) {
                    None
                } else if parsed.is_err() || every(self.args.nak_every) {
                    Some(NAK)
                } else {
                    Some(ACK)
                };
                answers.extend(answer);
                let line = self.describe(&p, answer);
                writeln!(self.out, "{line}")?;
            }
            self.out.flush()?;
            if !answers.is_empty() && stream.write_all(&answers).is_err() {
                return Ok(());
            }
        }
    }

    fn describe(&self, raw: &[u8], answer: Option<u8>) -> Value {
        let mut v = Map::new();
        v.insert("n".into(), json!(self.count));
        v.insert("conn".into(), json!(self.conns));
        v.insert(
            "t".into(),
            json!((self.started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
        );
        v.insert(
            "answer".into(),
            json!(match answer {
                Some(ACK) => "ack",
                Some(_) => "nak",
                None => "none",
            }),
        );
        v.insert("raw".into(), json!(decode_w1252(raw)));
        match parse_packet(raw) {
            Ok(Packet::Heartbeat { receiver, line }) => {
                v.insert("kind".into(), json!("heartbeat"));
                v.insert("receiver".into(), json!(receiver));
                v.insert("line".into(), json!(line));
            }
            Ok(Packet::ContactId {
                receiver,
                line,
                long,
                account,
                qualifier,
                code,
                group,
                zone,
            }) => {
                v.insert("kind".into(), json!("contact_id"));
                v.insert("receiver".into(), json!(receiver));
                v.insert("line".into(), json!(line));
                v.insert("long_account".into(), json!(long));
                v.insert("account".into(), json!(account));
                v.insert("qualifier".into(), json!(qualifier.to_string()));
                v.insert("code".into(), json!(code));
                v.insert("group".into(), json!(group));
                v.insert("zone".into(), json!(zone));
            }
            Ok(Packet::Sia {
                receiver,
                line,
                data,
            }) => {
                v.insert("kind".into(), json!("sia"));
                v.insert("receiver".into(), json!(receiver));
                v.insert("line".into(), json!(line));
                v.insert("data".into(), json!(decode_w1252(data)));
            }
            Err(e) => {
                v.insert("kind".into(), json!("invalid"));
                v.insert("error".into(), json!(e.to_string()));
            }
        }
        Value::Object(v)
    }
}
