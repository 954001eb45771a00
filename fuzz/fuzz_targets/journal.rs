//! Fuzz what the journal reads back from disk besides records (fuzzed in `record`): a
//! segment image as recovery scans it, and a segment summary. Never a panic; the scan's
//! end lies inside the image and its counts agree; a summary that decodes is re-encoded
//! to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::journal::recovery::scan_segment;
use tocsin::journal::summary;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let first = 1 + u64::from(which);
        let s = scan_segment(bytes, first);
        assert!(s.valid_end <= bytes.len().max(32));
        assert!(s.next_lsn >= first);
        assert!(s.records <= s.next_lsn - first);
        assert!(s.valid_end + s.tail_garbage <= bytes.len().max(s.valid_end));
    } else if let Some(s) = summary::decode(bytes) {
        assert!(s.records <= s.next_lsn - s.first_lsn);
        assert_eq!(summary::encode(&s), bytes);
    }
});
