//! The HTTP client's TLS set-up, with the system's CA roots loaded on the first TLS
//! handshake rather than when the client is built.
//!
//! reqwest's own rustls set-up reads every root of the system (the bundle, then each file of
//! `/etc/ssl/certs`) when the client is built: ~5 ms of a ~10 ms `ocloud` command here, paid
//! by every command against a plain `http://` service (a local ocloud, an emulator) that
//! never verifies a certificate. And on a machine with no CA roots at all (a slim container),
//! building failed, so no command worked even over plain HTTP. Here the verifier is the
//! platform's one (as reqwest's), made when a server first shows a certificate; a failure to
//! load the roots then fails that handshake, naming the cause.

use std::sync::{Arc, OnceLock};

use reqwest::ClientBuilder;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::{Error, Result};

/// A reqwest client builder whose TLS trusts the system's roots plus the PEM certificates of
/// `extra_pems` (each must hold one at least), or accepts any certificate if asked to.
pub fn client_builder(extra_pems: &[Vec<u8>], accept_invalid_certs: bool) -> Result<ClientBuilder> {
    let mut extra = Vec::new();
    for pem in extra_pems {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Invalid(format!("the CA file is not valid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Invalid("the CA file holds no PEM certificate".into()));
        }
        // Checked now, so that a bad one is reported as the CA file's, not at a handshake.
        let mut store = rustls::RootCertStore::empty();
        for cert in &certs {
            store.add(cert.clone()).map_err(|e| Error::Invalid(format!("a certificate of the CA file: {e}")))?;
        }
        extra.extend(certs);
    }
    let provider = CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = Arc::new(Verifier {
        system: (!accept_invalid_certs).then(|| SystemRoots { extra, loaded: OnceLock::new() }),
        provider: provider.clone(),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Invalid(format!("TLS set-up: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    // HTTP/1.1 only, as ocloud speaks (and the client's own download path reads).
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}

/// Certificates checked by the platform verifier over the system's roots and the extra ones,
/// made on first use; or not checked (`system` is `None`: `danger_accept_invalid_certs`).
/// Handshake signatures are always checked, with the provider's algorithms, as the platform
/// verifier does too.
#[derive(Debug)]
struct Verifier {
    system: Option<SystemRoots>,
    provider: Arc<CryptoProvider>,
}

#[derive(Debug)]
struct SystemRoots {
    extra: Vec<CertificateDer<'static>>,
    /// Kept once made; a failure is not kept, so a later handshake tries again.
    loaded: OnceLock<rustls_platform_verifier::Verifier>,
}

impl Verifier {
    fn algorithms(&self) -> &WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let Some(system) = &self.system else { return Ok(ServerCertVerified::assertion()) };
        let verifier = match system.loaded.get() {
            Some(v) => v,
            None => {
                let made = rustls_platform_verifier::Verifier::new_with_extra_roots(
                    system.extra.clone(),
                    self.provider.clone(),
                )
                .map_err(|e| rustls::Error::General(format!("loading the system's CA certificates: {e}")))?;
                // Two first handshakes at once may both load them: one is kept.
                system.loaded.get_or_init(|| made)
            }
        };
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, self.algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, self.algorithms())
    }

    // Asked when the handshake starts, before any certificate: no root is needed for it.
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::client_builder;

    #[test]
    fn a_ca_file_is_checked_when_the_client_is_built() {
        let message = |pem: &[u8]| client_builder(&[pem.to_vec()], false).err().map(|e| e.to_string());
        assert!(message(b"no certificate here").unwrap().contains("holds no PEM certificate"));
        let junk = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(message(junk).unwrap().contains("a certificate of the CA file"), "{:?}", message(junk));
        // No system root is read to build a client, with or without extra ones.
        assert!(client_builder(&[], false).is_ok() && client_builder(&[], true).is_ok());
    }
}
