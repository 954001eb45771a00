//! `/site/ACCOUNT`: what `tocsin diag ACCOUNT` tells, as a page: the site's frames and the
//! replies they got, its paths (and which are in failure), the reasons of its refusals,
//! its clock skew, decryption failures, supervision events and last frames.

use std::fmt::Write;

use serde_json::Value;

use super::fields::{rows, value_html};
use super::html::{time_text, Esc};
use super::{document, Chrome};

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn dash(t: Option<&str>) -> String {
    t.map_or_else(|| "—".into(), |t| Esc(t).to_string())
}

fn when(t: Option<&str>) -> String {
    t.map_or_else(|| "—".into(), |t| Esc(&time_text(t)).to_string())
}

fn count(v: &Value, key: &str) -> u64 {
    v.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn list<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// "3 ack, 1 nak" from `{ "ack": 3, "nak": 1 }`.
fn counts_text(v: Option<&Value>) -> String {
    let parts: Vec<String> = v
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, n)| format!("{} {}", value_html(k, n, 1), Esc(k)))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// The page of one account's diagnosis (the JSON of `/diag/ACCOUNT`).
pub fn site(diag: &Value, chrome: &Chrome<'_>) -> String {
    let account = s(diag, "account").unwrap_or("?");
    let failing: Vec<&Value> = list(diag, "paths")
        .iter()
        .filter(|p| p.get("failed_since").is_some_and(|f| !f.is_null()))
        .collect();
    let mut o = String::with_capacity(16 * 1024);
    let _ = write!(
        o,
        "<main><header><p class=\"meta\"><a href=\"/\">← start-of-shift page</a></p>\
         <h1>Site {}</h1><p class=\"meta\">since {} · paths from the {}</p></header>",
        Esc(account),
        when(s(diag, "since")),
        dash(s(diag, "paths_from")),
    );
    if failing.is_empty() {
        o.push_str("<div class=\"banner\" id=\"banner\">No path of this site is in supervision failure.</div>");
    } else {
        o.push_str("<div class=\"banner attention\" id=\"banner\">In supervision failure:<ul>");
        for p in &failing {
            let _ = write!(
                o,
                "<li>path <b>{}</b> since {}</li>",
                dash(s(p, "path")),
                when(s(p, "failed_since"))
            );
        }
        o.push_str("</ul></div>");
    }

    o.push_str("<div class=\"cards\"><section class=\"card\"><h3>Frames</h3><table>");
    let refused: Vec<String> = list(diag, "reasons")
        .iter()
        .filter(|r| s(r, "outcome") != Some("ack"))
        .map(|r| {
            format!(
                "{} {} ({})",
                count(r, "count"),
                Esc(&s(r, "outcome").unwrap_or("?").to_uppercase()),
                dash(s(r, "reason"))
            )
        })
        .collect();
    let skew = match diag.get("clock_skew").filter(|k| k.is_object()) {
        Some(k) => format!(
            "min {:+.0}s, median {:+.0}s, max {:+.0}s ({} samples)",
            k.get("min_s").and_then(Value::as_f64).unwrap_or(0.0),
            k.get("median_s").and_then(Value::as_f64).unwrap_or(0.0),
            k.get("max_s").and_then(Value::as_f64).unwrap_or(0.0),
            count(k, "samples")
        ),
        None => "unknown (no panel timestamps)".into(),
    };
    let _ = write!(
        o,
        "<tr><th>frames</th><td>{} ({})</td></tr><tr><th>events</th><td>{}</td></tr>\
         <tr><th>last heard</th><td>{}</td></tr><tr><th>refused</th><td>{}</td></tr>\
         <tr><th>decryption failures</th><td>{}</td></tr>\
         <tr><th>clock skew (panel − receiver)</th><td>{skew}</td></tr>",
        count(diag, "frames"),
        counts_text(diag.get("outcomes")),
        count(diag, "events"),
        when(s(diag, "last_heard")),
        if refused.is_empty() {
            "none".into()
        } else {
            refused.join(", ")
        },
        count(diag, "decrypt_failures"),
    );
    if let Some(m) = diag.as_object() {
        rows(
            &mut o,
            m,
            &[
                "account",
                "since",
                "paths_from",
                "frames",
                "outcomes",
                "reasons",
                "decrypt_failures",
                "events",
                "last_heard",
                "paths",
                "clock_skew",
                "supervision_counts",
                "supervision",
                "last_frames",
                "unreadable_records",
            ],
        );
    }
    o.push_str("</table></section>");

    o.push_str(
        "<section class=\"card\"><h3>Paths</h3><table class=\"list\" id=\"paths\"><tr>\
         <th>path</th><th>last heard</th><th>frames</th><th>failure</th></tr>",
    );
    let paths = list(diag, "paths");
    if paths.is_empty() {
        o.push_str("<tr><td colspan=\"4\">none seen</td></tr>");
    }
    for p in paths.iter().take(64) {
        let failure = match s(p, "failed_since") {
            Some(f) => format!("<span class=\"bad\">since {}</span>", Esc(&time_text(f))),
            None => "<span class=\"ok\">none</span>".into(),
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{failure}</td></tr>",
            dash(s(p, "path")),
            when(s(p, "last_heard")),
            count(p, "frames"),
        );
    }
    o.push_str("</table></section>");
    let _ = write!(
        o,
        "<section class=\"card\"><h3>Supervision</h3><p>{}</p>",
        counts_text(diag.get("supervision_counts"))
    );
    let sup = list(diag, "supervision");
    if !sup.is_empty() {
        o.push_str(
            "<table class=\"list\"><tr><th>at</th><th>code</th><th>path</th><th>what</th></tr>",
        );
        for e in sup.iter().rev().take(50) {
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                when(s(e, "at")),
                dash(s(e, "code")),
                dash(s(e, "path")),
                dash(s(e, "text")),
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section></div>");

    let frames = list(diag, "last_frames");
    let _ = write!(
        o,
        "<h2 id=\"frames\">Last {} frames</h2><p class=\"note\">Newest first; frames and replies \
         as journaled (escaped).</p><div class=\"scroll\"><table class=\"list\" id=\"frame-list\">\
         <tr><th>at (UTC)</th><th>transport</th><th>peer</th><th>path</th><th>reply</th>\
         <th>reason</th><th>frame / reply</th></tr>",
        frames.len()
    );
    for f in frames.iter().rev().take(100) {
        let outcome = s(f, "outcome").unwrap_or("-");
        let class = if outcome == "ack" { "ok" } else { "bad" };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td>\
             <td>{}</td><td><code>{}</code><br><code>{}</code></td></tr>",
            when(s(f, "at")),
            dash(s(f, "transport")),
            dash(s(f, "peer")),
            dash(s(f, "path")),
            Esc(&outcome.to_uppercase()),
            dash(s(f, "reason")),
            dash(s(f, "raw")),
            dash(s(f, "reply")),
        );
    }
    o.push_str("</table></div>");
    let unreadable = count(diag, "unreadable_records");
    if unreadable > 0 {
        let _ = write!(
            o,
            "<p class=\"warn\">{unreadable} journal records could not be read.</p>"
        );
    }
    o.push_str("</main>");
    let title = if failing.is_empty() {
        format!("tocsin · site {account}")
    } else {
        format!("tocsin · site {account} · in failure")
    };
    document(chrome, &title, &o, true)
}
