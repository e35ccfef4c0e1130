//! List Blobs and List Containers: one page per request (`marker` / `NextMarker`), parsed
//! from the service's `EnumerationResults`. Blobs are listed through a container SAS with
//! `rl`; containers, which no service SAS can list, with Shared Key.

use chrono::{DateTime, Utc};
use iothub::storage::{service_sas, shared_key};

use super::xml::walk;
use super::{BlobAccount, BlobError, read_capped, refusal, unreachable};

/// Most entries a page may hold (the service's own cap on `maxresults`).
pub const MAX_PAGE: u32 = 5000;
/// Longest blob name the service allows, in characters.
const MAX_BLOB_NAME: usize = 1024;
/// Longest container name the service allows.
const MAX_CONTAINER_NAME: usize = 63;
/// Largest listing body read: a full page with long names fits well within it.
const MAX_LIST_BODY: usize = 16 * 1024 * 1024;

/// One blob as a listing (or Get Blob Properties) describes it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlobItem {
    pub name: String,
    pub size: u64,
    pub content_type: String,
    pub last_modified: Option<DateTime<Utc>>,
    pub etag: String,
}

/// One page of a listing; `next_marker` continues it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

/// RFC 1123 (`Mon, 01 Jan 2024 00:00:00 GMT`), as the service writes times.
pub fn parse_http_date(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc2822(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn next_marker(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_string())
}

/// Parses a List Blobs body; at most `max_items` blobs.
pub fn parse_blob_page(body: &[u8], max_items: usize) -> Result<Page<BlobItem>, String> {
    let mut page = Page::default();
    let mut current = BlobItem::default();
    let mut root = false;
    walk(body, |path, text| {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        match path.as_slice() {
            ["EnumerationResults"] => root = true,
            ["EnumerationResults", "NextMarker"] => page.next_marker = next_marker(text),
            ["EnumerationResults", "Blobs", "Blob", "Name"] => {
                if text.chars().count() > MAX_BLOB_NAME {
                    return Err(format!(
                        "a blob name longer than {MAX_BLOB_NAME} characters"
                    ));
                }
                current.name = text.to_string();
            }
            ["EnumerationResults", "Blobs", "Blob", "Properties", field] => match *field {
                "Content-Length" => {
                    current.size = text
                        .parse()
                        .map_err(|_| format!("a blob size that is not a number: {text:.40}"))?
                }
                "Content-Type" => current.content_type = text.chars().take(256).collect(),
                "Last-Modified" => current.last_modified = parse_http_date(text),
                "Etag" => current.etag = text.chars().take(256).collect(),
                _ => {}
            },
            ["EnumerationResults", "Blobs", "Blob"] => {
                if page.items.len() >= max_items {
                    return Err(format!("a page of more than {max_items} blobs"));
                }
                page.items.push(std::mem::take(&mut current));
            }
            _ => {}
        }
        Ok(())
    })?;
    if !root {
        return Err("the answer is not a blob listing".into());
    }
    Ok(page)
}

/// Parses a List Containers body; at most `max_items` names.
pub fn parse_container_page(body: &[u8], max_items: usize) -> Result<Page<String>, String> {
    let mut page = Page::default();
    let mut root = false;
    walk(body, |path, text| {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        match path.as_slice() {
            ["EnumerationResults"] => root = true,
            ["EnumerationResults", "NextMarker"] => page.next_marker = next_marker(text),
            ["EnumerationResults", "Containers", "Container", "Name"] => {
                if text.len() > MAX_CONTAINER_NAME {
                    return Err(format!(
                        "a container name longer than {MAX_CONTAINER_NAME} characters"
                    ));
                }
                if page.items.len() >= max_items {
                    return Err(format!("a page of more than {max_items} containers"));
                }
                page.items.push(text.to_string());
            }
            _ => {}
        }
        Ok(())
    })?;
    if !root {
        return Err("the answer is not a container listing".into());
    }
    Ok(page)
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

impl BlobAccount {
    /// One page of the blobs in `container` whose names start with `prefix`.
    pub async fn list_blobs(
        &self,
        container: &str,
        prefix: Option<&str>,
        marker: Option<&str>,
        max_results: u32,
    ) -> Result<Page<BlobItem>, BlobError> {
        let max_results = max_results.clamp(1, MAX_PAGE);
        let now = Utc::now();
        let mut url = self.sas_url(
            container,
            None,
            "rl",
            now,
            now + chrono::Duration::minutes(15),
        );
        url.push_str(&format!(
            "&restype=container&comp=list&maxresults={max_results}"
        ));
        if let Some(prefix) = prefix.filter(|p| !p.is_empty()) {
            url.push_str(&format!("&prefix={}", encode(prefix)));
        }
        if let Some(marker) = marker {
            url.push_str(&format!("&marker={}", encode(marker)));
        }
        let what = format!("the listing of {container}");
        let resp = self
            .http
            .get(&url)
            .header("x-ms-version", service_sas::VERSION)
            .send()
            .await
            .map_err(|e| unreachable(&self.account, e))?;
        if !resp.status().is_success() {
            return Err(refusal(resp, &what).await);
        }
        let body = read_capped(resp, MAX_LIST_BODY, &what).await?;
        parse_blob_page(&body, max_results as usize)
            .map_err(|e| BlobError::new(format!("cannot read {what}: {e}")))
    }

    /// Every blob in `container` under `prefix`, page by page, up to `limit` blobs; the
    /// bool says the listing went on past the limit.
    pub async fn list_all_blobs(
        &self,
        container: &str,
        prefix: Option<&str>,
        page_size: u32,
        limit: usize,
    ) -> Result<(Vec<BlobItem>, bool), BlobError> {
        let mut items = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .list_blobs(container, prefix, marker.as_deref(), page_size)
                .await?;
            items.extend(page.items);
            match page.next_marker {
                Some(next) if items.len() < limit => marker = Some(next),
                Some(_) => {
                    items.truncate(limit);
                    return Ok((items, true));
                }
                None => {
                    let more = items.len() > limit;
                    items.truncate(limit);
                    return Ok((items, more));
                }
            }
        }
    }

    /// The account's container names, up to `limit`, signed with the account key.
    pub async fn list_containers(&self, limit: usize) -> Result<Vec<String>, BlobError> {
        let mut names = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut query = format!("comp=list&maxresults={MAX_PAGE}");
            if let Some(m) = &marker {
                query.push_str(&format!("&marker={}", encode(m)));
            }
            let url = format!("{}/?{query}", self.account.blob_endpoint);
            let resp = self
                .signed(reqwest::Method::GET, &url)?
                .send()
                .await
                .map_err(|e| unreachable(&self.account, e))?;
            let what = "the list of containers";
            if !resp.status().is_success() {
                return Err(refusal(resp, what).await);
            }
            let body = read_capped(resp, MAX_LIST_BODY, what).await?;
            let page = parse_container_page(&body, MAX_PAGE as usize)
                .map_err(|e| BlobError::new(format!("cannot read {what}: {e}")))?;
            names.extend(page.items);
            match page.next_marker {
                Some(next) if names.len() < limit => marker = Some(next),
                _ => {
                    names.truncate(limit);
                    return Ok(names);
                }
            }
        }
    }

    /// A request authorized with Shared Key (for what no service SAS can grant).
    pub(crate) fn signed(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, BlobError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| BlobError::new(format!("the blob endpoint is not a URL: {e}")))?;
        let date = Utc::now().format("%a, %d %b %Y %H:%M:%S GMT").to_string();
        let headers = [
            ("x-ms-date", date.as_str()),
            ("x-ms-version", service_sas::VERSION),
        ];
        let to_sign = shared_key::string_to_sign(
            method.as_str(),
            &headers,
            &self.account.account_name,
            parsed.path(),
            parsed.query(),
        );
        let signature = shared_key::sign(&self.account.account_key, &to_sign)
            .ok_or_else(|| BlobError::new("the storage account key is not base64"))?;
        Ok(self
            .http
            .request(method, parsed)
            .header("x-ms-date", date)
            .header("x-ms-version", service_sas::VERSION)
            .header(
                "authorization",
                format!("SharedKey {}:{signature}", self.account.account_name),
            ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="https://localhost/acct" ContainerName="uploads">
  <MaxResults>2</MaxResults>
  <Blobs>
    <Blob><Name>cam-1/a&amp;b.png</Name><Properties>
      <Last-Modified>Wed, 01 May 2024 12:00:03 GMT</Last-Modified><Etag>"0x1"</Etag>
      <Content-Length>2048</Content-Length><Content-Type>image/png</Content-Type>
    </Properties></Blob>
    <Blob><Name>cam-2/log.txt</Name><Properties>
      <Content-Length>0</Content-Length><Content-Type /></Properties></Blob>
  </Blobs>
  <NextMarker>2!cam-2</NextMarker>
</EnumerationResults>"#;

    #[test]
    fn a_blob_page_parses_with_its_marker() {
        let page = parse_blob_page(PAGE.as_bytes(), 2).unwrap();
        assert_eq!(page.next_marker.as_deref(), Some("2!cam-2"));
        assert_eq!(page.items.len(), 2);
        let a = &page.items[0];
        assert_eq!(a.name, "cam-1/a&b.png");
        assert_eq!(a.size, 2048);
        assert_eq!(a.content_type, "image/png");
        assert_eq!(a.etag, "\"0x1\"");
        assert_eq!(
            a.last_modified.unwrap().to_rfc3339(),
            "2024-05-01T12:00:03+00:00"
        );
        assert_eq!(page.items[1].name, "cam-2/log.txt");
        assert_eq!(page.items[1].content_type, "");
        assert_eq!(page.items[1].last_modified, None);
    }

    #[test]
    fn the_last_page_has_no_marker() {
        let body = "<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>";
        let page = parse_blob_page(body.as_bytes(), 10).unwrap();
        assert!(page.items.is_empty());
        assert_eq!(page.next_marker, None);
    }

    #[test]
    fn pages_out_of_bounds_are_refused() {
        assert!(
            parse_blob_page(PAGE.as_bytes(), 1).is_err(),
            "more than asked"
        );
        let long = format!(
            "<EnumerationResults><Blobs><Blob><Name>{}</Name></Blob></Blobs></EnumerationResults>",
            "n".repeat(MAX_BLOB_NAME + 1)
        );
        assert!(parse_blob_page(long.as_bytes(), 10).is_err());
        let bad_size = "<EnumerationResults><Blobs><Blob><Name>a</Name><Properties>\
            <Content-Length>-1</Content-Length></Properties></Blob></Blobs></EnumerationResults>";
        assert!(parse_blob_page(bad_size.as_bytes(), 10).is_err());
        assert!(parse_blob_page(b"<Error><Code>X</Code></Error>", 10).is_err());
    }

    #[test]
    fn a_container_page_parses() {
        let body = "<EnumerationResults><Containers>\
            <Container><Name>fileupload</Name><Properties/></Container>\
            <Container><Name>other</Name></Container></Containers>\
            <NextMarker>m</NextMarker></EnumerationResults>";
        let page = parse_container_page(body.as_bytes(), 10).unwrap();
        assert_eq!(page.items, ["fileupload", "other"]);
        assert_eq!(page.next_marker.as_deref(), Some("m"));
        assert!(parse_container_page(body.as_bytes(), 1).is_err());
    }
}
