//! Fuzz the TCP stream cutter with arbitrary bytes in arbitrary chunks: it never panics,
//! accounts for every byte it consumes (frames plus dropped junk), and every frame it
//! delivers starts with LF and ends with CR.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tocsin::net::codec::{Cut, Dc09Codec};
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, stream)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let mut codec = Dc09Codec::new();
    let mut buf = BytesMut::new();
    let mut seen = 0usize;
    let mut account = |cut: Cut| match cut {
        Cut::Frame(f) => {
            assert_eq!(f.first(), Some(&b'\n'));
            assert_eq!(f.last(), Some(&b'\r'));
            seen += f.len();
        }
        Cut::Junk { len, .. } => seen += len,
    };
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Ok(Some(cut)) = codec.decode(&mut buf) {
            account(cut);
        }
    }
    while let Ok(Some(cut)) = codec.decode_eof(&mut buf) {
        account(cut);
    }
    // NULs and CRs before a frame start are dropped silently; everything else is counted.
    assert!(seen <= stream.len());
    assert!(buf.is_empty());
});
