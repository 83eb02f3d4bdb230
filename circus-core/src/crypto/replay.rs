//! Sliding anti-replay window over transport counters.

use super::REJECT_AFTER_MESSAGES;

/// How many counters below the highest seen are still accepted.
///
/// Multipath reorders far more than one path: a packet sent on a slow link
/// arrives after every packet sent meanwhile on the fast ones. At 100k
/// packets/s (about 1 Gbit/s of full-size packets) and an 80 ms delay
/// difference between links, 8000 counters are in flight ahead of it. A
/// narrower window would silently drop the slow link's packets as replays.
/// The bitmap costs 1 KiB per session.
pub const REPLAY_WINDOW_WIDTH: u64 = 8192;

const WORDS: usize = (REPLAY_WINDOW_WIDTH / 64) as usize;

/// Accepts each transport counter at most once, within
/// [`REPLAY_WINDOW_WIDTH`] of the highest counter accepted so far.
///
/// A ring bitmap (RFC 6479 style): bit `counter % WIDTH` records whether that
/// counter was seen; moving the window forward clears the bits it enters.
/// Use [`ReplayWindow::check`] before decrypting, as a cheap reject that
/// spends no AEAD work on replays, and [`ReplayWindow::commit`] only after the
/// packet authenticated, so forged packets cannot move the window.
#[derive(Clone)]
pub struct ReplayWindow {
    bits: [u64; WORDS],
    /// One more than the highest committed counter; 0 before the first.
    next: u64,
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self {
            bits: [0; WORDS],
            next: 0,
        }
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `counter` could still be accepted: not committed before, not
    /// older than the window, not past the counter limit.
    pub fn check(&self, counter: u64) -> bool {
        if counter >= REJECT_AFTER_MESSAGES {
            return false;
        }
        if counter >= self.next {
            return true;
        }
        if self.next - counter > REPLAY_WINDOW_WIDTH {
            return false;
        }
        let (word, mask) = slot(counter);
        self.bits[word] & mask == 0
    }

    /// Records `counter` as received; returns false (and changes nothing) if
    /// [`ReplayWindow::check`] would refuse it.
    pub fn commit(&mut self, counter: u64) -> bool {
        if !self.check(counter) {
            return false;
        }
        if counter >= self.next {
            self.clear_from_next_to(counter);
            self.next = counter + 1;
        }
        let (word, mask) = slot(counter);
        self.bits[word] |= mask;
        true
    }

    /// The highest committed counter, if any.
    pub fn highest(&self) -> Option<u64> {
        self.next.checked_sub(1)
    }

    /// Clears the bits of counters `self.next..=counter`, which the window
    /// is about to cover and whose slots still hold counters a full width
    /// older.
    fn clear_from_next_to(&mut self, counter: u64) {
        let entering = counter - self.next + 1;
        if entering >= REPLAY_WINDOW_WIDTH {
            self.bits = [0; WORDS];
            return;
        }
        let mut at = self.next;
        let mut left = entering;
        while left > 0 {
            let bit = at % 64;
            let run = left.min(64 - bit);
            let mask = if run == 64 {
                u64::MAX
            } else {
                ((1u64 << run) - 1) << bit
            };
            self.bits[word_index(at)] &= !mask;
            at += run;
            left -= run;
        }
    }
}

fn word_index(counter: u64) -> usize {
    // Below WORDS, so the cast cannot truncate.
    ((counter % REPLAY_WINDOW_WIDTH) / 64) as usize
}

fn slot(counter: u64) -> (usize, u64) {
    (word_index(counter), 1u64 << (counter % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_once_and_forgets_what_falls_out() {
        let mut window = ReplayWindow::new();
        assert!(window.commit(0));
        assert!(!window.commit(0));
        assert!(window.commit(REPLAY_WINDOW_WIDTH));
        assert!(!window.check(0), "slides out exactly at the width");
        assert!(window.check(1));
        assert!(window.commit(1));
        assert_eq!(window.highest(), Some(REPLAY_WINDOW_WIDTH));
    }

    #[test]
    fn a_big_jump_clears_every_old_slot() {
        let mut window = ReplayWindow::new();
        for counter in 0..100 {
            assert!(window.commit(counter));
        }
        let far = 5 * REPLAY_WINDOW_WIDTH + 3;
        assert!(window.commit(far));
        // Counters mapping to the same slots as 0..100 are fresh.
        for counter in far - REPLAY_WINDOW_WIDTH + 1..far {
            assert!(window.check(counter), "{counter}");
        }
    }

    #[test]
    fn counters_past_the_limit_are_refused() {
        let mut window = ReplayWindow::new();
        assert!(!window.commit(REJECT_AFTER_MESSAGES));
        assert!(!window.check(u64::MAX));
        assert_eq!(window.highest(), None);
    }
}
