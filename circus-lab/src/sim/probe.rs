//! The probe stream of the simulation: when each probe is due, the IPv4/UDP
//! packet that carries it through a tunnel, and the log of what arrived.
//!
//! The stream is the real lab's ([`crate::traffic::probe`]): sequence
//! numbers 0, 1, 2, ... sent at an exact rate, spread round-robin over
//! [`PROBE_FLOWS`] UDP flows with distinct source ports (so per-connection
//! systems can pin flows to links), with the same payload header, logged in
//! the same [`ProbeLog`] form. Times are virtual: [`MonoNanos`] counts from
//! the start of the simulation.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::emulator::model::Direction;
use crate::runner::PROBE_PORT;
use crate::scenario::{ProbeSpec, Scenario};
use crate::systems::PROBE_FLOWS;
use crate::topology::addressing::SERVER_ADDRESS;
use crate::traffic::MonoNanos;
use crate::traffic::probe::{
    PROBE_HEADER_LEN, ProbeHeader, ProbeLog, ProbeRecord, ReceiveLog, SendLog,
};

/// Source port of flow 0; flow `i` uses `FIRST_SOURCE_PORT + i`.
const FIRST_SOURCE_PORT: u16 = 40_000;
/// The client's tunnel address (the inner source of tunnelled probes).
pub(super) const CLIENT_TUNNEL_ADDRESS: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

const IPV4_HEADER_LEN: usize = 20;
const UDP_HEADER_LEN: usize = 8;
/// Where the probe header starts in a probe's IP packet.
const PAYLOAD_AT: usize = IPV4_HEADER_LEN + UDP_HEADER_LEN;

/// When each probe is due, and the log of what happened to them.
#[derive(Debug)]
pub(super) struct ProbeStream {
    rate_pps: u64,
    /// When probe 0 is due.
    start: Duration,
    count: u64,
    log: ProbeLog,
}

impl ProbeStream {
    /// The scenario's stream in `direction`, the first probe due at
    /// `start`; an empty stream if the scenario sends no probes that way.
    pub fn for_scenario(
        scenario: &Scenario,
        direction: Direction,
        start: Duration,
        stream_id: u32,
    ) -> ProbeStream {
        let probe = scenario.traffic.probe;
        let runs = match direction {
            Direction::Up => probe.direction.up(),
            Direction::Down => probe.direction.down(),
        };
        let duration = if runs {
            scenario.duration
        } else {
            Duration::ZERO
        };
        ProbeStream::new(probe, duration, start, stream_id)
    }

    /// `rate x duration` probes (rounded down), the first due at `start`.
    pub fn new(
        spec: ProbeSpec,
        duration: Duration,
        start: Duration,
        stream_id: u32,
    ) -> ProbeStream {
        let rate_pps = spec.rate_pps.max(1);
        let count = (duration.as_nanos() * u128::from(rate_pps) / 1_000_000_000) as u64;
        let capacity = usize::try_from(count).unwrap_or(0);
        let log = ProbeLog {
            sent: SendLog {
                stream_id,
                rate_pps,
                size: (spec.size as usize).max(PROBE_HEADER_LEN),
                flows: PROBE_FLOWS,
                source_ports: (0..PROBE_FLOWS)
                    .map(|flow| FIRST_SOURCE_PORT + flow)
                    .collect(),
                start: virtual_nanos(start),
                sent_at: Vec::with_capacity(capacity),
                send_errors: 0,
                max_lateness: Duration::ZERO,
                realtime: false,
            },
            received: ReceiveLog {
                stream_id,
                records: Vec::with_capacity(capacity),
                not_recorded: 0,
                foreign: 0,
            },
        };
        ProbeStream {
            rate_pps,
            start,
            count,
            log,
        }
    }

    /// UDP payload bytes per probe.
    pub fn size(&self) -> usize {
        self.log.sent.size
    }

    /// The next probe to send and when it is due; `None` once all are sent.
    pub fn next_due(&self) -> Option<(u64, Duration)> {
        let seq = self.log.sent.sent_at.len() as u64;
        (seq < self.count).then(|| (seq, self.due(seq)))
    }

    /// When probe `seq` is due: on an exact grid, as the real sender's
    /// absolute deadlines (a virtual clock is never late).
    fn due(&self, seq: u64) -> Duration {
        let offset = u128::from(seq) * 1_000_000_000 / u128::from(self.rate_pps);
        self.start + Duration::from_nanos(offset as u64)
    }

    /// Logs the next probe as sent at `now` and returns its header.
    pub fn send_next(&mut self, now: Duration) -> ProbeHeader {
        let seq = self.log.sent.sent_at.len() as u64;
        self.log.sent.sent_at.push(virtual_nanos(now));
        ProbeHeader {
            stream_id: self.log.sent.stream_id,
            seq,
            sent: virtual_nanos(now),
            flow: self.log.sent.flow_of(seq),
        }
    }

    /// Logs a probe that reached the server at `now`.
    pub fn received(&mut self, header: &ProbeHeader, now: Duration) {
        if header.stream_id != self.log.sent.stream_id {
            self.log.received.foreign += 1;
            return;
        }
        self.log.received.records.push(ProbeRecord {
            seq: header.seq,
            flow: header.flow,
            sent: header.sent,
            received: virtual_nanos(now),
        });
    }

    /// The finished log. Records are put in arrival order, as a receiver
    /// logs them; simultaneous arrivals keep the order they were logged in.
    pub fn into_log(mut self) -> ProbeLog {
        self.log
            .received
            .records
            .sort_by_key(|record| record.received);
        self.log
    }
}

/// The probe streams of both directions; one is empty when the scenario
/// sends probes only the other way.
#[derive(Debug)]
pub(super) struct Streams {
    /// Client to server.
    pub up: ProbeStream,
    /// Server to client.
    pub down: ProbeStream,
}

impl Streams {
    /// When the next probe of either stream is due.
    pub fn next_due(&self) -> Option<Duration> {
        [self.up.next_due(), self.down.next_due()]
            .into_iter()
            .flatten()
            .map(|(_, at)| at)
            .min()
    }
}

/// A virtual time as the logs write it.
pub(super) fn virtual_nanos(time: Duration) -> MonoNanos {
    MonoNanos(u64::try_from(time.as_nanos()).unwrap_or(u64::MAX))
}

/// The IPv4/UDP packet of a probe, written into one reused buffer.
#[derive(Debug)]
pub(super) struct ProbePacket {
    buf: Vec<u8>,
    direction: Direction,
}

impl ProbePacket {
    /// A packet with `size` bytes of UDP payload, from the client's tunnel
    /// address to the server (`Up`) or back (`Down`).
    pub fn new(size: usize, direction: Direction) -> ProbePacket {
        let size = size.max(PROBE_HEADER_LEN);
        let mut buf = vec![0; PAYLOAD_AT + size];
        let total_len = u16::try_from(buf.len()).unwrap_or(u16::MAX);
        let udp_len = total_len - IPV4_HEADER_LEN as u16;
        buf[0] = 0x45; // version 4, 5-word header
        buf[2..4].copy_from_slice(&total_len.to_be_bytes());
        buf[8] = 64; // TTL
        buf[9] = 17; // UDP
        let (source, destination) = match direction {
            Direction::Up => (CLIENT_TUNNEL_ADDRESS, SERVER_ADDRESS),
            Direction::Down => (SERVER_ADDRESS, CLIENT_TUNNEL_ADDRESS),
        };
        buf[12..16].copy_from_slice(&source.octets());
        buf[16..20].copy_from_slice(&destination.octets());
        let checksum = internet_checksum::checksum(&buf[..IPV4_HEADER_LEN]);
        buf[10..12].copy_from_slice(&checksum);
        buf[24..26].copy_from_slice(&udp_len.to_be_bytes());
        // UDP checksum 0: none, as IPv4 allows.
        ProbePacket { buf, direction }
    }

    /// The packet carrying the probe `header`. Each flow has its own client
    /// port, as the real flows' sockets do: the source port going up, the
    /// destination port coming down.
    pub fn write(&mut self, header: &ProbeHeader) -> &[u8] {
        let client_port = FIRST_SOURCE_PORT.wrapping_add(header.flow);
        let (source, destination) = match self.direction {
            Direction::Up => (client_port, PROBE_PORT),
            Direction::Down => (PROBE_PORT, client_port),
        };
        self.buf[20..22].copy_from_slice(&source.to_be_bytes());
        self.buf[22..24].copy_from_slice(&destination.to_be_bytes());
        self.buf[PAYLOAD_AT..PAYLOAD_AT + PROBE_HEADER_LEN].copy_from_slice(&header.encode());
        &self.buf
    }

    /// The probe header of a delivered IPv4/UDP packet; `None` for anything
    /// else.
    pub fn read(packet: &[u8]) -> Option<ProbeHeader> {
        let is_udp = packet.first() == Some(&0x45) && packet.get(9) == Some(&17);
        if !is_udp {
            return None;
        }
        ProbeHeader::parse(packet.get(PAYLOAD_AT..)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_are_due_on_an_exact_grid_and_logged_as_sent() {
        let spec = ProbeSpec {
            rate_pps: 3,
            size: 100,
            direction: crate::scenario::TrafficDirection::Up,
        };
        let start = Duration::from_secs(1);
        let mut stream = ProbeStream::new(spec, Duration::from_millis(2500), start, 9);
        let mut due = Vec::new();
        while let Some((seq, at)) = stream.next_due() {
            let header = stream.send_next(at);
            assert_eq!(header.seq, seq);
            assert_eq!(header.flow, (seq % u64::from(PROBE_FLOWS)) as u16);
            due.push(at);
        }
        assert_eq!(due.len(), 7);
        assert_eq!(due[0], start);
        assert_eq!(due[1], Duration::from_nanos(1_333_333_333));
        assert_eq!(due[3], Duration::from_secs(2));
        let log = stream.into_log();
        assert_eq!(log.sent.start, MonoNanos(1_000_000_000));
        assert_eq!(log.sent.sent_at.len(), 7);
    }

    #[test]
    fn a_written_probe_reads_back_and_is_a_valid_ipv4_udp_packet() {
        let mut packet = ProbePacket::new(200, Direction::Up);
        let header = ProbeHeader {
            stream_id: 3,
            seq: 123_456,
            flow: 5,
            sent: MonoNanos(987_654_321),
        };
        let bytes = packet.write(&header).to_vec();
        assert_eq!(bytes.len(), 228);
        assert_eq!(u16::from_be_bytes([bytes[2], bytes[3]]), 228);
        assert_eq!(u16::from_be_bytes([bytes[24], bytes[25]]), 208);
        assert_eq!(
            u16::from_be_bytes([bytes[20], bytes[21]]),
            FIRST_SOURCE_PORT + 5
        );
        // A correct header checksum sums to zero.
        assert_eq!(internet_checksum::checksum(&bytes[..20]), [0, 0]);
        assert_eq!(ProbePacket::read(&bytes), Some(header));
        assert_eq!(ProbePacket::read(&bytes[..40]), None);
    }
}
