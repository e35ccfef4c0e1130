//! The AMQP side of the service client: the telemetry reader (all partitions of the
//! Event Hubs-compatible endpoint, resuming without gaps), the C2D sender, and the
//! feedback and file-notification receivers. Each long-lived reader is one tokio task
//! that owns its connection, reconnects with backoff, renews its token, and sends
//! typed [`StreamUpdate`]s on a bounded channel.

mod decode;
mod messaging;
mod session;
mod telemetry;
mod transport;

use fe2o3_amqp::link::{
    DetachError, LinkStateError, ReceiverAttachError, RecvError, SendError, SenderAttachError,
};
use fe2o3_amqp::types::definitions::Error as RemoteError;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::service::proxy::Proxy;
pub use messaging::{C2dSender, receive_feedback, receive_file_notifications};
pub use telemetry::{ReadFrom, TelemetryReaderOptions, TelemetrySource, read_telemetry};
pub use transport::{AmqpOptions, AmqpTransport};

pub use crate::events::{LinkState, TelemetryEvent};
pub use iothub::amqp_model::{FeedbackRecord, FeedbackStatus, FileNotification};

use self::session::{condition_name, info_int, info_text};
use crate::tls::TlsError;
use iothub::amqp_model::{RedirectTarget, condition, parse_redirect, redirect};

/// What a reader task reports.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamUpdate<T> {
    Item(T),
    /// The connection's state changed; `detail` says why when it is not `Connected`.
    State {
        state: LinkState,
        detail: Option<String>,
    },
}

/// A running reader task. Dropping it stops the task; `close` also waits for it.
pub struct ReaderTask {
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl ReaderTask {
    pub(crate) fn new(shutdown: watch::Sender<bool>, task: JoinHandle<()>) -> ReaderTask {
        ReaderTask {
            shutdown,
            task: Some(task),
        }
    }

    /// Detaches, closes the connection and waits (briefly) for the task to end.
    pub async fn close(mut self) {
        let _ = self.shutdown.send(true);
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(std::time::Duration::from_secs(3), &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }
}

impl Drop for ReaderTask {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Why an AMQP operation failed; each message is one sentence for the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MessagingError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("the proxy {proxy} did not open a tunnel to {target}: {reason}")]
    Proxy {
        proxy: String,
        target: String,
        reason: String,
    },
    #[error("the proxy setting \"{0}\" is not a proxy URL such as http://proxy:3128")]
    BadProxy(String),
    #[error("the hub refused the credentials: {0}")]
    Unauthorized(String),
    #[error("the device '{device_id}' does not exist on this hub")]
    DeviceNotFound { device_id: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the hub refused ({condition}): {description}")]
    Refused {
        condition: String,
        description: String,
    },
    #[error(
        "another reader holds this partition with an owner level (epoch): {0} Read with another consumer group, or stop that reader."
    )]
    PartitionTaken(String),
    #[error("the hub redirected the link to {}:{}/{}", .0.host, .0.port, .0.entity)]
    Redirect(RedirectTarget),
    #[error("the AMQP link failed: {0}")]
    Link(String),
    #[error("the hub's AMQP answer is not what IoT Hub sends: {0}")]
    Protocol(String),
    #[error("the hub did not send {0} in time")]
    Timeout(&'static str),
    #[error("the AMQP connection is closed")]
    Closed,
}

impl MessagingError {
    /// Retrying cannot help: wrong credentials or trust, a missing entity.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            MessagingError::Tls(_)
                | MessagingError::BadProxy(_)
                | MessagingError::Unauthorized(_)
                | MessagingError::NotFound(_)
                | MessagingError::DeviceNotFound { .. }
        )
    }

    /// An error the remote peer attached to a detach or a rejection.
    pub(crate) fn from_remote(what: &str, e: &RemoteError) -> MessagingError {
        let cond = condition_name(&e.condition);
        let description = e.description.clone().unwrap_or_default();
        match cond.as_str() {
            condition::UNAUTHORIZED => MessagingError::Unauthorized(description),
            condition::NOT_FOUND => MessagingError::NotFound(if description.is_empty() {
                format!("{what} does not exist")
            } else {
                description
            }),
            condition::LINK_STOLEN => MessagingError::PartitionTaken(description),
            condition::REDIRECT => {
                let target = info_text(e, redirect::ADDRESS).and_then(|address| {
                    parse_redirect(
                        info_text(e, redirect::HOSTNAME).as_deref(),
                        info_int(e, redirect::PORT),
                        &address,
                    )
                });
                match target {
                    Some(t) => MessagingError::Redirect(t),
                    None => MessagingError::Protocol(format!(
                        "a redirect for {what} names no usable address"
                    )),
                }
            }
            _ => MessagingError::Refused {
                condition: cond,
                description,
            },
        }
    }

    pub(crate) fn from_link_state(what: &str, e: &LinkStateError) -> MessagingError {
        match e {
            LinkStateError::RemoteClosedWithError(r)
            | LinkStateError::RemoteDetachedWithError(r) => Self::from_remote(what, r),
            other => MessagingError::Link(format!("{what}: {other}")),
        }
    }

    pub(crate) fn from_detach(what: &str, e: &DetachError) -> MessagingError {
        match e {
            DetachError::RemoteClosedWithError(r) | DetachError::RemoteDetachedWithError(r) => {
                Self::from_remote(what, r)
            }
            other => MessagingError::Link(format!("{what}: {other}")),
        }
    }

    pub(crate) fn from_recv(what: &str, e: &RecvError) -> MessagingError {
        match e {
            RecvError::LinkStateError(s) => Self::from_link_state(what, s),
            other => MessagingError::Link(format!("{what}: {other}")),
        }
    }

    pub(crate) fn from_send(what: &str, e: &SendError) -> MessagingError {
        match e {
            SendError::LinkStateError(s) => Self::from_link_state(what, s),
            SendError::Detached(d) => Self::from_detach(what, d),
            other => MessagingError::Link(format!("{what}: {other}")),
        }
    }

    pub(crate) fn from_receiver_attach(what: &str, e: ReceiverAttachError) -> MessagingError {
        match &e {
            ReceiverAttachError::RemoteClosedWithError(r) => Self::from_remote(what, r),
            other => MessagingError::Link(format!("{what}: {other}")),
        }
    }

    pub(crate) fn from_sender_attach(what: &str, e: SenderAttachError) -> MessagingError {
        match &e {
            SenderAttachError::RemoteClosedWithError(r) => Self::from_remote(what, r),
            other => MessagingError::Link(format!("{what}: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition, LinkError};

    #[test]
    fn remote_errors_become_sentences() {
        let stolen = RemoteError::new(
            ErrorCondition::LinkError(LinkError::Stolen),
            Some("At least one receiver for the endpoint is created with epoch of '3'.".into()),
            None,
        );
        let e = MessagingError::from_remote("partition 0", &stolen);
        assert!(matches!(e, MessagingError::PartitionTaken(_)), "{e:?}");
        assert!(e.to_string().contains("epoch of '3'"), "{e}");
        assert!(
            e.to_string()
                .ends_with("another consumer group, or stop that reader.")
        );
        assert!(!e.is_fatal());

        let unauthorized = RemoteError::new(
            ErrorCondition::AmqpError(AmqpError::UnauthorizedAccess),
            Some("no token".into()),
            None,
        );
        let e = MessagingError::from_remote("x", &unauthorized);
        assert!(matches!(e, MessagingError::Unauthorized(_)) && e.is_fatal());
    }
}
