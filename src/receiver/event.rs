//! The normalized event: one JSON object per alarm, the same shape whatever the panel
//! spoke (SIA DC-03 or Contact ID), for operator consoles and automation.
//!
//! Identity: an event's `id` is derived from what the panel sent — account, token,
//! sequence, decrypted payload, panel timestamp — and the event's position in its frame,
//! so that two receivers that get the same frame (dual path, hot standby) compute the
//! same id and the bus keeps one. Nothing receiver-local (arrival time, peer, pad) enters.

use serde::{Deserialize, Serialize};
use time::UtcDateTime;
use xxhash_rust::xxh3::Xxh3;

use crate::protocol::codes::{Arming, Category, EventClass, Qualifier};

/// How a frame reached the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
    /// `tocsin decode`: no network at all.
    Offline,
    /// Events the receiver makes itself (supervision).
    Internal,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
            Transport::Offline => "offline",
            Transport::Internal => "internal",
        }
    }
}

/// A normalized event. Field names are a contract with consoles: add, never rename.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub received_at: String,
    pub receiver: String,
    pub transport: Transport,
    pub peer: Option<String>,
    /// The frame's ID token without `*` (`SIA-DCS`, `ADM-CID`, `NULL`), or `tocsin` for
    /// events the receiver raises itself.
    pub protocol: String,
    pub encrypted: bool,
    pub seq: Option<String>,
    pub receiver_no: Option<String>,
    pub line_no: Option<String>,
    pub account: String,
    pub panel_time: Option<String>,
    pub code: String,
    pub qualifier: Qualifier,
    pub class: EventClass,
    pub category: Category,
    pub zone: Option<String>,
    pub user: Option<String>,
    pub partition: Option<String>,
    pub text: String,
    /// Opening (disarm) or closing (arm), for open/close reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arming: Option<Arming>,
    /// The account written inside the data block when it differs from the header's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_account: Option<String>,
    /// Names the panel attached (`^TOTAL^` caret texts, X-SIA text, `A` blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Time of occurrence from the panel (`[H…]` block, or SIA `da`/`ti` modifiers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Verification links (audio, video, photos), `[V…]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_address: Option<String>,
    /// The reporting path, for supervision events (`L1`, `J2`, `*` for any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Every extended block as sent, without brackets, known letters included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ext: Vec<String>,
    /// The account is not configured (accepted by policy).
    #[serde(default, skip_serializing_if = "is_false")]
    pub unknown_account: bool,
    /// The exact frame as received, escaped (`\n`, `\r`, `\xNN`), for audit.
    pub raw: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Event {
    /// An event the receiver raises itself (no frame behind it).
    pub fn internal(
        id: String,
        now: UtcDateTime,
        receiver: &str,
        account: &str,
        code: &str,
        (qualifier, class, category): (Qualifier, EventClass, Category),
        text: String,
    ) -> Event {
        Event {
            id,
            received_at: rfc3339(now),
            receiver: receiver.to_string(),
            transport: Transport::Internal,
            peer: None,
            protocol: "tocsin".into(),
            encrypted: false,
            seq: None,
            receiver_no: None,
            line_no: None,
            account: account.to_string(),
            panel_time: None,
            code: code.to_string(),
            qualifier,
            class,
            category,
            zone: None,
            user: None,
            partition: None,
            text,
            arming: None,
            data_account: None,
            names: Vec::new(),
            event_time: None,
            location: None,
            verification: None,
            mac: None,
            site: None,
            building: None,
            room: None,
            alarm_text: None,
            longitude: None,
            latitude: None,
            altitude: None,
            network_path: None,
            network_address: None,
            path: None,
            ext: Vec::new(),
            unknown_account: false,
            raw: String::new(),
        }
    }
}

/// Writes `t` as RFC 3339 UTC with milliseconds (`2024-01-15T12:00:05.123Z`). Written by
/// hand: it runs for every event and `time`'s formatter is general-purpose.
pub fn rfc3339(t: UtcDateTime) -> String {
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            if let Some(slot) = b.get_mut(i) {
                *slot = b'0' + (v % 10) as u8;
            }
            v /= 10;
        }
    };
    put(0, 4, t.year().clamp(0, 9999) as u32);
    put(5, 2, u32::from(u8::from(t.month())));
    put(8, 2, u32::from(t.day()));
    put(11, 2, u32::from(t.hour()));
    put(14, 2, u32::from(t.minute()));
    put(17, 2, u32::from(t.second()));
    put(20, 3, u32::from(t.millisecond()));
    b.iter().map(|&c| char::from(c)).collect()
}

/// Panel time as RFC 3339 (whole seconds: that is all DC-09 carries).
pub fn panel_rfc3339(t: UtcDateTime) -> String {
    let mut s = rfc3339(t);
    // Drop ".000" before the Z.
    s.truncate(s.len().saturating_sub(5));
    s.push('Z');
    s
}

/// The identity of what a panel sent, shared by every receiver that gets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentKey(pub u128);

impl ContentKey {
    /// Hash of (account, token without `*`, seq, data, extended blocks, panel timestamp).
    /// Fields are separated by a byte that cannot occur in them, so boundaries cannot
    /// shift.
    pub fn of(
        account: &str,
        token: &str,
        seq: &str,
        data: &[u8],
        ext: &[(u8, &[u8])],
        panel_time: Option<UtcDateTime>,
    ) -> ContentKey {
        let mut h = Xxh3::new();
        for part in [account.as_bytes(), token.as_bytes(), seq.as_bytes(), data] {
            h.update(part);
            h.update(&[0x1F]);
        }
        for (id, value) in ext {
            h.update(&[*id]);
            h.update(value);
            h.update(&[0x1E]);
        }
        h.update(&[0x1F]);
        if let Some(t) = panel_time {
            h.update(&t.unix_timestamp().to_le_bytes());
        }
        ContentKey(h.digest128())
    }

    /// The id of the `index`-th event of this frame: 32 hex digits.
    pub fn event_id(self, index: usize) -> String {
        let mut h = Xxh3::new();
        h.update(&self.0.to_le_bytes());
        h.update(&(index as u64).to_le_bytes());
        format!("{:032x}", h.digest128())
    }

    pub fn to_hex(self) -> String {
        format!("{:032x}", self.0)
    }

    pub fn from_hex(s: &str) -> Option<ContentKey> {
        u128::from_str_radix(s, 16).ok().map(ContentKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::utc_datetime;

    #[test]
    fn times() {
        let t = utc_datetime!(2024-01-15 12:00:05.123);
        assert_eq!(rfc3339(t), "2024-01-15T12:00:05.123Z");
        assert_eq!(panel_rfc3339(t), "2024-01-15T12:00:05Z");
    }

    #[test]
    fn content_key_boundaries() {
        let a = ContentKey::of("12", "34", "0001", b"x", &[], None);
        let b = ContentKey::of("1", "234", "0001", b"x", &[], None);
        assert_ne!(a, b);
        let t = Some(utc_datetime!(2024-01-15 12:00:05));
        assert_ne!(a, ContentKey::of("12", "34", "0001", b"x", &[], t));
        assert_eq!(a.event_id(0), a.event_id(0));
        assert_ne!(a.event_id(0), a.event_id(1));
        assert_eq!(ContentKey::from_hex(&a.to_hex()), Some(a));
    }
}
