//! The IoT Hub MQTT topic grammar, shared by the local hub and the device side: what a device
//! publishes, what the hub publishes, the filters a device may subscribe to, and the CONNECT
//! username. Device and module ids appear raw in topics (the SDKs do not encode them); request
//! ids are opaque and kept byte for byte.

use super::encoding::{url_decode, url_encode};
use super::property_bag::{PropertyBag, PropertyBagError};

const TWIN_GET: &str = "$iothub/twin/GET/";
const TWIN_PATCH_REPORTED: &str = "$iothub/twin/PATCH/properties/reported/";
const TWIN_PATCH_DESIRED: &str = "$iothub/twin/PATCH/properties/desired/";
const TWIN_RES: &str = "$iothub/twin/res/";
const METHODS_POST: &str = "$iothub/methods/POST/";
const METHODS_RES: &str = "$iothub/methods/res/";
const RID: &str = "$rid";
const VERSION: &str = "$version";
const API_VERSION: &str = "api-version";
const CLIENT_TYPE: &str = "DeviceClientType";
const MODEL_ID: &str = "model-id";

/// Why a topic, filter or username was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("the topic \"{0}\" is not an IoT Hub topic")]
    Unknown(String),
    #[error("the topic \"{0}\" has no $rid request id")]
    BadRid(String),
    #[error("the topic \"{0}\" has a status that is not a number")]
    BadStatus(String),
    #[error("the topic \"{0}\" has a $version that is not a number")]
    BadVersion(String),
    #[error("the topic \"{0}\" has an empty device, module or method name")]
    EmptyName(String),
    #[error("the topic has a bad property bag: {0}")]
    PropertyBag(#[from] PropertyBagError),
    #[error(
        "the MQTT username \"{0}\" is not {{host}}/{{deviceId}}[/{{moduleId}}]/?api-version=..."
    )]
    BadUsername(String),
}

type Result<T> = std::result::Result<T, TopicError>;

/// What a device/module may publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DevicePublish {
    Telemetry {
        device_id: String,
        module_id: Option<String>,
        properties: PropertyBag,
    },
    TwinGet {
        rid: String,
    },
    TwinPatchReported {
        rid: String,
    },
    MethodResponse {
        status: i32,
        rid: String,
    },
}

pub fn parse_device_publish(topic: &str) -> Result<DevicePublish> {
    if let Some(query) = topic.strip_prefix(TWIN_GET) {
        return Ok(DevicePublish::TwinGet {
            rid: rid(topic, query)?,
        });
    }
    if let Some(query) = topic.strip_prefix(TWIN_PATCH_REPORTED) {
        return Ok(DevicePublish::TwinPatchReported {
            rid: rid(topic, query)?,
        });
    }
    if let Some(rest) = topic.strip_prefix(METHODS_RES) {
        let (status, query) = rest
            .split_once('/')
            .ok_or_else(|| TopicError::Unknown(topic.to_owned()))?;
        let status = parse_int(status).ok_or_else(|| TopicError::BadStatus(topic.to_owned()))?;
        return Ok(DevicePublish::MethodResponse {
            status,
            rid: rid(topic, query)?,
        });
    }
    let (device_id, module_id, rest) = device_prefix(topic)?;
    let bag = match rest.strip_prefix("messages/events") {
        Some("") => "",
        Some(r) => r
            .strip_prefix('/')
            .ok_or_else(|| TopicError::Unknown(topic.to_owned()))?,
        None => return Err(TopicError::Unknown(topic.to_owned())),
    };
    Ok(DevicePublish::Telemetry {
        device_id,
        module_id,
        properties: PropertyBag::parse(bag)?,
    })
}

impl DevicePublish {
    pub fn to_topic(&self) -> String {
        match self {
            Self::Telemetry {
                device_id,
                module_id,
                properties,
            } => format!(
                "{}/messages/events/{}",
                device_base(device_id, module_id.as_deref()),
                properties.format()
            ),
            Self::TwinGet { rid } => format!("{TWIN_GET}?{RID}={rid}"),
            Self::TwinPatchReported { rid } => format!("{TWIN_PATCH_REPORTED}?{RID}={rid}"),
            Self::MethodResponse { status, rid } => format!("{METHODS_RES}{status}/?{RID}={rid}"),
        }
    }
}

/// What the hub publishes to a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HubPublish {
    /// C2D is device only; `module_id` is reserved: parsing never sets it and `to_topic`
    /// ignores it (modules get messages on `.../modules/{m}/inputs/{name}/`, see [`ModuleInput`]).
    C2d {
        device_id: String,
        module_id: Option<String>,
        properties: PropertyBag,
    },
    TwinResponse {
        status: u16,
        rid: String,
        version: Option<u64>,
    },
    DesiredPatch {
        version: u64,
    },
    MethodRequest {
        method_name: String,
        rid: String,
    },
}

pub fn parse_hub_publish(topic: &str) -> Result<HubPublish> {
    if let Some(rest) = topic.strip_prefix(TWIN_RES) {
        let (status, query) = rest
            .split_once('/')
            .ok_or_else(|| TopicError::Unknown(topic.to_owned()))?;
        let status = parse_int(status).ok_or_else(|| TopicError::BadStatus(topic.to_owned()))?;
        let params = query_params(topic, query)?;
        return Ok(HubPublish::TwinResponse {
            status,
            rid: rid_param(topic, &params)?,
            version: version_param(topic, &params)?,
        });
    }
    if let Some(query) = topic.strip_prefix(TWIN_PATCH_DESIRED) {
        let params = query_params(topic, query)?;
        // The embedded C SDK cannot use a notification without $version, so it is required.
        let version = version_param(topic, &params)?
            .ok_or_else(|| TopicError::BadVersion(topic.to_owned()))?;
        return Ok(HubPublish::DesiredPatch { version });
    }
    if let Some(rest) = topic.strip_prefix(METHODS_POST) {
        let (name, query) = rest
            .split_once('/')
            .ok_or_else(|| TopicError::Unknown(topic.to_owned()))?;
        if name.is_empty() {
            return Err(TopicError::EmptyName(topic.to_owned()));
        }
        return Ok(HubPublish::MethodRequest {
            method_name: name.to_owned(),
            rid: rid(topic, query)?,
        });
    }
    let (device_id, module_id, rest) = device_prefix(topic)?;
    if module_id.is_some() {
        return Err(TopicError::Unknown(topic.to_owned()));
    }
    let bag = match rest.strip_prefix("messages/devicebound") {
        Some("") => "",
        Some(r) => r
            .strip_prefix('/')
            .ok_or_else(|| TopicError::Unknown(topic.to_owned()))?,
        None => return Err(TopicError::Unknown(topic.to_owned())),
    };
    Ok(HubPublish::C2d {
        device_id,
        module_id: None,
        properties: PropertyBag::parse(bag)?,
    })
}

impl HubPublish {
    pub fn to_topic(&self) -> String {
        match self {
            // Always a '/' after devicebound: Node's matcher requires it even with an empty bag.
            Self::C2d {
                device_id,
                properties,
                ..
            } => format!(
                "devices/{device_id}/messages/devicebound/{}",
                properties.format()
            ),
            Self::TwinResponse {
                status,
                rid,
                version,
            } => match version {
                Some(v) => format!("{TWIN_RES}{status}/?{RID}={rid}&{VERSION}={v}"),
                None => format!("{TWIN_RES}{status}/?{RID}={rid}"),
            },
            Self::DesiredPatch { version } => format!("{TWIN_PATCH_DESIRED}?{VERSION}={version}"),
            Self::MethodRequest { method_name, rid } => {
                format!("{METHODS_POST}{method_name}/?{RID}={rid}")
            }
        }
    }
}

/// A message the hub delivers to a module input (`devices/{d}/modules/{m}/inputs/{input}/{bag}`,
/// IoT Edge routing). Not part of [`HubPublish`] so that enum keeps its agreed shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInput {
    pub device_id: String,
    pub module_id: String,
    pub input_name: String,
    pub properties: PropertyBag,
}

impl ModuleInput {
    pub fn parse(topic: &str) -> Result<Self> {
        let (device_id, module_id, rest) = device_prefix(topic)?;
        let unknown = || TopicError::Unknown(topic.to_owned());
        let module_id = module_id.ok_or_else(unknown)?;
        let rest = rest.strip_prefix("inputs/").ok_or_else(unknown)?;
        let (input_name, bag) = rest.split_once('/').unwrap_or((rest, ""));
        if input_name.is_empty() {
            return Err(TopicError::EmptyName(topic.to_owned()));
        }
        Ok(Self {
            device_id,
            module_id,
            input_name: input_name.to_owned(),
            properties: PropertyBag::parse(bag)?,
        })
    }

    pub fn to_topic(&self) -> String {
        format!(
            "devices/{}/modules/{}/inputs/{}/{}",
            self.device_id,
            self.module_id,
            self.input_name,
            self.properties.format()
        )
    }
}

/// Topic filters a device may subscribe to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    C2d {
        device_id: String,
    },
    ModuleInputs {
        device_id: String,
        module_id: String,
    },
    TwinResponses,
    DesiredPatches,
    Methods,
}

pub fn parse_subscription(filter: &str) -> Result<Subscription> {
    match filter {
        "$iothub/twin/res/#" => return Ok(Subscription::TwinResponses),
        "$iothub/twin/PATCH/properties/desired/#" => return Ok(Subscription::DesiredPatches),
        "$iothub/methods/POST/#" => return Ok(Subscription::Methods),
        _ => {}
    }
    let (device_id, module_id, rest) = device_prefix(filter)?;
    match (module_id, rest) {
        (None, "messages/devicebound/#") => Ok(Subscription::C2d { device_id }),
        // Python/Node subscribe to inputs/#, the C SDK to the whole module subtree.
        (Some(module_id), "inputs/#" | "#") => Ok(Subscription::ModuleInputs {
            device_id,
            module_id,
        }),
        _ => Err(TopicError::Unknown(filter.to_owned())),
    }
}

impl Subscription {
    pub fn to_filter(&self) -> String {
        match self {
            Self::C2d { device_id } => format!("devices/{device_id}/messages/devicebound/#"),
            Self::ModuleInputs {
                device_id,
                module_id,
            } => format!("devices/{device_id}/modules/{module_id}/inputs/#"),
            Self::TwinResponses => format!("{TWIN_RES}#"),
            Self::DesiredPatches => format!("{TWIN_PATCH_DESIRED}#"),
            Self::Methods => format!("{METHODS_POST}#"),
        }
    }
}

/// MQTT username: "{host}/{deviceId}/?api-version=..&DeviceClientType=..&model-id=.." or with "/{moduleId}" ;
/// also accepts "/api-version=" (no '?') and no api-version at all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttUsername {
    pub host: String,
    pub device_id: String,
    pub module_id: Option<String>,
    pub api_version: Option<String>,
    /// Decoded user agent.
    pub client_type: Option<String>,
    /// Decoded DTMI (Node sends it unencoded, others encoded).
    pub model_id: Option<String>,
}

impl MqttUsername {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || TopicError::BadUsername(s.to_owned());
        let (host, rest) = s.split_once('/').ok_or_else(bad)?;
        let (device_id, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || device_id.is_empty() {
            return Err(bad());
        }
        // After the device: nothing, a query ("?..." or old C "api-version=..."), or a module.
        let (module_id, query) = match split_query(rest) {
            Some(q) => (None, q),
            None => {
                let (module, after) = rest.split_once('/').unwrap_or((rest, ""));
                if module.is_empty() {
                    return Err(bad());
                }
                (Some(module), split_query(after).ok_or_else(bad)?)
            }
        };
        let mut name = Self {
            host: host.to_owned(),
            device_id: device_id.to_owned(),
            module_id: module_id.map(str::to_owned),
            api_version: None,
            client_type: None,
            model_id: None,
        };
        for part in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            // Values are normally encoded; keep raw text when they are not decodable.
            let value = url_decode(value).unwrap_or_else(|_| value.to_owned());
            let slot = match key {
                API_VERSION => &mut name.api_version,
                CLIENT_TYPE => &mut name.client_type,
                MODEL_ID => &mut name.model_id,
                // Other SDK parameters (e.g. older PnP previews) are not needed by the hub.
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        Ok(name)
    }

    /// Canonical form: `?` present, parameters in Python/C order, values encoded.
    pub fn format(&self) -> String {
        let mut s = format!("{}/{}/", self.host, self.device_id);
        if let Some(m) = &self.module_id {
            s.push_str(m);
            s.push('/');
        }
        let params = [
            (API_VERSION, &self.api_version),
            (CLIENT_TYPE, &self.client_type),
            (MODEL_ID, &self.model_id),
        ];
        let mut first = true;
        for (key, value) in params {
            if let Some(v) = value {
                s.push(if first { '?' } else { '&' });
                first = false;
                s.push_str(key);
                s.push('=');
                s.push_str(&url_encode(v));
            }
        }
        s
    }
}

/// Query text if `rest` is empty, "?..." or the old C form "api-version=...".
fn split_query(rest: &str) -> Option<&str> {
    if rest.is_empty() {
        Some("")
    } else if let Some(q) = rest.strip_prefix('?') {
        Some(q)
    } else if rest.starts_with("api-version=") {
        Some(rest)
    } else {
        None
    }
}

/// "devices/{d}/" or "devices/{d}/modules/{m}/" → (d, m, remainder).
fn device_prefix(topic: &str) -> Result<(String, Option<String>, &str)> {
    let unknown = || TopicError::Unknown(topic.to_owned());
    let rest = topic.strip_prefix("devices/").ok_or_else(unknown)?;
    let (device, rest) = rest.split_once('/').ok_or_else(unknown)?;
    if device.is_empty() {
        return Err(TopicError::EmptyName(topic.to_owned()));
    }
    let Some(rest) = rest.strip_prefix("modules/") else {
        return Ok((device.to_owned(), None, rest));
    };
    let (module, rest) = rest.split_once('/').ok_or_else(unknown)?;
    if module.is_empty() {
        return Err(TopicError::EmptyName(topic.to_owned()));
    }
    Ok((device.to_owned(), Some(module.to_owned()), rest))
}

fn device_base(device_id: &str, module_id: Option<&str>) -> String {
    match module_id {
        Some(m) => format!("devices/{device_id}/modules/{m}"),
        None => format!("devices/{device_id}"),
    }
}

/// "?k=v&k2=v2" → raw pairs (rid must be echoed byte for byte, so nothing is decoded).
fn query_params<'a>(topic: &str, query: &'a str) -> Result<Vec<(&'a str, &'a str)>> {
    let query = query
        .strip_prefix('?')
        .ok_or_else(|| TopicError::Unknown(topic.to_owned()))?;
    Ok(query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect())
}

fn rid_param(topic: &str, params: &[(&str, &str)]) -> Result<String> {
    match params.iter().find(|(k, _)| *k == RID) {
        Some((_, v)) if !v.is_empty() => Ok((*v).to_owned()),
        _ => Err(TopicError::BadRid(topic.to_owned())),
    }
}

fn version_param(topic: &str, params: &[(&str, &str)]) -> Result<Option<u64>> {
    match params.iter().find(|(k, _)| *k == VERSION) {
        None => Ok(None),
        Some((_, v)) => parse_int(v)
            .map(Some)
            .ok_or_else(|| TopicError::BadVersion(topic.to_owned())),
    }
}

fn rid(topic: &str, query: &str) -> Result<String> {
    rid_param(topic, &query_params(topic, query)?)
}

/// Plain decimal (optional '-' for signed types), so formatting gives the same text back.
fn parse_int<T: std::str::FromStr>(s: &str) -> Option<T> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests;
