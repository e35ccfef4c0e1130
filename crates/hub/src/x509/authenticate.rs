//! X.509 authentication at CONNECT: the certificate chain a client presented in the TLS
//! handshake, checked against the identity it claims, as Azure IoT Hub checks it:
//!
//! * `selfSigned`: the leaf's SHA-1 or SHA-256 thumbprint equals the identity's primary or
//!   secondary thumbprint (hex, either case) and the leaf is within its validity period.
//!   The subject does not matter.
//! * `certificateAuthority`: the chain verifies up to a CA certificate registered on the
//!   hub, every certificate in it is within its validity period, and the leaf's subject CN
//!   is the device id (`{deviceId}/{moduleId}` for a module).
//!
//! Any other identity type, an unknown or disabled identity, is refused. The private key
//! was already proven in the handshake (`tls_client_auth`).

use rustls_pki_types::CertificateDer;

use super::certificate::{self, CertificateFacts};
use super::{authorities, chain};
use crate::registry::AuthMethod;
use crate::sessions::{Credential, IdentityKey};
use crate::state::HubState;
use iothub::device::{AuthType, DeviceStatus};
use iothub::error::{ErrorCode, ServiceError};

fn unauthorized(why: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::IotHubUnauthorizedAccess, why.into())
}

/// The subject CN a CA-signed certificate must carry for this identity.
pub fn expected_common_name(key: &IdentityKey) -> String {
    match &key.1 {
        Some(m) => format!("{}/{m}", key.0),
        None => key.0.clone(),
    }
}

impl HubState {
    /// Checks the certificate chain (leaf first) a device or module presented on connect.
    pub fn authenticate_certificate(
        &self,
        key: &IdentityKey,
        chain: &[CertificateDer<'static>],
    ) -> Result<AuthMethod, ServiceError> {
        let (leaf, intermediates) = chain
            .split_first()
            .ok_or_else(|| unauthorized("no client certificate was presented"))?;
        let id = self
            .load(&key.0, key.1.as_deref())
            .map_err(|_| unauthorized("the identity is not registered"))?;
        if id.device.status != DeviceStatus::Enabled {
            return Err(unauthorized("the device is disabled"));
        }
        let facts = certificate::inspect(leaf)
            .map_err(|e| unauthorized(format!("the client certificate: {e}")))?;
        let now = chrono::Utc::now().timestamp();
        if !facts.valid_at(now) {
            return Err(unauthorized(
                "the client certificate is outside its validity period",
            ));
        }
        let scope = if key.1.is_some() { "module" } else { "device" };
        let auth = &id.device.authentication;
        let (issuer, credential) = match auth.auth_type {
            AuthType::SelfSigned => {
                let thumbs = auth.x509_thumbprint.clone().unwrap_or_default();
                let matched = [thumbs.primary_thumbprint, thumbs.secondary_thumbprint]
                    .into_iter()
                    .flatten()
                    .find(|t| facts.has_thumbprint(t));
                let Some(thumbprint) = matched else {
                    return Err(unauthorized(
                        "the certificate's thumbprint is neither the identity's primary nor its secondary thumbprint",
                    ));
                };
                ("iothub", Credential::thumbprint(&thumbprint))
            }
            AuthType::CertificateAuthority => {
                self.check_ca_signed(key, &facts, leaf, intermediates)?;
                ("external", Credential::CertificateAuthority)
            }
            AuthType::Sas | AuthType::None => {
                return Err(unauthorized(
                    "the identity does not authenticate with X.509 certificates",
                ));
            }
        };
        Ok(AuthMethod {
            scope,
            kind: "x509Certificate",
            issuer,
            generation_id: id.device.generation_id.clone(),
            credential,
        })
    }

    fn check_ca_signed(
        &self,
        key: &IdentityKey,
        facts: &CertificateFacts,
        leaf: &CertificateDer<'static>,
        intermediates: &[CertificateDer<'static>],
    ) -> Result<(), ServiceError> {
        let expected = expected_common_name(key);
        if facts.common_name.as_deref() != Some(expected.as_str()) {
            return Err(unauthorized(format!(
                "the certificate's subject CN is {:?}, not {expected:?}",
                facts.common_name.as_deref().unwrap_or("")
            )));
        }
        let authorities = authorities::list(&self.store)
            .map_err(|e| ServiceError::new(ErrorCode::ServerError, e.to_string()))?;
        if authorities.is_empty() {
            return Err(unauthorized("no CA certificate is registered on the hub"));
        }
        chain::verify(
            authorities.into_iter().map(|ca| ca.der),
            leaf,
            intermediates,
        )
        .map_err(|e| {
            unauthorized(format!(
                "the certificate chain does not verify up to a registered CA: {e}"
            ))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_carry_device_and_module_in_their_common_name() {
        assert_eq!(expected_common_name(&("d1".into(), None)), "d1");
        assert_eq!(
            expected_common_name(&("d1".into(), Some("m1".into()))),
            "d1/m1"
        );
    }
}
