//! Download tracking: which byte ranges of the report one open handle has
//! actually returned to the client. A download counts as complete only when
//! every byte of the file went out, whatever order, size or overlap the
//! client's reads had (OpenSSH reads many blocks in parallel and retries
//! short reads), so an `open` and `close` alone, or a partial read, never
//! burns the offer. Pure: no I/O, no clock.

/// Sorted, disjoint, non-adjacent half-open intervals `[start, end)`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Coverage {
    ranges: Vec<(u64, u64)>,
}

impl Coverage {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `[start, start + len)` was returned. Overlapping and
    /// touching intervals merge, so the list stays as short as the number of
    /// holes (a sequential download keeps exactly one interval).
    pub fn add(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        let end = start.saturating_add(len);
        // First interval that ends at or after `start` (it may touch or
        // overlap the new one); everything before it stays as it is.
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        // One past the last interval that starts at or before `end`.
        let last = self.ranges.partition_point(|&(s, _)| s <= end);
        if first == last {
            self.ranges.insert(first, (start, end));
            return;
        }
        let merged_start = self.ranges.get(first).map_or(start, |r| r.0.min(start));
        let merged_end = self.ranges.get(last - 1).map_or(end, |r| r.1.max(end));
        self.ranges
            .splice(first..last, [(merged_start, merged_end)]);
    }

    /// Whether every byte of `[0, size)` has been returned.
    pub fn covers(&self, size: u64) -> bool {
        match self.ranges.first() {
            _ if size == 0 => true,
            Some(&(0, end)) => end >= size,
            _ => false,
        }
    }

    /// The merged intervals, for tests and debug logs.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(adds: &[(u64, u64)]) -> Coverage {
        let mut c = Coverage::new();
        for &(s, l) in adds {
            c.add(s, l);
        }
        c
    }

    #[test]
    fn sequential_reads_stay_one_interval() {
        let c = with(&[(0, 10), (10, 10), (20, 5)]);
        assert_eq!(c.ranges(), &[(0, 25)]);
        assert!(c.covers(25));
        assert!(!c.covers(26));
    }

    #[test]
    fn out_of_order_reads_merge_when_the_hole_fills() {
        let c = with(&[(20, 10), (0, 10)]);
        assert_eq!(c.ranges(), &[(0, 10), (20, 30)]);
        assert!(!c.covers(30));
        let c = with(&[(20, 10), (0, 10), (10, 10)]);
        assert_eq!(c.ranges(), &[(0, 30)]);
        assert!(c.covers(30));
    }

    #[test]
    fn overlaps_and_contained_intervals() {
        assert_eq!(with(&[(0, 10), (5, 10)]).ranges(), &[(0, 15)]);
        assert_eq!(with(&[(0, 100), (10, 5)]).ranges(), &[(0, 100)]);
        assert_eq!(with(&[(10, 5), (0, 100)]).ranges(), &[(0, 100)]);
        // One interval swallowing several.
        assert_eq!(
            with(&[(10, 5), (20, 5), (30, 5), (40, 5), (12, 25)]).ranges(),
            &[(10, 37), (40, 45)]
        );
        assert_eq!(with(&[(5, 0)]).ranges(), &[] as &[(u64, u64)]);
    }

    #[test]
    fn a_file_missing_its_start_or_end_is_not_covered() {
        assert!(!with(&[(1, 99)]).covers(100));
        assert!(!with(&[(0, 99)]).covers(100));
        assert!(!with(&[]).covers(1));
        assert!(with(&[]).covers(0));
    }

    #[test]
    fn huge_offsets_saturate_instead_of_overflowing() {
        let c = with(&[(u64::MAX - 1, 10), (0, 1)]);
        assert_eq!(c.ranges(), &[(0, 1), (u64::MAX - 1, u64::MAX)]);
    }
}
