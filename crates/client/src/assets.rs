//! Blob-linked twin assets, the device's side of the contract. Twins are small JSON
//! documents, so an asset (firmware, a configuration file, an image) lives in blob
//! storage and the twin holds a reference:
//!
//! - desired: `{"<name>": {"uri": SAS URL, "ts": ISO time, "contentType": …}}`;
//! - reported: `{"<name>": {"current": uri, "acknowledged": uri, "status": "received" |
//!   "failed", "reason"?}}`.
//!
//! On a new reference the device reports it `acknowledged`, fetches the blob and checks
//! it (content type, size), then reports it `current` with status `received`, or status
//! `failed` with the reason (the last good asset stays `current`).

use serde_json::{Map, Value, json};

use crate::device::{DeviceClient, DeviceError};

/// Largest asset a device fetches.
pub const MAX_ASSET_BYTES: u64 = 256 * 1024 * 1024;

/// A desired reference to an asset.
#[derive(Clone, Debug, PartialEq)]
pub struct AssetRef {
    pub name: String,
    pub uri: String,
    pub content_type: Option<String>,
}

/// Whether a desired value is an asset reference (an object with a string `uri`).
pub fn is_reference(value: &Value) -> bool {
    value.get("uri").is_some_and(Value::is_string)
}

fn reference(name: &str, value: &Value) -> Option<AssetRef> {
    if name.starts_with('$') || !is_reference(value) {
        return None;
    }
    Some(AssetRef {
        name: name.to_string(),
        uri: value["uri"].as_str()?.to_string(),
        content_type: value
            .get("contentType")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The references in a desired patch.
pub fn references(desired: &Map<String, Value>) -> Vec<AssetRef> {
    desired
        .iter()
        .filter_map(|(k, v)| reference(k, v))
        .collect()
}

/// The references in a twin (`{"desired": …, "reported": …}`, as a device reads it) that
/// the device has not acknowledged yet: those to follow after a (re)connect.
pub fn pending(twin: &Value) -> Vec<AssetRef> {
    let Some(desired) = twin.get("desired").and_then(Value::as_object) else {
        return Vec::new();
    };
    references(desired)
        .into_iter()
        .filter(|r| twin["reported"][&r.name]["acknowledged"].as_str() != Some(r.uri.as_str()))
        .collect()
}

/// Reported first, before the fetch: the outcome of an earlier reference is cleared.
pub fn acknowledged(r: &AssetRef, current: Option<&str>) -> Map<String, Value> {
    patch(
        r,
        json!({"acknowledged": r.uri, "current": current, "status": null, "reason": null}),
    )
}

/// Reported after a good fetch.
pub fn received(r: &AssetRef) -> Map<String, Value> {
    patch(
        r,
        json!({"acknowledged": r.uri, "current": r.uri, "status": "received", "reason": null}),
    )
}

/// Reported after a failed fetch: the last good asset stays current.
pub fn failed(r: &AssetRef, current: Option<&str>, reason: &str) -> Map<String, Value> {
    patch(
        r,
        json!({"acknowledged": r.uri, "current": current, "status": "failed", "reason": reason}),
    )
}

fn patch(r: &AssetRef, value: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert(r.name.clone(), value);
    m
}

/// Fetches the asset and checks it: the bytes read, or why it is not good.
pub async fn fetch(client: &DeviceClient, r: &AssetRef) -> Result<u64, String> {
    let (content_type, bytes) = client
        .fetch_blob(&r.uri, MAX_ASSET_BYTES)
        .await
        .map_err(|e| match e {
            DeviceError::Upload(m) => m,
            other => other.to_string(),
        })?;
    if let Some(want) = &r.content_type
        && !content_type
            .as_deref()
            .is_some_and(|got| got.eq_ignore_ascii_case(want))
    {
        return Err(format!(
            "the blob's content type is {}, not {want}",
            content_type.as_deref().unwrap_or("missing")
        ));
    }
    if bytes == 0 {
        return Err("the blob is empty".to_string());
    }
    Ok(bytes)
}

/// Fetches and checks an acknowledged reference: the patch to report then (received,
/// or failed with the previous asset still current), and whether the new one is current.
pub async fn take(
    client: &DeviceClient,
    r: &AssetRef,
    current: Option<&str>,
) -> (Map<String, Value>, bool) {
    match fetch(client, r).await {
        Ok(_) => (received(r), true),
        Err(reason) => {
            tracing::info!(asset = %r.name, %reason, "asset not taken");
            (failed(r, current, &reason), false)
        }
    }
}

/// What a device reported current, per asset, from its twin.
pub fn current_from(twin: &Value) -> std::collections::HashMap<String, String> {
    twin.get("reported")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.get("current")?.as_str()?.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_objects_with_a_uri_and_pending_until_acknowledged() {
        let twin = json!({
            "desired": {
                "firmware": {"uri": "https://h/c/fw.bin?sig=1", "ts": "2026-01-01T00:00:00Z", "contentType": "application/octet-stream"},
                "logo": {"uri": "https://h/c/logo.png?sig=2"},
                "interval": 5,
                "$version": 3
            },
            "reported": {"logo": {"acknowledged": "https://h/c/logo.png?sig=2", "current": "https://h/c/logo.png?sig=2", "status": "received"}}
        });
        let all = references(twin["desired"].as_object().unwrap());
        assert_eq!(all.len(), 2);
        let pending = pending(&twin);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].name, "firmware");
        assert_eq!(
            pending[0].content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert!(!is_reference(&json!(5)));
        assert!(!is_reference(&json!({"uri": 5})));
    }

    #[test]
    fn reports_follow_the_contract() {
        let r = AssetRef {
            name: "fw".into(),
            uri: "u2".into(),
            content_type: None,
        };
        assert_eq!(
            Value::Object(acknowledged(&r, Some("u1"))),
            json!({"fw": {"acknowledged": "u2", "current": "u1", "status": null, "reason": null}})
        );
        assert_eq!(
            Value::Object(received(&r)),
            json!({"fw": {"acknowledged": "u2", "current": "u2", "status": "received", "reason": null}})
        );
        assert_eq!(
            Value::Object(failed(&r, Some("u1"), "the SAS has expired")),
            json!({"fw": {"acknowledged": "u2", "current": "u1", "status": "failed", "reason": "the SAS has expired"}})
        );
    }
}
