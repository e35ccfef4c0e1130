//! A storage account's blob service, seen from the service side (the explorer): SAS
//! URLs made locally from the account key, and the HTTP client that talks to the
//! account. Works the same against the local hub's blob store and Azure Storage.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use iothub::storage::connection_string::StorageConnectionString;
use iothub::storage::service_sas;

use crate::tls::{TlsError, Trust};

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
#[error("{0}")]
pub struct BlobError(pub String);

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
            |e: std::io::Error| BlobError(format!("cannot read {}: {e}", path.display()));
        let file = tokio::fs::File::open(path).await.map_err(unreadable)?;
        let size = file.metadata().await.map_err(unreadable)?.len();
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
            .map_err(|e| BlobError(format!("cannot reach {}: {e}", self.account.blob_endpoint)))?;
        if resp.status().is_success() {
            return Ok(size);
        }
        Err(refusal(resp, &format!("{container}/{blob}")).await)
    }
}

/// The storage service's refusal as one sentence: its status, error code and message.
pub(crate) async fn refusal(resp: reqwest::Response, what: &str) -> BlobError {
    let status = resp.status();
    let code = resp
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.text().await.unwrap_or_default();
    let message = body
        .split_once("<Message>")
        .and_then(|(_, m)| m.split_once("</Message>"))
        .map(|(m, _)| m.lines().next().unwrap_or("").to_string())
        .unwrap_or_default();
    BlobError(
        format!("the storage account refused {what}: {status} {code} {message}")
            .trim_end()
            .to_string(),
    )
}

impl BlobAccount {
    /// Creates `container` (private) unless it exists. Signed with Shared Key: a service
    /// SAS cannot create containers.
    pub async fn ensure_container(&self, container: &str) -> Result<(), BlobError> {
        let url = format!("{}?restype=container", self.account.url(container, None));
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| BlobError(format!("the container URL {url} is not valid: {e}")))?;
        let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let headers = [
            ("x-ms-date", date.as_str()),
            ("x-ms-version", service_sas::VERSION),
        ];
        let to_sign = iothub::storage::shared_key::string_to_sign(
            "PUT",
            &headers,
            &self.account.account_name,
            parsed.path(),
            parsed.query(),
        );
        let signature = iothub::storage::shared_key::sign(&self.account.account_key, &to_sign)
            .ok_or_else(|| BlobError("the storage account key is not valid base64".into()))?;
        let mut req = self.http.put(parsed).header(
            "authorization",
            format!("SharedKey {}:{signature}", self.account.account_name),
        );
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp =
            req.header("content-length", 0).send().await.map_err(|e| {
                BlobError(format!("cannot reach {}: {e}", self.account.blob_endpoint))
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
