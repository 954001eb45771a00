//! Fuzz `parse_cid_data`: never panics, every returned `&str` lies inside the input, fields
//! have their fixed widths, and a 16-digit message that parses has a valid checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::protocol::contact_id::{cid_checksum_digit, parse_cid_data, CidForm};

fn inside(outer: &str, inner: &str) -> bool {
    let o = outer.as_bytes().as_ptr_range();
    let i = inner.as_bytes().as_ptr_range();
    o.start <= i.start && i.end <= o.end
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cid_checksum_digit(s);
    let Ok(d) = parse_cid_data(s) else {
        return;
    };
    assert!(d.code < 1000);
    assert_eq!(d.group.len(), 2);
    assert_eq!(d.zone_or_user.len(), 3);
    assert!(inside(s, d.group) && inside(s, d.zone_or_user));
    assert!(d.account.is_none_or(|a| inside(s, a)));
    if let CidForm::Dc05 {
        message_type,
        account,
        checksum,
    } = d.form
    {
        assert!(message_type == "18" || message_type == "98");
        assert!(inside(s, message_type));
        if let (Some(a), Some(c)) = (account, checksum) {
            // Rebuild the first 15 digits from the parsed fields: the checksum must match.
            let first15 = format!(
                "{a}{message_type}{:X}{:03}{}{}",
                d.qualifier, d.code, d.group, d.zone_or_user
            );
            let expected = cid_checksum_digit(&first15).map(String::from);
            assert_eq!(expected.as_deref(), Some(c));
        }
    }
});
