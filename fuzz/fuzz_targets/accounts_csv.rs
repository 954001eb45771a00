//! Fuzz the accounts CSV reader (`[accounts] file`): any text either loads or is refused
//! with a reason; a loaded table holds no more accounts than the text has lines, and every
//! id in it is a valid account id. Nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin::receiver::accounts::{load_csv_text, AccountTable, UnknownPolicy};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut table = AccountTable::with_policy(UnknownPolicy::Reject);
    match load_csv_text(text, &mut table) {
        Ok(()) => {
            assert!(table.len() <= text.lines().count());
            for (id, _) in table.iter() {
                assert!((1..=16).contains(&id.len()), "{id:?}");
                assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()), "{id:?}");
            }
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
});
