//! DPS over MQTT: the topics a device publishes and subscribes to, the response topic the
//! service answers on, and the CONNECT username `{idScope}/registrations/{registrationId}/api-version=…`
//! (no `?`, unlike the hub's).

use crate::encoding::{url_decode, url_encode};

const REGISTER: &str = "$dps/registrations/PUT/iotdps-register/";
const OPERATION_STATUS: &str = "$dps/registrations/GET/iotdps-get-operationstatus/";
const RESPONSE: &str = "$dps/registrations/res/";

/// The one filter a DPS device subscribes to.
pub const RESPONSE_FILTER: &str = "$dps/registrations/res/#";

/// Why a DPS topic or username was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DpsTopicError {
    #[error("the topic \"{0}\" is not a DPS topic")]
    Unknown(String),
    #[error("the topic \"{0}\" has no $rid request id")]
    NoRid(String),
    #[error("the topic \"{0}\" has no operationId")]
    NoOperationId(String),
    #[error("the topic \"{0}\" has a status or retry-after that is not a number")]
    BadNumber(String),
    #[error(
        "the MQTT username \"{0}\" is not {{idScope}}/registrations/{{registrationId}}/api-version=..."
    )]
    BadUsername(String),
}

/// What a device publishes to DPS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DpsRequest {
    /// `$dps/registrations/PUT/iotdps-register/?$rid={rid}`
    Register { rid: String },
    /// `$dps/registrations/GET/iotdps-get-operationstatus/?$rid={rid}&operationId={id}`
    OperationStatus { rid: String, operation_id: String },
}

/// `key=value` pairs of a topic's query, decoded.
fn query_params(query: &str) -> impl Iterator<Item = (&str, String)> {
    query.split('&').filter(|p| !p.is_empty()).map(|part| {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        (k, url_decode(v).unwrap_or_else(|_| v.to_owned()))
    })
}

fn param(query: &str, key: &str) -> Option<String> {
    query_params(query)
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

impl DpsRequest {
    pub fn parse(topic: &str) -> Result<Self, DpsTopicError> {
        let unknown = || DpsTopicError::Unknown(topic.to_owned());
        let (kind, query) = if let Some(rest) = topic.strip_prefix(REGISTER) {
            (REGISTER, rest)
        } else if let Some(rest) = topic.strip_prefix(OPERATION_STATUS) {
            (OPERATION_STATUS, rest)
        } else {
            return Err(unknown());
        };
        let query = query.strip_prefix('?').ok_or_else(unknown)?;
        let rid = param(query, "$rid").ok_or_else(|| DpsTopicError::NoRid(topic.to_owned()))?;
        if kind == REGISTER {
            return Ok(Self::Register { rid });
        }
        let operation_id = param(query, "operationId")
            .ok_or_else(|| DpsTopicError::NoOperationId(topic.to_owned()))?;
        Ok(Self::OperationStatus { rid, operation_id })
    }

    pub fn to_topic(&self) -> String {
        match self {
            Self::Register { rid } => format!("{REGISTER}?$rid={}", url_encode(rid)),
            Self::OperationStatus { rid, operation_id } => format!(
                "{OPERATION_STATUS}?$rid={}&operationId={}",
                url_encode(rid),
                url_encode(operation_id)
            ),
        }
    }
}

/// DPS's answer: `$dps/registrations/res/{status}/?$rid={rid}[&retry-after={seconds}]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpsResponse {
    pub status: u16,
    pub rid: String,
    pub retry_after: Option<u32>,
}

impl DpsResponse {
    pub fn to_topic(&self) -> String {
        let mut t = format!("{RESPONSE}{}/?$rid={}", self.status, url_encode(&self.rid));
        if let Some(s) = self.retry_after {
            t.push_str(&format!("&retry-after={s}"));
        }
        t
    }

    pub fn parse(topic: &str) -> Result<Self, DpsTopicError> {
        let unknown = || DpsTopicError::Unknown(topic.to_owned());
        let bad_number = || DpsTopicError::BadNumber(topic.to_owned());
        let rest = topic.strip_prefix(RESPONSE).ok_or_else(unknown)?;
        let (status, query) = rest.split_once("/?").ok_or_else(unknown)?;
        let status = status.parse().map_err(|_| bad_number())?;
        let rid = param(query, "$rid").ok_or_else(|| DpsTopicError::NoRid(topic.to_owned()))?;
        let retry_after = match param(query, "retry-after") {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| bad_number())?),
        };
        Ok(Self {
            status,
            rid,
            retry_after,
        })
    }
}

/// The CONNECT username of a DPS registration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpsUsername {
    pub id_scope: String,
    pub registration_id: String,
    pub api_version: Option<String>,
    /// Decoded user agent (`ClientVersion`).
    pub client_version: Option<String>,
}

impl DpsUsername {
    /// Accepts `…/api-version=…` (as documented and sent by the SDKs) and `…/?api-version=…`.
    pub fn parse(s: &str) -> Result<Self, DpsTopicError> {
        let bad = || DpsTopicError::BadUsername(s.to_owned());
        let mut parts = s.splitn(4, '/');
        let id_scope = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
        if parts.next() != Some("registrations") {
            return Err(bad());
        }
        let registration_id = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
        let query = parts.next().unwrap_or("");
        let query = query.strip_prefix('?').unwrap_or(query);
        Ok(Self {
            id_scope: id_scope.to_owned(),
            registration_id: registration_id.to_owned(),
            api_version: param(query, "api-version"),
            client_version: param(query, "ClientVersion"),
        })
    }

    pub fn format(&self) -> String {
        let mut s = format!("{}/registrations/{}/", self.id_scope, self.registration_id);
        let mut sep = "";
        for (key, value) in [
            ("api-version", &self.api_version),
            ("ClientVersion", &self.client_version),
        ] {
            if let Some(v) = value {
                s.push_str(&format!("{sep}{key}={}", url_encode(v)));
                sep = "&";
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_from_the_docs() {
        assert_eq!(
            DpsRequest::parse("$dps/registrations/PUT/iotdps-register/?$rid=1"),
            Ok(DpsRequest::Register { rid: "1".into() })
        );
        let poll = "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=2&operationId=5.71cf7e385566aa10.4469ed4c-dc19-4af8-8b36-9ef6396ac1b3";
        let parsed = DpsRequest::parse(poll).unwrap();
        assert_eq!(
            parsed,
            DpsRequest::OperationStatus {
                rid: "2".into(),
                operation_id: "5.71cf7e385566aa10.4469ed4c-dc19-4af8-8b36-9ef6396ac1b3".into()
            }
        );
        assert_eq!(parsed.to_topic(), poll);
        for bad in [
            "$dps/registrations/PUT/iotdps-register/",
            "$dps/registrations/PUT/iotdps-register/?$rid=",
            "$dps/registrations/GET/iotdps-get-operationstatus/?$rid=1",
            "$iothub/twin/GET/?$rid=1",
        ] {
            assert!(DpsRequest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn responses_from_the_docs() {
        let t = "$dps/registrations/res/202/?$rid=1&retry-after=3";
        let r = DpsResponse::parse(t).unwrap();
        assert_eq!(
            r,
            DpsResponse {
                status: 202,
                rid: "1".into(),
                retry_after: Some(3)
            }
        );
        assert_eq!(r.to_topic(), t);
        let done = DpsResponse {
            status: 200,
            rid: "7".into(),
            retry_after: None,
        };
        assert_eq!(done.to_topic(), "$dps/registrations/res/200/?$rid=7");
        assert!(DpsResponse::parse("$dps/registrations/res/abc/?$rid=1").is_err());
    }

    #[test]
    fn usernames_as_the_sdks_send_them() {
        let python = "0ne00000A0A/registrations/dev1/api-version=2019-03-31&ClientVersion=azure-iot-device-provisioning-py%2F2.14.0";
        let u = DpsUsername::parse(python).unwrap();
        assert_eq!(u.id_scope, "0ne00000A0A");
        assert_eq!(u.registration_id, "dev1");
        assert_eq!(u.api_version.as_deref(), Some("2019-03-31"));
        assert_eq!(
            u.client_version.as_deref(),
            Some("azure-iot-device-provisioning-py/2.14.0")
        );
        assert_eq!(u.format(), python);
        let docs = DpsUsername::parse("scope/registrations/r/api-version=2019-03-31").unwrap();
        assert_eq!(docs.client_version, None);
        // The hub's own username form is not a DPS username.
        for bad in [
            "localhost/dev1/?api-version=2021-04-12",
            "scope/registrations/",
            "/registrations/r/api-version=1",
        ] {
            assert!(DpsUsername::parse(bad).is_err(), "{bad}");
        }
    }
}
