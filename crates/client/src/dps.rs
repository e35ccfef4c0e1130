//! Device provisioning: register with the Device Provisioning Service over HTTPS (the
//! runtime REST API the SDKs' HTTP transports use) and learn the assigned hub and device
//! id. Works against Azure's global endpoint and against the local hub, which is its own
//! DPS. A device proves itself with a symmetric key (a SAS token in the Authorization
//! header) or with its X.509 certificate (presented in the TLS handshake, no header).
//! `cache` keeps an assignment so a restart does not provision again.

pub mod cache;

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use super::client_certificate::ClientCertificate;
use super::tls::Trust;
use iothub::dps::registration::{RegistrationOperation, RegistrationStatus};
use iothub::dps::{REGISTRATION_KEY_NAME, registration_resource};
use iothub::encoding::url_encode;
use iothub::sas::{SasError, derive_device_key, generate_token};

/// Azure's global provisioning endpoint.
pub const GLOBAL_HOST: &str = "global.azure-devices-provisioning.net";
/// The runtime API version sent (the DPS runtime REST reference's current one).
const API_VERSION: &str = "2021-06-01";
/// How long a registration may take, polls included, before giving up.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(120);
/// Wait between polls when DPS gives no retry-after (the SDKs' default), and the
/// bounds put on one it gives, so a bad header can neither spin nor stall the client.
const DEFAULT_POLL: Duration = Duration::from_secs(2);
const MIN_POLL: Duration = Duration::from_millis(500);
const MAX_POLL: Duration = Duration::from_secs(30);
/// Lifetime of the registration's SAS token.
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// How a device proves itself to DPS.
#[derive(Clone)]
pub enum Attestation {
    /// An individual enrollment's symmetric key (base64).
    DeviceKey(String),
    /// An enrollment group's key (base64): the device key is derived from it.
    GroupKey(String),
    /// The device's certificate (individual X.509 enrollment, or one signed by a group's CA).
    Certificate(ClientCertificate),
}

/// Where and as whom to register.
#[derive(Clone)]
pub struct Registration {
    pub host: String,
    pub port: u16,
    pub id_scope: String,
    pub registration_id: String,
    pub attestation: Attestation,
    /// IoT Plug and Play model id, sent in the payload as IoT Central expects it.
    pub model_id: Option<String>,
}

impl Registration {
    /// The device's own key: the individual key, or the one derived from the group key;
    /// none for a certificate.
    pub fn device_key(&self) -> Result<Option<String>, ProvisioningError> {
        match &self.attestation {
            Attestation::DeviceKey(k) => {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD
                    .decode(k.trim())
                    .map_err(|_| ProvisioningError::Key(SasError::BadKey))?;
                Ok(Some(k.trim().to_owned()))
            }
            Attestation::GroupKey(g) => derive_device_key(g, &self.registration_id)
                .map(Some)
                .map_err(ProvisioningError::Key),
            Attestation::Certificate(_) => Ok(None),
        }
    }

    fn certificate(&self) -> Option<&ClientCertificate> {
        match &self.attestation {
            Attestation::Certificate(c) => Some(c),
            _ => None,
        }
    }
}

/// What DPS assigned.
#[derive(Clone, Debug, PartialEq)]
pub struct Assignment {
    pub assigned_hub: String,
    pub device_id: String,
    /// The key to connect with (derived for a group enrollment); none for a device that
    /// connects with its certificate.
    pub device_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProvisioningError {
    #[error("the key is not valid base64: {0}")]
    Key(SasError),
    #[error(transparent)]
    Tls(#[from] super::tls::TlsError),
    #[error("cannot reach the provisioning service at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error(
        "the provisioning service refused the registration's key or certificate (401): check it, --registration-id and --dps-scope"
    )]
    Unauthorized,
    #[error("the provisioning service refused the registration with status {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the registration of {registration_id} ended {status}: {message}")]
    NotAssigned {
        registration_id: String,
        status: String,
        message: String,
    },
    #[error("the provisioning service's answer is unreadable: {0}")]
    BadResponse(String),
    #[error("the registration was not assigned within {0:?}")]
    Timeout(Duration),
}

/// Registers and waits for the outcome.
pub async fn register(reg: &Registration, trust: &Trust) -> Result<Assignment, ProvisioningError> {
    let device_key = reg.device_key()?;
    let tls = trust.client_config_with_identity(&[b"http/1.1"], reg.certificate())?;
    let base = match reg.port {
        443 => format!("https://{}", reg.host),
        p => format!("https://{}:{p}", reg.host),
    };
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*tls).clone())
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| unreachable(&base, e))?;
    let resource = registration_resource(&reg.id_scope, &reg.registration_id);
    let expiry = now_unix() + TOKEN_LIFETIME.as_secs();
    // With a certificate there is no token: the TLS handshake proves the device.
    let token = device_key
        .as_deref()
        .map(|key| generate_token(&resource, key, Some(REGISTRATION_KEY_NAME), expiry))
        .transpose()
        .map_err(ProvisioningError::Key)?;
    let authorize = |r: reqwest::RequestBuilder| match &token {
        Some(t) => r.header("authorization", t),
        None => r,
    };
    let registration_path = format!(
        "{base}/{}/registrations/{}",
        url_encode(&reg.id_scope),
        url_encode(&reg.registration_id)
    );
    let body = match &reg.model_id {
        Some(m) => json!({"registrationId": reg.registration_id, "payload": {"modelId": m}}),
        None => json!({"registrationId": reg.registration_id}),
    };

    let deadline = tokio::time::Instant::now() + REGISTRATION_TIMEOUT;
    let send = authorize(http.put(format!(
        "{registration_path}/register?api-version={API_VERSION}"
    )))
    .json(&body);
    let (mut op, mut wait) = read_operation(send.send().await, &base).await?;
    loop {
        match op.status {
            RegistrationStatus::Assigned => return assignment(op, device_key),
            RegistrationStatus::Assigning | RegistrationStatus::Unassigned => {}
            RegistrationStatus::Failed | RegistrationStatus::Disabled => {
                let state = op.registration_state.unwrap_or_else(|| empty_state(reg));
                return Err(ProvisioningError::NotAssigned {
                    registration_id: reg.registration_id.clone(),
                    status: format!("{:?}", op.status).to_lowercase(),
                    message: state
                        .error_message
                        .unwrap_or_else(|| "no reason given".into()),
                });
            }
        }
        if tokio::time::Instant::now() + wait > deadline {
            return Err(ProvisioningError::Timeout(REGISTRATION_TIMEOUT));
        }
        tokio::time::sleep(wait).await;
        let poll = authorize(http.get(format!(
            "{registration_path}/operations/{}?api-version={API_VERSION}",
            url_encode(&op.operation_id)
        )));
        (op, wait) = read_operation(poll.send().await, &base).await?;
    }
}

fn empty_state(reg: &Registration) -> iothub::dps::registration::RegistrationState {
    iothub::dps::registration::RegistrationState {
        registration_id: reg.registration_id.clone(),
        created_date_time_utc: None,
        assigned_hub: None,
        device_id: None,
        status: RegistrationStatus::Failed,
        substatus: None,
        error_code: None,
        error_message: None,
        last_updated_date_time_utc: None,
        etag: None,
        payload: None,
    }
}

fn assignment(
    op: RegistrationOperation,
    device_key: Option<String>,
) -> Result<Assignment, ProvisioningError> {
    let state = op.registration_state.ok_or_else(|| {
        ProvisioningError::BadResponse("an assigned registration without its state".into())
    })?;
    match (state.assigned_hub, state.device_id) {
        (Some(assigned_hub), Some(device_id)) => Ok(Assignment {
            assigned_hub,
            device_id,
            device_key,
        }),
        _ => Err(ProvisioningError::BadResponse(
            "an assigned registration without assignedHub and deviceId".into(),
        )),
    }
}

/// The operation in a register or poll answer, and how long to wait before the next poll.
async fn read_operation(
    sent: reqwest::Result<reqwest::Response>,
    base: &str,
) -> Result<(RegistrationOperation, Duration), ProvisioningError> {
    let resp = sent.map_err(|e| unreachable(base, e))?;
    let status = resp.status();
    let wait = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(DEFAULT_POLL, |s| {
            Duration::from_secs(s).clamp(MIN_POLL, MAX_POLL)
        });
    let body = read_capped(resp, base).await?;
    if status == StatusCode::UNAUTHORIZED {
        return Err(ProvisioningError::Unauthorized);
    }
    if !status.is_success() {
        return Err(ProvisioningError::Refused {
            status: status.as_u16(),
            message: error_message(&body),
        });
    }
    let op =
        serde_json::from_slice(&body).map_err(|e| ProvisioningError::BadResponse(e.to_string()))?;
    Ok((op, wait))
}

/// A DPS answer is a small JSON document: a body larger than this is refused rather than
/// read whole, whatever the server sends.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

async fn read_capped(
    mut resp: reqwest::Response,
    base: &str,
) -> Result<Vec<u8>, ProvisioningError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(base, e))? {
        if body.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(ProvisioningError::BadResponse(format!(
                "the answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// DPS's `message` from an error body, or the body itself when it has none.
fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

fn unreachable(base: &str, e: reqwest::Error) -> ProvisioningError {
    ProvisioningError::Unreachable {
        url: base.to_owned(),
        reason: crate::http_error::describe(&e),
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_key_derives_the_device_key_as_dps_does() {
        let reg = Registration {
            host: GLOBAL_HOST.into(),
            port: 443,
            id_scope: "0ne00000001".into(),
            registration_id: "sensor-1".into(),
            attestation: Attestation::GroupKey("c2VjcmV0LWdyb3VwLWtleQ==".into()),
            model_id: None,
        };
        let derived = reg.device_key().unwrap().unwrap();
        assert_eq!(
            derived,
            derive_device_key("c2VjcmV0LWdyb3VwLWtleQ==", "sensor-1").unwrap()
        );
        assert_ne!(derived, "c2VjcmV0LWdyb3VwLWtleQ==");
        let bad = Registration {
            attestation: Attestation::DeviceKey("not base64!".into()),
            ..reg
        };
        assert!(matches!(bad.device_key(), Err(ProvisioningError::Key(_))));
    }

    #[test]
    fn an_error_body_gives_its_message() {
        assert_eq!(
            error_message(br#"{"errorCode":404201,"message":"Enrollment not found"}"#),
            "Enrollment not found"
        );
        assert_eq!(error_message(b"plain"), "plain");
    }
}
