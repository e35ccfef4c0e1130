//! Cloud-to-device messaging over AMQP: the C2D sender (every property, ack mode and
//! expiry) and the service-bound receivers for feedback and file upload notifications.

use std::time::Duration;

use chrono::Utc;
use fe2o3_amqp::link::Sender;
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{
    ApplicationProperties, Data, Message, MessageId, Outcome, Properties,
};
use fe2o3_amqp::types::primitives::{Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Value};
use fe2o3_amqp::{Receiver, link::receiver::CreditMode};
use tokio::sync::{mpsc, watch};

use super::decode::body_bytes;
use super::session::{Credentials, ServiceSession};
use super::transport::{AmqpOptions, Endpoint};
use super::{MessagingError, ReaderTask, StreamUpdate};
use crate::device::Backoff;
use crate::events::{AckMode, C2dMessage, LinkState};
use iothub::amqp_model::{
    self, FeedbackRecord, FileNotification, IOTHUB_WEBSOCKET_PATH, c2d_to, condition, node,
    parse_feedback_batch,
};
use iothub::connection_string::ServiceConnectionString;
use iothub::property_bag::IOTHUB_ACK;

fn credentials(cs: &ServiceConnectionString) -> Credentials {
    Credentials::Hub {
        host: cs.host_name.clone(),
        policy: cs.policy_name.clone(),
        key: cs.key.clone(),
    }
}

async fn open_hub(
    cs: &ServiceConnectionString,
    opts: &AmqpOptions,
) -> Result<ServiceSession, MessagingError> {
    let endpoint = Endpoint {
        host: &cs.host_name,
        port: opts.hub_port(),
        websocket_path: IOTHUB_WEBSOCKET_PATH,
    };
    ServiceSession::open(&endpoint, opts, credentials(cs)).await
}

fn wire_ack(ack: AckMode) -> amqp_model::AckMode {
    match ack {
        AckMode::None => amqp_model::AckMode::None,
        AckMode::Positive => amqp_model::AckMode::Positive,
        AckMode::Negative => amqp_model::AckMode::Negative,
        AckMode::Full => amqp_model::AckMode::Full,
    }
}

/// The AMQP message for a C2D send. An empty message id gets a fresh UUID.
pub(crate) fn c2d_amqp_message(msg: &C2dMessage) -> Message<Body<Value>> {
    let message_id = if msg.message_id.is_empty() {
        uuid::Uuid::new_v4().to_string()
    } else {
        msg.message_id.clone()
    };
    let properties = Properties {
        message_id: Some(MessageId::String(message_id)),
        to: Some(c2d_to(&msg.device_id)),
        correlation_id: msg.correlation_id.clone().map(MessageId::String),
        content_type: msg.content_type.as_deref().map(Symbol::from),
        content_encoding: msg.content_encoding.as_deref().map(Symbol::from),
        absolute_expiry_time: msg.expiry.map(|d| {
            Timestamp::from_milliseconds(
                Utc::now().timestamp_millis()
                    + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2),
            )
        }),
        ..Default::default()
    };
    let mut app: OrderedMap<String, SimpleValue> = OrderedMap::new();
    app.insert(
        IOTHUB_ACK.to_string(),
        SimpleValue::String(wire_ack(msg.ack).as_str().to_string()),
    );
    for (k, v) in &msg.properties {
        app.insert(k.clone(), SimpleValue::String(v.clone()));
    }
    Message {
        header: None,
        delivery_annotations: None,
        message_annotations: None,
        properties: Some(properties),
        application_properties: Some(ApplicationProperties(app)),
        body: Body::Data(vec![Data(Binary::from(msg.payload.clone()))].into()),
        footer: None,
    }
}

/// Sends C2D messages through one AMQP connection, opened on first use and reopened
/// when it drops; its token is renewed before it expires.
pub struct C2dSender {
    connection: ServiceConnectionString,
    opts: AmqpOptions,
    link: Option<(ServiceSession, Sender)>,
}

impl C2dSender {
    /// A sender that connects on its first `send`.
    pub fn new(connection: &ServiceConnectionString, opts: AmqpOptions) -> C2dSender {
        C2dSender {
            connection: connection.clone(),
            opts,
            link: None,
        }
    }

    /// Connects and attaches now, so bad credentials show at once.
    pub async fn connect(
        connection: &ServiceConnectionString,
        opts: AmqpOptions,
    ) -> Result<C2dSender, MessagingError> {
        let mut s = C2dSender::new(connection, opts);
        s.ensure_link().await?;
        Ok(s)
    }

    async fn ensure_link(&mut self) -> Result<&mut (ServiceSession, Sender), MessagingError> {
        if let Some((session, _)) = &mut self.link
            && let Err(e) = session.renew_if_due().await
        {
            self.drop_link().await;
            if e.is_fatal() {
                return Err(e);
            }
        }
        if self.link.is_none() {
            let mut session = open_hub(&self.connection, &self.opts).await?;
            let sender = Sender::attach(
                &mut session.session,
                format!("hubtui-c2d-{}", uuid::Uuid::new_v4().simple()),
                node::DEVICEBOUND,
            )
            .await;
            match sender {
                Ok(s) => self.link = Some((session, s)),
                Err(e) => {
                    session.close().await;
                    return Err(MessagingError::from_sender_attach("the C2D endpoint", e));
                }
            }
        }
        Ok(self.link.as_mut().expect("set above"))
    }

    async fn drop_link(&mut self) {
        if let Some((session, sender)) = self.link.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), async move {
                let _ = sender.close().await;
                session.close().await;
            })
            .await;
        }
    }

    /// Sends one message; Ok once the hub accepted (queued) it. If the connection had
    /// dropped, it is reopened and the send tried once more.
    pub async fn send(&mut self, msg: &C2dMessage) -> Result<(), MessagingError> {
        let message = c2d_amqp_message(msg);
        let mut retried = false;
        loop {
            let (_, sender) = self.ensure_link().await?;
            match sender.send(message.clone()).await {
                Ok(Outcome::Accepted(_)) => return Ok(()),
                Ok(Outcome::Rejected(r)) => {
                    let e = r
                        .error
                        .map(|e| MessagingError::from_remote("the C2D send", &e));
                    return Err(match e {
                        Some(MessagingError::NotFound(_)) => MessagingError::DeviceNotFound {
                            device_id: msg.device_id.clone(),
                        },
                        Some(e) => e,
                        None => MessagingError::Refused {
                            condition: "rejected".into(),
                            description: format!(
                                "the hub rejected the message for '{}'",
                                msg.device_id
                            ),
                        },
                    });
                }
                Ok(other) => {
                    return Err(MessagingError::Refused {
                        condition: format!("{other:?}"),
                        description: format!(
                            "the hub did not accept the message for '{}'",
                            msg.device_id
                        ),
                    });
                }
                Err(e) => {
                    let err = MessagingError::from_send("the C2D link", &e);
                    self.drop_link().await;
                    if retried || err.is_fatal() {
                        return Err(err);
                    }
                    retried = true;
                }
            }
        }
    }

    pub async fn close(mut self) {
        self.drop_link().await;
    }
}

/// Options of the service-bound receivers: connection plus backoff.
fn backoff() -> Backoff {
    Backoff::new(Backoff::DEFAULT_INITIAL, Backoff::DEFAULT_MAX)
}

/// Receives C2D feedback records until closed; each batch is completed once its
/// records are on the channel.
pub fn receive_feedback(
    connection: &ServiceConnectionString,
    opts: AmqpOptions,
) -> (ReaderTask, mpsc::Receiver<StreamUpdate<FeedbackRecord>>) {
    service_bound(connection, opts, node::FEEDBACK, |body| {
        parse_feedback_batch(body).map_err(|e| e.to_string())
    })
}

/// Receives file upload notifications until closed.
pub fn receive_file_notifications(
    connection: &ServiceConnectionString,
    opts: AmqpOptions,
) -> (ReaderTask, mpsc::Receiver<StreamUpdate<FileNotification>>) {
    service_bound(connection, opts, node::FILE_NOTIFICATIONS, |body| {
        FileNotification::parse(body)
            .map(|n| vec![n])
            .map_err(|e| e.to_string())
    })
}

type Decoder<T> = fn(&[u8]) -> Result<Vec<T>, String>;

fn service_bound<T: Send + 'static>(
    connection: &ServiceConnectionString,
    opts: AmqpOptions,
    address: &'static str,
    decode: Decoder<T>,
) -> (ReaderTask, mpsc::Receiver<StreamUpdate<T>>) {
    let (tx, rx) = mpsc::channel(256);
    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let cs = connection.clone();
    let task = tokio::spawn(async move {
        let mut backoff = backoff();
        let state = |state, detail| StreamUpdate::State { state, detail };
        let _ = tx.send(state(LinkState::Connecting, None)).await;
        loop {
            let r = tokio::select! {
                r = receive_once(&cs, &opts, address, decode, &tx, &mut backoff) => r,
                _ = shutdown_rx.changed() => break,
            };
            match r {
                Ok(()) => break,
                Err(e) if e.is_fatal() => {
                    let _ = tx.send(state(LinkState::Failed, Some(e.to_string()))).await;
                    return;
                }
                Err(e) => {
                    let _ = tx
                        .send(state(LinkState::Reconnecting, Some(e.to_string())))
                        .await;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff.next_delay()) => {}
                        _ = shutdown_rx.changed() => break,
                    }
                }
            }
            if tx.is_closed() {
                break;
            }
        }
        let _ = tx.send(state(LinkState::Idle, None)).await;
    });
    (ReaderTask::new(shutdown, task), rx)
}

/// One connection's worth of receiving; Ok(()) when the consumer went away.
async fn receive_once<T>(
    cs: &ServiceConnectionString,
    opts: &AmqpOptions,
    address: &'static str,
    decode: Decoder<T>,
    out: &mpsc::Sender<StreamUpdate<T>>,
    backoff: &mut Backoff,
) -> Result<(), MessagingError> {
    let mut session = open_hub(cs, opts).await?;
    let attached = Receiver::builder()
        .name(format!("hubtui-{}", uuid::Uuid::new_v4().simple()))
        .source(address)
        .target("hubtui")
        .credit_mode(CreditMode::Auto(10))
        .auto_accept(false)
        .attach(&mut session.session)
        .await;
    let mut receiver = match attached {
        Ok(r) => r,
        Err(e) => {
            let _ = tokio::time::timeout(Duration::from_secs(2), session.close()).await;
            return Err(MessagingError::from_receiver_attach(address, e));
        }
    };
    let _ = out
        .send(StreamUpdate::State {
            state: LinkState::Connected,
            detail: None,
        })
        .await;
    backoff.reset();
    let result = loop {
        let renew = tokio::time::sleep(session.renew_in());
        tokio::select! {
            d = receiver.recv::<Body<Value>>() => match d {
                Ok(delivery) => {
                    let body = body_bytes(&delivery.message().body);
                    match decode(&body) {
                        Ok(items) => {
                            for item in items {
                                if out.send(StreamUpdate::Item(item)).await.is_err() {
                                    // Not completed: the hub offers it again later.
                                    let _ = receiver.release(&delivery).await;
                                    return Ok(());
                                }
                            }
                            let _ = receiver.accept(&delivery).await;
                        }
                        Err(why) => {
                            tracing::warn!(%why, address, "unreadable service-bound message rejected");
                            let _ = receiver
                                .reject(
                                    &delivery,
                                    fe2o3_amqp::types::definitions::Error::new(
                                        fe2o3_amqp::types::definitions::ErrorCondition::Custom(
                                            Symbol::from(condition::ARGUMENT),
                                        ),
                                        Some(why),
                                        None,
                                    ),
                                )
                                .await;
                        }
                    }
                }
                Err(e) => break Err(MessagingError::from_recv(address, &e)),
            },
            _ = renew => {
                if let Err(e) = session.renew_if_due().await {
                    break Err(e);
                }
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = receiver.close().await;
        session.close().await;
    })
    .await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c2d_messages_carry_every_property() {
        let msg = C2dMessage {
            device_id: "dev 1".into(),
            payload: b"hi".to_vec(),
            message_id: "m-1".into(),
            correlation_id: Some("c-1".into()),
            content_type: Some("application/json".into()),
            content_encoding: Some("utf-8".into()),
            expiry: Some(Duration::from_secs(60)),
            ack: AckMode::Full,
            properties: vec![("color".into(), "blue".into())],
        };
        let m = c2d_amqp_message(&msg);
        let p = m.properties.as_ref().unwrap();
        assert_eq!(
            p.to.as_deref(),
            Some("/devices/dev%201/messages/devicebound")
        );
        assert_eq!(p.message_id, Some(MessageId::String("m-1".into())));
        assert_eq!(p.correlation_id, Some(MessageId::String("c-1".into())));
        assert_eq!(
            p.content_type.as_ref().unwrap().as_str(),
            "application/json"
        );
        let exp = p.absolute_expiry_time.as_ref().unwrap().milliseconds();
        assert!((exp - Utc::now().timestamp_millis() - 60_000).abs() < 5_000);
        let app = &m.application_properties.as_ref().unwrap().0;
        assert_eq!(
            app.get(IOTHUB_ACK),
            Some(&SimpleValue::String("full".into()))
        );
        assert_eq!(app.get("color"), Some(&SimpleValue::String("blue".into())));
        assert_eq!(body_bytes(&m.body), b"hi");

        let plain = c2d_amqp_message(&C2dMessage {
            device_id: "d".into(),
            ..Default::default()
        });
        let p = plain.properties.unwrap();
        assert!(matches!(p.message_id, Some(MessageId::String(ref s)) if s.len() == 36));
        assert_eq!(p.absolute_expiry_time, None);
    }
}
