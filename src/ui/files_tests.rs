//! Snapshot tests of the Files tab: the list, text, JSON and image previews (half-blocks
//! under tests), and the sentence shown when no storage account is configured.

use chrono::{TimeZone, Utc};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::Color;

use super::render;
use super::tests::{check_snapshot, text};
use super::theme::Theme;
use crate::app::files_tests::blob;
use crate::app::{Action, App, Config, Tab, update};
use client::events::{FileUploaded, HubEvent};

fn files_app(storage: bool) -> App {
    let mut app = App::new(Config {
        storage: storage.then(|| "devstoreaccount1".to_string()),
        ..Config::default()
    });
    let _ = app.start();
    update(&mut app, Action::SelectTab(Tab::Files));
    if !storage {
        return app;
    }
    update(
        &mut app,
        Action::Hub(HubEvent::Blobs {
            container: "fileuploads".into(),
            items: vec![
                blob("camera-01/capture-20240501-1201.png", 1, 5_321, "image/png"),
                blob("thermostat-a/readings.json", 7, 184, "application/json"),
                blob("camera-01/notes.txt", 3, 96, "text/plain"),
                blob(
                    "sensor-b/logs/2024/05/01/a-very-long-log-file-name.log",
                    5,
                    3_400_000,
                    "application/octet-stream",
                ),
                blob("evil\u{1b}[31m/x.txt", 0, 1, ""),
            ],
            truncated: false,
        }),
    );
    update(
        &mut app,
        Action::Hub(HubEvent::FileUploaded(FileUploaded {
            device_id: "camera-01".into(),
            blob_name: "camera-01/capture-20240501-1210.png".into(),
            size: 5_321,
            last_updated: Some(Utc.with_ymd_and_hms(2024, 5, 1, 12, 10, 0).unwrap()),
        })),
    );
    app
}

/// Opens the preview of `name` and answers it with `head`.
fn preview(app: &mut App, name: &str, content_type: &str, head: &[u8]) {
    let at = app
        .files
        .order
        .iter()
        .position(|&i| app.files.rows[i].blob.name == name)
        .unwrap();
    app.files.selected = at;
    update(app, Action::OpenDetail);
    update(
        app,
        Action::Hub(HubEvent::BlobPreview {
            container: "fileuploads".into(),
            blob: blob(name, 9, head.len() as u64, content_type),
            head: head.to_vec(),
        }),
    );
}

fn draw(app: &App, w: u16, h: u16) -> ratatui::buffer::Buffer {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal
        .draw(|f| render(f, app, &Theme::default_dark()))
        .unwrap();
    terminal.backend().buffer().clone()
}

fn snapshot(name: &str, app: &App) {
    for (w, h) in [(80, 24), (120, 40)] {
        let t = text(&draw(app, w, h));
        assert!(
            !t.contains('\u{1b}'),
            "raw escape reached the screen in {name}"
        );
        check_snapshot(&format!("{name}_{w}x{h}"), &t);
    }
}

#[test]
fn files_list() {
    let app = files_app(true);
    snapshot("files_list", &app);
}

#[test]
fn files_text_preview() {
    let mut app = files_app(true);
    preview(
        &mut app,
        "camera-01/notes.txt",
        "text/plain",
        b"lens cleaned\n\tfocus ok\n\x1b]0;pwned\x07done\n",
    );
    snapshot("files_text_preview", &app);
}

#[test]
fn files_json_preview() {
    let mut app = files_app(true);
    preview(
        &mut app,
        "thermostat-a/readings.json",
        "application/json",
        br#"{"readings":[{"t":21.5,"at":"2024-05-01T12:00:00Z"},{"t":21.7}],"unit":"C"}"#,
    );
    snapshot("files_json_preview", &app);
}

#[test]
fn files_image_preview_in_half_blocks() {
    let mut app = files_app(true);
    preview(
        &mut app,
        "camera-01/capture-20240501-1201.png",
        "image/png",
        include_bytes!("../../assets/capture.png"),
    );
    snapshot("files_image_preview", &app);
    // The picture is really there: half-block cells coloured from the image.
    let buf = draw(&app, 120, 40);
    let coloured = buf
        .content()
        .iter()
        .filter(|c| c.symbol() == "▀" && matches!(c.fg, Color::Rgb(..)))
        .count();
    assert!(coloured > 100, "only {coloured} image cells");
}

#[test]
fn files_no_storage_configured() {
    let app = files_app(false);
    snapshot("files_no_storage", &app);
    assert!(text(&draw(&app, 80, 24)).contains("No storage account is configured"));
}

#[test]
fn files_help_lists_the_tab_keys() {
    let mut app = files_app(true);
    update(&mut app, Action::ToggleHelp);
    snapshot("files_help", &app);
    let screen = text(&draw(&app, 80, 24));
    for key in [
        "preview",
        "download",
        "live (real hub's queue)",
        "open container",
        "6           Files tab",
    ] {
        assert!(screen.contains(key), "{key} missing:\n{screen}");
    }
}
