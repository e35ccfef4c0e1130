//! The provisioning credential cache, as the IoT Central device client keeps one: the
//! assignment and the device key of a registration (no key for a certificate, which stays
//! in its own file), in a file only the user can read,
//! reused on restart so a device does not provision again each time it starts.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Assignment, Registration};

/// Largest cache file read; an assignment is a few hundred bytes.
const MAX_FILE_BYTES: u64 = 16 * 1024;

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    id_scope: String,
    registration_id: String,
    assigned_hub: String,
    device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_key: Option<String>,
}

/// The cache of one registration, in `dir`.
pub struct CredentialCache {
    path: PathBuf,
}

impl CredentialCache {
    pub fn new(dir: &Path, reg: &Registration) -> CredentialCache {
        // Scopes and registration ids are letters, digits and `-._:`: safe in a file name.
        let name = format!("{}.{}.json", reg.id_scope, reg.registration_id);
        CredentialCache {
            path: dir.join(name),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached assignment of `reg`, if there is one made with the key `reg` has now (a
    /// changed key means the enrollment changed: provision again). A missing, unreadable
    /// or foreign file is no assignment.
    pub fn load(&self, reg: &Registration, device_key: Option<&str>) -> Option<Assignment> {
        let file = std::fs::File::open(&self.path).ok()?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_FILE_BYTES), &mut bytes)
            .ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        (e.id_scope == reg.id_scope
            && e.registration_id == reg.registration_id
            && e.device_key.as_deref() == device_key)
            .then_some(Assignment {
                assigned_hub: e.assigned_hub,
                device_id: e.device_id,
                device_key: e.device_key,
            })
    }

    /// Keeps `a` for `reg`: written whole to a temporary file readable by the user only,
    /// then renamed over the old one, so a crash leaves the old cache or the new, never half.
    pub fn store(&self, reg: &Registration, a: &Assignment) -> std::io::Result<()> {
        let entry = Entry {
            id_scope: reg.id_scope.clone(),
            registration_id: reg.registration_id.clone(),
            assigned_hub: a.assigned_hub.clone(),
            device_id: a.device_id.clone(),
            device_key: a.device_key.clone(),
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        // NamedTempFile creates its file with mode 0600 on Unix.
        tmp.write_all(&serde_json::to_vec_pretty(&entry).map_err(std::io::Error::other)?)?;
        tmp.as_file().sync_all()?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }

    /// Drops the cached assignment (the hub refused it).
    pub fn forget(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::Attestation;
    use super::*;

    fn reg(key: &str) -> Registration {
        Registration {
            host: "localhost".into(),
            port: 443,
            id_scope: "0ne00000001".into(),
            registration_id: "sensor-1".into(),
            attestation: Attestation::DeviceKey(key.into()),
            model_id: None,
        }
    }

    #[test]
    fn an_assignment_is_kept_private_and_reused_only_with_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let r = reg("a2V5MQ==");
        let cache = CredentialCache::new(dir.path(), &r);
        assert_eq!(cache.load(&r, Some("a2V5MQ==")), None);
        let a = Assignment {
            assigned_hub: "hub.example".into(),
            device_id: "sensor-1".into(),
            device_key: Some("a2V5MQ==".into()),
        };
        cache.store(&r, &a).unwrap();
        assert_eq!(cache.load(&r, Some("a2V5MQ==")), Some(a.clone()));
        assert_eq!(
            cache.load(&r, Some("a2V5Mg==")),
            None,
            "another key provisions again"
        );
        assert_eq!(cache.load(&r, None), None, "a key is not a certificate");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(cache.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        cache.forget().unwrap();
        assert_eq!(cache.load(&r, Some("a2V5MQ==")), None);
        cache.forget().unwrap();
    }

    #[test]
    fn a_damaged_file_is_no_assignment() {
        let dir = tempfile::tempdir().unwrap();
        let r = reg("a2V5MQ==");
        let cache = CredentialCache::new(dir.path(), &r);
        std::fs::write(cache.path(), b"{ not json").unwrap();
        assert_eq!(cache.load(&r, Some("a2V5MQ==")), None);
    }

    #[test]
    fn a_certificate_assignment_is_kept_without_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let r = reg("a2V5MQ==");
        let cache = CredentialCache::new(dir.path(), &r);
        let a = Assignment {
            assigned_hub: "hub.example".into(),
            device_id: "sensor-1".into(),
            device_key: None,
        };
        cache.store(&r, &a).unwrap();
        let text = std::fs::read_to_string(cache.path()).unwrap();
        assert!(!text.contains("deviceKey"), "{text}");
        assert_eq!(cache.load(&r, None), Some(a));
        assert_eq!(cache.load(&r, Some("a2V5MQ==")), None);
    }
}
