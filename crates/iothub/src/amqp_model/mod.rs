//! The AMQP side of IoT Hub as plain data: node addresses, the names of annotations
//! and application properties, C2D acknowledgement modes and feedback records, Event
//! Hubs selector filters and the redirect a hub sends for its built-in endpoint.
//! Pure: no sockets, no AMQP library types.

mod address;
mod feedback;
mod selector;

pub use address::*;
pub use feedback::*;
pub use selector::*;

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

/// Link (attach) property naming a receiver's owner level, a long.
pub const EPOCH_PROPERTY: &str = "com.microsoft:epoch";

/// Content type of feedback batches.
pub const FEEDBACK_CONTENT_TYPE: &str = "application/vnd.microsoft.iothub.feedback.json";
/// Content type of file upload notifications (by analogy with feedback; Azure's is not
/// documented).
pub const FILE_NOTIFICATION_CONTENT_TYPE: &str =
    "application/vnd.microsoft.iothub.filenotification.json";

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
    /// A frame's values could not be decoded (or are nested too deep to try).
    pub const DECODE_ERROR: &str = "amqp:decode-error";
    /// A frame's header is invalid; the byte stream cannot be followed.
    pub const FRAMING_ERROR: &str = "amqp:connection:framing-error";
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
