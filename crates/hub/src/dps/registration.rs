//! Device registration: which enrollment a registration's SAS token proves (certificates:
//! `x509_registration`), what the registration does to the registry (create or keep the
//! device with the enrollment's or the derived keys, or as a self-signed X.509 identity;
//! initial twin once, model id), and the operation a status poll reads.
//! The result is kept per registration id, so polls and re-registrations survive a restart.

use serde_json::json;

use super::enrollments::{get, list};
use crate::registry::next_etag;
use crate::state::HubState;
use crate::store::RegistrationRecord;
use iothub::device::{AuthType, Authentication, SymmetricKey, X509Thumbprint, format_time};
use iothub::dps::enrollment::{EnrollmentGroup, EnrollmentSettings, IndividualEnrollment};
use iothub::dps::registration::{
    RegistrationOperation, RegistrationRequest, RegistrationState, RegistrationStatus,
};
use iothub::dps::{REGISTRATION_KEY_NAME, registration_resource};
use iothub::error::{ErrorCode, ServiceError};
use iothub::sas::{SasToken, resource_covers, verify_token};

/// Seconds a device is told to wait before polling (DPS's `retry-after`).
pub const RETRY_AFTER_SECS: u32 = 1;

/// A registration whose token or certificate an enrollment accepted.
#[derive(Clone, Debug)]
pub struct Registrant {
    pub registration_id: String,
    pub device_id: String,
    pub credential: DeviceCredential,
    pub settings: EnrollmentSettings,
}

/// How the provisioned device authenticates to the hub.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceCredential {
    /// Symmetric keys: the individual enrollment's, or derived from the group's.
    Keys(SymmetricKey),
    /// `selfSigned`: the thumbprints of the enrolled certificates (individual) or of the
    /// certificate the device registered with (group).
    Thumbprints(X509Thumbprint),
}

impl DeviceCredential {
    /// The registry's authentication of a device with this credential.
    fn authentication(&self) -> Authentication {
        match self {
            DeviceCredential::Keys(keys) => {
                let mut keys = keys.clone();
                if keys.secondary_key.is_none() {
                    keys.secondary_key = keys.primary_key.clone();
                }
                Authentication {
                    auth_type: AuthType::Sas,
                    symmetric_key: Some(keys),
                    x509_thumbprint: None,
                }
            }
            DeviceCredential::Thumbprints(t) => Authentication {
                auth_type: AuthType::SelfSigned,
                symmetric_key: None,
                x509_thumbprint: Some(t.clone()),
            },
        }
    }
}

/// Whether two authentications carry the same credential (an absent thumbprint object and
/// one with no thumbprints are the same).
fn same_credential(a: &Authentication, b: &Authentication) -> bool {
    let thumbs = |x: &Authentication| {
        x.x509_thumbprint
            .clone()
            .filter(|t| t.primary_thumbprint.is_some() || t.secondary_thumbprint.is_some())
    };
    a.auth_type == b.auth_type && a.symmetric_key == b.symmetric_key && thumbs(a) == thumbs(b)
}

pub(super) fn unauthorized(why: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::IotHubUnauthorizedAccess, why)
}

impl HubState {
    /// Checks the SAS token a device presents to register `registration_id` under
    /// `id_scope`: an individual enrollment of that id, else any enrollment group whose
    /// derived key signed it.
    pub fn dps_authenticate(
        &self,
        id_scope: &str,
        registration_id: &str,
        token: &str,
    ) -> Result<Registrant, ServiceError> {
        if id_scope != self.id_scope {
            return Err(unauthorized(format!(
                "The ID scope '{id_scope}' is not this hub's ('{}').",
                self.id_scope
            )));
        }
        iothub::dps::validate_registration_id(registration_id).map_err(unauthorized)?;
        let token = SasToken::parse(token)
            .map_err(|e| unauthorized(format!("The SAS token is invalid: {e}.")))?;
        if token
            .key_name
            .as_deref()
            .is_some_and(|k| k != REGISTRATION_KEY_NAME)
        {
            return Err(unauthorized(
                "The SAS token's skn must be 'registration' or absent.",
            ));
        }
        if !resource_covers(
            &token.resource,
            &registration_resource(id_scope, registration_id),
        ) {
            return Err(unauthorized(format!(
                "The SAS token is scoped to '{}', not to this registration.",
                token.resource
            )));
        }
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let signed_by =
            |keys: &SymmetricKey| keys.present().any(|k| verify_token(&token, k, now).is_ok());
        let candidates: Vec<(SymmetricKey, Registrant)> =
            match get::<IndividualEnrollment>(&self.store, registration_id) {
                Ok(e) => vec![(
                    e.settings.attestation.symmetric_key.clone(),
                    Registrant {
                        registration_id: registration_id.to_string(),
                        device_id: e.device_id().to_string(),
                        credential: DeviceCredential::Keys(
                            e.settings.attestation.symmetric_key.clone(),
                        ),
                        settings: e.settings,
                    },
                )],
                Err(e) if e.code.http_status() == 404 => list::<EnrollmentGroup>(&self.store)?
                    .into_iter()
                    .filter(|g| g.settings.attestation.is_symmetric_key())
                    .filter_map(|g| {
                        let keys = g.device_keys(registration_id).ok()?;
                        Some((
                            keys.clone(),
                            Registrant {
                                registration_id: registration_id.to_string(),
                                device_id: registration_id.to_string(),
                                credential: DeviceCredential::Keys(keys),
                                settings: g.settings,
                            },
                        ))
                    })
                    .collect(),
                Err(e) => return Err(e),
            };
        candidates
            .into_iter()
            .filter(|(_, c)| c.settings.attestation.is_symmetric_key())
            .find(|(keys, _)| signed_by(keys))
            .map(|(_, c)| c)
            .ok_or_else(|| {
                unauthorized(format!(
                    "No enrollment of registration '{registration_id}' accepts this token (unknown registration, bad key or expired token)."
                ))
            })
    }

    /// Registers: assigns the device to this hub (or answers `disabled`), stores the result
    /// and returns the operation id a status poll asks for.
    pub fn dps_register(
        &self,
        who: &Registrant,
        request: &RegistrationRequest,
    ) -> Result<String, ServiceError> {
        if let Some(id) = &request.registration_id
            && id != &who.registration_id
        {
            return Err(ServiceError::new(
                ErrorCode::ArgumentInvalid,
                format!(
                    "The registrationId '{id}' in the body does not match '{}'.",
                    who.registration_id
                ),
            ));
        }
        let now = format_time(chrono::Utc::now());
        let previous = self
            .store
            .registration_get(&who.registration_id)?
            .and_then(|r| serde_json::from_str::<RegistrationOperation>(&r.result).ok())
            .and_then(|op| op.registration_state);
        let state = if who.settings.enabled() {
            self.assign_device(who, request.model_id())?;
            RegistrationState {
                registration_id: who.registration_id.clone(),
                created_date_time_utc: previous
                    .and_then(|p| p.created_date_time_utc)
                    .or_else(|| Some(now.clone())),
                assigned_hub: Some(self.host_name.clone()),
                device_id: Some(who.device_id.clone()),
                status: RegistrationStatus::Assigned,
                substatus: Some("initialAssignment".into()),
                error_code: None,
                error_message: None,
                last_updated_date_time_utc: Some(now),
                etag: Some(uuid::Uuid::new_v4().simple().to_string()),
                payload: None,
            }
        } else {
            RegistrationState {
                registration_id: who.registration_id.clone(),
                created_date_time_utc: None,
                assigned_hub: None,
                device_id: None,
                status: RegistrationStatus::Disabled,
                substatus: None,
                error_code: None,
                error_message: Some("The enrollment is disabled.".into()),
                last_updated_date_time_utc: Some(now),
                etag: None,
                payload: None,
            }
        };
        let operation_id = format!(
            "5.{:016x}.{}",
            rand::random::<u64>(),
            uuid::Uuid::new_v4().hyphenated()
        );
        let op = RegistrationOperation {
            operation_id: operation_id.clone(),
            status: state.status,
            registration_state: Some(state),
        };
        let result = serde_json::to_string(&op)
            .map_err(|e| ServiceError::new(ErrorCode::ServerError, e.to_string()))?;
        self.store.registration_put(
            &who.registration_id,
            &RegistrationRecord {
                operation_id: operation_id.clone(),
                result,
            },
        )?;
        Ok(operation_id)
    }

    /// The result of a registration's operation, as a status poll returns it.
    pub fn dps_operation(
        &self,
        registration_id: &str,
        operation_id: &str,
    ) -> Result<RegistrationOperation, ServiceError> {
        self.store
            .registration_get(registration_id)?
            .filter(|r| r.operation_id == operation_id)
            .and_then(|r| serde_json::from_str(&r.result).ok())
            .ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::DeviceNotFound,
                    format!("The operation '{operation_id}' of registration '{registration_id}' does not exist."),
                )
            })
    }

    /// Creates the device with the registrant's credential and the initial twin, or keeps an
    /// existing one (its twin untouched) and brings its credential in line; records the
    /// model id.
    fn assign_device(&self, who: &Registrant, model_id: Option<&str>) -> Result<(), ServiceError> {
        let wanted = who.credential.authentication();
        let body = json!({"deviceId": who.device_id, "authentication": wanted});
        let created = match self.put_identity(&who.device_id, None, &body, None) {
            Ok(_) => true,
            Err(e) if e.code == ErrorCode::DeviceAlreadyExists => false,
            Err(e) => return Err(e),
        };
        if created && let Some(twin) = &who.settings.initial_twin {
            let update = serde_json::to_value(twin)
                .map_err(|e| ServiceError::new(ErrorCode::ServerError, e.to_string()))?;
            self.update_twin(&who.device_id, None, &update, None, false)?;
        }
        self.modify(
            &who.device_id,
            None,
            |id| {
                let auth = &mut id.device.authentication;
                if !same_credential(auth, &wanted) {
                    *auth = wanted.clone();
                    id.device.etag = next_etag(&id.device.etag);
                }
                if let Some(m) = model_id {
                    id.model_id = Some(m.to_string());
                }
                Ok(())
            },
            |_, _| {},
        )?;
        Ok(())
    }
}
