//! Direct method invocation (protocol doc §2.5, §5.5): the service request body, its validation
//! (name rules and timeout ranges), and the result body returned to the caller.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const DEFAULT_RESPONSE_TIMEOUT_SECS: u64 = 30;
pub const MIN_RESPONSE_TIMEOUT_SECS: u64 = 5;
pub const MAX_RESPONSE_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 0;
pub const MAX_CONNECT_TIMEOUT_SECS: u64 = 300;
/// Largest method payload (serialized JSON), 128 KB.
pub const MAX_PAYLOAD_BYTES: usize = 128 * 1024;

/// Printable ASCII that method names may not contain.
const FORBIDDEN_NAME_CHARS: &str = "$()<>@,;:\\\"/[]?={} \t";

/// Why an invocation was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MethodError {
    #[error("the method name is empty")]
    EmptyName,
    #[error(
        "the method name has '{ch}' at position {position}; use printable ASCII without $ ( ) < > @ , ; : \\ \" / [ ] ? = {{ }}, space or tab"
    )]
    BadNameChar { ch: char, position: usize },
    #[error("the response timeout of {0} s is outside 5..=300 seconds")]
    ResponseTimeout(u64),
    #[error("the connect timeout of {0} s is outside 0..=300 seconds")]
    ConnectTimeout(u64),
    #[error("the method payload is {0} bytes; the limit is 131072")]
    PayloadTooLarge(usize),
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MethodInvocation {
    pub method_name: String,
    #[serde(default)]
    pub payload: Value,
    #[serde(default, deserialize_with = "seconds")]
    pub response_timeout_in_seconds: Option<u64>,
    #[serde(default, deserialize_with = "seconds")]
    pub connect_timeout_in_seconds: Option<u64>,
}

/// A timeout in seconds given as a number or, as the Azure CLI sends it, as a string of
/// digits ("30"); Azure takes both.
fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("{n} is not a whole number of seconds"))),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| D::Error::custom(format!("\"{s}\" is not a whole number of seconds"))),
        Some(other) => Err(D::Error::custom(format!(
            "{other} is not a whole number of seconds"
        ))),
    }
}

/// An invocation that passed validation, with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidInvocation {
    pub method_name: String,
    pub payload: Value,
    pub response_timeout: Duration,
    pub connect_timeout: Duration,
}

impl MethodInvocation {
    /// Name rules, response 5..=300 default 30, connect 0..=300 default 0, payload ≤ 128 KB.
    pub fn validate(&self) -> Result<ValidInvocation, MethodError> {
        validate_method_name(&self.method_name)?;
        let response = self
            .response_timeout_in_seconds
            .unwrap_or(DEFAULT_RESPONSE_TIMEOUT_SECS);
        if !(MIN_RESPONSE_TIMEOUT_SECS..=MAX_RESPONSE_TIMEOUT_SECS).contains(&response) {
            return Err(MethodError::ResponseTimeout(response));
        }
        let connect = self
            .connect_timeout_in_seconds
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT_SECS);
        if connect > MAX_CONNECT_TIMEOUT_SECS {
            return Err(MethodError::ConnectTimeout(connect));
        }
        let size = self.payload.to_string().len();
        if size > MAX_PAYLOAD_BYTES {
            return Err(MethodError::PayloadTooLarge(size));
        }
        Ok(ValidInvocation {
            method_name: self.method_name.clone(),
            payload: self.payload.clone(),
            response_timeout: Duration::from_secs(response),
            connect_timeout: Duration::from_secs(connect),
        })
    }
}

/// What the service returns for a method the device answered.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct MethodResult {
    pub status: i32,
    #[serde(default)]
    pub payload: Value,
}

/// Printable US-ASCII except `$ ( ) < > @ , ; : \ " / [ ] ? = { } SP HT`.
pub fn validate_method_name(name: &str) -> Result<(), MethodError> {
    if name.is_empty() {
        return Err(MethodError::EmptyName);
    }
    match name
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_graphic() || FORBIDDEN_NAME_CHARS.contains(*c))
    {
        Some((position, ch)) => Err(MethodError::BadNameChar { ch, position }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn invocation(v: Value) -> MethodInvocation {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn applies_defaults() {
        let v = invocation(json!({"methodName": "reboot"}))
            .validate()
            .unwrap();
        assert_eq!(v.method_name, "reboot");
        assert_eq!(v.payload, Value::Null);
        assert_eq!(v.response_timeout, Duration::from_secs(30));
        assert_eq!(v.connect_timeout, Duration::ZERO);
        let v = invocation(json!({"methodName":"reboot","payload":{"delay":5},"responseTimeoutInSeconds":300,"connectTimeoutInSeconds":300}))
            .validate()
            .unwrap();
        assert_eq!(v.payload, json!({"delay": 5}));
        assert_eq!(v.response_timeout, Duration::from_secs(300));
        assert_eq!(v.connect_timeout, Duration::from_secs(300));
        assert_eq!(
            serde_json::to_value(invocation(
                json!({"methodName":"m","responseTimeoutInSeconds":5})
            ))
            .unwrap(),
            json!({"methodName":"m","payload":null,"responseTimeoutInSeconds":5,"connectTimeoutInSeconds":null})
        );
    }

    #[test]
    fn timeouts_may_be_strings_as_the_cli_sends_them() {
        let v = invocation(json!({"methodName": "m", "responseTimeoutInSeconds": "30",
            "connectTimeoutInSeconds": " 10 "}))
        .validate()
        .unwrap();
        assert_eq!(v.response_timeout, Duration::from_secs(30));
        assert_eq!(v.connect_timeout, Duration::from_secs(10));
        for bad in [json!("soon"), json!(-1), json!(2.5), json!([30])] {
            let r = serde_json::from_value::<MethodInvocation>(
                json!({"methodName": "m", "responseTimeoutInSeconds": bad}),
            );
            assert!(r.is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn rejects_out_of_range_timeouts() {
        let e = |r: Option<u64>, c: Option<u64>| {
            MethodInvocation {
                method_name: "m".into(),
                payload: Value::Null,
                response_timeout_in_seconds: r,
                connect_timeout_in_seconds: c,
            }
            .validate()
            .map(|_| ())
        };
        assert_eq!(e(Some(4), None), Err(MethodError::ResponseTimeout(4)));
        assert_eq!(e(Some(5), None), Ok(()));
        assert_eq!(e(Some(301), None), Err(MethodError::ResponseTimeout(301)));
        assert_eq!(e(None, Some(301)), Err(MethodError::ConnectTimeout(301)));
        assert_eq!(e(None, Some(0)), Ok(()));
        assert_eq!(
            MethodError::ResponseTimeout(4).to_string(),
            "the response timeout of 4 s is outside 5..=300 seconds"
        );
        let big = MethodInvocation {
            method_name: "m".into(),
            payload: Value::String("x".repeat(MAX_PAYLOAD_BYTES)),
            response_timeout_in_seconds: None,
            connect_timeout_in_seconds: None,
        };
        assert_eq!(big.validate(), Err(MethodError::PayloadTooLarge(131074)));
    }

    #[test]
    fn validates_names() {
        assert_eq!(validate_method_name("reboot"), Ok(()));
        assert_eq!(validate_method_name("get-Status_2.x!~*#+%&'|^`"), Ok(()));
        assert_eq!(validate_method_name(""), Err(MethodError::EmptyName));
        for (i, c) in "$()<>@,;:\\\"/[]?={} \t\u{7f}é".chars().enumerate() {
            let name = format!("a{c}");
            assert_eq!(
                validate_method_name(&name),
                Err(MethodError::BadNameChar { ch: c, position: 1 }),
                "#{i} {name:?}"
            );
        }
        assert_eq!(
            validate_method_name("a b").unwrap_err().to_string(),
            "the method name has ' ' at position 1; use printable ASCII without $ ( ) < > @ , ; : \\ \" / [ ] ? = { }, space or tab"
        );
    }

    #[test]
    fn result_body() {
        let r: MethodResult =
            serde_json::from_str(r#"{"status":200,"payload":{"ok":true}}"#).unwrap();
        assert_eq!(
            r,
            MethodResult {
                status: 200,
                payload: json!({"ok": true})
            }
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"status":200,"payload":{"ok":true}}"#
        );
        let empty: MethodResult = serde_json::from_str(r#"{"status":-1}"#).unwrap();
        assert_eq!(empty.payload, Value::Null);
    }
}
