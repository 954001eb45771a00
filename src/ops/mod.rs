//! Operations: configuration, metrics, HTTP endpoints, systemd integration.

pub mod config;
pub mod frame_series;
pub mod http;
pub mod http_access;
pub mod metrics;
pub mod page;
pub mod recent;
pub mod retention;
pub mod systemd;
