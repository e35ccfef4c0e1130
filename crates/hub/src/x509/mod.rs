//! X.509 device authentication: certificates read with bounds (`certificate`), the TLS
//! layer that asks for them (`tls_client_auth`), the CA certificates registered on the hub
//! (`authorities`), chain verification (`chain`) and the check at CONNECT (`authenticate`).

pub mod authenticate;
pub mod authorities;
pub mod certificate;
pub mod chain;
pub mod tls_client_auth;
