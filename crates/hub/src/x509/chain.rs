//! Chain verification: does a presented chain (leaf, then intermediates) verify up to one
//! of some trust anchors, every certificate within its validity period now? Used by CA
//! device authentication (anchors: the hub's registered CAs) and by DPS enrollment groups
//! (anchors: the group's signing certificates and referenced CAs).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, UnixTime};

/// Why a chain does not verify, as one sentence.
pub type ChainError = String;

/// Verifies `leaf` (with `intermediates`) up to one of `anchors`. An anchor that cannot be
/// one (unreadable) is skipped with a warning; none usable is a refusal.
pub fn verify(
    anchors: impl IntoIterator<Item = CertificateDer<'static>>,
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
) -> Result<(), ChainError> {
    let mut roots = RootCertStore::empty();
    for anchor in anchors {
        if let Err(e) = roots.add(anchor) {
            tracing::warn!(error = %e, "a certificate cannot be a trust anchor");
        }
    }
    if roots.is_empty() {
        return Err("there is no usable CA certificate to verify it against".into());
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}
