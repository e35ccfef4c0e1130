//! Registration by certificate: which enrollment the client certificate a device presented
//! in the TLS handshake proves, for DPS over MQTT (no password) and over HTTPS (no
//! Authorization header).
//!
//! * An individual enrollment of the registration id with X.509 attestation: the leaf is
//!   one of the enrolled client certificates (same SHA-256 thumbprint) and within its
//!   validity period. The device becomes a `selfSigned` identity with the enrolled
//!   certificates' thumbprints.
//! * Otherwise an X.509 enrollment group: the chain verifies up to one of the group's
//!   signing certificates or referenced CAs, every certificate within its validity period.
//!
//! Either way the leaf's subject CN is the registration id, as DPS requires, and the device
//! becomes a `selfSigned` identity with the thumbprints of the certificates it registers
//! with, as DPS creates X.509 devices whatever their enrollment (so the hub needs no CA of
//! its own to let it connect).

use rustls_pki_types::CertificateDer;

use super::enrollments::{get, list};
use super::registration::{DeviceCredential, Registrant, unauthorized};
use super::x509_enrollment::read;
use crate::state::HubState;
use crate::x509::certificate::{self, MAX_CHAIN_LENGTH};
use crate::x509::{authorities, chain};
use iothub::device::X509Thumbprint;
use iothub::dps::enrollment::{EnrollmentGroup, IndividualEnrollment};
use iothub::error::{ErrorCode, ServiceError};

fn server_error(e: impl ToString) -> ServiceError {
    ServiceError::new(ErrorCode::ServerError, e.to_string())
}

impl HubState {
    /// Checks the certificate chain (leaf first) a device presented to register
    /// `registration_id` under `id_scope`.
    pub fn dps_authenticate_certificate(
        &self,
        id_scope: &str,
        registration_id: &str,
        presented: &[CertificateDer<'static>],
    ) -> Result<Registrant, ServiceError> {
        if id_scope != self.id_scope {
            return Err(unauthorized(format!(
                "The ID scope '{id_scope}' is not this hub's ('{}').",
                self.id_scope
            )));
        }
        iothub::dps::validate_registration_id(registration_id).map_err(unauthorized)?;
        let (leaf, intermediates) = presented
            .split_first()
            .ok_or_else(|| unauthorized("No client certificate was presented."))?;
        if intermediates.len() >= MAX_CHAIN_LENGTH {
            return Err(unauthorized(format!(
                "The client certificate chain is longer than {MAX_CHAIN_LENGTH} certificates."
            )));
        }
        let facts = certificate::inspect(leaf)
            .map_err(|e| unauthorized(format!("The client certificate cannot be read: {e}.")))?;
        if facts.common_name.as_deref() != Some(registration_id) {
            return Err(unauthorized(format!(
                "The client certificate's subject CN is '{}', not the registration id '{registration_id}'.",
                facts.common_name.as_deref().unwrap_or("")
            )));
        }
        if !facts.valid_at(chrono::Utc::now().timestamp()) {
            return Err(unauthorized(
                "The client certificate is outside its validity period.",
            ));
        }
        match get::<IndividualEnrollment>(&self.store, registration_id) {
            Ok(e) => {
                let enrolled = e
                    .settings
                    .attestation
                    .x509()
                    .and_then(|x| x.client_certificates.as_ref())
                    .ok_or_else(|| {
                        unauthorized(format!(
                            "The enrollment of '{registration_id}' does not use X.509 attestation."
                        ))
                    })?;
                let certs = read(enrolled, "client").map_err(server_error)?;
                if !certs.iter().any(|(_, f)| f.sha256 == facts.sha256) {
                    return Err(unauthorized(format!(
                        "The client certificate is not the one enrolled for '{registration_id}'."
                    )));
                }
                let mut thumbs = certs.into_iter().map(|(_, f)| f.sha1);
                let primary = thumbs.next();
                let secondary = thumbs.next().or_else(|| primary.clone());
                Ok(Registrant {
                    registration_id: registration_id.to_string(),
                    device_id: e.device_id().to_string(),
                    credential: DeviceCredential::Thumbprints(X509Thumbprint {
                        primary_thumbprint: primary,
                        secondary_thumbprint: secondary,
                    }),
                    settings: e.settings,
                })
            }
            Err(e) if e.code.http_status() == 404 => {
                let credential = DeviceCredential::Thumbprints(X509Thumbprint {
                    primary_thumbprint: Some(facts.sha1.clone()),
                    secondary_thumbprint: Some(facts.sha1),
                });
                self.group_of_chain(registration_id, leaf, intermediates, credential)
            }
            Err(e) => Err(e),
        }
    }

    /// The first X.509 enrollment group whose signing certificates or referenced CAs the
    /// chain verifies to; the device will authenticate with `credential`.
    fn group_of_chain(
        &self,
        registration_id: &str,
        leaf: &CertificateDer<'static>,
        intermediates: &[CertificateDer<'static>],
        credential: DeviceCredential,
    ) -> Result<Registrant, ServiceError> {
        let groups = list::<EnrollmentGroup>(&self.store)?;
        let registered = authorities::list(&self.store).map_err(server_error)?;
        let mut reasons = Vec::new();
        for g in groups {
            let Some(x509) = g.settings.attestation.x509() else {
                continue;
            };
            let mut anchors = Vec::new();
            if let Some(signing) = &x509.signing_certificates {
                match read(signing, "signing") {
                    Ok(certs) => anchors.extend(certs.into_iter().map(|(der, _)| der)),
                    Err(e) => {
                        tracing::warn!(group = %g.enrollment_group_id, error = %e, "unreadable signing certificate skipped")
                    }
                }
            }
            if let Some(refs) = &x509.ca_references {
                for name in refs.given() {
                    anchors.extend(
                        registered
                            .iter()
                            .filter(|ca| ca.name == name)
                            .map(|ca| ca.der.clone()),
                    );
                }
            }
            match chain::verify(anchors, leaf, intermediates) {
                Ok(()) => {
                    return Ok(Registrant {
                        registration_id: registration_id.to_string(),
                        device_id: registration_id.to_string(),
                        credential,
                        settings: g.settings,
                    });
                }
                Err(e) => reasons.push(format!("{}: {e}", g.enrollment_group_id)),
            }
        }
        tracing::info!(registration = %registration_id, reasons = ?reasons, "no X.509 enrollment accepts the certificate");
        Err(unauthorized(format!(
            "No enrollment of registration '{registration_id}' accepts this certificate (no individual enrollment, and no enrollment group's CA signed it)."
        )))
    }
}
