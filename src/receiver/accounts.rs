//! The account table: which panels the station knows, their keys and their policies.
//!
//! Built to station scale: a million accounts load from CSV in a few seconds and each
//! lookup is one hash probe. The account number is stored inline (at most 16 characters,
//! `docs/protocol/dc09.md` §3), so an entry needs no heap allocation of its own.
//! The table is immutable once built; a reload builds a new one and swaps it in whole.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::supervision::{parse_interval, Interval};
use crate::protocol::crypto::{Key, KeyEncoding};
use crate::protocol::response::ReplyDialect;

/// Whether an account must encrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    /// Clear frames are refused (NAK) and recorded: a clear frame from a panel set up to
    /// encrypt is what a substitution looks like.
    Required,
    #[default]
    Optional,
}

/// What happens to frames from accounts that are not in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UnknownPolicy {
    /// ACK and forward, flagged as coming from an unknown account.
    #[default]
    Accept,
    /// NAK, and record an event saying an unknown account reported.
    Reject,
}

/// One configured account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Account {
    pub key: Option<Key>,
    pub encryption: Encryption,
    /// Overrides `[time] check_clear` for this account.
    pub time_check: Option<bool>,
    /// Expected reporting (supervision); `None`: not supervised.
    pub supervision: Option<Interval>,
    /// What the panel is expected to look like on the network; rarely set, so boxed to
    /// keep the common entry small.
    pub identity: Option<Box<Identity>>,
    /// The reply forms this panel gets where DC-09-2013 and DC-09-2026 differ; `None`: the
    /// table's default ([`AccountTable::reply_dialect`]).
    pub reply_dialect: Option<ReplyDialect>,
}

/// The expected identity of a panel: a frame that shows another is a substitution.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Identity {
    /// MAC address as the panel sends it in `[M…]` (12 hex digits, compared without case).
    pub mac: Option<String>,
    /// Source networks the panel reports from.
    pub networks: Vec<Network>,
}

/// An IP network in CIDR form (`192.0.2.0/24`, `2001:db8::/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Result<Network, String> {
        let (a, p) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an IP network (192.0.2.0/24)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("`{text}`: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Network { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (std::net::IpAddr::V4(_), std::net::IpAddr::V6(v6)) => {
                v6.to_ipv4_mapped().map(std::net::IpAddr::V4).unwrap_or(ip)
            }
            _ => ip,
        };
        match (self.addr, ip) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(i)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// An account number stored inline: up to 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountId {
    len: u8,
    bytes: [u8; 16],
}

/// One 64-bit word per id, so the table's hasher runs once per lookup.
impl std::hash::Hash for AccountId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let v = u128::from_le_bytes(self.bytes);
        state.write_u64((v as u64) ^ ((v >> 64) as u64).rotate_left(29) ^ u64::from(self.len));
    }
}

/// The account table's hasher: a multiply-fold of the id's word. SipHash, the default,
/// guards against keys chosen to collide; the table's keys come from the station's own
/// configuration, and a lookup of a foreign id only probes, so that guard buys nothing
/// here and cost about a third of a lookup.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

const FOLD: u64 = 0x9E37_79B9_7F4A_7C15;

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        let m = u128::from(v ^ self.0) * u128::from(FOLD);
        self.0 = (m as u64) ^ ((m >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = HashMap<AccountId, V, std::hash::BuildHasherDefault<IdHasher>>;

impl AccountId {
    pub fn new(id: &str) -> Option<AccountId> {
        let src = id.as_bytes();
        if src.is_empty() || src.len() > 16 {
            return None;
        }
        let mut bytes = [0u8; 16];
        bytes.get_mut(..src.len())?.copy_from_slice(src);
        Some(AccountId {
            len: src.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        let b = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(b).unwrap_or_default()
    }
}

/// All configured accounts and the policy for the others.
#[derive(Debug, Clone, Default)]
pub struct AccountTable {
    accounts: IdMap<Account>,
    pub unknown: UnknownPolicy,
    /// The reply forms of accounts that set none, and of unknown accounts (`[receiver]
    /// reply_dialect`).
    pub reply_dialect: ReplyDialect,
}

impl AccountTable {
    pub fn with_policy(unknown: UnknownPolicy) -> AccountTable {
        AccountTable {
            accounts: IdMap::default(),
            unknown,
            reply_dialect: ReplyDialect::default(),
        }
    }

    /// The reply forms for `account` (configured or not).
    pub fn reply_dialect_of(&self, account: Option<&Account>) -> ReplyDialect {
        account
            .and_then(|a| a.reply_dialect)
            .unwrap_or(self.reply_dialect)
    }

    /// Adds an account; returns the previous entry when the id was already present. Ids
    /// longer than 16 bytes are ignored (the config checks them first).
    pub fn insert(&mut self, id: &str, account: Account) -> Option<Account> {
        let id = AccountId::new(id)?;
        self.accounts.insert(id, account)
    }

    pub fn get(&self, id: &str) -> Option<&Account> {
        self.accounts.get(&AccountId::new(id)?)
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Every account, for supervision set-up.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.accounts.iter().map(|(id, a)| (id.as_str(), a))
    }

    pub fn reserve(&mut self, n: usize) {
        self.accounts.reserve(n);
    }
}

/// Loads `id,key,key_encoding,encryption[,time_check][,supervision][,reply_dialect]` rows (a
/// header line naming the columns is required, `#` starts a comment line). Errors name the
/// line.
pub fn load_csv(path: &Path, table: &mut AccountTable) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    load_csv_text(&text, table)
}

pub fn load_csv_text(text: &str, table: &mut AccountTable) -> Result<(), String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let (_, header) = lines.next().ok_or("empty file: expected a header line")?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let id_col = col("id").ok_or("header has no `id` column")?;
    let key_col = col("key");
    let enc_col = col("key_encoding");
    let encryption_col = col("encryption");
    let time_col = col("time_check");
    let supervision_col = col("supervision");
    let dialect_col = col("reply_dialect");
    table.reserve(text.len() / 48);
    for (n, line) in lines {
        let line_no = n + 1;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let field = |c: Option<usize>| {
            c.and_then(|c| fields.get(c))
                .copied()
                .filter(|f| !f.is_empty())
        };
        let id = field(Some(id_col)).ok_or_else(|| format!("line {line_no}: missing id"))?;
        if AccountId::new(id).is_none() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "line {line_no}: account id `{id}` must be 1–16 letters or digits"
            ));
        }
        let key = match field(key_col) {
            None => None,
            Some(k) => {
                let encoding = match field(enc_col) {
                    Some("hex") => KeyEncoding::Hex,
                    Some("ascii") => KeyEncoding::Ascii,
                    Some(other) => {
                        return Err(format!(
                            "line {line_no}: key_encoding `{other}` is not hex or ascii"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "line {line_no}: key_encoding is required with a key"
                        ))
                    }
                };
                Some(
                    Key::parse(k, encoding)
                        .map_err(|e| format!("line {line_no}: account {id}: {e}"))?,
                )
            }
        };
        let encryption = match field(encryption_col) {
            None | Some("optional") => Encryption::Optional,
            Some("required") => Encryption::Required,
            Some(other) => {
                return Err(format!(
                    "line {line_no}: encryption `{other}` is not required or optional"
                ))
            }
        };
        if encryption == Encryption::Required && key.is_none() {
            return Err(format!(
                "line {line_no}: account {id}: encryption required needs a key"
            ));
        }
        let time_check = match field(time_col) {
            None => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => {
                return Err(format!(
                    "line {line_no}: time_check `{other}` is not true or false"
                ))
            }
        };
        let supervision = match field(supervision_col) {
            None => None,
            Some(s) => {
                Some(parse_interval(s).map_err(|e| format!("line {line_no}: account {id}: {e}"))?)
            }
        };
        let reply_dialect = match field(dialect_col) {
            None => None,
            Some(d) => Some(ReplyDialect::parse(d).ok_or_else(|| {
                format!("line {line_no}: reply_dialect `{d}` is not 2013 or 2026")
            })?),
        };
        if table
            .insert(
                id,
                Account {
                    key,
                    encryption,
                    time_check,
                    supervision,
                    identity: None,
                    reply_dialect,
                },
            )
            .is_some()
        {
            return Err(format!("line {line_no}: account {id} appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows() {
        let mut t = AccountTable::default();
        load_csv_text(
            "# station accounts\nid,key,key_encoding,encryption\n1234,,,\n008312,000102030405060708090A0B0C0D0E0F,hex,required\n",
            &mut t,
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert!(t.get("8312").is_none(), "account numbers are exact strings");
        assert_eq!(t.get("008312").unwrap().encryption, Encryption::Required);
        let err = load_csv_text("id,key\n1,zz\n", &mut AccountTable::default()).unwrap_err();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn reply_dialect_column() {
        let mut t = AccountTable::default();
        load_csv_text("id,reply_dialect\n1,2026\n2,2013\n3,\n", &mut t).unwrap();
        assert_eq!(
            t.get("1").unwrap().reply_dialect,
            Some(ReplyDialect::Dc2026)
        );
        assert_eq!(
            t.get("2").unwrap().reply_dialect,
            Some(ReplyDialect::Dc2013)
        );
        assert_eq!(t.get("3").unwrap().reply_dialect, None);
        t.reply_dialect = ReplyDialect::Dc2026;
        assert_eq!(t.reply_dialect_of(t.get("3")), ReplyDialect::Dc2026);
        assert_eq!(t.reply_dialect_of(t.get("2")), ReplyDialect::Dc2013);
        assert_eq!(t.reply_dialect_of(None), ReplyDialect::Dc2026);
        let err =
            load_csv_text("id,reply_dialect\n1,2021\n", &mut AccountTable::default()).unwrap_err();
        assert!(err.contains("line 2") && err.contains("2021"), "{err}");
    }
}
