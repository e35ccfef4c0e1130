//! Device and module identities and their twins: the rules of the identity
//! registry (ids, keys, etags, generation ids, connection state) and of twin
//! updates (versions, If-Match, desired-patch notifications).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::sessions::{Credential, IdentityKey, SessionCommand};
use super::state::HubState;
use super::store::StoredIdentity;
use iothub::device::{
    AuthType, Authentication, ConnectionState, DeviceIdentity, DeviceStatus, NEVER, SymmetricKey,
    format_time, validate_device_id, validate_module_id,
};
use iothub::error::{ErrorCode, ServiceError};
use iothub::twin::{Section, ServiceTwinUpdate, Twin, desired_notification, parse_service_update};

mod bulk;
mod digital_twin;
mod edge;
mod keys;

pub use bulk::{BulkOutcome, MAX_BULK_DEVICES};
pub use keys::{KeyRegeneration, PolicyKey};

/// A loaded identity: registry record plus twin.
#[derive(Clone, Debug)]
pub struct Identity {
    pub device: DeviceIdentity,
    pub module_id: Option<String>,
    /// For modules: who manages it (Azure's `managedBy`).
    pub managed_by: Option<String>,
    /// The IoT Plug and Play model id the device last announced on connect.
    pub model_id: Option<String>,
    pub twin: Twin,
}

/// How a connected device proved who it is; stamped on its telemetry.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthMethod {
    /// "device", "module" or "hub" (a policy token).
    pub scope: &'static str,
    /// "sas" (token from a device key), "symkey" (via a policy) or "x509Certificate".
    pub kind: &'static str,
    /// "iothub" for keys and self-signed certificates the registry holds, "external" for a
    /// certificate issued by a CA.
    pub issuer: &'static str,
    pub generation_id: String,
    /// The key the token was signed with, so a key change can end this connection.
    pub credential: Credential,
}

impl AuthMethod {
    /// The `iothub-connection-auth-method` annotation value.
    pub fn to_annotation(&self) -> String {
        json!({"scope": self.scope, "type": self.kind, "issuer": self.issuer, "acceptingIpFilterRule": null})
            .to_string()
    }
}

fn not_found(device_id: &str, module_id: Option<&str>) -> ServiceError {
    match module_id {
        None => ServiceError::new(
            ErrorCode::DeviceNotFound,
            format!("Device {device_id} cannot be found."),
        ),
        Some(m) => ServiceError::new(
            ErrorCode::ModuleNotFound,
            format!("Module {m} on device {device_id} cannot be found."),
        ),
    }
}

fn already_exists(device_id: &str, module_id: Option<&str>) -> ServiceError {
    match module_id {
        None => ServiceError::new(
            ErrorCode::DeviceAlreadyExists,
            format!("A device with ID '{device_id}' is already registered."),
        ),
        Some(m) => ServiceError::new(
            ErrorCode::ModuleAlreadyExistsOnDevice,
            format!("A module with ID '{m}' is already registered on device '{device_id}'."),
        ),
    }
}

fn bad_request(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::ArgumentInvalid, message)
}

/// The registry etag: base64 of a counter, like Azure's "MTk5NzI1Njgz".
pub(crate) fn next_etag(previous: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let n: u64 = b64
        .decode(previous)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    b64.encode((n + 1).to_string())
}

/// Compares an If-Match header value (quoted or not, or `*`) with an etag.
pub fn etag_matches(if_match: Option<&str>, etag: &str) -> bool {
    match if_match.map(str::trim) {
        None | Some("*") | Some("\"*\"") => true,
        Some(v) => v.trim_matches('"') == etag,
    }
}

fn generation_id() -> String {
    // Azure's generation ids are 18 decimal digits.
    format!("{:018}", rand::random::<u64>() % 1_000_000_000_000_000_000)
}

impl HubState {
    pub(crate) fn load(
        &self,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<Identity, ServiceError> {
        let rec = self
            .store
            .identity_get(device_id, module_id)?
            .ok_or_else(|| not_found(device_id, module_id))?;
        decode(&rec)
    }

    /// Loads, changes and saves an identity as one atomic step (`Store::identity_modify`):
    /// an error from `change` writes nothing. `committed` runs after the write and before
    /// any later writer's, so what it sends goes out in the order the writes were stored.
    pub(crate) fn modify<T>(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        change: impl FnOnce(&mut Identity) -> Result<T, ServiceError>,
        committed: impl FnOnce(&Identity, &T),
    ) -> Result<(Identity, T), ServiceError> {
        self.store
            .identity_modify(
                device_id,
                module_id,
                |rec| {
                    let mut id = decode(&rec)?;
                    let out = change(&mut id)?;
                    Ok::<_, ServiceError>((Some(encode(&id)?), (id, out)))
                },
                |(id, out)| committed(id, out),
            )?
            .ok_or_else(|| not_found(device_id, module_id))
    }

    /// The identity with its live connection state and last activity filled in.
    pub fn identity(
        &self,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<Identity, ServiceError> {
        let mut id = self.load(device_id, module_id)?;
        self.overlay_live(&mut id);
        Ok(id)
    }

    /// Fills in what changes without a registry write: last activity (kept in memory)
    /// and the C2D queue depth (kept in the queue).
    fn overlay_live(&self, id: &mut Identity) {
        let key = (id.device.device_id.clone(), id.module_id.clone());
        if let Some(t) = self
            .activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            id.device.last_activity_time = format_time(*t);
        }
        if id.module_id.is_none() {
            match self.store.c2d_count(&id.device.device_id) {
                Ok(n) => id.device.cloud_to_device_message_count = n,
                Err(e) => tracing::warn!(error = %e, "cannot count the C2D queue"),
            }
        }
    }

    /// Every device, ordered by id, with live activity.
    pub fn devices(&self) -> Result<Vec<Identity>, ServiceError> {
        let mut out = Vec::new();
        for rec in self.store.devices()? {
            let mut id = decode(&rec)?;
            self.overlay_live(&mut id);
            out.push(id);
        }
        Ok(out)
    }

    /// The next `limit` devices (or module identities) after `after`, in (device id,
    /// module id) order, with live activity: one chunk of a registry walk. The C2D counts
    /// of the whole chunk come from one query rather than one per device.
    pub fn identities_after(
        &self,
        modules: bool,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Result<Vec<Identity>, ServiceError> {
        let recs = self.store.identities_after(modules, after, limit)?;
        let counts = match (recs.first(), recs.last()) {
            (Some(a), Some(b)) if !modules => self.store.c2d_counts(&a.device_id, &b.device_id)?,
            _ => Default::default(),
        };
        let activity = self.activity.lock().unwrap_or_else(|p| p.into_inner());
        recs.iter()
            .map(|rec| {
                let mut id = decode(rec)?;
                let key = (id.device.device_id.clone(), id.module_id.clone());
                if let Some(t) = activity.get(&key) {
                    id.device.last_activity_time = format_time(*t);
                }
                if !modules {
                    id.device.cloud_to_device_message_count =
                        counts.get(&id.device.device_id).copied().unwrap_or(0);
                }
                Ok(id)
            })
            .collect()
    }

    pub fn modules(&self, device_id: &str) -> Result<Vec<Identity>, ServiceError> {
        self.load(device_id, None)?;
        let mut out = Vec::new();
        for rec in self.store.modules(device_id)? {
            let mut id = decode(&rec)?;
            self.overlay_live(&mut id);
            out.push(id);
        }
        Ok(out)
    }

    /// PUT /devices/{id} and /devices/{id}/modules/{mid}: creates without If-Match
    /// (409 if it exists), updates with If-Match (`*` or the current etag, else 412).
    pub fn put_identity(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        body: &Value,
        if_match: Option<&str>,
    ) -> Result<Identity, ServiceError> {
        validate_device_id(device_id).map_err(|e| bad_request(e.to_string()))?;
        if let Some(m) = module_id {
            validate_module_id(m).map_err(|e| bad_request(e.to_string()))?;
            self.load(device_id, None)?;
        }
        let requested = RequestedIdentity::parse(device_id, module_id, body)?;
        if module_id.is_none() {
            self.check_requested_parent(&requested)?;
        }
        let edge = module_id.is_none() && requested.iot_edge;
        let now = HubState::now();
        let id = match if_match {
            None => {
                let id = requested.create(now);
                if !self.store.identity_insert(&encode(&id)?)? {
                    return Err(already_exists(device_id, module_id));
                }
                id
            }
            Some(tag) => {
                let (mut id, ()) = self.modify(
                    device_id,
                    module_id,
                    |id| {
                        if !etag_matches(Some(tag), &id.device.etag) {
                            return Err(ServiceError::new(
                                ErrorCode::PreconditionFailed,
                                format!(
                                    "Precondition failed: the etag {tag} does not match the current etag of {device_id}."
                                ),
                            ));
                        }
                        requested.apply_to(id, now);
                        id.device.etag = next_etag(&id.device.etag);
                        Ok(())
                    },
                    |_, _| {},
                )?;
                self.revoke_stale_sessions(&id);
                self.overlay_live(&mut id);
                id
            }
        };
        // IoT Hub gives every edge device its two system modules.
        if edge {
            self.ensure_system_modules(device_id)?;
        }
        Ok(id)
    }

    /// Ends the live connection an identity change has revoked: any connection once the
    /// identity is disabled (as Azure ends it), else one whose token was signed with a key
    /// the identity no longer has, so that a renewed key takes effect at once. The device
    /// reconnects with a valid key or not at all.
    pub(crate) fn revoke_stale_sessions(&self, id: &Identity) {
        let key = (id.device.device_id.clone(), id.module_id.clone());
        if id.device.status == DeviceStatus::Disabled {
            self.sessions.close(&key, "the device was disabled");
            return;
        }
        let auth = &id.device.authentication;
        let valid: Vec<Credential> = match (&auth.auth_type, &auth.symmetric_key) {
            (AuthType::Sas, Some(sym)) => [&sym.primary_key, &sym.secondary_key]
                .into_iter()
                .flatten()
                .filter(|k| !k.is_empty())
                .map(|k| Credential::identity_key(k))
                .collect(),
            (AuthType::SelfSigned, _) => {
                let thumbs = auth.x509_thumbprint.clone().unwrap_or_default();
                [thumbs.primary_thumbprint, thumbs.secondary_thumbprint]
                    .iter()
                    .flatten()
                    .map(|t| Credential::thumbprint(t))
                    .collect()
            }
            (AuthType::CertificateAuthority, _) => vec![Credential::CertificateAuthority],
            _ => Vec::new(),
        };
        self.sessions.close_unless(
            &key,
            |c| *c == Credential::Policy || valid.contains(c),
            "the key the connection authenticated with was changed",
        );
    }

    /// Checks a just-attached connection against the stored identity: a delete, disable or
    /// key change stored after the connection authenticated but before it attached found
    /// no session to close, so it is caught here instead.
    pub(crate) fn revoke_if_stale(&self, key: &IdentityKey) {
        match self.load(&key.0, key.1.as_deref()) {
            Ok(id) => self.revoke_stale_sessions(&id),
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::DeviceNotFound | ErrorCode::ModuleNotFound
                ) =>
            {
                self.sessions.close(key, "the identity was deleted")
            }
            Err(e) => {
                tracing::warn!(device = %key.0, error = %e.message, "cannot recheck the connection's identity")
            }
        }
    }

    pub fn delete_identity(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        if_match: Option<&str>,
    ) -> Result<(), ServiceError> {
        let deleted = self.store.identity_delete(device_id, module_id, |rec| {
            let id = decode(rec)?;
            if etag_matches(if_match, &id.device.etag) {
                Ok(())
            } else {
                Err(ServiceError::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "Precondition failed: the etag does not match the current etag of {device_id}."
                    ),
                ))
            }
        })?;
        if !deleted {
            return Err(not_found(device_id, module_id));
        }
        let key = (device_id.to_string(), module_id.map(str::to_string));
        self.sessions.close(&key, "the identity was deleted");
        if module_id.is_none() {
            self.activity
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(d, _), _| d != device_id);
        }
        Ok(())
    }

    /// The twin as the service REST API shows it.
    pub fn twin_json(
        &self,
        device_id: &str,
        module_id: Option<&str>,
    ) -> Result<Value, ServiceError> {
        let id = self.identity(device_id, module_id)?;
        Ok(service_twin(&id))
    }

    /// PATCH (merge) or PUT (replace) of tags and desired properties by a service.
    /// If-Match is checked against the twin etag; a desired change is pushed to the device.
    pub fn update_twin(
        &self,
        device_id: &str,
        module_id: Option<&str>,
        body: &Value,
        if_match: Option<&str>,
        replace: bool,
    ) -> Result<Value, ServiceError> {
        let update = parse_service_update(body).map_err(|e| bad_request(e.to_string()))?;
        let key = (device_id.to_string(), module_id.map(str::to_string));
        let (mut id, _) = self.modify(
            device_id,
            module_id,
            |id| {
                check_twin_etag(&id.twin, if_match)?;
                apply_service_update(&mut id.twin, &update, replace, HubState::now())
            },
            |id, notify| {
                if let Some(patch) = notify {
                    self.notify_desired(&key, &id.twin, patch);
                }
            },
        )?;
        self.overlay_live(&mut id);
        Ok(service_twin(&id))
    }

    /// Sends a stored desired change to the device. Called from `modify`'s `committed`, so
    /// changes reach the device once stored, in version order.
    pub(crate) fn notify_desired(
        &self,
        key: &IdentityKey,
        twin: &Twin,
        patch: &Map<String, Value>,
    ) {
        let version = twin.desired.version;
        self.sessions.send(
            key,
            SessionCommand::DesiredPatch {
                version,
                body: desired_notification(patch, version)
                    .to_string()
                    .into_bytes(),
            },
        );
    }

    /// The twin as a device reads it over MQTT.
    pub fn twin_for_device(&self, key: &IdentityKey) -> Result<Value, ServiceError> {
        Ok(self.load(&key.0, key.1.as_deref())?.twin.device_view())
    }

    /// A device's reported-properties patch; returns the new reported version.
    pub fn patch_reported(&self, key: &IdentityKey, patch: &[u8]) -> Result<u64, ServiceError> {
        let value: Value = serde_json::from_slice(patch).map_err(|e| {
            bad_request(format!(
                "The reported properties patch is not valid JSON: {e}."
            ))
        })?;
        let Value::Object(patch) = value else {
            return Err(bad_request(
                "The reported properties patch must be a JSON object.",
            ));
        };
        let (id, ()) = self.modify(
            &key.0,
            key.1.as_deref(),
            |id| {
                id.twin
                    .patch(Section::Reported, &patch, HubState::now())
                    .map_err(|e| bad_request(e.to_string()))
            },
            |_, _| {},
        )?;
        Ok(id.twin.reported.version)
    }

    /// Checks the SAS token a device or module presents on connect.
    /// Accepts a token signed with the identity's own keys (scope device/module) or with
    /// a policy that has DeviceConnect (skn set), scoped to cover the identity.
    pub fn authenticate(&self, key: &IdentityKey, token: &str) -> Result<AuthMethod, ServiceError> {
        use iothub::sas::{SasToken, resource_covers, verify_token};
        let unauthorized =
            |why: &str| ServiceError::new(ErrorCode::IotHubUnauthorizedAccess, why.to_string());
        let token = SasToken::parse(token).map_err(|e| unauthorized(&e.to_string()))?;
        let id = self
            .load(&key.0, key.1.as_deref())
            .map_err(|_| unauthorized("the identity is not registered"))?;
        if id.device.status != DeviceStatus::Enabled {
            return Err(unauthorized("the device is disabled"));
        }
        let mut resource = format!("{}/devices/{}", self.host_name, key.0);
        if let Some(m) = &key.1 {
            resource.push_str(&format!("/modules/{m}"));
        }
        if !resource_covers(&token.resource, &resource) {
            return Err(unauthorized(
                "the token's resource does not cover this identity",
            ));
        }
        let now = Utc::now().timestamp().max(0) as u64;
        let (scope, kind, keys): (&'static str, &'static str, Vec<String>) = match &token.key_name {
            None => {
                let sym = id
                    .device
                    .authentication
                    .symmetric_key
                    .clone()
                    .unwrap_or_default();
                let scope = if key.1.is_some() { "module" } else { "device" };
                (
                    scope,
                    "sas",
                    [sym.primary_key, sym.secondary_key]
                        .into_iter()
                        .flatten()
                        .collect(),
                )
            }
            Some(name) => {
                let policy = self
                    .policy(name)
                    .filter(|p| p.allows(super::policies::Permission::DeviceConnect))
                    .ok_or_else(|| unauthorized("the policy does not grant DeviceConnect"))?;
                (
                    "hub",
                    "symkey",
                    vec![policy.primary_key.clone(), policy.secondary_key.clone()],
                )
            }
        };
        let mut last = unauthorized("the identity has no keys");
        for k in keys.iter().filter(|k| !k.is_empty()) {
            match verify_token(&token, k, now) {
                Ok(()) => {
                    let credential = if kind == "sas" {
                        Credential::identity_key(k)
                    } else {
                        Credential::Policy
                    };
                    return Ok(AuthMethod {
                        scope,
                        kind,
                        issuer: "iothub",
                        generation_id: id.device.generation_id.clone(),
                        credential,
                    });
                }
                Err(e) => last = unauthorized(&e.to_string()),
            }
        }
        Err(last)
    }

    /// Records a connect (`Some`, with the model id the device announced, if any) or a
    /// disconnect (`None`) on the identity: connection state and its time. As on Azure, a
    /// device that connects without a model id keeps the one it announced before.
    pub fn set_connected(
        &self,
        key: &IdentityKey,
        connected: Option<Option<&str>>,
    ) -> Result<(), ServiceError> {
        let now = HubState::now();
        let activity = self
            .activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied();
        self.modify(
            &key.0,
            key.1.as_deref(),
            |id| {
                id.device.connection_state = match connected {
                    Some(model_id) => {
                        if let Some(m) = model_id {
                            id.model_id = Some(m.to_string());
                        }
                        ConnectionState::Connected
                    }
                    None => ConnectionState::Disconnected,
                };
                id.device.connection_state_updated_time = format_time(now);
                if let Some(t) = activity {
                    id.device.last_activity_time = format_time(t);
                }
                Ok(())
            },
            |_, _| {},
        )?;
        Ok(())
    }

    /// Notes activity from a connected identity (kept in memory; see `HubState::activity`).
    pub fn touch(&self, key: &IdentityKey) {
        self.activity
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), HubState::now());
    }

    pub(crate) fn reset_connection_states(&self) -> Result<(), super::store::StoreError> {
        for rec in self.store.devices()? {
            let mut recs = vec![rec.clone()];
            recs.extend(self.store.modules(&rec.device_id)?);
            for rec in recs {
                if let Ok(mut id) = decode(&rec)
                    && id.device.connection_state == ConnectionState::Connected
                {
                    id.device.connection_state = ConnectionState::Disconnected;
                    if let Ok(r) = encode(&id) {
                        self.store.identity_update(&r)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// If-Match against the twin etag (`*` or absent matches any).
pub(crate) fn check_twin_etag(twin: &Twin, if_match: Option<&str>) -> Result<(), ServiceError> {
    let etag = twin.etag();
    if etag_matches(if_match, &etag) {
        return Ok(());
    }
    Err(ServiceError::new(
        ErrorCode::PreconditionFailed,
        format!(
            "Precondition failed: the twin etag {etag} has changed; read the twin again and retry."
        ),
    ))
}

/// Applies a service's tags/desired update (PATCH merges, PUT replaces) to a twin, as one
/// twin version; returns the desired patch to notify the device of, if desired changed. A
/// replaced desired section reaches the device as the full new document, with deletions
/// as nulls so it can drop them.
fn apply_service_update(
    twin: &mut Twin,
    update: &ServiceTwinUpdate,
    replace: bool,
    now: DateTime<Utc>,
) -> Result<Option<Map<String, Value>>, ServiceError> {
    let mut next = twin.clone();
    if let Some(tags) = &update.tags {
        if replace {
            next.replace(Section::Tags, tags.clone(), now)
        } else {
            next.patch(Section::Tags, tags, now)
        }
        .map_err(|e| bad_request(e.to_string()))?;
    }
    let mut notify = None;
    if let Some(desired) = &update.desired {
        if replace {
            next.replace(Section::Desired, desired.clone(), now)
                .map_err(|e| bad_request(e.to_string()))?;
            let mut patch = next.desired.properties.clone();
            for k in twin.desired.properties.keys() {
                if !patch.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            notify = Some(patch);
        } else {
            next.patch(Section::Desired, desired, now)
                .map_err(|e| bad_request(e.to_string()))?;
            notify = Some(desired.clone());
        }
    }
    // One update is one twin version, whether it touched tags, desired or both.
    if next.version > twin.version {
        next.version = twin.version + 1;
    }
    *twin = next;
    Ok(notify)
}

/// The fields a service may set on PUT, taken from its JSON body.
struct RequestedIdentity {
    device_id: String,
    module_id: Option<String>,
    status: DeviceStatus,
    status_reason: Option<String>,
    authentication: Authentication,
    iot_edge: bool,
    managed_by: Option<String>,
    /// `deviceScope`: None when the body has none (an update keeps the current one).
    device_scope: Option<Option<String>>,
    /// `parentScopes`: None when the body has none or null.
    parent_scopes: Option<Vec<String>>,
}

impl RequestedIdentity {
    fn parse(device_id: &str, module_id: Option<&str>, body: &Value) -> Result<Self, ServiceError> {
        let obj = body.as_object().ok_or_else(|| {
            bad_request("The request body must be a JSON object describing the identity.")
        })?;
        if let Some(id) = obj.get("deviceId").and_then(Value::as_str)
            && id != device_id
        {
            return Err(bad_request(format!(
                "The deviceId '{id}' in the body does not match '{device_id}' in the path."
            )));
        }
        let status = match obj.get("status").and_then(Value::as_str) {
            None | Some("enabled") => DeviceStatus::Enabled,
            Some("disabled") => DeviceStatus::Disabled,
            Some(other) => {
                return Err(bad_request(format!(
                    "The status '{other}' is not valid; use 'enabled' or 'disabled'."
                )));
            }
        };
        let authentication = match obj.get("authentication") {
            None | Some(Value::Null) => Authentication {
                auth_type: AuthType::Sas,
                symmetric_key: None,
                x509_thumbprint: None,
            },
            Some(a) => serde_json::from_value::<Authentication>(a.clone()).map_err(|e| {
                bad_request(format!("The authentication section is not valid: {e}."))
            })?,
        };
        let mut authentication = authentication;
        if authentication.auth_type == AuthType::Sas {
            let sym = authentication
                .symmetric_key
                .get_or_insert_with(SymmetricKey::default);
            for k in [&mut sym.primary_key, &mut sym.secondary_key] {
                match k {
                    Some(v) if !v.is_empty() => {
                        use base64::Engine;
                        if base64::engine::general_purpose::STANDARD
                            .decode(v.as_bytes())
                            .is_err()
                        {
                            return Err(bad_request("The symmetric key is not valid base64."));
                        }
                    }
                    _ => *k = Some(super::policies::random_key()),
                }
            }
        }
        Ok(RequestedIdentity {
            device_id: device_id.to_string(),
            module_id: module_id.map(str::to_string),
            status,
            status_reason: obj
                .get("statusReason")
                .and_then(Value::as_str)
                .map(str::to_string),
            authentication,
            iot_edge: obj
                .get("capabilities")
                .and_then(|c| c.get("iotEdge"))
                .and_then(Value::as_bool)
                .unwrap_or(false),
            managed_by: obj
                .get("managedBy")
                .and_then(Value::as_str)
                .map(str::to_string),
            device_scope: match obj.get("deviceScope") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(Value::String(s)) => Some(Some(s.clone())),
                Some(_) => return Err(bad_request("The deviceScope must be a string.")),
            },
            parent_scopes: match obj.get("parentScopes") {
                None | Some(Value::Null) => None,
                Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| {
                    bad_request("The parentScopes must be an array of scope strings.")
                })?),
            },
        })
    }

    fn create(&self, now: DateTime<Utc>) -> Identity {
        let device = DeviceIdentity {
            device_id: self.device_id.clone(),
            generation_id: generation_id(),
            etag: next_etag(""),
            connection_state: ConnectionState::Disconnected,
            status: self.status,
            status_reason: self.status_reason.clone(),
            connection_state_updated_time: NEVER.to_string(),
            status_updated_time: NEVER.to_string(),
            last_activity_time: NEVER.to_string(),
            cloud_to_device_message_count: 0,
            authentication: self.authentication.clone(),
            capabilities: iothub::device::Capabilities {
                iot_edge: self.iot_edge,
            },
            device_scope: None,
            parent_scopes: Vec::new(),
        };
        let mut id = Identity {
            device,
            module_id: self.module_id.clone(),
            managed_by: self.managed_by.clone(),
            model_id: None,
            twin: Twin::new(now),
        };
        if id.module_id.is_none() {
            edge::assign_scopes(self, &mut id);
        }
        id
    }

    fn apply_to(self, id: &mut Identity, now: DateTime<Utc>) {
        if id.device.status != self.status {
            id.device.status_updated_time = format_time(now);
        }
        id.device.capabilities.iot_edge = self.iot_edge;
        if id.module_id.is_none() {
            edge::assign_scopes(&self, id);
        }
        id.device.status = self.status;
        id.device.status_reason = self.status_reason;
        id.device.authentication = self.authentication;
        if self.managed_by.is_some() {
            id.managed_by = self.managed_by;
        }
    }
}

/// The registry JSON of an identity as the REST API returns it.
pub fn identity_json(id: &Identity) -> Value {
    // Azure returns both credential objects on every identity, with nulls for the kind it
    // does not use (an X.509 device has `symmetricKey: {primaryKey: null, ...}`).
    let mut device = id.device.clone();
    let auth = &mut device.authentication;
    auth.symmetric_key.get_or_insert_with(Default::default);
    auth.x509_thumbprint.get_or_insert_with(Default::default);
    let mut v = serde_json::to_value(&device).unwrap_or(Value::Null);
    // Module records have no status, capabilities or scopes (protocol doc 5.4).
    if let (Value::Object(o), Some(m)) = (&mut v, &id.module_id) {
        o.insert("moduleId".into(), json!(m));
        o.insert("managedBy".into(), json!(id.managed_by));
        for field in [
            "status",
            "statusReason",
            "statusUpdatedTime",
            "capabilities",
            "deviceScope",
            "parentScopes",
        ] {
            o.remove(field);
        }
    }
    v
}

/// The twin JSON of an identity as the service REST API and queries return it.
pub fn service_twin(id: &Identity) -> Value {
    let d = &id.device;
    let thumb = d.authentication.x509_thumbprint.clone().unwrap_or_default();
    let auth_type = serde_json::to_value(d.authentication.auth_type).unwrap_or(json!("sas"));
    let mut o = Map::new();
    o.insert("deviceId".into(), json!(d.device_id));
    if let Some(m) = &id.module_id {
        o.insert("moduleId".into(), json!(m));
    }
    o.insert("etag".into(), json!(id.twin.etag()));
    o.insert("deviceEtag".into(), json!(d.etag));
    o.insert(
        "status".into(),
        serde_json::to_value(d.status).unwrap_or(Value::Null),
    );
    o.insert("statusReason".into(), json!(d.status_reason));
    o.insert("statusUpdateTime".into(), json!(d.status_updated_time));
    o.insert(
        "connectionState".into(),
        serde_json::to_value(d.connection_state).unwrap_or(Value::Null),
    );
    o.insert("lastActivityTime".into(), json!(d.last_activity_time));
    o.insert(
        "cloudToDeviceMessageCount".into(),
        json!(d.cloud_to_device_message_count),
    );
    o.insert("authenticationType".into(), auth_type);
    o.insert(
        "x509Thumbprint".into(),
        json!({"primaryThumbprint": thumb.primary_thumbprint, "secondaryThumbprint": thumb.secondary_thumbprint}),
    );
    o.insert(
        "modelId".into(),
        json!(id.model_id.as_deref().unwrap_or_default()),
    );
    o.insert("version".into(), json!(id.twin.version));
    if id.module_id.is_none() {
        o.insert(
            "capabilities".into(),
            json!({"iotEdge": d.capabilities.iot_edge}),
        );
        o.insert("deviceScope".into(), json!(d.device_scope));
        o.insert("parentScopes".into(), json!(d.parent_scopes));
    }
    if let Value::Object(rest) = id.twin.service_properties_json() {
        o.extend(rest);
    }
    Value::Object(o)
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredRecord {
    device: DeviceIdentity,
    #[serde(default)]
    managed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_id: Option<String>,
}

fn decode(rec: &StoredIdentity) -> Result<Identity, ServiceError> {
    let corrupt = |what: &str, e: serde_json::Error| {
        ServiceError::new(
            ErrorCode::ServerError,
            format!("The stored {what} of {} is unreadable: {e}.", rec.device_id),
        )
    };
    let r: StoredRecord =
        serde_json::from_str(&rec.identity).map_err(|e| corrupt("identity", e))?;
    let twin: Twin = serde_json::from_str(&rec.twin).map_err(|e| corrupt("twin", e))?;
    Ok(Identity {
        device: r.device,
        module_id: rec.module_id.clone(),
        managed_by: r.managed_by,
        model_id: r.model_id,
        twin,
    })
}

fn encode(id: &Identity) -> Result<StoredIdentity, ServiceError> {
    let fail = |e: serde_json::Error| ServiceError::new(ErrorCode::ServerError, e.to_string());
    Ok(StoredIdentity {
        device_id: id.device.device_id.clone(),
        module_id: id.module_id.clone(),
        identity: serde_json::to_string(&StoredRecord {
            device: id.device.clone(),
            managed_by: id.managed_by.clone(),
            model_id: id.model_id.clone(),
        })
        .map_err(fail)?,
        twin: serde_json::to_string(&id.twin).map_err(fail)?,
    })
}
