//! Writing HTML safely: escaping, links that may be followed, and the small formats the
//! pages share (sizes, durations, times, map links).
//!
//! Every text that reaches a page passes through [`Esc`]; a link is written only when it
//! is `http` or `https` ([`web_link`]) or built here from numbers ([`map_link`]).

use std::fmt;

/// Text escaped for HTML content and double-quoted attribute values.
pub struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            let (plain, tail) = rest.split_at(i);
            f.write_str(plain)?;
            let mut chars = tail.chars();
            f.write_str(match chars.next() {
                Some('&') => "&amp;",
                Some('<') => "&lt;",
                Some('>') => "&gt;",
                Some('"') => "&quot;",
                _ => "&#39;",
            })?;
            rest = chars.as_str();
        }
        f.write_str(rest)
    }
}

/// The link when `text` is an `http` or `https` URL with nothing a browser would read
/// differently (spaces, control characters); anything else is shown as text, never linked.
pub fn web_link(text: &str) -> Option<&str> {
    let t = text.trim();
    let scheme_end = t.find("://")?;
    let scheme = t.get(..scheme_end)?;
    let ok = (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && t.len() > scheme_end + 3
        && !t.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(t)
}

/// One coordinate as DC-09 panels send it: degrees, hemisphere and decimal minutes
/// (`006E07.7777777`, `49N06.6666666`), or decimal degrees (`-2.35`, `48.85N`). `None`
/// when it reads as neither, or its hemisphere letter is for the other axis.
pub fn coordinate(text: &str, latitude: bool) -> Option<f64> {
    let t = text.trim();
    let (plus, minus, limit) = if latitude {
        ('N', 'S', 90.0)
    } else {
        ('E', 'W', 180.0)
    };
    let is_hemi = |c: char| matches!(c.to_ascii_uppercase(), 'N' | 'S' | 'E' | 'W');
    let sign_of = |c: char| {
        let c = c.to_ascii_uppercase();
        if c == plus {
            Some(1.0)
        } else if c == minus {
            Some(-1.0)
        } else {
            None
        }
    };
    let number = |s: &str| -> Option<f64> {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-' || b == b'+');
        ok.then(|| s.parse::<f64>().ok()).flatten()
    };
    let value = if let Some(i) = t.find(is_hemi).filter(|&i| i > 0 && i + 1 < t.len()) {
        // Degrees, hemisphere, minutes.
        let deg = t.get(..i)?;
        let min = t.get(i + 1..)?;
        let hemi = t.get(i..i + 1)?.chars().next()?;
        if !deg.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (d, m) = (number(deg)?, number(min)?);
        if !(0.0..60.0).contains(&m) {
            return None;
        }
        sign_of(hemi)? * (d + m / 60.0)
    } else if let Some(last) = t.chars().last().filter(|&c| is_hemi(c)) {
        sign_of(last)? * number(t.get(..t.len() - 1)?)?
    } else if let Some(first) = t.chars().next().filter(|&c| is_hemi(c)) {
        sign_of(first)? * number(t.get(1..)?)?
    } else {
        number(t)?
    };
    (value.is_finite() && value.abs() <= limit).then_some(value)
}

/// An OpenStreetMap link to the point, when both coordinates read as such.
pub fn map_link(longitude: &str, latitude: &str) -> Option<String> {
    let lon = coordinate(longitude, false)?;
    let lat = coordinate(latitude, true)?;
    Some(format!(
        "https://www.openstreetmap.org/?mlat={lat:.6}&mlon={lon:.6}#map=17/{lat:.6}/{lon:.6}"
    ))
}

pub fn bytes_text(b: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = b.max(0.0);
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    let unit = UNITS.get(u).copied().unwrap_or("B");
    if u == 0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// `3h 12m`, `2d 4h`, `45s`.
pub fn duration_text(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// Seconds since the Unix epoch of an RFC 3339 time.
pub fn unix_of(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// `HH:MM` (UTC) of a Unix time.
pub fn clock_text(unix: u64) -> String {
    let s = unix % 86_400;
    format!("{:02}:{:02}", s / 3600, (s % 3600) / 60)
}

/// An RFC 3339 time for reading: `2026-12-02 14:03:11Z` (milliseconds dropped).
pub fn time_text(text: &str) -> String {
    match (text.get(..10), text.get(11..19)) {
        (Some(date), Some(clock)) if text.len() >= 20 && text.get(10..11) == Some("T") => {
            format!("{date} {clock}Z")
        }
        _ => text.to_string(),
    }
}

/// Whether a string is an RFC 3339 time worth showing as [`time_text`].
pub fn looks_like_time(text: &str) -> bool {
    text.len() >= 20 && text.len() <= 35 && unix_of(text).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert_eq!(
            Esc(r#"<a href="x">'&'</a>"#).to_string(),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(Esc("plain é").to_string(), "plain é");
    }

    #[test]
    fn only_web_links_are_links() {
        assert_eq!(
            web_link(" https://x.invalid/p.jpg "),
            Some("https://x.invalid/p.jpg")
        );
        assert_eq!(web_link("HTTP://x"), Some("HTTP://x"));
        assert_eq!(web_link("javascript://%0aalert(1)"), None);
        assert_eq!(web_link("javascript:alert(1)"), None);
        assert_eq!(web_link("data:text/html,x"), None);
        assert_eq!(web_link("ftp://x"), None);
        assert_eq!(web_link("https://"), None);
        assert_eq!(web_link("https://x y"), None);
        assert_eq!(web_link("https://x\u{7}"), None);
        assert_eq!(web_link("/relative"), None);
    }

    #[test]
    fn coordinates_as_panels_send_them() {
        let lon = coordinate("006E07.7777777", false).unwrap();
        assert!((lon - 6.129_629).abs() < 1e-5, "{lon}");
        let lat = coordinate("49N06.6666666", true).unwrap();
        assert!((lat - 49.111_111).abs() < 1e-5, "{lat}");
        assert!(coordinate("003W30.0", false).unwrap() < 0.0);
        assert_eq!(coordinate("48.85", true), Some(48.85));
        assert_eq!(coordinate("-2.35", false), Some(-2.35));
        assert_eq!(coordinate("2.35W", false), Some(-2.35));
        assert_eq!(coordinate("S33.9", true), Some(-33.9));
        // The other axis's letter, out of range, or not a number at all.
        assert_eq!(coordinate("49E06.6", true), None);
        assert_eq!(coordinate("115000", false), None);
        assert_eq!(coordinate("91", true), None);
        assert_eq!(coordinate("12N75.0", true), None);
        assert_eq!(coordinate("abc", true), None);
        assert_eq!(coordinate("", true), None);
        assert_eq!(coordinate("NaN", true), None);
        assert_eq!(coordinate("N", true), None);
        let link = map_link("006E07.7777777", "49N06.6666666").unwrap();
        assert_eq!(
            link,
            "https://www.openstreetmap.org/?mlat=49.111111&mlon=6.129630#map=17/49.111111/6.129630"
        );
        assert_eq!(map_link("x", "49"), None);
    }

    #[test]
    fn formats() {
        assert_eq!(bytes_text(1536.0), "1.5 KiB");
        assert_eq!(bytes_text(10.0), "10 B");
        assert_eq!(duration_text(3 * 3600 + 12 * 60), "3h 12m");
        assert_eq!(clock_text(1_700_000_000), "22:13");
        assert_eq!(
            time_text("2026-12-02T14:03:11.123Z"),
            "2026-12-02 14:03:11Z"
        );
        assert_eq!(time_text("garbage"), "garbage");
        assert!(looks_like_time("2026-12-02T14:03:11Z"));
        assert!(!looks_like_time("2026"));
        assert_eq!(unix_of("1970-01-01T00:01:00Z"), Some(60));
    }
}
