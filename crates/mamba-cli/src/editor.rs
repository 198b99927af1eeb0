//! Opening a file in the user's editor: `$VISUAL`, else `$EDITOR`, else `vi` (`notepad` on
//! Windows, which has no `vi`).

use std::path::Path;

use crate::error::CliError;

/// The editor when neither variable names one.
const DEFAULT_EDITOR: &str = if cfg!(windows) { "notepad" } else { "vi" };

/// Runs the editor on `path` and waits for it.
pub(crate) fn edit(path: &Path) -> Result<(), CliError> {
    let editor =
        ["VISUAL", "EDITOR"].iter().find_map(|v| crate::settings::env(v)).unwrap_or_else(|| DEFAULT_EDITOR.to_owned());
    // `code -w`, `emacsclient -t`: the command and its own arguments.
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or(DEFAULT_EDITOR);
    let status = std::process::Command::new(program)
        .args(words)
        .arg(path)
        .status()
        .map_err(|e| CliError::Editor(format!("cannot run the editor {editor:?}: {e}; set VISUAL or EDITOR")))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Editor(format!("the editor {editor:?} failed ({status})")))
    }
}
