//! The Device Provisioning Service of the local hub: its ID scope, enrollments and
//! registrations. The device protocol is served on the MQTT port (`mqtt::dps`) and the
//! HTTPS port (`dps::rest`), as is the service-side enrollment API; the provisioning
//! host is the hub's own host name.

pub mod enrollments;
pub mod registration;
pub mod rest;
pub mod x509_enrollment;
pub mod x509_registration;

use super::store::{Store, StoreError};

const ID_SCOPE_KEY: &str = "idScope";

/// The hub's ID scope: `wanted` (and kept from then on), else the stored one, else a new
/// one in Azure's shape (`0ne` and 8 hex digits), stored for the next start.
pub fn load_id_scope(store: &Store, wanted: Option<&str>) -> Result<String, StoreError> {
    if let Some(scope) = wanted {
        store.meta_put(ID_SCOPE_KEY, scope)?;
        return Ok(scope.to_string());
    }
    if let Some(scope) = store.meta_get(ID_SCOPE_KEY)? {
        return Ok(scope);
    }
    let scope = format!("0ne{:08X}", rand::random::<u32>());
    store.meta_put(ID_SCOPE_KEY, &scope)?;
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_scope_is_made_once_and_kept_unless_given() {
        let store = Store::in_memory().unwrap();
        let made = load_id_scope(&store, None).unwrap();
        assert!(made.starts_with("0ne") && made.len() == 11, "{made}");
        assert_eq!(load_id_scope(&store, None).unwrap(), made);
        assert_eq!(load_id_scope(&store, Some("0neABC")).unwrap(), "0neABC");
        assert_eq!(load_id_scope(&store, None).unwrap(), "0neABC");
    }
}
