//! TLS 1.3 with mutual authentication, on rustls with the ring provider.
//!
//! Every node has a certificate chain and key signed by a cluster CA. A server accepts only
//! clients whose certificate chains to the CA, and a client accepts only servers whose
//! certificate chains to the CA and names the host it dialed (DNS name or IP address).

use std::fmt;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Certificates and key for TLS.
pub struct TlsSettings {
    /// Certificates of the cluster CA; peers must present a chain to one of them.
    pub ca_certs: Vec<CertificateDer<'static>>,
    /// This node's certificate chain, leaf first.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// This node's private key.
    pub key: PrivateKeyDer<'static>,
}

impl TlsSettings {
    /// Reads the CA certificates, the certificate chain and the private key from PEM text.
    ///
    /// # Errors
    ///
    /// Returns [`TlsError::Pem`] when a part is missing or not valid PEM.
    pub fn from_pem(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, TlsError> {
        let certs = |what: &'static str, pem: &[u8]| {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| TlsError::Pem(format!("{what}: {error}")))?;
            if certs.is_empty() {
                return Err(TlsError::Pem(format!("{what}: no certificate found")));
            }
            Ok(certs)
        };
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|error| TlsError::Pem(format!("private key: {error}")))?;
        Ok(Self {
            ca_certs: certs("CA certificates", ca_pem)?,
            cert_chain: certs("certificate chain", cert_pem)?,
            key,
        })
    }

    /// Builds the server and client sides.
    ///
    /// # Errors
    ///
    /// Returns [`TlsError::Config`] when rustls rejects a certificate or the key.
    pub(crate) fn build(&self) -> Result<(TlsAcceptor, TlsConnector), TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in &self.ca_certs {
            roots.add(cert.clone()).map_err(config_error)?;
        }
        let roots = Arc::new(roots);

        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|error| TlsError::Config(error.to_string()))?;
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .with_client_cert_verifier(client_verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(config_error)?;
        let client = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(config_error)?
            .with_root_certificates(roots)
            .with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(config_error)?;
        Ok((
            TlsAcceptor::from(Arc::new(server)),
            TlsConnector::from(Arc::new(client)),
        ))
    }
}

impl Clone for TlsSettings {
    fn clone(&self) -> Self {
        Self {
            ca_certs: self.ca_certs.clone(),
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("ca_certs", &self.ca_certs.len())
            .field("cert_chain", &self.cert_chain.len())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Invalid TLS material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM input is missing or invalid.
    #[error("invalid TLS PEM input: {0}")]
    Pem(String),
    /// rustls rejected the configuration.
    #[error("invalid TLS configuration: {0}; check that the certificate matches the key and is X.509 v3")]
    Config(String),
}

fn config_error(error: rustls::Error) -> TlsError {
    TlsError::Config(error.to_string())
}
