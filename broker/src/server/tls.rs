//! TLS over TCP: client TLS on the client port (top-level `tls { cert_file, key_file,
//! ca_file, verify, timeout }`) and route TLS on TCP route links (`cluster { tls {...} }`;
//! SCION route links carry cluster TLS in QUIC instead, server/scion.rs).
//!
//! Client TLS as nats-server 2.9.10 runs it (server.go createClient, client.go
//! doTLSHandshake): the INFO goes out in clear text with `tls_required`, then the client
//! starts the TLS handshake, bounded by `tls.timeout` (2 s by default). With
//! `allow_non_tls`, a client whose first byte is not a TLS handshake record stays in clear
//! text.
//!
//! TLS 1.2 and 1.3, with Go's preferences: AES-128-GCM first (crypto/tls
//! `defaultCipherSuitesTLS13`, nats-server `defaultCipherSuites` for 1.2: ECDHE with
//! AES-128-GCM, ChaCha20-Poly1305, AES-256-GCM), X25519 before the NIST curves.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring::{cipher_suite as cs, default_provider};
use rustls::crypto::CryptoProvider;
use scion_transport::quic::TlsConfig;

use crate::options::Options;

/// What the TCP accept path needs to serve TLS clients, built from the options at start
/// and on reload.
pub struct ClientTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    /// Handshake bound (`tls.timeout`).
    pub timeout: Duration,
    /// `allow_non_tls`: clear-text clients are served too.
    pub allow_non_tls: bool,
    /// `verify`: client certificates are required.
    pub verify: bool,
    /// The https monitoring port's acceptor (the same certificate, no client certificates).
    pub monitor: tokio_rustls::TlsAcceptor,
    /// What it was built from (the loaded certificates and key, `verify`), to tell on reload
    /// whether anything changed.
    pub material: Vec<u8>,
}

/// A client INFO's TLS flags (server.go NewServer): `tls_required`, or `tls_available`
/// with `allow_non_tls`; `tls_verify` when client certificates are required. None: no
/// flags (clear text, or a SCION client link).
pub fn set_info_flags(info: &mut crate::proto::json::ServerInfo, tls: Option<&ClientTls>) {
    info.tls_required = tls.is_some_and(|t| !t.allow_non_tls);
    info.tls_available = tls.is_some_and(|t| t.allow_non_tls);
    info.tls_verify = tls.is_some_and(|t| t.verify);
}

/// Route TLS on TCP route links (route.go createRoute, client.go doTLSHandshake): the
/// handshake comes first on both ends, before CONNECT and INFO; both ends verify each other
/// against `ca_file`, as nats-server forces for routes (opts.go parseCluster:
/// RequireAndVerifyClientCert, the CA for both directions); the dialer checks the server
/// certificate against the route URL's host, an IP address against the certificate's IP
/// names.
pub struct RouteTls {
    pub acceptor: tokio_rustls::TlsAcceptor,
    pub connector: tokio_rustls::TlsConnector,
    /// Handshake bound (`cluster.tls.timeout`, nats-server's 2 s by default).
    pub timeout: Duration,
}

/// Route TLS for TCP routes (None without `cluster.tls`).
pub fn route_tls(opts: &Options) -> Result<Option<Arc<RouteTls>>, String> {
    // Also for a SCION cluster: a reload may add a TCP route, and gossip may bring one.
    let Some(t) = &opts.cluster.tls else {
        return Ok(None);
    };
    let (Some(cert), Some(key), Some(ca)) = (&t.cert_file, &t.key_file, &t.ca_file) else {
        return Err("cluster.tls: cert_file, key_file and ca_file are all needed".into());
    };
    let mut m =
        TlsConfig::from_pem_files(cert, key, ca).map_err(|e| format!("cluster.tls: {e}"))?;
    m.mutual = true;
    let server = server_config(&m).map_err(|e| format!("cluster.tls: {e}"))?;
    let client = client_config(&m).map_err(|e| format!("cluster.tls: {e}"))?;
    Ok(Some(Arc::new(RouteTls {
        acceptor: tokio_rustls::TlsAcceptor::from(server),
        connector: tokio_rustls::TlsConnector::from(client),
        timeout: t
            .timeout
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs_f64(crate::options::TLS_TIMEOUT_SECS)),
    })))
}

/// A rustls client configuration for route dialers: the server is verified against
/// `roots`, and our certificate is presented.
fn client_config(m: &TlsConfig) -> Result<Arc<rustls::ClientConfig>, String> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_root_certificates(m.root_store().map_err(|e| e.to_string())?)
        .with_client_auth_cert(m.cert_chain.clone(), m.key.clone_key())
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// ring with Go's cipher suite order for TLS 1.3 and 1.2.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ],
        ..default_provider()
    })
}

/// The client TLS of `opts` (None without a top-level `tls`). The files were loaded and
/// checked when the config was read; an error here means they changed since.
pub fn client_tls(opts: &Options) -> Result<Option<Arc<ClientTls>>, String> {
    let Some(t) = &opts.tls else {
        return Ok(None);
    };
    client_tls_from(t, opts.client_tls_timeout(), opts.allow_non_tls, "tls").map(Some)
}

/// [`client_tls`] for one `tls` block (the client port's, or the websocket port's);
/// `what` starts the error texts.
pub fn client_tls_from(
    t: &crate::options::TlsOpts,
    timeout: Duration,
    allow_non_tls: bool,
    what: &str,
) -> Result<Arc<ClientTls>, String> {
    let (Some(cert), Some(key)) = (&t.cert_file, &t.key_file) else {
        return Err(format!(
            "{what}: cert_file and key_file are needed for client TLS"
        ));
    };
    let mut loaded = match &t.ca_file {
        Some(ca) => TlsConfig::from_pem_files(cert, key, ca),
        None => TlsConfig::from_pem_cert_key(cert, key),
    }
    .map_err(|e| format!("{what}: {e}"))?;
    // The https monitoring port: the same certificate, no client certificates asked for
    // (server.go startMonitoring: `ClientAuth = tls.NoClientCert`).
    let monitor = server_config(&loaded).map_err(|e| format!("{what}: {e}"))?;
    loaded.mutual = t.verify;
    let config = server_config(&loaded).map_err(|e| format!("{what}: {e}"))?;
    // What was loaded, for a reload to compare (nats-server compares the configurations):
    // `verify`, then each certificate and the key, length-prefixed.
    let mut material = vec![u8::from(t.verify)];
    let key = loaded.key.secret_der();
    for der in loaded
        .cert_chain
        .iter()
        .map(|c| c.as_ref())
        .chain(std::iter::once(key))
        .chain(loaded.roots.iter().map(|c| c.as_ref()))
    {
        material.extend_from_slice(&(der.len() as u64).to_be_bytes());
        material.extend_from_slice(der);
    }
    Ok(Arc::new(ClientTls {
        acceptor: tokio_rustls::TlsAcceptor::from(config),
        monitor: tokio_rustls::TlsAcceptor::from(monitor),
        timeout,
        allow_non_tls,
        verify: t.verify,
        material,
    }))
}

/// A rustls server configuration for TCP clients: TLS 1.3 and 1.2; with `mutual`
/// (`verify: true`), a client certificate chaining to `roots` is required, as Go's
/// `tls.RequireAndVerifyClientCert`.
fn server_config(m: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?;
    let builder = if m.mutual {
        let roots = m.root_store().map_err(|e| e.to_string())?;
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| e.to_string())?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(m.cert_chain.clone(), m.key.clone_key())
        .map_err(|e| e.to_string())?;
    // Go's server picks by its own order (AES-128 first on AES hardware), whatever the
    // client prefers.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// server.go tlsTimeout and the handshake's own read deadline, which expire together:
/// nats-server logs both, and traces an -ERR it never sends. `kind` is "" for clients,
/// "route " for routes. The caller logs the close.
pub fn log_handshake_timeout(
    prefix: &str,
    kind: &str,
    local: io::Result<std::net::SocketAddr>,
    peer: std::net::SocketAddr,
) {
    tracing::error!("{} - TLS handshake timeout", prefix);
    super::trace::trace_out_proto(prefix, b"-ERR 'Secure Connection - TLS Required'\r\n");
    let io = match local {
        Ok(l) => format!("read tcp {l}->{peer}: i/o timeout"),
        Err(_) => "i/o timeout".into(),
    };
    tracing::error!("{} - TLS {}handshake error: {}", prefix, kind, io);
}

/// The debug lines after a completed handshake (client.go, route.go): `TLS handshake
/// complete`, then the version and cipher suite; returns those two in Go's words.
pub fn log_established(prefix: &str, conn: &rustls::CommonState) -> Option<(String, String)> {
    tracing::debug!("{} - TLS handshake complete", prefix);
    let version = conn.protocol_version().map(go_version)?;
    let cipher = conn
        .negotiated_cipher_suite()
        .map(|c| go_cipher(c.suite()))?;
    tracing::debug!(
        "{} - TLS version {}, cipher suite {}",
        prefix,
        version,
        cipher
    );
    Some((version, cipher))
}

/// `1.2`, `1.3` (server.go tlsVersion).
pub fn go_version(v: rustls::ProtocolVersion) -> String {
    match v {
        rustls::ProtocolVersion::TLSv1_2 => "1.2".into(),
        rustls::ProtocolVersion::TLSv1_3 => "1.3".into(),
        other => format!("Unknown [0x{:x}]", u16::from(other)),
    }
}

/// Go's name of a cipher suite (server.go tlsCipher, ciphersuites.go cipherMapByID).
pub fn go_cipher(s: rustls::CipherSuite) -> String {
    use rustls::CipherSuite as C;
    let name = match s {
        C::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        C::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        C::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => {
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
        }
        C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        other => return format!("Unknown [0x{:x}]", u16::from(other)),
    };
    name.to_string()
}

/// The text after `TLS handshake error: ` (`TLS route handshake error: `) for a failed
/// handshake. Go's words where the
/// cause is the same (crypto/tls), rustls' otherwise.
/// `server`: we accepted (the peer is a client or a dialing route).
pub fn handshake_error(e: &io::Error, server: bool) -> String {
    use rustls::Error as E;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof => "EOF".into(),
            _ => e.to_string(),
        };
    };
    match tls {
        E::InvalidMessage(rustls::InvalidMessage::InvalidContentType) => {
            "tls: first record does not look like a TLS handshake".into()
        }
        E::NoCertificatesPresented => "tls: client didn't provide a certificate".into(),
        // nats-server 2.9.10 (Go 1.19): the server side says "tls: failed to verify client
        // certificate: x509: …", the dialing side the x509 error alone.
        E::InvalidCertificate(c) => {
            let x509 = match c {
                rustls::CertificateError::UnknownIssuer => {
                    "x509: certificate signed by unknown authority".to_string()
                }
                rustls::CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => format!(
                    "x509: certificate is valid for {}, not {}",
                    presented.join(", "),
                    expected.to_str()
                ),
                rustls::CertificateError::NotValidForName => {
                    "x509: certificate is not valid for the host name".to_string()
                }
                rustls::CertificateError::Expired
                | rustls::CertificateError::ExpiredContext { .. } => {
                    "x509: certificate has expired or is not yet valid".to_string()
                }
                other => format!("x509: {other:?}"),
            };
            if server {
                format!("tls: failed to verify client certificate: {x509}")
            } else {
                x509
            }
        }
        E::PeerIncompatible(rustls::PeerIncompatible::Tls12NotOfferedOrEnabled) => {
            "tls: client offered only unsupported versions".into()
        }
        E::PeerIncompatible(rustls::PeerIncompatible::NoCipherSuitesInCommon) => {
            "tls: no cipher suite supported by both client and server".into()
        }
        E::PeerIncompatible(rustls::PeerIncompatible::NoKxGroupsInCommon) => {
            "tls: no ECDHE curve supported by both client and server".into()
        }
        E::AlertReceived(a) => format!("remote error: tls: {}", alert_words(*a)),
        other => other.to_string(),
    }
}

/// crypto/tls alert texts for the alerts a client sends on a refused server certificate.
fn alert_words(a: rustls::AlertDescription) -> String {
    use rustls::AlertDescription as A;
    match a {
        A::BadCertificate => "bad certificate".into(),
        A::UnknownCA => "unknown certificate authority".into(),
        A::CertificateExpired => "expired certificate".into(),
        A::HandshakeFailure => "handshake failure".into(),
        A::ProtocolVersion => "protocol version not supported".into(),
        A::DecryptError => "error decrypting message".into(),
        other => format!("{other:?}"),
    }
}
