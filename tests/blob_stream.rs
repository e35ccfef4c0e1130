//! The blob store as a process: a large blob streams through the hub without its
//! memory growing with the blob (RSS measured from /proc), and a kill -9 during an
//! upload leaves no partial blob visible.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hubtui::hub::HubInfo;
use hubtui::hub::blob::shared_key;
use reqwest::{Method, StatusCode};

const BIN: &str = env!("CARGO_BIN_EXE_hubtui");
const MIB: u64 = 1024 * 1024;

/// Starts the hub on `dir`, its log appended to `dir/hub.log` for a failure to show.
fn spawn_hub(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("hub.log"))
        .unwrap();
    Command::new(BIN)
        .args(["hub", "--data-dir"])
        .arg(dir)
        .args(["--mqtt-port", "0", "--https-port", "0", "--amqp-port", "0"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("hubtui starts")
}

/// What the hub logged, for a failed assertion's message.
fn hub_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("hub.log")).unwrap_or_default()
}

fn wait_for_info(dir: &Path) -> HubInfo {
    common::wait::wait_until(Duration::from_secs(30), "hub.json to appear", || {
        HubInfo::read(dir).ok()
    })
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn client(ca_pem: &str) -> reqwest::Client {
    hubtui::hub::install_crypto_provider();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap()
}

/// A Shared Key-signed request to the hub's blob store.
fn signed(
    http: &reqwest::Client,
    info: &HubInfo,
    method: Method,
    path: &str,
    extra: &[(&str, &str)],
    content_length: Option<u64>,
) -> reqwest::RequestBuilder {
    let storage = info.storage.as_ref().unwrap();
    let url = reqwest::Url::parse(&format!("{}{path}", storage.blob_endpoint)).unwrap();
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let len = content_length.map(|n| n.to_string()).unwrap_or_default();
    let mut headers: Vec<(&str, &str)> = vec![("x-ms-date", &date), ("x-ms-version", "2021-08-06")];
    headers.extend_from_slice(extra);
    let mut signing = headers.clone();
    if content_length.is_some() {
        signing.push(("content-length", &len));
    }
    let to_sign = shared_key::string_to_sign(
        method.as_str(),
        &signing,
        &storage.account_name,
        url.path(),
        url.query(),
    );
    let sig = shared_key::sign(&storage.account_key, &to_sign).unwrap();
    let mut req = http.request(method, url).header(
        "authorization",
        format!("SharedKey {}:{sig}", storage.account_name),
    );
    for (n, v) in headers {
        req = req.header(n, v);
    }
    if let Some(n) = content_length {
        req = req.header("content-length", n);
    }
    req
}

/// `total` bytes of a repeating pattern, in 1 MiB chunks, produced as sent.
fn pattern_body(total: u64) -> reqwest::Body {
    let chunk: bytes::Bytes = (0..MIB)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let n = total / MIB;
    reqwest::Body::wrap_stream(futures::stream::iter(
        (0..n).map(move |_| Ok::<_, std::io::Error>(chunk.clone())),
    ))
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 128 MiB up and down (more with HUBTUI_BLOB_STREAM_MIB): the hub's peak RSS grows
/// by 32 MiB at most, whatever the blob's size (measured: about 2 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_blob_streams_through_bounded_memory() {
    let size_mib: u64 = std::env::var("HUBTUI_BLOB_STREAM_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let size = size_mib * MIB;
    let dir = tempfile::tempdir().unwrap();
    let hub = Killed(spawn_hub(dir.path()));
    let pid = hub.0.id();
    let info = wait_for_info(dir.path());
    let ca = std::fs::read_to_string(dir.path().join(&info.ca_certificate)).unwrap();
    let http = client(&ca);
    let r = signed(
        &http,
        &info,
        Method::PUT,
        "/big?restype=container",
        &[],
        Some(0),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let before = status_kib(pid, "VmRSS");

    let started = Instant::now();
    let r = signed(
        &http,
        &info,
        Method::PUT,
        "/big/blob.bin",
        &[("x-ms-blob-type", "BlockBlob")],
        Some(size),
    )
    .body(pattern_body(size))
    .send()
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}\nhub log:\n{}",
        r.text().await.unwrap_or_default(),
        hub_log(dir.path())
    );
    let up = started.elapsed();

    let started = Instant::now();
    let r = signed(&http, &info, Method::GET, "/big/blob.bin", &[], None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut received = 0u64;
    let mut mismatch = false;
    let mut r = r;
    while let Some(chunk) = r.chunk().await.unwrap() {
        for (i, b) in chunk.iter().enumerate() {
            if *b != ((received + i as u64) % MIB % 251) as u8 {
                mismatch = true;
            }
        }
        received += chunk.len() as u64;
    }
    let down = started.elapsed();
    assert_eq!(received, size);
    assert!(
        !mismatch,
        "the downloaded bytes differ from the uploaded ones"
    );

    let peak = status_kib(pid, "VmHWM");
    let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
    println!(
        "blob {size_mib} MiB: upload {:.1} s ({:.0} MiB/s), download {:.1} s ({:.0} MiB/s); hub RSS before {:.1} MiB, peak {:.1} MiB, growth {growth_mib:.1} MiB",
        up.as_secs_f64(),
        size_mib as f64 / up.as_secs_f64(),
        down.as_secs_f64(),
        size_mib as f64 / down.as_secs_f64(),
        before as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    assert!(
        growth_mib <= 32.0,
        "the hub's RSS grew by {growth_mib:.1} MiB for a {size_mib} MiB blob"
    );
}

/// A kill -9 in the middle of an upload: after a restart the blob does not exist
/// and the half-received body is gone from disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_an_upload_leaves_no_partial_blob() {
    let dir = tempfile::tempdir().unwrap();
    let mut hub = Killed(spawn_hub(dir.path()));
    let info = wait_for_info(dir.path());
    let ca = std::fs::read_to_string(dir.path().join(&info.ca_certificate)).unwrap();
    let http = client(&ca);
    let r = signed(
        &http,
        &info,
        Method::PUT,
        "/half?restype=container",
        &[],
        Some(0),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // Declares 64 MiB, sends 8 and then waits.
    let (tx, rx) = futures::channel::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let upload = signed(
        &http,
        &info,
        Method::PUT,
        "/half/part.bin",
        &[("x-ms-blob-type", "BlockBlob")],
        Some(64 * MIB),
    )
    .body(reqwest::Body::wrap_stream(rx))
    .send();
    let upload = tokio::spawn(upload);
    let mut tx = tx;
    for _ in 0..8 {
        futures::SinkExt::send(&mut tx, Ok(bytes::Bytes::from(vec![7u8; MIB as usize])))
            .await
            .unwrap();
    }
    let tmp = dir.path().join("blobs").join("tmp");
    common::wait::wait_until(
        Duration::from_secs(10),
        "the body to reach the disk",
        || {
            std::fs::read_dir(&tmp)
                .ok()?
                .flatten()
                .any(|e| e.metadata().map(|m| m.len() > 0).unwrap_or(false))
                .then_some(())
        },
    );
    hub.0.kill().unwrap();
    let _ = hub.0.wait();
    drop(tx);
    let _ = upload.await;
    std::fs::remove_file(dir.path().join("hub.json")).unwrap();

    let _hub = Killed(spawn_hub(dir.path()));
    let info = wait_for_info(dir.path());
    let r = signed(&http, &info, Method::GET, "/half/part.bin", &[], None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()["x-ms-error-code"], "BlobNotFound");
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "the partial body was swept"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs").join("data"))
            .unwrap()
            .count(),
        0
    );
}
