//! The device side of the hub's HTTPS port: telemetry with properties in headers, and
//! cloud-to-device receive, complete, reject and abandon with locks, delivery counts and
//! the feedback a service receives over AMQP.

mod common;

use std::time::Duration;

use common::amqp::{next_feedback, service_session};
use common::{TestHub, now};
use fe2o3_amqp::Receiver;
use hubtui::hub::telemetry::StoredProperties;
use hubtui::iothub::property_bag::PropertyBag;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A device speaking HTTPS with its own SAS token.
struct HttpDevice<'a> {
    hub: &'a TestHub,
    id: String,
    token: String,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    fn error(&self) -> String {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        v["Message"].as_str().unwrap_or_default().to_string()
    }

    fn lock(&self) -> String {
        self.header("etag").trim_matches('"').to_string()
    }
}

impl<'a> HttpDevice<'a> {
    async fn new(hub: &'a TestHub, id: &str) -> HttpDevice<'a> {
        let key = hub.create_device(id).await;
        let token = hub.device_token(&format!("devices/{id}"), &key, now() + 3600);
        HttpDevice {
            hub,
            id: id.to_string(),
            token,
        }
    }

    async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}/devices/{}{path}{sep}api-version=2016-11-14",
            self.hub.base(),
            self.id
        );
        let mut req = self
            .hub
            .http
            .request(method, url)
            .header("Authorization", &self.token)
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request sent");
        Answer {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: resp.bytes().await.unwrap().to_vec(),
        }
    }

    async fn send(&self, headers: &[(&str, &str)], body: &[u8]) -> Answer {
        self.request(Method::POST, "/messages/events", headers, body)
            .await
    }

    async fn receive(&self) -> Answer {
        self.request(Method::GET, "/messages/deviceBound", &[], b"")
            .await
    }

    async fn complete(&self, lock: &str) -> Answer {
        self.request(
            Method::DELETE,
            &format!("/messages/deviceBound/{lock}"),
            &[("If-Match", lock)],
            b"",
        )
        .await
    }

    async fn reject(&self, lock: &str) -> Answer {
        self.request(
            Method::DELETE,
            &format!("/messages/devicebound/{lock}?reject"),
            &[],
            b"",
        )
        .await
    }

    async fn abandon(&self, lock: &str) -> Answer {
        self.request(
            Method::POST,
            &format!("/messages/devicebound/{lock}/abandon"),
            &[],
            b"",
        )
        .await
    }
}

fn stored_bag(hub: &TestHub, device: &str) -> Vec<(PropertyBag, Vec<u8>, StoredProperties)> {
    hub.stored_telemetry(device)
        .into_iter()
        .map(|r| {
            let p: StoredProperties = serde_json::from_str(&r.properties).unwrap();
            (
                PropertyBag {
                    entries: p.bag.clone(),
                },
                r.body,
                p,
            )
        })
        .collect()
}

#[tokio::test]
async fn telemetry_properties_travel_in_headers() {
    let hub = TestHub::start().await;
    let dev = HttpDevice::new(&hub, "h-1").await;
    let r = dev
        .send(
            &[
                ("iothub-app-alert", "high temp"),
                ("IoTHub-MessageId", "mid-1"),
                ("iothub-correlationid", "cid-1"),
                ("iothub-contenttype", "application/json"),
                ("iothub-contentencoding", "utf-8"),
                ("Content-Type", "application/octet-stream"),
            ],
            br#"{"t":21.5}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.error());
    let stored = stored_bag(&hub, "h-1");
    assert_eq!(stored.len(), 1);
    let (bag, body, props) = &stored[0];
    assert_eq!(body, br#"{"t":21.5}"#);
    assert_eq!(bag.get("$.mid"), Some("mid-1"));
    assert_eq!(bag.get("$.cid"), Some("cid-1"));
    assert_eq!(bag.get("$.ct"), Some("application/json"));
    assert_eq!(bag.get("$.ce"), Some("utf-8"));
    assert_eq!(bag.get("alert"), Some("high temp"));
    assert_eq!(bag.entries.len(), 5, "{bag:?}");
    assert!(
        props.auth_method.contains(r#""scope":"device""#),
        "{}",
        props.auth_method
    );

    // A batch: base64 bodies, properties with their header names.
    let batch = br#"[{"body":"b25l","properties":{"iothub-app-n":"1"}},{"body":"dHdv"}]"#;
    let r = dev
        .send(
            &[("Content-Type", "application/vnd.microsoft.iothub.json")],
            batch,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.error());
    let stored = stored_bag(&hub, "h-1");
    assert_eq!(stored.len(), 3);
    assert_eq!(stored[1].1, b"one");
    assert_eq!(stored[1].0.get("n"), Some("1"));
    assert_eq!(stored[2].1, b"two");
}

#[tokio::test]
async fn telemetry_is_refused_without_the_devices_credentials_or_over_size() {
    let hub = TestHub::start().await;
    let dev = HttpDevice::new(&hub, "h-2").await;
    let other = HttpDevice::new(&hub, "h-3").await;
    // h-3's token on h-2's path.
    let stolen = HttpDevice {
        hub: &hub,
        id: "h-2".into(),
        token: other.token.clone(),
    };
    let r = stolen.send(&[], b"x").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.error().starts_with("ErrorCode:IotHubUnauthorizedAccess;"),
        "{}",
        r.error()
    );
    let anonymous = HttpDevice {
        hub: &hub,
        id: "h-2".into(),
        token: String::new(),
    };
    assert_eq!(
        anonymous.send(&[], b"x").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(anonymous.receive().await.status, StatusCode::UNAUTHORIZED);

    let r = dev.send(&[], &vec![b'x'; 256 * 1024 + 1]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.error());
    let r = dev
        .send(
            &[("Content-Type", "application/vnd.microsoft.iothub.json")],
            b"[{}]",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.error()
            .contains("the telemetry batch is not a JSON array"),
        "{}",
        r.error()
    );
    let big = format!(r#"[{{"body":"{}"}}]"#, "A".repeat(256 * 1024));
    let r = dev
        .send(
            &[("Content-Type", "application/vnd.microsoft.iothub.json")],
            big.as_bytes(),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.error());
    assert!(
        r.error().contains("send it in smaller batches"),
        "{}",
        r.error()
    );
    assert!(hub.stored_telemetry("h-2").is_empty());
}

fn c2d_bag(mid: &str, ack: &str) -> PropertyBag {
    let mut bag = PropertyBag::default();
    bag.set("$.mid", Some(mid.into()));
    bag.set("$.cid", Some("corr-1".into()));
    bag.set("$.ct", Some("text/plain".into()));
    bag.set("iothub-ack", Some(ack.into()));
    bag.set("color", Some("blue".into()));
    bag
}

async fn feedback_receiver(
    hub: &TestHub,
) -> (
    fe2o3_amqp::connection::ConnectionHandle<()>,
    common::amqp::Sess,
    Receiver,
) {
    let (conn, mut session, _cbs) = service_session(hub, "service").await;
    let feedback = Receiver::attach(&mut session, "feedback", "/messages/serviceBound/feedback")
        .await
        .unwrap();
    (conn, session, feedback)
}

#[tokio::test]
async fn receive_locks_and_complete_and_reject_settle_with_feedback() {
    let hub = TestHub::start().await;
    let dev = HttpDevice::new(&hub, "h-4").await;
    let state = &hub.hub.state;
    assert_eq!(dev.receive().await.status, StatusCode::NO_CONTENT);
    state
        .enqueue_c2d("h-4", c2d_bag("m1", "full"), b"first".to_vec(), None)
        .unwrap();
    state
        .enqueue_c2d("h-4", c2d_bag("m2", "full"), b"second".to_vec(), None)
        .unwrap();
    let (_conn, _session, mut feedback) = feedback_receiver(&hub).await;

    let first = dev.receive().await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, b"first");
    assert_eq!(first.header("iothub-messageid"), "m1");
    assert_eq!(first.header("iothub-correlationid"), "corr-1");
    assert_eq!(
        first.header("iothub-to"),
        "/devices/h-4/messages/devicebound"
    );
    assert_eq!(first.header("iothub-ack"), "full");
    assert_eq!(first.header("iothub-deliverycount"), "0");
    assert_eq!(first.header("iothub-userid"), "");
    assert_eq!(first.header("ContentType"), "text/plain");
    assert_eq!(first.header("iothub-app-color"), "blue");
    assert!(first.header("iothub-enqueuedtime").ends_with('M'));
    assert!(first.header("iothub-sequencenumber").parse::<i64>().is_ok());
    let lock1 = first.lock();
    assert!(uuid::Uuid::parse_str(&lock1).is_ok(), "{lock1}");

    // The first is locked: the next receive gets the second, then nothing.
    let second = dev.receive().await;
    assert_eq!(second.body, b"second");
    assert_eq!(dev.receive().await.status, StatusCode::NO_CONTENT);

    let r = dev.complete(&lock1).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.error());
    let records = next_feedback(&mut feedback).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["originalMessageId"], "m1");
    assert_eq!(records[0]["statusCode"], "Success");

    let r = dev.reject(&second.lock()).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.error());
    let records = next_feedback(&mut feedback).await;
    assert_eq!(records[0]["originalMessageId"], "m2");
    assert_eq!(records[0]["statusCode"], "Rejected");
    assert_eq!(records[0]["deviceId"], "h-4");

    // Both left the queue; a settled lock is lost.
    assert_eq!(dev.receive().await.status, StatusCode::NO_CONTENT);
    let r = dev.complete(&lock1).await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert!(
        r.error().starts_with("ErrorCode:DeviceMessageLockLost;"),
        "{}",
        r.error()
    );
    // Another device cannot settle this device's message.
    state
        .enqueue_c2d("h-4", c2d_bag("m3", "none"), b"third".to_vec(), None)
        .unwrap();
    let third = dev.receive().await;
    let other = HttpDevice::new(&hub, "h-5").await;
    assert_eq!(
        other.complete(&third.lock()).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        dev.complete(&format!("\"{}\"", third.lock())).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn abandon_counts_deliveries_until_the_message_is_dead_lettered() {
    let hub = TestHub::start_with(|o| o.settings.c2d_max_delivery_count = 2).await;
    let dev = HttpDevice::new(&hub, "h-6").await;
    let state = &hub.hub.state;
    state
        .enqueue_c2d("h-6", c2d_bag("m1", "negative"), b"x".to_vec(), None)
        .unwrap();
    let (_conn, _session, mut feedback) = feedback_receiver(&hub).await;

    let r = dev.receive().await;
    assert_eq!(r.header("iothub-deliverycount"), "0");
    assert_eq!(dev.abandon(&r.lock()).await.status, StatusCode::NO_CONTENT);
    let r = dev.receive().await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "abandoned messages come back at once"
    );
    assert_eq!(r.header("iothub-deliverycount"), "1");
    assert_eq!(dev.abandon(&r.lock()).await.status, StatusCode::NO_CONTENT);

    // The second abandon reached the maximum: dead-lettered, with negative feedback.
    assert_eq!(dev.receive().await.status, StatusCode::NO_CONTENT);
    let records = next_feedback(&mut feedback).await;
    assert_eq!(records[0]["originalMessageId"], "m1");
    assert_eq!(records[0]["statusCode"], "DeliveryCountExceeded");
}

#[tokio::test]
async fn an_expired_lock_offers_the_message_again_without_counting_a_delivery() {
    let hub =
        TestHub::start_with(|o| o.settings.c2d_lock_timeout = Duration::from_millis(500)).await;
    let dev = HttpDevice::new(&hub, "h-7").await;
    let state = &hub.hub.state;
    state
        .enqueue_c2d("h-7", c2d_bag("m1", "full"), b"x".to_vec(), None)
        .unwrap();
    let first = dev.receive().await;
    assert_eq!(dev.receive().await.status, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = dev.receive().await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("iothub-messageid"), "m1");
    assert_eq!(again.header("iothub-deliverycount"), "0");
    assert_ne!(again.lock(), first.lock());
    assert_eq!(
        dev.complete(&first.lock()).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        dev.complete(&again.lock()).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn an_expired_message_is_not_received_and_gets_expired_feedback() {
    let hub = TestHub::start().await;
    let dev = HttpDevice::new(&hub, "h-8").await;
    hub.hub
        .state
        .enqueue_c2d(
            "h-8",
            c2d_bag("old", "negative"),
            b"x".to_vec(),
            Some(now() as i64 * 1000 - 1000),
        )
        .unwrap();
    let (_conn, _session, mut feedback) = feedback_receiver(&hub).await;
    assert_eq!(dev.receive().await.status, StatusCode::NO_CONTENT);
    let records = next_feedback(&mut feedback).await;
    assert_eq!(records[0]["originalMessageId"], "old");
    assert_eq!(records[0]["statusCode"], "Expired");
}

#[tokio::test]
async fn concurrent_receives_never_lock_the_same_message() {
    let hub = TestHub::start().await;
    let dev = HttpDevice::new(&hub, "h-9").await;
    for i in 0..10 {
        hub.hub
            .state
            .enqueue_c2d(
                "h-9",
                c2d_bag(&format!("m{i}"), "none"),
                b"x".to_vec(),
                None,
            )
            .unwrap();
    }
    for _round in 0..3 {
        let answers = futures::future::join_all((0..12).map(|_| dev.receive())).await;
        let mut ids: Vec<String> = answers
            .iter()
            .filter(|a| a.status == StatusCode::OK)
            .map(|a| a.header("iothub-messageid").to_string())
            .collect();
        assert_eq!(ids.len(), 10);
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 10, "a message was handed out twice");
        for a in answers.iter().filter(|a| a.status == StatusCode::OK) {
            assert_eq!(dev.abandon(&a.lock()).await.status, StatusCode::NO_CONTENT);
        }
    }
}

#[tokio::test]
async fn only_an_expiry_the_sender_set_is_shown() {
    let hub = TestHub::start().await;
    let dev = HttpDevice::new(&hub, "h-10").await;
    let state = &hub.hub.state;
    state
        .enqueue_c2d("h-10", c2d_bag("plain", "none"), b"x".to_vec(), None)
        .unwrap();
    let expiry_ms = (now() as i64 + 600) * 1000;
    let mut bag = c2d_bag("timed", "none");
    bag.set("$.exp", Some("set by the sender".into()));
    state
        .enqueue_c2d("h-10", bag, b"y".to_vec(), Some(expiry_ms))
        .unwrap();
    let plain = dev.receive().await;
    assert_eq!(plain.header("iothub-expiry"), "");
    let timed = dev.receive().await;
    let expiry = chrono::DateTime::from_timestamp_millis(expiry_ms).unwrap();
    assert_eq!(
        timed.header("iothub-expiry"),
        hubtui::iothub::device_http::dotnet_time(expiry)
    );
    // Both times read like "12/09/2019 12:00:00 PM".
    for value in [
        timed.header("iothub-expiry"),
        timed.header("iothub-enqueuedtime"),
    ] {
        assert!(
            chrono::NaiveDateTime::parse_from_str(value, "%m/%d/%Y %I:%M:%S %p").is_ok(),
            "{value}"
        );
    }
}

/// An HTTPS client that trusts the hub and presents `issued` in the TLS handshake.
fn certificate_client(hub: &TestHub, issued: &common::certs::Issued) -> reqwest::Client {
    hubtui::hub::install_crypto_provider();
    let chain: String = issued
        .chain
        .iter()
        .map(|c| common::certs::pem_of(c.as_ref()))
        .collect();
    let pem = format!("{}{chain}", issued.key.serialize_pem());
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(hub.hub.ca_pem.as_bytes()).unwrap()])
        .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_device_with_a_certificate_needs_no_token() {
    let hub = TestHub::start().await;
    let enrolled = common::certs::self_signed("h-x509");
    let r = hub
        .call(
            Method::PUT,
            "/devices/h-x509",
            Some(serde_json::json!({"deviceId": "h-x509", "authentication": {"type": "selfSigned",
                "x509Thumbprint": {"primaryThumbprint": enrolled.sha1(), "secondaryThumbprint": null}}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let url = |path: &str| format!("{}/devices/h-x509{path}?api-version=2021-04-12", hub.base());
    let client = certificate_client(&hub, &enrolled);
    let r = client
        .post(url("/messages/events"))
        .header("iothub-app-kind", "x509")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let stored = stored_bag(&hub, "h-x509");
    assert_eq!(stored[0].0.get("kind"), Some("x509"));
    assert!(
        stored[0]
            .2
            .auth_method
            .contains(r#""type":"x509Certificate""#),
        "{}",
        stored[0].2.auth_method
    );
    let r = client
        .get(url("/messages/deviceBound"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // A certificate the identity does not hold is refused like a wrong key.
    let stranger = certificate_client(&hub, &common::certs::self_signed("h-x509"));
    let r = stranger
        .post(url("/messages/events"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(hub.stored_telemetry("h-x509").len(), 1);
}
