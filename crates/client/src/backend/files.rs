//! The Files tab's reads against the storage account: a container's blobs (page by page,
//! up to a limit), the account's containers, a blob's preview and download; and file
//! upload notifications while the tab is on screen.

use std::path::PathBuf;
use std::sync::Arc;

use crate::events::{FileUploaded, HubEvent, LinkState};
use crate::service::{StreamUpdate, receive_file_notifications};
use crate::storage::BlobAccount;

use super::Ctx;

/// Blobs per List Blobs request.
const PAGE_SIZE: u32 = 1000;
/// Blobs kept from one listing; the tab says when a container has more.
pub const LIST_LIMIT: usize = 5000;
/// Containers kept for the picker.
const CONTAINER_LIMIT: usize = 1000;

/// Why there is no account to read, in the words of the other answers.
const NO_ACCOUNT: &str = "the storage account could not be set up; the status bar said why";

fn account(ctx: &Ctx) -> Option<&BlobAccount> {
    ctx.config.storage.as_ref()
}

/// Lists `container` and reports it; a busy storage account pauses polling.
pub(super) async fn list(ctx: &Arc<Ctx>, container: String) {
    let Some(account) = account(ctx) else {
        ctx.send(HubEvent::BlobsFailed {
            container,
            reason: NO_ACCOUNT.into(),
        })
        .await;
        return;
    };
    ctx.poller.files_read();
    let result = account
        .list_all_blobs(&container, None, PAGE_SIZE, LIST_LIMIT)
        .await;
    if let Some(event) = ctx.throttle.note_storage(&result) {
        ctx.send(event).await;
    }
    let event = match result {
        Ok((items, truncated)) => HubEvent::Blobs {
            container,
            items,
            truncated,
        },
        // The hub makes its upload container at the first upload.
        Err(e) if e.code == "ContainerNotFound" => HubEvent::BlobsFailed {
            reason: format!(
                "there is no container {container} yet; the first device upload makes it"
            ),
            container,
        },
        Err(e) => HubEvent::BlobsFailed {
            container,
            reason: e.to_string(),
        },
    };
    ctx.send(event).await;
}

pub(super) async fn containers(ctx: Arc<Ctx>) {
    let result = match account(&ctx) {
        Some(account) => account
            .list_containers(CONTAINER_LIMIT)
            .await
            .map_err(|e| e.to_string()),
        None => Err(NO_ACCOUNT.to_string()),
    };
    let event = match result {
        Ok(names) => HubEvent::Containers(names),
        Err(e) => HubEvent::Error(format!("cannot list the containers: {e}")),
    };
    ctx.send(event).await;
}

pub(super) async fn preview(ctx: Arc<Ctx>, container: String, blob: String, bytes: usize) {
    let Some(account) = account(&ctx) else {
        let reason = NO_ACCOUNT.to_string();
        ctx.send(HubEvent::BlobPreviewFailed {
            container,
            blob,
            reason,
        })
        .await;
        return;
    };
    let result = async {
        let properties = account.properties(&container, &blob).await?;
        let head = account.read_head(&container, &blob, bytes).await?;
        Ok::<_, crate::storage::BlobError>((properties, head))
    }
    .await;
    let event = match result {
        Ok((blob, head)) => HubEvent::BlobPreview {
            container,
            blob,
            head,
        },
        Err(e) => HubEvent::BlobPreviewFailed {
            container,
            blob,
            reason: e.to_string(),
        },
    };
    ctx.send(event).await;
}

pub(super) async fn download(ctx: Arc<Ctx>, container: String, blob: String, path: PathBuf) {
    let result = match account(&ctx) {
        Some(account) => account
            .download_to(&container, &blob, &path)
            .await
            .map_err(|e| e.to_string()),
        None => Err(NO_ACCOUNT.to_string()),
    };
    ctx.send(HubEvent::Downloaded { path, result }).await;
}

/// Receives file upload notifications until aborted (the tab left the screen).
pub(super) async fn notifications(ctx: Arc<Ctx>) {
    let (_reader, mut updates) =
        receive_file_notifications(ctx.config.service.connection(), ctx.config.amqp_options());
    while let Some(update) = updates.recv().await {
        match update {
            StreamUpdate::Item(n) => {
                let last_updated = chrono::DateTime::parse_from_rfc3339(&n.last_updated_time)
                    .ok()
                    .map(|t| t.with_timezone(&chrono::Utc));
                ctx.send(HubEvent::FileUploaded(FileUploaded {
                    device_id: n.device_id,
                    blob_name: n.blob_name,
                    size: n.blob_size_in_bytes,
                    last_updated,
                }))
                .await;
            }
            StreamUpdate::State {
                state: LinkState::Failed,
                detail,
            } => {
                let why = detail.unwrap_or_else(|| "the hub closed the link".into());
                ctx.send(HubEvent::Error(format!(
                    "file upload notifications stopped: {why}"
                )))
                .await;
            }
            StreamUpdate::State { .. } => {}
        }
    }
}
