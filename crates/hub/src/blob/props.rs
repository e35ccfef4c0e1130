//! A blob's HTTP properties and metadata: taken from request headers, kept as JSON
//! in its row, and given back as response headers. Also the service's date and
//! ETag formats.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::StorageError;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BlobProps {
    pub content_type: String,
    #[serde(default)]
    pub content_encoding: String,
    #[serde(default)]
    pub content_language: String,
    #[serde(default)]
    pub cache_control: String,
    #[serde(default)]
    pub content_disposition: String,
    /// Base64 MD5 of the whole blob; empty when none is known.
    #[serde(default)]
    pub content_md5: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// Longest total of metadata names and values (Azure: 8 KiB).
const MAX_METADATA_BYTES: usize = 8 * 1024;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl BlobProps {
    /// Properties from a Put Blob (`direct`: Content-Type and friends count, the
    /// `x-ms-blob-*` forms win) or a Put Block List (only the `x-ms-blob-*` forms).
    pub fn from_headers(h: &HeaderMap, direct: bool) -> Result<BlobProps, StorageError> {
        let pick = |blob_form: &str, plain: &str| {
            header(h, blob_form)
                .or(if direct { header(h, plain) } else { None })
                .unwrap_or("")
                .to_string()
        };
        let mut content_type = pick("x-ms-blob-content-type", "content-type");
        if content_type.is_empty() {
            content_type = "application/octet-stream".to_string();
        }
        let mut metadata = BTreeMap::new();
        let mut total = 0;
        for (name, value) in h {
            if let Some(key) = name.as_str().strip_prefix("x-ms-meta-") {
                let value = value
                    .to_str()
                    .map_err(|_| StorageError::invalid_header(name.as_str()))?;
                total += key.len() + value.len();
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(StorageError::new(
                        400,
                        "InvalidMetadata",
                        "The metadata specified is invalid. It has characters that are not permitted.",
                    ));
                }
                metadata.insert(key.to_string(), value.to_string());
            }
        }
        if total > MAX_METADATA_BYTES {
            return Err(StorageError::new(
                400,
                "MetadataTooLarge",
                "The size of the specified metadata exceeds the maximum size permitted (8 KiB).",
            ));
        }
        Ok(BlobProps {
            content_type,
            content_encoding: pick("x-ms-blob-content-encoding", "content-encoding"),
            content_language: pick("x-ms-blob-content-language", "content-language"),
            cache_control: pick("x-ms-blob-cache-control", "cache-control"),
            content_disposition: pick("x-ms-blob-content-disposition", "content-disposition"),
            content_md5: header(h, "x-ms-blob-content-md5").unwrap_or("").to_string(),
            metadata,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_string())
    }

    pub fn from_json(s: &str) -> BlobProps {
        serde_json::from_str(s).unwrap_or_default()
    }

    /// The content headers and metadata of Get Blob and Get Blob Properties.
    pub fn write_headers(&self, h: &mut HeaderMap, whole: bool) {
        let mut put = |name: &'static str, v: &str| {
            if !v.is_empty()
                && let Ok(v) = HeaderValue::from_str(v)
            {
                h.insert(name, v);
            }
        };
        put("content-type", &self.content_type);
        put("content-encoding", &self.content_encoding);
        put("content-language", &self.content_language);
        put("cache-control", &self.cache_control);
        put("content-disposition", &self.content_disposition);
        if whole {
            put("content-md5", &self.content_md5);
        } else {
            put("x-ms-blob-content-md5", &self.content_md5);
        }
        for (k, v) in &self.metadata {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(n, v);
            }
        }
    }
}

/// RFC 1123, as the service writes Last-Modified: `Wed, 02 Dec 2026 08:00:00 GMT`.
pub fn http_date(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// A fresh ETag, quoted, in the service's `"0x8D…"` form (15 hex digits, time-ordered,
/// never the same twice in one process).
pub fn new_etag() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    // Microseconds since 1970 fit the 13 hex digits after `0x8D` until the year 2112.
    let now = Utc::now().timestamp_micros().max(0) as u64;
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return format!("\"0x8D{:013X}\"", next & 0xF_FFFF_FFFF_FFFF),
            Err(p) => prev = p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_forms_win_and_metadata_is_kept() {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert(
            "x-ms-blob-content-type",
            HeaderValue::from_static("image/png"),
        );
        h.insert("x-ms-meta-camera", HeaderValue::from_static("front"));
        let p = BlobProps::from_headers(&h, true).unwrap();
        assert_eq!(p.content_type, "image/png");
        assert_eq!(p.metadata["camera"], "front");
        assert_eq!(BlobProps::from_json(&p.to_json()), p);
        h.remove("x-ms-blob-content-type");
        assert_eq!(
            BlobProps::from_headers(&h, false).unwrap().content_type,
            "application/octet-stream"
        );
        h.insert("x-ms-meta-bad-name", HeaderValue::from_static("x"));
        assert_eq!(
            BlobProps::from_headers(&h, true).unwrap_err().code,
            "InvalidMetadata"
        );
    }

    #[test]
    fn etags_are_quoted_and_distinct() {
        let (a, b) = (new_etag(), new_etag());
        assert!(a.starts_with("\"0x8D") && a.ends_with('"'));
        assert_ne!(a, b);
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
