//! Registry JSON for devices and modules (protocol doc §5.4), id validation, and the timestamp
//! format used in registry and twin JSON. Every field has a serde default because SDK create
//! bodies send only some of them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The "never happened" timestamp Azure uses for activity and connection times.
pub const NEVER: &str = "0001-01-01T00:00:00Z";

/// Longest device or module id.
pub const MAX_ID_LEN: usize = 128;

/// Punctuation allowed in device and module ids besides ASCII letters and digits.
const ID_PUNCTUATION: &str = "-:.+%_#*?!(),=@;$'";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeviceIdentity {
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub generation_id: String,
    #[serde(default)]
    pub etag: String,
    #[serde(default)]
    pub connection_state: ConnectionState,
    #[serde(default)]
    pub status: DeviceStatus,
    #[serde(default)]
    pub status_reason: Option<String>,
    #[serde(default = "never")]
    pub connection_state_updated_time: String,
    #[serde(default = "never")]
    pub status_updated_time: String,
    #[serde(default = "never")]
    pub last_activity_time: String,
    #[serde(default)]
    pub cloud_to_device_message_count: u64,
    #[serde(default)]
    pub authentication: Authentication,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub device_scope: Option<String>,
    #[serde(default)]
    pub parent_scopes: Vec<String>,
}

/// Module registry entry (no status, no capabilities; `managedBy` set by IoT Edge).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModuleIdentity {
    #[serde(default)]
    pub module_id: String,
    #[serde(default)]
    pub managed_by: Option<String>,
    #[serde(default)]
    pub device_id: String,
    #[serde(default)]
    pub generation_id: String,
    #[serde(default)]
    pub etag: String,
    #[serde(default)]
    pub connection_state: ConnectionState,
    #[serde(default = "never")]
    pub connection_state_updated_time: String,
    #[serde(default = "never")]
    pub last_activity_time: String,
    #[serde(default)]
    pub cloud_to_device_message_count: u64,
    #[serde(default)]
    pub authentication: Authentication,
}

fn never() -> String {
    NEVER.to_owned()
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConnectionState {
    Connected,
    #[default]
    Disconnected,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeviceStatus {
    #[default]
    Enabled,
    Disabled,
}

/// Missing `authentication` means SAS with keys the hub generates (Node normalises it so).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    #[serde(rename = "type", default)]
    pub auth_type: AuthType,
    #[serde(default)]
    pub symmetric_key: Option<SymmetricKey>,
    #[serde(default)]
    pub x509_thumbprint: Option<X509Thumbprint>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AuthType {
    #[default]
    Sas,
    SelfSigned,
    CertificateAuthority,
    None,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SymmetricKey {
    #[serde(default)]
    pub primary_key: Option<String>,
    #[serde(default)]
    pub secondary_key: Option<String>,
}

impl SymmetricKey {
    /// The keys that are set, primary first.
    pub fn present(&self) -> impl Iterator<Item = &str> {
        [&self.primary_key, &self.secondary_key]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|k| !k.is_empty())
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct X509Thumbprint {
    #[serde(default)]
    pub primary_thumbprint: Option<String>,
    #[serde(default)]
    pub secondary_thumbprint: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Capabilities {
    #[serde(default)]
    pub iot_edge: bool,
}

/// Why a device or module id was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("the {kind} id is empty")]
    Empty { kind: &'static str },
    #[error("the {kind} id is {len} characters long; the limit is 128")]
    TooLong { kind: &'static str, len: usize },
    #[error(
        "the {kind} id has '{ch}' at position {position}; use ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '"
    )]
    BadChar {
        kind: &'static str,
        ch: char,
        position: usize,
    },
}

/// ≤128, ASCII alnum + - : . + % _ # * ? ! ( ) , = @ ; $ '
pub fn validate_device_id(id: &str) -> Result<(), IdError> {
    validate_id("device", id)
}

/// Same rules as device ids.
pub fn validate_module_id(id: &str) -> Result<(), IdError> {
    validate_id("module", id)
}

fn validate_id(kind: &'static str, id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if let Some((position, ch)) = id
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || ID_PUNCTUATION.contains(*c)))
    {
        return Err(IdError::BadChar { kind, ch, position });
    }
    // All ASCII by now, so bytes == characters.
    if id.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            len: id.len(),
        });
    }
    Ok(())
}

const EDGE_SCOPE_PREFIX: &str = "ms-azure-iot-edge://";

/// The scope IoT Hub gives an IoT Edge device: `ms-azure-iot-edge://{deviceId}-{generationId}`.
pub fn edge_scope(device_id: &str, generation_id: &str) -> String {
    format!("{EDGE_SCOPE_PREFIX}{device_id}-{generation_id}")
}

/// The edge device a scope names (the id before the generation id).
pub fn edge_scope_device(scope: &str) -> Option<&str> {
    let rest = scope.strip_prefix(EDGE_SCOPE_PREFIX)?;
    rest.rsplit_once('-').map(|(id, _)| id)
}

impl DeviceIdentity {
    /// The id of the device's parent edge device, if it has one.
    pub fn parent_device(&self) -> Option<&str> {
        self.parent_scopes
            .first()
            .and_then(|s| edge_scope_device(s))
    }
}

/// Azure timestamp format used in registry/twin JSON: "2024-01-02T03:04:05.678Z"; and the "never" value "0001-01-01T00:00:00Z".
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn an_edge_scope_names_its_device_even_with_dashes_in_the_id() {
        let scope = edge_scope("edge-gw-1", "637000000000000001");
        assert_eq!(scope, "ms-azure-iot-edge://edge-gw-1-637000000000000001");
        assert_eq!(edge_scope_device(&scope), Some("edge-gw-1"));
        assert_eq!(edge_scope_device("edge-gw-1"), None);
    }

    #[test]
    fn serializes_azure_shape() {
        let d = DeviceIdentity {
            device_id: "dev1".into(),
            generation_id: "638000000000000000".into(),
            etag: "MQ==".into(),
            connection_state: ConnectionState::Connected,
            status: DeviceStatus::Disabled,
            status_reason: None,
            connection_state_updated_time: NEVER.into(),
            status_updated_time: NEVER.into(),
            last_activity_time: NEVER.into(),
            cloud_to_device_message_count: 3,
            authentication: Authentication {
                auth_type: AuthType::SelfSigned,
                symmetric_key: None,
                x509_thumbprint: Some(X509Thumbprint {
                    primary_thumbprint: Some("AB".into()),
                    secondary_thumbprint: None,
                }),
            },
            capabilities: Capabilities { iot_edge: true },
            device_scope: None,
            parent_scopes: vec![],
        };
        let v = serde_json::to_value(&d).unwrap();
        assert_eq!(
            v,
            json!({
                "deviceId": "dev1", "generationId": "638000000000000000", "etag": "MQ==",
                "connectionState": "Connected", "status": "disabled", "statusReason": null,
                "connectionStateUpdatedTime": "0001-01-01T00:00:00Z",
                "statusUpdatedTime": "0001-01-01T00:00:00Z",
                "lastActivityTime": "0001-01-01T00:00:00Z",
                "cloudToDeviceMessageCount": 3,
                "authentication": {"type": "selfSigned", "symmetricKey": null,
                    "x509Thumbprint": {"primaryThumbprint": "AB", "secondaryThumbprint": null}},
                "capabilities": {"iotEdge": true},
                "deviceScope": null, "parentScopes": []
            })
        );
        assert_eq!(serde_json::from_value::<DeviceIdentity>(v).unwrap(), d);
        for (t, s) in [
            (AuthType::Sas, "sas"),
            (AuthType::CertificateAuthority, "certificateAuthority"),
            (AuthType::None, "none"),
        ] {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(s));
        }
    }

    #[test]
    fn sdk_create_bodies_fill_defaults() {
        // What the Node service SDK sends for a new device.
        let d: DeviceIdentity = serde_json::from_value(json!({
            "deviceId": "new1",
            "status": "enabled",
            "authentication": {"type": "sas", "symmetricKey": {"primaryKey": "", "secondaryKey": ""}}
        }))
        .unwrap();
        assert_eq!(d.device_id, "new1");
        assert_eq!(d.connection_state, ConnectionState::Disconnected);
        assert_eq!(d.last_activity_time, NEVER);
        assert_eq!(
            d.authentication
                .symmetric_key
                .unwrap()
                .primary_key
                .as_deref(),
            Some("")
        );
        let bare: DeviceIdentity = serde_json::from_value(json!({"deviceId": "x"})).unwrap();
        assert_eq!(bare.authentication.auth_type, AuthType::Sas);
        assert_eq!(bare.status, DeviceStatus::Enabled);
        assert!(!bare.capabilities.iot_edge);
        let m: ModuleIdentity = serde_json::from_value(
            json!({"moduleId": "m", "deviceId": "d", "managedBy": "IotEdge"}),
        )
        .unwrap();
        assert_eq!(m.managed_by.as_deref(), Some("IotEdge"));
        assert!(serde_json::from_value::<DeviceIdentity>(json!({"status": "Enabled"})).is_err());
    }

    #[test]
    fn validates_ids() {
        assert_eq!(
            validate_device_id("dev-1:a.b+c%d_e#f*g?h!i(j)k,l=m@n;o$p'q"),
            Ok(())
        );
        assert_eq!(validate_device_id(&"a".repeat(128)), Ok(()));
        assert_eq!(
            validate_device_id(&"a".repeat(129))
                .unwrap_err()
                .to_string(),
            "the device id is 129 characters long; the limit is 128"
        );
        assert_eq!(
            validate_device_id("").unwrap_err().to_string(),
            "the device id is empty"
        );
        assert_eq!(
            validate_device_id("a/b"),
            Err(IdError::BadChar {
                kind: "device",
                ch: '/',
                position: 1
            })
        );
        for bad in ["a b", "a&b", "é", "a\"b", "a\\b", "a<b", "a\u{0}"] {
            assert!(validate_device_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_module_id("m~").unwrap_err().to_string(),
            "the module id has '~' at position 1; use ASCII letters, digits and - : . + % _ # * ? ! ( ) , = @ ; $ '"
        );
    }

    #[test]
    fn formats_times() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::milliseconds(678);
        assert_eq!(format_time(t), "2024-01-02T03:04:05.678Z");
        let whole = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_time(whole), "2024-01-02T03:04:05.000Z");
        assert_eq!(NEVER, "0001-01-01T00:00:00Z");
    }
}
