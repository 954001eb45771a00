//! `/`: the reception chain at a glance, then what needs attention.
//!
//! Order: a banner that says "all clear" or lists what is wrong; the chain (receiver,
//! listeners, journal, sinks, supervision, and any section the status document gained);
//! the last hour as charts; the latest alarms; the sites in failure, longest first (the
//! first [`FAILURES_LISTED`], then a count, as `tocsin status` prints them), last because
//! the list is long and the banner links to it.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::chart::{stacked_bars, Series};
use super::fields::{rows, value_html};
use super::html::{clock_text, duration_text, map_link, time_text, unix_of, web_link, Esc};
use super::{document, Chrome};

/// Sites in failure listed one by one; the rest are counted (`/status` has them all).
pub const FAILURES_LISTED: usize = 50;

/// Top-level fields drawn by name; any other gets a section of its own.
const KNOWN: &[&str] = &[
    "receiver",
    "version",
    "uptime_seconds",
    "ready",
    "now",
    "now_unix",
    "listeners",
    "connections_open",
    "journal",
    "accounts",
    "supervision",
    "last_hour",
    "last_hour_minutes",
    "latest_alarms",
    "sinks",
    "bus",
    "automation",
];

const REPLIES: [(&str, &str, &str); 4] = [
    ("ack", "ACK", "s-ack"),
    ("nak", "NAK", "s-nak"),
    ("duh", "DUH", "s-duh"),
    ("none", "unanswered", "s-none"),
];

/// The colour class of an event class; one the page does not know gets a neutral one.
fn class_css(class: &str) -> &'static str {
    match class {
        "alarm" => "s-alarm",
        "restore" => "s-restore",
        "trouble" => "s-trouble",
        "supervisory" => "s-supervisory",
        "open_close" => "s-open_close",
        "bypass" => "s-bypass",
        "test" => "s-test",
        "supervision" => "s-supervision",
        "other" => "s-other",
        _ => "s-x",
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn u(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}

/// Characters of a panel's text shown in the alarm list (the event has it all).
const TEXT_SHOWN: usize = 100;
/// Characters of a verification link shown as its text (the link itself is whole).
const LINK_SHOWN: usize = 60;

/// The first `max` characters of `t`, and "…" when there were more.
fn short(t: &str, max: usize) -> String {
    match t.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", t.get(..i).unwrap_or(t)),
        None => t.to_string(),
    }
}

fn or_dash(t: Option<&str>) -> String {
    t.map_or_else(|| "—".to_string(), |t| Esc(t).to_string())
}

/// A link to the site's page when the account is one (it came from a panel).
fn account_link(account: &str) -> String {
    if crate::diag::valid_account(account) {
        format!("<a href=\"/site/{0}\">{0}</a>", Esc(account))
    } else {
        Esc(account).to_string()
    }
}

/// The page of `data` (the page document: `/status` and more).
pub fn overview(data: &Value, chrome: &Chrome<'_>) -> String {
    let empty = Map::new();
    let top = data.as_object().unwrap_or(&empty);
    let receiver = s(data, "receiver").unwrap_or("tocsin");
    let trouble = attention(data);
    let mut o = String::with_capacity(32 * 1024);
    o.push_str("<main>");
    let _ = write!(
        o,
        "<header><h1>tocsin · {}</h1><p class=\"meta\">version {} · up {} · {} · page of {}</p>",
        Esc(receiver),
        or_dash(s(data, "version")),
        u(data, "uptime_seconds").map_or_else(|| "—".into(), duration_text),
        match data.get("ready").and_then(Value::as_bool) {
            Some(true) => "<span class=\"ok\">READY</span>",
            Some(false) => "<span class=\"bad\">NOT READY</span>",
            None => "readiness unknown",
        },
        s(data, "now").map_or_else(|| "—".into(), |t| Esc(&time_text(t)).to_string()),
    );
    let failed = failures(data).len();
    let _ = write!(
        o,
        "<nav><a href=\"#chain\">Chain</a><a href=\"#hour\">Last hour</a>\
         <a href=\"#alarms\">Latest alarms</a>\
         <a href=\"#failures\">Sites in failure ({failed})</a></nav></header>"
    );
    if trouble.is_empty() {
        o.push_str(
            "<div class=\"banner\" id=\"banner\">All clear: ready, journal writable, \
             sinks connected, no site in failure.</div>",
        );
    } else {
        o.push_str("<div class=\"banner attention\" id=\"banner\">Needs attention:<ul>");
        for t in &trouble {
            let _ = write!(o, "<li>{t}</li>");
        }
        o.push_str("</ul></div>");
    }

    o.push_str("<h2 id=\"chain\">Reception chain</h2><div class=\"cards\">");
    receiver_card(&mut o, data);
    journal_card(&mut o, data);
    sinks_card(&mut o, data);
    supervision_card(&mut o, data);
    // Sections the page does not know by name: objects and lists get a card each, plain
    // values share one.
    let mut plain = Map::new();
    for (k, v) in top {
        if KNOWN.contains(&k.as_str()) {
            continue;
        }
        match v {
            Value::Object(m) => {
                let _ = write!(
                    o,
                    "<section class=\"card\"><h3>{}</h3><table>",
                    Esc(&super::fields::label(k))
                );
                rows(&mut o, m, &[]);
                o.push_str("</table></section>");
            }
            Value::Array(_) => {
                let _ = write!(
                    o,
                    "<section class=\"card\"><h3>{}</h3>{}</section>",
                    Esc(&super::fields::label(k)),
                    value_html(k, v, 0)
                );
            }
            _ => {
                plain.insert(k.clone(), v.clone());
            }
        }
    }
    if !plain.is_empty() {
        o.push_str("<section class=\"card\"><h3>Other</h3><table>");
        rows(&mut o, &plain, &[]);
        o.push_str("</table></section>");
    }
    o.push_str("</div>");

    last_hour_section(&mut o, data);
    alarms_section(&mut o, data);
    failures_section(&mut o, data);
    o.push_str("</main>");

    let title = if trouble.is_empty() {
        format!("tocsin · {receiver} · all clear")
    } else {
        format!("tocsin · {receiver} · {} to check", trouble.len())
    };
    document(chrome, &title, &o, true)
}

/// What is wrong, one line each (HTML).
fn attention(data: &Value) -> Vec<String> {
    let mut t = Vec::new();
    if data.get("ready").and_then(Value::as_bool) == Some(false) {
        t.push("the receiver is <b>not ready</b>".to_string());
    }
    if data.pointer("/journal/writable").and_then(Value::as_bool) == Some(false) {
        t.push("the journal is <b>not writable</b>: frames get a NAK; restart needed".into());
    }
    let failed = data
        .pointer("/supervision/failed")
        .and_then(Value::as_u64)
        .unwrap_or(failures(data).len() as u64);
    if failed > 0 {
        t.push(format!(
            "<a href=\"#failures\"><b>{failed}</b> supervised path{} in failure</a>",
            if failed == 1 { "" } else { "s" }
        ));
    }
    let mut disconnected = Vec::new();
    for sink in data
        .get("sinks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if sink.get("connected").and_then(Value::as_bool) == Some(false) {
            disconnected.push(s(sink, "name").unwrap_or("?").to_string());
        }
    }
    if data.pointer("/bus/connected").and_then(Value::as_bool) == Some(false) {
        disconnected.push("bus".into());
    }
    for a in data
        .get("automation")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if a.get("connected").and_then(Value::as_bool) == Some(false) {
            disconnected.push(format!("automation {}", s(a, "name").unwrap_or("?")));
        }
    }
    disconnected.sort();
    disconnected.dedup();
    if !disconnected.is_empty() {
        t.push(format!(
            "<b>disconnected</b>: {}",
            Esc(&disconnected.join(", "))
        ));
    }
    t
}

fn failures(data: &Value) -> &[Value] {
    data.pointer("/supervision/sites_in_failure")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn receiver_card(o: &mut String, data: &Value) {
    o.push_str("<section class=\"card\" id=\"listeners\"><h3>Receiver and listeners</h3><table>");
    let _ = write!(
        o,
        "<tr><th>receiver</th><td>{}</td></tr><tr><th>version</th><td>{}</td></tr>",
        or_dash(s(data, "receiver")),
        or_dash(s(data, "version"))
    );
    let listeners = data.get("listeners").cloned().unwrap_or(Value::Null);
    for t in ["tcp", "udp"] {
        let list: Vec<String> = listeners
            .get(t)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|x| Esc(x).to_string())
                    .collect()
            })
            .unwrap_or_default();
        let _ = write!(
            o,
            "<tr><th>{}</th><td>{}</td></tr>",
            t.to_uppercase(),
            if list.is_empty() {
                "<span class=\"warn\">none</span>".to_string()
            } else {
                list.join("<br>")
            }
        );
    }
    if let Some(m) = listeners.as_object() {
        rows(o, m, &["tcp", "udp"]);
    }
    for k in ["connections_open", "accounts"] {
        if let Some(v) = data.get(k) {
            let _ = write!(
                o,
                "<tr><th>{}</th><td>{}</td></tr>",
                super::fields::label(k),
                value_html(k, v, 0)
            );
        }
    }
    o.push_str("</table></section>");
}

fn journal_card(o: &mut String, data: &Value) {
    let j = data.get("journal").cloned().unwrap_or(Value::Null);
    o.push_str("<section class=\"card\" id=\"journal\"><h3>Journal</h3><table>");
    let _ = write!(
        o,
        "<tr><th>state</th><td>{}</td></tr>",
        match j.get("writable").and_then(Value::as_bool) {
            Some(true) => "<span class=\"ok\">writable</span>",
            Some(false) => "<span class=\"bad\">NOT WRITABLE (restart needed)</span>",
            None => "unknown",
        }
    );
    for (k, name) in [
        ("size_bytes", "size"),
        ("durable_lsn", "durable LSN"),
        ("last_fsync_ms", "last fsync"),
    ] {
        let v = j.get(k).map_or_else(|| "—".into(), |v| value_html(k, v, 0));
        let _ = write!(o, "<tr><th>{name}</th><td>{v}</td></tr>");
    }
    if let Some(m) = j.as_object() {
        rows(
            o,
            m,
            &["writable", "size_bytes", "durable_lsn", "last_fsync_ms"],
        );
    }
    o.push_str("</table></section>");
}

fn connected_text(v: &Value) -> String {
    match v.get("connected").and_then(Value::as_bool) {
        Some(true) => "<span class=\"ok\">connected</span>".into(),
        Some(false) => "<span class=\"bad\">DISCONNECTED</span>".into(),
        None => "running".into(),
    }
}

fn sinks_card(o: &mut String, data: &Value) {
    o.push_str("<section class=\"card\" id=\"sinks\"><h3>Sinks</h3>");
    let sinks = data.get("sinks").and_then(Value::as_array);
    let bus = data.get("bus").filter(|b| b.is_object());
    let automation = data.get("automation").and_then(Value::as_array);
    if sinks.is_none_or(Vec::is_empty) && bus.is_none() && automation.is_none_or(Vec::is_empty) {
        o.push_str("<p class=\"note\">no sink</p>");
    }
    if let Some(sinks) = sinks.filter(|s| !s.is_empty()) {
        o.push_str("<table>");
        for sink in sinks.iter().take(super::fields::LIST_ITEMS) {
            let _ = write!(
                o,
                "<tr><th>{}</th><td>{}, backlog {}</td></tr>",
                or_dash(s(sink, "name")),
                connected_text(sink),
                u(sink, "backlog").map_or_else(|| "—".into(), |b| b.to_string())
            );
        }
        o.push_str("</table>");
    }
    if let Some(bus) = bus {
        let _ = write!(
            o,
            "<h3>Bus</h3><table><tr><th>state</th><td>{}</td></tr>\
             <tr><th>server</th><td>{}</td></tr><tr><th>backlog</th><td>{}</td></tr>",
            connected_text(bus),
            or_dash(s(bus, "server")),
            bus.get("backlog")
                .map_or_else(|| "—".into(), |v| value_html("backlog", v, 0)),
        );
        if let Some(m) = bus.as_object() {
            rows(o, m, &["connected", "server", "backlog"]);
        }
        o.push_str("</table>");
    }
    if let Some(list) = automation.filter(|a| !a.is_empty()) {
        o.push_str("<h3>Automation outputs</h3><table>");
        for a in list.iter().take(super::fields::LIST_ITEMS) {
            let extra: Vec<String> = a
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| !matches!(k.as_str(), "name" | "connected" | "backlog"))
                .map(|(k, v)| format!("{} {}", Esc(&super::fields::label(k)), value_html(k, v, 1)))
                .collect();
            let _ = write!(
                o,
                "<tr><th>{}</th><td>{}, backlog {}{}</td></tr>",
                or_dash(s(a, "name")),
                connected_text(a),
                a.get("backlog")
                    .map_or_else(|| "—".into(), |v| value_html("backlog", v, 1)),
                if extra.is_empty() {
                    String::new()
                } else {
                    format!("; {}", extra.join("; "))
                }
            );
        }
        o.push_str("</table>");
    }
    o.push_str("</section>");
}

fn supervision_card(o: &mut String, data: &Value) {
    let sup = data.get("supervision").cloned().unwrap_or(Value::Null);
    o.push_str("<section class=\"card\" id=\"supervision\"><h3>Supervision</h3><table>");
    let failed = u(&sup, "failed").unwrap_or(failures(data).len() as u64);
    let _ = write!(
        o,
        "<tr><th>paths supervised</th><td>{}</td></tr><tr><th>in failure</th><td>{}</td></tr>",
        u(&sup, "paths").map_or_else(|| "—".into(), |p| p.to_string()),
        if failed > 0 {
            format!("<span class=\"bad\">{failed}</span>")
        } else {
            "<span class=\"ok\">0</span>".into()
        }
    );
    if let Some(m) = sup.as_object() {
        rows(o, m, &["paths", "failed", "sites_in_failure"]);
    }
    o.push_str("</table></section>");
}

fn failures_section(o: &mut String, data: &Value) {
    let list = failures(data);
    let now = u(data, "now_unix");
    let _ = write!(
        o,
        "<h2 id=\"failures\">Sites in failure ({})</h2>",
        list.len()
    );
    if list.is_empty() {
        o.push_str("<p class=\"ok\">None: every supervised path reported within its interval.</p>");
        return;
    }
    o.push_str(
        "<p class=\"note\">Longest in failure first.</p><div class=\"scroll\">\
         <table class=\"list\" id=\"failure-list\"><tr><th>account</th><th>path</th>\
         <th>since (UTC)</th><th>for</th></tr>",
    );
    for f in list.iter().take(FAILURES_LISTED) {
        let since = s(f, "since");
        let for_how_long = match (now, since.and_then(unix_of)) {
            (Some(now), Some(t)) => {
                duration_text(now.saturating_sub(u64::try_from(t).unwrap_or(0)))
            }
            _ => "—".into(),
        };
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{for_how_long}</td></tr>",
            s(f, "account").map_or_else(|| "—".into(), account_link),
            or_dash(s(f, "path")),
            since.map_or_else(|| "—".into(), |t| Esc(&time_text(t)).to_string()),
        );
    }
    o.push_str("</table></div>");
    if list.len() > FAILURES_LISTED {
        let _ = write!(
            o,
            "<p class=\"more\">… and {} more (<code>tocsin status --json</code> and \
             <a href=\"/status\">/status</a> list every one).</p>",
            list.len() - FAILURES_LISTED
        );
    }
}

fn last_hour_section(o: &mut String, data: &Value) {
    o.push_str("<h2 id=\"hour\">Last hour</h2>");
    let hour = data.get("last_hour").cloned().unwrap_or(Value::Null);
    let minutes: &[Value] = data
        .get("last_hour_minutes")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    // Classes in the order the hour's totals give them, then any a minute adds.
    let mut classes: Vec<String> = hour
        .get("events")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for m in minutes {
        for k in m
            .get("events")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            if !classes.contains(k) && classes.len() < 16 {
                classes.push(k.clone());
            }
        }
    }
    let _ = write!(
        o,
        "<p class=\"note\">{} frames: {} ACK, {} NAK, {} DUH, {} unanswered.</p><div class=\"charts\">",
        u(&hour, "frames").map_or_else(|| "—".into(), |n| n.to_string()),
        u(&hour, "ack").unwrap_or(0),
        u(&hour, "nak").unwrap_or(0),
        u(&hour, "duh").unwrap_or(0),
        u(&hour, "none").unwrap_or(0),
    );
    if minutes.is_empty() {
        // No series: the hour's totals, one bar each.
        let series: Vec<Series<'_>> = REPLIES
            .iter()
            .enumerate()
            .map(|(i, (key, name, class))| {
                let mut values = vec![0; REPLIES.len()];
                if let Some(v) = values.get_mut(i) {
                    *v = u(&hour, key).unwrap_or(0);
                }
                Series {
                    name,
                    class,
                    values,
                }
            })
            .collect();
        let ticks: Vec<(usize, String)> = REPLIES
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.1.to_string()))
            .collect();
        stacked_bars(
            o,
            "frames-chart",
            "Frames in the last hour, by reply",
            &series,
            REPLIES.len(),
            &ticks,
            |i| {
                let (key, name, _) = REPLIES.get(i).copied().unwrap_or(("", "", ""));
                format!("{}: {}", name, u(&hour, key).unwrap_or(0))
            },
        );
    } else {
        let starts: Vec<u64> = minutes.iter().map(|m| u(m, "start").unwrap_or(0)).collect();
        let ticks: Vec<(usize, String)> = (0..minutes.len())
            .filter(|i| i % 15 == 0 || i + 1 == minutes.len())
            .map(|i| (i, clock_text(starts.get(i).copied().unwrap_or(0))))
            .collect();
        let series: Vec<Series<'_>> = REPLIES
            .iter()
            .map(|(key, name, class)| Series {
                name,
                class,
                values: minutes.iter().map(|m| u(m, key).unwrap_or(0)).collect(),
            })
            .collect();
        stacked_bars(
            o,
            "frames-chart",
            "Frames per minute, by reply (UTC)",
            &series,
            minutes.len(),
            &ticks,
            |i| {
                let m = minutes.get(i).cloned().unwrap_or(Value::Null);
                let parts: Vec<String> = REPLIES
                    .iter()
                    .filter_map(|(key, name, _)| {
                        u(&m, key).filter(|&n| n > 0).map(|n| format!("{n} {name}"))
                    })
                    .collect();
                format!(
                    "{}: {}",
                    clock_text(starts.get(i).copied().unwrap_or(0)),
                    parts.join(", ")
                )
            },
        );
        let event_series: Vec<Series<'_>> = classes
            .iter()
            .map(|c| Series {
                name: c.as_str(),
                class: class_css(c),
                values: minutes
                    .iter()
                    .map(|m| m.get("events").and_then(|e| u(e, c)).unwrap_or(0))
                    .collect(),
            })
            .filter(|s| s.values.iter().any(|&v| v > 0))
            .collect();
        stacked_bars(
            o,
            "events-chart",
            "Events per minute, by class (UTC)",
            &event_series,
            minutes.len(),
            &ticks,
            |i| {
                let m = minutes.get(i).cloned().unwrap_or(Value::Null);
                let parts: Vec<String> = classes
                    .iter()
                    .filter_map(|c| {
                        m.get("events")
                            .and_then(|e| u(e, c))
                            .filter(|&n| n > 0)
                            .map(|n| format!("{n} {c}"))
                    })
                    .collect();
                format!(
                    "{}: {}",
                    clock_text(starts.get(i).copied().unwrap_or(0)),
                    parts.join(", ")
                )
            },
        );
    }
    o.push_str("</div>");
    if let Some(events) = hour.get("events").and_then(Value::as_object) {
        let parts: Vec<String> = events
            .iter()
            .filter_map(|(k, v)| {
                v.as_u64()
                    .filter(|&n| n > 0)
                    .map(|n| format!("{n} {}", Esc(k)))
            })
            .collect();
        let _ = write!(
            o,
            "<p class=\"note\">Events: {}.</p>",
            if parts.is_empty() {
                "none".to_string()
            } else {
                parts.join(", ")
            }
        );
    }
}

fn alarms_section(o: &mut String, data: &Value) {
    o.push_str("<h2 id=\"alarms\">Latest alarms</h2>");
    let Some(list) = data.get("latest_alarms").and_then(Value::as_array) else {
        o.push_str("<p class=\"note\">not kept by this receiver</p>");
        return;
    };
    if list.is_empty() {
        o.push_str("<p class=\"note\">none since the receiver started</p>");
        return;
    }
    o.push_str(
        "<p class=\"note\">Newest first, since the receiver started; consoles handle them.</p>\
         <div class=\"scroll\"><table class=\"list\" id=\"alarm-list\"><tr><th>received (UTC)</th>\
         <th>account</th><th>code</th><th>category</th><th>zone</th><th>what</th>\
         <th>where</th><th>verification</th></tr>",
    );
    for a in list.iter().take(super::fields::LIST_ITEMS) {
        let what: Vec<String> = ["text", "alarm_text"]
            .iter()
            .filter_map(|k| s(a, k).filter(|t| !t.is_empty()))
            .map(|t| Esc(&short(t, TEXT_SHOWN)).to_string())
            .collect();
        let mut place: Vec<String> = ["site", "building", "room", "location"]
            .iter()
            .filter_map(|k| s(a, k).filter(|t| !t.is_empty()))
            .map(|t| Esc(&short(t, TEXT_SHOWN)).to_string())
            .collect();
        match (s(a, "longitude"), s(a, "latitude")) {
            (Some(lon), Some(lat)) => match map_link(lon, lat) {
                Some(link) => place.push(format!(
                    "<a class=\"map\" href=\"{}\" rel=\"noopener noreferrer\" target=\"_blank\">map</a>",
                    Esc(&link)
                )),
                None => place.push(format!(
                    "{} {}",
                    Esc(&short(lon, TEXT_SHOWN)),
                    Esc(&short(lat, TEXT_SHOWN))
                )),
            },
            (Some(one), None) | (None, Some(one)) => {
                place.push(Esc(&short(one, TEXT_SHOWN)).to_string())
            }
            (None, None) => {}
        }
        let verification = match s(a, "verification") {
            Some(v) => match web_link(v) {
                Some(link) => format!(
                    "<a class=\"verify\" href=\"{}\" rel=\"noopener noreferrer\" target=\"_blank\">{}</a>",
                    Esc(link),
                    Esc(&short(link, LINK_SHOWN))
                ),
                None => format!("<code>{}</code>", Esc(&short(v, TEXT_SHOWN))),
            },
            None => "—".into(),
        };
        let zone = [
            s(a, "partition").map(|p| format!("area {}", Esc(p))),
            s(a, "zone").map(|z| Esc(z).to_string()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
        let _ = write!(
            o,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{verification}</td></tr>",
            s(a, "received_at").map_or_else(|| "—".into(), |t| Esc(&time_text(t)).to_string()),
            s(a, "account").map_or_else(|| "—".into(), account_link),
            or_dash(s(a, "code")),
            or_dash(s(a, "category")),
            if zone.is_empty() { "—".into() } else { zone },
            if what.is_empty() { "—".into() } else { what.join("<br>") },
            if place.is_empty() { "—".into() } else { place.join("<br>") },
        );
    }
    o.push_str("</table></div>");
    if list.len() > super::fields::LIST_ITEMS {
        let _ = write!(
            o,
            "<p class=\"more\">… and {} more</p>",
            list.len() - super::fields::LIST_ITEMS
        );
    }
}
