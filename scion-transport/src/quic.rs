//! QUIC over SCION: upstream quinn 0.11 on a custom `AsyncUdpSocket`, and the public endpoint.
//!
//! quinn sees each SCION peer as a stable synthetic IPv6 address (ULA `fd5c:10::/32`), so a
//! path switch below it is invisible to QUIC: no migration, no new connection IDs. MTU is
//! pinned to 1200 bytes initially (RFC 9000 §14: the minimum QUIC datagram) and discovery is
//! capped by the smallest usable path's MTU minus the SCION header, because quinn would
//! otherwise grow packets past what the path carries.

use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

use crate::address::ScionAddr;
use crate::daemon::{resolve_daemon_address, DaemonClient, DaemonError};
use crate::path::{CandidateView, SelectorConfig};
use crate::socket::{PathError, PathEvent, ScionSocket};
use crate::topology::{DispatchedPorts, LocalTopology, TopologyFileError};

/// ALPN of QUIC connections between nats-scion peers.
pub const DEFAULT_ALPN: &[u8] = b"nats-scion";
/// QUIC's minimum datagram size (RFC 9000 §14).
pub const QUIC_MIN_DATAGRAM: u16 = 1200;
/// Header budget assumed when nothing is known about a peer's paths: a three-segment path of
/// nine hop fields with IPv6 hosts (12+16+32+4+24+108+8). Only a fallback: both sides size
/// their packets from the real header of the peer's paths (see [`ScionSocket::max_payload`]).
const WORST_HEADER_BUDGET: u16 = 204;
/// Smallest SCION/UDP header in front of a QUIC datagram: common header, ISD-AS pair, two
/// IPv4 hosts, no path, UDP (12+16+8+0+8).
const LEAST_HEADER: u16 = 44;
/// How long an acceptor waits for the daemon's paths to the dialing peer before it sizes the
/// connection's packets from the reply path alone.
const ACCEPT_PATH_WAIT: Duration = Duration::from_millis(500);

/// TLS material for an endpoint (used both to accept and to dial).
#[derive(Debug, Clone)]
pub struct TlsConfig {
    pub cert_chain: Vec<CertificateDer<'static>>,
    pub key: Arc<PrivateKeyDer<'static>>,
    /// Trust anchors for peers' certificates.
    pub roots: Vec<CertificateDer<'static>>,
    /// Accept any server certificate (still encrypted; authentication left to the application,
    /// e.g. the cluster `authorization` block). Off unless asked for.
    pub skip_server_verification: bool,
    /// Mutual TLS: when accepting, take only peers presenting a certificate that chains to
    /// `roots` (and is valid for client authentication); when dialing, present `cert_chain`.
    /// nats-server forces this on route TLS (server/opts.go `getTLSConfig`:
    /// `RequireAndVerifyClientCert`, root CAs mirrored to client CAs) and offers it to clients
    /// with `tls { verify: true }`. Off unless asked for.
    pub mutual: bool,
}

fn read_file(p: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(p).map_err(|source| TlsError::Read {
        path: p.display().to_string(),
        source,
    })
}

fn pem_error(p: &Path, what: &str) -> TlsError {
    TlsError::Pem {
        path: p.display().to_string(),
        what: what.to_string(),
    }
}

/// Every CERTIFICATE block of a PEM file.
fn read_certs(p: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(&read_file(p)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(p, &e.to_string()))
}

/// Errors of building TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("QUIC TLS configuration rejected: {0}")]
    Quic(String),
    #[error("client certificates are required but no CA certificate is given to verify them")]
    NoClientRoots,
}

impl TlsConfig {
    /// A fresh self-signed certificate for `names`, trusted by this configuration itself:
    /// endpoints sharing one `TlsConfig` verify each other properly.
    pub fn self_signed(names: &[&str]) -> Result<Self, TlsError> {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let cert = rcgen::generate_simple_self_signed(names)?;
        let der = cert.cert.der().clone();
        let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        Ok(TlsConfig {
            cert_chain: vec![der.clone()],
            key: Arc::new(key),
            roots: vec![der],
            skip_server_verification: false,
            mutual: false,
        })
    }

    /// Certificate chain, key and CA bundle from PEM files (nats-server `tls {cert_file,
    /// key_file, ca_file}`).
    pub fn from_pem_files(cert: &Path, key: &Path, ca: &Path) -> Result<Self, TlsError> {
        let mut tls = Self::from_pem_cert_key(cert, key)?;
        tls.roots = read_certs(ca)?;
        if tls.roots.is_empty() {
            return Err(pem_error(ca, "no CA certificate found"));
        }
        Ok(tls)
    }

    /// Certificate chain and key from PEM files, no trust anchors: for an endpoint that
    /// accepts without asking for peer certificates, or a client that only presents one
    /// (set [`mutual`](Self::mutual); add `roots` to verify the server too).
    pub fn from_pem_cert_key(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        use rustls::pki_types::pem::PemObject;
        let cert_chain = read_certs(cert)?;
        if cert_chain.is_empty() {
            return Err(pem_error(cert, "no certificate found"));
        }
        let key_der = PrivateKeyDer::from_pem_slice(&read_file(key)?)
            .map_err(|e| pem_error(key, &e.to_string()))?;
        Ok(TlsConfig {
            cert_chain,
            key: Arc::new(key_der),
            roots: Vec::new(),
            skip_server_verification: false,
            mutual: false,
        })
    }

    /// ring with Go's TLS 1.3 preference (crypto/tls `defaultCipherSuitesTLS13`, what
    /// nats-server negotiates): AES-128-GCM first, then AES-256-GCM, then ChaCha20-Poly1305.
    /// rustls' default puts AES-256 first, which costs 14 AES rounds per block instead of 10
    /// on every QUIC packet for no security a 128-bit key lacks here.
    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        use rustls::crypto::ring::cipher_suite as cs;
        Arc::new(rustls::crypto::CryptoProvider {
            cipher_suites: vec![
                cs::TLS13_AES_128_GCM_SHA256,
                cs::TLS13_AES_256_GCM_SHA384,
                cs::TLS13_CHACHA20_POLY1305_SHA256,
            ],
            ..rustls::crypto::ring::default_provider()
        })
    }

    /// `roots` as a rustls trust store.
    pub fn root_store(&self) -> Result<Arc<rustls::RootCertStore>, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for r in &self.roots {
            roots.add(r.clone())?;
        }
        Ok(Arc::new(roots))
    }

    /// quinn server configuration from this TLS material (TLS 1.3 only, given ALPNs); with
    /// [`mutual`](Self::mutual), peers without a certificate from
    /// `roots` fail the handshake.
    pub fn server_config(&self, alpn: &[Vec<u8>]) -> Result<quinn::ServerConfig, TlsError> {
        let builder = rustls::ServerConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let builder = if self.mutual {
            if self.roots.is_empty() {
                return Err(TlsError::NoClientRoots);
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                self.root_store()?,
                Self::provider(),
            )
            .build()
            .map_err(|e| TlsError::Quic(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let mut tls = builder.with_single_cert(self.cert_chain.clone(), self.key.clone_key())?;
        tls.alpn_protocols = alpn.to_vec();
        let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        Ok(quinn::ServerConfig::with_crypto(Arc::new(quic)))
    }

    /// quinn client crypto from this TLS material (roots, or no verification if asked).
    pub fn client_crypto(
        &self,
        alpn: &[Vec<u8>],
    ) -> Result<Arc<quinn::crypto::rustls::QuicClientConfig>, TlsError> {
        let builder = rustls::ClientConfig::builder_with_provider(Self::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?;
        let builder = if self.skip_server_verification {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoServerVerification(Self::provider())))
        } else {
            builder.with_root_certificates(self.root_store()?)
        };
        let mut tls = if self.mutual {
            builder.with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())?
        } else {
            builder.with_no_client_auth()
        };
        tls.alpn_protocols = alpn.to_vec();
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| TlsError::Quic(e.to_string()))?;
        Ok(Arc::new(quic))
    }
}

/// Whether a QUIC handshake failed in TLS (a certificate the peer or we refused, no shared
/// cipher suite, …): QUIC carries TLS alerts as transport error codes 0x100–0x1ff
/// (RFC 9001 §4.8), raised locally or received in the peer's CONNECTION_CLOSE.
pub fn is_tls_failure(e: &quinn::ConnectionError) -> bool {
    tls_alert(e).is_some()
}

/// The TLS alert a QUIC handshake or connection failed with (error code 0x100 + alert,
/// RFC 9001 §4.8), raised locally or received from the peer.
pub fn tls_alert(e: &quinn::ConnectionError) -> Option<u8> {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => t.code,
        quinn::ConnectionError::ConnectionClosed(c) => c.error_code,
        _ => return None,
    };
    u64::from(code)
        .checked_sub(0x100)
        .and_then(|a| u8::try_from(a).ok())
}

/// Encrypts without authenticating the server (signatures are still checked, so the key
/// exchange is bound to the presented certificate).
#[derive(Debug)]
struct NoServerVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Everything [`ScionEndpoint::bind`] needs.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Our SCION address. Its ISD-AS must be the daemon's AS; port 0 picks a free port in
    /// the AS's dispatched range.
    pub local: ScionAddr,
    /// Daemon address; None = `SCION_DAEMON_ADDRESS` or 127.0.0.1:30255.
    pub daemon: Option<String>,
    /// topology.json of the local AS (for `dispatched_ports` and MTU).
    pub topology: Option<PathBuf>,
    /// Preference, policy, probe timing, redundancy.
    pub selector: SelectorConfig,
    pub tls: TlsConfig,
    pub alpn: Vec<Vec<u8>>,
    pub keep_alive: Duration,
    pub idle_timeout: Duration,
    /// Accept incoming connections (server role) as well as dialing.
    pub accept: bool,
    /// QUIC flow-control window per stream and per connection, in bytes: the most data one
    /// connection keeps in flight. See [`DEFAULT_FLOW_WINDOW`].
    pub flow_window: u32,
    /// Where `local` came from (a config key such as `cluster.listen`), named in warnings.
    pub origin: Option<String>,
    /// Secret the QUIC stateless-reset and connection-id keys are derived from (with the
    /// bound address).
    /// None = this machine's `/etc/machine-id`, so a broker restarted on the same address
    /// can reset the connections its previous process left behind (see [`endpoint_keys`]).
    pub reset_secret: Option<Vec<u8>>,
}

/// Default [`TransportConfig::flow_window`]: 4 MiB, about what Linux TCP autotunes a loopback
/// or LAN connection to.
///
/// The window bounds one connection to about window / RTT. 384 KiB (tried first, to keep a
/// flood from overfilling the emulator's 200 ms drop-tail queues on slow links) held a broker
/// route over a 1 ms-per-link emulated path to 67k 1 KiB msgs/s, because a flood's own
/// queueing raises the RTT; 4 MiB gave 210k msgs/s in the same run (`scion_bench --sizes 1024`),
/// and a flood over 24 Mbit/s links still keeps the route and every message
/// (broker `flood_over_slow_scion_route_keeps_route_and_messages`). Lower it to bound queueing
/// on slow paths; raise it for long fat paths (each MiB of window carries ~80 Mbit/s at 100 ms RTT).
pub const DEFAULT_FLOW_WINDOW: u32 = 4 * 1024 * 1024;

impl TransportConfig {
    /// Defaults for everything but the address and TLS.
    pub fn new(local: ScionAddr, tls: TlsConfig) -> Self {
        TransportConfig {
            local,
            daemon: None,
            topology: None,
            selector: SelectorConfig::default(),
            tls,
            alpn: vec![DEFAULT_ALPN.to_vec()],
            keep_alive: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(30),
            accept: true,
            flow_window: DEFAULT_FLOW_WINDOW,
            origin: None,
            reset_secret: None,
        }
    }
}

/// Errors of [`ScionEndpoint::bind`].
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Topology(#[from] TopologyFileError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("local address {local} is in {local_ia} but the SCION daemon serves {daemon_ia}")]
    WrongAs {
        local: ScionAddr,
        local_ia: crate::address::IsdAsn,
        daemon_ia: crate::address::IsdAsn,
    },
    #[error("local address {local} is in {local_ia} but topology.json is for {file_ia}")]
    WrongTopologyAs {
        local: ScionAddr,
        local_ia: crate::address::IsdAsn,
        file_ia: crate::address::IsdAsn,
    },
    #[error("local address {0}: SCION packets carry the host address, so it must be a concrete IP (not 0.0.0.0 or ::)")]
    UnspecifiedIp(ScionAddr),
    #[error("cannot bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("no free UDP port in the dispatched range {0}-{1}")]
    NoFreePort(u16, u16),
    #[error("invalid selector configuration: {0}")]
    Selector(#[from] crate::path::SelectorConfigError),
    #[error("QUIC endpoint: {0}")]
    Quic(io::Error),
}

/// Errors of [`ScionEndpoint::connect`].
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("QUIC connect to {remote}: {source}")]
    Start {
        remote: ScionAddr,
        source: quinn::ConnectError,
    },
    #[error("QUIC handshake with {remote}: {source}")]
    Handshake {
        remote: ScionAddr,
        source: quinn::ConnectionError,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// quinn's view of a [`ScionSocket`]; `.1` is the largest datagram quinn is told we take
/// ([`receive_limit`]).
#[derive(Debug)]
struct QuicSocket(Arc<ScionSocket>, u16);

/// Bytes of one quinn receive slot: quinn reserves `max_udp_payload_size ×
/// max_receive_segments × BATCH_SIZE` up front, so the segment count shrinks as the datagram
/// limit grows (64 segments of 1472 B; 10 of 8928 B), keeping that reservation near 3 MB per
/// endpoint whatever the AS MTU.
const RECV_SLOT_BYTES: usize = 64 * 1472;

/// Segments per receive slot for datagrams of up to `limit` bytes, at most `gro`.
fn receive_segments(limit: u16, gro: usize) -> usize {
    (RECV_SLOT_BYTES / usize::from(limit).max(1)).clamp(1, gro.max(1))
}

/// Writability future of one connection's poller.
type Writable = Pin<Box<dyn std::future::Future<Output = io::Result<()>> + Send + Sync>>;

/// One connection's wait for the socket to take datagrams again. Each poller waits on its
/// own future, as quinn asks (`UdpPoller`): `poll_send_ready` keeps only the waker of its
/// latest caller, so of several connections that met WouldBlock only one was woken.
struct Poller {
    socket: Arc<ScionSocket>,
    wait: Option<Writable>,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

impl UdpPoller for Poller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wait = this.wait.get_or_insert_with(|| {
            let socket = this.socket.clone();
            Box::pin(async move { socket.writable().await })
        });
        let res = wait.as_mut().poll(cx);
        if res.is_ready() {
            this.wait = None;
        }
        res
    }
}

impl AsyncUdpSocket for QuicSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Poller {
            socket: self.0.clone(),
            wait: None,
        })
    }

    fn try_send(&self, transmit: &Transmit) -> io::Result<()> {
        self.0.send_transmit(transmit)
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_recv_batch(cx, bufs, meta)
    }

    /// GSO: each QUIC segment becomes one SCION datagram of one `sendmsg` (1 without
    /// kernel support). MTU discovery stays capped per segment (see `transport_config`).
    fn max_transmit_segments(&self) -> usize {
        self.0.max_transmit_segments()
    }

    /// GRO: how many datagrams one receive slot may carry (1 without kernel support; fewer
    /// for jumbo datagrams, see [`RECV_SLOT_BYTES`]).
    fn max_receive_segments(&self) -> usize {
        receive_segments(self.1, self.0.max_receive_segments())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0xfd5c, 0x0010, 0, 0, 0, 0, 0, 0)),
            self.0.local().port,
        ))
    }

    fn may_fragment(&self) -> bool {
        false
    }
}

/// A QUIC endpoint on a SCION address: dials and accepts path-aware connections.
pub struct ScionEndpoint {
    socket: Arc<ScionSocket>,
    endpoint: quinn::Endpoint,
    config: TransportConfig,
    /// TLS part of the server configuration; each accepted connection gets a copy with its
    /// own transport parameters (the packet size depends on the peer's path).
    server_config: Option<quinn::ServerConfig>,
    local_mtu: u16,
    driver: tokio::task::JoinHandle<()>,
}

/// An incoming connection attempt (from [`ScionEndpoint::accept`]). Awaiting it accepts the
/// connection with QUIC packets sized for the peer's paths.
pub struct ScionIncoming {
    incoming: quinn::Incoming,
    socket: Arc<ScionSocket>,
    server_config: quinn::ServerConfig,
    config: TransportConfig,
    local_mtu: u16,
}

impl std::fmt::Debug for ScionIncoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScionIncoming")
            .field("remote", &self.remote())
            .finish_non_exhaustive()
    }
}

impl ScionIncoming {
    /// The SCION address of the dialing peer.
    pub fn remote(&self) -> Option<ScionAddr> {
        self.socket.remote_of(self.incoming.remote_address())
    }

    /// Rejects the attempt (the peer sees CONNECTION_REFUSED).
    pub fn refuse(self) {
        self.incoming.refuse();
    }

    /// Accepts the connection and completes the handshake.
    ///
    /// The acceptor learns the peer's paths here (the daemon lookup the socket started on
    /// the first packet, waited for at most [`ACCEPT_PATH_WAIT`]), so its packets can be as
    /// large as the dialer's: the smallest path MTU minus the real SCION/UDP header of each
    /// usable path, else the local MTU minus the reply path's header. quinn's MTU discovery
    /// still only grows packets that the path acknowledges.
    pub async fn accept(self) -> Result<quinn::Connection, quinn::ConnectionError> {
        let remote = self.remote();
        if let Some(remote) = remote {
            if remote.ia != self.socket.local().ia && !self.socket.has_active_path(remote) {
                match tokio::time::timeout(ACCEPT_PATH_WAIT, self.socket.load_paths(remote, false))
                    .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => debug!(%remote, error = %e, "no paths to a dialing peer yet"),
                    Err(_) => debug!(%remote, "path lookup for a dialing peer still running"),
                }
            }
        }
        // Our scion.policy (and the MTU bound) hold for the accepting side too: when it
        // leaves none of our paths to the peer, the reverse of the peer's path, which we would
        // answer over instead, is refused rather than used against it.
        if let Some(remote) = remote {
            if let Some(reasons) = self.socket.every_path_filtered(remote) {
                let line = format!(
                    "refusing the SCION connection from {remote}: every path to it is filtered ({}), and the reverse of its own path is not used instead",
                    reasons.join("; ")
                );
                if self.socket.first_refusal(remote) {
                    warn!("{line}");
                } else {
                    debug!("{line}");
                }
                self.incoming.refuse();
                return Err(quinn::ConnectionError::LocallyClosed);
            }
        }
        if let Some(remote) = remote {
            self.socket.wake_for_dial(remote);
        }
        let budget = remote
            .and_then(|r| self.socket.hold_link_payload(r, self.local_mtu))
            .unwrap_or(self.local_mtu.saturating_sub(WORST_HEADER_BUDGET));
        let mut server_config = self.server_config;
        server_config.transport_config(Arc::new(transport_config(&self.config, budget)));
        self.incoming.accept_with(Arc::new(server_config))?.await
    }
}

impl std::future::IntoFuture for ScionIncoming {
    type Output = Result<quinn::Connection, quinn::ConnectionError>;
    type IntoFuture = Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.accept())
    }
}

impl Drop for ScionEndpoint {
    fn drop(&mut self) {
        self.socket.stop_coalescing();
        self.driver.abort();
    }
}

/// Files holding this machine's id (systemd, then D-Bus).
const MACHINE_ID_FILES: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

/// The keys of an endpoint that must outlive its process: the stateless-reset key and the
/// key connection ids are signed with.
pub struct EndpointKeys {
    pub reset: Arc<dyn quinn::crypto::HmacKey>,
    pub cid: u64,
}

/// The QUIC endpoint keys for `local`: derived (HMAC-SHA256) from the address under
/// `secret` (the broker passes the link's TLS private key when one is configured), or under
/// this machine's id (the app-specific use systemd recommends for it). The machine id is
/// readable by every local user and often shared by cloned images or bind-mounted into
/// containers: whoever knows it and can send packets from the peer's address can reset the
/// connections. Configure TLS for links that need more.
///
/// Stable keys let a process restarted on the same SCION address answer the packets of
/// connections its predecessor left behind (SIGKILL, crash) with a stateless reset the peer
/// accepts (RFC 9000 §10.3): the peer's route or client link closes within a round trip
/// and is re-dialled, as a TCP peer sees a reset from a restarted nats-server, instead of
/// sending into a dead connection until the idle timeout (30 s for routes). quinn's
/// defaults are random per process: its connection ids carry a keyed hash, so a new
/// process drops the old ids as invalid instead of resetting them, and its reset tokens
/// would not match anyway. Without a machine id the keys are random (and a restart falls
/// back to the idle timeout).
pub fn endpoint_keys(local: &ScionAddr, secret: Option<&[u8]>) -> EndpointKeys {
    use ring::hmac;
    // An empty file or systemd's first-boot "uninitialized" is no id: try the next.
    let from_file = || {
        MACHINE_ID_FILES.iter().find_map(|f| {
            let id = std::fs::read_to_string(f).ok()?;
            let id = id.trim();
            (!id.is_empty() && id != "uninitialized").then(|| id.as_bytes().to_vec())
        })
    };
    let mut derived = [0u8; 32];
    match secret.map(<[u8]>::to_vec).or_else(from_file) {
        Some(secret) => {
            let outer = hmac::Key::new(hmac::HMAC_SHA256, &secret);
            let mut msg = b"nats-scion QUIC endpoint keys v1\0".to_vec();
            msg.extend_from_slice(local.to_string().as_bytes());
            derived.copy_from_slice(hmac::sign(&outer, &msg).as_ref());
        }
        None => {
            debug!("no machine id: QUIC stateless resets will not survive a restart");
            rand::fill(&mut derived);
        }
    }
    let base = hmac::Key::new(hmac::HMAC_SHA256, &derived);
    let reset = hmac::sign(&base, b"stateless reset");
    let cid = hmac::sign(&base, b"connection id");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&cid.as_ref()[..8]);
    EndpointKeys {
        reset: Arc::new(hmac::Key::new(hmac::HMAC_SHA256, reset.as_ref())),
        cid: u64::from_be_bytes(cid_key),
    }
}

/// `max_udp_payload_size` for an AS with MTU `local_mtu`: what is left after the smallest
/// SCION/UDP header, within quinn's accepted range.
fn receive_limit(local_mtu: u16) -> u16 {
    local_mtu
        .saturating_sub(LEAST_HEADER)
        .clamp(QUIC_MIN_DATAGRAM, 65_527)
}

fn transport_config(config: &TransportConfig, max_payload: u16) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.initial_mtu(QUIC_MIN_DATAGRAM);
    t.min_mtu(QUIC_MIN_DATAGRAM);
    let mut mtud = quinn::MtuDiscoveryConfig::default();
    mtud.upper_bound(max_payload.max(QUIC_MIN_DATAGRAM));
    t.mtu_discovery_config(Some(mtud));
    t.stream_receive_window(quinn::VarInt::from_u32(config.flow_window));
    t.receive_window(quinn::VarInt::from_u32(config.flow_window));
    t.keep_alive_interval(Some(config.keep_alive));
    if let Ok(idle) = quinn::IdleTimeout::try_from(config.idle_timeout) {
        t.max_idle_timeout(Some(idle));
    }
    t
}

impl ScionEndpoint {
    /// Connects to the daemon, checks the local AS, binds the UDP socket and starts QUIC.
    pub async fn bind(mut config: TransportConfig) -> Result<Self, BindError> {
        // Header size estimate for the MTU filter: both hosts in our address family.
        config.selector.host_addr_bytes = 2 * crate::wire::host_addr_len(config.local.ip) as u16;
        config.selector.validate()?;
        if config.local.ip.is_unspecified() {
            return Err(BindError::UnspecifiedIp(config.local));
        }
        let topo = match &config.topology {
            Some(p) => Some(LocalTopology::load(p)?),
            None => None,
        };
        if let Some(t) = &topo {
            if t.ia != config.local.ia {
                return Err(BindError::WrongTopologyAs {
                    local: config.local,
                    local_ia: config.local.ia,
                    file_ia: t.ia,
                });
            }
        }
        let daemon_addr = resolve_daemon_address(config.daemon.as_deref());
        let daemon = DaemonClient::connect(&daemon_addr).await?;
        let as_info = daemon.local_as().await?;
        if as_info.ia != config.local.ia {
            return Err(BindError::WrongAs {
                local: config.local,
                local_ia: config.local.ia,
                daemon_ia: as_info.ia,
            });
        }
        // The dispatched range from topology.json, else from the daemon (`PortRange`; None
        // from a daemon too old to have the call).
        let range = match topo.as_ref().map(|t| t.dispatched_ports) {
            Some(range) => Some(range),
            None => daemon.port_range().await?,
        };
        if range.is_none() {
            warn!(
                "the SCION daemon at {daemon_addr} has no PortRange call (scionproto before v0.12?) and no topology file names dispatched_ports: assuming {DEFAULT_DISPATCHED_PORTS}. This is a dispatcherless end host: in an AS that still runs a dispatcher nothing reaches it"
            );
        }
        let udp = bind_udp(config.local, range).await?;
        let port = udp
            .local_addr()
            .map_err(|source| BindError::Bind {
                addr: SocketAddr::new(config.local.ip, config.local.port),
                source,
            })?
            .port();
        let local = ScionAddr {
            port,
            ..config.local
        };
        if let Some(line) = port_range_warning(&local, range, config.origin.as_deref()) {
            warn!("{line}");
        }
        let local_mtu = topo.as_ref().and_then(|t| t.mtu).unwrap_or(as_info.mtu);
        // Which border router serves each interface: needed to answer packets that a shim
        // dispatcher hands over (ports outside the dispatched range).
        let mut interface_addrs = topo
            .as_ref()
            .map(LocalTopology::interface_addrs)
            .unwrap_or_default();
        if interface_addrs.is_empty() {
            match daemon.interfaces().await {
                Ok(map) => interface_addrs = map,
                Err(e) => debug!(error = %e, "no interface addresses from the SCION daemon"),
            }
        }
        let behind_shim = range.is_some_and(|r| !r.contains(port));
        if behind_shim && interface_addrs.is_empty() {
            warn!(
                "SCION port {port} of {local} comes through a shim dispatcher, but neither a topology file nor the daemon names the border routers' addresses: packets that arrive through the shim cannot be answered"
            );
        }
        let socket = Arc::new(
            ScionSocket::new(udp, local, config.selector.clone(), Some(daemon)).map_err(
                |source| BindError::Bind {
                    addr: SocketAddr::new(local.ip, local.port),
                    source,
                },
            )?,
        );
        socket.set_interface_addrs(interface_addrs);
        let server_config = if config.accept {
            // The endpoint-wide transport parameters only apply to connections accepted
            // without `ScionIncoming` (none are); each accept sets its own.
            let mut sc = config.tls.server_config(&config.alpn)?;
            sc.transport_config(Arc::new(transport_config(
                &config,
                local_mtu.saturating_sub(WORST_HEADER_BUDGET),
            )));
            Some(sc)
        } else {
            None
        };
        // No fixed-bit greasing toward us (RFC 9287): with it half of the peer's packets have
        // the 0x40 bit cleared, which the probe demultiplexer must then tell apart by size.
        let keys = endpoint_keys(&local, config.reset_secret.as_deref());
        let mut endpoint_config = quinn::EndpointConfig::new(keys.reset);
        let cid_key = keys.cid;
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        endpoint_config.grease_quic_bit(false);
        // The largest QUIC datagram that can reach us is bounded by our AS's MTU, not by
        // quinn's Ethernet-sized default (1472): advertise it (RFC 9000 §18.2
        // max_udp_payload_size), or the peer's MTU discovery stops at 1472 on jumbo paths.
        let limit = receive_limit(local_mtu);
        endpoint_config
            .max_udp_payload_size(limit)
            .map_err(|e| BindError::Quic(io::Error::other(e)))?;
        let endpoint = quinn::Endpoint::new_with_abstract_socket(
            endpoint_config,
            server_config.clone(),
            Arc::new(QuicSocket(socket.clone(), limit)),
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(BindError::Quic)?;
        let driver = tokio::spawn(socket.clone().run_driver());
        info!(%local, daemon = %daemon_addr, mtu = local_mtu, "SCION/QUIC endpoint bound");
        Ok(ScionEndpoint {
            socket,
            endpoint,
            config,
            server_config,
            local_mtu,
            driver,
        })
    }

    /// Our SCION address (with the port actually bound).
    pub fn local_addr(&self) -> ScionAddr {
        self.socket.local()
    }

    /// Dials `remote`: loads paths from the daemon, picks one, and runs the QUIC handshake.
    pub async fn connect(
        &self,
        remote: ScionAddr,
        server_name: &str,
    ) -> Result<quinn::Connection, ConnectError> {
        self.socket.wake_for_dial(remote);
        // Paths already known (an earlier connection, or static paths) are reused.
        if !self.socket.has_active_path(remote) {
            self.socket.load_paths(remote, false).await?;
        }
        let synthetic = self.socket.synthetic_for(remote)?;
        let budget = self
            .socket
            .hold_link_payload(remote, self.local_mtu)
            .unwrap_or(self.local_mtu.saturating_sub(WORST_HEADER_BUDGET));
        let mut client =
            quinn::ClientConfig::new(self.config.tls.client_crypto(&self.config.alpn)?);
        client.transport_config(Arc::new(transport_config(&self.config, budget)));
        let connecting = self
            .endpoint
            .connect_with(client, synthetic, server_name)
            .map_err(|source| ConnectError::Start { remote, source })?;
        connecting
            .await
            .map_err(|source| ConnectError::Handshake { remote, source })
    }

    /// Uses `paths` for `remote` instead of asking the daemon (tests, pinned deployments).
    /// Returns how many of them the selector can use.
    pub fn set_static_paths(
        &self,
        remote: ScionAddr,
        paths: Vec<crate::wire::ScionPath>,
    ) -> Result<usize, PathError> {
        self.socket.install_paths(remote, paths)
    }

    /// Waits for the next incoming connection attempt (None once the endpoint is closed).
    /// Await the result to accept it.
    pub async fn accept(&self) -> Option<ScionIncoming> {
        loop {
            let incoming = self.endpoint.accept().await?;
            // quinn yields incoming connections only to an endpoint with a server
            // configuration, so this refusal is a safety net.
            let Some(server_config) = self.server_config.clone() else {
                incoming.refuse();
                continue;
            };
            return Some(ScionIncoming {
                incoming,
                socket: self.socket.clone(),
                server_config,
                config: self.config.clone(),
                local_mtu: self.local_mtu,
            });
        }
    }

    /// Asks the daemon for paths to `remote` (as a dial does first) and returns how many the
    /// selector can use: not filtered by policy or MTU (0 for a peer in the local AS, which
    /// needs none). The peer is left released: nothing is probed until a link uses it.
    pub async fn load_paths(&self, remote: ScionAddr) -> Result<usize, PathError> {
        let res = self.socket.load_paths(remote, false).await;
        drop(self.socket.hold(remote));
        res?;
        Ok(self
            .socket
            .path_stats(remote)
            .iter()
            .filter(|c| c.rank.is_some())
            .count())
    }

    /// Marks `remote` as used by a link until the hold is dropped: its paths are probed until
    /// then, and not after (see [`crate::socket::PeerHold`]).
    pub fn hold(&self, remote: ScionAddr) -> crate::socket::PeerHold {
        self.socket.hold(remote)
    }

    /// The SCION address of a connection's peer.
    pub fn remote_of(&self, connection: &quinn::Connection) -> Option<ScionAddr> {
        self.socket.remote_of(connection.remote_address())
    }

    /// Candidate paths to `remote` with metadata, measured RTT, loss, state and rank.
    pub fn path_stats(&self, remote: ScionAddr) -> Vec<CandidateView> {
        self.socket.path_stats(remote)
    }

    /// Why the active path toward `remote` is active: the preference key that decided against
    /// the runner-up, "only usable path", or "kept: within hysteresis of …".
    pub fn why_active(&self, remote: ScionAddr) -> Option<String> {
        self.socket.why_active(remote)
    }

    /// The UDP payload size held for the links to `remote`: paths carrying less rank last.
    pub fn held_link_payload(&self, remote: ScionAddr) -> Option<usize> {
        self.socket.held_link_payload(remote)
    }

    /// Stretches with every usable path toward `remote` down.
    pub fn outage_stats(&self, remote: ScionAddr) -> crate::socket::OutageStats {
        self.socket.outage_stats(remote)
    }

    /// QUIC datagrams sent so far, and the `sendmsg` calls that carried them.
    pub fn send_stats(&self) -> crate::socket::SendStats {
        self.socket.send_stats()
    }

    /// Number of path switches toward `remote`.
    pub fn switch_count(&self, remote: ScionAddr) -> u64 {
        self.socket.switch_count(remote)
    }

    /// Path switches toward `remote` by cause (`scmp-down`, `probe-loss`, `better`, …).
    pub fn switch_counts(&self, remote: ScionAddr) -> Vec<(crate::path::SwitchCause, u64)> {
        self.socket.switch_counts(remote)
    }

    /// Path switch events (cause, gap, new hops) for logs and metrics.
    pub fn path_events(&self) -> tokio::sync::broadcast::Receiver<PathEvent> {
        self.socket.subscribe()
    }

    /// The underlying quinn endpoint (for `close`, `wait_idle`, stats).
    pub fn quinn(&self) -> &quinn::Endpoint {
        &self.endpoint
    }
}

/// Socket buffer size asked for (the kernel caps it at `net.core.{r,w}mem_max`): SCION
/// decoding costs more per datagram than plain UDP, so bursts need room to queue.
pub const UDP_BUFFER_BYTES: usize = 4 << 20;

/// Binds a UDP socket with large buffers.
pub fn bind_udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let sock = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: a smaller buffer only costs throughput.
    let _ = sock.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = sock.set_send_buffer_size(UDP_BUFFER_BYTES);
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

/// Binds the UDP socket; port 0 means "a free port in the dispatched range" (the default
/// range when unknown; any free port when the AS dispatches none).
async fn bind_udp(
    local: ScionAddr,
    range: Option<DispatchedPorts>,
) -> Result<UdpSocket, BindError> {
    let (lo, hi) = match (local.port, range.unwrap_or(DEFAULT_DISPATCHED_PORTS)) {
        (0, DispatchedPorts::Range(lo, hi)) => (lo, hi),
        _ => {
            let addr = SocketAddr::new(local.ip, local.port);
            return bind_udp_socket(addr).map_err(|source| BindError::Bind { addr, source });
        }
    };
    // Start at a random offset so parallel endpoints do not race for the same ports.
    let span = (hi - lo) as u32 + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span.min(2048) {
        let port = lo + ((start + i) % span) as u16;
        if let Ok(sock) = bind_udp_socket(SocketAddr::new(local.ip, port)) {
            return Ok(sock);
        }
    }
    Err(BindError::NoFreePort(lo, hi))
}

/// scionproto's default `dispatched_ports` (topology.json), assumed when neither the topology
/// file nor the daemon tells the AS's real range.
const DEFAULT_DISPATCHED_PORTS: DispatchedPorts = DispatchedPorts::Range(31000, 32767);

/// The one warning for a local port the border router will not deliver to: routers of a
/// dispatcherless AS send packets for ports outside `dispatched_ports` to 30041, where only
/// a shim dispatcher listens.
pub fn port_range_warning(
    local: &ScionAddr,
    known: Option<DispatchedPorts>,
    origin: Option<&str>,
) -> Option<String> {
    let (range, whose) = match known {
        Some(r) => (r, "the AS's"),
        None => (DEFAULT_DISPATCHED_PORTS, "the default (AS range unknown)"),
    };
    if range.contains(local.port) {
        return None;
    }
    let origin = origin.map(|k| format!(" ({k})")).unwrap_or_default();
    let outside = match range {
        DispatchedPorts::Range(lo, hi) => format!("is outside {whose} dispatched range {lo}-{hi}"),
        DispatchedPorts::Nothing => "is not dispatched (the AS's dispatched_ports is empty)".into(),
    };
    Some(format!(
        "SCION port {} of {}{} {}: border routers will deliver to port 30041, so a shim dispatcher is needed",
        local.port, local, origin, outside
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_are_stable_per_secret_and_address() {
        let a: ScionAddr = "1-ff00:0:110,127.0.0.1:31000".parse().expect("addr");
        let b: ScionAddr = "1-ff00:0:110,127.0.0.1:31001".parse().expect("addr");
        let sig = |k: EndpointKeys| {
            let mut out = vec![0u8; k.reset.signature_len()];
            k.reset.sign(b"connection id", &mut out);
            (out, k.cid)
        };
        let first = sig(endpoint_keys(&a, Some(b"secret")));
        assert_eq!(first, sig(endpoint_keys(&a, Some(b"secret"))), "a restart");
        let other = sig(endpoint_keys(&b, Some(b"secret")));
        assert!(first.0 != other.0 && first.1 != other.1, "another address");
        let other = sig(endpoint_keys(&a, Some(b"other")));
        assert!(first.0 != other.0 && first.1 != other.1, "another secret");
        // The machine id where there is one (as on every systemd host), else random.
        let machine = sig(endpoint_keys(&a, None));
        let has_id = MACHINE_ID_FILES.iter().any(|f| {
            std::fs::read_to_string(f)
                .is_ok_and(|s| !s.trim().is_empty() && s.trim() != "uninitialized")
        });
        assert_eq!(machine == sig(endpoint_keys(&a, None)), has_id);
    }

    #[test]
    fn tls_prefers_aes_128_gcm_like_go() {
        let suites: Vec<_> = TlsConfig::provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(
            suites,
            [
                rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
                rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
                rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            ]
        );
    }

    #[test]
    fn receive_limit_follows_the_as_mtu() {
        assert_eq!(receive_limit(1472), 1428);
        assert_eq!(receive_limit(8972), 8928);
        assert_eq!(receive_limit(1280), 1236);
        // Never below QUIC's minimum datagram (a too-small MTU is refused elsewhere).
        assert_eq!(receive_limit(1000), QUIC_MIN_DATAGRAM);
        assert_eq!(receive_limit(u16::MAX), 65_491);
    }

    #[test]
    fn receive_slots_stay_near_the_1472_byte_budget() {
        // quinn reserves limit × segments × 32 slots per endpoint.
        assert_eq!(receive_segments(receive_limit(1472), 64), 64);
        assert_eq!(receive_segments(receive_limit(8972), 64), 10);
        assert_eq!(receive_segments(receive_limit(u16::MAX), 64), 1);
        // Never more than the kernel's GRO allows, never zero.
        assert_eq!(receive_segments(1200, 1), 1);
        assert_eq!(receive_segments(1200, 0), 1);
        for mtu in [1280u16, 1472, 9000, 65_535] {
            let l = receive_limit(mtu);
            assert!(usize::from(l) * receive_segments(l, 64) <= 2 * RECV_SLOT_BYTES);
        }
    }

    fn at(port: u16) -> ScionAddr {
        ScionAddr {
            ia: "1-ff00:0:111".parse().unwrap(),
            ip: "127.0.0.1".parse().unwrap(),
            port,
        }
    }

    #[test]
    fn port_range_warning_uses_known_range_else_default() {
        assert_eq!(
            port_range_warning(&at(31500), Some(DispatchedPorts::Range(31000, 32767)), None),
            None
        );
        assert_eq!(port_range_warning(&at(31500), None, None), None);
        let w = port_range_warning(&at(40000), Some(DispatchedPorts::Range(30000, 30999)), None)
            .unwrap();
        assert!(
            w.contains("outside the AS's dispatched range 30000-30999"),
            "{w}"
        );
        let w = port_range_warning(&at(40000), None, None).unwrap();
        assert!(
            w.contains("range unknown) dispatched range 31000-32767"),
            "{w}"
        );
        assert!(w.starts_with("SCION port 40000 of "), "{w}");
        // The config key that set the address is named.
        let w = port_range_warning(&at(40000), None, Some("cluster.listen")).unwrap();
        assert!(w.contains(":40000 (cluster.listen) is outside"), "{w}");
        // An AS that dispatches no port (scionproto: dispatched_ports absent or "-").
        let w = port_range_warning(&at(31500), Some(DispatchedPorts::Nothing), None).unwrap();
        assert!(w.contains("is not dispatched"), "{w}");
        assert!(w.ends_with("so a shim dispatcher is needed"), "{w}");
    }
}
