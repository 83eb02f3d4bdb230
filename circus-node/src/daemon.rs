//! The two daemons as library calls: set up the TUN device, sockets and
//! observability endpoints, run the event loop until shutdown, tear down.
//!
//! Everything is created in the network namespace of the calling thread, so
//! the lab runs a daemon by calling these on a thread that has entered the
//! namespace, inside a current-thread tokio runtime.

use crate::config::{ClientConfig, GatewayConfig, ObserveConfig};
use crate::driver::{self, DriverError};
use crate::link_set::LinkSet;
use crate::nat::{Nat, NatError};
use crate::prometheus::{MetricsError, MetricsServer};
use crate::routing::{Routes, RoutingError};
use crate::status::{ReportRequest, StatusError, StatusServer};
use crate::tun_device::{self, TunError};
use crate::tun_mtu::TunMtu;
use crate::{dns, link_socket, report};
use circus_core::engine;
use circus_core::mss::MssClamp;
use circus_core::scheduler::Policy;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Tun(#[from] TunError),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("cannot listen for clients on UDP {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Routing(#[from] RoutingError),
    #[error(transparent)]
    Nat(#[from] NatError),
    #[error("gateway configuration refused by the engine: {0}")]
    Gateway(#[from] engine::GatewayError),
}

/// Runs the client until `shutdown` resolves (e.g. on SIGTERM), then
/// removes its TUN device, status socket and routes (except what the kill
/// switch keeps, see [`crate::routing`]).
///
/// Must run inside a tokio runtime with IO and time enabled; a
/// current-thread runtime is enough and is what the binary uses.
pub async fn run_client(
    config: ClientConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let started = Instant::now();
    let tun_mtu = TunMtu::new(&config.tun, &config.links);
    let mtu = tun_mtu.current();
    let tun = tun_device::open(&config.tun, mtu)?;
    let engine = engine::Client::new(
        engine_config(config.policy, mtu),
        config.private_key.clone(),
        config.gateway_public_key,
        config.preshared_key.clone(),
        config.tunnel_prefixes(),
        Instant::now(),
        unix_time_ns(),
    );
    let (mut observers, requests) = start_observers(&config.observe).await?;
    let routing = &config.routing;
    let routes = Routes::install(routing, &config.tun.name).await?;
    if let Some(routes) = &routes {
        observers.spawn(routes.clone().follow());
    }
    let full_tunnel = routing.routes.iter().any(|p| p.is_empty());
    dns::apply(&config.tun.name, &routing.dns, full_tunnel);
    tracing::info!(tun = %config.tun.name, mtu, links = config.links.len(), "client running");
    let result = driver::run_client(
        engine,
        tun,
        tun_mtu,
        LinkSet::new(&config.links, Routes::link_mark(routing)),
        requests,
        started,
        shutdown,
    )
    .await;
    observers.shutdown().await;
    dns::revert(&config.tun.name, &routing.dns);
    if let Some(routes) = routes {
        routes.remove().await?;
    }
    tracing::info!("client stopped");
    Ok(result?)
}

/// Runs the gateway until `shutdown` resolves, then removes its TUN device,
/// status socket and, with `nat = true`, its masquerade table.
pub async fn run_gateway(
    config: GatewayConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let started = Instant::now();
    let mtu = tun_device::gateway_tun_mtu(&config.tun);
    let tun = tun_device::open(&config.tun, mtu)?;
    let socket = link_socket::bind_listener(config.listen).map_err(|source| NodeError::Listen {
        addr: config.listen,
        source,
    })?;
    let peers = config
        .clients
        .iter()
        .map(|c| engine::PeerConfig {
            public: c.public_key,
            psk: c.preshared_key.clone(),
            tunnel_addrs: c.tunnel_addresses.clone(),
        })
        .collect();
    let engine = engine::Gateway::new(
        engine_config(config.policy, mtu),
        config.private_key.clone(),
        peers,
    )?;
    let names: report::PeerNames = config
        .clients
        .iter()
        .map(|c| (c.public_key, c.name.clone()))
        .collect();
    let (mut observers, requests) = start_observers(&config.observe).await?;
    let nat = config.nat.then(|| Nat::start(&config)).transpose()?;
    tracing::info!(tun = %config.tun.name, mtu, listen = %config.listen, clients = names.len(), "gateway running");
    let result = driver::run_gateway(
        engine,
        tun,
        MssClamp::new(mtu),
        socket,
        requests,
        names,
        started,
        shutdown,
    )
    .await;
    observers.shutdown().await;
    if let Some(nat) = nat {
        nat.stop();
    }
    tracing::info!("gateway stopped");
    Ok(result?)
}

fn engine_config(policy: Policy, tun_mtu: u16) -> engine::Config {
    let mut config = engine::Config {
        policy,
        ..engine::Config::default()
    };
    // The largest packet the TUN device hands over, and so the largest the
    // peer's reorder buffer must hold.
    config.reorder.max_packet_size = usize::from(tun_mtu);
    config
}

/// Starts the status socket and metrics endpoint as tasks that ask the
/// event loop for reports; dropping or shutting down the set stops them.
async fn start_observers(
    observe: &ObserveConfig,
) -> Result<(JoinSet<()>, mpsc::Receiver<ReportRequest>), NodeError> {
    let (tx, rx) = mpsc::channel(8);
    let mut tasks = JoinSet::new();
    if let Some(path) = &observe.status_socket {
        let status = StatusServer::bind(path)?;
        tasks.spawn(status.serve(tx.clone()));
    }
    if let Some(addr) = observe.metrics_listen {
        let metrics = MetricsServer::bind(addr).await?;
        tracing::info!(%addr, "Prometheus metrics at /metrics");
        tasks.spawn(metrics.serve(tx));
    }
    Ok((tasks, rx))
}

/// Wall-clock time for the handshake's anti-replay timestamp (the engine
/// derives later ones from the monotonic clock).
fn unix_time_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
