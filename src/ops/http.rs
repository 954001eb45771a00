//! The operator's HTTP endpoints, on loopback by default: `/metrics` (Prometheus text),
//! `/healthz` (the process answers), `/readyz` (listeners bound and journal writable),
//! `/status` (a JSON summary for the start of a shift), `/diag/ACCOUNT` (why one site
//! misbehaves: its recent frames, paths, reasons; see [`crate::diag`]), and the same two as
//! pages for a browser: `/` (the start-of-shift page) and `/site/ACCOUNT` (see
//! [`super::page`]).
//!
//! Every request first passes [`super::http_access`]: the token when one is set, only the
//! open routes when the address left loopback without one.
//!
//! Plain hyper with a handful of fixed routes: no framework is needed for seven paths.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::http_access::{self, Access, Decision, Presented};
use super::page;
use crate::throttle::{Throttle, Verdict};

/// HTTP connections served at once. Scrapers and operators need a handful; the descriptors
/// are shared with the panels' connections, so a client that opens connections and never
/// closes them must not be able to use them up. Past this, a new connection is closed at
/// once (and logged, at most five times a minute, with a count of the others).
pub const MAX_HTTP_CONNECTIONS: usize = 128;

static REFUSED_LOG: Throttle = Throttle::per_minute(5);
static DENIED_LOG: Throttle = Throttle::per_minute(5);

/// Seconds between two refreshes of a page (with scripts; three times that without), unless
/// the address says `?refresh=N` (a wall display may want less often, a test more).
const PAGE_REFRESH_S: u32 = 10;
/// A site's page reads a day of the journal each time: less often.
const SITE_REFRESH_S: u32 = 60;
const PAGE_REFRESH_RANGE: std::ops::RangeInclusive<u32> = 2..=3600;

fn refresh_of(req: &Request<Incoming>, default: u32) -> u32 {
    req.uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("refresh="))
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(default, |n| {
            n.clamp(*PAGE_REFRESH_RANGE.start(), *PAGE_REFRESH_RANGE.end())
        })
}

/// What the endpoints read.
pub trait Probe: Send + Sync + 'static {
    fn metrics(&self) -> Vec<u8>;
    /// `Ok` when ready, else the reason.
    fn ready(&self) -> Result<(), String>;
    fn status(&self) -> serde_json::Value;
    /// What the start-of-shift page draws: [`Probe::status`], plus what only the page
    /// shows (the last hour minute by minute, the latest alarms).
    fn page(&self) -> serde_json::Value {
        self.status()
    }
    /// A request refused by the access rules (`unauthorized`, `locked`), to be counted.
    fn refused(&self, reason: &'static str) {
        let _ = reason;
    }
    /// `GET /diag/ACCOUNT[?since=MICROS]`: the diagnosis of an account already checked
    /// with [`crate::diag::valid_account`]. A future, because it reads the journal (off
    /// the async threads). `Err` is a reason for a 503.
    fn diag(&self, account: String, since_micros: Option<i64>) -> DiagFuture {
        let _ = (account, since_micros);
        Box::pin(async { Err("diagnosis not available".to_string()) })
    }
}

/// What [`Probe::diag`] returns.
pub type DiagFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<serde_json::Value, String>> + Send + 'static>,
>;

/// `/diag/ACCOUNT`: the account comes from the network, so it is checked before anything
/// reads it; a bad one is a 400, never a panic or a journal scan.
async fn diag_route(probe: &dyn Probe, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let account = req.uri().path().strip_prefix("/diag/").unwrap_or("");
    if !crate::diag::valid_account(account) {
        return reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "account: 1 to 16 letters or digits\n",
        );
    }
    let mut since = None;
    for pair in req.uri().query().unwrap_or("").split('&') {
        if let Some(v) = pair.strip_prefix("since=") {
            match v.parse::<i64>() {
                Ok(us) => since = Some(us),
                Err(_) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "text/plain",
                        "since: microseconds since the Unix epoch\n",
                    )
                }
            }
        }
    }
    match probe.diag(account.to_string(), since).await {
        Ok(v) => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec_pretty(&v).unwrap_or_default(),
        ),
        Err(why) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{why}\n"),
        ),
    }
}

/// `/site/ACCOUNT`: the diagnosis of `/diag/ACCOUNT` as a page.
async fn site_route(probe: &dyn Probe, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let account = req.uri().path().strip_prefix("/site/").unwrap_or("");
    if !crate::diag::valid_account(account) {
        return reply(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "account: 1 to 16 letters or digits\n",
        );
    }
    match probe.diag(account.to_string(), None).await {
        Ok(v) => html_page(StatusCode::OK, refresh_of(req, SITE_REFRESH_S), |chrome| {
            page::site(&v, chrome)
        }),
        Err(why) => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{why}\n"),
        ),
    }
}

/// A page, with the headers that keep it to itself: a fresh nonce for its own style and
/// script and nothing else, no caching, no referrer to the map or verification links it
/// carries, no framing.
fn html_page(
    code: StatusCode,
    refresh_s: u32,
    render: impl FnOnce(&page::Chrome<'_>) -> String,
) -> Response<Full<Bytes>> {
    let nonce = format!("{:032x}", rand::random::<u128>());
    let chrome = page::Chrome {
        nonce: &nonce,
        refresh_s,
    };
    let mut r = reply(code, "text/html; charset=utf-8", render(&chrome));
    let csp = format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    );
    let h = r.headers_mut();
    for (name, value) in [
        ("content-security-policy", csp.as_str()),
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    }
    r
}

fn is_page(path: &str) -> bool {
    path == "/" || path.starts_with("/site/")
}

/// Applies the access rules; `Some` is the answer when the request goes no further.
fn check_access(
    probe: &dyn Probe,
    access: &Access,
    port: u16,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    let path = req.uri().path();
    let query = req.uri().query().unwrap_or("");
    let headers = req.headers();
    let bearer = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(http_access::bearer);
    let name = http_access::cookie_name(port);
    let cookie = headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| http_access::cookie_value(h, &name));
    let from_query = http_access::query_token(query).and_then(http_access::percent_decode);
    let presented = Presented {
        bearer,
        cookie,
        query: from_query.as_deref(),
    };
    match access.decide(path, &presented) {
        Decision::Allow => None,
        Decision::AllowFromQuery if is_page(path) => {
            // Into a cookie, and out of the address bar (and of what is bookmarked).
            let rest = http_access::without_token(query);
            let location = if rest.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{rest}")
            };
            let mut r = reply(StatusCode::SEE_OTHER, "text/plain", "token accepted\n");
            let h = r.headers_mut();
            if let Ok(v) = hyper::header::HeaderValue::from_str(&location) {
                h.insert(hyper::header::LOCATION, v);
            }
            if let Some(c) = access.set_cookie(port) {
                if let Ok(v) = hyper::header::HeaderValue::from_str(&c) {
                    h.insert(hyper::header::SET_COOKIE, v);
                }
            }
            h.insert(
                hyper::header::CACHE_CONTROL,
                hyper::header::HeaderValue::from_static("no-store"),
            );
            Some(r)
        }
        Decision::AllowFromQuery => None,
        Decision::Unauthorized => {
            probe.refused("unauthorized");
            if let Verdict::Log { suppressed } = DENIED_LOG.check_now() {
                tracing::warn!(%peer, suppressed, "HTTP request without a valid token refused (401)");
            }
            let mut r = if is_page(path) {
                html_page(StatusCode::UNAUTHORIZED, PAGE_REFRESH_S, page::token_needed)
            } else {
                reply(
                    StatusCode::UNAUTHORIZED,
                    "text/plain",
                    "a token is needed: Authorization: Bearer <token> (tocsin status --token-file FILE)\n",
                )
            };
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer realm=\"tocsin\""),
            );
            Some(r)
        }
        Decision::Locked(why) => {
            probe.refused("locked");
            Some(reply(
                StatusCode::FORBIDDEN,
                "text/plain",
                format!("{why}\n"),
            ))
        }
    }
}

/// One request: access, then the route.
async fn handle(
    probe: &dyn Probe,
    access: &Access,
    port: u16,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    if let Some(r) = check_access(probe, access, port, peer, req) {
        return r;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    let path = req.uri().path();
    if path.starts_with("/diag/") {
        diag_route(probe, req).await
    } else if path.starts_with("/site/") {
        site_route(probe, req).await
    } else if path == "/" {
        let data = probe.page();
        html_page(StatusCode::OK, refresh_of(req, PAGE_REFRESH_S), |chrome| {
            page::overview(&data, chrome)
        })
    } else {
        route(probe, req)
    }
}

fn reply(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(probe: &dyn Probe, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            probe.metrics(),
        ),
        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n"),
        "/readyz" => match probe.ready() {
            Ok(()) => reply(StatusCode::OK, "text/plain", "ready\n"),
            Err(why) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        "/status" => reply(
            StatusCode::OK,
            "application/json",
            serde_json::to_vec_pretty(&probe.status()).unwrap_or_default(),
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

/// Serves the endpoints on `listener` until `shutdown`, under the `access` rules.
pub async fn serve(
    listener: TcpListener,
    probe: Arc<dyn Probe>,
    access: Arc<Access>,
    shutdown: CancellationToken,
) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let slots = Arc::new(Semaphore::new(MAX_HTTP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            drop(stream);
            if let Verdict::Log { suppressed } = REFUSED_LOG.check_now() {
                tracing::warn!(
                    %peer,
                    suppressed,
                    "HTTP connection closed: {MAX_HTTP_CONNECTIONS} already open"
                );
            }
            continue;
        };
        let probe = Arc::clone(&probe);
        let access = Arc::clone(&access);
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let probe = Arc::clone(&probe);
                let access = Arc::clone(&access);
                async move {
                    let r = handle(probe.as_ref(), &access, port, peer, &req).await;
                    Ok::<_, Infallible>(r)
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), conn).await;
        });
    }
}

/// Binds the HTTP address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
