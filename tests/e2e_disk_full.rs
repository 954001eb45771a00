//! End to end: a full disk. The journal lives on a 6 MiB tmpfs with 1 MiB segments and
//! panels keep sending. While no segment can be made the frames get NAK (never an ACK),
//! the log stays short, and once space returns, by hand or because retention may delete
//! what every consumer has taken, the same process acknowledges again within seconds. Every
//! frame that got an ACK reaches the event output exactly once.
//!
//! Needs root, to mount the tmpfs (tests and CI run as root); it fails, never skips,
//! without it.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use tocsin::journal::CursorStore;

const PANELS: usize = 6;
/// The bar: ACKs are back this soon after space returns.
const BACK_WITHIN: Duration = Duration::from_secs(10);
/// The bar: log lines (any level) while the disk fills and stays full.
const MAX_LOG_LINES: usize = 200;

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let uid = Command::new("id").arg("-u").output().expect("run id");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "this test mounts a {size} tmpfs to fill a disk: run it as root (CI does)"
        );
        let dir = tempdir();
        let path = dir.path().join("small");
        std::fs::create_dir(&path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "mount -t tmpfs -o size={size} failed: this test needs root and a kernel that allows tmpfs mounts");
        Tmpfs { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// What the panels saw.
#[derive(Default)]
struct Ledger {
    acked: HashSet<(String, String)>,
    naks: u64,
    last_ack: Option<Instant>,
    odd: Vec<String>,
}

struct Load {
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    panels: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let panels = (0..PANELS)
            .map(|i| {
                let stop = Arc::clone(&stop);
                let ledger = Arc::clone(&ledger);
                std::thread::spawn(move || panel(addr, i, &stop, &ledger))
            })
            .collect();
        Load {
            stop,
            ledger,
            panels,
        }
    }

    fn acked(&self) -> usize {
        self.ledger.lock().unwrap().acked.len()
    }

    fn naks(&self) -> u64 {
        self.ledger.lock().unwrap().naks
    }

    fn finish(self) -> Ledger {
        self.stop.store(true, Ordering::Release);
        for p in self.panels {
            p.join().expect("panel thread panicked");
        }
        Arc::try_unwrap(self.ledger)
            .ok()
            .expect("ledger still shared")
            .into_inner()
            .unwrap()
    }
}

/// One panel, as a real one behaves: a new frame after each ACK, the same frame again a
/// moment after a NAK.
fn panel(addr: SocketAddr, i: usize, stop: &AtomicBool, ledger: &Mutex<Ledger>) {
    let mut generation = 0;
    let mut seq: u16 = 1;
    let mut conn: Option<Tcp> = None;
    while !stop.load(Ordering::Acquire) {
        if seq > 9999 {
            generation += 1;
            seq = 1;
        }
        let account = format!("6{i:02}{generation:03}");
        let c = match &mut conn {
            Some(c) => c,
            None => match Tcp::try_connect(addr) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        let fb = Fb::sia(&account, seq, &format!("Nri1/BA{:02}", seq % 100));
        if c.try_send(&fb.clear()).is_err() {
            conn = None;
            continue;
        }
        match c.try_reply() {
            Ok(r) if r == fb.expected_reply("ACK") => {
                let mut l = ledger.lock().unwrap();
                l.acked.insert((account, fb.seq.clone()));
                l.last_ack = Some(Instant::now());
                seq += 1;
            }
            Ok(r) if view(&r).token == "NAK" => {
                ledger.lock().unwrap().naks += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(r) => {
                ledger
                    .lock()
                    .unwrap()
                    .odd
                    .push(format!("{account}/{}: {}", fb.seq, esc(&r)));
                conn = None;
            }
            Err(_) => conn = None,
        }
    }
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t0.elapsed()
}

/// Waits until the panels get only NAKs: some NAK, and no ACK for a second.
fn wait_full(load: &Load, d: &Daemon, what: &str) {
    let naks = load.naks();
    wait_for(what, WAIT * 4, || {
        let l = load.ledger.lock().unwrap();
        l.naks > naks
            && l.last_ack
                .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
    });
    let (code, body) = d.get("/readyz").unwrap();
    assert_eq!(code, 503, "{what}: /readyz while full: {body}");
    assert!(body.contains("out of space"), "{body}");
}

fn status_journal(d: &Daemon) -> serde_json::Value {
    let (code, body) = d.get("/status").unwrap();
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["journal"].clone()
}

fn log_lines(d: &Daemon) -> usize {
    d.stderr().lines().count()
}

#[test]
fn a_full_disk_gets_nak_then_acks_come_back_without_a_restart() {
    let small = Tmpfs::mount("6m");
    let dir = tempdir();
    let cfg = write_file(
        dir.path(),
        "tocsin.toml",
        "[receiver]\nid = \"e2e-disk-full\"\n\n[journal]\nsegment_size = \"1MiB\"\n",
    );
    let data = small.path.join("data");
    // Something else on the disk, and a consumer of the journal that is not running (an
    // archiver reading it now and then): its cursor holds every segment.
    let ballast = small.path.join("ballast");
    std::fs::write(&ballast, vec![0x42u8; 1536 << 10]).unwrap();
    CursorStore::open(&data)
        .unwrap()
        .store_cursor("archive", 1)
        .unwrap();

    let d = Daemon::start(&cfg, &data);
    let pid = d.pid();
    let lines_at_start = log_lines(&d);
    let load = Load::start(d.addr);

    // The journal fills the disk: NAK, and only NAK.
    wait_full(&load, &d, "the disk never filled");
    let acked_full = load.acked();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(load.acked(), acked_full, "an ACK while the disk was full");
    let fill_lines = log_lines(&d) - lines_at_start;
    assert!(
        fill_lines <= MAX_LOG_LINES,
        "{fill_lines} log lines while the disk filled:\n{}",
        d.stderr()
    );
    let j = status_journal(&d);
    assert_eq!(j["space_low"], true, "{j}");
    assert_eq!(j["writable"], false, "{j}");
    let m = d.metrics();
    assert_eq!(m.sum("tocsin_journal_space_low", &[]), 1.0);
    assert!(m.sum("tocsin_journal_refused_total", &[("reason", "min_free")]) > 0.0);
    let (code, text, _) = run_cli(&["status", "--http", &d.http.to_string()]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("OUT OF SPACE"), "{text}");

    // Space is freed by hand: ACKs are back within seconds, same process.
    let acked = load.acked();
    std::fs::remove_file(&ballast).unwrap();
    let by_hand = wait_for("ACKs after the ballast was removed", BACK_WITHIN, || {
        load.acked() > acked
    });

    // Full again; now the archiver catches up: retention deletes what every consumer has
    // taken, and ACKs are back.
    wait_full(&load, &d, "the disk never filled again");
    let durable = status_journal(&d)["durable_lsn"].as_u64().unwrap();
    let acked = load.acked();
    CursorStore::open(&data)
        .unwrap()
        .store_cursor("archive", durable + 1)
        .unwrap();
    let by_retention = wait_for(
        "ACKs after the archiver's cursor moved on",
        BACK_WITHIN,
        || load.acked() > acked,
    );
    wait_for("space no longer low", BACK_WITHIN, || {
        status_journal(&d)["space_low"] == false
    });
    assert_eq!(d.get("/readyz").unwrap().0, 200);
    let ledger = load.finish();
    assert!(ledger.odd.is_empty(), "odd replies: {:?}", ledger.odd);
    assert_eq!(d.pid(), pid, "the daemon was restarted");
    let total_lines = log_lines(&d) - lines_at_start;

    // Every acknowledged frame reached the event output, once.
    let events = d.wait_events(ledger.acked.len(), |_| true);
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    for e in &events {
        *seen
            .entry((s(e, "account").to_string(), s(e, "seq").to_string()))
            .or_default() += 1;
    }
    let lost: Vec<_> = ledger
        .acked
        .iter()
        .filter(|k| !seen.contains_key(*k))
        .collect();
    assert!(lost.is_empty(), "ACKed but lost: {lost:?}");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "output twice: {twice:?}");
    eprintln!(
        "disk full: {} ACKed, {} NAKs; {fill_lines} log lines while filling ({total_lines} in all); ACKs back {by_hand:?} after space was freed by hand, {by_retention:?} after the consumer caught up",
        ledger.acked.len(),
        ledger.naks
    );
    drop_daemon(d, &data);
}

/// A clean stop, and the journal reopens with nothing torn.
fn drop_daemon(mut d: Daemon, data: &Path) {
    d.stop();
    let out = Command::new(BIN)
        .args(["history", "--format", "json", "--data-dir"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
