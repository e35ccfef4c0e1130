//! Twin commands: read, PATCH with If-Match (a 412 becomes `TwinConflict` carrying the twin as
//! it is now, so the app keeps the edit), and a poller that reads the watched twin every few
//! seconds and reports it when its etag moved, so live changes show up highlighted.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::events::HubEvent;
use iothub::error::ErrorCode;
use iothub::service_twin::patch_body;
use iothub::twin::Section;

use super::Ctx;
use super::link::describe_error;

fn etag_of(twin: &Value) -> Option<String> {
    twin.get("etag").and_then(Value::as_str).map(str::to_owned)
}

pub(super) async fn get(ctx: Arc<Ctx>, device_id: String, poller: Poller) {
    let result = ctx.config.service.get_twin(&device_id).await;
    ctx.link.record(&ctx, &result).await;
    let event = match result {
        Ok(twin) => {
            poller.seen(&device_id, etag_of(&twin));
            HubEvent::Twin { device_id, twin }
        }
        Err(e) => HubEvent::Error(format!(
            "cannot read the twin of {device_id}: {}",
            describe_error(&e)
        )),
    };
    ctx.send(event).await;
}

pub(super) async fn patch(
    ctx: Arc<Ctx>,
    device_id: String,
    section: Section,
    patch: Map<String, Value>,
    etag: String,
    poller: Poller,
) {
    let service = &ctx.config.service;
    let body = patch_body(section, patch);
    let result = service.patch_twin(&device_id, &body, Some(&etag)).await;
    ctx.link.record(&ctx, &result).await;
    let event = match result {
        Ok(twin) => {
            poller.seen(&device_id, etag_of(&twin));
            HubEvent::TwinUpdated { device_id, twin }
        }
        Err(e) if e.code() == Some(ErrorCode::PreconditionFailed) => {
            match service.get_twin(&device_id).await {
                Ok(current) => {
                    poller.seen(&device_id, etag_of(&current));
                    HubEvent::TwinConflict { device_id, current }
                }
                Err(e) => HubEvent::Error(format!(
                    "the twin of {device_id} changed meanwhile (412) and cannot be read again: {}; your edit is kept",
                    describe_error(&e)
                )),
            }
        }
        Err(e) => HubEvent::Error(format!(
            "cannot update the twin of {device_id}: {}; your edit is kept",
            describe_error(&e)
        )),
    };
    ctx.send(event).await;
}

#[derive(Default)]
struct Watched {
    device_id: Option<String>,
    etag: Option<String>,
}

/// Reads the watched twin again every `twin_poll`; reports it only when its etag changed.
/// When nothing is watched and the link is down, it probes the hub instead, so the status
/// bar recovers without a key press.
#[derive(Clone)]
pub(super) struct Poller {
    watched: Arc<Mutex<Watched>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Poller {
    pub(super) fn spawn(ctx: Arc<Ctx>) -> Poller {
        let poller = Poller {
            watched: Arc::default(),
            task: Arc::default(),
        };
        let handle = tokio::spawn(poll(ctx, poller.clone()));
        *poller.task.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        poller
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.watched.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Polls this device's twin from now on.
    pub(super) fn watch(&self, device_id: String) {
        let mut w = self.lock();
        if w.device_id.as_deref() != Some(device_id.as_str()) {
            *w = Watched {
                device_id: Some(device_id),
                etag: None,
            };
        }
    }

    /// The app got this version of the twin already.
    pub(super) fn seen(&self, device_id: &str, etag: Option<String>) {
        let mut w = self.lock();
        if w.device_id.as_deref() == Some(device_id) {
            w.etag = etag;
        }
    }

    pub(super) fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            t.abort();
        }
    }
}

async fn poll(ctx: Arc<Ctx>, poller: Poller) {
    let mut tick = tokio::time::interval(ctx.config.twin_poll);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let device = poller.lock().device_id.clone();
        let Some(device_id) = device else {
            if !ctx.link.is_connected() {
                let probe = ctx
                    .config
                    .service
                    .query("SELECT * FROM devices", None, Some(1))
                    .await;
                ctx.link.record(&ctx, &probe).await;
            }
            continue;
        };
        let result = ctx.config.service.get_twin(&device_id).await;
        ctx.link.record(&ctx, &result).await;
        match result {
            Ok(twin) => {
                let etag = etag_of(&twin);
                let fresh = {
                    let mut w = poller.lock();
                    let fresh =
                        w.device_id.as_deref() == Some(device_id.as_str()) && w.etag != etag;
                    if fresh {
                        w.etag = etag;
                    }
                    fresh
                };
                if fresh {
                    ctx.send(HubEvent::Twin { device_id, twin }).await;
                }
            }
            Err(e) if e.code() == Some(ErrorCode::DeviceNotFound) => {
                let mut w = poller.lock();
                if w.device_id.as_deref() == Some(device_id.as_str()) {
                    *w = Watched::default();
                }
            }
            Err(e) => tracing::debug!(device = %device_id, error = %e, "twin poll failed"),
        }
    }
}
