//! The daemon's configuration: a TOML file (serde) read into checked [`Settings`].
//!
//! Reading is two-step: the file is deserialised into the raw [`Config`] (any syntax or
//! type error carries its line), then [`Config::resolve`] checks meaning (key lengths,
//! duplicate accounts, addresses) and builds the account table. A config that fails
//! either step is never applied: at start the daemon refuses to run, on SIGHUP it keeps
//! the old one and says why.
//!
//! Everything has a default, so an empty file (or none) is a working receiver: TCP and UDP
//! on port 9000, a journal under `./data`, any account accepted in clear, events printed
//! as JSON lines.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::units;
use crate::protocol::crypto::{Key, KeyEncoding};
use crate::protocol::response::ReplyDialect;
use crate::receiver::accounts::{Account, AccountTable, Encryption, UnknownPolicy};

/// Port used when none is configured. DC-09 has no assigned port; 9000 is free of the
/// usual system services and above 1024, so no capability is needed.
pub const DEFAULT_PORT: u16 = 9000;

/// Why a configuration cannot be used. Messages name the file and line where known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Accounts { path: PathBuf, message: String },
}

/// Which transports a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transports {
    #[default]
    Both,
    Tcp,
    Udp,
}

impl Transports {
    pub fn tcp(self) -> bool {
        matches!(self, Transports::Both | Transports::Tcp)
    }
    pub fn udp(self) -> bool {
        matches!(self, Transports::Both | Transports::Udp)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    pub address: SocketAddr,
    #[serde(default)]
    pub transport: Transports,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverSection {
    /// Name of this receiver in every event (`receiver` field): two receivers of a station
    /// must have different names.
    #[serde(default = "default_receiver_id")]
    pub id: String,
    /// Receiver number (hex digits) this receiver answers as.
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Reply forms where DC-09-2013 and DC-09-2026 differ (`*ACK` pad, NAK account
    /// fields), for accounts that set none: `"2013"` (default) or `"2026"`.
    #[serde(default)]
    pub reply_dialect: ReplyDialect,
}

impl Default for ReceiverSection {
    fn default() -> Self {
        ReceiverSection {
            id: default_receiver_id(),
            number: None,
            data_dir: default_data_dir(),
            reply_dialect: ReplyDialect::default(),
        }
    }
}

fn default_receiver_id() -> String {
    "tocsin".to_string()
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./data")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSection {
    #[serde(default = "default_past", with = "units::duration")]
    pub past: Duration,
    #[serde(default = "default_future", with = "units::duration")]
    pub future: Duration,
    /// Check the timestamp of clear frames too (encrypted ones are always checked). Off by
    /// default: panels with never-set clocks are common and a clear frame gains nothing
    /// from the check.
    #[serde(default)]
    pub check_clear: bool,
}

impl Default for TimeSection {
    fn default() -> Self {
        TimeSection {
            past: default_past(),
            future: default_future(),
            check_clear: false,
        }
    }
}

fn default_past() -> Duration {
    Duration::from_secs(40)
}
fn default_future() -> Duration {
    Duration::from_secs(20)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSection {
    #[serde(default = "default_dedup_window", with = "units::duration")]
    pub window: Duration,
    /// Content keys remembered at most (about 60 bytes each); past it the oldest go first
    /// and the window shortens (`tocsin_dedup_evicted_total` counts them).
    #[serde(default = "default_dedup_max_keys")]
    pub max_keys: usize,
}

impl Default for DedupSection {
    fn default() -> Self {
        DedupSection {
            window: default_dedup_window(),
            max_keys: default_dedup_max_keys(),
        }
    }
}

fn default_dedup_max_keys() -> usize {
    crate::receiver::dedup::DEFAULT_MAX_KEYS
}

fn default_dedup_window() -> Duration {
    Duration::from_secs(600)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Open TCP connections at most; further connects wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open TCP connections from one IP address at most.
    #[serde(default = "default_max_per_peer")]
    pub max_connections_per_peer: usize,
    /// A TCP connection with no complete frame for this long is closed. Above twice the
    /// usual 60 s poll, so persistent panels keep their socket.
    #[serde(default = "default_idle", with = "units::duration")]
    pub idle_timeout: Duration,
    /// A reply that cannot be written within this time closes the connection.
    #[serde(default = "default_write_timeout", with = "units::duration")]
    pub write_timeout: Duration,
    /// How long to wait for a listening port held by another socket (the previous process
    /// still exiting) before giving up. Not ready meanwhile.
    #[serde(default = "default_bind_wait", with = "units::duration")]
    pub bind_wait: Duration,
    /// Junk bytes (not frames) tolerated on one connection before it is closed.
    #[serde(default = "default_junk", with = "units::size")]
    pub max_junk_bytes: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_connections: default_max_connections(),
            max_connections_per_peer: default_max_per_peer(),
            idle_timeout: default_idle(),
            write_timeout: default_write_timeout(),
            bind_wait: default_bind_wait(),
            max_junk_bytes: default_junk(),
        }
    }
}

fn default_max_connections() -> usize {
    16_000
}
fn default_max_per_peer() -> usize {
    4_000
}
fn default_idle() -> Duration {
    Duration::from_secs(150)
}
fn default_write_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_bind_wait() -> Duration {
    Duration::from_secs(10)
}
fn default_junk() -> u64 {
    64 * 1024
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    #[serde(default = "default_segment", with = "units::size")]
    pub segment_size: u64,
    #[serde(default = "default_max_bytes", with = "units::size")]
    pub max_bytes: u64,
    #[serde(default = "default_max_age", with = "units::duration")]
    pub max_age: Duration,
    /// Let retention delete records the forwarder has not published yet (never by default).
    #[serde(default)]
    pub allow_unpublished_deletion: bool,
    /// Least time between two group commits (`0s`, the default: none). See
    /// [`crate::journal::JournalConfig::commit_interval`].
    #[serde(default, with = "units::duration")]
    pub commit_interval: Duration,
}

impl Default for JournalSection {
    fn default() -> Self {
        JournalSection {
            segment_size: default_segment(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
            allow_unpublished_deletion: false,
            commit_interval: Duration::ZERO,
        }
    }
}

fn default_segment() -> u64 {
    64 << 20
}
fn default_max_bytes() -> u64 {
    10 << 30
}
fn default_max_age() -> Duration {
    Duration::from_secs(90 * 86400)
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HttpSection {
    /// Metrics, health and status. Loopback by default: it is for the station's own tools.
    #[serde(default)]
    pub address: Option<SocketAddr>,
    /// A file holding the bearer token every route but `/healthz` and `/readyz` asks for.
    /// A relative path is read from `$CREDENTIALS_DIRECTORY` when set (systemd
    /// `LoadCredential=`), else from the configuration file's directory.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Serve every route without a token on a non-loopback address. Off by default: off
    /// loopback, without a token, only `/healthz` and `/readyz` are served.
    #[serde(default)]
    pub allow_unauthenticated: bool,
    /// Serve `/metrics` without the token (a Prometheus scraper with no secret).
    #[serde(default)]
    pub metrics_unauthenticated: bool,
}

/// `[supervision]`: how receivers of one station share supervision (see
/// `docs/supervision.md`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionSection {
    /// Tell the other receivers on the bus (`[bus.nats]`) which sites this one heard, and
    /// hear theirs, so that a site is in failure only when no receiver heard it.
    #[serde(default = "default_share")]
    pub share: bool,
    /// While a peer receiver cannot be heard (bus down or split), a failure waits this
    /// long for news that may explain the silence before it is raised.
    #[serde(default = "default_hold", with = "units::duration")]
    pub hold: Duration,
}

impl Default for SupervisionSection {
    fn default() -> Self {
        SupervisionSection {
            share: default_share(),
            hold: default_hold(),
        }
    }
}

fn default_share() -> bool {
    true
}
fn default_hold() -> Duration {
    Duration::from_secs(30)
}

/// `[bus]`: where events are published.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BusSection {
    #[serde(default)]
    pub nats: Option<crate::forward::nats::NatsConfig>,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    /// Print events as JSON lines on stdout. Default: on when no bus is configured (under
    /// systemd stdout goes to the system journal, which a bus makes redundant).
    #[serde(default)]
    pub stdout: Option<bool>,
    /// Also append events as JSON lines to this file.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountsSection {
    /// What to do with frames from accounts not configured: `accept` (default with no
    /// config) or `reject` (NAK). Either way the frame is recorded as an event.
    #[serde(default)]
    pub unknown: UnknownPolicy,
    /// A CSV file of accounts for station-scale tables (`id,key,key_encoding,encryption`).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl Default for AccountsSection {
    fn default() -> Self {
        AccountsSection {
            unknown: UnknownPolicy::Accept,
            file: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountEntry {
    pub id: toml::Spanned<String>,
    #[serde(default)]
    pub key: Option<toml::Spanned<String>>,
    #[serde(default)]
    pub key_encoding: Option<KeyEncoding>,
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// Check the timestamp of clear frames from this account (overrides `[time]`).
    #[serde(default)]
    pub time_check: Option<bool>,
    /// Expected reporting interval (`90s`), primary/secondary (`90s/25h`) or an EN 50136
    /// category (`DP4`).
    #[serde(default)]
    pub supervision: Option<toml::Spanned<String>>,
    /// MAC address the panel sends in `[M…]`; another one raises a substitution event.
    #[serde(default)]
    pub mac: Option<String>,
    /// Source networks the panel reports from (CIDR); another one raises a substitution
    /// event.
    #[serde(default)]
    pub networks: Vec<String>,
    /// `"2013"` or `"2026"`: overrides `[receiver] reply_dialect` for this panel.
    #[serde(default)]
    pub reply_dialect: Option<ReplyDialect>,
}

/// The configuration file as written.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub receiver: ReceiverSection,
    #[serde(default)]
    pub listen: Vec<Listen>,
    #[serde(default)]
    pub http: HttpSection,
    #[serde(default)]
    pub time: TimeSection,
    #[serde(default)]
    pub dedup: DedupSection,
    #[serde(default)]
    pub limits: LimitsSection,
    #[serde(default)]
    pub journal: JournalSection,
    #[serde(default)]
    pub output: OutputSection,
    #[serde(default)]
    pub accounts: AccountsSection,
    #[serde(default, rename = "account")]
    pub account: Vec<AccountEntry>,
    #[serde(default)]
    pub bus: BusSection,
    #[serde(default)]
    pub supervision: SupervisionSection,
    /// `[[automation]]`: outputs to the station's automation software.
    #[serde(default)]
    pub automation: Vec<crate::forward::surgard::AutomationConfig>,
    /// Set when no file was given, so the daemon can say loudly that it accepts anything.
    #[serde(skip)]
    pub is_default: bool,
    #[serde(skip)]
    pub path: PathBuf,
    #[serde(skip)]
    line_index: Option<LineIndex>,
}

/// A configuration that passed every check, ready to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub accounts: AccountTable,
    /// The `[[automation]]` outputs, checked (read at start; a restart changes them).
    pub automation: Vec<crate::forward::surgard::OutputSpec>,
}

impl Config {
    /// The configuration of a bare `tocsin run`.
    pub fn default_run() -> Config {
        Config {
            is_default: true,
            path: PathBuf::from("(defaults)"),
            ..Config::default()
        }
    }

    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_str(&text, path)
    }

    pub fn from_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: syntax_message(text, &e),
        })?;
        config.path = path.to_path_buf();
        config.line_index = Some(LineIndex::new(text));
        if let Some(nats) = config.bus.nats.as_mut() {
            nats.base_dir = path.parent().map(Path::to_path_buf);
        }
        Ok(config)
    }

    /// Listeners in effect: the configured ones, or TCP and UDP on the default port.
    pub fn listeners(&self) -> Vec<Listen> {
        if self.listen.is_empty() {
            vec![Listen {
                address: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
                transport: Transports::Both,
            }]
        } else {
            self.listen.clone()
        }
    }

    /// Whether events go to stdout.
    pub fn stdout_events(&self) -> bool {
        self.output.stdout.unwrap_or(self.bus.nats.is_none())
    }

    /// HTTP endpoint in effect.
    pub fn http_address(&self) -> SocketAddr {
        self.http
            .address
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9100)))
    }

    /// Checks meaning and builds the account table.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        let invalid = |span: std::ops::Range<usize>, message: String| ConfigError::Invalid {
            path: self.path.clone(),
            line: self.line_of(span.start),
            message,
        };
        let mut accounts = AccountTable::with_policy(self.accounts.unknown);
        accounts.reply_dialect = self.receiver.reply_dialect;
        for entry in &self.account {
            let id = entry.id.get_ref();
            if !valid_account_id(id) {
                return Err(invalid(
                    entry.id.span(),
                    format!("account id `{id}` must be 1–16 letters or digits"),
                ));
            }
            let key = match &entry.key {
                None => None,
                Some(k) => {
                    let encoding = entry.key_encoding.ok_or_else(|| {
                        invalid(
                            k.span(),
                            format!(
                                "account {id}: key_encoding is required with a key (\"hex\" or \"ascii\"): a 32-character key means AES-128 in hex or AES-256 in ASCII"
                            ),
                        )
                    })?;
                    Some(
                        Key::parse(k.get_ref(), encoding)
                            .map_err(|e| invalid(k.span(), format!("account {id}: {e}")))?,
                    )
                }
            };
            let encryption = entry.encryption.unwrap_or(Encryption::Optional);
            if encryption == Encryption::Required && key.is_none() {
                return Err(invalid(
                    entry.id.span(),
                    format!("account {id}: encryption = \"required\" needs a key"),
                ));
            }
            let supervision = match &entry.supervision {
                None => None,
                Some(s) => Some(
                    crate::receiver::supervision::parse_interval(s.get_ref())
                        .map_err(|e| invalid(s.span(), format!("account {id}: {e}")))?,
                ),
            };
            let mut networks = Vec::new();
            for n in &entry.networks {
                networks.push(
                    crate::receiver::accounts::Network::parse(n)
                        .map_err(|e| invalid(entry.id.span(), format!("account {id}: {e}")))?,
                );
            }
            let identity = if entry.mac.is_some() || !networks.is_empty() {
                Some(Box::new(crate::receiver::accounts::Identity {
                    mac: entry.mac.clone(),
                    networks,
                }))
            } else {
                None
            };
            let account = Account {
                key,
                encryption,
                time_check: entry.time_check,
                supervision,
                identity,
                reply_dialect: entry.reply_dialect,
            };
            if accounts.insert(id, account).is_some() {
                return Err(invalid(
                    entry.id.span(),
                    format!("account {id} is configured twice"),
                ));
            }
        }
        if let Some(file) = &self.accounts.file {
            let base = self.path.parent().unwrap_or(Path::new("."));
            let file = base.join(file);
            crate::receiver::accounts::load_csv(&file, &mut accounts).map_err(|message| {
                ConfigError::Accounts {
                    path: file.clone(),
                    message,
                }
            })?;
        }
        if self.time.future > Duration::from_secs(86400 * 2)
            || self.time.past > Duration::from_secs(86400 * 2)
        {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                line: 0,
                message: "[time] past and future must each be at most 2 days".into(),
            });
        }
        // A hold is how late a failure may be while a peer cannot be heard: past a few
        // minutes it would hide a cut line for longer than any reporting category allows.
        if self.supervision.hold > Duration::from_secs(600) {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                line: 0,
                message: "[supervision] hold must be at most 10m".into(),
            });
        }
        if let Some(nats) = &self.bus.nats {
            nats.validate().map_err(|message| ConfigError::Invalid {
                path: self.path.clone(),
                line: 0,
                message: format!("[bus.nats] {message}"),
            })?;
        }
        // Every ACK may wait this long: past a tenth of a second it would be felt by panels
        // and buy nothing more (a sync's CPU is already shared by hundreds of frames).
        if self.journal.commit_interval > Duration::from_millis(100) {
            return Err(ConfigError::Invalid {
                path: self.path.clone(),
                line: 0,
                message: "[journal] commit_interval must be at most 100ms".into(),
            });
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        let automation =
            crate::forward::surgard::config::resolve_all(&self.automation, base, |offset| {
                self.line_of(offset)
            })
            .map_err(|e| ConfigError::Invalid {
                path: e.path.unwrap_or_else(|| self.path.clone()),
                line: e.line,
                message: e.message,
            })?;
        Ok(Settings {
            config: self,
            accounts,
            automation,
        })
    }

    fn line_of(&self, offset: usize) -> usize {
        self.line_index.as_ref().map_or(0, |l| l.line_of(offset))
    }
}

fn valid_account_id(id: &str) -> bool {
    (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Turns a toml error into "line N: what" (toml's own message already shows the line, but
/// the first line of it is what a log needs).
fn syntax_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => format!(
            "line {}: {}",
            LineIndex::new(text).line_of(span.start),
            e.message()
        ),
        None => e.message().to_string(),
    }
}

/// Byte offset → 1-based line number.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }
    pub fn line_of(&self, offset: usize) -> usize {
        self.starts.partition_point(|&s| s <= offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Settings, ConfigError> {
        Config::from_str(text, Path::new("test.toml"))?.resolve()
    }

    #[test]
    fn the_documented_example_stays_valid() {
        let s = parse(
            r#"
[[listen]]
address = "127.0.0.1:9000"          # TCP and UDP

[[account]]
id = "5678"
key = "AAAAAAAAAAAAAAAA"            # 16/24/32 characters used as bytes
key_encoding = "ascii"              # or "hex" (32/48/64 hex digits)
encryption = "required"             # or "optional"
"#,
        )
        .unwrap();
        let listen = s.config.listeners();
        assert_eq!(listen[0].address, "127.0.0.1:9000".parse().unwrap());
        assert!(listen[0].transport.tcp() && listen[0].transport.udp());
        let acct = s.accounts.get("5678").unwrap();
        assert_eq!(acct.key, Some(Key::from_ascii("AAAAAAAAAAAAAAAA").unwrap()));
        assert_eq!(acct.encryption, Encryption::Required);
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("[[account]]\nid = \"1\"\nkey = \"00112233\"\nkey_encoding = \"hex\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("test.toml:3:"), "{err}");
        assert!(err.contains("AES needs 16, 24 or 32"), "{err}");
        let err = parse("[receiver]\nid = \"a\"\nbogus = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
        let err = parse("[[account]]\nid = \"1\"\nkey = \"AAAAAAAAAAAAAAAA\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key_encoding is required"), "{err}");
    }

    #[test]
    fn defaults_listen_on_both_transports() {
        let c = Config::default_run();
        let l = c.listeners();
        assert_eq!(l[0].address.port(), DEFAULT_PORT);
        assert_eq!(l[0].transport, Transports::Both);
        assert_eq!(c.time.past, Duration::from_secs(40));
        assert_eq!(c.dedup.window, Duration::from_secs(600));
        assert_eq!(c.journal.commit_interval, Duration::ZERO);
    }

    #[test]
    fn commit_interval_is_read_and_bounded() {
        let s = parse("[journal]\ncommit_interval = \"500us\"\n").unwrap();
        assert_eq!(s.config.journal.commit_interval, Duration::from_micros(500));
        let err = parse("[journal]\ncommit_interval = \"1s\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("commit_interval must be at most 100ms"),
            "{err}"
        );
    }

    #[test]
    fn reply_dialect_default_and_per_account() {
        let s =
            parse("[[account]]\nid = \"1\"\nreply_dialect = \"2026\"\n[[account]]\nid = \"2\"\n")
                .unwrap();
        assert_eq!(s.accounts.reply_dialect, ReplyDialect::Dc2013);
        assert_eq!(
            s.accounts.reply_dialect_of(s.accounts.get("1")),
            ReplyDialect::Dc2026
        );
        assert_eq!(
            s.accounts.reply_dialect_of(s.accounts.get("2")),
            ReplyDialect::Dc2013
        );
        let s = parse("[receiver]\nreply_dialect = \"2026\"\n").unwrap();
        assert_eq!(s.accounts.reply_dialect_of(None), ReplyDialect::Dc2026);
        let err = parse("[receiver]\nreply_dialect = \"2021\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("2026"), "{err}");
    }
}
