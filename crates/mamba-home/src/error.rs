//! The one error type of the crate: a kind to act on, a complete one-line message to show, and
//! the underlying I/O or SQLite error as its source.
//!
//! Messages name files and what to do next; they never hold a key, a header value or a line
//! of the config file (the TOML parser's own error, which quotes the line, is not kept as a
//! source for that reason).

use std::fmt;
use std::sync::Arc;

/// What went wrong, to act on; [`Error`]'s `Display` says it in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No folder to keep files in: none of `HOME`, the XDG variables or the `MAMBA_*`
    /// overrides is set.
    NoHome,
    /// The config file cannot be read, is not valid, or names something it does not define;
    /// or a setting asks for something that is not there (an unknown endpoint, an unset key
    /// variable). The user fixes the file or the flags.
    Config,
    /// A key name with characters other than letters, digits, `-`, `_` and `.`.
    KeyName,
    /// No key is saved under the name asked for.
    NoKey,
    /// The keys file cannot be used: unreadable, unwritable, not a keys file, or readable by
    /// others (Unix).
    Keys,
    /// The conversation log cannot be opened, migrated, read or written.
    Log,
    /// The conversation log holds no conversation with the id asked for.
    NoConversation,
}

impl ErrorKind {
    /// A short stable name: `no_home`, `config`, `key_name`, `no_key`, `keys`, `log`,
    /// `no_conversation`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NoHome => "no_home",
            ErrorKind::Config => "config",
            ErrorKind::KeyName => "key_name",
            ErrorKind::NoKey => "no_key",
            ErrorKind::Keys => "keys",
            ErrorKind::Log => "log",
            ErrorKind::NoConversation => "no_conversation",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of this crate. `Display` is the whole message, one line, and already includes
/// the text of its [`source`](std::error::Error::source) where there is one: print either the
/// message alone, or walk the chain for the underlying error's type, not both.
///
/// The messages are the ones `mamba-llm` prints, word for word, so where they say what to do
/// next they may name its commands and flags (`mamba-llm keys set NAME`, `--no-log`); a
/// binding that wants its own words chooses them by [`kind`](Error::kind).
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into(), source: None }
    }

    pub(crate) fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error { kind, message: message.into(), source: Some(Arc::new(source)) }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, as `Display` writes it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_message_and_the_source_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let e = Error::with_source(ErrorKind::Keys, "/k/keys.json: denied", io);
        assert_eq!(e.to_string(), "/k/keys.json: denied");
        assert_eq!(e.kind(), ErrorKind::Keys);
        assert_eq!(e.kind().to_string(), "keys");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "denied");
        assert!(std::error::Error::source(&Error::new(ErrorKind::NoKey, "x")).is_none());
        let copy = e.clone();
        assert_eq!(copy.message(), e.message());
    }

    /// Errors cross threads (a binding's worker, an async task) and outlive their cause.
    #[test]
    fn errors_are_send_sync_and_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
        check::<ErrorKind>();
    }
}
