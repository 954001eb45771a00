//! The start-of-shift page in a real browser: the daemon runs with a station's worth of
//! supervised sites (10 000, of which 1 000 never report and one stops reporting), alarms
//! arrive carrying a location and a verification link, and headless Chromium renders `/`
//! with scripts on and off, a phone-sized screenshot and a desktop one (kept under the
//! target directory, paths printed), and `/site/ACCOUNT`. The page's weight is measured on
//! the same station: at most 100 KiB.
//!
//! Needs Debian's `chromium` (installed by `scripts/test`); fails, saying so, without it.
//!
//! Scripts are turned off the way a user does, by the profile's JavaScript content setting:
//! with `--blink-settings=scriptEnabled=false` this Chromium's headless mode prints no DOM
//! and takes no screenshot at all, and `--disable-javascript` leaves page scripts running.
//! The page's script marks each refresh on `<body>`, so the tests see whether it ran.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tocsin::protocol::dc09::CrcForm;
use tocsin::protocol::encode::{encode, FrameSpec};

/// Sites that never report after start (interval 8 s): they fail together.
const SILENT: usize = 1000;
/// Sites that report within the hour: never in failure during the test.
const QUIET: usize = 9000;
/// The site that reports once, then stops (interval 2 s): the longest in failure.
const STOPPED: &str = "777001";
/// Where the alarms come from.
const ALARMING: &str = "777002";

/// The browser, or a failure that says how to get it.
fn chromium() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("chromium"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("missing: chromium (Debian package `chromium`); ./scripts/test installs it")
    })
}

/// Headless Chromium on `url` with `args` (a fresh profile each run, JavaScript allowed
/// or not); its stdout.
fn browse(url: &str, scripts: bool, args: &[&str]) -> String {
    let profile = tempdir();
    if !scripts {
        let prefs = profile.path().join("Default");
        std::fs::create_dir_all(&prefs).unwrap();
        write_file(
            &prefs,
            "Preferences",
            r#"{"profile":{"default_content_setting_values":{"javascript":2}}}"#,
        );
    }
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium {args:?} {url} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The DOM after scripts ran (or did not).
fn dom(url: &str, scripts: bool) -> String {
    browse(url, scripts, &["--virtual-time-budget=5000", "--dump-dom"])
}

/// A screenshot kept as a test artifact; returns its path.
fn screenshot(url: &str, name: &str, size: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-page");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(name);
    let _ = std::fs::remove_file(&file);
    browse(
        url,
        true,
        &[
            "--virtual-time-budget=3000",
            &format!("--window-size={size}"),
            &format!("--screenshot={}", file.display()),
        ],
    );
    let png = std::fs::read(&file).unwrap_or_else(|e| panic!("no screenshot {file:?}: {e}"));
    assert!(png.starts_with(b"\x89PNG"), "{file:?} is not a PNG");
    assert!(png.len() > 10_000, "{file:?} is nearly empty");
    println!("screenshot: {}", file.display());
    file
}

/// An SIA alarm frame carrying extended blocks.
fn alarm_frame(account: &str, seq: u16, body: &str, ext: &[(u8, &[u8])]) -> Vec<u8> {
    let data = format!("#{account}|{body}");
    let seq = format!("{seq:04}");
    let spec = FrameSpec {
        token: "SIA-DCS",
        seq: &seq,
        receiver: None,
        line: "0",
        account,
        data: data.as_bytes(),
        ext,
        timestamp: Some(time::UtcDateTime::now()),
        form: CrcForm::Ascii,
    };
    let mut random = [0u8; 16];
    rand::fill(&mut random);
    let mut out = Vec::new();
    encode(&spec, None, &random, &mut out);
    out
}

fn status(d: &Daemon) -> Value {
    let (code, body) = d.get("/status").expect("GET /status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Rows of the failure list, in order: the accounts.
fn failure_rows(html: &str) -> Vec<String> {
    let Some(start) = html.find("id=\"failure-list\"") else {
        return Vec::new();
    };
    let table = &html[start
        ..html[start..]
            .find("</table>")
            .map_or(html.len(), |e| start + e)];
    table
        .split("<a href=\"/site/")
        .skip(1)
        .filter_map(|r| r.split('"').next().map(str::to_string))
        .collect()
}

/// What the page must show in any browser, scripts or not.
fn assert_shows_the_station(html: &str, how: &str) {
    let rows = failure_rows(html);
    assert_eq!(rows.len(), 50, "{how}: 50 sites listed, got {}", rows.len());
    assert_eq!(
        rows[0], STOPPED,
        "{how}: the longest in failure comes first"
    );
    assert!(
        html.contains(&format!("… and {} more", SILENT + 1 - 50)),
        "{how}: the rest counted"
    );
    assert!(
        html.contains("<span class=\"ok\">writable</span>"),
        "{how}: journal state"
    );
    assert!(html.contains("durable LSN"), "{how}");
    assert!(
        html.contains("<svg class=\"chart\"") && html.contains("class=\"s-ack\""),
        "{how}: a chart with frames drawn"
    );
    assert!(
        html.contains("href=\"https://www.openstreetmap.org/?mlat=49.111111&amp;mlon=6.129630"),
        "{how}: the alarm's map link"
    );
    assert!(
        html.contains("href=\"https://cams.example.invalid/clip/1?a=1&amp;b=2\""),
        "{how}: the verification link"
    );
    assert!(
        !html.contains("href=\"javascript"),
        "{how}: a non-web link stays text"
    );
    assert!(
        html.contains("<code>javascript:alert(1)</code>"),
        "{how}: shown as text"
    );
}

#[test]
fn start_of_shift_page_in_a_browser() {
    chromium();
    let dir = tempdir();
    let mut csv = String::from("id,supervision\n");
    for i in 0..SILENT {
        csv.push_str(&format!("{},8s\n", 100_000 + i));
    }
    for i in 0..QUIET {
        csv.push_str(&format!("{},1h\n", 200_000 + i));
    }
    csv.push_str(&format!("{STOPPED},2s\n{ALARMING},1h\n"));
    write_file(dir.path(), "accounts.csv", &csv);
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[receiver]\nid = \"rx-page\"\n[accounts]\nfile = \"accounts.csv\"\n",
    );
    let d = Daemon::start(&cfg, &dir.path().join("data"));

    // The stopped site reports once, then falls silent.
    let mut panel = Tcp::connect(d.addr);
    let ack = panel.exchange(&Fb::null(STOPPED, 1).clear());
    assert_eq!(view(&ack).token, "ACK", "{}", esc(&ack));
    // Alarms with a location and a verification link, and one whose link is not a web one.
    let ext: [(u8, &[u8]); 3] = [
        (b'X', b"006E07.7777777"),
        (b'Y', b"49N06.6666666"),
        (b'V', b"https://cams.example.invalid/clip/1?a=1&b=2"),
    ];
    for (seq, body, ext) in [
        (2, "Nri1/BA01", &ext[..]),
        (3, "Nri2/FA02", &[(b'V', &b"javascript:alert(1)"[..])][..]),
    ] {
        let ack = panel.exchange(&alarm_frame(ALARMING, seq, body, ext));
        assert_eq!(view(&ack).token, "ACK", "{}", esc(&ack));
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = status(&d);
        let failed = s["supervision"]["failed"].as_u64().unwrap_or(0);
        if failed > SILENT as u64 {
            assert_eq!(
                s["supervision"]["paths"].as_u64(),
                Some((SILENT + QUIET + 2) as u64)
            );
            // Events of the hour by class, supervision's own included.
            assert_eq!(s["last_hour"]["events"]["alarm"], 2, "{}", s["last_hour"]);
            assert!(s["last_hour"]["events"]["supervision"].as_u64() > Some(SILENT as u64));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sites never failed: {failed} in failure\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The weight bar, on the station as it is.
    let (code, body) = d.get("/").expect("GET /");
    assert_eq!(code, 200);
    println!(
        "page weight with {} supervised sites, {} in failure: {} bytes ({:.1} KiB)",
        SILENT + QUIET + 2,
        SILENT + 1,
        body.len(),
        body.len() as f64 / 1024.0
    );
    assert!(body.len() <= 100 * 1024, "{} bytes", body.len());
    assert_shows_the_station(&body, "served");

    let url = format!("http://{}/", d.http);
    // Without scripts, asked to refresh every 2 s as below: all there, and no script ran.
    let html = dom(&format!("{url}?refresh=2"), false);
    assert_shows_the_station(&html, "scripts off");
    assert!(!html.contains("data-updates"), "no script ran");

    // With scripts, the page refreshes itself in place (every 2 s here) and still shows it all.
    let html = dom(&format!("{url}?refresh=2"), true);
    assert_shows_the_station(&html, "scripts on");
    assert!(
        html.contains("data-updates=\""),
        "the script refreshed the page"
    );
    assert!(
        !html.contains("class=\"stale\""),
        "and did not lose the daemon"
    );

    screenshot(&url, "overview-desktop.png", "1280,2200");
    screenshot(&url, "overview-phone.png", "412,2400");

    let site = dom(&format!("http://{}/site/{STOPPED}", d.http), false);
    assert!(site.contains(&format!("<h1>Site {STOPPED}</h1>")), "{site}");
    assert!(site.contains("In supervision failure"), "{site}");
    assert!(site.contains("1 ACK") || site.contains("1 ack"), "{site}");
    screenshot(
        &format!("http://{}/site/{STOPPED}", d.http),
        "site-phone.png",
        "412,1400",
    );
}

#[test]
fn the_token_reaches_the_page_through_a_cookie() {
    chromium();
    let dir = tempdir();
    let token = "f3a9c1d27be84c6a90e15d4b8c2f7a61";
    let file = write_file(dir.path(), "http.token", &format!("{token}\n"));
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[http]\ntoken_file = \"http.token\"\n[[account]]\nid = \"4242\"\nsupervision = \"2s\"\n",
    );
    let d = Daemon::start(&cfg, &dir.path().join("data"));
    let url = format!("http://{}/", d.http);
    let refused = dom(&url, false);
    assert!(refused.contains("a token is needed"), "{refused}");
    assert!(!refused.contains("failure-list"));
    // Once with ?token=: redirected to / with the cookie, which lets the page in.
    let html = dom(&format!("{url}?token={token}"), false);
    assert!(html.contains("id=\"journal\""), "{html}");
    assert!(html.contains("Sites in failure"), "{html}");
    assert!(!d.stderr().contains(token), "the token is never logged");
}
