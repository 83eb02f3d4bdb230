//! Engine statistics in the shape of a [`StatusReport`].
//!
//! The engine reports per-link estimates and counters and per-session
//! totals; the daemon adds what only it knows: link names, interfaces and
//! their local state, and the configured names of the gateway's clients.

use crate::link_set::LinkSet;
use crate::status::{Counters, LinkStatus, SessionStatus, StatusReport};
use circus_core::crypto::PublicKey;
use circus_core::engine::{Client, Gateway, LinkStats, Stats};
use circus_core::paths::PathState;
use std::collections::BTreeMap;
use std::time::Instant;

/// The gateway's clients by key, in config order.
pub(crate) type PeerNames = Vec<(PublicKey, String)>;

pub(crate) fn client(engine: &Client, links: &LinkSet, started: Instant) -> StatusReport {
    let stats = engine.stats();
    let link_rows = (0..links.len())
        .filter_map(|i| {
            let id = circus_core::LinkId(i as u8);
            let config = links.config(id)?;
            let engine_view = stats.link(id);
            Some(link_status(
                id.0,
                &config.name,
                config.interface.clone(),
                config.gateway.to_string(),
                links.local_state(id).name(),
                engine_view,
            ))
        })
        .collect();
    StatusReport {
        role: "client".into(),
        uptime_s: started.elapsed().as_secs_f64(),
        refused: BTreeMap::from([
            ("unauthentic".to_owned(), stats.totals.rejected),
            ("replayed".to_owned(), stats.totals.replayed),
        ]),
        sessions: vec![SessionStatus {
            name: "gateway".into(),
            public_key: engine.gateway_key().to_string(),
            connected: engine.is_connected(),
            last_handshake_s: seconds_since(stats.last_handshake),
            handshakes: stats.totals.handshakes,
            tunnel: tunnel_counters(&stats),
            dropped: dropped(&stats),
            links: link_rows,
        }],
    }
}

pub(crate) fn gateway(engine: &Gateway, names: &PeerNames, started: Instant) -> StatusReport {
    let stats = engine.stats();
    let sessions = names
        .iter()
        .map(|(key, name)| {
            let session = stats
                .sessions
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, s)| s);
            SessionStatus {
                name: name.clone(),
                public_key: key.to_string(),
                connected: session.is_some(),
                last_handshake_s: seconds_since(session.and_then(|s| s.last_handshake)),
                handshakes: session.map_or(0, |s| s.totals.handshakes),
                tunnel: session.map(tunnel_counters).unwrap_or_default(),
                dropped: session.map(dropped).unwrap_or_default(),
                links: session.map(gateway_links).unwrap_or_default(),
            }
        })
        .collect();
    let c = &stats.counters;
    let session_sum = |f: fn(&Stats) -> u64| stats.sessions.iter().map(|(_, s)| f(s)).sum::<u64>();
    StatusReport {
        role: "gateway".into(),
        uptime_s: started.elapsed().as_secs_f64(),
        refused: BTreeMap::from([
            ("malformed".to_owned(), c.malformed),
            ("handshake_refused".to_owned(), c.handshakes_refused),
            ("handshake_bad_mac1".to_owned(), c.inits_bad_mac1),
            ("handshake_cookie_reply".to_owned(), c.cookie_replies),
            ("handshake_rate_limited".to_owned(), c.inits_rate_limited),
            ("handshake_queue_full".to_owned(), c.responses_dropped),
            ("unknown_index".to_owned(), c.unknown_index),
            (
                "unauthentic".to_owned(),
                c.unauthentic + session_sum(|s| s.totals.rejected),
            ),
            ("replayed".to_owned(), session_sum(|s| s.totals.replayed)),
            (
                "spoofed_source".to_owned(),
                session_sum(|s| s.totals.dropped_not_allowed),
            ),
        ]),
        sessions,
    }
}

/// A session's links as the gateway sees them, in id order: it knows no
/// names, only the ids the client chose and where each link comes from.
fn gateway_links(session: &Stats) -> Vec<LinkStatus> {
    let mut links: Vec<LinkStatus> = session
        .links
        .iter()
        .map(|l| {
            let endpoint = l.remote.map_or_else(|| "-".to_owned(), |a| a.to_string());
            link_status(
                l.link.0,
                &l.link.to_string(),
                endpoint.clone(),
                endpoint,
                "up",
                Some(l),
            )
        })
        .collect();
    links.sort_by_key(|l| l.id);
    links
}

fn dropped(stats: &Stats) -> BTreeMap<String, u64> {
    let t = &stats.totals;
    BTreeMap::from([
        ("queue_full".to_owned(), t.dropped_queue_full),
        ("too_large".to_owned(), t.dropped_too_large),
        ("expired".to_owned(), t.dropped_expired),
        ("codel".to_owned(), t.dropped_codel),
        ("gave_up".to_owned(), t.lost),
        ("not_allowed".to_owned(), t.dropped_not_allowed),
        ("stale".to_owned(), t.stale),
    ])
}

fn tunnel_counters(stats: &Stats) -> Counters {
    Counters {
        bytes_sent: stats.totals.tun_bytes,
        bytes_received: stats.totals.delivered_bytes,
        packets_sent: stats.totals.tun_packets,
        packets_received: stats.totals.delivered,
    }
}

fn link_status(
    id: u8,
    name: &str,
    endpoint: String,
    peer: String,
    interface: &str,
    stats: Option<&LinkStats>,
) -> LinkStatus {
    // An estimate before the first RTT sample is the configured initial
    // value, not a measurement: show none while probing.
    let measured =
        stats.filter(|s| s.state != PathState::Probing || s.counters.packets_received > 0);
    LinkStatus {
        id,
        name: name.to_owned(),
        endpoint,
        peer,
        interface: interface.to_owned(),
        state: stats
            .map_or("absent", |s| path_state_name(s.state))
            .to_owned(),
        rtt_ms: measured.map(|s| s.srtt.as_secs_f64() * 1e3),
        rttvar_ms: measured.map(|s| s.rttvar.as_secs_f64() * 1e3),
        loss: stats.map_or(0.0, |s| f64::from(s.loss_rate)),
        rate_bytes_per_s: stats.map_or(0, |s| s.delivery_rate),
        min_rtt_ms: measured.map(|s| s.min_rtt.as_secs_f64() * 1e3),
        return_delay_ms: measured.map(|s| s.return_delay.as_secs_f64() * 1e3),
        in_flight_bytes: stats.map_or(0, |s| s.bytes_in_flight),
        in_flight_cap_bytes: stats.map_or(0, |s| s.in_flight_cap),
        traffic: stats.map_or_else(Counters::default, |s| Counters {
            bytes_sent: s.counters.bytes_sent,
            bytes_received: s.counters.bytes_received,
            packets_sent: s.counters.packets_sent,
            packets_received: s.counters.packets_received,
        }),
    }
}

/// Seconds from `then` to now, for "last handshake 45s ago".
fn seconds_since(then: Option<Instant>) -> Option<f64> {
    then.map(|t| t.elapsed().as_secs_f64())
}

fn path_state_name(state: PathState) -> &'static str {
    match state {
        PathState::Probing => "probing",
        PathState::Up => "up",
        PathState::Suspect => "suspect",
        PathState::Down => "down",
    }
}
