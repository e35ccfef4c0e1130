//! X.509 attestation in enrollment documents, as the DPS service REST API spells it: an
//! individual enrollment names its device's certificate (`clientCertificates`), a group
//! names the CA or intermediate its devices' chains verify to (`signingCertificates`)
//! and/or CA certificates registered on the service by name (`caReferences`). Each
//! certificate is given as PEM or base64 DER; the service adds its `info`.

use serde::{Deserialize, Serialize};

/// `attestation.x509`
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509Attestation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificates: Option<X509Certificates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificates: Option<X509Certificates>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_references: Option<X509CaReferences>,
}

/// A primary and an optional secondary certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct X509Certificates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<X509CertificateWithInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<X509CertificateWithInfo>,
}

impl X509Certificates {
    /// The certificates given, primary first, with their names for messages.
    pub fn given(&self) -> impl Iterator<Item = (&'static str, &X509CertificateWithInfo)> {
        [("primary", &self.primary), ("secondary", &self.secondary)]
            .into_iter()
            .filter_map(|(which, c)| c.as_ref().map(|c| (which, c)))
    }

    pub fn given_mut(
        &mut self,
    ) -> impl Iterator<Item = (&'static str, &mut X509CertificateWithInfo)> {
        [
            ("primary", &mut self.primary),
            ("secondary", &mut self.secondary),
        ]
        .into_iter()
        .filter_map(|(which, c)| c.as_mut().map(|c| (which, c)))
    }
}

/// A certificate as uploaded (`certificate`) and what the service read from it (`info`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct X509CertificateWithInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<X509CertificateInfo>,
}

/// `info` of an uploaded certificate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct X509CertificateInfo {
    pub subject_name: String,
    pub sha1_thumbprint: String,
    pub sha256_thumbprint: String,
    pub issuer_name: String,
    pub not_before_utc: String,
    pub not_after_utc: String,
    pub serial_number: String,
    pub version: u32,
}

/// Names of CA certificates registered on the service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct X509CaReferences {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secondary: Option<String>,
}

impl X509CaReferences {
    pub fn given(&self) -> impl Iterator<Item = &str> {
        [&self.primary, &self.secondary]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|n| !n.trim().is_empty())
    }
}

fn has_certificate(certs: &Option<X509Certificates>) -> bool {
    certs.as_ref().is_some_and(|c| {
        c.given().any(|(_, c)| {
            c.certificate
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty())
        })
    })
}

impl X509Attestation {
    /// An individual enrollment's: a client certificate, and nothing of a group's.
    pub fn check_individual(&self) -> Result<(), &'static str> {
        if self.signing_certificates.is_some() || self.ca_references.is_some() {
            return Err(
                "an individual enrollment's X.509 attestation takes clientCertificates, not signingCertificates or caReferences",
            );
        }
        if !has_certificate(&self.client_certificates) {
            return Err(
                "an individual enrollment's X.509 attestation needs x509.clientCertificates.primary.certificate",
            );
        }
        Ok(())
    }

    /// An enrollment group's: a signing certificate or a CA reference, no client certificate.
    pub fn check_group(&self) -> Result<(), &'static str> {
        if self.client_certificates.is_some() {
            return Err(
                "an enrollment group's X.509 attestation takes signingCertificates or caReferences, not clientCertificates",
            );
        }
        let references = self
            .ca_references
            .as_ref()
            .is_some_and(|r| r.given().next().is_some());
        if !has_certificate(&self.signing_certificates) && !references {
            return Err(
                "an enrollment group's X.509 attestation needs x509.signingCertificates.primary.certificate or x509.caReferences.primary",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn documents_round_trip_in_the_rest_shape() {
        let doc = json!({
            "clientCertificates": {"primary": {"certificate": "MIIB", "info": {
                "subjectName": "CN=dev-1", "sha1Thumbprint": "AA", "sha256Thumbprint": "BB",
                "issuerName": "CN=dev-1", "notBeforeUtc": "2024-01-01T00:00:00Z",
                "notAfterUtc": "2049-01-01T00:00:00Z", "serialNumber": "01", "version": 3}}}
        });
        let a: X509Attestation = serde_json::from_value(doc.clone()).unwrap();
        assert!(a.check_individual().is_ok());
        assert!(a.check_group().is_err());
        assert_eq!(serde_json::to_value(&a).unwrap(), doc);
    }

    #[test]
    fn groups_need_a_signing_certificate_or_a_reference() {
        let signing: X509Attestation = serde_json::from_value(
            json!({"signingCertificates": {"primary": {"certificate": "x"}}}),
        )
        .unwrap();
        assert!(signing.check_group().is_ok());
        assert!(signing.check_individual().is_err());
        let reference: X509Attestation =
            serde_json::from_value(json!({"caReferences": {"primary": "root"}})).unwrap();
        assert!(reference.check_group().is_ok());
        let empty: X509Attestation =
            serde_json::from_value(json!({"caReferences": {"primary": " "}})).unwrap();
        assert!(empty.check_group().is_err());
        assert!(X509Attestation::default().check_individual().is_err());
    }
}
