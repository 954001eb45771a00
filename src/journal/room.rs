//! Room before writing: every segment a batch will need is allocated before any of the
//! batch is written.
//!
//! Why: disk space runs out when a segment is created (inside a preallocated segment an
//! append takes none). Were the next segment created in the middle of writing a batch, the
//! part before it would already be in the file when the disk said no, and the journal could
//! no longer simply refuse the rest: it would have to take back records that reached the
//! file. So the writer first [`plan`]s where each record of the batch goes, then makes the
//! room in order, stopping at the first refusal (the disk full, or `[journal] min_free`
//! reached). The requests whose records all have room are written; the others are refused
//! with an error that says *nothing was written*, and the journal stays as it was: once
//! space returns, the next append simply succeeds.

use super::record;
use super::segment::SEGMENT_HEADER_LEN;
use super::Lsn;

/// One allocation a batch needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Need {
    /// The active segment holds no record and is too small for the first one: it grows to
    /// this size rather than leaving an empty segment behind.
    Grow(u64),
    /// A new segment for the record `first_lsn` onwards.
    New { first_lsn: Lsn, size: u64 },
}

impl Need {
    /// Bytes of disk this allocation takes, the active segment being `capacity` bytes.
    pub fn bytes(self, capacity: u64) -> u64 {
        match self {
            Need::Grow(size) => size.saturating_sub(capacity),
            Need::New { size, .. } => size,
        }
    }
}

/// Where a batch goes.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Plan {
    /// Allocations, in the order the records need them.
    pub needs: Vec<Need>,
    /// For each request, how many of `needs` must be made for all its records to fit.
    pub needs_after: Vec<usize>,
}

impl Plan {
    /// The requests that can be written once the first `made` allocations are done.
    pub fn requests_fitting(&self, made: usize) -> usize {
        self.needs_after.iter().take_while(|&&n| n <= made).count()
    }
}

/// The active segment as the writer holds it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Active {
    pub write_pos: u64,
    pub capacity: u64,
    pub next_lsn: Lsn,
    pub segment_size: u64,
}

/// Places the records of each request (their payload lengths), in order, the way the
/// writer will write them: a record that does not fit goes to a new segment (sized to
/// hold it if it is larger than a segment), except into an active segment holding nothing,
/// which grows instead.
pub(super) fn plan<R, L>(active: Active, requests: R) -> Plan
where
    R: IntoIterator<Item = L>,
    L: IntoIterator<Item = usize>,
{
    let header = SEGMENT_HEADER_LEN as u64;
    let mut pos = active.write_pos;
    let mut cap = active.capacity;
    let mut lsn = active.next_lsn;
    let mut p = Plan::default();
    for request in requests {
        for len in request {
            let need = record::encoded_len(len) as u64;
            if pos + need > cap {
                if pos == header && lsn == active.next_lsn {
                    cap = header + need;
                    p.needs.push(Need::Grow(cap));
                } else {
                    cap = active.segment_size.max(header + need);
                    p.needs.push(Need::New {
                        first_lsn: lsn,
                        size: cap,
                    });
                    pos = header;
                }
            }
            pos += need;
            lsn += 1;
        }
        p.needs_after.push(p.needs.len());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: u64 = SEGMENT_HEADER_LEN as u64;

    fn active(write_pos: u64, capacity: u64, next_lsn: Lsn) -> Active {
        Active {
            write_pos,
            capacity,
            next_lsn,
            segment_size: 4096,
        }
    }

    fn rec(len: usize) -> u64 {
        record::encoded_len(len) as u64
    }

    #[test]
    fn a_batch_that_fits_needs_nothing() {
        let p = plan(active(H, 4096, 1), [vec![10, 20], vec![30]]);
        assert!(p.needs.is_empty());
        assert_eq!(p.needs_after, [0, 0]);
        assert_eq!(p.requests_fitting(0), 2);
    }

    #[test]
    fn crossing_the_end_needs_a_segment_from_that_record() {
        let pos = 4096 - rec(100) - 10;
        let p = plan(active(pos, 4096, 50), [vec![100], vec![100, 100], vec![5]]);
        assert_eq!(
            p.needs,
            [Need::New {
                first_lsn: 51,
                size: 4096
            }]
        );
        assert_eq!(p.needs_after, [0, 1, 1]);
        assert_eq!(
            p.requests_fitting(0),
            1,
            "only the first request fits without it"
        );
        assert_eq!(p.requests_fitting(1), 3);
    }

    #[test]
    fn an_empty_segment_grows_and_a_large_record_gets_its_own() {
        let p = plan(active(H, 4096, 1), [vec![10_000], vec![9000]]);
        assert_eq!(
            p.needs,
            [
                Need::Grow(H + rec(10_000)),
                Need::New {
                    first_lsn: 2,
                    size: H + rec(9000)
                }
            ]
        );
        assert_eq!(p.needs[0].bytes(4096), H + rec(10_000) - 4096);
        assert_eq!(p.needs_after, [1, 2]);
    }
}
