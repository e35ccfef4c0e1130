//! Making a service SAS for the Blob service, signed with the account key: the query a
//! SAS URL carries (sv, spr, sr, sp, st, se, sig). The string-to-sign for
//! sv = 2020-12-06:
//! `sp \n st \n se \n /blob/{account}/{container}[/{blob}] \n si \n sip \n spr \n sv \n sr \n
//! snapshot \n ses \n rscc \n rscd \n rsce \n rscl \n rsct`

use super::shared_key::sign;

/// The service version SAS URLs are signed for, and requests with them are sent as.
pub const VERSION: &str = "2020-12-06";

/// Builds a service SAS query (no leading `?`), `sv=2020-12-06` layout, HTTPS only:
/// `permissions` as the service spells them (`racwdl` order), `start` and `expiry` as
/// ISO 8601 UTC times (`2026-06-01T12:00:00Z`).
pub fn make_query(
    account: &str,
    key_b64: &str,
    container: &str,
    blob: Option<&str>,
    permissions: &str,
    start: Option<&str>,
    expiry: &str,
) -> String {
    let (sr, canonical) = match blob {
        Some(b) => ("b", format!("/blob/{account}/{container}/{b}")),
        None => ("c", format!("/blob/{account}/{container}")),
    };
    let version = VERSION;
    let st = start.unwrap_or("");
    let lines = [
        permissions,
        st,
        expiry,
        canonical.as_str(),
        "",
        "",
        "https",
        version,
        sr,
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ];
    let sig = sign(key_b64, &lines.join("\n")).unwrap_or_default();
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut q = format!(
        "sv={version}&spr=https&sr={sr}&sp={}&se={}",
        enc(permissions),
        enc(expiry)
    );
    if !st.is_empty() {
        q.push_str(&format!("&st={}", enc(st)));
    }
    q.push_str(&format!("&sig={}", enc(&sig)));
    q
}
