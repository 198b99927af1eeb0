//! Attachments (`chat -a PATH|URL`): images sent as data URLs (type from their first bytes) or
//! as URLs, and text files inlined with their name.

use std::path::Path;

use mamba_backends::{
    message::{Content, ContentPart},
    ModelProfile,
};

use crate::error::CliError;

/// The default size limit of one attachment.
pub(crate) const DEFAULT_LIMIT: u64 = 20 * 1024 * 1024;

/// One attachment, read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attachment {
    /// An image: a data URL or a URL.
    Image { name: String, url: String },
    /// A text file's name and content.
    Text { name: String, text: String },
}

impl Attachment {
    /// What the log records.
    pub(crate) fn name(&self) -> &str {
        match self {
            Attachment::Image { name, .. } | Attachment::Text { name, .. } => name,
        }
    }

    /// Whether it needs a model that reads images.
    pub(crate) fn is_image(&self) -> bool {
        matches!(self, Attachment::Image { .. })
    }
}

/// The image type of `bytes`, from their magic numbers.
pub(crate) fn image_mime(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Reads one `-a` value, within `limit` bytes.
pub(crate) fn read(spec: &str, limit: u64) -> Result<Attachment, CliError> {
    let lower = spec.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(Attachment::Image { name: spec.to_owned(), url: spec.to_owned() });
    }
    if lower.starts_with("data:image/") {
        if spec.len() as u64 > limit {
            return Err(too_large("the data URL", spec.len() as u64, limit));
        }
        return Ok(Attachment::Image { name: "data URL".to_owned(), url: spec.to_owned() });
    }
    let path = Path::new(spec);
    let meta = std::fs::metadata(path).map_err(|e| CliError::Usage(format!("-a {spec}: {e}")))?;
    if !meta.is_file() {
        return Err(CliError::Usage(format!("-a {spec}: not a file")));
    }
    if meta.len() > limit {
        return Err(too_large(spec, meta.len(), limit));
    }
    let bytes = std::fs::read(path).map_err(|e| CliError::Usage(format!("-a {spec}: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(spec, bytes.len() as u64, limit));
    }
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or(spec).to_owned();
    if let Some(mime) = image_mime(&bytes) {
        let ContentPart::Image { url, .. } = ContentPart::image_bytes(mime, &bytes) else {
            return Err(CliError::Attach("could not encode the image".into()));
        };
        return Ok(Attachment::Image { name, url });
    }
    match String::from_utf8(bytes) {
        Ok(text) if !text.contains('\0') => Ok(Attachment::Text { name, text }),
        _ => Err(CliError::Usage(format!("-a {spec}: neither an image (png, jpeg, gif, webp) nor UTF-8 text"))),
    }
}

fn too_large(what: &str, size: u64, limit: u64) -> CliError {
    CliError::Usage(format!(
        "-a {what}: {size} bytes is over the attachment limit of {limit} bytes (max_attachment_bytes in the config file)"
    ))
}

/// The user message's text: text files first, each under its name, then the prompt.
pub(crate) fn prompt_text(prompt: &str, attachments: &[Attachment]) -> String {
    let mut out = String::new();
    for a in attachments {
        if let Attachment::Text { name, text } = a {
            out.push_str(&format!("File: {name}\n```\n{text}"));
            if !text.ends_with('\n') {
                out.push('\n');
            }
            out.push_str("```\n\n");
        }
    }
    out.push_str(prompt);
    out
}

/// The user message's content: plain text, or text and image parts.
pub(crate) fn content(text: String, attachments: &[Attachment]) -> Content {
    let images: Vec<ContentPart> = attachments
        .iter()
        .filter_map(|a| match a {
            Attachment::Image { url, .. } => Some(ContentPart::image_url(url.clone())),
            Attachment::Text { .. } => None,
        })
        .collect();
    if images.is_empty() {
        return Content::Text(text);
    }
    let mut parts = vec![ContentPart::text(text)];
    parts.extend(images);
    Content::Parts(parts)
}

/// Fails when `model`'s profile says it reads no images and an image is attached.
pub(crate) fn check_vision(model: &str, profile: &ModelProfile, attachments: &[Attachment]) -> Result<(), CliError> {
    if !attachments.iter().any(Attachment::is_image) {
        return Ok(());
    }
    if profile.supports_vision {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "model {model} cannot read images (its profile {} says no vision); pick a vision model with -m, or attach text only",
        profile.name
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_numbers() {
        assert_eq!(image_mime(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(image_mime(&[0xFF, 0xD8, 0xFF, 0xE0]), Some("image/jpeg"));
        assert_eq!(image_mime(b"GIF89a.."), Some("image/gif"));
        assert_eq!(image_mime(b"RIFF\0\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(image_mime(b"RIFF\0\0\0\0WAVE"), None);
        assert_eq!(image_mime(b"hello"), None);
    }

    #[test]
    fn text_and_content() {
        let a = [
            Attachment::Text { name: "a.txt".into(), text: "one".into() },
            Attachment::Image { name: "x.png".into(), url: "data:image/png;base64,AA==".into() },
        ];
        let text = prompt_text("Q?", &a);
        assert_eq!(text, "File: a.txt\n```\none\n```\n\nQ?");
        let Content::Parts(parts) = content(text, &a) else { panic!("no parts") };
        assert_eq!(parts.len(), 2);
        assert!(matches!(content("x".into(), &a[..1]), Content::Text(_)));
    }

    #[test]
    fn vision_check_uses_profiles() {
        let image = [Attachment::Image { name: "u".into(), url: "https://x/y.png".into() }];
        let check = |model: &str, a: &[Attachment]| check_vision(model, &mamba_backends::get_profile(model), a);
        assert!(check("gpt-4o-mini", &image).is_ok());
        assert!(check("some-unknown-model", &image).is_ok());
        let e = check("gpt-3.5-turbo", &image).expect_err("no vision");
        assert!(matches!(&e, CliError::Usage(m) if m.contains("cannot read images")), "{e:?}");
        assert!(check("gpt-3.5-turbo", &[]).is_ok());
    }

    #[test]
    fn urls_and_limits() {
        assert!(matches!(read("https://x/y.png", 10).expect("url"), Attachment::Image { .. }));
        assert!(read("data:image/png;base64,AAAAAAAAAAAAAAAA", 10).is_err());
        assert!(read("/nonexistent/file", 10).is_err());
    }
}
