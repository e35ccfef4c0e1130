//! The service side of a hub: REST (identities, twins, methods, queries, purge) and
//! AMQP (telemetry reader, C2D sender, feedback and file-notification receivers).

pub mod amqp;
mod call_log;
pub mod proxy;
mod rest;

pub use amqp::{
    AmqpOptions, AmqpTransport, C2dSender, MessagingError, ReadFrom, ReaderTask, StreamUpdate,
    TelemetryReaderOptions, TelemetrySource, read_telemetry, receive_feedback,
    receive_file_notifications,
};
pub use call_log::CallLog;
pub use proxy::Proxy;
pub use rest::*;
