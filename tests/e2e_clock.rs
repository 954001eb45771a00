//! The wall clock of a running daemon stepped an hour forward, then an hour back, with
//! libfaketime (Debian `faketime`): the real `tocsin run` binary, a panel on a real TCP
//! socket, the step made by rewriting the offset file the preloaded library reads at every
//! clock call. The monotonic clock is left alone (`FAKETIME_DONT_FAKE_MONOTONIC=1`), as a
//! real NTP step leaves it.
//!
//! What must hold (a supervised site, 10 s interval, default `[time]`):
//! - stepped +1 h while the site sends a clear NULL poll every 2 s: no failure;
//! - stepped back 1 h and the site silent: its failure is reported within 25 s of its
//!   last poll (it would be an hour late on a wall-clock timer);
//! - each step is logged once, counted in `tocsin_clock_steps_total`, and shown by
//!   `/status` and `tocsin status`.
//!
//! The figures (time to the failure) are printed for the record.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{free_port, http_get, run_cli, Fb, Metrics, Tcp, WAIT};
use serde_json::Value;

const ACCOUNT: &str = "4711";

/// libfaketime's preload library, where Debian puts it.
fn libfaketime() -> PathBuf {
    let candidates = [
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    ];
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "libfaketime is not installed (looked for {candidates:?}): this test steps the \
                 clock of a running daemon with it. Install the Debian package `faketime` \
                 (apt-get install faketime); scripts/test does it when run as root."
            )
        })
}

/// A daemon whose wall clock is `offset` seconds off, as the file says at every call.
struct Faked {
    child: Child,
    addr: SocketAddr,
    http: SocketAddr,
    offset_file: PathBuf,
    events: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
}

impl Faked {
    fn start(dir: &Path) -> Faked {
        let config = dir.join("tocsin.toml");
        std::fs::write(
            &config,
            format!(
                "[receiver]\nid = \"clock\"\n[accounts]\nunknown = \"reject\"\n\
                 [[account]]\nid = \"{ACCOUNT}\"\nsupervision = \"10s\"\n"
            ),
        )
        .unwrap();
        let offset_file = dir.join("faketime");
        std::fs::write(&offset_file, "+0\n").unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let http = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut child = Command::new(common::BIN)
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--http")
            .arg(http.to_string())
            .env("RUST_LOG", "info")
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", &offset_file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tocsin");
        let events = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let text = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut t = text.lock().unwrap();
                t.push_str(&line);
                t.push('\n');
            }
        });
        let d = Faked {
            child,
            addr,
            http,
            offset_file,
            events,
            stderr,
        };
        let deadline = Instant::now() + WAIT;
        while !matches!(http_get(d.http, "/readyz"), Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "tocsin (under libfaketime) not ready: {}",
                d.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }

    /// Sets the wall-clock offset of the running daemon, in seconds.
    fn step_to(&self, offset: i64) {
        let tmp = self.offset_file.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset:+}\n")).unwrap();
        std::fs::rename(&tmp, &self.offset_file).unwrap();
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn failures(&self) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["account"] == ACCOUNT && e["code"] == "comm_fail")
            .cloned()
            .collect()
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let (_, body) = http_get(self.http, "/metrics").expect("GET /metrics");
        Metrics::parse(&body).sum(name, labels)
    }

    fn status(&self) -> Value {
        let (_, body) = http_get(self.http, "/status").expect("GET /status");
        serde_json::from_str(&body).expect("/status is JSON")
    }

    fn wait_steps(&self, direction: &str, n: f64) {
        let labels = [("direction", direction)];
        let deadline = Instant::now() + WAIT;
        while self.metric("tocsin_clock_steps_total", &labels) < n {
            assert!(
                Instant::now() < deadline,
                "{direction} step never counted: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Faked {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A panel polling every 2 s on one connection until told to stop; keeps the time of its
/// last ACK.
struct Poller {
    run: Arc<AtomicBool>,
    last_ack: Arc<Mutex<Option<Instant>>>,
    thread: std::thread::JoinHandle<u32>,
}

impl Poller {
    fn start(addr: SocketAddr) -> Poller {
        let run = Arc::new(AtomicBool::new(true));
        let last_ack = Arc::new(Mutex::new(None));
        let (r, l) = (Arc::clone(&run), Arc::clone(&last_ack));
        let thread = std::thread::spawn(move || {
            let mut panel = Tcp::connect(addr);
            let mut seq = 0u16;
            while r.load(Ordering::Acquire) {
                seq = seq % 9999 + 1;
                let reply = panel.exchange(&Fb::null(ACCOUNT, seq).clear());
                let text = String::from_utf8_lossy(&reply).into_owned();
                assert!(
                    text.contains("\"ACK\""),
                    "poll {seq} not acknowledged: {text}"
                );
                *l.lock().unwrap() = Some(Instant::now());
                // Two seconds between polls, cut short when told to stop.
                for _ in 0..20 {
                    if !r.load(Ordering::Acquire) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            u32::from(seq)
        });
        Poller {
            run,
            last_ack,
            thread,
        }
    }

    /// Waits for the next ACK: a step made just after it has a whole poll period before
    /// the next frame, in which a wall-clock timer would see every deadline pass.
    fn wait_next_ack(&self) {
        let before = *self.last_ack.lock().unwrap();
        let deadline = Instant::now() + WAIT;
        while *self.last_ack.lock().unwrap() == before {
            assert!(Instant::now() < deadline, "no poll acknowledged");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops polling; the time of the last ACK and the number of polls.
    fn stop(self) -> (Instant, u32) {
        self.run.store(false, Ordering::Release);
        let polls = self.thread.join().expect("poller");
        let last = self.last_ack.lock().unwrap().expect("at least one ACK");
        (last, polls)
    }
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn clock_steps_neither_fake_nor_hide_a_failure() {
    let dir = common::tempdir();
    let d = Faked::start(dir.path());
    let poller = Poller::start(d.addr);
    std::thread::sleep(Duration::from_secs(4));

    // +1 h while the site keeps polling: no false failure, one step told.
    poller.wait_next_ack();
    std::thread::sleep(Duration::from_millis(300));
    d.step_to(3600);
    d.wait_steps("forward", 1.0);
    // Longer than the interval and its grace after the step: on a wall-clock timer every
    // deadline would have passed at once.
    std::thread::sleep(Duration::from_secs(16));
    assert_eq!(
        d.failures(),
        Vec::<Value>::new(),
        "false failure after the forward step; log:\n{}",
        d.stderr()
    );
    let log = d.stderr();
    assert_eq!(
        count(&log, "wall clock stepped forward"),
        1,
        "the step is logged once:\n{log}"
    );

    // Back 1 h, and the site falls silent.
    let (last_ack, polls) = poller.stop();
    d.step_to(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    let failed_after = loop {
        if let Some(e) = d.failures().first().cloned() {
            break (last_ack.elapsed(), e);
        }
        assert!(
            Instant::now() < deadline,
            "no failure within 60 s of the last poll after the backward step; log:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let (elapsed, event) = failed_after;
    println!(
        "clock step bars: {polls} polls, no false failure across +1 h; after -1 h and silence \
         the failure came {:.1} s after the last poll (bar 25 s; interval 10 s + 1 s grace)",
        elapsed.as_secs_f64()
    );
    assert!(
        elapsed <= Duration::from_secs(25),
        "failure {elapsed:?} after the last poll (bar 25 s): {event}"
    );
    assert_eq!(event["class"], "supervision");
    assert_eq!(d.failures().len(), 1, "one failure");

    d.wait_steps("backward", 1.0);
    let log = d.stderr();
    assert_eq!(count(&log, "wall clock stepped backward"), 1, "{log}");
    assert_eq!(count(&log, "wall clock stepped"), 2, "{log}");
    let status = d.status();
    assert_eq!(status["clock"]["steps"], 2, "{status}");
    assert_eq!(
        status["clock"]["last_step"]["seconds"]
            .as_f64()
            .map(f64::round),
        Some(-3600.0)
    );
    let (code, text, _) = run_cli(&["status", "--http", &d.http.to_string()]);
    assert_eq!(code, 1, "a site in failure: {text}");
    assert!(
        text.contains("clock       STEPPED 2 times since start (1 forward, 1 backward)"),
        "{text}"
    );
    assert!(text.contains(ACCOUNT), "{text}");
}
