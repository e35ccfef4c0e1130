//! Shared Key authorization for the Blob service: the string-to-sign exactly as the
//! service defines it (version 2009-09-19 and later), and its HMAC-SHA256 under the
//! account key. Pure: headers and query in, bytes out.
//!
//! ```text
//! VERB \n Content-Encoding \n Content-Language \n Content-Length (empty when 0) \n
//! Content-MD5 \n Content-Type \n Date \n If-Modified-Since \n If-Match \n
//! If-None-Match \n If-Unmodified-Since \n Range \n
//! CanonicalizedHeaders (x-ms-*: lowercased, sorted, "name:value\n")
//! CanonicalizedResource ("/" account + encoded URI path, then "\nname:value" per
//! query parameter, names lowercased and sorted, values decoded, sorted and joined by ",")
//! ```

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The standard headers, in the order they are signed.
const SIGNED_HEADERS: [&str; 11] = [
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
];

/// The string-to-sign of a request. `headers` are (name, value) pairs as received;
/// `path` is the URI path as sent (still percent-encoded); `query` the raw query string.
pub fn string_to_sign(
    method: &str,
    headers: &[(&str, &str)],
    account: &str,
    path: &str,
    query: Option<&str>,
) -> String {
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .unwrap_or("")
    };
    let mut s = String::with_capacity(256);
    s.push_str(method);
    s.push('\n');
    for name in SIGNED_HEADERS {
        let v = find(name);
        // Since 2015-02-21 a zero Content-Length is signed as the empty string.
        if !(name == "content-length" && v == "0") {
            s.push_str(v);
        }
        s.push('\n');
    }
    let mut ms: BTreeMap<String, String> = BTreeMap::new();
    for (n, v) in headers {
        let n = n.to_ascii_lowercase();
        let v = *v;
        if n.starts_with("x-ms-") {
            let v = fold_whitespace(v);
            ms.entry(n)
                .and_modify(|e| {
                    e.push(',');
                    e.push_str(&v);
                })
                .or_insert(v);
        }
    }
    for (n, v) in ms {
        s.push_str(&n);
        s.push(':');
        s.push_str(&v);
        s.push('\n');
    }
    s.push('/');
    s.push_str(account);
    s.push_str(if path.is_empty() { "/" } else { path });
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (n, v) in form_urlencoded_pairs(query.unwrap_or("")) {
        params.entry(n.to_ascii_lowercase()).or_default().push(v);
    }
    for (n, mut vs) in params {
        vs.sort();
        s.push('\n');
        s.push_str(&n);
        s.push(':');
        s.push_str(&vs.join(","));
    }
    s
}

/// Query pairs, percent-decoded (`+` stays `+`, as the service reads it).
pub fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(n), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Trims a header value and folds runs of whitespace (outside quotes) into one space.
fn fold_whitespace(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut in_quotes = false;
    let mut space = false;
    for c in v.trim().chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if !in_quotes && c.is_whitespace() {
            space = true;
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// Base64 HMAC-SHA256 of `string_to_sign` under the base64 account key; None when
/// the key is not base64.
pub fn sign(key_b64: &str, string_to_sign: &str) -> Option<String> {
    let key = B64.decode(key_b64).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(string_to_sign.as_bytes());
    Some(B64.encode(mac.finalize().into_bytes()))
}

/// Constant-time comparison of two signatures.
pub fn same_signature(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_to_sign_follows_the_service_layout() {
        let headers = [
            ("Content-Length", "0"),
            ("x-ms-version", "2021-08-06"),
            ("x-ms-date", "Wed, 02 Dec 2026 08:00:00 GMT"),
            ("X-Ms-Meta-A", "  one   two "),
            ("Content-Type", "text/plain"),
        ];
        let s = string_to_sign(
            "PUT",
            &headers,
            "acct",
            "/acct/c/a%20b",
            Some("restype=container&comp=list&Include=metadata&include=snapshots"),
        );
        assert_eq!(
            s,
            "PUT\n\n\n\n\ntext/plain\n\n\n\n\n\n\n\
             x-ms-date:Wed, 02 Dec 2026 08:00:00 GMT\nx-ms-meta-a:one two\nx-ms-version:2021-08-06\n\
             /acct/acct/c/a%20b\ncomp:list\ninclude:metadata,snapshots\nrestype:container"
        );
    }

    #[test]
    fn nonzero_content_length_is_signed() {
        let s = string_to_sign("PUT", &[("content-length", "12")], "a", "/a/c", None);
        assert!(s.starts_with("PUT\n\n\n12\n"));
        assert!(s.ends_with("\n/a/a/c"));
    }

    #[test]
    fn signature_is_hmac_sha256_of_the_string() {
        // HMAC-SHA256 with key "key" over "The quick brown fox jumps over the lazy dog".
        let key = B64.encode(b"key");
        assert_eq!(
            sign(&key, "The quick brown fox jumps over the lazy dog").unwrap(),
            B64.encode(hex_bytes(
                "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
            ))
        );
        assert!(sign("not base64!", "x").is_none());
        assert!(same_signature("abc", "abc"));
        assert!(!same_signature("abc", "abd"));
        assert!(!same_signature("abc", "ab"));
    }

    fn hex_bytes(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }
}
