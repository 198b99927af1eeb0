//! A `multipart/form-data` body (RFC 7578) of text fields and one file, for uploads.
//!
//! The body is built around the file's own buffer (the parts before it are moved in front,
//! the closing delimiter appended), so an upload holds the file once, not twice.

use std::hash::{BuildHasher, Hasher};

/// A file to put in a form.
#[derive(Debug)]
pub(crate) struct FilePart<'a> {
    /// The field name (`file`).
    pub(crate) name: &'a str,
    pub(crate) filename: &'a str,
    pub(crate) content_type: &'a str,
}

/// The `content-type` header value and the body of a form of `fields` and then `file` with
/// `content`, under a random boundary that occurs in none of the values.
pub(crate) fn form(fields: &[(&str, &str)], file: &FilePart<'_>, content: Vec<u8>) -> (String, Vec<u8>) {
    let mut values: Vec<&[u8]> = fields.iter().map(|(_, v)| v.as_bytes()).collect();
    values.push(&content);
    let boundary = pick_boundary(&values, random_boundary);
    form_with(&boundary, fields, file, content)
}

/// [`form`] with a given boundary.
fn form_with(boundary: &str, fields: &[(&str, &str)], file: &FilePart<'_>, mut content: Vec<u8>) -> (String, Vec<u8>) {
    let mut head = Vec::with_capacity(256);
    for (name, value) in fields {
        part_head(&mut head, boundary, name, None, None);
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    part_head(&mut head, boundary, file.name, Some(file.filename), Some(file.content_type));
    let tail = format!("\r\n--{boundary}--\r\n");
    let n = content.len();
    content.reserve_exact(head.len() + tail.len());
    content.resize(n + head.len(), 0);
    content.copy_within(0..n, head.len());
    content[..head.len()].copy_from_slice(&head);
    content.extend_from_slice(tail.as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), content)
}

fn part_head(out: &mut Vec<u8>, boundary: &str, name: &str, filename: Option<&str>, content_type: Option<&str>) {
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"\r\ncontent-disposition: form-data; name=\"");
    out.extend_from_slice(quoted(name).as_bytes());
    out.push(b'"');
    if let Some(filename) = filename {
        out.extend_from_slice(b"; filename=\"");
        out.extend_from_slice(quoted(filename).as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"\r\n");
    if let Some(ct) = content_type {
        out.extend_from_slice(b"content-type: ");
        out.extend_from_slice(ct.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
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

    const FILE: FilePart<'static> =
        FilePart { name: "file", filename: "in\"put\n.jsonl", content_type: "application/jsonl" };

    #[test]
    fn writes_fields_and_a_file() {
        let (content_type, body) = form_with("XyZ", &[("purpose", "batch")], &FILE, b"{\"a\":1}\n".to_vec());
        assert_eq!(content_type, "multipart/form-data; boundary=XyZ");
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "--XyZ\r\ncontent-disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n\
             --XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"in%22put%0A.jsonl\"\r\n\
             content-type: application/jsonl\r\n\r\n{\"a\":1}\n\r\n--XyZ--\r\n"
        );
        let (_, empty) = form_with("b", &[], &FILE, Vec::new());
        assert!(empty.ends_with(b"\r\n\r\n\r\n--b--\r\n"));
    }

    #[test]
    fn the_boundary_is_random_and_not_in_the_content() {
        let a = random_boundary(0);
        let b = random_boundary(0);
        assert_ne!(a, b);
        assert!(a.len() <= 70 && a.starts_with("mamba-"));
        // Content holding the boundary drawn first: the next one is taken.
        let content = format!("line\n--{a}\nmore");
        let draws = [a.clone(), b.clone()];
        assert_eq!(pick_boundary(&[b"x", content.as_bytes()], |seed| draws[seed as usize].clone()), b);
        let (ct, body) = form(&[("purpose", "batch")], &FILE, content.clone().into_bytes());
        let boundary = ct.rsplit('=').next().unwrap();
        assert!(!content.contains(boundary));
        let delimiter = format!("--{boundary}");
        assert_eq!(memchr::memmem::find_iter(&body, delimiter.as_bytes()).count(), 3, "two parts, then the end");
    }
}
