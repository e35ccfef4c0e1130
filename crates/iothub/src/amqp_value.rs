//! AMQP values as IoT Hub shows them in text: message and correlation ids, property
//! values, annotation values and message bodies. The one module of `iothub` that knows
//! the AMQP library's value types (still pure: no I/O), so that the local hub and the
//! clients render them alike.

use chrono::{SecondsFormat, TimeZone, Utc};
use fe2o3_amqp_types::messaging::message::Body;
use fe2o3_amqp_types::messaging::{AmqpValue, MessageId};
use fe2o3_amqp_types::primitives::{SimpleValue, Value};

/// An AMQP timestamp (milliseconds since the epoch) as ISO-8601 with milliseconds.
pub fn iso_millis(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn uuid_text(bytes: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(bytes).hyphenated().to_string()
}

/// A message id or correlation id as text.
pub fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid_text(u.clone().into_inner()),
        MessageId::Binary(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

/// A scalar application-property value as text; None for null and for composite
/// values (lists, maps, arrays, described types), which have no text form.
pub fn simple_text(v: &SimpleValue) -> Option<String> {
    Some(match v {
        SimpleValue::String(s) => s.clone(),
        SimpleValue::Symbol(s) => s.as_str().to_string(),
        SimpleValue::Bool(b) => b.to_string(),
        SimpleValue::Ubyte(n) => n.to_string(),
        SimpleValue::Ushort(n) => n.to_string(),
        SimpleValue::Uint(n) => n.to_string(),
        SimpleValue::Ulong(n) => n.to_string(),
        SimpleValue::Byte(n) => n.to_string(),
        SimpleValue::Short(n) => n.to_string(),
        SimpleValue::Int(n) => n.to_string(),
        SimpleValue::Long(n) => n.to_string(),
        SimpleValue::Float(n) => n.to_string(),
        SimpleValue::Double(n) => n.to_string(),
        SimpleValue::Char(c) => c.to_string(),
        SimpleValue::Timestamp(t) => iso_millis(t.milliseconds()),
        SimpleValue::Uuid(u) => uuid_text(u.clone().into_inner()),
        SimpleValue::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => return None,
    })
}

/// A scalar value (an annotation, a body value) as text; None for null and composites.
pub fn value_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::String(s) => s.clone(),
        Value::Symbol(s) => s.as_str().to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Ubyte(n) => n.to_string(),
        Value::Ushort(n) => n.to_string(),
        Value::Uint(n) => n.to_string(),
        Value::Ulong(n) => n.to_string(),
        Value::Byte(n) => n.to_string(),
        Value::Short(n) => n.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Long(n) => n.to_string(),
        Value::Float(n) => n.to_string(),
        Value::Double(n) => n.to_string(),
        Value::Char(c) => c.to_string(),
        Value::Timestamp(t) => iso_millis(t.milliseconds()),
        Value::Uuid(u) => uuid_text(u.clone().into_inner()),
        Value::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => return None,
    })
}

/// A message body's bytes: its data sections joined, or a binary value as is, or a
/// scalar value as its text (IoT Hub bodies are data sections; the SDKs send those).
pub fn body_bytes(body: &Body<Value>) -> Vec<u8> {
    match body {
        Body::Data(batch) => batch.iter().flat_map(|d| d.0.iter().copied()).collect(),
        Body::Value(AmqpValue(Value::Binary(b))) => b.to_vec(),
        Body::Value(AmqpValue(v)) => value_text(v).unwrap_or_default().into_bytes(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp_types::messaging::Data;
    use fe2o3_amqp_types::primitives::{Binary, Timestamp, Uuid};

    #[test]
    fn scalars_have_text_and_composites_do_not() {
        assert_eq!(simple_text(&SimpleValue::Int(-5)).as_deref(), Some("-5"));
        assert_eq!(
            simple_text(&SimpleValue::Timestamp(Timestamp::from_milliseconds(
                1_700_000_000_123
            )))
            .as_deref(),
            Some("2023-11-14T22:13:20.123Z")
        );
        assert_eq!(simple_text(&SimpleValue::Null), None);
        assert_eq!(
            value_text(&Value::Symbol("com.x".into())).as_deref(),
            Some("com.x")
        );
        assert_eq!(value_text(&Value::List(vec![Value::Int(1)])), None);
        let id = Uuid::from([1u8; 16]);
        assert_eq!(
            message_id_text(&MessageId::Uuid(id)),
            "01010101-0101-0101-0101-010101010101"
        );
        assert_eq!(message_id_text(&MessageId::Ulong(7)), "7");
    }

    #[test]
    fn bodies() {
        let data = Body::Data(
            vec![
                Data(Binary::from(b"ab".to_vec())),
                Data(Binary::from(b"c".to_vec())),
            ]
            .into(),
        );
        assert_eq!(body_bytes(&data), b"abc");
        assert_eq!(
            body_bytes(&Body::Value(AmqpValue(Value::String("t".into())))),
            b"t"
        );
        assert_eq!(body_bytes(&Body::Value(AmqpValue(Value::Null))), b"");
    }
}
