//! Device file upload against the real hub: the device asks for a SAS URI over HTTPS,
//! uploads to the hub's blob store with it, and reports the outcome; services receive the
//! notification on `/messages/serviceBound/filenotifications`. Refusals: unknown or
//! foreign correlation ids, the per-device limit, a SAS used for another blob, no token.

mod common;

use std::time::Duration;

use common::TestHub;
use common::wait::assert_nothing_within;
use hubtui::client::device::Trust;
use hubtui::client::events::LinkState;
use hubtui::client::service::{AmqpOptions, Proxy, StreamUpdate, receive_file_notifications};
use hubtui::iothub::amqp_model::FileNotification;
use hubtui::iothub::connection_string::ServiceConnectionString;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(10);

struct Device<'a> {
    hub: &'a TestHub,
    id: String,
    token: String,
}

impl Device<'_> {
    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let url = format!(
            "{}/devices/{}{path}?{}",
            self.hub.base(),
            self.id,
            common::API
        );
        let r = self
            .hub
            .http
            .post(url)
            .header("Authorization", &self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST /files`: the upload's correlation id and the blob URL with its SAS.
    async fn start(&self, name: &str) -> (String, String) {
        let (status, body) = self.post("/files", json!({"blobName": name})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let url = format!(
            "https://{}/{}/{}{}",
            body["hostName"].as_str().unwrap(),
            body["containerName"].as_str().unwrap(),
            body["blobName"].as_str().unwrap(),
            body["sasToken"].as_str().unwrap()
        );
        (body["correlationId"].as_str().unwrap().to_string(), url)
    }
}

async fn device<'a>(hub: &'a TestHub, id: &str) -> Device<'a> {
    let key = hub.create_device(id).await;
    let token = hub.device_token(&format!("devices/{id}"), &key, common::now() + 3600);
    Device {
        hub,
        id: id.to_string(),
        token,
    }
}

async fn put_blob(hub: &TestHub, url: &str, body: &[u8]) -> StatusCode {
    hub.http
        .put(url)
        .header("x-ms-blob-type", "BlockBlob")
        .header("x-ms-version", "2021-08-06")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
}

type Notifications = mpsc::Receiver<StreamUpdate<FileNotification>>;

async fn notifications(hub: &TestHub) -> (hubtui::client::service::ReaderTask, Notifications) {
    let cs = ServiceConnectionString::parse(&hub.hub.info.service_connection_string).unwrap();
    let opts = AmqpOptions {
        trust: Trust::CaPem(hub.hub.ca_pem.clone()),
        port: hub.hub.info.ports.amqp,
        proxy: Proxy::None,
        ..AmqpOptions::default()
    };
    let (task, mut rx) = receive_file_notifications(&cs, opts);
    loop {
        match timeout(WAIT, rx.recv()).await.expect("connected in time") {
            Some(StreamUpdate::State {
                state: LinkState::Connected,
                ..
            }) => break,
            Some(StreamUpdate::State {
                state: LinkState::Failed,
                detail,
            }) => panic!("{detail:?}"),
            Some(_) => {}
            None => panic!("the receiver ended"),
        }
    }
    (task, rx)
}

async fn next_notification(rx: &mut Notifications) -> FileNotification {
    loop {
        match timeout(WAIT, rx.recv())
            .await
            .expect("a notification in time")
        {
            Some(StreamUpdate::Item(n)) => return n,
            Some(_) => {}
            None => panic!("the receiver ended"),
        }
    }
}

#[tokio::test]
async fn an_uploaded_file_is_notified_to_services() {
    let hub = TestHub::start().await;
    let cam = device(&hub, "cam-1").await;
    let (_task, mut rx) = notifications(&hub).await;

    let (status, info) = cam
        .post("/files", json!({"blobName": "shots/img 1.jpg"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{info}");
    let https = hub.hub.info.ports.https;
    assert_eq!(info["hostName"], format!("localhost:{https}/hubtuistore"));
    assert_eq!(info["containerName"], "fileuploads");
    assert_eq!(info["blobName"], "cam-1/shots/img 1.jpg");
    assert!(
        info["sasToken"].as_str().unwrap().starts_with("?sv="),
        "{info}"
    );

    let (cid, url) = cam.start("image.jpg").await;
    let image = vec![0xffu8; 4096];
    assert_eq!(put_blob(&hub, &url, &image).await, StatusCode::CREATED);
    // The SAS names this one blob: it cannot write another.
    let other = url.replace("image.jpg", "other.jpg");
    assert_eq!(put_blob(&hub, &other, b"x").await, StatusCode::FORBIDDEN);

    let outcome = json!({"correlationId": cid, "isSuccess": true, "statusCode": 200, "statusDescription": "ok"});
    let (status, body) = cam.post("/files/notifications", outcome.clone()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let n = next_notification(&mut rx).await;
    assert_eq!(n.device_id, "cam-1");
    assert_eq!(n.blob_name, "cam-1/image.jpg");
    assert_eq!(n.blob_size_in_bytes, 4096);
    assert_eq!(
        n.blob_uri,
        format!("https://localhost:{https}/hubtuistore/fileuploads/cam-1/image.jpg")
    );
    // The same correlation id cannot be reported twice.
    let (status, body) = cam.post("/files/notifications", outcome).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // The Node SDK's form: the correlation id in the path. A failure is not notified.
    let (cid, _) = cam.start("failed.bin").await;
    let (status, body) = cam
        .post(
            &format!("/files/notifications/{cid}"),
            json!({"isSuccess": false, "statusCode": 500, "statusDescription": "disk full"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_nothing_within(
        Duration::from_millis(500),
        "a notification of a failed upload (a fixed wait proves the negative)",
        next_notification(&mut rx),
    )
    .await;
}

#[tokio::test]
async fn uploads_are_refused_clearly() {
    let hub = TestHub::start().await;
    let a = device(&hub, "dev-a").await;
    let b = device(&hub, "dev-b").await;

    let (cid, _) = a.start("a.txt").await;
    let outcome = json!({"correlationId": cid, "isSuccess": true, "statusCode": 200});
    let (status, body) = b.post("/files/notifications", outcome).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("No file upload of dev-b"),
        "{body}"
    );

    let (status, body) = a.post("/files", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("needs a blobName"),
        "{body}"
    );

    // Ten under way (one already), then the device's limit.
    for i in 1..10 {
        a.start(&format!("f{i}")).await;
    }
    let (status, body) = a.post("/files", json!({"blobName": "one-too-many"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let message = body["Message"].as_str().unwrap();
    assert!(
        message.contains("DeviceMaximumActiveFileUploadLimitExceeded"),
        "{body}"
    );

    // Another device's token, and none.
    let stranger = Device {
        hub: &hub,
        id: "dev-a".into(),
        token: b.token.clone(),
    };
    let (status, _) = stranger.post("/files", json!({"blobName": "x"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let nobody = Device {
        hub: &hub,
        id: "dev-a".into(),
        token: String::new(),
    };
    let (status, _) = nobody.post("/files", json!({"blobName": "x"})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn notifications_can_be_turned_off() {
    let hub = TestHub::start_with(|o| o.settings.file_upload.notifications = false).await;
    let cam = device(&hub, "cam-1").await;
    let (_task, mut rx) = notifications(&hub).await;
    let (cid, url) = cam.start("image.jpg").await;
    assert_eq!(put_blob(&hub, &url, b"jpeg").await, StatusCode::CREATED);
    let outcome = json!({"correlationId": cid, "isSuccess": true, "statusCode": 200});
    let (status, _) = cam.post("/files/notifications", outcome).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_nothing_within(
        Duration::from_millis(500),
        "a notification with notifications off (a fixed wait proves the negative)",
        next_notification(&mut rx),
    )
    .await;
}

/// hubtui's device client: the file streamed from disk, the outcome reported, the
/// service notified; a missing file is a sentence and asks the hub for nothing.
#[tokio::test]
async fn the_device_client_uploads_a_file() {
    use hubtui::client::device::{DeviceClient, DeviceError};

    let hub = TestHub::start().await;
    let key = hub.create_device("logger").await;
    let (_task, mut rx) = notifications(&hub).await;
    let (client, _events) =
        DeviceClient::connect(&hub.device_cs("logger", &key), hub.device_options()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("boot.log");
    let log: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &log).unwrap();

    let up = client.upload_file(&path, "logs/boot 1.log").await.unwrap();
    assert_eq!(up.blob_name, "logger/logs/boot 1.log");
    assert_eq!(up.bytes, log.len() as u64);
    let n = next_notification(&mut rx).await;
    assert_eq!(
        (n.blob_name.as_str(), n.blob_size_in_bytes),
        ("logger/logs/boot 1.log", 300_000)
    );
    let stored = hub
        .hub
        .state
        .store
        .blob_get("fileuploads", "logger/logs/boot 1.log")
        .unwrap()
        .expect("the blob is stored");
    assert_eq!(stored.size, 300_000);

    let e = client
        .upload_file(&dir.path().join("missing.log"), "missing.log")
        .await
        .unwrap_err();
    assert!(matches!(e, DeviceError::Upload(_)), "{e:?}");
    assert!(
        e.to_string().starts_with("file upload: cannot read "),
        "{e}"
    );
    client.close().await;
}

/// `hubtui device --headless --upload FILE`: one upload, one JSON line, exit 0.
#[tokio::test]
async fn hubtui_device_uploads_a_file_and_says_so() {
    let hub = TestHub::start().await;
    let key = hub.create_device("cli-up").await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &hub.hub.ca_pem).unwrap();
    let file = dir.path().join("report.csv");
    std::fs::write(&file, "t,v\n1,2\n").unwrap();
    let cs = format!(
        "HostName={};DeviceId=cli-up;SharedAccessKey={key}",
        hub.host()
    );
    let https = hub.hub.info.ports.https.to_string();
    // tokio's Command: the hub serves on this test's runtime meanwhile.
    let out = tokio::process::Command::new(common::device_process::BIN)
        .args(["device", "--headless", "--connection-string", &cs, "--ca"])
        .arg(&ca)
        .args(["--https-port", &https, "--upload"])
        .arg(&file)
        .args(["--blob-name", "daily/report.csv"])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["event"], "uploaded");
    assert_eq!(line["device"], "cli-up");
    assert_eq!(line["blob"], "cli-up/daily/report.csv");
    assert_eq!(line["bytes"], 8);
    let blob = hub
        .hub
        .state
        .store
        .blob_get("fileuploads", "cli-up/daily/report.csv");
    assert_eq!(blob.unwrap().expect("stored").size, 8);
}

/// The camera profile answers `capture_image` by uploading a frame under the blob name
/// the call gives, as the hub-messaging sample does.
#[tokio::test]
async fn the_camera_profile_uploads_a_capture_on_request() {
    let hub = TestHub::start().await;
    let key = hub.create_device("cam-7").await;
    let _device =
        common::device_process::headless_device(&hub, "cam-7", &key, &["--profile", "camera"])
            .await;
    let call = json!({"methodName": "capture_image", "payload": {"blobName": "captures/door.png"},
        "responseTimeoutInSeconds": 20});
    let r = common::wait::eventually(WAIT, "the camera answering", || async {
        let r = hub
            .call(
                reqwest::Method::POST,
                "/twins/cam-7/methods",
                Some(call.clone()),
            )
            .await;
        (r.status == StatusCode::OK).then_some(r)
    })
    .await;
    assert_eq!(r.body["status"], 200, "{}", r.body);
    assert_eq!(r.body["payload"]["blobName"], "cam-7/captures/door.png");
    let blob = hub
        .hub
        .state
        .store
        .blob_get("fileuploads", "cam-7/captures/door.png");
    let blob = blob.unwrap().expect("the capture is stored");
    assert_eq!(Some(blob.size), r.body["payload"]["bytes"].as_u64());
}
