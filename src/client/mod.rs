//! Connections to a hub: device side (MQTT) and service side (REST).
pub mod events;
