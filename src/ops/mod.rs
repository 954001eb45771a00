//! Operations: configuration, metrics, HTTP endpoints, systemd integration.

pub mod config;
pub mod metrics;
pub mod units;
