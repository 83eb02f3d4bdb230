//! The probe header parser: round trip and no panic on any input.

use circus_lab::traffic::MonoNanos;
use circus_lab::traffic::probe::{PROBE_HEADER_LEN, ProbeHeader, ProbeWireError};
use proptest::prelude::*;

proptest! {
    #[test]
    fn encode_then_parse_round_trips(
        stream_id: u32, seq: u64, sent: u64, flow: u16,
        padding in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let header = ProbeHeader { stream_id, seq, sent: MonoNanos(sent), flow };
        let mut datagram = header.encode().to_vec();
        datagram.extend_from_slice(&padding);
        prop_assert_eq!(ProbeHeader::parse(&datagram), Ok(header));
    }

    #[test]
    fn parse_never_panics(datagram in proptest::collection::vec(any::<u8>(), 0..80)) {
        let result = ProbeHeader::parse(&datagram);
        if datagram.len() < PROBE_HEADER_LEN {
            prop_assert_eq!(result, Err(ProbeWireError::TooShort { len: datagram.len() }));
        } else if !datagram.starts_with(b"CLPB") {
            prop_assert_eq!(result, Err(ProbeWireError::BadMagic));
        }
    }
}
