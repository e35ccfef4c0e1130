//! A device on MQTT over TLS (rumqttc) for tests that drive the hub from the device side.

use std::time::Duration;

use rumqttc::mqttbytes::v4::Packet;
use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Publish, QoS};
use tokio::sync::mpsc;

use hubtui::iothub::topic::Subscription;

/// How long a device waits for what it expects from the hub.
pub const WAIT: Duration = Duration::from_secs(5);

/// A device: the client, and its event loop polled in its own task (rumqttc
/// deadlocks if the polling task also publishes). The loop stops at the first
/// error, so a closed connection shows up as `Err` and is not retried.
pub struct Device {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<Result<Event, String>>,
}

impl Device {
    pub async fn connect(opts: MqttOptions) -> Device {
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(a))) => {
                assert_eq!(a.code, ConnectReturnCode::Success)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(ev) => {
                        if tx.send(Ok(ev)).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                        return;
                    }
                }
            }
        });
        Device { client, events }
    }

    /// The next incoming packet matching `pick`, skipping others; panics on close or timeout.
    pub async fn next<T>(&mut self, mut pick: impl FnMut(&Packet) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Ok(Event::Incoming(p)))) => {
                    if let Some(v) = pick(&p) {
                        return v;
                    }
                }
                Ok(Some(Ok(Event::Outgoing(_)))) => {}
                Ok(Some(Err(e))) => panic!("connection closed: {e}"),
                Ok(None) => panic!("event loop ended"),
                Err(_) => panic!("timed out waiting for a packet"),
            }
        }
    }

    /// Publishes what the hub must refuse, and waits for it to close the connection.
    pub async fn publish_refused(&mut self, topic: impl Into<String>, qos: QoS, payload: Vec<u8>) {
        self.client
            .publish(topic, qos, false, payload)
            .await
            .unwrap();
        self.closed().await;
    }

    pub async fn publish_msg(&mut self) -> Publish {
        self.next(|p| match p {
            Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    /// Is a PUBLISH received within `within`? Ignores other packets.
    pub async fn publish_within(&mut self, within: Duration) -> Option<Publish> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Ok(Event::Incoming(Packet::Publish(p))))) => return Some(p),
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => panic!("connection closed: {e}"),
                Ok(None) => panic!("event loop ended"),
                Err(_) => return None,
            }
        }
    }

    pub async fn subscribe(
        &mut self,
        sub: Subscription,
        qos: QoS,
    ) -> Vec<rumqttc::SubscribeReasonCode> {
        self.client.subscribe(sub.to_filter(), qos).await.unwrap();
        self.next(|p| match p {
            Packet::SubAck(a) => Some(a.return_codes.clone()),
            _ => None,
        })
        .await
    }

    /// Publishes at QoS 1 and waits for the PUBACK.
    pub async fn publish_acked(&mut self, topic: String, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .unwrap();
        self.next(|p| matches!(p, Packet::PubAck(_)).then_some(()))
            .await;
    }

    /// Waits for the hub to close the connection.
    pub async fn closed(&mut self) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(e))) => return e,
                Ok(None) => return "ended".into(),
                Err(_) => panic!("the hub did not close the connection"),
            }
        }
    }

    pub async fn disconnect(mut self) {
        self.client.disconnect().await.unwrap();
        // The loop ends with an error once the DISCONNECT is out.
        let _ = tokio::time::timeout(WAIT, self.events.recv()).await;
        while let Ok(Some(_)) = tokio::time::timeout(WAIT, self.events.recv()).await {}
    }
}
