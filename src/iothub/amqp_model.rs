//! The AMQP side of IoT Hub as plain data: node addresses, the names of annotations
//! and application properties, C2D acknowledgement modes and feedback records, Event
//! Hubs selector filters and the redirect a hub sends for its built-in endpoint.
//! Pure: no sockets, no AMQP library types.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::encoding::url_decode;

/// CBS node (claims-based security).
pub const CBS_NODE: &str = "$cbs";
/// Management node (Event Hubs READ operations).
pub const MANAGEMENT_NODE: &str = "$management";

/// Application properties of CBS and management requests and responses.
pub const OPERATION: &str = "operation";
pub const PUT_TOKEN: &str = "put-token";
pub const READ_OPERATION: &str = "READ";
pub const TOKEN_TYPE: &str = "type";
pub const NAME: &str = "name";
pub const PARTITION: &str = "partition";
pub const STATUS_CODE: &str = "status-code";
pub const STATUS_DESCRIPTION: &str = "status-description";
/// pyamqp's spelling of the response keys (it reads either).
pub const STATUS_CODE_ALT: &str = "statusCode";
pub const STATUS_DESCRIPTION_ALT: &str = "statusDescription";
pub const EVENTHUB_TYPE: &str = "com.microsoft:eventhub";
pub const PARTITION_TYPE: &str = "com.microsoft:partition";

/// Keys of the management READ response maps.
pub mod management {
    pub const NAME: &str = "name";
    pub const TYPE: &str = "type";
    pub const CREATED_AT: &str = "created_at";
    pub const PARTITION_COUNT: &str = "partition_count";
    pub const PARTITION_IDS: &str = "partition_ids";
    pub const PARTITION: &str = "partition";
    pub const BEGIN_SEQUENCE_NUMBER: &str = "begin_sequence_number";
    pub const LAST_ENQUEUED_SEQUENCE_NUMBER: &str = "last_enqueued_sequence_number";
    pub const LAST_ENQUEUED_OFFSET: &str = "last_enqueued_offset";
    pub const LAST_ENQUEUED_TIME_UTC: &str = "last_enqueued_time_utc";
    pub const IS_PARTITION_EMPTY: &str = "is_partition_empty";
}

/// A receiver that asks for this capability gets the partition's last enqueued event
/// in each message's delivery annotations (management's key names, plus
/// [`RUNTIME_INFO_RETRIEVAL_TIME_UTC`]): @azure/event-hubs' and azure-eventhub's
/// `trackLastEnqueuedEventProperties`.
pub const RECEIVER_RUNTIME_METRIC: &str = "com.microsoft:enable-receiver-runtime-metric";
pub const RUNTIME_INFO_RETRIEVAL_TIME_UTC: &str = "runtime_info_retrieval_time_utc";
/// Attach property of an owner-level (epoch) receiver, a long.
pub const EPOCH: &str = "com.microsoft:epoch";

/// Message annotations on telemetry read from the Event Hubs-compatible endpoint.
pub mod annotation {
    pub const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
    pub const OFFSET: &str = "x-opt-offset";
    pub const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
    pub const DEVICE_ID: &str = "iothub-connection-device-id";
    pub const MODULE_ID: &str = "iothub-connection-module-id";
    pub const AUTH_METHOD: &str = "iothub-connection-auth-method";
    pub const AUTH_GENERATION_ID: &str = "iothub-connection-auth-generation-id";
    pub const ENQUEUED_TIME_HUB: &str = "iothub-enqueuedtime";
    pub const MESSAGE_SOURCE: &str = "iothub-message-source";
    pub const DT_SUBJECT: &str = "dt-subject";
    pub const TELEMETRY_SOURCE: &str = "Telemetry";
}

/// The filter-set key (and descriptor) of an Event Hubs selector filter.
pub const SELECTOR_FILTER: &str = "apache.org:selector-filter:string";
pub const SELECTOR_FILTER_CODE: u64 = 0x0000_468C_0000_0004;

/// Link property naming a receiver's owner level.
pub const EPOCH_PROPERTY: &str = "com.microsoft:epoch";

/// Content type of feedback batches.
pub const FEEDBACK_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.feedback.json";

/// SASL mechanisms the hub offers.
pub const SASL_MSSBCBS: &str = "MSSBCBS";

/// Error conditions the Azure SDKs map.
pub mod condition {
    pub const NOT_FOUND: &str = "amqp:not-found";
    pub const UNAUTHORIZED: &str = "amqp:unauthorized-access";
    pub const RESOURCE_LIMIT: &str = "amqp:resource-limit-exceeded";
    pub const NOT_ALLOWED: &str = "amqp:not-allowed";
    pub const MESSAGE_SIZE: &str = "amqp:link:message-size-exceeded";
    pub const INTERNAL: &str = "amqp:internal-error";
    pub const ARGUMENT: &str = "com.microsoft:argument-error";
    pub const REDIRECT: &str = "amqp:link:redirect";
    pub const DETACH_FORCED: &str = "amqp:link:detach-forced";
    /// A receiver lost (or may not take) its partition to an epoch receiver.
    pub const LINK_STOLEN: &str = "amqp:link:stolen";
}

/// Keys of the redirect error's `info` map.
pub mod redirect {
    pub const HOSTNAME: &str = "hostname";
    pub const NETWORK_HOST: &str = "network-host";
    pub const PORT: &str = "port";
    pub const ADDRESS: &str = "address";
    pub const TRACKING_ID: &str = "com.microsoft:tracking-id";
}

/// The AMQP error condition for an IoT Hub error code name (`DeviceNotFound`...).
pub fn condition_for(code_name: &str) -> &'static str {
    match code_name {
        "DeviceNotFound" | "ModuleNotFound" => condition::NOT_FOUND,
        "DeviceMaximumQueueDepthExceeded" | "IotHubQuotaExceeded" | "ThrottlingException" => {
            condition::RESOURCE_LIMIT
        }
        "IotHubUnauthorizedAccess" | "IoTHubUnauthorized" => condition::UNAUTHORIZED,
        "MessageTooLarge" => condition::MESSAGE_SIZE,
        "ArgumentInvalid" | "ArgumentNull" | "IotHubFormatError" | "InvalidOperation" => {
            condition::ARGUMENT
        }
        _ => condition::INTERNAL,
    }
}

/// CBS token type of a SAS token.
pub const CBS_SAS_TOKEN_TYPE: &str = "servicebus.windows.net:sastoken";
/// Application property carrying the token's expiry on a put-token request.
pub const CBS_EXPIRATION: &str = "expiration";

/// AMQP over TLS: IoT Hub and Event Hubs listen here.
pub const AMQPS_PORT: u16 = 5671;
/// AMQP over WebSockets (and HTTPS) port.
pub const WEBSOCKET_PORT: u16 = 443;
/// WebSocket path of the IoT Hub service endpoint.
pub const IOTHUB_WEBSOCKET_PATH: &str = "/$iothub/websocket";
/// WebSocket path of an Event Hubs namespace (the built-in endpoint, custom Event Hubs).
pub const EVENTHUB_WEBSOCKET_PATH: &str = "/$servicebus/websocket";
/// The WebSocket subprotocol the Azure IoT SDKs ask for.
pub const WEBSOCKET_SUBPROTOCOL: &str = "AMQPWSB10";

/// The consumer group every Event Hub has.
pub const DEFAULT_CONSUMER_GROUP: &str = "$Default";

/// Addresses a service client attaches to.
pub mod node {
    /// C2D send (sender link target).
    pub const DEVICEBOUND: &str = "/messages/devicebound";
    /// C2D feedback (receiver link source).
    pub const FEEDBACK: &str = "/messages/serviceBound/feedback";
    /// File upload notifications (receiver link source).
    pub const FILE_NOTIFICATIONS: &str = "/messages/serviceBound/filenotifications";
}

/// Names under which a telemetry reader reports an event's AMQP properties, as
/// the Event Hubs SDKs name them.
pub mod system_property {
    pub const MESSAGE_ID: &str = "message-id";
    pub const CORRELATION_ID: &str = "correlation-id";
    pub const USER_ID: &str = "user-id";
    pub const TO: &str = "to";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const CONTENT_ENCODING: &str = "content-encoding";
    pub const ABSOLUTE_EXPIRY_TIME: &str = "absolute-expiry-time";
    pub const CREATION_TIME: &str = "creation-time";
}

/// `properties.to` of a C2D message for `device_id` (URL-encoded, as the SDKs send it).
pub fn c2d_to(device_id: &str) -> String {
    format!(
        "/devices/{}/messages/devicebound",
        super::encoding::url_encode(device_id)
    )
}

/// The hub's own address for a partition (answered with a redirect).
pub fn hub_events_address(consumer_group: &str, partition: &str) -> String {
    format!("messages/events/ConsumerGroups/{consumer_group}/Partitions/{partition}")
}

/// A partition receiver's source address on an Event Hubs-compatible entity.
pub fn partition_address(
    host: &str,
    entity: &str,
    consumer_group: &str,
    partition: &str,
) -> String {
    format!("amqps://{host}/{entity}/ConsumerGroups/{consumer_group}/Partitions/{partition}")
}

/// The audience (and token resource) of an Event Hubs entity: `sb://{host}/{entity}`.
pub fn event_hubs_audience(host: &str, entity: &str) -> String {
    format!("sb://{host}/{entity}")
}

/// Where a redirect sends a client: the Event Hubs-compatible host, port and entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectTarget {
    pub host: String,
    pub port: u16,
    pub entity: String,
}

/// Reads a redirect from its `info` values. The entity is the first path segment of
/// `address` (`amqps://{host}:{port}/{entity}/...`); the host is `hostname`, else the
/// address's; the port is `port`, else the address's, else 5671.
pub fn parse_redirect(
    hostname: Option<&str>,
    port: Option<i64>,
    address: &str,
) -> Option<RedirectTarget> {
    let rest = address.trim().split_once("://").map(|(_, r)| r)?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (addr_host, addr_port) = match authority.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
            (h, p.parse::<u16>().ok())
        }
        _ => (authority, None),
    };
    let entity = path.split('/').find(|s| !s.is_empty())?.to_string();
    let host = hostname.filter(|h| !h.is_empty()).unwrap_or(addr_host);
    if host.is_empty() {
        return None;
    }
    let port = port
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)
        .or(addr_port)
        .unwrap_or(AMQPS_PORT);
    Some(RedirectTarget {
        host: host.to_string(),
        port,
        entity,
    })
}

/// What a link address names on the hub (or its Event Hubs-compatible entity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeAddress {
    Cbs,
    Management,
    /// `/messages/devicebound`: C2D send.
    DeviceBound,
    /// `/messages/servicebound/feedback`.
    Feedback,
    /// `/messages/servicebound/filenotifications`.
    FileNotifications,
    /// The hub's own `messages/events/...` address (answered with a redirect);
    /// `rest` is what followed `messages/events/`.
    HubEvents {
        rest: String,
    },
    /// `{entity}/ConsumerGroups/{group}/Partitions/{id}`.
    Partition {
        consumer_group: String,
        partition: String,
    },
    /// The entity itself, or `{entity}/Partitions/{id}`: only senders name these, and
    /// IoT Hub's built-in endpoint is read-only, so they are refused.
    Entity,
    Unknown(String),
}

/// Strips `amqps://host[:port]` and surrounding '/' from an address.
pub fn address_path(address: &str) -> &str {
    let rest = address.trim();
    let rest = match rest.split_once("://") {
        Some((_, r)) => r.split_once('/').map_or("", |(_, p)| p),
        None => rest,
    };
    rest.trim_matches('/')
}

impl NodeAddress {
    /// Classifies an address; `entity` is the Event Hubs-compatible name. Case-insensitive
    /// for the fixed parts; consumer group names keep their case.
    pub fn parse(address: &str, entity: &str) -> NodeAddress {
        let path = address_path(address);
        let lower = path.to_ascii_lowercase();
        let segments: Vec<&str> = path.split('/').collect();
        match lower.as_str() {
            "$cbs" => return NodeAddress::Cbs,
            "$management" => return NodeAddress::Management,
            "messages/devicebound" => return NodeAddress::DeviceBound,
            "messages/servicebound/feedback" => return NodeAddress::Feedback,
            "messages/servicebound/filenotifications"
            | "messages/servicebound/fileuploadnotifications" => {
                return NodeAddress::FileNotifications;
            }
            _ => {}
        }
        if let Some(rest) = lower.strip_prefix("messages/events")
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return NodeAddress::HubEvents {
                rest: path["messages/events".len()..]
                    .trim_start_matches('/')
                    .to_string(),
            };
        }
        if !segments.is_empty() && segments[0].eq_ignore_ascii_case(entity) {
            if segments.len() == 1
                || (segments.len() == 3 && segments[1].eq_ignore_ascii_case("Partitions"))
            {
                return NodeAddress::Entity;
            }
            if segments.len() == 2 && segments[1].eq_ignore_ascii_case(MANAGEMENT_NODE) {
                return NodeAddress::Management;
            }
            if segments.len() == 5
                && segments[1].eq_ignore_ascii_case("ConsumerGroups")
                && segments[3].eq_ignore_ascii_case("Partitions")
            {
                return NodeAddress::Partition {
                    consumer_group: segments[2].to_string(),
                    partition: segments[4].to_string(),
                };
            }
        }
        NodeAddress::Unknown(path.to_string())
    }
}

/// The device a C2D message is for, from its `to` (`/devices/{id}/messages/devicebound`,
/// id possibly URL-encoded).
pub fn c2d_device_id(to: &str) -> Option<String> {
    let path = address_path(to);
    let mut parts = path.split('/');
    if !parts.next()?.eq_ignore_ascii_case("devices") {
        return None;
    }
    let id = parts.next().filter(|s| !s.is_empty())?;
    let tail: Vec<&str> = parts.collect();
    let ok = tail.is_empty()
        || (tail.len() == 2
            && tail[0].eq_ignore_ascii_case("messages")
            && tail[1].eq_ignore_ascii_case("devicebound"));
    if !ok {
        return None;
    }
    Some(url_decode(id).unwrap_or_else(|_| id.to_string()))
}

/// The policy in a SASL PLAIN user name `{policy}@sas.root.{hub}`.
pub fn plain_policy(username: &str, hub_name: &str) -> Option<String> {
    let (policy, rest) = username.split_once('@')?;
    let hub = rest.strip_prefix("sas.root.")?;
    (!policy.is_empty() && hub.eq_ignore_ascii_case(hub_name)).then(|| policy.to_string())
}

/// The Event Hubs-compatible entity name of a hub.
pub fn event_hub_name(hub_name: &str) -> String {
    format!("iothub-ehub-{}", hub_name.to_ascii_lowercase())
}

/// `Endpoint=sb://{host}[:{port}]/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath=..`;
/// the port is written only when it is not AMQP's default 5671.
pub fn event_hub_connection_string(
    host: &str,
    port: u16,
    policy: &str,
    key: &str,
    entity: &str,
) -> String {
    let authority = if port == 5671 {
        host.to_string()
    } else {
        format!("{host}:{port}")
    };
    format!(
        "Endpoint=sb://{authority}/;SharedAccessKeyName={policy};SharedAccessKey={key};EntityPath={entity}"
    )
}

/// The address a redirect for the hub's `messages/events/{rest}` points at.
pub fn redirect_address(host: &str, port: u16, entity: &str, rest: &str) -> String {
    format!("amqps://{host}:{port}/{entity}/{rest}")
}

/// Where a partition receiver starts, from its selector filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartPosition {
    /// The first retained event (`offset > -1`, or no filter).
    Start,
    /// Only events enqueued after the link is attached (`@latest`).
    End,
    /// By offset (we use the sequence number as the offset) or sequence number.
    Sequence { value: i64, inclusive: bool },
    /// By enqueued time, epoch milliseconds.
    EnqueuedTime { millis: i64, inclusive: bool },
}

/// Why a selector filter could not be understood.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "the selector filter \"{0}\" is not understood; use amqp.annotation.x-opt-offset, x-opt-sequence-number or x-opt-enqueued-time with > or >="
)]
pub struct FilterError(pub String);

/// Parses `amqp.annotation.x-opt-offset > '123'` and its variants (quoted or not,
/// `>=`, `x-opt-enqueuedtimeutc` as a synonym of `x-opt-enqueued-time`).
pub fn parse_selector(expr: &str) -> Result<StartPosition, FilterError> {
    let err = || FilterError(expr.to_string());
    let e = expr.trim();
    let (lhs, op_and_rhs) = e.split_at(e.find(['>', '=', '<']).ok_or_else(err)?);
    let (inclusive, rhs) = if let Some(r) = op_and_rhs.strip_prefix(">=") {
        (true, r)
    } else if let Some(r) = op_and_rhs.strip_prefix('>') {
        (false, r)
    } else if let Some(r) = op_and_rhs.strip_prefix('=') {
        (true, r)
    } else {
        return Err(err());
    };
    let name = lhs.trim().to_ascii_lowercase();
    let name = name.strip_prefix("amqp.annotation.").unwrap_or(&name);
    let value = rhs.trim().trim_matches(|c| c == '\'' || c == '"');
    match name {
        "x-opt-offset" => match value {
            "-1" => Ok(StartPosition::Start),
            "@latest" => Ok(StartPosition::End),
            v => Ok(StartPosition::Sequence {
                value: v.parse().map_err(|_| err())?,
                inclusive,
            }),
        },
        "x-opt-sequence-number" => Ok(StartPosition::Sequence {
            value: value.parse().map_err(|_| err())?,
            inclusive,
        }),
        "x-opt-enqueued-time" | "x-opt-enqueuedtimeutc" => Ok(StartPosition::EnqueuedTime {
            millis: value.parse().map_err(|_| err())?,
            inclusive,
        }),
        _ => Err(err()),
    }
}

/// The selector filter expression for a start position, as azure-eventhub writes it
/// (the inverse of [`parse_selector`]).
pub fn selector_expression(start: &StartPosition) -> String {
    let op = |inclusive: bool| if inclusive { ">=" } else { ">" };
    match start {
        StartPosition::Start => "amqp.annotation.x-opt-offset > '-1'".to_string(),
        StartPosition::End => "amqp.annotation.x-opt-offset > '@latest'".to_string(),
        StartPosition::Sequence { value, inclusive } => format!(
            "amqp.annotation.{} {} '{value}'",
            annotation::SEQUENCE_NUMBER,
            op(*inclusive)
        ),
        StartPosition::EnqueuedTime { millis, inclusive } => format!(
            "amqp.annotation.{} {} '{millis}'",
            annotation::ENQUEUED_TIME,
            op(*inclusive)
        ),
    }
}

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
    use super::*;

    const E: &str = "iothub-ehub-localhost";

    #[test]
    fn addresses_are_normalised() {
        assert_eq!(NodeAddress::parse("$cbs", E), NodeAddress::Cbs);
        assert_eq!(
            NodeAddress::parse("amqps://localhost/messages/devicebound", E),
            NodeAddress::DeviceBound
        );
        assert_eq!(
            NodeAddress::parse("/messages/deviceBound", E),
            NodeAddress::DeviceBound
        );
        assert_eq!(
            NodeAddress::parse("/messages/serviceBound/feedback", E),
            NodeAddress::Feedback
        );
        assert_eq!(
            NodeAddress::parse("amqps://h:5671/messages/servicebound/feedback/", E),
            NodeAddress::Feedback
        );
        assert_eq!(
            NodeAddress::parse("messages/events/ConsumerGroups/$Default/Partitions/0", E),
            NodeAddress::HubEvents {
                rest: "ConsumerGroups/$Default/Partitions/0".into()
            }
        );
        assert_eq!(
            NodeAddress::parse("messages/events/$management", E),
            NodeAddress::HubEvents {
                rest: "$management".into()
            }
        );
        assert_eq!(
            NodeAddress::parse(
                "amqps://localhost:5671/iothub-ehub-localhost/ConsumerGroups/Mine/Partitions/3",
                E
            ),
            NodeAddress::Partition {
                consumer_group: "Mine".into(),
                partition: "3".into()
            }
        );
        assert_eq!(
            NodeAddress::parse("sb://localhost/iothub-ehub-localhost", E),
            NodeAddress::Entity
        );
        assert_eq!(
            NodeAddress::parse("iothub-ehub-localhost/Partitions/2", E),
            NodeAddress::Entity
        );
        assert_eq!(
            NodeAddress::parse("iothub-ehub-localhost/$management", E),
            NodeAddress::Management
        );
        assert_eq!(
            NodeAddress::parse("messages/eventsx", E),
            NodeAddress::Unknown("messages/eventsx".into())
        );
    }

    #[test]
    fn c2d_to_names_the_device() {
        assert_eq!(
            c2d_device_id("/devices/d1/messages/devicebound").as_deref(),
            Some("d1")
        );
        assert_eq!(
            c2d_device_id("/devices/a%20b/messages/deviceBound").as_deref(),
            Some("a b")
        );
        assert_eq!(c2d_device_id("/devices/d1").as_deref(), Some("d1"));
        assert_eq!(c2d_device_id("/devices//messages/devicebound"), None);
        assert_eq!(c2d_device_id("/modules/x"), None);
        assert_eq!(c2d_device_id("/devices/d/other"), None);
    }

    #[test]
    fn plain_user_names() {
        assert_eq!(
            plain_policy("iothubowner@sas.root.localhost", "localhost").as_deref(),
            Some("iothubowner")
        );
        assert_eq!(
            plain_policy("iothubowner@sas.root.other", "localhost"),
            None
        );
        assert_eq!(plain_policy("dev1@sas.localhost", "localhost"), None);
        assert_eq!(plain_policy("@sas.root.localhost", "localhost"), None);
    }

    #[test]
    fn selectors() {
        use StartPosition::*;
        let p = |s| parse_selector(s).unwrap();
        assert_eq!(p("amqp.annotation.x-opt-offset > '-1'"), Start);
        assert_eq!(p("amqp.annotation.x-opt-offset > '@latest'"), End);
        assert_eq!(
            p("amqp.annotation.x-opt-offset >= '12'"),
            Sequence {
                value: 12,
                inclusive: true
            }
        );
        assert_eq!(
            p("amqp.annotation.x-opt-sequence-number > 5"),
            Sequence {
                value: 5,
                inclusive: false
            }
        );
        assert_eq!(
            p("amqp.annotation.x-opt-enqueued-time > '1700000000000'"),
            EnqueuedTime {
                millis: 1_700_000_000_000,
                inclusive: false
            }
        );
        assert_eq!(
            p("amqp.annotation.x-opt-enqueuedtimeutc > 1700000000000"),
            EnqueuedTime {
                millis: 1_700_000_000_000,
                inclusive: false
            }
        );
        assert!(parse_selector("amqp.annotation.x-opt-offset < '1'").is_err());
        assert!(parse_selector("amqp.annotation.other > '1'").is_err());
        assert!(parse_selector("x-opt-offset > 'abc'").is_err());
        assert!(parse_selector("").is_err());
    }

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
    fn selector_expressions_round_trip() {
        use StartPosition::*;
        for start in [
            Start,
            End,
            Sequence {
                value: 41,
                inclusive: false,
            },
            Sequence {
                value: 7,
                inclusive: true,
            },
            EnqueuedTime {
                millis: 1_700_000_000_123,
                inclusive: false,
            },
        ] {
            let expr = selector_expression(&start);
            assert_eq!(parse_selector(&expr).unwrap(), start, "{expr}");
        }
        assert_eq!(
            selector_expression(&Sequence {
                value: 41,
                inclusive: false
            }),
            "amqp.annotation.x-opt-sequence-number > '41'"
        );
    }

    #[test]
    fn redirects_are_read_from_their_info() {
        // The real capture from a hub (a $management redirect).
        let t = parse_redirect(
            Some("iothub-ns-smartiot-1382746-675594b872.servicebus.windows.net"),
            Some(5671),
            "amqps://iothub-ns-smartiot-1382746-675594b872.servicebus.windows.net:5671/smartiot/$management",
        )
        .unwrap();
        assert_eq!(t.entity, "smartiot");
        assert_eq!(t.port, 5671);
        assert_eq!(
            t.host,
            "iothub-ns-smartiot-1382746-675594b872.servicebus.windows.net"
        );
        // What the local hub sends, and what only an address gives.
        let local = redirect_address(
            "localhost",
            45123,
            E,
            "ConsumerGroups/$Default/Partitions/0",
        );
        assert_eq!(
            parse_redirect(Some("localhost"), Some(45123), &local).unwrap(),
            RedirectTarget {
                host: "localhost".into(),
                port: 45123,
                entity: E.into()
            }
        );
        let bare = parse_redirect(None, None, "amqps://ns.example.org/eh/").unwrap();
        assert_eq!((bare.host.as_str(), bare.port), ("ns.example.org", 5671));
        assert_eq!(parse_redirect(None, None, "amqps://ns.example.org/"), None);
        assert_eq!(parse_redirect(None, None, "not an address"), None);
    }

    #[test]
    fn client_addresses() {
        assert_eq!(c2d_to("a b/c"), "/devices/a%20b%2Fc/messages/devicebound");
        assert_eq!(c2d_device_id(&c2d_to("a b/c")).as_deref(), Some("a b/c"));
        assert_eq!(
            NodeAddress::parse(&hub_events_address("$Default", "3"), E),
            NodeAddress::HubEvents {
                rest: "ConsumerGroups/$Default/Partitions/3".into()
            }
        );
        assert_eq!(
            NodeAddress::parse(&partition_address("localhost:5999", E, "cg", "2"), E),
            NodeAddress::Partition {
                consumer_group: "cg".into(),
                partition: "2".into()
            }
        );
        assert_eq!(
            NodeAddress::parse(node::DEVICEBOUND, E),
            NodeAddress::DeviceBound
        );
        assert_eq!(NodeAddress::parse(node::FEEDBACK, E), NodeAddress::Feedback);
        assert_eq!(
            NodeAddress::parse(node::FILE_NOTIFICATIONS, E),
            NodeAddress::FileNotifications
        );
        assert_eq!(
            event_hubs_audience("h:1", E),
            "sb://h:1/iothub-ehub-localhost"
        );
        for m in [
            AckMode::None,
            AckMode::Positive,
            AckMode::Negative,
            AckMode::Full,
        ] {
            assert_eq!(AckMode::parse(Some(m.as_str())), m);
        }
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

    #[test]
    fn connection_string_and_redirect() {
        assert_eq!(
            event_hub_connection_string("localhost", 5671, "iothubowner", "k=", E),
            "Endpoint=sb://localhost/;SharedAccessKeyName=iothubowner;SharedAccessKey=k=;EntityPath=iothub-ehub-localhost"
        );
        assert!(
            event_hub_connection_string("localhost", 5999, "p", "k", E)
                .starts_with("Endpoint=sb://localhost:5999/;")
        );
        assert_eq!(
            redirect_address("localhost", 5671, E, "$management"),
            "amqps://localhost:5671/iothub-ehub-localhost/$management"
        );
        assert_eq!(condition_for("DeviceNotFound"), condition::NOT_FOUND);
        assert_eq!(condition_for("Whatever"), condition::INTERNAL);
        assert_eq!(event_hub_name("MyHub"), "iothub-ehub-myhub");
    }
}
