//! Proxies: which one a request goes through (from the environment, like curl and reqwest, or
//! as configured), and how the tunnel to the target is made (HTTP absolute form, `CONNECT`,
//! SOCKS5 through `tokio-socks`).

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderValue;
use ipnet::IpNet;

use super::auth::{split_userinfo, UserInfo};
use crate::error::Error;

/// How a proxy is spoken to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// `http://`: absolute-form requests for http targets, `CONNECT` for https ones.
    Http,
    /// `socks5://`: the target name is resolved here.
    Socks5,
    /// `socks5h://`: the proxy resolves the target name.
    Socks5h,
}

/// One proxy. Its credentials are never shown.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct ProxyServer {
    pub(crate) kind: Kind,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) auth: Option<UserInfo>,
}

impl fmt::Debug for ProxyServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for ProxyServer {
    /// `scheme://host:port`, with `[REDACTED]@` when it has credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.kind {
            Kind::Http => "http",
            Kind::Socks5 => "socks5",
            Kind::Socks5h => "socks5h",
        };
        let auth = if self.auth.is_some() { "[REDACTED]@" } else { "" };
        if self.host.contains(':') {
            write!(f, "{scheme}://{auth}[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{auth}{}:{}", self.host, self.port)
        }
    }
}

impl ProxyServer {
    /// Parses a proxy URL; a URL without a scheme is `http://`, as curl reads it.
    pub(crate) fn parse(url: &str) -> Result<ProxyServer, Error> {
        let url = url.trim();
        let with_scheme = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
        let (bare, auth) = split_userinfo(&with_scheme)?;
        super::url::check(&with_scheme, "proxy URL", &["http", "https", "socks5", "socks5h"])?;
        let shown = crate::redact::redact_url(&with_scheme);
        let uri: http::Uri = bare.parse().map_err(|_| Error::config(format!("invalid proxy URL {shown:?}")))?;
        let (kind, default_port) = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("http") => (Kind::Http, 80),
            Some("socks5") => (Kind::Socks5, 1080),
            Some("socks5h") => (Kind::Socks5h, 1080),
            Some("https") => {
                return Err(Error::config(format!(
                    "proxy {shown}: TLS to the proxy itself (https://) is not supported; use an http:// or socks5:// proxy URL"
                )))
            }
            _ => {
                return Err(Error::config(format!(
                    "proxy {shown}: unsupported scheme (http://, socks5:// and socks5h:// are)"
                )))
            }
        };
        let host =
            uri.host().filter(|h| !h.is_empty()).ok_or_else(|| Error::config(format!("proxy {shown}: no host")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        Ok(ProxyServer { kind, host, port: uri.port_u16().unwrap_or(default_port), auth })
    }

    /// The `Proxy-Authorization` value, if the URL had credentials.
    pub(crate) fn authorization(&self) -> Result<Option<HeaderValue>, Error> {
        self.auth.as_ref().map(UserInfo::basic).transpose()
    }
}

/// `NO_PROXY`: hosts reached directly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct NoProxy {
    all: bool,
    domains: Vec<String>,
    nets: Vec<IpNet>,
}

impl NoProxy {
    /// A comma-separated list as curl reads it: `*` for every host, IP addresses, CIDR
    /// ranges, and domains, each also matching its subdomains (a leading `.` or `*.` is
    /// ignored). Ports are ignored.
    pub(crate) fn parse(list: &str) -> NoProxy {
        let mut out = NoProxy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                out.all = true;
            } else if let Ok(net) = entry.parse::<IpNet>() {
                out.nets.push(net);
            } else if let Some(ip) = parse_ip(entry) {
                out.nets.push(IpNet::from(ip));
            } else {
                let host = entry.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(entry, |(h, _)| h);
                let domain = host.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase();
                if !domain.is_empty() {
                    out.domains.push(domain);
                }
            }
        }
        out
    }

    /// Whether `host` (lower case, IPv6 without brackets) is reached directly.
    pub(crate) fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        if !self.nets.is_empty() {
            if let Ok(ip) = host.parse::<IpAddr>() {
                return self.nets.iter().any(|net| net.contains(&ip));
            }
        }
        self.domains.iter().any(|d| {
            host.len() >= d.len()
                && host.ends_with(d.as_str())
                && (host.len() == d.len() || host.as_bytes()[host.len() - d.len() - 1] == b'.')
        })
    }
}

/// An IP address, with or without brackets or a port.
fn parse_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(sa) = entry.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).and_then(|e| e.parse().ok())
}

/// Whether a proxy URL from the environment is of a scheme the library speaks (no scheme
/// counts as `http://`, as curl reads it).
fn supported_scheme(url: &str) -> bool {
    match url.trim().split_once("://") {
        None => true,
        Some((scheme, _)) => ["http", "socks5", "socks5h"].iter().any(|s| s.eq_ignore_ascii_case(scheme)),
    }
}

/// Which proxy each kind of target goes through.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Proxies {
    pub(crate) http: Option<Arc<ProxyServer>>,
    pub(crate) https: Option<Arc<ProxyServer>>,
    pub(crate) no_proxy: NoProxy,
    /// Why the environment's proxy for http (`[0]`) or https (`[1]`) targets is unusable:
    /// requests that would go through it fail with this config error rather than going
    /// elsewhere than the user said.
    pub(crate) invalid: [Option<Arc<str>>; 2],
}

impl Proxies {
    /// From the environment, as curl and reqwest read it: `http_proxy` / `HTTP_PROXY` for
    /// http targets, `https_proxy` / `HTTPS_PROXY` for https ones, `all_proxy` / `ALL_PROXY`
    /// for both when those are unset, `no_proxy` / `NO_PROXY` for exceptions; lower case
    /// first. Upper-case `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set (a CGI process,
    /// where a request header `Proxy:` becomes that variable: "httpoxy"). An empty variable
    /// counts as unset. A proxy of a scheme this library does not speak (`socks://`, which
    /// desktop environments put in `all_proxy`, `socks4://`, `https://`, ...) is ignored with
    /// a warning, as curl-less tools do; a proxy URL of a supported scheme (`http://`,
    /// `socks5://`, `socks5h://`, or none) that does not parse exactly (a port out of range,
    /// garbage) makes the requests that would use it fail with a config error that names the
    /// variable, since going direct would bypass the proxy the user meant.
    pub(crate) fn from_env(var: impl Fn(&str) -> Option<String>) -> Proxies {
        let get = |names: &[&str]| names.iter().find_map(|n| var(n).filter(|v| !v.trim().is_empty()));
        let cgi = var("REQUEST_METHOD").is_some();
        let all = get(&["all_proxy", "ALL_PROXY"]);
        let http = if cgi { get(&["http_proxy"]) } else { get(&["http_proxy", "HTTP_PROXY"]) };
        let https = get(&["https_proxy", "HTTPS_PROXY"]);
        let parse = |name: &str, value: Option<String>| -> (Option<Arc<ProxyServer>>, Option<Arc<str>>) {
            let Some(value) = value else { return (None, None) };
            if !supported_scheme(&value) {
                let shown = crate::redact::redact_url(value.trim());
                tracing::warn!(
                    variable = name,
                    proxy = %shown,
                    "ignoring a proxy of an unsupported scheme (http://, socks5:// and socks5h:// are); requests go direct"
                );
                return (None, None);
            }
            match ProxyServer::parse(&value) {
                Ok(p) => (Some(Arc::new(p)), None),
                Err(e) => {
                    tracing::warn!(variable = name, error = %e, "invalid proxy setting");
                    (
                        None,
                        Some(Arc::from(format!("{name} (or its lower-case or ALL_PROXY form): {e}; fix or unset it"))),
                    )
                }
            }
        };
        let (http, http_invalid) = parse("HTTP_PROXY", http.or_else(|| all.clone()));
        let (https, https_invalid) = parse("HTTPS_PROXY", https.or(all));
        Proxies {
            http,
            https,
            no_proxy: NoProxy::parse(&get(&["no_proxy", "NO_PROXY"]).unwrap_or_default()),
            invalid: [http_invalid, https_invalid],
        }
    }

    /// The config error of an invalid proxy setting that a request to `host` would use.
    pub(crate) fn check_target(&self, https: bool, host: &str) -> Result<(), Error> {
        match &self.invalid[usize::from(https)] {
            Some(why) if !self.no_proxy.matches(host) => Err(Error::config(why.to_string())),
            _ => Ok(()),
        }
    }

    /// Whether any proxy is set (else the lookup is skipped).
    pub(crate) fn is_empty(&self) -> bool {
        self.http.is_none() && self.https.is_none() && self.invalid.iter().all(Option::is_none)
    }

    /// The proxy for a target, if any.
    pub(crate) fn for_target(&self, https: bool, host: &str) -> Option<&Arc<ProxyServer>> {
        let proxy = if https { self.https.as_ref() } else { self.http.as_ref() }?;
        if self.no_proxy.matches(host) {
            return None;
        }
        Some(proxy)
    }
}

/// Proxy settings of an [`HttpClient`](super::HttpClient): use
/// [`HttpClientBuilder::proxy`](super::HttpClientBuilder::proxy).
///
/// ```
/// use mamba_backends::http::{HttpClient, Proxy};
///
/// let client = HttpClient::builder()
///     .proxy(Proxy::all("http://user:password@proxy.corp:3128")?.no_proxy("localhost,.internal,10.0.0.0/8"))
///     .build();
/// # Ok::<(), mamba_backends::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    pub(crate) proxies: Proxies,
}

impl Proxy {
    /// Every request through `url` (`http://`, `socks5://` or `socks5h://`; user and
    /// password in the URL become proxy Basic auth, or SOCKS5 username/password).
    pub fn all(url: &str) -> Result<Proxy, Error> {
        let p = Arc::new(ProxyServer::parse(url)?);
        Ok(Proxy {
            proxies: Proxies {
                http: Some(p.clone()),
                https: Some(p),
                no_proxy: NoProxy::default(),
                invalid: [None, None],
            },
        })
    }

    /// Requests to `http://` URLs through `url`; https ones directly.
    pub fn http(url: &str) -> Result<Proxy, Error> {
        let p = Arc::new(ProxyServer::parse(url)?);
        Ok(Proxy {
            proxies: Proxies { http: Some(p), https: None, no_proxy: NoProxy::default(), invalid: [None, None] },
        })
    }

    /// Requests to `https://` URLs through `url` (a `CONNECT` tunnel or SOCKS5); http ones
    /// directly.
    pub fn https(url: &str) -> Result<Proxy, Error> {
        let p = Arc::new(ProxyServer::parse(url)?);
        Ok(Proxy {
            proxies: Proxies { http: None, https: Some(p), no_proxy: NoProxy::default(), invalid: [None, None] },
        })
    }

    /// Hosts reached directly, in `NO_PROXY` syntax: comma-separated domains (matching
    /// subdomains too), IP addresses, CIDR ranges, or `*`.
    #[must_use]
    pub fn no_proxy(mut self, list: &str) -> Proxy {
        self.proxies.no_proxy = NoProxy::parse(list);
        self
    }
}

/// Opens a `CONNECT` tunnel to `target` (`host:port`) through an HTTP proxy on `stream`.
pub(crate) async fn connect_tunnel(
    stream: &mut tokio::net::TcpStream,
    proxy: &ProxyServer,
    target: &str,
) -> Result<(), Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n").into_bytes();
    if let Some(auth) = proxy.authorization()? {
        request.extend_from_slice(b"proxy-authorization: ");
        request.extend_from_slice(auth.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    let failed = |what: &str, e: std::io::Error| {
        Error::new(crate::ErrorKind::Connect, format!("the proxy {proxy} {what}: {e}")).with_source(e)
    };
    stream.write_all(&request).await.map_err(|e| failed("failed while opening a tunnel", e))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut tmp = [0u8; 1024];
        let n = stream.read(&mut tmp).await.map_err(|e| failed("failed while opening a tunnel", e))?;
        if n == 0 {
            return Err(Error::new(
                crate::ErrorKind::Connect,
                format!("the proxy {proxy} closed the connection instead of opening a tunnel to {target}"),
            ));
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some((head, consumed)) = super::conn::parse_head(&buf, true)? {
            if (200..300).contains(&head.status) {
                if consumed != buf.len() {
                    return Err(Error::decode(format!("the proxy {proxy} sent data before the tunnel was used")));
                }
                return Ok(());
            }
            return Err(refusal(proxy, head.status, &format!("a tunnel to {target}")));
        }
        if buf.len() > 64 * 1024 {
            return Err(Error::decode(format!("the proxy {proxy} answered CONNECT with an endless head")));
        }
    }
}

/// A proxy's own refusal: says it came from the proxy and what to do.
pub(crate) fn refusal(proxy: &ProxyServer, status: u16, what: &str) -> Error {
    use crate::ErrorKind;
    let (kind, hint, retryable) = match status {
        407 if proxy.auth.is_some() => {
            (ErrorKind::Authentication, "it refused the user and password in the proxy URL", false)
        }
        407 => (
            ErrorKind::Authentication,
            "it wants a user and password: put them in the proxy URL (http://user:password@host:port)",
            false,
        ),
        403 => (ErrorKind::PermissionDenied, "it does not allow this destination", false),
        502..=504 => (ErrorKind::Connect, "it could not reach the destination", true),
        _ => (ErrorKind::Connect, "it refused", false),
    };
    Error::new(kind, format!("the proxy {proxy} refused {what} (HTTP {status}): {hint}"))
        .with_status(status)
        .with_retryable(retryable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Proxies {
        let map: std::collections::HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Proxies::from_env(|name| map.get(name).cloned())
    }

    #[test]
    fn environment_like_curl() {
        let p = env(&[("HTTP_PROXY", "proxy:3128"), ("https_proxy", "http://u:p@sec:8443"), ("HTTPS_PROXY", "x:1")]);
        assert_eq!(p.http.as_ref().unwrap().to_string(), "http://proxy:3128");
        assert_eq!(p.https.as_ref().unwrap().to_string(), "http://[REDACTED]@sec:8443");
        assert_eq!(p.https.as_ref().unwrap().auth.as_ref().unwrap().password, "p");
        // ALL_PROXY fills in what is unset.
        let p = env(&[("ALL_PROXY", "socks5h://s:1080"), ("http_proxy", "h:1")]);
        assert_eq!(p.http.as_ref().unwrap().to_string(), "http://h:1");
        assert_eq!(p.https.as_ref().unwrap().kind, Kind::Socks5h);
        // httpoxy: upper-case HTTP_PROXY is ignored in a CGI process, lower case is not.
        let p = env(&[("HTTP_PROXY", "evil:1"), ("REQUEST_METHOD", "GET")]);
        assert!(p.http.is_none());
        let p = env(&[("http_proxy", "good:1"), ("REQUEST_METHOD", "GET")]);
        assert_eq!(p.http.as_ref().unwrap().host, "good");
        // Empty values count as unset.
        assert!(env(&[("HTTP_PROXY", "")]).is_empty());
        assert!(env(&[]).is_empty());
        // Schemes the library does not speak are ignored with a warning: a desktop's
        // `all_proxy=socks://...` must not break every request.
        for unsupported in ["socks://127.0.0.1:1080/", "SOCKS4://p:1", "https://p:3128", "ftp://x", "socks://p:99999"] {
            let p = env(&[("all_proxy", unsupported)]);
            assert!(p.is_empty(), "{unsupported}: {p:?}");
            assert!(p.check_target(false, "h").is_ok() && p.check_target(true, "h").is_ok());
        }
        // ... and do not hide a valid proxy of the other kind.
        let p = env(&[("all_proxy", "socks://p:1"), ("HTTPS_PROXY", "http://sec:8443")]);
        assert!(p.http.is_none() && p.https.is_some() && p.check_target(false, "h").is_ok());
        // A supported scheme that does not parse makes the requests that would use it fail
        // (not go around the proxy).
        let p = env(&[("HTTPS_PROXY", "http://x:1x")]);
        assert!(!p.is_empty() && p.https.is_none());
        assert!(p.check_target(false, "h").is_ok());
        assert!(p.check_target(true, "h").unwrap_err().to_string().contains("HTTPS_PROXY"));
        for bad in ["socks5://p:99999", "SOCKS5H://p:0", "p:80x", "Http://p q:1"] {
            let p = env(&[("all_proxy", bad)]);
            assert!(p.check_target(true, "h").is_err() && p.check_target(false, "h").is_err(), "{bad}");
        }
        let p = env(&[("http_proxy", "http://u:sk-px-secret-1@p:99999"), ("no_proxy", "localhost")]);
        let e = p.check_target(false, "h").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Config);
        assert!(e.to_string().contains("65535") && !e.to_string().contains("sk-px-secret-1"), "{e}");
        assert!(p.check_target(false, "localhost").is_ok());
    }

    #[cfg(feature = "__bench")]
    #[test]
    fn bench_lookup_agrees_with_send() {
        use crate::bench_api::ProxyLookup;
        // An unsupported scheme: direct, no error (as `send` does).
        let l = ProxyLookup::from_vars(&[("all_proxy", "socks://127.0.0.1:1080/")]);
        assert!(!l.lookup(true, "api.example").unwrap());
        // A supported scheme that does not parse: the config error `send` returns.
        let l = ProxyLookup::from_vars(&[("all_proxy", "http://p:99999"), ("no_proxy", "localhost")]);
        assert_eq!(l.lookup(false, "api.example").unwrap_err().kind(), crate::ErrorKind::Config);
        assert!(!l.goes_through_proxy(false, "api.example"));
        assert!(!l.lookup(false, "localhost").unwrap());
        let l = ProxyLookup::from_vars(&[("all_proxy", "socks5h://p:1"), ("no_proxy", "localhost")]);
        assert!(l.lookup(true, "api.example").unwrap() && l.goes_through_proxy(true, "api.example"));
        assert!(!l.goes_through_proxy(true, "localhost"));
    }

    #[test]
    fn no_proxy_rules() {
        let n = NoProxy::parse("localhost, .internal.corp,*.svc, 10.0.0.0/8, 192.168.1.5, [::1], example.com:8080");
        for host in [
            "localhost",
            "api.internal.corp",
            "internal.corp",
            "a.b.svc",
            "10.2.3.4",
            "192.168.1.5",
            "::1",
            "example.com",
        ] {
            assert!(n.matches(host), "{host}");
        }
        for host in
            ["notlocalhost", "internal.corp.evil", "xinternal.corp", "11.0.0.1", "192.168.1.6", "::2", "api.openai.com"]
        {
            assert!(!n.matches(host), "{host}");
        }
        assert!(NoProxy::parse("*").matches("anything"));
        assert!(!NoProxy::parse("").matches("anything"));
        let p = Proxies { no_proxy: n, ..env(&[("all_proxy", "p:1")]) };
        assert!(p.for_target(true, "api.internal.corp").is_none());
        assert!(p.for_target(true, "api.openai.com").is_some());
    }

    #[test]
    fn proxy_urls() {
        assert!(ProxyServer::parse("https://p:1").unwrap_err().to_string().contains("not supported"));
        assert!(ProxyServer::parse("ftp://p:1").is_err());
        let e = ProxyServer::parse("http://u:secret@").unwrap_err();
        assert!(!e.to_string().contains("secret"));
        // Every bad shape is a config error, the credentials never shown.
        for bad in ["http://p:99999", "http://u:secret@p:65536", "socks5://p:0", "p:80x", "http://p q:1", "http://:1"] {
            let e = ProxyServer::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Config, "{bad}");
            assert!(!e.to_string().contains("secret"), "{e}");
            assert!(Proxy::all(bad).is_err(), "{bad}");
        }
        let p = ProxyServer::parse("socks5://[::1]").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 1080));
        assert_eq!(format!("{p:?}"), "socks5://[::1]:1080");
        let p = ProxyServer::parse("http://user:pa%3Ass@p:8").unwrap();
        assert_eq!(p.authorization().unwrap().unwrap(), "Basic dXNlcjpwYTpzcw==");
        let shown = format!("{:?}", Proxy::all("http://user:pa%3Ass@p:8").unwrap());
        assert!(!shown.contains("pa:ss") && !shown.contains("pa%3Ass") && !shown.contains("user"), "{shown}");
    }
}
