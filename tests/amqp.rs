//! The hub's AMQP endpoint, driven by fe2o3-amqp as a client over real TLS on
//! loopback: CBS and SASL PLAIN authentication, C2D send, feedback, the Event
//! Hubs-compatible endpoint ($management and partition receivers) and the redirect.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::amqp::{Cbs, Sess, anonymous, connect_with, service_session, service_token};
use common::wait::assert_nothing_within;
use common::{TestHub, now, tls_to};
use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Message, MessageId, Outcome, Properties, Source,
};
use fe2o3_amqp::types::primitives::{Binary, SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};

use hubtui::hub::registry::AuthMethod;
use hubtui::iothub::property_bag::PropertyBag;
use hubtui::iothub::sas::{generate_event_hubs_token, generate_token};

const T: Duration = Duration::from_secs(10);

fn c2d_message(device: &str, body: &str) -> Message<Body<Value>> {
    let mut app = fe2o3_amqp::types::primitives::OrderedMap::new();
    app.insert("color".to_string(), SimpleValue::String("blue".into()));
    app.insert("iothub-ack".to_string(), SimpleValue::String("full".into()));
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(
            Properties::builder()
                .message_id(String::from("mid-1"))
                .correlation_id(String::from("cid-1"))
                .to(format!("/devices/{device}/messages/devicebound"))
                .content_type("application/json")
                .content_encoding("utf-8")
                .absolute_expiry_time(Timestamp::from_milliseconds((now() as i64 + 600) * 1000))
                .build(),
        ),
        application_properties: Some(ApplicationProperties(app)),
        body: Body::Data(
            vec![fe2o3_amqp::types::messaging::Data(Binary::from(
                body.as_bytes().to_vec(),
            ))]
            .into(),
        ),
        footer: None,
    }
}

#[tokio::test]
async fn hub_json_announces_amqp_and_the_event_hubs_endpoint() {
    let hub = TestHub::start().await;
    let info = &hub.hub.info;
    let port = info.ports.amqp.unwrap();
    assert_ne!(port, 0);
    let cs = info.event_hub_compatible_connection_string.clone().unwrap();
    let parsed = hubtui::iothub::connection_string::EventHubConnectionString::parse(&cs).unwrap();
    assert_eq!(parsed.entity_path, "iothub-ehub-localhost");
    assert_eq!(parsed.policy_name, "iothubowner");
    assert!(parsed.endpoint.contains(&format!("localhost:{port}")));
    let on_disk = hubtui::hub::HubInfo::read(hub.dir.path()).unwrap();
    assert_eq!(on_disk.ports.amqp, Some(port));
}

#[tokio::test]
async fn c2d_send_is_queued_with_every_property() {
    let hub = TestHub::start().await;
    hub.create_device("dev-1").await;
    let (mut conn, mut session, _cbs) = service_session(&hub, "service").await;
    let mut sender = Sender::attach(
        &mut session,
        "c2d",
        "amqps://localhost/messages/devicebound",
    )
    .await
    .unwrap();
    let outcome = sender
        .send(c2d_message("dev-1", "{\"on\":1}"))
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");

    let queued = hub
        .hub
        .state
        .c2d_deliverable("dev-1", &HashSet::new())
        .unwrap();
    assert_eq!(queued.len(), 1);
    let bag = &queued[0].properties;
    assert_eq!(bag.get("$.mid"), Some("mid-1"));
    assert_eq!(bag.get("$.cid"), Some("cid-1"));
    assert_eq!(bag.get("$.ct"), Some("application/json"));
    assert_eq!(bag.get("$.ce"), Some("utf-8"));
    assert_eq!(bag.get("$.to"), Some("/devices/dev-1/messages/devicebound"));
    assert!(bag.get("$.exp").unwrap().ends_with('Z'));
    assert_eq!(bag.get("iothub-ack"), Some("full"));
    assert_eq!(bag.get("color"), Some("blue"));
    assert_eq!(queued[0].body, b"{\"on\":1}");

    // Unknown device: rejected with a condition and a sentence.
    let outcome = sender.send(c2d_message("ghost", "x")).await.unwrap();
    match outcome {
        Outcome::Rejected(r) => {
            let e = r.error.unwrap();
            assert_eq!(format!("{:?}", e.condition), "AmqpError(NotFound)");
            assert!(e.description.unwrap().contains("DeviceNotFound"));
        }
        other => panic!("expected rejected, got {other:?}"),
    }
    // No `to`: rejected as an argument error.
    let mut no_to = c2d_message("dev-1", "x");
    no_to.properties.as_mut().unwrap().to = None;
    let outcome = sender.send(no_to).await.unwrap();
    assert!(matches!(outcome, Outcome::Rejected(_)));
    sender.close().await.unwrap();
    session.end().await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn c2d_messages_over_64_kib_are_rejected_and_the_link_stays_open() {
    let hub = TestHub::start().await;
    hub.create_device("big").await;
    let (mut conn, mut session, _cbs) = service_session(&hub, "service").await;
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let outcome = sender
        .send(c2d_message("big", &"x".repeat(64 * 1024)))
        .await
        .unwrap();
    match outcome {
        Outcome::Rejected(r) => {
            let e = r.error.unwrap();
            assert_eq!(
                format!("{:?}", e.condition),
                "LinkError(MessageSizeExceeded)"
            );
            let why = e.description.unwrap();
            assert!(
                why.contains("greater than the max size 65536 bytes"),
                "{why}"
            );
        }
        other => panic!("expected rejected, got {other:?}"),
    }
    let outcome = sender.send(c2d_message("big", "small")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    let queued = hub
        .hub
        .state
        .c2d_deliverable("big", &HashSet::new())
        .unwrap();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body, b"small");
    sender.close().await.unwrap();
    session.end().await.unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_connection_without_sasl_authorizes_with_cbs() {
    // azure-iothub (JavaScript) opens with the plain AMQP header, no SASL layer.
    let hub = TestHub::start().await;
    hub.create_device("no-sasl").await;
    let port = hub.hub.info.ports.amqp.unwrap();
    let mut conn = Connection::builder()
        .container_id("no-sasl-client")
        .hostname("localhost")
        .open_with_stream(tls_to(port, &hub.hub.ca_pem).await)
        .await
        .unwrap();
    let mut session = Session::begin(&mut conn).await.unwrap();
    // Anonymous until a token is put: the C2D link is closed with unauthorized-access.
    let err = match Sender::attach(&mut session, "early", "/messages/devicebound").await {
        Ok(mut s) => format!(
            "{:?}",
            s.send(c2d_message("no-sasl", "x")).await.unwrap_err()
        ),
        Err(e) => format!("{e:?}"),
    };
    assert!(err.contains("UnauthorizedAccess"), "{err}");

    let mut cbs = Cbs::attach(&mut session).await;
    let (status, desc) = cbs
        .put(
            "localhost/messages/devicebound",
            &service_token(&hub, "service", 600),
        )
        .await;
    assert_eq!(status, 200, "{desc}");
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let outcome = sender.send(c2d_message("no-sasl", "hi")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    let queued = hub
        .hub
        .state
        .c2d_deliverable("no-sasl", &HashSet::new())
        .unwrap();
    assert_eq!(queued.len(), 1);
}

#[tokio::test]
async fn sasl_plain_with_a_policy_token() {
    let hub = TestHub::start().await;
    hub.create_device("dev-p").await;
    let mut conn = connect_with(
        &hub,
        SaslProfile::Plain {
            username: "iothubowner@sas.root.localhost".into(),
            password: service_token(&hub, "iothubowner", 600),
        },
    )
    .await
    .unwrap();
    let mut session = Session::begin(&mut conn).await.unwrap();
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let outcome = sender.send(c2d_message("dev-p", "hi")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");

    // A bad token, or a user name for another policy, fails SASL.
    let mut bad = service_token(&hub, "iothubowner", 600);
    bad = bad.replace("sig=", "sig=AA");
    for (user, pass) in [
        ("iothubowner@sas.root.localhost", bad),
        (
            "service@sas.root.localhost",
            service_token(&hub, "iothubowner", 600),
        ),
    ] {
        let r = connect_with(
            &hub,
            SaslProfile::Plain {
                username: user.into(),
                password: pass,
            },
        )
        .await;
        assert!(r.is_err(), "{user} must be refused");
    }
}

#[tokio::test]
async fn cbs_reply_waits_for_a_late_reply_link() {
    // uamqp can send its put-token before the hub has seen its $cbs receiver.
    let hub = TestHub::start().await;
    let (_conn, mut session) = anonymous(&hub).await;
    let mut tx = Sender::attach(&mut session, "cbs-tx", "$cbs")
        .await
        .unwrap();
    let put = Message::builder()
        .properties(
            Properties::builder()
                .message_id(MessageId::Ulong(7))
                .build(),
        )
        .application_properties(
            ApplicationProperties::builder()
                .insert("operation", "put-token")
                .insert("type", "servicebus.windows.net:sastoken")
                .insert("name", "https://localhost")
                .build(),
        )
        .value(service_token(&hub, "service", 600))
        .build();
    let outcome = tx.send(put).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)), "{outcome:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut rx = Receiver::attach(&mut session, "cbs-rx", "$cbs")
        .await
        .unwrap();
    let reply = tokio::time::timeout(T, rx.recv::<Body<Value>>())
        .await
        .expect("the reply arrives on the late link")
        .unwrap();
    rx.accept(&reply).await.unwrap();
    let m = reply.message();
    assert_eq!(
        m.properties.as_ref().unwrap().correlation_id,
        Some(MessageId::Ulong(7))
    );
    assert_eq!(
        m.application_properties
            .as_ref()
            .unwrap()
            .0
            .get("status-code"),
        Some(&SimpleValue::Int(200))
    );
}

#[tokio::test]
async fn bad_expired_and_underprivileged_tokens_are_refused() {
    let hub = TestHub::start().await;
    hub.create_device("dev-x").await;
    let (_conn, mut session) = anonymous(&hub).await;
    let mut cbs = Cbs::attach(&mut session).await;

    let p = hub.hub.state.policy("iothubowner").unwrap().clone();
    let expired =
        generate_token(hub.host(), &p.primary_key, Some("iothubowner"), now() - 10).unwrap();
    let (status, desc) = cbs.put("https://localhost", &expired).await;
    assert_eq!(status, 401);
    assert!(desc.contains("expired"), "{desc}");
    let wrong_key = generate_token(
        hub.host(),
        &hub.hub.state.policy("service").unwrap().primary_key,
        Some("iothubowner"),
        now() + 60,
    )
    .unwrap();
    assert_eq!(cbs.put("https://localhost", &wrong_key).await.0, 401);
    assert_eq!(cbs.put("https://localhost", "garbage").await.0, 401);

    // Without any token the C2D link is closed with unauthorized-access.
    let err = match Sender::attach(&mut session, "c2d-none", "/messages/devicebound").await {
        Ok(mut s) => format!("{:?}", s.send(c2d_message("dev-x", "x")).await.unwrap_err()),
        Err(e) => format!("{e:?}"),
    };
    assert!(err.contains("UnauthorizedAccess"), "{err}");

    // A registryRead token is valid but does not grant ServiceConnect.
    let (status, _) = cbs
        .put(
            "https://localhost",
            &service_token(&hub, "registryRead", 600),
        )
        .await;
    assert_eq!(status, 200);
    let mut s = Sender::attach(&mut session, "c2d-read", "/messages/devicebound")
        .await
        .unwrap();
    let err = s.send(c2d_message("dev-x", "x")).await.unwrap_err();
    assert!(format!("{err:?}").contains("ServiceConnect"), "{err:?}");
    assert!(
        hub.hub
            .state
            .c2d_deliverable("dev-x", &HashSet::new())
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn token_expiry_closes_the_link_unless_renewed() {
    let hub = TestHub::start().await;
    hub.create_device("dev-e").await;
    let (_conn, mut session) = anonymous(&hub).await;
    let mut cbs = Cbs::attach(&mut session).await;
    let (status, _) = cbs
        .put("https://localhost", &service_token(&hub, "service", 2))
        .await;
    assert_eq!(status, 200);
    let mut renewed = Sender::attach(&mut session, "c2d-renewed", "/messages/devicebound")
        .await
        .unwrap();
    // Renew for the policy before the first expires.
    let (status, _) = cbs
        .put("https://localhost", &service_token(&hub, "service", 600))
        .await;
    assert_eq!(status, 200);
    assert_nothing_within(
        Duration::from_secs(3),
        "the link with a renewed token was closed",
        renewed.on_detach(),
    )
    .await;
    let outcome = renewed.send(c2d_message("dev-e", "still")).await.unwrap();
    assert!(matches!(outcome, Outcome::Accepted(_)));

    // A second connection whose only token lapses loses its link.
    let (_conn2, mut session2) = anonymous(&hub).await;
    let mut cbs2 = Cbs::attach(&mut session2).await;
    cbs2.put("https://localhost", &service_token(&hub, "service", 2))
        .await;
    let mut lapsing = Sender::attach(&mut session2, "c2d-lapsing", "/messages/devicebound")
        .await
        .unwrap();
    let err = tokio::time::timeout(T, lapsing.on_detach())
        .await
        .expect("the link closes when its token lapses");
    assert!(format!("{err:?}").contains("expired"), "{err:?}");
}

#[tokio::test]
async fn positive_ack_produces_feedback_after_completion() {
    let hub = TestHub::start().await;
    hub.create_device("dev-f").await;
    let (_conn, mut session, _cbs) = service_session(&hub, "service").await;
    let mut sender = Sender::attach(&mut session, "c2d", "/messages/devicebound")
        .await
        .unwrap();
    let mut msg = c2d_message("dev-f", "x");
    msg.application_properties
        .as_mut()
        .unwrap()
        .0
        .insert("iothub-ack".into(), SimpleValue::String("positive".into()));
    sender.send(msg).await.unwrap();
    // A message without ack produces nothing.
    let mut quiet = c2d_message("dev-f", "y");
    quiet.properties.as_mut().unwrap().message_id = Some(MessageId::String("quiet".into()));
    quiet
        .application_properties
        .as_mut()
        .unwrap()
        .0
        .insert("iothub-ack".into(), SimpleValue::String("none".into()));
    sender.send(quiet).await.unwrap();

    let mut feedback =
        Receiver::attach(&mut session, "feedback", "/messages/serviceBound/feedback")
            .await
            .unwrap();
    let state = &hub.hub.state;
    for d in state.c2d_deliverable("dev-f", &HashSet::new()).unwrap() {
        assert!(state.c2d_complete(d.seq).unwrap());
    }
    let delivery = tokio::time::timeout(T, feedback.recv::<Body<Value>>())
        .await
        .expect("feedback arrives")
        .unwrap();
    feedback.accept(&delivery).await.unwrap();
    let m = delivery.message();
    let props = m.properties.as_ref().unwrap();
    assert_eq!(
        props.content_type.as_ref().unwrap().as_str(),
        "application/vnd.microsoft.iothub.feedback.json"
    );
    let body = match &m.body {
        Body::Data(b) => b.iter().flat_map(|d| d.0.to_vec()).collect::<Vec<u8>>(),
        other => panic!("{other:?}"),
    };
    let records: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["originalMessageId"], "mid-1");
    assert_eq!(records[0]["statusCode"], "Success");
    assert_eq!(records[0]["deviceId"], "dev-f");
    assert!(
        !records[0]["deviceGenerationId"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    // Accepted feedback is gone.
    common::feedback_settled(state).await;
}

async fn ingest(hub: &TestHub, device: &str, bag: &str, body: &str) {
    let auth = AuthMethod {
        scope: "device",
        kind: "sas",
        issuer: "iothub",
        generation_id: "gen-1".into(),
        credential: Default::default(),
    };
    hub.hub
        .state
        .ingest_telemetry(
            &(device.to_string(), None),
            &auth,
            &PropertyBag::parse(bag).unwrap(),
            body.as_bytes(),
        )
        .unwrap()
        .await
        .unwrap();
}

/// A session authorized as azure-eventhub does: CBS with an Event Hubs-signed token.
async fn event_hub_session(hub: &TestHub) -> (ConnectionHandle<()>, Sess, Cbs, String) {
    let cs = hubtui::iothub::connection_string::EventHubConnectionString::parse(
        hub.hub
            .info
            .event_hub_compatible_connection_string
            .as_ref()
            .unwrap(),
    )
    .unwrap();
    let (conn, mut session) = anonymous(hub).await;
    let mut cbs = Cbs::attach(&mut session).await;
    let audience = format!("sb://{}/{}", cs.host, cs.entity_path);
    let token = generate_event_hubs_token(&audience, &cs.key, &cs.policy_name, now() + 600);
    let (status, desc) = cbs.put(&audience, &token).await;
    assert_eq!(status, 200, "{desc}");
    (conn, session, cbs, cs.entity_path)
}

async fn management_read(
    session: &mut Sess,
    entity: &str,
    partition: Option<&str>,
) -> fe2o3_amqp::types::primitives::OrderedMap<Value, Value> {
    let mut tx = Sender::attach(session, format!("mgmt-tx-{partition:?}"), "$management")
        .await
        .unwrap();
    let mut rx = Receiver::attach(session, format!("mgmt-rx-{partition:?}"), "$management")
        .await
        .unwrap();
    let mut app = ApplicationProperties::builder()
        .insert("operation", "READ")
        .insert("name", entity);
    app = match partition {
        Some(p) => app
            .insert("type", "com.microsoft:partition")
            .insert("partition", p),
        None => app.insert("type", "com.microsoft:eventhub"),
    };
    let msg = Message::builder()
        .properties(
            Properties::builder()
                .message_id(String::from("req-1"))
                .build(),
        )
        .application_properties(app.build())
        .value(Value::Null)
        .build();
    tx.send(msg).await.unwrap();
    let reply = tokio::time::timeout(T, rx.recv::<Body<Value>>())
        .await
        .unwrap()
        .unwrap();
    rx.accept(&reply).await.unwrap();
    let m = reply.into_message();
    assert_eq!(
        m.application_properties
            .as_ref()
            .unwrap()
            .0
            .get("status-code"),
        Some(&SimpleValue::Int(200))
    );
    match m.body {
        Body::Value(AmqpValue(Value::Map(map))) => map,
        other => panic!("{other:?}"),
    }
}

fn key(s: &str) -> Value {
    Value::String(s.to_string())
}

#[tokio::test]
async fn management_reads_the_entity_and_its_partitions() {
    let hub = TestHub::start().await;
    let (_conn, mut session, _cbs, entity) = event_hub_session(&hub).await;
    ingest(&hub, "device-1", "a=1", "one").await;
    ingest(&hub, "device-1", "a=2", "two").await;
    let map = management_read(&mut session, &entity, None).await;
    assert_eq!(map.get(&key("name")), Some(&Value::String(entity.clone())));
    assert_eq!(map.get(&key("partition_count")), Some(&Value::Int(4)));
    match map.get(&key("partition_ids")) {
        Some(Value::Array(a)) => assert_eq!(a.0.len(), 4),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        map.get(&key("created_at")),
        Some(Value::Timestamp(_))
    ));

    // "device-1" lives in partition 1.
    let p1 = management_read(&mut session, &entity, Some("1")).await;
    assert_eq!(p1.get(&key("begin_sequence_number")), Some(&Value::Long(0)));
    assert_eq!(
        p1.get(&key("last_enqueued_sequence_number")),
        Some(&Value::Long(1))
    );
    assert_eq!(
        p1.get(&key("last_enqueued_offset")),
        Some(&Value::String("1".into()))
    );
    assert_eq!(
        p1.get(&key("is_partition_empty")),
        Some(&Value::Bool(false))
    );
    let p0 = management_read(&mut session, &entity, Some("0")).await;
    assert_eq!(p0.get(&key("is_partition_empty")), Some(&Value::Bool(true)));
}

async fn partition_receiver(
    session: &mut Sess,
    entity: &str,
    group: &str,
    partition: u32,
    filter: Option<&str>,
) -> Receiver {
    let address =
        format!("amqps://localhost/{entity}/ConsumerGroups/{group}/Partitions/{partition}");
    let mut source = Source::builder().address(address);
    if let Some(f) = filter {
        source = source.add_to_filter("apache.org:selector-filter:string", serde_amqp_described(f));
    }
    Receiver::builder()
        .name(format!("rx-{group}-{partition}-{filter:?}"))
        .source(source.build())
        .target("client")
        .attach(session)
        .await
        .unwrap()
}

fn serde_amqp_described(expr: &str) -> serde_amqp::described::Described<Value> {
    serde_amqp::described::Described {
        descriptor: serde_amqp::descriptor::Descriptor::Name(
            "apache.org:selector-filter:string".into(),
        ),
        value: Value::String(expr.to_string()),
    }
}

async fn next_body(rx: &mut Receiver) -> (String, Message<Body<Value>>) {
    let d = tokio::time::timeout(T, rx.recv::<Body<Value>>())
        .await
        .expect("an event arrives")
        .unwrap();
    rx.accept(&d).await.unwrap();
    let m = d.into_message();
    let body = match &m.body {
        Body::Data(b) => b.iter().flat_map(|d| d.0.to_vec()).collect::<Vec<u8>>(),
        other => panic!("{other:?}"),
    };
    (String::from_utf8(body).unwrap(), m)
}

async fn nothing_more(rx: &mut Receiver) {
    let r = tokio::time::timeout(Duration::from_millis(300), rx.recv::<Body<Value>>()).await;
    assert!(r.is_err(), "no further event expected");
}

fn annotation<'a>(m: &'a Message<Body<Value>>, name: &str) -> Option<&'a Value> {
    use fe2o3_amqp::types::messaging::annotations::OwnedKey;
    m.message_annotations
        .as_ref()?
        .0
        .get(&OwnedKey::Symbol(name.into()))
}

#[tokio::test]
async fn partition_receivers_honour_start_positions_and_carry_annotations() {
    let hub = TestHub::start().await;
    let (_conn, mut session, _cbs, entity) = event_hub_session(&hub).await;
    ingest(
        &hub,
        "device-1",
        "%24.mid=m0&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high%20temp",
        "e0",
    )
    .await;
    let between = common::wait::next_millisecond().timestamp_millis();
    common::wait::next_millisecond();
    ingest(&hub, "device-1", "", "e1").await;
    ingest(&hub, "device-1", "", "e2").await;

    // From the start, with every annotation and property.
    let mut from_start = partition_receiver(
        &mut session,
        &entity,
        "$Default",
        1,
        Some("amqp.annotation.x-opt-offset > '-1'"),
    )
    .await;
    let (body, m) = next_body(&mut from_start).await;
    assert_eq!(body, "e0");
    assert_eq!(
        annotation(&m, "x-opt-sequence-number"),
        Some(&Value::Long(0))
    );
    assert_eq!(
        annotation(&m, "x-opt-offset"),
        Some(&Value::String("0".into()))
    );
    assert!(matches!(
        annotation(&m, "x-opt-enqueued-time"),
        Some(Value::Timestamp(_))
    ));
    assert!(matches!(
        annotation(&m, "iothub-enqueuedtime"),
        Some(Value::Timestamp(_))
    ));
    assert_eq!(
        annotation(&m, "iothub-connection-device-id"),
        Some(&Value::String("device-1".into()))
    );
    assert_eq!(annotation(&m, "iothub-connection-module-id"), None);
    assert_eq!(
        annotation(&m, "iothub-message-source"),
        Some(&Value::String("Telemetry".into()))
    );
    match annotation(&m, "iothub-connection-auth-method") {
        Some(Value::String(s)) => assert!(s.contains("\"scope\":\"device\""), "{s}"),
        other => panic!("{other:?}"),
    }
    let props = m.properties.as_ref().unwrap();
    assert_eq!(props.message_id, Some(MessageId::String("m0".into())));
    assert_eq!(
        props.content_type.as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(props.content_encoding.as_ref().unwrap().as_str(), "utf-8");
    assert_eq!(
        m.application_properties.as_ref().unwrap().0.get("alert"),
        Some(&SimpleValue::String("high temp".into()))
    );
    assert_eq!(next_body(&mut from_start).await.0, "e1");
    assert_eq!(next_body(&mut from_start).await.0, "e2");
    nothing_more(&mut from_start).await;

    // From a sequence number (exclusive), from an enqueued time, from the end.
    let mut from_seq = partition_receiver(
        &mut session,
        &entity,
        "$Default",
        1,
        Some("amqp.annotation.x-opt-sequence-number > '0'"),
    )
    .await;
    assert_eq!(next_body(&mut from_seq).await.0, "e1");
    let mut from_time = partition_receiver(
        &mut session,
        &entity,
        "other-group",
        1,
        Some(&format!(
            "amqp.annotation.x-opt-enqueued-time > '{between}'"
        )),
    )
    .await;
    assert_eq!(next_body(&mut from_time).await.0, "e1");
    let mut from_end = partition_receiver(
        &mut session,
        &entity,
        "$Default",
        1,
        Some("amqp.annotation.x-opt-offset > '@latest'"),
    )
    .await;
    nothing_more(&mut from_end).await;

    // Live events reach every receiver, whatever its consumer group.
    ingest(&hub, "device-1", "", "e3").await;
    assert_eq!(next_body(&mut from_end).await.0, "e3");
    assert_eq!(next_body(&mut from_start).await.0, "e3");
    assert_eq!(next_body(&mut from_time).await.0, "e2");
    assert_eq!(next_body(&mut from_time).await.0, "e3");

    // Another partition sees nothing of device-1.
    let mut p0 = partition_receiver(&mut session, &entity, "$Default", 0, None).await;
    nothing_more(&mut p0).await;
}

fn delivery_annotation<'a>(m: &'a Message<Body<Value>>, name: &str) -> Option<&'a Value> {
    use fe2o3_amqp::types::messaging::annotations::OwnedKey;
    m.delivery_annotations
        .as_ref()?
        .0
        .get(&OwnedKey::Symbol(name.into()))
}

#[tokio::test]
async fn receivers_asking_for_runtime_metrics_see_the_partition_end() {
    let hub = TestHub::start().await;
    let (_conn, mut session, _cbs, entity) = event_hub_session(&hub).await;
    for body in ["e0", "e1", "e2"] {
        ingest(&hub, "device-1", "", body).await;
    }
    let address = format!("{entity}/ConsumerGroups/$Default/Partitions/1");
    let mut rx = Receiver::builder()
        .name("metric")
        .source(Source::builder().address(address.as_str()).build())
        .target("client")
        .add_desired_capabilities("com.microsoft:enable-receiver-runtime-metric")
        .attach(&mut session)
        .await
        .unwrap();
    let (body, m) = next_body(&mut rx).await;
    assert_eq!(body, "e0");
    assert_eq!(
        delivery_annotation(&m, "last_enqueued_sequence_number"),
        Some(&Value::Long(2))
    );
    assert_eq!(
        delivery_annotation(&m, "last_enqueued_offset"),
        Some(&Value::String("2".into()))
    );
    assert!(matches!(
        delivery_annotation(&m, "last_enqueued_time_utc"),
        Some(Value::Timestamp(_))
    ));
    assert!(matches!(
        delivery_annotation(&m, "runtime_info_retrieval_time_utc"),
        Some(Value::Timestamp(_))
    ));
    next_body(&mut rx).await;
    next_body(&mut rx).await;
    ingest(&hub, "device-1", "", "e3").await;
    let (body, m) = next_body(&mut rx).await;
    assert_eq!(body, "e3");
    assert_eq!(
        delivery_annotation(&m, "last_enqueued_sequence_number"),
        Some(&Value::Long(3))
    );

    // Without the capability, no delivery annotations.
    let mut plain = partition_receiver(&mut session, &entity, "$Default", 1, None).await;
    let (_, m) = next_body(&mut plain).await;
    assert!(m.delivery_annotations.is_none(), "{m:?}");
}

async fn epoch_receiver(
    session: &mut Sess,
    entity: &str,
    name: &str,
    epoch: Option<i64>,
) -> Receiver {
    let mut b = Receiver::builder()
        .name(name)
        .source(
            Source::builder()
                .address(format!("{entity}/ConsumerGroups/$Default/Partitions/0"))
                .build(),
        )
        .target("client");
    if let Some(e) = epoch {
        let mut props = fe2o3_amqp::types::definitions::Fields::new();
        props.insert("com.microsoft:epoch".into(), Value::Long(e));
        b = b.properties(props);
    }
    b.attach(session).await.unwrap()
}

/// The error that ends a receiver (it must end within a few seconds).
async fn ended(rx: &mut Receiver) -> String {
    let r = tokio::time::timeout(T, rx.recv::<Body<Value>>())
        .await
        .expect("the link ends");
    format!("{:?}", r.expect_err("no message, an error"))
}

#[tokio::test]
async fn epoch_receivers_take_partitions_as_event_hubs_does() {
    let hub = TestHub::start().await;
    let (_conn, mut session, _cbs, entity) = event_hub_session(&hub).await;
    let mut plain = epoch_receiver(&mut session, &entity, "plain", None).await;
    let mut owner = epoch_receiver(&mut session, &entity, "owner", Some(1)).await;
    let why = ended(&mut plain).await;
    assert!(why.contains("Stolen"), "{why}");
    assert!(
        why.contains("New receiver 'owner' with higher epoch of '1'"),
        "{why}"
    );

    let mut late = epoch_receiver(&mut session, &entity, "late", None).await;
    let why = ended(&mut late).await;
    assert!(why.contains("non-epoch receiver is not allowed"), "{why}");
    let mut lower = epoch_receiver(&mut session, &entity, "lower", Some(0)).await;
    let why = ended(&mut lower).await;
    assert!(why.contains("higher epoch of '1'"), "{why}");

    // The owner still reads; once it leaves, a plain receiver may attach and read.
    let partitions = hub.hub.state.settings.partitions;
    let device = (0..)
        .map(|i| format!("dev-{i}"))
        .find(|d| hubtui::hub::telemetry::partition_of(d, partitions) == 0)
        .unwrap();
    ingest(&hub, &device, "", "owned").await;
    assert_eq!(next_body(&mut owner).await.0, "owned");
    owner.close().await.unwrap();
    let mut after = epoch_receiver(&mut session, &entity, "after", None).await;
    assert_eq!(next_body(&mut after).await.0, "owned");
}

#[tokio::test]
async fn hub_events_address_is_redirected_to_the_event_hubs_entity() {
    let hub = TestHub::start().await;
    let (_conn, mut session, _cbs) = service_session(&hub, "iothubowner").await;
    let port = hub.hub.info.ports.amqp.unwrap();
    let r = Receiver::attach(
        &mut session,
        "redirected",
        "messages/events/ConsumerGroups/$Default/Partitions/0",
    )
    .await;
    let err = match r {
        Ok(mut rx) => format!("{:?}", rx.recv::<Body<Value>>().await.unwrap_err()),
        Err(e) => format!("{e:?}"),
    };
    assert!(err.contains("LinkError(Redirect)"), "{err}");
    assert!(
        err.contains(&format!(
            "amqps://localhost:{port}/iothub-ehub-localhost/ConsumerGroups/$Default/Partitions/0"
        )),
        "{err}"
    );
    assert!(err.contains("hostname"), "{err}");
}

#[tokio::test]
async fn the_event_hubs_entity_refuses_senders_as_azure_does() {
    let hub = TestHub::start().await;
    let (_conn, mut session, _cbs, entity) = event_hub_session(&hub).await;
    for target in [entity.clone(), format!("{entity}/Partitions/0")] {
        let err = match Sender::attach(&mut session, format!("tx-{target}"), target.as_str()).await
        {
            // Rejected if it arrives before the detach, else the link's error.
            Ok(mut tx) => match tx
                .send(Message::builder().value("x".to_string()).build())
                .await
            {
                Ok(outcome) => format!("{outcome:?}"),
                Err(e) => format!("{e:?}"),
            },
            Err(e) => format!("{e:?}"),
        };
        assert!(err.contains("UnauthorizedAccess"), "{target}: {err}");
        assert!(
            err.contains("'Send' claim(s) are required"),
            "{target}: {err}"
        );
    }
}

#[tokio::test]
async fn telemetry_is_retained_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = hubtui::hub::HubOptions::ephemeral(dir.path().to_path_buf());
    opts.settings.partitions = 4;
    let first = hubtui::hub::start(opts.clone()).await.unwrap();
    let auth = AuthMethod {
        scope: "device",
        kind: "sas",
        issuer: "iothub",
        generation_id: "g".into(),
        credential: Default::default(),
    };
    first
        .state
        .ingest_telemetry(
            &("device-1".into(), None),
            &auth,
            &PropertyBag::default(),
            b"before restart",
        )
        .unwrap()
        .await
        .unwrap();
    first.shutdown().await;

    let hub = hubtui::hub::start(opts).await.unwrap();
    let test_hub = TestHub {
        http: common::https_client(&hub.ca_pem),
        hub,
        dir,
    };
    let (_conn, mut session, _cbs, entity) = event_hub_session(&test_hub).await;
    let mut rx = partition_receiver(
        &mut session,
        &entity,
        "$Default",
        1,
        Some("amqp.annotation.x-opt-offset > '-1'"),
    )
    .await;
    assert_eq!(next_body(&mut rx).await.0, "before restart");
}
