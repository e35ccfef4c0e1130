//! The service link's state for the status bar. REST has no connection to hold, so the state
//! is what the last request found: the hub answered (connected), could not be reached
//! (reconnecting: the next request tries again), or refused the credentials (failed).

use std::sync::Mutex;

use crate::events::{Backend, HubEvent, LinkState};
use crate::service::ServiceClientError;
use iothub::error::ErrorCode;

use super::Ctx;

#[derive(Default)]
pub(super) struct ServiceLink {
    last: Mutex<Option<(LinkState, Option<String>)>>,
}

impl ServiceLink {
    /// Records a state; reports it only when it changed.
    async fn set(&self, ctx: &Ctx, state: LinkState, detail: Option<String>) {
        let changed = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let new = Some((state, detail.clone()));
            let changed = *last != new;
            *last = new;
            changed
        };
        if changed {
            ctx.send(HubEvent::ConnectionState {
                backend: Backend::Service,
                state,
                detail,
            })
            .await;
        }
    }

    pub(super) async fn connecting(&self, ctx: &Ctx) {
        self.set(ctx, LinkState::Connecting, None).await;
    }

    pub(super) fn is_connected(&self) -> bool {
        matches!(
            *self.last.lock().unwrap_or_else(|p| p.into_inner()),
            Some((LinkState::Connected, _))
        )
    }

    /// Notes how a request ended: the link's state, throttling, and the call count.
    pub(super) async fn record<T>(&self, ctx: &Ctx, result: &Result<T, ServiceClientError>) {
        self.record_state(ctx, result).await;
        if let Some(event) = ctx.throttle.note(result) {
            ctx.send(event).await;
        }
        ctx.report_calls().await;
    }

    async fn record_state<T>(&self, ctx: &Ctx, result: &Result<T, ServiceClientError>) {
        match result {
            Ok(_) => self.set(ctx, LinkState::Connected, None).await,
            Err(e @ ServiceClientError::Unreachable { .. }) => {
                self.set(ctx, LinkState::Reconnecting, Some(describe_error(e)))
                    .await
            }
            Err(e @ ServiceClientError::Tls(_)) => {
                self.set(ctx, LinkState::Failed, Some(describe_error(e)))
                    .await
            }
            Err(e) if e.code() == Some(ErrorCode::IotHubUnauthorizedAccess) => {
                self.set(ctx, LinkState::Failed, Some(describe_error(e)))
                    .await
            }
            // The hub answered: the link works, the request did not.
            Err(_) => self.set(ctx, LinkState::Connected, None).await,
        }
    }
}

/// A service error as one sentence for the status bar.
pub fn describe_error(e: &ServiceClientError) -> String {
    match e {
        ServiceClientError::Throttled { .. } => format!("throttled by the hub: {e}"),
        ServiceClientError::Service(s) => match s.code {
            ErrorCode::IotHubUnauthorizedAccess => format!(
                "the hub refused the connection string's key or policy ({})",
                s.message
            ),
            ErrorCode::DeviceNotFound => format!("no such device: {}", s.message),
            _ => s.to_string(),
        },
        other => other.to_string(),
    }
}
