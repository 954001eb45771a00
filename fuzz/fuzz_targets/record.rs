//! Fuzz journal payloads: the event index and the record JSON behind it never panic on any
//! bytes, and every span the index hands out lies within the payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::receiver::record::{routed, JournalRecord};

fuzz_target!(|data: &[u8]| {
    let _ = JournalRecord::from_bytes(data);
    if let Some(Ok(events)) = routed(data) {
        for e in events {
            assert!(e.json.start <= e.json.end && e.json.end <= data.len());
        }
    }
});
