//! The packet writer against the documented packets, and a property over any event.
use super::*;
use crate::protocol::codes::{Category, EventClass};

fn fmt(line: &str) -> Format {
    Format::new("01", line, "0000").unwrap()
}

fn event(protocol: &'static str, account: &str, code: &str) -> Event {
    let mut e = Event::internal(
        "id".into(),
        time::macros::utc_datetime!(2024-01-15 12:00:05),
        "rx",
        account,
        code,
        (Qualifier::New, EventClass::Alarm, Category::Burglary),
        String::new(),
    );
    e.protocol = Cow::Borrowed(protocol);
    e
}

fn one(e: &Event, f: &Format) -> String {
    let mut out = Vec::new();
    write_event(e, f, &AccountMap::default(), &mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    String::from_utf8(out.remove(0)).unwrap()
}

#[test]
fn heartbeats_of_both_line_forms() {
    assert_eq!(fmt("1").heartbeat(), b"1011           @    \x14");
    assert_eq!(fmt("100").heartbeat(), b"101000           @    \x14");
}

#[test]
fn contact_id_short_and_long_accounts() {
    let mut e = event("ADM-CID", "1234", "121");
    e.partition = Some("01".into());
    e.zone = Some("001".into());
    assert_eq!(one(&e, &fmt("1")), "5011 181234E12101001\x14");
    assert_eq!(one(&e, &fmt("100")), "501100 181234E12101001\x14");
    e.account = "42".into();
    e.qualifier = Qualifier::Restore;
    assert_eq!(one(&e, &fmt("1")), "5011 180042R12101001\x14");
    e.account = "100042".into();
    e.qualifier = Qualifier::Status;
    assert_eq!(one(&e, &fmt("100")), "Q01100 580000100042P12101001\x14");
    // A user instead of a zone; odd fields become zeros.
    e.zone = None;
    e.user = Some("007".into());
    e.partition = Some("x".into());
    assert_eq!(one(&e, &fmt("1")), "Q011 580000100042P12100007\x14");
}

#[test]
fn unmappable_accounts_go_to_own_account_unless_mapped() {
    let mut e = event("ADM-CID", "AB12", "130");
    let mut out = Vec::new();
    let notes = write_event(&e, &fmt("1"), &AccountMap::default(), &mut out);
    assert!(notes.unmapped);
    assert_eq!(out, vec![b"5011 180000E14000000\x14".to_vec()]);
    let map = AccountMap::from_pairs([("AB12", "777")]);
    e.zone = Some("004".into());
    e.partition = Some("01".into());
    out.clear();
    let notes = write_event(&e, &fmt("1"), &map, &mut out);
    assert!(!notes.unmapped);
    assert_eq!(out, vec![b"5011 180777E13001004\x14".to_vec()]);
    e.account = "12345678901".into();
    assert_eq!(one(&e, &fmt("1")), "5011 180000E14000000\x14");
}

#[test]
fn own_events_use_the_table() {
    let e = event("tocsin", "5678", "comm_fail");
    assert_eq!(one(&e, &fmt("1")), "5011 180000E35600000\x14");
    let mut e = event("tocsin", "5678", "comm_restore");
    e.qualifier = Qualifier::Restore;
    assert_eq!(one(&e, &fmt("1")), "5011 180000R35600000\x14");
    let e = event("tocsin", "5678", "encryption_required");
    assert_eq!(one(&e, &fmt("1")), "5011 180000E13700002\x14");
    let e = event("tocsin", "5678", "never_heard_of");
    assert_eq!(one(&e, &fmt("1")), "5011 180000E30000000\x14");
    let f = Format::new("07", "2", "12345").unwrap();
    let e = event("tocsin", "5678", codes::SET_ASIDE);
    assert_eq!(one(&e, &f), "Q072 580000012345E35400000\x14");
}

#[test]
fn sia_data_as_received_with_the_packet_account() {
    let mut e = event("SIA-DCS", "1234", "CL");
    e.sia_data = Some("#1234|Nda04-22-94ti16:02:15/id22/CL/PA31".into());
    assert_eq!(
        one(&e, &fmt("100")),
        "S01100[#1234|Nda04-22-94ti16:02:15/id22/CL/PA31]\x14"
    );
    let map = AccountMap::from_pairs([("1234", "9")]);
    let mut out = Vec::new();
    write_event(&e, &fmt("1"), &map, &mut out);
    assert_eq!(
        out,
        vec![b"S011[#9|Nda04-22-94ti16:02:15/id22/CL/PA31]\x14".to_vec()]
    );
    // No account in the block, odd bytes in it.
    e.sia_data = Some("Nri1/BA01^Entr\u{e9}e [1]\u{14}^".into());
    assert_eq!(
        write_one_bytes(&e),
        b"S011[#1234|Nri1/BA01^Entr\xe9e ?1??^]\x14".to_vec()
    );
    // A 7-digit account does not fit a SIA packet.
    e.account = "1234567".into();
    assert_eq!(one(&e, &fmt("1")), "5011 180000E14000000\x14");
}

fn write_one_bytes(e: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    write_event(e, &fmt("1"), &AccountMap::default(), &mut out);
    assert_eq!(out.len(), 1);
    out.remove(0)
}

#[test]
fn long_sia_data_is_split_per_event() {
    let mut e = event("SIA-DCS", "1234", "BA");
    let block = "#1234|Nri1/id22/ti10:00:00/BA001^FRONT DOOR^/BA002/ri2/FA003/BR001/TA004/BA005";
    assert!(block.len() > MAX_SIA_DATA);
    e.sia_data = Some(block.into());
    let mut out = Vec::new();
    let notes = write_event(&e, &fmt("1"), &AccountMap::default(), &mut out);
    assert!(notes.split && !notes.truncated);
    let texts: Vec<String> = out
        .iter()
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert_eq!(texts.len(), 6, "{texts:?}");
    assert_eq!(texts[0], "S011[#1234|Nri1/id22/ti10:00:00/BA001]\x14");
    assert_eq!(texts[3], "S011[#1234|Nri2/id22/ti10:00:00/BR001]\x14");
    for p in &out {
        assert!(p.len() <= MAX_SIA_DATA + 7);
    }
    // Unreadable and long: cut.
    e.sia_data = Some(format!("#1234|Nri1/BA01^{}", "x".repeat(80)));
    let mut out = Vec::new();
    let notes = write_event(&e, &fmt("1"), &AccountMap::default(), &mut out);
    assert!(notes.truncated);
    assert_eq!(out[0].len(), 5 + MAX_SIA_DATA + 2);
}

proptest::proptest! {
    /// Whatever the event, at least one packet, and each reads back as well-formed
    /// (the fuzz target `surgard_packet` explores further).
    #[test]
    fn every_event_gives_well_formed_packets(
        protocol in proptest::sample::select(vec!["SIA-DCS", "ADM-CID", "tocsin", "NULL"]),
        q in 0u8..3,
        account in "[0-9A-Z]{0,12}|.{0,12}",
        code in "[0-9]{3}|[A-Z]{2}|.{0,5}",
        group in proptest::option::of("[0-9B-F]{2}|.{0,3}"),
        zone in proptest::option::of("[0-9B-F]{3}|.{0,4}"),
        sia in proptest::option::of("#[0-9]{1,6}\\|N(ri[0-9]/)?[A-Z]{2}[0-9]{0,3}(/[A-Z]{2}[0-9]{3}){0,12}|.{0,90}"),
        mapped in proptest::option::of("[0-9]{1,10}|.{0,12}"),
        long_line in proptest::bool::ANY,
    ) {
        let mut e = event(protocol, &account, &code);
        e.qualifier = [Qualifier::New, Qualifier::Restore, Qualifier::Status][usize::from(q)];
        e.partition = group.map(Into::into);
        e.zone = zone.map(Into::into);
        e.sia_data = sia;
        let map = match &mapped {
            Some(m) => AccountMap::from_pairs([(account.as_str(), m.as_str())]),
            None => AccountMap::default(),
        };
        let f = fmt(if long_line { "100" } else { "1" });
        let mut out = Vec::new();
        write_event(&e, &f, &map, &mut out);
        proptest::prop_assert!(!out.is_empty());
        for p in &out {
            let parsed = super::super::read::parse_packet(p);
            proptest::prop_assert!(parsed.is_ok(), "{:?}: {:?}", String::from_utf8_lossy(p), parsed);
        }
    }
}

#[test]
fn format_settings_are_checked() {
    assert!(Format::new("1", "1", "0").is_err());
    assert!(Format::new("0A", "1", "0").is_err());
    assert!(Format::new("01", "12", "0").is_err());
    assert!(Format::new("01", "1000", "0").is_err());
    assert!(Format::new("01", "1", "12345678901").is_err());
    assert!(Format::new("01", "1", "").is_err());
    assert!(Format::new("99", "001", "0000000001").is_ok());
}
