//! Enrollment documents as the DPS service REST API spells them: individual enrollments
//! (one registration id) and enrollment groups (any registration id whose key derives from
//! the group key, or whose certificate chain verifies to the group's CA), with symmetric-key
//! or X.509 attestation, an initial twin, a provisioning status and an optional target hub.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::x509_attestation::X509Attestation;
use crate::device::SymmetricKey;
use crate::sas::{SasError, derive_device_key};

/// Why an enrollment document was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentError {
    #[error("the enrollment is not valid JSON of the expected shape: {0}")]
    Shape(String),
    #[error(
        "the attestation type \"{0}\" is not supported by the local hub; use \"symmetricKey\" or \"x509\""
    )]
    Attestation(String),
    #[error("the X.509 attestation is incomplete: {0}")]
    X509(&'static str),
    #[error("the {0} symmetric key is not valid base64")]
    BadKey(&'static str),
    #[error("the {0} \"{1}\" in the body does not match \"{2}\" in the path")]
    IdMismatch(&'static str, String, String),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProvisioningStatus {
    #[default]
    Enabled,
    Disabled,
}

/// `{"type": "symmetricKey", "symmetricKey": {...}}` or `{"type": "x509", "x509": {...}}`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "no_keys")]
    pub symmetric_key: SymmetricKey,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509: Option<X509Attestation>,
}

fn no_keys(keys: &SymmetricKey) -> bool {
    keys.primary_key.is_none() && keys.secondary_key.is_none()
}

impl Default for Attestation {
    fn default() -> Self {
        Self {
            kind: SYMMETRIC_KEY.to_owned(),
            symmetric_key: SymmetricKey::default(),
            x509: None,
        }
    }
}

impl Attestation {
    pub fn is_symmetric_key(&self) -> bool {
        self.kind == SYMMETRIC_KEY
    }

    /// The X.509 attestation, when that is the type.
    pub fn x509(&self) -> Option<&X509Attestation> {
        self.x509.as_ref().filter(|_| self.kind == X509)
    }
}

const SYMMETRIC_KEY: &str = "symmetricKey";
const X509: &str = "x509";

/// `{"tags": {...}, "properties": {"desired": {...}}}`: applied to the twin of a device
/// the first time it is provisioned.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InitialTwin {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Map<String, Value>>,
    #[serde(default)]
    pub properties: InitialTwinProperties,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct InitialTwinProperties {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<Map<String, Value>>,
}

/// What individual enrollments and groups share.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentSettings {
    #[serde(default)]
    pub attestation: Attestation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_twin: Option<InitialTwin>,
    #[serde(default)]
    pub provisioning_status: ProvisioningStatus,
    /// The hub to assign to; the local hub is the only one, so it is kept, not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iot_hub_host_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_updated_date_time_utc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl EnrollmentSettings {
    /// Refuses attestations other than symmetric keys and X.509, keys that are not base64,
    /// and X.509 attestations without the certificates their kind needs (`check`).
    fn validate(
        &self,
        check: fn(&X509Attestation) -> Result<(), &'static str>,
    ) -> Result<(), EnrollmentError> {
        if self.attestation.kind == X509 {
            let x509 = self.attestation.x509.as_ref().ok_or(EnrollmentError::X509(
                "the attestation has no \"x509\" object",
            ))?;
            return check(x509).map_err(EnrollmentError::X509);
        }
        if self.attestation.kind != SYMMETRIC_KEY {
            return Err(EnrollmentError::Attestation(self.attestation.kind.clone()));
        }
        use base64::Engine as _;
        let keys = &self.attestation.symmetric_key;
        for (which, key) in [
            ("primary", &keys.primary_key),
            ("secondary", &keys.secondary_key),
        ] {
            if let Some(k) = key
                && base64::engine::general_purpose::STANDARD
                    .decode(k.trim())
                    .is_err()
            {
                return Err(EnrollmentError::BadKey(which));
            }
        }
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        self.provisioning_status == ProvisioningStatus::Enabled
    }
}

/// An individual enrollment: one registration id, its own keys, an optional device id
/// (the registration id when absent).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndividualEnrollment {
    pub registration_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(flatten)]
    pub settings: EnrollmentSettings,
}

impl IndividualEnrollment {
    pub fn device_id(&self) -> &str {
        self.device_id
            .as_deref()
            .filter(|d| !d.is_empty())
            .unwrap_or(&self.registration_id)
    }
}

/// An enrollment group: every device whose key is derived from the group key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollmentGroup {
    pub enrollment_group_id: String,
    #[serde(flatten)]
    pub settings: EnrollmentSettings,
}

impl EnrollmentGroup {
    /// The keys of one device of the group: for each group key,
    /// base64(HMAC-SHA256(base64-decoded group key, registration id)).
    pub fn device_keys(&self, registration_id: &str) -> Result<SymmetricKey, SasError> {
        let keys = &self.settings.attestation.symmetric_key;
        let derive = |k: &Option<String>| {
            k.as_deref()
                .map(|k| derive_device_key(k, registration_id))
                .transpose()
        };
        Ok(SymmetricKey {
            primary_key: derive(&keys.primary_key)?,
            secondary_key: derive(&keys.secondary_key)?,
        })
    }
}

/// Parses a document and checks it names `id` (when it names anything).
fn parse_named<T: for<'de> Deserialize<'de>>(
    body: &Value,
    field: &'static str,
    id: &str,
) -> Result<T, EnrollmentError> {
    let mut body = body.clone();
    let obj = body
        .as_object_mut()
        .ok_or_else(|| EnrollmentError::Shape("the body must be a JSON object".into()))?;
    match obj.get(field) {
        None | Some(Value::Null) => {
            obj.insert(field.into(), Value::String(id.to_owned()));
        }
        Some(Value::String(s)) if s == id => {}
        Some(other) => {
            let given = other
                .as_str()
                .map_or_else(|| other.to_string(), str::to_owned);
            return Err(EnrollmentError::IdMismatch(field, given, id.to_owned()));
        }
    }
    serde_json::from_value(body).map_err(|e| EnrollmentError::Shape(e.to_string()))
}

impl IndividualEnrollment {
    /// The body of `PUT /enrollments/{id}`, validated.
    pub fn from_request(id: &str, body: &Value) -> Result<Self, EnrollmentError> {
        let e: Self = parse_named(body, "registrationId", id)?;
        e.settings.validate(X509Attestation::check_individual)?;
        Ok(e)
    }
}

impl EnrollmentGroup {
    /// The body of `PUT /enrollmentGroups/{id}`, validated.
    pub fn from_request(id: &str, body: &Value) -> Result<Self, EnrollmentError> {
        let g: Self = parse_named(body, "enrollmentGroupId", id)?;
        g.settings.validate(X509Attestation::check_group)?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn individual_enrollment_from_the_rest_reference() {
        let body = json!({
            "registrationId": "dev-1",
            "deviceId": "thermostat-1",
            "attestation": {"type": "symmetricKey", "symmetricKey": {
                "primaryKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "secondaryKey": null}},
            "initialTwin": {"tags": {"site": "lab"}, "properties": {"desired": {"interval": 5}}},
            "provisioningStatus": "disabled",
            "iotHubHostName": "localhost"
        });
        let e = IndividualEnrollment::from_request("dev-1", &body).unwrap();
        assert_eq!(e.device_id(), "thermostat-1");
        assert!(!e.settings.enabled());
        let twin = e.settings.initial_twin.as_ref().unwrap();
        assert_eq!(twin.tags.as_ref().unwrap()["site"], "lab");
        assert_eq!(twin.properties.desired.as_ref().unwrap()["interval"], 5);
        let back = serde_json::to_value(&e).unwrap();
        assert_eq!(back["attestation"]["type"], "symmetricKey");
        assert_eq!(back["provisioningStatus"], "disabled");
        assert_eq!(back["initialTwin"]["properties"]["desired"]["interval"], 5);
    }

    #[test]
    fn ids_default_from_the_path_and_must_agree() {
        let e = IndividualEnrollment::from_request("r", &json!({})).unwrap();
        assert_eq!((e.registration_id.as_str(), e.device_id()), ("r", "r"));
        assert!(e.settings.enabled());
        assert_eq!(
            IndividualEnrollment::from_request("r", &json!({"registrationId": "x"})),
            Err(EnrollmentError::IdMismatch(
                "registrationId",
                "x".into(),
                "r".into()
            ))
        );
        let g = EnrollmentGroup::from_request("g", &json!({"provisioningStatus": "enabled"}));
        assert_eq!(g.unwrap().enrollment_group_id, "g");
    }

    #[test]
    fn unsupported_attestation_and_bad_keys_are_refused() {
        let tpm = json!({"attestation": {"type": "tpm"}});
        assert_eq!(
            EnrollmentGroup::from_request("g", &tpm),
            Err(EnrollmentError::Attestation("tpm".into()))
        );
        let x509 = json!({"attestation": {"type": "x509"}});
        assert!(matches!(
            EnrollmentGroup::from_request("g", &x509),
            Err(EnrollmentError::X509(_))
        ));
        let client = json!({"attestation": {"type": "x509", "x509": {
            "clientCertificates": {"primary": {"certificate": "MIIB"}}}}});
        let e = IndividualEnrollment::from_request("r", &client).unwrap();
        assert!(e.settings.attestation.x509().is_some());
        assert!(!e.settings.attestation.is_symmetric_key());
        assert!(
            serde_json::to_value(&e).unwrap()["attestation"]
                .get("symmetricKey")
                .is_none()
        );
        assert!(matches!(
            EnrollmentGroup::from_request("g", &client),
            Err(EnrollmentError::X509(_))
        ));
        let bad = json!({"attestation": {"type": "symmetricKey", "symmetricKey": {"primaryKey": "not base64!"}}});
        assert_eq!(
            IndividualEnrollment::from_request("r", &bad),
            Err(EnrollmentError::BadKey("primary"))
        );
        assert!(matches!(
            IndividualEnrollment::from_request("r", &json!([1])),
            Err(EnrollmentError::Shape(_))
        ));
    }

    #[test]
    fn group_device_keys_are_derived_per_registration() {
        // Computed independently: python3 -c "import base64,hmac,hashlib;
        // print(base64.b64encode(hmac.new(bytes(range(32)), b'dev-1', hashlib.sha256).digest()).decode())"
        let g = EnrollmentGroup::from_request(
            "g",
            &json!({"attestation": {"type": "symmetricKey", "symmetricKey": {
                "primaryKey": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}}),
        )
        .unwrap();
        let keys = g.device_keys("dev-1").unwrap();
        assert_eq!(keys.primary_key.as_deref(), Some(EXPECTED_DEV1));
        assert_eq!(keys.secondary_key, None);
        assert_ne!(
            g.device_keys("dev-2").unwrap().primary_key.as_deref(),
            Some(EXPECTED_DEV1)
        );
    }

    const EXPECTED_DEV1: &str = "uPrGCZtSCJ9Nt+iY0r7te47dbsu7OCYEU9tz7kQloUs=";
}
