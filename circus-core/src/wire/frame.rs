//! Frames inside a transport plaintext, after the payload header.

use super::WireError;
use super::ack::AckFrame;
use super::codec::{Reader, Writer};

pub(super) const FRAME_PADDING: u8 = 0;
pub(super) const FRAME_PING: u8 = 1;
pub(super) const FRAME_DATA: u8 = 2;
pub(super) const FRAME_ACK: u8 = 3;
pub(super) const FRAME_CLOSE: u8 = 4;

/// Bytes a data frame adds before its packet: type, seq u64, flow_gap u32,
/// len u16.
pub const DATA_FRAME_HEADER_LEN: usize = 1 + 8 + 4 + 2;

/// One frame, borrowing from the decrypted plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Filler up to the end of the payload, so a probe can have any size
    /// (to test a link's MTU or fill a measured burst). `len` counts the
    /// type byte; a padding frame is always the last frame.
    Padding { len: usize },
    /// Asks for an ack and carries nothing: the probe of an idle or
    /// recovering link.
    Ping,
    /// One tunneled IP packet. `seq` is global across links, so the receiver
    /// can drop duplicates (sent on several links) and restore order.
    /// `flow_gap` is how far back (in `seq`) the previous packet of the same
    /// flow was sent, 0 if none is known: the receiver only keeps a packet
    /// waiting for that one, so a hole in one flow does not stall the
    /// others.
    Data {
        seq: u64,
        flow_gap: u32,
        packet: &'a [u8],
    },
    /// Acknowledges path packet numbers of one link.
    Ack(AckFrame<'a>),
    /// The sender ends the session; `reason` is informational.
    Close { reason: u8 },
}

impl<'a> Frame<'a> {
    /// Whether receiving this frame obliges the peer to ack the packet. Acks
    /// are not ack-eliciting, so two idle peers do not ack each other's acks
    /// forever.
    pub fn is_ack_eliciting(&self) -> bool {
        matches!(self, Frame::Ping | Frame::Data { .. })
    }

    /// Bytes [`Frame::emit`] writes.
    pub fn encoded_len(&self) -> usize {
        match self {
            Frame::Padding { len } => *len,
            Frame::Ping => 1,
            Frame::Data { packet, .. } => DATA_FRAME_HEADER_LEN + packet.len(),
            Frame::Ack(ack) => ack.encoded_len(),
            Frame::Close { .. } => 2,
        }
    }

    /// Writes the frame at the start of `buf`; returns the length written.
    /// `Padding { len: 0 }` writes nothing. To build an ack from ranges use
    /// [`super::emit_ack`].
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        // Checked up front so a failed emit leaves no half-written frame.
        let needed = self.encoded_len();
        if buf.len() < needed {
            return Err(WireError::BufferTooSmall {
                what: "frame",
                needed,
                available: buf.len(),
            });
        }
        let mut writer = Writer::new(buf);
        match self {
            Frame::Padding { len } => writer.reserve(*len, "padding frame")?.fill(FRAME_PADDING),
            Frame::Ping => writer.u8(FRAME_PING, "ping frame")?,
            Frame::Data {
                seq,
                flow_gap,
                packet,
            } => {
                let len = u16::try_from(packet.len())
                    .map_err(|_| WireError::DataTooLong(packet.len()))?;
                writer.u8(FRAME_DATA, "data frame")?;
                writer.u64(*seq, "data frame")?;
                writer.u32(*flow_gap, "data frame")?;
                writer.u16(len, "data frame")?;
                writer.bytes(packet, "data frame")?;
            }
            Frame::Ack(ack) => ack.emit(&mut writer)?,
            Frame::Close { reason } => {
                writer.u8(FRAME_CLOSE, "close frame")?;
                writer.u8(*reason, "close frame")?;
            }
        }
        Ok(writer.len())
    }

    fn parse(reader: &mut Reader<'a>) -> Result<Self, WireError> {
        match reader.u8("frame type")? {
            FRAME_PADDING => {
                let rest = reader.rest();
                reader.bytes(rest.len(), "padding frame")?;
                Ok(Frame::Padding {
                    len: 1 + rest.len(),
                })
            }
            FRAME_PING => Ok(Frame::Ping),
            FRAME_DATA => {
                let seq = reader.u64("data seq")?;
                let flow_gap = reader.u32("data flow gap")?;
                let len = reader.u16("data length")?;
                let packet = reader.bytes(usize::from(len), "data packet")?;
                Ok(Frame::Data {
                    seq,
                    flow_gap,
                    packet,
                })
            }
            FRAME_ACK => Ok(Frame::Ack(AckFrame::parse(reader)?)),
            FRAME_CLOSE => Ok(Frame::Close {
                reason: reader.u8("close reason")?,
            }),
            other => Err(WireError::UnknownFrameType(other)),
        }
    }
}

/// Iterates over the frames of a plaintext (after its payload header).
///
/// Yields `Err` once for malformed input and then stops, so a caller looping
/// over it cannot spin on a bad frame.
#[derive(Debug, Clone)]
pub struct FrameIter<'a> {
    bytes: &'a [u8],
    failed: bool,
}

impl<'a> FrameIter<'a> {
    pub fn new(frames: &'a [u8]) -> Self {
        Self {
            bytes: frames,
            failed: false,
        }
    }
}

impl<'a> Iterator for FrameIter<'a> {
    type Item = Result<Frame<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.bytes.is_empty() {
            return None;
        }
        let mut reader = Reader::new(self.bytes);
        let frame = Frame::parse(&mut reader);
        self.bytes = reader.rest();
        self.failed = frame.is_err();
        Some(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_runs_to_the_end() {
        let bytes = [FRAME_PING, FRAME_PADDING, 0, 0, 0];
        let frames: Vec<_> = FrameIter::new(&bytes).collect();
        assert_eq!(frames, vec![Ok(Frame::Ping), Ok(Frame::Padding { len: 4 })]);
    }

    #[test]
    fn iteration_stops_after_an_error() {
        let bytes = [FRAME_PING, 99, FRAME_PING];
        let frames: Vec<_> = FrameIter::new(&bytes).collect();
        assert_eq!(
            frames,
            vec![Ok(Frame::Ping), Err(WireError::UnknownFrameType(99))]
        );
    }

    #[test]
    fn data_length_beyond_the_payload_is_truncated() {
        let bytes = [FRAME_DATA, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 5, 0xaa];
        assert_eq!(
            FrameIter::new(&bytes).next(),
            Some(Err(WireError::Truncated {
                what: "data packet",
                needed: 5,
                available: 1
            }))
        );
    }

    #[test]
    fn data_emit_fails_cleanly_when_the_buffer_is_short() {
        let packet = [1u8; 20];
        let frame = Frame::Data {
            seq: 1,
            flow_gap: 1,
            packet: &packet,
        };
        let mut buf = [0u8; 34];
        assert!(matches!(
            frame.emit(&mut buf),
            Err(WireError::BufferTooSmall { needed: 35, .. })
        ));
    }

    #[test]
    fn only_ping_and_data_elicit_acks() {
        assert!(Frame::Ping.is_ack_eliciting());
        assert!(
            Frame::Data {
                seq: 0,
                flow_gap: 0,
                packet: &[]
            }
            .is_ack_eliciting()
        );
        assert!(!Frame::Padding { len: 1 }.is_ack_eliciting());
        assert!(!Frame::Close { reason: 0 }.is_ack_eliciting());
    }
}
