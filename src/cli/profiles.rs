//! Named hub profiles in `$XDG_CONFIG_HOME/hubtui/config.toml`, written atomically with mode
//! 0600 (the file holds keys):
//!
//! ```toml
//! [hubs.prod]
//! connection_string = "HostName=…;SharedAccessKeyName=…;SharedAccessKey=…"
//! eventhub = "Endpoint=sb://…;…;EntityPath=…"   # optional
//! ca_certificate = "/path/to/ca.pem"             # optional: trust only this CA
//! storage = "DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…"  # optional: Files tab
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use iothub::connection_string::{
    ConnectionString, EventHubConnectionString, ServiceConnectionString,
};

pub const CONFIG_FILE: &str = "config.toml";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub connection_string: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eventhub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<PathBuf>,
    /// AMQP over WebSockets (443) for this hub, as `--amqp-websockets`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub amqp_websockets: bool,
    /// HTTP proxy for this hub, as `--proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// The storage account file uploads go to (its connection string), as `--storage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<String>,
}

/// The config file. Unknown tables are kept as they are when the file is rewritten.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConfigFile {
    #[serde(default)]
    pub hubs: BTreeMap<String, Profile>,
    #[serde(flatten)]
    pub other: BTreeMap<String, toml::Value>,
}

pub fn config_path() -> PathBuf {
    super::xdg::config_dir().join(CONFIG_FILE)
}

impl ConfigFile {
    /// Reads the file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<ConfigFile, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(format!(
                    "cannot read the config file {}: {e}",
                    path.display()
                ));
            }
        };
        toml::from_str(&text).map_err(|e| {
            format!(
                "the config file {} is not valid: {}",
                path.display(),
                e.message()
            )
        })
    }

    /// Writes the file atomically with mode 0600, creating its directory (mode 0700).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        create_private_dir(dir)
            .map_err(|e| format!("cannot create the config directory {}: {e}", dir.display()))?;
        let text = toml::to_string(self).map_err(|e| format!("cannot write the config: {e}"))?;
        hub::fsutil::write_atomic(path, text.as_bytes(), true)
            .map_err(|e| format!("cannot write the config file {}: {e}", path.display()))
    }

    /// The profile `name`, or one sentence naming the profiles there are.
    pub fn profile(&self, name: &str, path: &Path) -> Result<&Profile, String> {
        self.hubs.get(name).ok_or_else(|| {
            let known = if self.hubs.is_empty() {
                "there are none yet".to_string()
            } else {
                format!(
                    "known: {}",
                    self.hubs.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            };
            format!(
                "there is no hub profile named \"{name}\" in {} ({known}); add it with `hubtui hubs add {name} CONNSTR`",
                path.display()
            )
        })
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Parses a hub (service) connection string given through `source` (a flag or variable name);
/// the error is one sentence naming the source and the bad field.
pub fn parse_service(text: &str, source: &str) -> Result<ServiceConnectionString, String> {
    ServiceConnectionString::parse(text.trim()).map_err(|e| {
        match ConnectionString::parse(text.trim()) {
            Ok(ConnectionString::Device(_)) => format!(
                "{source} is a device connection string (it has DeviceId); the explorer needs a hub connection string with HostName, SharedAccessKeyName and SharedAccessKey"
            ),
            Ok(ConnectionString::EventHub(_)) => format!(
                "{source} is an Event Hubs connection string (it has Endpoint); pass it with --eventhub, and a hub connection string with --hub"
            ),
            _ => format!("{source}: {e}"),
        }
    })
}

/// Parses an Event Hubs-compatible connection string given through `source`.
pub fn parse_eventhub(text: &str, source: &str) -> Result<EventHubConnectionString, String> {
    EventHubConnectionString::parse(text.trim()).map_err(|e| format!("{source}: {e}"))
}

/// A storage account connection string from `source` (a flag, a profile), or one sentence.
pub fn parse_storage(
    text: &str,
    source: &str,
) -> Result<iothub::storage::connection_string::StorageConnectionString, String> {
    iothub::storage::connection_string::StorageConnectionString::parse(text)
        .map_err(|e| format!("{source}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_keeps_other_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(CONFIG_FILE);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "[ui]\ntheme = \"light\"\n").unwrap();
        let mut c = ConfigFile::load(&path).unwrap();
        c.hubs.insert(
            "a".into(),
            Profile {
                connection_string: "HostName=h;SharedAccessKeyName=p;SharedAccessKey=a2V5".into(),
                storage: Some(
                    "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=a2V5".into(),
                ),
                ..Profile::default()
            },
        );
        c.save(&path).unwrap();
        let again = ConfigFile::load(&path).unwrap();
        assert_eq!(again, c);
        assert!(again.other.contains_key("ui"));
        let e = again.profile("b", &path).unwrap_err();
        assert!(
            e.contains("no hub profile named \"b\"") && e.contains("known: a"),
            "{e}"
        );
    }

    #[test]
    fn bad_strings_name_the_field() {
        let e = parse_service("HostName=h;SharedAccessKeyName=p", "--hub").unwrap_err();
        assert_eq!(e, "--hub: the connection string has no SharedAccessKey");
        let e = parse_service("HostName=h;DeviceId=d;SharedAccessKey=a2V5", "--hub").unwrap_err();
        assert!(e.starts_with("--hub is a device connection string"), "{e}");
        let e = ConfigFile::load(Path::new("/nonexistent/x.toml")).unwrap();
        assert!(e.hubs.is_empty());
    }
}
