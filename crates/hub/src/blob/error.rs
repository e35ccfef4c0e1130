//! The Blob service's errors: an HTTP status, an error code (also sent as the
//! `x-ms-error-code` header) and a message, in the service's XML error body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One storage error as the Blob service reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageError {
    pub status: u16,
    /// The service's error code, e.g. `BlobNotFound`.
    pub code: &'static str,
    pub message: String,
}

impl StorageError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> StorageError {
        StorageError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn container_not_found() -> StorageError {
        Self::new(
            404,
            "ContainerNotFound",
            "The specified container does not exist.",
        )
    }

    pub fn blob_not_found() -> StorageError {
        Self::new(404, "BlobNotFound", "The specified blob does not exist.")
    }

    pub fn condition_not_met() -> StorageError {
        Self::new(
            412,
            "ConditionNotMet",
            "The condition specified using HTTP conditional header(s) is not met.",
        )
    }

    pub fn auth_failed(message: impl Into<String>) -> StorageError {
        Self::new(403, "AuthenticationFailed", message)
    }

    pub fn invalid_header(name: &str) -> StorageError {
        Self::new(
            400,
            "InvalidHeaderValue",
            format!("The value for one of the HTTP headers is not in the correct format: {name}."),
        )
    }

    pub fn invalid_query(name: &str) -> StorageError {
        Self::new(
            400,
            "InvalidQueryParameterValue",
            format!(
                "Value for one of the query parameters specified in the request URI is invalid: {name}."
            ),
        )
    }

    pub fn missing_header(name: &str) -> StorageError {
        Self::new(
            400,
            "MissingRequiredHeader",
            format!("An HTTP header that's mandatory for this request is not specified: {name}."),
        )
    }

    pub fn internal(message: impl std::fmt::Display) -> StorageError {
        tracing::warn!(error = %message, "blob store failure");
        Self::new(
            500,
            "InternalError",
            "The server encountered an internal error. Please retry the request.",
        )
    }

    /// The XML body: `<Error><Code>…</Code><Message>…</Message></Error>`, the message
    /// followed by the request id and time as the service writes them.
    pub fn xml(&self, request_id: &str, now: chrono::DateTime<chrono::Utc>) -> String {
        use chrono::Timelike;
        // Seven fractional digits, as the service writes them.
        let message = format!(
            "{}\nRequestId:{request_id}\nTime:{}.{:07}Z",
            self.message,
            now.format("%Y-%m-%dT%H:%M:%S"),
            now.nanosecond() % 1_000_000_000 / 100
        );
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
            self.code,
            quick_xml::escape::escape(message.as_str())
        )
    }
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for StorageError {}

impl IntoResponse for StorageError {
    fn into_response(self) -> Response {
        let request_id = uuid::Uuid::new_v4().to_string();
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, self.xml(&request_id, chrono::Utc::now())).into_response();
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/xml"));
        h.insert("x-ms-error-code", HeaderValue::from_static(self.code));
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            h.insert("x-ms-request-id", v);
        }
        h.insert(
            "x-ms-version",
            HeaderValue::from_static(super::SERVICE_VERSION),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_body_has_code_and_escaped_message() {
        let e = StorageError::new(400, "InvalidInput", "a < b & c");
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let x = e.xml("rid", now);
        assert!(x.contains("<Code>InvalidInput</Code>"));
        assert!(x.contains("a &lt; b &amp; c\nRequestId:rid\nTime:2026-01-02T03:04:05.0000000Z"));
    }
}
