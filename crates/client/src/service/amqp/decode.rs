//! AMQP messages from the Event Hubs-compatible endpoint as typed telemetry events:
//! annotations (device, module, sequence number, enqueued time, auth method...),
//! properties, application properties and the body.

use chrono::{DateTime, TimeZone, Utc};
use fe2o3_amqp::types::messaging::Message;
use fe2o3_amqp::types::messaging::annotations::OwnedKey;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::primitives::{SimpleValue, Value};

use crate::events::TelemetryEvent;
use iothub::amqp_model::{annotation, system_property as sp};
pub(crate) use iothub::amqp_value::body_bytes;
use iothub::amqp_value::{
    iso_millis as iso, message_id_text, simple_text as scalar_text, value_text as scalar_value_text,
};

pub(crate) type AmqpMessage = Message<Body<Value>>;

/// A property value for display: composites in their debug form, null empty.
fn simple_text(v: &SimpleValue) -> String {
    scalar_text(v).unwrap_or_else(|| match v {
        SimpleValue::Null => String::new(),
        other => format!("{other:?}"),
    })
}

/// An annotation value for display, likewise.
fn value_text(v: &Value) -> String {
    scalar_value_text(v).unwrap_or_else(|| match v {
        Value::Null => String::new(),
        other => format!("{other:?}"),
    })
}

/// One Event Hubs event as a telemetry event. Annotations that have no field of their
/// own (auth method, offset, message source, PnP subject...) join the system properties.
pub(crate) fn telemetry_event(partition: u32, m: &AmqpMessage) -> TelemetryEvent {
    let mut device_id = String::new();
    let mut module_id = None;
    let mut sequence_number = -1;
    let mut enqueued: Option<DateTime<Utc>> = None;
    let mut system_properties = Vec::new();
    if let Some(p) = &m.properties {
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                system_properties.push((k.to_string(), v));
            }
        };
        push(sp::MESSAGE_ID, p.message_id.as_ref().map(message_id_text));
        push(
            sp::CORRELATION_ID,
            p.correlation_id.as_ref().map(message_id_text),
        );
        push(
            sp::USER_ID,
            p.user_id
                .as_ref()
                .map(|u| String::from_utf8_lossy(u).into_owned()),
        );
        push(sp::TO, p.to.clone());
        push(
            sp::CONTENT_TYPE,
            p.content_type.as_ref().map(|s| s.as_str().to_string()),
        );
        push(
            sp::CONTENT_ENCODING,
            p.content_encoding.as_ref().map(|s| s.as_str().to_string()),
        );
        push(
            sp::ABSOLUTE_EXPIRY_TIME,
            p.absolute_expiry_time
                .as_ref()
                .map(|t| iso(t.milliseconds())),
        );
        push(
            sp::CREATION_TIME,
            p.creation_time.as_ref().map(|t| iso(t.milliseconds())),
        );
    }
    if let Some(ann) = &m.message_annotations {
        for (k, v) in ann.0.iter() {
            let name = match k {
                OwnedKey::Symbol(s) => s.as_str().to_string(),
                OwnedKey::Ulong(n) => n.to_string(),
            };
            match name.as_str() {
                annotation::DEVICE_ID => device_id = value_text(v),
                annotation::MODULE_ID => module_id = Some(value_text(v)),
                annotation::SEQUENCE_NUMBER => {
                    sequence_number = match v {
                        Value::Long(n) => *n,
                        Value::Int(n) => i64::from(*n),
                        Value::Ulong(n) => *n as i64,
                        other => value_text(other).parse().unwrap_or(-1),
                    }
                }
                annotation::ENQUEUED_TIME => {
                    if let Value::Timestamp(t) = v {
                        enqueued = Utc.timestamp_millis_opt(t.milliseconds()).single();
                    }
                }
                _ => system_properties.push((name, value_text(v))),
            }
        }
    }
    let application_properties = m
        .application_properties
        .as_ref()
        .map(|a| {
            a.0.iter()
                .map(|(k, v)| (k.clone(), simple_text(v)))
                .collect()
        })
        .unwrap_or_default();
    TelemetryEvent {
        enqueued_time: enqueued.unwrap_or_else(Utc::now),
        device_id,
        module_id,
        partition,
        sequence_number,
        system_properties,
        application_properties,
        body: body_bytes(&m.body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::messaging::{
        ApplicationProperties, Data, MessageAnnotations, MessageId, Properties,
    };
    use fe2o3_amqp::types::primitives::{Binary, OrderedMap, Symbol, Timestamp};

    #[test]
    fn an_event_hubs_event_becomes_one_typed_event() {
        let mut ann: OrderedMap<OwnedKey, Value> = OrderedMap::new();
        let sym = |s: &str| OwnedKey::Symbol(Symbol::from(s));
        ann.insert(sym(annotation::DEVICE_ID), Value::String("d1".into()));
        ann.insert(sym(annotation::MODULE_ID), Value::String("m1".into()));
        ann.insert(sym(annotation::SEQUENCE_NUMBER), Value::Long(42));
        ann.insert(
            sym(annotation::ENQUEUED_TIME),
            Value::Timestamp(Timestamp::from_milliseconds(1_700_000_000_123)),
        );
        ann.insert(sym(annotation::OFFSET), Value::String("42".into()));
        ann.insert(
            sym(annotation::AUTH_METHOD),
            Value::String(r#"{"scope":"device"}"#.into()),
        );
        let mut app = OrderedMap::new();
        app.insert("alert".to_string(), SimpleValue::String("high".into()));
        app.insert("n".to_string(), SimpleValue::Int(3));
        let m = Message {
            header: None,
            delivery_annotations: None,
            message_annotations: Some(MessageAnnotations(ann)),
            properties: Some(Properties {
                message_id: Some(MessageId::String("m-1".into())),
                correlation_id: Some(MessageId::Ulong(9)),
                content_type: Some(Symbol::from("application/json")),
                content_encoding: Some(Symbol::from("utf-8")),
                ..Default::default()
            }),
            application_properties: Some(ApplicationProperties(app)),
            body: Body::Data(vec![Data(Binary::from(b"{\"t\":1}".to_vec()))].into()),
            footer: None,
        };
        let e = telemetry_event(3, &m);
        assert_eq!(e.device_id, "d1");
        assert_eq!(e.module_id.as_deref(), Some("m1"));
        assert_eq!(e.partition, 3);
        assert_eq!(e.sequence_number, 42);
        assert_eq!(e.enqueued_time.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(e.body, b"{\"t\":1}");
        let sys = |k: &str| {
            e.system_properties
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(sys("message-id"), Some("m-1"));
        assert_eq!(sys("correlation-id"), Some("9"));
        assert_eq!(sys("content-type"), Some("application/json"));
        assert_eq!(sys("content-encoding"), Some("utf-8"));
        assert_eq!(sys("x-opt-offset"), Some("42"));
        assert_eq!(
            sys("iothub-connection-auth-method"),
            Some(r#"{"scope":"device"}"#)
        );
        assert_eq!(sys("iothub-connection-device-id"), None);
        assert_eq!(
            e.application_properties,
            vec![("alert".into(), "high".into()), ("n".into(), "3".into())]
        );
    }
}
