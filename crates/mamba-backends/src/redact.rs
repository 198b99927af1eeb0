//! Keeping secrets out of what is shown and stored: URLs, header values and free text (error
//! bodies a server sent back) with their credentials replaced by `[REDACTED]`.
//!
//! One place decides what looks like a secret, so that logs, databases, `config show` and
//! error messages agree:
//!
//! * [`redact_url`]: a URL without its `user:password@` and with the values of query
//!   parameters that look like credentials (`api_key`, `key`, `token`, `access_token`, `sig`,
//!   `signature`, `code`, `password`, …) or whose value looks like a secret.
//! * [`looks_like_secret`]: whether a header value (or any single value) looks like a
//!   credential whatever its name: an auth scheme (`Bearer …`, `Basic …`, `Token …`), a
//!   known key prefix (`sk-…`, `ghp_…`, `AIza…`, a JWT), or a long high-entropy token.
//! * [`redact_text`]: free text (a response body, an error message) with such secrets
//!   replaced where they appear.
//!
//! ```
//! use mamba_backends::redact::{looks_like_secret, redact_text, redact_url};
//!
//! assert_eq!(
//!     redact_url("https://bob:pw@gw.example/v1?api_key=sk-123&api-version=2024"),
//!     "https://[REDACTED]@gw.example/v1?api_key=[REDACTED]&api-version=2024"
//! );
//! assert!(looks_like_secret("Bearer sk-proj-abc123"));
//! assert!(!looks_like_secret("application/json"));
//! assert_eq!(
//!     redact_text("got Authorization: Basic Ym9iOnMzY3JldA=="),
//!     "got Authorization: Basic [REDACTED]"
//! );
//! ```

use std::borrow::Cow;

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Whether a query parameter (or form field) called `name` carries a credential: `key`,
/// `api_key`, `apikey`, `token`, `access_token`, `sig`, `signature`, `code`, `secret`,
/// `password`, `auth`, `session`, `credential`, `jwt` and names containing them
/// (`X-Amz-Signature`, `client_secret`, `refresh_token`), compared case-insensitively with
/// `-`, `_` and `.` ignored.
pub fn is_credential_param(name: &str) -> bool {
    let name: String = percent_encoding::percent_decode_str(name)
        .decode_utf8_lossy()
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const EXACT: &[&str] = &["sig", "code", "pwd", "pass", "sas", "otp", "pin"];
    const PART: &[&str] = &[
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "signature",
        "credential",
        "auth",
        "session",
        "jwt",
        "bearer",
        "cookie",
    ];
    EXACT.contains(&name.as_str()) || PART.iter().any(|p| name.contains(p))
}

/// `url` with its `user:password@` replaced by `[REDACTED]@`, and the values of its query
/// (and fragment) parameters that carry credentials ([`is_credential_param`], or a value
/// that [`looks_like_secret`]) replaced by `[REDACTED]`. Path segments that look like
/// secrets (a key in the path) are replaced too. Anything else is kept as written, so the
/// result still says where the URL points. Text that is not a URL is returned unchanged
/// unless it has an `@` before its first `/` (then what comes before it is redacted).
pub fn redact_url(url: &str) -> String {
    let (prefix, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = prefix;
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str(REDACTED);
            out.push('@');
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    let (path, query) = match before_fragment.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (before_fragment, None),
    };
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if looks_like_secret(&percent_encoding::percent_decode_str(segment).decode_utf8_lossy()) {
            out.push_str(REDACTED);
        } else {
            out.push_str(segment);
        }
    }
    if let Some(query) = query {
        out.push('?');
        push_pairs(&mut out, query);
    }
    if let Some(fragment) = fragment {
        out.push('#');
        push_pairs(&mut out, fragment);
    }
    out
}

/// `a=1&b=2` with the credential values redacted.
fn push_pairs(out: &mut String, pairs: &str) {
    for (i, pair) in pairs.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, value)) => {
                out.push_str(name);
                out.push('=');
                let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
                if !value.is_empty() && (is_credential_param(name) || looks_like_secret(&decoded)) {
                    out.push_str(REDACTED);
                } else {
                    out.push_str(value);
                }
            }
            None if looks_like_secret(pair) => out.push_str(REDACTED),
            None => out.push_str(pair),
        }
    }
}

/// Authentication schemes whose parameter is a credential.
const SCHEMES: &[&str] = &["bearer", "basic", "token", "digest", "apikey", "api-key", "key", "negotiate", "ntlm"];

/// Prefixes of well-known key formats (OpenAI and compatible providers, GitHub, GitLab,
/// Slack, Google, AWS, Hugging Face, JWTs).
const KEY_PREFIXES: &[&str] = &[
    "sk-",
    "sk_",
    "rk-",
    "rk_",
    "pk_live_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "hf_",
    "gsk_",
    "aiza",
    "akia",
    "asia",
    "ya29.",
    "eyj",
    "key-",
    "pplx-",
    "nvapi-",
    "xai-",
    "csk-",
    "r8_",
    "fw_",
    "tgp_",
    "sess-",
    "api-",
    "apikey-",
];

/// Whether `value` looks like a credential, whatever header or field it is in:
///
/// * an authentication scheme and its parameter: `Bearer …`, `Basic …`, `Token …`,
///   `Digest …` (any case);
/// * one token starting with a well-known key prefix (`sk-`, `sk_`, `ghp_`, `glpat-`,
///   `xoxb-`, `hf_`, `AIza`, `AKIA`, `eyJ` for a JWT, `key-`, …) and at least 12 characters
///   long;
/// * one long high-entropy token: 24 characters or more of letters, digits and `-_+/=.~`,
///   mixing at least two of upper case, lower case and digits, with many distinct
///   characters (UUIDs, which are ids rather than secrets, do not count).
///
/// Plain words, numbers, media types, URLs without credentials, user agents and other
/// values with spaces (except after an auth scheme) are not secrets.
pub fn looks_like_secret(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return false;
    }
    if let Some((scheme, rest)) = value.split_once([' ', '\t']) {
        let rest = rest.trim();
        return SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) && !rest.is_empty();
    }
    is_secret_token(value)
}

/// One token (no whitespace): a known key prefix or high entropy.
fn is_secret_token(token: &str) -> bool {
    let token = token.trim_matches(|c| matches!(c, '"' | '\'' | ',' | ';'));
    if token.len() < 12 || !token.bytes().all(is_token_byte) {
        return false;
    }
    let lower = token.to_ascii_lowercase();
    if KEY_PREFIXES.iter().any(|p| lower.starts_with(p)) && token.len() >= 12 {
        // `sk-` followed by a word ("sk-learn") is no key: it needs digits or mixed case.
        let rest = &token[3..];
        return rest.bytes().any(|b| b.is_ascii_digit())
            || (rest.bytes().any(|b| b.is_ascii_uppercase()) && rest.bytes().any(|b| b.is_ascii_lowercase()))
            || token.len() >= 20;
    }
    high_entropy(token)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'=' | b'.' | b'~')
}

/// 24+ characters, at least two character classes, and many distinct characters; not a UUID,
/// not a path or a dotted name.
fn high_entropy(token: &str) -> bool {
    if token.len() < 24 || is_uuid(token) {
        return false;
    }
    // Paths, host names and media types are made of words.
    if token.contains("//") || token.starts_with('/') {
        return false;
    }
    let b = token.as_bytes();
    let upper = b.iter().any(u8::is_ascii_uppercase);
    let lower = b.iter().any(u8::is_ascii_lowercase);
    let digit = b.iter().any(u8::is_ascii_digit);
    if usize::from(upper) + usize::from(lower) + usize::from(digit) < 2 {
        return false;
    }
    // Words separated by `-`, `_`, `.` or `/` (model names, paths, dates) are not random:
    // a secret has long runs of alphanumerics.
    let longest_run = token.split(|c: char| !c.is_ascii_alphanumeric()).map(str::len).max().unwrap_or(0);
    if longest_run < 16 {
        return false;
    }
    let mut seen = [false; 128];
    for &c in b {
        seen[usize::from(c & 0x7f)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    // Shannon entropy per character, estimated from the counts.
    let mut counts = [0u32; 128];
    for &c in b {
        counts[usize::from(c & 0x7f)] += 1;
    }
    let n = b.len() as f64;
    let entropy: f64 = counts.iter().filter(|c| **c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum();
    distinct >= 12 && entropy >= 3.5
}

fn is_uuid(token: &str) -> bool {
    let b = token.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `text` (a response body, an error message, a log line) with what looks like a secret
/// replaced by `[REDACTED]`: the parameter of an auth scheme (`Bearer …`, `Basic …`,
/// `Token …`), tokens that [`looks_like_secret`], credential values of `name=value` pairs
/// ([`is_credential_param`]) and `user:password@` in URLs. Text without any comes back
/// borrowed.
pub fn redact_text(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut last = 0;
    let mut previous_word: Option<&str> = None;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_token_byte(bytes[i]) && bytes[i] != b':' && bytes[i] != b'@' && bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (is_token_byte(bytes[i]) || matches!(bytes[i], b':' | b'@' | b'%' | b'?' | b'&')) {
            i += 1;
        }
        let word = &text[start..i];
        if let Some(replacement) = redact_word(word, previous_word) {
            out.push_str(&text[last..start]);
            out.push_str(&replacement);
            last = i;
        }
        previous_word = Some(word);
    }
    if last == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    Cow::Owned(out)
}

/// The replacement of one word of free text, if it holds a secret.
fn redact_word(word: &str, previous: Option<&str>) -> Option<String> {
    // The parameter of an auth scheme: `Basic dXNlcjpwdw==`, `Bearer abc.def`.
    if let Some(prev) = previous {
        let prev = prev.trim_end_matches(':');
        if ["bearer", "basic", "token", "digest"].iter().any(|s| s.eq_ignore_ascii_case(prev)) && credential_like(word)
        {
            return Some(REDACTED.to_owned());
        }
    }
    // A URL: its credentials and query.
    if word.contains("://") {
        let redacted = redact_url(word);
        return (redacted != word).then_some(redacted);
    }
    // `name=value` pairs, as in a query string or a form body.
    if word.contains('=') && !word.starts_with('=') {
        let mut changed = false;
        let mut out = String::with_capacity(word.len());
        for (i, pair) in word.split('&').enumerate() {
            if i > 0 {
                out.push('&');
            }
            match pair.split_once('=') {
                Some((name, value))
                    if !name.is_empty()
                        && !value.is_empty()
                        && (is_credential_param(name.trim_start_matches('?')) || is_secret_token(value)) =>
                {
                    out.push_str(name);
                    out.push('=');
                    out.push_str(REDACTED);
                    changed = true;
                }
                _ => out.push_str(pair),
            }
        }
        if changed {
            return Some(out);
        }
    }
    // `user:password@host`.
    if let Some((info, host)) = word.rsplit_once('@') {
        if info.contains(':') && !host.is_empty() {
            return Some(format!("{REDACTED}@{host}"));
        }
    }
    let core = word.trim_matches(|c: char| matches!(c, ':' | '.' | ',' | '?' | '&' | '='));
    is_secret_token(core).then(|| word.replace(core, REDACTED))
}

/// Whether the word after an auth scheme is a credential rather than prose ("basic
/// information", "token limit"): 8+ characters with a digit, a symbol of base64 or tokens,
/// or mixed case.
fn credential_like(word: &str) -> bool {
    let word = word.trim_end_matches([',', ';', '.', ':']);
    let b = word.as_bytes();
    b.len() >= 8
        && b.iter().all(|c| is_token_byte(*c) || *c == b':')
        && (b.iter().any(u8::is_ascii_digit)
            || b.iter().any(|c| matches!(c, b'+' | b'/' | b'=' | b'_' | b'-' | b'.' | b'~'))
            || (b.iter().any(u8::is_ascii_uppercase) && b.iter().any(u8::is_ascii_lowercase)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_keep_the_rest() {
        for (url, want) in [
            ("http://u:pw@h:1/v1", "http://[REDACTED]@h:1/v1"),
            ("http://h:1/v1", "http://h:1/v1"),
            ("http://h/v1?api_key=sk-123", "http://h/v1?api_key=[REDACTED]"),
            ("http://h/v1?key=abc&x=1", "http://h/v1?key=[REDACTED]&x=1"),
            (
                "http://h/v1?token=t&access_token=a&sig=s",
                "http://h/v1?token=[REDACTED]&access_token=[REDACTED]&sig=[REDACTED]",
            ),
            (
                "http://h/v1?signature=s&code=c&X-Amz-Signature=x",
                "http://h/v1?signature=[REDACTED]&code=[REDACTED]&X-Amz-Signature=[REDACTED]",
            ),
            (
                "http://h/v1?Api-Key=K&client_secret=s&password=p",
                "http://h/v1?Api-Key=[REDACTED]&client_secret=[REDACTED]&password=[REDACTED]",
            ),
            ("https://r.azure.com/d?api-version=2024-10-21", "https://r.azure.com/d?api-version=2024-10-21"),
            // A value that is a key whatever its name.
            ("http://h/v1?x=sk-proj-Abc123Def456", "http://h/v1?x=[REDACTED]"),
            // A key in the path.
            ("http://h/bot/sk-proj-Abc123Def456/x", "http://h/bot/[REDACTED]/x"),
            ("http://h/#access_token=abc", "http://h/#access_token=[REDACTED]"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), want, "{url}");
        }
    }

    #[test]
    fn header_values_that_are_secrets() {
        for v in [
            "Bearer sk-abc",
            "bearer x",
            "Basic dXNlcjpwdw==",
            "Token abcdef",
            "sk-proj-Abc123Def456Ghi",
            "sk-0123456789",
            "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
            "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            "key-1234567890abcdef",
            "a8F3kLq9ZxP2mN7vB4cR1tY6wE0uI5oS",
            "0123456789abcdef0123456789abcdef0123abcd",
        ] {
            assert!(looks_like_secret(v), "{v}");
        }
        for v in [
            "",
            "application/json",
            "app",
            "team-a",
            "mine/1.0 (Linux x86_64)",
            "123e4567-e89b-12d3-a456-426614174000",
            "gpt-4o-mini-2024-07-18",
            "Meta-Llama-3.1-8B-Instruct",
            "https://example.com/v1/chat",
            "sk-learn",
            "no-cache",
            "2024-10-21",
            "Basic",
        ] {
            assert!(!looks_like_secret(v), "{v}");
        }
    }

    /// A reflected Authorization header (Basic or Bearer) in a body is redacted, and so are
    /// keys and credential query values; prose stays.
    #[test]
    fn text_is_redacted_where_secrets_appear() {
        let body = r#"{"error":"bad header Authorization: Basic Ym9iOnMzY3JldA== from 10.0.0.1"}"#;
        let out = redact_text(body);
        assert!(!out.contains("Ym9iOnMzY3JldA=="), "{out}");
        assert!(out.contains("Basic [REDACTED]"), "{out}");
        assert!(out.contains("10.0.0.1"), "{out}");
        let out = redact_text("Incorrect API key provided: sk-proj-Abc123Def456. You can find");
        assert_eq!(out, "Incorrect API key provided: [REDACTED]. You can find");
        let out = redact_text("got bearer abcDEF12345 and url https://u:pw@h/x?api_key=zz1&q=2");
        assert!(!out.contains("abcDEF12345") && !out.contains("pw@") && !out.contains("zz1"), "{out}");
        assert!(out.contains("q=2"), "{out}");
        let out = redact_text("POST /v1?key=abc123 failed");
        assert_eq!(out, "POST /v1?key=[REDACTED] failed");
        for prose in [
            "This model's maximum context length is 4096 tokens. However, you requested 5000 tokens",
            "Basic information is missing; token limit reached",
            r#"{"error":{"message":"Incorrect API key provided","code":"invalid_api_key"}}"#,
            "The model `gpt-4o-mini-2024-07-18` does not exist",
            "",
        ] {
            assert!(matches!(redact_text(prose), Cow::Borrowed(_)), "{prose}: {}", redact_text(prose));
        }
    }

    #[test]
    fn credential_params() {
        for n in ["api_key", "apikey", "api-key", "KEY", "token", "access_token", "sig", "signature", "code", "secret"]
        {
            assert!(is_credential_param(n), "{n}");
        }
        for n in ["api-version", "model", "q", "limit", "format", "x"] {
            assert!(!is_credential_param(n), "{n}");
        }
    }
}
