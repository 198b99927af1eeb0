//! Why a command failed: [`CliError`], one typed variant per kind of failure. Each variant
//! knows the kind string `--json` reports for it and the process's exit code; its `Display` is
//! the text after `mamba-llm: error: ` (or `usage error: `) on stderr.

use std::fmt;
use std::io;

use mamba_backends::{Error, ErrorKind};

/// Why a command failed.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad arguments, flags, config or input: exit 2, kind `config`.
    Usage(String),
    /// The backend failed: its own kind; exit 2 for a configuration error, else 1.
    Backend(Error),
    /// No server configured and none found on this machine: kind `connect`.
    Connect(String),
    /// A server or the built-in model is not usable: kind `unavailable`.
    Unavailable(String),
    /// This build lacks the feature asked for (the built-in model): kind `unsupported`.
    Unsupported(String),
    /// A file or socket could not be read, written or bound: kind `io`.
    Io(String),
    /// An attachment could not be prepared: kind `attach`.
    Attach(String),
    /// The user's editor could not be run or failed: kind `editor`.
    Editor(String),
    /// The config folder or file could not be used: kind `config`, exit 1.
    Config(String),
    /// The saved keys could not be read or written: kind `keys`.
    Keys(String),
    /// The conversation log could not be read or written: kind `log`.
    Log(String),
    /// stdout could not be written (a full disk, a closed terminal): kind `output`.
    Output(String),
    /// stdout was closed (`| head`): not an error, exit 0.
    BrokenPipe,
    /// Already reported by the command: exit with this code.
    Exit(u8),
}

impl CliError {
    /// The process's exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Backend(e) if e.kind() == ErrorKind::Config => 2,
            CliError::BrokenPipe => 0,
            CliError::Exit(code) => *code,
            CliError::Backend(_)
            | CliError::Connect(_)
            | CliError::Unavailable(_)
            | CliError::Unsupported(_)
            | CliError::Io(_)
            | CliError::Attach(_)
            | CliError::Editor(_)
            | CliError::Config(_)
            | CliError::Keys(_)
            | CliError::Log(_)
            | CliError::Output(_) => 1,
        }
    }

    /// The error kind `--json` reports (`connect`, `unavailable`, `io`, …).
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CliError::Usage(_) | CliError::Config(_) => "config",
            CliError::Backend(e) => e.kind().as_str(),
            CliError::Connect(_) => "connect",
            CliError::Unavailable(_) => "unavailable",
            CliError::Unsupported(_) => "unsupported",
            CliError::Io(_) => "io",
            CliError::Attach(_) => "attach",
            CliError::Editor(_) => "editor",
            CliError::Keys(_) => "keys",
            CliError::Log(_) => "log",
            CliError::Output(_) => "output",
            CliError::BrokenPipe => "broken_pipe",
            CliError::Exit(_) => "failed",
        }
    }

    /// The message as `--json` reports it (the backend's own message for a backend error).
    pub(crate) fn message(&self) -> String {
        match self {
            CliError::Backend(e) => e.message().to_owned(),
            CliError::BrokenPipe => "stdout was closed".to_owned(),
            CliError::Exit(code) => format!("exit code {code}"),
            CliError::Usage(m)
            | CliError::Connect(m)
            | CliError::Unavailable(m)
            | CliError::Unsupported(m)
            | CliError::Io(m)
            | CliError::Attach(m)
            | CliError::Editor(m)
            | CliError::Config(m)
            | CliError::Keys(m)
            | CliError::Log(m)
            | CliError::Output(m) => m.clone(),
        }
    }

    /// The error of `kind` with `message`: the inverse of [`CliError::kind`] for the kinds
    /// this binary makes itself (any other is `io`).
    fn of_kind(kind: &str, message: String) -> CliError {
        match kind {
            "connect" => CliError::Connect(message),
            "unavailable" => CliError::Unavailable(message),
            "unsupported" => CliError::Unsupported(message),
            "attach" => CliError::Attach(message),
            "editor" => CliError::Editor(message),
            "config" => CliError::Config(message),
            "keys" => CliError::Keys(message),
            "log" => CliError::Log(message),
            "output" => CliError::Output(message),
            _ => CliError::Io(message),
        }
    }
}

/// Collapses runs of whitespace (newlines included) into one space: an error is one line.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Backend(e) => {
                write!(f, "{}", e.kind())?;
                if let Some(status) = e.status() {
                    write!(f, " (HTTP {status})")?;
                }
                write!(f, ": {}", one_line(e.message()))?;
                if let Some(wait) = e.retry_after() {
                    write!(f, " (retry after {:.1}s)", wait.as_secs_f64())?;
                }
                Ok(())
            }
            other => f.write_str(&one_line(&other.message())),
        }
    }
}

impl std::error::Error for CliError {}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        CliError::Backend(e)
    }
}

impl From<io::Error> for CliError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            CliError::BrokenPipe
        } else {
            CliError::Output(format!("could not write the output: {e}"))
        }
    }
}

/// The error type the config file, key store and conversation log modules (`config.rs`,
/// `keys.rs`, `logdb.rs`, `logs.rs`, `config_cmd.rs`) were written against, with its catch-all
/// `Failed(kind, message)`. Those modules are moving into a library crate with its own error
/// type; until then they keep this one, reachable as `crate::print::CliError`, and it
/// converts both ways with [`CliError`] without losing the kind. Nothing else uses it.
pub(crate) mod compat {
    use std::fmt;

    /// The old `CliError`, for the modules named above only.
    #[derive(Debug)]
    pub(crate) enum CliError {
        /// Bad arguments: exit 2.
        Usage(String),
        /// The backend failed.
        Backend(mamba_backends::Error),
        /// Anything else: the `--json` kind and the message.
        Failed(&'static str, String),
        /// stdout could not be written.
        Output(String),
        /// stdout was closed.
        BrokenPipe,
        /// Already reported: exit with this code.
        Exit(u8),
    }

    /// The message alone, as those modules print it inside their own messages.
    impl fmt::Display for CliError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                CliError::Usage(m) | CliError::Failed(_, m) | CliError::Output(m) => f.write_str(m),
                CliError::Backend(e) => write!(f, "{e}"),
                CliError::BrokenPipe => f.write_str("stdout was closed"),
                CliError::Exit(code) => write!(f, "exit code {code}"),
            }
        }
    }

    impl From<CliError> for super::CliError {
        fn from(e: CliError) -> Self {
            match e {
                CliError::Usage(m) => super::CliError::Usage(m),
                CliError::Backend(e) => super::CliError::Backend(e),
                CliError::Failed(kind, m) => super::CliError::of_kind(kind, m),
                CliError::Output(m) => super::CliError::Output(m),
                CliError::BrokenPipe => super::CliError::BrokenPipe,
                CliError::Exit(code) => super::CliError::Exit(code),
            }
        }
    }

    impl From<super::CliError> for CliError {
        fn from(e: super::CliError) -> Self {
            match e {
                super::CliError::Usage(m) => CliError::Usage(m),
                super::CliError::Backend(e) => CliError::Backend(e),
                super::CliError::Output(m) => CliError::Output(m),
                super::CliError::BrokenPipe => CliError::BrokenPipe,
                super::CliError::Exit(code) => CliError::Exit(code),
                other => CliError::Failed(other.kind(), other.message()),
            }
        }
    }

    impl From<std::io::Error> for CliError {
        fn from(e: std::io::Error) -> Self {
            super::CliError::from(e).into()
        }
    }

    impl From<mamba_backends::Error> for CliError {
        fn from(e: mamba_backends::Error) -> Self {
            CliError::Backend(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_exit_codes() {
        let write = CliError::from(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        assert!(matches!(write, CliError::Output(_)));
        assert_eq!((write.kind(), write.exit_code()), ("output", 1));
        let pipe = CliError::from(io::Error::new(io::ErrorKind::BrokenPipe, "closed"));
        assert!(matches!(pipe, CliError::BrokenPipe));
        assert_eq!((pipe.kind(), pipe.exit_code()), ("broken_pipe", 0));
        assert_eq!(CliError::Unavailable("down".into()).kind(), "unavailable");
        assert_eq!((CliError::Usage("bad".into()).kind(), CliError::Usage("bad".into()).exit_code()), ("config", 2));
        assert_eq!(
            (CliError::Config("no home".into()).kind(), CliError::Config("x".into()).exit_code()),
            ("config", 1)
        );
        assert_eq!(CliError::Io("a\n  b".into()).to_string(), "a b");
    }

    #[test]
    fn the_compatibility_error_keeps_its_kind_both_ways() {
        for kind in
            ["connect", "unavailable", "unsupported", "io", "attach", "editor", "config", "keys", "log", "output"]
        {
            let new = CliError::from(compat::CliError::Failed(kind, "m".into()));
            assert_eq!((new.kind(), new.message().as_str(), new.exit_code()), (kind, "m", 1), "{kind}");
            let back = compat::CliError::from(new);
            assert_eq!(CliError::from(back).kind(), kind);
        }
        let usage = CliError::from(compat::CliError::Usage("u".into()));
        assert!(matches!(usage, CliError::Usage(m) if m == "u"));
    }
}
