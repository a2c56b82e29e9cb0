//! A shim dispatcher for the emulated network, as scionproto's `dispatcher` runs on a
//! dispatcherless host: on `ip:30041` it takes what border routers deliver for ports outside
//! the AS's dispatched range and hands it to the port the packet names (SCION/UDP: the
//! destination port; an SCMP error: the source port of the packet it quotes), from its own
//! socket. Like scionproto's shim it forwards only packets whose SCION destination host is the
//! address they were sent to. Hosts of different emulated ASes share one loopback address,
//! where that check cannot tell a host's own packets from delivered ones, so this shim also
//! takes packets only from the emulator's border routers: what a host sends to the shim by
//! mistake is dropped, as it would be between real hosts.

use std::io;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::debug;

use crate::socket::SHIM_DISPATCHER_PORT;
use crate::wire::{self, Received};

/// A running shim; it stops when dropped.
pub struct Shim {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Shim {
    /// Binds `ip:30041` and starts forwarding what `routers` (border routers' internal
    /// addresses) deliver there.
    pub async fn start(ip: IpAddr, routers: Vec<SocketAddr>) -> io::Result<Shim> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, SHIM_DISPATCHER_PORT)).await?;
        let addr = socket.local_addr()?;
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if !routers.contains(&from) {
                    debug!(%from, "shim: packet from a host, not a border router, dropped");
                    continue;
                }
                let Some(to) = destination(ip, &buf[..n]) else {
                    debug!(%from, "shim: packet not for a host port here, dropped");
                    continue;
                };
                let _ = socket.send_to(&buf[..n], to).await;
            }
        });
        Ok(Shim { addr, task })
    }

    /// The address the shim listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Shim {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Where the shim on `ip` hands `packet` over: the host port it is for, when its SCION
/// destination (for an SCMP error, the quoted packet's source) is `ip`.
fn destination(ip: IpAddr, packet: &[u8]) -> Option<SocketAddr> {
    let target = match wire::decode(Bytes::copy_from_slice(packet)).ok()? {
        Received::Udp(udp) => udp.dst,
        Received::Scmp(report) => report.quoted?.src,
        Received::Other { .. } => return None,
    };
    (target.ip == ip).then_some(SocketAddr::new(target.ip, target.port))
}
