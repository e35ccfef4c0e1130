//! Connections to a hub: device side (MQTT) and service side (REST).

pub mod device;
pub mod service;
pub mod simulator;
pub mod tls;
