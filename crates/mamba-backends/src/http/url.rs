//! The strict check of every URL the library takes (base URLs, proxies, downloads): a URL
//! that does not parse exactly is a config error at build time, never guessed at. `http::Uri`
//! alone reads `http://host:99999/` as port 80 (an out-of-range port is "no port"), which
//! sent the API key to another port than the one asked for.

use std::net::Ipv6Addr;

use crate::error::Error;

/// The parts of a checked URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    /// The scheme, as written.
    pub(crate) scheme: &'a str,
    /// The host (an IPv6 address without its brackets).
    pub(crate) host: &'a str,
    /// The port, when the URL names one.
    pub(crate) port: Option<u16>,
}

/// Checks that `url` is `scheme://[user[:password]@]host[:port][/path][?query]` exactly, with
/// a scheme of `schemes` (compared case-insensitively), a non-empty host of valid
/// characters (or a bracketed IPv6 address), a port of 1 to 65535 when one is written, and
/// no whitespace, control characters or fragment anywhere. `what` names the URL in the error
/// ("base URL", "proxy URL"); the error shows the URL with its credentials redacted.
pub(crate) fn check<'a>(url: &'a str, what: &str, schemes: &[&str]) -> Result<Parts<'a>, Error> {
    let fail = |why: &str| Error::config(format!("invalid {what} {:?}: {why}", shown(url)));
    if url.is_empty() {
        return Err(Error::config(format!("invalid {what}: it is empty")));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail("it contains a space or a control character"));
    }
    if !url.is_ascii() {
        return Err(fail("it contains non-ASCII characters (percent-encode them)"));
    }
    let expected = || schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(fail(&format!("it must start with {}", expected())));
    };
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || !schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
        return Err(fail(&format!("unsupported scheme; it must start with {}", expected())));
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if tail.contains('#') {
        return Err(fail("a #fragment is not allowed"));
    }
    let host_port = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => {
            if userinfo.contains(['@', '[', ']']) {
                return Err(fail("an @ in the user or password must be percent-encoded (%40)"));
            }
            host_port
        }
        None => authority,
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((ip, after)) = bracketed.split_once(']') else {
            return Err(fail("an IPv6 address needs its closing ]"));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(fail("the address in [ ] is not an IPv6 address"));
        }
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return Err(fail("unexpected characters after the IPv6 address")),
            },
        };
        (ip, port)
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(fail("no host"));
    }
    if !host_port.starts_with('[')
        && !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'%'))
    {
        return Err(fail("the host has characters a host name cannot have"));
    }
    let port = match port {
        None => None,
        Some("") => return Err(fail("the port after ':' is empty")),
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(fail("the port must be a number (anything after it needs a '/')"))
        }
        Some(p) => match p.parse::<u32>() {
            Ok(n @ 1..=65535) => Some(n as u16),
            _ => return Err(fail("the port must be between 1 and 65535")),
        },
    };
    if tail.bytes().any(|b| matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}')) {
        return Err(fail("the path or query has characters that must be percent-encoded"));
    }
    Ok(Parts { scheme, host, port })
}

/// `url` for an error message: credentials and credential-like query values redacted, and,
/// as the URL is malformed and its parts cannot be trusted, everything up to its last `@`.
fn shown(url: &str) -> String {
    let redacted = crate::redact::redact_url(url);
    match (redacted.split_once("://"), redacted.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => match rest.rsplit_once('@') {
            Some((_, after)) => format!("{scheme}://[REDACTED]@{after}"),
            None => redacted,
        },
        (None, Some(at)) => format!("[REDACTED]{}", &redacted[at..]),
        _ => redacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    const WEB: &[&str] = &["http", "https"];

    fn bad(url: &str) -> String {
        let e = check(url, "base URL", WEB).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{url}");
        e.message().to_owned()
    }

    #[test]
    fn good_urls_parse() {
        let p = check("http://127.0.0.1:8080/v1", "base URL", WEB).unwrap();
        assert_eq!(p, Parts { scheme: "http", host: "127.0.0.1", port: Some(8080) });
        let p = check("HTTPS://Api.OpenAI.com/v1?api-version=1", "base URL", WEB).unwrap();
        assert_eq!((p.host, p.port), ("Api.OpenAI.com", None));
        let p = check("http://[::1]:65535", "base URL", WEB).unwrap();
        assert_eq!((p.host, p.port), ("::1", Some(65535)));
        let p = check("http://bob:s%40cret@gw.local:1/v1", "base URL", WEB).unwrap();
        assert_eq!((p.host, p.port), ("gw.local", Some(1)));
        assert!(check("socks5h://p:1080", "proxy URL", &["http", "socks5h"]).is_ok());
    }

    /// Every bad shape is a config error with one clear message.
    #[test]
    fn every_bad_shape_is_refused() {
        for (url, says) in [
            ("http://127.0.0.1:99999/v1", "between 1 and 65535"),
            ("http://127.0.0.1:65536/v1", "between 1 and 65535"),
            ("http://127.0.0.1:0/v1", "between 1 and 65535"),
            ("http://127.0.0.1:4294967297/v1", "between 1 and 65535"),
            ("http://h:8080abc/v1", "must be a number"),
            ("http://h:80:81/v1", "must be a number"),
            ("http://h:-1/v1", "must be a number"),
            ("http://h:/v1", "empty"),
            ("http:///v1", "no host"),
            ("http://:8080/v1", "no host"),
            ("http://", "no host"),
            ("ftp://h/v1", "unsupported scheme"),
            ("h:8080/v1", "must start with http:// or https://"),
            ("localhost:8000", "must start with"),
            ("http://ho st/v1", "space"),
            ("http://h/v 1", "space"),
            (" http://h/v1", "space"),
            ("http://h/v1\n", "control"),
            ("http://h\t/v1", "space"),
            ("http://h/v1#frag", "fragment"),
            ("http://[::1/v1", "closing ]"),
            ("http://[zz]/v1", "IPv6"),
            ("http://[::1]x/v1", "after the IPv6"),
            ("http://h_o$st/v1", "host"),
            ("http://hé.com/v1", "non-ASCII"),
            ("http://h/v1{x}", "percent-encoded"),
        ] {
            let message = bad(url);
            assert!(message.contains(says), "{url}: {message}");
            assert!(message.starts_with("invalid base URL"), "{message}");
        }
        assert_eq!(bad(""), "invalid base URL: it is empty");
    }

    /// A key in the user info or the query never appears in the error.
    #[test]
    fn errors_never_show_credentials() {
        for url in [
            "http://user:sk-live-secret-123@127.0.0.1:99999/v1",
            "http://sk-live-secret-123@h:x/v1",
            "http://user:sk-live-secret-123@ho st/v1",
            "http://user:sk-live-secret-123@/v1",
            "http://h:99999/v1?api_key=sk-live-secret-123",
            "ftp://u:sk-live-secret-123@h/v1",
            "http://user:pa/sk-live-secret-123@h/v1",
            "http://u:p@sk-live-secret-123@h/v1",
            "user:sk-live-secret-123@h/v1",
        ] {
            let message = bad(url);
            assert!(!message.contains("sk-live-secret-123"), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }
}
