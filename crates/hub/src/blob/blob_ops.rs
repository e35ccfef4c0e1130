//! Blob operations: Put Blob (block blob), Get Blob (whole or a range, streamed from
//! its file), Get Blob Properties (HEAD) and Delete Blob.

use std::io::SeekFrom;

use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::conditions::{Conditions, ReadOutcome};
use super::error::StorageError;
use super::files;
use super::props::{BlobProps, http_date, new_etag};
use super::routes::{BlobResult, Ctx, set_header};
use crate::store::{BlobRow, BlobWriteError};

fn header<'a>(ctx: &'a Ctx, name: &str) -> Option<&'a str> {
    ctx.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Maps a refused or failed store write to the service's answer.
pub fn write_error(e: BlobWriteError<StorageError>) -> StorageError {
    match e {
        BlobWriteError::NoContainer => StorageError::container_not_found(),
        BlobWriteError::Refused(e) => e,
        BlobWriteError::Store(e) => StorageError::internal(e),
    }
}

/// Commits `row` under the request's conditions; removes the files it replaced,
/// or its own file when refused.
pub async fn commit(ctx: &Ctx, row: BlobRow, cond: Conditions) -> Result<(), StorageError> {
    let store = ctx.svc.store.clone();
    let caller = ctx.caller.clone();
    let file = row.file.clone();
    let result = tokio::task::spawn_blocking(move || {
        store.blob_commit(&row, |current| {
            if current.is_some() {
                // Overwriting needs write; creating needs create or write.
                caller.require("w", false)?;
            }
            cond.check_write(current.map(|c| (c.etag.as_str(), c.modified_ms)))
        })
    })
    .await
    .map_err(StorageError::internal)?;
    match result {
        Ok(stale) => {
            ctx.svc.remove_files(&stale);
            Ok(())
        }
        Err(e) => {
            ctx.svc.remove_files(&[file]);
            Err(write_error(e))
        }
    }
}

/// The body's MD5 the client sent (`Content-MD5`, 16 bytes in base64), to check it against.
pub fn given_md5(ctx: &Ctx) -> Result<Option<Vec<u8>>, StorageError> {
    header(ctx, "content-md5")
        .map(|m| {
            B64.decode(m)
                .ok()
                .filter(|b| b.len() == 16)
                .ok_or_else(|| StorageError::invalid_header("Content-MD5"))
        })
        .transpose()
}

pub async fn put(ctx: &Ctx, container: &str, blob: &str, body: Body) -> BlobResult {
    ctx.caller.require("cw", false)?;
    match header(ctx, "x-ms-blob-type") {
        None => return Err(StorageError::missing_header("x-ms-blob-type")),
        Some("BlockBlob") => {}
        Some(_) => {
            return Err(StorageError::new(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format: x-ms-blob-type (this storage account keeps block blobs only).",
            ));
        }
    }
    let declared = match header(ctx, "content-length") {
        None => None,
        Some(n) => Some(
            n.parse::<u64>()
                .map_err(|_| StorageError::invalid_header("Content-Length"))?,
        ),
    };
    let max = ctx.svc.limits.max_put_blob;
    if declared.is_some_and(|n| n > max) {
        return Err(files::too_large(max));
    }
    let given_md5 = given_md5(ctx)?;
    let cond = Conditions::from_headers(&ctx.headers)?;
    let mut props = BlobProps::from_headers(&ctx.headers, true)?;
    let written = files::write_body(body, &ctx.svc.tmp, &ctx.svc.data, max).await?;
    if let Some(m) = given_md5
        && m != written.md5
    {
        ctx.svc.remove_files(&[written.file]);
        return Err(StorageError::new(
            400,
            "Md5Mismatch",
            "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
        ));
    }
    let md5 = B64.encode(written.md5);
    if props.content_md5.is_empty() {
        props.content_md5 = md5.clone();
    }
    let mut resp = commit_new(ctx, container, blob, written, &props, cond).await?;
    set_header(&mut resp, "content-md5", &md5);
    Ok(resp)
}

/// Records a fully written blob file as `container/blob` (under `cond`) and answers 201
/// with its ETag and Last-Modified: the end of both Put Blob and Put Block List.
pub async fn commit_new(
    ctx: &Ctx,
    container: &str,
    blob: &str,
    written: files::Written,
    props: &BlobProps,
    cond: Conditions,
) -> BlobResult {
    let now = chrono::Utc::now().timestamp_millis();
    let row = BlobRow {
        container: container.to_string(),
        name: blob.to_string(),
        file: written.file,
        size: written.size,
        etag: new_etag(),
        created_ms: now,
        modified_ms: now,
        props: props.to_json(),
    };
    let (etag, modified) = (row.etag.clone(), row.modified_ms);
    commit(ctx, row, cond).await?;
    let mut resp = ctx.respond(StatusCode::CREATED, ());
    set_header(&mut resp, "etag", &etag);
    set_header(&mut resp, "last-modified", &http_date(modified));
    set_header(&mut resp, "x-ms-request-server-encrypted", "true");
    Ok(resp)
}

/// A byte range `bytes=start-[end]` (x-ms-range wins over Range).
fn requested_range(ctx: &Ctx) -> Result<Option<(u64, Option<u64>)>, StorageError> {
    let (name, value) = match (header(ctx, "x-ms-range"), header(ctx, "range")) {
        (Some(v), _) => ("x-ms-range", v),
        (None, Some(v)) => ("Range", v),
        (None, None) => return Ok(None),
    };
    let bad = || StorageError::invalid_header(name);
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (s, e) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = s.trim().parse().map_err(|_| bad())?;
    let end = match e.trim() {
        "" => None,
        e => Some(e.parse::<u64>().map_err(|_| bad())?),
    };
    if end.is_some_and(|e| e < start) {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

pub async fn get(ctx: &Ctx, container: &str, blob: &str, head: bool) -> BlobResult {
    ctx.caller.require("r", false)?;
    let cond = Conditions::from_headers(&ctx.headers)?;
    let range = if head { None } else { requested_range(ctx)? };
    let store = ctx.svc.store.clone();
    let (c, b) = (container.to_string(), blob.to_string());
    let (row, has_container) = tokio::task::spawn_blocking(move || {
        let row = store.blob_get(&c, &b)?;
        let has = row.is_some() || store.container_get(&c)?.is_some();
        Ok::<_, crate::store::StoreError>((row, has))
    })
    .await
    .map_err(StorageError::internal)?
    .map_err(StorageError::internal)?;
    let Some(row) = row else {
        return Err(if has_container {
            StorageError::blob_not_found()
        } else {
            StorageError::container_not_found()
        });
    };
    let props = BlobProps::from_json(&row.props);
    let common = |resp: &mut axum::response::Response| {
        set_header(resp, "etag", &row.etag);
        set_header(resp, "last-modified", &http_date(row.modified_ms));
    };
    if cond.check_read(&row.etag, row.modified_ms)? == ReadOutcome::NotModified {
        let mut resp = ctx.respond(StatusCode::NOT_MODIFIED, ());
        common(&mut resp);
        return Ok(resp);
    }
    let size = row.size;
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some((start, end)) => {
            if start >= size {
                let mut resp = StorageError::new(
                    416,
                    "InvalidRange",
                    "The range specified is invalid for the current size of the resource.",
                )
                .into_response_with_range(size);
                common(&mut resp);
                return Ok(resp);
            }
            let last = end.unwrap_or(u64::MAX).min(size - 1);
            (StatusCode::PARTIAL_CONTENT, start, last - start + 1)
        }
    };
    let body = if head {
        Body::empty()
    } else {
        let mut file = tokio::fs::File::open(ctx.svc.data.join(&row.file))
            .await
            .map_err(StorageError::internal)?;
        file.seek(SeekFrom::Start(start))
            .await
            .map_err(StorageError::internal)?;
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
            file.take(len),
            64 * 1024,
        ))
    };
    let mut resp = ctx.respond(status, body);
    common(&mut resp);
    let h = resp.headers_mut();
    props.write_headers(h, status == StatusCode::OK);
    set_header(&mut resp, "content-length", &len.to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        set_header(
            &mut resp,
            "content-range",
            &format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    set_header(&mut resp, "accept-ranges", "bytes");
    set_header(&mut resp, "x-ms-blob-type", "BlockBlob");
    set_header(&mut resp, "x-ms-creation-time", &http_date(row.created_ms));
    set_header(&mut resp, "x-ms-lease-status", "unlocked");
    set_header(&mut resp, "x-ms-lease-state", "available");
    set_header(&mut resp, "x-ms-server-encrypted", "true");
    if head {
        set_header(&mut resp, "x-ms-access-tier", "Hot");
        set_header(&mut resp, "x-ms-access-tier-inferred", "true");
    }
    Ok(resp)
}

impl StorageError {
    /// 416 with the `Content-Range: bytes */size` the service sends.
    fn into_response_with_range(self, size: u64) -> axum::response::Response {
        let mut resp = axum::response::IntoResponse::into_response(self);
        set_header(&mut resp, "content-range", &format!("bytes */{size}"));
        resp
    }
}

pub async fn delete(ctx: &Ctx, container: &str, blob: &str) -> BlobResult {
    ctx.caller.require("d", false)?;
    let cond = Conditions::from_headers(&ctx.headers)?;
    let store = ctx.svc.store.clone();
    let (c, b) = (container.to_string(), blob.to_string());
    let result = tokio::task::spawn_blocking(move || {
        let r = store.blob_delete(&c, &b, |cur| {
            cond.check_write(Some((cur.etag.as_str(), cur.modified_ms)))
        });
        let has = matches!(r, Ok(Some(_))) || store.container_get(&c).ok().flatten().is_some();
        (r, has)
    })
    .await
    .map_err(StorageError::internal)?;
    match result {
        (Ok(Some(file)), _) => {
            ctx.svc.remove_files(&[file]);
            Ok(ctx.respond(StatusCode::ACCEPTED, ()))
        }
        (Ok(None), true) => Err(StorageError::blob_not_found()),
        (Ok(None), false) => Err(StorageError::container_not_found()),
        (Err(e), _) => Err(write_error(e)),
    }
}
