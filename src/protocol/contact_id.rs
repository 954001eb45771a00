//! Contact ID (SIA DC-05) data, as carried between `[` and `]` of a DC-09 `ADM-CID` frame,
//! and the 16-digit DC-05 telephone message.
//!
//! Implements `docs/protocol/contact-id.md` §1 (the message and its mod-15 checksum), §2 (the
//! DC-09 form `#acct|QXYZ GG CCC`), §3 (the qualifier) and §7 (the lenient parse); the payload
//! variants are those of `docs/protocol/dc09.md` §6. Classifying the event code is
//! [`super::codes`]' job.
//!
//! Accepted shapes, after an optional `#acct|` (or `acct|`, or `|`) prefix, spaces allowed
//! between fields but not inside one:
//!
//! | digits | shape | [`CidForm`] |
//! |---|---|---|
//! | 9 | `Q XYZ GG CCC` (DC-09: no `18`, no checksum, the CRC protects it) | `Dc09` |
//! | 11 | `MT Q XYZ GG CCC` (message type in band, as Bosch's `[#aaaa\|18QXYZGGCCC]`) | `Dc05`, no account, no checksum |
//! | 15 | `AAAA MT Q XYZ GG CCC` (a DC-05 message without its checksum digit) | `Dc05`, no checksum |
//! | 16 | `AAAA MT Q XYZ GG CCC S` (the full DC-05 message) | `Dc05`, checksum verified |
//!
//! A message type may come in band, so both readings of it are accepted
//! (`docs/protocol/contact-id.md` §7): 11 digits led by the message type (`18QXYZGGCCC`), and
//! 15 digits that are the 16-digit message minus its checksum. The message type must be `18`
//! or `98`.
//!
//! A bad checksum is an error ([`CidError::Checksum`]), not a flag: the digit exists only to
//! detect corruption, and a corrupted Contact ID message may carry the wrong zone or even the
//! wrong qualifier (alarm read as restore), so it must not be acknowledged as received.
//!
//! Contract: pure, panic-free on any `&str`, zero-copy (every `&str` of the output is a
//! sub-slice of the input), no allocation at all; input longer than [`MAX_CID_DATA_LEN`] is
//! refused before it is scanned.

use super::codes::{self, AddressKind, Arming, CidCodeInfo, Qualifier};
use super::sia::{ascii_exact, ascii_while, is_account};
use nom::{IResult, Parser};

/// Longest data accepted: `#` + 16-character account + `|` + 16 digits, with room for
/// generous spacing. Anything longer is not Contact ID.
pub const MAX_CID_DATA_LEN: usize = 64;

/// A parsed Contact ID report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CidData<'a> {
    /// The account of the `#acct|` prefix; without a prefix, the `AAAA` of a 15- or
    /// 16-digit message. (Routing uses the frame header's account, `docs/protocol/dc09.md` §6.)
    pub account: Option<&'a str>,
    /// The raw qualifier digit value: 0–9, or 11–15 for B–F.
    pub qualifier: u8,
    /// The qualifier's meaning, for 1, 3 and 6.
    pub qualifier_kind: Option<Qualifier>,
    /// The event code XYZ, 0–999.
    pub code: u16,
    /// GG: group / partition, `00` = none. Hex digits B–F allowed.
    pub group: &'a str,
    /// CCC: zone or user number per code (see [`CidData::zone_or_user_kind`]), `000` = none.
    pub zone_or_user: &'a str,
    pub form: CidForm<'a>,
}

/// Which shape the report came in (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidForm<'a> {
    /// `QXYZ GG CCC`, the DC-09 form.
    Dc09,
    /// A DC-05 message, complete or not.
    Dc05 {
        /// `18` or `98`.
        message_type: &'a str,
        /// `AAAA`, in the 15- and 16-digit shapes.
        account: Option<&'a str>,
        /// `S`, in the 16-digit shape (already verified).
        checksum: Option<&'a str>,
    },
}

impl CidData<'_> {
    /// The code's table entry, if the code is known.
    pub fn info(&self) -> Option<&'static CidCodeInfo> {
        codes::cid_code(self.code)
    }

    /// What CCC designates: the table's `zone_or_user`, defaulting to zone for codes not in
    /// the table (`docs/protocol/contact-id.md` §5: everything not listed carries a zone).
    pub fn zone_or_user_kind(&self) -> AddressKind {
        self.info().map_or(AddressKind::Zone, |i| i.zone_or_user)
    }

    /// Opening or closing, for open/close codes (the 4xx inversion of §3).
    pub fn arming(&self) -> Option<Arming> {
        self.qualifier_kind?.arming(self.code)
    }
}

/// Why Contact ID data was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CidError {
    #[error("empty Contact ID data")]
    Empty,
    #[error("Contact ID data is {len} bytes, more than {max}")]
    TooLong { len: usize, max: usize },
    #[error("invalid account in Contact ID data")]
    InvalidAccount,
    #[error("invalid Contact ID digit at byte {offset} (0-9 and B-F only)")]
    InvalidDigit { offset: usize },
    #[error("{got} Contact ID digits, expected 9, 11, 15 or 16")]
    DigitCount { got: usize },
    #[error("space inside a Contact ID field at byte {offset}")]
    SplitField { offset: usize },
    #[error("Contact ID event code must be three decimal digits")]
    InvalidEventCode,
    #[error("unknown Contact ID message type {first}{second} (18 or 98)")]
    MessageType { first: char, second: char },
    #[error("Contact ID checksum digit is {got}, expected {expected}")]
    Checksum { expected: char, got: char },
}

/// Parse Contact ID data: the text between `[` and `]` of an `ADM-CID` frame, or a bare
/// DC-05 message (see the module documentation for the accepted shapes).
pub fn parse_cid_data(data: &str) -> Result<CidData<'_>, CidError> {
    if data.is_empty() {
        return Err(CidError::Empty);
    }
    if data.len() > MAX_CID_DATA_LEN {
        return Err(CidError::TooLong {
            len: data.len(),
            max: MAX_CID_DATA_LEN,
        });
    }
    let (prefix_account, body) = account_prefix(data)?;
    let body_offset = data.len().saturating_sub(body.len());
    let digits = count_digits(body, body_offset)?;
    let split = |rest: &str| CidError::SplitField {
        offset: data.len().saturating_sub(rest.len()),
    };

    // Each shape is the spec's field list in order, spaces allowed between fields.
    let (mt, embedded_account, fields, check) = match digits {
        9 => {
            let (_, fields) = terminated_by_end(report)(body).map_err(split)?;
            (None, None, fields, None)
        }
        11 => {
            let (_, (_, mt, fields)) =
                terminated_by_end((sp, message_type, report))(body).map_err(split)?;
            (Some(mt), None, fields, None)
        }
        15 => {
            let (_, (_, acct, _, mt, fields)) =
                terminated_by_end((sp, account, sp, message_type, report))(body).map_err(split)?;
            (Some(mt), Some(acct), fields, None)
        }
        16 => {
            let (_, (_, acct, _, mt, fields, s)) =
                terminated_by_end((sp, account, sp, message_type, report, checksum))(body)
                    .map_err(split)?;
            (Some(mt), Some(acct), fields, Some(s))
        }
        got => return Err(CidError::DigitCount { got }),
    };

    let (q, xyz, group, zone_or_user) = fields;
    let code = event_code_value(xyz).ok_or(CidError::InvalidEventCode)?;
    let qualifier = qualifier_value(q).ok_or(CidError::InvalidEventCode)?;

    let form = match mt {
        None => CidForm::Dc09,
        Some(mt) => {
            if mt != "18" && mt != "98" {
                let mut c = mt.chars();
                return Err(CidError::MessageType {
                    first: c.next().unwrap_or('?'),
                    second: c.next().unwrap_or('?'),
                });
            }
            if let (Some(acct), Some(s)) = (embedded_account, check) {
                verify_checksum([acct, mt, q, xyz, group, zone_or_user], s)?;
            }
            CidForm::Dc05 {
                message_type: mt,
                account: embedded_account,
                checksum: check,
            }
        }
    };

    Ok(CidData {
        account: prefix_account.or(embedded_account),
        qualifier,
        qualifier_kind: Qualifier::from_digit(qualifier),
        code,
        group,
        zone_or_user,
        form,
    })
}

/// The checksum digit `S` for the first 15 digits of a DC-05 message (`docs/protocol/contact-id.md`
/// §1, builder rule): sum the digits counting `0` as 10 and B–F as 11–15, take
/// `(15 − sum mod 15) mod 15`, and write 0 as `F` (a `0` digit would count as 10), 10 as `0`.
/// Spaces are ignored; `None` unless there are exactly 15 valid digits.
pub fn cid_checksum_digit(first15: &str) -> Option<char> {
    let mut count = 0usize;
    let mut sum = 0u32;
    for b in first15.bytes().filter(|&b| b != b' ') {
        sum = sum.checked_add(checksum_value(b)?)?;
        count = count.checked_add(1)?;
    }
    if count != 15 {
        return None;
    }
    let s = 15u32.checked_sub(sum.checked_rem(15)?)?.checked_rem(15)?;
    checksum_char(s)
}

/// The `#acct|` prefix, if any: returns the account (`None` when absent or empty) and the
/// rest. Without `|` the whole input is the report, and a leading `#` then is an error.
fn account_prefix(data: &str) -> Result<(Option<&str>, &str), CidError> {
    match data.split_once('|') {
        Some((prefix, body)) => {
            let acct = prefix.strip_prefix('#').unwrap_or(prefix);
            if acct.is_empty() {
                Ok((None, body))
            } else if is_account(acct) {
                Ok((Some(acct), body))
            } else {
                Err(CidError::InvalidAccount)
            }
        }
        None if data.starts_with('#') => Err(CidError::InvalidAccount),
        None => Ok((None, data)),
    }
}

/// Number of Contact ID digits in `body`, refusing any byte that is neither a digit nor a
/// space. `offset` is where `body` starts in the data, for the error position.
fn count_digits(body: &str, offset: usize) -> Result<usize, CidError> {
    let mut n = 0usize;
    for (i, b) in body.bytes().enumerate() {
        if b == b' ' {
            continue;
        }
        if !is_cid_digit(b) {
            return Err(CidError::InvalidDigit {
                offset: offset.saturating_add(i),
            });
        }
        n = n.saturating_add(1);
    }
    Ok(n)
}

fn is_cid_digit(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'B'..=b'F')
}

type Res<'a, O> = IResult<&'a str, O>;

/// Optional spaces between fields.
fn sp(i: &str) -> Res<'_, &str> {
    Ok(ascii_while(i, |b| b == b' '))
}

/// Exactly `n` Contact ID digits (0–9, B–F).
fn digits(n: usize) -> impl for<'a> Fn(&'a str) -> Res<'a, &'a str> {
    move |i| ascii_exact(i, n, is_cid_digit)
}

/// `AAAA`: the DC-05 account, four digits.
fn account(i: &str) -> Res<'_, &str> {
    digits(4)(i)
}

/// `MT`: the message type, two digits (`18` or `98`, checked by the caller).
fn message_type(i: &str) -> Res<'_, &str> {
    digits(2)(i)
}

/// `Q`: the event qualifier, one digit.
fn qualifier(i: &str) -> Res<'_, &str> {
    digits(1)(i)
}

/// `XYZ`: the event code, three digits (decimal, checked by the caller).
fn event_code(i: &str) -> Res<'_, &str> {
    digits(3)(i)
}

/// `GG`: group / partition.
fn group(i: &str) -> Res<'_, &str> {
    digits(2)(i)
}

/// `CCC`: zone or user.
fn zone_or_user(i: &str) -> Res<'_, &str> {
    digits(3)(i)
}

/// `S`: the checksum digit.
fn checksum(i: &str) -> Res<'_, &str> {
    let (i, _) = sp(i)?;
    digits(1)(i)
}

/// `Q XYZ GG CCC`, the part common to every shape.
#[allow(clippy::type_complexity)]
fn report(i: &str) -> Res<'_, (&str, &str, &str, &str)> {
    let (i, (_, q, _, xyz, _, gg, _, ccc)) =
        (sp, qualifier, sp, event_code, sp, group, sp, zone_or_user).parse(i)?;
    Ok((i, (q, xyz, gg, ccc)))
}

/// Run `p`, then allow trailing spaces and require the end of input. On failure, return the
/// input where it stopped, for the error offset.
fn terminated_by_end<'a, O, P>(mut p: P) -> impl FnMut(&'a str) -> Result<(&'a str, O), &'a str>
where
    P: Parser<&'a str, Output = O, Error = nom::error::Error<&'a str>>,
{
    move |i: &'a str| {
        let (rest, out) = p.parse(i).map_err(|e| match e {
            nom::Err::Error(e) | nom::Err::Failure(e) => e.input,
            nom::Err::Incomplete(_) => i,
        })?;
        let (rest, _) = sp(rest).map_err(|_| rest)?;
        if rest.is_empty() {
            Ok((rest, out))
        } else {
            Err(rest)
        }
    }
}

/// Three decimal digits as a number; `None` if any is B–F.
fn event_code_value(xyz: &str) -> Option<u16> {
    xyz.bytes().try_fold(0u16, |acc, b| {
        let d = char::from(b).to_digit(10)?;
        acc.checked_mul(10)?.checked_add(u16::try_from(d).ok()?)
    })
}

/// The qualifier digit's value: `0`–`9` as themselves, B–F as 11–15.
fn qualifier_value(q: &str) -> Option<u8> {
    let &[b] = q.as_bytes() else { return None };
    let v = char::from(b).to_digit(16)?;
    u8::try_from(v).ok()
}

/// A digit's value in the checksum: `0` counts as 10, B–F as 11–15.
fn checksum_value(b: u8) -> Option<u32> {
    match b {
        b'0' => Some(10),
        b'1'..=b'9' | b'B'..=b'F' => char::from(b).to_digit(16),
        _ => None,
    }
}

/// The digit written for a checksum value 0–14: 0 → `F`, 10 → `0`.
fn checksum_char(s: u32) -> Option<char> {
    match s {
        0 => Some('F'),
        10 => Some('0'),
        1..=9 | 11..=14 => char::from_digit(s, 16).map(|c| c.to_ascii_uppercase()),
        _ => None,
    }
}

/// Check the 16-digit message: the sum of all digits (0 as 10) is a multiple of 15.
fn verify_checksum(fields: [&str; 6], s: &str) -> Result<(), CidError> {
    let got = s.chars().next().unwrap_or('?');
    let mut sum = 0u32;
    for b in fields.iter().flat_map(|f| f.bytes()) {
        sum = sum.saturating_add(checksum_value(b).unwrap_or(0));
    }
    let expected = 15u32
        .saturating_sub(sum % 15)
        .checked_rem(15)
        .and_then(checksum_char)
        .unwrap_or('?');
    let total = sum.saturating_add(s.bytes().next().and_then(checksum_value).unwrap_or(0));
    if total.is_multiple_of(15) {
        Ok(())
    } else {
        Err(CidError::Checksum { expected, got })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ok(data: &str) -> CidData<'_> {
        parse_cid_data(data).unwrap_or_else(|e| panic!("{data:?}: {e}"))
    }

    fn assert_borrowed(input: &str, d: &CidData<'_>) {
        let range = input.as_bytes().as_ptr_range();
        let mut all = vec![d.group, d.zone_or_user];
        all.extend(d.account);
        if let CidForm::Dc05 {
            message_type,
            account,
            checksum,
        } = d.form
        {
            all.push(message_type);
            all.extend(account);
            all.extend(checksum);
        }
        for s in all {
            let r = s.as_bytes().as_ptr_range();
            assert!(range.start <= r.start && r.end <= range.end, "{s:?}");
        }
    }

    #[test]
    fn dc09_examples() {
        // docs/protocol/contact-id.md §2.
        let d = ok("#1234|1130 01 015");
        assert_eq!(d.account, Some("1234"));
        assert_eq!((d.qualifier, d.qualifier_kind), (1, Some(Qualifier::New)));
        assert_eq!((d.code, d.group, d.zone_or_user), (130, "01", "015"));
        assert_eq!(d.form, CidForm::Dc09);
        assert_eq!(d.info().unwrap().description, "Burglary");
        assert_eq!(d.zone_or_user_kind(), AddressKind::Zone);
        assert_eq!(d.arming(), None);

        let d = ok("#AAA|3401 01 070");
        assert_eq!(d.account, Some("AAA"));
        assert_eq!(d.qualifier_kind, Some(Qualifier::Restore));
        assert_eq!(d.arming(), Some(Arming::Closing));
        assert_eq!(d.zone_or_user_kind(), AddressKind::User);
        assert_eq!(d.zone_or_user, "070");

        let d = ok("#4F39|3401 01 057");
        assert_eq!(
            (d.account, d.code, d.zone_or_user),
            (Some("4F39"), 401, "057")
        );
        let d = ok("#00AAAA|3407 01 001");
        assert_eq!((d.account, d.code), (Some("00AAAA"), 407));
        assert_eq!(d.arming(), Some(Arming::Closing));
        let d = ok("#7099|1628 01 000");
        assert_eq!((d.code, d.zone_or_user), (628, "000"));
        let d = ok("#0001|1603 01 000");
        assert_eq!(d.code, 603);
        let d = ok("#1234|1130 02 001");
        assert_eq!(d.group, "02");
        let d = ok("#12345A|1130 01 015");
        assert_eq!(d.account, Some("12345A"));
        let d = ok("#9413|1130 01 015");
        assert_eq!(d.account, Some("9413"));
        let d = ok("#1234|3408 01 000");
        assert_eq!(d.arming(), Some(Arming::Closing));
        let d = ok("#1234|1401 01 003");
        assert_eq!(d.arming(), Some(Arming::Opening));
        let d = ok("#1234|1570 01 004");
        assert_eq!((d.qualifier_kind, d.arming()), (Some(Qualifier::New), None));
        let d = ok("#1234|3570 01 004");
        assert_eq!(d.qualifier_kind, Some(Qualifier::Restore));
        let d = ok("#1234|6130 01 004");
        assert_eq!(d.qualifier_kind, Some(Qualifier::Status));
    }

    #[test]
    fn vendor_quirks() {
        // Hikvision NULL poll dummy.
        let d = ok("#0000|0000 00 000");
        assert_eq!((d.qualifier, d.qualifier_kind, d.code), (0, None, 0));
        assert!(d.info().is_none());
        // Trikdis / DSC vendor code with 99 999.
        let d = ok("1700 99 999");
        assert_eq!(
            (d.account, d.code, d.group, d.zone_or_user),
            (None, 700, "99", "999")
        );
        // No spaces, no prefix, bare `|`, odd spacing between fields.
        assert_eq!(ok("113001015").zone_or_user, "015");
        assert_eq!(ok("|1130 01 015").account, None);
        assert_eq!(ok("1234|1130 01 015").account, Some("1234"));
        let d = ok("#1234|  1 130  01015  ");
        assert_eq!((d.code, d.group, d.zone_or_user), (130, "01", "015"));
        // Hex B-F in group and zone.
        let d = ok("#1234|1130 0B 0FC");
        assert_eq!((d.group, d.zone_or_user), ("0B", "0FC"));
        // A no-space form of ten digits ("1130001015", once written for "113001015") is one
        // too many for QXYZ GG CCC: it is refused.
        assert_eq!(
            parse_cid_data("1130001015"),
            Err(CidError::DigitCount { got: 10 })
        );
    }

    #[test]
    fn checksum_examples() {
        // docs/protocol/contact-id.md §1.
        assert_eq!(cid_checksum_digit("1234 18 1137 01 015"), Some('2'));
        assert_eq!(cid_checksum_digit("123418313701015"), Some('F'));
        assert_eq!(cid_checksum_digit("123418113001015"), Some('E'));
        assert_eq!(cid_checksum_digit("123418160200000"), Some('2'));
        assert_eq!(cid_checksum_digit("123418340101057"), Some('5'));
        assert_eq!(cid_checksum_digit("12341811370101"), None);
        assert_eq!(cid_checksum_digit("1234181137010152"), None);
        assert_eq!(cid_checksum_digit("12341811370101A"), None);
        assert_eq!(cid_checksum_digit(""), None);
        // A sum needing value 10 writes `0`.
        let first15 = "000000000000009"; // 14 × 10 + 9 = 149, 149 mod 15 = 14 → 1
        assert_eq!(cid_checksum_digit(first15), Some('1'));
        let first15 = "000000000000005"; // 145 mod 15 = 10 → 5
        assert_eq!(cid_checksum_digit(first15), Some('5'));
        let first15 = "111111111111111"; // 15 → 0 → F
        assert_eq!(cid_checksum_digit(first15), Some('F'));
        let first15 = "111111111111116"; // 20 mod 15 = 5 → 10 → '0'
        assert_eq!(cid_checksum_digit(first15), Some('0'));
    }

    #[test]
    fn dc05_messages() {
        let d = ok("1234 18 1137 01 015 2");
        assert_eq!(
            d.form,
            CidForm::Dc05 {
                message_type: "18",
                account: Some("1234"),
                checksum: Some("2")
            }
        );
        assert_eq!(d.account, Some("1234"));
        assert_eq!(
            (d.qualifier, d.code, d.group, d.zone_or_user),
            (1, 137, "01", "015")
        );
        let d = ok("123418313701015F");
        assert_eq!(d.qualifier_kind, Some(Qualifier::Restore));
        for first15 in ["123418113001015", "123418160200000", "123418340101057"] {
            let full = format!("{first15}{}", cid_checksum_digit(first15).unwrap());
            ok(&full);
            let mt98 = full.replacen("18", "98", 1);
            let fixed = format!(
                "{}{}",
                &mt98[..15],
                cid_checksum_digit(&mt98[..15]).unwrap()
            );
            assert!(matches!(
                ok(&fixed).form,
                CidForm::Dc05 {
                    message_type: "98",
                    ..
                }
            ));
        }
        assert_eq!(
            parse_cid_data("1234181137010153"),
            Err(CidError::Checksum {
                expected: '2',
                got: '3'
            })
        );
        assert_eq!(
            parse_cid_data("#9999|1234 18 3137 01 015 2"),
            Err(CidError::Checksum {
                expected: 'F',
                got: '2'
            })
        );
        // The prefix account wins, the embedded one stays in the form.
        let d = ok("#9999|1234 18 3137 01 015 F");
        assert_eq!(d.account, Some("9999"));
        assert!(matches!(
            d.form,
            CidForm::Dc05 {
                account: Some("1234"),
                ..
            }
        ));
        // Message type in band (Bosch `18QXYZGGCCC`), and 15 digits without checksum.
        let d = ok("#1234|18113001015");
        assert_eq!(
            d.form,
            CidForm::Dc05 {
                message_type: "18",
                account: None,
                checksum: None
            }
        );
        assert_eq!((d.account, d.code), (Some("1234"), 130));
        let d = ok("98 1130 01 015");
        assert_eq!(d.code, 130);
        let d = ok("123418113001015");
        assert_eq!((d.account, d.code), (Some("1234"), 130));
        assert_eq!(
            parse_cid_data("17 1130 01 015"),
            Err(CidError::MessageType {
                first: '1',
                second: '7'
            })
        );
        assert_eq!(
            parse_cid_data("1234 17 1137 01 015 2"),
            Err(CidError::MessageType {
                first: '1',
                second: '7'
            })
        );
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(parse_cid_data(""), Err(CidError::Empty));
        assert_eq!(parse_cid_data("#"), Err(CidError::InvalidAccount));
        assert_eq!(parse_cid_data("#1234"), Err(CidError::InvalidAccount));
        assert_eq!(parse_cid_data("|"), Err(CidError::DigitCount { got: 0 }));
        assert_eq!(
            parse_cid_data("#1234|"),
            Err(CidError::DigitCount { got: 0 })
        );
        assert_eq!(
            parse_cid_data("#1234|1130 01 01"),
            Err(CidError::DigitCount { got: 8 })
        );
        assert_eq!(
            parse_cid_data("#1234|11 30 01 015"),
            Err(CidError::SplitField { offset: 7 })
        );
        assert_eq!(
            parse_cid_data("#1234|1130 0 1 015"),
            Err(CidError::SplitField { offset: 11 })
        );
        assert_eq!(
            parse_cid_data("#1234|1130 01 0A5"),
            Err(CidError::InvalidDigit { offset: 15 })
        );
        assert_eq!(
            parse_cid_data("#1234|11B0 01 015"),
            Err(CidError::InvalidEventCode)
        );
        assert_eq!(
            parse_cid_data("#1234|1130\t01 015"),
            Err(CidError::InvalidDigit { offset: 10 })
        );
        assert_eq!(
            parse_cid_data("#1234|1130 01 01é"),
            Err(CidError::InvalidDigit { offset: 16 })
        );
        assert_eq!(
            parse_cid_data("#12 34|1130 01 015"),
            Err(CidError::InvalidAccount)
        );
        assert_eq!(
            parse_cid_data("#1234|1130 01 015|x"),
            Err(CidError::InvalidDigit { offset: 17 })
        );
        // Eleven digits are read as `MT QXYZ GG CCC`; these do not fit it.
        assert!(parse_cid_data("1130 01 015 11").is_err());
        let huge = "1".repeat(1 << 20);
        assert_eq!(
            parse_cid_data(&huge),
            Err(CidError::TooLong {
                len: 1 << 20,
                max: MAX_CID_DATA_LEN
            })
        );
        assert_eq!(
            parse_cid_data("11111111111111111"),
            Err(CidError::DigitCount { got: 17 })
        );
    }

    /// A valid report in one of the four shapes, with its expected parse.
    fn valid_report() -> impl Strategy<Value = (String, u8, u16, String, String, Option<String>)> {
        let cid = "[0-9B-F]";
        (
            prop_oneof![Just(1u8), Just(3), Just(6), 0u8..=9],
            0u16..1000,
            proptest::string::string_regex(&format!("{cid}{{2}}")).unwrap(),
            proptest::string::string_regex(&format!("{cid}{{3}}")).unwrap(),
            proptest::option::of("[0-9A-F]{1,16}"),
            0usize..4,
            any::<bool>(),
            "[0-9B-F]{4}",
            prop_oneof![Just("18"), Just("98")],
        )
            .prop_map(|(q, code, gg, ccc, acct, shape, spaced, aaaa, mt)| {
                let sep = if spaced { " " } else { "" };
                let report = format!("{q}{code:03}{sep}{gg}{sep}{ccc}");
                let body = match shape {
                    0 => report,
                    1 => format!("{mt}{sep}{report}"),
                    2 => format!("{aaaa}{sep}{mt}{sep}{report}"),
                    _ => {
                        let first15 = format!("{aaaa}{mt}{q}{code:03}{gg}{ccc}");
                        let s = cid_checksum_digit(&first15).unwrap();
                        format!("{aaaa}{sep}{mt}{sep}{report}{sep}{s}")
                    }
                };
                let data = match &acct {
                    Some(a) => format!("#{a}|{body}"),
                    None => body,
                };
                let expected_account = acct.or((shape >= 2).then_some(aaaa));
                (data, q, code, gg, ccc, expected_account)
            })
    }

    proptest! {
        #[test]
        fn never_panics_on_any_string(s in any::<String>()) {
            if let Ok(d) = parse_cid_data(&s) {
                assert_borrowed(&s, &d);
            }
        }

        #[test]
        fn never_panics_on_cid_like_strings(s in "[#|0-9A-F ]{0,40}") {
            if let Ok(d) = parse_cid_data(&s) {
                assert_borrowed(&s, &d);
                prop_assert!(d.code < 1000);
            }
        }

        #[test]
        fn valid_reports_round_trip(
            (data, q, code, gg, ccc, account) in valid_report()
        ) {
            let d = parse_cid_data(&data).unwrap();
            assert_borrowed(&data, &d);
            prop_assert_eq!(d.qualifier, q);
            prop_assert_eq!(d.qualifier_kind, Qualifier::from_digit(q));
            prop_assert_eq!(d.code, code);
            prop_assert_eq!(d.group, gg.as_str());
            prop_assert_eq!(d.zone_or_user, ccc.as_str());
            prop_assert_eq!(d.account, account.as_deref());
        }

        /// Any single-digit change of a valid 16-digit message is caught by the checksum
        /// (or makes it unparseable): the mod-15 sum changes whenever one digit does.
        #[test]
        fn checksum_catches_one_digit_errors(
            first15 in "[0-9B-F]{4}18[0-9][0-9]{3}[0-9B-F]{5}",
            pos in 0usize..16,
            replacement in "[0-9B-F]",
        ) {
            let msg = format!("{first15}{}", cid_checksum_digit(&first15).unwrap());
            prop_assert!(parse_cid_data(&msg).is_ok());
            let mut bytes = msg.into_bytes();
            let r = replacement.as_bytes()[0];
            prop_assume!(bytes[pos] != r);
            bytes[pos] = r;
            let corrupted = String::from_utf8(bytes).unwrap();
            prop_assert!(parse_cid_data(&corrupted).is_err(), "{}", corrupted);
        }
    }
}
