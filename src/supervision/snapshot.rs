//! The supervision snapshot on disk: `supervision.json` in the data directory, written
//! atomically (temporary file, fsync, rename, directory fsync) so a crash leaves the old
//! file or the new one, never half of one. What it holds and how it is brought up to date
//! at start is [`crate::receiver::supervision_state`]'s business.

use std::path::{Path, PathBuf};

use crate::receiver::supervision_state::Snapshot;

/// Where the snapshot lives in `data_dir`.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join("supervision.json")
}

/// Loads the snapshot; a missing or unreadable file is an empty snapshot (every path then
/// starts with a fresh interval, which is the safe side).
pub fn load(path: &Path) -> Snapshot {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "supervision snapshot unreadable; starting without it");
            Snapshot::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Snapshot::default(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "supervision snapshot unreadable; starting without it");
            Snapshot::default()
        }
    }
}

/// Writes the snapshot atomically.
pub fn store(path: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = serde_json::to_vec(snapshot).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::supervision_state::FailedPath;

    #[test]
    fn stored_then_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert_eq!(load(&path), Snapshot::default());
        let s = Snapshot {
            taken_micros: 12,
            failed: vec![FailedPath {
                account: "1".into(),
                path: "*".into(),
                since: 3,
                all: true,
                silent_since_ms: Some(2_500),
            }],
            lsn: Some(40),
            peers: vec!["rx-b".into()],
        };
        store(&path, &s).unwrap();
        assert_eq!(load(&path), s);
        std::fs::write(&path, b"{not json").unwrap();
        assert_eq!(load(&path), Snapshot::default());
    }
}
