//! The TLS side of device certificates: the hub asks every client for a certificate and
//! accepts any chain it presents, or none. Which identity a certificate may connect as is
//! decided at MQTT CONNECT against the registry (`x509::authenticate`), because only then
//! does the hub know which device the client claims to be; a client without a certificate
//! goes on to authenticate with a SAS token as before.
//!
//! What the TLS layer does check: the client proves it holds the certificate's private key
//! (the handshake signature, verified with the provider's algorithms), and the chain is no
//! longer than the hub reads.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::certificate::{MAX_CERTIFICATE_BYTES, MAX_CHAIN_LENGTH};

/// Accepts any client certificate chain, or none; see the module docs.
#[derive(Debug)]
pub struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCertificate {
    pub fn new(provider: &CryptoProvider) -> Arc<Self> {
        Arc::new(AnyClientCertificate {
            algorithms: provider.signature_verification_algorithms,
        })
    }
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No CA names in the request: the SDKs send their configured certificate whatever the
    /// server lists, and the registered CAs may change while the hub runs.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let too_large = std::iter::once(end_entity)
            .chain(intermediates)
            .any(|c| c.len() > MAX_CERTIFICATE_BYTES);
        if intermediates.len() >= MAX_CHAIN_LENGTH || too_large {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
