//! Files tab: the blobs of a storage container (device uploads by default), sorted newest
//! first or grouped by device, filtered with `/`; a container picker; a preview pane for a
//! blob's first bytes; downloads to a path asked in a prompt; live rows from file upload
//! notifications.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};

use client::events::{BlobItem, FileUploaded, HubCommand, HubEvent};

use super::blobpreview::{self, BlobKind, PreviewBody};
use super::input::TextField;
use super::{Action, App, Prompt, PromptKind};

/// How the rows are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileSort {
    /// Last modified, newest first.
    #[default]
    Newest,
    /// By device (the blob name's first path segment), newest first within each.
    Device,
}

impl FileSort {
    pub fn label(self) -> &'static str {
        match self {
            FileSort::Newest => "newest first",
            FileSort::Device => "by device",
        }
    }
}

/// One blob in the list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRow {
    /// The blob name's first path segment (uploads land as `{deviceId}/{name}`).
    pub device: String,
    pub blob: BlobItem,
    /// Arrived by notification since the tab was opened.
    pub new: bool,
}

/// The container picker (`c`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerPicker {
    /// None until the account's containers are read.
    pub names: Option<Vec<String>>,
    pub selected: usize,
}

/// The preview pane (Enter).
#[derive(Clone, Debug, PartialEq)]
pub struct Preview {
    pub container: String,
    pub name: String,
    pub kind: BlobKind,
    /// Properties as Get Blob Properties read them; the row's until then.
    pub blob: BlobItem,
    pub body: PreviewBody,
    pub scroll: usize,
}

#[derive(Clone, Debug, Default)]
pub struct FilesState {
    pub container: String,
    pub rows: Vec<FileRow>,
    /// Indices into `rows`: the rows shown, filtered and sorted.
    pub order: Vec<usize>,
    /// Position in `order`.
    pub selected: usize,
    pub filter: String,
    pub sort: FileSort,
    /// A listing of `container` is awaited.
    pub loading: bool,
    /// The container has more blobs than the explorer keeps.
    pub truncated: bool,
    /// The last listing failed: one sentence.
    pub error: Option<String>,
    pub picker: Option<ContainerPicker>,
    pub preview: Option<Preview>,
    /// The user turned file upload notifications on (`n`), where they are not by default.
    pub live: bool,
    /// The blob a download prompt is asking a path for.
    pub download: Option<String>,
    /// Names that arrived by notification: still marked new after a re-listing.
    new_names: BTreeSet<String>,
    next_image: u64,
}

fn device_of(name: &str) -> String {
    name.split_once('/')
        .map_or_else(String::new, |(d, _)| d.to_string())
}

fn newest_first(a: &BlobItem, b: &BlobItem) -> std::cmp::Ordering {
    b.last_modified
        .cmp(&a.last_modified)
        .then_with(|| a.name.cmp(&b.name))
}

impl FilesState {
    pub fn new(container: String) -> Self {
        Self {
            container,
            ..Self::default()
        }
    }

    pub fn selected_row(&self) -> Option<&FileRow> {
        self.order.get(self.selected).map(|&i| &self.rows[i])
    }

    /// Recomputes `order` after rows, filter or sort changed, keeping the selected blob
    /// selected when it is still shown.
    fn reorder(&mut self) {
        let keep = self.selected_row().map(|r| r.blob.name.clone());
        let needle = self.filter.to_lowercase();
        let mut order: Vec<usize> = (0..self.rows.len())
            .filter(|&i| {
                needle.is_empty() || self.rows[i].blob.name.to_lowercase().contains(&needle)
            })
            .collect();
        let rows = &self.rows;
        match self.sort {
            FileSort::Newest => order.sort_by(|&a, &b| newest_first(&rows[a].blob, &rows[b].blob)),
            FileSort::Device => order.sort_by(|&a, &b| {
                rows[a]
                    .device
                    .cmp(&rows[b].device)
                    .then_with(|| newest_first(&rows[a].blob, &rows[b].blob))
            }),
        }
        self.order = order;
        self.selected = keep
            .and_then(|name| {
                self.order
                    .iter()
                    .position(|&i| self.rows[i].blob.name == name)
            })
            .unwrap_or(0)
            .min(self.order.len().saturating_sub(1));
    }

    fn set_listing(&mut self, items: Vec<BlobItem>, truncated: bool) {
        self.rows = items
            .into_iter()
            .map(|blob| FileRow {
                device: device_of(&blob.name),
                new: self.new_names.contains(&blob.name),
                blob,
            })
            .collect();
        self.truncated = truncated;
        self.loading = false;
        self.error = None;
        self.reorder();
    }

    /// Adds or updates the row a notification names, marked new.
    fn uploaded(&mut self, n: &FileUploaded) {
        self.new_names.insert(n.blob_name.clone());
        match self.rows.iter_mut().find(|r| r.blob.name == n.blob_name) {
            Some(row) => {
                row.blob.size = n.size;
                row.blob.last_modified = n.last_updated.or(row.blob.last_modified);
                row.new = true;
            }
            None => self.rows.push(FileRow {
                device: if n.device_id.is_empty() {
                    device_of(&n.blob_name)
                } else {
                    n.device_id.clone()
                },
                blob: BlobItem {
                    name: n.blob_name.clone(),
                    size: n.size,
                    last_modified: n.last_updated,
                    ..BlobItem::default()
                },
                new: true,
            }),
        }
        self.reorder();
    }

    fn switch_container(&mut self, container: String) {
        if container == self.container {
            return;
        }
        *self = FilesState {
            container,
            sort: self.sort,
            live: self.live,
            loading: true,
            next_image: self.next_image,
            ..FilesState::default()
        };
    }
}

/// The path a download of `blob` goes to unless the user types another.
pub fn default_download_path(blob: &str) -> String {
    let file = blob.rsplit('/').next().unwrap_or(blob);
    format!("./{file}")
}

/// Called when the tab comes on screen: the backend lists the container then (it is on
/// screen); the list shows it is loading until the answer.
pub(super) fn shown(app: &mut App) {
    if app.config.storage.is_some() && app.files.rows.is_empty() && app.files.error.is_none() {
        app.files.loading = true;
    }
}

pub(super) fn on_action(app: &mut App, action: &Action, cmds: &mut Vec<HubCommand>) -> bool {
    if app.config.storage.is_none() {
        return false;
    }
    if let Some(picker) = app.files.picker.as_mut() {
        let len = picker.names.as_ref().map_or(0, Vec::len);
        match action {
            Action::Back => app.files.picker = None,
            Action::Up => picker.selected = picker.selected.saturating_sub(1),
            Action::Down => picker.selected = (picker.selected + 1).min(len.saturating_sub(1)),
            Action::Submit => {
                let chosen = picker
                    .names
                    .as_ref()
                    .and_then(|n| n.get(picker.selected))
                    .cloned();
                app.files.picker = None;
                if let Some(container) = chosen {
                    app.files.switch_container(container);
                }
            }
            _ => return false,
        }
        return true;
    }
    if let Some(preview) = app.files.preview.as_mut() {
        match action {
            Action::Back => app.files.preview = None,
            Action::Down => preview.scroll += 1,
            Action::Up => preview.scroll = preview.scroll.saturating_sub(1),
            Action::PageDown => preview.scroll += 20,
            Action::PageUp => preview.scroll = preview.scroll.saturating_sub(20),
            Action::Top => preview.scroll = 0,
            Action::Download => {
                let name = preview.name.clone();
                ask_download(app, &name);
            }
            _ => return false,
        }
        return true;
    }
    let f = &mut app.files;
    let len = f.order.len();
    match action {
        Action::Down => f.selected = (f.selected + 1).min(len.saturating_sub(1)),
        Action::Up => f.selected = f.selected.saturating_sub(1),
        Action::PageDown => f.selected = (f.selected + 20).min(len.saturating_sub(1)),
        Action::PageUp => f.selected = f.selected.saturating_sub(20),
        Action::Top => f.selected = 0,
        Action::Bottom => f.selected = len.saturating_sub(1),
        Action::StartFilter => {
            app.prompt = Some(Prompt {
                kind: PromptKind::FilesFilter,
                input: TextField::new(f.filter.clone()),
            })
        }
        Action::ToggleSort => {
            f.sort = match f.sort {
                FileSort::Newest => FileSort::Device,
                FileSort::Device => FileSort::Newest,
            };
            f.reorder();
        }
        Action::Refresh => {
            f.loading = true;
            cmds.push(HubCommand::ListBlobs {
                container: f.container.clone(),
            });
        }
        Action::PickContainer => {
            f.picker = Some(ContainerPicker::default());
            cmds.push(HubCommand::ListContainers);
        }
        Action::OpenDetail => {
            let Some(row) = f.selected_row() else {
                return false;
            };
            let kind = blobpreview::kind_of(&row.blob.content_type, &row.blob.name);
            cmds.push(HubCommand::PreviewBlob {
                container: f.container.clone(),
                blob: row.blob.name.clone(),
                bytes: blobpreview::preview_bytes(kind),
            });
            f.preview = Some(Preview {
                container: f.container.clone(),
                name: row.blob.name.clone(),
                kind,
                blob: row.blob.clone(),
                body: PreviewBody::Loading,
                scroll: 0,
            });
        }
        Action::Download => {
            let Some(name) = f.selected_row().map(|r| r.blob.name.clone()) else {
                return false;
            };
            ask_download(app, &name);
        }
        Action::ToggleLive => toggle_live(app, cmds),
        _ => return false,
    }
    true
}

fn ask_download(app: &mut App, blob: &str) {
    app.files.download = Some(blob.to_string());
    app.prompt = Some(Prompt {
        kind: PromptKind::DownloadPath,
        input: TextField::new(default_download_path(blob)),
    });
}

fn toggle_live(app: &mut App, cmds: &mut Vec<HubCommand>) {
    if app.config.file_notifications {
        app.notice("file upload notifications are always on for the explorer's own hub");
        return;
    }
    app.files.live = !app.files.live;
    cmds.push(HubCommand::FileNotifications(app.files.live));
    if app.files.live {
        app.notice(
            "receiving file upload notifications: they are taken from the hub's queue, \
             which other services may be waiting for; n stops",
        );
    } else {
        app.notice("file upload notifications off; the list is re-read instead");
    }
}

/// Enter in the filter or download prompt.
pub(super) fn on_prompt(app: &mut App, kind: PromptKind, text: String, cmds: &mut Vec<HubCommand>) {
    match kind {
        PromptKind::FilesFilter => {
            app.files.filter = text.trim().to_string();
            app.files.reorder();
        }
        PromptKind::DownloadPath => {
            let Some(blob) = app.files.download.take() else {
                return;
            };
            let path = text.trim();
            if path.is_empty() {
                app.error("no path given; nothing was downloaded");
                return;
            }
            app.notice(format!("downloading {blob} to {path}"));
            cmds.push(HubCommand::DownloadBlob {
                container: app.files.container.clone(),
                blob,
                path: PathBuf::from(path),
            });
        }
        PromptKind::DeviceFilter
        | PromptKind::TelemetryFilter
        | PromptKind::ExportPath
        | PromptKind::StartFrom
        | PromptKind::ConsumerGroup => {}
    }
}

pub(super) fn on_event(app: &mut App, event: &HubEvent) -> bool {
    let f = &mut app.files;
    match event {
        HubEvent::Blobs {
            container,
            items,
            truncated,
        } if *container == f.container => {
            f.set_listing(items.clone(), *truncated);
            true
        }
        HubEvent::BlobsFailed { container, reason } if *container == f.container => {
            f.loading = false;
            f.error = Some(super::body::escape(reason).into_owned());
            true
        }
        HubEvent::Blobs { .. } | HubEvent::BlobsFailed { .. } => true,
        HubEvent::Containers(names) => {
            if let Some(picker) = f.picker.as_mut() {
                picker.selected = names.iter().position(|n| *n == f.container).unwrap_or(0);
                picker.names = Some(names.clone());
            }
            true
        }
        HubEvent::BlobPreview {
            container,
            blob,
            head,
        } => {
            f.next_image += 1;
            let id = f.next_image;
            if let Some(p) = f.preview.as_mut()
                && p.container == *container
                && p.name == blob.name
            {
                p.kind = blobpreview::kind_of(&blob.content_type, &blob.name);
                p.body = blobpreview::preview_of(p.kind, head, blob.size, id);
                p.blob = blob.clone();
            }
            true
        }
        HubEvent::BlobPreviewFailed {
            container,
            blob,
            reason,
        } => {
            if let Some(p) = f.preview.as_mut()
                && p.container == *container
                && p.name == *blob
            {
                p.body = PreviewBody::Unavailable(super::body::escape(reason).into_owned());
            }
            true
        }
        HubEvent::FileUploaded(n) => {
            if f.container == app.config.upload_container {
                f.uploaded(n);
            }
            true
        }
        HubEvent::Downloaded { path, result } => {
            match result {
                Ok(bytes) => app.notice(format!(
                    "downloaded {} to {}",
                    super::body::human_size(usize::try_from(*bytes).unwrap_or(usize::MAX)),
                    path.display()
                )),
                Err(e) => app.error(super::body::escape(e).into_owned()),
            }
            true
        }
        _ => false,
    }
}

/// "3.2 MiB" for a blob size.
pub fn size_label(size: u64) -> String {
    super::body::human_size(usize::try_from(size).unwrap_or(usize::MAX))
}

/// "2024-05-01 12:00:03" or "" when unknown.
pub fn time_label(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
