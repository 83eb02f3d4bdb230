//! Datagrams on the simulated wire, waiting for the time their link model
//! said they arrive.
//!
//! Arrivals come out in time order; arrivals at the same instant come out in
//! the order they were sent, so a run never depends on heap internals. Each
//! datagram's bytes live in a pooled buffer that is reused once delivered:
//! a minute of traffic at 1000 packets/s allocates only as many buffers as
//! are ever in flight at once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::emulator::model::{Direction, Verdict};

/// One datagram in flight.
#[derive(Debug)]
struct Slot {
    link: usize,
    direction: Direction,
    bytes: Vec<u8>,
}

/// A datagram taken off the wire; read it with [`Wire::datagram`], then
/// give it back with [`Wire::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Arrived {
    pub link: usize,
    pub direction: Direction,
    slot: usize,
}

/// All datagrams in flight, on every link and in both directions.
#[derive(Debug, Default)]
pub(super) struct Wire {
    /// (arrival time, send order, slot): the send order breaks ties.
    arrivals: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    slots: Vec<Slot>,
    free: Vec<usize>,
    sent: u64,
}

impl Wire {
    /// Puts a copy of `bytes` on `link` in `direction`, arriving at `at`.
    pub fn send(&mut self, at: Duration, link: usize, direction: Direction, bytes: &[u8]) {
        let slot = match self.free.pop() {
            Some(slot) => {
                let reused = &mut self.slots[slot];
                reused.link = link;
                reused.direction = direction;
                reused.bytes.clear();
                reused.bytes.extend_from_slice(bytes);
                slot
            }
            None => {
                self.slots.push(Slot {
                    link,
                    direction,
                    bytes: bytes.to_vec(),
                });
                self.slots.len() - 1
            }
        };
        self.arrivals.push(Reverse((at, self.sent, slot)));
        self.sent += 1;
    }

    /// Schedules the arrival (and the duplicate, if any) a link model
    /// decided on; a dropped datagram is not scheduled.
    pub fn put(&mut self, verdict: Verdict, link: usize, direction: Direction, bytes: &[u8]) {
        if let Verdict::Deliver { at, duplicate_at } = verdict {
            self.send(at, link, direction, bytes);
            if let Some(at) = duplicate_at {
                self.send(at, link, direction, bytes);
            }
        }
    }

    /// When the next datagram arrives.
    pub fn next_arrival(&self) -> Option<Duration> {
        self.arrivals.peek().map(|Reverse((at, _, _))| *at)
    }

    /// The next datagram arriving at or before `now`.
    pub fn pop_arrived(&mut self, now: Duration) -> Option<Arrived> {
        if self.next_arrival()? > now {
            return None;
        }
        let Reverse((_, _, slot)) = self.arrivals.pop()?;
        let Slot {
            link, direction, ..
        } = self.slots[slot];
        Some(Arrived {
            link,
            direction,
            slot,
        })
    }

    /// The bytes of a datagram taken off the wire.
    pub fn datagram(&self, arrived: Arrived) -> &[u8] {
        &self.slots[arrived.slot].bytes
    }

    /// Returns the datagram's buffer to the pool.
    pub fn release(&mut self, arrived: Arrived) {
        self.free.push(arrived.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    fn drain(wire: &mut Wire, now: Duration) -> Vec<(usize, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(arrived) = wire.pop_arrived(now) {
            out.push((arrived.link, wire.datagram(arrived).to_vec()));
            wire.release(arrived);
        }
        out
    }

    #[test]
    fn arrivals_come_in_time_order_then_send_order() {
        let mut wire = Wire::default();
        wire.send(ms(30), 0, Direction::Up, b"late");
        wire.send(ms(10), 1, Direction::Up, b"first");
        wire.send(ms(10), 2, Direction::Down, b"second");
        assert_eq!(wire.next_arrival(), Some(ms(10)));
        assert!(wire.pop_arrived(ms(9)).is_none());
        let early = drain(&mut wire, ms(10));
        assert_eq!(early, vec![(1, b"first".to_vec()), (2, b"second".to_vec())]);
        assert_eq!(drain(&mut wire, ms(30)), vec![(0, b"late".to_vec())]);
        assert_eq!(wire.next_arrival(), None);
    }

    #[test]
    fn released_buffers_are_reused_with_the_new_content() {
        let mut wire = Wire::default();
        wire.send(ms(1), 0, Direction::Up, b"a longer datagram");
        drain(&mut wire, ms(1));
        wire.send(ms(2), 3, Direction::Down, b"short");
        assert_eq!(wire.slots.len(), 1);
        let arrived = wire.pop_arrived(ms(2)).unwrap();
        assert_eq!(arrived.direction, Direction::Down);
        assert_eq!(wire.datagram(arrived), b"short");
    }
}
