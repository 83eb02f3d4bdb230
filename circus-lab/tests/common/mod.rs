//! Shared by the emulator tests: a one-link topology with a running
//! forwarder, and a UDP echo over it.

#![allow(dead_code)] // each test file uses a different part

use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use circus_lab::emulator::forwarder::{ForwardedLink, Forwarder, ForwarderOptions};
use circus_lab::emulator::model::{Direction, LinkModel, LinkParams};
use circus_lab::topology::{Role, Topology, TopologyConfig};

/// A one-link topology with the emulator running on it.
pub struct Lab {
    pub forwarder: Forwarder,
    pub topology: Topology,
}

impl Lab {
    pub fn start(params: LinkParams) -> Lab {
        let topology = Topology::build(&TopologyConfig {
            tag: "t".into(),
            links: 1,
        })
        .unwrap();
        let link = ForwardedLink::new(
            &topology.links()[0],
            LinkModel::new(params.clone(), Direction::Up, 1),
            LinkModel::new(params, Direction::Down, 2),
        );
        let forwarder = Forwarder::start(
            topology.netns(Role::Emu),
            vec![link],
            &ForwarderOptions::new(Instant::now()),
        )
        .unwrap();
        Lab {
            forwarder,
            topology,
        }
    }

    /// A UDP socket in the namespace of `role`, bound to `address`.
    pub fn socket(&self, role: Role, address: SocketAddrV4) -> UdpSocket {
        self.topology
            .netns(role)
            .run(|| UdpSocket::bind(address))
            .unwrap()
            .unwrap()
    }

    /// An echo server on the gateway's end of link 0, and a client socket on
    /// the client's end.
    pub fn echo_pair(&self) -> (Echo, UdpSocket) {
        let link = &self.topology.links()[0];
        let server = self.socket(Role::Gateway, SocketAddrV4::new(link.gateway_address, 0));
        let client = self.socket(Role::Client, SocketAddrV4::new(link.client_address, 0));
        (Echo::start(server), client)
    }
}

/// Sends every datagram it receives back to its sender, until dropped.
pub struct Echo {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start(socket: UdpSocket) -> Echo {
        let address = socket.local_addr().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop_flag.load(Ordering::Relaxed) {
                if let Ok((len, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(&buf[..len], from);
                }
            }
        });
        Echo {
            address,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `count` probes `interval` apart to `to` and returns the round-trip
/// times of those that came back within `wait` after the last one was sent.
pub fn round_trips(
    socket: &UdpSocket,
    to: SocketAddr,
    count: u64,
    interval: Duration,
    wait: Duration,
) -> Vec<Duration> {
    let base = Instant::now();
    let receiver = socket.try_clone().unwrap();
    receiver
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let deadline = base + interval * count as u32 + wait;
    let collector = std::thread::spawn(move || {
        let mut rtts = Vec::new();
        let mut buf = [0u8; 64];
        while (rtts.len() as u64) < count && Instant::now() < deadline {
            if let Ok(len) = receiver.recv(&mut buf)
                && len >= 16
            {
                let sent_ns = u64::from_be_bytes(buf[8..16].try_into().unwrap());
                let now_ns = base.elapsed().as_nanos() as u64;
                rtts.push(Duration::from_nanos(now_ns - sent_ns));
            }
        }
        rtts
    });
    for seq in 0..count {
        let mut probe = [0u8; 64];
        probe[..8].copy_from_slice(&seq.to_be_bytes());
        let sent_ns = base.elapsed().as_nanos() as u64;
        probe[8..16].copy_from_slice(&sent_ns.to_be_bytes());
        socket.send_to(&probe, to).unwrap();
        std::thread::sleep(interval);
    }
    collector.join().unwrap()
}

pub fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}
