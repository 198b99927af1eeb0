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
    /// This build lacks the feature asked for (the built-in model without `local`, `sql`
    /// without `sql`): kind `unsupported`.
    #[cfg_attr(all(feature = "local", feature = "ballista"), allow(dead_code))]
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

/// The config file, the keys file and the log (`mamba-home`): a problem the user fixes in the
/// file or the flags is a usage error (exit 2); one with the files themselves fails under the
/// kind `--json` has always reported for them (exit 1).
impl From<mamba_home::Error> for CliError {
    fn from(e: mamba_home::Error) -> Self {
        match e.kind() {
            mamba_home::ErrorKind::NoHome => CliError::Config(e.to_string()),
            mamba_home::ErrorKind::Keys => CliError::Keys(e.to_string()),
            mamba_home::ErrorKind::Log => CliError::Log(e.to_string()),
            _ => CliError::Usage(e.to_string()),
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

    /// The home folder's failures keep the kind and exit code `--json` has always reported.
    #[test]
    fn home_errors_keep_their_kind() {
        let keys = mamba_home::KeyFile::new("/nonexistent/keys.json");
        let Err(e) = keys.get("nope") else { panic!("a missing key is an error") };
        assert_eq!(e.kind(), mamba_home::ErrorKind::NoKey);
        let e = CliError::from(e);
        assert_eq!((e.kind(), e.exit_code()), ("config", 2), "{e:?}");
    }
}
