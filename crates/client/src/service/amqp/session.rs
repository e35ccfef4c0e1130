//! One authorized AMQP connection: transport, a session, the `$cbs` links and the
//! token put on them (renewed before it expires), plus `$management` READ requests.

use std::time::Duration;

use fe2o3_amqp::connection::ConnectionHandle;
use fe2o3_amqp::session::SessionHandle;
use fe2o3_amqp::types::definitions::{Error as RemoteError, ErrorCondition};
use fe2o3_amqp::types::messaging::message::Body;
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Message, MessageId, Properties,
};
use fe2o3_amqp::types::primitives::{SimpleValue, Symbol, Value};
use fe2o3_amqp::{Receiver, Sender, Session};

use super::MessagingError;
use super::transport::{self, AmqpOptions, Endpoint};
use iothub::amqp_model::{
    CBS_NODE, CBS_SAS_TOKEN_TYPE, MANAGEMENT_NODE, NAME, OPERATION, PUT_TOKEN, STATUS_CODE,
    STATUS_CODE_ALT, STATUS_DESCRIPTION, STATUS_DESCRIPTION_ALT, TOKEN_TYPE, event_hubs_audience,
};
use iothub::sas::{generate_event_hubs_token, generate_token};

/// Lifetime of the tokens put on `$cbs`; renewed at 80 % of it.
pub(crate) const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// How long a `$cbs` or `$management` request waits for its answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the client signs tokens with.
#[derive(Clone)]
pub(crate) enum Credentials {
    /// An IoT Hub policy: token for the hub host, signed as IoT Hub signs.
    Hub {
        host: String,
        policy: String,
        key: String,
    },
    /// An Event Hubs entity: token for `sb://{host}/{entity}`, signed as Event Hubs signs.
    EventHub {
        host: String,
        entity: String,
        policy: String,
        key: String,
    },
}

impl Credentials {
    /// (audience, token) valid until `expiry` (unix seconds).
    fn token(&self, expiry: u64) -> Result<(String, String), MessagingError> {
        match self {
            Credentials::Hub { host, policy, key } => {
                let token = generate_token(host, key, Some(policy), expiry).map_err(|_| {
                    MessagingError::Unauthorized(
                        "the connection string's SharedAccessKey is not valid base64".into(),
                    )
                })?;
                Ok((host.clone(), token))
            }
            Credentials::EventHub {
                host,
                entity,
                policy,
                key,
            } => {
                let audience = event_hubs_audience(host, entity);
                let token = generate_event_hubs_token(&audience, key, policy, expiry);
                Ok((audience, token))
            }
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// A connection with one session, authorized through `$cbs`.
pub(crate) struct ServiceSession {
    pub connection: ConnectionHandle<()>,
    pub session: SessionHandle<()>,
    cbs: RequestLink,
    management: Option<RequestLink>,
    credentials: Credentials,
    token_expiry: u64,
}

impl ServiceSession {
    pub async fn open(
        endpoint: &Endpoint<'_>,
        opts: &AmqpOptions,
        credentials: Credentials,
    ) -> Result<ServiceSession, MessagingError> {
        let mut connection = transport::open(endpoint, opts).await?;
        let mut session = Session::begin(&mut connection)
            .await
            .map_err(|e| MessagingError::Protocol(format!("the session was refused: {e}")))?;
        let cbs = RequestLink::attach(&mut session, CBS_NODE, "cbs").await?;
        let mut s = ServiceSession {
            connection,
            session,
            cbs,
            management: None,
            credentials,
            token_expiry: 0,
        };
        if let Err(e) = s.put_token().await {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.close()).await;
            return Err(e);
        }
        Ok(s)
    }

    /// Puts a fresh token on `$cbs`.
    pub async fn put_token(&mut self) -> Result<(), MessagingError> {
        let expiry = unix_now() + TOKEN_LIFETIME.as_secs();
        let (audience, token) = self.credentials.token(expiry)?;
        let request = Message::builder()
            .properties(
                Properties::builder()
                    .message_id(MessageId::String(uuid::Uuid::new_v4().to_string()))
                    .to(CBS_NODE)
                    .reply_to("cbs")
                    .build(),
            )
            .application_properties(
                ApplicationProperties::builder()
                    .insert(OPERATION, PUT_TOKEN)
                    .insert(TOKEN_TYPE, CBS_SAS_TOKEN_TYPE)
                    .insert(NAME, audience.as_str())
                    .build(),
            )
            .body(Body::Value(AmqpValue(Value::String(token))))
            .build();
        let (status, description, _) = self.cbs.request(request).await?;
        match status {
            200..=299 => {
                self.token_expiry = expiry;
                Ok(())
            }
            401 | 403 => Err(MessagingError::Unauthorized(description)),
            404 => Err(MessagingError::NotFound(description)),
            _ => Err(MessagingError::Refused {
                condition: format!("status {status}"),
                description,
            }),
        }
    }

    /// When the token should be renewed.
    pub fn renew_in(&self) -> Duration {
        let lifetime = TOKEN_LIFETIME.as_secs();
        let renew_at = self.token_expiry.saturating_sub(lifetime / 5);
        Duration::from_secs(renew_at.saturating_sub(unix_now()))
    }

    /// Renews the token if it is due.
    pub async fn renew_if_due(&mut self) -> Result<(), MessagingError> {
        if self.renew_in().is_zero() {
            self.put_token().await?;
        }
        Ok(())
    }

    /// `$management` READ; `extra` are further application properties (type, partition).
    pub async fn management_read(
        &mut self,
        entity: &str,
        extra: &[(&str, &str)],
    ) -> Result<Value, MessagingError> {
        if self.management.is_none() {
            self.management =
                Some(RequestLink::attach(&mut self.session, MANAGEMENT_NODE, "mgmt").await?);
        }
        let mut app = ApplicationProperties::builder()
            .insert(OPERATION, iothub::amqp_model::READ_OPERATION)
            .insert(NAME, entity);
        for (k, v) in extra {
            app = app.insert(*k, *v);
        }
        let request = Message::builder()
            .properties(
                Properties::builder()
                    .message_id(MessageId::String(uuid::Uuid::new_v4().to_string()))
                    .reply_to("mgmt")
                    .build(),
            )
            .application_properties(app.build())
            .body(Body::Value(AmqpValue(Value::Null)))
            .build();
        let link = self.management.as_mut().expect("attached above");
        let (status, description, body) = link.request(request).await?;
        match status {
            200..=299 => Ok(body),
            401 | 403 => Err(MessagingError::Unauthorized(description)),
            404 => Err(MessagingError::NotFound(description)),
            _ => Err(MessagingError::Refused {
                condition: format!("status {status}"),
                description,
            }),
        }
    }

    pub async fn close(mut self) {
        let _ = self.cbs.tx.close().await;
        let _ = self.cbs.rx.close().await;
        if let Some(m) = self.management.take() {
            let _ = m.tx.close().await;
            let _ = m.rx.close().await;
        }
        let _ = self.session.end().await;
        let _ = self.connection.close().await;
    }
}

/// A request/response node (`$cbs`, `$management`): a sender and a receiver.
struct RequestLink {
    tx: Sender,
    rx: Receiver,
}

impl RequestLink {
    async fn attach(
        session: &mut SessionHandle<()>,
        node: &str,
        reply_to: &str,
    ) -> Result<RequestLink, MessagingError> {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let tx = Sender::attach(session, format!("{reply_to}-tx-{suffix}"), node)
            .await
            .map_err(|e| MessagingError::from_sender_attach(node, e))?;
        let rx = Receiver::builder()
            .name(format!("{reply_to}-rx-{suffix}"))
            .source(node)
            .target(reply_to)
            .auto_accept(true)
            .attach(session)
            .await
            .map_err(|e| MessagingError::from_receiver_attach(node, e))?;
        Ok(RequestLink { tx, rx })
    }

    /// Sends a request and waits for the response that correlates with it.
    async fn request(
        &mut self,
        request: Message<Body<Value>>,
    ) -> Result<(i32, String, Value), MessagingError> {
        let id = request
            .properties
            .as_ref()
            .and_then(|p| p.message_id.clone());
        self.tx
            .send(request)
            .await
            .map_err(|e| MessagingError::Link(format!("a request was not delivered: {e}")))?;
        loop {
            let delivery = tokio::time::timeout(REQUEST_TIMEOUT, self.rx.recv::<Body<Value>>())
                .await
                .map_err(|_| {
                    MessagingError::Timeout("the answer to a $cbs or $management request")
                })?
                .map_err(|e| MessagingError::Link(format!("no answer to a request: {e}")))?;
            let m = delivery.into_message();
            let correlation = m.properties.as_ref().and_then(|p| p.correlation_id.clone());
            if id.is_some() && correlation != id {
                continue;
            }
            let app = m.application_properties.as_ref().map(|a| &a.0);
            let get = |a: &str, b: &str| app.and_then(|p| p.get(a).or_else(|| p.get(b)));
            let status = match get(STATUS_CODE, STATUS_CODE_ALT) {
                Some(SimpleValue::Int(n)) => *n,
                Some(SimpleValue::Long(n)) => *n as i32,
                Some(SimpleValue::Uint(n)) => *n as i32,
                Some(SimpleValue::Short(n)) => i32::from(*n),
                Some(SimpleValue::String(s)) => s.parse().unwrap_or(0),
                _ => 0,
            };
            let description = match get(STATUS_DESCRIPTION, STATUS_DESCRIPTION_ALT) {
                Some(SimpleValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let body = match m.body {
                Body::Value(AmqpValue(v)) => v,
                _ => Value::Null,
            };
            return Ok((status, description, body));
        }
    }
}

/// The condition of a remote error as its symbol (`amqp:not-found`...).
pub(crate) fn condition_name(c: &ErrorCondition) -> String {
    match c {
        ErrorCondition::AmqpError(e) => Symbol::from(e).as_str().to_string(),
        ErrorCondition::ConnectionError(e) => Symbol::from(e).as_str().to_string(),
        ErrorCondition::SessionError(e) => Symbol::from(e).as_str().to_string(),
        ErrorCondition::LinkError(e) => Symbol::from(e).as_str().to_string(),
        ErrorCondition::Custom(s) => s.as_str().to_string(),
        #[allow(unreachable_patterns)]
        _ => format!("{c:?}"),
    }
}

/// A string value of a remote error's `info` map.
pub(crate) fn info_text(e: &RemoteError, key: &str) -> Option<String> {
    let info = e.info.as_ref()?;
    info.iter()
        .find(|(k, _)| k.as_str() == key)
        .and_then(|(_, v)| match v {
            Value::String(s) => Some(s.clone()),
            Value::Symbol(s) => Some(s.as_str().to_string()),
            _ => None,
        })
}

/// An integer value of a remote error's `info` map.
pub(crate) fn info_int(e: &RemoteError, key: &str) -> Option<i64> {
    let info = e.info.as_ref()?;
    info.iter()
        .find(|(k, _)| k.as_str() == key)
        .and_then(|(_, v)| match v {
            Value::Int(n) => Some(i64::from(*n)),
            Value::Long(n) => Some(*n),
            Value::Uint(n) => Some(i64::from(*n)),
            Value::Ushort(n) => Some(i64::from(*n)),
            Value::Short(n) => Some(i64::from(*n)),
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
}
