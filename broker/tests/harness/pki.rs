//! Test PKI and log capture, shared by the SCION tests (through `scion_common`) and the
//! client TLS tests (through `harness`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// A certificate authority for tests, issuing PEM certificate/key files.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    /// A fresh self-signed CA named after `tag`.
    pub fn new(tag: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let key = KeyPair::generate().expect("ca key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("test CA {tag}"));
        let pem = params.self_signed(&key).expect("ca cert").pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// The CA certificate in PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Writes the CA certificate to `dir/<name>` and returns the path.
    pub fn write(&self, dir: &std::path::Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.pem).expect("write");
        p
    }

    /// A certificate for the DNS names `sans` signed by this CA (no extended key usage, so
    /// valid for server and client authentication alike), as `dir/<name>-cert.pem` and
    /// `dir/<name>-key.pem`.
    pub fn issue(&self, dir: &std::path::Path, name: &str, sans: &[&str]) -> (PathBuf, PathBuf) {
        self.issue_as(dir, name, sans, None)
    }

    /// [`issue`](Self::issue) with the subject `dn` (rcgen's default subject without it).
    pub fn issue_as(
        &self,
        dir: &std::path::Path,
        name: &str,
        sans: &[&str],
        dn: Option<rcgen::DistinguishedName>,
    ) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        if let Some(dn) = dn {
            params.distinguished_name = dn;
        }
        let cert = params.signed_by(&key, &self.issuer).expect("cert");
        let (c, k) = (
            dir.join(format!("{name}-cert.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).expect("write");
        std::fs::write(&k, key.serialize_pem()).expect("write");
        (c, k)
    }
}

/// Starts capturing everything this test binary logs, with the tracing `filter` (e.g.
/// `"info"`, or `"info,broker=debug"` for the brokers' debug lines). Global and set once per
/// binary: path switches are logged on runtime threads. Read with [`logs`].
pub fn capture_logs(filter: &str) {
    let _ = CAPTURED.get_or_init(|| {
        let buf: &'static std::sync::Mutex<Vec<u8>> =
            Box::leak(Box::new(std::sync::Mutex::new(Vec::new())));
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(move || CaptureWriter(buf))
            .try_init();
        buf
    });
}

static CAPTURED: std::sync::OnceLock<&'static std::sync::Mutex<Vec<u8>>> =
    std::sync::OnceLock::new();

struct CaptureWriter(&'static std::sync::Mutex<Vec<u8>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything captured since [`capture_logs`] (empty before it).
pub fn logs() -> String {
    CAPTURED
        .get()
        .map(|b| String::from_utf8_lossy(&b.lock().unwrap_or_else(|e| e.into_inner())).into_owned())
        .unwrap_or_default()
}

/// A rustls client configuration trusting the CA file `ca`, presenting `cert` (certificate
/// and key files) when given: for raw TLS peers of the broker (HTTPS monitoring, a TLS
/// route peer).
pub fn tls_client_config(
    ca: &Path,
    cert: Option<(&Path, &Path)>,
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&std::fs::read(ca).expect("read CA")) {
        roots.add(c.expect("CA certificate")).expect("add CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots);
    let config = match cert {
        Some((c, k)) => {
            let chain = CertificateDer::pem_slice_iter(&std::fs::read(c).expect("read cert"))
                .collect::<Result<Vec<_>, _>>()
                .expect("certificate");
            let key =
                PrivateKeyDer::from_pem_slice(&std::fs::read(k).expect("read key")).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client cert")
        }
        None => builder.with_no_client_auth(),
    };
    std::sync::Arc::new(config)
}
