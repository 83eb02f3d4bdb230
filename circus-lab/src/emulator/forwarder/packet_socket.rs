//! AF_PACKET sockets on one veth end, and batched receive/send of frames.
//!
//! Choices measured on this machine kind (EMULATOR-NOTES.md): batches via
//! `recvmmsg`/`sendmmsg` (no millisecond latency tail, less CPU per frame);
//! `PACKET_IGNORE_OUTGOING` on the receiving socket (otherwise every frame the
//! other direction sends out of this interface is copied back to it); a
//! separate send-only socket of protocol 0 that never queues received frames;
//! 8 MB buffers; promiscuous membership.

use std::ffi::CString;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Socket buffer size, both ways: a few thousand MTU frames of burst.
const SOCKET_BUFFER_BYTES: libc::c_int = 8 * 1024 * 1024;

/// An AF_PACKET socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// A non-blocking socket receiving every frame that arrives on interface
    /// `index` (not the ones sent out of it), in promiscuous mode.
    pub fn receiver(index: u32) -> io::Result<PacketSocket> {
        // Protocol 0 receives nothing until bound: no frames of other
        // interfaces slip in before the bind.
        let socket = open(libc::SOCK_NONBLOCK)?;
        socket.set_option(libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
        socket.set_option(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, SOCKET_BUFFER_BYTES)?;
        socket.bind(index, (libc::ETH_P_ALL as u16).to_be())?;
        // SAFETY: packet_mreq is plain old data; all-zero is valid.
        let mut membership: libc::packet_mreq = unsafe { std::mem::zeroed() };
        membership.mr_ifindex = index as libc::c_int;
        membership.mr_type = libc::PACKET_MR_PROMISC as libc::c_ushort;
        socket.set_raw_option(libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &membership)?;
        Ok(socket)
    }

    /// A blocking socket that only sends frames out of interface `index`.
    pub fn sender(index: u32) -> io::Result<PacketSocket> {
        let socket = open(0)?;
        socket.set_option(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, SOCKET_BUFFER_BYTES)?;
        socket.bind(index, 0)?;
        Ok(socket)
    }

    fn bind(&self, index: u32, protocol_be: u16) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as libc::c_ushort;
        address.sll_protocol = protocol_be;
        address.sll_ifindex = index as libc::c_int;
        // SAFETY: `address` is a valid sockaddr_ll of the size given.
        let result = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&address as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(result).map(drop)
    }

    fn set_option(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> io::Result<()> {
        self.set_raw_option(level, name, &value)
    }

    fn set_raw_option<T>(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: &T,
    ) -> io::Result<()> {
        // SAFETY: `value` points at a live T of the size given.
        let result = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (value as *const T).cast(),
                size_of::<T>() as libc::socklen_t,
            )
        };
        check(result).map(drop)
    }

    /// The descriptor, for polling.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

fn open(flags: libc::c_int) -> io::Result<PacketSocket> {
    // SAFETY: socket() has no memory preconditions; the result is checked.
    let fd = check(unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags,
            0,
        )
    })?;
    // SAFETY: a fresh descriptor nothing else owns.
    Ok(PacketSocket {
        fd: unsafe { OwnedFd::from_raw_fd(fd) },
    })
}

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// The index of interface `name` in the calling thread's namespace.
pub fn interface_index(name: &str) -> io::Result<u32> {
    let name = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `name` is a valid C string for the duration of the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(io::Error::last_os_error()),
        index => Ok(index),
    }
}

/// Preallocated `mmsghdr`/`iovec` arrays for one batch of frames. Each entry
/// points at a caller-owned buffer (set with [`MessageBatch::point`]).
pub struct MessageBatch {
    headers: Vec<libc::mmsghdr>,
    buffers: Vec<libc::iovec>,
}

impl MessageBatch {
    /// A batch of up to `capacity` frames, pointing nowhere yet.
    pub fn new(capacity: usize) -> MessageBatch {
        // SAFETY: mmsghdr and iovec are plain old data; all-zero is valid.
        let headers = (0..capacity)
            .map(|_| unsafe { std::mem::zeroed() })
            .collect();
        let buffers = (0..capacity)
            .map(|_| libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            })
            .collect();
        MessageBatch { headers, buffers }
    }

    /// Points entry `i` at `len` bytes at `buffer`.
    pub fn point(&mut self, i: usize, buffer: *mut u8, len: usize) {
        self.buffers[i] = libc::iovec {
            iov_base: buffer.cast(),
            iov_len: len,
        };
    }

    /// Receives up to `count` frames without waiting; `Ok(0)` if none is queued.
    ///
    /// # Safety
    /// Entries `0..count` must point at writable buffers of the length given
    /// to [`MessageBatch::point`] that stay alive during the call.
    pub unsafe fn receive(&mut self, socket: &PacketSocket, count: usize) -> io::Result<usize> {
        let count = self.prepare(count);
        // SAFETY: headers 0..count point at live iovecs and, by the caller's
        // contract, at live writable buffers.
        let result = unsafe {
            libc::recvmmsg(
                socket.raw_fd(),
                self.headers.as_mut_ptr(),
                count as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        match check(result) {
            Ok(n) => Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Sends frames `start..end`; returns how many went (a prefix).
    ///
    /// # Safety
    /// Entries `start..end` must point at readable buffers of the length
    /// given to [`MessageBatch::point`] that stay alive during the call.
    pub unsafe fn send(
        &mut self,
        socket: &PacketSocket,
        start: usize,
        end: usize,
    ) -> io::Result<usize> {
        let end = self.prepare(end);
        let start = start.min(end);
        // SAFETY: as in `receive`, for reading.
        let result = unsafe {
            libc::sendmmsg(
                socket.raw_fd(),
                self.headers[start..].as_mut_ptr(),
                (end - start) as libc::c_uint,
                0,
            )
        };
        check(result).map(|n| n as usize)
    }

    /// Length of received frame `i`.
    pub fn received_len(&self, i: usize) -> usize {
        self.headers[i].msg_len as usize
    }

    /// Whether received frame `i` was longer than its buffer (and cut).
    pub fn truncated(&self, i: usize) -> bool {
        self.headers[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0
    }

    /// Links the first `count` headers to their iovecs (the vectors never
    /// move, but this keeps the pointers right by construction).
    fn prepare(&mut self, count: usize) -> usize {
        let count = count.min(self.headers.len());
        for (header, buffer) in self
            .headers
            .iter_mut()
            .zip(self.buffers.iter_mut())
            .take(count)
        {
            header.msg_hdr.msg_iov = buffer;
            header.msg_hdr.msg_iovlen = 1;
            header.msg_hdr.msg_flags = 0;
            header.msg_len = 0;
        }
        count
    }
}
