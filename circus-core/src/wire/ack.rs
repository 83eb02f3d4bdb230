//! The ack frame: path packet numbers of one link in descending ranges.
//!
//! Encoding after the frame type, as QUIC's ACK frame (RFC 9000, 19.3) plus
//! the link id:
//!
//! ```text
//! link u8, ack_delay_us varint, sent_at_us u32, largest varint,
//! extra_range_count u8,
//! first_range varint                   (largest - smallest of the first range)
//! (gap varint, range_len varint) * extra_range_count
//! ```
//!
//! Each following range starts `gap + 2` below the previous range's smallest
//! number (at least one number is missing between ranges) and covers
//! `range_len + 1` numbers. Varints keep a typical ack of a busy link to a
//! dozen bytes, so acks can be sent every few packets on every link, which is
//! what lets a silent link be judged within a few RTTs.
//!
//! `sent_at_us` is the acker's clock when it sent the frame (microseconds,
//! wrapping, from an origin of its own). The clocks of the two ends are not
//! related, but how much later than usual acks arrive is: that is the
//! queueing delay on the way back, which the sender must allow for in flight
//! (see `paths::ReturnDelay`) without taking it for a full forward link.

use std::ops::RangeInclusive;

use super::WireError;
use super::codec::{Reader, Writer, varint_len};
use super::frame::FRAME_ACK;
use crate::LinkId;

/// Most ranges one ack frame carries. The receiver tracks a bounded number
/// of ranges anyway, and older holes are long declared lost by then.
pub const MAX_ACK_RANGES: usize = 1 + u8::MAX as usize;

/// A parsed, validated ack frame. Its ranges were checked at parse time, so
/// [`AckFrame::ranges`] cannot fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckFrame<'a> {
    link: LinkId,
    ack_delay_us: u32,
    sent_at_us: u32,
    largest: u64,
    first_range: u64,
    extra_ranges: u8,
    /// The encoded (gap, range_len) pairs, already validated.
    encoded_extra: &'a [u8],
}

impl<'a> AckFrame<'a> {
    /// The link whose path packet numbers are acknowledged.
    pub fn link(&self) -> LinkId {
        self.link
    }

    /// How long the receiver held the largest number before acking, so the
    /// sender can subtract it from the RTT sample (RFC 9002, 5.3).
    pub fn ack_delay_us(&self) -> u32 {
        self.ack_delay_us
    }

    /// The acker's clock when it sent this frame, in microseconds from an
    /// origin of its own, wrapping.
    pub fn sent_at_us(&self) -> u32 {
        self.sent_at_us
    }

    /// The largest acknowledged path packet number.
    pub fn largest(&self) -> u64 {
        self.largest
    }

    /// Number of ranges, at least 1.
    pub fn range_count(&self) -> usize {
        1 + usize::from(self.extra_ranges)
    }

    /// The acknowledged ranges, highest first.
    pub fn ranges(&self) -> AckRanges<'a> {
        AckRanges {
            first: Some(self.largest - self.first_range..=self.largest),
            prev_smallest: self.largest - self.first_range,
            remaining: self.extra_ranges,
            reader: Reader::new(self.encoded_extra),
        }
    }

    pub(super) fn encoded_len(&self) -> usize {
        // The values were decoded from varints, so they re-encode.
        let varint = |value: u64| varint_len(value).unwrap_or(8);
        3 + 4
            + varint(u64::from(self.ack_delay_us))
            + varint(self.largest)
            + varint(self.first_range)
            + self.encoded_extra.len()
    }

    pub(super) fn emit(&self, writer: &mut Writer<'_>) -> Result<(), WireError> {
        writer.u8(FRAME_ACK, "ack frame")?;
        writer.u8(self.link.0, "ack link")?;
        writer.varint(u64::from(self.ack_delay_us), "ack delay")?;
        writer.u32(self.sent_at_us, "ack sent at")?;
        writer.varint(self.largest, "ack largest")?;
        writer.u8(self.extra_ranges, "ack range count")?;
        writer.varint(self.first_range, "ack first range")?;
        writer.bytes(self.encoded_extra, "ack ranges")
    }

    /// Parses the body after the frame type byte, checking every range.
    pub(super) fn parse(reader: &mut Reader<'a>) -> Result<Self, WireError> {
        let link = LinkId(reader.u8("ack link")?);
        let delay = reader.varint("ack delay")?;
        let ack_delay_us = u32::try_from(delay).map_err(|_| WireError::AckDelayTooLarge(delay))?;
        let sent_at_us = reader.u32("ack sent at")?;
        let largest = reader.varint("ack largest")?;
        let extra_ranges = reader.u8("ack range count")?;
        let first_range = reader.varint("ack first range")?;
        let mut prev_smallest = largest
            .checked_sub(first_range)
            .ok_or(WireError::AckRangeUnderflow)?;
        let encoded = reader.rest();
        for _ in 0..extra_ranges {
            let gap = reader.varint("ack gap")?;
            let len = reader.varint("ack range length")?;
            (_, prev_smallest) =
                next_range(prev_smallest, gap, len).ok_or(WireError::AckRangeUnderflow)?;
        }
        let encoded_extra = &encoded[..encoded.len() - reader.rest().len()];
        Ok(AckFrame {
            link,
            ack_delay_us,
            sent_at_us,
            largest,
            first_range,
            extra_ranges,
            encoded_extra,
        })
    }
}

/// The (largest, smallest) of the range after one whose smallest is
/// `prev_smallest`, or `None` if it would run below zero.
fn next_range(prev_smallest: u64, gap: u64, len: u64) -> Option<(u64, u64)> {
    let largest = prev_smallest.checked_sub(gap)?.checked_sub(2)?;
    Some((largest, largest.checked_sub(len)?))
}

/// Iterator over an [`AckFrame`]'s ranges, highest first.
#[derive(Debug, Clone)]
pub struct AckRanges<'a> {
    first: Option<RangeInclusive<u64>>,
    prev_smallest: u64,
    remaining: u8,
    reader: Reader<'a>,
}

impl Iterator for AckRanges<'_> {
    type Item = RangeInclusive<u64>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        self.remaining = self.remaining.checked_sub(1)?;
        // Validated by `AckFrame::parse`; `?` only guards against misuse.
        let gap = self.reader.varint("ack gap").ok()?;
        let len = self.reader.varint("ack range length").ok()?;
        let (largest, smallest) = next_range(self.prev_smallest, gap, len)?;
        self.prev_smallest = smallest;
        Some(smallest..=largest)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.remaining) + usize::from(self.first.is_some());
        (left, Some(left))
    }
}

/// Writes an ack frame for `link` at the start of `buf`; returns its length.
///
/// `ranges` must be highest first, each `start <= end`, with at least one
/// missing number between neighbours (as `paths::AckTracker` keeps them).
/// Ranges that do not fit in `buf`, or beyond [`MAX_ACK_RANGES`], are left
/// out, lowest first: the frame then acks a prefix of `ranges`, which is
/// safe (unacked numbers are only retransmitted or declared lost later).
/// Fails if not even the first range fits or the ranges are malformed.
pub fn emit_ack<I>(
    buf: &mut [u8],
    link: LinkId,
    ack_delay_us: u32,
    sent_at_us: u32,
    ranges: I,
) -> Result<usize, WireError>
where
    I: IntoIterator<Item = RangeInclusive<u64>>,
{
    let mut ranges = ranges.into_iter();
    let first = ranges.next().ok_or(WireError::InvalidAckRanges)?;
    let (smallest, largest) = (*first.start(), *first.end());
    if smallest > largest {
        return Err(WireError::InvalidAckRanges);
    }
    let mut writer = Writer::new(buf);
    writer.u8(FRAME_ACK, "ack frame")?;
    writer.u8(link.0, "ack link")?;
    writer.varint(u64::from(ack_delay_us), "ack delay")?;
    writer.u32(sent_at_us, "ack sent at")?;
    writer.varint(largest, "ack largest")?;
    let count_at = writer.len();
    writer.u8(0, "ack range count")?;
    writer.varint(largest - smallest, "ack first range")?;

    let mut prev_smallest = smallest;
    let mut extra_ranges: u8 = 0;
    for range in ranges {
        if extra_ranges == u8::MAX {
            break;
        }
        let (smallest, largest) = (*range.start(), *range.end());
        let separated = prev_smallest
            .checked_sub(2)
            .is_some_and(|top| largest <= top);
        if smallest > largest || !separated {
            return Err(WireError::InvalidAckRanges);
        }
        let gap = prev_smallest - largest - 2;
        let len = largest - smallest;
        // Both are below the first range's largest, which fit a varint.
        let needed = varint_len(gap).unwrap_or(8) + varint_len(len).unwrap_or(8);
        if needed > writer.remaining() {
            break;
        }
        writer.varint(gap, "ack gap")?;
        writer.varint(len, "ack range length")?;
        extra_ranges += 1;
        prev_smallest = smallest;
    }
    writer.patch_u8(count_at, extra_ranges);
    Ok(writer.len())
}

#[cfg(test)]
mod tests {
    use super::super::{Frame, FrameIter};
    use super::*;

    fn parse_ack(bytes: &[u8]) -> AckFrame<'_> {
        match FrameIter::new(bytes).next() {
            Some(Ok(Frame::Ack(ack))) => ack,
            other => panic!("expected an ack, got {other:?}"),
        }
    }

    #[test]
    fn ranges_round_trip_highest_first() {
        let ranges = [90..=100, 50..=60, 0..=0];
        let mut buf = [0u8; 64];
        let len = emit_ack(&mut buf, LinkId(2), 250, 0xdead_beef, ranges.clone()).unwrap();
        let ack = parse_ack(&buf[..len]);
        assert_eq!(ack.link(), LinkId(2));
        assert_eq!(ack.ack_delay_us(), 250);
        assert_eq!(ack.sent_at_us(), 0xdead_beef);
        assert_eq!(ack.largest(), 100);
        assert_eq!(ack.ranges().collect::<Vec<_>>(), ranges);
        assert_eq!(Frame::Ack(ack).encoded_len(), len);
    }

    #[test]
    fn adjacent_or_ascending_ranges_are_refused() {
        let mut buf = [0u8; 64];
        for bad in [
            vec![10..=20, 0..=9],
            vec![0..=5, 10..=20],
            vec![],
            vec![{
                #[allow(clippy::reversed_empty_ranges)]
                let reversed = 5..=4;
                reversed
            }],
        ] {
            assert_eq!(
                emit_ack(&mut buf, LinkId(0), 0, 0, bad.clone()),
                Err(WireError::InvalidAckRanges),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_range_below_zero_is_refused_on_parse() {
        // sent at 0, largest 3, first range 1 (2..=3), then gap 0 -> next
        // largest 0, len 5.
        let bytes = [FRAME_ACK, 0, 0, 0, 0, 0, 0, 3, 1, 1, 0, 5];
        assert_eq!(
            FrameIter::new(&bytes).next(),
            Some(Err(WireError::AckRangeUnderflow))
        );
    }

    #[test]
    fn truncation_keeps_the_highest_ranges() {
        let ranges: Vec<_> = (0..100u64).rev().map(|i| i * 10..=i * 10 + 5).collect();
        let mut buf = [0u8; 20];
        let len = emit_ack(&mut buf, LinkId(1), 0, 7, ranges.clone()).unwrap();
        let parsed: Vec<_> = parse_ack(&buf[..len]).ranges().collect();
        assert!(parsed.len() > 1 && parsed.len() < ranges.len());
        assert_eq!(parsed, ranges[..parsed.len()]);
    }
}
