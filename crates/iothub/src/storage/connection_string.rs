//! Storage account connection strings, as the Azure portal and the storage SDKs give
//! them: `DefaultEndpointsProtocol=https;AccountName=…;AccountKey=…;EndpointSuffix=…`,
//! or with an explicit `BlobEndpoint=…` (the local hub's and the storage emulators'
//! path-style form). Keys the blob service does not use (`QueueEndpoint`, …) are
//! accepted and ignored, as the SDKs do.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Why a storage connection string was rejected: one sentence naming the key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageConnectionStringError {
    #[error("the storage connection string part \"{part}\" has no '=' (expected Key=Value)")]
    NoEquals { part: String },
    #[error("the storage connection string has no {key}")]
    Missing { key: &'static str },
    #[error("the storage connection string's AccountKey is not valid base64")]
    BadKey,
    #[error(
        "the storage connection string's BlobEndpoint \"{value}\" is not an http(s) URL; give e.g. https://ACCOUNT.blob.core.windows.net"
    )]
    BadEndpoint { value: String },
    #[error(
        "the storage connection string signs with a SharedAccessSignature; give one with AccountName and AccountKey, so that hubtui can make SAS URLs"
    )]
    SasOnly,
}

/// A storage account that can sign (account name and key) and its blob endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageConnectionString {
    pub account_name: String,
    /// The account key, base64.
    pub account_key: String,
    /// The blob service's base URL without a trailing slash: path-style
    /// (`https://localhost:443/devstoreaccount1`) or Azure's
    /// (`https://ACCOUNT.blob.core.windows.net`).
    pub blob_endpoint: String,
}

impl StorageConnectionString {
    pub fn parse(s: &str) -> Result<Self, StorageConnectionStringError> {
        let (mut protocol, mut name, mut key, mut endpoint, mut suffix) =
            (None, None, None, None, None);
        let mut sas = false;
        for part in s.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) =
                part.split_once('=')
                    .ok_or_else(|| StorageConnectionStringError::NoEquals {
                        part: part.to_string(),
                    })?;
            let v = v.trim().to_string();
            match k.trim() {
                "DefaultEndpointsProtocol" => protocol = Some(v),
                "AccountName" => name = Some(v),
                "AccountKey" => key = Some(v),
                "BlobEndpoint" => endpoint = Some(v),
                "EndpointSuffix" => suffix = Some(v),
                "SharedAccessSignature" => sas = true,
                _ => {}
            }
        }
        let missing = |key| StorageConnectionStringError::Missing { key };
        let account_name = name.filter(|n| !n.is_empty());
        let account_key = key.filter(|k| !k.is_empty());
        if sas && account_key.is_none() {
            return Err(StorageConnectionStringError::SasOnly);
        }
        let account_name = account_name.ok_or(missing("AccountName"))?;
        let account_key = account_key.ok_or(missing("AccountKey"))?;
        if BASE64.decode(&account_key).is_err() {
            return Err(StorageConnectionStringError::BadKey);
        }
        let blob_endpoint = match endpoint {
            Some(e) => {
                let ok = e.starts_with("https://") || e.starts_with("http://");
                if !ok || e.split("://").nth(1).is_none_or(str::is_empty) {
                    return Err(StorageConnectionStringError::BadEndpoint { value: e });
                }
                e.trim_end_matches('/').to_string()
            }
            None => {
                let protocol = protocol.unwrap_or_else(|| "https".into());
                let suffix = suffix.unwrap_or_else(|| "core.windows.net".into());
                format!("{protocol}://{account_name}.blob.{suffix}")
            }
        };
        Ok(Self {
            account_name,
            account_key,
            blob_endpoint,
        })
    }

    /// The URL of a container, or of a blob in it (each path segment percent-encoded,
    /// `/` in a blob name kept as the folder separator).
    pub fn url(&self, container: &str, blob: Option<&str>) -> String {
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, PATH_SEGMENT).to_string();
        let mut url = format!("{}/{}", self.blob_endpoint, enc(container));
        if let Some(b) = blob {
            for seg in b.split('/') {
                url.push('/');
                url.push_str(&enc(seg));
            }
        }
        url
    }
}

/// What a path segment keeps unencoded: RFC 3986 unreserved characters.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl fmt::Display for StorageConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DefaultEndpointsProtocol=https;AccountName={};AccountKey={};BlobEndpoint={}",
            self.account_name, self.account_key, self.blob_endpoint
        )
    }
}

impl fmt::Debug for StorageConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConnectionString")
            .field("account_name", &self.account_name)
            .field("account_key", &"****")
            .field("blob_endpoint", &self.blob_endpoint)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn the_portals_form_gets_azures_blob_endpoint() {
        let cs = StorageConnectionString::parse(&format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"
        ))
        .unwrap();
        assert_eq!(cs.account_name, "acct");
        assert_eq!(cs.blob_endpoint, "https://acct.blob.core.windows.net");
        assert_eq!(
            cs.url("up", Some("dev 1/a+b.png")),
            "https://acct.blob.core.windows.net/up/dev%201/a%2Bb.png"
        );
    }

    #[test]
    fn a_path_style_endpoint_is_kept_and_round_trips() {
        let s = format!(
            "DefaultEndpointsProtocol=https;AccountName=hubtui;AccountKey={KEY};BlobEndpoint=https://localhost:8443/hubtui/;QueueEndpoint=https://q"
        );
        let cs = StorageConnectionString::parse(&s).unwrap();
        assert_eq!(cs.blob_endpoint, "https://localhost:8443/hubtui");
        assert_eq!(cs.url("c", None), "https://localhost:8443/hubtui/c");
        assert_eq!(
            StorageConnectionString::parse(&cs.to_string()),
            Ok(cs.clone())
        );
        assert!(!format!("{cs:?}").contains(KEY));
    }

    #[test]
    fn what_cannot_sign_is_refused_with_the_key_named() {
        let e = |s: &str| StorageConnectionString::parse(s).unwrap_err().to_string();
        assert!(e("AccountName=a").contains("no AccountKey"));
        assert!(e(&format!("AccountKey={KEY}")).contains("no AccountName"));
        assert!(e("AccountName=a;AccountKey=@@").contains("not valid base64"));
        assert!(e("BlobEndpoint=https://x;SharedAccessSignature=sv=1").contains("AccountKey"));
        assert!(
            e(&format!(
                "AccountName=a;AccountKey={KEY};BlobEndpoint=ftp://x"
            ))
            .contains("http(s) URL")
        );
        assert!(e("AccountName").contains("no '='"));
    }
}
