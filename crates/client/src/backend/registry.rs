//! Registry commands: the device list through the query API (pages with continuation
//! tokens; the filter becomes a WHERE clause), one entry with its keys, create, enable or
//! disable, delete.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::events::{HubEvent, NewDeviceAuth, TwinSummary};
use crate::service::ServiceClientError;
use iothub::device::{AuthType, DeviceIdentity, DeviceStatus, X509Thumbprint};
use iothub::query::parse_query;

use super::Ctx;
use super::link::describe_error;

/// A query string literal: single quotes, with the backslash escapes Azure documents for
/// the query language (`\'` and `\\`).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The query condition in a filter typed in the Devices tab, if it is one: text after
/// `WHERE`, any text with a space (device ids have none), such as `tags.site = 'x'`, or
/// text that reads as a whole condition, such as `IS_DEFINED(tags.site)`; a device id
/// such as `sim-1` does not.
pub fn filter_condition(filter: &str) -> Option<&str> {
    let filter = filter.trim();
    let head = filter.get(..6).unwrap_or_default();
    if head.eq_ignore_ascii_case("where ") {
        return Some(filter[6..].trim());
    }
    let condition = filter.contains(char::is_whitespace)
        || parse_query(&format!("SELECT * FROM devices WHERE {filter}")).is_ok();
    condition.then_some(filter)
}

/// The devices query for a filter typed in the Devices tab: a query condition (see
/// `filter_condition`) as the WHERE clause, else the start of the device id, as a range that
/// both Azure and the local hub evaluate (`deviceId >= 'abc' AND deviceId < 'abc\u{ffff}'`);
/// device ids are ASCII, so every id starting with the filter sorts inside it.
pub fn devices_query(filter: Option<&str>) -> String {
    let filter = filter.map(str::trim).filter(|f| !f.is_empty());
    match filter {
        None => "SELECT * FROM devices".to_string(),
        Some(f) => match filter_condition(f) {
            Some(condition) => format!("SELECT * FROM devices WHERE {condition}"),
            None => format!(
                "SELECT * FROM devices WHERE deviceId >= {} AND deviceId < {}",
                literal(f),
                literal(&format!("{f}\u{ffff}"))
            ),
        },
    }
}

/// A query item (a device twin) as a registry entry: the twin has the same status, scope
/// and connection fields, `authenticationType` and `x509Thumbprint` instead of
/// `authentication`, and no keys.
fn identity_from_twin(item: Value) -> Option<DeviceIdentity> {
    let auth_type = match item.get("authenticationType").and_then(Value::as_str) {
        Some("selfSigned") => AuthType::SelfSigned,
        Some("certificateAuthority") => AuthType::CertificateAuthority,
        Some("none") => AuthType::None,
        _ => AuthType::Sas,
    };
    // A twin names the registry's fields differently: its `etag` is the twin's own (the
    // identity's is `deviceEtag`), and it spells statusUpdatedTime without the d.
    let text = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
    let (device_etag, status_updated) = (text("deviceEtag"), text("statusUpdateTime"));
    let thumbprint = item
        .get("x509Thumbprint")
        .and_then(|t| serde_json::from_value::<X509Thumbprint>(t.clone()).ok())
        .filter(|t| t.primary_thumbprint.is_some() || t.secondary_thumbprint.is_some());
    let mut identity: DeviceIdentity = serde_json::from_value(item).ok()?;
    identity.authentication.auth_type = auth_type;
    identity.authentication.x509_thumbprint = thumbprint;
    identity.etag = device_etag.unwrap_or_default();
    if let Some(t) = status_updated {
        identity.status_updated_time = t;
    }
    Some(identity)
}

/// The device list the app shows, as far as a re-read needs to know.
#[derive(Clone)]
enum Listed {
    /// All of it, in one page: a re-read reports it when it changed, so connection states and
    /// activity stay live.
    OnePage(Vec<DeviceIdentity>, BTreeMap<String, TwinSummary>),
    /// Several pages: left alone (re-reading would reset the paging).
    Pages,
    /// The load failed: a re-read loads it again.
    Failed,
}

/// The filter and state of the list the app shows; None before the first load.
#[derive(Default)]
pub(super) struct ListWatch(Mutex<Option<(Option<String>, Listed)>>);

impl ListWatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Option<String>, Listed)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Module twins read for the module counts: one page of Azure's largest size.
const MODULE_PAGE: u32 = 1000;

/// How many modules each device has, from one `devices.modules` query beside the device
/// list (so the count costs one call per list read, not one per device); None when the
/// answer fails or does not fit one page, as a partial count would mislead.
async fn module_counts(ctx: &Ctx) -> Option<BTreeMap<String, u32>> {
    let result = ctx
        .config
        .service
        .query("SELECT * FROM devices.modules", None, Some(MODULE_PAGE))
        .await;
    ctx.link.record(ctx, &result).await;
    let page = result.ok().filter(|p| p.continuation.is_none())?;
    let mut counts = BTreeMap::new();
    for twin in &page.items {
        if let Some(d) = twin.get("deviceId").and_then(Value::as_str) {
            *counts.entry(d.to_string()).or_insert(0) += 1;
        }
    }
    Some(counts)
}

/// A query page's twins as registry entries and what the list shows of each twin.
fn identities(
    items: Vec<Value>,
    modules: Option<&BTreeMap<String, u32>>,
) -> (Vec<DeviceIdentity>, BTreeMap<String, TwinSummary>) {
    let twins = items
        .iter()
        .filter_map(|t| {
            let id = t.get("deviceId")?.as_str()?.to_string();
            let summary = TwinSummary {
                model_id: t
                    .get("modelId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                tags: t
                    .get("tags")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                modules: modules.map(|m| m.get(&id).copied().unwrap_or(0)),
            };
            Some((id, summary))
        })
        .collect();
    let identities = items.into_iter().filter_map(identity_from_twin).collect();
    (identities, twins)
}

pub(super) async fn load_devices(
    ctx: Arc<Ctx>,
    continuation: Option<String>,
    filter: Option<String>,
) {
    let sql = devices_query(filter.as_deref());
    let result = ctx
        .config
        .service
        .query(&sql, continuation.as_deref(), Some(ctx.config.page_size))
        .await;
    ctx.link.record(&ctx, &result).await;
    let first_page = continuation.is_none();
    let event = match result {
        Ok(page) => {
            let modules = module_counts(&ctx).await;
            let (items, twins) = identities(page.items, modules.as_ref());
            if first_page {
                let listed = match page.continuation {
                    None => Listed::OnePage(items.clone(), twins.clone()),
                    Some(_) => Listed::Pages,
                };
                *ctx.devices.lock() = Some((filter, listed));
                ctx.poller.devices_read();
            }
            HubEvent::DevicesPage {
                items,
                twins,
                continuation: page.continuation,
                replace: first_page,
            }
        }
        Err(e) => {
            if first_page {
                // A refused query (a bad filter) would fail again; anything else may pass later.
                let refused =
                    matches!(&e, ServiceClientError::Service(s) if s.code.http_status() < 500);
                *ctx.devices.lock() = (!refused).then_some((filter, Listed::Failed));
            }
            HubEvent::Error(format!("cannot list devices: {}", describe_error(&e)))
        }
    };
    ctx.send(event).await;
}

/// A re-read of the device list on screen (see `polling`): reported when it changed, or
/// when it could not be loaded before.
pub(super) async fn reread(ctx: &Ctx) {
    let Some((filter, listed)) = ctx.devices.lock().clone() else {
        return;
    };
    if matches!(listed, Listed::Pages) {
        return;
    }
    let sql = devices_query(filter.as_deref());
    let result = ctx
        .config
        .service
        .query(&sql, None, Some(ctx.config.page_size))
        .await;
    ctx.link.record(ctx, &result).await;
    let Ok(page) = result else {
        return;
    };
    let modules = module_counts(ctx).await;
    let (items, twins) = identities(page.items, modules.as_ref());
    let report = {
        let mut watch = ctx.devices.lock();
        match watch.as_mut() {
            // Still the list the app shows (no new filter meanwhile).
            Some((f, shown)) if *f == filter => match (&*shown, &page.continuation) {
                (Listed::Failed, None) => {
                    *shown = Listed::OnePage(items.clone(), twins.clone());
                    true
                }
                (Listed::Failed, Some(_)) => {
                    *shown = Listed::Pages;
                    true
                }
                (Listed::OnePage(last, last_twins), None)
                    if *last != items || *last_twins != twins =>
                {
                    *shown = Listed::OnePage(items.clone(), twins.clone());
                    true
                }
                _ => false,
            },
            _ => false,
        }
    };
    if report {
        ctx.send(HubEvent::DevicesPage {
            items,
            twins,
            continuation: page.continuation,
            replace: true,
        })
        .await;
    }
}

async fn report<T>(
    ctx: &Ctx,
    result: Result<T, ServiceClientError>,
    what: impl FnOnce() -> String,
    ok: impl FnOnce(T) -> HubEvent,
) {
    ctx.link.record(ctx, &result).await;
    let event = match result {
        Ok(v) => ok(v),
        Err(e) => HubEvent::Error(format!("{}: {}", what(), describe_error(&e))),
    };
    ctx.send(event).await;
}

pub(super) async fn get_device(ctx: Arc<Ctx>, device_id: String) {
    let result = ctx.config.service.get_device(&device_id).await;
    report(
        &ctx,
        result,
        || format!("cannot read device {device_id}"),
        HubEvent::DeviceLoaded,
    )
    .await;
}

pub(super) async fn create(ctx: Arc<Ctx>, device_id: String, auth: NewDeviceAuth) {
    let result = ctx.config.service.create_device(&device_id, &auth).await;
    report(
        &ctx,
        result,
        || format!("cannot create device {device_id}"),
        HubEvent::DeviceChanged,
    )
    .await;
}

pub(super) async fn set_status(ctx: Arc<Ctx>, device_id: String, status: DeviceStatus) {
    let service = &ctx.config.service;
    let result = match service.get_device(&device_id).await {
        Ok(mut device) => {
            device.status = status;
            service.update_device(&device).await
        }
        Err(e) => Err(e),
    };
    let verb = match status {
        DeviceStatus::Enabled => "enable",
        DeviceStatus::Disabled => "disable",
    };
    report(
        &ctx,
        result,
        || format!("cannot {verb} device {device_id}"),
        HubEvent::DeviceChanged,
    )
    .await;
}

pub(super) async fn delete(ctx: Arc<Ctx>, device_id: String) {
    let result = ctx.config.service.delete_device(&device_id).await;
    let id = device_id.clone();
    report(
        &ctx,
        result,
        || format!("cannot delete device {id}"),
        |()| HubEvent::DeviceDeleted { device_id },
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_become_a_prefix_range_with_quotes_escaped() {
        assert_eq!(devices_query(None), "SELECT * FROM devices");
        assert_eq!(devices_query(Some("  ")), "SELECT * FROM devices");
        let q = devices_query(Some("o'hara"));
        assert_eq!(
            q,
            "SELECT * FROM devices WHERE deviceId >= 'o\\'hara' AND deviceId < 'o\\'hara\u{ffff}'"
        );
        let parsed = parse_query(&q).unwrap();
        for (id, hit) in [
            ("o'hara", true),
            ("o'hara-2", true),
            ("o'har", false),
            ("p", false),
        ] {
            assert_eq!(parsed.matches(&json!({ "deviceId": id })), hit, "{id}");
        }
    }

    #[test]
    fn a_filter_with_a_space_or_where_is_a_query_condition() {
        let cases = [
            ("WHERE tags.site = 'x'", Some("tags.site = 'x'")),
            ("  where  tags.site = 'x' ", Some("tags.site = 'x'")),
            ("tags.site = 'x'", Some("tags.site = 'x'")),
            (
                "status = 'disabled' AND tags.floor > 2",
                Some("status = 'disabled' AND tags.floor > 2"),
            ),
            ("sim-", None),
            ("whereabouts", None),
            ("", None),
            // Conditions without a space read as conditions; ids and prefixes do not.
            ("IS_DEFINED(tags.site)", Some("IS_DEFINED(tags.site)")),
            ("tags.floor>=2", Some("tags.floor>=2")),
            ("sensor_01", None),
            ("sim-1", None),
            ("dev.a", None),
            ("(x)", None),
        ];
        for (filter, want) in cases {
            assert_eq!(filter_condition(filter), want, "{filter}");
        }
        let q = devices_query(Some("WHERE tags.site = 'x'"));
        assert_eq!(q, "SELECT * FROM devices WHERE tags.site = 'x'");
        let parsed = parse_query(&q).unwrap();
        assert!(parsed.matches(&json!({"deviceId": "a", "tags": {"site": "x"}})));
        assert!(!parsed.matches(&json!({"deviceId": "b", "tags": {"site": "y"}})));
    }

    #[test]
    fn a_filter_uses_the_whole_where_language() {
        let q = devices_query(Some(
            "STARTSWITH(deviceId, 'o\\'h') AND (tags.site NIN ['y'] OR IS_NULL(tags.site)) \
             AND NOT ARRAY_CONTAINS(tags.zones, 3)",
        ));
        let parsed = parse_query(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        for (twin, hit) in [
            (
                json!({"deviceId": "o'hara", "tags": {"site": "x", "zones": [1]}}),
                true,
            ),
            (
                json!({"deviceId": "o'hara", "tags": {"site": null, "zones": [1]}}),
                true,
            ),
            (
                json!({"deviceId": "o'hara", "tags": {"site": "y", "zones": [1]}}),
                false,
            ),
            (
                json!({"deviceId": "o'hara", "tags": {"site": "x", "zones": [3]}}),
                false,
            ),
            (
                json!({"deviceId": "ohara", "tags": {"site": "x", "zones": [1]}}),
                false,
            ),
        ] {
            assert_eq!(parsed.matches(&twin), hit, "{twin}");
        }
        let q = devices_query(Some("IS_DEFINED(tags.site)"));
        assert_eq!(q, "SELECT * FROM devices WHERE IS_DEFINED(tags.site)");
        // A prefix with a backslash stays a literal prefix.
        let q = devices_query(Some("a\\b"));
        let parsed = parse_query(&q).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert!(parsed.matches(&json!({"deviceId": "a\\b-1"})));
        assert!(!parsed.matches(&json!({"deviceId": "a\\c"})));
    }

    #[test]
    fn twins_become_identities_with_their_auth_type() {
        let d = identity_from_twin(json!({"deviceId": "x", "status": "disabled",
            "authenticationType": "selfSigned", "connectionState": "Connected",
            "etag": "twin-etag", "deviceEtag": "device-etag",
            "statusUpdateTime": "2024-05-01T11:00:00Z"}))
        .unwrap();
        assert_eq!(d.device_id, "x");
        assert_eq!(d.etag, "device-etag", "the identity's etag, not the twin's");
        assert_eq!(d.status_updated_time, "2024-05-01T11:00:00Z");
        assert_eq!(d.status, DeviceStatus::Disabled);
        assert_eq!(d.authentication.auth_type, AuthType::SelfSigned);
        assert!(d.authentication.symmetric_key.is_none());
        assert!(d.authentication.x509_thumbprint.is_none());
    }

    #[test]
    fn twins_carry_thumbprints_and_scopes() {
        let scope = "ms-azure-iot-edge://gw-1-637000000000000001";
        let d = identity_from_twin(json!({"deviceId": "x",
            "authenticationType": "selfSigned",
            "x509Thumbprint": {"primaryThumbprint": "AB12", "secondaryThumbprint": null},
            "deviceScope": scope, "parentScopes": [scope]}))
        .unwrap();
        let t = d.authentication.x509_thumbprint.unwrap();
        assert_eq!(t.primary_thumbprint.as_deref(), Some("AB12"));
        assert_eq!(d.device_scope.as_deref(), Some(scope));
        assert_eq!(d.parent_scopes, [scope]);
    }
}
