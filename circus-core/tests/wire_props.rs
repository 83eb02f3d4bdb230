//! Properties of `circus_core::wire`: everything emitted parses back to the
//! same value, no input makes a parser panic, and the ack emitter truncates
//! to a parseable prefix.

use std::ops::RangeInclusive;

use circus_core::LinkId;
use circus_core::wire::{
    COOKIE_REPLY_LEN, CookieReply, Frame, FrameIter, HANDSHAKE_INIT_LEN, HANDSHAKE_RESPONSE_LEN,
    HandshakeInit, HandshakeResponse, INIT_HEADER_LEN, MAC_LEN, MAX_ACK_RANGES, NOISE_INIT_LEN,
    NOISE_RESPONSE_LEN, Packet, PayloadHeader, RESPONSE_HEADER_LEN, TAG_LEN, TRANSPORT_HEADER_LEN,
    TransportHeader, WireError, emit_ack,
};
use proptest::prelude::*;

/// Descending, disjoint, non-adjacent ranges of varied magnitude.
fn ack_ranges() -> impl Strategy<Value = Vec<RangeInclusive<u64>>> {
    let small_or_large = || prop_oneof![0u64..4, 0u64..100_000];
    (
        prop::collection::vec((small_or_large(), small_or_large()), 1..300),
        prop_oneof![Just(0u64), 0u64..(1 << 40)],
    )
        .prop_map(|(pairs, base)| {
            let mut ranges = Vec::with_capacity(pairs.len());
            let mut smallest = base;
            for (gap, len) in pairs {
                let largest = smallest + len;
                ranges.push(smallest..=largest);
                smallest = largest + gap + 2;
            }
            ranges.reverse();
            ranges
        })
}

/// An owned description of a frame, to compare emitted and parsed frames.
#[derive(Debug, Clone, PartialEq)]
enum FrameModel {
    Ping,
    Data {
        seq: u64,
        flow_gap: u32,
        packet: Vec<u8>,
    },
    Ack {
        link: u8,
        ack_delay_us: u32,
        sent_at_us: u32,
        ranges: Vec<RangeInclusive<u64>>,
    },
    Close {
        reason: u8,
    },
    Padding {
        len: usize,
    },
}

impl FrameModel {
    fn of(frame: &Frame<'_>) -> Self {
        match frame {
            Frame::Padding { len } => FrameModel::Padding { len: *len },
            Frame::Ping => FrameModel::Ping,
            Frame::Data {
                seq,
                flow_gap,
                packet,
            } => FrameModel::Data {
                seq: *seq,
                flow_gap: *flow_gap,
                packet: packet.to_vec(),
            },
            Frame::Ack(ack) => FrameModel::Ack {
                link: ack.link().0,
                ack_delay_us: ack.ack_delay_us(),
                sent_at_us: ack.sent_at_us(),
                ranges: ack.ranges().collect(),
            },
            Frame::Close { reason } => FrameModel::Close { reason: *reason },
        }
    }

    fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        match self {
            FrameModel::Ping => Frame::Ping.emit(buf),
            FrameModel::Data {
                seq,
                flow_gap,
                packet,
            } => Frame::Data {
                seq: *seq,
                flow_gap: *flow_gap,
                packet,
            }
            .emit(buf),
            FrameModel::Ack {
                link,
                ack_delay_us,
                sent_at_us,
                ranges,
            } => emit_ack(
                buf,
                LinkId(*link),
                *ack_delay_us,
                *sent_at_us,
                ranges.iter().cloned(),
            ),
            FrameModel::Close { reason } => Frame::Close { reason: *reason }.emit(buf),
            FrameModel::Padding { len } => Frame::Padding { len: *len }.emit(buf),
        }
    }
}

fn inner_frame() -> impl Strategy<Value = FrameModel> {
    prop_oneof![
        Just(FrameModel::Ping),
        (
            any::<u64>(),
            any::<u32>(),
            prop::collection::vec(any::<u8>(), 0..1500)
        )
            .prop_map(|(seq, flow_gap, packet)| FrameModel::Data {
                seq,
                flow_gap,
                packet
            }),
        (
            any::<u8>(),
            any::<u32>(),
            any::<u32>(),
            ack_ranges().prop_map(|mut r| {
                r.truncate(MAX_ACK_RANGES);
                r
            })
        )
            .prop_map(|(link, ack_delay_us, sent_at_us, ranges)| FrameModel::Ack {
                link,
                ack_delay_us,
                sent_at_us,
                ranges
            }),
        any::<u8>().prop_map(|reason| FrameModel::Close { reason }),
    ]
}

proptest! {
    #[test]
    fn frames_round_trip(
        frames in prop::collection::vec(inner_frame(), 0..8),
        padding in prop::option::of(1usize..600),
    ) {
        let mut models = frames;
        models.extend(padding.map(|len| FrameModel::Padding { len }));
        let mut buf = vec![0u8; 1 << 16];
        let mut len = 0;
        for model in &models {
            len += model.emit(&mut buf[len..]).unwrap();
        }
        let parsed: Vec<Frame<'_>> = FrameIter::new(&buf[..len])
            .collect::<Result<_, _>>()
            .unwrap();
        let parsed_models: Vec<_> = parsed.iter().map(FrameModel::of).collect();
        prop_assert_eq!(&parsed_models, &models);

        // Re-emitting the parsed views reproduces the bytes exactly.
        let mut again = vec![0u8; len];
        let mut at = 0;
        for frame in &parsed {
            let written = frame.emit(&mut again[at..]).unwrap();
            prop_assert_eq!(written, frame.encoded_len());
            at += written;
        }
        prop_assert_eq!(&again[..at], &buf[..len]);
    }

    #[test]
    fn ack_truncates_to_a_prefix_that_fits(
        ranges in ack_ranges(),
        space in 0usize..400,
        link in any::<u8>(),
        ack_delay_us in any::<u32>(),
        sent_at_us in any::<u32>(),
    ) {
        let mut buf = vec![0u8; space];
        match emit_ack(&mut buf, LinkId(link), ack_delay_us, sent_at_us, ranges.iter().cloned()) {
            Ok(len) => {
                prop_assert!(len <= space);
                let Some(Ok(Frame::Ack(ack))) = FrameIter::new(&buf[..len]).next() else {
                    return Err(TestCaseError::fail("emitted ack does not parse"));
                };
                let parsed: Vec<_> = ack.ranges().collect();
                prop_assert!(!parsed.is_empty());
                prop_assert!(parsed.len() <= MAX_ACK_RANGES);
                prop_assert_eq!(&parsed[..], &ranges[..parsed.len()]);
                prop_assert_eq!(ack.range_count(), parsed.len());
                prop_assert_eq!(ack.link(), LinkId(link));
                prop_assert_eq!(ack.ack_delay_us(), ack_delay_us);
                prop_assert_eq!(ack.sent_at_us(), sent_at_us);
                // Truncation only when the next range really did not fit.
                if parsed.len() < ranges.len().min(MAX_ACK_RANGES) {
                    let mut bigger = vec![0u8; 1 << 14];
                    let full = emit_ack(&mut bigger, LinkId(link), ack_delay_us, sent_at_us,
                        ranges[..=parsed.len()].iter().cloned()).unwrap();
                    prop_assert!(full > space);
                }
            }
            Err(WireError::BufferTooSmall { .. }) => {
                // Not even the first range fits: the fixed part alone needs more.
                let mut bigger = vec![0u8; 64];
                let first_only = emit_ack(&mut bigger, LinkId(link), ack_delay_us, sent_at_us,
                    ranges[..1].iter().cloned()).unwrap();
                prop_assert!(first_only > space);
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected {other}"))),
        }
    }

    #[test]
    fn outer_packets_round_trip(
        sender_index in any::<u32>(),
        receiver_index in any::<u32>(),
        counter in any::<u64>(),
        init_noise in prop::collection::vec(any::<u8>(), NOISE_INIT_LEN),
        response_noise in prop::collection::vec(any::<u8>(), NOISE_RESPONSE_LEN),
        mac1 in any::<[u8; MAC_LEN]>(),
        mac2 in any::<[u8; MAC_LEN]>(),
        nonce in any::<[u8; 24]>(),
        sealed_cookie in any::<[u8; 32]>(),
        sealed in prop::collection::vec(any::<u8>(), TAG_LEN..1600),
    ) {
        let mut buf = vec![0u8; 2048];

        let init = HandshakeInit { sender_index, noise: &init_noise, mac1, mac2 };
        let init_len = init.emit(&mut buf).unwrap();
        prop_assert_eq!(init_len, HANDSHAKE_INIT_LEN);
        prop_assert_eq!(Packet::parse(&buf[..init_len]), Ok(Packet::HandshakeInit(init)));
        // The MACs cover the header and what follows it, as laid out.
        prop_assert_eq!(&buf[..INIT_HEADER_LEN], &init.header()[..]);
        prop_assert_eq!(&buf[init_len - 2 * MAC_LEN..init_len - MAC_LEN], &mac1[..]);
        prop_assert_eq!(&buf[init_len - MAC_LEN..init_len], &mac2[..]);

        let response = HandshakeResponse { sender_index, receiver_index, noise: &response_noise, mac1 };
        let len = response.emit(&mut buf).unwrap();
        prop_assert_eq!(len, HANDSHAKE_RESPONSE_LEN);
        prop_assert!(len < init_len);
        prop_assert_eq!(&buf[..RESPONSE_HEADER_LEN], &response.header()[..]);
        prop_assert_eq!(Packet::parse(&buf[..len]), Ok(Packet::HandshakeResponse(response)));

        let reply = CookieReply { receiver_index, nonce, sealed_cookie };
        let len = reply.emit(&mut buf).unwrap();
        prop_assert_eq!(len, COOKIE_REPLY_LEN);
        prop_assert!(len < init_len);
        prop_assert_eq!(Packet::parse(&buf[..len]), Ok(Packet::CookieReply(reply)));
        prop_assert!(Packet::parse(&buf[..len - 1]).is_err());
        prop_assert!(reply.emit(&mut buf[..len - 1]).is_err());

        let header = TransportHeader { receiver_index, counter };
        let len = header.emit(&mut buf).unwrap();
        prop_assert_eq!(len, TRANSPORT_HEADER_LEN);
        buf[len..len + sealed.len()].copy_from_slice(&sealed);
        match Packet::parse(&buf[..len + sealed.len()]) {
            Ok(Packet::Transport(packet)) => {
                prop_assert_eq!(packet.header, header);
                prop_assert_eq!(packet.sealed, &sealed[..]);
            }
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }

    #[test]
    fn payload_header_round_trips(link in any::<u8>(), path_pn in any::<u64>(),
                                  frames in prop::collection::vec(any::<u8>(), 0..64)) {
        let header = PayloadHeader { link: LinkId(link), path_pn };
        let mut buf = vec![0u8; 9 + frames.len()];
        let len = header.emit(&mut buf).unwrap();
        buf[len..].copy_from_slice(&frames);
        prop_assert_eq!(PayloadHeader::parse(&buf), Ok((header, &frames[..])));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Packet::parse(&bytes);
        let _ = PayloadHeader::parse(&bytes);
        let mut frames = 0;
        for frame in FrameIter::new(&bytes) {
            frames += 1;
            prop_assert!(frames <= bytes.len(), "iterator must make progress");
            if let Ok(Frame::Ack(ack)) = frame {
                prop_assert_eq!(ack.ranges().count(), ack.range_count());
                prop_assert!(ack.ranges().all(|r| r.start() <= r.end()));
            }
        }
    }

    /// Valid-looking prefixes with mutated bodies reach deeper into the
    /// parsers than uniformly random bytes do.
    #[test]
    fn framed_garbage_never_panics(
        frame_type in 0u8..6,
        body in prop::collection::vec(any::<u8>(), 0..64),
        packet_type in 0u8..5,
    ) {
        let mut frames = vec![frame_type];
        frames.extend_from_slice(&body);
        for frame in FrameIter::new(&frames) {
            if let Ok(Frame::Ack(ack)) = frame {
                prop_assert_eq!(ack.ranges().count(), ack.range_count());
            }
        }
        let mut packet = vec![1, packet_type];
        packet.extend_from_slice(&body);
        let _ = Packet::parse(&packet);
    }
}
