//! The probe payload header.
//!
//! ```text
//! [magic "CLPB" 4][stream_id u32][seq u64][sent_ns u64][flow u16][padding...]
//! ```
//! All integers big-endian. The stream id lets a receiver ignore stragglers of
//! an earlier run (systems run one after another on the same addresses).

use super::MonoNanos;

/// Marks a datagram as a circus-lab probe.
pub const PROBE_MAGIC: [u8; 4] = *b"CLPB";
/// Bytes of header at the start of every probe payload; the smallest probe size.
pub const PROBE_HEADER_LEN: usize = 26;

/// The sequence number of a hello: what a download receiver sends from each
/// flow's socket so the server learns where to send that flow (the address
/// it arrives from is the one a router's NAT, or a tunnel, gives the flow).
pub const HELLO_SEQ: u64 = u64::MAX;

/// The decoded header of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeHeader {
    pub stream_id: u32,
    pub seq: u64,
    pub sent: MonoNanos,
    pub flow: u16,
}

/// Why a datagram is not a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProbeWireError {
    #[error("probe too short: {len} bytes, expected at least {PROBE_HEADER_LEN}")]
    TooShort { len: usize },
    #[error("not a probe: magic bytes differ from \"CLPB\"")]
    BadMagic,
}

impl ProbeHeader {
    /// The header bytes; a probe payload starts with them.
    pub fn encode(&self) -> [u8; PROBE_HEADER_LEN] {
        let mut header = [0u8; PROBE_HEADER_LEN];
        header[0..4].copy_from_slice(&PROBE_MAGIC);
        header[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        header[8..16].copy_from_slice(&self.seq.to_be_bytes());
        header[16..24].copy_from_slice(&self.sent.0.to_be_bytes());
        header[24..26].copy_from_slice(&self.flow.to_be_bytes());
        header
    }

    /// Reads a header from the start of a datagram. Never panics.
    pub fn parse(datagram: &[u8]) -> Result<Self, ProbeWireError> {
        let Some(header) = datagram.first_chunk::<PROBE_HEADER_LEN>() else {
            return Err(ProbeWireError::TooShort {
                len: datagram.len(),
            });
        };
        if header[0..4] != PROBE_MAGIC {
            return Err(ProbeWireError::BadMagic);
        }
        let u32_at =
            |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let u64_at = |i: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&header[i..i + 8]);
            u64::from_be_bytes(bytes)
        };
        Ok(Self {
            stream_id: u32_at(4),
            seq: u64_at(8),
            sent: MonoNanos(u64_at(16)),
            flow: u16::from_be_bytes([header[24], header[25]]),
        })
    }
}
