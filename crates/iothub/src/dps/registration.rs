//! The registration request a device sends and the operation status DPS answers with
//! (RegistrationOperationStatus and its DeviceRegistrationState), as the DPS runtime REST
//! reference and the SDKs spell them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `{"registrationId": "...", "payload": {...}}`; Python sends `"payload": null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationRequest {
    #[serde(default)]
    pub registration_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

impl RegistrationRequest {
    /// The IoT Plug and Play model id a device announces in its payload (`modelId`, or
    /// `iotcModelId` as older IoT Central samples send it).
    pub fn model_id(&self) -> Option<&str> {
        let p = self.payload.as_ref()?;
        p.get("modelId")
            .or_else(|| p.get("iotcModelId"))
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RegistrationStatus {
    Unassigned,
    Assigning,
    Assigned,
    Failed,
    Disabled,
}

/// DeviceRegistrationState: the outcome of a registration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationState {
    pub registration_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_hub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub status: RegistrationStatus,
    /// `initialAssignment` on a first registration, `deviceDataMigrated` after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub substatus: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// RegistrationOperationStatus: what register and the status poll return.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationOperation {
    pub operation_id: String,
    pub status: RegistrationStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_state: Option<RegistrationState>,
}

impl RegistrationOperation {
    /// The first answer to a register request: accepted, result to be polled for.
    pub fn assigning(operation_id: &str) -> Self {
        Self {
            operation_id: operation_id.to_owned(),
            status: RegistrationStatus::Assigning,
            registration_state: None,
        }
    }
}

/// DPS's error body: `{"errorCode": 401002, "trackingId", "message", "timestampUtc"}`
/// (the DPS runtime REST reference's ProvisioningServiceErrorDetails).
pub fn error_body(error_code: u32, message: &str, tracking_id: &str, now: DateTime<Utc>) -> Value {
    serde_json::json!({
        "errorCode": error_code,
        "trackingId": tracking_id,
        "message": message,
        "timestampUtc": crate::device::format_time(now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_as_the_sdks_send_them() {
        let python: RegistrationRequest =
            serde_json::from_str(r#"{"payload": null, "registrationId": "dev1"}"#).unwrap();
        assert_eq!(python.registration_id.as_deref(), Some("dev1"));
        assert_eq!(python.model_id(), None);
        let pnp: RegistrationRequest = serde_json::from_value(
            json!({"registrationId": "d", "payload": {"modelId": "dtmi:com:example:Thermostat;1"}}),
        )
        .unwrap();
        assert_eq!(pnp.model_id(), Some("dtmi:com:example:Thermostat;1"));
        let central: RegistrationRequest =
            serde_json::from_value(json!({"payload": {"iotcModelId": "dtmi:a;1"}})).unwrap();
        assert_eq!(central.model_id(), Some("dtmi:a;1"));
    }

    #[test]
    fn error_bodies() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(
            error_body(401002, "no enrollment", "t", at),
            json!({"errorCode": 401002, "trackingId": "t", "message": "no enrollment",
                   "timestampUtc": "2023-11-14T22:13:20.000Z"})
        );
    }

    #[test]
    fn operation_status_from_the_docs() {
        // The first response observed from DPS.
        let first: RegistrationOperation = serde_json::from_str(
            r#"{"operationId":"5.71cf7e385566aa10.4469ed4c-dc19-4af8-8b36-9ef6396ac1b3","status":"assigning"}"#,
        )
        .unwrap();
        assert_eq!(
            first,
            RegistrationOperation::assigning(
                "5.71cf7e385566aa10.4469ed4c-dc19-4af8-8b36-9ef6396ac1b3"
            )
        );
        let done = RegistrationOperation {
            operation_id: "op".into(),
            status: RegistrationStatus::Assigned,
            registration_state: Some(RegistrationState {
                registration_id: "dev1".into(),
                created_date_time_utc: Some("2026-01-01T00:00:00.000Z".into()),
                assigned_hub: Some("localhost".into()),
                device_id: Some("dev1".into()),
                status: RegistrationStatus::Assigned,
                substatus: Some("initialAssignment".into()),
                error_code: None,
                error_message: None,
                last_updated_date_time_utc: None,
                etag: Some("\"1\"".into()),
                payload: None,
            }),
        };
        assert_eq!(
            serde_json::to_value(&done).unwrap(),
            json!({"operationId": "op", "status": "assigned", "registrationState": {
                "registrationId": "dev1", "createdDateTimeUtc": "2026-01-01T00:00:00.000Z",
                "assignedHub": "localhost", "deviceId": "dev1", "status": "assigned",
                "substatus": "initialAssignment", "etag": "\"1\""}})
        );
    }
}
