//! IoT Edge in the registry, as `az iot hub device-identity` and `az iot edge` manage it:
//! an edge device's own scope (`ms-azure-iot-edge://{id}-{generationId}`), parent/child
//! relations (a leaf device's `deviceScope` names its parent edge device, an edge
//! device's `parentScopes` its parent in a nested hierarchy; a device's `parentScopes`
//! always lists its parent), the `$edgeAgent` and `$edgeHub` module identities every
//! edge device has, and `applyConfigurationContent`, which writes a deployment
//! manifest into the module twins.

use serde_json::{Map, Value, json};

use super::{HubState, Identity, RequestedIdentity, bad_request};
use iothub::device::{edge_scope as own_scope, edge_scope_device as scope_device};
use iothub::error::{ErrorCode, ServiceError};

/// The system modules IoT Hub creates with an edge device, and which every deployment
/// manifest configures.
pub const SYSTEM_MODULES: [&str; 2] = ["$edgeAgent", "$edgeHub"];
/// Modules one deployment manifest may configure: Azure's limit of module identities
/// per device.
const MAX_DEPLOYMENT_MODULES: usize = 50;

/// The scopes an identity ends up with: an edge device has its own scope and keeps its
/// parent unless `parentScopes` is given; a leaf device's parent is its `deviceScope`,
/// kept unless the body gives one (empty or null removes it).
pub(super) fn assign_scopes(req: &RequestedIdentity, id: &mut Identity) {
    let d = &mut id.device;
    if req.iot_edge {
        let own = own_scope(&d.device_id, &d.generation_id);
        if let Some(parents) = &req.parent_scopes {
            d.parent_scopes = parents.clone();
        } else if d.device_scope.as_deref() != Some(own.as_str()) {
            // It was a leaf device: its parent was its device scope.
            d.parent_scopes = d.device_scope.iter().cloned().collect();
        }
        d.device_scope = Some(own);
    } else {
        let kept = d
            .device_scope
            .take()
            .filter(|s| scope_device(s) != Some(d.device_id.as_str()));
        let scope = match &req.device_scope {
            Some(requested) => requested.clone().filter(|s| !s.is_empty()),
            None => kept,
        };
        d.parent_scopes = scope.iter().cloned().collect();
        d.device_scope = scope;
    }
}

impl HubState {
    /// Checks that the parent scopes a request names are those of edge devices of this
    /// hub, other than the device itself: one parent at most.
    pub(super) fn check_requested_parent(
        &self,
        req: &RequestedIdentity,
    ) -> Result<(), ServiceError> {
        let named: Vec<&str> = if req.iot_edge {
            req.parent_scopes
                .iter()
                .flatten()
                .map(String::as_str)
                .collect()
        } else {
            req.device_scope
                .iter()
                .flatten()
                .map(String::as_str)
                .collect()
        };
        if named.len() > 1 {
            return Err(bad_request(
                "A device has at most one parent: give parentScopes with one scope.",
            ));
        }
        for scope in named.into_iter().filter(|s| !s.is_empty()) {
            let not_edge = || {
                bad_request(format!(
                    "The scope '{scope}' is not the deviceScope of an IoT Edge device in this hub."
                ))
            };
            let parent_id = scope_device(scope).ok_or_else(not_edge)?;
            if parent_id == req.device_id {
                return Err(bad_request(format!(
                    "The device {parent_id} cannot be its own parent."
                )));
            }
            let parent = match self.load(parent_id, None) {
                Ok(p) => p,
                Err(e) if e.code == ErrorCode::DeviceNotFound => return Err(not_edge()),
                Err(e) => return Err(e),
            };
            if !parent.device.capabilities.iot_edge
                || parent.device.device_scope.as_deref() != Some(scope)
            {
                return Err(not_edge());
            }
        }
        Ok(())
    }

    /// Creates the `$edgeAgent` and `$edgeHub` modules of an edge device that lacks them.
    pub(super) fn ensure_system_modules(&self, device_id: &str) -> Result<(), ServiceError> {
        for module in SYSTEM_MODULES {
            self.ensure_module(device_id, module)?;
        }
        Ok(())
    }

    fn ensure_module(&self, device_id: &str, module: &str) -> Result<(), ServiceError> {
        match self.put_identity(device_id, Some(module), &json!({}), None) {
            Err(e) if e.code == ErrorCode::ModuleAlreadyExistsOnDevice => Ok(()),
            other => other.map(drop),
        }
    }

    /// `POST /devices/{id}/applyConfigurationContent`: each module in the manifest's
    /// `modulesContent` (created if missing) gets the manifest's `properties.desired` as
    /// its desired properties, replacing what was there. The manifest is checked whole
    /// before any twin is written.
    pub fn apply_configuration_content(
        &self,
        device_id: &str,
        body: &Value,
    ) -> Result<(), ServiceError> {
        let device = self.load(device_id, None)?;
        if !device.device.capabilities.iot_edge {
            return Err(bad_request(format!(
                "The device {device_id} is not an IoT Edge device; a deployment manifest applies only to one (capabilities.iotEdge = true)."
            )));
        }
        let modules = manifest_modules(body)?;
        for (module, desired) in modules {
            self.ensure_module(device_id, module)?;
            let update = json!({"properties": {"desired": desired}});
            self.update_twin(device_id, Some(module), &update, None, true)?;
        }
        Ok(())
    }
}

/// A module of a deployment manifest and its desired properties.
type ModuleContent<'a> = (&'a str, &'a Map<String, Value>);

/// The modules of a deployment manifest with their desired properties, checked.
fn manifest_modules(body: &Value) -> Result<Vec<ModuleContent<'_>>, ServiceError> {
    let content = body
        .get("modulesContent")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            bad_request(
                "The configuration content has no modulesContent object; give the deployment manifest's modulesContent.",
            )
        })?;
    for required in SYSTEM_MODULES {
        if !content.contains_key(required) {
            return Err(bad_request(format!(
                "The modulesContent has no {required}; a deployment manifest configures $edgeAgent and $edgeHub."
            )));
        }
    }
    if content.len() > MAX_DEPLOYMENT_MODULES {
        return Err(bad_request(format!(
            "The modulesContent configures {} modules; at most {MAX_DEPLOYMENT_MODULES} are allowed.",
            content.len()
        )));
    }
    content
        .iter()
        .map(|(module, twin)| {
            iothub::device::validate_module_id(module)
                .map_err(|e| bad_request(format!("In modulesContent: {e}")))?;
            let desired = twin
                .get("properties.desired")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    bad_request(format!(
                        "The modulesContent of {module} has no \"properties.desired\" object."
                    ))
                })?;
            Ok((module.as_str(), desired))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_needs_both_system_modules_and_desired_objects() {
        let ok = json!({"modulesContent": {
            "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1"}},
            "$edgeHub": {"properties.desired": {"routes": {}}},
            "sensor": {"properties.desired": {"interval": 5}}
        }});
        let modules = manifest_modules(&ok).unwrap();
        assert_eq!(modules.len(), 3);
        let missing = json!({"modulesContent": {"$edgeAgent": {"properties.desired": {}}}});
        assert_eq!(
            manifest_modules(&missing).unwrap_err().message,
            "The modulesContent has no $edgeHub; a deployment manifest configures $edgeAgent and $edgeHub."
        );
        let not_object = json!({"modulesContent": {
            "$edgeAgent": {"properties.desired": 1},
            "$edgeHub": {"properties.desired": {}}
        }});
        assert!(manifest_modules(&not_object).is_err());
        assert!(manifest_modules(&json!({"deviceContent": {}})).is_err());
    }
}
