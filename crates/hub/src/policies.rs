//! The hub's shared access policies and the permissions Azure gives each default one.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The four IoT Hub permissions a shared access policy can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Permission {
    RegistryRead,
    RegistryWrite,
    ServiceConnect,
    DeviceConnect,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub name: String,
    pub primary_key: String,
    pub secondary_key: String,
    pub permissions: Vec<Permission>,
}

impl Policy {
    pub fn allows(&self, p: Permission) -> bool {
        // RegistryWrite implies RegistryRead, as in Azure.
        self.permissions.contains(&p)
            || (p == Permission::RegistryRead
                && self.permissions.contains(&Permission::RegistryWrite))
    }
}

/// The default policies of a new IoT hub, with fresh random keys.
pub fn default_policies() -> Vec<Policy> {
    use Permission::*;
    [
        (
            "iothubowner",
            vec![RegistryRead, RegistryWrite, ServiceConnect, DeviceConnect],
        ),
        ("service", vec![ServiceConnect]),
        ("device", vec![DeviceConnect]),
        ("registryRead", vec![RegistryRead]),
        ("registryReadWrite", vec![RegistryRead, RegistryWrite]),
    ]
    .into_iter()
    .map(|(name, permissions)| Policy {
        name: name.to_string(),
        primary_key: random_key(),
        secondary_key: random_key(),
        permissions,
    })
    .collect()
}

/// A 256-bit random key in base64, the shape Azure generates.
pub fn random_key() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policies_have_azure_permissions_and_distinct_keys() {
        let p = default_policies();
        let names: Vec<_> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "iothubowner",
                "service",
                "device",
                "registryRead",
                "registryReadWrite"
            ]
        );
        assert!(p[0].allows(Permission::DeviceConnect));
        assert!(!p[1].allows(Permission::RegistryRead));
        assert!(p[4].allows(Permission::RegistryRead));
        assert!(!p[3].allows(Permission::RegistryWrite));
        assert_ne!(p[0].primary_key, p[1].primary_key);
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&p[0].primary_key)
                .unwrap()
                .len(),
            32
        );
    }
}
