//! HTTP proxies as corporate networks set them: `HTTPS_PROXY` / `NO_PROXY`, or one
//! given on the command line.

use super::amqp::MessagingError;

/// Which HTTP proxy to go through: REST requests, and AMQP over WebSockets (as a
/// CONNECT tunnel). AMQP over TCP on 5671 never goes through a proxy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Proxy {
    /// `HTTPS_PROXY` (or `https_proxy`), unless `NO_PROXY` names the host.
    #[default]
    FromEnvironment,
    /// Connect directly.
    None,
    /// This proxy, `http://[user:password@]host:port`.
    Url(String),
}

/// A proxy to tunnel through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ProxyTarget {
    pub host: String,
    pub port: u16,
    /// `user:password` for Basic authentication.
    pub credentials: Option<String>,
}

/// Parses `http://[user:pass@]host[:port][/]` (scheme optional, port 80 by default for
/// http, 443 for https).
pub(crate) fn parse_proxy(url: &str) -> Option<ProxyTarget> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split('/').next().unwrap_or("");
    let (credentials, hostport) = match authority.rsplit_once('@') {
        Some((c, h)) => (Some(c.to_string()), h),
        None => (None, authority),
    };
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => match p.parse() {
            Ok(p) => (h, p),
            Err(_) => return None,
        },
        _ => (hostport, default_port),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| ProxyTarget {
        host: host.to_string(),
        port,
        credentials: credentials.map(|c| iothub::encoding::url_decode(&c).unwrap_or(c)),
    })
}

/// Does `NO_PROXY` (comma-separated hosts, `.domain` suffixes, `*`) exempt `host`?
pub(crate) fn no_proxy_matches(no_proxy: &str, host: &str) -> bool {
    let host = host.to_ascii_lowercase();
    no_proxy
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty())
        .any(|e| {
            if e == "*" {
                return true;
            }
            let e = e.split(':').next().unwrap_or("").trim_start_matches('.');
            host == e || host.ends_with(&format!(".{e}"))
        })
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| std::env::var(name.to_ascii_lowercase()).ok())
        .filter(|v| !v.trim().is_empty())
}

/// A proxy URL with its password (if any) hidden, for lists and error sentences.
pub fn masked(url: &str) -> String {
    let Some((credentials, host)) = url.rsplit_once('@') else {
        return url.to_string();
    };
    let (scheme, userinfo) = match credentials.split_once("://") {
        Some((scheme, userinfo)) => (format!("{scheme}://"), userinfo),
        None => (String::new(), credentials),
    };
    let user = userinfo.split(':').next().unwrap_or("");
    format!("{scheme}{user}:****@{host}")
}

impl Proxy {
    /// A proxy given by the user (`--proxy`), checked now so a typo is one sentence
    /// at start-up rather than a failure on first connect.
    pub fn parse(url: &str) -> Result<Proxy, MessagingError> {
        match parse_proxy(url) {
            Some(_) => Ok(Proxy::Url(url.trim().to_string())),
            None => Err(MessagingError::BadProxy(masked(url))),
        }
    }

    pub(crate) fn resolve(&self, host: &str) -> Result<Option<ProxyTarget>, MessagingError> {
        let url = match self {
            Proxy::None => return Ok(None),
            Proxy::Url(u) => u.clone(),
            Proxy::FromEnvironment => {
                let Some(u) = env("HTTPS_PROXY") else {
                    return Ok(None);
                };
                if env("NO_PROXY").is_some_and(|np| no_proxy_matches(&np, host)) {
                    return Ok(None);
                }
                u
            }
        };
        parse_proxy(&url)
            .map(Some)
            .ok_or_else(|| MessagingError::BadProxy(masked(&url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_parsed() {
        assert_eq!(
            parse_proxy("http://proxy.corp:3128"),
            Some(ProxyTarget {
                host: "proxy.corp".into(),
                port: 3128,
                credentials: None
            })
        );
        assert_eq!(
            parse_proxy("http://me:p%40ss@10.0.0.1:8080/"),
            Some(ProxyTarget {
                host: "10.0.0.1".into(),
                port: 8080,
                credentials: Some("me:p@ss".into())
            })
        );
        assert_eq!(parse_proxy("proxy.corp").unwrap().port, 80);
        assert_eq!(parse_proxy("https://proxy.corp").unwrap().port, 443);
        assert_eq!(parse_proxy("http://[::1]:3128").unwrap().host, "::1");
        assert_eq!(parse_proxy("http://:3128"), None);
        assert_eq!(parse_proxy("http://p:notaport"), None);
    }

    #[test]
    fn passwords_are_masked() {
        assert_eq!(masked("http://me:pw@p:3128"), "http://me:****@p:3128");
        assert_eq!(masked("me:pw@p:3128"), "me:****@p:3128");
        assert_eq!(masked("http://p:3128"), "http://p:3128");
        let e = Proxy::parse("http://me:pw@p:x").unwrap_err().to_string();
        assert!(!e.contains("pw"), "{e}");
    }

    #[test]
    fn no_proxy_lists() {
        assert!(no_proxy_matches("localhost,127.0.0.1", "localhost"));
        assert!(no_proxy_matches(".corp.example", "hub.corp.example"));
        assert!(no_proxy_matches("corp.example", "hub.corp.example"));
        assert!(no_proxy_matches("*", "anything"));
        assert!(!no_proxy_matches("corp.example", "evilcorp.example"));
        assert!(!no_proxy_matches("", "localhost"));
    }
}
