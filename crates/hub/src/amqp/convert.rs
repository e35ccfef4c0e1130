//! Conversions between AMQP messages and the hub's records: C2D messages into a
//! property bag, telemetry records into Event Hubs events, request/response helpers.

use chrono::Utc;
use fe2o3_amqp::types::definitions::{Error as AmqpError, ErrorCondition, Fields};
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Data, DeliveryAnnotations, Message, MessageAnnotations,
    MessageId, Properties,
};
use fe2o3_amqp::types::primitives::OrderedMap;
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Symbol, Timestamp, Value};

pub use iothub::amqp_value::{body_bytes, value_text};
use iothub::amqp_value::{iso_millis as iso, message_id_text, simple_text};

use crate::store::TelemetryRecord;
use crate::telemetry::StoredProperties;
use iothub::amqp_model::{
    RUNTIME_INFO_RETRIEVAL_TIME_UTC, annotation, c2d_device_id, condition, management,
};
use iothub::property_bag::{
    COMPONENT_NAME, CONTENT_ENCODING, CONTENT_TYPE, CORRELATION_ID, EXPIRY_TIME, MESSAGE_ID,
    PropertyBag, TO, USER_ID,
};

pub type AmqpMessage = Message<Body<Value>>;

/// Bytes the message takes encoded: the sum of its sections.
pub fn message_size(msg: &AmqpMessage) -> usize {
    fn size<T: serde::Serialize>(section: &Option<T>) -> usize {
        section
            .as_ref()
            .map_or(0, |s| serde_amqp::serialized_size(s).unwrap_or(usize::MAX))
    }
    [
        size(&msg.header),
        size(&msg.delivery_annotations),
        size(&msg.message_annotations),
        size(&msg.properties),
        size(&msg.application_properties),
        serde_amqp::serialized_size(&msg.body).unwrap_or(usize::MAX),
        size(&msg.footer),
    ]
    .into_iter()
    .fold(0, usize::saturating_add)
}

pub fn error(cond: &str, description: impl Into<String>) -> AmqpError {
    AmqpError::new(
        ErrorCondition::Custom(Symbol::from(cond)),
        Some(description.into()),
        None::<Fields>,
    )
}

pub fn error_with_info(cond: &str, description: impl Into<String>, info: Fields) -> AmqpError {
    AmqpError::new(
        ErrorCondition::Custom(Symbol::from(cond)),
        Some(description.into()),
        Some(info),
    )
}

/// An application property as text.
pub fn app_prop(msg: &AmqpMessage, key: &str) -> Option<String> {
    msg.application_properties
        .as_ref()
        .and_then(|p| p.0.get(key))
        .and_then(simple_text)
}

/// A C2D message as the hub queues it.
pub struct C2dRequest {
    pub device_id: String,
    pub bag: PropertyBag,
    pub body: Vec<u8>,
    pub expiry_ms: Option<i64>,
}

/// Maps a message sent to `/messages/devicebound` into the device's property bag;
/// Err((condition, description)) when it cannot be delivered.
pub fn c2d_request(msg: &AmqpMessage) -> Result<C2dRequest, (&'static str, String)> {
    let props = msg.properties.as_ref();
    let to = props.and_then(|p| p.to.clone()).ok_or((
        condition::ARGUMENT,
        "Amqp Message.Properties.To must contain the device identifier".to_string(),
    ))?;
    let device_id = c2d_device_id(&to).ok_or((
        condition::ARGUMENT,
        format!(
            "Amqp Message.Properties.To '{to}' is not /devices/{{deviceId}}/messages/devicebound"
        ),
    ))?;
    let mut bag = PropertyBag::default();
    let mut expiry_ms = None;
    if let Some(p) = props {
        if let Some(id) = &p.message_id {
            bag.set(MESSAGE_ID, Some(message_id_text(id)));
        }
        bag.set(TO, Some(to.clone()));
        if let Some(id) = &p.correlation_id {
            bag.set(CORRELATION_ID, Some(message_id_text(id)));
        }
        if let Some(u) = &p.user_id {
            bag.set(USER_ID, Some(String::from_utf8_lossy(u).into_owned()));
        }
        if let Some(ct) = &p.content_type {
            bag.set(CONTENT_TYPE, Some(ct.as_str().to_string()));
        }
        if let Some(ce) = &p.content_encoding {
            bag.set(CONTENT_ENCODING, Some(ce.as_str().to_string()));
        }
        if let Some(exp) = &p.absolute_expiry_time {
            expiry_ms = Some(exp.milliseconds());
            bag.set(EXPIRY_TIME, Some(iso(exp.milliseconds())));
        }
    }
    if let Some(app) = &msg.application_properties {
        for (k, v) in app.0.iter() {
            bag.entries
                .push((k.clone(), Some(simple_text(v).unwrap_or_default())));
        }
    }
    Ok(C2dRequest {
        device_id,
        bag,
        body: body_bytes(&msg.body),
        expiry_ms,
    })
}

fn sym(s: &str) -> fe2o3_amqp::types::messaging::annotations::OwnedKey {
    fe2o3_amqp::types::messaging::annotations::OwnedKey::Symbol(Symbol::from(s))
}

/// A retained telemetry record as an Event Hubs event, with the annotations Azure sets.
pub fn telemetry_event(rec: &TelemetryRecord) -> AmqpMessage {
    let stored: Option<StoredProperties> = serde_json::from_str(&rec.properties).ok();
    let bag = PropertyBag {
        entries: stored.as_ref().map(|s| s.bag.clone()).unwrap_or_default(),
    };
    let mut ann: OrderedMap<_, Value> = OrderedMap::new();
    ann.insert(
        sym(annotation::DEVICE_ID),
        Value::String(rec.device_id.clone()),
    );
    if let Some(m) = &rec.module_id {
        ann.insert(sym(annotation::MODULE_ID), Value::String(m.clone()));
    }
    if let Some(s) = &stored {
        ann.insert(
            sym(annotation::AUTH_METHOD),
            Value::String(s.auth_method.clone()),
        );
        ann.insert(
            sym(annotation::AUTH_GENERATION_ID),
            Value::String(s.generation_id.clone()),
        );
    }
    let at = Timestamp::from_milliseconds(rec.enqueued_ms);
    ann.insert(
        sym(annotation::ENQUEUED_TIME_HUB),
        Value::Timestamp(at.clone()),
    );
    ann.insert(
        sym(annotation::MESSAGE_SOURCE),
        Value::String(annotation::TELEMETRY_SOURCE.to_string()),
    );
    if let Some(sub) = bag.get(COMPONENT_NAME) {
        ann.insert(sym(annotation::DT_SUBJECT), Value::String(sub.to_string()));
    }
    ann.insert(
        sym(annotation::SEQUENCE_NUMBER),
        Value::Long(rec.partition_seq),
    );
    ann.insert(
        sym(annotation::OFFSET),
        Value::String(rec.partition_seq.to_string()),
    );
    ann.insert(sym(annotation::ENQUEUED_TIME), Value::Timestamp(at));

    let props = Properties {
        message_id: bag
            .get(MESSAGE_ID)
            .map(|s| MessageId::String(s.to_string())),
        correlation_id: bag
            .get(CORRELATION_ID)
            .map(|s| MessageId::String(s.to_string())),
        user_id: bag
            .get(USER_ID)
            .map(|s| Binary::from(s.as_bytes().to_vec())),
        content_type: bag.get(CONTENT_TYPE).map(Symbol::from),
        content_encoding: bag.get(CONTENT_ENCODING).map(Symbol::from),
        ..Default::default()
    };

    let mut app: OrderedMap<String, SimpleValue> = OrderedMap::new();
    for (k, v) in bag.application() {
        app.insert(
            k.to_string(),
            SimpleValue::String(v.unwrap_or_default().to_string()),
        );
    }
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: Some(MessageAnnotations(ann)),
        properties: Some(props),
        application_properties: Some(ApplicationProperties(app)),
        body: Body::Data(vec![Data(Binary::from(rec.body.clone()))].into()),
        footer: None,
    }
}

/// The partition's last enqueued event, as delivery annotations (receiver runtime metric).
pub fn add_runtime_metric(msg: &mut AmqpMessage, last_seq: i64, last_enqueued_ms: i64) {
    let mut ann: OrderedMap<_, Value> = OrderedMap::new();
    ann.insert(
        sym(management::LAST_ENQUEUED_SEQUENCE_NUMBER),
        Value::Long(last_seq),
    );
    ann.insert(
        sym(management::LAST_ENQUEUED_OFFSET),
        Value::String(last_seq.to_string()),
    );
    ann.insert(
        sym(management::LAST_ENQUEUED_TIME_UTC),
        Value::Timestamp(Timestamp::from_milliseconds(last_enqueued_ms)),
    );
    ann.insert(
        sym(RUNTIME_INFO_RETRIEVAL_TIME_UTC),
        Value::Timestamp(Timestamp::from_milliseconds(Utc::now().timestamp_millis())),
    );
    msg.delivery_annotations = Some(DeliveryAnnotations(ann));
}

/// A response to a CBS or management request: correlation id = the request's message id.
pub fn response(request: &AmqpMessage, status: i32, description: &str, body: Value) -> AmqpMessage {
    let props = Properties {
        correlation_id: request
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone()),
        ..Default::default()
    };
    let mut app: OrderedMap<String, SimpleValue> = OrderedMap::new();
    app.insert(
        iothub::amqp_model::STATUS_CODE.to_string(),
        SimpleValue::Int(status),
    );
    app.insert(
        iothub::amqp_model::STATUS_DESCRIPTION.to_string(),
        SimpleValue::String(description.to_string()),
    );
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(props),
        application_properties: Some(ApplicationProperties(app)),
        body: Body::Value(AmqpValue(body)),
        footer: None,
    }
}
