//! The walls between modules that the README's architecture table promises, checked on
//! the sources: the protocol is pure (no I/O, no clock, nothing of the rest of the crate),
//! the receiver does no file or socket I/O, the network layer does not reach into the
//! daemon's configuration and metrics (`ops/`). Test code (after `#[cfg(test)]`) is free.

use std::path::{Path, PathBuf};

fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir),
        &mut files,
    );
    assert!(!files.is_empty(), "no sources under src/{dir}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let code = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_string(),
                None => text,
            };
            (p, code)
        })
        .collect()
}

fn forbid(dir: &str, words: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, code) in sources(dir) {
        for (n, line) in code.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("//") {
                continue;
            }
            for w in words {
                if line.contains(w) {
                    found.push(format!("{}:{}: {w}", path.display(), n + 1));
                }
            }
        }
    }
    found
}

#[test]
fn the_protocol_is_pure() {
    let found = forbid(
        "protocol",
        &[
            "std::fs",
            "tokio",
            "TcpStream",
            "UdpSocket",
            "Instant::now",
            "SystemTime::now",
            "UtcDateTime::now",
            "crate::receiver",
            "crate::journal",
            "crate::ops",
            "crate::net",
            "crate::station",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_receiver_does_no_file_or_socket_io() {
    let found = forbid(
        "receiver",
        &[
            "std::fs",
            "tokio::fs",
            "tokio::net",
            "File::",
            "TcpStream",
            "UdpSocket",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_network_layer_does_not_reach_into_ops() {
    let found = forbid("net", &["crate::ops", "Metrics", "Config"]);
    assert!(found.is_empty(), "{found:#?}");
}
