//! The local IoT Hub: MQTT, HTTPS (and later AMQP) servers over one persistent
//! state. Uses `iothub` only, never `client`, `app` or `ui`.

pub mod fsutil;
pub mod store;
pub mod tls;

/// Installs the process-wide rustls crypto provider once. Both ring and aws-lc-rs
/// may be compiled in through dependencies; without an explicit choice the first
/// TLS handshake panics.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
