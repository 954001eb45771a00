//! Fuzz decryption: arbitrary ciphertext text under every key size never panics, and a
//! successful open returns content that lies within the decrypted buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::protocol::crypto::{open, Key};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, cipher)) = data.split_first() else {
        return;
    };
    let len = [16usize, 24, 32][usize::from(selector % 3)];
    let Ok(key) = Key::from_bytes(&vec![selector; len]) else {
        return;
    };
    let mut plain = Vec::new();
    if let Ok(opened) = open(&key, cipher, &mut plain) {
        assert!(opened.content.len() + opened.pad_len <= cipher.len() / 2);
    }
});
