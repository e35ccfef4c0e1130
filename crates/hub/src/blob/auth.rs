//! Who a blob request comes from: the account (Shared Key with the account key) or
//! the holder of a service SAS; anything else is refused. What each operation needs
//! is checked by the caller with `Caller::require`.

use std::net::IpAddr;

use axum::http::{HeaderMap, Method, Uri};
use chrono::{DateTime, Utc};

use super::BlobService;
use super::error::StorageError;
use super::sas::{self, ServiceSas};
use super::shared_key;

/// How far a Shared Key request's date may be from the hub's clock (Azure: 15 minutes).
const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// Shared Key: everything.
    Account,
    Sas(ServiceSas),
}

impl Caller {
    /// Ok when the caller may do an operation needing one of the `any_of` SAS
    /// permissions, on a container-level resource or a blob.
    pub fn require(&self, any_of: &str, container_level: bool) -> Result<(), StorageError> {
        match self {
            Caller::Account => Ok(()),
            Caller::Sas(s) => s.allows(any_of, container_level),
        }
    }

    /// Ok for the account only: what a service SAS can never do.
    pub fn require_account(&self) -> Result<(), StorageError> {
        match self {
            Caller::Account => Ok(()),
            Caller::Sas(_) => Err(StorageError::new(
                403,
                "AuthorizationResourceTypeMismatch",
                "This request is not authorized to perform this operation using this resource type; it needs the account key (Shared Key).",
            )),
        }
    }
}

/// The request as authorization sees it.
pub struct Signed<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    /// None for an account-level request.
    pub container: Option<&'a str>,
    pub blob: Option<&'a str>,
    pub peer: Option<IpAddr>,
}

pub fn authenticate(
    svc: &BlobService,
    req: &Signed<'_>,
    now: DateTime<Utc>,
) -> Result<Caller, StorageError> {
    let query = req.uri.query();
    let authorization = req.headers.get("authorization");
    if sas::has_sas(query) {
        if authorization.is_some() {
            return Err(StorageError::auth_failed(
                "A request may carry a SAS or an Authorization header, not both.",
            ));
        }
        let Some(container) = req.container else {
            return Err(StorageError::new(
                403,
                "AuthorizationResourceTypeMismatch",
                "This request is not authorized to perform this operation using this resource type; a service SAS covers one container or blob.",
            ));
        };
        return sas::verify(
            query.unwrap_or(""),
            &svc.account,
            &svc.key,
            container,
            req.blob,
            req.peer,
            now,
        )
        .map(Caller::Sas);
    }
    let Some(authorization) = authorization else {
        return Err(StorageError::new(
            401,
            "NoAuthenticationInformation",
            "Server failed to authenticate the request. This storage account does not allow anonymous access: sign the request with the account key (Shared Key) or use a service SAS.",
        ));
    };
    let authorization = authorization
        .to_str()
        .map_err(|_| StorageError::invalid_header("Authorization"))?;
    let Some((scheme, credential)) = authorization.split_once(' ') else {
        return Err(StorageError::invalid_header("Authorization"));
    };
    if scheme != "SharedKey" {
        return Err(StorageError::auth_failed(format!(
            "Authorization scheme {scheme} is not supported by this storage account; use SharedKey or a service SAS."
        )));
    }
    let Some((account, signature)) = credential.trim().split_once(':') else {
        return Err(StorageError::invalid_header("Authorization"));
    };
    if account != svc.account {
        return Err(StorageError::auth_failed(format!(
            "The account {account} in the Authorization header is not this storage account ({}).",
            svc.account
        )));
    }
    let header = |n: &str| req.headers.get(n).and_then(|v| v.to_str().ok());
    if header("x-ms-version").is_none() {
        return Err(StorageError::missing_header("x-ms-version"));
    }
    let Some(date) = header("x-ms-date").or(header("date")) else {
        return Err(StorageError::auth_failed(
            "Request date header not specified: send x-ms-date.",
        ));
    };
    let Ok(date) = DateTime::parse_from_rfc2822(date) else {
        return Err(StorageError::invalid_header("x-ms-date"));
    };
    if (now.timestamp() - date.timestamp()).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(StorageError::auth_failed(
            "Request date header too old or too far in the future (more than 15 minutes from the server's clock).",
        ));
    }
    let headers = req
        .headers
        .iter()
        .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
        .collect::<Vec<_>>();
    let to_sign = shared_key::string_to_sign(
        req.method.as_str(),
        &headers,
        &svc.account,
        req.uri.path(),
        query,
    );
    let expected = shared_key::sign(&svc.key, &to_sign).unwrap_or_default();
    if !shared_key::same_signature(&expected, signature) {
        tracing::debug!(string_to_sign = %to_sign.escape_debug(), "shared key signature mismatch");
        return Err(StorageError::auth_failed(
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        ));
    }
    Ok(Caller::Account)
}
