//! Disjoint ranges `[start, end)` kept in the order they last grew: the
//! receiver's out-of-order data (whose most recent ranges become the SACK
//! blocks, most recent first, as RFC 2018 asks) and the sender's SACKed
//! segments (where an insert reports only what is newly covered, so a
//! SACK block repeated on every ACK costs nothing per segment it repeats).
//!
//! There are as many ranges as holes in a flight, a handful, so a `Vec`
//! scanned whole is the cheapest structure.

/// Disjoint, non-adjacent ranges, most recently grown first.
#[derive(Clone, Debug, Default)]
pub struct Ranges {
    ranges: Vec<(u64, u64)>,
    /// Reused by `insert`, so an ACK allocates nothing.
    touched: Vec<(u64, u64)>,
}

impl Ranges {
    /// The ranges, most recently grown first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The highest end of any range.
    pub fn max_end(&self) -> Option<u64> {
        self.ranges.iter().map(|&(_, end)| end).max()
    }

    /// Adds `[start, end)`, merging it with the ranges it overlaps or
    /// touches into one range that becomes the most recent. Calls
    /// `newly_covered` with each part that no range covered before, in
    /// ascending order.
    pub fn insert(&mut self, start: u64, end: u64, mut newly_covered: impl FnMut(u64, u64)) {
        if start >= end {
            return;
        }
        let mut touched = std::mem::take(&mut self.touched);
        touched.clear();
        self.ranges.retain(|&(s, e)| {
            let touches = s <= end && start <= e;
            if touches {
                touched.push((s, e));
            }
            !touches
        });
        touched.sort_unstable();
        let mut at = start;
        for &(s, e) in &touched {
            if s > at {
                newly_covered(at, s.min(end));
            }
            at = at.max(e);
        }
        if at < end {
            newly_covered(at, end);
        }
        let merged_start = touched.first().map_or(start, |&(s, _)| s.min(start));
        let merged_end = touched.last().map_or(end, |&(_, e)| e.max(end));
        self.ranges.insert(0, (merged_start, merged_end));
        self.touched = touched;
    }

    /// Forgets everything below `point`.
    pub fn remove_below(&mut self, point: u64) {
        self.ranges.retain(|&(_, end)| end > point);
        for range in &mut self.ranges {
            range.0 = range.0.max(point);
        }
    }

    /// If a range starts at or below `point`, removes it and returns its end:
    /// the receiver's next expected byte after a hole is filled.
    pub fn take_from(&mut self, point: u64) -> Option<u64> {
        let index = self.ranges.iter().position(|&(start, _)| start <= point)?;
        let (_, end) = self.ranges.remove(index);
        Some(end)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn insert(ranges: &mut Ranges, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut new = Vec::new();
        ranges.insert(start, end, |s, e| new.push((s, e)));
        new
    }

    #[test]
    fn inserts_merge_and_report_only_new_parts() {
        let mut ranges = Ranges::default();
        assert_eq!(insert(&mut ranges, 10, 20), [(10, 20)]);
        assert_eq!(insert(&mut ranges, 30, 40), [(30, 40)]);
        assert_eq!(ranges.iter().collect::<Vec<_>>(), [(30, 40), (10, 20)]);
        assert_eq!(insert(&mut ranges, 15, 35), [(20, 30)]);
        assert_eq!(ranges.iter().collect::<Vec<_>>(), [(10, 40)]);
        assert_eq!(insert(&mut ranges, 12, 18), []);
        assert_eq!(insert(&mut ranges, 40, 41), [(40, 41)]);
        assert_eq!(ranges.take_from(9), None);
        assert_eq!(ranges.take_from(10), Some(41));
        assert!(ranges.is_empty());
    }

    #[test]
    fn the_most_recently_grown_range_comes_first() {
        let mut ranges = Ranges::default();
        insert(&mut ranges, 10, 20);
        insert(&mut ranges, 30, 40);
        insert(&mut ranges, 20, 21);
        assert_eq!(ranges.iter().collect::<Vec<_>>(), [(10, 21), (30, 40)]);
        ranges.remove_below(35);
        assert_eq!(ranges.iter().collect::<Vec<_>>(), [(35, 40)]);
    }

    proptest! {
        /// The ranges cover exactly the union of what was inserted, and the
        /// newly covered parts add up to each insert's new bytes.
        #[test]
        fn ranges_cover_the_union(inserts in prop::collection::vec((0u64..200, 1u64..30), 0..40)) {
            let mut ranges = Ranges::default();
            let mut covered = [false; 240];
            for (start, len) in inserts {
                let end = start + len;
                let expected_new = covered[start as usize..end as usize].iter().filter(|c| !**c).count();
                let new: u64 = insert(&mut ranges, start, end).iter().map(|(s, e)| e - s).sum();
                prop_assert_eq!(new as usize, expected_new);
                covered[start as usize..end as usize].fill(true);
            }
            let mut from_ranges = [false; 240];
            let mut sorted: Vec<_> = ranges.iter().collect();
            sorted.sort_unstable();
            for pair in sorted.windows(2) {
                prop_assert!(pair[0].1 < pair[1].0, "disjoint and not adjacent");
            }
            for (start, end) in sorted {
                from_ranges[start as usize..end as usize].fill(true);
            }
            prop_assert_eq!(covered, from_ranges);
        }
    }
}
