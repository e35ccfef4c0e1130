//! Device file upload over HTTPS, as IoT Hub offers it: ask the hub for a SAS URI
//! (`POST /devices/{id}/files`), put the file to that URI (streamed from disk, one Put
//! Blob), and report the outcome (`POST /devices/{id}/files/notifications`). The client
//! only follows the URI the hub returns, so the same flow works against Azure Storage.

use std::path::Path;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::credentials::{API_VERSION, Credentials};
use super::{DeviceError, now_unix};
use crate::client_certificate::ClientCertificate;
use crate::tls::Trust;

/// Largest file uploaded in one Put Blob (Azure's limit for one Put Blob is 5000 MiB;
/// larger files would need blocks).
pub const MAX_UPLOAD_BYTES: u64 = 5000 * 1024 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the hub answered for one upload.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageInfo {
    pub correlation_id: String,
    pub host_name: String,
    pub container_name: String,
    pub blob_name: String,
    pub sas_token: String,
}

impl StorageInfo {
    /// The blob's URL with its SAS, as the Azure SDKs build it.
    pub fn sas_url(&self) -> String {
        format!(
            "https://{}/{}/{}{}",
            self.host_name,
            self.container_name,
            encode_path(&self.blob_name),
            self.sas_token
        )
    }
}

/// A blob name in a URL path: each segment percent-encoded, the slashes kept.
fn encode_path(name: &str) -> String {
    name.split('/')
        .map(|s| {
            percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A finished upload.
#[derive(Clone, Debug, PartialEq)]
pub struct Uploaded {
    /// `{deviceId}/{name}` in the hub's upload container.
    pub blob_name: String,
    pub container_name: String,
    pub bytes: u64,
}

pub(super) struct Uploader {
    http: Client,
    /// `https://{host}:{port}` of the hub's HTTPS endpoint.
    base: String,
    device_id: String,
    creds: Credentials,
}

impl Uploader {
    pub(super) fn new(
        trust: &Trust,
        identity: Option<&ClientCertificate>,
        host: &str,
        port: u16,
        device_id: &str,
        creds: Credentials,
    ) -> Result<Uploader, DeviceError> {
        let tls = trust.client_config_with_identity(&[b"http/1.1"], identity)?;
        let http = Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| DeviceError::Upload(format!("cannot make the HTTPS client: {e}")))?;
        Ok(Uploader {
            http,
            base: format!("https://{host}:{port}"),
            device_id: device_id.to_string(),
            creds,
        })
    }

    /// Uploads the file at `path` as `name`, streamed from disk; reports a failed transfer
    /// to the hub too.
    pub(super) async fn upload_file(
        &self,
        path: &Path,
        name: &str,
    ) -> Result<Uploaded, DeviceError> {
        let unreadable =
            |e: std::io::Error| DeviceError::Upload(format!("cannot read {}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let bytes = file.metadata().await.map_err(unreadable)?.len();
        if bytes > MAX_UPLOAD_BYTES {
            return Err(DeviceError::Upload(format!(
                "{} is {bytes} bytes, more than the {MAX_UPLOAD_BYTES} one upload takes",
                path.display()
            )));
        }
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        self.upload(body, bytes, name).await
    }

    /// Uploads `data` as `name`.
    pub(super) async fn upload_bytes(
        &self,
        data: Vec<u8>,
        name: &str,
    ) -> Result<Uploaded, DeviceError> {
        let bytes = data.len() as u64;
        self.upload(reqwest::Body::from(data), bytes, name).await
    }

    async fn upload(
        &self,
        body: reqwest::Body,
        bytes: u64,
        name: &str,
    ) -> Result<Uploaded, DeviceError> {
        let info = self.storage_info(name).await?;
        let put = self
            .http
            .put(info.sas_url())
            .header("x-ms-blob-type", "BlockBlob")
            .header("x-ms-version", "2021-08-06")
            .header("content-length", bytes)
            .timeout(Duration::from_secs(3600))
            .body(body)
            .send()
            .await;
        let (ok, status, description) = match put {
            Ok(r) if r.status() == StatusCode::CREATED => (true, 200, "uploaded".to_string()),
            Ok(r) => (false, r.status().as_u16(), storage_refusal(&r)),
            Err(e) => (false, 500, format!("the upload failed: {}", causes(&e))),
        };
        self.notify(&info.correlation_id, ok, status, &description)
            .await?;
        if !ok {
            return Err(DeviceError::Upload(description));
        }
        Ok(Uploaded {
            blob_name: info.blob_name,
            container_name: info.container_name,
            bytes,
        })
    }

    /// Reads the blob at `url` (a SAS URL) through, without keeping it: its content type
    /// and size. More than `max` bytes is an error.
    pub(super) async fn fetch(
        &self,
        url: &str,
        max: u64,
    ) -> Result<(Option<String>, u64), DeviceError> {
        let fail = |m: String| DeviceError::Upload(m);
        let mut r = self
            .http
            .get(url)
            .header("x-ms-version", "2021-08-06")
            .timeout(Duration::from_secs(3600))
            .send()
            .await
            .map_err(|e| fail(format!("cannot fetch the blob: {}", causes(&e))))?;
        if !r.status().is_success() {
            return Err(fail(storage_refusal(&r)));
        }
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = 0u64;
        while let Some(chunk) = r
            .chunk()
            .await
            .map_err(|e| fail(format!("the blob's download broke off: {}", causes(&e))))?
        {
            bytes += chunk.len() as u64;
            if bytes > max {
                return Err(fail(format!("the blob is larger than {max} bytes")));
            }
        }
        Ok((content_type, bytes))
    }

    async fn storage_info(&self, name: &str) -> Result<StorageInfo, DeviceError> {
        let url = format!(
            "{}/devices/{}/files?api-version={API_VERSION}",
            self.base,
            enc(&self.device_id)
        );
        let r = self
            .authorized(self.http.post(url))?
            .json(&json!({"blobName": name}))
            .send()
            .await
            .map_err(|e| {
                DeviceError::Upload(format!("cannot ask the hub for a SAS URI: {}", causes(&e)))
            })?;
        if !r.status().is_success() {
            return Err(hub_refusal("SAS URI request", r).await);
        }
        r.json().await.map_err(|e| {
            DeviceError::Upload(format!("the hub's SAS URI answer is unreadable: {e}"))
        })
    }

    async fn notify(
        &self,
        correlation_id: &str,
        ok: bool,
        status: u16,
        description: &str,
    ) -> Result<(), DeviceError> {
        let url = format!(
            "{}/devices/{}/files/notifications?api-version={API_VERSION}",
            self.base,
            enc(&self.device_id)
        );
        let body = json!({
            "correlationId": correlation_id,
            "isSuccess": ok,
            "statusCode": status,
            "statusDescription": description,
        });
        let r = self
            .authorized(self.http.post(url))?
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                DeviceError::Upload(format!(
                    "cannot report the upload to the hub: {}",
                    causes(&e)
                ))
            })?;
        if !r.status().is_success() {
            return Err(hub_refusal("upload report", r).await);
        }
        Ok(())
    }

    /// For key and token devices, a SAS token (a certificate is in the TLS handshake).
    fn authorized(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, DeviceError> {
        let (token, _) = self.creds.password(now_unix())?;
        Ok(if token.is_empty() {
            req
        } else {
            req.header("Authorization", token)
        })
    }
}

/// The storage service's answer to a request it refused: status and error code.
fn storage_refusal(r: &reqwest::Response) -> String {
    let code = r
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    format!("the storage service answered {} {code}", r.status())
        .trim_end()
        .to_string()
}

/// An error with its causes: reqwest's own message ("error sending request") says little.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn hub_refusal(what: &str, r: reqwest::Response) -> DeviceError {
    let status = r.status();
    let body = r.bytes().await.unwrap_or_default();
    let message = super::inbound::error_message(&body);
    DeviceError::Upload(format!(
        "the hub refused the {what} with {status}: {message}"
    ))
}
