//! Who may read the HTTP endpoints: the `[http]` token, and what is served without it.
//!
//! The endpoints tell the state of every site of a station, so once they leave loopback
//! they need a bearer token (`[http] token_file`) or an explicit `allow_unauthenticated`.
//! `/healthz` and `/readyz` are always open: a load balancer or systemd must see that the
//! receiver lives without holding a secret. `metrics_unauthenticated` opens `/metrics` too,
//! for a scraper without a secret.
//!
//! An HTTP setting never keeps the receiver down: a token file that cannot be read, or a
//! non-loopback address with neither a token nor `allow_unauthenticated`, leaves the
//! receiver running and the HTTP endpoints serving only the open routes, with the reason
//! given once ([`Loaded::error`]).
//!
//! A browser cannot send an `Authorization` header by itself, so the token is also taken
//! from a `?token=` query parameter, which the page answers with a cookie (HttpOnly,
//! SameSite=Lax, named after the port so two receivers on one host do not mix them) and a
//! redirect to the same URL without the token. The token is compared in constant time and
//! never logged or shown. Pure but for reading the token file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::config::HttpSection;

/// How long a browser keeps the token cookie: about a shift and a half.
pub const COOKIE_MAX_AGE_S: u64 = 12 * 3600;

/// Tokens shorter than this are accepted, with a warning: they can be guessed.
const SHORT_TOKEN: usize = 16;
/// Longer is no safer, and a header this long is already an oddity.
const MAX_TOKEN: usize = 4096;

/// The bearer token. Its `Debug` does not show it.
#[derive(Clone)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

impl Token {
    /// The token read from a file: surrounding whitespace (a final newline) dropped.
    pub fn parse(text: &str) -> Result<Token, TokenError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(TokenError::Empty);
        }
        if t.len() > MAX_TOKEN {
            return Err(TokenError::TooLong { max: MAX_TOKEN });
        }
        // What a cookie value and a header value may carry without quoting.
        if !t
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b',' | b';' | b'\\'))
        {
            return Err(TokenError::Characters);
        }
        Ok(Token(t.to_string()))
    }

    /// Whether `presented` is the token. The time taken depends on the length of what was
    /// presented, never on how much of it matches.
    pub fn matches(&self, presented: &str) -> bool {
        let secret = self.0.as_bytes();
        let given = presented.as_bytes();
        let mut diff = u8::from(secret.len() != given.len());
        for (i, g) in given.iter().enumerate() {
            let s = secret.get(i).copied().unwrap_or(0);
            diff |= std::hint::black_box(g ^ s);
        }
        std::hint::black_box(diff) == 0
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

/// Why a token file is not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token file is empty")]
    Empty,
    #[error("the token is longer than {max} bytes")]
    TooLong { max: usize },
    #[error(
        "the token may hold only visible ASCII characters other than `\"`, `,`, `;` and `\\` \
         (a hex or base64url token: `openssl rand -hex 32`)"
    )]
    Characters,
}

/// Which rule a route falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `/healthz`, `/readyz`: always served.
    Open,
    /// `/metrics`: open with `metrics_unauthenticated`.
    Metrics,
    /// Everything else: the token when one is set.
    Protected,
}

pub fn route_kind(path: &str) -> RouteKind {
    match path {
        "/healthz" | "/readyz" => RouteKind::Open,
        "/metrics" => RouteKind::Metrics,
        _ => RouteKind::Protected,
    }
}

/// What a request presented as a token.
#[derive(Debug, Default, Clone, Copy)]
pub struct Presented<'a> {
    /// From `Authorization: Bearer …`.
    pub bearer: Option<&'a str>,
    /// From the token cookie.
    pub cookie: Option<&'a str>,
    /// From the `token` query parameter, percent-decoded.
    pub query: Option<&'a str>,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// The right token came as a query parameter: allowed; a page sets the cookie and
    /// redirects to the URL without it.
    AllowFromQuery,
    /// No token, or a wrong one: 401.
    Unauthorized,
    /// Only the open routes are served: 403, with the reason.
    Locked(String),
}

/// The access rules in force.
#[derive(Debug, Clone)]
pub struct Access {
    token: Option<Token>,
    metrics_open: bool,
    /// Set when only the open routes are served: why.
    locked: Option<String>,
}

impl Default for Access {
    /// Everything served to everyone: loopback without a token.
    fn default() -> Self {
        Access {
            token: None,
            metrics_open: true,
            locked: None,
        }
    }
}

/// The rules read from `[http]`, with what to tell the operator.
#[derive(Debug)]
pub struct Loaded {
    pub access: Access,
    /// Worth a warning (`check-config` prints them, `run` logs them).
    pub warnings: Vec<String>,
    /// Why only the open routes are served (one ERROR line at start), if so.
    pub error: Option<String>,
}

/// Where a `token_file` is read: as written when absolute; else under the systemd
/// credentials directory when there is one, else beside the configuration file.
pub fn token_path(file: &Path, config_path: &Path, credentials_dir: Option<&Path>) -> PathBuf {
    if file.is_absolute() {
        return file.to_path_buf();
    }
    match credentials_dir {
        Some(dir) => dir.join(file),
        None => config_path.parent().unwrap_or(Path::new(".")).join(file),
    }
}

/// Reads the token at `path`; a warning when others than its owner may read it.
pub fn read_token(path: &Path) -> Result<(Token, Option<String>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
    let token = Token::parse(&text).map_err(|e| format!("token file {}: {e}", path.display()))?;
    let mut warning = None;
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o044 != 0 {
            warning = Some(format!(
                "token file {} is readable by group or others (mode {mode:03o}): `chmod 600` it",
                path.display()
            ));
        }
    }
    if token.0.len() < SHORT_TOKEN {
        let short = format!(
            "the HTTP token in {} is shorter than {SHORT_TOKEN} characters: easy to guess",
            path.display()
        );
        warning = Some(match warning {
            Some(w) => format!("{w}; {short}"),
            None => short,
        });
    }
    Ok((token, warning))
}

/// The rules of `http` for the endpoints bound at `address`. `config_path` is the
/// configuration file (relative token paths are read beside it); `credentials_dir` is
/// `$CREDENTIALS_DIRECTORY`.
pub fn load(
    http: &HttpSection,
    address: SocketAddr,
    config_path: &Path,
    credentials_dir: Option<&Path>,
) -> Loaded {
    let mut warnings = Vec::new();
    let open_routes = if http.metrics_unauthenticated {
        "only /healthz, /readyz and /metrics are served"
    } else {
        "only /healthz and /readyz are served"
    };
    let mut access = Access {
        token: None,
        metrics_open: http.metrics_unauthenticated,
        locked: None,
    };
    if let Some(file) = &http.token_file {
        let path = token_path(file, config_path, credentials_dir);
        match read_token(&path) {
            Ok((token, warning)) => {
                warnings.extend(warning);
                if http.allow_unauthenticated {
                    warnings.push(
                        "[http] allow_unauthenticated is ignored: a token_file is set, and the token is asked for"
                            .into(),
                    );
                }
                access.token = Some(token);
            }
            Err(why) => {
                let error = format!("{why}: {open_routes}");
                access.locked = Some(error.clone());
                return Loaded {
                    access,
                    warnings,
                    error: Some(error),
                };
            }
        }
        return Loaded {
            access,
            warnings,
            error: None,
        };
    }
    if address.ip().is_loopback() {
        access.metrics_open = true;
        return Loaded {
            access,
            warnings,
            error: None,
        };
    }
    if http.allow_unauthenticated {
        access.metrics_open = true;
        warnings.push(format!(
            "HTTP endpoints on {address} (not loopback) are served without a token \
             (allow_unauthenticated = true): anyone who reaches the address reads every site's state"
        ));
        return Loaded {
            access,
            warnings,
            error: None,
        };
    }
    let error = format!(
        "HTTP endpoints on {address} (not loopback) need [http] token_file or \
         allow_unauthenticated = true: {open_routes}"
    );
    access.locked = Some(error.clone());
    Loaded {
        access,
        warnings,
        error: Some(error),
    }
}

impl Access {
    /// Whether a token is asked for.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub fn decide(&self, path: &str, presented: &Presented<'_>) -> Decision {
        match route_kind(path) {
            RouteKind::Open => return Decision::Allow,
            RouteKind::Metrics if self.metrics_open => return Decision::Allow,
            _ => {}
        }
        if let Some(why) = &self.locked {
            return Decision::Locked(why.clone());
        }
        let Some(token) = &self.token else {
            return Decision::Allow;
        };
        let header_or_cookie = [presented.bearer, presented.cookie]
            .into_iter()
            .flatten()
            .any(|p| token.matches(p));
        if header_or_cookie {
            Decision::Allow
        } else if presented.query.is_some_and(|q| token.matches(q)) {
            Decision::AllowFromQuery
        } else {
            Decision::Unauthorized
        }
    }

    /// The `Set-Cookie` value that lets a browser in without the query parameter.
    pub fn set_cookie(&self, port: u16) -> Option<String> {
        let token = self.token.as_ref()?;
        Some(format!(
            "{}={}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; SameSite=Lax",
            cookie_name(port),
            token.expose()
        ))
    }
}

/// The token cookie's name: cookies ignore ports, and two receivers on one host (with two
/// tokens) must not overwrite each other's.
pub fn cookie_name(port: u16) -> String {
    format!("tocsin_token_{port}")
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The token of `Authorization: Bearer …` (the scheme is case-insensitive).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
}

/// Percent-decodes a query value (`+` stays `+`: tokens hold no spaces). `None` when the
/// result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| {
            b.get(j)
                .and_then(|&h| char::from(h).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                i += 3;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `query` without its `token` parameter ("" when nothing else is left).
pub fn without_token(query: &str) -> String {
    query
        .split('&')
        .filter(|p| !p.is_empty() && *p != "token" && !p.starts_with("token="))
        .collect::<Vec<_>>()
        .join("&")
}

/// The raw `token` parameter of a query, if any.
pub fn query_token(query: &str) -> Option<&str> {
    query.split('&').find_map(|p| p.strip_prefix("token="))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn section(token: Option<&Path>, allow: bool, metrics: bool) -> HttpSection {
        HttpSection {
            address: None,
            token_file: token.map(Path::to_path_buf),
            allow_unauthenticated: allow,
            metrics_unauthenticated: metrics,
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn token_file(dir: &Path, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("token");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    fn with(bearer: Option<&str>, cookie: Option<&str>, query: Option<&str>) -> Decision {
        let dir = tempfile::tempdir().unwrap();
        let p = token_file(dir.path(), &format!("{SECRET}\n"), 0o600);
        let l = load(
            &section(Some(&p), false, false),
            addr("0.0.0.0:9100"),
            Path::new("/etc/tocsin/tocsin.toml"),
            None,
        );
        assert!(l.error.is_none() && l.warnings.is_empty(), "{l:?}");
        l.access.decide(
            "/status",
            &Presented {
                bearer,
                cookie,
                query,
            },
        )
    }

    #[test]
    fn a_token_is_asked_for_everywhere_but_the_open_routes() {
        assert_eq!(with(None, None, None), Decision::Unauthorized);
        assert_eq!(with(Some(SECRET), None, None), Decision::Allow);
        assert_eq!(with(None, Some(SECRET), None), Decision::Allow);
        assert_eq!(with(None, None, Some(SECRET)), Decision::AllowFromQuery);
        assert_eq!(
            with(Some("nope"), Some("x"), Some("y")),
            Decision::Unauthorized
        );
        // A prefix, or the token with more after it, is not the token.
        assert_eq!(
            with(Some(&SECRET[..10]), None, None),
            Decision::Unauthorized
        );
        assert_eq!(
            with(Some(&format!("{SECRET}x")), None, None),
            Decision::Unauthorized
        );
        let dir = tempfile::tempdir().unwrap();
        let p = token_file(dir.path(), SECRET, 0o600);
        let l = load(
            &section(Some(&p), false, false),
            addr("127.0.0.1:9100"),
            Path::new("x.toml"),
            None,
        );
        let none = Presented::default();
        assert_eq!(l.access.decide("/healthz", &none), Decision::Allow);
        assert_eq!(l.access.decide("/readyz", &none), Decision::Allow);
        // A token set on loopback is asked for there too.
        assert_eq!(l.access.decide("/metrics", &none), Decision::Unauthorized);
        assert_eq!(l.access.decide("/", &none), Decision::Unauthorized);
        let l = load(
            &section(Some(&p), false, true),
            addr("0.0.0.0:9100"),
            Path::new("x.toml"),
            None,
        );
        assert_eq!(l.access.decide("/metrics", &none), Decision::Allow);
        assert_eq!(l.access.decide("/status", &none), Decision::Unauthorized);
    }

    #[test]
    fn off_loopback_without_a_token_only_the_open_routes_are_served() {
        let none = Presented::default();
        let l = load(
            &section(None, false, false),
            addr("0.0.0.0:9100"),
            Path::new("x.toml"),
            None,
        );
        let why = l.error.clone().unwrap();
        assert!(why.contains("token_file or allow_unauthenticated"), "{why}");
        assert_eq!(l.access.decide("/healthz", &none), Decision::Allow);
        assert_eq!(l.access.decide("/readyz", &none), Decision::Allow);
        assert!(matches!(
            l.access.decide("/metrics", &none),
            Decision::Locked(_)
        ));
        assert!(matches!(l.access.decide("/", &none), Decision::Locked(_)));
        // Opened explicitly, metrics are served.
        let l = load(
            &section(None, false, true),
            addr("[::]:9100"),
            Path::new("x.toml"),
            None,
        );
        assert!(l.error.unwrap().contains("/metrics are served"));
        assert_eq!(l.access.decide("/metrics", &none), Decision::Allow);
        assert!(matches!(
            l.access.decide("/status", &none),
            Decision::Locked(_)
        ));
        // allow_unauthenticated: everything, with a warning.
        let l = load(
            &section(None, true, false),
            addr("0.0.0.0:9100"),
            Path::new("x.toml"),
            None,
        );
        assert!(l.error.is_none());
        assert_eq!(l.warnings.len(), 1);
        assert_eq!(l.access.decide("/status", &none), Decision::Allow);
        // Loopback without a token: as before, everything.
        for a in ["127.0.0.1:9100", "[::1]:9100", "127.0.0.2:9100"] {
            let l = load(&section(None, false, false), addr(a), Path::new("x"), None);
            assert!(l.error.is_none() && l.warnings.is_empty());
            assert_eq!(l.access.decide("/status", &none), Decision::Allow);
            assert_eq!(l.access.decide("/metrics", &none), Decision::Allow);
        }
    }

    #[test]
    fn an_unreadable_token_file_serves_only_the_open_routes() {
        let l = load(
            &section(Some(Path::new("/nonexistent/token")), true, false),
            addr("127.0.0.1:9100"),
            Path::new("x.toml"),
            None,
        );
        let why = l.error.unwrap();
        assert!(
            why.contains("cannot read the token file /nonexistent/token"),
            "{why}"
        );
        let none = Presented::default();
        assert!(matches!(
            l.access.decide("/status", &none),
            Decision::Locked(_)
        ));
        assert_eq!(l.access.decide("/readyz", &none), Decision::Allow);
        let dir = tempfile::tempdir().unwrap();
        let p = token_file(dir.path(), " \n", 0o600);
        let l = load(
            &section(Some(&p), false, false),
            addr("127.0.0.1:9100"),
            Path::new("x.toml"),
            None,
        );
        assert!(l.error.unwrap().contains("empty"));
    }

    #[test]
    fn group_readable_or_short_tokens_are_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let p = token_file(dir.path(), SECRET, 0o640);
        let l = load(
            &section(Some(&p), false, false),
            addr("0.0.0.0:1"),
            Path::new("x"),
            None,
        );
        assert!(l.error.is_none());
        assert!(l.warnings[0].contains("mode 640"), "{:?}", l.warnings);
        let p = token_file(dir.path(), "short", 0o600);
        let l = load(
            &section(Some(&p), false, false),
            addr("0.0.0.0:1"),
            Path::new("x"),
            None,
        );
        assert!(
            l.warnings[0].contains("shorter than 16"),
            "{:?}",
            l.warnings
        );
        // Neither warning nor error ever carries the token.
        let p = token_file(dir.path(), SECRET, 0o644);
        let l = load(
            &section(Some(&p), true, false),
            addr("0.0.0.0:1"),
            Path::new("x"),
            None,
        );
        assert_eq!(l.warnings.len(), 2);
        for w in &l.warnings {
            assert!(!w.contains(SECRET), "{w}");
        }
        assert!(!format!("{:?}", l.access).contains(SECRET));
    }

    #[test]
    fn relative_token_paths() {
        let cfg = Path::new("/etc/tocsin/tocsin.toml");
        assert_eq!(
            token_path(Path::new("http.token"), cfg, None),
            Path::new("/etc/tocsin/http.token")
        );
        assert_eq!(
            token_path(
                Path::new("http.token"),
                cfg,
                Some(Path::new("/run/credentials/x"))
            ),
            Path::new("/run/credentials/x/http.token")
        );
        assert_eq!(
            token_path(Path::new("/srv/t"), cfg, Some(Path::new("/run/c"))),
            Path::new("/srv/t")
        );
    }

    #[test]
    fn token_characters() {
        assert!(Token::parse("abc\n").is_ok());
        assert_eq!(Token::parse("  \n").unwrap_err(), TokenError::Empty);
        assert_eq!(Token::parse("a b").unwrap_err(), TokenError::Characters);
        assert_eq!(Token::parse("a;b").unwrap_err(), TokenError::Characters);
        assert_eq!(Token::parse("é").unwrap_err(), TokenError::Characters);
        assert!(Token::parse("AbC-_=+/.~").is_ok());
    }

    #[test]
    fn header_cookie_and_query_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        let h = "a=1; tocsin_token_9100=xyz; tocsin_token_9101=other";
        assert_eq!(cookie_value(h, &cookie_name(9100)), Some("xyz"));
        assert_eq!(cookie_value(h, &cookie_name(9102)), None);
        assert_eq!(percent_decode("a%2Fb%3d+c").as_deref(), Some("a/b=+c"));
        assert_eq!(percent_decode("bad%zz%").as_deref(), Some("bad%zz%"));
        assert_eq!(percent_decode("%ff"), None);
        assert_eq!(query_token("since=1&token=abc"), Some("abc"));
        assert_eq!(without_token("since=1&token=abc&x=2"), "since=1&x=2");
        assert_eq!(without_token("token=abc"), "");
    }

    #[test]
    fn the_cookie_is_http_only_and_named_after_the_port() {
        let dir = tempfile::tempdir().unwrap();
        let p = token_file(dir.path(), SECRET, 0o600);
        let l = load(
            &section(Some(&p), false, false),
            addr("0.0.0.0:1"),
            Path::new("x"),
            None,
        );
        let c = l.access.set_cookie(9100).unwrap();
        assert!(
            c.starts_with(&format!("tocsin_token_9100={SECRET};")),
            "{c}"
        );
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax"), "{c}");
        assert!(Access::default().set_cookie(9100).is_none());
    }
}
