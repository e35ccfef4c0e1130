//! The service side of a hub: REST today (identities, twins, methods, queries,
//! purge); AMQP (telemetry, C2D, feedback) joins it here.

mod rest;

pub use rest::*;
