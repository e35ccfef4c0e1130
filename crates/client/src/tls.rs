//! TLS trust for every client connection (MQTT, HTTPS, AMQP): Azure's public CAs
//! from the operating system, or only the local hub's CA from hub.json.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::client_certificate::ClientCertificate;

/// What a TLS connection trusts.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Trust {
    /// The operating system's root certificates (for Azure).
    #[default]
    PlatformRoots,
    /// Only this CA, as PEM (for the local hub, whose CA is in `hub.json`).
    CaPem(String),
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum TlsError {
    #[error("the CA certificate cannot be used: {0}")]
    CaPem(String),
    #[error("no platform root certificates were found; trust the hub's CA certificate instead")]
    NoPlatformRoots,
    #[error("the client certificate cannot be used: {0}")]
    ClientCertificate(String),
}

impl Trust {
    /// The CA certificates this trust names, as DER.
    pub fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        match self {
            Trust::PlatformRoots => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TlsError::NoPlatformRoots);
                }
            }
            Trust::CaPem(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| TlsError::CaPem(e.to_string()))?;
                    roots
                        .add(cert)
                        .map_err(|e| TlsError::CaPem(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(TlsError::CaPem("it holds no certificate".into()));
                }
            }
        }
        Ok(roots)
    }

    /// A rustls client config with an explicit crypto provider (no global default needed).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
        self.client_config_with_identity(alpn, None)
    }

    /// As `client_config`, presenting `identity` when the server asks for a certificate.
    pub fn client_config_with_identity(
        &self,
        alpn: &[&[u8]],
        identity: Option<&ClientCertificate>,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::CaPem(e.to_string()))?
            .with_root_certificates(self.roots()?);
        let mut config = match identity {
            None => builder.with_no_client_auth(),
            Some(id) => builder
                .with_client_auth_cert(id.chain().to_vec(), id.key())
                .map_err(|e| TlsError::ClientCertificate(e.to_string()))?,
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pem_without_certificates_is_refused_clearly() {
        let e = Trust::CaPem("not a certificate".into())
            .roots()
            .unwrap_err();
        assert_eq!(e, TlsError::CaPem("it holds no certificate".into()));
        assert_eq!(
            e.to_string(),
            "the CA certificate cannot be used: it holds no certificate"
        );
    }

    #[test]
    fn the_hub_ca_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let certs = hub::tls::HubCertificates::load_or_create(dir.path(), &[]).unwrap();
        let trust = Trust::CaPem(certs.ca_pem().unwrap());
        assert_eq!(trust.roots().unwrap().len(), 1);
        assert!(trust.client_config(&[b"h2"]).is_ok());
    }
}
