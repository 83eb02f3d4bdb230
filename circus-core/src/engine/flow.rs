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

    proptest! {
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
