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
mod tests;
