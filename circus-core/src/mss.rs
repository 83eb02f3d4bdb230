//! TCP MSS clamping: lowers the maximum segment size a TCP SYN or SYN-ACK
//! announces to what fits the tunnel.
//!
//! Path MTU discovery needs the ICMP "fragmentation needed" / "packet too
//! big" message to reach the sender; many sites drop ICMP, and a sender
//! that never hears it keeps retransmitting segments that can never pass:
//! the connection opens, then stalls on its first full-size segment. A host
//! behind a tunnel end announces an MSS from its own interface's MTU (1500),
//! larger than the tunnel carries. Lowering the MSS in the handshake, as
//! iptables' `TCPMSS --clamp-mss-to-pmtu` and wg-quick setups do, makes
//! both ends send segments that fit, with no ICMP needed.
//!
//! [`MssClamp::apply`] is meant for every packet read from the TUN device,
//! so a packet that is not a SYN costs a few byte comparisons and is never
//! written to. The option list is walked within the TCP header only (at
//! most 40 bytes), and the checksum is updated incrementally (RFC 1624), so
//! no packet is read twice. IPv4 fragments and IPv6 packets with extension
//! headers are left alone: handshakes carry neither in practice.

/// TCP's SYN flag, in the header's flags byte.
const SYN: u8 = 0x02;
/// Option kinds (RFC 9293): end of list, no-operation, maximum segment size.
const END: u8 = 0;
const NOP: u8 = 1;
const MSS: u8 = 2;
const MSS_LEN: u8 = 4;

/// The largest MSS a TCP handshake may announce through a tunnel of a given
/// MTU: the MTU less the IP and TCP headers without options (RFC 879).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MssClamp {
    v4: u16,
    v6: u16,
}

impl MssClamp {
    /// The ceiling for a tunnel (TUN device) of `mtu` bytes: `mtu - 40` for
    /// IPv4, `mtu - 60` for IPv6.
    pub fn new(mtu: u16) -> Self {
        MssClamp {
            v4: mtu.saturating_sub(20 + 20),
            v6: mtu.saturating_sub(40 + 20),
        }
    }

    /// Lowers the MSS option of `packet`, an IP packet, to the ceiling if
    /// it is a TCP SYN or SYN-ACK announcing more; returns whether it
    /// changed the packet. Anything else, including malformed packets, is
    /// left untouched.
    pub fn apply(self, packet: &mut [u8]) -> bool {
        let Some((tcp_start, ceiling)) = self.syn_segment(packet) else {
            return false;
        };
        let Some(tcp) = packet.get_mut(tcp_start..) else {
            return false;
        };
        clamp_segment(tcp, ceiling)
    }

    /// Where the TCP header of `packet` starts and the MSS ceiling for its
    /// family, if `packet` is an unfragmented TCP segment with SYN set. The
    /// checks run in the order that rejects common packets soonest.
    fn syn_segment(self, packet: &[u8]) -> Option<(usize, u16)> {
        let (tcp_start, ceiling) = match packet.first()? >> 4 {
            4 => {
                if *packet.get(9)? != 6 {
                    return None;
                }
                let ihl = usize::from(packet[0] & 0x0f) * 4;
                let fragment = u16::from_be_bytes([*packet.get(6)?, *packet.get(7)?]) & 0x3fff;
                if ihl < 20 || fragment != 0 {
                    return None;
                }
                (ihl, self.v4)
            }
            6 => {
                if *packet.get(6)? != 6 {
                    return None;
                }
                (40, self.v6)
            }
            _ => return None,
        };
        let flags = *packet.get(tcp_start + 13)?;
        (flags & SYN != 0).then_some((tcp_start, ceiling))
    }
}

/// Lowers the MSS option of the TCP segment `tcp` (header first) to
/// `ceiling` and fixes its checksum; returns whether it changed anything.
fn clamp_segment(tcp: &mut [u8], ceiling: u16) -> bool {
    let Some(at) = mss_value_offset(tcp) else {
        return false;
    };
    let old = u16::from_be_bytes([tcp[at], tcp[at + 1]]);
    if old <= ceiling {
        return false;
    }
    tcp[at..at + 2].copy_from_slice(&ceiling.to_be_bytes());
    let checksum = u16::from_be_bytes([tcp[16], tcp[17]]);
    // The checksum sums 16-bit words from the TCP header's (even) start: a
    // field at an odd offset straddles two words, and its bytes count
    // swapped, which a ones' complement sum accepts as a byte-swapped word
    // (RFC 1071, "byte order independence").
    let (old, new) = if at % 2 == 0 {
        (old, ceiling)
    } else {
        (old.swap_bytes(), ceiling.swap_bytes())
    };
    tcp[16..18].copy_from_slice(&update_checksum(checksum, old, new).to_be_bytes());
    true
}

/// Offset in `tcp` of the MSS option's 16-bit value, if the header has a
/// well-formed one. The walk stops at the end of the header (at most 40
/// option bytes), at an end-of-list option and at any malformed length.
fn mss_value_offset(tcp: &[u8]) -> Option<usize> {
    let header_len = usize::from(tcp.get(12)? >> 4) * 4;
    let options = tcp.get(20..header_len)?;
    let mut i = 0;
    while let Some(&kind) = options.get(i) {
        match kind {
            END => return None,
            NOP => i += 1,
            _ => {
                let len = *options.get(i + 1)?;
                if kind == MSS {
                    return (len == MSS_LEN && i + 4 <= options.len()).then_some(20 + i + 2);
                }
                if len < 2 {
                    return None;
                }
                i += usize::from(len);
            }
        }
    }
    None
}

/// The checksum after a 16-bit word of the data changed from `old` to
/// `new`: RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`, in ones'
/// complement arithmetic.
fn update_checksum(checksum: u16, old: u16, new: u16) -> u16 {
    let sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    // Three 16-bit terms: two folds take any carry back in.
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}

#[cfg(test)]
mod tests;
