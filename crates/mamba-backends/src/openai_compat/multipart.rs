//! A `multipart/form-data` body (RFC 7578) of text fields and one file, for uploads.

use std::hash::{BuildHasher, Hasher};

/// A form of text fields and files, written into one buffer.
#[derive(Debug)]
pub(crate) struct Multipart {
    boundary: String,
    body: Vec<u8>,
}

impl Multipart {
    /// A form whose boundary occurs in none of `contents` (the values it will hold): a random
    /// one, drawn again in the (vanishingly rare) case it does.
    pub(crate) fn new(contents: &[&[u8]], capacity: usize) -> Multipart {
        Multipart { boundary: pick_boundary(contents, random_boundary), body: Vec::with_capacity(capacity + 512) }
    }

    /// A form with a given boundary (tests).
    #[cfg(test)]
    pub(crate) fn with_boundary(boundary: &str) -> Multipart {
        Multipart { boundary: boundary.to_owned(), body: Vec::new() }
    }

    /// Adds a text field.
    pub(crate) fn text(&mut self, name: &str, value: &str) {
        self.part_head(name, None, None);
        self.body.extend_from_slice(value.as_bytes());
        self.body.extend_from_slice(b"\r\n");
    }

    /// Adds a file.
    pub(crate) fn file(&mut self, name: &str, filename: &str, content_type: &str, bytes: &[u8]) {
        self.part_head(name, Some(filename), Some(content_type));
        self.body.extend_from_slice(bytes);
        self.body.extend_from_slice(b"\r\n");
    }

    fn part_head(&mut self, name: &str, filename: Option<&str>, content_type: Option<&str>) {
        self.body.extend_from_slice(b"--");
        self.body.extend_from_slice(self.boundary.as_bytes());
        self.body.extend_from_slice(b"\r\ncontent-disposition: form-data; name=\"");
        self.body.extend_from_slice(quoted(name).as_bytes());
        self.body.push(b'"');
        if let Some(filename) = filename {
            self.body.extend_from_slice(b"; filename=\"");
            self.body.extend_from_slice(quoted(filename).as_bytes());
            self.body.push(b'"');
        }
        self.body.extend_from_slice(b"\r\n");
        if let Some(ct) = content_type {
            self.body.extend_from_slice(b"content-type: ");
            self.body.extend_from_slice(ct.as_bytes());
            self.body.extend_from_slice(b"\r\n");
        }
        self.body.extend_from_slice(b"\r\n");
    }

    /// The `content-type` header value and the body.
    pub(crate) fn finish(mut self) -> (String, Vec<u8>) {
        self.body.extend_from_slice(b"--");
        self.body.extend_from_slice(self.boundary.as_bytes());
        self.body.extend_from_slice(b"--\r\n");
        (format!("multipart/form-data; boundary={}", self.boundary), self.body)
    }
}

/// The first boundary `draw` gives that occurs in none of `contents`.
fn pick_boundary(contents: &[&[u8]], mut draw: impl FnMut(u64) -> String) -> String {
    let mut seed = 0u64;
    loop {
        let boundary = draw(seed);
        if !contents.iter().any(|c| memchr::memmem::find(c, boundary.as_bytes()).is_some()) {
            return boundary;
        }
        seed += 1;
    }
}

/// A boundary of 32 random hex digits after a fixed prefix (70 characters at most, RFC 2046).
fn random_boundary(seed: u64) -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(seed);
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    let a = h.finish();
    h.write_u64(a);
    format!("mamba-{:016x}{:016x}", a, h.finish())
}

/// A parameter value inside double quotes: quotes, backslashes and line ends percent-encoded
/// (as browsers do), so that a file name cannot break out of its header.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' => out.push_str("%22"),
            '\\' => out.push_str("%5C"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fields_and_a_file() {
        let mut m = Multipart::with_boundary("XyZ");
        m.text("purpose", "batch");
        m.file("file", "in\"put\n.jsonl", "application/jsonl", b"{\"a\":1}\n");
        let (content_type, body) = m.finish();
        assert_eq!(content_type, "multipart/form-data; boundary=XyZ");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--XyZ\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
             --XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"in%22put%0A.jsonl\"\r\n\
             content-type: application/jsonl\r\n\r\n{\"a\":1}\n\r\n--XyZ--\r\n"
        );
    }

    #[test]
    fn the_boundary_is_random_and_not_in_the_content() {
        let a = Multipart::new(&[b"x"], 0).boundary;
        let b = Multipart::new(&[b"x"], 0).boundary;
        assert_ne!(a, b);
        assert!(a.len() <= 70 && a.starts_with("mamba-"));
        // Content holding the boundary drawn first: the next one is taken.
        let content = format!("line\n--{a}\nmore");
        let draws = [a.clone(), b.clone()];
        assert_eq!(pick_boundary(&[b"x", content.as_bytes()], |seed| draws[seed as usize].clone()), b);
        let mut m = Multipart::new(&[content.as_bytes()], 0);
        assert!(!content.contains(&m.boundary));
        m.file("file", "f", "application/octet-stream", content.as_bytes());
        let (ct, body) = m.finish();
        let boundary = ct.rsplit('=').next().unwrap();
        let delimiter = format!("--{boundary}");
        assert_eq!(memchr::memmem::find_iter(&body, delimiter.as_bytes()).count(), 2, "one part, then the end");
    }
}
