//! [`connect`]: a `NatsConfig` made into a connected `async_nats::Client`, with every
//! server, the authentication and TLS applied. The one way into the bus for every part of
//! tocsin (the sink, `tocsin tail`, anything else that talks to the station's bus), so
//! that a secured bus is reached the same way everywhere.
//!
//! Secrets are read from their files here, at each connection (a rotated password is
//! picked up on the next reconnect), handed to the client and dropped; they never enter an
//! error message or a log line (errors name the key and the file, not the content).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectErrorKind, ConnectOptions, ServerAddr};

use super::config::{redact, NatsConfig};

/// Told of every event of the connection (connected, disconnected, server errors such
/// as a permissions violation). Runs on the client's event task: keep it short.
pub type EventHook = Arc<dyn Fn(async_nats::Event) + Send + Sync>;

/// What a caller wants from the client besides the configuration.
#[derive(Clone, Default)]
pub struct Hooks {
    pub on_event: Option<EventHook>,
    /// Stop after one round over the servers once a connection is lost, so the caller
    /// reconnects itself (the sink does: it republishes from its cursor in journal order).
    /// Off by default: the client then reconnects for ever, to any server.
    pub one_round: bool,
}

/// Why no connection to the bus could be made. Messages never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("[bus.nats] {0}")]
    Config(String),
    #[error("cannot read {key} {}: {source}", path.display())]
    File {
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} {}: {detail}", path.display())]
    BadFile {
        key: &'static str,
        path: PathBuf,
        detail: String,
    },
    #[error("the NATS server refused tocsin's credentials ({auth}): {detail}")]
    Refused { auth: &'static str, detail: String },
    #[error("TLS with the NATS server failed (is its certificate signed by tls_ca_file? does it require a client certificate?): {detail}")]
    Tls { detail: String },
    #[error("no NATS server reachable ({servers}): {detail}")]
    Unreachable { servers: String, detail: String },
}

impl BusError {
    /// A short name of the kind of failure, for log throttling and status.
    pub fn kind(&self) -> &'static str {
        match self {
            BusError::Config(_) | BusError::File { .. } | BusError::BadFile { .. } => "config",
            BusError::Refused { .. } => "auth",
            BusError::Tls { .. } => "tls",
            BusError::Unreachable { .. } => "connect",
        }
    }
}

/// Connects to one of the configured servers (the client tries each) with the
/// configured authentication and TLS. `client_name` shows in the servers' monitoring.
pub async fn connect(
    config: &NatsConfig,
    client_name: &str,
    hooks: Hooks,
) -> Result<Client, BusError> {
    let servers = server_addrs(config)?;
    let options = options(config, client_name, &hooks, servers.len()).await?;
    let listed = config
        .server_urls()
        .iter()
        .map(|u| redact(u))
        .collect::<Vec<_>>()
        .join(", ");
    options.connect(servers).await.map_err(|e| {
        let detail = e.to_string();
        match e.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                BusError::Refused {
                    auth: config.auth_kind().as_str(),
                    detail,
                }
            }
            ConnectErrorKind::Tls => BusError::Tls { detail },
            // A handshake refused by either side comes back as an I/O error carrying the
            // TLS library's words.
            ConnectErrorKind::Io if is_tls_failure(&detail) => BusError::Tls { detail },
            _ => BusError::Unreachable {
                servers: listed,
                detail,
            },
        }
    })
}

fn is_tls_failure(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    ["certificate", "handshake", "tls", "alert"]
        .iter()
        .any(|w| d.contains(w))
}

/// The configured servers, parsed (the configuration was validated, but a caller may
/// build a `NatsConfig` by hand).
pub fn server_addrs(config: &NatsConfig) -> Result<Vec<ServerAddr>, BusError> {
    let mut out = Vec::new();
    for u in config.server_urls() {
        out.push(
            u.parse::<ServerAddr>().map_err(|e| {
                BusError::Config(format!("`{}` is not a server URL: {e}", redact(u)))
            })?,
        );
    }
    if out.is_empty() {
        return Err(BusError::Config("no server configured".into()));
    }
    Ok(out)
}

async fn options(
    config: &NatsConfig,
    client_name: &str,
    hooks: &Hooks,
    servers: usize,
) -> Result<ConnectOptions, BusError> {
    let mut o = ConnectOptions::new()
        .name(client_name)
        .connection_timeout(Duration::from_secs(3))
        // A dead peer behind a silent network shows within a few pings.
        .ping_interval(Duration::from_secs(10));
    if hooks.one_round {
        // Counted in connection attempts, first connection included: one per server.
        o = o.max_reconnects(servers.max(1));
    }
    if let Some(hook) = hooks.on_event.clone() {
        o = o.event_callback(move |event| {
            hook(event);
            std::future::ready(())
        });
    }
    if let (Some(user), Some(file)) = (&config.user, &config.password_file) {
        let password = read_secret(config, "password_file", file)?;
        o = o.user_and_password(user.clone(), password);
    }
    if let Some(file) = &config.token_file {
        o = o.token(read_secret(config, "token_file", file)?);
    }
    if let Some(file) = &config.nkey_seed_file {
        let seed = read_secret(config, "nkey_seed_file", file)?;
        // Checked here so a bad file is named, rather than failing inside the handshake.
        if nkeys::KeyPair::from_seed(&seed).is_err() {
            return Err(BusError::BadFile {
                key: "nkey_seed_file",
                path: config.resolve_path(file),
                detail: "does not hold an NKey seed (a line starting with SU)".into(),
            });
        }
        o = o.nkey(seed);
    }
    if let Some(file) = &config.credentials_file {
        let path = config.resolve_path(file);
        o = o
            .credentials_file(&path)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                    BusError::File {
                        key: "credentials_file",
                        path: path.clone(),
                        source: e,
                    }
                }
                _ => BusError::BadFile {
                    key: "credentials_file",
                    path: path.clone(),
                    detail: "is not a credentials file (a user JWT and its NKey seed)".into(),
                },
            })?;
    }
    if let Some(ca) = &config.tls_ca_file {
        o = o.add_root_certificates(readable(config, "tls_ca_file", ca)?);
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) {
        o = o.add_client_certificate(
            readable(config, "tls_cert_file", cert)?,
            readable(config, "tls_key_file", key)?,
        );
    }
    if config.tls_required {
        o = o.require_tls(true);
    }
    Ok(o)
}

/// The content of a secret file, without the line end an editor adds.
fn read_secret(
    config: &NatsConfig,
    key: &'static str,
    file: &std::path::Path,
) -> Result<String, BusError> {
    let path = config.resolve_path(file);
    let text = std::fs::read_to_string(&path).map_err(|source| BusError::File {
        key,
        path: path.clone(),
        source,
    })?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(BusError::BadFile {
            key,
            path,
            detail: "is empty".into(),
        });
    }
    Ok(secret.to_string())
}

/// The resolved path of a file the client will read itself, checked to be readable so a
/// missing file is named here rather than as a TLS failure.
fn readable(
    config: &NatsConfig,
    key: &'static str,
    file: &std::path::Path,
) -> Result<PathBuf, BusError> {
    let path = config.resolve_path(file);
    std::fs::File::open(&path).map_err(|source| BusError::File {
        key,
        path: path.clone(),
        source,
    })?;
    Ok(path)
}
