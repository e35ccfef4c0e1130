//! What arrives from the hub: incoming publishes become typed [`DeviceEvent`]s (or complete a
//! twin request), and connection errors become one sentence for `Disconnected { reason }`.

use rumqttc::{ConnectReturnCode, ConnectionError, StateError};
use serde_json::Value;

use super::DeviceEvent;
use super::requests::{PendingRequests, TwinReply};
use iothub::topic::{HubPublish, parse_hub_publish};

/// The `"$version"` member of a desired-patch body.
const VERSION_KEY: &str = "$version";

/// Turns one hub publish into an event. Twin responses go to their waiter instead (None).
pub fn route_publish(
    topic: &str,
    payload: &[u8],
    pending: &PendingRequests,
) -> Option<DeviceEvent> {
    let parsed = match parse_hub_publish(topic) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(topic, error = %e, "ignoring a publish on an unknown topic");
            return None;
        }
    };
    match parsed {
        HubPublish::TwinResponse {
            status,
            rid,
            version,
        } => {
            let reply = TwinReply {
                status,
                version,
                body: payload.to_vec(),
            };
            if !pending.complete(&rid, reply) {
                tracing::debug!(rid, status, "twin response nobody waits for");
            }
            None
        }
        HubPublish::DesiredPatch { version } => {
            let patch = match serde_json::from_slice::<Value>(payload) {
                Ok(Value::Object(mut m)) => {
                    m.remove(VERSION_KEY);
                    m
                }
                Ok(_) | Err(_) => {
                    tracing::warn!(version, "desired patch is not a JSON object; ignored");
                    return None;
                }
            };
            Some(DeviceEvent::DesiredPatch { version, patch })
        }
        HubPublish::MethodRequest { method_name, rid } => Some(DeviceEvent::MethodRequest {
            name: method_name,
            rid,
            payload: method_payload(payload),
        }),
        HubPublish::C2d { properties, .. } => Some(DeviceEvent::C2d {
            properties,
            body: payload.to_vec(),
        }),
    }
}

/// Method payloads are JSON; an empty body is null, and text that is not JSON is kept as a string.
fn method_payload(payload: &[u8]) -> Value {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(payload)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(payload).into_owned()))
}

/// A readable message from a failed twin response body (`{"errorCode":..,"message":..}` or text).
pub fn error_message(body: &[u8]) -> String {
    if let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(body) {
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(msg) = text("message").or_else(|| text("Message")) {
            return msg;
        }
        if let Some(code) = m.get("errorCode") {
            return format!("error code {code}");
        }
    }
    let text = String::from_utf8_lossy(body).trim().to_owned();
    if text.is_empty() {
        "no details given".to_owned()
    } else {
        text
    }
}

/// How the device authenticates, for wording the not-authorized reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthKind {
    Key,
    Token,
    Certificate,
}

/// One sentence for `Disconnected { reason }`.
pub fn describe(e: &ConnectionError, endpoint: &str, auth: AuthKind) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => refused(*code, auth),
        ConnectionError::NetworkTimeout => format!("timed out connecting to {endpoint}"),
        ConnectionError::FlushTimeout => "timed out sending to the hub".to_owned(),
        ConnectionError::Tls(e) => {
            format!("the TLS handshake with {endpoint} failed ({e}): is the right CA trusted?")
        }
        ConnectionError::Io(e) => io_reason(e, endpoint),
        ConnectionError::MqttState(StateError::Io(e))
        | ConnectionError::MqttState(StateError::Deserialization(rumqttc::Error::Io(e))) => {
            io_reason(e, endpoint)
        }
        ConnectionError::MqttState(StateError::AwaitPingResp) => {
            "the hub stopped answering keep-alive pings".to_owned()
        }
        ConnectionError::MqttState(StateError::ConnectionAborted) => {
            "the hub closed the connection".to_owned()
        }
        ConnectionError::MqttState(e) => format!("MQTT protocol error: {e}"),
        ConnectionError::NotConnAck(p) => {
            format!("the hub answered CONNECT with {p:?} instead of CONNACK")
        }
        ConnectionError::RequestsDone => "the device client was closed".to_owned(),
        ConnectionError::Websocket(e) => {
            format!("the WebSocket connection to {endpoint} failed: {e}")
        }
        ConnectionError::WsConnect(e) => {
            format!("cannot make a WebSocket request for {endpoint}: {e}")
        }
        ConnectionError::InvalidUrl(e) => format!("{endpoint} is not a WebSocket URL: {e}"),
        ConnectionError::Proxy(e) => format!("the proxy failed to connect to {endpoint}: {e}"),
        ConnectionError::ResponseValidation(_) => {
            format!("{endpoint} did not accept the WebSocket subprotocol mqtt: is it an IoT Hub?")
        }
    }
}

/// Did the hub refuse the credentials (rather than the network or the hub failing)?
pub fn is_refusal(e: &ConnectionError) -> bool {
    matches!(
        e,
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword
        )
    )
}

fn refused(code: ConnectReturnCode, auth: AuthKind) -> String {
    match (code, auth) {
        (
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
            AuthKind::Key,
        ) => "not authorized: check the device key".to_owned(),
        (
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
            AuthKind::Token,
        ) => "not authorized: the SharedAccessSignature is wrong or has expired".to_owned(),
        (
            ConnectReturnCode::NotAuthorized | ConnectReturnCode::BadUserNamePassword,
            AuthKind::Certificate,
        ) => "not authorized: the hub does not accept this certificate for the device (check the thumbprint registered for it, or that its CA is registered and its subject CN is the device id)".to_owned(),
        (ConnectReturnCode::BadClientId, _) => {
            "the hub refused the client id: is the device registered?".to_owned()
        }
        (ConnectReturnCode::ServiceUnavailable, _) => "the hub is unavailable".to_owned(),
        (ConnectReturnCode::RefusedProtocolVersion, _) => "the hub refused MQTT 3.1.1".to_owned(),
        (ConnectReturnCode::Success, _) => "the hub refused the connection".to_owned(),
    }
}

fn io_reason(e: &std::io::Error, endpoint: &str) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::ConnectionRefused => format!("cannot reach {endpoint}: connection refused"),
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
            "the hub closed the connection".to_owned()
        }
        ErrorKind::NotFound => format!("cannot resolve {endpoint}"),
        _ => format!("the connection to {endpoint} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub::property_bag::PropertyBag;
    use iothub::topic::HubPublish;
    use serde_json::json;

    fn topic(p: HubPublish) -> String {
        p.to_topic()
    }

    #[tokio::test]
    async fn twin_response_completes_the_waiter_by_rid_and_yields_no_event() {
        let pending = PendingRequests::new();
        let (rid, rx) = pending.register();
        let (other, _rx2) = pending.register();
        let t = topic(HubPublish::TwinResponse {
            status: 204,
            rid: rid.clone(),
            version: Some(7),
        });
        assert_eq!(route_publish(&t, b"", &pending), None);
        let r = rx.await.unwrap();
        assert_eq!((r.status, r.version), (204, Some(7)));
        assert_eq!(pending.len(), 1, "{other} still waits");
        // An answer for a rid nobody waits for is dropped quietly.
        let t = topic(HubPublish::TwinResponse {
            status: 200,
            rid: "12345".into(),
            version: None,
        });
        assert_eq!(route_publish(&t, b"{}", &pending), None);
    }

    #[test]
    fn desired_patch_carries_version_and_drops_the_version_member() {
        let pending = PendingRequests::new();
        let t = topic(HubPublish::DesiredPatch { version: 8 });
        let body = json!({"telemetryInterval": 10, "route": null, "$version": 8});
        let ev = route_publish(&t, body.to_string().as_bytes(), &pending).unwrap();
        let DeviceEvent::DesiredPatch { version, patch } = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(version, 8);
        assert_eq!(
            Value::Object(patch),
            json!({"telemetryInterval": 10, "route": null})
        );
        assert_eq!(route_publish(&t, b"[1]", &pending), None);
    }

    #[test]
    fn method_request_keeps_rid_and_parses_payload() {
        let pending = PendingRequests::new();
        let t = topic(HubPublish::MethodRequest {
            method_name: "reboot".into(),
            rid: "a1".into(),
        });
        let ev = route_publish(&t, br#"{"delay":3}"#, &pending).unwrap();
        assert_eq!(
            ev,
            DeviceEvent::MethodRequest {
                name: "reboot".into(),
                rid: "a1".into(),
                payload: json!({"delay": 3})
            }
        );
        let ev = route_publish(&t, b"", &pending).unwrap();
        assert!(matches!(
            ev,
            DeviceEvent::MethodRequest {
                payload: Value::Null,
                ..
            }
        ));
        let ev = route_publish(&t, b"not json", &pending).unwrap();
        assert!(
            matches!(ev, DeviceEvent::MethodRequest { payload: Value::String(ref s), .. } if s == "not json")
        );
    }

    #[test]
    fn c2d_carries_properties_and_body() {
        let pending = PendingRequests::new();
        let t = "devices/d1/messages/devicebound/%24.mid=m1&%24.to=%2Fdevices%2Fd1%2Fmessages%2FdeviceBound&color=red";
        let ev = route_publish(t, b"hello", &pending).unwrap();
        let DeviceEvent::C2d { properties, body } = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(body, b"hello");
        assert_eq!(properties.system("mid"), Some("m1"));
        assert_eq!(properties.get("color"), Some("red"));
        let empty = route_publish("devices/d1/messages/devicebound/", b"", &pending).unwrap();
        assert_eq!(
            empty,
            DeviceEvent::C2d {
                properties: PropertyBag::default(),
                body: vec![]
            }
        );
    }

    #[test]
    fn unknown_topics_are_ignored() {
        let pending = PendingRequests::new();
        assert_eq!(route_publish("some/other/topic", b"x", &pending), None);
        assert_eq!(
            route_publish("$iothub/twin/res/abc/?$rid=1", b"", &pending),
            None
        );
    }

    #[test]
    fn connack_5_says_check_the_device_key() {
        let e = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        assert_eq!(
            describe(&e, "localhost:8883", AuthKind::Key),
            "not authorized: check the device key"
        );
        assert!(describe(&e, "h:1", AuthKind::Token).contains("SharedAccessSignature"));
        let e = ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            describe(&e, "localhost:8883", AuthKind::Key),
            "cannot reach localhost:8883: connection refused"
        );
        // A hub that drops TLS without close_notify surfaces as a decoding I/O error.
        let eof = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no close_notify");
        let e = ConnectionError::MqttState(StateError::Deserialization(rumqttc::Error::Io(eof)));
        assert_eq!(
            describe(&e, "h:1", AuthKind::Key),
            "the hub closed the connection"
        );
        let e = ConnectionError::MqttState(StateError::AwaitPingResp);
        assert!(describe(&e, "h:1", AuthKind::Key).contains("keep-alive"));
    }

    #[test]
    fn error_messages_from_twin_error_bodies() {
        assert_eq!(
            error_message(br#"{"errorCode":400027,"message":"bad patch"}"#),
            "bad patch"
        );
        assert_eq!(error_message(br#"{"errorCode":400}"#), "error code 400");
        assert_eq!(error_message(b""), "no details given");
        assert_eq!(error_message(b"oops"), "oops");
    }
}
