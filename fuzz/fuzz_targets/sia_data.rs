//! Fuzz `parse_sia_data`: never panics, every returned `&str` lies inside the input, and the
//! named limits hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::protocol::sia::{parse_sia_data, MAX_EVENTS, MAX_MODIFIERS};

fn inside(outer: &str, inner: &str) -> bool {
    let o = outer.as_bytes().as_ptr_range();
    let i = inner.as_bytes().as_ptr_range();
    o.start <= i.start && i.end <= o.end
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(d) = parse_sia_data(s) else {
        return;
    };
    assert!(d.events.len() <= MAX_EVENTS);
    assert!(d.account.is_none_or(|a| inside(s, a)));
    for t in d.texts.iter().chain(&d.extra_fields).chain(&d.unparsed) {
        assert!(inside(s, t));
    }
    for e in &d.events {
        assert!(e.modifiers.len() <= MAX_MODIFIERS);
        assert_eq!(e.code.len(), 2);
        assert!(e.code.bytes().all(|b| b.is_ascii_uppercase()));
        assert!(inside(s, e.code));
        assert!(e
            .address
            .is_none_or(|a| a.bytes().all(|b| b.is_ascii_digit())));
        for f in [
            e.address,
            e.area,
            e.user,
            e.time,
            e.date,
            e.peripheral,
            e.tail,
        ]
        .into_iter()
        .flatten()
        .chain(e.names.iter().copied())
        {
            assert!(inside(s, f));
        }
        for m in &e.modifiers {
            assert!(inside(s, m.key) && inside(s, m.value));
            assert!(m.name.is_none_or(|n| inside(s, n)));
        }
    }
});
