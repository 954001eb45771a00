//! Any JSON value as readable HTML, for the fields the pages do not know by name.
//!
//! The status document grows (new sinks, clock checks, disk space): a field the page has
//! no special rendering for still shows, formatted from its name (`…_bytes` as a size,
//! `…_ms` as milliseconds, `…_seconds` as a duration) and cut to a bounded size, so
//! neither an absent field nor a new one (however large) breaks the page or its weight.

use std::fmt::Write;

use serde_json::{Map, Value};

use super::html::{bytes_text, duration_text, looks_like_time, time_text, Esc};

/// Items of an array shown before "… and N more".
pub const LIST_ITEMS: usize = 20;
/// Columns of a table made from an array of objects.
const COLUMNS: usize = 8;
/// Characters of a nested value written as JSON.
const JSON_CHARS: usize = 200;

/// `disk_free_bytes` → "disk free bytes" (the unit shows in the value).
pub fn label(key: &str) -> String {
    let k = key
        .strip_suffix("_bytes")
        .or_else(|| key.strip_suffix("_ms"))
        .or_else(|| key.strip_suffix("_seconds"))
        .unwrap_or(key);
    k.replace('_', " ")
}

/// A yes/no that matters: green when true, red when false.
fn flag(yes: bool) -> &'static str {
    if yes {
        "<span class=\"ok\">yes</span>"
    } else {
        "<span class=\"bad\">NO</span>"
    }
}

/// Keys whose `false` is trouble.
fn is_health_flag(key: &str) -> bool {
    matches!(
        key,
        "connected" | "writable" | "ready" | "ok" | "synchronized" | "synced" | "healthy" | "up"
    )
}

/// A number by its key's unit.
fn number(key: &str, v: &Value) -> String {
    let f = v.as_f64().unwrap_or(0.0);
    if key.ends_with("_bytes") || key == "bytes" {
        bytes_text(f)
    } else if key.ends_with("_ms") {
        format!("{f:.1} ms")
    } else if key.ends_with("_seconds") {
        if f >= 0.0 && f.fract() == 0.0 {
            duration_text(f as u64)
        } else {
            format!("{f:.3} s")
        }
    } else if v.is_f64() {
        format!("{f:.2}")
    } else {
        v.to_string()
    }
}

/// The value of `key` as HTML (escaped).
pub fn value_html(key: &str, v: &Value, depth: usize) -> String {
    match v {
        Value::Null => "—".to_string(),
        Value::Bool(b) if is_health_flag(key) => flag(*b).to_string(),
        Value::Bool(b) => (if *b { "yes" } else { "no" }).to_string(),
        Value::Number(_) => number(key, v),
        Value::String(s) if looks_like_time(s) => Esc(&time_text(s)).to_string(),
        Value::String(s) => Esc(s).to_string(),
        Value::Array(items) if items.is_empty() => "none".to_string(),
        Value::Array(items) if items.iter().all(|i| i.is_object()) && depth == 0 => {
            let mut o = String::new();
            table(&mut o, items);
            o
        }
        Value::Array(items) => {
            let mut parts: Vec<String> = items
                .iter()
                .take(LIST_ITEMS)
                .map(|i| value_html(key, i, depth + 1))
                .collect();
            if items.len() > LIST_ITEMS {
                parts.push(format!("… and {} more", items.len() - LIST_ITEMS));
            }
            parts.join(", ")
        }
        Value::Object(m) if depth == 0 => {
            let mut o = String::from("<dl class=\"sub\">");
            for (k, v) in m.iter().take(LIST_ITEMS) {
                let _ = write!(
                    o,
                    "<dt>{}</dt><dd>{}</dd>",
                    Esc(&label(k)),
                    value_html(k, v, depth + 1)
                );
            }
            o.push_str("</dl>");
            o
        }
        Value::Object(_) => {
            let text = v.to_string();
            let mut end = text.len().min(JSON_CHARS);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            let cut = text.get(..end).unwrap_or_default();
            let more = if end < text.len() { "…" } else { "" };
            format!("<code>{}{more}</code>", Esc(cut))
        }
    }
}

/// `<tr>` rows for every field of `obj` not in `skip`.
pub fn rows(o: &mut String, obj: &Map<String, Value>, skip: &[&str]) {
    for (k, v) in obj {
        if skip.contains(&k.as_str()) {
            continue;
        }
        let _ = write!(
            o,
            "<tr><th>{}</th><td>{}</td></tr>",
            Esc(&label(k)),
            value_html(k, v, 0)
        );
    }
}

/// A table of an array of objects: the first rows, the columns their keys make.
pub fn table(o: &mut String, items: &[Value]) {
    let mut columns: Vec<&str> = Vec::new();
    for item in items.iter().take(LIST_ITEMS) {
        if let Some(m) = item.as_object() {
            for k in m.keys() {
                if columns.len() < COLUMNS && !columns.contains(&k.as_str()) {
                    columns.push(k);
                }
            }
        }
    }
    o.push_str("<div class=\"scroll\"><table class=\"list\"><tr>");
    for c in &columns {
        let _ = write!(o, "<th>{}</th>", Esc(&label(c)));
    }
    o.push_str("</tr>");
    for item in items.iter().take(LIST_ITEMS) {
        o.push_str("<tr>");
        for c in &columns {
            let cell = item
                .get(*c)
                .map_or_else(|| "—".to_string(), |v| value_html(c, v, 1));
            let _ = write!(o, "<td>{cell}</td>");
        }
        o.push_str("</tr>");
    }
    o.push_str("</table></div>");
    if items.len() > LIST_ITEMS {
        let _ = write!(
            o,
            "<p class=\"more\">… and {} more</p>",
            items.len() - LIST_ITEMS
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_by_their_names() {
        assert_eq!(value_html("free_bytes", &json!(2048), 0), "2.0 KiB");
        assert_eq!(value_html("last_fsync_ms", &json!(0.25), 0), "0.2 ms");
        assert_eq!(value_html("uptime_seconds", &json!(3700), 0), "1h 1m");
        assert_eq!(value_html("offset_seconds", &json!(-0.5), 0), "-0.500 s");
        assert!(value_html("connected", &json!(false), 0).contains("bad"));
        assert_eq!(value_html("enabled", &json!(false), 0), "no");
        assert_eq!(value_html("x", &Value::Null, 0), "—");
        assert_eq!(value_html("x", &json!("<b>"), 0), "&lt;b&gt;");
        assert_eq!(
            value_html("at", &json!("2026-01-02T03:04:05.678Z"), 0),
            "2026-01-02 03:04:05Z"
        );
        assert_eq!(label("disk_free_bytes"), "disk free");
    }

    #[test]
    fn big_or_deep_values_are_bounded() {
        let long: Vec<u64> = (0..1000).collect();
        let h = value_html("ids", &json!(long), 0);
        assert!(h.ends_with("… and 980 more"), "{h}");
        let objs: Vec<Value> = (0..1000).map(|i| json!({"name": i, "x<": "<>"})).collect();
        let h = value_html("sinks", &json!(objs), 0);
        assert_eq!(h.matches("<tr>").count(), LIST_ITEMS + 1);
        assert!(h.contains("… and 980 more"));
        assert!(h.contains("x&lt;") && !h.contains("<>"));
        let deep = json!({"a": {"b": {"c": "x".repeat(1000)}}});
        let h = value_html("clock", &deep, 0);
        assert!(h.len() < 400, "{h}");
        let mut o = String::new();
        let obj = json!({"keep": 1, "skip": 2});
        rows(&mut o, obj.as_object().unwrap(), &["skip"]);
        assert_eq!(o, "<tr><th>keep</th><td>1</td></tr>");
    }
}
