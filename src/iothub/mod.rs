//! The IoT Hub protocol model: every wire string is built and parsed here, once.
//! Pure: no sockets, no tokio.

pub mod query;
pub mod twin;
pub mod twin_diff;
