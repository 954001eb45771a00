//! Fuzz the extended-data rules of DC-09-2026 on arbitrary bytes: a masked frame never shows
//! a key's value, a JSON block's end lies within its input, and a J value shaped like JSON
//! never names a network path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::protocol::ext::{json_end, mask_key_blocks, JValue, NetworkPath};

fuzz_target!(|data: &[u8]| {
    let masked = mask_key_blocks(data);
    // After every `[K` comes the mask, then the end, a `]` or a CR.
    for (i, w) in masked.windows(2).enumerate() {
        if w == b"[K" {
            let after = masked.get(i + 2..).unwrap_or_default();
            assert!(after.starts_with(b"*"), "{masked:?}");
            let next = after.get(1).copied();
            assert!(matches!(next, None | Some(b']' | b'\r')), "{masked:?}");
        }
    }
    if let Some(end) = json_end(data) {
        assert!(end <= data.len());
        assert!(matches!(data.get(end - 1), Some(b'}' | b']')));
    }
    let blocks: Vec<(u8, &[u8])> = data
        .split(|&b| b == b'|')
        .filter_map(|b| b.split_first().map(|(&id, v)| (id, v)))
        .collect();
    if let Some(NetworkPath::J(v)) = NetworkPath::of_blocks(blocks.iter().copied()) {
        assert_eq!(JValue::of(v.as_bytes()), JValue::Path);
    }
});
