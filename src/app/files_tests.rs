//! Files tab: update tests (keys and backend events in, state and commands out).

use chrono::{TimeZone, Utc};
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use client::events::{BlobItem, FileUploaded, HubCommand, HubEvent};

use super::blobpreview::PreviewBody;
use super::files::FileSort;
use super::{Action, App, Config, Mode, PromptKind, Tab, update};

/// A blob modified at 12:`minute` on 2024-05-01 (the Files tab's view tests use it too).
pub(crate) fn blob(name: &str, minute: u32, size: u64, content_type: &str) -> BlobItem {
    BlobItem {
        name: name.into(),
        size,
        content_type: content_type.into(),
        last_modified: Some(Utc.with_ymd_and_hms(2024, 5, 1, 12, minute, 0).unwrap()),
        etag: format!("\"0x8DC{minute:02}\""),
    }
}

fn listing() -> HubEvent {
    HubEvent::Blobs {
        container: "fileuploads".into(),
        items: vec![
            blob("cam-1/a.png", 1, 2048, "image/png"),
            blob("cam-2/b.json", 3, 40, "application/json"),
            blob("cam-1/c.txt", 2, 10, "text/plain"),
        ],
        truncated: false,
    }
}

fn app_with(storage: bool, embedded: bool) -> App {
    let mut app = App::new(Config {
        storage: storage.then(|| "devstoreaccount1".to_string()),
        embedded,
        file_notifications: embedded,
        ..Config::default()
    });
    let _ = app.start();
    app
}

fn names(app: &App) -> Vec<&str> {
    app.files
        .order
        .iter()
        .map(|&i| app.files.rows[i].blob.name.as_str())
        .collect()
}

fn files_shown(cmds: &[HubCommand]) -> Option<Option<String>> {
    cmds.iter().find_map(|c| match c {
        HubCommand::Visible(s) => Some(s.files.clone()),
        _ => None,
    })
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        update(
            app,
            Action::Input(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        );
    }
}

#[test]
fn the_listing_is_on_screen_only_on_the_files_tab() {
    let mut app = app_with(true, true);
    assert_eq!(app.on_screen().files, None);
    let (_, cmds) = update(&mut app, Action::SelectTab(Tab::Files));
    assert_eq!(files_shown(&cmds), Some(Some("fileuploads".into())));
    assert!(app.files.loading);
    let (_, cmds) = update(&mut app, Action::NextTab);
    assert_eq!(app.tab, Tab::Devices, "Files is the last tab");
    assert_eq!(files_shown(&cmds), Some(None));

    let mut none = app_with(false, false);
    let (_, cmds) = update(&mut none, Action::SelectTab(Tab::Files));
    assert_eq!(
        files_shown(&cmds).flatten(),
        None,
        "nothing to read without storage"
    );
    let (changed, cmds) = update(&mut none, Action::Refresh);
    assert!(!changed && cmds.is_empty());
}

#[test]
fn rows_are_newest_first_grouped_by_device_and_filtered() {
    let mut app = app_with(true, true);
    update(&mut app, Action::SelectTab(Tab::Files));
    update(&mut app, Action::Hub(listing()));
    assert!(!app.files.loading);
    assert_eq!(names(&app), ["cam-2/b.json", "cam-1/c.txt", "cam-1/a.png"]);
    assert_eq!(app.files.rows[0].device, "cam-1");
    update(&mut app, Action::Down);
    update(&mut app, Action::ToggleSort);
    assert_eq!(app.files.sort, FileSort::Device);
    assert_eq!(names(&app), ["cam-1/c.txt", "cam-1/a.png", "cam-2/b.json"]);
    assert_eq!(
        app.files.selected_row().unwrap().blob.name,
        "cam-1/c.txt",
        "the selection stays on its blob"
    );
    update(&mut app, Action::StartFilter);
    assert_eq!(app.prompt.as_ref().unwrap().kind, PromptKind::FilesFilter);
    type_text(&mut app, "PNG");
    update(&mut app, Action::Submit);
    assert_eq!(names(&app), ["cam-1/a.png"]);
}

#[test]
fn a_notification_adds_a_row_at_once_and_it_stays_new() {
    let mut app = app_with(true, true);
    update(&mut app, Action::SelectTab(Tab::Files));
    update(&mut app, Action::Hub(listing()));
    let uploaded = FileUploaded {
        device_id: "cam-3".into(),
        blob_name: "cam-3/new.txt".into(),
        size: 5,
        last_updated: Some(Utc.with_ymd_and_hms(2024, 5, 1, 13, 0, 0).unwrap()),
    };
    let (changed, _) = update(&mut app, Action::Hub(HubEvent::FileUploaded(uploaded)));
    assert!(changed);
    assert_eq!(names(&app)[0], "cam-3/new.txt");
    let row = &app.files.rows[app.files.order[0]];
    assert!(row.new);
    assert_eq!(row.device, "cam-3");
    let HubEvent::Blobs { mut items, .. } = listing() else {
        unreachable!()
    };
    items.push(blob("cam-3/new.txt", 59, 5, "text/plain"));
    update(
        &mut app,
        Action::Hub(HubEvent::Blobs {
            container: "fileuploads".into(),
            items,
            truncated: false,
        }),
    );
    let marked: Vec<_> = app.files.rows.iter().filter(|r| r.new).collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0].blob.content_type, "text/plain");
    // A listing of another container is not this one's.
    update(
        &mut app,
        Action::Hub(HubEvent::Blobs {
            container: "other".into(),
            items: vec![],
            truncated: false,
        }),
    );
    assert_eq!(app.files.rows.len(), 4);
}

#[test]
fn enter_previews_and_the_answer_is_pretty_json() {
    let mut app = app_with(true, true);
    update(&mut app, Action::SelectTab(Tab::Files));
    update(&mut app, Action::Hub(listing()));
    let (_, cmds) = update(&mut app, Action::OpenDetail);
    assert_eq!(
        cmds,
        [HubCommand::PreviewBlob {
            container: "fileuploads".into(),
            blob: "cam-2/b.json".into(),
            bytes: 64 * 1024,
        }]
    );
    assert_eq!(app.mode(), Mode::Preview);
    update(
        &mut app,
        Action::Hub(HubEvent::BlobPreview {
            container: "fileuploads".into(),
            blob: blob("cam-2/b.json", 3, 7, "application/json"),
            head: br#"{"a":1}"#.to_vec(),
        }),
    );
    let preview = app.files.preview.as_ref().unwrap();
    assert_eq!(
        preview.body,
        PreviewBody::Json(vec!["{".into(), "  \"a\": 1".into(), "}".into()])
    );
    assert_eq!(preview.blob.size, 7);
    update(&mut app, Action::Back);
    assert_eq!(app.mode(), Mode::Normal);
    // An image asks for enough bytes to decode it.
    update(&mut app, Action::Bottom);
    let (_, cmds) = update(&mut app, Action::OpenDetail);
    assert!(matches!(
        &cmds[..],
        [HubCommand::PreviewBlob { bytes, .. }] if *bytes == 4 * 1024 * 1024
    ));
    update(
        &mut app,
        Action::Hub(HubEvent::BlobPreviewFailed {
            container: "fileuploads".into(),
            blob: "cam-1/a.png".into(),
            reason: "the storage account refused it".into(),
        }),
    );
    assert!(matches!(
        &app.files.preview.as_ref().unwrap().body,
        PreviewBody::Unavailable(why) if why.contains("refused")
    ));
}

#[test]
fn d_asks_where_then_downloads_and_reports() {
    let mut app = app_with(true, true);
    update(&mut app, Action::SelectTab(Tab::Files));
    update(&mut app, Action::Hub(listing()));
    update(&mut app, Action::Download);
    let prompt = app.prompt.as_ref().unwrap();
    assert_eq!(prompt.kind, PromptKind::DownloadPath);
    assert_eq!(prompt.input.value(), "./b.json");
    let (_, cmds) = update(&mut app, Action::Submit);
    assert_eq!(
        cmds,
        [HubCommand::DownloadBlob {
            container: "fileuploads".into(),
            blob: "cam-2/b.json".into(),
            path: "./b.json".into(),
        }]
    );
    update(
        &mut app,
        Action::Hub(HubEvent::Downloaded {
            path: "./b.json".into(),
            result: Err("cannot write ./b.json: Permission denied".into()),
        }),
    );
    assert_eq!(
        app.status.last_error.as_deref(),
        Some("cannot write ./b.json: Permission denied")
    );
    // Esc on the prompt downloads nothing.
    update(&mut app, Action::Download);
    let (_, cmds) = update(&mut app, Action::Back);
    assert!(cmds.is_empty() && app.prompt.is_none() && app.files.download.is_none());
}

#[test]
fn n_takes_a_real_hubs_notifications_only_when_asked() {
    let mut app = app_with(true, false);
    update(&mut app, Action::SelectTab(Tab::Files));
    let (_, cmds) = update(&mut app, Action::ToggleLive);
    assert_eq!(cmds, [HubCommand::FileNotifications(true)]);
    assert!(
        app.status
            .notice
            .as_deref()
            .is_some_and(|n| n.contains("other services may be waiting")),
        "{:?}",
        app.status.notice
    );
    let (_, cmds) = update(&mut app, Action::ToggleLive);
    assert_eq!(cmds, [HubCommand::FileNotifications(false)]);

    let mut own = app_with(true, true);
    update(&mut own, Action::SelectTab(Tab::Files));
    let (_, cmds) = update(&mut own, Action::ToggleLive);
    assert!(cmds.is_empty(), "always on for the explorer's own hub");
}

#[test]
fn the_container_picker_switches_what_is_listed() {
    let mut app = app_with(true, true);
    update(&mut app, Action::SelectTab(Tab::Files));
    update(&mut app, Action::Hub(listing()));
    let (_, cmds) = update(&mut app, Action::PickContainer);
    assert_eq!(cmds, [HubCommand::ListContainers]);
    assert_eq!(app.mode(), Mode::Picker);
    update(
        &mut app,
        Action::Hub(HubEvent::Containers(vec![
            "archive".into(),
            "fileuploads".into(),
        ])),
    );
    assert_eq!(app.files.picker.as_ref().unwrap().selected, 1);
    update(&mut app, Action::Up);
    let (_, cmds) = update(&mut app, Action::Submit);
    assert_eq!(app.mode(), Mode::Normal);
    assert_eq!(app.files.container, "archive");
    assert!(app.files.rows.is_empty() && app.files.loading);
    assert_eq!(files_shown(&cmds), Some(Some("archive".into())));
}
