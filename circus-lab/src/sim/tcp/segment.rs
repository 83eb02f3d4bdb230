//! TCP segments as real IPv4/TCP packets: written into a caller's buffer and
//! read back from any bytes without panicking.
//!
//! The circus engine classifies flows by their 5-tuple and packet sizes, so
//! the model's packets must look like Linux's on the wire: a 20-byte IPv4
//! header with a correct checksum, a 20-byte TCP header, the timestamp
//! option Linux puts on every segment (12 bytes with its two NOPs, which is
//! why a Linux segment carries 12 bytes less than the MSS the MTU allows)
//! and up to three SACK blocks on ACKs. Payload bytes are zeros; only their
//! number matters.

use std::net::{Ipv4Addr, SocketAddrV4};

pub const IPV4_HEADER_LEN: usize = 20;
pub const TCP_HEADER_LEN: usize = 20;
/// NOP, NOP, kind 8, length 10, TSval, TSecr: Linux's layout.
const TIMESTAMP_OPTION_LEN: usize = 12;
/// Headers on every segment: what a payload has to leave room for in the MTU.
pub const HEADERS_LEN: usize = IPV4_HEADER_LEN + TCP_HEADER_LEN + TIMESTAMP_OPTION_LEN;
/// SACK blocks that fit beside the timestamp option in 40 option bytes.
pub const MAX_SACK_BLOCKS: usize = 3;
/// The window scale both ends are taken to have agreed on (Linux's usual 7),
/// so a 16-bit window field can advertise megabytes.
pub const WINDOW_SCALE: u32 = 7;
/// Largest packet [`emit`] writes: headers, two NOPs and a full SACK option.
pub const MAX_HEADERS_LEN: usize = HEADERS_LEN + 2 + 2 + 8 * MAX_SACK_BLOCKS;

const PROTOCOL_TCP: u8 = 6;
const FLAG_PSH: u8 = 0x08;
const FLAG_ACK: u8 = 0x10;

/// Source and destination of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
}

impl Endpoints {
    /// The same flow seen from the other end.
    pub fn reversed(self) -> Endpoints {
        Endpoints {
            src: self.dst,
            dst: self.src,
        }
    }
}

/// The fields of a segment the model uses. Every segment carries an ACK.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    pub seq: u32,
    pub ack: u32,
    /// The receive window in bytes (scaled on the wire).
    pub window: u32,
    pub ts_val: u32,
    pub ts_ecr: u32,
    /// SACK blocks `[start, end)`, most recent first; `sack_len` are used.
    pub sack: [(u32, u32); MAX_SACK_BLOCKS],
    pub sack_len: usize,
    /// Zero bytes of payload after the headers.
    pub payload_len: usize,
}

impl Segment {
    /// The SACK blocks in use.
    pub fn sack_blocks(&self) -> &[(u32, u32)] {
        &self.sack[..self.sack_len.min(MAX_SACK_BLOCKS)]
    }
}

/// Why bytes are not a TCP segment the model can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("packet shorter than its headers ({0} bytes)")]
    Truncated(usize),
    #[error("not an IPv4 packet with a 20-byte header")]
    NotIpv4,
    #[error("IP protocol {0} is not TCP")]
    NotTcp(u8),
    #[error("IPv4 total length {total} does not fit the packet of {len} bytes")]
    BadTotalLength { total: usize, len: usize },
    #[error("TCP data offset {0} is out of range")]
    BadDataOffset(usize),
}

/// Writes the packet of `segment` from `endpoints` into `buf`; returns its
/// length, or `None` if `buf` is too short (nothing useful is written then).
pub fn emit(endpoints: Endpoints, segment: &Segment, buf: &mut [u8]) -> Option<usize> {
    let blocks = segment.sack_blocks();
    let sack_len = if blocks.is_empty() {
        0
    } else {
        4 + 8 * blocks.len()
    };
    let tcp_header = TCP_HEADER_LEN + TIMESTAMP_OPTION_LEN + sack_len;
    let total = IPV4_HEADER_LEN + tcp_header + segment.payload_len;
    let total_u16 = u16::try_from(total).ok()?;
    let packet = buf.get_mut(..total)?;
    packet.fill(0);

    let ip = &mut packet[..IPV4_HEADER_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&total_u16.to_be_bytes());
    ip[6] = 0x40; // don't fragment, as Linux sets with path MTU discovery
    ip[8] = 64;
    ip[9] = PROTOCOL_TCP;
    ip[12..16].copy_from_slice(&endpoints.src.ip().octets());
    ip[16..20].copy_from_slice(&endpoints.dst.ip().octets());
    let ip_checksum = internet_checksum::checksum(ip);
    ip[10..12].copy_from_slice(&ip_checksum);

    let tcp = &mut packet[IPV4_HEADER_LEN..IPV4_HEADER_LEN + tcp_header];
    tcp[0..2].copy_from_slice(&endpoints.src.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&endpoints.dst.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&segment.seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&segment.ack.to_be_bytes());
    tcp[12] = ((tcp_header / 4) as u8) << 4;
    tcp[13] = FLAG_ACK | if segment.payload_len > 0 { FLAG_PSH } else { 0 };
    let window = (segment.window >> WINDOW_SCALE).min(u32::from(u16::MAX)) as u16;
    tcp[14..16].copy_from_slice(&window.to_be_bytes());
    let options = &mut tcp[TCP_HEADER_LEN..];
    options[..4].copy_from_slice(&[1, 1, 8, 10]);
    options[4..8].copy_from_slice(&segment.ts_val.to_be_bytes());
    options[8..12].copy_from_slice(&segment.ts_ecr.to_be_bytes());
    if !blocks.is_empty() {
        let sack = &mut options[TIMESTAMP_OPTION_LEN..];
        sack[..4].copy_from_slice(&[1, 1, 5, (2 + 8 * blocks.len()) as u8]);
        for (i, (start, end)) in blocks.iter().enumerate() {
            let at = 4 + 8 * i;
            sack[at..at + 4].copy_from_slice(&start.to_be_bytes());
            sack[at + 4..at + 8].copy_from_slice(&end.to_be_bytes());
        }
    }
    // The payload is zeros, which add nothing to the one's-complement sum:
    // summing the pseudo-header and the header gives the full checksum.
    let tcp_len = (tcp_header + segment.payload_len) as u16;
    let mut sum = internet_checksum::Checksum::new();
    sum.add_bytes(&endpoints.src.ip().octets());
    sum.add_bytes(&endpoints.dst.ip().octets());
    sum.add_bytes(&[0, PROTOCOL_TCP]);
    sum.add_bytes(&tcp_len.to_be_bytes());
    sum.add_bytes(tcp);
    tcp[16..18].copy_from_slice(&sum.checksum());
    Some(total)
}

/// Reads a packet as a TCP segment. Any bytes are accepted without panic;
/// options the model does not know are skipped, malformed ones end the
/// option list.
pub fn parse(packet: &[u8]) -> Result<(Endpoints, Segment), ParseError> {
    if packet.len() < IPV4_HEADER_LEN + TCP_HEADER_LEN {
        return Err(ParseError::Truncated(packet.len()));
    }
    if packet[0] != 0x45 {
        return Err(ParseError::NotIpv4);
    }
    if packet[9] != PROTOCOL_TCP {
        return Err(ParseError::NotTcp(packet[9]));
    }
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if total < IPV4_HEADER_LEN + TCP_HEADER_LEN || total > packet.len() {
        return Err(ParseError::BadTotalLength {
            total,
            len: packet.len(),
        });
    }
    let address =
        |at: usize| Ipv4Addr::new(packet[at], packet[at + 1], packet[at + 2], packet[at + 3]);
    let tcp = &packet[IPV4_HEADER_LEN..total];
    let be16 = |at: usize| u16::from_be_bytes([tcp[at], tcp[at + 1]]);
    let be32 = |bytes: &[u8]| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let endpoints = Endpoints {
        src: SocketAddrV4::new(address(12), be16(0)),
        dst: SocketAddrV4::new(address(16), be16(2)),
    };
    let data_offset = usize::from(tcp[12] >> 4) * 4;
    if data_offset < TCP_HEADER_LEN || data_offset > tcp.len() {
        return Err(ParseError::BadDataOffset(data_offset));
    }
    let mut segment = Segment {
        seq: be32(&tcp[4..8]),
        ack: be32(&tcp[8..12]),
        window: u32::from(be16(14)) << WINDOW_SCALE,
        payload_len: tcp.len() - data_offset,
        ..Segment::default()
    };
    let mut options = &tcp[TCP_HEADER_LEN..data_offset];
    while let Some((&kind, rest)) = options.split_first() {
        match kind {
            0 => break,
            1 => {
                options = rest;
                continue;
            }
            _ => {}
        }
        let Some(len) = rest.first().map(|&len| usize::from(len)) else {
            break;
        };
        if len < 2 || len > options.len() {
            break;
        }
        let body = &options[2..len];
        match kind {
            8 if body.len() == 8 => {
                segment.ts_val = be32(&body[..4]);
                segment.ts_ecr = be32(&body[4..]);
            }
            5 => {
                for block in body.chunks_exact(8).take(MAX_SACK_BLOCKS) {
                    segment.sack[segment.sack_len] = (be32(&block[..4]), be32(&block[4..]));
                    segment.sack_len += 1;
                }
            }
            _ => {}
        }
        options = &options[len..];
    }
    Ok((endpoints, segment))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints() -> Endpoints {
        Endpoints {
            src: SocketAddrV4::new(Ipv4Addr::new(100, 64, 0, 2), 50_000),
            dst: SocketAddrV4::new(Ipv4Addr::new(198, 19, 0, 2), 9001),
        }
    }

    #[test]
    fn a_data_segment_is_a_valid_ipv4_tcp_packet_and_reads_back() {
        let segment = Segment {
            seq: 0xffff_fff0,
            ack: 7,
            window: 6 << 20,
            ts_val: 1234,
            ts_ecr: 99,
            payload_len: 1334,
            ..Segment::default()
        };
        let mut buf = [0xaa; 2000];
        let len = emit(endpoints(), &segment, &mut buf).unwrap();
        assert_eq!(len, 1386);
        let packet = &buf[..len];
        assert_eq!(u16::from_be_bytes([packet[2], packet[3]]), 1386);
        assert_eq!(internet_checksum::checksum(&packet[..20]), [0, 0]);
        // The TCP checksum verifies over pseudo-header, header and payload.
        let mut sum = internet_checksum::Checksum::new();
        sum.add_bytes(&packet[12..20]);
        sum.add_bytes(&[0, 6]);
        sum.add_bytes(&((len - 20) as u16).to_be_bytes());
        sum.add_bytes(&packet[20..]);
        assert_eq!(sum.checksum(), [0, 0]);
        assert!(packet[HEADERS_LEN..].iter().all(|&b| b == 0));
        assert_eq!(parse(packet), Ok((endpoints(), segment)));
    }

    #[test]
    fn an_ack_carries_its_sack_blocks() {
        let mut segment = Segment {
            ack: 1000,
            window: 1 << 16,
            sack_len: 3,
            ..Segment::default()
        };
        segment.sack = [(3000, 4000), (5000, 6000), (7000, 8000)];
        let mut buf = [0; 100];
        let len = emit(endpoints().reversed(), &segment, &mut buf).unwrap();
        assert_eq!(len, MAX_HEADERS_LEN);
        let (seen, read) = parse(&buf[..len]).unwrap();
        assert_eq!(seen, endpoints().reversed());
        assert_eq!(read.sack_blocks(), segment.sack_blocks());
        assert_eq!(read.payload_len, 0);
        assert_eq!(emit(endpoints(), &segment, &mut buf[..70]), None);
    }

    #[test]
    fn other_packets_are_refused() {
        let mut udp = [0u8; 60];
        udp[0] = 0x45;
        udp[9] = 17;
        assert_eq!(parse(&udp), Err(ParseError::NotTcp(17)));
        assert_eq!(parse(&udp[..10]), Err(ParseError::Truncated(10)));
        udp[0] = 0x60;
        assert_eq!(parse(&udp), Err(ParseError::NotIpv4));
    }
}
