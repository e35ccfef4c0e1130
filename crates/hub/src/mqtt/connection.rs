//! One device connection after TLS: CONNECT, then a single loop that reads the
//! device's packets, runs the hub's session commands and watches keep-alive and
//! shutdown. Every write goes through this loop's `PacketWriter`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, ConnectReturnCode, Packet, PubAck, Publish, SubAck, Subscribe, SubscribeReasonCode,
    UnsubAck, Unsubscribe,
};
use rustls_pki_types::CertificateDer;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::codec::{PacketReader, PacketWriter, ReadError};
use super::connect::{self, Accepted};
use super::inflight::{InFlight, Outbound};
use super::subscriptions::{Granted, SessionMemory, allowed, grant, publish_qos};
use crate::sessions::SessionCommand;
use crate::state::HubState;
use iothub::error::ServiceError;
use iothub::property_bag::MQTT_RETAIN;
use iothub::topic::{DevicePublish, HubPublish, parse_device_publish, parse_subscription};

/// A device that stops reading for this long while the hub writes is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Headroom over the telemetry size limit for the topic and packet headers.
const PACKET_HEADROOM: usize = 64 * 1024 + 16;

/// Telemetry messages of one connection waiting for their commit. The connection reads
/// on while below this, so a device's publishes share commits; at this, it stops reading
/// until one is stored, which holds a flooding device back without slowing the others.
const MAX_COMMITTING: usize = 64;

/// A telemetry publish waiting for its commit: its packet id and QoS, for the PUBACK.
type Committing = BoxFuture<'static, (u16, QoS, Result<(), ServiceError>)>;

/// Why a connection ended; logged, never sent to the device (MQTT 3.1.1 has no way).
#[derive(Debug, thiserror::Error)]
pub enum Closed {
    #[error("the device sent DISCONNECT")]
    Disconnect,
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("writing to the device failed: {0}")]
    Write(#[from] std::io::Error),
    #[error("nothing received for {0:?} (keep-alive)")]
    Idle(Duration),
    #[error("closed by the hub: {0}")]
    Hub(String),
    #[error("the hub is shutting down")]
    Shutdown,
    #[error("the device broke the rules: {0}")]
    Violation(String),
}

fn violation(what: impl Into<String>) -> Closed {
    Closed::Violation(what.into())
}

/// Serves one connection until it ends. `connect_by` bounds the wait for CONNECT;
/// `client_certs` is the chain the client presented in the TLS handshake, if any.
pub async fn serve<S>(
    stream: S,
    state: Arc<HubState>,
    memory: Arc<SessionMemory>,
    ingest: Handle,
    connect_by: Instant,
    client_certs: Option<Vec<CertificateDer<'static>>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Closed>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let mut reader = PacketReader::new(rd, state.settings.max_d2c_bytes + PACKET_HEADROOM);
    let mut writer = PacketWriter::new(wr);

    let first = match tokio::time::timeout_at(connect_by, reader.next()).await {
        Err(_) => return Err(Closed::Hub("no CONNECT in time".into())),
        Ok(r) => r,
    };
    let connect = match first {
        Ok(Packet::Connect(c)) => c,
        Ok(other) => return Err(violation(format!("{other:?} before CONNECT"))),
        // A protocol name or level rumqttc cannot read (3.1's MQIsdp, level 3...).
        Err(ReadError::Protocol(
            rumqttc::mqttbytes::Error::InvalidProtocol
            | rumqttc::mqttbytes::Error::InvalidProtocolLevel(_),
        )) => {
            refuse(&mut writer, ConnectReturnCode::RefusedProtocolVersion).await;
            return Err(violation("unsupported MQTT protocol version"));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(user) = super::dps::username(&state, &connect) {
        return super::dps::serve(state, connect, user, client_certs, reader, writer, shutdown)
            .await;
    }
    let accepted = match connect::check(&state, &connect, client_certs.as_deref()) {
        Ok(a) => a,
        Err(code) => {
            refuse(&mut writer, code).await;
            return Err(Closed::Hub(format!("CONNECT refused with {code:?}")));
        }
    };

    let key = accepted.key.clone();
    let granted = memory.resume(&key, &accepted.auth.generation_id, accepted.clean_session);
    let mut ticket = state
        .sessions
        .attach_with(key.clone(), accepted.auth.credential.clone());
    state.revoke_if_stale(&key);
    state
        .sessions
        .set_subscribed(&key, ticket.session_id, granted.subscribed());
    state.touch(&key);
    if let Err(e) = state.set_connected(&key, Some(accepted.model_id.as_deref())) {
        tracing::warn!(device = %key.0, error = %e.message, "cannot record the connection");
    }
    tracing::info!(device = %key.0, module = ?key.1, clean = accepted.clean_session, "mqtt connected");

    let mut conn = Connection {
        state: state.clone(),
        memory,
        session_present: !accepted.clean_session && !granted.is_empty(),
        accepted,
        session_id: ticket.session_id,
        granted,
        inflight: InFlight::default(),
        committing: FuturesOrdered::new(),
        writer,
    };
    let session_id = ticket.session_id;
    let end = match conn.acknowledge().await {
        Err(e) => {
            conn.end_session(session_id).await;
            e
        }
        // The session's traffic runs on the ingest runtime: a telemetry flood then
        // competes for the CPU as threads of its own, and the OS scheduler keeps REST,
        // AMQP and new connections (served where this task runs, up to the CONNACK)
        // responsive instead of queued behind it.
        Ok(()) => ingest
            .spawn(async move {
                let end = conn.run(&mut reader, &mut ticket.rx, &mut shutdown).await;
                conn.end_session(session_id).await;
                end
            })
            .await
            .unwrap_or_else(|_| Closed::Hub("the hub's ingest runtime stopped".into())),
    };
    tracing::info!(device = %key.0, module = ?key.1, reason = %end, "mqtt disconnected");
    match end {
        Closed::Disconnect => Ok(()),
        e => Err(e),
    }
}

async fn refuse<W: AsyncWrite>(writer: &mut PacketWriter<WriteHalf<W>>, code: ConnectReturnCode) {
    if writer
        .queue(&Packet::ConnAck(ConnAck::new(code, false)))
        .is_ok()
    {
        writer.close().await;
    }
}

struct Connection<W> {
    state: Arc<HubState>,
    memory: Arc<SessionMemory>,
    accepted: Accepted,
    session_present: bool,
    session_id: u64,
    granted: Granted,
    inflight: InFlight,
    /// Telemetry publishes in arrival order; each is acknowledged after its commit.
    committing: FuturesOrdered<Committing>,
    writer: PacketWriter<WriteHalf<W>>,
}

impl<W: AsyncWrite> Connection<W> {
    /// Records the device as gone, then closes the socket: whoever sees the close (the
    /// device, a test) finds the hub's view already updated.
    async fn end_session(&mut self, session_id: u64) {
        let key = &self.accepted.key;
        if self.state.sessions.detach(key, session_id)
            && let Err(e) = self.state.set_connected(key, None)
        {
            tracing::debug!(device = %key.0, error = %e.message, "cannot record the disconnect");
        }
        self.writer.close().await;
    }

    /// Sends the CONNACK that accepts the session.
    async fn acknowledge(&mut self) -> Result<(), Closed> {
        let ack = ConnAck::new(ConnectReturnCode::Success, self.session_present);
        self.queue(Packet::ConnAck(ack))?;
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), Closed> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.writer.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => Err(Closed::Hub("the device stopped reading".into())),
        }
    }

    async fn run<R: AsyncRead>(
        &mut self,
        reader: &mut PacketReader<ReadHalf<R>>,
        commands: &mut mpsc::Receiver<SessionCommand>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Closed {
        // A resumed session may have C2D waiting.
        if let Err(e) = self.deliver_c2d() {
            return e;
        }
        let idle = self.accepted.idle_timeout;
        let mut last_received = Instant::now();
        let token_expires = self.accepted.token_valid_for.map(|d| last_received + d);
        loop {
            if let Err(e) = self.flush().await {
                return e;
            }
            let step = tokio::select! {
                Some((pkid, qos, stored)) = self.committing.next(), if !self.committing.is_empty() => {
                    self.on_committed(pkid, qos, stored)
                }
                packet = reader.next(), if self.committing.len() < MAX_COMMITTING => match packet {
                    Ok(p) => {
                        last_received = Instant::now();
                        self.state.touch(&self.accepted.key);
                        // PUBACKs go out in the order the publishes came: anything else
                        // the device publishes waits for the telemetry before it.
                        if matches!(&p, Packet::Publish(p) if !is_telemetry(p))
                            && let Err(e) = self.settle_committing().await
                        {
                            return e;
                        }
                        self.on_packet(p)
                    }
                    Err(e) => Err(e.into()),
                },
                cmd = commands.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => Err(Closed::Hub("the session ended".into())),
                },
                _ = tokio::time::sleep_until(last_received + idle) => Err(Closed::Idle(idle)),
                // A certificate connection has no token: it lasts until either side closes it.
                _ = sleep_until_some(token_expires) => {
                    Err(Closed::Hub("its SAS token expired".into()))
                }
                _ = crate::listen::stopped(shutdown) => Err(Closed::Shutdown),
            };
            if let Err(e) = step {
                return e;
            }
        }
    }

    fn queue(&mut self, packet: Packet) -> Result<(), Closed> {
        Ok(self.writer.queue(&packet)?)
    }

    fn on_packet(&mut self, packet: Packet) -> Result<(), Closed> {
        match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(ack) => {
                self.on_puback(ack.pkid);
                Ok(())
            }
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(u),
            Packet::PingReq => self.queue(Packet::PingResp),
            Packet::Disconnect => Err(Closed::Disconnect),
            other => Err(violation(format!("unexpected {other:?}"))),
        }
    }

    fn on_command(&mut self, cmd: SessionCommand) -> Result<(), Closed> {
        match cmd {
            SessionCommand::Close { reason } => Err(Closed::Hub(reason)),
            SessionCommand::DesiredPatch { version, body } => {
                if let Some(q) = self.granted.desired {
                    let topic = HubPublish::DesiredPatch { version }.to_topic();
                    self.publish(topic, publish_qos(q), body, Outbound::Other)?;
                }
                Ok(())
            }
            SessionCommand::MethodRequest {
                method_name,
                rid,
                payload,
            } => {
                // Method requests always go at QoS 0, as Azure documents.
                if self.granted.methods.is_some() {
                    let topic = HubPublish::MethodRequest { method_name, rid }.to_topic();
                    self.publish(topic, QoS::AtMostOnce, payload, Outbound::Other)?;
                }
                Ok(())
            }
            SessionCommand::C2dWaiting => self.deliver_c2d(),
        }
    }

    /// Queues a publish to the device; false if no packet id was free (dropped).
    fn publish(
        &mut self,
        topic: String,
        qos: QoS,
        payload: Vec<u8>,
        what: Outbound,
    ) -> Result<bool, Closed> {
        let mut p = Publish::new(topic, qos, payload);
        if qos != QoS::AtMostOnce {
            match self.inflight.start(what) {
                Some(id) => p.pkid = id,
                None => {
                    tracing::warn!(device = %self.accepted.key.0, "no free packet id; publish dropped");
                    return Ok(false);
                }
            }
        }
        self.queue(Packet::Publish(p))?;
        Ok(true)
    }

    fn puback(&mut self, p: &Publish) -> Result<(), Closed> {
        if p.qos == QoS::AtLeastOnce {
            self.queue(Packet::PubAck(PubAck::new(p.pkid)))?;
        }
        Ok(())
    }

    fn on_publish(&mut self, p: Publish) -> Result<(), Closed> {
        if p.qos == QoS::ExactlyOnce {
            return Err(violation("QoS 2 publish (IoT Hub supports QoS 0 and 1)"));
        }
        let what = parse_device_publish(&p.topic).map_err(|e| violation(e.to_string()))?;
        let key = &self.accepted.key.clone();
        match what {
            DevicePublish::Telemetry {
                device_id,
                module_id,
                mut properties,
            } => {
                if device_id != key.0 || module_id != key.1 {
                    return Err(violation(format!(
                        "publish to another identity's topic {}",
                        p.topic
                    )));
                }
                if p.retain {
                    properties.set(MQTT_RETAIN, Some("true".into()));
                }
                // Durable before the PUBACK, which `on_committed` sends; a refused
                // message (too large) ends the connection.
                let committed = self
                    .state
                    .ingest_telemetry(key, &self.accepted.auth, &properties, &p.payload)
                    .map_err(|e| violation(e.message))?;
                let (pkid, qos) = (p.pkid, p.qos);
                self.committing.push_back(Box::pin(async move {
                    (pkid, qos, committed.await.map(|_| ()))
                }));
                Ok(())
            }
            DevicePublish::TwinGet { rid } => {
                self.puback(&p)?;
                let twin = self.state.twin_for_device(key);
                self.twin_response(rid, twin.map(|t| (200, None, t.to_string().into_bytes())))
            }
            DevicePublish::TwinPatchReported { rid } => {
                self.puback(&p)?;
                let patched = self.state.patch_reported(key, &p.payload);
                self.twin_response(rid, patched.map(|v| (204, Some(v), Vec::new())))
            }
            DevicePublish::MethodResponse { status, rid } => {
                self.puback(&p)?;
                let answer = crate::sessions::MethodAnswer {
                    status,
                    payload: p.payload.to_vec(),
                };
                if !self.state.sessions.complete_method(key, &rid, answer) {
                    tracing::debug!(device = %key.0, rid, "method response for no waiting call");
                }
                Ok(())
            }
        }
    }

    /// A telemetry message is stored: acknowledge it. A failed write ends the
    /// connection, so the device sends it again on its next one.
    fn on_committed(
        &mut self,
        pkid: u16,
        qos: QoS,
        stored: Result<(), ServiceError>,
    ) -> Result<(), Closed> {
        stored.map_err(|e| Closed::Hub(e.message))?;
        if qos == QoS::AtLeastOnce {
            self.queue(Packet::PubAck(PubAck::new(pkid)))?;
        }
        Ok(())
    }

    /// Waits for every telemetry message in flight to be stored and acknowledged.
    async fn settle_committing(&mut self) -> Result<(), Closed> {
        while let Some((pkid, qos, stored)) = self.committing.next().await {
            self.on_committed(pkid, qos, stored)?;
        }
        Ok(())
    }

    /// Answers a twin request on `$iothub/twin/res/...`, if the device subscribed there.
    fn twin_response(
        &mut self,
        rid: String,
        result: Result<(u16, Option<u64>, Vec<u8>), ServiceError>,
    ) -> Result<(), Closed> {
        let Some(q) = self.granted.twin_responses else {
            tracing::debug!(device = %self.accepted.key.0, "twin response dropped: not subscribed");
            return Ok(());
        };
        let (status, version, body) = match result {
            Ok(r) => r,
            Err(e) => (e.code.http_status(), None, twin_error_body(&e).into_bytes()),
        };
        let topic = HubPublish::TwinResponse {
            status,
            rid,
            version,
        }
        .to_topic();
        self.publish(topic, publish_qos(q), body, Outbound::Other)?;
        Ok(())
    }

    fn on_puback(&mut self, pkid: u16) {
        if let Some(Outbound::C2d(seq)) = self.inflight.finish(pkid)
            && let Err(e) = self.state.c2d_complete(seq)
        {
            tracing::warn!(seq, error = %e.message, "cannot complete a C2D message");
        }
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Result<(), Closed> {
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut c2d = false;
        for f in &s.filters {
            // Azure disconnects on a filter it does not serve, rather than a 0x80 SUBACK.
            let sub = parse_subscription(&f.path).map_err(|e| violation(e.to_string()))?;
            if !allowed(&self.accepted.key, &sub) {
                return Err(violation(format!(
                    "subscription to another identity's topic {}",
                    f.path
                )));
            }
            let qos = grant(f.qos);
            self.granted.set(&sub, Some(qos));
            c2d |= matches!(sub, iothub::topic::Subscription::C2d { .. });
            codes.push(SubscribeReasonCode::Success(qos));
        }
        self.queue(Packet::SubAck(SubAck::new(s.pkid, codes)))?;
        self.subscriptions_changed();
        if c2d {
            self.deliver_c2d()?;
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) -> Result<(), Closed> {
        for topic in &u.topics {
            // Unsubscribing from something never subscribed is harmless.
            if let Ok(sub) = parse_subscription(topic)
                && allowed(&self.accepted.key, &sub)
            {
                self.granted.set(&sub, None);
            }
        }
        self.queue(Packet::UnsubAck(UnsubAck::new(u.pkid)))?;
        self.subscriptions_changed();
        Ok(())
    }

    fn subscriptions_changed(&mut self) {
        let key = &self.accepted.key;
        self.state
            .sessions
            .set_subscribed(key, self.session_id, self.granted.subscribed());
        if !self.accepted.clean_session {
            self.memory
                .save(key, &self.accepted.auth.generation_id, self.granted);
        }
    }

    /// Sends the queued C2D messages not yet in flight (device identities only).
    fn deliver_c2d(&mut self) -> Result<(), Closed> {
        let Some(granted) = self.granted.c2d else {
            return Ok(());
        };
        let key = self.accepted.key.clone();
        if key.1.is_some() {
            return Ok(());
        }
        let in_flight: HashSet<i64> = self.inflight.c2d().collect();
        let messages = match self.state.c2d_deliverable(&key.0, &in_flight) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(device = %key.0, error = %e.message, "cannot read the C2D queue");
                return Ok(());
            }
        };
        let qos = publish_qos(granted);
        for m in messages {
            let topic = HubPublish::C2d {
                device_id: key.0.clone(),
                module_id: None,
                properties: m.properties,
            }
            .to_topic();
            if let Err(e) = self.state.c2d_sent(m.seq) {
                tracing::warn!(device = %key.0, error = %e.message, "cannot count a C2D delivery");
                break;
            }
            if !self.publish(topic, qos, m.body, Outbound::C2d(m.seq))? {
                break;
            }
            // At QoS 0 there is no acknowledgement to wait for.
            if qos == QoS::AtMostOnce
                && let Err(e) = self.state.c2d_complete(m.seq)
            {
                tracing::warn!(device = %key.0, error = %e.message, "cannot complete a C2D message");
            }
        }
        Ok(())
    }
}

fn is_telemetry(p: &Publish) -> bool {
    matches!(
        parse_device_publish(&p.topic),
        Ok(DevicePublish::Telemetry { .. })
    )
}

/// Body of a failed twin request: Node's SDK looks for `errorCode`.
fn twin_error_body(e: &ServiceError) -> String {
    json!({"errorCode": e.code.numeric(), "message": e.message}).to_string()
}

/// Sleeps until `at`, or for ever when there is no `at`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iothub::error::ErrorCode;

    #[test]
    fn twin_error_bodies_carry_the_numeric_code() {
        let e = ServiceError::new(ErrorCode::ArgumentInvalid, "bad patch");
        let v: serde_json::Value = serde_json::from_str(&twin_error_body(&e)).unwrap();
        assert_eq!(v["errorCode"], json!(ErrorCode::ArgumentInvalid.numeric()));
        assert_eq!(v["message"], json!("bad patch"));
        assert_eq!(e.code.http_status(), 400);
    }
}
