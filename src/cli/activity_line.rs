//! One JSON line per thing a headless device did, for scripts and CI to follow.

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use client::runner::{Activity, DeviceActivity};
use iothub::property_bag::PropertyBag;

/// The line for `a`: `{"event": …, "device": …, "time": …, …}`.
pub fn activity_line(a: &DeviceActivity) -> String {
    let (event, details) = match &a.activity {
        Activity::Connected => ("connected", json!({})),
        Activity::Disconnected { reason, refused } => (
            "disconnected",
            json!({ "reason": reason, "refused": refused }),
        ),
        Activity::Sent { body, properties } => (
            "sent",
            json!({"body": body_value(body), "properties": properties_object(properties)}),
        ),
        Activity::SendFailed { error } => ("send_failed", json!({ "error": error })),
        Activity::C2d { properties, body } => (
            "c2d",
            json!({"body": body_value(body), "properties": properties_object(properties)}),
        ),
        Activity::Method {
            name,
            payload,
            status,
            response,
        } => (
            "method",
            json!({"name": name, "payload": payload, "status": status, "response": response}),
        ),
        Activity::Desired { version, patch } => {
            ("desired", json!({"version": version, "patch": patch}))
        }
        Activity::Reported { patch, version } => {
            ("reported", json!({"version": version, "patch": patch}))
        }
        Activity::ReportFailed { error } => ("report_failed", json!({ "error": error })),
        Activity::Uploaded {
            blob_name,
            container_name,
            bytes,
        } => (
            "uploaded",
            json!({"blob": blob_name, "container": container_name, "bytes": bytes}),
        ),
    };
    let mut line = Map::new();
    line.insert("event".into(), json!(event));
    line.insert("device".into(), json!(a.device_id));
    line.insert(
        "time".into(),
        json!(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
    );
    if let Value::Object(details) = details {
        line.extend(details);
    }
    Value::Object(line).to_string()
}

/// JSON bodies as JSON, other bodies as (lossy) text.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)))
}

fn properties_object(p: &PropertyBag) -> Value {
    Value::Object(
        p.entries
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map_or(Value::Null, |v| json!(v))))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_single_json_objects_with_event_and_device() {
        let mut properties = PropertyBag::default();
        properties.set("$.mid", Some("m1".into()));
        properties.set("flag", None);
        let line = activity_line(&DeviceActivity {
            device_id: "d1".into(),
            activity: Activity::C2d {
                properties,
                body: b"not json\n".to_vec(),
            },
        });
        assert!(!line.contains('\n'), "{line}");
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "c2d");
        assert_eq!(v["device"], "d1");
        assert_eq!(v["body"], "not json\n");
        assert_eq!(v["properties"], json!({"$.mid": "m1", "flag": null}));
        assert!(v["time"].as_str().unwrap().ends_with('Z'));

        let line = activity_line(&DeviceActivity {
            device_id: "d1".into(),
            activity: Activity::Sent {
                properties: PropertyBag::default(),
                body: br#"{"t":1}"#.to_vec(),
            },
        });
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            (&v["event"], &v["body"]),
            (&json!("sent"), &json!({"t": 1}))
        );
    }
}
