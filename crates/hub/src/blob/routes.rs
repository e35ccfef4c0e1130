//! The blob store's HTTP face: path-style routes under `/{account}` on the HTTPS
//! port, one dispatcher per level (account, container, blob) choosing the
//! operation from the method and the `restype`/`comp` query, after authorization.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use super::auth::{self, Caller, Signed};
use super::error::StorageError;
use super::shared_key::form_urlencoded_pairs;
use super::{BlobService, MAX_BLOB_NAME, SERVICE_VERSION};
use crate::websocket::Peer;

pub type Svc = Arc<BlobService>;
pub type BlobResult = Result<Response, StorageError>;

pub fn router(svc: Svc) -> Router {
    let a = format!("/{}", svc.account);
    Router::new()
        .route(&a, any(account_level))
        .route(&format!("{a}/"), any(account_level))
        .route(&format!("{a}/{{container}}"), any(container_level))
        .route(&format!("{a}/{{container}}/{{*blob}}"), any(blob_level))
        .with_state(svc)
}

/// What every operation gets: the service, the caller, the request's parts.
pub struct Ctx {
    pub svc: Svc,
    pub caller: Caller,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    /// The version the response names (the request's, or the hub's).
    pub version: String,
    /// `https://host[:port]/{account}/`, as List results name it.
    pub service_endpoint: String,
}

impl Ctx {
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// A response with the headers every Blob service answer carries.
    pub fn respond(&self, status: StatusCode, body: impl IntoResponse) -> Response {
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
            h.insert("x-ms-request-id", v);
        }
        if let Ok(v) = HeaderValue::from_str(&self.version) {
            h.insert("x-ms-version", v);
        }
        if let Ok(v) = HeaderValue::from_str(&super::props::http_date(
            chrono::Utc::now().timestamp_millis(),
        )) {
            h.insert("date", v);
        }
        resp
    }
}

fn set(h: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

pub fn set_header(resp: &mut Response, name: &'static str, value: &str) {
    set(resp.headers_mut(), name, value);
}

/// The `x-ms-version` a request names: a `YYYY-MM-DD` service version from 2009-09-19 on.
fn version(headers: &HeaderMap) -> Result<String, StorageError> {
    match headers.get("x-ms-version") {
        None => Ok(SERVICE_VERSION.to_string()),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| StorageError::invalid_header("x-ms-version"))?;
            let ok = v.len() == 10
                && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
                && v >= "2009-09-19";
            if ok {
                Ok(v.to_string())
            } else {
                Err(StorageError::invalid_header("x-ms-version"))
            }
        }
    }
}

/// Container names: 3 to 63 lowercase letters, digits and single hyphens, starting
/// and ending with a letter or digit.
pub fn valid_container_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

fn invalid_name(what: &str) -> StorageError {
    StorageError::new(
        400,
        "InvalidResourceName",
        format!("The specified resource name contains invalid characters or is too long: {what}."),
    )
}

/// Splits `/{account}/{container}/{blob}` (percent-decoded) from the raw path.
fn names(path: &str) -> (Option<String>, Option<String>) {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .ok()
    };
    let rest = path.trim_start_matches('/');
    let mut parts = rest.splitn(3, '/');
    let _account = parts.next();
    let container = parts.next().filter(|c| !c.is_empty()).and_then(decode);
    let blob = parts.next().filter(|b| !b.is_empty()).and_then(decode);
    (container, blob)
}

fn context(svc: Svc, req: &Request, level: Level) -> Result<(Ctx, Names), StorageError> {
    let headers = req.headers().clone();
    let version = version(&headers)?;
    let (container, blob) = names(req.uri().path());
    if level != Level::Account {
        let Some(c) = container.as_deref() else {
            return Err(invalid_name("container"));
        };
        if !valid_container_name(c) {
            return Err(invalid_name("container"));
        }
    }
    if level == Level::Blob {
        match blob.as_deref() {
            Some(b) if b.chars().count() <= MAX_BLOB_NAME => {}
            _ => return Err(invalid_name("blob")),
        }
    }
    let peer: Option<IpAddr> = req.extensions().get::<Peer>().map(|p| p.0.ip());
    let caller = auth::authenticate(
        &svc,
        &Signed {
            method: req.method(),
            uri: req.uri(),
            headers: &headers,
            container: container.as_deref(),
            blob: blob.as_deref(),
            peer,
        },
        chrono::Utc::now(),
    )?;
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".to_string());
    let query = form_urlencoded_pairs(req.uri().query().unwrap_or(""))
        .into_iter()
        .collect();
    let service_endpoint = format!("https://{host}/{}/", svc.account);
    Ok((
        Ctx {
            svc,
            caller,
            method: req.method().clone(),
            headers,
            query,
            version,
            service_endpoint,
        },
        Names {
            container: container.unwrap_or_default(),
            blob: blob.unwrap_or_default(),
        },
    ))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Account,
    Container,
    Blob,
}

pub struct Names {
    pub container: String,
    pub blob: String,
}

fn answer(r: BlobResult) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

fn unsupported(what: &str) -> StorageError {
    StorageError::new(
        501,
        "NotImplemented",
        format!("{what} is not supported by this storage account."),
    )
}

async fn account_level(State(svc): State<Svc>, req: Request) -> Response {
    let (ctx, _) = match context(svc, &req, Level::Account) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    drop(req);
    answer(
        async {
            match (&ctx.method, ctx.q("comp")) {
                (&Method::GET, Some("list")) => super::container_ops::list(&ctx).await,
                _ => Err(unsupported("This account-level operation")),
            }
        }
        .await,
    )
}

async fn container_level(State(svc): State<Svc>, req: Request) -> Response {
    let is_head = req.method() == Method::HEAD;
    let (ctx, names) = match context(svc, &req, Level::Container) {
        Ok(c) => c,
        Err(e) => return without_body(e, is_head),
    };
    drop(req);
    let result = async {
        if ctx.q("restype") != Some("container") {
            return Err(StorageError::invalid_query("restype"));
        }
        let c = names.container.as_str();
        match (&ctx.method, ctx.q("comp")) {
            (&Method::PUT, None) => super::container_ops::create(&ctx, c).await,
            (&Method::DELETE, None) => super::container_ops::delete(&ctx, c).await,
            (&Method::GET | &Method::HEAD, None) => super::container_ops::properties(&ctx, c).await,
            (&Method::GET, Some("list")) => super::container_ops::list_blobs(&ctx, c).await,
            _ => Err(unsupported("This container operation")),
        }
    }
    .await;
    result.unwrap_or_else(|e| without_body(e, is_head))
}

/// An error answer; a HEAD answer has no body, so its code travels in
/// x-ms-error-code alone.
fn without_body(e: StorageError, is_head: bool) -> Response {
    let mut r = e.into_response();
    if is_head {
        *r.body_mut() = axum::body::Body::empty();
    }
    r
}

async fn blob_level(State(svc): State<Svc>, req: Request) -> Response {
    let is_head = req.method() == Method::HEAD;
    let (ctx, names) = match context(svc, &req, Level::Blob) {
        Ok(c) => c,
        Err(e) => return without_body(e, is_head),
    };
    let body = req.into_body();
    let result = async {
        let (c, b) = (names.container.as_str(), names.blob.as_str());
        match (&ctx.method, ctx.q("comp")) {
            (&Method::PUT, None) => super::blob_ops::put(&ctx, c, b, body).await,
            (&Method::PUT, Some("block")) => super::blocks::put_block(&ctx, c, b, body).await,
            (&Method::PUT, Some("blocklist")) => {
                super::blocks::put_block_list(&ctx, c, b, body).await
            }
            (&Method::GET, None) => super::blob_ops::get(&ctx, c, b, false).await,
            (&Method::HEAD, None) => super::blob_ops::get(&ctx, c, b, true).await,
            (&Method::DELETE, None) => super::blob_ops::delete(&ctx, c, b).await,
            _ => Err(unsupported("This blob operation")),
        }
    }
    .await;
    result.unwrap_or_else(|e| without_body(e, is_head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        for ok in ["abc", "a-b-c", "c0ntainer", &"a".repeat(63)] {
            assert!(valid_container_name(ok), "{ok}");
        }
        for bad in ["ab", "Abc", "a--b", "-ab", "ab-", "a_b", &"a".repeat(64)] {
            assert!(!valid_container_name(bad), "{bad}");
        }
    }

    #[test]
    fn names_are_split_and_decoded() {
        assert_eq!(
            names("/acct/c1/dir/a%20b.txt"),
            (Some("c1".to_string()), Some("dir/a b.txt".to_string()))
        );
        assert_eq!(names("/acct"), (None, None));
        assert_eq!(names("/acct/c1"), (Some("c1".to_string()), None));
    }
}
