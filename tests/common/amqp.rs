//! fe2o3-amqp as a client of the hub's AMQP endpoint: the CBS handshake the Azure
//! SDKs perform.

use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::sasl_profile::SaslProfile;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{ApplicationProperties, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use fe2o3_amqp::{Connection, Receiver, Sender, Session};

use super::{TestHub, now, tls_to};
use hubtui::iothub::sas::generate_token;

pub type Sess = SessionHandle<()>;

const T: Duration = Duration::from_secs(10);

pub struct Cbs {
    tx: Sender,
    rx: Receiver,
    n: u64,
}

impl Cbs {
    pub async fn attach(session: &mut Sess) -> Cbs {
        let tx = Sender::attach(session, "cbs-tx", "$cbs").await.unwrap();
        let rx = Receiver::attach(session, "cbs-rx", "$cbs").await.unwrap();
        Cbs { tx, rx, n: 0 }
    }

    /// Puts a token; returns (status-code, status-description).
    pub async fn put(&mut self, audience: &str, token: &str) -> (i32, String) {
        self.n += 1;
        let msg = Message::builder()
            .properties(
                Properties::builder()
                    .message_id(MessageId::Ulong(self.n))
                    .build(),
            )
            .application_properties(
                ApplicationProperties::builder()
                    .insert("operation", "put-token")
                    .insert("type", "servicebus.windows.net:sastoken")
                    .insert("name", audience)
                    .build(),
            )
            .value(token.to_string())
            .build();
        self.tx.send(msg).await.unwrap();
        let reply = tokio::time::timeout(T, self.rx.recv::<Body<Value>>())
            .await
            .unwrap()
            .unwrap();
        self.rx.accept(&reply).await.unwrap();
        let m = reply.message();
        assert_eq!(
            m.properties.as_ref().unwrap().correlation_id,
            Some(MessageId::Ulong(self.n))
        );
        let app = &m.application_properties.as_ref().unwrap().0;
        let status = match app.get("status-code") {
            Some(SimpleValue::Int(n)) => *n,
            other => panic!("status-code {other:?}"),
        };
        let desc = match app.get("status-description") {
            Some(SimpleValue::String(s)) => s.clone(),
            _ => String::new(),
        };
        (status, desc)
    }
}

pub async fn connect_with(
    hub: &TestHub,
    sasl: SaslProfile,
) -> Result<ConnectionHandle<()>, fe2o3_amqp::connection::OpenError> {
    let port = hub.hub.info.ports.amqp.expect("amqp served");
    let tls = tls_to(port, &hub.hub.ca_pem).await;
    Connection::builder()
        .container_id("test-client")
        .hostname("localhost")
        .sasl_profile(sasl)
        .open_with_stream(tls)
        .await
}

pub async fn anonymous(hub: &TestHub) -> (ConnectionHandle<()>, Sess) {
    let mut conn = connect_with(hub, SaslProfile::Anonymous).await.unwrap();
    let session = Session::begin(&mut conn).await.unwrap();
    (conn, session)
}

pub fn service_token(hub: &TestHub, policy: &str, ttl: u64) -> String {
    let p = hub.hub.state.policy(policy).unwrap();
    generate_token(hub.host(), &p.primary_key, Some(policy), now() + ttl).unwrap()
}

/// A session authorized with a put-token for `policy`.
pub async fn service_session(hub: &TestHub, policy: &str) -> (ConnectionHandle<()>, Sess, Cbs) {
    let (conn, mut session) = anonymous(hub).await;
    let mut cbs = Cbs::attach(&mut session).await;
    let (status, desc) = cbs
        .put("https://localhost", &service_token(hub, policy, 3600))
        .await;
    assert_eq!(status, 200, "{desc}");
    (conn, session, cbs)
}

/// The next feedback batch on a receiver attached to `/messages/serviceBound/feedback`,
/// accepted, as its JSON records.
pub async fn next_feedback(feedback: &mut Receiver) -> Vec<serde_json::Value> {
    let delivery = tokio::time::timeout(T, feedback.recv::<Body<Value>>())
        .await
        .expect("feedback arrives")
        .unwrap();
    feedback.accept(&delivery).await.unwrap();
    let body = match &delivery.message().body {
        Body::Data(b) => b.iter().flat_map(|d| d.0.to_vec()).collect::<Vec<u8>>(),
        other => panic!("feedback body is not data: {other:?}"),
    };
    match serde_json::from_slice(&body).unwrap() {
        serde_json::Value::Array(records) => records,
        other => panic!("feedback is not an array: {other}"),
    }
}
