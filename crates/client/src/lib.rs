//! Connections to a hub: device side (MQTT) and service side (REST), and the
//! typed events and commands they exchange with the explorer.

pub mod assets;
pub mod backend;
pub mod client_certificate;
pub mod device;
pub mod dps;
pub mod events;
mod http_error;
pub mod manual;
pub mod pnp;
pub mod profile;
pub mod proxy;
pub mod rollout;
pub mod runner;
pub mod service;
pub mod simulator;
pub mod storage;
pub mod tls;
