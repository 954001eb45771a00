//! The DC-09 timestamp `_HH:MM:SS,MM-DD-YYYY` (`docs/protocol/dc09.md` §11): always UTC, 24-hour.
//!
//! Parsed by hand rather than with a `time` format description: it sits on the hot path of
//! every encrypted frame and the layout is fixed-width.

use time::{Date, Month, Time, UtcDateTime};

/// Length of the timestamp text without its leading `_`.
pub const TIMESTAMP_LEN: usize = 19;

/// Parses `HH:MM:SS,MM-DD-YYYY` (no leading `_`). `None` when the text is not a real
/// calendar time.
pub fn parse(text: &[u8]) -> Option<UtcDateTime> {
    let [h1, h2, b':', mi1, mi2, b':', s1, s2, b',', mo1, mo2, b'-', d1, d2, b'-', y1, y2, y3, y4] =
        text
    else {
        return None;
    };
    // Every digit checked at once, then each pair read without a branch.
    let digits = [h1, h2, mi1, mi2, s1, s2, mo1, mo2, d1, d2, y1, y2, y3, y4];
    if !digits.iter().all(|d| d.is_ascii_digit()) {
        return None;
    }
    let two = |a: u8, b: u8| (a & 0x0F) * 10 + (b & 0x0F);
    let hour = two(*h1, *h2);
    let minute = two(*mi1, *mi2);
    let second = two(*s1, *s2);
    let month = two(*mo1, *mo2);
    let day = two(*d1, *d2);
    let year = i32::from(two(*y1, *y2)) * 100 + i32::from(two(*y3, *y4));
    let month = Month::try_from(month).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(UtcDateTime::new(date, time))
}

/// The same time as RFC 3339 (`YYYY-MM-DDTHH:MM:SSZ`), rearranged from the text
/// [`parse`] accepted: the digits are already there, so no calendar arithmetic is needed.
/// `None` when `text` is not 19 bytes long.
pub fn rfc3339_of_text(text: &[u8]) -> Option<[u8; 20]> {
    let [h1, h2, _, mi1, mi2, _, s1, s2, _, mo1, mo2, _, d1, d2, _, y1, y2, y3, y4] = *text else {
        return None;
    };
    Some([
        y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', mi1, mi2, b':', s1, s2,
        b'Z',
    ])
}

/// Writes `_HH:MM:SS,MM-DD-YYYY` for `t` (the leading underscore included).
pub fn write(t: UtcDateTime, out: &mut Vec<u8>) {
    let push2 = |out: &mut Vec<u8>, v: u8| {
        out.push(b'0' + (v / 10) % 10);
        out.push(b'0' + v % 10);
    };
    out.push(b'_');
    push2(out, t.hour());
    out.push(b':');
    push2(out, t.minute());
    out.push(b':');
    push2(out, t.second());
    out.push(b',');
    push2(out, u8::from(t.month()));
    out.push(b'-');
    push2(out, t.day());
    out.push(b'-');
    // Years outside 0..=9999 cannot be written in four digits; the receiver clock never
    // gets there, and clamping keeps the output well-formed.
    let year = t.year().clamp(0, 9999) as u16;
    push2(out, (year / 100) as u8);
    push2(out, (year % 100) as u8);
}

/// Whether `panel` lies within `[now - past, now + future]`: the anti-replay window.
pub fn within_window(
    panel: UtcDateTime,
    now: UtcDateTime,
    past: time::Duration,
    future: time::Duration,
) -> bool {
    let delta = panel - now;
    delta >= -past && delta <= future
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::utc_datetime;

    #[test]
    fn rearranged_text_is_the_parsed_time() {
        for text in [
            &b"12:00:30,01-15-2024"[..],
            b"00:00:00,01-01-0000",
            b"23:59:59,12-31-9999",
            b"07:08:09,02-29-2024",
        ] {
            let parsed = parse(text).unwrap();
            let written = crate::receiver::event::panel_rfc3339(parsed);
            assert_eq!(rfc3339_of_text(text).unwrap(), written.as_bytes());
        }
        assert_eq!(rfc3339_of_text(b"12:00:30,01-15-202"), None);
    }

    #[test]
    fn parse_and_write() {
        let t = parse(b"12:00:30,01-15-2024");
        assert_eq!(t, Some(utc_datetime!(2024-01-15 12:00:30)));
        let mut out = Vec::new();
        write(utc_datetime!(2024-01-15 12:00:30), &mut out);
        assert_eq!(out, b"_12:00:30,01-15-2024");
    }

    #[test]
    fn rejects_impossible_times() {
        assert_eq!(parse(b"24:00:00,01-15-2024"), None);
        assert_eq!(parse(b"12:00:00,13-15-2024"), None);
        assert_eq!(parse(b"12:00:00,02-30-2024"), None);
        assert_eq!(parse(b"12:00:00,02-3x-2024"), None);
        assert_eq!(parse(b"12:00:00,02-30-202"), None);
    }

    #[test]
    fn window_bounds() {
        let now = utc_datetime!(2024-01-15 12:00:40);
        let past = time::Duration::seconds(40);
        let future = time::Duration::seconds(20);
        assert!(within_window(
            utc_datetime!(2024-01-15 12:00:00),
            now,
            past,
            future
        ));
        assert!(!within_window(
            utc_datetime!(2024-01-15 11:59:59),
            now,
            past,
            future
        ));
        assert!(within_window(
            utc_datetime!(2024-01-15 12:01:00),
            now,
            past,
            future
        ));
        assert!(!within_window(
            utc_datetime!(2024-01-15 12:01:01),
            now,
            past,
            future
        ));
    }
}
