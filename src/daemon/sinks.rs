//! The outputs that tail the journal, each from its own cursor: stdout and file JSON
//! lines, the NATS JetStream bus, the automation outputs. Started after the listeners,
//! stopped after the journal closed, so each drains what became durable.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::DaemonError;
use crate::forward::nats::BusStatus;
use crate::forward::surgard::{OutputSpec, OutputState};
use crate::journal::{CursorStore, JournalHandle};
use crate::ops::config::Config;
use crate::ops::metrics::Metrics;

/// The running sinks.
pub(super) struct Sinks {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Gives every sink that has no cursor yet one at the current end of the journal. Done
/// before any frame can arrive, so nothing received from here on is skipped.
pub(super) fn prepare_cursors(
    config: &Config,
    automation: &[OutputSpec],
    data_dir: &Path,
    journal: &JournalHandle,
) -> Result<(), DaemonError> {
    let mut names: Vec<String> = Vec::new();
    if config.stdout_events() {
        names.push("stdout".into());
    }
    if config.output.file.is_some() {
        names.push("file".into());
    }
    if config.bus.nats.is_some() {
        names.push(crate::forward::nats::CURSOR.into());
    }
    names.extend(automation.iter().map(OutputSpec::cursor));
    let cursors = CursorStore::open(data_dir)?;
    for name in &names {
        if cursors.load_cursor(name)?.is_none() {
            cursors.store_cursor(name, journal.durable_lsn())?;
        }
    }
    Ok(())
}

impl Sinks {
    pub(super) async fn start(
        config: &Config,
        automation: (&[OutputSpec], &[Arc<OutputState>]),
        bus: Option<Arc<BusStatus>>,
        journal: &JournalHandle,
        metrics: &Metrics,
    ) -> Sinks {
        let stop = CancellationToken::new();
        let mut tasks = Vec::new();
        if config.stdout_events() {
            let h = journal.clone();
            let s = stop.clone();
            let m = metrics.sink("stdout");
            tasks.push(tokio::spawn(async move {
                let out = Box::new(std::io::stdout());
                if let Err(e) = crate::forward::jsonl::run(h, "stdout", out, m, s).await {
                    tracing::error!(error = %e, "stdout sink stopped");
                }
            }));
        }
        if let Some(path) = &config.output.file {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path);
            match file {
                Ok(f) => {
                    let m = metrics.sink("file");
                    let h = journal.clone();
                    let s = stop.clone();
                    tasks.push(tokio::spawn(async move {
                        if let Err(e) =
                            crate::forward::jsonl::run(h, "file", Box::new(f), m, s).await
                        {
                            tracing::error!(error = %e, "file sink stopped");
                        }
                    }));
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "cannot open the events file")
                }
            }
        }
        if let (Some(nats), Some(bus)) = (config.bus.nats.clone(), bus) {
            let h = journal.clone();
            let s = stop.clone();
            let m = Arc::new(metrics.sink("nats"));
            let name = format!("tocsin {}", config.receiver.id);
            tasks.push(tokio::spawn(async move {
                if let Err(e) = crate::forward::nats::run(h, nats, name, m, bus, s).await {
                    tracing::error!(error = %e, "NATS sink stopped");
                }
            }));
        }
        tasks.extend(crate::forward::surgard::spawn(
            automation.0,
            automation.1,
            journal,
            &config.receiver.id,
            &stop,
        ));
        Sinks { stop, tasks }
    }

    /// Each sink stores its cursor and stops (2 s at most each).
    pub(super) async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
    }
}
