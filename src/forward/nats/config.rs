//! `[bus.nats]`: where the bus is, how to prove who we are to it, and how the stream is
//! made. Checked as a whole by [`NatsConfig::validate`] (called by the configuration's
//! `resolve`, so `tocsin check-config` and the daemon refuse the same files).
//!
//! Secrets are never in this file's values: keys name *files* holding them, read at connect
//! time (a relative path from `$CREDENTIALS_DIRECTORY` when systemd's `LoadCredential=` set
//! it, else from the configuration file's directory). Server URLs may not carry a user or
//! password either, so a URL is always safe to log and to show.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[bus.nats]` in the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// One server (the short form of `servers`).
    #[serde(default)]
    pub url: Option<String>,
    /// Every server the sink may connect to; it connects to any one and fails over to the
    /// others (and to those the cluster announces).
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default = "default_stream")]
    pub stream: String,
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// The stream's duplicate window: how long JetStream remembers message ids.
    #[serde(default = "default_dup", with = "crate::units::duration")]
    pub duplicate_window: Duration,
    /// Replicas of the stream when tocsin creates it (3 on a three-node cluster). An
    /// existing stream is used as it is.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// PubAcks awaited at once. One at a time reaches a few thousand messages per second;
    /// hundreds in flight reach tens of thousands.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
    /// How long a PubAck may take before the connection is considered broken.
    #[serde(default = "default_ack_timeout", with = "crate::units::duration")]
    pub ack_timeout: Duration,
    /// After each (re)connection the sink publishes again the records of this last
    /// stretch of time that it had already published: what a server lost after
    /// acknowledging it comes back, the rest is dropped by the duplicate window. Must be
    /// shorter than `duplicate_window`.
    #[serde(default = "default_republish", with = "crate::units::duration")]
    pub republish_window: Duration,
    /// User name, with `password_file`.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// An NKey seed (`SU…`), for servers that list the user's public NKey.
    #[serde(default)]
    pub nkey_seed_file: Option<PathBuf>,
    /// A `.creds` file: a user JWT and its NKey seed (decentralised authentication).
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// PEM certificates of the authorities that sign the servers' certificates.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for servers that verify clients (mutual TLS).
    #[serde(default)]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_key_file: Option<PathBuf>,
    /// Refuse a server that does not offer TLS.
    #[serde(default)]
    pub tls_required: bool,
    /// Directory of the configuration file, for relative paths when systemd gave no
    /// credentials directory.
    #[serde(skip)]
    pub base_dir: Option<PathBuf>,
}

fn default_stream() -> String {
    "TOCSIN".into()
}
fn default_prefix() -> String {
    "tocsin".into()
}
fn default_dup() -> Duration {
    Duration::from_secs(120)
}
fn default_replicas() -> usize {
    1
}
fn default_in_flight() -> usize {
    512
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_republish() -> Duration {
    Duration::from_secs(60)
}

/// JetStream keeps at most this many copies of a stream.
const MAX_REPLICAS: usize = 5;

/// How the sink proves who it is to the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    None,
    UserPassword,
    Token,
    NKey,
    Credentials,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::UserPassword => "user",
            AuthKind::Token => "token",
            AuthKind::NKey => "nkey",
            AuthKind::Credentials => "credentials",
        }
    }
}

impl NatsConfig {
    /// One server, every other option at its default.
    pub fn with_url(url: &str) -> NatsConfig {
        NatsConfig {
            url: Some(url.to_string()),
            servers: Vec::new(),
            stream: default_stream(),
            subject_prefix: default_prefix(),
            duplicate_window: default_dup(),
            replicas: default_replicas(),
            max_in_flight: default_in_flight(),
            ack_timeout: default_ack_timeout(),
            republish_window: default_republish(),
            user: None,
            password_file: None,
            token_file: None,
            nkey_seed_file: None,
            credentials_file: None,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_required: false,
            base_dir: None,
        }
    }

    /// The server URLs as written (`servers`, or `url` alone).
    pub fn server_urls(&self) -> Vec<&str> {
        match &self.url {
            Some(u) => vec![u.as_str()],
            None => self.servers.iter().map(String::as_str).collect(),
        }
    }

    /// The subjects the stream must capture.
    pub fn stream_subjects(&self) -> String {
        format!("{}.events.>", self.subject_prefix)
    }

    pub fn auth_kind(&self) -> AuthKind {
        if self.credentials_file.is_some() {
            AuthKind::Credentials
        } else if self.nkey_seed_file.is_some() {
            AuthKind::NKey
        } else if self.token_file.is_some() {
            AuthKind::Token
        } else if self.user.is_some() {
            AuthKind::UserPassword
        } else {
            AuthKind::None
        }
    }

    /// Whether the connection will be encrypted whatever the server offers.
    pub fn tls(&self) -> bool {
        self.tls_required
            || self.tls_ca_file.is_some()
            || self.tls_cert_file.is_some()
            || self
                .server_urls()
                .iter()
                .any(|u| u.starts_with("tls://") || u.starts_with("wss://"))
    }

    /// Checks what can be checked without reading a file or reaching a server. The
    /// message names the key and, for a URL, the URL.
    pub fn validate(&self) -> Result<(), String> {
        let urls = match (&self.url, self.servers.is_empty()) {
            (Some(_), false) => {
                return Err("give either `url` (one server) or `servers` (a list), not both".into())
            }
            (None, true) => {
                return Err("no server: give `servers = [\"nats://host:4222\", …]` or `url`".into())
            }
            _ => self.server_urls(),
        };
        let key = if self.url.is_some() { "url" } else { "servers" };
        for u in urls {
            check_url(u).map_err(|e| format!("{key}: {e}"))?;
        }
        if !(1..=MAX_REPLICAS).contains(&self.replicas) {
            return Err(format!(
                "replicas = {} must be between 1 and {MAX_REPLICAS}",
                self.replicas
            ));
        }
        if self.republish_window >= self.duplicate_window {
            return Err(format!(
                "republish_window ({}) must be shorter than duplicate_window ({}): records \
                 published again past the duplicate window would reach consoles twice",
                show(self.republish_window),
                show(self.duplicate_window)
            ));
        }
        if self.max_in_flight == 0 {
            return Err("max_in_flight must be at least 1".into());
        }
        if self.ack_timeout.is_zero() {
            return Err("ack_timeout must be above zero".into());
        }
        if self.stream.is_empty()
            || !self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "stream `{}` must be letters, digits, `_` or `-`",
                self.stream
            ));
        }
        if self.subject_prefix.is_empty()
            || self
                .subject_prefix
                .split('.')
                .any(|t| t.is_empty() || t.contains(['*', '>', ' ']))
        {
            return Err(format!(
                "subject_prefix `{}` must be dot-separated tokens without wildcards",
                self.subject_prefix
            ));
        }
        match (&self.user, &self.password_file) {
            (Some(_), None) => return Err("`user` needs `password_file`".into()),
            (None, Some(_)) => return Err("`password_file` needs `user`".into()),
            _ => {}
        }
        let ways = [
            self.user.is_some(),
            self.token_file.is_some(),
            self.nkey_seed_file.is_some(),
            self.credentials_file.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err(
                "give one way to authenticate: user + password_file, token_file, \
                 nkey_seed_file or credentials_file"
                    .into(),
            );
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return Err("`tls_cert_file` and `tls_key_file` go together".into());
        }
        Ok(())
    }

    /// Where a configured file is read from: absolute as is; relative from
    /// `$CREDENTIALS_DIRECTORY` when set, else from the configuration file's directory.
    pub fn resolve_path(&self, path: &Path) -> PathBuf {
        resolve_path(
            path,
            std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            self.base_dir.as_deref(),
        )
    }

    /// The files that hold secrets, resolved, with their key.
    pub fn secret_files(&self) -> Vec<(&'static str, PathBuf)> {
        [
            ("password_file", &self.password_file),
            ("token_file", &self.token_file),
            ("nkey_seed_file", &self.nkey_seed_file),
            ("credentials_file", &self.credentials_file),
            ("tls_key_file", &self.tls_key_file),
        ]
        .into_iter()
        .filter_map(|(k, p)| p.as_ref().map(|p| (k, self.resolve_path(p))))
        .collect()
    }

    /// Every configured file, resolved (the secret ones and the certificates).
    pub fn files(&self) -> Vec<(&'static str, PathBuf)> {
        let mut all = self.secret_files();
        for (k, p) in [
            ("tls_ca_file", &self.tls_ca_file),
            ("tls_cert_file", &self.tls_cert_file),
        ] {
            if let Some(p) = p {
                all.push((k, self.resolve_path(p)));
            }
        }
        all
    }

    /// What is wrong with the files on this machine: missing or unreadable, and secrets
    /// that other users may read. Warnings, not errors: the daemon starts anyway (reception
    /// never depends on the bus) and keeps trying with what it finds.
    pub fn file_warnings(&self) -> Vec<String> {
        let secret: Vec<&str> = self.secret_files().iter().map(|(k, _)| *k).collect();
        let mut out = Vec::new();
        for (key, path) in self.files() {
            if let Err(e) = std::fs::File::open(&path) {
                out.push(format!("{key} {}: cannot be read: {e}", path.display()));
                continue;
            }
            if secret.contains(&key) {
                if let Some(w) = exposure(key, &path) {
                    out.push(w);
                }
            }
        }
        out
    }
}

/// The pure part of [`NatsConfig::resolve_path`].
fn resolve_path(path: &Path, credentials: Option<PathBuf>, base: Option<&Path>) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    match credentials.filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.join(path),
        None => base.map_or_else(|| path.to_path_buf(), |b| b.join(path)),
    }
}

/// A warning if the secret file at `path` may be read by its group or by others.
fn exposure(key: &str, path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{key} {}: readable by other users (mode {:04o}); make it 0600 or 0400 (systemd's \
             LoadCredential= does)",
            path.display(),
            mode & 0o7777
        )
    })
}

/// A URL the client accepts, without credentials in it.
fn check_url(u: &str) -> Result<(), String> {
    let addr: async_nats::ServerAddr = u
        .parse()
        .map_err(|e: std::io::Error| format!("`{}` is not a server URL: {e}", redact(u)))?;
    if addr.has_user_pass() || addr.as_url_str().contains('@') {
        return Err(format!(
            "`{}` carries credentials in the URL; use `user` and `password_file` (or \
             `token_file`) so they stay out of the configuration and the logs",
            redact(u)
        ));
    }
    Ok(())
}

/// A URL fit to log or show: anything before an `@` (user, password, token) is hidden.
pub fn redact(u: &str) -> String {
    match (u.find("://"), u.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            format!(
                "{}***{}",
                u.get(..s + 3).unwrap_or(""),
                u.get(at..).unwrap_or("")
            )
        }
        (None, Some(at)) => format!("***{}", u.get(at..).unwrap_or("")),
        _ => u.to_string(),
    }
}

/// `90s`, `2m`: a duration as the configuration writes it.
fn show(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{}m", s / 60.0)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<NatsConfig, String> {
        let c: NatsConfig = toml::from_str(extra).map_err(|e| e.to_string())?;
        c.validate().map(|()| c)
    }

    #[test]
    fn one_server_or_a_list_never_both() {
        let c = parse("url = \"nats://127.0.0.1:4222\"").unwrap();
        assert_eq!(c.server_urls(), vec!["nats://127.0.0.1:4222"]);
        let c = parse("servers = [\"nats://a:4222\", \"tls://b:4222\", \"c\"]").unwrap();
        assert_eq!(c.server_urls().len(), 3);
        let e = parse("url = \"nats://a:1\"\nservers = [\"nats://b:1\"]").unwrap_err();
        assert!(e.contains("not both"), "{e}");
        let e = parse("stream = \"X\"").unwrap_err();
        assert!(e.contains("no server"), "{e}");
    }

    #[test]
    fn the_bad_url_is_named() {
        // A comma-joined list in `url` was accepted once, then failed at connect time.
        let e = parse("url = \"nats://a:4222,nats://b:4222\"").unwrap_err();
        assert!(e.starts_with("url: `nats://a:4222,nats://b:4222`"), "{e}");
        assert!(e.contains("invalid port number"), "{e}");
        let e = parse("servers = [\"nats://a:4222\", \"nats://b:42x\"]").unwrap_err();
        assert!(e.contains("`nats://b:42x`"), "{e}");
        let e = parse("servers = [\"http://a:4222\"]").unwrap_err();
        assert!(e.contains("invalid scheme"), "{e}");
    }

    #[test]
    fn credentials_in_a_url_are_refused_and_never_repeated() {
        let e = parse("servers = [\"nats://rx:hunter2@a:4222\"]").unwrap_err();
        assert!(e.contains("carries credentials"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(!e.contains("rx:"), "{e}");
        assert_eq!(redact("nats://tok@a:1"), "nats://***@a:1");
        assert_eq!(redact("nats://a:1"), "nats://a:1");
    }

    #[test]
    fn republish_window_must_be_shorter_than_the_duplicate_window() {
        let e = parse("url = \"nats://a\"\nduplicate_window = \"2m\"\nrepublish_window = \"2m\"")
            .unwrap_err();
        assert!(
            e.contains("republish_window (2m) must be shorter than duplicate_window (2m)"),
            "{e}"
        );
        let c = parse("url = \"nats://a\"").unwrap();
        assert!(c.republish_window < c.duplicate_window);
        assert_eq!(c.replicas, 1);
    }

    #[test]
    fn one_way_to_authenticate() {
        let e = parse("url = \"nats://a\"\nuser = \"rx\"").unwrap_err();
        assert!(e.contains("needs `password_file`"), "{e}");
        let e =
            parse("url = \"nats://a\"\ntoken_file = \"t\"\nnkey_seed_file = \"s\"").unwrap_err();
        assert!(e.contains("one way to authenticate"), "{e}");
        let e = parse("url = \"nats://a\"\ntls_cert_file = \"c.pem\"").unwrap_err();
        assert!(e.contains("go together"), "{e}");
        let c = parse("url = \"nats://a\"\nuser = \"rx\"\npassword_file = \"p\"").unwrap();
        assert_eq!(c.auth_kind(), AuthKind::UserPassword);
        let e = parse("url = \"nats://a\"\nreplicas = 7").unwrap_err();
        assert!(e.contains("between 1 and 5"), "{e}");
    }

    #[test]
    fn relative_paths_come_from_the_credentials_directory_when_there_is_one() {
        let p = Path::new("bus.pass");
        let creds = Some(PathBuf::from("/run/credentials/tocsin.service"));
        assert_eq!(
            resolve_path(p, creds, Some(Path::new("/etc/tocsin"))),
            PathBuf::from("/run/credentials/tocsin.service/bus.pass")
        );
        assert_eq!(
            resolve_path(p, None, Some(Path::new("/etc/tocsin"))),
            PathBuf::from("/etc/tocsin/bus.pass")
        );
        assert_eq!(
            resolve_path(Path::new("/abs/p"), Some(PathBuf::from("/x")), None),
            PathBuf::from("/abs/p")
        );
    }

    #[test]
    fn secret_files_open_to_others_get_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("seed");
        std::fs::write(&f, "SUAXXX").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut c = NatsConfig::with_url("nats://a");
        c.nkey_seed_file = Some(f.clone());
        c.tls_ca_file = Some(dir.path().join("missing.pem"));
        let w = c.file_warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w
            .iter()
            .any(|l| l.contains("readable by other users (mode 0644)")));
        assert!(w
            .iter()
            .any(|l| l.starts_with("tls_ca_file") && l.contains("cannot be read")));
        assert!(!w.iter().any(|l| l.contains("SUAXXX")));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        c.tls_ca_file = None;
        assert!(c.file_warnings().is_empty());
    }
}
