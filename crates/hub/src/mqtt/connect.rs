//! CONNECT checks: protocol level, client id, username, then the SAS token or (with no
//! password) the client certificate from the TLS handshake, in the order Azure applies
//! them, each mapped to a CONNACK return code.

use std::time::Duration;

use rumqttc::mqttbytes::Protocol;
use rumqttc::mqttbytes::v4::{Connect, ConnectReturnCode};
use rustls_pki_types::CertificateDer;

use crate::registry::AuthMethod;
use crate::sessions::IdentityKey;
use crate::state::HubState;
use iothub::topic::MqttUsername;

/// Azure waits 1.5 × the client's keep-alive, at most 1767 s (so 1177 s is the
/// largest useful client value); keep-alive 0 gets the cap too.
pub const KEEP_ALIVE_CAP: Duration = Duration::from_millis(1_767_000);
const LARGEST_USEFUL_KEEP_ALIVE: u16 = 1177;

/// A connection the hub accepted.
#[derive(Clone, Debug)]
pub struct Accepted {
    pub key: IdentityKey,
    pub auth: AuthMethod,
    pub clean_session: bool,
    /// The IoT Plug and Play model the device announced (`model-id=` in the username).
    pub model_id: Option<String>,
    /// How long the SAS token it connected with stays valid: Azure closes the connection
    /// then, and the SDKs reconnect with a fresh token. None for a certificate connection.
    pub token_valid_for: Option<Duration>,
    /// Close the connection when nothing arrives for this long.
    pub idle_timeout: Duration,
}

/// How long the hub waits for a packet before it drops the connection.
pub fn idle_timeout(keep_alive_secs: u16) -> Duration {
    if keep_alive_secs == 0 || keep_alive_secs > LARGEST_USEFUL_KEEP_ALIVE {
        KEEP_ALIVE_CAP
    } else {
        Duration::from_millis(u64::from(keep_alive_secs) * 1500)
    }
}

/// `{deviceId}` or `{deviceId}/{moduleId}`.
fn identity_of(client_id: &str) -> Option<IdentityKey> {
    let mut parts = client_id.split('/');
    let device = parts.next().filter(|d| !d.is_empty())?;
    let module = match parts.next() {
        None => None,
        Some(m) if !m.is_empty() => Some(m.to_string()),
        Some(_) => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some((device.to_string(), module))
}

/// Checks a CONNECT. Refusals: 0x01 for a protocol level other than 4 (3.1.1),
/// 0x02 for a client id that is not `{device}[/{module}]`, 0x04 for a missing or
/// malformed username or one naming another identity or hub, 0x05 for a missing
/// password without a client certificate and for every authentication failure (bad,
/// expired or badly scoped token, certificate that does not fit the identity, unknown
/// or disabled identity). `client_certs` is the chain the TLS handshake received, if any.
pub fn check(
    state: &HubState,
    connect: &Connect,
    client_certs: Option<&[CertificateDer<'static>]>,
) -> Result<Accepted, ConnectReturnCode> {
    if connect.protocol != Protocol::V4 {
        return Err(ConnectReturnCode::RefusedProtocolVersion);
    }
    let key = identity_of(&connect.client_id).ok_or(ConnectReturnCode::BadClientId)?;
    let login = connect
        .login
        .as_ref()
        .ok_or(ConnectReturnCode::BadUserNamePassword)?;
    let username =
        MqttUsername::parse(&login.username).map_err(|_| ConnectReturnCode::BadUserNamePassword)?;
    if username.device_id != key.0
        || username.module_id != key.1
        || !username.host.eq_ignore_ascii_case(&state.host_name)
    {
        return Err(ConnectReturnCode::BadUserNamePassword);
    }
    let refused = |e: iothub::error::ServiceError| {
        tracing::info!(device = %key.0, module = ?key.1, reason = %e.message, "mqtt connect refused");
        ConnectReturnCode::NotAuthorized
    };
    // No password: the SDKs' X.509 connect, where the certificate is the credential.
    let (auth, token_valid_for) = match (login.password.is_empty(), client_certs) {
        (true, Some(chain)) if !chain.is_empty() => (
            state
                .authenticate_certificate(&key, chain)
                .map_err(refused)?,
            None,
        ),
        (true, _) => return Err(ConnectReturnCode::NotAuthorized),
        (false, _) => (
            state.authenticate(&key, &login.password).map_err(refused)?,
            Some(token_valid_for(&login.password)),
        ),
    };
    Ok(Accepted {
        key,
        auth,
        clean_session: connect.clean_session,
        model_id: username.model_id.filter(|m| !m.is_empty()),
        token_valid_for,
        idle_timeout: idle_timeout(connect.keep_alive),
    })
}

/// Time left before an (already verified) SAS token expires.
fn token_valid_for(token: &str) -> Duration {
    let now = chrono::Utc::now().timestamp().max(0) as u64;
    iothub::sas::SasToken::parse(token)
        .map(|t| Duration::from_secs(t.expiry.saturating_sub(now)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert_eq!(identity_of("d"), Some(("d".into(), None)));
        assert_eq!(identity_of("d/m"), Some(("d".into(), Some("m".into()))));
        for bad in ["", "/m", "d/", "d/m/x", "d//"] {
            assert_eq!(identity_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn idle_timeouts() {
        assert_eq!(idle_timeout(60), Duration::from_secs(90));
        assert_eq!(idle_timeout(1), Duration::from_millis(1500));
        assert_eq!(idle_timeout(1177), Duration::from_millis(1_765_500));
        assert_eq!(idle_timeout(1178), KEEP_ALIVE_CAP);
        assert_eq!(idle_timeout(0), KEEP_ALIVE_CAP);
    }
}
