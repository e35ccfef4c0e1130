//! Reading blobs through a blob SAS with `r`: Get Blob Properties (HEAD), the first bytes
//! of a blob (Range) for previews, and a download streamed to a temp file beside the
//! target, renamed into place only when complete.

use std::path::Path;

use chrono::Utc;
use futures::StreamExt;
use iothub::storage::service_sas;
use tokio::io::AsyncWriteExt;

use super::list::{BlobItem, parse_http_date};
use super::{BlobAccount, BlobError, refusal, unreachable};

/// The most a preview reads, whatever it asks for.
pub const MAX_PREVIEW: usize = 4 * 1024 * 1024;

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(256)
        .collect()
}

impl BlobAccount {
    fn read_url(&self, container: &str, blob: &str) -> String {
        let now = Utc::now();
        self.sas_url(
            container,
            Some(blob),
            "r",
            now,
            now + chrono::Duration::hours(1),
        )
    }

    async fn get(
        &self,
        method: reqwest::Method,
        container: &str,
        blob: &str,
        range: Option<usize>,
    ) -> Result<reqwest::Response, BlobError> {
        let mut req = self
            .http
            .request(method, self.read_url(container, blob))
            .header("x-ms-version", service_sas::VERSION);
        if let Some(n) = range {
            req = req.header("x-ms-range", format!("bytes=0-{}", n.saturating_sub(1)));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| unreachable(&self.account, e))?;
        // 416: a range on an empty blob; the blob is there, it has no first bytes.
        if resp.status().is_success() || resp.status() == reqwest::StatusCode::RANGE_NOT_SATISFIABLE
        {
            return Ok(resp);
        }
        Err(refusal(resp, &format!("{container}/{blob}")).await)
    }

    /// Get Blob Properties: size, content type, last modified, etag.
    pub async fn properties(&self, container: &str, blob: &str) -> Result<BlobItem, BlobError> {
        let resp = self
            .get(reqwest::Method::HEAD, container, blob, None)
            .await?;
        Ok(BlobItem {
            name: blob.to_string(),
            size: header(&resp, "content-length").parse().unwrap_or(0),
            content_type: header(&resp, "content-type"),
            last_modified: parse_http_date(&header(&resp, "last-modified")),
            etag: header(&resp, "etag"),
        })
    }

    /// The first `n` bytes of a blob (at most `MAX_PREVIEW`), fewer when it is shorter.
    pub async fn read_head(
        &self,
        container: &str,
        blob: &str,
        n: usize,
    ) -> Result<Vec<u8>, BlobError> {
        let n = n.min(MAX_PREVIEW);
        if n == 0 {
            return Ok(Vec::new());
        }
        let resp = self
            .get(reqwest::Method::GET, container, blob, Some(n))
            .await?;
        if resp.status() == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(Vec::new());
        }
        // A server that ignores the range sends the whole blob: stop reading at `n`.
        let mut out = Vec::with_capacity(n.min(64 * 1024));
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                BlobError::new(format!("the read of {container}/{blob} broke off: {e}"))
            })?;
            let room = n - out.len();
            out.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if out.len() >= n {
                break;
            }
        }
        Ok(out)
    }

    /// Downloads `container/blob` to `path`, streamed to a temp file in the same directory
    /// and moved to `path` when complete, so `path` never holds half a blob. A file
    /// already at `path` is never replaced. Returns the bytes written.
    pub async fn download_to(
        &self,
        container: &str,
        blob: &str,
        path: &Path,
    ) -> Result<u64, BlobError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let cannot_write =
            |e: std::io::Error| BlobError::new(format!("cannot write {}: {e}", path.display()));
        let taken = || {
            BlobError::new(format!(
                "{} already exists; give another path, or move that file away first",
                path.display()
            ))
        };
        if path.exists() {
            return Err(taken());
        }
        let resp = self
            .get(reqwest::Method::GET, container, blob, None)
            .await?;
        let temp = tempfile::Builder::new()
            .prefix(".hubtui-download-")
            .tempfile_in(&dir)
            .map_err(cannot_write)?;
        // The temp file is removed when `temp` drops, on every early return below.
        let mut file = tokio::fs::File::from_std(temp.reopen().map_err(cannot_write)?);
        let mut written = 0u64;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                BlobError::new(format!("the download of {container}/{blob} broke off: {e}"))
            })?;
            file.write_all(&chunk).await.map_err(cannot_write)?;
            written += chunk.len() as u64;
        }
        file.flush().await.map_err(cannot_write)?;
        file.sync_all().await.map_err(cannot_write)?;
        drop(file);
        // No replacing: a file that appeared meanwhile is kept too.
        temp.persist_noclobber(path)
            .map_err(|e| match e.error.kind() {
                std::io::ErrorKind::AlreadyExists => taken(),
                _ => cannot_write(e.error),
            })?;
        Ok(written)
    }
}
