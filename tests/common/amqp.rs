//! fe2o3-amqp as a client of the hub's AMQP endpoint: the CBS handshake the Azure
//! SDKs perform.

use std::time::Duration;

use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{ApplicationProperties, Message, MessageId, Properties};
use fe2o3_amqp::types::primitives::{SimpleValue, Value};
use fe2o3_amqp::{Receiver, Sender};

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
