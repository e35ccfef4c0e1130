//! DPS over MQTT on the hub's MQTT port: a CONNECT whose username is
//! `{idScope}/registrations/{registrationId}/…` is a provisioning client, not a device.
//! It may subscribe to `$dps/registrations/res/#`, publish register and status requests,
//! and gets each answer on `$dps/registrations/res/{status}/?$rid=…[&retry-after=…]`.
//! DPS keeps no session: every connection starts clean. A client authenticates with a SAS
//! token as password, or with no password and the client certificate of its TLS handshake.

use std::sync::Arc;

use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, Publish, SubAck, Subscribe,
    SubscribeReasonCode, UnsubAck,
};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::time::Instant;

use super::codec::{PacketReader, PacketWriter};
use super::connect::idle_timeout;
use super::connection::Closed;
use crate::dps::registration::{RETRY_AFTER_SECS, Registrant};
use crate::state::HubState;
use iothub::dps::registration::{RegistrationOperation, RegistrationRequest, error_body};
use iothub::dps::topic::{DpsRequest, DpsResponse, DpsUsername, RESPONSE_FILTER};
use iothub::error::{ErrorCode, ServiceError};

/// The DPS username of a CONNECT, if it is one for this hub's ID scope.
pub(super) fn username(state: &HubState, connect: &Connect) -> Option<DpsUsername> {
    let login = connect.login.as_ref()?;
    DpsUsername::parse(&login.username)
        .ok()
        .filter(|u| u.id_scope == state.id_scope)
}

/// Checks the CONNECT: client id = registration id (else 0x02), a SAS password an
/// enrollment accepts, or no password and a client certificate an X.509 enrollment
/// accepts (else 0x05).
fn check(
    state: &HubState,
    connect: &Connect,
    user: &DpsUsername,
    client_certs: Option<&[CertificateDer<'static>]>,
) -> Result<Registrant, ConnectReturnCode> {
    if connect.client_id != user.registration_id {
        return Err(ConnectReturnCode::BadClientId);
    }
    let password = connect
        .login
        .as_ref()
        .map(|l| l.password.as_str())
        .unwrap_or("");
    let checked = match client_certs {
        Some(chain) if password.is_empty() => {
            state.dps_authenticate_certificate(&user.id_scope, &user.registration_id, chain)
        }
        _ => state.dps_authenticate(&user.id_scope, &user.registration_id, password),
    };
    checked.map_err(|e| {
            tracing::info!(registration = %user.registration_id, reason = %e.message, "dps connect refused");
            ConnectReturnCode::NotAuthorized
        })
}

pub(super) async fn serve<S>(
    state: Arc<HubState>,
    connect: Connect,
    user: DpsUsername,
    client_certs: Option<Vec<CertificateDer<'static>>>,
    mut reader: PacketReader<ReadHalf<S>>,
    mut writer: PacketWriter<WriteHalf<S>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Closed>
where
    S: AsyncRead + AsyncWrite,
{
    let check_state = state.clone();
    let checked = tokio::task::spawn_blocking(move || {
        check(&check_state, &connect, &user, client_certs.as_deref())
            .map(|r| (r, connect.keep_alive))
    })
    .await
    .map_err(|e| Closed::Hub(e.to_string()))?;
    let (who, keep_alive) = match checked {
        Ok(c) => c,
        Err(code) => {
            writer.queue(&Packet::ConnAck(ConnAck::new(code, false)))?;
            writer.close().await;
            return Err(Closed::Hub(format!("DPS CONNECT refused with {code:?}")));
        }
    };
    tracing::info!(registration = %who.registration_id, "dps connected");
    writer.queue(&Packet::ConnAck(ConnAck::new(
        ConnectReturnCode::Success,
        false,
    )))?;
    let idle = idle_timeout(keep_alive);
    let mut last_received = Instant::now();
    let mut next_pkid: u16 = 0;
    let end = loop {
        if let Err(e) = writer.flush().await {
            break Closed::Write(e);
        }
        let packet = tokio::select! {
            p = reader.next() => match p {
                Ok(p) => p,
                Err(e) => break e.into(),
            },
            _ = tokio::time::sleep_until(last_received + idle) => break Closed::Idle(idle),
            _ = crate::listen::stopped(&mut shutdown) => break Closed::Shutdown,
        };
        last_received = Instant::now();
        let reply = match packet {
            Packet::Subscribe(s) => Ok(vec![Packet::SubAck(suback(&s))]),
            Packet::Unsubscribe(u) => Ok(vec![Packet::UnsubAck(UnsubAck::new(u.pkid))]),
            Packet::Publish(p) => {
                let mut out = Vec::new();
                if p.qos != QoS::AtMostOnce {
                    out.push(Packet::PubAck(PubAck::new(p.pkid)));
                }
                match answer(&state, &who, p).await {
                    Ok(mut publish) => {
                        // Answers go at QoS 1 as DPS sends them; their PUBACKs need no bookkeeping.
                        next_pkid = next_pkid % u16::MAX + 1;
                        publish.pkid = next_pkid;
                        out.push(Packet::Publish(publish));
                        Ok(out)
                    }
                    Err(e) => Err(e),
                }
            }
            Packet::PubAck(_) => Ok(Vec::new()),
            Packet::PingReq => Ok(vec![Packet::PingResp]),
            Packet::Disconnect => break Closed::Disconnect,
            other => Err(Closed::Violation(format!("unexpected {other:?}"))),
        };
        match reply {
            Ok(packets) => {
                for p in &packets {
                    if let Err(e) = writer.queue(p) {
                        return Err(e.into());
                    }
                }
            }
            Err(e) => break e,
        }
    };
    writer.close().await;
    tracing::info!(registration = %who.registration_id, reason = %end, "dps disconnected");
    match end {
        Closed::Disconnect => Ok(()),
        e => Err(e),
    }
}

/// Only the response topic may be subscribed to; it is granted at QoS 1 at most.
fn suback(s: &Subscribe) -> SubAck {
    let codes = s
        .filters
        .iter()
        .map(|f| {
            if f.path == RESPONSE_FILTER {
                let qos = match f.qos {
                    QoS::AtMostOnce => QoS::AtMostOnce,
                    _ => QoS::AtLeastOnce,
                };
                SubscribeReasonCode::Success(qos)
            } else {
                SubscribeReasonCode::Failure
            }
        })
        .collect();
    SubAck::new(s.pkid, codes)
}

/// The response to a register or status request; an unknown topic ends the connection.
async fn answer(state: &Arc<HubState>, who: &Registrant, p: Publish) -> Result<Publish, Closed> {
    let request = DpsRequest::parse(&p.topic).map_err(|e| Closed::Violation(e.to_string()))?;
    let (rid, outcome) = match request {
        DpsRequest::Register { rid } => {
            let (state, who) = (state.clone(), who.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                let body: RegistrationRequest =
                    serde_json::from_slice(&p.payload).map_err(|e| {
                        ServiceError::new(
                            ErrorCode::ArgumentInvalid,
                            format!("The registration request is not valid JSON: {e}."),
                        )
                    })?;
                state.dps_register(&who, &body).map(|op| {
                    (
                        202,
                        Some(RETRY_AFTER_SECS),
                        RegistrationOperation::assigning(&op),
                    )
                })
            })
            .await;
            (rid, outcome)
        }
        DpsRequest::OperationStatus { rid, operation_id } => {
            let (state, reg) = (state.clone(), who.registration_id.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                state
                    .dps_operation(&reg, &operation_id)
                    .map(|op| (200, None, op))
            })
            .await;
            (rid, outcome)
        }
    };
    let outcome = outcome.map_err(|e| Closed::Hub(e.to_string()))?;
    let (status, retry_after, body) = match outcome {
        Ok((status, retry_after, op)) => (
            status,
            retry_after,
            serde_json::to_vec(&op).map_err(|e| Closed::Hub(e.to_string()))?,
        ),
        Err(e) => {
            let tracking = uuid::Uuid::new_v4().to_string();
            let body = error_body(e.code.numeric(), &e.message, &tracking, chrono::Utc::now());
            (e.code.http_status(), None, body.to_string().into_bytes())
        }
    };
    let topic = DpsResponse {
        status,
        rid,
        retry_after,
    }
    .to_topic();
    Ok(Publish::new(topic, QoS::AtLeastOnce, body))
}
