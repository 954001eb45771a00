//! `[[automation]]` in the configuration: the section as written, and its check into an
//! [`OutputSpec`] ready to run. Errors carry the line of the key at fault (or of the
//! account map's line), so `tocsin check-config` can point at it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::accounts::AccountMap;
use super::link::Timing;
use super::packet::{Format, FormatError};

/// The automation formats tocsin writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Sur-Gard MLR2 / System III / System 5 automation output.
    #[default]
    Surgard,
}

/// One `[[automation]]` block as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutomationConfig {
    /// Names the output's cursor and its metric label.
    pub name: Spanned<String>,
    #[serde(default)]
    pub format: OutputFormat,
    /// `host:port` of the automation computer, which tocsin dials.
    #[serde(default)]
    pub connect: Option<Spanned<String>>,
    /// Address where tocsin waits for the automation computer to connect (one at a time).
    #[serde(default)]
    pub listen: Option<Spanned<String>>,
    /// RR: two digits.
    #[serde(default = "default_receiver")]
    pub receiver_number: Spanned<String>,
    /// L or LLL: the width is as written.
    #[serde(default = "default_line")]
    pub line: Spanned<String>,
    /// Sent when nothing else was sent for this long.
    #[serde(default = "default_heartbeat", with = "crate::ops::units::duration")]
    pub heartbeat: Duration,
    #[serde(default = "default_ack_timeout", with = "crate::ops::units::duration")]
    pub ack_timeout: Duration,
    /// NAKs after which a packet is set aside.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: Spanned<u32>,
    /// Account of tocsin's own events and of accounts that cannot be mapped.
    #[serde(default = "default_own_account")]
    pub own_account: Spanned<String>,
    /// CSV `dc09_account,automation_account`, relative to the configuration file.
    #[serde(default)]
    pub account_map: Option<Spanned<PathBuf>>,
}

fn spanned<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}
fn default_receiver() -> Spanned<String> {
    spanned("01".into())
}
fn default_line() -> Spanned<String> {
    spanned("1".into())
}
fn default_heartbeat() -> Duration {
    Duration::from_secs(30)
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(4)
}
fn default_max_attempts() -> Spanned<u32> {
    spanned(20)
}
fn default_own_account() -> Spanned<String> {
    spanned("0000".into())
}

/// Where the link comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// tocsin dials `host:port`.
    Connect(String),
    /// tocsin listens; the automation dials.
    Listen(SocketAddr),
}

impl Endpoint {
    pub fn mode(&self) -> &'static str {
        match self {
            Endpoint::Connect(_) => "connect",
            Endpoint::Listen(_) => "listen",
        }
    }

    pub fn address(&self) -> String {
        match self {
            Endpoint::Connect(a) => a.clone(),
            Endpoint::Listen(a) => a.to_string(),
        }
    }
}

/// A checked output, ready to run.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    pub name: String,
    pub endpoint: Endpoint,
    pub format: Format,
    pub map: Arc<AccountMap>,
    pub timing: Timing,
}

impl OutputSpec {
    /// The journal cursor of this output (`automation-<name>`).
    pub fn cursor(&self) -> String {
        format!("automation-{}", self.name)
    }
}

/// Why a block is refused: the file (`None`: the configuration itself), the line, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub path: Option<PathBuf>,
    pub line: usize,
    pub message: String,
}

/// Longest output name: the cursor name `automation-<name>` must stay within 64.
const MAX_NAME: usize = 48;

/// Checks every block; names must differ. `base` is the configuration file's directory
/// and `line_of` turns a byte offset of the file into its line.
pub fn resolve_all(
    blocks: &[AutomationConfig],
    base: &Path,
    line_of: impl Fn(usize) -> usize,
) -> Result<Vec<OutputSpec>, SpecError> {
    let mut out: Vec<OutputSpec> = Vec::with_capacity(blocks.len());
    for b in blocks {
        let spec = b.resolve(base, &line_of)?;
        if out.iter().any(|o| o.name == spec.name) {
            return Err(SpecError {
                path: None,
                line: line_of(b.name.span().start),
                message: format!("automation output `{}` is configured twice", spec.name),
            });
        }
        out.push(spec);
    }
    Ok(out)
}

impl AutomationConfig {
    fn resolve(
        &self,
        base: &Path,
        line_of: &impl Fn(usize) -> usize,
    ) -> Result<OutputSpec, SpecError> {
        let at = |span: std::ops::Range<usize>, message: String| SpecError {
            path: None,
            line: line_of(span.start),
            message,
        };
        let name = self.name.get_ref();
        let name_ok = (1..=MAX_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok {
            return Err(at(
                self.name.span(),
                format!(
                    "automation name `{name}` must be 1-{MAX_NAME} letters, digits, `-` or `_`"
                ),
            ));
        }
        let endpoint = match (&self.connect, &self.listen) {
            (Some(c), None) => {
                let valid = c.get_ref().rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if !valid {
                    return Err(at(
                        c.span(),
                        format!(
                            "automation {name}: connect `{}` must be host:port",
                            c.get_ref()
                        ),
                    ));
                }
                Endpoint::Connect(c.get_ref().clone())
            }
            (None, Some(l)) => Endpoint::Listen(l.get_ref().parse().map_err(|_| {
                at(
                    l.span(),
                    format!(
                        "automation {name}: listen `{}` must be an address:port",
                        l.get_ref()
                    ),
                )
            })?),
            _ => {
                return Err(at(
                    self.name.span(),
                    format!("automation {name}: set exactly one of connect or listen"),
                ))
            }
        };
        let format = Format::new(
            self.receiver_number.get_ref(),
            self.line.get_ref(),
            self.own_account.get_ref(),
        )
        .map_err(|e| {
            let span = match e {
                FormatError::Receiver(_) => self.receiver_number.span(),
                FormatError::Line(_) => self.line.span(),
                FormatError::OwnAccount(_) => self.own_account.span(),
            };
            // A default is valid, so a span of 0..0 never reaches here; the name's line is
            // the fallback all the same.
            let span = if span.is_empty() {
                self.name.span()
            } else {
                span
            };
            at(span, format!("automation {name}: {e}"))
        })?;
        let max_attempts = *self.max_attempts.get_ref();
        if !(1..=1000).contains(&max_attempts) {
            return Err(at(
                self.max_attempts.span(),
                format!("automation {name}: max_attempts must be 1 to 1000"),
            ));
        }
        let sane = |d: Duration, lo: Duration, hi: Duration| (lo..=hi).contains(&d);
        if !sane(
            self.ack_timeout,
            Duration::from_millis(10),
            Duration::from_secs(60),
        ) || !sane(
            self.heartbeat,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ) {
            return Err(at(
                self.name.span(),
                format!("automation {name}: ack_timeout must be 10ms-60s and heartbeat 100ms-1h"),
            ));
        }
        let map = match &self.account_map {
            None => AccountMap::default(),
            Some(p) => {
                let path = base.join(p.get_ref());
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    at(
                        p.span(),
                        format!(
                            "automation {name}: cannot read account_map {}: {e}",
                            path.display()
                        ),
                    )
                })?;
                AccountMap::parse(&text).map_err(|e| SpecError {
                    path: Some(path.clone()),
                    line: e.line,
                    message: e.message,
                })?
            }
        };
        Ok(OutputSpec {
            name: name.clone(),
            endpoint,
            format,
            map: Arc::new(map),
            timing: Timing {
                ack_timeout: self.ack_timeout,
                heartbeat: self.heartbeat,
                max_attempts,
            },
        })
    }
}
