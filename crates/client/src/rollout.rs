//! Blob-linked twin assets, the service's side of the contract (`assets` is the
//! device's): the desired reference an explorer writes, and where each device stands
//! with it, read back from its twin.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// The desired value that points a device at an asset.
pub fn reference(uri: &str, ts: DateTime<Utc>, content_type: &str) -> Value {
    json!({
        "uri": uri,
        "ts": ts.to_rfc3339_opts(SecondsFormat::Secs, true),
        "contentType": content_type,
    })
}

/// Whether `name` can be an asset's property name: it is used unquoted in queries
/// (`properties.desired.NAME`), so letters, digits and `_`, not starting with a digit.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64
}

/// The content type an asset is sent with, from its file name.
pub fn content_type_for(file_name: &str) -> &'static str {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "json" => "application/json",
        "txt" | "log" | "md" | "csv" => "text/plain",
        "xml" => "application/xml",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// Where a device stands with the asset at one URI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Progress {
    /// Not acknowledged yet.
    #[default]
    Pending,
    /// Acknowledged; the fetch is under way.
    Acknowledged,
    Received,
    Failed,
    /// The device's desired reference is another one now.
    Superseded,
}

impl Progress {
    pub const ALL: [Progress; 5] = [
        Progress::Pending,
        Progress::Acknowledged,
        Progress::Received,
        Progress::Failed,
        Progress::Superseded,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Progress::Pending => "pending",
            Progress::Acknowledged => "acknowledged",
            Progress::Received => "received",
            Progress::Failed => "failed",
            Progress::Superseded => "superseded",
        }
    }
}

/// One device's report of an asset, with when each part last changed (the reported
/// properties' `$metadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolloutRow {
    pub device_id: String,
    /// The URI the device is desired to take.
    pub desired: Option<String>,
    pub acknowledged: Option<String>,
    pub acknowledged_at: Option<String>,
    pub current: Option<String>,
    pub current_at: Option<String>,
    pub status: Option<String>,
    pub status_at: Option<String>,
    pub reason: Option<String>,
}

impl RolloutRow {
    /// The row of the asset `name` from a twin as the service query returns it; None
    /// when the twin has no device id.
    pub fn from_twin(name: &str, twin: &Value) -> Option<RolloutRow> {
        let device_id = twin.get("deviceId")?.as_str()?.to_string();
        let props = &twin["properties"];
        let reported = &props["reported"][name];
        let meta = &props["reported"]["$metadata"][name];
        let text = |v: &Value| v.as_str().map(str::to_string);
        let at = |field: &str| {
            text(&meta[field]["$lastUpdated"]).or_else(|| text(&meta["$lastUpdated"]))
        };
        Some(RolloutRow {
            device_id,
            desired: text(&props["desired"][name]["uri"]),
            acknowledged: text(&reported["acknowledged"]),
            acknowledged_at: at("acknowledged"),
            current: text(&reported["current"]),
            current_at: at("current"),
            status: text(&reported["status"]),
            status_at: at("status"),
            reason: text(&reported["reason"]),
        })
    }

    /// Where the device stands with the asset at `uri`.
    pub fn progress(&self, uri: &str) -> Progress {
        let is = |v: &Option<String>| v.as_deref() == Some(uri);
        if !is(&self.desired) {
            Progress::Superseded
        } else if is(&self.current) && self.status.as_deref() == Some("received") {
            Progress::Received
        } else if is(&self.acknowledged) && self.status.as_deref() == Some("failed") {
            Progress::Failed
        } else if is(&self.acknowledged) {
            Progress::Acknowledged
        } else {
            Progress::Pending
        }
    }

    /// The latest of the report's change times.
    pub fn changed(&self) -> Option<&str> {
        [&self.acknowledged_at, &self.current_at, &self.status_at]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twin(reported: Value) -> Value {
        json!({
            "deviceId": "d1",
            "properties": {
                "desired": {"fw": {"uri": "u2", "ts": "t", "contentType": "application/octet-stream"}},
                "reported": reported,
            }
        })
    }

    #[test]
    fn a_reports_progress_follows_the_contract() {
        let uri = "u2";
        let row = |r| RolloutRow::from_twin("fw", &twin(r)).unwrap();
        assert_eq!(row(json!({})).progress(uri), Progress::Pending);
        let old = json!({"fw": {"acknowledged": "u1", "current": "u1", "status": "received"}});
        assert_eq!(row(old).progress(uri), Progress::Pending);
        let acked = json!({"fw": {"acknowledged": "u2", "current": "u1", "status": null}});
        assert_eq!(row(acked).progress(uri), Progress::Acknowledged);
        let failed = json!({"fw": {"acknowledged": "u2", "current": "u1", "status": "failed", "reason": "403"}});
        let failed = row(failed);
        assert_eq!(failed.progress(uri), Progress::Failed);
        assert_eq!(failed.reason.as_deref(), Some("403"));
        let got = json!({
            "fw": {"acknowledged": "u2", "current": "u2", "status": "received"},
            "$metadata": {"fw": {
                "$lastUpdated": "2026-12-02T10:00:03Z",
                "acknowledged": {"$lastUpdated": "2026-12-02T10:00:01Z"},
                "current": {"$lastUpdated": "2026-12-02T10:00:02Z"},
                "status": {"$lastUpdated": "2026-12-02T10:00:03Z"}
            }}
        });
        let got = row(got);
        assert_eq!(got.progress(uri), Progress::Received);
        assert_eq!(got.acknowledged_at.as_deref(), Some("2026-12-02T10:00:01Z"));
        assert_eq!(got.changed(), Some("2026-12-02T10:00:03Z"));
        assert_eq!(got.progress("u3"), Progress::Superseded);
        assert_eq!(
            RolloutRow::from_twin("fw", &json!({"properties": {}})),
            None
        );
    }

    #[test]
    fn names_and_content_types() {
        assert!(valid_name("firmware_2"));
        assert!(!valid_name("2fw") && !valid_name("a.b") && !valid_name("") && !valid_name("$x"));
        assert_eq!(content_type_for("Logo.PNG"), "image/png");
        assert_eq!(content_type_for("fw.bin"), "application/octet-stream");
        let r = reference(
            "https://x/c/b?sig=1",
            "2026-12-02T10:00:00Z".parse().unwrap(),
            "image/png",
        );
        assert_eq!(r["ts"], "2026-12-02T10:00:00Z");
        assert_eq!(r["contentType"], "image/png");
    }
}
