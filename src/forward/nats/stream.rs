//! The stream the events go to: created with the configured settings when missing, used
//! as it is when it exists. A stream is the station's record of alarms, shared by every
//! receiver and set up by its operators: tocsin never recreates, edits or shrinks one.
//! When the existing stream differs from `[bus.nats]`, the difference is logged plainly
//! once, and the sink adapts where safety needs it (a shorter duplicate window shortens
//! the republish window, see [`republish_window`]).

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::config::NatsConfig;
use super::status::{BusStatus, StreamView};
use super::ForwardError;

/// The stream as configured, for creation.
fn wanted(config: &NatsConfig) -> stream::Config {
    stream::Config {
        name: config.stream.clone(),
        subjects: vec![config.stream_subjects()],
        storage: stream::StorageType::File,
        num_replicas: config.replicas.max(1),
        duplicate_window: config.duplicate_window,
        ..Default::default()
    }
}

/// JetStream API requests (stream info, creation) wait this long for an answer, asked again
/// several times before the wait grows (up to the ack timeout). During a leader election
/// requests go unanswered, and stay so: a short wait asked again finds the new leader
/// within a second of its election, where one long wait would sit out its whole timeout.
pub(super) const API_TIMEOUT: Duration = Duration::from_secs(1);
/// Requests at [`API_TIMEOUT`] before the wait grows: enough to cover an election.
const SHORT_ATTEMPTS: u32 = 10;
const ENSURE_ATTEMPTS: u32 = 15;

/// Finds the stream, or creates it, asking again while the requests go unanswered.
pub(super) async fn ensure(
    client: &async_nats::Client,
    config: &NatsConfig,
    bus: &BusStatus,
) -> Result<stream::Info, ForwardError> {
    let mut timeout = API_TIMEOUT;
    let mut attempt = 1;
    loop {
        let js = jetstream::ContextBuilder::new()
            .timeout(timeout)
            .build(client.clone());
        match ensure_once(&js, config, bus).await {
            Ok(info) => return Ok(info),
            Err(Failure { retry: true, .. }) if attempt < ENSURE_ATTEMPTS => {
                attempt += 1;
                if attempt > SHORT_ATTEMPTS {
                    timeout = (timeout * 2).min(config.ack_timeout.max(API_TIMEOUT));
                }
            }
            Err(f) => {
                return Err(ForwardError::Stream {
                    stream: config.stream.clone(),
                    detail: f.detail,
                })
            }
        }
    }
}

/// Why the stream could not be found or made; `retry` when the request went unanswered.
struct Failure {
    retry: bool,
    detail: String,
}

/// Two receivers starting together may both try to create the stream: the loser finds
/// the winner's.
async fn ensure_once(
    js: &jetstream::Context,
    config: &NatsConfig,
    bus: &BusStatus,
) -> Result<stream::Info, Failure> {
    let info = match find(js, &config.stream).await? {
        Some(info) => info,
        None => match js.create_stream(wanted(config)).await {
            Ok(s) => {
                let info = s.cached_info().clone();
                tracing::info!(sink = "nats", stream = %config.stream, replicas = info.config.num_replicas, subjects = %config.stream_subjects(), "stream created");
                return Ok(info);
            }
            Err(e) => match find(js, &config.stream).await? {
                Some(info) => info,
                None => {
                    return Err(Failure {
                        retry: !matches!(
                            e.kind(),
                            jetstream::context::CreateStreamErrorKind::JetStream(_)
                        ),
                        detail: format!("cannot create it: {e}"),
                    })
                }
            },
        },
    };
    let diffs = differences(&info.config, config);
    if !diffs.is_empty() && bus.log_differences_once() {
        tracing::warn!(
            sink = "nats",
            stream = %config.stream,
            "stream {} exists with settings other than [bus.nats]: {}. tocsin uses it as it is \
             and never recreates or shrinks a stream; change it on the bus if intended \
             (e.g. `nats stream edit {}`)",
            config.stream,
            diffs.join("; "),
            config.stream
        );
    }
    Ok(info)
}

/// `Ok(None)` when the stream does not exist.
async fn find(js: &jetstream::Context, name: &str) -> Result<Option<stream::Info>, Failure> {
    match js.get_stream(name).await {
        Ok(s) => Ok(Some(s.cached_info().clone())),
        Err(e) => match e.kind() {
            jetstream::context::GetStreamErrorKind::JetStream(j)
                if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            kind => Err(Failure {
                retry: matches!(kind, jetstream::context::GetStreamErrorKind::Request),
                detail: e.to_string(),
            }),
        },
    }
}

/// The stream as its leader describes it now, or `None` if no answer came within
/// [`API_TIMEOUT`] (no leader, or none reachable).
pub(super) async fn look(client: &async_nats::Client, name: &str) -> Option<StreamView> {
    let js = jetstream::ContextBuilder::new()
        .timeout(API_TIMEOUT)
        .build(client.clone());
    let s = tokio::time::timeout(API_TIMEOUT * 2, js.get_stream(name))
        .await
        .ok()?
        .ok()?;
    Some(StreamView::from_info(s.cached_info()))
}

/// What differs between the stream found and the configuration, in words.
pub(super) fn differences(found: &stream::Config, config: &NatsConfig) -> Vec<String> {
    let mut out = Vec::new();
    let subjects = config.stream_subjects();
    let covered = found
        .subjects
        .iter()
        .any(|s| s == &subjects || s == ">" || s == &format!("{}.>", config.subject_prefix));
    if !covered {
        out.push(format!(
            "subjects {:?} do not take {subjects} (events cannot be stored)",
            found.subjects
        ));
    }
    if found.num_replicas.max(1) != config.replicas {
        out.push(format!(
            "replicas {} (configured {})",
            found.num_replicas.max(1),
            config.replicas
        ));
    }
    if found.duplicate_window != config.duplicate_window {
        out.push(format!(
            "duplicate_window {}s (configured {}s)",
            found.duplicate_window.as_secs(),
            config.duplicate_window.as_secs()
        ));
    }
    if found.storage != stream::StorageType::File {
        out.push("memory storage (a server restart empties it)".into());
    }
    out
}

/// The window to publish again over: the configured one, unless the stream's own
/// duplicate window is not longer than it, in which case half of the stream's (records
/// published again past the stream's memory of their ids would be stored twice).
pub(super) fn republish_window(config: &NatsConfig, found: &StreamView) -> Duration {
    let dup = Duration::from_secs(found.duplicate_window_s);
    if dup.is_zero() || config.republish_window < dup {
        config.republish_window
    } else {
        dup / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_stream_is_described_not_changed() {
        let c = NatsConfig {
            replicas: 3,
            ..NatsConfig::with_url("nats://a")
        };
        let mut found = wanted(&c);
        assert!(differences(&found, &c).is_empty());
        found.num_replicas = 1;
        found.duplicate_window = Duration::from_secs(30);
        found.subjects = vec!["other.>".into()];
        let d = differences(&found, &c);
        assert_eq!(d.len(), 3, "{d:?}");
        assert!(d.iter().any(|l| l == "replicas 1 (configured 3)"));
        assert!(d.iter().any(|l| l.contains("cannot be stored")));
        let view = StreamView {
            duplicate_window_s: 30,
            ..StreamView::default()
        };
        // The configured 60 s would outlive the stream's 30 s memory of ids.
        assert_eq!(republish_window(&c, &view), Duration::from_secs(15));
        let view = StreamView {
            duplicate_window_s: 600,
            ..StreamView::default()
        };
        assert_eq!(republish_window(&c, &view), c.republish_window);
    }
}
