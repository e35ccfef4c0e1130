//! CA certificates registered on the hub: the roots (or intermediates) that X.509 CA
//! devices chain up to. Registering one is taken as verified: on Azure a certificate is
//! verified by a proof-of-possession step in the portal or CLI, which proves the uploader
//! holds the CA's private key; the local hub trusts whoever can write to its data dir.

use rustls_pki_types::CertificateDer;

use super::certificate::{self, CertificateError, CertificateFacts};
use crate::store::{CaCertificateRow, Store, StoreError};

/// Longest certificate name. Names are what users type; 64 is ample and keeps listings tidy.
pub const MAX_NAME_CHARS: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(
        "the certificate name {0:?} is not valid: use 1 to {MAX_NAME_CHARS} letters, digits, '-', '.' or '_'"
    )]
    BadName(String),
    #[error("the CA certificate cannot be read: {0}")]
    Certificate(#[from] CertificateError),
    #[error(
        "the file holds {0} certificates; register one CA certificate at a time (each under its own name)"
    )]
    NotOne(usize),
    #[error(
        "the certificate {subject} is not a CA certificate (its basic constraints do not say CA:TRUE), so it cannot sign device certificates"
    )]
    NotCa { subject: String },
    #[error(
        "the certificate {subject} expired on {expired}; register a CA certificate that is still valid"
    )]
    Expired { subject: String, expired: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A registered CA certificate.
#[derive(Clone, Debug)]
pub struct CaCertificate {
    pub name: String,
    pub facts: CertificateFacts,
    pub der: CertificateDer<'static>,
    pub added_ms: i64,
}

fn check_name(name: &str) -> Result<(), CaError> {
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if ok {
        Ok(())
    } else {
        Err(CaError::BadName(name.to_string()))
    }
}

fn format_unix(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| secs.to_string())
}

/// Checks a CA certificate (PEM, exactly one certificate, a CA, not expired at `now_ms`)
/// and registers it under `name`, replacing one of the same name.
pub fn add(store: &Store, name: &str, pem: &[u8], now_ms: i64) -> Result<CaCertificate, CaError> {
    check_name(name)?;
    let chain = certificate::parse_pem_chain(pem)?;
    if chain.len() != 1 {
        return Err(CaError::NotOne(chain.len()));
    }
    let der = chain.into_iter().next().ok_or(CaError::NotOne(0))?;
    let facts = certificate::inspect(&der)?;
    if !facts.is_ca {
        return Err(CaError::NotCa {
            subject: facts.subject,
        });
    }
    if facts.not_after < now_ms / 1000 {
        return Err(CaError::Expired {
            subject: facts.subject,
            expired: format_unix(facts.not_after),
        });
    }
    store.ca_certificate_put(&CaCertificateRow {
        name: name.to_string(),
        pem: pem_of(&der),
        added_ms: now_ms,
    })?;
    Ok(CaCertificate {
        name: name.to_string(),
        facts,
        der,
        added_ms: now_ms,
    })
}

/// The certificate alone, as PEM: what is stored, whatever else the file held.
fn pem_of(der: &CertificateDer<'_>) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Every registered CA certificate, by name. A row that no longer parses (edited by hand)
/// is skipped with a warning rather than failing every X.509 connect.
pub fn list(store: &Store) -> Result<Vec<CaCertificate>, CaError> {
    let mut out = Vec::new();
    for row in store.ca_certificates()? {
        let parsed = certificate::parse_pem_chain(row.pem.as_bytes()).and_then(|chain| {
            let der = chain
                .into_iter()
                .next()
                .ok_or(CertificateError::NoCertificate)?;
            Ok((certificate::inspect(&der)?, der))
        });
        match parsed {
            Ok((facts, der)) => out.push(CaCertificate {
                name: row.name,
                facts,
                der,
                added_ms: row.added_ms,
            }),
            Err(e) => {
                tracing::warn!(name = %row.name, error = %e, "unreadable CA certificate skipped")
            }
        }
    }
    Ok(out)
}

/// Removes a registered CA certificate; false if none had that name.
pub fn remove(store: &Store, name: &str) -> Result<bool, CaError> {
    Ok(store.ca_certificate_delete(name)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

    fn cert(ca: bool, not_after_year: i32) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "Test CA");
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        params.self_signed(&key).unwrap().pem()
    }

    const NOW_MS: i64 = 1_767_225_600_000; // 2026-01-01

    #[test]
    fn a_ca_certificate_is_registered_listed_and_removed() {
        let store = Store::in_memory().unwrap();
        let pem = cert(true, 2040);
        let added = add(&store, "root-1", pem.as_bytes(), NOW_MS).unwrap();
        assert!(added.facts.is_ca);
        let all = list(&store).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].name, "root-1");
        assert_eq!(all[0].der, added.der);
        assert!(remove(&store, "root-1").unwrap());
        assert!(list(&store).unwrap().is_empty());
    }

    #[test]
    fn bad_names_and_certificates_are_refused_with_a_reason() {
        let store = Store::in_memory().unwrap();
        let ca = cert(true, 2040);
        for name in ["", "a/b", "with space", &"x".repeat(65)] {
            assert!(matches!(
                add(&store, name, ca.as_bytes(), NOW_MS),
                Err(CaError::BadName(_))
            ));
        }
        assert!(matches!(
            add(&store, "leaf", cert(false, 2040).as_bytes(), NOW_MS),
            Err(CaError::NotCa { .. })
        ));
        assert!(matches!(
            add(&store, "old", cert(true, 2021).as_bytes(), NOW_MS),
            Err(CaError::Expired { .. })
        ));
        assert!(matches!(
            add(&store, "two", format!("{ca}{ca}").as_bytes(), NOW_MS),
            Err(CaError::NotOne(2))
        ));
        assert!(matches!(
            add(&store, "none", b"hello", NOW_MS),
            Err(CaError::Certificate(CertificateError::NoCertificate))
        ));
        assert!(list(&store).unwrap().is_empty());
    }
}
