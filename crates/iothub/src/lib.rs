//! The IoT Hub protocol model: every wire string is built and parsed here, once.
//! Pure: no sockets, no tokio.

pub mod amqp_frame;
pub mod amqp_model;
pub mod amqp_value;
pub mod connection_string;
pub mod device;
pub mod device_http;
pub mod digital_twin;
pub mod dps;
pub mod encoding;
pub mod error;
pub mod method;
pub mod property_bag;
pub mod query;
pub mod sas;
pub mod service_twin;
pub mod storage;
#[cfg(test)]
pub(crate) mod test_rng;
pub mod topic;
pub mod twin;
pub mod twin_diff;
