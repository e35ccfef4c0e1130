//! Bulk registry operations (`POST /devices`): up to 100 ExportImportDevice entries,
//! each created, updated, deleted or twin-updated on its own in one atomic store step, with
//! the failures reported per device in a BulkRegistryOperationResult.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    HubState, Identity, RequestedIdentity, apply_service_update, bad_request, encode, etag_matches,
    next_etag,
};
use iothub::device::{validate_device_id, validate_module_id};
use iothub::error::{ErrorCode, ServiceError};
use iothub::twin::{ServiceTwinUpdate, parse_service_update};

/// Azure's limit on entries per bulk call (larger sets go through import jobs).
pub const MAX_BULK_DEVICES: usize = 100;

/// What an entry asks for (`importMode`). The REST API documents the first seven; the
/// `createOrUpdate` forms are the import-job modes of the same ExportImportDevice type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ImportMode {
    Create,
    Update,
    #[serde(rename = "updateIfMatchETag")]
    UpdateIfMatchEtag,
    Delete,
    #[serde(rename = "deleteIfMatchETag")]
    DeleteIfMatchEtag,
    UpdateTwin,
    #[serde(rename = "updateTwinIfMatchETag")]
    UpdateTwinIfMatchEtag,
    CreateOrUpdate,
    #[serde(rename = "createOrUpdateIfMatchETag")]
    CreateOrUpdateIfMatchEtag,
}

/// One ExportImportDevice entry, as far as the hub uses it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    id: String,
    #[serde(default)]
    module_id: Option<String>,
    #[serde(default, rename = "eTag")]
    etag: Option<String>,
    /// Absent means createOrUpdate, the default of the mode's enum in the SDKs.
    #[serde(default)]
    import_mode: Option<ImportMode>,
    #[serde(default, rename = "twinETag")]
    twin_etag: Option<String>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    status_reason: Option<Value>,
    #[serde(default)]
    authentication: Option<Value>,
    #[serde(default)]
    capabilities: Option<Value>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    properties: Option<Value>,
}

impl Entry {
    /// The registry fields of the entry in the shape `PUT /devices/{id}` takes.
    fn identity_body(&self) -> Value {
        let mut o = Map::new();
        for (k, v) in [
            ("status", &self.status),
            ("statusReason", &self.status_reason),
            ("authentication", &self.authentication),
            ("capabilities", &self.capabilities),
        ] {
            if let Some(v) = v {
                o.insert(k.into(), v.clone());
            }
        }
        Value::Object(o)
    }

    /// The twin sections the entry sets (tags, desired); reported properties belong to
    /// the device and are not taken from a service.
    fn twin_update(&self) -> Result<Option<ServiceTwinUpdate>, ServiceError> {
        let desired = self.properties.as_ref().and_then(|p| p.get("desired"));
        if self.tags.is_none() && desired.is_none() {
            return Ok(None);
        }
        let body = json!({"tags": self.tags, "properties": {"desired": desired}});
        parse_service_update(&body)
            .map(Some)
            .map_err(|e| bad_request(e.to_string()))
    }
}

/// The result of a bulk call: Azure's BulkRegistryOperationResult.
pub struct BulkOutcome {
    pub errors: Vec<Value>,
}

impl BulkOutcome {
    pub fn is_successful(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "isSuccessful": self.is_successful(),
            "errors": self.errors,
            "warnings": [],
        })
    }
}

fn precondition_failed(what: &str, id: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::PreconditionFailed,
        format!("Precondition failed: the {what} given for {id} does not match its current one."),
    )
}

impl HubState {
    /// Parses and performs a bulk registry call. The request fails whole when it is not a
    /// list of entries, names more than 100 or names one identity twice; otherwise each
    /// entry succeeds or fails on its own.
    pub fn bulk_registry(&self, body: &Value) -> Result<BulkOutcome, ServiceError> {
        let Value::Array(items) = body else {
            return Err(bad_request(
                "The request body must be a JSON array of ExportImportDevice entries.",
            ));
        };
        if items.len() > MAX_BULK_DEVICES {
            return Err(ServiceError::new(
                ErrorCode::TooManyDevices,
                format!(
                    "Too many devices: {} were given and at most {MAX_BULK_DEVICES} are allowed per call.",
                    items.len()
                ),
            ));
        }
        let mut entries = Vec::with_capacity(items.len());
        let mut seen = HashSet::new();
        for item in items {
            let entry: Entry = serde_json::from_value(item.clone()).map_err(|e| {
                bad_request(format!("An ExportImportDevice entry is not valid: {e}."))
            })?;
            if !seen.insert((entry.id.clone(), entry.module_id.clone())) {
                return Err(ServiceError::new(
                    ErrorCode::DeviceDefinedMultipleTimes,
                    format!(
                        "The device {} is defined more than once in the request.",
                        entry.id
                    ),
                ));
            }
            entries.push(entry);
        }
        let mut errors = Vec::new();
        for entry in &entries {
            if let Err(e) = self.bulk_entry(entry) {
                let mut err = json!({
                    "deviceId": entry.id,
                    "errorCode": e.code.name(),
                    "errorStatus": e.message,
                });
                if let Some(m) = &entry.module_id {
                    err["moduleId"] = json!(m);
                }
                errors.push(err);
            }
        }
        Ok(BulkOutcome { errors })
    }

    fn bulk_entry(&self, e: &Entry) -> Result<(), ServiceError> {
        let (device_id, module_id) = (e.id.as_str(), e.module_id.as_deref());
        validate_device_id(device_id).map_err(|x| bad_request(x.to_string()))?;
        if let Some(m) = module_id {
            validate_module_id(m).map_err(|x| bad_request(x.to_string()))?;
        }
        match e.import_mode.unwrap_or(ImportMode::CreateOrUpdate) {
            ImportMode::Create => self.bulk_create(e),
            ImportMode::Update => self.bulk_update(e, None),
            ImportMode::UpdateIfMatchEtag => self.bulk_update(e, Some(required(&e.etag))),
            ImportMode::CreateOrUpdate => match self.bulk_create(e) {
                Err(x) if is_conflict(&x) => self.bulk_update(e, None),
                other => other,
            },
            ImportMode::CreateOrUpdateIfMatchEtag => match self.bulk_create(e) {
                Err(x) if is_conflict(&x) => self.bulk_update(e, Some(required(&e.etag))),
                other => other,
            },
            ImportMode::Delete => self.delete_identity(device_id, module_id, None),
            ImportMode::DeleteIfMatchEtag => {
                self.delete_identity(device_id, module_id, Some(required(&e.etag)))
            }
            ImportMode::UpdateTwin => self.bulk_update_twin(e, None),
            ImportMode::UpdateTwinIfMatchEtag => {
                self.bulk_update_twin(e, Some(required(&e.twin_etag)))
            }
        }
    }

    /// A new identity with the entry's twin sections, written in one insert.
    fn bulk_create(&self, e: &Entry) -> Result<(), ServiceError> {
        let module_id = e.module_id.as_deref();
        if module_id.is_some() {
            self.load(&e.id, None)?;
        }
        let requested = self.parse_checked(e)?;
        let now = HubState::now();
        let mut id: Identity = requested.create(now);
        if let Some(update) = e.twin_update()? {
            apply_service_update(&mut id.twin, &update, true, now)?;
        }
        if !self.store.identity_insert(&encode(&id)?)? {
            return Err(super::already_exists(&e.id, module_id));
        }
        if module_id.is_none() && requested.iot_edge {
            self.ensure_system_modules(&e.id)?;
        }
        Ok(())
    }

    /// The entry's identity, its parent scope checked as on PUT.
    fn parse_checked(&self, e: &Entry) -> Result<RequestedIdentity, ServiceError> {
        let module_id = e.module_id.as_deref();
        let requested = RequestedIdentity::parse(&e.id, module_id, &e.identity_body())?;
        if module_id.is_none() {
            self.check_requested_parent(&requested)?;
        }
        Ok(requested)
    }

    /// Overwrites an existing identity (and the twin sections the entry gives), after an
    /// etag check when `if_match` is set, in one read-modify-write.
    fn bulk_update(&self, e: &Entry, if_match: Option<&str>) -> Result<(), ServiceError> {
        let module_id = e.module_id.as_deref();
        let requested = self.parse_checked(e)?;
        let edge_device = module_id.is_none() && requested.iot_edge;
        let twin = e.twin_update()?;
        let now = HubState::now();
        let (id, ()) = self.modify(
            &e.id,
            module_id,
            |id| {
                if !etag_matches(if_match, &id.device.etag) {
                    return Err(precondition_failed("eTag", &e.id));
                }
                requested.apply_to(id, now);
                id.device.etag = next_etag(&id.device.etag);
                if let Some(update) = &twin {
                    apply_service_update(&mut id.twin, update, true, now)?;
                }
                Ok(())
            },
            |_, _| {},
        )?;
        self.revoke_stale_sessions(&id);
        if edge_device {
            self.ensure_system_modules(&e.id)?;
        }
        Ok(())
    }

    /// Replaces the twin's tags and desired properties given by the entry, after a twin
    /// etag check when `if_match` is set; the device hears of a desired change.
    fn bulk_update_twin(&self, e: &Entry, if_match: Option<&str>) -> Result<(), ServiceError> {
        let mut body = json!({});
        if let Some(t) = &e.tags {
            body["tags"] = t.clone();
        }
        if let Some(d) = e.properties.as_ref().and_then(|p| p.get("desired")) {
            body["properties"] = json!({"desired": d});
        }
        match self.update_twin(&e.id, e.module_id.as_deref(), &body, if_match, true) {
            Err(x) if x.code == ErrorCode::PreconditionFailed => {
                Err(precondition_failed("twinETag", &e.id))
            }
            other => other.map(|_| ()),
        }
    }
}

/// An etag the IfMatchETag modes need; a missing one matches nothing rather than
/// everything.
fn required(etag: &Option<String>) -> &str {
    etag.as_deref()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or("\u{0}missing")
}

fn is_conflict(e: &ServiceError) -> bool {
    matches!(
        e.code,
        ErrorCode::DeviceAlreadyExists | ErrorCode::ModuleAlreadyExistsOnDevice
    )
}
