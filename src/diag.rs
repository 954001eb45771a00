//! Why does this site misbehave? One account's recent story, read from the journal: its
//! last frames with the replies they got, the paths it reports over and when each was last
//! heard, the reasons of its NAKs, DUHs and silences, how far its clock is off, how many
//! frames failed to decrypt, and its supervision failures.
//!
//! The scan is pure over records (`(receiver time, record)` pairs), so the same code serves
//! `tocsin diag --data-dir` (a stopped receiver, a copied directory) and the daemon's
//! `GET /diag/ACCOUNT` (its own journal), and is tested without a disk. Everything read
//! here came from the network or from disk: nothing may panic on it.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::UtcDateTime;

use crate::journal::{JournalError, JournalReader};
use crate::protocol::dc09::parse_frame;
use crate::protocol::text::unescape;
use crate::protocol::timestamp;
use crate::receiver::event::{rfc3339, Event};
use crate::receiver::record::{JournalRecord, RecordKind};
use crate::receiver::supervision::{
    path_name, CODE_COMM_FAIL, CODE_COMM_RESTORE, CODE_PATH_FAIL, CODE_PATH_RESTORE,
};

/// Frames kept in [`Diagnosis::last_frames`] unless told otherwise.
pub const DEFAULT_LAST_FRAMES: usize = 20;
/// Supervision events kept in [`Diagnosis::supervision`].
const LAST_SUPERVISION: usize = 20;
/// Clock-skew samples kept: enough for a day of a busy panel, bounded for a flood.
const MAX_SKEW_SAMPLES: usize = 100_000;

/// Why a diagnosis could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("`{0}` is not an account number (1 to 16 letters or digits)")]
    InvalidAccount(String),
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
}

/// Account numbers come from operators and from URLs: 1–16 ASCII letters or digits
/// (DC-09 allows 3–16 hex digits; letters beyond hex cost nothing to accept here).
pub fn valid_account(account: &str) -> bool {
    (1..=16).contains(&account.len()) && account.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// One frame of the account and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameLine {
    pub at: String,
    pub transport: Option<String>,
    pub peer: Option<String>,
    /// The reporting path named by the frame (`L1`, `L1R2`, `J3`), when readable.
    pub path: Option<String>,
    /// `ack`, `nak`, `duh`, `none`.
    pub outcome: Option<String>,
    pub reason: Option<String>,
    /// The frame and the reply, escaped as in the journal.
    pub raw: Option<String>,
    pub reply: Option<String>,
}

/// How many frames got one reply for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    pub outcome: String,
    pub reason: String,
    pub count: u64,
}

/// A reporting path and when it was last heard (an acknowledged frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSeen {
    pub path: String,
    pub last_heard: Option<String>,
    /// In supervision failure since, when it is.
    pub failed_since: Option<String>,
    /// Frames seen on it in the scanned span (0 when the daemon reports a path the scan
    /// did not see).
    pub frames: u64,
}

/// Panel clock minus receiver clock, in seconds (positive: the panel is ahead).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skew {
    pub samples: u64,
    pub min_s: f64,
    pub median_s: f64,
    pub max_s: f64,
}

/// A supervision event of the account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisionLine {
    pub at: String,
    pub code: String,
    pub path: Option<String>,
    pub text: String,
}

/// The diagnosis of one account (the JSON of `GET /diag/ACCOUNT` and `tocsin diag --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub account: String,
    /// Start of the scanned span (receiver time), when bounded.
    pub since: Option<String>,
    /// Where the paths come from: `journal` (derived offline) or `daemon` (the running
    /// supervisor).
    pub paths_from: String,
    /// Frames of the account in the span.
    pub frames: u64,
    /// Frames by reply (`ack`, `nak`, `duh`, `none`).
    pub outcomes: BTreeMap<String, u64>,
    /// Every (reply, reason) seen: refusals first, then most frequent first.
    pub reasons: Vec<ReasonCount>,
    pub decrypt_failures: u64,
    /// Events the account's frames carried.
    pub events: u64,
    pub last_heard: Option<String>,
    pub paths: Vec<PathSeen>,
    pub clock_skew: Option<Skew>,
    /// Supervision events by code (`path_fail`, `comm_fail`, …).
    pub supervision_counts: BTreeMap<String, u64>,
    /// The latest supervision events, oldest first.
    pub supervision: Vec<SupervisionLine>,
    /// The latest frames, oldest first.
    pub last_frames: Vec<FrameLine>,
    /// Journal records that could not be read as records (damage, foreign data).
    pub unreadable_records: u64,
}

#[derive(Debug, Default)]
struct PathState {
    last_heard: Option<i64>,
    failed_since: Option<String>,
    frames: u64,
}

/// Accumulates one account's diagnosis, record by record.
#[derive(Debug)]
pub struct Scanner {
    account: String,
    keep: usize,
    since: Option<i64>,
    frames: u64,
    outcomes: BTreeMap<String, u64>,
    reasons: BTreeMap<(String, String), u64>,
    decrypt_failures: u64,
    events: u64,
    last_heard: Option<i64>,
    paths: BTreeMap<String, PathState>,
    skew: Vec<i64>,
    supervision_counts: BTreeMap<String, u64>,
    supervision: VecDeque<SupervisionLine>,
    last_frames: VecDeque<FrameLine>,
    unreadable: u64,
}

impl Scanner {
    /// `keep`: how many last frames to keep; `since`: the span's start, for the report.
    pub fn new(account: &str, keep: usize, since: Option<i64>) -> Scanner {
        Scanner {
            account: account.to_string(),
            keep,
            since,
            frames: 0,
            outcomes: BTreeMap::new(),
            reasons: BTreeMap::new(),
            decrypt_failures: 0,
            events: 0,
            last_heard: None,
            paths: BTreeMap::new(),
            skew: Vec::new(),
            supervision_counts: BTreeMap::new(),
            supervision: VecDeque::new(),
            last_frames: VecDeque::new(),
            unreadable: 0,
        }
    }

    /// A record that could not be decoded.
    pub fn unreadable(&mut self) {
        self.unreadable = self.unreadable.saturating_add(1);
    }

    /// One journal record written at `ts_micros` (receiver time).
    pub fn push(&mut self, ts_micros: i64, record: &JournalRecord) {
        match record.kind {
            RecordKind::Frame => {
                if record.account.as_deref() == Some(self.account.as_str()) {
                    self.frame(ts_micros, record);
                }
            }
            RecordKind::Internal => {
                for e in &record.events {
                    if e.account == self.account {
                        self.supervision_event(e);
                    }
                }
            }
        }
    }

    fn frame(&mut self, ts_micros: i64, record: &JournalRecord) {
        self.frames = self.frames.saturating_add(1);
        let outcome = record.outcome.as_deref().unwrap_or("none").to_string();
        let reason = record.reason.as_deref().unwrap_or_default().to_string();
        bump(&mut self.outcomes, outcome.clone());
        bump(&mut self.reasons, (outcome.clone(), reason.clone()));
        if reason == "decrypt" {
            self.decrypt_failures = self.decrypt_failures.saturating_add(1);
        }
        self.events = self.events.saturating_add(record.events.len() as u64);

        let raw = record.raw.as_deref().map(unescape);
        let header = raw.as_deref().and_then(|r| parse_frame(r).ok());
        let network_path = record.events.iter().find_map(|e| e.network_path.as_deref());
        let path = header
            .as_ref()
            .map(|f| path_name(network_path, f.header.line, f.header.receiver).to_string());

        let acked = outcome == "ack";
        if acked {
            self.last_heard = Some(self.last_heard.map_or(ts_micros, |l| l.max(ts_micros)));
        }
        if let Some(p) = &path {
            let st = self.paths.entry(p.clone()).or_default();
            st.frames = st.frames.saturating_add(1);
            if acked {
                st.last_heard = Some(st.last_heard.map_or(ts_micros, |l| l.max(ts_micros)));
            }
        }

        // Clock skew: from the events' panel time, else from a clear frame's timestamp
        // (a frame refused for its timestamp has no events but is the case that matters).
        let received = UtcDateTime::from_unix_timestamp_nanos(i128::from(ts_micros) * 1000).ok();
        let mut sampled = false;
        for e in &record.events {
            if let (Some(panel), Some(rx)) =
                (e.panel_time.as_deref().and_then(parse_time), received)
            {
                self.sample_skew(panel, rx);
                sampled = true;
            }
        }
        if !sampled {
            let clear_ts = header
                .as_ref()
                .filter(|f| !f.header.encrypted)
                .and_then(|f| frame_timestamp(f.payload));
            if let (Some(panel), Some(rx)) = (clear_ts, received) {
                self.sample_skew(panel, rx);
            }
        }

        self.last_frames.push_back(FrameLine {
            at: record.at.to_string(),
            transport: record.transport.as_ref().map(|t| t.to_string()),
            peer: record.peer.as_ref().map(|p| p.to_string()),
            path,
            outcome: record.outcome.as_ref().map(|o| o.to_string()),
            reason: record.reason.as_ref().map(|r| r.to_string()),
            raw: record.raw.clone(),
            reply: record.reply.clone(),
        });
        while self.last_frames.len() > self.keep {
            self.last_frames.pop_front();
        }
    }

    fn sample_skew(&mut self, panel: UtcDateTime, received: UtcDateTime) {
        if self.skew.len() < MAX_SKEW_SAMPLES {
            self.skew
                .push(panel.unix_timestamp() - received.unix_timestamp());
        }
    }

    fn supervision_event(&mut self, e: &Event) {
        let code = e.code.as_str();
        bump(&mut self.supervision_counts, code.to_string());
        // Offline view of which paths are in failure now: replay fails and restores.
        let paths: Vec<String> = e
            .path
            .as_deref()
            .map(|p| p.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        match code {
            CODE_PATH_FAIL | CODE_COMM_FAIL => {
                for p in paths {
                    let st = self.paths.entry(p).or_default();
                    if st.failed_since.is_none() {
                        st.failed_since = Some(e.received_at.to_string());
                    }
                }
            }
            CODE_PATH_RESTORE => {
                for p in paths {
                    self.paths.entry(p).or_default().failed_since = None;
                }
            }
            CODE_COMM_RESTORE => {
                for st in self.paths.values_mut() {
                    st.failed_since = None;
                }
            }
            _ => {}
        }
        self.supervision.push_back(SupervisionLine {
            at: e.received_at.to_string(),
            code: e.code.to_string(),
            path: e.path.clone(),
            text: e.text.to_string(),
        });
        while self.supervision.len() > LAST_SUPERVISION {
            self.supervision.pop_front();
        }
    }

    /// The diagnosis so far.
    pub fn finish(self) -> Diagnosis {
        let mut reasons: Vec<ReasonCount> = self
            .reasons
            .into_iter()
            .map(|((outcome, reason), count)| ReasonCount {
                outcome,
                reason,
                count,
            })
            .collect();
        // Refusals first (they are why the operator is looking), then the most frequent.
        reasons.sort_by(|a, b| {
            (a.outcome == "ack")
                .cmp(&(b.outcome == "ack"))
                .then(b.count.cmp(&a.count))
        });
        let clock_skew = skew_summary(self.skew);
        Diagnosis {
            account: self.account,
            since: self.since.map(micros_text),
            paths_from: "journal".into(),
            frames: self.frames,
            outcomes: self.outcomes,
            reasons,
            decrypt_failures: self.decrypt_failures,
            events: self.events,
            last_heard: self.last_heard.map(micros_text),
            paths: self
                .paths
                .into_iter()
                // A supervision path named "*" (an account not heard since start) only
                // means something when the daemon reports it.
                .filter(|(name, _)| name != "*")
                .map(|(path, st)| PathSeen {
                    path,
                    last_heard: st.last_heard.map(micros_text),
                    failed_since: st.failed_since,
                    frames: st.frames,
                })
                .collect(),
            clock_skew,
            supervision_counts: self.supervision_counts,
            supervision: self.supervision.into(),
            last_frames: self.last_frames.into(),
            unreadable_records: self.unreadable,
        }
    }
}

fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    let n = map.entry(key).or_insert(0);
    *n = n.saturating_add(1);
}

fn parse_time(s: &str) -> Option<UtcDateTime> {
    time::OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .map(|t| t.to_utc())
}

/// The `_HH:MM:SS,MM-DD-YYYY` at the end of a clear payload, if any.
fn frame_timestamp(payload: &[u8]) -> Option<UtcDateTime> {
    let at = payload.iter().rposition(|&b| b == b'_')?;
    let text = payload.get(at + 1..at + 1 + timestamp::TIMESTAMP_LEN)?;
    timestamp::parse(text)
}

fn micros_text(us: i64) -> String {
    UtcDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .map(|t| rfc3339(t).into())
        .unwrap_or_default()
}

fn skew_summary(mut samples: Vec<i64>) -> Option<Skew> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    let at = |i: usize| samples.get(i).copied().unwrap_or(0) as f64;
    let median = if n % 2 == 1 {
        at(n / 2)
    } else {
        (at(n / 2 - 1) + at(n / 2)) / 2.0
    };
    Some(Skew {
        samples: n as u64,
        min_s: at(0),
        median_s: median,
        max_s: at(n - 1),
    })
}

/// Diagnoses `account` over `records` (pure: tests and callers supply the records).
pub fn diagnose<I>(account: &str, records: I, keep: usize, since: Option<i64>) -> Diagnosis
where
    I: IntoIterator<Item = (i64, JournalRecord)>,
{
    let mut s = Scanner::new(account, keep, since);
    for (ts, r) in records {
        s.push(ts, &r);
    }
    s.finish()
}

/// Reads `reader` from `since` (receiver time, µs) to its end and diagnoses `account`.
/// Damaged stretches are counted and skipped, as every journal reader does.
pub fn scan_journal(
    reader: &mut JournalReader,
    account: &str,
    since: Option<i64>,
    keep: usize,
) -> Result<Diagnosis, DiagError> {
    if !valid_account(account) {
        return Err(DiagError::InvalidAccount(account.to_string()));
    }
    if let Some(s) = since {
        reader.seek_time(s)?;
    }
    let mut scanner = Scanner::new(account, keep, since);
    loop {
        match reader.next_record() {
            Ok(Some(rec)) => {
                if since.is_some_and(|s| rec.ts_micros < s) {
                    continue;
                }
                match JournalRecord::from_bytes(&rec.payload) {
                    Ok(r) => scanner.push(rec.ts_micros, &r),
                    Err(_) => scanner.unreadable(),
                }
            }
            Ok(None) => break,
            Err(JournalError::Corrupt { .. }) => scanner.unreadable(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(scanner.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codes::{Category, EventClass, Qualifier};
    use crate::protocol::encode::{encode, FrameSpec};
    use crate::protocol::text::escape;
    use time::macros::utc_datetime;

    const T: UtcDateTime = utc_datetime!(2024-03-01 12:00:00);

    fn us(t: UtcDateTime) -> i64 {
        crate::station::micros(t)
    }

    fn frame_record(
        account: &str,
        line: &str,
        at: UtcDateTime,
        panel: Option<UtcDateTime>,
        outcome: &str,
        reason: &str,
    ) -> (i64, JournalRecord) {
        let mut raw = Vec::new();
        let spec = FrameSpec {
            token: "NULL",
            seq: "0001",
            receiver: None,
            line,
            account,
            data: b"",
            ext: &[],
            timestamp: panel,
            form: crate::protocol::dc09::CrcForm::Ascii,
        };
        encode(
            &spec,
            None,
            &[0; crate::protocol::crypto::MAX_PAD],
            &mut raw,
        );
        (
            us(at),
            JournalRecord {
                kind: RecordKind::Frame,
                at: rfc3339(at),
                transport: Some("tcp".into()),
                peer: Some("10.0.0.1:5000".into()),
                raw: Some(escape(&raw)),
                reply: Some("\\n...ACK\\r".into()),
                outcome: Some(outcome.into()),
                reason: Some(reason.into()),
                account: Some(account.into()),
                key: None,
                events: Vec::new(),
            },
        )
    }

    fn supervision(account: &str, code: &str, path: &str, at: UtcDateTime) -> (i64, JournalRecord) {
        let mut e = Event::internal(
            format!("{code}{path}").into(),
            at,
            "r",
            account,
            code,
            (
                Qualifier::New,
                EventClass::Supervision,
                Category::Communication,
            ),
            format!("{code} {path}"),
        );
        e.path = Some(path.into());
        (us(at), JournalRecord::internal(rfc3339(at), vec![e]))
    }

    #[test]
    fn accounts_are_validated() {
        assert!(valid_account("1234"));
        assert!(valid_account("ABCDEF0123456789"));
        assert!(!valid_account(""));
        assert!(!valid_account("ABCDEF01234567890"));
        assert!(!valid_account("12/34"));
        assert!(!valid_account("12 34"));
        assert!(!valid_account("é1"));
    }

    #[test]
    fn frames_reasons_paths_and_skew() {
        let s = time::Duration::seconds;
        let recs = vec![
            frame_record("1234", "1", T, Some(T + s(5)), "ack", "null"),
            frame_record("9999", "1", T, None, "ack", "null"),
            frame_record("1234", "2", T + s(10), Some(T + s(3)), "ack", "null"),
            frame_record("1234", "1", T + s(20), None, "nak", "decrypt"),
            frame_record("1234", "1", T + s(30), Some(T - s(60)), "nak", "timestamp"),
            frame_record("1234", "1", T + s(40), None, "nak", "decrypt"),
            supervision("1234", CODE_PATH_FAIL, "L2", T + s(50)),
            supervision("9999", CODE_COMM_FAIL, "*", T + s(50)),
        ];
        let d = diagnose("1234", recs, 3, None);
        assert_eq!(d.frames, 5);
        assert_eq!(d.outcomes.get("ack"), Some(&2));
        assert_eq!(d.outcomes.get("nak"), Some(&3));
        assert_eq!(d.decrypt_failures, 2);
        assert_eq!(
            d.reasons.first(),
            Some(&ReasonCount {
                outcome: "nak".into(),
                reason: "decrypt".into(),
                count: 2
            })
        );
        // Last three frames, oldest first.
        assert_eq!(d.last_frames.len(), 3);
        assert_eq!(d.last_frames[0].at, rfc3339(T + s(20)));
        assert_eq!(d.last_frames[2].reason.as_deref(), Some("decrypt"));
        assert_eq!(d.last_frames[2].path.as_deref(), Some("L1"));
        // Paths: L1 last heard at T (its later frames were refused), L2 failed.
        assert_eq!(d.paths.len(), 2);
        assert_eq!(d.paths[0].path, "L1");
        assert_eq!(d.paths[0].last_heard.as_deref(), Some(rfc3339(T).as_str()));
        assert_eq!(d.paths[0].frames, 4);
        assert_eq!(d.paths[1].path, "L2");
        assert!(d.paths[1].failed_since.is_some());
        assert_eq!(d.last_heard, Some(rfc3339(T + s(10)).to_string()));
        // Skew from clear timestamps: +5, -7, -90.
        let k = d.clock_skew.unwrap();
        assert_eq!(
            (k.samples, k.min_s, k.median_s, k.max_s),
            (3, -90.0, -7.0, 5.0)
        );
        assert_eq!(d.supervision_counts.get(CODE_PATH_FAIL), Some(&1));
        assert_eq!(d.supervision.len(), 1);
    }

    #[test]
    fn restores_clear_failures() {
        let s = time::Duration::seconds;
        let recs = vec![
            supervision("1", CODE_COMM_FAIL, "L1,L2", T),
            supervision("1", CODE_COMM_RESTORE, "L1", T + s(5)),
            supervision("1", CODE_PATH_FAIL, "L2", T + s(9)),
        ];
        let d = diagnose("1", recs, 20, Some(us(T)));
        let failed: Vec<_> = d
            .paths
            .iter()
            .filter(|p| p.failed_since.is_some())
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(failed, ["L2"]);
        assert_eq!(d.supervision_counts.len(), 3);
        assert_eq!(d.since, Some(rfc3339(T).to_string()));
    }

    #[test]
    fn garbage_never_panics() {
        let (ts, mut r) = frame_record("1", "1", T, None, "ack", "null");
        for raw in [
            "",
            "\\n",
            "\\n\"NULL\"",
            "\\xZZ",
            "\n_99:99:99,99-99-9999\r",
        ] {
            r.raw = Some(raw.into());
            let _ = diagnose("1", vec![(ts, r.clone())], 20, None);
        }
        r.raw = None;
        r.outcome = None;
        let _ = diagnose(
            "1",
            vec![(i64::MIN, r.clone()), (i64::MAX, r)],
            0,
            Some(i64::MIN),
        );
        assert_eq!(frame_timestamp(b"x_12:00"), None);
    }
}
