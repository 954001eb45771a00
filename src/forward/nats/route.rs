//! Where each event goes on the bus: its subject, `<prefix>.events.<account>.<class>`,
//! and what of a journal record is published (the events' JSON, sliced out of the record).
//!
//! Account and class are made safe as NATS tokens (anything outside `[A-Za-z0-9_-]`
//! becomes `_`), so no input can make a subject with wildcards or extra levels.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::journal::Lsn;
use crate::receiver::record::{self, Routed};

/// Makes `s` a single NATS subject token.
pub fn token(s: &str) -> String {
    let mut out = String::with_capacity(s.len().max(1));
    push_token(&mut out, s);
    out
}

/// Appends `s` to `out` as a single NATS subject token: anything outside
/// `[A-Za-z0-9_-]` becomes `_`, and an empty string `_`.
fn push_token(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('_');
        return;
    }
    let plain = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if s.bytes().all(plain) {
        // Account numbers and class names, nearly always: no character to replace.
        out.push_str(s);
        return;
    }
    out.extend(s.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            c
        } else {
            '_'
        }
    }));
}

/// `<prefix>.events.<account>.<class>`, built without the formatting machinery and the
/// two intermediate token strings: it runs once per published event.
pub(super) fn subject(prefix: &str, account: &str, class: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + account.len() + class.len() + 9);
    s.push_str(prefix);
    s.push_str(".events.");
    push_token(&mut s, account);
    s.push('.');
    push_token(&mut s, class);
    s
}

/// What the sink reads of a journal record: the events as raw JSON, published verbatim.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    events: Vec<&'a RawValue>,
}

/// What the sink reads of an event: enough for its subject and id.
#[derive(Deserialize)]
struct Routing<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(borrow)]
    account: &'a str,
    #[serde(borrow)]
    class: &'a str,
}

/// The events of a journal payload to publish: from the record's index, or by parsing
/// a record written before the index existed. What cannot be read is logged and skipped
/// (the record still counts as forwarded: retrying would not make it readable).
pub(super) fn routes(payload: &[u8], lsn: Lsn) -> Vec<Routed<'_>> {
    match record::routed(payload) {
        Some(Ok(events)) => events,
        Some(Err(e)) => {
            tracing::warn!(lsn, error = %e, "journal record not published");
            Vec::new()
        }
        None => legacy_routes(payload, lsn),
    }
}

fn legacy_routes(payload: &[u8], lsn: Lsn) -> Vec<Routed<'_>> {
    // UTF-8 is checked once for the whole record; parsing from `&str` then skips the
    // per-string check that parsing from bytes does for borrowed values.
    let Some(text) = std::str::from_utf8(payload).ok() else {
        return Vec::new();
    };
    let events = serde_json::from_str::<Envelope<'_>>(text)
        .map(|e| e.events)
        .unwrap_or_default();
    let base = text.as_ptr() as usize;
    events
        .into_iter()
        .filter_map(|raw| match serde_json::from_str::<Routing<'_>>(raw.get()) {
            Ok(route) => {
                // The raw value borrows from `text`: its offset is its address minus the base.
                let start = (raw.get().as_ptr() as usize).checked_sub(base)?;
                Some(Routed {
                    id: route.id,
                    account: route.account,
                    class: route.class,
                    json: start..start + raw.get().len(),
                })
            }
            Err(_) => {
                tracing::warn!(lsn, "event without id, account or class: not published");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_cannot_be_steered_by_input() {
        assert_eq!(
            subject("tocsin", "1234", "alarm"),
            "tocsin.events.1234.alarm"
        );
        assert_eq!(subject("p", "a.b>*", ""), "p.events.a_b__._");
        assert_eq!(token("x y"), "x_y");
    }
}
