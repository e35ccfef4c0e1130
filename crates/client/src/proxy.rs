//! The HTTP proxy a WebSocket connection goes through, from the environment as curl and
//! the Azure SDKs read it: `HTTPS_PROXY` (or `https_proxy`, then `ALL_PROXY`/`all_proxy`),
//! with `NO_PROXY` naming hosts reached directly. The proxy is asked for a tunnel with
//! HTTP CONNECT, so TLS to the hub stays end to end.

use reqwest::Url;

/// An HTTP (or HTTPS) proxy that tunnels with CONNECT.
#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    pub host: String,
    pub port: u16,
    /// `https://` proxy: the hop to the proxy is TLS too.
    pub tls: bool,
    /// Basic credentials from the URL's user info.
    pub credentials: Option<(String, String)>,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum ProxyError {
    #[error("{var} is not a proxy URL ({reason}); give it as http://[user:password@]host:port")]
    BadUrl { var: &'static str, reason: String },
    #[error(
        "{var} names a {scheme} proxy; only http:// and https:// proxies (HTTP CONNECT) are supported"
    )]
    UnsupportedScheme { var: &'static str, scheme: String },
}

/// Variables naming the proxy, in the order they are consulted.
const PROXY_VARS: [&str; 4] = ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];
const NO_PROXY_VARS: [&str; 2] = ["NO_PROXY", "no_proxy"];

impl Proxy {
    /// The proxy for a connection to `host`, from the process environment.
    pub fn from_env(host: &str) -> Result<Option<Proxy>, ProxyError> {
        Self::from_vars(host, |name| std::env::var(name).ok())
    }

    /// As `from_env`, reading variables through `var`.
    pub fn from_vars(
        host: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Proxy>, ProxyError> {
        let Some((name, url)) = PROXY_VARS
            .iter()
            .find_map(|n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))
        else {
            return Ok(None);
        };
        let no_proxy = NO_PROXY_VARS
            .iter()
            .find_map(|n| var(n))
            .unwrap_or_default();
        if bypasses(&no_proxy, host) {
            return Ok(None);
        }
        Self::parse(name, url.trim()).map(Some)
    }

    fn parse(var: &'static str, text: &str) -> Result<Proxy, ProxyError> {
        // A bare `host:port` is an http proxy, as curl takes it.
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| ProxyError::BadUrl {
            var,
            reason: e.to_string(),
        })?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(ProxyError::UnsupportedScheme {
                    var,
                    scheme: other.to_owned(),
                });
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ProxyError::BadUrl {
                var,
                reason: "it has no host".into(),
            })?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let credentials = (!url.username().is_empty()).then(|| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(url.username()), decode(url.password().unwrap_or("")))
        });
        Ok(Proxy {
            host,
            port,
            tls,
            credentials,
        })
    }
}

/// Whether `NO_PROXY` (comma-separated hosts, domain suffixes with or without a leading
/// dot, or `*`) names `host`.
fn bypasses(no_proxy: &str, host: &str) -> bool {
    let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|entry| {
            // An entry may carry a port; the hub's port is not compared, as curl does not.
            let entry = entry
                .rsplit_once(':')
                .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()) && !entry.contains(']'))
                .map_or(entry.as_str(), |(h, _)| h)
                .trim_matches(['[', ']']);
            let suffix = entry.trim_start_matches('.');
            entry == "*"
                || host == suffix
                || host
                    .strip_suffix(suffix)
                    .is_some_and(|rest| rest.ends_with('.'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(host: &str, vars: &[(&str, &str)]) -> Result<Option<Proxy>, ProxyError> {
        Proxy::from_vars(host, |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn https_proxy_is_read_with_its_credentials() {
        let p = resolve(
            "myhub.azure-devices.net",
            &[("HTTPS_PROXY", "http://al%40ice:p%3Ass@proxy.corp:3128")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            p,
            Proxy {
                host: "proxy.corp".into(),
                port: 3128,
                tls: false,
                credentials: Some(("al@ice".into(), "p:ss".into())),
            }
        );
    }

    #[test]
    fn the_variables_are_consulted_in_order_and_a_bare_host_is_http() {
        let p = resolve(
            "hub",
            &[("https_proxy", "lower:8080"), ("ALL_PROXY", "http://all:1")],
        )
        .unwrap()
        .unwrap();
        assert_eq!((p.host.as_str(), p.port, p.tls), ("lower", 8080, false));
        let p = resolve("hub", &[("ALL_PROXY", "https://all")])
            .unwrap()
            .unwrap();
        assert_eq!((p.host.as_str(), p.port, p.tls), ("all", 443, true));
        assert_eq!(resolve("hub", &[]).unwrap(), None);
        assert_eq!(resolve("hub", &[("HTTPS_PROXY", "  ")]).unwrap(), None);
    }

    #[test]
    fn no_proxy_names_hosts_reached_directly() {
        let proxy = ("HTTPS_PROXY", "http://proxy:3128");
        for (no_proxy, host, direct) in [
            ("localhost,127.0.0.1", "localhost", true),
            ("localhost,127.0.0.1", "127.0.0.1", true),
            (".azure-devices.net", "myhub.azure-devices.net", true),
            ("azure-devices.net", "myhub.azure-devices.net", true),
            ("azure-devices.net", "notazure-devices.net", false),
            ("*", "anything", true),
            (
                "myhub.azure-devices.net:443",
                "myhub.azure-devices.net",
                true,
            ),
            ("[::1]", "::1", true),
            ("other", "myhub", false),
        ] {
            let got = resolve(host, &[proxy, ("NO_PROXY", no_proxy)]).unwrap();
            assert_eq!(got.is_none(), direct, "NO_PROXY={no_proxy} host={host}");
        }
    }

    #[test]
    fn a_bad_proxy_is_one_sentence_naming_the_variable() {
        assert_eq!(
            resolve("hub", &[("HTTPS_PROXY", "socks5://p:1080")])
                .unwrap_err()
                .to_string(),
            "HTTPS_PROXY names a socks5 proxy; only http:// and https:// proxies (HTTP CONNECT) are supported"
        );
        let e = resolve("hub", &[("HTTPS_PROXY", "http://p:notaport")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("HTTPS_PROXY is not a proxy URL ("),
            "{e}"
        );
    }
}
