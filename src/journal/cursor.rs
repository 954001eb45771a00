//! Named, persisted consumer positions (`<data_dir>/journal/cursors/<name>`).
//!
//! A cursor is the **next LSN its consumer still needs**: every record with a smaller LSN has
//! been handled (e.g. published and acknowledged by the bus). Retention never deletes a segment
//! holding a record at or after the smallest cursor, so a consumer that registers a cursor
//! before it starts cannot miss records. It exists as its own file so that the forwarder can
//! commit progress without touching the writer.
//!
//! Each store is atomic and durable: write a temporary file, fsync it, rename it over the old
//! one, fsync the directory. A crash leaves either the old or the new value, never a mix. The
//! file holds the LSN as decimal text (readable with `cat`), followed by a newline.
//!
//! All functions block on file I/O (one fsync per store): call them from `spawn_blocking`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::{JournalError, Result};
use super::segment;
use super::Lsn;

const MAX_NAME_LEN: usize = 64;

/// Access to the cursors of one journal directory. Usable with or without a running writer.
#[derive(Debug, Clone)]
pub struct CursorStore {
    dir: PathBuf,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(JournalError::InvalidCursorName {
            name: name.to_owned(),
        })
    }
}

fn parse(name: &str, text: &str) -> Result<Lsn> {
    let digits = text.strip_suffix('\n').ok_or(JournalError::BadCursor {
        name: name.to_owned(),
        reason: "missing final newline",
    })?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(JournalError::BadCursor {
            name: name.to_owned(),
            reason: "not a decimal number",
        });
    }
    digits.parse().map_err(|_| JournalError::BadCursor {
        name: name.to_owned(),
        reason: "number out of range",
    })
}

impl CursorStore {
    /// Opens (creating if needed) the cursor directory under `<data_dir>/journal/cursors`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        let dir = segment::journal_dir(data_dir).join("cursors");
        fs::create_dir_all(&dir).map_err(|e| JournalError::io("create cursor dir", &dir, e))?;
        Ok(CursorStore { dir })
    }

    /// The stored position of `name`, or `None` if it was never stored.
    pub fn load_cursor(&self, name: &str) -> Result<Option<Lsn>> {
        check_name(name)?;
        let path = self.dir.join(name);
        match fs::read_to_string(&path) {
            Ok(text) => parse(name, &text).map(Some),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(JournalError::io("read cursor", &path, e)),
        }
    }

    /// Durably sets `name` to `lsn` (the next LSN its consumer needs).
    pub fn store_cursor(&self, name: &str, lsn: Lsn) -> Result<()> {
        check_name(name)?;
        // The leading dot keeps temporaries out of `cursors()`; names cannot contain one.
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let path = self.dir.join(name);
        let write = || -> io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(format!("{lsn}\n").as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| JournalError::io("write cursor", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| JournalError::io("rename cursor", &path, e))?;
        segment::sync_dir(&self.dir)
    }

    /// Unregisters a cursor (a consumer that is gone for good), so it no longer holds back
    /// retention.
    pub fn remove_cursor(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => segment::sync_dir(&self.dir),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(JournalError::io("remove cursor", &path, e)),
        }
    }

    /// Every registered cursor, sorted by name. An unreadable cursor is an error, not skipped:
    /// skipping it would let retention delete what that consumer still needs.
    pub fn cursors(&self) -> Result<Vec<(String, Lsn)>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| JournalError::io("read_dir", &self.dir, e))?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| JournalError::io("read_dir", &self.dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if check_name(&name).is_err() {
                continue;
            }
            if let Some(lsn) = self.load_cursor(&name)? {
                out.push((name, lsn));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The smallest registered cursor: the oldest record some consumer still needs.
    pub fn min_cursor(&self) -> Result<Option<Lsn>> {
        Ok(self.cursors()?.into_iter().map(|(_, l)| l).min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_load_list() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let c = CursorStore::open(tmp.path()).unwrap();
        assert_eq!(c.load_cursor("nats").unwrap(), None);
        c.store_cursor("nats", 10).unwrap();
        c.store_cursor("nats", 12).unwrap();
        c.store_cursor("stdout-1", 7).unwrap();
        assert_eq!(c.load_cursor("nats").unwrap(), Some(12));
        assert_eq!(c.min_cursor().unwrap(), Some(7));
        assert_eq!(
            c.cursors().unwrap(),
            vec![("nats".to_owned(), 12), ("stdout-1".to_owned(), 7)]
        );
        c.remove_cursor("stdout-1").unwrap();
        assert_eq!(c.min_cursor().unwrap(), Some(12));
    }

    #[test]
    fn names_are_checked() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let c = CursorStore::open(tmp.path()).unwrap();
        for bad in ["", "../x", "a/b", ".hidden", "a.b", &"x".repeat(65)] {
            assert!(matches!(
                c.store_cursor(bad, 1),
                Err(JournalError::InvalidCursorName { .. })
            ));
        }
    }

    #[test]
    fn damaged_cursor_is_an_error() {
        let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
        let c = CursorStore::open(tmp.path()).unwrap();
        fs::write(c.dir.join("x"), "12").unwrap();
        assert!(matches!(
            c.load_cursor("x"),
            Err(JournalError::BadCursor { .. })
        ));
        fs::write(c.dir.join("x"), "1a\n").unwrap();
        assert!(matches!(c.cursors(), Err(JournalError::BadCursor { .. })));
    }
}
