//! Credentials written into a URL (`http://user:password@host/`): taken out of the URL, so
//! that it can be shown, and sent as Basic auth.

use base64::Engine as _;
use http::HeaderValue;
use percent_encoding::percent_decode_str;

use crate::error::Error;

/// A URL's user and password, percent-decoded.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct UserInfo {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for UserInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserInfo([REDACTED])")
    }
}

impl UserInfo {
    /// The `Authorization` (or `Proxy-Authorization`) value, marked sensitive.
    pub(crate) fn basic(&self) -> Result<HeaderValue, Error> {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password));
        let mut value = HeaderValue::from_str(&format!("Basic {token}"))
            .map_err(|_| Error::config("the user name or password in the URL cannot be sent in a header"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

/// Splits `scheme://user:password@host…` into the URL without the credentials and the
/// credentials. A URL without them comes back unchanged.
pub(crate) fn split_userinfo(url: &str) -> Result<(String, Option<UserInfo>), Error> {
    let Some((scheme, rest)) = url.split_once("://") else { return Ok((url.to_owned(), None)) };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((info, host)) = authority.rsplit_once('@') else { return Ok((url.to_owned(), None)) };
    let (user, password) = info.split_once(':').unwrap_or((info, ""));
    let decode = |s: &str| {
        percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| Error::config("the user name or password in the URL is not valid UTF-8 when decoded"))
    };
    let info = UserInfo { user: decode(user)?, password: decode(password)? };
    if host.is_empty() {
        return Err(Error::config("the URL has credentials but no host"));
    }
    Ok((format!("{scheme}://{host}{tail}"), Some(info)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out() {
        let (url, info) = split_userinfo("http://al%40x:p%3Ass@gw.local:8080/v1?x=1").unwrap();
        assert_eq!(url, "http://gw.local:8080/v1?x=1");
        let info = info.unwrap();
        assert_eq!((info.user.as_str(), info.password.as_str()), ("al@x", "p:ss"));
        assert_eq!(info.basic().unwrap(), "Basic YWxAeDpwOnNz");
        assert!(info.basic().unwrap().is_sensitive());
        assert!(!format!("{info:?}").contains("p:ss"));
        assert_eq!(split_userinfo("http://h/v1/a@b").unwrap(), ("http://h/v1/a@b".to_owned(), None));
        assert_eq!(split_userinfo("socks5h://u@h").unwrap().1.unwrap().password, "");
        assert!(split_userinfo("http://u:p@/v1").is_err());
    }
}
