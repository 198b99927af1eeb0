//! The config file read from disk: missing, unreadable, invalid, and shown redacted.

use std::path::Path;

use mamba_home::config::{is_secret_header, parse, SKELETON};
use mamba_home::{Config, ErrorKind};

#[test]
fn a_missing_file_is_the_defaults_and_a_folder_is_an_error() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let config = Config::read(&dir.path().join("none.toml")).expect("defaults");
    assert!(config.endpoints.is_empty() && config.log_enabled() && config.default_endpoint.is_none());
    let e = Config::read(dir.path()).expect_err("a folder is no config file");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("cannot read the config file"), "{e}");
    assert!(std::error::Error::source(&e).is_some(), "the I/O error is its source");
}

#[test]
fn errors_name_the_place_and_never_the_line() {
    let text = "[endpoints.a]\nheaders = { \"X-Key\" = \"sk-in-the-file-1\" }\nbase_url = 3\n";
    let e = parse(Path::new("/c/config.toml"), text).expect_err("bad type");
    assert_eq!(e.kind(), ErrorKind::Config);
    let shown = format!("{e} {e:?}");
    assert!(e.to_string().starts_with("/c/config.toml:3:12: "), "{e}");
    assert!(!shown.contains("sk-in-the-file-1"), "{shown}");
    assert!(std::error::Error::source(&e).is_none(), "the parser's error quotes the file");
    let e = parse(Path::new("c.toml"), "[defaults.chat]\nendpoint = \"x\"\n").expect_err("unknown endpoint");
    assert!(e.to_string().contains("defaults.*.endpoint = \"x\" is not an endpoint"), "{e}");
}

#[test]
fn endpoints_aliases_defaults_and_redaction() {
    let text = r#"
default_endpoint = "w"
max_attachment_bytes = 10
[endpoints.w]
base_url = "https://u:pw-1@h/v1?key=k-2"
headers = { "X-Api-Key" = "plain", "X-Team" = "t" }
[aliases]
m = "model-1"
[defaults.embed]
model = "m"
"#;
    let config = parse(Path::new("c.toml"), text).expect("parses");
    assert_eq!(config.max_attachment_bytes, Some(10));
    assert_eq!(config.resolve_model(config.command(Some("embed")).model.expect("a model")), "model-1");
    assert!(config.command(None).model.is_none());
    let e = config.endpoint("x").expect_err("unknown");
    assert_eq!(e.to_string(), "unknown endpoint \"x\"; known endpoints: w");
    assert!(Config::default().endpoint("x").expect_err("none").to_string().contains("defines none"));
    let shown = config.redacted();
    let w = &shown.endpoints["w"];
    assert_eq!(w.headers["X-Api-Key"], "<redacted>");
    assert_eq!(w.headers["X-Team"], "t");
    let url = w.base_url.as_deref().expect("a url");
    assert!(!url.contains("pw-1") && !url.contains("k-2"), "{url}");
    assert!(is_secret_header("Cookie") && is_secret_header("x-auth-token") && !is_secret_header("X-Team"));
    assert_eq!(config.endpoints["w"].headers["X-Api-Key"], "plain", "redacted() copies");
}

#[test]
fn the_skeleton_is_a_valid_empty_config() {
    let config = parse(Path::new("s.toml"), SKELETON).expect("parses");
    assert!(config.endpoints.is_empty() && config.aliases.is_empty() && config.defaults.is_empty());
}
