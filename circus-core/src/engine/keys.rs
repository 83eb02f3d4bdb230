//! The session's key generations: which keys seal, which may still open.
//!
//! A rekey must not lose the packets already in flight on a slow link, so the
//! keys being replaced stay valid for receiving during a grace period. Each
//! generation is named by the index its receiver chose in the handshake: the
//! `receiver_index` of a transport packet says which keys open it, without
//! trial decryption.

use std::time::{Duration, Instant};

use crate::crypto::{CryptoError, REJECT_AFTER_TIME, ReplayWindow, SessionKeys};
use crate::wire::{TAG_LEN, TRANSPORT_HEADER_LEN, TransportHeader};

/// One handshake's keys with their counters.
#[derive(Debug)]
pub(crate) struct KeySlot {
    keys: SessionKeys,
    /// Our index: transport packets to us carry it.
    pub(crate) local_index: u32,
    /// The peer's index: we put it in every packet we send.
    pub(crate) remote_index: u32,
    replay: ReplayWindow,
    next_counter: u64,
    pub(crate) established: Instant,
}

/// Why a transport packet was not opened. None of these changes any state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// No key generation has this index.
    UnknownIndex,
    /// The counter was seen before or is behind the replay window.
    Replayed,
    /// The tag did not verify (or the packet does not fit the scratch buffer).
    Unauthentic,
}

impl KeySlot {
    pub(crate) fn new(
        now: Instant,
        keys: SessionKeys,
        local_index: u32,
        remote_index: u32,
    ) -> Self {
        Self {
            keys,
            local_index,
            remote_index,
            replay: ReplayWindow::new(),
            next_counter: 0,
            established: now,
        }
    }

    /// Whether the keys are too old to use at all ([`REJECT_AFTER_TIME`]):
    /// a session whose rekeys keep failing must die rather than run on
    /// stale keys.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.established) >= REJECT_AFTER_TIME
    }

    /// Packets sealed with these keys so far.
    pub(crate) fn sent(&self) -> u64 {
        self.next_counter
    }

    /// Writes the transport header for the next counter into
    /// `buf[..TRANSPORT_HEADER_LEN]` and seals `buf[TRANSPORT_HEADER_LEN..]`'s
    /// first `plaintext_len` bytes after it; returns the datagram length.
    pub(crate) fn seal(
        &mut self,
        buf: &mut [u8],
        plaintext_len: usize,
    ) -> Result<usize, CryptoError> {
        let counter = self.next_counter;
        let header = TransportHeader {
            receiver_index: self.remote_index,
            counter,
        };
        let (head, body) = buf.split_at_mut(TRANSPORT_HEADER_LEN.min(buf.len()));
        header.emit(head).map_err(|_| CryptoError::BufferTooSmall {
            needed: TRANSPORT_HEADER_LEN + plaintext_len + TAG_LEN,
            available: head.len() + body.len(),
        })?;
        let sealed = self.keys.seal(counter, head, body, plaintext_len)?;
        self.next_counter += 1;
        Ok(TRANSPORT_HEADER_LEN + sealed)
    }

    /// Authenticates `datagram` (a whole transport packet with this slot's
    /// index) and decrypts it into `scratch`; returns the plaintext length.
    /// The counter is committed to the replay window only on success, so
    /// forged packets cannot move it.
    pub(crate) fn open(
        &mut self,
        header: TransportHeader,
        datagram: &[u8],
        scratch: &mut [u8],
    ) -> Result<usize, OpenError> {
        if !self.replay.check(header.counter) {
            return Err(OpenError::Replayed);
        }
        let (aad, sealed) = datagram
            .split_at_checked(TRANSPORT_HEADER_LEN)
            .ok_or(OpenError::Unauthentic)?;
        let body = scratch
            .get_mut(..sealed.len())
            .ok_or(OpenError::Unauthentic)?;
        body.copy_from_slice(sealed);
        let len = self
            .keys
            .open(header.counter, aad, body)
            .map_err(|_| OpenError::Unauthentic)?;
        self.replay.commit(header.counter);
        Ok(len)
    }
}

/// The current keys (sealing and opening) and the previous ones (opening
/// only, until their grace period ends).
#[derive(Debug, Default)]
pub(crate) struct KeyRing {
    current: Option<KeySlot>,
    previous: Option<(KeySlot, Instant)>,
}

impl KeyRing {
    /// The keys packets are sealed with, if any handshake completed.
    pub(crate) fn current(&mut self) -> Option<&mut KeySlot> {
        self.current.as_mut()
    }

    /// The current keys, read only.
    pub(crate) fn current_ref(&self) -> Option<&KeySlot> {
        self.current.as_ref()
    }

    /// Makes `slot` the sealing keys; the replaced ones keep opening packets
    /// for `grace`. Returns the index of a generation dropped to make room
    /// (the owner of an index map forgets it).
    pub(crate) fn install(&mut self, now: Instant, slot: KeySlot, grace: Duration) -> Option<u32> {
        let dropped = self.previous.take().map(|(s, _)| s.local_index);
        self.previous = self.current.replace(slot).map(|s| (s, now + grace));
        dropped
    }

    /// Opens a packet addressed to any live generation.
    pub(crate) fn open(
        &mut self,
        now: Instant,
        header: TransportHeader,
        datagram: &[u8],
        scratch: &mut [u8],
    ) -> Result<usize, OpenError> {
        let slot = match (&mut self.current, &mut self.previous) {
            (Some(c), _) if c.local_index == header.receiver_index => c,
            (_, Some((p, _))) if p.local_index == header.receiver_index => p,
            _ => return Err(OpenError::UnknownIndex),
        };
        if slot.is_expired(now) {
            return Err(OpenError::UnknownIndex);
        }
        slot.open(header, datagram, scratch)
    }

    /// Drops the previous generation once its grace period is over; returns
    /// its index.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<u32> {
        if self
            .previous
            .as_ref()
            .is_some_and(|(_, until)| *until <= now)
        {
            return self.previous.take().map(|(s, _)| s.local_index);
        }
        None
    }

    /// When the previous generation expires.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.previous.as_ref().map(|(_, until)| *until)
    }

    /// Indices of every live generation (for an owner's index map).
    pub(crate) fn indices(&self) -> impl Iterator<Item = u32> + '_ {
        self.current
            .iter()
            .map(|s| s.local_index)
            .chain(self.previous.iter().map(|(s, _)| s.local_index))
    }
}
