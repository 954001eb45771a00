//! Fuzz the configuration reader: any text either becomes checked settings or an error
//! that names a line of that text; nothing panics. An `[accounts] file` is dropped before
//! the meaning is checked, so the fuzzer never reads files it names.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tocsin::ops::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.lines().count() + 1;
    let mut config = match Config::from_str(text, Path::new("fuzz.toml")) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    config.accounts.file = None;
    match config.resolve() {
        Ok(settings) => {
            assert!(settings.accounts.len() <= text.matches("[[account]]").count());
        }
        Err(ConfigError::Invalid { line, .. }) => {
            assert!(line <= lines, "line {line} of a {lines}-line text");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
