//! What the hub reads from an X.509 certificate: its thumbprints, subject common name,
//! validity and whether it is a CA; and PEM input, bounded in size and count.

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::{PemObject, SectionKind};
use sha1::Digest as _;

/// Largest DER certificate the hub reads. Device and CA certificates are 0.5 to 2 KB; 16 KB
/// leaves room for long extension lists while bounding what a peer or a file makes it parse.
pub const MAX_CERTIFICATE_BYTES: usize = 16 * 1024;
/// Most certificates in a chain (leaf, intermediates, root). Real device chains have 2 to 4.
pub const MAX_CHAIN_LENGTH: usize = 8;
/// Largest PEM file the hub reads: a full chain of the largest certificates, base64-encoded.
pub const MAX_PEM_BYTES: usize = MAX_CHAIN_LENGTH * MAX_CERTIFICATE_BYTES * 4 / 3 + 4096;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CertificateError {
    #[error(
        "the PEM text is {0} bytes, more than the {MAX_PEM_BYTES} bytes a certificate chain may take"
    )]
    PemTooLarge(usize),
    #[error("the PEM text holds no certificate (no -----BEGIN CERTIFICATE----- block)")]
    NoCertificate,
    #[error("the PEM text is not valid: {0}")]
    BadPem(String),
    #[error("the chain holds more than {MAX_CHAIN_LENGTH} certificates")]
    ChainTooLong,
    #[error(
        "a certificate is {0} bytes, more than the {MAX_CERTIFICATE_BYTES} bytes the hub reads"
    )]
    TooLarge(usize),
    #[error("the certificate is not valid X.509: {0}")]
    NotX509(String),
}

/// The facts of one certificate that authentication and registration use.
#[derive(Clone, Debug, PartialEq)]
pub struct CertificateFacts {
    /// SHA-1 of the DER encoding, upper-case hex (the form Azure shows).
    pub sha1: String,
    /// SHA-256 of the DER encoding, upper-case hex.
    pub sha256: String,
    /// The first CN of the subject, if it has one that is a string.
    pub common_name: Option<String>,
    /// The subject as text, for listings and logs.
    pub subject: String,
    /// The issuer as text.
    pub issuer: String,
    /// The serial number, upper-case hex.
    pub serial: String,
    /// The X.509 version as written in certificates' text form (3 for v3).
    pub version: u32,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
}

impl CertificateFacts {
    /// Whether `thumbprint` (hex, either case) names this certificate by SHA-1 or SHA-256.
    pub fn has_thumbprint(&self, thumbprint: &str) -> bool {
        let t = thumbprint.trim();
        !t.is_empty()
            && (t.eq_ignore_ascii_case(&self.sha1) || t.eq_ignore_ascii_case(&self.sha256))
    }

    /// Whether `unix_secs` lies within the validity period (both ends included, RFC 5280).
    pub fn valid_at(&self, unix_secs: i64) -> bool {
        self.not_before <= unix_secs && unix_secs <= self.not_after
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Reads the facts of one DER certificate.
pub fn inspect(der: &[u8]) -> Result<CertificateFacts, CertificateError> {
    if der.len() > MAX_CERTIFICATE_BYTES {
        return Err(CertificateError::TooLarge(der.len()));
    }
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertificateError::NotX509(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertificateError::NotX509(
            "bytes follow the certificate".into(),
        ));
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Ok(CertificateFacts {
        sha1: hex_upper(&sha1::Sha1::digest(der)),
        sha256: hex_upper(&<sha2::Sha256 as sha2::Digest>::digest(der)),
        common_name,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        serial: hex_upper(cert.raw_serial()),
        version: cert.version().0 + 1,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.is_ca(),
    })
}

/// The certificates of a PEM text, in order, bounded in total size and in count. Blocks
/// other than certificates (a private key kept in the same file) are skipped.
pub fn parse_pem_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(CertificateError::PemTooLarge(pem.len()));
    }
    let mut chain = Vec::new();
    for section in <(SectionKind, Vec<u8>)>::pem_slice_iter(pem) {
        let (kind, der) = section.map_err(|e| CertificateError::BadPem(e.to_string()))?;
        if kind != SectionKind::Certificate {
            continue;
        }
        if chain.len() == MAX_CHAIN_LENGTH {
            return Err(CertificateError::ChainTooLong);
        }
        if der.len() > MAX_CERTIFICATE_BYTES {
            return Err(CertificateError::TooLarge(der.len()));
        }
        chain.push(CertificateDer::from(der));
    }
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate);
    }
    Ok(chain)
}

/// One certificate given as text, as the DPS enrollment API takes it: PEM (the first
/// certificate of the text) or the base64 of the DER encoding.
pub fn parse_text(text: &str) -> Result<CertificateDer<'static>, CertificateError> {
    let text = text.trim();
    if text.contains("-----BEGIN") {
        return parse_pem_chain(text.as_bytes())?
            .into_iter()
            .next()
            .ok_or(CertificateError::NoCertificate);
    }
    if text.len() > MAX_PEM_BYTES {
        return Err(CertificateError::PemTooLarge(text.len()));
    }
    use base64::Engine as _;
    let compact: String = text.split_whitespace().collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| CertificateError::BadPem("it is neither PEM nor base64-encoded DER".into()))?;
    if der.len() > MAX_CERTIFICATE_BYTES {
        return Err(CertificateError::TooLarge(der.len()));
    }
    Ok(CertificateDer::from(der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn self_signed(cn: &str) -> (String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), cert.der().to_vec())
    }

    #[test]
    fn facts_of_a_self_signed_certificate() {
        let (_, der) = self_signed("dev-1");
        let facts = inspect(&der).unwrap();
        assert_eq!(facts.common_name.as_deref(), Some("dev-1"));
        assert_eq!(facts.sha1.len(), 40);
        assert_eq!(facts.sha256.len(), 64);
        assert!(!facts.is_ca);
        assert_eq!((facts.version, facts.issuer.as_str()), (3, "CN=dev-1"));
        assert!(!facts.serial.is_empty());
        assert!(facts.has_thumbprint(&facts.sha1.to_lowercase()));
        assert!(facts.has_thumbprint(&facts.sha256));
        assert!(!facts.has_thumbprint(""));
        assert!(!facts.has_thumbprint(&facts.sha1[..39]));
        assert!(facts.valid_at(facts.not_before) && facts.valid_at(facts.not_after));
        assert!(!facts.valid_at(facts.not_after + 1));
    }

    #[test]
    fn uploaded_text_is_pem_or_base64_der() {
        use base64::Engine as _;
        let (pem, der) = self_signed("a");
        assert_eq!(parse_text(&pem).unwrap().as_ref(), der.as_slice());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        assert_eq!(parse_text(&b64).unwrap().as_ref(), der.as_slice());
        assert!(matches!(
            parse_text("not a cert!"),
            Err(CertificateError::BadPem(_))
        ));
        let huge =
            base64::engine::general_purpose::STANDARD.encode(vec![0u8; MAX_CERTIFICATE_BYTES + 1]);
        assert!(matches!(
            parse_text(&huge),
            Err(CertificateError::TooLarge(_))
        ));
    }

    #[test]
    fn pem_chains_are_read_in_order_and_bounded() {
        let (a, der_a) = self_signed("a");
        let (b, _) = self_signed("b");
        let key = KeyPair::generate().unwrap().serialize_pem();
        let chain = parse_pem_chain(format!("{a}{key}{b}").as_bytes()).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].as_ref(), der_a.as_slice());

        assert_eq!(
            parse_pem_chain(key.as_bytes()),
            Err(CertificateError::NoCertificate)
        );
        assert_eq!(
            parse_pem_chain(a.repeat(MAX_CHAIN_LENGTH + 1).as_bytes()),
            Err(CertificateError::ChainTooLong)
        );
        let huge = vec![b'A'; MAX_PEM_BYTES + 1];
        assert_eq!(
            parse_pem_chain(&huge),
            Err(CertificateError::PemTooLarge(MAX_PEM_BYTES + 1))
        );
        assert!(matches!(
            inspect(b"not der"),
            Err(CertificateError::NotX509(_))
        ));
    }
}
