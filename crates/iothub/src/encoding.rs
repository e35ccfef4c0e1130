//! Percent-encoding exactly as the Azure IoT SDKs do it on the wire (SAS `sr`/`sig`, property
//! bags, MQTT username query values): RFC 3986 unreserved characters pass, everything else
//! becomes `%XX` with upper-case hex, like Python's `urllib.parse.quote(s, safe="")`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything except `A-Za-z0-9-_.~` is escaped.
const UNRESERVED_PASS: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Why a percent-encoded string could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodingError {
    /// A `%` not followed by two hex digits.
    #[error("the text has a bad percent escape at byte {position}")]
    BadEscape { position: usize },
    /// The decoded bytes are not UTF-8.
    #[error("the percent-decoded text is not valid utf-8")]
    InvalidUtf8,
}

/// Percent-encodes everything except RFC 3986 unreserved chars (A-Za-z0-9-_.~), upper-case hex,
/// as Python's quote(s, safe="") — what the SDKs put in SAS `sr` and property bags.
pub fn url_encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED_PASS).to_string()
}

/// Decodes %XX (any case); '+' stays '+'. Invalid UTF-8 or bad escapes -> Err.
pub fn url_decode(s: &str) -> Result<String, EncodingError> {
    // Fast path: most ids and values on the wire carry no escapes at all.
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| hex_value(*b));
            let lo = bytes.get(i + 2).and_then(|b| hex_value(*b));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(EncodingError::BadEscape { position: i }),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| EncodingError::InvalidUtf8)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_python_quote_safe_empty() {
        // Vector from python3: urllib.parse.quote('a b/c?d=e&f+g~h_i.j-k%é$', safe='')
        assert_eq!(
            url_encode("a b/c?d=e&f+g~h_i.j-k%\u{e9}$"),
            "a%20b%2Fc%3Fd%3De%26f%2Bg~h_i.j-k%25%C3%A9%24"
        );
        assert_eq!(
            url_encode("myhub.azure-devices.net/devices/dev1"),
            "myhub.azure-devices.net%2Fdevices%2Fdev1"
        );
        assert_eq!(url_encode("$.mid"), "%24.mid");
        assert_eq!(url_encode(""), "");
    }

    #[test]
    fn decodes_any_case_and_keeps_plus() {
        assert_eq!(url_decode("a%2fb%2Fc").unwrap(), "a/b/c");
        assert_eq!(url_decode("a+b").unwrap(), "a+b");
        assert_eq!(url_decode("%C3%A9").unwrap(), "\u{e9}");
        assert_eq!(url_decode("plain").unwrap(), "plain");
    }

    #[test]
    fn rejects_bad_escapes_and_utf8() {
        assert_eq!(
            url_decode("ab%2"),
            Err(EncodingError::BadEscape { position: 2 })
        );
        assert_eq!(
            url_decode("%zz"),
            Err(EncodingError::BadEscape { position: 0 })
        );
        assert_eq!(
            url_decode("x%"),
            Err(EncodingError::BadEscape { position: 1 })
        );
        assert_eq!(url_decode("%FF"), Err(EncodingError::InvalidUtf8));
        assert_eq!(
            EncodingError::BadEscape { position: 3 }.to_string(),
            "the text has a bad percent escape at byte 3"
        );
    }

    #[test]
    fn round_trips_every_char_class() {
        let s = "héllo wörld/\u{1F600}?#[]@!$&'()*+,;=%~-_.\0\n";
        assert_eq!(url_decode(&url_encode(s)).unwrap(), s);
        // Only unreserved ASCII survives encoding.
        assert!(
            url_encode(s)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b))
        );
    }
}
