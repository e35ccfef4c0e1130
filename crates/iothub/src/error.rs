//! Service-side error codes (six digits, HTTP status = code / 1000) and the two JSON body shapes
//! Azure uses for REST errors. The hub writes the legacy shape every SDK parses; the client
//! reads both.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

macro_rules! error_codes {
    ($($name:ident = $num:literal,)*) => {
        /// IoT Hub error codes (protocol doc §5.8, C# `ErrorCode`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $($name,)* }

        impl ErrorCode {
            /// Every code, for lookups and tests.
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$name,)*];

            pub fn numeric(self) -> u32 {
                match self { $(ErrorCode::$name => $num,)* }
            }

            /// The name as it appears in `ErrorCode:{Name};` bodies.
            pub fn name(self) -> &'static str {
                match self { $(ErrorCode::$name => stringify!($name),)* }
            }
        }
    };
}

error_codes! {
    InvalidProtocolVersion = 400001,
    InvalidOperation = 400003,
    ArgumentInvalid = 400004,
    ArgumentNull = 400005,
    IotHubFormatError = 400006,
    DeviceDefinedMultipleTimes = 400011,
    BulkRegistryOperationFailure = 400013,
    IotHubSuspended = 400020,
    ConnectionForcefullyClosedOnNewConnection = 400027,
    InvalidContentEncodingOrType = 400103,
    IotHubUnauthorizedAccess = 401002,
    IoTHubUnauthorized = 401003,
    IotHubQuotaExceeded = 403002,
    DeviceMaximumQueueDepthExceeded = 403004,
    DeviceMaximumActiveFileUploadLimitExceeded = 403006,
    GenericNotFound = 404000,
    DeviceNotFound = 404001,
    ModuleNotFound = 404010,
    DeviceNotOnline = 404103,
    DeviceConnectionClosedRemotely = 404104,
    GenericMethodNotAllowed = 405000,
    DeviceAlreadyExists = 409001,
    LinkCreationConflict = 409002,
    ModuleAlreadyExistsOnDevice = 409301,
    PreconditionFailed = 412001,
    DeviceMessageLockLost = 412002,
    MessageTooLarge = 413001,
    TooManyDevices = 413002,
    ThrottlingException = 429001,
    ThrottleBacklogLimitExceeded = 429002,
    ServerError = 500001,
    ServiceUnavailable = 503001,
    PartitionNotFound = 503003,
    GatewayTimeout = 504101,
}

impl ErrorCode {
    /// numeric / 1000.
    pub fn http_status(self) -> u16 {
        // Every code is six digits, so the quotient fits.
        (self.numeric() / 1000) as u16
    }

    pub fn from_numeric(n: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.numeric() == n)
    }

    /// Exact (case-sensitive) name match, as written by the hub.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.name() == name)
    }

    /// The hub is shedding load or the hub's daily quota is spent: try again later, not now.
    pub fn is_throttling(self) -> bool {
        matches!(
            self,
            Self::ThrottlingException
                | Self::ThrottleBacklogLimitExceeded
                | Self::IotHubQuotaExceeded
        )
    }

    /// What a client assumes when a body carries no recognised code.
    pub fn for_status(status: u16) -> Self {
        match status {
            401 => Self::IotHubUnauthorizedAccess,
            403 => Self::IotHubQuotaExceeded,
            404 => Self::DeviceNotFound,
            409 => Self::DeviceAlreadyExists,
            412 => Self::PreconditionFailed,
            413 => Self::MessageTooLarge,
            429 => Self::ThrottlingException,
            503 => Self::ServiceUnavailable,
            504 => Self::GatewayTimeout,
            400..=499 => Self::ArgumentInvalid,
            _ => Self::ServerError,
        }
    }

    /// A name or a six-digit number (C# accepts both in `ErrorCode:`).
    fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::from_name(text).or_else(|| text.parse().ok().and_then(Self::from_numeric))
    }
}

/// An error as the service reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Azure's REST body: {"Message":"ErrorCode:{Name};{message}","ExceptionMessage":"Tracking ID:{tracking}-G:0-TimeStamp:{MM/dd/yyyy HH:mm:ss}"}
    pub fn to_rest_body(&self, tracking_id: &str, now: DateTime<Utc>) -> Value {
        json!({
            "Message": format!("ErrorCode:{};{}", self.code.name(), self.message),
            "ExceptionMessage": format!(
                "Tracking ID:{tracking_id}-G:0-TimeStamp:{}",
                now.format("%m/%d/%Y %H:%M:%S")
            ),
        })
    }

    /// Parses either Azure error body shape (legacy Message / newer errorCode) into code+message (client side).
    /// Never fails: unknown shapes fall back to a code chosen from `status` and the raw text.
    pub fn from_rest_body(status: u16, body: &str) -> ServiceError {
        let fallback = |message: String| {
            let message = if message.trim().is_empty() {
                format!("the hub answered http {status}")
            } else {
                message
            };
            ServiceError::new(ErrorCode::for_status(status), message)
        };
        match serde_json::from_str::<Value>(body) {
            Ok(v) => {
                Self::from_json(status, &v).unwrap_or_else(|| fallback(body.trim().to_owned()))
            }
            Err(_) => fallback(body.trim().to_owned()),
        }
    }

    fn from_json(status: u16, v: &Value) -> Option<ServiceError> {
        let obj = v.as_object()?;
        // Newer shape: {"errorCode":404001,"message":"..."}; errorCode may be a string.
        if let Some(code) = obj.get("errorCode") {
            let code = match code {
                Value::Number(n) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .and_then(ErrorCode::from_numeric),
                Value::String(s) => ErrorCode::parse(s),
                _ => None,
            }
            .unwrap_or(ErrorCode::for_status(status));
            let message = obj
                .get("message")
                .or_else(|| obj.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            return Some(ServiceError::new(code, message));
        }
        let message = obj.get("Message").and_then(Value::as_str)?;
        // The newer shape sometimes arrives JSON-escaped inside Message.
        if message.trim_start().starts_with('{')
            && let Ok(inner) = serde_json::from_str::<Value>(message)
            && let Some(e) = Self::from_json(status, &inner)
        {
            return Some(e);
        }
        // Legacy: "ErrorCode:{Name};{text}".
        if let Some((code, text)) = message
            .strip_prefix("ErrorCode:")
            .and_then(|rest| rest.split_once(';'))
            && let Some(code) = ErrorCode::parse(code)
        {
            return Some(ServiceError::new(code, text));
        }
        Some(ServiceError::new(ErrorCode::for_status(status), message))
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the hub refused the request with {} {}: {}",
            self.code.numeric(),
            self.code.name(),
            self.message
        )
    }
}

impl std::error::Error for ServiceError {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn codes_numeric_name_status() {
        assert_eq!(ErrorCode::DeviceNotFound.numeric(), 404001);
        assert_eq!(ErrorCode::DeviceNotFound.name(), "DeviceNotFound");
        assert_eq!(ErrorCode::DeviceNotFound.http_status(), 404);
        assert_eq!(ErrorCode::GatewayTimeout.numeric(), 504101);
        assert_eq!(ErrorCode::GatewayTimeout.http_status(), 504);
        assert_eq!(ErrorCode::IoTHubUnauthorized.name(), "IoTHubUnauthorized");
        assert_eq!(ErrorCode::IoTHubUnauthorized.numeric(), 401003);
        assert_eq!(ErrorCode::DeviceNotOnline.numeric(), 404103);
        assert_eq!(ErrorCode::ModuleAlreadyExistsOnDevice.http_status(), 409);
        assert_eq!(
            ErrorCode::from_numeric(412001),
            Some(ErrorCode::PreconditionFailed)
        );
        assert_eq!(ErrorCode::from_numeric(404002), None);
        for &c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_name(c.name()), Some(c));
            assert_eq!(ErrorCode::from_numeric(c.numeric()), Some(c));
            assert!((100_000..1_000_000).contains(&c.numeric()), "{c:?}");
            assert_eq!(u32::from(c.http_status()), c.numeric() / 1000);
        }
        assert_eq!(ErrorCode::ALL.len(), 34);
    }

    #[test]
    fn writes_legacy_body() {
        let e = ServiceError::new(ErrorCode::DeviceNotFound, "Device dev1 not registered");
        let now = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        let body = e.to_rest_body("a1b2c3", now);
        assert_eq!(
            body.to_string(),
            r#"{"Message":"ErrorCode:DeviceNotFound;Device dev1 not registered","ExceptionMessage":"Tracking ID:a1b2c3-G:0-TimeStamp:01/02/2024 03:04:05"}"#
        );
        assert_eq!(ServiceError::from_rest_body(404, &body.to_string()), e);
        assert_eq!(
            e.to_string(),
            "the hub refused the request with 404001 DeviceNotFound: Device dev1 not registered"
        );
    }

    #[test]
    fn reads_both_body_shapes() {
        let legacy = r#"{"Message":"ErrorCode:PreconditionFailed;Precondition failed: etag mismatch","ExceptionMessage":"Tracking ID:x-G:10-TimeStamp:05/06/2024 07:08:09"}"#;
        assert_eq!(
            ServiceError::from_rest_body(412, legacy),
            ServiceError::new(
                ErrorCode::PreconditionFailed,
                "Precondition failed: etag mismatch"
            )
        );
        // Text after the first ';' is kept whole.
        let semi = r#"{"Message":"ErrorCode:ArgumentInvalid;a;b:c"}"#;
        assert_eq!(
            ServiceError::from_rest_body(400, semi),
            ServiceError::new(ErrorCode::ArgumentInvalid, "a;b:c")
        );
        let numeric = r#"{"Message":"ErrorCode:409001;exists"}"#;
        assert_eq!(
            ServiceError::from_rest_body(409, numeric).code,
            ErrorCode::DeviceAlreadyExists
        );
        let newer = r#"{"errorCode":404103,"trackingId":"t","message":"Timed out waiting for device to connect.","timestampUtc":"2024-01-01T00:00:00Z"}"#;
        assert_eq!(
            ServiceError::from_rest_body(404, newer),
            ServiceError::new(
                ErrorCode::DeviceNotOnline,
                "Timed out waiting for device to connect."
            )
        );
        let escaped = r#"{"Message":"{\"errorCode\":429001,\"message\":\"slow down\"}","ExceptionMessage":""}"#;
        assert_eq!(
            ServiceError::from_rest_body(429, escaped),
            ServiceError::new(ErrorCode::ThrottlingException, "slow down")
        );
    }

    #[test]
    fn falls_back_on_status() {
        assert_eq!(
            ServiceError::from_rest_body(404, r#"{"Message":"ErrorCode:IotHubNotFound;no hub"}"#),
            ServiceError::new(ErrorCode::DeviceNotFound, "ErrorCode:IotHubNotFound;no hub")
        );
        assert_eq!(
            ServiceError::from_rest_body(502, "<html>bad gateway</html>"),
            ServiceError::new(ErrorCode::ServerError, "<html>bad gateway</html>")
        );
        assert_eq!(
            ServiceError::from_rest_body(503, ""),
            ServiceError::new(ErrorCode::ServiceUnavailable, "the hub answered http 503")
        );
        assert_eq!(
            ServiceError::from_rest_body(400, "[1]").code,
            ErrorCode::ArgumentInvalid
        );
        assert_eq!(
            ServiceError::from_rest_body(401, "{}").code,
            ErrorCode::IotHubUnauthorizedAccess
        );
        assert_eq!(
            ServiceError::from_rest_body(400, r#"{"errorCode":"nope","message":"m"}"#),
            ServiceError::new(ErrorCode::ArgumentInvalid, "m")
        );
    }
}
