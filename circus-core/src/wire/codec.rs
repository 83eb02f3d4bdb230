//! Bounds-checked byte cursors and QUIC variable-length integers.
//!
//! Every read and write in [`crate::wire`] goes through [`Reader`] and
//! [`Writer`], so no parser or emitter indexes a slice directly and none can
//! panic on a short buffer: running out of bytes is a [`WireError`] that names
//! the field being read or written.

use super::WireError;

/// The largest value a QUIC varint can carry (RFC 9000, section 16).
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// Encoded size of `value` as a QUIC varint, or `None` above [`VARINT_MAX`].
pub fn varint_len(value: u64) -> Option<usize> {
    match value {
        0..=0x3f => Some(1),
        0x40..=0x3fff => Some(2),
        0x4000..=0x3fff_ffff => Some(4),
        0x4000_0000..=VARINT_MAX => Some(8),
        _ => None,
    }
}

/// Reads big-endian fields from a byte slice, front to back.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    /// Takes the next `len` bytes; `what` names the field in the error.
    pub fn bytes(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.bytes.len() < len {
            return Err(WireError::Truncated {
                what,
                needed: len,
                available: self.bytes.len(),
            });
        }
        let (head, tail) = self.bytes.split_at(len);
        self.bytes = tail;
        Ok(head)
    }

    /// Takes the next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// Reads a QUIC varint: the top two bits of the first byte give its length.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, WireError> {
        let first = self.u8(what)?;
        let extra = (1usize << (first >> 6)) - 1;
        let mut value = u64::from(first & 0x3f);
        for &byte in self.bytes(extra, what)? {
            value = (value << 8) | u64::from(byte);
        }
        Ok(value)
    }
}

/// Writes big-endian fields into a caller-owned buffer, front to back.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Space left in the buffer.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Reserves the next `len` bytes and returns them for the caller to fill.
    pub fn reserve(&mut self, len: usize, what: &'static str) -> Result<&mut [u8], WireError> {
        if self.remaining() < len {
            return Err(WireError::BufferTooSmall {
                what,
                needed: len,
                available: self.remaining(),
            });
        }
        let start = self.len;
        self.len += len;
        Ok(&mut self.buf[start..self.len])
    }

    /// Overwrites a byte already written, for a count known only at the end.
    /// Positions not yet written are left alone.
    pub fn patch_u8(&mut self, at: usize, value: u8) {
        if let Some(byte) = self.buf[..self.len].get_mut(at) {
            *byte = value;
        }
    }

    pub fn bytes(&mut self, bytes: &[u8], what: &'static str) -> Result<(), WireError> {
        self.reserve(bytes.len(), what)?.copy_from_slice(bytes);
        Ok(())
    }

    pub fn u8(&mut self, value: u8, what: &'static str) -> Result<(), WireError> {
        self.bytes(&[value], what)
    }

    pub fn u16(&mut self, value: u16, what: &'static str) -> Result<(), WireError> {
        self.bytes(&value.to_be_bytes(), what)
    }

    pub fn u32(&mut self, value: u32, what: &'static str) -> Result<(), WireError> {
        self.bytes(&value.to_be_bytes(), what)
    }

    pub fn u64(&mut self, value: u64, what: &'static str) -> Result<(), WireError> {
        self.bytes(&value.to_be_bytes(), what)
    }

    /// Writes `value` as a QUIC varint in its shortest form.
    pub fn varint(&mut self, value: u64, what: &'static str) -> Result<(), WireError> {
        let len = varint_len(value).ok_or(WireError::VarintTooLarge { what, value })?;
        let tag = u64::from(len.trailing_zeros()) << (len * 8 - 2);
        let encoded = (value | tag).to_be_bytes();
        self.bytes(&encoded[8 - len..], what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_round_trip_in_their_shortest_form() {
        for (value, len) in [
            (0, 1),
            (63, 1),
            (64, 2),
            (16383, 2),
            (16384, 4),
            (0x3fff_ffff, 4),
            (0x4000_0000, 8),
            (VARINT_MAX, 8),
        ] {
            let mut buf = [0u8; 8];
            let mut writer = Writer::new(&mut buf);
            writer.varint(value, "test").unwrap();
            assert_eq!(writer.len(), len, "length of {value}");
            let mut reader = Reader::new(&buf[..len]);
            assert_eq!(reader.varint("test").unwrap(), value);
            assert!(reader.rest().is_empty());
        }
    }

    #[test]
    fn varint_matches_rfc9000_examples() {
        let mut reader = Reader::new(&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c]);
        assert_eq!(reader.varint("test").unwrap(), 151_288_809_941_952_652);
        let mut reader = Reader::new(&[0x9d, 0x7f, 0x3e, 0x7d]);
        assert_eq!(reader.varint("test").unwrap(), 494_878_333);
        let mut reader = Reader::new(&[0x7b, 0xbd]);
        assert_eq!(reader.varint("test").unwrap(), 15_293);
    }

    #[test]
    fn oversized_varint_is_an_error() {
        let mut buf = [0u8; 8];
        assert!(matches!(
            Writer::new(&mut buf).varint(VARINT_MAX + 1, "pn"),
            Err(WireError::VarintTooLarge { what: "pn", .. })
        ));
    }

    #[test]
    fn short_input_names_the_field() {
        let mut reader = Reader::new(&[0x40]);
        assert_eq!(
            reader.varint("largest acked"),
            Err(WireError::Truncated {
                what: "largest acked",
                needed: 1,
                available: 0
            })
        );
    }
}
