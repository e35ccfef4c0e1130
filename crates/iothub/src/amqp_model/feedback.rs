//! C2D acknowledgement modes, feedback records and file upload notifications, in
//! Azure's JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// `iothub-ack` of a C2D message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    None,
    Positive,
    Negative,
    Full,
}

impl AckMode {
    /// Case-insensitive; anything unknown or absent is `None`.
    pub fn parse(value: Option<&str>) -> AckMode {
        match value.map(str::to_ascii_lowercase).as_deref() {
            Some("positive") => AckMode::Positive,
            Some("negative") => AckMode::Negative,
            Some("full") => AckMode::Full,
            _ => AckMode::None,
        }
    }

    /// The value of `iothub-ack` for this mode.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::None => "none",
            AckMode::Positive => "positive",
            AckMode::Negative => "negative",
            AckMode::Full => "full",
        }
    }

    /// Does this mode ask for a feedback record with `status`?
    pub fn wants(self, status: FeedbackStatus) -> bool {
        match self {
            AckMode::None => false,
            AckMode::Full => true,
            AckMode::Positive => status == FeedbackStatus::Success,
            AckMode::Negative => status != FeedbackStatus::Success,
        }
    }
}

/// Outcome of a C2D message as reported in feedback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedbackStatus {
    Success,
    Expired,
    DeliveryCountExceeded,
    Rejected,
    Purged,
}

impl FeedbackStatus {
    pub fn description(self) -> &'static str {
        match self {
            FeedbackStatus::Success => "Success",
            FeedbackStatus::Expired => "Message expired",
            FeedbackStatus::DeliveryCountExceeded => "Message delivery count exceeded",
            FeedbackStatus::Rejected => "Message rejected",
            FeedbackStatus::Purged => "Message purged",
        }
    }
}

/// One element of a feedback batch, exactly as Azure serializes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedbackRecord {
    pub original_message_id: String,
    pub enqueued_time_utc: String,
    pub status_code: FeedbackStatus,
    pub description: String,
    pub device_id: String,
    pub device_generation_id: String,
}

impl FeedbackRecord {
    pub fn new(
        original_message_id: &str,
        at: DateTime<Utc>,
        status: FeedbackStatus,
        device_id: &str,
        device_generation_id: &str,
    ) -> FeedbackRecord {
        FeedbackRecord {
            original_message_id: original_message_id.to_string(),
            enqueued_time_utc: at.to_rfc3339_opts(SecondsFormat::Millis, true),
            status_code: status,
            description: status.description().to_string(),
            device_id: device_id.to_string(),
            device_generation_id: device_generation_id.to_string(),
        }
    }
}

/// The body of one feedback message: a JSON array of records.
pub fn feedback_batch_body(records: &[FeedbackRecord]) -> String {
    serde_json::to_string(records).unwrap_or_else(|_| "[]".to_string())
}

/// Parses a feedback message body (a JSON array of records).
pub fn parse_feedback_batch(body: &[u8]) -> Result<Vec<FeedbackRecord>, serde_json::Error> {
    serde_json::from_slice(body)
}

/// A file upload notification, as IoT Hub sends it on `filenotifications`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileNotification {
    pub device_id: String,
    pub blob_uri: String,
    pub blob_name: String,
    pub last_updated_time: String,
    pub blob_size_in_bytes: u64,
    pub enqueued_time_utc: String,
}

impl FileNotification {
    pub fn parse(body: &[u8]) -> Result<FileNotification, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

#[cfg(test)]
mod tests {
    use crate::amqp_model::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn ack_modes_and_feedback_json() {
        assert_eq!(AckMode::parse(Some("Full")), AckMode::Full);
        assert_eq!(AckMode::parse(Some("bogus")), AckMode::None);
        assert_eq!(AckMode::parse(None), AckMode::None);
        assert!(AckMode::Positive.wants(FeedbackStatus::Success));
        assert!(!AckMode::Positive.wants(FeedbackStatus::Expired));
        assert!(AckMode::Negative.wants(FeedbackStatus::Purged));
        assert!(!AckMode::Negative.wants(FeedbackStatus::Success));
        assert!(AckMode::Full.wants(FeedbackStatus::Rejected));
        assert!(!AckMode::None.wants(FeedbackStatus::Success));
        let at = DateTime::parse_from_rfc3339("2015-07-28T16:24:48.789Z")
            .unwrap()
            .with_timezone(&Utc);
        let r = FeedbackRecord::new("0987654321", at, FeedbackStatus::Success, "123", "g1");
        assert_eq!(
            feedback_batch_body(&[r]),
            r#"[{"originalMessageId":"0987654321","enqueuedTimeUtc":"2015-07-28T16:24:48.789Z","statusCode":"Success","description":"Success","deviceId":"123","deviceGenerationId":"g1"}]"#
        );
    }
    #[test]
    fn feedback_and_file_notifications_parse() {
        let records = parse_feedback_batch(
            br#"[{"originalMessageId":"0987654321","enqueuedTimeUtc":"2015-07-28T16:24:48.789Z","statusCode":"Success","description":"Success","deviceId":"123","deviceGenerationId":"g"}]"#,
        )
        .unwrap();
        assert_eq!(records[0].status_code, FeedbackStatus::Success);
        assert_eq!(records[0].original_message_id, "0987654321");
        let n = FileNotification::parse(
            br#"{"deviceId":"mydevice","blobUri":"https://acct.blob.core.windows.net/c/mydevice/myfile.jpg","blobName":"mydevice/myfile.jpg","lastUpdatedTime":"2016-06-01T21:22:41+00:00","blobSizeInBytes":1234,"enqueuedTimeUtc":"2016-06-01T21:22:43.7996883Z"}"#,
        )
        .unwrap();
        assert_eq!(n.device_id, "mydevice");
        assert_eq!(n.blob_size_in_bytes, 1234);
        assert!(parse_feedback_batch(b"{}").is_err());
    }
}
