//! The TUN device's virtio-net header (`IFF_VNET_HDR`), and the UDP
//! super-packets it lets writes carry.
//!
//! Why: every packet the tunnel delivers is one TUN write, and each write
//! walks the kernel's whole receive and forwarding path (on the gateway:
//! routing, netfilter, the uplink's queue). Under a UDP flood that per-packet
//! walk is a fifth of the daemon's time. With the header, consecutive
//! datagrams of one UDP flow go down as one GSO super-packet, which the
//! kernel walks once and splits only where it must: at a device that cannot
//! take it whole, or at the receiving socket. wireguard-go does the same
//! (`tun/offload_linux.go`).
//!
//! Reads get the header too. The device is given no offloads
//! (`TUNSETOFFLOAD` is never called), so the kernel hands over whole,
//! checksummed packets; the header is stripped and, should a kernel leave a
//! checksum to the device anyway, completed.

use internet_checksum::Checksum;

/// `struct virtio_net_hdr`: flags, gso_type, then four 16-bit fields in the
/// host's byte order (legacy virtio, which TUN uses unless told otherwise).
pub const VNET_HDR_LEN: usize = 10;

const F_NEEDS_CSUM: u8 = 1;
const GSO_NONE: u8 = 0;
const GSO_UDP_L4: u8 = 5;

/// Datagrams in one super-packet at most. The kernel takes 128
/// (`UDP_MAX_SEGMENTS`); a flush ends every train long before that anyway.
const MAX_SEGMENTS: usize = 64;
/// An IP packet's length fields are 16 bits.
const MAX_IP_LEN: usize = 65_535;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const PROTO_UDP: u8 = 17;

/// The IP packet in `frame`, one read from the device: the header stripped,
/// its checksum completed if the header asks for it. `None` for a frame
/// this device is never given: a GSO packet, or a header whose checksum
/// position lies outside the packet.
pub fn packet_read(frame: &mut [u8]) -> Option<&[u8]> {
    let (header, packet) = frame.split_at_mut_checked(VNET_HDR_LEN)?;
    if header[1] != GSO_NONE {
        return None;
    }
    if header[0] & F_NEEDS_CSUM != 0 {
        let start = usize::from(u16::from_ne_bytes([header[6], header[7]]));
        let field = start + usize::from(u16::from_ne_bytes([header[8], header[9]]));
        if field + 2 > packet.len() {
            return None;
        }
        // The field holds the pseudo-header sum, and the sum from `start`
        // covers it.
        let sum = internet_checksum::checksum(&packet[start..]);
        packet[field..field + 2].copy_from_slice(&sum);
    }
    Some(packet)
}

/// A run of datagrams of one flow gathered in [`TunWriter`]'s frame.
#[derive(Clone, Copy)]
struct Train {
    ip_header: usize,
    /// UDP payload bytes of the first datagram: every datagram but the last
    /// is exactly this long (how GSO splits).
    segment: usize,
    segments: usize,
    /// False once a shorter datagram has ended the train.
    open: bool,
}

/// Writes packets to the device, each behind its header, sending a flow's
/// consecutive UDP datagrams as one super-packet. The caller pushes what
/// the engine delivers and flushes once the engine has nothing more, so a
/// train never waits for a packet that is not already there.
pub struct TunWriter {
    /// Header, then the pending packet or train.
    frame: Box<[u8]>,
    /// Bytes of `frame` in use; 0 when nothing is pending.
    len: usize,
    train: Option<Train>,
}

impl Default for TunWriter {
    fn default() -> Self {
        TunWriter {
            frame: vec![0u8; VNET_HDR_LEN + MAX_IP_LEN].into_boxed_slice(),
            len: 0,
            train: None,
        }
    }
}

impl TunWriter {
    /// Takes `packet`, writing out with `write` what it cannot join.
    pub fn push(&mut self, packet: &[u8], write: &mut impl FnMut(&[u8])) {
        if let Some(train) = self.train.filter(|t| t.open)
            && let Some(payload) = self.joinable(train, packet)
        {
            let end = self.len + payload.len();
            self.frame[self.len..end].copy_from_slice(payload);
            self.len = end;
            self.train = Some(Train {
                segments: train.segments + 1,
                open: payload.len() == train.segment && train.segments + 1 < MAX_SEGMENTS,
                ..train
            });
            return;
        }
        self.flush(write);
        let Some(room) = self
            .frame
            .get_mut(VNET_HDR_LEN..VNET_HDR_LEN + packet.len())
        else {
            // Longer than any IP packet: the device refuses it as well.
            return;
        };
        room.copy_from_slice(packet);
        self.len = VNET_HDR_LEN + packet.len();
        self.train = udp_datagram(packet).map(|ip_header| Train {
            ip_header,
            segment: packet.len() - ip_header - UDP_HEADER,
            segments: 1,
            open: true,
        });
    }

    /// Writes out what is pending.
    pub fn flush(&mut self, write: &mut impl FnMut(&[u8])) {
        if self.len == 0 {
            return;
        }
        let (header, packet) = self.frame[..self.len].split_at_mut(VNET_HDR_LEN);
        match self.train.take() {
            Some(train) if train.segments > 1 => seal_super_packet(header, packet, train),
            _ => header.fill(0),
        }
        write(&self.frame[..self.len]);
        self.len = 0;
    }

    /// The UDP payload of `packet` if it continues `train`: the same flow
    /// (every header field but lengths, IPv4 ID and checksums equal to the
    /// first datagram's), no longer than the train's segment, and room left.
    fn joinable<'p>(&self, train: Train, packet: &'p [u8]) -> Option<&'p [u8]> {
        let first = &self.frame[VNET_HDR_LEN..];
        let payload = packet.get(train.ip_header + UDP_HEADER..)?;
        let same_flow =
            |ranges: &[(usize, usize)]| ranges.iter().all(|&(a, b)| first[a..b] == packet[a..b]);
        let fits = (1..=train.segment).contains(&payload.len())
            && self.len - VNET_HDR_LEN + payload.len() <= MAX_IP_LEN;
        let flow = match train.ip_header {
            // Version/IHL and TOS; flags, TTL and protocol; addresses and ports.
            IPV4_HEADER => same_flow(&[(0, 2), (6, 10), (12, 24)]),
            // Version, class and label; next header and hop limit; addresses and ports.
            _ => same_flow(&[(0, 4), (6, 44)]),
        };
        (fits && flow && udp_datagram(packet) == Some(train.ip_header)).then_some(payload)
    }
}

/// The IP header length of `packet` if it is a UDP datagram a super-packet
/// may carry: IPv4 without options or fragmentation, or IPv6 without
/// extension headers; lengths consistent; a payload; and valid checksums,
/// since the super-packet gets new ones and must not launder a bad one.
fn udp_datagram(packet: &[u8]) -> Option<usize> {
    let be16 = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (ip_header, addresses) = match packet.first()? >> 4 {
        4 if packet.len() > IPV4_HEADER + UDP_HEADER
            && packet[0] == 0x45
            && usize::from(be16(2)) == packet.len()
            && be16(6) & 0x3fff == 0
            && packet[9] == PROTO_UDP
            && internet_checksum::checksum(&packet[..IPV4_HEADER]) == [0, 0] =>
        {
            (IPV4_HEADER, &packet[12..20])
        }
        6 if packet.len() > IPV6_HEADER + UDP_HEADER
            && usize::from(be16(4)) == packet.len() - IPV6_HEADER
            && packet[6] == PROTO_UDP =>
        {
            (IPV6_HEADER, &packet[8..40])
        }
        _ => return None,
    };
    let udp = &packet[ip_header..];
    let length_right = usize::from(be16(ip_header + 4)) == udp.len();
    // An IPv4 sender may leave the checksum out (zero); then there is none
    // to keep valid, but the super-packet would invent one: leave it alone.
    let has_checksum = be16(ip_header + 6) != 0;
    let mut sum = pseudo_header_sum(addresses, udp.len());
    sum.add_bytes(udp);
    (length_right && has_checksum && sum.checksum() == [0, 0]).then_some(ip_header)
}

/// The UDP pseudo-header: addresses, protocol, UDP length.
fn pseudo_header_sum(addresses: &[u8], udp_len: usize) -> Checksum {
    let mut sum = Checksum::new();
    sum.add_bytes(addresses);
    sum.add_bytes(&[0, PROTO_UDP]);
    sum.add_bytes(&(udp_len as u16).to_be_bytes());
    sum
}

/// Turns the gathered train into one super-packet: IP and UDP lengths of
/// the whole, the IPv4 header checksum redone, and the UDP checksum left to
/// the kernel per segment (the field holds the pseudo-header sum, as
/// `NEEDS_CSUM` wants).
fn seal_super_packet(header: &mut [u8], packet: &mut [u8], train: Train) {
    let ip = train.ip_header;
    let ip_len = packet.len();
    let udp_len = ip_len - ip;
    let addresses = if ip == IPV4_HEADER {
        packet[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        packet[10..12].fill(0);
        let sum = internet_checksum::checksum(&packet[..IPV4_HEADER]);
        packet[10..12].copy_from_slice(&sum);
        12..20
    } else {
        packet[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        8..40
    };
    packet[ip + 4..ip + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    let [a, b] = pseudo_header_sum(&packet[addresses], udp_len).checksum();
    packet[ip + 6..ip + 8].copy_from_slice(&[!a, !b]);
    header[0] = F_NEEDS_CSUM;
    header[1] = GSO_UDP_L4;
    let fields = [ip + UDP_HEADER, train.segment, ip, 6];
    for (k, value) in fields.into_iter().enumerate() {
        header[2 + 2 * k..4 + 2 * k].copy_from_slice(&(value as u16).to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V4: ([u8; 4], [u8; 4]) = ([100, 64, 0, 2], [198, 19, 0, 2]);
    const V6: [u8; 32] = {
        let mut a = [0u8; 32];
        a[0] = 0xfd;
        a[15] = 2;
        a[16] = 0xfd;
        a[31] = 1;
        a
    };

    fn be16(b: &[u8], at: usize) -> u16 {
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    fn put16(b: &mut [u8], at: usize, value: usize) {
        b[at..at + 2].copy_from_slice(&(value as u16).to_be_bytes());
    }

    /// What a UDP sender's kernel writes: both checksums valid, a computed
    /// zero sent as 0xffff.
    fn fill_checksums(packet: &mut [u8]) {
        let (ip, addresses) = if packet[0] >> 4 == 4 {
            let sum = internet_checksum::checksum(&packet[..20]);
            packet[10..12].copy_from_slice(&sum);
            (20, 12..20)
        } else {
            (40, 8..40)
        };
        let mut sum = pseudo_header_sum(&packet[addresses], packet.len() - ip);
        sum.add_bytes(&packet[ip..]);
        let check = match sum.checksum() {
            [0, 0] => [0xff, 0xff],
            c => c,
        };
        packet[ip + 6..ip + 8].copy_from_slice(&check);
    }

    /// A datagram of flow `port` (IPv4 or IPv6) with IPv4 ID `id`.
    fn datagram(ipv6: bool, port: u16, id: u16, payload: &[u8]) -> Vec<u8> {
        let mut p = if ipv6 {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, PROTO_UDP, 64];
            h.extend(V6);
            put16(&mut h, 4, UDP_HEADER + payload.len());
            h
        } else {
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, PROTO_UDP, 0, 0];
            h.extend(V4.0);
            h.extend(V4.1);
            put16(&mut h, 2, IPV4_HEADER + UDP_HEADER + payload.len());
            put16(&mut h, 4, usize::from(id));
            h
        };
        let ip = p.len();
        p.extend(port.to_be_bytes());
        p.extend(9000u16.to_be_bytes());
        p.extend([0, 0, 0, 0]);
        put16(&mut p, ip + 4, UDP_HEADER + payload.len());
        p.extend(payload);
        fill_checksums(&mut p);
        p
    }

    fn csum16_add(a: u16, b: u16) -> u16 {
        let (s, carry) = a.overflowing_add(b);
        s + u16::from(carry)
    }

    /// What the kernel makes of a written frame: the packet itself, or the
    /// datagrams it splits a super-packet into (`__udp_gso_segment`: IPv4 ID
    /// counted up, lengths per segment, the pseudo-header sum adjusted to
    /// the segment's length and the checksum completed from `csum_start`).
    fn kernel_split(frame: &[u8]) -> Vec<Vec<u8>> {
        let (header, packet) = frame.split_at(VNET_HDR_LEN);
        if header[1] == GSO_NONE {
            assert_eq!(header, [0; VNET_HDR_LEN], "a single packet needs nothing");
            return vec![packet.to_vec()];
        }
        let field =
            |k: usize| usize::from(u16::from_ne_bytes([header[2 + 2 * k], header[3 + 2 * k]]));
        let (hdr_len, gso_size, csum_start, csum_offset) = (field(0), field(1), field(2), field(3));
        assert_eq!((header[0], header[1]), (F_NEEDS_CSUM, GSO_UDP_L4));
        assert_eq!((hdr_len, csum_offset), (csum_start + UDP_HEADER, 6));
        let ip = csum_start;
        let ipv4 = ip == IPV4_HEADER;
        if ipv4 {
            assert_eq!(usize::from(be16(packet, 2)), packet.len());
            assert_eq!(internet_checksum::checksum(&packet[..20]), [0, 0]);
        } else {
            assert_eq!(usize::from(be16(packet, 4)), packet.len() - ip);
        }
        let whole_udp_len = be16(packet, ip + 4);
        assert_eq!(usize::from(whole_udp_len), packet.len() - ip);
        let partial = be16(packet, ip + 6);
        let first_id = be16(packet, 4);
        let segments: Vec<_> = packet[hdr_len..].chunks(gso_size).collect();
        assert!(segments.len() > 1, "a super-packet of one datagram");
        segments
            .into_iter()
            .enumerate()
            .map(|(k, payload)| {
                let mut p = packet[..hdr_len].to_vec();
                p.extend(payload);
                let udp_len = UDP_HEADER + payload.len();
                if ipv4 {
                    put16(&mut p, 2, ip + udp_len);
                    put16(&mut p, 4, usize::from(first_id.wrapping_add(k as u16)));
                    p[10..12].fill(0);
                    let sum = internet_checksum::checksum(&p[..20]);
                    p[10..12].copy_from_slice(&sum);
                } else {
                    put16(&mut p, 4, udp_len);
                }
                put16(&mut p, ip + 4, udp_len);
                let check = csum16_add(csum16_add(partial, !whole_udp_len), udp_len as u16);
                put16(&mut p, ip + 6, usize::from(check));
                let done = match internet_checksum::checksum(&p[ip..]) {
                    [0, 0] => [0xff, 0xff],
                    c => c,
                };
                p[ip + 6..ip + 8].copy_from_slice(&done);
                p
            })
            .collect()
    }

    /// The frames `packets` are written as.
    fn written(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut writer = TunWriter::default();
        let mut write = |frame: &[u8]| frames.push(frame.to_vec());
        for p in packets {
            writer.push(p, &mut write);
        }
        writer.flush(&mut write);
        frames
    }

    fn delivered(frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
        frames.iter().flat_map(|f| kernel_split(f)).collect()
    }

    #[test]
    fn a_flows_datagrams_go_down_as_one_super_packet() {
        for ipv6 in [false, true] {
            let packets: Vec<_> = (0..10)
                .map(|k| datagram(ipv6, 5000, 7 + k, &[k as u8; 1200]))
                .collect();
            let frames = written(&packets);
            assert_eq!(frames.len(), 1, "ipv6 {ipv6}");
            let ip = if ipv6 { IPV6_HEADER } else { IPV4_HEADER };
            let field = |k: usize| u16::from_ne_bytes([frames[0][2 + 2 * k], frames[0][3 + 2 * k]]);
            assert_eq!(field(1), 1200, "gso_size");
            assert_eq!(field(2), ip as u16, "csum_start");
            assert_eq!(delivered(&frames), packets);
        }
    }

    #[test]
    fn ipv4_ids_need_not_be_consecutive() {
        let packets = [
            datagram(false, 1, 10, &[1; 100]),
            datagram(false, 1, 99, &[2; 100]),
        ];
        let frames = written(&packets);
        assert_eq!(frames.len(), 1);
        // The kernel numbers the segments from the first ID.
        assert_eq!(delivered(&frames)[1], datagram(false, 1, 11, &[2; 100]));
    }

    #[test]
    fn a_shorter_datagram_ends_the_train_and_a_longer_one_starts_another() {
        let sizes = [1000, 1000, 400, 1000, 1200, 600];
        let packets: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| datagram(false, 1, k as u16, &vec![k as u8; n]))
            .collect();
        let frames = written(&packets);
        // [1000 1000 400] [1000] [1200 600]
        assert_eq!(frames.len(), 3);
        assert_eq!(delivered(&frames), packets);
    }

    #[test]
    fn trains_stop_at_the_segment_and_length_limits() {
        let many: Vec<_> = (0..100).map(|k| datagram(false, 1, k, &[3; 100])).collect();
        let frames = written(&many);
        assert_eq!(frames.len(), 2, "64 + 36 datagrams");
        assert_eq!(delivered(&frames), many);
        let big: Vec<_> = (0..40).map(|k| datagram(true, 1, k, &[4; 8000])).collect();
        let frames = written(&big);
        assert!(frames.iter().all(|f| f.len() - VNET_HDR_LEN <= MAX_IP_LEN));
        assert_eq!(frames.len(), 5, "8 datagrams of 8 KB per 64 KB");
        assert_eq!(delivered(&frames), big);
    }

    #[test]
    fn what_cannot_join_goes_alone_and_unchanged() {
        let mut no_checksum = datagram(false, 1, 0, &[5; 300]);
        no_checksum[26..28].fill(0);
        let mut bad_checksum = datagram(false, 1, 0, &[5; 300]);
        bad_checksum[30] ^= 1;
        let mut fragment = datagram(false, 1, 0, &[5; 300]);
        fragment[6] = 0x20; // more fragments
        fill_checksums(&mut fragment);
        let mut tcp = datagram(false, 1, 0, &[5; 300]);
        tcp[9] = 6;
        fill_checksums(&mut tcp);
        let other_flow = datagram(false, 2, 0, &[5; 300]);
        let other_family = datagram(true, 1, 0, &[5; 300]);
        let good = datagram(false, 1, 0, &[5; 300]);
        for odd in [
            no_checksum,
            bad_checksum,
            fragment,
            tcp,
            other_flow,
            other_family,
        ] {
            let packets = [good.clone(), odd.clone(), good.clone()];
            let frames = written(&packets);
            assert_eq!(frames.len(), 3);
            assert_eq!(delivered(&frames), packets);
        }
    }

    #[test]
    fn reads_lose_their_header_and_get_a_pending_checksum_completed() {
        let packet = datagram(false, 1, 0, &[6; 333]);
        let mut frame = [vec![0; VNET_HDR_LEN], packet.clone()].concat();
        assert_eq!(packet_read(&mut frame), Some(&packet[..]));

        // A checksum left to the device: the field holds the pseudo-header sum.
        let mut partial = packet.clone();
        let [a, b] = pseudo_header_sum(&partial[12..20], partial.len() - 20).checksum();
        partial[26..28].copy_from_slice(&[!a, !b]);
        let mut header = vec![F_NEEDS_CSUM, GSO_NONE, 0, 0, 0, 0];
        header.extend(20u16.to_ne_bytes());
        header.extend(6u16.to_ne_bytes());
        let mut frame = [header.clone(), partial].concat();
        assert_eq!(packet_read(&mut frame), Some(&packet[..]));

        let mut outside = [header, packet[..25].to_vec()].concat();
        assert_eq!(packet_read(&mut outside), None);
        let mut gso = [vec![0, GSO_UDP_L4, 0, 0, 0, 0, 0, 0, 0, 0], packet].concat();
        assert_eq!(packet_read(&mut gso), None);
        assert_eq!(packet_read(&mut [0; 4]), None);
    }

    /// A packet of one of a few flows: UDP over IPv4 or IPv6, sometimes
    /// with a bad checksum, or TCP.
    fn any_packet() -> impl Strategy<Value = (u8, usize, bool)> {
        (
            0u8..5,
            prop_oneof![Just(1usize), Just(700), Just(1200), 1usize..1400],
            any::<bool>(),
        )
    }

    proptest! {
        /// Whatever is pushed, the kernel ends up with exactly those packets, in order.
        #[test]
        fn the_kernel_gets_back_exactly_what_was_pushed(
            specs in proptest::collection::vec(any_packet(), 0..150)
        ) {
            let packets: Vec<_> = specs
                .iter()
                .enumerate()
                .map(|(k, &(kind, len, corrupt))| {
                    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + k) as u8).collect();
                    let mut p = datagram(kind >= 3, u16::from(kind % 3), k as u16, &payload);
                    if kind == 4 {
                        p[6] = 6; // TCP over IPv6
                    } else if corrupt && k % 5 == 0 {
                        *p.last_mut().unwrap() ^= 0x80;
                    }
                    p
                })
                .collect();
            let frames = written(&packets);
            prop_assert_eq!(delivered(&frames), packets);
        }
    }
}
