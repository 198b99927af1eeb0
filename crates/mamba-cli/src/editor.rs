//! Opening a file in the user's editor: `$VISUAL`, else `$EDITOR`, else `vi`.

use std::path::Path;

use crate::error::CliError;

/// Runs the editor on `path` and waits for it.
pub(crate) fn edit(path: &Path) -> Result<(), CliError> {
    let editor = ["VISUAL", "EDITOR"].iter().find_map(|v| crate::settings::env(v)).unwrap_or_else(|| "vi".to_owned());
    // `code -w`, `emacsclient -t`: the command and its own arguments.
    let mut words = editor.split_whitespace();
    let program = words.next().unwrap_or("vi");
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
