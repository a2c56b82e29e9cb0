//! NATS over SCION for Rust programs: a real [`async_nats::Client`] whose
//! connection runs over a path-aware QUIC/SCION link to a broker's SCION
//! client listener.
//!
//! [`connect`] runs the `broker proxy` machinery ([`crate::proxy`]) inside
//! the program on `127.0.0.1:0` and connects async-nats to it, so every
//! async-nats feature (headers, request/reply, JetStream calls, reconnect)
//! works unchanged while the bytes travel over SCION with path selection and
//! failover underneath. Reconnects go through the same in-process proxy
//! (servers discovered from INFO are ignored, as they are TCP addresses),
//! which fails over to other SCION client listeners the cluster advertises
//! in INFO `connect_urls`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use broker::scion_client::{connect, ScionClientOptions};
//! use futures::StreamExt;
//!
//! let opts = ScionClientOptions {
//!     // Verify the broker's certificate; without a CA the link is
//!     // encrypted but the broker is not authenticated (a warning is logged).
//!     ca: Some("ca.pem".into()),
//!     nats: async_nats::ConnectOptions::new().name("sensor-7"),
//!     ..Default::default()
//! };
//! let nc = connect("nats://[18-ffaa:1:10bf,10.0.0.1]:31022", opts).await?;
//! let mut sub = nc.subscribe("time.>").await?;
//! nc.publish("time.hello", "hi".into()).await?;
//! if let Some(msg) = sub.next().await {
//!     println!("{}: {:?}", msg.subject, msg.payload);
//! }
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use scion_transport::address::ScionAddr;
use scion_transport::quic::ScionEndpoint;

use crate::proxy::{self, LinkError, Proxy, ProxyConfig, ProxyError, ProxyTls};

/// How to reach the broker over SCION. `Default` uses the SCION daemon from
/// `$SCION_DAEMON_ADDRESS` (or 127.0.0.1:30255), picks the local address
/// from it, and does not authenticate the broker.
#[derive(Debug, Default)]
pub struct ScionClientOptions {
    /// Our SCION address; `None`: the daemon's ISD-AS and
    /// [`proxy::default_local_ip`].
    pub local: Option<ScionAddr>,
    /// SCION daemon `host:port`.
    pub daemon: Option<String>,
    /// The local AS's topology.json (dispatched port range, MTU, router
    /// address for the default local IP).
    pub topology: Option<PathBuf>,
    /// Path preference, e.g. `"latency"` or `"bandwidth,latency"`.
    pub path_preference: Option<String>,
    /// PEM CA bundle the broker's certificate must chain to.
    pub ca: Option<PathBuf>,
    /// Name the broker's certificate must carry (default `nats-scion`).
    pub server_name: Option<String>,
    /// Our client certificate and key (PEM), for a listener with
    /// `scion { tls { verify: true } }`; both or neither.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// async-nats options (name, credentials, reconnect, ...).
    pub nats: async_nats::ConnectOptions,
}

/// Errors of [`connect`].
#[derive(Debug, thiserror::Error)]
pub enum ScionClientError {
    #[error("invalid SCION broker address {upstream:?}: {reason}")]
    Upstream { upstream: String, reason: String },
    /// Local address, CA file or SCION endpoint problems.
    #[error("SCION client setup: {0}")]
    Setup(#[source] ProxyError),
    /// The broker could not be reached, or its certificate was rejected.
    #[error("SCION link to the broker: {0}")]
    Link(#[from] LinkError),
    /// The NATS handshake over the link failed (auth, protocol).
    #[error("NATS connect over SCION: {0}")]
    Nats(#[from] async_nats::ConnectError),
}

/// An async-nats client connected over SCION. Derefs to
/// [`async_nats::Client`]; the SCION link lives as long as this value, so
/// keep it (clones of the inner client stop reaching the broker once it is
/// dropped).
pub struct ScionClient {
    client: async_nats::Client,
    proxy: Proxy,
}

impl std::ops::Deref for ScionClient {
    type Target = async_nats::Client;
    fn deref(&self) -> &async_nats::Client {
        &self.client
    }
}

impl std::fmt::Debug for ScionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScionClient")
            .field("local", &self.proxy.endpoint.local_addr())
            .field("authenticated", &self.proxy.authenticated)
            .finish()
    }
}

impl ScionClient {
    /// The async-nats client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Our SCION address.
    pub fn local_addr(&self) -> ScionAddr {
        self.proxy.endpoint.local_addr()
    }

    /// Whether the broker's certificate was verified (a CA was given).
    pub fn authenticated(&self) -> bool {
        self.proxy.authenticated
    }

    /// The SCION endpoint, for path statistics and path events.
    pub fn endpoint(&self) -> &Arc<ScionEndpoint> {
        &self.proxy.endpoint
    }

    /// The in-process TCP address async-nats talks to.
    pub fn proxy_addr(&self) -> SocketAddr {
        self.proxy.listen
    }
}

/// The upstream(s): one address in any form, or `nats://` URLs separated by commas
/// (as `broker proxy --upstream` takes them).
fn parse_upstream(s: &str) -> Result<Vec<ScionAddr>, ScionClientError> {
    proxy::parse_upstreams(s).map_err(|e| ScionClientError::Upstream {
        upstream: s.to_string(),
        reason: match e {
            proxy::ProxyError::Usage(m) => m,
            other => other.to_string(),
        },
    })
}

/// Connects to the broker's SCION client listener at `upstream`
/// (`nats://[ISD-AS,IP]:port`, `nats://ISD-AS,IP:port` or
/// `[ISD-AS,IP]:port`; several `nats://` URLs separated by commas are tried in
/// order) and returns an async-nats client over it.
///
/// The first QUIC/SCION link is opened before async-nats starts, so an
/// unreachable broker or a rejected certificate is reported as
/// [`ScionClientError::Link`] rather than as an async-nats I/O error. With
/// `retry_on_initial_connect` in [`ScionClientOptions::nats`], an unreachable
/// broker is not an error: the client is returned and keeps trying through the
/// link layer, as async-nats does over TCP. A certificate refused either way
/// is always an error (retrying cannot fix it).
pub async fn connect(
    upstream: &str,
    opts: ScionClientOptions,
) -> Result<ScionClient, ScionClientError> {
    let upstreams = parse_upstream(upstream)?;
    let local = match opts.local {
        Some(l) => l,
        None => proxy::resolve_local(opts.daemon.as_deref(), opts.topology.as_deref())
            .await
            .map_err(ScionClientError::Setup)?,
    };
    let cfg = ProxyConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        upstream: upstreams[0],
        more_upstreams: upstreams[1..].to_vec(),
        local,
        daemon: opts.daemon,
        topology: opts.topology,
        path_preference: opts.path_preference,
    };
    let tls = ProxyTls {
        ca: opts.ca,
        server_name: opts.server_name,
        cert: opts.cert,
        key: opts.key,
    };
    let proxy = proxy::start_with_tls(cfg, &tls)
        .await
        .map_err(ScionClientError::Setup)?;
    let primed = proxy.prime().await;
    if let Err(e) = &primed {
        if !e.may_pass() {
            return Err(primed.unwrap_err().into());
        }
    }
    // Servers discovered from INFO are the cluster's TCP listeners (the
    // proxy keeps the SCION ones for itself): dialing them would leave
    // SCION, so every reconnect comes back through the proxy, which fails
    // over between SCION listeners.
    let connected = opts
        .nats
        .ignore_discovered_servers()
        .connect(format!("nats://{}", proxy.listen))
        .await;
    match (connected, primed) {
        (Ok(client), _) => Ok(ScionClient { client, proxy }),
        // Unreachable, and async-nats was not asked to retry: the link's reason, unless
        // async-nats failed for its own (the broker came up and refused the credentials).
        (Err(e), Err(link))
            if matches!(
                e.kind(),
                async_nats::ConnectErrorKind::Io | async_nats::ConnectErrorKind::TimedOut
            ) =>
        {
            Err(link.into())
        }
        (Err(e), _) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_forms() {
        for s in [
            "nats://[1-ff00:0:111,127.0.0.1]:31000",
            "nats://1-ff00:0:111,127.0.0.1:31000",
            "[1-ff00:0:111,127.0.0.1]:31000",
        ] {
            let a = parse_upstream(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(a.len(), 1, "{s}");
            assert_eq!(a[0].port, 31000, "{s}");
        }
        let two = parse_upstream("nats://1-ff00:0:111,127.0.0.1:1,nats://1-ff00:0:111,127.0.0.1:2")
            .unwrap();
        assert_eq!(two.iter().map(|a| a.port).collect::<Vec<_>>(), vec![1, 2]);
        assert!(parse_upstream("nats://[1-ff00:0:111,127.0.0.1]:0").is_err());
        let e = parse_upstream("nats://127.0.0.1:4222").unwrap_err();
        assert!(matches!(e, ScionClientError::Upstream { .. }), "{e}");
        assert!(parse_upstream("garbage").is_err());
    }
}
