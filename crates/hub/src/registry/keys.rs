//! Service-side key regeneration (`POST /devices/keys/regenerate`, what
//! `az iot hub device-identity renew-key` and `module-identity renew-key` call for
//! `--kt primary|secondary|both`): new random keys for each listed identity, each written
//! atomically, and the connections that used a replaced key closed.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{HubState, Identity, bad_request, next_etag};
use crate::policies::random_key;
use iothub::device::AuthType;
use iothub::error::{ErrorCode, ServiceError};

/// Which key to regenerate (the request's `policyKey`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum PolicyKey {
    #[serde(rename = "primaryKey")]
    Primary,
    #[serde(rename = "secondaryKey")]
    Secondary,
    #[serde(rename = "both")]
    Both,
}

impl PolicyKey {
    fn name(self) -> &'static str {
        match self {
            PolicyKey::Primary => "primaryKey",
            PolicyKey::Secondary => "secondaryKey",
            PolicyKey::Both => "both",
        }
    }
}

/// One identity the request names.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    id: String,
    #[serde(default)]
    module_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    policy_key: PolicyKey,
    devices: Vec<Target>,
}

/// The outcome of a regeneration request: Azure's BulkRegenerateKeyResult.
pub struct KeyRegeneration {
    pub policy_key: PolicyKey,
    pub rotated: Vec<Value>,
    pub errors: Vec<Value>,
}

impl KeyRegeneration {
    pub fn to_json(&self) -> Value {
        json!({
            "policyKey": self.policy_key.name(),
            "rotatedKeys": self.rotated,
            "errors": self.errors,
        })
    }
}

impl HubState {
    /// Parses and performs a key regeneration request. A malformed request, or one naming
    /// more identities than a bulk registry call may, fails whole; an identity that cannot
    /// be changed (missing, not SAS) is reported in `errors` and the others go ahead.
    pub fn regenerate_keys(&self, body: &Value) -> Result<KeyRegeneration, ServiceError> {
        let req: Request = serde_json::from_value(body.clone()).map_err(|e| {
            bad_request(format!(
                "The key regeneration request is not valid: {e}; policyKey is one of primaryKey, secondaryKey or both."
            ))
        })?;
        if req.devices.len() > super::MAX_BULK_DEVICES {
            return Err(ServiceError::new(
                ErrorCode::TooManyDevices,
                format!(
                    "Too many devices: {} were given and at most {} are allowed per call.",
                    req.devices.len(),
                    super::MAX_BULK_DEVICES
                ),
            ));
        }
        let mut out = KeyRegeneration {
            policy_key: req.policy_key,
            rotated: Vec::new(),
            errors: Vec::new(),
        };
        for t in &req.devices {
            match self.regenerate_key(&t.id, t.module_id.as_deref(), req.policy_key) {
                Ok(id) => {
                    let sym = id.device.authentication.symmetric_key.unwrap_or_default();
                    out.rotated.push(json!({
                        "id": t.id,
                        "moduleId": t.module_id,
                        "primaryKey": sym.primary_key,
                        "secondaryKey": sym.secondary_key,
                    }));
                }
                Err(e) => out.errors.push(json!({
                    "id": t.id,
                    "moduleId": t.module_id,
                    "errorCode": e.code.name(),
                    "errorStatus": e.message,
                })),
            }
        }
        Ok(out)
    }

    /// New random key(s) for one SAS identity, in one atomic read-modify-write with a new
    /// etag; then the connection that used a replaced key is closed.
    pub fn regenerate_key(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        which: PolicyKey,
    ) -> Result<Identity, ServiceError> {
        let (id, ()) = self.modify(
            device_id,
            module_id,
            |id| {
                let auth = &mut id.device.authentication;
                if auth.auth_type != AuthType::Sas {
                    return Err(ServiceError::new(
                        ErrorCode::InvalidOperation,
                        format!(
                            "{device_id} does not authenticate with symmetric keys, so it has none to regenerate."
                        ),
                    ));
                }
                let sym = auth.symmetric_key.get_or_insert_with(Default::default);
                if which != PolicyKey::Secondary {
                    sym.primary_key = Some(random_key());
                }
                if which != PolicyKey::Primary {
                    sym.secondary_key = Some(random_key());
                }
                id.device.etag = next_etag(&id.device.etag);
                Ok(())
            },
            |_, _| {},
        )?;
        self.revoke_stale_sessions(&id);
        Ok(id)
    }
}
