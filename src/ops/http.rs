//! The operator's HTTP endpoints, on loopback by default: `/metrics` (Prometheus text),
//! `/healthz` (the process answers), `/readyz` (listeners bound and journal writable),
//! `/status` (a JSON summary for the start of a shift), `/diag/ACCOUNT` (why one site
//! misbehaves: its recent frames, paths, reasons; see [`crate::diag`]).
//!
//! Plain hyper with a handful of fixed routes: no framework is needed for five paths.

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

use super::throttle::{Throttle, Verdict};

/// HTTP connections served at once. Scrapers and operators need a handful; the descriptors
/// are shared with the panels' connections, so a client that opens connections and never
/// closes them must not be able to use them up. Past this, a new connection is closed at
/// once (and logged, at most five times a minute, with a count of the others).
pub const MAX_HTTP_CONNECTIONS: usize = 128;

static REFUSED_LOG: Throttle = Throttle::per_minute(5);

/// What the endpoints read.
pub trait Probe: Send + Sync + 'static {
    fn metrics(&self) -> Vec<u8>;
    /// `Ok` when ready, else the reason.
    fn ready(&self) -> Result<(), String>;
    fn status(&self) -> serde_json::Value;
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
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
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

fn reply(code: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn route(probe: &dyn Probe, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
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

/// Serves the endpoints on `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, probe: Arc<dyn Probe>, shutdown: CancellationToken) {
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
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let probe = Arc::clone(&probe);
                async move {
                    let r = if req.uri().path().starts_with("/diag/") {
                        diag_route(probe.as_ref(), &req).await
                    } else {
                        route(probe.as_ref(), &req)
                    };
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
