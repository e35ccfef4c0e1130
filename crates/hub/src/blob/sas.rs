//! Service SAS for the Blob service: the query fields (sv, sr, sp, st, se, spr, sip,
//! sig and the response-header overrides), the string-to-sign for each layout the
//! service version defines, and the checks of time, protocol and address. Pure.
//!
//! Layout for sv ≥ 2020-12-06 (2018-11-09 ≤ sv < 2020-12-06 has no `ses` line;
//! 2015-04-05 ≤ sv < 2018-11-09 has neither `sr` nor `snapshot`):
//! `sp \n st \n se \n /blob/{account}/{container}[/{blob}] \n si \n sip \n spr \n sv \n sr \n
//! snapshot \n ses \n rscc \n rscd \n rsce \n rscl \n rsct`

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::error::StorageError;
#[cfg(test)]
use iothub::storage::service_sas::make_query;
use iothub::storage::shared_key::{form_urlencoded_pairs, same_signature, sign};

/// What a service SAS grants, once its signature is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSas {
    pub resource: SasResource,
    /// Permission letters as signed (`r`, `a`, `c`, `w`, `d`, `l`, …).
    pub permissions: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SasResource {
    Blob,
    Container,
}

/// The query fields a user-delegation SAS carries (a key obtained through Entra ID).
const DELEGATION_FIELDS: [&str; 6] = ["skoid", "sktid", "skt", "ske", "sks", "skv"];

/// True when the query carries a SAS signature at all.
pub fn has_sas(query: Option<&str>) -> bool {
    query.is_some_and(|q| form_urlencoded_pairs(q).iter().any(|(n, _)| n == "sig"))
}

/// Checks a service SAS in `query` for a request on `container` (and `blob`).
pub fn verify(
    query: &str,
    account: &str,
    key_b64: &str,
    container: &str,
    blob: Option<&str>,
    peer: Option<IpAddr>,
    now: DateTime<Utc>,
) -> Result<ServiceSas, StorageError> {
    let fields: HashMap<String, String> = form_urlencoded_pairs(query).into_iter().collect();
    let get = |n: &str| fields.get(n).map(String::as_str).unwrap_or("");
    if DELEGATION_FIELDS.iter().any(|f| fields.contains_key(*f)) {
        return Err(StorageError::auth_failed(
            "User delegation SAS is not supported by this storage account; use a service SAS signed with the account key.",
        ));
    }
    if fields.contains_key("ss") || fields.contains_key("srt") {
        return Err(StorageError::auth_failed(
            "Account SAS is not supported by this storage account; use a service SAS (sr=b or sr=c).",
        ));
    }
    let malformed = |what: &str| {
        StorageError::auth_failed(format!(
            "Server failed to authenticate the request. Signature fields not well formed: {what}."
        ))
    };
    let version = get("sv");
    if !is_version(version) || version < "2015-04-05" {
        return Err(malformed("sv must be a service version from 2015-04-05 on"));
    }
    if !get("si").is_empty() {
        return Err(StorageError::auth_failed(
            "Stored access policies (si) are not supported by this storage account; sign the permissions and expiry into the SAS.",
        ));
    }
    let resource = match get("sr") {
        "b" => SasResource::Blob,
        "c" => SasResource::Container,
        "" => return Err(malformed("sr is missing")),
        _ => return Err(malformed("sr must be b or c")),
    };
    let permissions = get("sp");
    if permissions.is_empty() || !permissions.chars().all(|c| "racwdxyltmeopi".contains(c)) {
        return Err(malformed("sp"));
    }
    let expiry = parse_time(get("se")).ok_or_else(|| malformed("se"))?;
    let start = match get("st") {
        "" => None,
        st => Some(parse_time(st).ok_or_else(|| malformed("st"))?),
    };
    match get("spr") {
        "" | "https" | "https,http" => {}
        _ => return Err(malformed("spr")),
    }
    let sig = get("sig");
    if sig.is_empty() {
        return Err(malformed("sig"));
    }
    let canonical = match (resource, blob) {
        (SasResource::Blob, Some(b)) => format!("/blob/{account}/{container}/{b}"),
        (SasResource::Container, _) => format!("/blob/{account}/{container}"),
        (SasResource::Blob, None) => {
            return Err(StorageError::new(
                403,
                "AuthorizationResourceTypeMismatch",
                "This request is not authorized to perform this operation using this resource type.",
            ));
        }
    };
    let mut lines = vec![
        permissions,
        get("st"),
        get("se"),
        canonical.as_str(),
        get("si"),
        get("sip"),
        get("spr"),
        version,
    ];
    if version >= "2018-11-09" {
        lines.push(get("sr"));
        lines.push(get("snapshot"));
    }
    if version >= "2020-12-06" {
        lines.push(get("ses"));
    }
    lines.extend([
        get("rscc"),
        get("rscd"),
        get("rsce"),
        get("rscl"),
        get("rsct"),
    ]);
    let expected = sign(key_b64, &lines.join("\n")).unwrap_or_default();
    if !same_signature(&expected, sig) {
        return Err(StorageError::auth_failed(
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature. Signature did not match.",
        ));
    }
    if now > expiry || start.is_some_and(|s| now < s) {
        return Err(StorageError::auth_failed(format!(
            "Signature not valid in the specified time frame: Start [{}] - Expiry [{}] - Current [{}]",
            get("st"),
            get("se"),
            now.format("%a, %d %b %Y %H:%M:%S GMT")
        )));
    }
    if let (false, Some(ip)) = (get("sip").is_empty(), peer)
        && !ip_allowed(get("sip"), ip)
    {
        return Err(StorageError::new(
            403,
            "AuthorizationSourceIPMismatch",
            "This request is not authorized to perform this operation using this source IP.",
        ));
    }
    Ok(ServiceSas {
        resource,
        permissions: permissions.to_string(),
    })
}

impl ServiceSas {
    /// Ok when the SAS grants one of `any_of` (permission letters) on a blob-level or
    /// container-level resource as `container_level` says.
    pub fn allows(&self, any_of: &str, container_level: bool) -> Result<(), StorageError> {
        if container_level && self.resource == SasResource::Blob {
            return Err(StorageError::new(
                403,
                "AuthorizationResourceTypeMismatch",
                "This request is not authorized to perform this operation using this resource type.",
            ));
        }
        if any_of.chars().any(|c| self.permissions.contains(c)) {
            Ok(())
        } else {
            Err(StorageError::new(
                403,
                "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.",
            ))
        }
    }
}

/// `YYYY-MM-DD`.
fn is_version(v: &str) -> bool {
    v.len() == 10 && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok()
}

/// The ISO 8601 UTC forms a SAS may carry: with or without seconds, or a date.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.to_utc());
    }
    for f in ["%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// `sip` is one address or an inclusive range `a-b`.
fn ip_allowed(sip: &str, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    };
    match sip.split_once('-') {
        Some((a, b)) => match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
            (Ok(a), Ok(b)) => a <= ip && ip <= b,
            _ => false,
        },
        None => sip.parse::<IpAddr>().is_ok_and(|a| a == ip),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn key() -> String {
        base64::engine::general_purpose::STANDARD.encode([7u8; 64])
    }

    fn now() -> DateTime<Utc> {
        parse_time("2026-06-01T12:00:00Z").unwrap()
    }

    #[test]
    fn a_made_sas_verifies_and_grants_what_it_signs() {
        let q = make_query(
            "acct",
            &key(),
            "c",
            Some("a/b.txt"),
            "rw",
            None,
            "2026-06-02T00:00:00Z",
        );
        let sas = verify(&q, "acct", &key(), "c", Some("a/b.txt"), None, now()).unwrap();
        assert_eq!(sas.resource, SasResource::Blob);
        assert!(sas.allows("r", false).is_ok());
        assert_eq!(
            sas.allows("d", false).unwrap_err().code,
            "AuthorizationPermissionMismatch"
        );
        assert_eq!(
            sas.allows("l", true).unwrap_err().code,
            "AuthorizationResourceTypeMismatch"
        );
    }

    #[test]
    fn another_blob_expiry_and_start_are_refused() {
        let q = make_query(
            "acct",
            &key(),
            "c",
            Some("x"),
            "r",
            None,
            "2026-06-02T00:00:00Z",
        );
        let e = verify(&q, "acct", &key(), "c", Some("y"), None, now()).unwrap_err();
        assert_eq!(e.code, "AuthenticationFailed");
        let late = parse_time("2026-06-03T00:00:00Z").unwrap();
        let e = verify(&q, "acct", &key(), "c", Some("x"), None, late).unwrap_err();
        assert!(e.message.contains("time frame"), "{e}");
        let q = make_query(
            "acct",
            &key(),
            "c",
            None,
            "rl",
            Some("2026-06-01T13:00:00Z"),
            "2026-06-02T00:00:00Z",
        );
        let e = verify(&q, "acct", &key(), "c", Some("x"), None, now()).unwrap_err();
        assert!(e.message.contains("time frame"), "{e}");
    }

    #[test]
    fn user_delegation_and_malformed_fields_are_refused() {
        let q = "sv=2020-12-06&sr=b&sp=r&se=2026-06-02T00:00:00Z&skoid=x&sktid=y&sig=abc";
        let e = verify(q, "a", &key(), "c", Some("b"), None, now()).unwrap_err();
        assert!(e.message.contains("User delegation SAS is not supported"));
        let q = "sv=2020-12-06&sr=q&sp=r&se=2026-06-02T00:00:00Z&sig=abc";
        assert_eq!(
            verify(q, "a", &key(), "c", Some("b"), None, now())
                .unwrap_err()
                .code,
            "AuthenticationFailed"
        );
        let q = "sv=2020-12-06&sr=b&sp=r&se=tomorrow&sig=abc";
        assert!(
            verify(q, "a", &key(), "c", Some("b"), None, now())
                .unwrap_err()
                .message
                .contains("se")
        );
    }

    #[test]
    fn source_ip_ranges() {
        let ip = "127.0.0.1".parse().unwrap();
        assert!(ip_allowed("127.0.0.1", ip));
        assert!(ip_allowed("127.0.0.0-127.0.0.9", ip));
        assert!(!ip_allowed("10.0.0.1", ip));
        assert!(!ip_allowed("junk", ip));
    }
}
