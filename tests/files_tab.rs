//! The Files tab's storage reads against the real local hub: a device uploads, the backend
//! lists the upload container while the tab is on screen and reports file upload
//! notifications, previews read the first bytes, downloads write the same bytes (or
//! nothing), and List Blobs pages with markers.

mod common;

use std::time::Duration;

use common::TestHub;
use hubtui::client::backend::{self, BackendConfig};
use hubtui::client::device::{DeviceClient, DeviceClientOptions};
use hubtui::client::events::{HubCommand, HubEvent, OnScreen};
use tokio::sync::mpsc;

const CONTAINER: &str = "fileuploads";
const WAIT: Duration = Duration::from_secs(15);

struct Explorer {
    commands: mpsc::UnboundedSender<HubCommand>,
    events: mpsc::Receiver<HubEvent>,
}

fn start(hub: &TestHub, notifications_by_default: bool) -> Explorer {
    start_with(hub, notifications_by_default, Some(hub.blob_account()))
}

fn start_with(
    hub: &TestHub,
    notifications_by_default: bool,
    storage: Option<hubtui::client::storage::BlobAccount>,
) -> Explorer {
    let mut config = BackendConfig::new(hub.service_client(), hub.trust());
    config.amqp_port = hub.hub.info.ports.amqp;
    config.devices_poll = Duration::from_millis(300);
    config.storage = storage;
    config.file_notifications = notifications_by_default;
    let (commands, commands_rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::channel(1024);
    backend::spawn(config, commands_rx, events_tx);
    Explorer { commands, events }
}

impl Explorer {
    fn send(&self, cmd: HubCommand) {
        self.commands.send(cmd).unwrap();
    }

    fn show_files(&self) {
        self.send(HubCommand::Visible(OnScreen {
            files: Some(CONTAINER.into()),
            ..OnScreen::default()
        }));
    }

    async fn expect<T>(&mut self, what: &str, mut pick: impl FnMut(&HubEvent) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let ev = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
                .expect("backend alive");
            if let Some(v) = pick(&ev) {
                return v;
            }
        }
    }

    /// Downloads `blob` of the upload container to `path`: its outcome.
    async fn download(&mut self, blob: &str, path: &std::path::Path) -> Result<u64, String> {
        self.send(HubCommand::DownloadBlob {
            container: CONTAINER.into(),
            blob: blob.into(),
            path: path.to_path_buf(),
        });
        self.expect("a download's outcome", |e| match e {
            HubEvent::Downloaded { result, .. } => Some(result.clone()),
            _ => None,
        })
        .await
    }

    /// The next listing that has `name`; (its size, all names).
    async fn listing_with(&mut self, name: &str) -> (u64, Vec<String>) {
        self.expect(&format!("a listing with {name}"), |e| match e {
            HubEvent::Blobs {
                container, items, ..
            } if container == CONTAINER => items
                .iter()
                .find(|b| b.name == name)
                .map(|b| (b.size, items.iter().map(|b| b.name.clone()).collect())),
            _ => None,
        })
        .await
    }

    async fn uploaded(&mut self, name: &str) -> u64 {
        self.expect(&format!("a notification of {name}"), |e| match e {
            HubEvent::FileUploaded(n) if n.blob_name == name => {
                assert_eq!(n.device_id, "cam-1");
                Some(n.size)
            }
            _ => None,
        })
        .await
    }
}

async fn camera(hub: &TestHub) -> DeviceClient {
    let key = hub.create_device("cam-1").await;
    let opts = DeviceClientOptions {
        request_timeout: Duration::from_secs(5),
        ..hub.device_options()
    };
    DeviceClient::connect(&hub.device_cs("cam-1", &key), opts)
        .unwrap()
        .0
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn uploads_are_listed_notified_previewed_and_downloaded() {
    let hub = TestHub::start().await;
    let device = camera(&hub).await;
    let reading = br#"{"temperature":21.5,"unit":"C"}"#.to_vec();
    device
        .upload_bytes(reading.clone(), "reading.json")
        .await
        .unwrap();

    let mut ex = start(&hub, true);
    ex.show_files();
    let (size, _) = ex.listing_with("cam-1/reading.json").await;
    assert_eq!(size, reading.len() as u64);
    // The notification of the upload made before the tab was shown is still queued.
    assert_eq!(
        ex.uploaded("cam-1/reading.json").await,
        reading.len() as u64
    );

    // A new upload is notified at once, and the next re-read lists it.
    let big = body(300_000);
    device.upload_bytes(big.clone(), "dump.bin").await.unwrap();
    assert_eq!(ex.uploaded("cam-1/dump.bin").await, big.len() as u64);
    let (size, names) = ex.listing_with("cam-1/dump.bin").await;
    assert_eq!(size, big.len() as u64);
    assert!(
        names.contains(&"cam-1/reading.json".to_string()),
        "{names:?}"
    );

    ex.send(HubCommand::PreviewBlob {
        container: CONTAINER.into(),
        blob: "cam-1/dump.bin".into(),
        bytes: 1000,
    });
    let (props, head) = ex
        .expect("a preview", |e| match e {
            HubEvent::BlobPreview { blob, head, .. } => Some((blob.clone(), head.clone())),
            HubEvent::BlobPreviewFailed { reason, .. } => panic!("{reason}"),
            _ => None,
        })
        .await;
    assert_eq!(head, big[..1000]);
    assert_eq!(props.size, big.len() as u64);
    assert!(props.last_modified.is_some());
    assert!(!props.etag.is_empty());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.bin");
    let result = ex.download("cam-1/dump.bin", &path).await;
    assert_eq!(result, Ok(big.len() as u64));
    assert_eq!(std::fs::read(&path).unwrap(), big);
    // Again to the same path: refused in one sentence, the file there untouched.
    std::fs::write(&path, b"mine").unwrap();
    let result = ex.download("cam-1/dump.bin", &path).await;
    assert!(result.unwrap_err().contains("already exists"));
    assert_eq!(std::fs::read(&path).unwrap(), b"mine");

    // A blob that is not there leaves nothing at the path, not even a temp file.
    let missing = dir.path().join("missing.bin");
    let result = ex.download("cam-1/nope.bin", &missing).await;
    let e = result.unwrap_err();
    assert!(e.contains("404") && e.contains("cam-1/nope.bin"), "{e}");
    assert!(!missing.exists());
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from("dump.bin")]);

    ex.send(HubCommand::ListContainers);
    let names = ex
        .expect("containers", |e| match e {
            HubEvent::Containers(names) => Some(names.clone()),
            HubEvent::Error(e) => panic!("{e}"),
            _ => None,
        })
        .await;
    assert!(names.contains(&CONTAINER.to_string()), "{names:?}");
}

#[tokio::test]
async fn a_real_hubs_notifications_are_taken_only_when_asked() {
    let hub = TestHub::start().await;
    let device = camera(&hub).await;
    let mut ex = start(&hub, false);
    ex.show_files();
    let missing = ex
        .expect("a listing of a container not made yet", |e| match e {
            HubEvent::BlobsFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert_eq!(
        missing,
        "there is no container fileuploads yet; the first device upload makes it"
    );
    device
        .upload_bytes(b"hello".to_vec(), "a.txt")
        .await
        .unwrap();
    ex.listing_with("cam-1/a.txt").await;
    let notified = tokio::time::timeout(
        Duration::from_secs(2),
        ex.expect("no notification", |e| {
            matches!(e, HubEvent::FileUploaded(_)).then_some(())
        }),
    )
    .await;
    assert!(notified.is_err(), "a notification was taken without asking");
    ex.send(HubCommand::FileNotifications(true));
    assert_eq!(ex.uploaded("cam-1/a.txt").await, 5);
}

#[tokio::test]
async fn list_blobs_pages_with_markers_and_stops_at_the_limit() {
    let hub = TestHub::start().await;
    let device = camera(&hub).await;
    for i in 0..5 {
        device
            .upload_bytes(vec![b'x'; i + 1], &format!("f{i}.txt"))
            .await
            .unwrap();
    }
    let account = hub.blob_account();
    let first = account.list_blobs(CONTAINER, None, None, 2).await.unwrap();
    assert_eq!(first.items.len(), 2);
    let marker = first.next_marker.expect("more pages");
    let second = account
        .list_blobs(CONTAINER, None, Some(&marker), 2)
        .await
        .unwrap();
    assert_eq!(second.items.len(), 2);
    assert!(second.items[0].name > first.items[1].name);

    let (all, truncated) = account
        .list_all_blobs(CONTAINER, None, 2, 100)
        .await
        .unwrap();
    assert!(!truncated);
    let names: Vec<_> = all.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cam-1/f0.txt",
            "cam-1/f1.txt",
            "cam-1/f2.txt",
            "cam-1/f3.txt",
            "cam-1/f4.txt"
        ]
    );
    assert_eq!(all[3].size, 4);
    let (some, truncated) = account.list_all_blobs(CONTAINER, None, 2, 3).await.unwrap();
    assert!(truncated);
    assert_eq!(some.len(), 3);
    let (prefixed, _) = account
        .list_all_blobs(CONTAINER, Some("cam-1/f4"), 2, 100)
        .await
        .unwrap();
    assert_eq!(prefixed.len(), 1);

    let e = account
        .list_blobs("no-such-container", None, None, 2)
        .await
        .unwrap_err();
    assert!(
        e.message.contains("404") && e.message.contains("ContainerNotFound"),
        "{e}"
    );
}

/// Without a storage account every read of the tab answers, in one sentence, instead of
/// leaving the tab waiting.
#[tokio::test]
async fn without_a_storage_account_every_read_answers() {
    let hub = TestHub::start().await;
    let mut ex = start_with(&hub, false, None);
    ex.show_files();
    let reason = ex
        .expect("the listing's failure", |e| match e {
            HubEvent::BlobsFailed { reason, .. } => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(reason.contains("could not be set up"), "{reason}");
    ex.send(HubCommand::ListContainers);
    ex.expect("the picker's failure", |e| match e {
        HubEvent::Error(m) if m.starts_with("cannot list the containers") => Some(()),
        _ => None,
    })
    .await;
    ex.send(HubCommand::PreviewBlob {
        container: CONTAINER.into(),
        blob: "cam-1/a.png".into(),
        bytes: 64,
    });
    let blob = ex
        .expect("the preview's failure", |e| match e {
            HubEvent::BlobPreviewFailed { blob, .. } => Some(blob.clone()),
            _ => None,
        })
        .await;
    assert_eq!(blob, "cam-1/a.png");
}
