//! Guarding the output: it is never the input (nor one of the files kept next to it), and one
//! run at a time writes it.
//!
//! The lock is an advisory lock (`flock` on unix, `LockFileEx` on Windows) on `OUT.lock`,
//! taken without waiting and held until the run ends; the operating system releases it when
//! the process dies, so a crash never leaves a stale lock. The file itself stays (an empty
//! file, or the pid of the last run that held it): removing it while another run may be
//! opening it would let two runs hold locks on two different files.
//!
//! The lock file is named after the output as the file system resolves it, not as it was
//! written: an output that is a symbolic link (followed to its target, even one that does
//! not exist yet), a path through a symbolically linked folder, `./out.jsonl` or
//! `dir/../out.jsonl` all lock `OUT.lock` next to the real file. Hard links cannot be
//! followed that way: two runs writing one file through two hard-linked names take two
//! different locks (and a run rewrites the output through a rename, which separates them).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use fs4::{FileExt, TryLockError};

use crate::engine::BatchError;
use crate::input::Input;

/// A path next to `output`: its file name with `suffix` added.
pub(crate) fn beside(output: &Path, suffix: &str) -> PathBuf {
    let mut name = output.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    output.with_file_name(name)
}

/// The lock file of an output: `OUT.lock`, next to the file `output` resolves to (through
/// symbolic links to the output or its folders; see the module's notes on hard links).
pub fn lock_path(output: &Path) -> PathBuf {
    beside(&resolved(output), ".lock")
}

/// `output` as the file system resolves it: symbolic links to it followed (even to a target
/// that does not exist yet), then its folder made canonical. A folder that does not exist
/// (or cannot be read) leaves the path as it is: the run fails on it anyway.
fn resolved(output: &Path) -> PathBuf {
    let mut path = output.to_path_buf();
    // As many links as the kernel follows (40 on Linux) before it gives up on a loop.
    for _ in 0..40 {
        let is_link = fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
        let Some(target) = is_link.then(|| fs::read_link(&path).ok()).flatten() else { break };
        // A relative target is relative to the link's folder; an absolute one replaces it.
        path = match path.parent() {
            Some(folder) => folder.join(target),
            None => target,
        };
    }
    let Some(name) = path.file_name() else { return path };
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match fs::canonicalize(folder) {
        Ok(folder) => folder.join(name),
        Err(_) => path,
    }
}

/// The file the lines of an existing output that are not output records are moved to on
/// resume: `OUT.invalid` (appended to, never overwritten).
pub fn invalid_lines_path(output: &Path) -> PathBuf {
    beside(output, ".invalid")
}

/// The output and the files a run writes next to it, each with what it is, for messages.
fn written_files(output: &Path) -> [(PathBuf, &'static str); 6] {
    [
        (output.to_path_buf(), "the output"),
        (beside(output, ".tmp"), "the output's temporary file"),
        (lock_path(output), "the output's lock file"),
        (invalid_lines_path(output), "the output's file of invalid lines"),
        (beside(output, ".remote.json"), "the output's remote state file"),
        (beside(output, ".remote.part"), "the output's download file"),
    ]
}

/// Whether two paths name the same existing file, through links: the same device and inode
/// on unix (hard links, symbolic links), else the same canonical path.
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(meta_a), Ok(meta_b)) = (fs::metadata(a), fs::metadata(b)) else { return false };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta_a.dev() == meta_b.dev() && meta_a.ino() == meta_b.ino() {
            return true;
        }
    }
    let _ = (meta_a, meta_b);
    matches!((fs::canonicalize(a), fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

/// Whether standard input is the file at `path` (`batch - -o OUT < OUT`).
#[cfg(unix)]
fn stdin_is(path: &Path) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Ok(fd) = io::stdin().as_fd().try_clone_to_owned() else { return false };
    let (Ok(stdin), Ok(file)) = (File::from(fd).metadata(), fs::metadata(path)) else { return false };
    stdin.is_file() && stdin.dev() == file.dev() && stdin.ino() == file.ino()
}

#[cfg(not(unix))]
fn stdin_is(_path: &Path) -> bool {
    false
}

/// Refuses an output that is the input, or an input that a run would write over (the
/// output's temporary, lock or state files): [`BatchError::Refused`], nothing read or written.
pub(crate) fn refuse_input_as_output(input: &Input, output: &Path) -> Result<(), BatchError> {
    for (path, what) in written_files(output) {
        let same = match input {
            Input::Path(input) => same_file(input, &path),
            Input::Stdin => stdin_is(&path),
        };
        if same {
            let input_name = match input {
                Input::Path(p) => p.display().to_string(),
                Input::Stdin => "stdin".to_owned(),
            };
            return Err(BatchError::Refused(format!(
                "the input {input_name} is {what} {} (the same file): the run would write over its requests; choose another -o",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The exclusive lock on an output, held until dropped.
#[derive(Debug)]
pub(crate) struct OutputLock {
    _file: File,
}

impl OutputLock {
    /// Takes the lock on `output` at once: [`BatchError::Locked`] when another run holds it.
    pub(crate) fn acquire(output: &Path) -> Result<OutputLock, BatchError> {
        let path = lock_path(output);
        let mut file =
            OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(|e| {
                BatchError::Io(io::Error::new(e.kind(), format!("cannot create the lock file {}: {e}", path.display())))
            })?;
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file.read_to_string(&mut text).ok().and_then(|_| text.trim().parse::<u32>().ok());
                return Err(BatchError::Locked { output: output.to_path_buf(), lock: path, pid });
            }
            Err(TryLockError::Error(e)) => {
                return Err(BatchError::Io(io::Error::new(e.kind(), format!("cannot lock {}: {e}", path.display()))))
            }
        }
        // The holder's pid, for the message of a run that finds the lock taken (best effort:
        // the lock is what counts).
        let _ = file.set_len(0).and_then(|()| file.rewind()).and_then(|()| write!(file, "{}", std::process::id()));
        Ok(OutputLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_that_is_the_input_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.jsonl");
        fs::write(&input, "{}\n").unwrap();
        let refused = |output: &Path| refuse_input_as_output(&Input::Path(input.clone()), output);
        assert!(matches!(refused(&input), Err(BatchError::Refused(m)) if m.contains("choose another -o")));
        // The same file through another spelling of its path.
        assert!(refused(&dir.path().join(".").join("in.jsonl")).is_err());
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&input, dir.path().join("sym.jsonl")).unwrap();
            assert!(refused(&dir.path().join("sym.jsonl")).is_err(), "a symbolic link");
            fs::hard_link(&input, dir.path().join("hard.jsonl")).unwrap();
            assert!(refused(&dir.path().join("hard.jsonl")).is_err(), "a hard link");
            // An input that is a file the run writes next to the output.
            fs::hard_link(&input, dir.path().join("out.jsonl.tmp")).unwrap();
            let e = refused(&dir.path().join("out.jsonl")).unwrap_err().to_string();
            assert!(e.contains("temporary file"), "{e}");
        }
        // A different file, existing or not, is fine.
        let other = dir.path().join("other.jsonl");
        assert!(refused(&other).is_ok());
        fs::write(&other, "{}\n").unwrap();
        assert!(refused(&other).is_ok());
    }

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let output = dir.path().join("out.jsonl");
        let first = OutputLock::acquire(&output).unwrap();
        let second = OutputLock::acquire(&output).unwrap_err();
        let BatchError::Locked { lock, pid, .. } = &second else { panic!("{second}") };
        assert_eq!(lock, &fs::canonicalize(dir.path()).unwrap().join("out.jsonl.lock"));
        assert_eq!(*pid, Some(std::process::id()));
        let message = second.to_string();
        assert!(message.contains("out.jsonl.lock") && message.contains("another"), "{message}");
        drop(first);
        let _again = OutputLock::acquire(&output).unwrap();
    }

    /// However the output is written (through a symbolic link to it, existing or dangling,
    /// through a linked folder, with `.` and `..`), one lock: the second run is refused.
    #[cfg(unix)]
    #[test]
    fn every_spelling_of_the_output_takes_the_same_lock() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        let output = real.join("out.jsonl");
        fs::write(&output, "").unwrap();
        symlink(&output, dir.path().join("link.jsonl")).unwrap();
        symlink("real/out.jsonl", dir.path().join("relative-link.jsonl")).unwrap();
        symlink(&real, dir.path().join("folder-link")).unwrap();
        let spellings = [
            dir.path().join("link.jsonl"),
            dir.path().join("relative-link.jsonl"),
            dir.path().join("folder-link").join("out.jsonl"),
            real.join(".").join("out.jsonl"),
            dir.path().join("folder-link").join("..").join("real").join("out.jsonl"),
        ];
        let first = OutputLock::acquire(&output).unwrap();
        let expected = fs::canonicalize(&real).unwrap().join("out.jsonl.lock");
        for spelling in &spellings {
            assert_eq!(lock_path(spelling), expected, "{}", spelling.display());
            let second = OutputLock::acquire(spelling);
            assert!(matches!(second, Err(BatchError::Locked { .. })), "{}: {second:?}", spelling.display());
        }
        drop(first);
        // A link to an output that does not exist yet locks where the output will be.
        let later = real.join("later.jsonl");
        symlink(&later, dir.path().join("dangling.jsonl")).unwrap();
        let first = OutputLock::acquire(&dir.path().join("dangling.jsonl")).unwrap();
        assert!(matches!(OutputLock::acquire(&later), Err(BatchError::Locked { .. })));
        drop(first);
        // A loop of links is no hang and no panic.
        symlink(dir.path().join("loop-b"), dir.path().join("loop-a")).unwrap();
        symlink(dir.path().join("loop-a"), dir.path().join("loop-b")).unwrap();
        let _ = lock_path(&dir.path().join("loop-a"));
    }
}
