//! The TUN device's virtio-net header (`IFF_VNET_HDR`), and the UDP and
//! TCP super-packets it lets writes carry.
//!
//! Why: every packet the tunnel delivers is one TUN write, and each write
//! walks the kernel's whole receive and forwarding path (on the gateway:
//! routing, netfilter, the uplink's queue). Under a flood that per-packet
//! walk is a fifth of the daemon's time. With the header, consecutive
//! packets of one flow go down as one GSO super-packet, which the kernel
//! walks once and splits only where it must: at a device that cannot take
//! it whole, or (UDP) at the receiving socket; a local TCP socket takes it
//! whole. wireguard-go does the same (`tun/offload_linux.go`).
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
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;

/// Packets in one super-packet at most. The kernel takes 128 datagrams
/// (`UDP_MAX_SEGMENTS`); a flush ends every train long before that anyway.
const MAX_SEGMENTS: usize = 64;
/// An IP packet's length fields are 16 bits.
const MAX_IP_LEN: usize = 65_535;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

/// The IP packet in `frame`, one read from the device: the header stripped,
/// its checksum completed if the header asks for it; mutable, for the MSS
/// clamp. `None` for a frame this device is never given: a GSO packet, or
/// a header whose checksum position lies outside the packet.
pub fn packet_read(frame: &mut [u8]) -> Option<&mut [u8]> {
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

/// A packet a super-packet may carry (see [`segment_of`]).
#[derive(Clone, Copy, PartialEq, Debug)]
struct Segment {
    ip_header: usize,
    /// IP and transport headers together.
    headers: usize,
    protocol: u8,
    payload: usize,
    /// TCP only: the sequence number, and whether PSH is set.
    seq: u32,
    push: bool,
}

/// A run of packets of one flow gathered in [`TunWriter`]'s frame.
#[derive(Clone, Copy)]
struct Train {
    first: Segment,
    segments: usize,
    /// TCP: the sequence number that continues the train.
    next_seq: u32,
    /// The last packet's PSH, which the kernel gives the last segment.
    push: bool,
    /// False once a shorter packet, a PSH or the limit has ended the train:
    /// GSO splits into equal segments and only the last may be shorter.
    open: bool,
}

impl Train {
    fn new(first: Segment) -> Self {
        Train {
            first,
            segments: 1,
            next_seq: first.seq.wrapping_add(first.payload as u32),
            push: first.push,
            open: !first.push,
        }
    }

    fn join(self, next: Segment) -> Self {
        Train {
            segments: self.segments + 1,
            next_seq: next.seq.wrapping_add(next.payload as u32),
            push: next.push,
            open: next.payload == self.first.payload
                && !next.push
                && self.segments + 1 < MAX_SEGMENTS,
            ..self
        }
    }
}

/// Writes packets to the device, each behind its header, sending a flow's
/// consecutive UDP datagrams or TCP segments as one super-packet. The
/// caller pushes what the engine delivers and flushes once the engine has
/// nothing more, so a train never waits for a packet that is not already
/// there.
pub struct TunWriter {
    /// Header, then the pending packet or train.
    frame: Box<[u8]>,
    /// Bytes of `frame` in use; 0 when nothing is pending.
    len: usize,
    train: Option<Train>,
    /// Whether UDP datagrams form trains too (the kernel must take them).
    udp: bool,
}

impl TunWriter {
    /// A writer of TCP super-packets, and of UDP ones if `udp`.
    pub fn new(udp: bool) -> Self {
        TunWriter {
            frame: vec![0u8; VNET_HDR_LEN + MAX_IP_LEN].into_boxed_slice(),
            len: 0,
            train: None,
            udp,
        }
    }

    /// Takes `packet`, writing out with `write` what it cannot join.
    pub fn push(&mut self, packet: &[u8], write: &mut impl FnMut(&[u8])) {
        let segment = segment_of(packet).filter(|s| self.udp || s.protocol != PROTO_UDP);
        if let Some(train) = self.train.filter(|t| t.open)
            && let Some(next) = segment
            && self.continues(train, next, packet)
        {
            let end = self.len + next.payload;
            self.frame[self.len..end].copy_from_slice(&packet[next.headers..]);
            self.len = end;
            self.train = Some(train.join(next));
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
        self.train = segment.map(Train::new);
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

    /// Whether `next`, the segment `packet` is, continues `train`: the same
    /// flow (every header field but lengths, IPv4 ID, checksums, TCP
    /// sequence number and PSH equal to the first packet's), TCP data that
    /// follows on, no longer than the train's segment, and room left.
    fn continues(&self, train: Train, next: Segment, packet: &[u8]) -> bool {
        let first = &self.frame[VNET_HDR_LEN..];
        let (ip, headers) = (train.first.ip_header, train.first.headers);
        let follows = next.headers == headers
            && next.payload <= train.first.payload
            && self.len - VNET_HDR_LEN + next.payload <= MAX_IP_LEN
            && (next.protocol == PROTO_UDP || next.seq == train.next_seq);
        if !follows {
            return false;
        }
        let same =
            |ranges: &[(usize, usize)]| ranges.iter().all(|&(a, b)| first[a..b] == packet[a..b]);
        let same_ip = match ip {
            // Version/IHL and TOS; flags, TTL and protocol; addresses.
            IPV4_HEADER => same(&[(0, 2), (6, 10), (12, 20)]),
            // Version, class and label; next header and hop limit; addresses.
            _ => same(&[(0, 4), (6, 40)]),
        };
        let same_transport = match train.first.protocol {
            PROTO_UDP => same(&[(ip, ip + 4)]),
            // Ports; ack and header length; window, urgent pointer, options.
            _ => same(&[
                (ip, ip + 4),
                (ip + 8, ip + 13),
                (ip + 14, ip + 16),
                (ip + 18, headers),
            ]),
        };
        same_ip && same_transport
    }
}

/// `packet` as a segment if a super-packet may carry it: IPv4 without
/// options or fragmentation, or IPv6 without extension headers; UDP, or
/// TCP with only ACK and PSH set; lengths consistent; a payload; and valid
/// checksums, since the super-packet gets new ones and must not launder a
/// bad one.
fn segment_of(packet: &[u8]) -> Option<Segment> {
    let be16 = |at: usize| u16::from_be_bytes([packet[at], packet[at + 1]]);
    let (ip_header, protocol, addresses) = match packet.first()? >> 4 {
        4 if packet.len() > IPV4_HEADER + UDP_HEADER
            && packet[0] == 0x45
            && usize::from(be16(2)) == packet.len()
            && be16(6) & 0x3fff == 0
            && internet_checksum::checksum(&packet[..IPV4_HEADER]) == [0, 0] =>
        {
            (IPV4_HEADER, packet[9], &packet[12..20])
        }
        6 if packet.len() > IPV6_HEADER + UDP_HEADER
            && usize::from(be16(4)) == packet.len() - IPV6_HEADER =>
        {
            (IPV6_HEADER, packet[6], &packet[8..40])
        }
        _ => return None,
    };
    let transport = &packet[ip_header..];
    let (headers, seq, push) = match protocol {
        // An IPv4 sender may leave the UDP checksum out (zero); then there
        // is none to keep valid, but the super-packet would invent one.
        PROTO_UDP
            if usize::from(be16(ip_header + 4)) == transport.len() && be16(ip_header + 6) != 0 =>
        {
            (ip_header + UDP_HEADER, 0, false)
        }
        PROTO_TCP => {
            let headers = ip_header + usize::from(transport.get(12)? >> 4) * 4;
            let flags = transport.get(13)?;
            if headers < ip_header + 20 || flags & !TCP_PSH != TCP_ACK {
                return None;
            }
            let seq = u32::from_be_bytes(transport[4..8].try_into().ok()?);
            (headers, seq, flags & TCP_PSH != 0)
        }
        _ => return None,
    };
    let payload = packet.len().checked_sub(headers).filter(|&n| n > 0)?;
    let mut sum = pseudo_header_sum(addresses, protocol, transport.len());
    sum.add_bytes(transport);
    (sum.checksum() == [0, 0]).then_some(Segment {
        ip_header,
        headers,
        protocol,
        payload,
        seq,
        push,
    })
}

/// The pseudo-header: addresses, protocol, transport length.
fn pseudo_header_sum(addresses: &[u8], protocol: u8, len: usize) -> Checksum {
    let mut sum = Checksum::new();
    sum.add_bytes(addresses);
    sum.add_bytes(&[0, protocol]);
    sum.add_bytes(&(len as u16).to_be_bytes());
    sum
}

/// Turns the gathered train into one super-packet: IP (and UDP) lengths of
/// the whole, the IPv4 header checksum redone, the last packet's PSH, and
/// the transport checksum left to the kernel per segment (the field holds
/// the pseudo-header sum, as `NEEDS_CSUM` wants).
fn seal_super_packet(header: &mut [u8], packet: &mut [u8], train: Train) {
    let first = train.first;
    let ip = first.ip_header;
    let ip_len = packet.len();
    let transport_len = ip_len - ip;
    let addresses = if ip == IPV4_HEADER {
        packet[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        packet[10..12].fill(0);
        let sum = internet_checksum::checksum(&packet[..IPV4_HEADER]);
        packet[10..12].copy_from_slice(&sum);
        12..20
    } else {
        packet[4..6].copy_from_slice(&(transport_len as u16).to_be_bytes());
        8..40
    };
    let (gso_type, checksum_at) = match first.protocol {
        PROTO_UDP => {
            packet[ip + 4..ip + 6].copy_from_slice(&(transport_len as u16).to_be_bytes());
            (GSO_UDP_L4, 6)
        }
        _ => {
            if train.push {
                packet[ip + 13] |= TCP_PSH;
            }
            (
                if ip == IPV4_HEADER {
                    GSO_TCPV4
                } else {
                    GSO_TCPV6
                },
                16,
            )
        }
    };
    let [a, b] = pseudo_header_sum(&packet[addresses], first.protocol, transport_len).checksum();
    packet[ip + checksum_at..ip + checksum_at + 2].copy_from_slice(&[!a, !b]);
    header[0] = F_NEEDS_CSUM;
    header[1] = gso_type;
    let fields = [first.headers, first.payload, ip, checksum_at];
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

    fn ip_header_len(packet: &[u8]) -> usize {
        if packet[0] >> 4 == 4 {
            IPV4_HEADER
        } else {
            IPV6_HEADER
        }
    }

    fn checksum_offset(protocol: u8) -> usize {
        if protocol == PROTO_UDP { 6 } else { 16 }
    }

    /// The transport checksum of `packet`, with its field holding `seed`,
    /// as the kernel stores a computed one (a zero sent as 0xffff).
    fn transport_checksum(packet: &mut [u8], seed: u16) {
        let ip = ip_header_len(packet);
        let at = ip + checksum_offset(packet[if ip == IPV4_HEADER { 9 } else { 6 }]);
        put16(packet, at, usize::from(seed));
        let sum = match internet_checksum::checksum(&packet[ip..]) {
            [0, 0] => [0xff, 0xff],
            c => c,
        };
        packet[at..at + 2].copy_from_slice(&sum);
    }

    /// What a sender's kernel writes: every checksum valid.
    fn fill_checksums(packet: &mut [u8]) {
        let ip = ip_header_len(packet);
        let (protocol, addresses) = if ip == IPV4_HEADER {
            packet[10..12].fill(0);
            let sum = internet_checksum::checksum(&packet[..20]);
            packet[10..12].copy_from_slice(&sum);
            (packet[9], 12..20)
        } else {
            (packet[6], 8..40)
        };
        let [a, b] = pseudo_header_sum(&packet[addresses], protocol, packet.len() - ip).checksum();
        transport_checksum(packet, u16::from_be_bytes([!a, !b]));
    }

    /// An IPv4 (ID `id`) or IPv6 packet with the given transport header.
    fn packet(ipv6: bool, protocol: u8, id: u16, transport: &[u8], payload: &[u8]) -> Vec<u8> {
        let len = transport.len() + payload.len();
        let mut p = if ipv6 {
            let mut h = vec![0x60, 0, 0, 0, 0, 0, protocol, 64];
            h.extend(V6);
            put16(&mut h, 4, len);
            h
        } else {
            let mut h = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0];
            h.extend(V4.0);
            h.extend(V4.1);
            put16(&mut h, 2, IPV4_HEADER + len);
            put16(&mut h, 4, usize::from(id));
            h
        };
        p.extend(transport);
        p.extend(payload);
        fill_checksums(&mut p);
        p
    }

    /// A UDP datagram of flow `port`.
    fn datagram(ipv6: bool, port: u16, id: u16, payload: &[u8]) -> Vec<u8> {
        let mut udp = [port.to_be_bytes(), 9000u16.to_be_bytes(), [0; 2], [0; 2]].concat();
        put16(&mut udp, 4, UDP_HEADER + payload.len());
        packet(ipv6, PROTO_UDP, id, &udp, payload)
    }

    /// A TCP data segment of flow `port`, with a timestamp option whose
    /// value is `tsval`.
    fn tcp_segment(
        ipv6: bool,
        port: u16,
        id: u16,
        seq: u32,
        push: bool,
        tsval: u32,
        payload: &[u8],
    ) -> Vec<u8> {
        let flags = if push { TCP_ACK | TCP_PSH } else { TCP_ACK };
        let mut tcp = [
            &port.to_be_bytes()[..],
            &9000u16.to_be_bytes(),
            &seq.to_be_bytes(),
            &77u32.to_be_bytes(),
        ]
        .concat();
        tcp.extend([8 << 4, flags, 1, 245, 0, 0, 0, 0]);
        tcp.extend([1, 1, 8, 10]);
        tcp.extend(tsval.to_be_bytes());
        tcp.extend(5u32.to_be_bytes());
        packet(ipv6, PROTO_TCP, id, &tcp, payload)
    }

    fn csum16_add(a: u16, b: u16) -> u16 {
        let (s, carry) = a.overflowing_add(b);
        s + u16::from(carry)
    }

    /// What the kernel makes of a written frame: the packet itself, or the
    /// packets it splits a super-packet into (`__udp_gso_segment`,
    /// `tcp_gso_segment`): IPv4 ID counted up, lengths per segment, TCP
    /// sequence numbers counted on and PSH on the last segment only, the
    /// pseudo-header sum adjusted to the segment's length and the checksum
    /// completed from `csum_start`.
    fn kernel_split(frame: &[u8]) -> Vec<Vec<u8>> {
        let (header, packet) = frame.split_at(VNET_HDR_LEN);
        if header[1] == GSO_NONE {
            assert_eq!(header, [0; VNET_HDR_LEN], "a single packet needs nothing");
            return vec![packet.to_vec()];
        }
        let field =
            |k: usize| usize::from(u16::from_ne_bytes([header[2 + 2 * k], header[3 + 2 * k]]));
        let (hdr_len, gso_size, csum_start, csum_offset) = (field(0), field(1), field(2), field(3));
        let ip = csum_start;
        let ipv4 = ip == IPV4_HEADER;
        let protocol = packet[if ipv4 { 9 } else { 6 }];
        let expected_type = match (protocol, ipv4) {
            (PROTO_UDP, _) => GSO_UDP_L4,
            (_, true) => GSO_TCPV4,
            _ => GSO_TCPV6,
        };
        assert_eq!((header[0], header[1]), (F_NEEDS_CSUM, expected_type));
        assert_eq!(csum_offset, checksum_offset(protocol));
        if ipv4 {
            assert_eq!(usize::from(be16(packet, 2)), packet.len());
            assert_eq!(internet_checksum::checksum(&packet[..20]), [0, 0]);
        } else {
            assert_eq!(usize::from(be16(packet, 4)), packet.len() - ip);
        }
        let whole_len = (packet.len() - ip) as u16;
        if protocol == PROTO_UDP {
            assert_eq!(hdr_len, ip + UDP_HEADER);
            assert_eq!(be16(packet, ip + 4), whole_len);
        } else {
            assert_eq!(hdr_len, ip + usize::from(packet[ip + 12] >> 4) * 4);
        }
        let partial = be16(packet, ip + csum_offset);
        let first_id = be16(packet, 4);
        let first_seq = u32::from_be_bytes(packet[ip + 4..ip + 8].try_into().unwrap());
        let segments: Vec<_> = packet[hdr_len..].chunks(gso_size).collect();
        assert!(segments.len() > 1, "a super-packet of one segment");
        let last = segments.len() - 1;
        segments
            .into_iter()
            .enumerate()
            .map(|(k, payload)| {
                let mut p = packet[..hdr_len].to_vec();
                p.extend(payload);
                let len = hdr_len - ip + payload.len();
                if ipv4 {
                    put16(&mut p, 2, ip + len);
                    put16(&mut p, 4, usize::from(first_id.wrapping_add(k as u16)));
                    p[10..12].fill(0);
                    let sum = internet_checksum::checksum(&p[..20]);
                    p[10..12].copy_from_slice(&sum);
                } else {
                    put16(&mut p, 4, len);
                }
                if protocol == PROTO_UDP {
                    put16(&mut p, ip + 4, len);
                } else {
                    let seq = first_seq.wrapping_add((k * gso_size) as u32);
                    p[ip + 4..ip + 8].copy_from_slice(&seq.to_be_bytes());
                    if k < last {
                        p[ip + 13] &= !TCP_PSH;
                    }
                }
                transport_checksum(
                    &mut p,
                    csum16_add(csum16_add(partial, !whole_len), len as u16),
                );
                p
            })
            .collect()
    }

    /// The frames `packets` are written as.
    fn written(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        written_by(TunWriter::new(true), packets)
    }

    fn written_by(mut writer: TunWriter, packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
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

    /// Asserts `packets` go down as `frames` frames and come back whole.
    fn assert_written_as(packets: &[Vec<u8>], frames: usize) {
        let written = written(packets);
        assert_eq!(written.len(), frames);
        assert_eq!(delivered(&written), packets);
    }

    /// TCP segments of 1000 bytes following on from sequence number 1.
    fn tcp_run(ipv6: bool, count: u32) -> Vec<Vec<u8>> {
        (0..count)
            .map(|k| tcp_segment(ipv6, 1, k as u16, 1 + 1000 * k, false, 9, &[k as u8; 1000]))
            .collect()
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
    fn a_flows_tcp_segments_go_down_as_one_super_packet_pushed_at_the_end() {
        for ipv6 in [false, true] {
            let mut packets = tcp_run(ipv6, 10);
            packets.push(tcp_segment(ipv6, 1, 10, 10_001, true, 9, &[10; 400]));
            let frames = written(&packets);
            assert_eq!(frames.len(), 1, "ipv6 {ipv6}");
            let gso_size = u16::from_ne_bytes([frames[0][4], frames[0][5]]);
            assert_eq!(gso_size, 1000);
            assert_eq!(delivered(&frames), packets);
        }
    }

    #[test]
    fn datagrams_go_alone_where_the_kernel_takes_no_udp_super_packets() {
        let packets: Vec<_> = (0..5).map(|k| datagram(false, 1, k, &[1; 100])).collect();
        let tcp = tcp_run(false, 5);
        let frames = written_by(
            TunWriter::new(false),
            &[packets.clone(), tcp.clone()].concat(),
        );
        assert_eq!(
            frames.len(),
            5 + 1,
            "the datagrams alone, the TCP run in one"
        );
        assert_eq!(delivered(&frames), [packets, tcp].concat());
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
        // [1000 1000 400] [1000] [1200 600]
        assert_written_as(&packets, 3);
    }

    #[test]
    fn trains_stop_at_the_segment_and_length_limits() {
        let many: Vec<_> = (0..100).map(|k| datagram(false, 1, k, &[3; 100])).collect();
        assert_written_as(&many, 2); // 64 + 36
        let big: Vec<_> = (0..40).map(|k| datagram(true, 1, k, &[4; 8000])).collect();
        let frames = written(&big);
        assert!(frames.iter().all(|f| f.len() - VNET_HDR_LEN <= MAX_IP_LEN));
        assert_eq!(frames.len(), 5, "8 datagrams of 8 KB per 64 KB");
        assert_eq!(delivered(&frames), big);
    }

    #[test]
    fn tcp_segments_join_only_in_sequence_and_alike() {
        let good = tcp_run(false, 3);
        let at = |seq: u32, push: bool, tsval: u32| {
            tcp_segment(false, 1, 3, seq, push, tsval, &[7; 1000])
        };
        // After the run: a gap, a retransmission, a new timestamp.
        for odd in [at(5001, false, 9), at(2001, false, 9), at(3001, false, 10)] {
            assert_written_as(&[good.clone(), vec![odd]].concat(), 2);
        }
        // A PSH ends the train it joins; the next segment starts another.
        let pushed = [good.clone(), vec![at(3001, true, 9), at(4001, false, 9)]].concat();
        assert_written_as(&pushed, 2);
        // Flags other than ACK and PSH, or no data: never part of a train.
        for flags in [
            0x01, /* FIN */
            0x02, /* SYN */
            0x04, /* RST */
            0x20, /* URG */
            0x40, /* ECE */
            0x80, /* CWR */
        ] {
            let mut odd = at(3001, false, 9);
            odd[33] |= flags;
            fill_checksums(&mut odd);
            assert_written_as(
                &[good.clone(), vec![odd.clone(), at(3001, false, 9)]].concat(),
                3,
            );
        }
        let ack = tcp_segment(false, 1, 3, 3001, false, 9, &[]);
        assert_written_as(&[good.clone(), vec![ack.clone(), ack]].concat(), 3);
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
        let mut options = datagram(false, 1, 0, &[5; 300]);
        options[0] = 0x46;
        fill_checksums(&mut options);
        let other_flow = datagram(false, 2, 0, &[5; 300]);
        let other_family = datagram(true, 1, 0, &[5; 300]);
        let tcp = tcp_segment(false, 1, 0, 1, false, 9, &[5; 300]);
        let good = datagram(false, 1, 0, &[5; 300]);
        for odd in [
            no_checksum,
            bad_checksum,
            fragment,
            options,
            other_flow,
            other_family,
            tcp,
        ] {
            assert_written_as(&[good.clone(), odd, good.clone()], 3);
        }
        let mut bad_tcp = tcp_run(false, 3);
        bad_tcp[1][60] ^= 1;
        assert_written_as(&bad_tcp, 3);
    }

    #[test]
    fn reads_lose_their_header_and_get_a_pending_checksum_completed() {
        let packet = datagram(false, 1, 0, &[6; 333]);
        let mut frame = [vec![0; VNET_HDR_LEN], packet.clone()].concat();
        assert_eq!(packet_read(&mut frame).as_deref(), Some(&packet[..]));

        // A checksum left to the device: the field holds the pseudo-header sum.
        let mut partial = packet.clone();
        let [a, b] = pseudo_header_sum(&partial[12..20], PROTO_UDP, partial.len() - 20).checksum();
        partial[26..28].copy_from_slice(&[!a, !b]);
        let mut header = vec![F_NEEDS_CSUM, GSO_NONE, 0, 0, 0, 0];
        header.extend(20u16.to_ne_bytes());
        header.extend(6u16.to_ne_bytes());
        let mut frame = [header.clone(), partial].concat();
        assert_eq!(packet_read(&mut frame).as_deref(), Some(&packet[..]));

        let mut outside = [header, packet[..25].to_vec()].concat();
        assert_eq!(packet_read(&mut outside), None);
        let mut gso = [vec![0, GSO_UDP_L4, 0, 0, 0, 0, 0, 0, 0, 0], packet].concat();
        assert_eq!(packet_read(&mut gso), None);
        assert_eq!(packet_read(&mut [0; 4]), None);
    }

    /// One packet of a mixed stream: a UDP flow over IPv4 or IPv6 or a TCP
    /// flow (`flow`), its payload length, and a flaw to give it: none, a bad
    /// checksum, a TCP sequence jump, a new TCP timestamp, or a PSH.
    fn any_packet() -> impl Strategy<Value = (u8, usize, u8)> {
        (
            0u8..5,
            prop_oneof![Just(1usize), Just(700), Just(1200), 1usize..1400],
            0u8..12,
        )
    }

    proptest! {
        /// Whatever is pushed, the kernel ends up with exactly those packets, in order.
        #[test]
        fn the_kernel_gets_back_exactly_what_was_pushed(
            specs in proptest::collection::vec(any_packet(), 0..150)
        ) {
            let mut next_seq = [1u32; 5];
            let mut tsval = 0;
            let packets: Vec<_> = specs
                .iter()
                .enumerate()
                .map(|(k, &(flow, len, flaw))| {
                    let payload: Vec<u8> = (0..len).map(|i| (i * 7 + k) as u8).collect();
                    let (ipv6, port, id) = (flow % 2 == 1, u16::from(flow), k as u16);
                    let mut p = if flow < 3 {
                        datagram(ipv6, port, id, &payload)
                    } else {
                        let f = &mut next_seq[usize::from(flow)];
                        *f = f.wrapping_add(len as u32 + if flaw == 2 { 1 } else { 0 });
                        tsval += u32::from(flaw == 3);
                        tcp_segment(ipv6, port, id, *f - len as u32, flaw == 4, tsval, &payload)
                    };
                    if flaw == 1 {
                        *p.last_mut().unwrap() ^= 0x80;
                    }
                    p
                })
                .collect();
            let frames = written(&packets);
            prop_assert_eq!(delivered(&frames), packets);
        }

        /// What a peer could make the engine deliver, valid packets with a
        /// byte changed or plain noise, neither panics nor comes out
        /// altered; and no read, however malformed, panics.
        #[test]
        fn damaged_and_random_input_passes_through_unaltered(
            damage in proptest::collection::vec((0u8..4, any::<usize>(), any::<u8>(), proptest::collection::vec(any::<u8>(), 0..80)), 0..60)
        ) {
            let packets: Vec<_> = damage
                .iter()
                .enumerate()
                .map(|(k, (kind, at, value, noise))| {
                    let mut p = match kind {
                        0 => return noise.clone(),
                        1 => datagram(false, 1, k as u16, &[3; 500]),
                        2 => tcp_segment(true, 2, k as u16, 1 + 500 * k as u32, false, 1, &[4; 500]),
                        _ => tcp_segment(false, 3, k as u16, 1 + 500 * k as u32, false, 1, &[5; 500]),
                    };
                    let at = at % p.len();
                    p[at] = *value;
                    if k % 2 == 0 {
                        // Damage that keeps the checksums right.
                        fill_checksums(&mut p);
                    }
                    p
                })
                .collect();
            let frames = written(&packets);
            prop_assert_eq!(delivered(&frames), packets.clone());
            for p in packets {
                let mut frame = [p.clone(), p].concat();
                let _ = packet_read(&mut frame);
            }
        }
    }
}
