//! What happened lately, for `/status` and the start-of-shift page: frames of the last
//! hour by reply ("frames and NAKs in the last hour"), events of the last hour by class,
//! and the latest alarms.
//!
//! Prometheus counters only ever grow, and a status page must not need a time-series
//! database to say what happened in the last hour. So the daemon keeps its own small ring:
//! 60 one-minute slots, each tagged with the minute it counts, so a slot left over from an
//! earlier turn of the ring is recognised as stale and ignored (or reset on write) without
//! a timer. Pure: time is a parameter (seconds since the Unix epoch).
//!
//! The latest alarms: the event lists of the last [`LATEST_ALARMS`] frames that carried an
//! alarm, kept as they were handed over (a move, no copy, no allocation on the frame
//! path), and summarised ([`AlarmSummary`], each text field cut to a few hundred bytes)
//! only when the page asks. Under an alarm storm nearly all of them are pushed out before
//! anyone looks; the list never grows.

use parking_lot::Mutex;
use std::collections::VecDeque;

use crate::ops::frame_series::ClassCounts;
use crate::protocol::codes::EventClass;
use crate::receiver::event::Event;

/// Slots in the ring: one per minute of the hour.
pub const SLOTS: usize = 60;

/// Frames counted by reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub ack: u64,
    pub nak: u64,
    pub duh: u64,
    pub none: u64,
}

impl Counts {
    /// Every frame, whatever its reply.
    pub fn frames(&self) -> u64 {
        self.ack
            .saturating_add(self.nak)
            .saturating_add(self.duh)
            .saturating_add(self.none)
    }

    fn add(&mut self, other: &Counts) {
        self.ack = self.ack.saturating_add(other.ack);
        self.nak = self.nak.saturating_add(other.nak);
        self.duh = self.duh.saturating_add(other.duh);
        self.none = self.none.saturating_add(other.none);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The minute (seconds / 60) these counts belong to.
    minute: u64,
    counts: Counts,
    /// Events kept in that minute, indexed by `class as usize`.
    events: ClassCounts,
}

/// One minute of the last hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Minute {
    /// Its first second, since the Unix epoch.
    pub start: u64,
    #[serde(flatten)]
    pub frames: Counts,
    #[serde(serialize_with = "classes_by_name")]
    pub events: ClassCounts,
}

/// Counts by class as a JSON object keyed by the class names (`alarm`, `trouble`, …).
fn classes_by_name<S: serde::Serializer>(c: &ClassCounts, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(EventClass::ALL.len()))?;
    for class in EventClass::ALL {
        m.serialize_entry(class.as_str(), &c.get(class as usize).copied().unwrap_or(0))?;
    }
    m.end()
}

/// Counts by class as a JSON object keyed by the class names.
pub fn classes_json(c: &ClassCounts) -> serde_json::Value {
    EventClass::ALL
        .iter()
        .map(|&class| {
            let n = c.get(class as usize).copied().unwrap_or(0);
            (class.as_str().to_string(), serde_json::Value::from(n))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A ring of per-minute counts covering the last 60 minutes.
#[derive(Debug, Clone)]
pub struct Ring {
    slots: [Slot; SLOTS],
}

impl Default for Ring {
    fn default() -> Self {
        Ring {
            slots: [Slot::default(); SLOTS],
        }
    }
}

impl Ring {
    /// The slot of `now_s`, reset first when it holds an earlier turn of the ring.
    fn slot(&mut self, now_s: u64) -> Option<&mut Slot> {
        let minute = now_s / 60;
        let slot = self.slots.get_mut((minute % SLOTS as u64) as usize)?;
        if slot.minute != minute {
            *slot = Slot {
                minute,
                ..Slot::default()
            };
        }
        Some(slot)
    }

    /// Counts one frame with reply `outcome` (`ack`, `nak`, `duh`, `none`) at `now_s`.
    /// Unknown labels count as `none`: every frame is counted once.
    pub fn record(&mut self, now_s: u64, outcome: &str) {
        let Some(slot) = self.slot(now_s) else {
            return;
        };
        let c = &mut slot.counts;
        let n = match outcome {
            "ack" => &mut c.ack,
            "nak" => &mut c.nak,
            "duh" => &mut c.duh,
            _ => &mut c.none,
        };
        *n = n.saturating_add(1);
    }

    /// Counts events kept at `now_s`, by class.
    pub fn record_events(&mut self, now_s: u64, events: &ClassCounts) {
        let Some(slot) = self.slot(now_s) else {
            return;
        };
        for (n, add) in slot.events.iter_mut().zip(events) {
            *n = n.saturating_add(*add);
        }
    }

    /// The events of the current minute and the 59 before it, by class.
    pub fn last_hour_events(&self, now_s: u64) -> ClassCounts {
        let mut total = ClassCounts::default();
        for m in self.minutes(now_s) {
            for (n, add) in total.iter_mut().zip(&m.events) {
                *n = n.saturating_add(*add);
            }
        }
        total
    }

    /// The 60 minutes of the last hour, oldest first; a minute with nothing is zeros.
    pub fn minutes(&self, now_s: u64) -> Vec<Minute> {
        let now_min = now_s / 60;
        let first = now_min.saturating_sub(SLOTS as u64 - 1);
        (first..=now_min)
            .map(|minute| {
                let slot = self
                    .slots
                    .get((minute % SLOTS as u64) as usize)
                    .filter(|s| s.minute == minute)
                    .copied()
                    .unwrap_or_default();
                Minute {
                    start: minute * 60,
                    frames: slot.counts,
                    events: slot.events,
                }
            })
            .collect()
    }

    /// The sums over the current minute and the 59 before it.
    pub fn last_hour(&self, now_s: u64) -> Counts {
        let now_min = now_s / 60;
        let oldest = now_min.saturating_sub(SLOTS as u64 - 1);
        let mut total = Counts::default();
        for s in &self.slots {
            if s.minute >= oldest && s.minute <= now_min {
                total.add(&s.counts);
            }
        }
        total
    }
}

/// Alarms kept in [`Recent::alarms`]: what an operator glances at, not a history (that
/// is `tocsin history`).
pub const LATEST_ALARMS: usize = 20;
/// Bytes kept of each text field of an alarm (a verification link gets more).
const FIELD_BYTES: usize = 200;
const LINK_BYTES: usize = 512;

/// The part of an alarm event the page shows, with the event's own field names. Every
/// text is cut to a bounded length: the fields came from a panel.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AlarmSummary {
    pub id: String,
    pub received_at: String,
    pub account: String,
    pub code: String,
    pub category: &'static str,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alarm_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub building: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longitude: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latitude: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<String>,
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_string()
}

fn cut_opt(s: Option<&str>, max: usize) -> Option<String> {
    s.map(|s| cut(s, max))
}

impl AlarmSummary {
    pub fn of(e: &Event) -> AlarmSummary {
        AlarmSummary {
            id: cut(e.id.as_str(), FIELD_BYTES),
            received_at: cut(&e.received_at, FIELD_BYTES),
            account: cut(&e.account, FIELD_BYTES),
            code: cut(&e.code, FIELD_BYTES),
            category: e.category.as_str(),
            text: cut(&e.text, FIELD_BYTES),
            zone: cut_opt(e.zone.as_deref(), FIELD_BYTES),
            partition: cut_opt(e.partition.as_deref(), FIELD_BYTES),
            user: cut_opt(e.user.as_deref(), FIELD_BYTES),
            alarm_text: cut_opt(e.alarm_text.as_deref(), FIELD_BYTES),
            site: cut_opt(e.site.as_deref(), FIELD_BYTES),
            building: cut_opt(e.building.as_deref(), FIELD_BYTES),
            room: cut_opt(e.room.as_deref(), FIELD_BYTES),
            location: cut_opt(e.location.as_deref(), FIELD_BYTES),
            longitude: cut_opt(e.longitude.as_deref(), FIELD_BYTES),
            latitude: cut_opt(e.latitude.as_deref(), FIELD_BYTES),
            verification: cut_opt(e.verification.as_deref(), LINK_BYTES),
        }
    }
}

/// `events` if one of them is an alarm (to keep for the page), else nothing (most frames
/// carry none: then this keeps nothing).
pub fn alarms_of(events: Vec<Event>) -> Vec<Event> {
    if events.iter().any(|e| e.class == EventClass::Alarm) {
        events
    } else {
        Vec::new()
    }
}

/// The ring and the latest alarms, shared by connection tasks; each lock is held for a
/// few additions or one push. `parking_lot` locks: nothing here can panic while holding
/// one, and a poisoned lock must not silently blank the status page either.
#[derive(Debug, Default)]
pub struct Recent {
    ring: Mutex<Ring>,
    /// Event lists of frames with an alarm, oldest first.
    alarms: Mutex<VecDeque<Vec<Event>>>,
}

impl Recent {
    pub fn record(&self, now_s: u64, outcome: &str) {
        self.ring.lock().record(now_s, outcome);
    }

    /// Counts events kept (journaled) at `now_s` and keeps the alarms among them. Frames
    /// without events (supervision polls, most of the traffic) take no lock here.
    pub fn record_events(&self, now_s: u64, events: &ClassCounts, alarms: Vec<Event>) {
        if events.iter().any(|&n| n > 0) {
            self.ring.lock().record_events(now_s, events);
        }
        if alarms.is_empty() {
            return;
        }
        let mut kept = self.alarms.lock();
        if kept.len() >= LATEST_ALARMS {
            kept.pop_front();
        }
        kept.push_back(alarms);
    }

    pub fn last_hour(&self, now_s: u64) -> Counts {
        self.ring.lock().last_hour(now_s)
    }

    pub fn last_hour_events(&self, now_s: u64) -> ClassCounts {
        self.ring.lock().last_hour_events(now_s)
    }

    pub fn minutes(&self, now_s: u64) -> Vec<Minute> {
        self.ring.lock().minutes(now_s)
    }

    /// The latest alarms, newest first.
    pub fn alarms(&self) -> Vec<AlarmSummary> {
        self.alarms
            .lock()
            .iter()
            .rev()
            .flat_map(|frame| frame.iter().rev())
            .filter(|e| e.class == EventClass::Alarm)
            .take(LATEST_ALARMS)
            .map(AlarmSummary::of)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000;

    #[test]
    fn counts_by_reply() {
        let mut r = Ring::default();
        for o in ["ack", "ack", "nak", "duh", "none", "weird"] {
            r.record(T0, o);
        }
        let c = r.last_hour(T0);
        assert_eq!(
            c,
            Counts {
                ack: 2,
                nak: 1,
                duh: 1,
                none: 2
            }
        );
        assert_eq!(c.frames(), 6);
    }

    #[test]
    fn old_minutes_drop_out() {
        let mut r = Ring::default();
        r.record(T0, "ack");
        r.record(T0 + 30 * 60, "nak");
        // 59 minutes later the first is still in the hour.
        assert_eq!(r.last_hour(T0 + 59 * 60).frames(), 2);
        // An hour later it is not, though its slot was never overwritten.
        let c = r.last_hour(T0 + 61 * 60);
        assert_eq!((c.ack, c.nak), (0, 1));
        // Writing into a slot from an earlier turn resets it first.
        r.record(T0 + 60 * 60, "duh");
        let c = r.last_hour(T0 + 60 * 60);
        assert_eq!((c.ack, c.nak, c.duh), (0, 1, 1));
    }

    #[test]
    fn future_slots_ignored_after_clock_step_back() {
        let mut r = Ring::default();
        r.record(T0 + 3600 * 5, "ack");
        assert_eq!(r.last_hour(T0).frames(), 0);
        r.record(T0, "nak");
        assert_eq!(r.last_hour(T0).nak, 1);
    }

    #[test]
    fn shared() {
        let r = Recent::default();
        r.record(T0, "ack");
        assert_eq!(r.last_hour(T0 + 10).ack, 1);
    }

    fn classes(pairs: &[(EventClass, u64)]) -> ClassCounts {
        let mut c = ClassCounts::default();
        for &(class, n) in pairs {
            c[class as usize] = n;
        }
        c
    }

    #[test]
    fn events_by_class_per_minute() {
        let mut r = Ring::default();
        r.record_events(T0, &classes(&[(EventClass::Alarm, 2)]));
        r.record_events(
            T0 + 120,
            &classes(&[(EventClass::Alarm, 1), (EventClass::Test, 3)]),
        );
        r.record(T0 + 120, "ack");
        let hour = r.last_hour_events(T0 + 120);
        assert_eq!(hour[EventClass::Alarm as usize], 3);
        assert_eq!(hour[EventClass::Test as usize], 3);
        let minutes = r.minutes(T0 + 120);
        assert_eq!(minutes.len(), SLOTS);
        let last = minutes.last().unwrap();
        assert_eq!(last.start, (T0 + 120) / 60 * 60);
        assert_eq!(last.frames.ack, 1);
        assert_eq!(last.events[EventClass::Test as usize], 3);
        assert_eq!(minutes[SLOTS - 3].events[EventClass::Alarm as usize], 2);
        assert!(minutes.windows(2).all(|w| w[1].start == w[0].start + 60));
        // An hour on, the first minute is gone from the sums and the series alike.
        let later = T0 + 3600 + 60;
        assert_eq!(r.last_hour_events(later)[EventClass::Alarm as usize], 1);
        assert_eq!(
            r.minutes(later)
                .iter()
                .map(|m| m.events[EventClass::Alarm as usize])
                .sum::<u64>(),
            1
        );
        let json = serde_json::to_value(last).unwrap();
        assert_eq!(json["ack"], 1);
        assert_eq!(json["events"]["test"], 3);
        assert_eq!(json["events"]["open_close"], 0);
    }

    fn alarm(n: usize) -> Event {
        use crate::protocol::codes::{Category, Qualifier};
        Event::internal(
            crate::receiver::event_id::EventId::from_hash(n as u128),
            time::UtcDateTime::UNIX_EPOCH,
            "rx",
            "1234",
            "BA",
            (Qualifier::New, EventClass::Alarm, Category::Burglary),
            String::new(),
        )
    }

    fn id(n: usize) -> String {
        crate::receiver::event_id::EventId::from_hash(n as u128)
            .as_str()
            .to_string()
    }

    #[test]
    fn latest_alarms_are_bounded_newest_first() {
        let r = Recent::default();
        for n in 0..LATEST_ALARMS + 5 {
            r.record_events(T0, &classes(&[(EventClass::Alarm, 1)]), vec![alarm(n)]);
        }
        let a = r.alarms();
        assert_eq!(a.len(), LATEST_ALARMS);
        assert_eq!(a[0].id, id(LATEST_ALARMS + 4));
        assert_eq!(a[LATEST_ALARMS - 1].id, id(5));
        assert_eq!((a[0].account.as_str(), a[0].code.as_str()), ("1234", "BA"));
        assert_eq!(
            r.last_hour_events(T0)[EventClass::Alarm as usize],
            (LATEST_ALARMS + 5) as u64
        );
    }

    #[test]
    fn frames_of_several_events_give_their_alarms_only_newest_first() {
        use crate::protocol::codes::{Category, Qualifier};
        let r = Recent::default();
        let opening = Event::internal(
            crate::receiver::event_id::EventId::from_hash(999),
            time::UtcDateTime::UNIX_EPOCH,
            "rx",
            "1234",
            "OP",
            (Qualifier::New, EventClass::OpenClose, Category::Arming),
            String::new(),
        );
        assert!(alarms_of(vec![opening.clone()]).is_empty());
        for frame in 0..LATEST_ALARMS {
            let events = vec![alarm(2 * frame), opening.clone(), alarm(2 * frame + 1)];
            r.record_events(T0, &ClassCounts::default(), alarms_of(events));
        }
        let a = r.alarms();
        assert_eq!(a.len(), LATEST_ALARMS);
        assert_eq!(a[0].id, id(2 * LATEST_ALARMS - 1));
        assert_eq!(a[1].id, id(2 * LATEST_ALARMS - 2));
        assert!(a.iter().all(|s| s.code == "BA"));
    }

    #[test]
    fn alarm_fields_are_cut_on_a_character_boundary() {
        let long = "é".repeat(500);
        assert_eq!(cut(&long, FIELD_BYTES).len(), FIELD_BYTES);
        assert_eq!(cut("abcdé", 5), "abcd");
        assert_eq!(cut("abc", 10), "abc");
    }
}
