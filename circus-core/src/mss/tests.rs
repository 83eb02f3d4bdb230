use super::*;
use proptest::prelude::*;

/// SYNs and SYN-ACKs read from a TUN device of MTU 1420 (Linux 6.x, the
/// kernel's own stack on both sides), options MSS, SACK permitted,
/// timestamps, NOP, window scale.
const SYN_V4: &str = "4500003c0c1d40004006661c644000026440000199b80050d04ad59e00000000a002fd5cd79d0000020405640402080ade538c89000000000103030a";
const SYN_ACK_V4: &str = "4500003c000040004006723164400002644000091f909c402219e42ed04ad59fa012fb28d23e0000020405640402080ad62f093ade538c890103030a";
const SYN_V6: &str = "600e2eb500280640fd000064000000000000000000000002fd000064000000000000000000000001d484005056fd17d800000000a002ff00c3ff0000020405500402080acdf078f9000000000103030a";
const SYN_ACK_V6: &str = "600abba500280640fd000064000000000000000000000002fd0000640000000000000000000000091f909c40ff98323f56fd17d9a012fcc04c4f0000020405500402080ac9dc9726cdf078f90103030a";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Start of the TCP header (IPv4 without options or IPv6 without
/// extension headers, as everything built here).
fn tcp_start(packet: &[u8]) -> usize {
    if packet[0] >> 4 == 4 {
        usize::from(packet[0] & 0x0f) * 4
    } else {
        40
    }
}

/// Ones' complement sum of the TCP pseudo-header and segment, folded: a
/// correct checksum makes it 0xffff.
fn tcp_sum(packet: &[u8]) -> u16 {
    let start = tcp_start(packet);
    let segment = &packet[start..];
    let mut pseudo = Vec::new();
    if packet[0] >> 4 == 4 {
        pseudo.extend_from_slice(&packet[12..20]);
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
    } else {
        pseudo.extend_from_slice(&packet[8..40]);
        pseudo.extend_from_slice(&(segment.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
    }
    let mut sum: u32 = 0;
    for bytes in [&pseudo[..], segment] {
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn checksum_ok(packet: &[u8]) -> bool {
    tcp_sum(packet) == 0xffff
}

/// Sets a correct TCP checksum.
fn fix_checksum(packet: &mut [u8]) {
    let at = tcp_start(packet) + 16;
    packet[at..at + 2].fill(0);
    let sum = !tcp_sum(packet);
    packet[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

/// The MSS option's value, found by a plain walk of the options.
fn mss_of(packet: &[u8]) -> Option<u16> {
    let tcp = &packet[tcp_start(packet)..];
    mss_value_offset(tcp).map(|at| u16::from_be_bytes([tcp[at], tcp[at + 1]]))
}

/// `syn` (a captured one, options MSS SACKOK TS NOP WS) with its options
/// replaced by `options` (20 bytes, as the original) and a correct checksum.
fn with_options(syn: &str, options: &[u8; 20]) -> Vec<u8> {
    let mut packet = hex(syn);
    let start = tcp_start(&packet) + 20;
    packet[start..start + 20].copy_from_slice(options);
    fix_checksum(&mut packet);
    packet
}

#[test]
fn captured_handshakes_are_valid_and_clamped_to_the_tunnel() {
    for (syn, mss, ceiling) in [
        (SYN_V4, 1380, 1240),
        (SYN_ACK_V4, 1380, 1240),
        (SYN_V6, 1360, 1220),
        (SYN_ACK_V6, 1360, 1220),
    ] {
        let original = hex(syn);
        assert!(checksum_ok(&original), "fixture checksum");
        assert_eq!(mss_of(&original), Some(mss));
        let mut packet = original.clone();
        assert!(MssClamp::new(1280).apply(&mut packet));
        assert_eq!(mss_of(&packet), Some(ceiling));
        assert!(checksum_ok(&packet), "checksum after clamping {syn}");
        let changed: Vec<usize> = (0..packet.len())
            .filter(|&i| packet[i] != original[i])
            .collect();
        assert!(changed.len() <= 4, "only the MSS and checksum: {changed:?}");

        // A tunnel that carries the announced size leaves it alone.
        let mut packet = original.clone();
        assert!(!MssClamp::new(1420).apply(&mut packet));
        assert_eq!(packet, original);
    }
}

#[test]
fn mss_after_other_options_at_an_odd_offset() {
    // SACK permitted, timestamps, NOP, then MSS: its value sits at TCP
    // offset 35, straddling two checksum words.
    let options = [
        4, 2, 8, 10, 0xde, 0x53, 0x8c, 0x89, 0, 0, 0, 0, 1, 2, 4, 0x05, 0x64, 3, 3, 10,
    ];
    for syn in [SYN_V4, SYN_ACK_V4, SYN_V6, SYN_ACK_V6] {
        let mut packet = with_options(syn, &options);
        assert_eq!(mss_of(&packet), Some(1380));
        assert!(MssClamp::new(1000).apply(&mut packet));
        let ceiling = if packet[0] >> 4 == 4 { 960 } else { 940 };
        assert_eq!(mss_of(&packet), Some(ceiling));
        assert!(checksum_ok(&packet));
    }
}

#[test]
fn handshakes_without_mss_or_with_a_broken_list_are_untouched() {
    let no_mss = [
        1, 1, 1, 1, 4, 2, 8, 10, 0xde, 0x53, 0x8c, 0x89, 0, 0, 0, 0, 1, 3, 3, 10,
    ];
    // End of list before MSS; a zero-length option; an MSS of the wrong length.
    let after_end = [
        0, 1, 2, 4, 0x05, 0x64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ];
    let zero_len = [
        8, 0, 2, 4, 0x05, 0x64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ];
    let bad_len = [
        2, 3, 0x05, 0x64, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ];
    // The MSS option runs past the header's end.
    let truncated = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 4];
    for options in [no_mss, after_end, zero_len, bad_len, truncated] {
        for syn in [SYN_V4, SYN_V6] {
            let original = with_options(syn, &options);
            let mut packet = original.clone();
            assert!(!MssClamp::new(576).apply(&mut packet));
            assert_eq!(packet, original);
        }
    }
}

#[test]
fn non_syn_fragments_and_extension_headers_are_untouched() {
    let clamp = MssClamp::new(576);
    let untouched = |packet: Vec<u8>| {
        let mut copy = packet.clone();
        assert!(!clamp.apply(&mut copy));
        assert_eq!(copy, packet);
    };
    // The captured SYN as a plain ACK.
    let mut ack = hex(SYN_V4);
    ack[33] = 0x10;
    untouched(ack);
    // An IPv4 fragment (more fragments set), and one at an offset.
    let mut fragment = hex(SYN_V4);
    fragment[6] = 0x20;
    untouched(fragment.clone());
    fragment[6] = 0x00;
    fragment[7] = 0x10;
    untouched(fragment);
    // IPv6 with a hop-by-hop header first.
    let mut extension = hex(SYN_V6);
    extension[6] = 0;
    untouched(extension);
    // UDP, and cut short before the TCP flags.
    let mut udp = hex(SYN_V4);
    udp[9] = 17;
    untouched(udp);
    untouched(hex(SYN_V4)[..33].to_vec());
    untouched(hex(SYN_V6)[..53].to_vec());
}

#[test]
fn checksum_update_matches_a_full_recomputation() {
    // RFC 1624's case: the -0 result that equation 2 gets wrong.
    assert_eq!(update_checksum(0xdd2f, 0x5555, 0x3285), 0x0000);
    let mut packet = hex(SYN_V4);
    assert!(MssClamp::new(600).apply(&mut packet));
    let incremental = packet[36..38].to_vec();
    fix_checksum(&mut packet);
    assert_eq!(packet[36..38], incremental[..]);
}

/// One TCP option, as a generator picks it.
#[derive(Debug, Clone)]
enum Opt {
    Nop,
    Mss(u16),
    SackPermitted,
    Timestamps(u32, u32),
    WindowScale(u8),
    Other(u8, Vec<u8>),
}

impl Opt {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Opt::Nop => out.push(NOP),
            Opt::Mss(v) => out.extend_from_slice(&[MSS, MSS_LEN, (v >> 8) as u8, *v as u8]),
            Opt::SackPermitted => out.extend_from_slice(&[4, 2]),
            Opt::Timestamps(a, b) => {
                out.extend_from_slice(&[8, 10]);
                out.extend_from_slice(&a.to_be_bytes());
                out.extend_from_slice(&b.to_be_bytes());
            }
            Opt::WindowScale(s) => out.extend_from_slice(&[3, 3, *s]),
            Opt::Other(kind, data) => {
                out.extend_from_slice(&[*kind, data.len() as u8 + 2]);
                out.extend_from_slice(data);
            }
        }
    }
}

fn option() -> impl Strategy<Value = Opt> {
    prop_oneof![
        Just(Opt::Nop),
        any::<u16>().prop_map(Opt::Mss),
        Just(Opt::SackPermitted),
        (any::<u32>(), any::<u32>()).prop_map(|(a, b)| Opt::Timestamps(a, b)),
        any::<u8>().prop_map(Opt::WindowScale),
        (9u8..=254, proptest::collection::vec(any::<u8>(), 0..6))
            .prop_map(|(k, d)| Opt::Other(k, d)),
    ]
}

/// A well-formed TCP segment over IPv4 or IPv6 with a correct checksum:
/// random addresses, flags, options (up to 40 bytes) and payload.
fn tcp_packet() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        any::<[u8; 32]>(),
        any::<[u8; 16]>(),
        any::<u8>(),
        proptest::collection::vec(option(), 0..10),
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(v6, addresses, ports_seq, flags, options, payload)| {
            let mut opts = Vec::new();
            for o in &options {
                let mut one = Vec::new();
                o.encode(&mut one);
                if opts.len() + one.len() <= 40 {
                    opts.extend_from_slice(&one);
                }
            }
            while opts.len() % 4 != 0 {
                opts.push(END);
            }
            let mut tcp = ports_seq.to_vec();
            tcp.extend_from_slice(&[(((20 + opts.len()) / 4) << 4) as u8, flags, 0xff, 0xff]);
            tcp.extend_from_slice(&[0, 0, 0, 0]);
            tcp.extend_from_slice(&opts);
            tcp.extend_from_slice(&payload);
            let mut packet = if v6 {
                let mut h = vec![0x60, 0, 0, 0];
                h.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
                h.extend_from_slice(&[6, 64]);
                h.extend_from_slice(&addresses);
                h
            } else {
                let mut h = vec![0x45, 0];
                h.extend_from_slice(&((20 + tcp.len()) as u16).to_be_bytes());
                h.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
                h.extend_from_slice(&addresses[..8]);
                h
            };
            packet.extend_from_slice(&tcp);
            fix_checksum(&mut packet);
            packet
        })
}

proptest! {
    #[test]
    fn random_bytes_never_panic_and_change_at_most_mss_and_checksum(
        mut packet in proptest::collection::vec(any::<u8>(), 0..128),
        version in prop_oneof![Just(4u8), Just(6u8), any::<u8>()],
        mtu in any::<u16>(),
    ) {
        if let Some(first) = packet.first_mut() {
            *first = (version << 4) | (*first & 0x0f);
        }
        let original = packet.clone();
        let changed = MssClamp::new(mtu).apply(&mut packet);
        let differing = original.iter().zip(&packet).filter(|(a, b)| a != b).count();
        prop_assert!(differing <= 4);
        prop_assert_eq!(changed, differing > 0);
    }

    #[test]
    fn valid_checksums_stay_valid_and_mss_only_goes_down(
        packet in tcp_packet(),
        mtu in any::<u16>(),
    ) {
        prop_assert!(checksum_ok(&packet));
        let mut clamped = packet.clone();
        let clamp = MssClamp::new(mtu);
        let changed = clamp.apply(&mut clamped);
        prop_assert!(checksum_ok(&clamped));
        let syn = packet[tcp_start(&packet) + 13] & SYN != 0;
        let ceiling = if packet[0] >> 4 == 4 { clamp.v4 } else { clamp.v6 };
        match (syn, mss_of(&packet)) {
            (true, Some(mss)) => {
                prop_assert_eq!(mss_of(&clamped), Some(mss.min(ceiling)));
                prop_assert_eq!(changed, mss > ceiling);
            }
            _ => {
                prop_assert!(!changed);
                prop_assert_eq!(&clamped, &packet);
            }
        }
    }
}
