//! Flow classification of tunnel packets for the fair send queue.
//!
//! A flow is an IP 5-tuple: addresses, protocol and, for TCP, UDP, UDP-Lite,
//! SCTP and DCCP, the two ports. The hash is a fixed mix (no per-run key), so
//! runs are reproducible; a crafted flow can at worst share a bucket with
//! another one, as in fq_codel without perturbation. Anything that is not a
//! well-formed IPv4 or IPv6 header falls into flow hash 0: never a panic.

/// IP protocols whose first four payload bytes are source and destination
/// port: TCP, UDP, DCCP, SCTP, UDP-Lite.
fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 33 | 132 | 136)
}

/// Folds `bytes` into `h` (FxHash-style word mix, then finished below).
fn mix(mut h: u64, bytes: &[u8]) -> u64 {
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    h
}

/// splitmix64's finalizer: spreads every input bit over the low bits that
/// pick the bucket.
fn finish(mut z: u64) -> u32 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}

/// The flow hash of an IP packet; 0 for anything that is not a well-formed
/// IPv4 or IPv6 header. Fragments after the first carry no ports, so all
/// fragments of a datagram hash by addresses and protocol only.
pub(crate) fn flow_hash(packet: &[u8]) -> u32 {
    match packet.first().map(|b| b >> 4) {
        Some(4) => ipv4(packet),
        Some(6) => ipv6(packet),
        _ => None,
    }
    .unwrap_or(0)
}

fn ipv4(p: &[u8]) -> Option<u32> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    if ihl < 20 || p.len() < ihl {
        return None;
    }
    let protocol = p[9];
    let flags_fragment = u16::from_be_bytes([p[6], p[7]]);
    // More-fragments set or a non-zero offset: ports are not (all) here.
    let fragment = flags_fragment & 0x3fff != 0;
    let mut h = mix(4, &p[12..20]);
    h = mix(h, &[protocol]);
    if has_ports(protocol)
        && !fragment
        && let Some(ports) = p.get(ihl..ihl + 4)
    {
        h = mix(h, ports);
    }
    Some(finish(h))
}

fn ipv6(p: &[u8]) -> Option<u32> {
    let header = p.get(..40)?;
    // Extension headers are not walked: such packets hash by addresses and
    // the first next-header value, which keeps one flow in one bucket.
    let next = header[6];
    let mut h = mix(6, &header[8..40]);
    h = mix(h, &[next]);
    if has_ports(next)
        && let Some(ports) = p.get(40..44)
    {
        h = mix(h, ports);
    }
    Some(finish(h))
}

/// Whether `packet` is a bare TCP acknowledgement: TCP over IPv4 or IPv6
/// (no extension headers), not a fragment, no payload, and none of SYN, FIN,
/// RST set. Such an ack is cumulative: losing it costs nothing the next one
/// does not repair, so it is not worth a second copy on the same link (an
/// ack stream is light by rate; on one link, two copies of each ack of a
/// 40 Mbit/s download took a tenth of the uplink).
pub(crate) fn is_pure_tcp_ack(packet: &[u8]) -> bool {
    let (header_len, payload_len) = match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            let Some(header) = packet.get(..20) else {
                return false;
            };
            let total = usize::from(u16::from_be_bytes([header[2], header[3]]));
            let fragment = u16::from_be_bytes([header[6], header[7]]) & 0x3fff != 0;
            if header[9] != 6 || fragment || ihl < 20 || total < ihl {
                return false;
            }
            (ihl, total - ihl)
        }
        Some(6) => {
            let Some(header) = packet.get(..40) else {
                return false;
            };
            if header[6] != 6 {
                return false;
            }
            (40, usize::from(u16::from_be_bytes([header[4], header[5]])))
        }
        _ => return false,
    };
    let Some(tcp) = packet.get(header_len..header_len + 20) else {
        return false;
    };
    let data_offset = usize::from(tcp[12] >> 4) * 4;
    let flags = tcp[13];
    const FIN: u8 = 0x01;
    const SYN: u8 = 0x02;
    const RST: u8 = 0x04;
    const ACK: u8 = 0x10;
    data_offset >= 20
        && payload_len == data_offset
        && flags & ACK != 0
        && flags & (FIN | SYN | RST) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(src: [u8; 4], dst: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut p = vec![0u8; 40];
        p[0] = 0x45;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn five_tuple_decides_the_flow() {
        let a = v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 1000, 80);
        let mut a_payload = a.clone();
        a_payload[30] = 0xff;
        assert_eq!(
            flow_hash(&a),
            flow_hash(&a_payload),
            "payload is not part of it"
        );
        assert_ne!(
            flow_hash(&a),
            flow_hash(&v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 1001, 80))
        );
        assert_ne!(
            flow_hash(&a),
            flow_hash(&v4([10, 0, 0, 1], [10, 0, 0, 2], 17, 1000, 80))
        );
        assert_ne!(
            flow_hash(&a),
            flow_hash(&v4([10, 0, 0, 3], [10, 0, 0, 2], 6, 1000, 80))
        );
        // ICMP has no ports: bytes 20..24 do not matter.
        let icmp1 = v4([10, 0, 0, 1], [10, 0, 0, 2], 1, 1, 2);
        let icmp2 = v4([10, 0, 0, 1], [10, 0, 0, 2], 1, 3, 4);
        assert_eq!(flow_hash(&icmp1), flow_hash(&icmp2));
    }

    #[test]
    fn ipv6_ports_count_and_malformed_is_flow_zero() {
        let mut p = vec![0u8; 60];
        p[0] = 0x60;
        p[6] = 17;
        p[8] = 0xfd;
        let h = flow_hash(&p);
        p[41] = 9;
        assert_ne!(h, flow_hash(&p));
        assert_eq!(flow_hash(&p[..39]), 0);
        assert_eq!(flow_hash(&[]), 0);
        assert_eq!(flow_hash(&[0x4f; 19]), 0, "ihl beyond the packet");
        assert_eq!(flow_hash(&[0x44; 40]), 0, "ihl below 5");
    }

    /// An IPv4 TCP segment with `payload` bytes of data and `flags`.
    fn tcp4(flags: u8, payload: usize) -> Vec<u8> {
        let mut p = v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 1000, 80);
        p.resize(40 + payload, 0);
        p[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
        p[32] = 5 << 4;
        p[33] = flags;
        p
    }

    #[test]
    fn only_bare_tcp_acks_are_pure_acks() {
        assert!(is_pure_tcp_ack(&tcp4(0x10, 0)));
        assert!(is_pure_tcp_ack(&tcp4(0x18, 0)), "PSH does not matter");
        assert!(!is_pure_tcp_ack(&tcp4(0x10, 1)), "carries data");
        assert!(!is_pure_tcp_ack(&tcp4(0x12, 0)), "SYN-ACK");
        assert!(!is_pure_tcp_ack(&tcp4(0x11, 0)), "FIN");
        assert!(!is_pure_tcp_ack(&tcp4(0x14, 0)), "RST");
        assert!(!is_pure_tcp_ack(&tcp4(0x00, 0)), "no ACK flag");
        let mut fragment = tcp4(0x10, 0);
        fragment[6] = 0x20;
        assert!(!is_pure_tcp_ack(&fragment));
        let mut udp = tcp4(0x10, 0);
        udp[9] = 17;
        assert!(!is_pure_tcp_ack(&udp));
        let mut v6 = vec![0u8; 60];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&20u16.to_be_bytes());
        v6[6] = 6;
        v6[52] = 5 << 4;
        v6[53] = 0x10;
        assert!(is_pure_tcp_ack(&v6));
        v6[4..6].copy_from_slice(&21u16.to_be_bytes());
        assert!(!is_pure_tcp_ack(&v6));
        assert!(!is_pure_tcp_ack(&tcp4(0x10, 0)[..39]), "truncated");
    }

    proptest! {
        #[test]
        fn pure_ack_check_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = is_pure_tcp_ack(&bytes);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = flow_hash(&bytes);
        }

        #[test]
        fn never_panics_on_ip_like_bytes(
            version in prop_oneof![Just(0x40u8), Just(0x60u8)],
            low in 0u8..16,
            proto in prop_oneof![Just(6u8), Just(17), Just(1), any::<u8>()],
            mut bytes in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            if let Some(b) = bytes.first_mut() { *b = version | low; }
            if let Some(b) = bytes.get_mut(9) { *b = proto; }
            if let Some(b) = bytes.get_mut(6) { *b = proto; }
            let _ = flow_hash(&bytes);
        }
    }
}
