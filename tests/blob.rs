//! The blob store over real loopback HTTPS: Shared Key and service SAS
//! authorization, containers, Put Blob / Get Blob (ranges) / HEAD / List / Delete,
//! block uploads, conditional requests, persistence across a restart, and the
//! storage error codes for bad input.

mod common;

use std::time::Duration;

use common::TestHub;
use hubtui::hub::blob::shared_key;
use hubtui::hub::info::StorageInfo;
use hubtui::iothub::storage::service_sas;
use reqwest::{Method, StatusCode};

const VERSION: &str = "2021-08-06";

struct Blob<'a> {
    t: &'a TestHub,
    storage: StorageInfo,
}

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn code(&self) -> &str {
        self.headers
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl<'a> Blob<'a> {
    fn new(t: &'a TestHub) -> Blob<'a> {
        let storage = t
            .hub
            .info
            .storage
            .clone()
            .expect("hub.json names the storage account");
        Blob { t, storage }
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.storage.blob_endpoint)
    }

    /// A request signed with Shared Key, as the storage SDKs sign it.
    async fn signed(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        self.signed_with(
            method,
            path_and_query,
            headers,
            body,
            &self.storage.account_key,
            None,
        )
        .await
    }

    async fn signed_with(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
        key: &str,
        date: Option<&str>,
    ) -> Answer {
        let url = reqwest::Url::parse(&self.url(path_and_query)).unwrap();
        let date = date.map(str::to_string).unwrap_or_else(|| {
            chrono::Utc::now()
                .format("%a, %d %b %Y %H:%M:%S GMT")
                .to_string()
        });
        let len = body.len().to_string();
        let mut all: Vec<(&str, &str)> = vec![("x-ms-date", &date), ("x-ms-version", VERSION)];
        if !body.is_empty() || method == Method::PUT {
            all.push(("content-length", &len));
        }
        all.extend_from_slice(headers);
        let to_sign = shared_key::string_to_sign(
            method.as_str(),
            &all,
            &self.storage.account_name,
            url.path(),
            url.query(),
        );
        let sig = shared_key::sign(key, &to_sign).unwrap();
        let auth = format!("SharedKey {}:{sig}", self.storage.account_name);
        let mut req = self
            .t
            .http
            .request(method, url)
            .header("authorization", auth);
        for (n, v) in &all {
            if *n != "content-length" {
                req = req.header(*n, *v);
            }
        }
        send(req.body(body)).await
    }

    async fn anonymous(
        &self,
        method: Method,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut req = self.t.http.request(method, self.url(path_and_query));
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        send(req.body(body)).await
    }

    fn sas(&self, container: &str, blob: Option<&str>, perms: &str, expiry: &str) -> String {
        service_sas::make_query(
            &self.storage.account_name,
            &self.storage.account_key,
            container,
            blob,
            perms,
            None,
            expiry,
        )
    }

    async fn put(&self, path: &str, body: &[u8], extra: &[(&str, &str)]) -> Answer {
        let mut h = vec![("x-ms-blob-type", "BlockBlob")];
        h.extend_from_slice(extra);
        self.signed(Method::PUT, path, &h, body.to_vec()).await
    }

    async fn container(&self, name: &str) {
        let a = self
            .signed(
                Method::PUT,
                &format!("/{name}?restype=container"),
                &[],
                vec![],
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("the hub answers");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

fn in_hours(h: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::hours(h))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn md5_b64(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

#[tokio::test]
async fn hub_json_names_the_storage_account_and_connection_string() {
    let t = TestHub::start().await;
    let s = Blob::new(&t).storage;
    assert_eq!(s.account_name, "hubtuistore");
    let port = t.hub.info.ports.https;
    assert_eq!(
        s.blob_endpoint,
        format!("https://localhost:{port}/hubtuistore")
    );
    assert_eq!(
        s.connection_string,
        format!(
            "DefaultEndpointsProtocol=https;AccountName=hubtuistore;AccountKey={};BlobEndpoint=https://localhost:{port}/hubtuistore",
            s.account_key
        )
    );
    let on_disk = hubtui::hub::HubInfo::read(t.dir.path()).unwrap();
    assert_eq!(on_disk.storage, Some(s));
}

#[tokio::test]
async fn put_get_range_head_list_and_delete_with_shared_key() {
    let t = TestHub::start().await;
    let b = Blob::new(&t);
    b.container("photos").await;
    let data = b"0123456789abcdefghij".to_vec();
    let put = b
        .put(
            "/photos/cam/1.txt",
            &data,
            &[
                ("content-type", "text/plain"),
                ("x-ms-meta-camera", "front"),
            ],
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.text());
    assert_eq!(put.header("content-md5"), md5_b64(&data));
    let etag = put.header("etag").to_string();
    assert!(etag.starts_with("\"0x"), "{etag}");

    let get = b
        .signed(Method::GET, "/photos/cam/1.txt", &[], vec![])
        .await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(get.body, data);
    assert_eq!(get.header("content-type"), "text/plain");
    assert_eq!(get.header("content-md5"), md5_b64(&data));
    assert_eq!(get.header("etag"), etag);
    assert_eq!(get.header("x-ms-meta-camera"), "front");
    assert_eq!(get.header("x-ms-blob-type"), "BlockBlob");
    assert!(!get.header("last-modified").is_empty());

    let range = b
        .signed(
            Method::GET,
            "/photos/cam/1.txt",
            &[("x-ms-range", "bytes=5-9")],
            vec![],
        )
        .await;
    assert_eq!(range.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(range.body, b"56789");
    assert_eq!(range.header("content-range"), "bytes 5-9/20");
    assert_eq!(range.header("x-ms-blob-content-md5"), md5_b64(&data));
    let open = b
        .signed(
            Method::GET,
            "/photos/cam/1.txt",
            &[("range", "bytes=15-")],
            vec![],
        )
        .await;
    assert_eq!(
        (open.status, open.body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, &b"fghij"[..])
    );
    let past = b
        .signed(
            Method::GET,
            "/photos/cam/1.txt",
            &[("x-ms-range", "bytes=20-30")],
            vec![],
        )
        .await;
    assert_eq!(
        (past.status, past.code()),
        (StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange")
    );
    assert_eq!(past.header("content-range"), "bytes */20");

    let head = b
        .signed(Method::HEAD, "/photos/cam/1.txt", &[], vec![])
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), "20");
    assert!(head.body.is_empty());

    for name in ["cam/2.txt", "cam/sub/3.txt", "other.txt", "cam2.txt"] {
        assert_eq!(
            b.put(&format!("/photos/{name}"), b"x", &[]).await.status,
            StatusCode::CREATED
        );
    }
    let list = b
        .signed(
            Method::GET,
            "/photos?restype=container&comp=list&prefix=cam/&delimiter=/",
            &[],
            vec![],
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let xml = list.text();
    assert!(
        xml.contains("<Name>cam/1.txt</Name>") && xml.contains("<Name>cam/2.txt</Name>"),
        "{xml}"
    );
    assert!(
        xml.contains("<BlobPrefix><Name>cam/sub/</Name></BlobPrefix>"),
        "{xml}"
    );
    assert!(
        !xml.contains("other.txt") && !xml.contains("<Name>cam/sub/3.txt"),
        "{xml}"
    );
    assert!(xml.contains("<Content-Length>20</Content-Length>"), "{xml}");

    // Paging: two at a time through all five, in name order.
    let mut seen = Vec::new();
    let mut marker = String::new();
    for _ in 0..5 {
        let q = format!(
            "/photos?restype=container&comp=list&maxresults=2&marker={}",
            urlencode(&marker)
        );
        let page = b.signed(Method::GET, &q, &[], vec![]).await.text();
        seen.extend(names_in(&page));
        marker = between(&page, "<NextMarker>", "</NextMarker>").unwrap_or_default();
        if marker.is_empty() {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "cam/1.txt",
            "cam/2.txt",
            "cam/sub/3.txt",
            "cam2.txt",
            "other.txt"
        ]
    );

    let containers = b
        .signed(Method::GET, "/?comp=list&prefix=ph", &[], vec![])
        .await;
    assert!(
        containers.text().contains("<Name>photos</Name>"),
        "{}",
        containers.text()
    );
    let props = b
        .signed(Method::HEAD, "/photos?restype=container", &[], vec![])
        .await;
    assert_eq!(props.status, StatusCode::OK);

    let del = b
        .signed(Method::DELETE, "/photos/cam/1.txt", &[], vec![])
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = b
        .signed(Method::GET, "/photos/cam/1.txt", &[], vec![])
        .await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::NOT_FOUND, "BlobNotFound")
    );
    assert!(
        gone.text().contains("<Code>BlobNotFound</Code>"),
        "{}",
        gone.text()
    );
    let del = b
        .signed(Method::DELETE, "/photos?restype=container", &[], vec![])
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    let gone = b
        .signed(Method::GET, "/photos/cam/2.txt", &[], vec![])
        .await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::NOT_FOUND, "ContainerNotFound")
    );
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn between(s: &str, a: &str, b: &str) -> Option<String> {
    let start = s.find(a)? + a.len();
    let end = s[start..].find(b)? + start;
    Some(s[start..end].to_string())
}

fn names_in(xml: &str) -> Vec<String> {
    xml.split("<Blob><Name>")
        .skip(1)
        .filter_map(|p| p.split("</Name>").next().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn shared_key_and_anonymous_refusals() {
    let t = TestHub::start().await;
    let b = Blob::new(&t);
    b.container("box1").await;
    let anon = b
        .anonymous(
            Method::GET,
            "/box1?restype=container&comp=list",
            &[],
            vec![],
        )
        .await;
    assert_eq!(
        (anon.status, anon.code()),
        (StatusCode::UNAUTHORIZED, "NoAuthenticationInformation")
    );
    use base64::Engine;
    let other_key = base64::engine::general_purpose::STANDARD.encode([1u8; 64]);
    let bad = b
        .signed_with(
            Method::GET,
            "/box1?restype=container&comp=list",
            &[],
            vec![],
            &other_key,
            None,
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::FORBIDDEN, "AuthenticationFailed")
    );
    let bearer = b
        .anonymous(
            Method::GET,
            "/box1?restype=container&comp=list",
            &[("authorization", "Bearer x")],
            vec![],
        )
        .await;
    assert_eq!(
        (bearer.status, bearer.code()),
        (StatusCode::FORBIDDEN, "AuthenticationFailed")
    );
    // Correctly signed, but dated more than 15 minutes ago.
    let key = b.storage.account_key.clone();
    let stale = b
        .signed_with(
            Method::GET,
            "/box1?restype=container&comp=list",
            &[],
            vec![],
            &key,
            Some("Mon, 01 Jan 2024 00:00:00 GMT"),
        )
        .await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::FORBIDDEN, "AuthenticationFailed")
    );
    let fine = b
        .signed_with(
            Method::GET,
            "/box1?restype=container&comp=list",
            &[],
            vec![],
            &key,
            None,
        )
        .await;
    assert_eq!(fine.status, StatusCode::OK);
}

#[tokio::test]
async fn service_sas_is_enforced() {
    let t = TestHub::start().await;
    let b = Blob::new(&t);
    b.container("box1").await;
    assert_eq!(
        b.put("/box1/a.txt", b"hello", &[]).await.status,
        StatusCode::CREATED
    );

    let read = b.sas("box1", Some("a.txt"), "r", &in_hours(1));
    let ok = b
        .anonymous(Method::GET, &format!("/box1/a.txt?{read}"), &[], vec![])
        .await;
    assert_eq!(
        (ok.status, ok.body.as_slice()),
        (StatusCode::OK, &b"hello"[..])
    );

    // Wrong permission: a read SAS cannot write or delete.
    let put = b
        .anonymous(
            Method::PUT,
            &format!("/box1/a.txt?{read}"),
            &[("x-ms-blob-type", "BlockBlob")],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(
        (put.status, put.code()),
        (StatusCode::FORBIDDEN, "AuthorizationPermissionMismatch")
    );
    let del = b
        .anonymous(Method::DELETE, &format!("/box1/a.txt?{read}"), &[], vec![])
        .await;
    assert_eq!(del.code(), "AuthorizationPermissionMismatch");
    // Wrong resource: another blob, and a container operation with a blob SAS.
    let other = b
        .anonymous(Method::GET, &format!("/box1/b.txt?{read}"), &[], vec![])
        .await;
    assert_eq!(
        (other.status, other.code()),
        (StatusCode::FORBIDDEN, "AuthenticationFailed")
    );
    let list = b
        .anonymous(
            Method::GET,
            &format!("/box1?restype=container&comp=list&{read}"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(
        (list.status, list.code()),
        (StatusCode::FORBIDDEN, "AuthorizationResourceTypeMismatch")
    );
    // Expired.
    let expired = b.sas("box1", Some("a.txt"), "r", &in_hours(-1));
    let e = b
        .anonymous(Method::GET, &format!("/box1/a.txt?{expired}"), &[], vec![])
        .await;
    assert_eq!(
        (e.status, e.code()),
        (StatusCode::FORBIDDEN, "AuthenticationFailed")
    );
    assert!(
        e.text()
            .contains("Signature not valid in the specified time frame"),
        "{}",
        e.text()
    );
    // A signature that was changed.
    let tampered = read.replace("sp=r", "sp=rwd");
    let e = b
        .anonymous(
            Method::DELETE,
            &format!("/box1/a.txt?{tampered}"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(
        (e.status, e.code()),
        (StatusCode::FORBIDDEN, "AuthenticationFailed")
    );
    // User delegation: refused with a sentence that says so.
    let ud = format!(
        "{read}&skoid=00000000-0000-0000-0000-000000000000&sktid=x&skt=2026-01-01T00:00:00Z&ske=2027-01-01T00:00:00Z&sks=b&skv=2020-12-06"
    );
    let e = b
        .anonymous(Method::GET, &format!("/box1/a.txt?{ud}"), &[], vec![])
        .await;
    assert_eq!(e.status, StatusCode::FORBIDDEN);
    assert!(
        e.text().contains("User delegation SAS is not supported"),
        "{}",
        e.text()
    );

    // A container SAS with create+write+list: upload, list, but no delete; create-only cannot overwrite.
    let cw = b.sas("box1", None, "cwl", &in_hours(1));
    let up = b
        .anonymous(
            Method::PUT,
            &format!("/box1/new.txt?{cw}"),
            &[("x-ms-blob-type", "BlockBlob")],
            b"new".to_vec(),
        )
        .await;
    assert_eq!(up.status, StatusCode::CREATED, "{}", up.text());
    let l = b
        .anonymous(
            Method::GET,
            &format!("/box1?restype=container&comp=list&{cw}"),
            &[],
            vec![],
        )
        .await;
    assert!(l.text().contains("<Name>new.txt</Name>"), "{}", l.text());
    let d = b
        .anonymous(Method::DELETE, &format!("/box1/new.txt?{cw}"), &[], vec![])
        .await;
    assert_eq!(d.code(), "AuthorizationPermissionMismatch");
    let create_only = b.sas("box1", None, "c", &in_hours(1));
    let over = b
        .anonymous(
            Method::PUT,
            &format!("/box1/new.txt?{create_only}"),
            &[("x-ms-blob-type", "BlockBlob")],
            b"again".to_vec(),
        )
        .await;
    assert_eq!(over.code(), "AuthorizationPermissionMismatch");
    let get = b.signed(Method::GET, "/box1/new.txt", &[], vec![]).await;
    assert_eq!(get.body, b"new");
    // A service SAS never creates containers or lists the account.
    let mk = b
        .anonymous(
            Method::PUT,
            &format!("/box2?restype=container&{cw}"),
            &[],
            vec![],
        )
        .await;
    assert_eq!(mk.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn blocks_are_invisible_until_committed() {
    let t = TestHub::start().await;
    let b = Blob::new(&t);
    b.container("big").await;
    use base64::Engine;
    let id = |i: u32| base64::engine::general_purpose::STANDARD.encode(format!("block-{i:06}"));
    let parts: Vec<Vec<u8>> = (0..3)
        .map(|i| vec![b'a' + i as u8; 1000 + i as usize])
        .collect();
    for (i, p) in parts.iter().enumerate() {
        let q = format!("/big/f.bin?comp=block&blockid={}", urlencode(&id(i as u32)));
        let md5 = md5_b64(p);
        let a = b
            .signed(Method::PUT, &q, &[("content-md5", &md5)], p.clone())
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    }
    let before = b.signed(Method::GET, "/big/f.bin", &[], vec![]).await;
    assert_eq!(before.code(), "BlobNotFound");
    let list = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>{}</Latest><Uncommitted>{}</Uncommitted><Latest>{}</Latest></BlockList>",
        id(2),
        id(0),
        id(1)
    );
    let a = b
        .signed(
            Method::PUT,
            "/big/f.bin?comp=blocklist",
            &[("x-ms-blob-content-type", "application/x-test")],
            list.into_bytes(),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let get = b.signed(Method::GET, "/big/f.bin", &[], vec![]).await;
    let want: Vec<u8> = [&parts[2], &parts[0], &parts[1]]
        .into_iter()
        .flatten()
        .copied()
        .collect();
    assert_eq!(get.body, want);
    assert_eq!(get.header("content-type"), "application/x-test");
    // The committed list consumed the blocks: listing them again is invalid.
    let again = format!("<BlockList><Latest>{}</Latest></BlockList>", id(0));
    let a = b
        .signed(
            Method::PUT,
            "/big/f.bin?comp=blocklist",
            &[],
            again.into_bytes(),
        )
        .await;
    assert_eq!(
        (a.status, a.code()),
        (StatusCode::BAD_REQUEST, "InvalidBlockList")
    );
    let bad_id = b
        .signed(
            Method::PUT,
            "/big/g.bin?comp=block&blockid=%%%",
            &[],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(bad_id.code(), "InvalidQueryParameterValue");
    let bad_md5 = b
        .signed(
            Method::PUT,
            &format!("/big/g.bin?comp=block&blockid={}", urlencode(&id(9))),
            &[("content-md5", &md5_b64(b"other"))],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(bad_md5.code(), "Md5Mismatch");
    let bad_xml = b
        .signed(
            Method::PUT,
            "/big/g.bin?comp=blocklist",
            &[],
            b"<Nope>".to_vec(),
        )
        .await;
    assert_eq!(
        (bad_xml.status, bad_xml.code()),
        (StatusCode::BAD_REQUEST, "InvalidXmlDocument")
    );
}

#[tokio::test]
async fn conditional_requests() {
    let t = TestHub::start().await;
    let b = Blob::new(&t);
    b.container("cond").await;
    let put = b.put("/cond/x", b"one", &[]).await;
    let etag = put.header("etag").to_string();
    let exists = b.put("/cond/x", b"two", &[("if-none-match", "*")]).await;
    assert_eq!(
        (exists.status, exists.code()),
        (StatusCode::CONFLICT, "BlobAlreadyExists")
    );
    let stale = b
        .put("/cond/x", b"two", &[("if-match", "\"0x8D000000000000\"")])
        .await;
    assert_eq!(
        (stale.status, stale.code()),
        (StatusCode::PRECONDITION_FAILED, "ConditionNotMet")
    );
    let cached = b
        .signed(Method::GET, "/cond/x", &[("if-none-match", &etag)], vec![])
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    let wrong = b
        .signed(Method::GET, "/cond/x", &[("if-match", "\"0x1\"")], vec![])
        .await;
    assert_eq!(wrong.code(), "ConditionNotMet");
    let fresh = b.put("/cond/x", b"two", &[("if-match", &etag)]).await;
    assert_eq!(fresh.status, StatusCode::CREATED);
    assert_ne!(fresh.header("etag"), etag);
    let del = b
        .signed(Method::DELETE, "/cond/x", &[("if-match", &etag)], vec![])
        .await;
    assert_eq!(del.code(), "ConditionNotMet");
    let get = b.signed(Method::GET, "/cond/x", &[], vec![]).await;
    assert_eq!(get.body, b"two");
    let create = b.put("/cond/y", b"new", &[("if-none-match", "*")]).await;
    assert_eq!(create.status, StatusCode::CREATED);
}

#[tokio::test]
async fn bad_input_gets_the_storage_error_code() {
    let t = TestHub::start_with(|o| o.blob_limits.max_put_blob = 1024).await;
    let b = Blob::new(&t);
    b.container("bad").await;
    let again = b
        .signed(Method::PUT, "/bad?restype=container", &[], vec![])
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "ContainerAlreadyExists")
    );
    let name = b
        .signed(Method::PUT, "/Bad_Name?restype=container", &[], vec![])
        .await;
    assert_eq!(
        (name.status, name.code()),
        (StatusCode::BAD_REQUEST, "InvalidResourceName")
    );
    let long = format!("/bad/{}", "n".repeat(1025));
    assert_eq!(b.put(&long, b"x", &[]).await.code(), "InvalidResourceName");
    let no_type = b.signed(Method::PUT, "/bad/x", &[], b"x".to_vec()).await;
    assert_eq!(
        (no_type.status, no_type.code()),
        (StatusCode::BAD_REQUEST, "MissingRequiredHeader")
    );
    let page = b
        .signed(
            Method::PUT,
            "/bad/x",
            &[("x-ms-blob-type", "PageBlob")],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(page.code(), "InvalidHeaderValue");
    let md5 = b
        .put("/bad/x", b"x", &[("content-md5", &md5_b64(b"y"))])
        .await;
    assert_eq!(
        (md5.status, md5.code()),
        (StatusCode::BAD_REQUEST, "Md5Mismatch")
    );
    assert_eq!(
        b.signed(Method::GET, "/bad/x", &[], vec![]).await.code(),
        "BlobNotFound"
    );
    let big = b.put("/bad/x", &[0u8; 2048], &[]).await;
    assert_eq!(
        (big.status, big.code()),
        (StatusCode::PAYLOAD_TOO_LARGE, "RequestBodyTooLarge")
    );
    let max = b
        .signed(
            Method::GET,
            "/bad?restype=container&comp=list&maxresults=0",
            &[],
            vec![],
        )
        .await;
    assert_eq!(max.code(), "InvalidQueryParameterValue");
    let range = b
        .signed(
            Method::GET,
            "/bad/x",
            &[("x-ms-range", "bytes=9-1")],
            vec![],
        )
        .await;
    assert_eq!(range.code(), "InvalidHeaderValue");
    let no_container = b.put("/none/x", b"x", &[]).await;
    assert_eq!(
        (no_container.status, no_container.code()),
        (StatusCode::NOT_FOUND, "ContainerNotFound")
    );
    let version = b
        .anonymous(
            Method::GET,
            "/bad?restype=container&comp=list",
            &[("x-ms-version", "yesterday")],
            vec![],
        )
        .await;
    assert_eq!(
        (version.status, version.code()),
        (StatusCode::BAD_REQUEST, "InvalidHeaderValue")
    );
    // Nothing half-written is left behind by the refused bodies.
    let data = t.dir.path().join("blobs").join("data");
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0);
    assert_eq!(
        std::fs::read_dir(t.dir.path().join("blobs").join("tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn blobs_and_the_account_key_survive_a_restart() {
    let t = TestHub::start().await;
    let (key, dir) = {
        let b = Blob::new(&t);
        b.container("keep").await;
        assert_eq!(
            b.put("/keep/a/b.txt", b"persisted", &[]).await.status,
            StatusCode::CREATED
        );
        (b.storage.account_key.clone(), t.dir)
    };
    t.hub.shutdown().await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = TestHub::start_in(dir, |_| {}).await;
    let b = Blob::new(&t);
    assert_eq!(b.storage.account_key, key);
    let get = b.signed(Method::GET, "/keep/a/b.txt", &[], vec![]).await;
    assert_eq!(
        (get.status, get.body.as_slice()),
        (StatusCode::OK, &b"persisted"[..])
    );
}
