//! The Sur-Gard automation packets, from DC-09 frames through `tocsin decode --surgard`,
//! byte for byte against the examples of the Sur-Gard documentation
//! (`spec/surgard-mlr2.md` §2); and `tocsin check-config` refusing bad `[[automation]]`
//! blocks with the line at fault.

mod common;

use common::{esc, key_ascii, run_cli, tempdir, write_file, Fb};
use serde_json::Value;

/// `tocsin decode --surgard SPEC FRAME`: the packets, DC4 included.
fn packets(spec: &str, frame: &[u8], extra: &[&str]) -> Vec<String> {
    let escaped = esc(frame);
    let mut args = vec!["decode", "--no-time-check", "--surgard", spec];
    args.extend_from_slice(extra);
    args.push(&escaped);
    let (code, out, err) = run_cli(&args);
    assert_eq!(code, 0, "decode failed: {out}{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("decode prints JSON");
    v["surgard"]
        .as_array()
        .unwrap_or_else(|| panic!("no surgard list in {v}"))
        .iter()
        .map(|p| p.as_str().expect("packet as text").to_string())
        .collect()
}

#[test]
fn documented_examples_byte_for_byte() {
    // Duress, group 01, zone 001: MLR2 form and SG (3-digit line) form.
    let duress = Fb::cid("1234", 1, "1121 01 001").clear();
    assert_eq!(packets("01:1", &duress, &[]), ["5011 181234E12101001\x14"]);
    assert_eq!(
        packets("01:100", &duress, &[]),
        ["501100 181234E12101001\x14"]
    );
    // Field traffic: burglary zone 4, AC restore.
    let burglary = Fb::cid("7037", 2, "1130 01 004").clear();
    assert_eq!(
        packets("01:1", &burglary, &[]),
        ["5011 187037E13001004\x14"]
    );
    let ac = Fb::cid("7037", 3, "3301 00 000").clear();
    assert_eq!(packets("01:1", &ac, &[]), ["5011 187037R30100000\x14"]);
    // 10-digit account: protocol Q, identifier 58.
    let long = Fb::cid("1234567890", 4, "1130 01 004").clear();
    assert_eq!(
        packets("01:100", &long, &[]),
        ["Q01100 581234567890E13001004\x14"]
    );
    // SIA: the data block as received, with its account.
    let sia = Fb::sia("1234", 5, "Nda04-22-94ti16:02:15/id22/CL/PA31").clear();
    assert_eq!(
        packets("01:100", &sia, &[]),
        ["S01100[#1234|Nda04-22-94ti16:02:15/id22/CL/PA31]\x14"]
    );
    // The same block in an encrypted frame: the packet carries the clear data.
    let key = key_ascii("0123456789abcdef");
    let sealed = Fb::sia("1234", 6, "Nda04-22-94ti16:02:15/id22/CL/PA31").sealed(&key);
    assert_eq!(
        packets("01:1", &sealed, &["--key-ascii", "0123456789abcdef"]),
        ["S011[#1234|Nda04-22-94ti16:02:15/id22/CL/PA31]\x14"]
    );
    // A supervision poll carries no event: nothing for the automation.
    let null = Fb::null("1234", 7).clear();
    assert!(packets("01:1", &null, &[]).is_empty());
}

#[test]
fn accounts_that_do_not_fit_are_mapped_or_sent_on_own_account() {
    let hex = Fb::cid("AB12", 1, "1130 01 004").clear();
    assert_eq!(
        packets("02:3", &hex, &["--own-account", "9999"]),
        ["5023 189999E14000000\x14"]
    );
    let dir = tempdir();
    let map = write_file(
        dir.path(),
        "map.csv",
        "dc09_account,automation_account\nAB12,4321\n",
    );
    let map = map.to_str().unwrap();
    assert_eq!(
        packets("02:3", &hex, &["--account-map", map]),
        ["5023 184321E13001004\x14"]
    );
    // SIA accounts are at most 6 digits.
    let sia = Fb::sia("1234567", 2, "NBA01").clear();
    assert_eq!(packets("01:1", &sia, &[]), ["5011 180000E14000000\x14"]);
}

#[test]
fn bad_surgard_argument_is_refused() {
    let frame = Fb::cid("1234", 1, "1121 01 001").clear();
    for bad in ["011", "1:1", "01:12", "01:x", "01:1000"] {
        let (code, _, err) = run_cli(&["decode", "--surgard", bad, &esc(&frame)]);
        assert_eq!(code, 2, "--surgard {bad}: {err}");
        assert!(err.contains("--surgard"), "{err}");
    }
}

/// `check-config` on a file with `block` appended to a valid head: (exit code, stderr).
fn check(block: &str) -> (i32, String) {
    let dir = tempdir();
    write_file(dir.path(), "map.csv", "1234,1\nAB,x\n");
    let text = format!("[receiver]\nid = \"rx\"\n{block}");
    let cfg = write_file(dir.path(), "tocsin.toml", &text);
    let (code, _, err) = run_cli(&["check-config", cfg.to_str().unwrap()]);
    (code, err)
}

#[test]
fn bad_automation_blocks_are_refused_with_their_line() {
    let good = "[[automation]]\nname = \"manitou\"\nformat = \"surgard\"\nconnect = \"10.1.2.3:1025\"\nreceiver_number = \"01\"\nline = \"100\"\n";
    let (code, err) = check(good);
    assert_eq!(code, 0, "{err}");
    for (block, line, says) in [
        (
            good.replace("\"surgard\"", "\"ademco685\""),
            5,
            "unknown variant",
        ),
        (
            good.replace("line = \"100\"", "line = \"10\""),
            8,
            "one digit (L) or three",
        ),
        (good.replace("\"01\"", "\"1\""), 7, "two digits"),
        (good.replace("\"01\"", "\"0A\""), 7, "two digits"),
        (
            format!("{good}listen = \"0.0.0.0:1025\"\n"),
            4,
            "exactly one of connect or listen",
        ),
        (format!("{good}{good}"), 10, "configured twice"),
        (format!("{good}own_account = \"12AB\"\n"), 9, "own_account"),
        (format!("{good}bogus = 1\n"), 9, "unknown field"),
    ] {
        let (code, err) = check(&block);
        assert_eq!(code, 1, "accepted:\n{block}");
        assert!(
            err.contains(&format!("tocsin.toml:{line}:")) || err.contains(&format!("line {line}:")),
            "line {line} not named for:\n{block}\n{err}"
        );
        assert!(err.contains(says), "{says:?} not in: {err}");
    }
    // A bad account map names its own file and line.
    let (code, err) = check(&format!("{good}account_map = \"map.csv\"\n"));
    assert_eq!(code, 1);
    assert!(err.contains("map.csv:2:"), "{err}");
}
