//! HTTPS: a certificate of our own making (`--tls auto`) or given (`--tls-cert`/`--tls-key`,
//! re-read on SIGHUP), served with rustls; plain HTTP sent to the TLS port gets a clear 400.
//!
//! `auto` keeps a local CA in `<data dir>/tls/` (made once, so clients trust it once) and issues
//! a fresh leaf on every start for Orange's hosts, `localhost`, `127.0.0.1` and the public URL's
//! host: clients that hard-code `https://api.orange.com` and `https://cloudapi.orange.com`
//! reach ocloud with one hosts-file line and the CA.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The hosts every `auto` certificate names, besides the public URL's host.
pub const AUTO_HOSTS: &[&str] = &["api.orange.com", "cloudapi.orange.com", "localhost", "127.0.0.1"];
/// A client has this long to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMode {
    /// A local CA in the data dir and a leaf it signs at each start.
    Auto,
    /// A PEM chain and key, re-read on SIGHUP.
    Files {
        /// Certificate chain, leaf first.
        cert: PathBuf,
        /// Private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// HTTPS ready to serve.
pub struct Tls {
    /// Does the handshakes.
    pub acceptor: TlsAcceptor,
    /// The CA file clients should trust (`auto` only).
    pub ca: Option<PathBuf>,
}

/// Prepares HTTPS for `mode`; `extra_host` (the public URL's) is added to an `auto` leaf.
pub fn setup(mode: &TlsMode, data_dir: &Path, extra_host: Option<&str>) -> anyhow::Result<Tls> {
    let (cert, key, ca) = match mode {
        TlsMode::Auto => {
            let mut hosts: Vec<String> = AUTO_HOSTS.iter().map(|h| h.to_string()).collect();
            if let Some(h) = extra_host.filter(|h| !hosts.iter().any(|x| x == h)) {
                hosts.push(h.to_owned());
            }
            let dir = data_dir.join("tls");
            let (cert, key, ca) =
                auto_certs(&dir, &hosts).with_context(|| format!("making certificates in {}", dir.display()))?;
            (cert, key, Some(ca))
        }
        TlsMode::Files { cert, key } => (cert.clone(), key.clone(), None),
    };
    let certs = ReloadableCert::load(cert, key)?;
    if matches!(mode, TlsMode::Files { .. }) {
        certs.reload_on_sighup()?;
    }
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    // The service speaks HTTP/1.1 only: never offer h2.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(cfg)), ca })
}

/// The CA's parameters: fixed, so the saved CA key and these re-create its issuer.
fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "ocloud local CA");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    p
}

/// `dir/ca.pem` and its key, made once; a leaf `cert.pem`/`key.pem` for `hosts`, made anew.
fn auto_certs(dir: &Path, hosts: &[String]) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let (ca_path, ca_key_path) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if !ca_path.exists() || !ca_key_path.exists() {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        std::fs::write(&ca_path, cert.pem())?;
    }
    let issuer = Issuer::new(ca_params(), KeyPair::from_pem(&std::fs::read_to_string(&ca_key_path)?)?);
    let mut p = CertificateParams::new(hosts.to_vec())?;
    p.distinguished_name.push(DnType::CommonName, hosts[0].as_str());
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    p.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    // Browsers refuse leaves valid longer than 398 days.
    p.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(397);
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    write_private(&key_path, &key.serialize_pem())?;
    std::fs::write(&cert_path, cert.pem())?;
    Ok((cert_path, key_path, ca_path))
}

fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)?.write_all(pem.as_bytes())
}

/// Reads a PEM chain (leaf first) and a PEM key, and checks that they match.
fn load_certified_key(cert: &Path, key: &Path) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", cert.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", cert.display());
    let key_der = PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading key {}", key.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let ck = CertifiedKey::from_der(chain, key_der, &provider)
        .with_context(|| format!("certificate {} and key {}", cert.display(), key.display()))?;
    Ok(Arc::new(ck))
}

/// One certificate that SIGHUP can replace; handshakes already made keep the old one.
#[derive(Debug)]
struct ReloadableCert {
    paths: (PathBuf, PathBuf),
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadableCert {
    fn load(cert: PathBuf, key: PathBuf) -> anyhow::Result<Arc<Self>> {
        let ck = load_certified_key(&cert, &key)?;
        Ok(Arc::new(Self { paths: (cert, key), current: RwLock::new(ck) }))
    }

    /// Reloads on every SIGHUP; a broken file keeps the certificate in use.
    fn reload_on_sighup(self: &Arc<Self>) -> anyhow::Result<()> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
            let this = self.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match load_certified_key(&this.paths.0, &this.paths.1) {
                        Ok(ck) => {
                            *this.current.write().unwrap_or_else(|p| p.into_inner()) = ck;
                            tracing::info!("SIGHUP: TLS certificate reloaded");
                        }
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: keeping the old certificate"),
                    }
                }
            });
        }
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The TLS handshake of a new connection, bounded in time; plain HTTP gets a 400 saying to use
/// https. `None`: no TLS connection came of it.
pub async fn handshake(acceptor: &TlsAcceptor, tcp: TcpStream) -> Option<TlsStream<TcpStream>> {
    let r = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut first = [0u8; 1];
        if tcp.peek(&mut first).await.ok()? == 0 {
            return None;
        }
        // 0x16: a TLS handshake record. Anything else is most likely plain HTTP.
        if first[0] != 0x16 {
            reject_plain_http(tcp).await;
            return None;
        }
        match acceptor.accept(tcp).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                None
            }
        }
    })
    .await;
    r.ok().flatten()
}

async fn reject_plain_http(mut tcp: TcpStream) {
    const BODY: &str = "this port speaks HTTPS: use an https:// URL\n";
    let resp = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut buf = [0u8; 8192];
    // Read the request first: closing with unread input sends a reset, and the client would
    // show "connection reset" instead of this answer.
    let _ = tcp.read(&mut buf).await;
    let _ = tcp.write_all(resp.as_bytes()).await;
    let _ = tcp.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
}
