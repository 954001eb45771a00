//! The HTTP endpoints' start: access rules read, the port bound, the server spawned. Never
//! fatal: metrics and pages are for people, not panels, so a taken port or a bad access
//! setting is logged and the receiver starts anyway (at worst serving only `/healthz` and
//! `/readyz`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::health::Health;
use crate::ops::config::Config;
use crate::ops::http::{self, Probe};

/// Serves the endpoints until `stop`; returns the address bound, if any.
pub(super) async fn start(
    config: &Config,
    health: &Arc<Health>,
    stop: &CancellationToken,
) -> Option<SocketAddr> {
    let addr = config.http_address();
    let credentials = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    let access =
        crate::ops::http_access::load(&config.http, addr, &config.path, credentials.as_deref());
    for w in &access.warnings {
        tracing::warn!("{w}");
    }
    if let Some(why) = &access.error {
        tracing::error!("{why}");
    }
    match http::bind(addr).await {
        Ok(l) => {
            let bound = l.local_addr().ok();
            tokio::spawn(http::serve(
                l,
                Arc::clone(health) as Arc<dyn Probe>,
                Arc::new(access.access),
                stop.clone(),
            ));
            bound
        }
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot serve HTTP endpoints");
            None
        }
    }
}
