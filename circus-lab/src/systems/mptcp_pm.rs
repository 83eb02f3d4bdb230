//! Configures the kernel's MPTCP path manager over generic netlink.
//!
//! The `mptcp` baseline needs one subflow endpoint per link on the client
//! (what `ip mptcp endpoint add ADDR dev DEV subflow` does). No maintained
//! crate can add endpoints (mptcp-pm only reads them), and the lab must not
//! depend on iproute2 at run time, so this module speaks the two messages it
//! needs by hand: ADD_ADDR and SET_LIMITS of the `mptcp_pm` family.
//!
//! Like every netlink socket, the one opened here acts on the network
//! namespace of the calling thread: call these from a namespace thread.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const MPTCP_PM_CMD_ADD_ADDR: u8 = 1;
const MPTCP_PM_CMD_SET_LIMITS: u8 = 5;
const MPTCP_PM_ATTR_ADDR: u16 = 1;
const MPTCP_PM_ATTR_RCV_ADD_ADDRS: u16 = 2;
const MPTCP_PM_ATTR_SUBFLOWS: u16 = 3;
const MPTCP_PM_ADDR_ATTR_FAMILY: u16 = 1;
const MPTCP_PM_ADDR_ATTR_ID: u16 = 2;
const MPTCP_PM_ADDR_ATTR_ADDR4: u16 = 3;
const MPTCP_PM_ADDR_ATTR_FLAGS: u16 = 6;
const MPTCP_PM_ADDR_ATTR_IF_IDX: u16 = 7;
/// The endpoint is used to open additional subflows (client side).
const MPTCP_PM_ADDR_FLAG_SUBFLOW: u32 = 2;

const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_HDR_LEN: usize = 16;
const GENL_HDR_LEN: usize = 4;

/// One netlink request under construction: header, generic header, attributes.
struct Request {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Request {
    fn new(family: u16, cmd: u8) -> Self {
        let mut buf = vec![0u8; NLMSG_HDR_LEN + GENL_HDR_LEN];
        buf[4..6].copy_from_slice(&family.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        buf[NLMSG_HDR_LEN] = cmd;
        buf[NLMSG_HDR_LEN + 1] = 1; // generic netlink version
        Request {
            buf,
            nests: Vec::new(),
        }
    }

    fn attr(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
        self
    }

    fn begin_nest(&mut self, kind: u16) -> &mut Self {
        self.nests.push(self.buf.len());
        self.attr(kind | NLA_F_NESTED, &[])
    }

    fn end_nest(&mut self) -> &mut Self {
        if let Some(start) = self.nests.pop() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// A generic netlink socket bound to the `mptcp_pm` family.
pub struct MptcpPathManager {
    fd: OwnedFd,
    family: u16,
    seq: u32,
}

impl MptcpPathManager {
    /// Opens a socket in the calling thread's namespace and resolves the family.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mut pm = MptcpPathManager {
            fd,
            family: GENL_ID_CTRL,
            seq: 0,
        };
        let mut req = Request::new(GENL_ID_CTRL, CTRL_CMD_GETFAMILY);
        req.attr(CTRL_ATTR_FAMILY_NAME, b"mptcp_pm\0");
        let reply = pm.exchange(req)?;
        pm.family = find_attr(&reply, CTRL_ATTR_FAMILY_ID)
            .and_then(|v| v.get(..2))
            .map(|v| u16::from_ne_bytes([v[0], v[1]]))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the kernel has no mptcp_pm netlink family (MPTCP not built in)",
                )
            })?;
        Ok(pm)
    }

    /// Allows `subflows` extra subflows per connection and accepting as many
    /// announced addresses (the kernel default of 2 would cap a 3-link lab).
    pub fn set_limits(&mut self, subflows: u32) -> io::Result<()> {
        let mut req = Request::new(self.family, MPTCP_PM_CMD_SET_LIMITS);
        req.attr(MPTCP_PM_ATTR_RCV_ADD_ADDRS, &subflows.to_ne_bytes())
            .attr(MPTCP_PM_ATTR_SUBFLOWS, &subflows.to_ne_bytes());
        self.exchange(req).map(drop)
    }

    /// Adds a subflow endpoint: new connections open a subflow from `addr`,
    /// bound to interface `ifindex` so it leaves on that link.
    pub fn add_subflow_endpoint(&mut self, id: u8, addr: Ipv4Addr, ifindex: u32) -> io::Result<()> {
        let mut req = Request::new(self.family, MPTCP_PM_CMD_ADD_ADDR);
        req.begin_nest(MPTCP_PM_ATTR_ADDR)
            .attr(
                MPTCP_PM_ADDR_ATTR_FAMILY,
                &(libc::AF_INET as u16).to_ne_bytes(),
            )
            .attr(MPTCP_PM_ADDR_ATTR_ID, &[id])
            .attr(MPTCP_PM_ADDR_ATTR_ADDR4, &addr.octets())
            .attr(
                MPTCP_PM_ADDR_ATTR_FLAGS,
                &MPTCP_PM_ADDR_FLAG_SUBFLOW.to_ne_bytes(),
            )
            .attr(MPTCP_PM_ADDR_ATTR_IF_IDX, &(ifindex as i32).to_ne_bytes())
            .end_nest();
        self.exchange(req).map(drop)
    }

    /// Sends one request and returns the attributes of its reply (empty for a
    /// plain acknowledgement); a netlink error becomes an `io::Error`.
    fn exchange(&mut self, req: Request) -> io::Result<Vec<u8>> {
        self.seq += 1;
        let msg = req.finish(self.seq);
        // SAFETY: `msg` is a valid buffer of the given length; the kernel is
        // the destination (zeroed sockaddr_nl).
        let sent = unsafe {
            let mut addr: libc::sockaddr_nl = std::mem::zeroed();
            addr.nl_family = libc::AF_NETLINK as u16;
            libc::sendto(
                self.fd.as_raw_fd(),
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut attrs = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            // SAFETY: `buf` is valid for writes of its length.
            let n =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut rest = &buf[..n as usize];
            while rest.len() >= NLMSG_HDR_LEN {
                let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                if len < NLMSG_HDR_LEN || len > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed netlink reply",
                    ));
                }
                let body = &rest[NLMSG_HDR_LEN..len];
                if kind == libc::NLMSG_ERROR as u16 {
                    let code = body
                        .get(..4)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(-libc::EINVAL);
                    return if code == 0 {
                        Ok(attrs)
                    } else {
                        Err(io::Error::from_raw_os_error(-code))
                    };
                }
                if kind != libc::NLMSG_DONE as u16 && body.len() >= GENL_HDR_LEN {
                    attrs.extend_from_slice(&body[GENL_HDR_LEN..]);
                }
                rest = &rest[len.next_multiple_of(4).min(rest.len())..];
            }
        }
    }
}

/// Finds the payload of the first top-level attribute of type `kind`.
fn find_attr(mut attrs: &[u8], kind: u16) -> Option<&[u8]> {
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let this = u16::from_ne_bytes([attrs[2], attrs[3]]) & !NLA_F_NESTED;
        if len < 4 || len > attrs.len() {
            return None;
        }
        if this == kind {
            return Some(&attrs[4..len]);
        }
        attrs = &attrs[len.next_multiple_of(4).min(attrs.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_attribute_lengths_cover_their_children() {
        let mut req = Request::new(42, MPTCP_PM_CMD_ADD_ADDR);
        req.begin_nest(MPTCP_PM_ATTR_ADDR)
            .attr(MPTCP_PM_ADDR_ATTR_ID, &[7])
            .end_nest();
        let msg = req.finish(9);
        assert_eq!(
            u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        let attrs = &msg[NLMSG_HDR_LEN + GENL_HDR_LEN..];
        let nest = find_attr(attrs, MPTCP_PM_ATTR_ADDR).expect("nested attribute present");
        // one child: 4-byte header + 1 byte, padded to 8
        assert_eq!(nest.len(), 8);
        assert_eq!(find_attr(nest, MPTCP_PM_ADDR_ATTR_ID), Some(&[7u8][..]));
    }

    #[test]
    fn truncated_attributes_are_not_read() {
        assert_eq!(find_attr(&[8, 0, 1, 0, 1], 1), None);
        assert_eq!(find_attr(&[2, 0, 1, 0], 1), None);
    }
}
