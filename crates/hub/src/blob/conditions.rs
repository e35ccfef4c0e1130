//! Conditional requests (If-Match, If-None-Match, If-Modified-Since,
//! If-Unmodified-Since) against a blob's ETag and Last-Modified, with the answers
//! the service gives: 304 for reads, 412 ConditionNotMet for writes, and 409
//! BlobAlreadyExists for a write with `If-None-Match: *` on an existing blob.

use axum::http::HeaderMap;
use chrono::DateTime;

use super::error::StorageError;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conditions {
    if_match: Option<String>,
    if_none_match: Option<String>,
    if_modified_since: Option<i64>,
    if_unmodified_since: Option<i64>,
}

/// What a read should do.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    Proceed,
    NotModified,
}

fn etag_in(list: &str, etag: &str) -> bool {
    let bare = etag.trim_matches('"');
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/").trim_matches('"'))
        .any(|t| t == "*" || t == bare)
}

impl Conditions {
    pub fn from_headers(h: &HeaderMap) -> Result<Conditions, StorageError> {
        let text = |n: &str| -> Result<Option<String>, StorageError> {
            match h.get(n) {
                None => Ok(None),
                Some(v) => v
                    .to_str()
                    .map(|s| Some(s.to_string()))
                    .map_err(|_| StorageError::invalid_header(n)),
            }
        };
        let date = |n: &str| -> Result<Option<i64>, StorageError> {
            match text(n)? {
                None => Ok(None),
                Some(s) => DateTime::parse_from_rfc2822(&s)
                    .map(|d| Some(d.timestamp()))
                    .map_err(|_| StorageError::invalid_header(n)),
            }
        };
        Ok(Conditions {
            if_match: text("if-match")?,
            if_none_match: text("if-none-match")?,
            if_modified_since: date("if-modified-since")?,
            if_unmodified_since: date("if-unmodified-since")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == Conditions::default()
    }

    /// For Get Blob and Get Blob Properties of an existing blob.
    pub fn check_read(&self, etag: &str, modified_ms: i64) -> Result<ReadOutcome, StorageError> {
        let secs = modified_ms.div_euclid(1000);
        if self.if_match.as_deref().is_some_and(|l| !etag_in(l, etag))
            || self.if_unmodified_since.is_some_and(|t| secs > t)
        {
            return Err(StorageError::condition_not_met());
        }
        if self
            .if_none_match
            .as_deref()
            .is_some_and(|l| etag_in(l, etag))
            || self.if_modified_since.is_some_and(|t| secs <= t)
        {
            return Ok(ReadOutcome::NotModified);
        }
        Ok(ReadOutcome::Proceed)
    }

    /// For a write (Put Blob, Put Block List, Delete Blob); `current` is the blob's
    /// (ETag, Last-Modified ms) if it exists.
    pub fn check_write(&self, current: Option<(&str, i64)>) -> Result<(), StorageError> {
        let Some((etag, modified_ms)) = current else {
            return match (&self.if_match, self.if_unmodified_since) {
                (None, None) => Ok(()),
                _ => Err(StorageError::condition_not_met()),
            };
        };
        if self.if_none_match.as_deref() == Some("*") {
            return Err(StorageError::new(
                409,
                "BlobAlreadyExists",
                "The specified blob already exists.",
            ));
        }
        let secs = modified_ms.div_euclid(1000);
        if self.if_match.as_deref().is_some_and(|l| !etag_in(l, etag))
            || self
                .if_none_match
                .as_deref()
                .is_some_and(|l| etag_in(l, etag))
            || self.if_unmodified_since.is_some_and(|t| secs > t)
            || self.if_modified_since.is_some_and(|t| secs <= t)
        {
            return Err(StorageError::condition_not_met());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, v: &'static str) -> Conditions {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(v));
        Conditions::from_headers(&h).unwrap()
    }

    #[test]
    fn reads() {
        let e = "\"0x1\"";
        assert_eq!(
            with("if-none-match", "\"0x1\"").check_read(e, 0).unwrap(),
            ReadOutcome::NotModified
        );
        assert_eq!(
            with("if-none-match", "\"0x2\"").check_read(e, 0).unwrap(),
            ReadOutcome::Proceed
        );
        assert_eq!(
            with("if-match", "\"0x2\"")
                .check_read(e, 0)
                .unwrap_err()
                .code,
            "ConditionNotMet"
        );
        assert_eq!(
            with("if-match", "*").check_read(e, 0).unwrap(),
            ReadOutcome::Proceed
        );
        let since = with("if-modified-since", "Thu, 01 Jan 1970 00:00:10 GMT");
        assert_eq!(
            since.check_read(e, 10_000).unwrap(),
            ReadOutcome::NotModified
        );
        assert_eq!(since.check_read(e, 11_000).unwrap(), ReadOutcome::Proceed);
    }

    #[test]
    fn writes() {
        let e = "\"0x1\"";
        assert_eq!(
            with("if-none-match", "*")
                .check_write(Some((e, 0)))
                .unwrap_err()
                .code,
            "BlobAlreadyExists"
        );
        assert!(with("if-none-match", "*").check_write(None).is_ok());
        assert_eq!(
            with("if-match", "\"0x2\"")
                .check_write(Some((e, 0)))
                .unwrap_err()
                .code,
            "ConditionNotMet"
        );
        assert_eq!(
            with("if-match", "*").check_write(None).unwrap_err().code,
            "ConditionNotMet"
        );
        assert!(
            with("if-match", "\"0x1\"")
                .check_write(Some((e, 0)))
                .is_ok()
        );
        let mut h = HeaderMap::new();
        h.insert("if-match", HeaderValue::from_static("x"));
        h.insert("if-modified-since", HeaderValue::from_static("yesterday"));
        assert_eq!(
            Conditions::from_headers(&h).unwrap_err().code,
            "InvalidHeaderValue"
        );
    }
}
