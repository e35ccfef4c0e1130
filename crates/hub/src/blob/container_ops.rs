//! Container operations: Create, Delete, Get Properties, List Containers, List Blobs.

use axum::http::StatusCode;

use super::error::StorageError;
use super::props::{BlobProps, http_date, new_etag};
use super::routes::{BlobResult, Ctx, set_header};
use super::xml::{self, BlobEntry, ContainerEntry, ListEcho};
use crate::store::ContainerRow;

/// Most entries in one List page (Azure: 5,000).
const MAX_RESULTS: usize = 5000;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(StorageError::internal)?
        .map_err(StorageError::internal)
}

pub async fn create(ctx: &Ctx, name: &str) -> BlobResult {
    ctx.caller.require_account()?;
    let row = ContainerRow {
        name: name.to_string(),
        etag: new_etag(),
        modified_ms: chrono::Utc::now().timestamp_millis(),
    };
    let store = ctx.svc.store.clone();
    let r = row.clone();
    if !blocking(move || store.container_create(&r)).await? {
        return Err(StorageError::new(
            409,
            "ContainerAlreadyExists",
            "The specified container already exists.",
        ));
    }
    let mut resp = ctx.respond(StatusCode::CREATED, ());
    set_header(&mut resp, "etag", &row.etag);
    set_header(&mut resp, "last-modified", &http_date(row.modified_ms));
    Ok(resp)
}

pub async fn delete(ctx: &Ctx, name: &str) -> BlobResult {
    ctx.caller.require_account()?;
    let store = ctx.svc.store.clone();
    let n = name.to_string();
    match blocking(move || store.container_delete(&n)).await? {
        None => Err(StorageError::container_not_found()),
        Some(files) => {
            ctx.svc.remove_files(&files);
            Ok(ctx.respond(StatusCode::ACCEPTED, ()))
        }
    }
}

pub async fn properties(ctx: &Ctx, name: &str) -> BlobResult {
    ctx.caller.require("rl", true)?;
    let store = ctx.svc.store.clone();
    let n = name.to_string();
    let row = blocking(move || store.container_get(&n))
        .await?
        .ok_or_else(StorageError::container_not_found)?;
    let mut resp = ctx.respond(StatusCode::OK, ());
    set_header(&mut resp, "etag", &row.etag);
    set_header(&mut resp, "last-modified", &http_date(row.modified_ms));
    set_header(&mut resp, "x-ms-lease-status", "unlocked");
    set_header(&mut resp, "x-ms-lease-state", "available");
    set_header(&mut resp, "x-ms-has-immutability-policy", "false");
    set_header(&mut resp, "x-ms-has-legal-hold", "false");
    Ok(resp)
}

/// `maxresults` (1..=5000, default 5000), `prefix`, `marker`.
fn paging(ctx: &Ctx) -> Result<(usize, Option<usize>, String, String), StorageError> {
    let asked = match ctx.q("maxresults") {
        None => None,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if n >= 1 => Some(n),
            _ => return Err(StorageError::invalid_query("maxresults")),
        },
    };
    let max = asked.unwrap_or(MAX_RESULTS).min(MAX_RESULTS);
    Ok((
        max,
        asked,
        ctx.q("prefix").unwrap_or("").to_string(),
        ctx.q("marker").unwrap_or("").to_string(),
    ))
}

fn xml_response(ctx: &Ctx, body: String) -> BlobResult {
    let mut resp = ctx.respond(StatusCode::OK, body);
    set_header(&mut resp, "content-type", "application/xml");
    Ok(resp)
}

pub async fn list(ctx: &Ctx) -> BlobResult {
    ctx.caller.require_account()?;
    let (max, asked, prefix, marker) = paging(ctx)?;
    let store = ctx.svc.store.clone();
    let (p, m) = (prefix.clone(), marker.clone());
    let mut rows = blocking(move || store.containers_from(&p, &m, max + 1)).await?;
    let next = if rows.len() > max {
        rows.pop().map(|r| r.name).unwrap_or_default()
    } else {
        String::new()
    };
    let dates: Vec<String> = rows.iter().map(|r| http_date(r.modified_ms)).collect();
    let entries: Vec<ContainerEntry<'_>> = rows
        .iter()
        .zip(&dates)
        .map(|(r, d)| ContainerEntry {
            name: &r.name,
            last_modified: d,
            etag: &r.etag,
        })
        .collect();
    let echo = ListEcho {
        service_endpoint: &ctx.service_endpoint,
        prefix: &prefix,
        marker: &marker,
        max_results: asked,
        next_marker: &next,
    };
    xml_response(ctx, xml::list_containers(&echo, &entries))
}

/// The smallest name after every name that starts with `p` (for skipping a
/// delimiter group): `p` with its last character incremented.
fn after_prefix(p: &str) -> Option<String> {
    let mut chars: Vec<char> = p.chars().collect();
    while let Some(last) = chars.pop() {
        // The code point after the last; surrogates are not characters, so after
        // U+D7FF comes U+E000.
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

enum Item {
    Blob(crate::store::BlobRow),
    Prefix(String),
}

impl Item {
    fn name(&self) -> &str {
        match self {
            Item::Blob(b) => &b.name,
            Item::Prefix(p) => p,
        }
    }
}

pub async fn list_blobs(ctx: &Ctx, container: &str) -> BlobResult {
    ctx.caller.require("l", true)?;
    let (max, asked, prefix, marker) = paging(ctx)?;
    let delimiter = ctx.q("delimiter").unwrap_or("").to_string();
    let store = ctx.svc.store.clone();
    let (c, p, d, m) = (
        container.to_string(),
        prefix.clone(),
        delimiter.clone(),
        marker.clone(),
    );
    // Collect up to max + 1 items (blobs and delimiter groups), skipping past each
    // group with one query instead of reading every blob under it.
    let (items, found) = blocking(move || {
        if store.container_get(&c)?.is_none() {
            return Ok((Vec::new(), false));
        }
        let mut items: Vec<Item> = Vec::new();
        let mut start = m;
        'scan: while items.len() <= max {
            let batch = store.blobs_from(&c, &p, &start, (max + 1 - items.len()).max(16))?;
            if batch.is_empty() {
                break;
            }
            let last = batch.last().map(|b| b.name.clone()).unwrap_or_default();
            for b in batch {
                if items.len() > max {
                    break 'scan;
                }
                let group = (!d.is_empty())
                    .then(|| b.name[p.len()..].find(&d).map(|i| p.len() + i + d.len()))
                    .flatten();
                match group {
                    Some(end) => {
                        let g = b.name[..end].to_string();
                        match after_prefix(&g) {
                            Some(s) => start = s,
                            None => {
                                items.push(Item::Prefix(g));
                                break 'scan;
                            }
                        }
                        items.push(Item::Prefix(g));
                        continue 'scan;
                    }
                    None => items.push(Item::Blob(b)),
                }
            }
            start = format!("{last}\u{0}");
        }
        Ok((items, true))
    })
    .await?;
    if !found {
        return Err(StorageError::container_not_found());
    }
    let mut items = items;
    let next = if items.len() > max {
        items
            .pop()
            .map(|i| i.name().to_string())
            .unwrap_or_default()
    } else {
        String::new()
    };
    let mut blobs = Vec::new();
    let mut prefixes = Vec::new();
    for i in &items {
        match i {
            Item::Blob(b) => blobs.push(b),
            Item::Prefix(p) => prefixes.push(p.as_str()),
        }
    }
    let props: Vec<(BlobProps, String, String)> = blobs
        .iter()
        .map(|b| {
            (
                BlobProps::from_json(&b.props),
                http_date(b.created_ms),
                http_date(b.modified_ms),
            )
        })
        .collect();
    let entries: Vec<BlobEntry<'_>> = blobs
        .iter()
        .zip(&props)
        .map(|(b, (p, created, modified))| BlobEntry {
            name: &b.name,
            created,
            last_modified: modified,
            etag: &b.etag,
            size: b.size,
            content_type: &p.content_type,
            content_md5: &p.content_md5,
        })
        .collect();
    let echo = ListEcho {
        service_endpoint: &ctx.service_endpoint,
        prefix: &prefix,
        marker: &marker,
        max_results: asked,
        next_marker: &next,
    };
    xml_response(
        ctx,
        xml::list_blobs(&echo, container, &delimiter, &entries, &prefixes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_prefix_skips_the_group() {
        assert_eq!(after_prefix("a/").as_deref(), Some("a0"));
        assert!("a/zzz" < "a0" && "a0" > "a/");
        assert_eq!(after_prefix(""), None);
        assert_eq!(after_prefix("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(after_prefix("a\u{10FFFF}").as_deref(), Some("b"));
    }
}
