//! The SIA and Contact ID code tables, and the enums the whole project uses to classify events.
//!
//! Why it exists: a receiver must turn `BA` or `1130` into something an operator console can
//! route (class, category, what the address means) without a network look-up. The tables are
//! `tables/sia-codes.csv` (SIA DC-03 two-letter codes, `docs/protocol/sia-dcs.md` §3) and
//! `tables/contact-id-codes.csv` (Contact ID / SIA DC-05 event codes, `docs/protocol/contact-id.md`
//! §4–§5), compiled into the binary with `include_str!`, then parsed once (on first use) into
//! direct-index arrays: 26×26 slots for SIA, 1000 slots for Contact ID, so a look-up is one
//! bounds-checked index, no hashing.
//!
//! The tables hold every code of the DC-03-2017 and DC-05-2016 lists (as published in the
//! public-domain `siadc09` package, see `proto-fixtures/README.md`), the earlier and vendor
//! codes seen in the field, and the user-assigned Contact ID range 750–789 by name. Columns:
//! `code,description,class,zone_or_user|address_type,class_reason`; `class_reason` says why a
//! code is in class `other` (a record, an access-control report, a user-assigned code…) and
//! is empty for every other class (a test holds both).
//!
//! Pure: no I/O, no clock, no panics. A malformed CSV row is skipped at run time (the tests
//! assert that every row of the compiled-in files parses, so in practice none is skipped).
//!
//! # Category mapping
//!
//! The CSVs carry a `class` (alarm, trouble, …) but no category (burglary, fire, …). The
//! category is derived from the code alone by [`sia_category`] and [`cid_category`], so it is
//! also defined for codes missing from the tables (vendor codes).
//!
//! Contact ID ([`cid_category`]), by event-code range:
//!
//! | codes | category |
//! |---|---|
//! | 100–103 | medical (103 fall detected) |
//! | 110–118 | fire |
//! | 120–129 | panic (duress, hold-up, 129 panic verifier) |
//! | 130–139 | burglary, except 137 → tamper |
//! | 140 general alarm | other |
//! | 141–143, 147 (polling loop, expansion module, sensor supervision) | system |
//! | 144, 145 | tamper |
//! | 146 silent burglary | burglary |
//! | 150–169 | environmental (gas, water, temperature, CO, humidity, …), except 155 foil break and 156 day trouble → burglary |
//! | 200–210 | fire (sprinkler / fire supervisory) |
//! | 301, 302, 309, 311, 312, 314 (AC, battery, power supply) | power |
//! | 300, 303–308, 310, 313, 315 | system |
//! | 316, 317 (system and panel tamper) | tamper |
//! | 320–344 (sounders, relays, peripherals) | system, except 337, 338, 342 (module DC/battery/AC) → power, 341 → tamper, 344 RF jam → communication |
//! | 345 (AES encryption disabled) | communication |
//! | 350–360 | communication |
//! | 370–394 (loops and sensors) | system, except 373, 385, 386 → fire, 374 → burglary, 375, 376 → panic, 383 → tamper, 384 RF low battery → power, 394 CO detector end of life → environmental |
//! | 400–409, 440–466 | arming |
//! | 410–416 (remote access, download) | system |
//! | 420–436 | access |
//! | 500–579 | bypass, except 554, 555 (fiber network faults) → communication |
//! | 600–616 | test |
//! | 620–632 (event log, clock, program mode, schedules), 655 | system |
//! | 643 restricted door | access |
//! | 646 additional help needed | panic |
//! | 7xx/9xx | per code: 704, 913–916 test; 796, 798, 954 communication; 900–904, 917, 919, 927, 961, 962 system; 910, 911, 923, 925 bypass; 912, 918, 922, 924 fire; 920, 928, 929 arming; 921 access; 926 power |
//! | anything else | other |
//!
//! SIA ([`sia_category`]), by first letter (the DC-03 family), with per-code exceptions where the
//! letter is ambiguous (decided from the description in the CSV):
//!
//! | letter | category | exceptions |
//! |---|---|---|
//! | A | system (analog, panel substitution) | AT/AR AC → power; AF arming event → arming; AB abort → other |
//! | B | burglary | |
//! | C | arming (closings) | CM missing alarm → burglary; CO/CX commands → system |
//! | D | access (doors) | DU dealer id → other |
//! | E | system (expansion devices) | EA/EE/EZ exit alarm/error → burglary; ES/EJ expansion tamper → tamper; EX → other |
//! | F | fire | |
//! | G | environmental (gas) | |
//! | H | panic (hold-up) | |
//! | I | system (equipment failure) | |
//! | J | system (logs, clock, user codes) | JA/JC user-code tamper → tamper; JK latchkey, JP user on premises → other |
//! | K | environmental (heat) | |
//! | L | system (local programming) | LT/LR phone line → communication; LE/LF listen-in → other |
//! | M | medical | MI message → other |
//! | N | arming (perimeter / arming events) | NA/NS no activity → other; NC/NR/NT network → communication |
//! | O | arming (openings) | OU/OV output state → system |
//! | P | panic | PC/PD/PE/PG photo (Ajax) → other; PF/PO malfunction → system |
//! | Q | medical (emergency; CID 101 maps to QA) | |
//! | R | system (remote programming, relays, power-up) | RP/RX/RY → test; RT data lost → communication |
//! | S | fire (sprinkler) | SC change of state → other |
//! | T | tamper | TC/TE/TP/TS/TX → test; TW/TZ area watch → other |
//! | U | other (untyped zones) | |
//! | V | system (printer) | |
//! | W | environmental (water) | |
//! | X | other (extra points, account) | XH/XQ/XL RF link → communication; XJ/XS receiver tamper → tamper; XR/XT transmitter battery → power; XI/XC → system; XW forced point → burglary; XX fail to test → test |
//! | Y | system (bell, parameters, service) | YB/YC/YD/YE/YK/YS → communication; YI/YJ/YM/YP/YQ/YR/YT → power; YN/YO → other |
//! | Z | environmental (freeze) | ZY/ZZ common event → other |
//!
//! Two deliberate asymmetries: a SIA bypass or test keeps its family (`FB` fire bypass is
//! `fire`, its class says `bypass`), because the letter carries that information and an operator
//! wants to see an impaired fire system as fire; Contact ID 500–579 and 600–616 are `bypass` and
//! `test` because the brief's range table says so and most of those codes name no family.
//! [`Category::Supervision`] is never produced by the tables: it is for tocsin's own
//! site-supervision events.

use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// What kind of event this is, for routing (bus subjects) and filtering.
///
/// The `class` column of both CSVs maps onto the first eight values except `restore` and
/// `supervision`: the tables never say `restore` (a restore is a qualifier or a code property,
/// see [`EventClass::restored`]), and `supervision` is for tocsin's own site-supervision events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventClass {
    Alarm,
    Restore,
    Trouble,
    Supervisory,
    OpenClose,
    Bypass,
    Test,
    Supervision,
    Other,
}

impl EventClass {
    /// Every value, in declaration order (for metrics labels and tests).
    pub const ALL: [EventClass; 9] = [
        EventClass::Alarm,
        EventClass::Restore,
        EventClass::Trouble,
        EventClass::Supervisory,
        EventClass::OpenClose,
        EventClass::Bypass,
        EventClass::Test,
        EventClass::Supervision,
        EventClass::Other,
    ];

    /// The snake_case token, identical to the serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventClass::Alarm => "alarm",
            EventClass::Restore => "restore",
            EventClass::Trouble => "trouble",
            EventClass::Supervisory => "supervisory",
            EventClass::OpenClose => "open_close",
            EventClass::Bypass => "bypass",
            EventClass::Test => "test",
            EventClass::Supervision => "supervision",
            EventClass::Other => "other",
        }
    }

    /// The inverse of [`as_str`](Self::as_str); `None` for anything else.
    pub fn from_name(s: &str) -> Option<Self> {
        EventClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The class of the restore of an event of this class: a cleared alarm, trouble or
    /// supervisory condition is reported as `restore` so that consoles can close the alarm;
    /// open/close, bypass, test and other keep their class (an unbypass is still about
    /// bypassing, a closing is not the "restore" of an opening).
    pub const fn restored(self) -> Self {
        match self {
            EventClass::Alarm | EventClass::Trouble | EventClass::Supervisory => {
                EventClass::Restore
            }
            other => other,
        }
    }
}

/// What the event is about, independent of its [`EventClass`]. Derived per code; see the
/// module documentation for the mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Burglary,
    Fire,
    Panic,
    Medical,
    Tamper,
    Power,
    Communication,
    Environmental,
    Arming,
    Access,
    Bypass,
    Test,
    System,
    Supervision,
    Other,
}

impl Category {
    /// Every value, in declaration order.
    pub const ALL: [Category; 15] = [
        Category::Burglary,
        Category::Fire,
        Category::Panic,
        Category::Medical,
        Category::Tamper,
        Category::Power,
        Category::Communication,
        Category::Environmental,
        Category::Arming,
        Category::Access,
        Category::Bypass,
        Category::Test,
        Category::System,
        Category::Supervision,
        Category::Other,
    ];

    /// The snake_case token, identical to the serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Category::Burglary => "burglary",
            Category::Fire => "fire",
            Category::Panic => "panic",
            Category::Medical => "medical",
            Category::Tamper => "tamper",
            Category::Power => "power",
            Category::Communication => "communication",
            Category::Environmental => "environmental",
            Category::Arming => "arming",
            Category::Access => "access",
            Category::Bypass => "bypass",
            Category::Test => "test",
            Category::System => "system",
            Category::Supervision => "supervision",
            Category::Other => "other",
        }
    }
}

/// The Contact ID event qualifier Q (`docs/protocol/contact-id.md` §3).
///
/// Only 1, 3 and 6 are defined; any other digit has no kind (the parser keeps the raw digit).
/// For open/close codes the same values mean opening (1) and closing (3): that inversion is
/// not a different qualifier, so it is answered by [`Qualifier::arming`] rather than by more
/// variants here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Qualifier {
    /// Q = 1: new event (alarm, trouble, bypass begins); opening for open/close codes.
    New,
    /// Q = 3: restore (condition cleared); closing for open/close codes.
    Restore,
    /// Q = 6: previously reported condition still present (status report).
    Status,
}

/// Direction of an open/close report: opening = disarm, closing = arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arming {
    Opening,
    Closing,
}

impl Arming {
    /// The snake_case token, identical to the serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Arming::Opening => "opening",
            Arming::Closing => "closing",
        }
    }
}

impl Qualifier {
    /// The qualifier for a raw Q digit value (1, 3, 6); `None` for any other.
    pub const fn from_digit(q: u8) -> Option<Self> {
        match q {
            1 => Some(Qualifier::New),
            3 => Some(Qualifier::Restore),
            6 => Some(Qualifier::Status),
            _ => None,
        }
    }

    /// The raw Q digit value.
    pub const fn digit(self) -> u8 {
        match self {
            Qualifier::New => 1,
            Qualifier::Restore => 3,
            Qualifier::Status => 6,
        }
    }

    /// The snake_case token, identical to the serde form.
    pub const fn as_str(self) -> &'static str {
        match self {
            Qualifier::New => "new",
            Qualifier::Restore => "restore",
            Qualifier::Status => "status",
        }
    }

    /// Whether this qualifier, on this Contact ID event code, is an opening or a closing.
    ///
    /// `Some` only for the codes whose Q selects the direction (`docs/protocol/contact-id.md`
    /// §3, "the inversion for the 4xx family"): 400–405 and 407–409 (open/close, by user,
    /// group, automatic, late, deferred, remote, quick arm, keyswitch), 440–444 (group, armed
    /// STAY, armed with a trouble overridden, armed night stay), 450–452 (exception, early,
    /// late) and 456 (partial arm). Not 406 (cancel) nor the one-directional 453–466
    /// reports (failed to open, exit error, …), whose Q keeps its ordinary new/restore
    /// meaning. Q = 6 (status) is neither direction.
    pub const fn arming(self, code: u16) -> Option<Arming> {
        let directional = matches!(code, 400..=405 | 407..=409 | 440..=444 | 450..=452 | 456);
        if !directional {
            return None;
        }
        match self {
            Qualifier::New => Some(Arming::Opening),
            Qualifier::Restore => Some(Arming::Closing),
            Qualifier::Status => None,
        }
    }
}

/// What the number after a code (SIA address, Contact ID CCC) designates.
///
/// `None` covers "no number" and every other kind of number the tables only name in the
/// description (door, relay, line, printer, expander, …), as `docs/protocol/sia-dcs.md` §3
/// says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    Zone,
    User,
    Area,
    None,
}

impl AddressKind {
    /// The snake_case token, identical to the serde form (and to the CSV column values).
    pub const fn as_str(self) -> &'static str {
        match self {
            AddressKind::Zone => "zone",
            AddressKind::User => "user",
            AddressKind::Area => "area",
            AddressKind::None => "none",
        }
    }

    /// The inverse of [`as_str`](Self::as_str); `None` (the Option) for anything else.
    pub fn from_name(s: &str) -> Option<Self> {
        [
            AddressKind::Zone,
            AddressKind::User,
            AddressKind::Area,
            AddressKind::None,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One row of `sia-codes.csv`, with the derived category and restore flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SiaCodeInfo {
    /// Two upper-case letters.
    pub code: &'static str,
    pub description: &'static str,
    /// The CSV `class` column (never `restore`: see [`SiaCodeInfo::is_restore`]).
    pub class: EventClass,
    /// The CSV `address_type` column.
    pub address: AddressKind,
    pub category: Category,
    /// Whether this code reports the end of a condition. See [`is_restore_description`].
    pub is_restore: bool,
    /// Why the code is in class `other`; empty for the other classes.
    pub class_reason: &'static str,
}

impl SiaCodeInfo {
    /// The class to publish: [`EventClass::restored`] of the table class for restore codes.
    pub const fn effective_class(&self) -> EventClass {
        if self.is_restore {
            self.class.restored()
        } else {
            self.class
        }
    }
}

/// One row of `contact-id-codes.csv`, with the derived category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CidCodeInfo {
    /// The event code XYZ, 0–999.
    pub code: u16,
    pub description: &'static str,
    /// The CSV `class` column (a restore is told by the qualifier, not the code).
    pub class: EventClass,
    /// Whether CCC is a zone or a user number (`docs/protocol/contact-id.md` §5); `None` for
    /// the codes whose CCC is something else (downloader or device id, user-assigned).
    pub zone_or_user: AddressKind,
    pub category: Category,
    /// Why the code is in class `other`; empty for the other classes.
    pub class_reason: &'static str,
}

/// Number of data rows in the compiled-in `sia-codes.csv`.
pub const SIA_CODE_COUNT: usize = 325;
/// Number of data rows in the compiled-in `contact-id-codes.csv`.
pub const CID_CODE_COUNT: usize = 340;

const SIA_CSV: &str = include_str!("tables/sia-codes.csv");
const CID_CSV: &str = include_str!("tables/contact-id-codes.csv");

/// 26 × 26 slots, one per possible pair of upper-case letters.
const SIA_SLOTS: usize = 26 * 26;
/// One slot per three-digit event code.
const CID_SLOTS: usize = 1000;

static SIA_TABLE: LazyLock<Vec<Option<SiaCodeInfo>>> = LazyLock::new(|| {
    let mut slots = vec![None; SIA_SLOTS];
    for info in data_rows(SIA_CSV).filter_map(parse_sia_row) {
        if let Some(slot) = sia_slot(info.code).and_then(|i| slots.get_mut(i)) {
            // First row wins on a duplicate (a test asserts there is none).
            if slot.is_none() {
                *slot = Some(info);
            }
        }
    }
    slots
});

static CID_TABLE: LazyLock<Vec<Option<CidCodeInfo>>> = LazyLock::new(|| {
    let mut slots = vec![None; CID_SLOTS];
    for info in data_rows(CID_CSV).filter_map(parse_cid_row) {
        if let Some(slot) = slots.get_mut(usize::from(info.code)) {
            if slot.is_none() {
                *slot = Some(info);
            }
        }
    }
    slots
});

/// Look up a SIA two-letter code (`"BA"`). `None` for anything not in the table, including
/// lower-case or wrong-length input.
pub fn sia_code(code: &str) -> Option<&'static SiaCodeInfo> {
    SIA_TABLE.get(sia_slot(code)?)?.as_ref()
}

/// Look up a Contact ID event code (`130`). `None` for codes not in the table (and ≥ 1000).
pub fn cid_code(code: u16) -> Option<&'static CidCodeInfo> {
    CID_TABLE.get(usize::from(code))?.as_ref()
}

/// Every SIA code of the table, in code order.
pub fn sia_codes() -> impl Iterator<Item = &'static SiaCodeInfo> {
    SIA_TABLE.iter().flatten()
}

/// Every Contact ID code of the table, in code order.
pub fn cid_codes() -> impl Iterator<Item = &'static CidCodeInfo> {
    CID_TABLE.iter().flatten()
}

/// Index of a two-upper-case-letter code in the 26×26 array.
fn sia_slot(code: &str) -> Option<usize> {
    match code.as_bytes() {
        // The patterns bound both bytes to A..=Z, so the subtractions cannot underflow.
        &[a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
            Some(usize::from(a - b'A') * 26 + usize::from(b - b'A'))
        }
        _ => None,
    }
}

/// The data lines of a CSV: header skipped, blank lines and a trailing `\r` tolerated.
fn data_rows(csv: &'static str) -> impl Iterator<Item = &'static str> {
    csv.lines()
        .skip(1)
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
}

/// Split a row into exactly five fields. The tables have no quoted fields and no commas in
/// descriptions or reasons (a test checks it), so a plain split is the whole CSV dialect we
/// need.
fn five_fields(row: &'static str) -> Option<[&'static str; 5]> {
    let mut it = row.split(',');
    let fields = [it.next()?, it.next()?, it.next()?, it.next()?, it.next()?];
    match it.next() {
        None => Some(fields),
        Some(_) => None,
    }
}

fn parse_sia_row(row: &'static str) -> Option<SiaCodeInfo> {
    let [code, description, class, address, class_reason] = five_fields(row)?;
    sia_slot(code)?;
    Some(SiaCodeInfo {
        code,
        description,
        class: EventClass::from_name(class)?,
        address: AddressKind::from_name(address)?,
        category: sia_category(code),
        is_restore: is_restore_description(description),
        class_reason,
    })
}

fn parse_cid_row(row: &'static str) -> Option<CidCodeInfo> {
    let [code, description, class, zone_or_user, class_reason] = five_fields(row)?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    Some(CidCodeInfo {
        code,
        description,
        class: EventClass::from_name(class)?,
        zone_or_user: AddressKind::from_name(zone_or_user)?,
        category: cid_category(code),
        class_reason,
    })
}

/// Whether a SIA code description names the end of a condition.
///
/// Rule (checked against every row of `sia-codes.csv` in the tests), case-insensitive:
/// - `restor` — Restore, Restoral, Restored: the `H`/`R`/`J` families and most pairs
///   (`BH`, `BR`, `BJ`, `AR`, `YR`, `LR`, `YK` "Communications Restoral", `VR`, `PO`, …);
/// - `unbypass` — the `U` second letter (`BU`, `FU`, …), the end of a bypass;
/// - `canceled` — `JC` "User code tamper canceled", which ends `JA`. The bare noun "Cancel"
///   (`BC` Burglary Cancel, `FC`, `OC` Cancel Report) is *not* a restore: it is a user
///   cancelling an alarm, an action to report as itself;
/// - `resumed` — `NS` "Activity Resumed", which ends `NA` "No Activity";
/// - `paper in`, `online`, `completed` — `VI`, `VY`, `YZ`, which end `VO`, `VZ`, `YX`
///   (the pairs of `docs/protocol/contact-id.md` §6).
///
/// "End" is not in the list: `FK`/`TE` test end, `LE` listen-in ended, `TZ` area watch end
/// close an activity, not a condition an operator would have open.
pub fn is_restore_description(description: &str) -> bool {
    const MARKERS: [&str; 7] = [
        "restor",
        "unbypass",
        "canceled",
        "resumed",
        "paper in",
        "online",
        "completed",
    ];
    MARKERS
        .iter()
        .any(|m| contains_ignore_ascii_case(description, m))
}

/// `haystack` contains `needle` (ASCII lower-case) ignoring ASCII case, without allocating.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(needle.len().max(1))
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The category of a SIA code, from its family letter with per-code exceptions (see the
/// module documentation). Defined for every input: anything that is not two upper-case
/// letters is `other`.
pub fn sia_category(code: &str) -> Category {
    use Category::*;
    let &[f, s] = code.as_bytes() else {
        return Other;
    };
    if !s.is_ascii_uppercase() {
        return Other;
    }
    match (f, s) {
        (b'A', b'R' | b'T') => Power,
        (b'A', b'F') => Arming,
        (b'A', b'B') => Other,
        (b'A', _) => System,
        (b'B', _) => Burglary,
        (b'C', b'M') => Burglary,
        (b'C', b'O' | b'X') => System,
        (b'C', _) => Arming,
        (b'D', b'U') => Other,
        (b'D', _) => Access,
        (b'E', b'A' | b'E' | b'Z') => Burglary,
        (b'E', b'S' | b'J') => Tamper,
        (b'E', b'X') => Other,
        (b'E', _) => System,
        (b'F', _) => Fire,
        (b'G', _) => Environmental,
        (b'H', _) => Panic,
        (b'I', _) => System,
        (b'J', b'A' | b'C') => Tamper,
        (b'J', b'K' | b'P') => Other,
        (b'J', _) => System,
        (b'K', _) => Environmental,
        (b'L', b'T' | b'R') => Communication,
        (b'L', b'E' | b'F') => Other,
        (b'L', _) => System,
        (b'M', b'I') => Other,
        (b'M', _) => Medical,
        (b'N', b'A' | b'S') => Other,
        (b'N', b'C' | b'R' | b'T') => Communication,
        (b'N', _) => Arming,
        (b'O', b'U' | b'V') => System,
        (b'O', _) => Arming,
        (b'P', b'C' | b'D' | b'E' | b'G') => Other,
        (b'P', b'F' | b'O') => System,
        (b'P', _) => Panic,
        (b'Q', _) => Medical,
        (b'R', b'P' | b'X' | b'Y') => Test,
        (b'R', b'T') => Communication,
        (b'R', _) => System,
        (b'S', b'C') => Other,
        (b'S', _) => Fire,
        (b'T', b'C' | b'E' | b'P' | b'S' | b'X') => Test,
        (b'T', b'W' | b'Z') => Other,
        (b'T', _) => Tamper,
        (b'U', _) => Other,
        (b'V', _) => System,
        (b'W', _) => Environmental,
        (b'X', b'H' | b'Q' | b'L') => Communication,
        (b'X', b'J' | b'S') => Tamper,
        (b'X', b'R' | b'T') => Power,
        (b'X', b'I' | b'C') => System,
        (b'X', b'W') => Burglary,
        (b'X', b'X') => Test,
        (b'X', _) => Other,
        (b'Y', b'B' | b'C' | b'D' | b'E' | b'K' | b'S') => Communication,
        (b'Y', b'I' | b'J' | b'M' | b'P' | b'Q' | b'R' | b'T') => Power,
        (b'Y', b'N' | b'O') => Other,
        (b'Y', _) => System,
        (b'Z', b'Y' | b'Z') => Other,
        (b'Z', _) => Environmental,
        _ => Other,
    }
}

/// The category of a Contact ID event code, by range with per-code exceptions (see the
/// module documentation). Defined for every `u16`.
pub const fn cid_category(code: u16) -> Category {
    use Category::*;
    match code {
        100..=103 => Medical,
        110..=118 => Fire,
        120..=129 => Panic,
        137 => Tamper,
        130..=139 => Burglary,
        141..=143 | 147 => System,
        144 | 145 => Tamper,
        146 => Burglary,
        155 | 156 => Burglary,
        150..=169 => Environmental,
        200..=210 => Fire,
        301 | 302 | 309 | 311 | 312 | 314 => Power,
        316 | 317 => Tamper,
        300..=315 => System,
        337 | 338 | 342 => Power,
        341 => Tamper,
        344 | 345 => Communication,
        320..=343 => System,
        350..=360 => Communication,
        373 | 385 | 386 => Fire,
        374 => Burglary,
        375 | 376 => Panic,
        383 => Tamper,
        384 => Power,
        394 => Environmental,
        370..=393 => System,
        400..=409 | 440..=466 => Arming,
        410..=416 => System,
        420..=436 | 643 => Access,
        554 | 555 => Communication,
        500..=579 => Bypass,
        600..=616 => Test,
        620..=632 | 655 => System,
        646 => Panic,
        704 | 913..=916 => Test,
        796 | 798 | 954 => Communication,
        900..=904 | 917 | 919 | 927 | 961 | 962 => System,
        910 | 911 | 923 | 925 => Bypass,
        912 | 918 | 922 | 924 => Fire,
        920 | 928 | 929 => Arming,
        921 => Access,
        926 => Power,
        _ => Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sia_row_parses() {
        let rows: Vec<_> = data_rows(SIA_CSV).collect();
        assert_eq!(rows.len(), SIA_CODE_COUNT);
        for row in &rows {
            assert!(parse_sia_row(row).is_some(), "bad SIA row: {row}");
        }
        assert_eq!(sia_codes().count(), SIA_CODE_COUNT, "duplicate SIA code");
    }

    #[test]
    fn every_cid_row_parses() {
        let rows: Vec<_> = data_rows(CID_CSV).collect();
        assert_eq!(rows.len(), CID_CODE_COUNT);
        for row in &rows {
            assert!(parse_cid_row(row).is_some(), "bad CID row: {row}");
        }
        assert_eq!(cid_codes().count(), CID_CODE_COUNT, "duplicate CID code");
    }

    #[test]
    fn class_other_always_says_why() {
        for info in sia_codes() {
            assert_eq!(
                info.class == EventClass::Other,
                !info.class_reason.is_empty(),
                "SIA {}: class {} with reason {:?}",
                info.code,
                info.class.as_str(),
                info.class_reason
            );
        }
        for info in cid_codes() {
            assert_eq!(
                info.class == EventClass::Other,
                !info.class_reason.is_empty(),
                "Contact ID {}: class {} with reason {:?}",
                info.code,
                info.class.as_str(),
                info.class_reason
            );
        }
    }

    #[test]
    fn dc05_2016_additions_and_user_assigned_range() {
        use Category::*;
        for (code, class, category) in [
            (103, EventClass::Alarm, Medical),
            (129, EventClass::Alarm, Panic),
            (168, EventClass::Alarm, Environmental),
            (169, EventClass::Alarm, Environmental),
            (315, EventClass::Trouble, System),
            (316, EventClass::Alarm, Tamper),
            (317, EventClass::Alarm, Tamper),
            (345, EventClass::Trouble, Communication),
            (358, EventClass::Trouble, Communication),
            (394, EventClass::Trouble, Environmental),
            (443, EventClass::OpenClose, Arming),
            (444, EventClass::OpenClose, Arming),
            (554, EventClass::Trouble, Communication),
            (555, EventClass::Trouble, Communication),
            (903, EventClass::Other, System),
            (904, EventClass::Trouble, System),
        ] {
            let info = cid_code(code).unwrap_or_else(|| panic!("{code} missing"));
            assert_eq!((info.class, info.category), (class, category), "{code}");
        }
        for code in 750..=789 {
            let info = cid_code(code).unwrap();
            assert!(info.description.starts_with("User-assigned"), "{code}");
            assert!(info.class_reason.contains("user-assigned"), "{code}");
            assert_eq!(info.zone_or_user, AddressKind::None);
        }
        assert_eq!(Qualifier::Restore.arming(444), Some(super::Arming::Closing));
        assert!(sia_code("YO").unwrap().description.contains("automation"));
    }

    #[test]
    fn sia_lookups() {
        let ba = sia_code("BA").unwrap();
        assert_eq!(ba.description, "Burglary Alarm");
        assert_eq!(ba.class, EventClass::Alarm);
        assert_eq!(ba.address, AddressKind::Zone);
        assert_eq!(ba.category, Category::Burglary);
        assert!(!ba.is_restore);
        assert_eq!(ba.effective_class(), EventClass::Alarm);

        let bh = sia_code("BH").unwrap();
        assert!(bh.is_restore);
        assert_eq!(bh.effective_class(), EventClass::Restore);

        let cl = sia_code("CL").unwrap();
        assert_eq!(cl.class, EventClass::OpenClose);
        assert_eq!(cl.address, AddressKind::User);
        assert_eq!(cl.category, Category::Arming);
        assert!(!cl.is_restore);

        assert_eq!(sia_code("RP").unwrap().category, Category::Test);
        assert_eq!(sia_code("AT").unwrap().category, Category::Power);
        assert_eq!(sia_code("YS").unwrap().category, Category::Communication);
        assert_eq!(sia_code("HA").unwrap().category, Category::Panic);
        assert_eq!(
            sia_code("PC").unwrap().description,
            "Photo on demand enabled"
        );
        assert_eq!(sia_code("ZZ").unwrap().code, "ZZ");
        assert_eq!(sia_code("AA").unwrap().code, "AA");

        for bad in ["", "B", "ba", "BAA", "B1", "É", "AÉ", "\u{0}\u{0}"] {
            assert!(sia_code(bad).is_none(), "{bad:?}");
        }
        assert!(sia_code("QQ").is_none());
    }

    #[test]
    fn sia_restore_rule() {
        let restores: Vec<&str> = sia_codes()
            .filter(|i| i.is_restore)
            .map(|i| i.code)
            .collect();
        for c in [
            "BH", "BR", "BJ", "BU", "AR", "YR", "LR", "YK", "FH", "FJ", "FQ", "FV", "TR", "JC",
            "NS", "VI", "VY", "YZ", "XR", "ER", "EN", "EJ", "PO", "XC", "YQ", "DR", "OV",
        ] {
            assert!(restores.contains(&c), "{c} should be a restore");
        }
        for c in [
            "BA", "BC", "FC", "OC", "FK", "TE", "LE", "TZ", "OP", "CL", "AT", "JA", "NA", "VO",
        ] {
            assert!(!restores.contains(&c), "{c} should not be a restore");
        }
        // Every alarm-family restore code pairs with the letter's alarm code, but for JC,
        // which cancels the JA user-code tamper alarm.
        for info in sia_codes().filter(|i| i.is_restore && i.class == EventClass::Alarm) {
            assert!(
                matches!(info.code.as_bytes().get(1), Some(b'H' | b'R')) || info.code == "JC",
                "{}",
                info.code
            );
        }
    }

    #[test]
    fn cid_lookups() {
        let c = cid_code(130).unwrap();
        assert_eq!(c.description, "Burglary");
        assert_eq!(c.class, EventClass::Alarm);
        assert_eq!(c.zone_or_user, AddressKind::Zone);
        assert_eq!(c.category, Category::Burglary);
        assert_eq!(cid_code(401).unwrap().zone_or_user, AddressKind::User);
        assert_eq!(cid_code(121).unwrap().zone_or_user, AddressKind::User);
        assert_eq!(cid_code(900).unwrap().zone_or_user, AddressKind::None);
        assert_eq!(cid_code(137).unwrap().category, Category::Tamper);
        assert_eq!(cid_code(602).unwrap().class, EventClass::Test);
        assert!(cid_code(0).is_none());
        assert!(cid_code(999).is_none());
        assert!(cid_code(1000).is_none());
        assert!(cid_code(u16::MAX).is_none());
    }

    #[test]
    fn cid_categories_follow_ranges() {
        use Category::*;
        for (code, cat) in [
            (100, Medical),
            (111, Fire),
            (122, Panic),
            (131, Burglary),
            (137, Tamper),
            (144, Tamper),
            (145, Tamper),
            (151, Environmental),
            (162, Environmental),
            (200, Fire),
            (301, Power),
            (302, Power),
            (305, System),
            (351, Communication),
            (373, Fire),
            (383, Tamper),
            (380, System),
            (401, Arming),
            (441, Arming),
            (421, Access),
            (570, Bypass),
            (602, Test),
            (654, Other),
            (999, Other),
        ] {
            assert_eq!(cid_category(code), cat, "{code}");
        }
        // The table is fully covered by the ranges: no code in the CSV is left unexplained
        // as `other` unless its class is `other` too (or it is 140 "General alarm", which
        // names no family).
        for info in cid_codes() {
            if info.category == Other && info.code != 140 {
                assert_eq!(info.class, EventClass::Other, "{}", info.code);
            }
        }
    }

    #[test]
    fn sia_categories_cover_families() {
        use Category::*;
        for (code, cat) in [
            ("BA", Burglary),
            ("FA", Fire),
            ("PA", Panic),
            ("HA", Panic),
            ("MA", Medical),
            ("TA", Tamper),
            ("AT", Power),
            ("GA", Environmental),
            ("WA", Environmental),
            ("KA", Environmental),
            ("ZA", Environmental),
            ("SA", Fire),
            ("OP", Arming),
            ("CL", Arming),
            ("NL", Arming),
            ("RP", Test),
            ("RX", Test),
            ("YC", Communication),
            ("YS", Communication),
            ("LT", Communication),
            ("YT", Power),
            ("YM", Power),
            ("DF", Access),
            ("JA", Tamper),
            ("ES", Tamper),
            ("QA", Medical),
            ("ba", Other),
            ("B", Other),
            ("", Other),
        ] {
            assert_eq!(sia_category(code), cat, "{code}");
        }
        // Every alarm in the table has a real category.
        for info in sia_codes().filter(|i| i.class == EventClass::Alarm) {
            if info.category == Other {
                assert!(info.code.starts_with('U'), "{}", info.code);
            }
        }
    }

    #[test]
    fn qualifier_and_arming() {
        assert_eq!(Qualifier::from_digit(1), Some(Qualifier::New));
        assert_eq!(Qualifier::from_digit(3), Some(Qualifier::Restore));
        assert_eq!(Qualifier::from_digit(6), Some(Qualifier::Status));
        assert_eq!(Qualifier::from_digit(0), None);
        assert_eq!(Qualifier::from_digit(2), None);
        for q in [Qualifier::New, Qualifier::Restore, Qualifier::Status] {
            assert_eq!(Qualifier::from_digit(q.digit()), Some(q));
        }
        // 1401 is a disarm, 3401 an arm (contact-id.md §3).
        assert_eq!(Qualifier::New.arming(401), Some(Arming::Opening));
        assert_eq!(Qualifier::Restore.arming(401), Some(Arming::Closing));
        assert_eq!(Qualifier::Restore.arming(407), Some(Arming::Closing));
        assert_eq!(Qualifier::Status.arming(401), None);
        assert_eq!(Qualifier::New.arming(130), None);
        assert_eq!(Qualifier::New.arming(570), None);
        assert_eq!(Qualifier::New.arming(406), None);
    }

    #[test]
    fn enum_tokens_match_serde() {
        for c in EventClass::ALL {
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(EventClass::from_name(c.as_str()), Some(c));
            let back: EventClass = serde_json::from_str(&json).unwrap();
            assert_eq!(back, c);
        }
        for c in Category::ALL {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        for q in [Qualifier::New, Qualifier::Restore, Qualifier::Status] {
            assert_eq!(
                serde_json::to_string(&q).unwrap(),
                format!("\"{}\"", q.as_str())
            );
        }
        for k in [
            AddressKind::Zone,
            AddressKind::User,
            AddressKind::Area,
            AddressKind::None,
        ] {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.as_str())
            );
        }
        assert_eq!(
            serde_json::to_string(&Arming::Closing).unwrap(),
            "\"closing\""
        );
        assert_eq!(EventClass::OpenClose.as_str(), "open_close");
    }

    #[test]
    fn malformed_rows_are_skipped_not_fatal() {
        assert!(parse_sia_row("BA,Burglary Alarm,alarm").is_none());
        assert!(parse_sia_row("BA,Burglary, Alarm,alarm,zone").is_none());
        assert!(parse_sia_row("ba,Burglary Alarm,alarm,zone").is_none());
        assert!(parse_sia_row("BA,Burglary Alarm,weird,zone").is_none());
        assert!(parse_sia_row("BA,Burglary Alarm,alarm,door").is_none());
        assert!(parse_cid_row("13,Burglary,alarm,zone").is_none());
        assert!(parse_cid_row("1300,Burglary,alarm,zone").is_none());
        assert!(parse_cid_row("+13,Burglary,alarm,zone").is_none());
        assert!(parse_cid_row("130,Burglary,alarm").is_none());
        assert!(parse_cid_row("").is_none());
    }
}
