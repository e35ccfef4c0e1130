//! What a device presents at CONNECT: client id, username and a SAS token (minted from the key
//! and renewed, or a pre-made one used as is), or no password at all when its X.509
//! certificate, presented in the TLS handshake, is the credential.

use std::time::Duration;

use super::DeviceError;
use super::inbound::AuthKind;
use iothub::connection_string::{DeviceAuth, DeviceConnectionString};
use iothub::sas::{SasToken, device_resource_uri, generate_token};
use iothub::topic::MqttUsername;

/// The api-version the client announces in its username (what the docs and Node use).
pub const API_VERSION: &str = "2021-04-12";

#[derive(Clone)]
enum Secret {
    Key(String),
    Token {
        token: String,
        expiry: Option<u64>,
    },
    /// `x509=true`: the username alone, no password (what the Azure SDKs send).
    Certificate,
}

/// Identity and secret of one device or module connection.
#[derive(Clone)]
pub struct Credentials {
    pub client_id: String,
    pub username: String,
    resource: String,
    secret: Secret,
    lifetime: Duration,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// `has_certificate`: a client certificate is configured, which `x509=true` needs and
    /// a key or token connection string must not mix with.
    pub fn new(
        cs: &DeviceConnectionString,
        model_id: Option<&str>,
        lifetime: Duration,
        has_certificate: bool,
    ) -> Result<Credentials, DeviceError> {
        let module = cs.module_id.as_deref();
        let client_id = match module {
            Some(m) => format!("{}/{m}", cs.device_id),
            None => cs.device_id.clone(),
        };
        let username = MqttUsername {
            host: cs.host_name.clone(),
            device_id: cs.device_id.clone(),
            module_id: cs.module_id.clone(),
            api_version: Some(API_VERSION.to_owned()),
            client_type: Some(format!("hubtui/{}", env!("CARGO_PKG_VERSION"))),
            model_id: model_id.map(str::to_owned),
        }
        .format();
        let secret = match &cs.auth {
            DeviceAuth::SharedAccessKey(k) => Secret::Key(k.clone()),
            DeviceAuth::SharedAccessSignature(t) => Secret::Token {
                token: t.clone(),
                expiry: SasToken::parse(t).ok().map(|t| t.expiry),
            },
            DeviceAuth::X509 => Secret::Certificate,
        };
        match (&secret, has_certificate) {
            (Secret::Certificate, false) => return Err(DeviceError::X509NeedsCertificate),
            (Secret::Key(_) | Secret::Token { .. }, true) => {
                return Err(DeviceError::MixedAuthentication);
            }
            _ => {}
        }
        let creds = Credentials {
            client_id,
            username,
            resource: device_resource_uri(&cs.host_name, &cs.device_id, module),
            secret,
            lifetime: lifetime.max(Duration::from_secs(4)),
        };
        // Fail now on a key that cannot sign, not at every reconnect.
        creds.password(0)?;
        Ok(creds)
    }

    pub fn auth_kind(&self) -> AuthKind {
        match self.secret {
            Secret::Key(_) => AuthKind::Key,
            Secret::Token { .. } => AuthKind::Token,
            Secret::Certificate => AuthKind::Certificate,
        }
    }

    /// The password for a CONNECT at `now_unix`, and when it expires (None: unknown).
    pub fn password(&self, now_unix: u64) -> Result<(String, Option<u64>), DeviceError> {
        match &self.secret {
            Secret::Key(key) => {
                let expiry = now_unix + self.lifetime.as_secs();
                let token = generate_token(&self.resource, key, None, expiry)?;
                Ok((token, Some(expiry)))
            }
            Secret::Token { token, expiry } => Ok((token.clone(), *expiry)),
            Secret::Certificate => Ok((String::new(), None)),
        }
    }

    /// When a token that expires at `expiry` should be replaced: a quarter of the lifetime
    /// before it, at most 15 minutes before (Node renews 900 s early). None for pre-made tokens.
    pub fn renew_at(&self, expiry: u64) -> Option<u64> {
        match self.secret {
            Secret::Key(_) => {
                let margin = (self.lifetime.as_secs() / 4).min(900);
                Some(expiry.saturating_sub(margin))
            }
            Secret::Token { .. } | Secret::Certificate => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub::sas::verify_token;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn cs(s: &str) -> DeviceConnectionString {
        DeviceConnectionString::parse(s).unwrap()
    }

    #[test]
    fn device_key_credentials_sign_for_the_device_resource() {
        let c = Credentials::new(
            &cs(&format!(
                "HostName=h.example;DeviceId=d1;SharedAccessKey={KEY}"
            )),
            None,
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
        assert_eq!(c.client_id, "d1");
        let u = MqttUsername::parse(&c.username).unwrap();
        assert_eq!(
            (u.host.as_str(), u.device_id.as_str(), u.module_id),
            ("h.example", "d1", None)
        );
        assert_eq!(u.api_version.as_deref(), Some(API_VERSION));
        let (pw, exp) = c.password(1_000).unwrap();
        assert_eq!(exp, Some(4_600));
        let t = SasToken::parse(&pw).unwrap();
        assert_eq!(t.resource, "h.example/devices/d1");
        verify_token(&t, KEY, 1_000).unwrap();
        assert_eq!(c.auth_kind(), AuthKind::Key);
        // Renewed 15 minutes before a 1 h token expires.
        assert_eq!(c.renew_at(4_600), Some(3_700));
    }

    #[test]
    fn module_credentials_use_the_module_identity() {
        let c = Credentials::new(
            &cs(&format!(
                "HostName=h;DeviceId=d1;ModuleId=m1;SharedAccessKey={KEY}"
            )),
            Some("dtmi:com:example:Thermostat;1"),
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
        assert_eq!(c.client_id, "d1/m1");
        let u = MqttUsername::parse(&c.username).unwrap();
        assert_eq!(u.module_id.as_deref(), Some("m1"));
        assert_eq!(u.model_id.as_deref(), Some("dtmi:com:example:Thermostat;1"));
        let t = SasToken::parse(&c.password(0).unwrap().0).unwrap();
        assert_eq!(t.resource, "h/devices/d1/modules/m1");
    }

    #[test]
    fn a_pre_made_signature_is_used_as_is_and_never_renewed() {
        let token = generate_token("h/devices/d1", KEY, None, 2_000_000_000).unwrap();
        let c = Credentials::new(
            &cs(&format!(
                "HostName=h;DeviceId=d1;SharedAccessSignature={token}"
            )),
            None,
            Duration::from_secs(3600),
            false,
        )
        .unwrap();
        assert_eq!(c.password(5).unwrap(), (token, Some(2_000_000_000)));
        assert_eq!(c.renew_at(2_000_000_000), None);
        assert_eq!(c.auth_kind(), AuthKind::Token);
    }

    #[test]
    fn x509_connects_with_the_username_and_no_password() {
        let c = Credentials::new(
            &cs("HostName=h;DeviceId=d1;ModuleId=m1;x509=true"),
            None,
            Duration::from_secs(3600),
            true,
        )
        .unwrap();
        assert_eq!(c.client_id, "d1/m1");
        assert!(c.username.starts_with("h/d1/m1/?api-version="));
        assert_eq!(c.password(5).unwrap(), (String::new(), None));
        assert_eq!(c.renew_at(100), None);
        assert_eq!(c.auth_kind(), AuthKind::Certificate);
    }

    #[test]
    fn x509_needs_a_certificate_and_keys_do_not_mix_with_one() {
        let x509 = Credentials::new(
            &cs("HostName=h;DeviceId=d1;x509=true"),
            None,
            Duration::from_secs(3600),
            false,
        );
        assert!(matches!(x509, Err(DeviceError::X509NeedsCertificate)));
        let mixed = Credentials::new(
            &cs(&format!("HostName=h;DeviceId=d1;SharedAccessKey={KEY}")),
            None,
            Duration::from_secs(3600),
            true,
        );
        assert!(matches!(mixed, Err(DeviceError::MixedAuthentication)));
    }
}
