//! systemd integration: readiness, status text and the watchdog, through `NOTIFY_SOCKET`.
//! Without systemd (no socket in the environment) every call is a no-op.

use sd_notify::NotifyState;

/// Tells systemd the daemon is ready: listeners bound, journal recovered.
pub fn ready(status: &str) {
    let _ = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// Tells systemd a reload is in progress, then done.
pub fn reloading() {
    let _ = sd_notify::notify(&[NotifyState::Reloading]);
}

/// A watchdog keep-alive; sent only from a healthy event loop.
pub fn watchdog() {
    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
}

/// The watchdog interval systemd asked for, if any.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled()
}
