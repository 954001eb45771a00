//! `account_map`: which account the automation software knows a site by, when it is not
//! the DC-09 account (hex accounts, accounts longer than the packet's field, or a station
//! that numbered its sites differently in the automation).
//!
//! The file is CSV, `dc09_account,automation_account`, one site per line; an optional
//! header line with those two names, blank lines and `#` comments are allowed. The
//! automation account must be 1 to 10 digits (a Contact ID packet's widest field). Read
//! once when the configuration is loaded; an error names the file and the line.

use std::collections::HashMap;
use std::path::Path;

use super::packet::cid_account;

/// DC-09 account → automation account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountMap {
    map: HashMap<String, String>,
}

/// Why an account map cannot be used: the line (1-based) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct MapError {
    pub line: usize,
    pub message: String,
}

impl AccountMap {
    pub fn get(&self, dc09_account: &str) -> Option<&str> {
        self.map.get(dc09_account).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// A map from pairs, unchecked (tests and tools).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> AccountMap {
        AccountMap {
            map: pairs
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    /// Reads the CSV file at `path`. The error text is `path:line: what`.
    pub fn load(path: &Path) -> Result<AccountMap, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        AccountMap::parse(&text)
            .map_err(|e| format!("{}:{}: {}", path.display(), e.line, e.message))
    }

    pub fn parse(text: &str) -> Result<AccountMap, MapError> {
        let mut map = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |message: String| MapError { line, message };
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let mut cols = l.split(',').map(str::trim);
            let (Some(from), Some(to), None) = (cols.next(), cols.next(), cols.next()) else {
                return Err(err(
                    "expected two columns: dc09_account,automation_account".into()
                ));
            };
            if map.is_empty() && from == "dc09_account" && to == "automation_account" {
                continue;
            }
            let valid_from =
                (1..=16).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_alphanumeric());
            if !valid_from {
                return Err(err(format!(
                    "DC-09 account `{from}` must be 1-16 letters or digits"
                )));
            }
            if cid_account(to).is_none() {
                return Err(err(format!(
                    "automation account `{to}` must be 1 to 10 digits"
                )));
            }
            if map.insert(from.to_string(), to.to_string()).is_some() {
                return Err(err(format!("DC-09 account {from} is mapped twice")));
            }
        }
        Ok(AccountMap { map })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_header_and_comments() {
        let m = AccountMap::parse(
            "dc09_account,automation_account\n# a comment\n\nAB12, 7001\n123456789012,42\n",
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.get("AB12"), Some("7001"));
        assert_eq!(m.get("123456789012"), Some("42"));
        assert_eq!(m.get("x"), None);
    }

    #[test]
    fn errors_name_the_line() {
        let e = AccountMap::parse("1,2\n3,4,5\n").unwrap_err();
        assert_eq!(e.line, 2);
        let e = AccountMap::parse("1,2\n\nAB,12345678901\n").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("1 to 10 digits"), "{e}");
        let e = AccountMap::parse("1,2\n1,3\n").unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        let e = AccountMap::parse("a b,2\n").unwrap_err();
        assert_eq!(e.line, 1);
    }
}
