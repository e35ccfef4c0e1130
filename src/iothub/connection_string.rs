//! Connection strings: IoT Hub service (policy), device/module, and the built-in Event
//! Hubs-compatible endpoint. Parsing is strict (unknown, missing, duplicate keys are errors that
//! name the key) and `Display` formats back to a string that parses to the same value.
//! `Display`/`Debug` would show secrets, so `Debug` masks them and `masked()` is for logs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

const HOST_NAME: &str = "HostName";
const DEVICE_ID: &str = "DeviceId";
const MODULE_ID: &str = "ModuleId";
const SHARED_ACCESS_KEY_NAME: &str = "SharedAccessKeyName";
const SHARED_ACCESS_KEY: &str = "SharedAccessKey";
const SHARED_ACCESS_SIGNATURE: &str = "SharedAccessSignature";
const GATEWAY_HOST_NAME: &str = "GatewayHostName";
const X509: &str = "x509";
const ENDPOINT: &str = "Endpoint";
const ENTITY_PATH: &str = "EntityPath";
const MASK: &str = "****";

/// Why a connection string was rejected; every message names the offending key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("the connection string is empty")]
    Empty,
    #[error("the connection string part \"{part}\" has no '=' (expected Key=Value)")]
    NoEquals { part: String },
    #[error("the connection string has an unknown key {key}")]
    UnknownKey { key: String },
    #[error("the connection string has {key} more than once")]
    DuplicateKey { key: String },
    #[error("the connection string has no {key}")]
    MissingKey { key: &'static str },
    #[error("the connection string has an empty value for {key}")]
    EmptyValue { key: &'static str },
    #[error("the connection string's {key} is not valid base64")]
    BadKey { key: &'static str },
    #[error("the connection string mixes authentication schemes ({first} and {second}); keep one")]
    MixedAuth {
        first: &'static str,
        second: &'static str,
    },
    #[error("the connection string's x509 must be true or false, not \"{value}\"")]
    BadX509 { value: String },
    #[error(
        "the device connection string has no SharedAccessKey, SharedAccessSignature or x509=true"
    )]
    NoDeviceAuth,
    #[error("the connection string's Endpoint \"{value}\" has no host name")]
    BadEndpoint { value: String },
    #[error(
        "the connection string is neither a hub (SharedAccessKeyName), device (DeviceId) nor event hubs (Endpoint) string"
    )]
    UnknownKind,
}

type Result<T> = std::result::Result<T, ConnectionStringError>;

/// Any of the three connection string kinds.
#[derive(Clone, PartialEq, Eq)]
pub enum ConnectionString {
    Service(ServiceConnectionString),
    Device(DeviceConnectionString),
    EventHub(EventHubConnectionString),
}

impl ConnectionString {
    /// Picks the kind by its distinguishing key (Endpoint/EntityPath, DeviceId, else policy).
    pub fn parse(s: &str) -> Result<Self> {
        let pairs = split_pairs(s)?;
        let has = |k: &str| pairs.iter().any(|(key, _)| key.eq_ignore_ascii_case(k));
        if has(ENDPOINT) || has(ENTITY_PATH) {
            EventHubConnectionString::parse(s).map(Self::EventHub)
        } else if pairs.iter().any(|(k, _)| *k == DEVICE_ID) {
            DeviceConnectionString::parse(s).map(Self::Device)
        } else if pairs.iter().any(|(k, _)| *k == SHARED_ACCESS_KEY_NAME) {
            ServiceConnectionString::parse(s).map(Self::Service)
        } else {
            Err(ConnectionStringError::UnknownKind)
        }
    }

    /// The connection string with every secret replaced by `****`, safe for logs.
    pub fn masked(&self) -> String {
        match self {
            Self::Service(c) => c.masked(),
            Self::Device(c) => c.masked(),
            Self::EventHub(c) => c.masked(),
        }
    }

    /// The IoT Hub or Event Hubs host the string points at.
    pub fn host_name(&self) -> &str {
        match self {
            Self::Service(c) => &c.host_name,
            Self::Device(c) => &c.host_name,
            Self::EventHub(c) => &c.host,
        }
    }
}

impl fmt::Display for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(c) => c.fmt(f),
            Self::Device(c) => c.fmt(f),
            Self::EventHub(c) => c.fmt(f),
        }
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Service(c) => f.debug_tuple("Service").field(c).finish(),
            Self::Device(c) => f.debug_tuple("Device").field(c).finish(),
            Self::EventHub(c) => f.debug_tuple("EventHub").field(c).finish(),
        }
    }
}

/// `HostName=..;SharedAccessKeyName=..;SharedAccessKey=..`
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceConnectionString {
    pub host_name: String,
    pub policy_name: String,
    pub key: String,
}

impl ServiceConnectionString {
    pub fn parse(s: &str) -> Result<Self> {
        let mut f = Fields::new(
            split_pairs(s)?,
            &[HOST_NAME, SHARED_ACCESS_KEY_NAME, SHARED_ACCESS_KEY],
            false,
        )?;
        let key = f.required(SHARED_ACCESS_KEY)?;
        check_base64(SHARED_ACCESS_KEY, &key)?;
        Ok(Self {
            host_name: f.required(HOST_NAME)?,
            policy_name: f.required(SHARED_ACCESS_KEY_NAME)?,
            key,
        })
    }

    /// First DNS label of the host: `myhub` for `myhub.azure-devices.net`.
    pub fn hub_name(&self) -> &str {
        self.host_name
            .split('.')
            .next()
            .unwrap_or(self.host_name.as_str())
    }

    pub fn masked(&self) -> String {
        self.render(MASK)
    }

    fn render(&self, key: &str) -> String {
        format!(
            "{HOST_NAME}={};{SHARED_ACCESS_KEY_NAME}={};{SHARED_ACCESS_KEY}={key}",
            self.host_name, self.policy_name
        )
    }
}

impl fmt::Display for ServiceConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&self.key))
    }
}

impl fmt::Debug for ServiceConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceConnectionString")
            .field("host_name", &self.host_name)
            .field("policy_name", &self.policy_name)
            .field("key", &MASK)
            .finish()
    }
}

/// How a device or module authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum DeviceAuth {
    /// Base64 symmetric key; the client mints SAS tokens from it.
    SharedAccessKey(String),
    /// A pre-made token, the full `SharedAccessSignature sr=...` text.
    SharedAccessSignature(String),
    /// Client certificate (`x509=true`).
    X509,
}

impl fmt::Debug for DeviceAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SharedAccessKey(_) => f.write_str("SharedAccessKey(****)"),
            Self::SharedAccessSignature(_) => f.write_str("SharedAccessSignature(****)"),
            Self::X509 => f.write_str("X509"),
        }
    }
}

/// Device or module connection string, optionally via an IoT Edge gateway.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceConnectionString {
    pub host_name: String,
    pub device_id: String,
    pub module_id: Option<String>,
    pub auth: DeviceAuth,
    pub gateway_host_name: Option<String>,
}

impl DeviceConnectionString {
    pub fn parse(s: &str) -> Result<Self> {
        let mut f = Fields::new(
            split_pairs(s)?,
            &[
                HOST_NAME,
                DEVICE_ID,
                MODULE_ID,
                SHARED_ACCESS_KEY,
                SHARED_ACCESS_SIGNATURE,
                X509,
                GATEWAY_HOST_NAME,
            ],
            false,
        )?;
        let host_name = f.required(HOST_NAME)?;
        let device_id = f.required(DEVICE_ID)?;
        let module_id = f.optional(MODULE_ID)?;
        let gateway_host_name = f.optional(GATEWAY_HOST_NAME)?;
        let key = f.optional(SHARED_ACCESS_KEY)?;
        let sas = f.optional(SHARED_ACCESS_SIGNATURE)?;
        let x509 = match f.optional(X509)? {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(value) => return Err(ConnectionStringError::BadX509 { value }),
        };
        let auth = match (key, sas, x509) {
            (Some(_), Some(_), _) => {
                return Err(ConnectionStringError::MixedAuth {
                    first: SHARED_ACCESS_KEY,
                    second: SHARED_ACCESS_SIGNATURE,
                });
            }
            (Some(_), None, true) => {
                return Err(ConnectionStringError::MixedAuth {
                    first: SHARED_ACCESS_KEY,
                    second: X509,
                });
            }
            (None, Some(_), true) => {
                return Err(ConnectionStringError::MixedAuth {
                    first: SHARED_ACCESS_SIGNATURE,
                    second: X509,
                });
            }
            (Some(k), None, false) => {
                check_base64(SHARED_ACCESS_KEY, &k)?;
                DeviceAuth::SharedAccessKey(k)
            }
            (None, Some(t), false) => DeviceAuth::SharedAccessSignature(t),
            (None, None, true) => DeviceAuth::X509,
            (None, None, false) => return Err(ConnectionStringError::NoDeviceAuth),
        };
        Ok(Self {
            host_name,
            device_id,
            module_id,
            auth,
            gateway_host_name,
        })
    }

    pub fn masked(&self) -> String {
        self.render(true)
    }

    fn render(&self, mask: bool) -> String {
        let mut s = format!(
            "{HOST_NAME}={};{DEVICE_ID}={}",
            self.host_name, self.device_id
        );
        if let Some(m) = &self.module_id {
            s.push_str(&format!(";{MODULE_ID}={m}"));
        }
        match &self.auth {
            DeviceAuth::SharedAccessKey(k) => {
                let k = if mask { MASK } else { k };
                s.push_str(&format!(";{SHARED_ACCESS_KEY}={k}"));
            }
            DeviceAuth::SharedAccessSignature(t) => {
                let t = if mask { MASK } else { t };
                s.push_str(&format!(";{SHARED_ACCESS_SIGNATURE}={t}"));
            }
            DeviceAuth::X509 => s.push_str(";x509=true"),
        }
        if let Some(g) = &self.gateway_host_name {
            s.push_str(&format!(";{GATEWAY_HOST_NAME}={g}"));
        }
        s
    }
}

impl fmt::Display for DeviceConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(false))
    }
}

impl fmt::Debug for DeviceConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceConnectionString")
            .field("host_name", &self.host_name)
            .field("device_id", &self.device_id)
            .field("module_id", &self.module_id)
            .field("auth", &self.auth)
            .field("gateway_host_name", &self.gateway_host_name)
            .finish()
    }
}

/// `Endpoint=sb://{ns}/;SharedAccessKeyName=..;SharedAccessKey=..;EntityPath=..`
/// (keys case-insensitive as in azure-eventhub; `HostName` accepted instead of `Endpoint`).
#[derive(Clone, PartialEq, Eq)]
pub struct EventHubConnectionString {
    /// As given (`sb://host/`); `sb://{host}/` when the string used `HostName`.
    pub endpoint: String,
    pub host: String,
    pub policy_name: String,
    pub key: String,
    pub entity_path: String,
}

impl EventHubConnectionString {
    pub fn parse(s: &str) -> Result<Self> {
        let mut f = Fields::new(
            split_pairs(s)?,
            &[
                ENDPOINT,
                HOST_NAME,
                SHARED_ACCESS_KEY_NAME,
                SHARED_ACCESS_KEY,
                ENTITY_PATH,
            ],
            true,
        )?;
        // Endpoint and HostName are synonyms: giving both is a duplicate.
        let (endpoint, host) = match (f.optional(ENDPOINT)?, f.optional(HOST_NAME)?) {
            (Some(_), Some(_)) => {
                return Err(ConnectionStringError::DuplicateKey {
                    key: ENDPOINT.to_owned(),
                });
            }
            (Some(e), None) => {
                let host = endpoint_host(&e).to_owned();
                if host.is_empty() {
                    return Err(ConnectionStringError::BadEndpoint { value: e });
                }
                (e, host)
            }
            (None, Some(h)) => {
                let host = endpoint_host(&h).to_owned();
                if host.is_empty() {
                    return Err(ConnectionStringError::BadEndpoint { value: h });
                }
                (format!("sb://{host}/"), host)
            }
            (None, None) => return Err(ConnectionStringError::MissingKey { key: ENDPOINT }),
        };
        let key = f.required(SHARED_ACCESS_KEY)?;
        check_base64(SHARED_ACCESS_KEY, &key)?;
        Ok(Self {
            endpoint,
            host,
            policy_name: f.required(SHARED_ACCESS_KEY_NAME)?,
            key,
            entity_path: f.required(ENTITY_PATH)?,
        })
    }

    pub fn masked(&self) -> String {
        self.render(MASK)
    }

    fn render(&self, key: &str) -> String {
        format!(
            "{ENDPOINT}={};{SHARED_ACCESS_KEY_NAME}={};{SHARED_ACCESS_KEY}={key};{ENTITY_PATH}={}",
            self.endpoint, self.policy_name, self.entity_path
        )
    }
}

impl fmt::Display for EventHubConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&self.key))
    }
}

impl fmt::Debug for EventHubConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHubConnectionString")
            .field("endpoint", &self.endpoint)
            .field("host", &self.host)
            .field("policy_name", &self.policy_name)
            .field("key", &MASK)
            .field("entity_path", &self.entity_path)
            .finish()
    }
}

/// Host part of `sb://host[:port]/path` (scheme and path optional).
fn endpoint_host(endpoint: &str) -> &str {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    rest.split('/').next().unwrap_or("")
}

/// Splits on ';' (empty parts, e.g. a trailing ';', are skipped) and each part at its first '='.
fn split_pairs(s: &str) -> Result<Vec<(&str, &str)>> {
    let mut pairs = Vec::new();
    for part in s.trim().split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        match part.split_once('=') {
            Some((k, v)) => pairs.push((k.trim(), v.trim())),
            None => {
                return Err(ConnectionStringError::NoEquals {
                    part: part.to_owned(),
                });
            }
        }
    }
    if pairs.is_empty() {
        return Err(ConnectionStringError::Empty);
    }
    Ok(pairs)
}

/// The pairs of one string, checked against the keys its kind allows.
struct Fields {
    /// (canonical key, value)
    values: Vec<(&'static str, String)>,
}

impl Fields {
    fn new(pairs: Vec<(&str, &str)>, allowed: &[&'static str], ignore_case: bool) -> Result<Self> {
        let mut values: Vec<(&'static str, String)> = Vec::new();
        for (key, value) in pairs {
            let canonical = allowed.iter().copied().find(|a| {
                if ignore_case {
                    a.eq_ignore_ascii_case(key)
                } else {
                    *a == key
                }
            });
            let Some(canonical) = canonical else {
                return Err(ConnectionStringError::UnknownKey {
                    key: key.to_owned(),
                });
            };
            if values.iter().any(|(k, _)| *k == canonical) {
                return Err(ConnectionStringError::DuplicateKey {
                    key: canonical.to_owned(),
                });
            }
            values.push((canonical, value.to_owned()));
        }
        Ok(Self { values })
    }

    fn optional(&mut self, key: &'static str) -> Result<Option<String>> {
        match self.values.iter().position(|(k, _)| *k == key) {
            None => Ok(None),
            Some(i) => {
                let (_, v) = self.values.swap_remove(i);
                if v.is_empty() {
                    Err(ConnectionStringError::EmptyValue { key })
                } else {
                    Ok(Some(v))
                }
            }
        }
    }

    fn required(&mut self, key: &'static str) -> Result<String> {
        self.optional(key)?
            .ok_or(ConnectionStringError::MissingKey { key })
    }
}

fn check_base64(key: &'static str, value: &str) -> Result<()> {
    BASE64
        .decode(value)
        .map(|_| ())
        .map_err(|_| ConnectionStringError::BadKey { key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iothub::test_rng::XorShift;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn err(s: &str) -> String {
        ConnectionString::parse(s).unwrap_err().to_string()
    }

    #[test]
    fn service_string() {
        let s = format!(
            "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY}"
        );
        let ConnectionString::Service(c) = ConnectionString::parse(&s).unwrap() else {
            panic!("not a service string")
        };
        assert_eq!(c.host_name, "myhub.azure-devices.net");
        assert_eq!(c.policy_name, "iothubowner");
        assert_eq!(c.key, KEY);
        assert_eq!(c.hub_name(), "myhub");
        assert_eq!(c.to_string(), s);
        assert_eq!(
            c.masked(),
            "HostName=myhub.azure-devices.net;SharedAccessKeyName=iothubowner;SharedAccessKey=****"
        );
        assert!(!format!("{c:?}").contains(KEY));
        // Trailing ';' and order do not matter.
        let reordered = format!(
            "SharedAccessKey={KEY};SharedAccessKeyName=iothubowner;HostName=myhub.azure-devices.net;"
        );
        assert_eq!(ServiceConnectionString::parse(&reordered).unwrap(), c);
    }

    #[test]
    fn device_strings_of_each_auth() {
        let s = format!("HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey={KEY}");
        let c = DeviceConnectionString::parse(&s).unwrap();
        assert_eq!(c.device_id, "dev1");
        assert_eq!(c.module_id, None);
        assert_eq!(c.auth, DeviceAuth::SharedAccessKey(KEY.into()));
        assert_eq!(c.to_string(), s);
        assert_eq!(
            c.masked(),
            "HostName=h.azure-devices.net;DeviceId=dev1;SharedAccessKey=****"
        );

        let s = format!(
            "HostName=h.azure-devices.net;DeviceId=dev1;ModuleId=m1;SharedAccessKey={KEY};GatewayHostName=edge.local"
        );
        let c = DeviceConnectionString::parse(&s).unwrap();
        assert_eq!(c.module_id.as_deref(), Some("m1"));
        assert_eq!(c.gateway_host_name.as_deref(), Some("edge.local"));
        assert_eq!(c.to_string(), s);

        let c = DeviceConnectionString::parse("HostName=h;DeviceId=d;x509=true").unwrap();
        assert_eq!(c.auth, DeviceAuth::X509);
        assert_eq!(c.to_string(), "HostName=h;DeviceId=d;x509=true");

        // SAS values contain '=' and '&': split at the first '=' only.
        let token = "SharedAccessSignature sr=h%2Fdevices%2Fd&sig=abc%3D&se=1700000000";
        let s = format!("HostName=h;DeviceId=d;SharedAccessSignature={token}");
        let c = DeviceConnectionString::parse(&s).unwrap();
        assert_eq!(c.auth, DeviceAuth::SharedAccessSignature(token.into()));
        assert_eq!(c.to_string(), s);
        assert_eq!(
            c.masked(),
            "HostName=h;DeviceId=d;SharedAccessSignature=****"
        );
        assert!(!format!("{:?}", ConnectionString::Device(c)).contains("sig="));
    }

    #[test]
    fn event_hub_string() {
        let s = format!(
            "Endpoint=sb://iothub-ns-myhub-1-abc.servicebus.windows.net/;SharedAccessKeyName=iothubowner;SharedAccessKey={KEY};EntityPath=myhub"
        );
        let ConnectionString::EventHub(c) = ConnectionString::parse(&s).unwrap() else {
            panic!("not an event hubs string")
        };
        assert_eq!(
            c.endpoint,
            "sb://iothub-ns-myhub-1-abc.servicebus.windows.net/"
        );
        assert_eq!(c.host, "iothub-ns-myhub-1-abc.servicebus.windows.net");
        assert_eq!(c.entity_path, "myhub");
        assert_eq!(c.to_string(), s);
        assert!(c.masked().contains("SharedAccessKey=****;"));

        // Keys case-insensitive; HostName stands in for Endpoint.
        let s = format!(
            "hostname=localhost:5671;sharedaccesskeyname=p;SHAREDACCESSKEY={KEY};entitypath=e"
        );
        let c = EventHubConnectionString::parse(&s).unwrap();
        assert_eq!(c.endpoint, "sb://localhost:5671/");
        assert_eq!(c.host, "localhost:5671");
        assert_eq!(EventHubConnectionString::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(err(""), "the connection string is empty");
        assert_eq!(err(" ; ;"), "the connection string is empty");
        assert_eq!(
            err("HostName=h;DeviceId"),
            "the connection string part \"DeviceId\" has no '=' (expected Key=Value)"
        );
        assert_eq!(
            err(&format!(
                "HostName=h;DeviceId=d;SharedAccessKey={KEY};Foo=1"
            )),
            "the connection string has an unknown key Foo"
        );
        // Hub/device keys are case-sensitive.
        assert_eq!(
            err(&format!("HostName=h;DeviceId=d;sharedaccesskey={KEY}")),
            "the connection string has an unknown key sharedaccesskey"
        );
        assert_eq!(
            err(&format!("SharedAccessKeyName=p;SharedAccessKey={KEY}")),
            "the connection string has no HostName"
        );
        assert_eq!(
            err("HostName=h;SharedAccessKeyName=p"),
            "the connection string has no SharedAccessKey"
        );
        assert_eq!(
            err(&format!(
                "HostName=h;SharedAccessKeyName=;SharedAccessKey={KEY}"
            )),
            "the connection string has an empty value for SharedAccessKeyName"
        );
        assert_eq!(
            err(&format!(
                "HostName=h;DeviceId=d;DeviceId=e;SharedAccessKey={KEY}"
            )),
            "the connection string has DeviceId more than once"
        );
        assert_eq!(
            err(&format!(
                "HostName=h;DeviceId=d;SharedAccessKey={KEY};x509=true"
            )),
            "the connection string mixes authentication schemes (SharedAccessKey and x509); keep one"
        );
        assert_eq!(
            err(&format!(
                "HostName=h;DeviceId=d;SharedAccessKey={KEY};SharedAccessSignature=x"
            )),
            "the connection string mixes authentication schemes (SharedAccessKey and SharedAccessSignature); keep one"
        );
        assert_eq!(
            err("HostName=h;DeviceId=d;SharedAccessKey=not base64!"),
            "the connection string's SharedAccessKey is not valid base64"
        );
        assert_eq!(
            err("HostName=h;DeviceId=d"),
            "the device connection string has no SharedAccessKey, SharedAccessSignature or x509=true"
        );
        assert_eq!(
            err("HostName=h;DeviceId=d;x509=yes"),
            "the connection string's x509 must be true or false, not \"yes\""
        );
        assert_eq!(
            err("HostName=h;SharedAccessKey=AAAA"),
            "the connection string is neither a hub (SharedAccessKeyName), device (DeviceId) nor event hubs (Endpoint) string"
        );
        assert_eq!(
            err(&format!(
                "Endpoint=sb://x/;HostName=x;SharedAccessKeyName=p;SharedAccessKey={KEY};EntityPath=e"
            )),
            "the connection string has Endpoint more than once"
        );
        assert_eq!(
            err(&format!(
                "Endpoint=sb://x/;SharedAccessKeyName=p;SharedAccessKey={KEY}"
            )),
            "the connection string has no EntityPath"
        );
        assert_eq!(
            err(&format!(
                "Endpoint=sb://x/;SharedAccessKeyName=p;SharedAccessKey={KEY};EntityPath=e;UseDevelopmentEmulator=true"
            )),
            "the connection string has an unknown key UseDevelopmentEmulator"
        );
        assert_eq!(
            err(&format!(
                "Endpoint=sb:///;SharedAccessKeyName=p;SharedAccessKey={KEY};EntityPath=e"
            )),
            "the connection string's Endpoint \"sb:///\" has no host name"
        );
    }

    /// Small deterministic PRNG so the smoke test needs no dependency.

    #[test]
    fn smoke_random_inputs_never_panic_and_round_trip() {
        let seeds = [
            format!("HostName=h.azure-devices.net;SharedAccessKeyName=p;SharedAccessKey={KEY}"),
            format!("HostName=h;DeviceId=d;ModuleId=m;SharedAccessKey={KEY};GatewayHostName=g"),
            "HostName=h;DeviceId=d;x509=true".to_owned(),
            "HostName=h;DeviceId=d;SharedAccessSignature=SharedAccessSignature sr=a&sig=b&se=1"
                .to_owned(),
            format!("Endpoint=sb://n/;SharedAccessKeyName=p;SharedAccessKey={KEY};EntityPath=e"),
        ];
        let alphabet: Vec<char> = ";=/: AaZz09+\u{e9}xX".chars().collect();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for _ in 0..4000 {
            let mut s: Vec<char> = seeds[rng.below(seeds.len())].chars().collect();
            for _ in 0..=rng.below(4) {
                match rng.below(3) {
                    0 => {
                        let at = rng.below(s.len() + 1);
                        s.insert(at, alphabet[rng.below(alphabet.len())]);
                    }
                    1 if !s.is_empty() => {
                        let at = rng.below(s.len());
                        s.remove(at);
                    }
                    _ => {
                        let at = rng.below(s.len() + 1);
                        s.truncate(at);
                    }
                }
            }
            let s: String = s.into_iter().collect();
            if let Ok(c) = ConnectionString::parse(&s) {
                parsed += 1;
                assert_eq!(
                    ConnectionString::parse(&c.to_string()).as_ref(),
                    Ok(&c),
                    "{s}"
                );
                let _ = c.masked();
            }
        }
        assert!(parsed > 100, "mutations too destructive: {parsed}");
    }
}
