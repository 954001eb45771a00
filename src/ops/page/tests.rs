//! The pages from documents shaped like the daemon's, and from broken or unknown ones.

use serde_json::{json, Value};

use super::*;

const NOW: u64 = 1_800_000_000;

fn chrome() -> Chrome<'static> {
    Chrome {
        nonce: "n0nce",
        refresh_s: 10,
    }
}

fn failures(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "account": format!("{:06}", 100_000 + i),
                "path": "*",
                "since": "2027-01-15T07:00:00Z",
            })
        })
        .collect()
}

fn minutes() -> Vec<Value> {
    (0..60u64)
        .map(|i| {
            json!({
                "start": NOW / 60 * 60 - (59 - i) * 60,
                "ack": i * 3, "nak": i % 4, "duh": i % 7, "none": i % 5,
                "events": {"alarm": i % 3, "restore": i % 2, "trouble": 1, "supervisory": 1,
                           "open_close": 2, "bypass": 1, "test": 1, "supervision": i % 9, "other": 1},
            })
        })
        .collect()
}

fn alarm(i: usize) -> Value {
    json!({
        "id": format!("{i:032x}"),
        "received_at": "2027-01-15T08:59:58.123Z",
        "account": "1234",
        "code": "BA",
        "category": "burglary",
        "text": "Burglary alarm",
        "zone": "01",
        "alarm_text": "x".repeat(200),
        "location": "Ground floor",
        "longitude": "006E07.7777777",
        "latitude": "49N06.6666666",
        "verification": format!("https://cams.example.invalid/{}", "p".repeat(1000)),
    })
}

/// A station at its worst: 10 000 supervised paths, 1 000 in failure, every class in every
/// minute, a full list of alarms with the longest fields kept.
fn heavy() -> Value {
    json!({
        "receiver": "rx-1",
        "version": "0.1.0",
        "uptime_seconds": 86_400,
        "ready": true,
        "now": "2027-01-15T08:00:00Z",
        "now_unix": NOW,
        "listeners": {"tcp": ["0.0.0.0:9000"], "udp": ["0.0.0.0:9000"]},
        "journal": {"writable": true, "durable_lsn": 123_456, "records": 1, "bytes_written": 2,
                    "last_fsync_ms": 0.31, "size_bytes": 3_000_000_000u64},
        "accounts": 10_000,
        "supervision": {"paths": 10_000, "failed": 1000, "sites_in_failure": failures(1000)},
        "dedup_keys": 5,
        "last_hour": {"frames": 100, "ack": 90, "nak": 5, "duh": 3, "none": 2,
                      "events": {"alarm": 4, "restore": 0}},
        "connections_open": 9000,
        "last_hour_minutes": minutes(),
        "latest_alarms": (0..20).map(alarm).collect::<Vec<_>>(),
        "sinks": [{"name": "nats", "connected": true, "backlog": 0}],
    })
}

#[test]
fn the_heavy_station_fits_the_weight_bar_and_lists_the_first_50() {
    let page = overview(&heavy(), &chrome());
    assert!(page.len() < 100 * 1024, "{} bytes", page.len());
    assert_eq!(page.matches("<tr><td><a href=\"/site/").count(), 50);
    assert!(page.contains("href=\"/site/100000\""));
    assert!(page.contains("href=\"/site/100049\""));
    assert!(!page.contains("href=\"/site/100050\""));
    assert!(page.contains("… and 950 more"));
    assert!(page.contains("<b>1000</b> supervised paths in failure"));
    assert!(page.contains("<span class=\"ok\">writable</span>"));
    assert!(page.contains("2.8 GiB"));
    assert!(page.contains("<td>1h 0m</td>"));
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 2);
    assert!(page.contains("<noscript><meta http-equiv=\"refresh\" content=\"30\"></noscript>"));
    assert!(page.contains("<style nonce=\"n0nce\">") && page.contains("<script nonce=\"n0nce\">"));
    assert!(page.contains("@media print"));
    assert!(page.contains("width=device-width"));
    // Nothing is fetched: no external style, script, image or font.
    for needle in ["<link", " src=", "url(", "@import"] {
        assert!(!page.contains(needle), "{needle}");
    }
}

#[test]
fn alarms_link_to_the_map_and_verification_only_when_safe() {
    let mut data = heavy();
    data["latest_alarms"] = json!([
        alarm(1),
        {"account": "<b>x</b>", "code": "FA", "verification": "javascript:alert(1)",
         "longitude": "abc", "latitude": "12", "text": "<script>alert(1)</script>"},
        {"account": "5678", "code": "PA", "verification": "https://v.example.invalid/a?b=1&c=\"2\""},
    ]);
    let page = overview(&data, &chrome());
    assert!(page.contains(
        "href=\"https://www.openstreetmap.org/?mlat=49.111111&amp;mlon=6.129630#map=17/49.111111/6.129630\""
    ));
    assert!(!page.contains("href=\"javascript"));
    assert!(page.contains("<code>javascript:alert(1)</code>"));
    assert!(!page.contains("<script>alert"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    // An account that is not one is shown, not linked.
    assert!(page.contains("<td>&lt;b&gt;x&lt;/b&gt;</td>"));
    assert!(page.contains("href=\"https://v.example.invalid/a?b=1&amp;c=&quot;2&quot;\""));
    assert!(
        page.contains("abc 12"),
        "unreadable coordinates are shown as sent"
    );
}

#[test]
fn anything_missing_still_makes_a_page() {
    for data in [
        json!({}),
        Value::Null,
        json!([]),
        json!({"supervision": 3, "journal": "x",
            "last_hour": [], "last_hour_minutes": {}, "latest_alarms": 7, "listeners": null}),
    ] {
        let page = overview(&data, &chrome());
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.ends_with("</html>"));
        assert!(
            page.contains("<svg class=\"chart\""),
            "a chart even from nothing"
        );
        assert!(page.contains("Sites in failure (0)"));
    }
    let page = overview(
        &json!({"ready": false, "journal": {"writable": false}}),
        &chrome(),
    );
    assert!(page.contains("<b>not ready</b>"));
    assert!(page.contains("NOT WRITABLE"));
    assert!(page.contains("banner attention"));
}

#[test]
fn fields_the_page_does_not_know_still_show() {
    let mut data = heavy();
    data["bus"] = json!({"connected": false, "server": "nats://10.0.0.1:4222", "backlog": 1200,
                         "stream": "TOCSIN"});
    data["automation"] = json!([{"name": "mastermind", "connected": true, "backlog": 0,
                                 "protocol": "surgard"}]);
    data["clock"] = json!({"synchronized": false, "offset_seconds": 2.5});
    data["journal"]["free_bytes"] = json!(1_073_741_824u64);
    data["brand_new"] = json!("value <1>");
    let page = overview(&data, &chrome());
    assert!(page.contains("nats://10.0.0.1:4222"));
    assert!(page.contains("<th>stream</th><td>TOCSIN</td>"));
    assert!(page.contains("<b>disconnected</b>: bus"));
    assert!(page.contains("<th>mastermind</th><td><span class=\"ok\">connected</span>, backlog 0; protocol surgard</td>"));
    assert!(page.contains("<h3>clock</h3>"));
    assert!(page.contains("<th>synchronized</th><td><span class=\"bad\">NO</span></td>"));
    assert!(page.contains("<th>free</th><td>1.0 GiB</td>"));
    assert!(page.contains("<th>brand new</th><td>value &lt;1&gt;</td>"));
}

#[test]
fn without_the_series_the_totals_are_drawn() {
    let mut data = heavy();
    data.as_object_mut().unwrap().remove("last_hour_minutes");
    let page = overview(&data, &chrome());
    assert_eq!(page.matches("<svg class=\"chart\"").count(), 1);
    assert!(page.contains("Frames in the last hour, by reply"));
}

#[test]
fn names_from_the_data_are_escaped_everywhere() {
    let mut data = heavy();
    data["receiver"] = json!("<img src=x onerror=alert(1)>");
    data["last_hour"]["events"] = json!({"<evil>": 3});
    data["last_hour_minutes"][59]["events"] = json!({"<evil>": 3});
    data["sinks"] = json!([{"name": "<s>", "connected": false}]);
    let page = overview(&data, &chrome());
    assert!(!page.contains("<img"));
    assert!(!page.contains("<evil>"));
    assert!(!page.contains("<s>"));
    assert!(
        page.contains("class=\"s-x\""),
        "an unknown class gets the neutral colour"
    );
}

fn diagnosis() -> Value {
    json!({
        "account": "1234",
        "since": "2027-01-14T09:00:00Z",
        "paths_from": "daemon",
        "frames": 3,
        "outcomes": {"ack": 2, "nak": 1},
        "reasons": [{"outcome": "nak", "reason": "timestamp", "count": 1},
                    {"outcome": "ack", "reason": "new", "count": 2}],
        "decrypt_failures": 0,
        "events": 2,
        "last_heard": "2027-01-15T08:00:00.000Z",
        "paths": [{"path": "L1", "last_heard": "2027-01-15T08:00:00Z", "failed_since": "2027-01-15T08:02:00Z", "frames": 3},
                  {"path": "L2", "last_heard": null, "failed_since": null, "frames": 0}],
        "clock_skew": {"samples": 2, "min_s": -3.0, "median_s": 1.0, "max_s": 4.0},
        "supervision_counts": {"path_fail": 1},
        "supervision": [{"at": "2027-01-15T08:02:00Z", "code": "path_fail", "path": "L1", "text": "path L1 silent"}],
        "last_frames": [{"at": "2027-01-15T08:00:00Z", "transport": "tcp", "peer": "127.0.0.1:5",
                         "path": "L1", "outcome": "nak", "reason": "timestamp",
                         "raw": "\\n<raw>\\r", "reply": "\"NAK\"0000R0L0A0#1234[]"}],
        "unreadable_records": 0,
    })
}

#[test]
fn the_site_page_tells_what_diag_tells() {
    let page = site(&diagnosis(), &chrome());
    assert!(page.contains("<h1>Site 1234</h1>"));
    assert!(page.contains("path <b>L1</b> since 2027-01-15 08:02:00Z"));
    assert!(page.contains("1 NAK (timestamp)"));
    assert!(page.contains("min -3s, median +1s, max +4s (2 samples)"));
    assert!(page.contains("2 ack, 1 nak"));
    assert!(page.contains("path L1 silent"));
    assert!(page.contains("&lt;raw&gt;"));
    assert!(page.contains("&quot;NAK&quot;0000"));
    assert!(page.contains("href=\"/\""));
    let empty = site(&json!({}), &chrome());
    assert!(empty.contains("Site ?") && empty.contains("none seen"));
}

#[test]
fn the_token_page_does_not_refresh() {
    let page = token_needed(&chrome());
    assert!(page.contains("?token="));
    assert!(!page.contains("<script"));
    assert!(!page.contains("http-equiv=\"refresh\""));
}
