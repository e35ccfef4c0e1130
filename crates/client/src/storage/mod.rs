//! A storage account's blob service, seen from the service side (the explorer): SAS
//! URLs made locally from the account key, and the HTTP client that talks to the
//! account. Works the same against the local hub's blob store and Azure Storage.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use iothub::storage::connection_string::StorageConnectionString;
use iothub::storage::service_sas;

use crate::tls::{TlsError, Trust};

mod download;
pub mod list;
mod xml;

pub use download::MAX_PREVIEW;
pub use list::{BlobItem, Page};

/// How long one blob request may take before it is given up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// One storage account: where it is, how to sign for it, and a client for it.
#[derive(Clone, Debug)]
pub struct BlobAccount {
    pub account: StorageConnectionString,
    pub(crate) http: reqwest::Client,
}

impl BlobAccount {
    /// A client for `account`, trusting `trust` (the local hub's CA, or the platform's
    /// roots for Azure).
    pub fn new(account: StorageConnectionString, trust: &Trust) -> Result<Self, TlsError> {
        let tls = trust.client_config(&[b"http/1.1"])?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| TlsError::CaPem(e.to_string()))?;
        Ok(Self { account, http })
    }

    /// A SAS URL for a container (`blob` None) or a blob, granting `permissions`
    /// (`racwdl` order) from a minute ago (clock skew) until `expiry`.
    pub fn sas_url(
        &self,
        container: &str,
        blob: Option<&str>,
        permissions: &str,
        now: DateTime<Utc>,
        expiry: DateTime<Utc>,
    ) -> String {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
        let start = time(now - chrono::Duration::minutes(1));
        let query = service_sas::make_query(
            &self.account.account_name,
            &self.account.account_key,
            container,
            blob,
            permissions,
            Some(&start),
            &time(expiry),
        );
        format!("{}?{query}", self.account.url(container, blob))
    }
}

/// A blob request the storage service refused, or that did not reach it: one sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BlobError {
    pub message: String,
    /// The service said it is busy (429, 503): callers that poll should back off.
    pub busy: bool,
    /// The service's error code (`x-ms-error-code`), when it answered with one.
    pub code: String,
}

impl BlobError {
    pub fn new(message: impl Into<String>) -> BlobError {
        BlobError {
            message: message.into(),
            busy: false,
            code: String::new(),
        }
    }
}

impl BlobAccount {
    /// Uploads the file at `path` as one block blob `container/blob` with
    /// `content_type`, streamed from disk, through a short-lived SAS; returns its size.
    pub async fn put_file(
        &self,
        path: &std::path::Path,
        container: &str,
        blob: &str,
        content_type: &str,
    ) -> Result<u64, BlobError> {
        let unreadable =
            |e: std::io::Error| BlobError::new(format!("cannot read {}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let meta = file.metadata().await.map_err(unreadable)?;
        if !meta.is_file() {
            return Err(BlobError::new(format!(
                "{} is not a file; name the file to upload",
                path.display()
            )));
        }
        let size = meta.len();
        let now = Utc::now();
        let url = self.sas_url(
            container,
            Some(blob),
            "cw",
            now,
            now + chrono::Duration::hours(1),
        );
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let resp = self
            .http
            .put(&url)
            .header("x-ms-blob-type", "BlockBlob")
            .header("x-ms-version", service_sas::VERSION)
            .header("content-type", content_type)
            .header("content-length", size)
            .body(body)
            .send()
            .await
            .map_err(|e| unreachable(&self.account, e))?;
        if resp.status().is_success() {
            return Ok(size);
        }
        Err(refusal(resp, &format!("{container}/{blob}")).await)
    }
}

/// A request that did not reach the storage account, as one sentence.
pub(crate) fn unreachable(account: &StorageConnectionString, e: reqwest::Error) -> BlobError {
    BlobError::new(format!("cannot reach {}: {e}", account.blob_endpoint))
}

/// The body of a successful answer, refused when it is longer than `cap` bytes.
pub(crate) async fn read_capped(
    resp: reqwest::Response,
    cap: usize,
    what: &str,
) -> Result<Vec<u8>, BlobError> {
    use futures::StreamExt;
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| BlobError::new(format!("{what} broke off: {e}")))?;
        if body.len() + chunk.len() > cap {
            return Err(BlobError::new(format!("{what} is larger than {cap} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Longest error body read: the service's are a few hundred bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The storage service's refusal as one sentence: its status, error code and message.
pub(crate) async fn refusal(resp: reqwest::Response, what: &str) -> BlobError {
    let status = resp.status();
    let code: String = resp
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(128)
        .collect();
    let body = read_capped(resp, MAX_ERROR_BODY, what)
        .await
        .unwrap_or_default();
    let message: String = xml::error_message(&body)
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    BlobError {
        message: format!("the storage account refused {what}: {status} {code} {message}")
            .trim_end()
            .to_string(),
        busy: status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::SERVICE_UNAVAILABLE,
        code,
    }
}

impl BlobAccount {
    /// Creates `container` (private) unless it exists. Signed with Shared Key: a service
    /// SAS cannot create containers.
    pub async fn ensure_container(&self, container: &str) -> Result<(), BlobError> {
        let url = format!("{}?restype=container", self.account.url(container, None));
        let resp = self
            .signed(reqwest::Method::PUT, &url)?
            .header("content-length", 0)
            .send()
            .await
            .map_err(|e| {
                BlobError::new(format!("cannot reach {}: {e}", self.account.blob_endpoint))
            })?;
        let exists = resp
            .headers()
            .get("x-ms-error-code")
            .is_some_and(|c| c == "ContainerAlreadyExists");
        if resp.status().is_success() || exists {
            return Ok(());
        }
        Err(refusal(resp, &format!("creating the container {container}")).await)
    }
}
