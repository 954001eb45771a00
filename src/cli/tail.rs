//! `tocsin tail`: follow events as they arrive, from the bus or from a journal, as JSON
//! lines or as one readable line per event for a person at a console.
//!
//! With `--config`, the bus is reached exactly as the daemon reaches it (`[bus.nats]`:
//! every server, the credentials, TLS), so operators can follow a secured bus.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;

use tocsin::forward::nats::{self, NatsConfig};
use tocsin::journal::JournalReader;
use tocsin::ops::config::Config;
use tocsin::receiver::event::Event;
use tocsin::receiver::record::JournalRecord;

#[derive(clap::Args, Debug)]
pub struct TailArgs {
    /// Read from NATS JetStream at this URL.
    #[arg(long, value_name = "URL", conflicts_with_all = ["data_dir", "config"])]
    pub nats: Option<String>,
    /// Read from the bus of this configuration file's `[bus.nats]`: its servers,
    /// credentials, TLS, stream and subject prefix.
    #[arg(long, value_name = "FILE", conflicts_with = "data_dir")]
    pub config: Option<PathBuf>,
    /// Subject filter on the bus [default: `<subject_prefix>.events.>`, tocsin.events.>].
    #[arg(long)]
    pub subject: Option<String>,
    /// Stream name on the bus [default: the configuration's, TOCSIN].
    #[arg(long)]
    pub stream: Option<String>,
    /// Read from the journal in this data directory.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep waiting for new events. Without it, print what is there and stop.
    #[arg(long, short)]
    pub follow: bool,
    #[arg(long, value_enum, default_value = "json")]
    pub format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Json,
    Text,
}

/// One readable line: time, account, class, code, where, what.
pub fn text_line(e: &Event) -> String {
    let mut where_ = Vec::new();
    if let Some(p) = e.partition.as_deref().filter(|p| !p.is_empty()) {
        where_.push(format!("part {p}"));
    }
    if let Some(z) = &e.zone {
        where_.push(format!("zone {z}"));
    }
    if let Some(u) = &e.user {
        where_.push(format!("user {u}"));
    }
    let mut line = format!(
        "{}  {:<16} {:<11} {:<13} {:<4} {:<7} {:<22} {}",
        e.received_at,
        e.account,
        e.class.as_str().to_uppercase(),
        e.category.as_str(),
        e.code,
        e.qualifier.as_str(),
        where_.join(" "),
        e.text
    );
    if !e.names.is_empty() {
        line.push_str(&format!(" ({})", e.names.join(", ")));
    }
    if let Some(peer) = &e.peer {
        line.push_str(&format!("  [{} {}]", e.transport.as_str(), peer));
    }
    line
}

fn print(out: &mut impl Write, format: Format, e: &Event) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer(&mut *out, e)?;
            writeln!(out)
        }
        Format::Text => writeln!(out, "{}", text_line(e)),
    }?;
    out.flush()
}

pub fn run(args: TailArgs) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let bus = match (&args.nats, &args.config) {
        (Some(url), _) => Some(NatsConfig::with_url(url)),
        (None, Some(file)) => {
            let config = Config::from_file(file)?.resolve()?.config;
            let Some(nats) = config.bus.nats else {
                bail!("{} has no [bus.nats] section", file.display());
            };
            Some(nats)
        }
        (None, None) => None,
    };
    match (bus, &args.data_dir) {
        (Some(bus), _) => runtime.block_on(from_nats(&bus, &args)),
        (None, Some(dir)) => runtime.block_on(from_journal(dir, &args)),
        (None, None) => bail!("give --config FILE, --nats URL or --data-dir DIR"),
    }
}

async fn from_journal(dir: &std::path::Path, args: &TailArgs) -> Result<i32> {
    let mut reader = JournalReader::open(dir)
        .with_context(|| format!("cannot open the journal in {}", dir.display()))?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        while let Some(rec) = reader.next_record()? {
            if let Ok(r) = JournalRecord::from_bytes(&rec.payload) {
                for e in &r.events {
                    print(&mut out, args.format, e)?;
                }
            }
        }
        if !args.follow {
            return Ok(0);
        }
        // The daemon owns the writer; a reader of its files polls for what it appends.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn from_nats(bus: &NatsConfig, args: &TailArgs) -> Result<i32> {
    use async_nats::jetstream::consumer::{pull::OrderedConfig, DeliverPolicy};
    let client = nats::connect(bus, "tocsin tail", nats::Hooks::default()).await?;
    let info = client.server_info();
    let server = format!("{}:{} ({})", info.host, info.port, info.server_name);
    let js = async_nats::jetstream::new(client);
    let name = args.stream.as_deref().unwrap_or(&bus.stream);
    let stream = js
        .get_stream(name)
        .await
        .with_context(|| format!("no stream {name} on {server}"))?;
    let subject = args
        .subject
        .clone()
        .unwrap_or_else(|| bus.stream_subjects());
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: subject,
            deliver_policy: if args.follow {
                DeliverPolicy::New
            } else {
                DeliverPolicy::All
            },
            ..Default::default()
        })
        .await
        .context("cannot create a consumer")?;
    let mut messages = consumer.messages().await.context("cannot read messages")?;
    let stdout = std::io::stdout();
    loop {
        let next = if args.follow {
            messages.next().await
        } else {
            // Without --follow, stop once the stream is drained.
            match tokio::time::timeout(Duration::from_secs(2), messages.next()).await {
                Ok(m) => m,
                Err(_) => return Ok(0),
            }
        };
        let Some(msg) = next else { return Ok(0) };
        let msg = msg.context("reading from the stream")?;
        let pending = msg.info().map(|i| i.pending).unwrap_or(1);
        match serde_json::from_slice::<Event>(&msg.payload) {
            Ok(e) => print(&mut stdout.lock(), args.format, &e)?,
            Err(_) => eprintln!("tocsin: a message on {} is not an event", msg.subject),
        }
        if !args.follow && pending == 0 {
            return Ok(0);
        }
    }
}
