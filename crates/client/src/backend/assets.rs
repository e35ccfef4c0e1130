//! Blob-linked twin assets from the explorer: upload a file to the storage account,
//! reference it (a read SAS made locally from the account key) in the desired
//! properties of one device or of every device a query matches, one PATCH per device
//! with If-Match, and read back where each device stands (the rollout).

use std::sync::Arc;

use chrono::Utc;
use serde_json::{Map, Value};

use crate::events::{AssetAttach, AssetTarget, HubEvent};
use crate::rollout::{self, RolloutRow};
use iothub::error::ErrorCode;
use iothub::service_twin::patch_body;
use iothub::twin::Section;

use super::Ctx;
use super::link::describe_error;

/// The container assets are uploaded to.
pub const CONTAINER: &str = "assets";
/// Devices one attach or one rollout read covers at most.
const MAX_DEVICES: usize = 10_000;
/// Twins per query page: IoT Hub's largest, so that a rollout read on screen costs a
/// real hub as few calls as it can.
const PAGE: u32 = 1000;
/// PATCH attempts per device when its twin keeps changing under it.
const ATTEMPTS: u32 = 5;

pub(super) async fn attach(ctx: Arc<Ctx>, asset: AssetAttach) {
    let event = match attach_inner(&ctx, &asset).await {
        Ok(event) => event,
        Err(reason) => HubEvent::AssetAttachFailed {
            name: asset.name.clone(),
            reason,
        },
    };
    ctx.send(event).await;
}

async fn attach_inner(ctx: &Ctx, asset: &AssetAttach) -> Result<HubEvent, String> {
    let Some(storage) = &ctx.config.storage else {
        return Err("no storage account is configured; give the hub profile a storage connection string (hubtui hubs add … --storage, or --storage)".into());
    };
    if !rollout::valid_name(&asset.name) {
        return Err(format!(
            "\"{}\" cannot name an asset property: use letters, digits and _",
            asset.name
        ));
    }
    let file_name = asset
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the path names no file")?;
    // The targets first, so nothing is uploaded for a query that matches nothing.
    let devices = match &asset.target {
        AssetTarget::Device(id) => vec![id.clone()],
        AssetTarget::Matching(condition) => matching(ctx, condition).await?,
    };
    if devices.is_empty() {
        return Err("no device matches the query".into());
    }
    let now = Utc::now();
    let blob = format!(
        "{}/{}-{file_name}",
        asset.name,
        now.format("%Y%m%dT%H%M%SZ")
    );
    let content_type = rollout::content_type_for(file_name);
    storage
        .ensure_container(CONTAINER)
        .await
        .map_err(|e| e.to_string())?;
    storage
        .put_file(&asset.path, CONTAINER, &blob, content_type)
        .await
        .map_err(|e| e.to_string())?;
    let lifetime = chrono::Duration::from_std(asset.lifetime).unwrap_or(chrono::Duration::days(1));
    let uri = storage.sas_url(CONTAINER, Some(&blob), "r", now, now + lifetime);
    let mut desired = Map::new();
    desired.insert(
        asset.name.clone(),
        rollout::reference(&uri, now, content_type),
    );
    let body = patch_body(Section::Desired, desired);
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for device in devices {
        match patch_desired(ctx, &device, &body).await {
            Ok(()) => done.push(device),
            Err(e) => failed.push((device, e)),
        }
    }
    Ok(HubEvent::AssetAttached {
        name: asset.name.clone(),
        uri,
        devices: done,
        failed,
    })
}

/// PATCHes a device's desired properties against the etag just read, reading again
/// when another writer got there first.
async fn patch_desired(ctx: &Ctx, device: &str, body: &Value) -> Result<(), String> {
    let service = &ctx.config.service;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            // Another writer is busy on this twin: let it finish.
            tokio::time::sleep(std::time::Duration::from_millis(20 * u64::from(attempt))).await;
        }
        let twin = service.get_twin(device, None).await;
        ctx.link.record(ctx, &twin).await;
        let twin = twin.map_err(|e| describe_error(&e))?;
        let etag = twin.get("etag").and_then(Value::as_str);
        let patched = service.patch_twin(device, None, body, etag).await;
        ctx.link.record(ctx, &patched).await;
        match patched {
            Ok(_) => return Ok(()),
            Err(e) if e.code() == Some(ErrorCode::PreconditionFailed) => last = describe_error(&e),
            Err(e) => return Err(describe_error(&e)),
        }
    }
    Err(format!("its twin kept changing ({last})"))
}

/// The twins a query condition matches (`*`: all), page by page; each call is recorded
/// (link state, throttling) as the other readers' are.
async fn twins(ctx: &Ctx, condition: &str) -> Result<Vec<Value>, String> {
    let condition = condition.trim();
    let sql = if condition == "*" || condition.is_empty() {
        "SELECT * FROM devices".to_string()
    } else {
        format!("SELECT * FROM devices WHERE {condition}")
    };
    let mut out = Vec::new();
    let mut continuation = None;
    loop {
        let page = ctx
            .config
            .service
            .query(&sql, continuation.as_deref(), Some(PAGE))
            .await;
        ctx.link.record(ctx, &page).await;
        let page = page.map_err(|e| describe_error(&e))?;
        out.extend(page.items);
        continuation = page.continuation;
        if continuation.is_none() || out.len() >= MAX_DEVICES {
            out.truncate(MAX_DEVICES);
            return Ok(out);
        }
    }
}

async fn matching(ctx: &Ctx, condition: &str) -> Result<Vec<String>, String> {
    Ok(twins(ctx, condition)
        .await?
        .iter()
        .filter_map(|t| Some(t.get("deviceId")?.as_str()?.to_string()))
        .collect())
}

/// Reads the reports of the asset `name` from every device it is desired on.
pub(super) async fn read_rollout(ctx: &Ctx, name: &str) {
    if !rollout::valid_name(name) {
        return;
    }
    let condition = format!("IS_DEFINED(properties.desired.{name})");
    let result = twins(ctx, &condition).await;
    let event = match result {
        Ok(twins) => HubEvent::Rollout {
            name: name.to_string(),
            rows: twins
                .iter()
                .filter_map(|t| RolloutRow::from_twin(name, t))
                .collect(),
        },
        Err(e) => HubEvent::Error(format!("cannot read the rollout of {name}: {e}")),
    };
    ctx.send(event).await;
}
