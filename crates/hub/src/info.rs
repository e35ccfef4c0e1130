//! DIR/hub.json: how clients find a running local hub (design.md, "Local hub contract").

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::state::HubState;

pub const HUB_JSON: &str = "hub.json";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ports {
    pub mqtt: u16,
    /// None until the AMQP endpoint is served.
    pub amqp: Option<u16>,
    pub https: u16,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HubInfo {
    pub host_name: String,
    pub service_connection_string: String,
    pub event_hub_compatible_connection_string: Option<String>,
    /// File name of the CA certificate, relative to the data dir.
    pub ca_certificate: String,
    pub ports: Ports,
    /// The Device Provisioning Service's ID scope (devices register under it).
    #[serde(default)]
    pub id_scope: String,
    /// The host provisioning clients dial: the hub itself, on its MQTT and HTTPS ports.
    #[serde(default)]
    pub provisioning_host: String,
    /// The blob store's storage account, for the official storage SDKs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageInfo>,
}

/// The blob store's account as clients need it (hub.json `storage`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageInfo {
    pub account_name: String,
    pub account_key: String,
    /// `https://localhost:PORT/{account}`: path-style, as the storage emulators serve it.
    pub blob_endpoint: String,
    /// `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;BlobEndpoint=…`.
    pub connection_string: String,
}

impl HubInfo {
    pub fn new(state: &HubState, ports: Ports) -> HubInfo {
        HubInfo {
            host_name: state.host_name.clone(),
            service_connection_string: state
                .service_connection_string("iothubowner")
                .unwrap_or_default(),
            event_hub_compatible_connection_string: None,
            ca_certificate: super::tls::CA_FILE.to_string(),
            ports,
            id_scope: state.id_scope.clone(),
            provisioning_host: state.host_name.clone(),
            storage: None,
        }
    }

    /// Writes hub.json atomically (mode 0600: it holds the owner and storage account keys).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        super::fsutil::write_atomic(&dir.join(HUB_JSON), json.as_bytes(), true)
    }

    pub fn read(dir: &Path) -> std::io::Result<HubInfo> {
        let text = std::fs::read_to_string(dir.join(HUB_JSON))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}
