//! Downloading one file over HTTP(S) into a `.part` file: redirects followed, resumed with
//! `Range` after an interruption, progress reported.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use mamba_backends::{
    http::{HttpClient, HttpResponse},
    Error, ErrorKind,
};

use super::cache::io_error;
use super::progress::{Progress, Transfer};

/// How many redirects one request follows.
const MAX_REDIRECTS: usize = 10;
/// How many times a transfer is started, as long as each try brings new bytes.
const MAX_TRIES: usize = 5;

/// Timeouts of a download.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    /// For the response head.
    pub(crate) head: Duration,
    /// Longest wait for the next bytes of the body.
    pub(crate) idle: Duration,
}

/// Where a `Location` header points, from `base`.
pub(crate) fn resolve_location(base: &str, location: &str) -> String {
    let location = location.trim();
    if location.contains("://") {
        return location.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    if let Some(net_path) = location.strip_prefix("//") {
        return format!("{scheme}://{net_path}");
    }
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let origin = format!("{scheme}://{}", &rest[..authority_end]);
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = &rest[authority_end..];
    let path = path.split(['?', '#']).next().unwrap_or("");
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    format!("{origin}{dir}{location}")
}

/// `Content-Range: bytes START-END/TOTAL` → START.
fn range_start(response: &HttpResponse) -> Option<u64> {
    let value = response.headers().get("content-range")?.to_str().ok()?;
    let spec = value.trim().strip_prefix("bytes")?.trim_start();
    spec.split('-').next()?.trim().parse().ok()
}

/// GET with redirects followed; returns the final response (any status but a redirect).
async fn get(http: &HttpClient, url: &str, range_from: u64, timeouts: Timeouts) -> Result<HttpResponse, Error> {
    let mut url = url.to_owned();
    let range = format!("bytes={range_from}-");
    for _ in 0..=MAX_REDIRECTS {
        let mut headers: Vec<(&str, &str)> = vec![("accept-encoding", "identity"), ("user-agent", "mamba-llm")];
        if range_from > 0 {
            headers.push(("range", &range));
        }
        let response = http.get(&url, &headers, timeouts.head).await?;
        if matches!(response.status(), 301 | 302 | 303 | 307 | 308) {
            let Some(location) = response.headers().get("location").and_then(|v| v.to_str().ok()) else {
                return Err(Error::new(ErrorKind::Decode, format!("{url} redirects without a Location"))
                    .with_status(response.status()));
            };
            url = resolve_location(&url, location);
            continue;
        }
        return Ok(response);
    }
    Err(Error::new(ErrorKind::Decode, format!("more than {MAX_REDIRECTS} redirects")))
}

fn part_len(part: &Path) -> u64 {
    fs::metadata(part).map(|m| m.len()).unwrap_or(0)
}

/// Downloads `url` into `part` until it holds `size` bytes, resuming from what `part` already
/// holds. Stops at the first answer that is not the file (4xx, 5xx); retries a broken transfer
/// from where it stopped while each try brings bytes.
pub(crate) async fn download(
    http: &HttpClient,
    url: &str,
    part: &Path,
    size: u64,
    label: &str,
    timeouts: Timeouts,
    progress: &dyn Progress,
) -> Result<(), Error> {
    let mut last_error: Option<Error> = None;
    let mut tries = 0;
    while tries < MAX_TRIES {
        tries += 1;
        let mut have = part_len(part);
        if have > size {
            truncate(part)?;
            have = 0;
        }
        if have == size {
            return Ok(());
        }
        let mut response = match get(http, url, have, timeouts).await {
            Ok(response) => response,
            // After a broken transfer a reconnect may fail once more; a first failure is final.
            Err(e) if e.is_retryable() && tries < MAX_TRIES && last_error.is_some() => {
                last_error = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let append = match response.status() {
            206 if range_start(&response) == Some(have) => true,
            // The server ignored the range or cannot serve it: start over.
            200 | 206 => false,
            416 if have > 0 => {
                truncate(part)?;
                continue;
            }
            status => {
                return Err(Error::new(
                    if status == 404 { ErrorKind::ModelNotFound } else { ErrorKind::Unavailable },
                    format!("{url} answered HTTP {status}"),
                )
                .with_status(status)
                .with_retryable(status >= 500 || status == 429));
            }
        };
        if !append {
            have = 0;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .map_err(|e| io_error(format!("cannot write {}", part.display()), e))?;
        let transfer = Transfer::begin(progress, label, Some(size), have);
        let mut buf = Vec::with_capacity(1 << 16);
        let mut got = 0u64;
        let ended = loop {
            buf.clear();
            match response.read_chunk(&mut buf, timeouts.idle).await {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    if have + got + n as u64 > size {
                        break Err(Error::new(
                            ErrorKind::Decode,
                            format!("{url} sent more than the {size} bytes of the file"),
                        ));
                    }
                    file.write_all(&buf).map_err(|e| io_error(format!("cannot write {}", part.display()), e))?;
                    got += n as u64;
                    transfer.advance(n as u64);
                }
                Err(e) => break Err(e),
            }
        };
        drop(transfer);
        file.flush().map_err(|e| io_error(format!("cannot write {}", part.display()), e))?;
        drop(file);
        match ended {
            Ok(()) if have + got == size => return Ok(()),
            Ok(()) => {
                last_error =
                    Some(Error::new(ErrorKind::Stream, format!("{url} ended after {} of {size} bytes", have + got)));
            }
            Err(e) if e.kind() == ErrorKind::Decode => {
                truncate(part)?;
                return Err(e);
            }
            Err(e) => last_error = Some(e),
        }
        if got > 0 {
            // Progress was made: the next try resumes, and does not count against the limit.
            tries -= 1;
            progress.note(&format!("the download stopped after {} bytes; resuming", have + got));
        }
    }
    Err(last_error.unwrap_or_else(|| Error::new(ErrorKind::Stream, format!("{url}: the download did not finish"))))
}

fn truncate(part: &Path) -> Result<(), Error> {
    match fs::remove_file(part) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(format!("cannot remove {}", part.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let base = "https://huggingface.co/o/r/resolve/main/f.gguf?x=1";
        assert_eq!(resolve_location(base, "https://cdn.example/x"), "https://cdn.example/x");
        assert_eq!(resolve_location(base, "//cdn.example/x"), "https://cdn.example/x");
        assert_eq!(resolve_location(base, "/api/x"), "https://huggingface.co/api/x");
        assert_eq!(resolve_location(base, "g.gguf"), "https://huggingface.co/o/r/resolve/main/g.gguf");
        assert_eq!(resolve_location("http://127.0.0.1:9", "a"), "http://127.0.0.1:9/a");
    }
}
