//! The kernel's netem qdisc as the link emulator, for kernels that have it
//! (this machine's does not: `CONFIG_NET_SCH_NETEM` is off).
//!
//! With netem, each link's two emu ends are joined by a kernel bridge and a
//! netem qdisc sits on each end's egress: on `gw<i>` for the up direction, on
//! `cli<i>` for the down direction. It covers delay, jitter, random loss,
//! duplication and rate with a queue limit; traces, burst loss and reordering
//! need the userspace emulator, and asking netem for them is an error. Unlike
//! the userspace model, netem jitter may reorder frames.

use std::time::Duration;

use crate::emulator::model::{DEFAULT_QUEUE, LinkCondition, LinkParams, QueueLimit};
use crate::scenario::Backend;
use crate::topology::{Role, Topology, TopologyError};

/// The emulator a run uses after `auto` is resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolvedBackend {
    /// [`crate::emulator::forwarder`].
    Userspace,
    /// Kernel netem qdiscs.
    Netem,
}

/// Why netem cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NetemError {
    /// `backend = "netem"` on a kernel without netem.
    #[error(
        "backend = \"netem\": this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is off); use backend = \"userspace\" or \"auto\""
    )]
    Unsupported,
    /// A link parameter netem cannot emulate.
    #[error(
        "backend = \"netem\" cannot emulate `{key}` on link {link}; use backend = \"userspace\""
    )]
    UnsupportedParameter {
        /// Link index.
        link: usize,
        /// The scenario key, e.g. "trace".
        key: &'static str,
    },
    /// Building or configuring the network failed.
    #[error(transparent)]
    Topology(#[from] TopologyError),
}

/// Picks the backend for `requested` on this kernel, trying a netem qdisc in
/// the topology's emu namespace when it matters.
pub fn resolve(requested: Backend, topology: &Topology) -> Result<ResolvedBackend, NetemError> {
    match requested {
        Backend::Userspace => Ok(ResolvedBackend::Userspace),
        Backend::Netem if kernel_has_netem(topology)? => Ok(ResolvedBackend::Netem),
        Backend::Netem => Err(NetemError::Unsupported),
        Backend::Auto if kernel_has_netem(topology)? => Ok(ResolvedBackend::Netem),
        Backend::Auto => Ok(ResolvedBackend::Userspace),
    }
}

/// Whether the kernel can make a netem qdisc: tries one on the emu
/// namespace's loopback (which carries no lab traffic). The kernel answers
/// ENOENT for a qdisc kind it does not know (after trying to load a module).
pub fn kernel_has_netem(topology: &Topology) -> Result<bool, NetemError> {
    let options = encode_options(&LinkParams::default(), LinkCondition::Up, 0)?;
    match topology.replace_root_qdisc(Role::Emu, "lo", "netem", options) {
        Ok(()) => Ok(true),
        Err(e) if e.errno() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Bridges every link and gives each direction its netem qdisc.
pub fn install(topology: &Topology, links: &[LinkParams]) -> Result<(), NetemError> {
    for (link, params) in links.iter().enumerate() {
        topology.bridge_link(link)?;
        apply(topology, link, params, LinkCondition::Up)?;
    }
    Ok(())
}

/// Sets `link` to `params` under `condition` (a blackhole is 100% loss;
/// for "down" also drop the carrier with [`Topology::set_carrier`]).
pub fn apply(
    topology: &Topology,
    link: usize,
    params: &LinkParams,
    condition: LinkCondition,
) -> Result<(), NetemError> {
    let options = encode_options(params, condition, link)?;
    let plan = topology.link(link)?;
    for egress in [&plan.emu_gateway_side, &plan.emu_client_side] {
        topology.replace_root_qdisc(Role::Emu, egress, "netem", options.clone())?;
    }
    Ok(())
}

// From <linux/pkt_sched.h>.
const TCA_NETEM_RATE: u16 = 6;
const TCA_NETEM_RATE64: u16 = 8;
const TCA_NETEM_LATENCY64: u16 = 10;
const TCA_NETEM_JITTER64: u16 = 11;

/// Frame size used to turn byte bounds into netem's packet limit.
const MTU_FRAME: u64 = 1514;
/// Packet limit when nothing bounds the queue: netem's limit also holds the
/// frames in their delay, which must not overflow at high rates.
const UNBOUNDED_LIMIT: u32 = 100_000;

/// The `TCA_OPTIONS` payload of a netem qdisc: `struct tc_netem_qopt`
/// followed by netlink attributes for what it cannot hold.
pub fn encode_options(
    params: &LinkParams,
    condition: LinkCondition,
    link: usize,
) -> Result<Vec<u8>, NetemError> {
    let unsupported = |key| Err(NetemError::UnsupportedParameter { link, key });
    if params.trace.is_some() {
        return unsupported("trace");
    }
    if params.burst_loss.is_some() {
        return unsupported("burst_loss");
    }
    if params.reorder.is_some() {
        return unsupported("reorder");
    }
    let loss = match condition {
        LinkCondition::Up => params.loss,
        LinkCondition::Blackhole | LinkCondition::Down => 1.0,
    };
    let limit = packet_limit(params);
    let mut out = Vec::with_capacity(64);
    // tc_netem_qopt: latency, limit, loss, gap, duplicate, jitter (latency
    // and jitter go in the 64-bit attributes below, in nanoseconds).
    for field in [
        0,
        limit,
        probability(loss),
        0,
        probability(params.duplicate),
        0,
    ] {
        out.extend_from_slice(&field.to_ne_bytes());
    }
    push_attribute(
        &mut out,
        TCA_NETEM_LATENCY64,
        &nanos(params.delay).to_ne_bytes(),
    );
    push_attribute(
        &mut out,
        TCA_NETEM_JITTER64,
        &nanos(params.jitter).to_ne_bytes(),
    );
    if let Some(bps) = params.rate_bps {
        let bytes_per_second = (bps / 8).max(1);
        let mut rate = Vec::with_capacity(16);
        // tc_netem_rate: rate (bytes/s, u32), packet_overhead, cell_size, cell_overhead.
        rate.extend_from_slice(
            &u32::try_from(bytes_per_second)
                .unwrap_or(u32::MAX)
                .to_ne_bytes(),
        );
        rate.extend_from_slice(&[0u8; 12]);
        push_attribute(&mut out, TCA_NETEM_RATE, &rate);
        if bytes_per_second > u64::from(u32::MAX) {
            push_attribute(&mut out, TCA_NETEM_RATE64, &bytes_per_second.to_ne_bytes());
        }
    }
    Ok(out)
}

/// netem's limit counts packets, both queued and in their delay: the queue
/// bound in MTU frames plus what the delay holds at the rate.
fn packet_limit(params: &LinkParams) -> u32 {
    let Some(bps) = params.rate_bps else {
        return UNBOUNDED_LIMIT;
    };
    let bytes_in = |d: Duration| d.as_nanos() * u128::from(bps) / 8_000_000_000;
    let queue_bytes = match params.queue.unwrap_or(DEFAULT_QUEUE) {
        QueueLimit::Bytes(bytes) => u128::from(bytes),
        QueueLimit::Delay(delay) => bytes_in(delay),
    };
    let in_delay = bytes_in(params.delay + params.jitter);
    let packets = (queue_bytes + in_delay)
        .div_ceil(u128::from(MTU_FRAME))
        .max(1);
    u32::try_from(packets).unwrap_or(u32::MAX)
}

/// A probability as netem's fraction of `u32::MAX`.
fn probability(p: f64) -> u32 {
    (p.clamp(0.0, 1.0) * f64::from(u32::MAX)).round() as u32
}

fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// Appends one netlink attribute (length, type, value, padding to 4).
fn push_attribute(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + (len.next_multiple_of(4) - len), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(bytes: &[u8], offset: usize) -> u32 {
        u32::from_ne_bytes(bytes[offset..offset + 4].try_into().unwrap())
    }

    /// The attributes after the 24-byte qopt, as (type, value).
    fn attributes(bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut found = Vec::new();
        let mut at = 24;
        while at < bytes.len() {
            let len = u16::from_ne_bytes([bytes[at], bytes[at + 1]]) as usize;
            let kind = u16::from_ne_bytes([bytes[at + 2], bytes[at + 3]]);
            found.push((kind, bytes[at + 4..at + len].to_vec()));
            at += len.next_multiple_of(4);
        }
        found
    }

    #[test]
    fn options_carry_delay_jitter_loss_duplicate_and_rate() {
        let params = LinkParams {
            delay: Duration::from_millis(50),
            jitter: Duration::from_millis(5),
            loss: 0.5,
            duplicate: 0.25,
            rate_bps: Some(8_000_000),
            queue: Some(QueueLimit::Bytes(15_140)),
            ..LinkParams::default()
        };
        let bytes = encode_options(&params, LinkCondition::Up, 0).unwrap();
        assert_eq!(u32_at(&bytes, 8), u32::MAX / 2 + 1, "loss");
        assert_eq!(u32_at(&bytes, 16), u32::MAX / 4 + 1, "duplicate");
        // 10 MTU frames of queue + 55 ms at 1 MB/s = 55,000 bytes -> 37 frames.
        assert_eq!(u32_at(&bytes, 4), 10 + 37, "limit");
        let attributes = attributes(&bytes);
        let value = |kind| {
            attributes
                .iter()
                .find(|(k, _)| *k == kind)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(value(TCA_NETEM_LATENCY64), 50_000_000i64.to_ne_bytes());
        assert_eq!(value(TCA_NETEM_JITTER64), 5_000_000i64.to_ne_bytes());
        assert_eq!(
            u32_at(&value(TCA_NETEM_RATE), 0),
            1_000_000,
            "bytes per second"
        );
        assert!(attributes.iter().all(|(k, _)| *k != TCA_NETEM_RATE64));
    }

    #[test]
    fn blackhole_is_total_loss() {
        let bytes = encode_options(&LinkParams::default(), LinkCondition::Blackhole, 0).unwrap();
        assert_eq!(u32_at(&bytes, 8), u32::MAX);
    }

    #[test]
    fn what_netem_cannot_do_is_refused_by_name() {
        let params = LinkParams {
            reorder: Some(crate::emulator::model::Reorder {
                fraction: 0.1,
                extra_delay: Duration::from_millis(5),
            }),
            ..LinkParams::default()
        };
        let error = encode_options(&params, LinkCondition::Up, 2).unwrap_err();
        assert_eq!(
            error.to_string(),
            "backend = \"netem\" cannot emulate `reorder` on link 2; use backend = \"userspace\""
        );
    }
}
