//! Block uploads: Put Block stores an uncommitted block in a file of its own; Put
//! Block List joins the listed blocks into the blob's new body and commits it.

use axum::body::Body;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;

use super::blob_ops::commit_new;
use super::conditions::Conditions;
use super::error::StorageError;
use super::files;
use super::props::BlobProps;
use super::routes::{BlobResult, Ctx, set_header};
use super::xml::{BlockSource, parse_block_list};
use crate::store::BlockRow;

/// Longest block ID before base64 (Azure: 64 bytes).
const MAX_BLOCK_ID_BYTES: usize = 64;

fn header<'a>(ctx: &'a Ctx, name: &str) -> Option<&'a str> {
    ctx.headers.get(name).and_then(|v| v.to_str().ok())
}

fn invalid_block_list() -> StorageError {
    StorageError::new(
        400,
        "InvalidBlockList",
        "The specified block list is invalid.",
    )
}

pub async fn put_block(ctx: &Ctx, container: &str, blob: &str, body: Body) -> BlobResult {
    ctx.caller.require("cw", false)?;
    let id = ctx.q("blockid").unwrap_or("").to_string();
    let decoded = B64
        .decode(&id)
        .map_err(|_| StorageError::invalid_query("blockid"))?;
    if id.is_empty() || decoded.len() > MAX_BLOCK_ID_BYTES {
        return Err(StorageError::invalid_query("blockid"));
    }
    let max = ctx.svc.limits.max_block;
    if let Some(n) = header(ctx, "content-length") {
        let n: u64 = n
            .parse()
            .map_err(|_| StorageError::invalid_header("Content-Length"))?;
        if n > max {
            return Err(files::too_large(max));
        }
    }
    let given_md5 = super::blob_ops::given_md5(ctx)?;
    let written = files::write_body(body, &ctx.svc.tmp, &ctx.svc.data, max).await?;
    if given_md5.is_some_and(|m| m != written.md5) {
        ctx.svc.remove_files(&[written.file]);
        return Err(StorageError::new(
            400,
            "Md5Mismatch",
            "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
        ));
    }
    let row = BlockRow {
        block_id: id,
        file: written.file.clone(),
        size: written.size,
    };
    let store = ctx.svc.store.clone();
    let (c, b) = (container.to_string(), blob.to_string());
    let limit = ctx.svc.limits.max_uncommitted_blocks;
    let now = chrono::Utc::now().timestamp_millis();
    let result = tokio::task::spawn_blocking(move || store.block_put(&c, &b, &row, now, limit))
        .await
        .map_err(StorageError::internal)?;
    match result {
        Ok(replaced) => {
            ctx.svc
                .remove_files(&replaced.into_iter().collect::<Vec<_>>());
        }
        Err(e) => {
            ctx.svc.remove_files(&[written.file]);
            return Err(match e {
                crate::store::BlobWriteError::Refused(n) => StorageError::new(
                    409,
                    "BlockCountExceedsLimit",
                    format!(
                        "The uncommitted block count cannot exceed the maximum limit of {n} blocks."
                    ),
                ),
                crate::store::BlobWriteError::NoContainer => StorageError::container_not_found(),
                crate::store::BlobWriteError::Store(e) => StorageError::internal(e),
            });
        }
    }
    let mut resp = ctx.respond(StatusCode::CREATED, ());
    set_header(&mut resp, "content-md5", &B64.encode(written.md5));
    set_header(&mut resp, "x-ms-request-server-encrypted", "true");
    Ok(resp)
}

/// Reads a small body whole, refusing more than `max` bytes.
async fn read_small(body: Body, max: usize) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(files::unreadable_body)?;
        if out.len() + chunk.len() > max {
            return Err(files::too_large(max as u64));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub async fn put_block_list(ctx: &Ctx, container: &str, blob: &str, body: Body) -> BlobResult {
    ctx.caller.require("cw", false)?;
    let cond = Conditions::from_headers(&ctx.headers)?;
    let props = BlobProps::from_headers(&ctx.headers, false)?;
    let body = read_small(body, ctx.svc.limits.max_block_list_bytes).await?;
    let list = parse_block_list(&body, ctx.svc.limits.max_committed_blocks).map_err(|why| {
        if why.starts_with("more than") {
            StorageError::new(
                400,
                "BlockListTooLong",
                format!("The block list may not contain {why}."),
            )
        } else {
            StorageError::new(
                400,
                "InvalidXmlDocument",
                format!("XML specified is not syntactically valid: {why}."),
            )
        }
    })?;
    let store = ctx.svc.store.clone();
    let (c, b) = (container.to_string(), blob.to_string());
    let uncommitted = tokio::task::spawn_blocking(move || {
        if store.container_get(&c)?.is_none() {
            return Ok(None);
        }
        store.blocks(&c, &b).map(Some)
    })
    .await
    .map_err(StorageError::internal)?
    .map_err(StorageError::internal)?
    .ok_or_else(StorageError::container_not_found)?;
    let mut parts = Vec::with_capacity(list.len());
    for (source, id) in &list {
        // Committed blocks are not kept apart from the blob they were committed into,
        // so only uncommitted ones can be listed.
        if *source == BlockSource::Committed {
            return Err(invalid_block_list());
        }
        let block = uncommitted
            .iter()
            .find(|b| &b.block_id == id)
            .ok_or_else(invalid_block_list)?;
        parts.push(block.file.clone());
    }
    let (tmp, data) = (ctx.svc.tmp.clone(), ctx.svc.data.clone());
    let written = tokio::task::spawn_blocking(move || files::concatenate(&parts, &tmp, &data))
        .await
        .map_err(StorageError::internal)?
        .map_err(StorageError::internal)?;
    commit_new(ctx, container, blob, written, &props, cond).await
}
