//! The device-side HTTPS messaging API (protocol reference §6.8): how a message's properties
//! travel in HTTP headers, both ways, and the JSON batch form of telemetry.
//!
//! Telemetry (`POST /devices/{id}/messages/events`): application properties in
//! `iothub-app-{name}`, system properties in `iothub-messageid`, `iothub-correlationid`,
//! `iothub-userid`, `iothub-contenttype`, `iothub-contentencoding`, `iothub-expiry` (C SDK
//! `iothubtransporthttp.c`, Node `azure-iot-device-http`). A cloud-to-device message comes back
//! with `iothub-messageid`, `iothub-correlationid`, `iothub-userid`, `iothub-to`, `iothub-ack`,
//! `iothub-expiry`, `iothub-sequencenumber`, `iothub-deliverycount`, `iothub-enqueuedtime`,
//! `ContentType`, `ContentEncoding` and `iothub-app-{name}` (the Azure CLI's
//! `MESSAGING_HTTP_C2D_SYSTEM_PROPERTIES`; the C SDK reads `ContentType`/`ContentEncoding`).

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::property_bag::{
    CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID, EXPIRY_TIME, INTERFACE_ID, IOTHUB_ACK,
    MESSAGE_ID, PropertyBag, SYSTEM_PREFIX, TO, USER_ID,
};

/// Prefix of application property headers.
pub const APP_PREFIX: &str = "iothub-app-";
/// Content type of a telemetry batch (a JSON array of messages).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.json";

/// Telemetry headers and the system property each carries.
const D2C_SYSTEM_HEADERS: &[(&str, &str)] = &[
    ("iothub-messageid", MESSAGE_ID),
    ("iothub-correlationid", CORRELATION_ID),
    ("iothub-userid", USER_ID),
    ("iothub-contenttype", CONTENT_TYPE),
    ("iothub-contentencoding", CONTENT_ENCODING),
    ("iothub-expiry", EXPIRY_TIME),
    ("iothub-interface-id", INTERFACE_ID),
];

/// Why a telemetry request's properties were refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeviceHttpError {
    #[error("the header {name} has an empty property name after iothub-app-")]
    EmptyPropertyName { name: String },
    #[error(
        "the telemetry batch is not a JSON array of {{\"body\": base64, \"properties\": {{..}}}} objects ({reason})"
    )]
    BadBatch { reason: String },
    #[error("message {index} of the batch has a body that is not base64")]
    BadBatchBody { index: usize },
    #[error("the telemetry batch is empty; send at least one message")]
    EmptyBatch,
}

/// The property bag of a telemetry message from its request headers (names as HTTP gives
/// them, any case; other headers are ignored).
pub fn bag_from_headers<'a>(
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<PropertyBag, DeviceHttpError> {
    let mut bag = PropertyBag::default();
    for (name, value) in headers {
        add_header(&mut bag, name, value)?;
    }
    Ok(bag)
}

fn add_header(bag: &mut PropertyBag, name: &str, value: &str) -> Result<(), DeviceHttpError> {
    let lower = name.to_ascii_lowercase();
    if let Some(app) = lower.strip_prefix(APP_PREFIX) {
        if app.is_empty() {
            return Err(DeviceHttpError::EmptyPropertyName {
                name: name.to_string(),
            });
        }
        // HTTP header names are case-insensitive; the name keeps the case it arrived in.
        bag.set(&name[APP_PREFIX.len()..], Some(value.to_string()));
    } else if let Some((_, key)) = D2C_SYSTEM_HEADERS.iter().find(|(h, _)| *h == lower) {
        bag.set(key, Some(value.to_string()));
    }
    Ok(())
}

/// One message of a telemetry batch.
#[derive(Deserialize)]
struct BatchEntry {
    body: String,
    #[serde(default)]
    properties: std::collections::BTreeMap<String, String>,
}

/// The messages of a telemetry batch: `[{"body": base64, "properties": {"iothub-app-k": v}}]`.
pub fn parse_batch(body: &[u8]) -> Result<Vec<(PropertyBag, Vec<u8>)>, DeviceHttpError> {
    let entries: Vec<BatchEntry> =
        serde_json::from_slice(body).map_err(|e| DeviceHttpError::BadBatch {
            reason: e.to_string(),
        })?;
    if entries.is_empty() {
        return Err(DeviceHttpError::EmptyBatch);
    }
    entries
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let payload = base64::engine::general_purpose::STANDARD
                .decode(e.body.as_bytes())
                .map_err(|_| DeviceHttpError::BadBatchBody { index })?;
            let bag = bag_from_headers(e.properties.iter().map(|(k, v)| (k.as_str(), v.as_str())))?;
            Ok((bag, payload))
        })
        .collect()
}

/// What a device receives with a cloud-to-device message besides the body and lock token.
#[derive(Clone, Debug, PartialEq)]
pub struct C2dHeaders<'a> {
    pub properties: &'a PropertyBag,
    pub sequence_number: i64,
    pub delivery_count: u32,
    pub enqueued: DateTime<Utc>,
    /// The expiry the sender set, if it set one.
    pub expiry: Option<DateTime<Utc>>,
}

impl C2dHeaders<'_> {
    /// The response headers, in order. System headers a client may index are always present
    /// (empty when unset, as the Azure CLI's fixtures show them); content type and encoding
    /// only when set; application properties as `iothub-app-{name}`.
    pub fn to_headers(&self) -> Vec<(String, String)> {
        let bag = self.properties;
        let text = |key: &str| bag.get(key).unwrap_or_default().to_string();
        let mut out = vec![
            ("iothub-messageid".to_string(), text(MESSAGE_ID)),
            ("iothub-correlationid".to_string(), text(CORRELATION_ID)),
            ("iothub-userid".to_string(), text(USER_ID)),
            ("iothub-to".to_string(), text(TO)),
            (
                "iothub-ack".to_string(),
                bag.get(IOTHUB_ACK).unwrap_or("none").to_string(),
            ),
            (
                "iothub-expiry".to_string(),
                self.expiry.map(dotnet_time).unwrap_or_default(),
            ),
            (
                "iothub-sequencenumber".to_string(),
                self.sequence_number.to_string(),
            ),
            (
                "iothub-deliverycount".to_string(),
                self.delivery_count.to_string(),
            ),
            (
                "iothub-enqueuedtime".to_string(),
                dotnet_time(self.enqueued),
            ),
        ];
        for (key, header) in [
            (CONTENT_TYPE, "ContentType"),
            (CONTENT_ENCODING, "ContentEncoding"),
        ] {
            if let Some(v) = bag.get(key) {
                out.push((header.to_string(), v.to_string()));
            }
        }
        for (key, value) in &bag.entries {
            if key.starts_with(SYSTEM_PREFIX) || key == IOTHUB_ACK {
                continue;
            }
            out.push((
                format!("{APP_PREFIX}{key}"),
                value.clone().unwrap_or_default(),
            ));
        }
        out
    }
}

/// A time in the form the Azure CLI's fixtures give `iothub-enqueuedtime` and
/// `iothub-expiry` (`12/09/2019 12:00:00 PM`, a .NET date string).
pub fn dotnet_time(t: DateTime<Utc>) -> String {
    t.format("%m/%d/%Y %I:%M:%S %p").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn telemetry_headers_become_the_property_bag() {
        let bag = bag_from_headers([
            ("IoTHub-MessageId", "mid-1"),
            ("iothub-correlationid", "cid-1"),
            ("iothub-contenttype", "application/json"),
            ("iothub-contentencoding", "utf-8"),
            ("iothub-app-alert", "high temp"),
            ("iothub-app-Mixed", "x"),
            ("iothub-to", "/devices/d/messages/events"),
            ("content-type", "application/octet-stream"),
            ("user-agent", "azure-iot-device/1.0"),
        ])
        .unwrap();
        assert_eq!(bag.get(MESSAGE_ID), Some("mid-1"));
        assert_eq!(bag.get(CORRELATION_ID), Some("cid-1"));
        assert_eq!(bag.get(CONTENT_TYPE), Some("application/json"));
        assert_eq!(bag.get(CONTENT_ENCODING), Some("utf-8"));
        assert_eq!(bag.get("alert"), Some("high temp"));
        assert_eq!(bag.get("Mixed"), Some("x"));
        assert_eq!(bag.entries.len(), 6, "{bag:?}");
        assert_eq!(
            bag_from_headers([("iothub-app-", "x")])
                .unwrap_err()
                .to_string(),
            "the header iothub-app- has an empty property name after iothub-app-"
        );
    }

    #[test]
    fn batches_carry_base64_bodies_and_prefixed_properties() {
        let msgs = parse_batch(
            br#"[{"body":"aGVsbG8=","properties":{"iothub-app-k":"v","iothub-messageid":"m"}},{"body":""}]"#,
        )
        .unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].1, b"hello");
        assert_eq!(msgs[0].0.get("k"), Some("v"));
        assert_eq!(msgs[0].0.get(MESSAGE_ID), Some("m"));
        assert!(msgs[1].0.is_empty() && msgs[1].1.is_empty());
        assert_eq!(parse_batch(b"[]").unwrap_err(), DeviceHttpError::EmptyBatch);
        assert_eq!(
            parse_batch(br#"[{"body":"!"}]"#).unwrap_err().to_string(),
            "message 0 of the batch has a body that is not base64"
        );
        assert!(
            parse_batch(b"{}")
                .unwrap_err()
                .to_string()
                .starts_with("the telemetry batch is not a JSON array")
        );
    }

    #[test]
    fn c2d_headers_carry_system_and_application_properties() {
        let mut bag = PropertyBag::default();
        bag.set(MESSAGE_ID, Some("m1".into()));
        bag.set(TO, Some("/devices/d/messages/devicebound".into()));
        bag.set(CONTENT_TYPE, Some("text/plain".into()));
        bag.set(IOTHUB_ACK, Some("full".into()));
        bag.set("color", Some("blue".into()));
        bag.set("flag", None);
        let enqueued = Utc.with_ymd_and_hms(2019, 12, 9, 12, 0, 0).unwrap();
        let headers = C2dHeaders {
            properties: &bag,
            sequence_number: 7,
            delivery_count: 1,
            enqueued,
            expiry: Some(Utc.with_ymd_and_hms(2019, 12, 9, 12, 10, 0).unwrap()),
        }
        .to_headers();
        let get = |n: &str| {
            headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("iothub-messageid"), Some("m1"));
        assert_eq!(get("iothub-correlationid"), Some(""));
        assert_eq!(get("iothub-to"), Some("/devices/d/messages/devicebound"));
        assert_eq!(get("iothub-ack"), Some("full"));
        assert_eq!(get("iothub-sequencenumber"), Some("7"));
        assert_eq!(get("iothub-deliverycount"), Some("1"));
        assert_eq!(get("iothub-enqueuedtime"), Some("12/09/2019 12:00:00 PM"));
        assert_eq!(get("iothub-expiry"), Some("12/09/2019 12:10:00 PM"));
        assert_eq!(get("ContentType"), Some("text/plain"));
        assert_eq!(get("ContentEncoding"), None);
        assert_eq!(get("iothub-app-color"), Some("blue"));
        assert_eq!(get("iothub-app-flag"), Some(""));
        assert_eq!(get("iothub-app-iothub-ack"), None);
    }
}
