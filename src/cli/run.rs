//! `tocsin run` and `tocsin check-config`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use tocsin::daemon::{self, Overrides};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Configuration file (TOML). Without one: TCP and UDP on 0.0.0.0:9000, journal in
    /// ./data, any account accepted in clear, events on stdout.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Listen on ADDR for TCP and UDP (repeatable); replaces the configured listeners.
    #[arg(long, value_name = "ADDR")]
    pub listen: Vec<SocketAddr>,
    /// Data directory (journal, cursors); overrides the configuration.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the metrics, health and status endpoints.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Publish events to NATS JetStream at this URL (e.g. nats://127.0.0.1:4222).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value = "human")]
    pub log_format: LogFormat,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum LogFormat {
    Human,
    Json,
}

/// Logs go to stderr: stdout carries events.
pub fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The NATS client's own lines repeat with every reconnection, unthrottled: tocsin says
    // what matters itself, unless RUST_LOG names the client. Its protocol trace would show
    // the CONNECT line, credentials included, so that stays off whatever RUST_LOG says.
    let named = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("async_nats"));
    let directive = if named {
        "async_nats::connection=info"
    } else {
        "async_nats=off"
    };
    let filter = match directive.parse() {
        Ok(d) => filter.add_directive(d),
        Err(_) => filter,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

pub fn run(args: RunArgs) -> Result<i32> {
    init_logs(args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut hup = signal(SignalKind::hangup())?;
        let stop = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => { tracing::info!("SIGTERM"); stop.cancel(); return; }
                    _ = int.recv() => { tracing::info!("SIGINT"); stop.cancel(); return; }
                    _ = hup.recv() => {
                        tracing::info!("SIGHUP: reloading configuration");
                        let _ = reload_tx.try_send(());
                    }
                }
            }
        });
        let overrides = Overrides {
            listen: args.listen,
            data_dir: args.data_dir,
            http: args.http,
            nats: args.nats,
        };
        match daemon::run(args.config, overrides, shutdown, reload_rx, None).await {
            Ok(()) => Ok(0),
            Err(e) => {
                tracing::error!(error = %e, "tocsin stopped");
                Err(e.into())
            }
        }
    })
}

#[derive(clap::Args, Debug)]
pub struct CheckConfigArgs {
    /// The configuration file to check.
    pub file: PathBuf,
}

pub fn check_config(args: CheckConfigArgs) -> Result<i32> {
    match daemon::load(Some(&args.file), &Overrides::default()) {
        Ok(s) => {
            let c = &s.config;
            println!("{}: ok", args.file.display());
            println!("  receiver       {}", c.receiver.id);
            for l in c.listeners() {
                println!("  listen         {} ({:?})", l.address, l.transport);
            }
            println!("  http           {}", c.http_address());
            println!("  data dir       {}", c.receiver.data_dir.display());
            println!(
                "  accounts       {} (unknown accounts: {:?})",
                s.accounts.len(),
                s.accounts.unknown
            );
            println!(
                "  timestamps     {}s past, {}s future, clear frames checked: {}",
                c.time.past.as_secs(),
                c.time.future.as_secs(),
                c.time.check_clear
            );
            println!("  dedup window   {}s", c.dedup.window.as_secs());
            // HTTP settings warn, never fail: they never keep the receiver down either.
            let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
            let access = tocsin::ops::http_access::load(
                &c.http,
                c.http_address(),
                &c.path,
                credentials.as_deref(),
            );
            for w in access.warnings.iter().chain(&access.error) {
                eprintln!("warning: {w}");
            }
            if let Some(n) = &c.bus.nats {
                print_bus(n);
            }
            for a in &s.automation {
                println!(
                    "  automation     {}: {} {}, {} mapped accounts",
                    a.name,
                    a.endpoint.mode(),
                    a.endpoint.address(),
                    a.map.len()
                );
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

/// The bus part of `check-config`: where, how authenticated, which files (never their
/// content), and what is wrong with those files on this machine.
fn print_bus(n: &tocsin::forward::nats::NatsConfig) {
    let servers: Vec<String> = n
        .server_urls()
        .iter()
        .map(|u| tocsin::forward::nats::redact(u))
        .collect();
    println!("  bus            nats {}", servers.join(", "));
    println!(
        "  bus stream     {} ({} replicas when created), subjects {}, duplicate window {}s, republish window {}s",
        n.stream,
        n.replicas,
        n.stream_subjects(),
        n.duplicate_window.as_secs(),
        n.republish_window.as_secs()
    );
    println!(
        "  bus security   auth {}, TLS {}",
        n.auth_kind().as_str(),
        if n.tls() { "yes" } else { "no" }
    );
    for (key, path) in n.files() {
        println!("  bus file       {key} {}", path.display());
    }
    for w in n.file_warnings() {
        eprintln!("warning: [bus.nats] {w}");
    }
}
