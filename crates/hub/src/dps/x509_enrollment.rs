//! X.509 enrollments as the service stores them: every uploaded certificate read (PEM or
//! base64 DER, bounded) and its `info` filled in as DPS returns it (subject, issuer,
//! SHA-1 and SHA-256 thumbprints, validity, serial, version); CA references must name a
//! CA certificate registered on the hub (`hubtui hub ca add`).

use rustls_pki_types::CertificateDer;

use crate::store::Store;
use crate::x509::authorities;
use crate::x509::certificate::{self, CertificateFacts};
use iothub::device::format_time;
use iothub::dps::x509_attestation::{X509Attestation, X509CertificateInfo, X509Certificates};
use iothub::error::{ErrorCode, ServiceError};

fn bad_request(message: String) -> ServiceError {
    ServiceError::new(ErrorCode::ArgumentInvalid, message)
}

fn utc(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(format_time)
        .unwrap_or_else(|| secs.to_string())
}

/// The `info` DPS shows for a certificate.
pub fn info_of(facts: &CertificateFacts) -> X509CertificateInfo {
    X509CertificateInfo {
        subject_name: facts.subject.clone(),
        sha1_thumbprint: facts.sha1.clone(),
        sha256_thumbprint: facts.sha256.clone(),
        issuer_name: facts.issuer.clone(),
        not_before_utc: utc(facts.not_before),
        not_after_utc: utc(facts.not_after),
        serial_number: facts.serial.clone(),
        version: facts.version,
    }
}

/// The certificates of `certs` that carry one, read, with their facts; `what` names them in
/// messages ("client", "signing").
pub fn read(
    certs: &X509Certificates,
    what: &str,
) -> Result<Vec<(CertificateDer<'static>, CertificateFacts)>, String> {
    let mut out = Vec::new();
    for (which, c) in certs.given() {
        let Some(text) = c.certificate.as_deref().filter(|t| !t.trim().is_empty()) else {
            continue;
        };
        let der = certificate::parse_text(text)
            .map_err(|e| format!("the {which} {what} certificate cannot be read: {e}"))?;
        let facts = certificate::inspect(&der)
            .map_err(|e| format!("the {which} {what} certificate cannot be read: {e}"))?;
        out.push((der, facts));
    }
    Ok(out)
}

/// Fills in `info`; returns each certificate's name ("primary", "secondary") and facts.
fn fill(
    certs: &mut X509Certificates,
    what: &str,
) -> Result<Vec<(&'static str, CertificateFacts)>, ServiceError> {
    let mut out = Vec::new();
    for (which, c) in certs.given_mut() {
        let Some(text) = c.certificate.as_deref().filter(|t| !t.trim().is_empty()) else {
            c.info = None;
            continue;
        };
        let facts = certificate::parse_text(text)
            .and_then(|der| certificate::inspect(&der))
            .map_err(|e| {
                bad_request(format!(
                    "the {which} {what} certificate cannot be read: {e}"
                ))
            })?;
        c.info = Some(info_of(&facts));
        out.push((which, facts));
    }
    Ok(out)
}

/// Reads the certificates of an X.509 attestation and fills in their `info`; refuses an
/// unreadable certificate, an individual enrollment whose certificate's CN is not its
/// registration id, and a CA reference no registered CA has.
pub fn complete(
    store: &Store,
    x509: &mut X509Attestation,
    registration_id: Option<&str>,
) -> Result<(), ServiceError> {
    if let Some(certs) = &mut x509.client_certificates {
        let read = fill(certs, "client")?;
        if let Some(id) = registration_id {
            for (which, facts) in read {
                let cn = facts.common_name.unwrap_or_default();
                if cn != id {
                    return Err(bad_request(format!(
                        "the {which} client certificate's subject CN is {cn:?}, but a device registers with its certificate's CN as registration id, and this enrollment's is {id:?}"
                    )));
                }
            }
        }
    }
    if let Some(certs) = &mut x509.signing_certificates {
        fill(certs, "signing")?;
    }
    if let Some(refs) = &x509.ca_references {
        let known = authorities::list(store)
            .map_err(|e| ServiceError::new(ErrorCode::ServerError, e.to_string()))?;
        for name in refs.given() {
            if !known.iter().any(|ca| ca.name == name) {
                return Err(bad_request(format!(
                    "the CA reference {name:?} names no CA certificate registered on the hub (hubtui hub ca add)"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub::dps::x509_attestation::{X509CaReferences, X509CertificateWithInfo};
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn pem(cn: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.self_signed(&key).unwrap().pem()
    }

    fn client(pem: String) -> X509Attestation {
        X509Attestation {
            client_certificates: Some(X509Certificates {
                primary: Some(X509CertificateWithInfo {
                    certificate: Some(pem),
                    info: None,
                }),
                secondary: None,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn info_is_filled_and_the_cn_must_be_the_registration_id() {
        let store = Store::in_memory().unwrap();
        let mut x = client(pem("dev-1"));
        complete(&store, &mut x, Some("dev-1")).unwrap();
        let info = x
            .client_certificates
            .unwrap()
            .primary
            .unwrap()
            .info
            .unwrap();
        assert_eq!(info.subject_name, "CN=dev-1");
        assert_eq!(
            (info.sha1_thumbprint.len(), info.sha256_thumbprint.len()),
            (40, 64)
        );
        assert_eq!(info.version, 3);
        assert!(info.not_after_utc.ends_with('Z'), "{}", info.not_after_utc);

        let err = complete(&store, &mut client(pem("other")), Some("dev-1")).unwrap_err();
        assert!(err.message.contains("\"other\""), "{}", err.message);
        let err = complete(&store, &mut client("garbage!".into()), None).unwrap_err();
        assert!(
            err.message
                .starts_with("the primary client certificate cannot be read")
        );
    }

    #[test]
    fn ca_references_must_name_a_registered_ca() {
        let store = Store::in_memory().unwrap();
        let mut x = X509Attestation {
            ca_references: Some(X509CaReferences {
                primary: Some("root".into()),
                secondary: None,
            }),
            ..Default::default()
        };
        let err = complete(&store, &mut x, None).unwrap_err();
        assert!(err.message.contains("\"root\""), "{}", err.message);
    }
}
