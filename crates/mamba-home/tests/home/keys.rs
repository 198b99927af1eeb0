//! The keys file: round trip, names, atomic replacement, and (on Unix) the permission rules.

use mamba_home::keys::{check_name, KeyFile};
use mamba_home::ErrorKind;
use secrecy::{ExposeSecret, SecretString};

fn key(text: &str) -> SecretString {
    SecretString::from(text.to_owned())
}

#[test]
fn set_get_list_remove() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let file = KeyFile::new(dir.path().join("data").join("keys.json"));
    assert!(file.names().expect("no file: no keys").is_empty());
    assert!(!file.remove("a").expect("nothing to remove"));
    assert!(!file.path().exists(), "removing nothing wrote the file");
    file.set("b", key("sk-b")).expect("saves");
    file.set("a", key("sk-a")).expect("saves");
    file.set("a", key("sk-a2")).expect("replaces");
    assert_eq!(file.names().expect("lists"), ["a", "b"]);
    assert_eq!(file.get("a").expect("reads").expose_secret(), "sk-a2");
    assert!(file.remove("a").expect("removes"));
    let e = file.get("a").expect_err("removed");
    assert_eq!(e.kind(), ErrorKind::NoKey);
    assert_eq!(e.to_string(), "no key named \"a\" is saved; save one with: mamba-llm keys set a");
    assert_eq!(file.set("a/b", key("x")).expect_err("a bad name").kind(), ErrorKind::KeyName);
    assert!(check_name("ok-1.x_y").is_ok());
    // Written whole: no temporary file stays beside it.
    let names: Vec<_> =
        std::fs::read_dir(dir.path().join("data")).expect("lists").map(|e| e.expect("an entry").file_name()).collect();
    assert_eq!(names, ["keys.json"]);
    // The Debug output of the file and of its keys holds no key.
    let shown = format!("{file:?} {:?}", file.load().expect("reads"));
    assert!(!shown.contains("sk-b"), "{shown}");
}

#[test]
fn a_broken_file_is_refused_without_quoting_it() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let file = KeyFile::new(dir.path().join("keys.json"));
    file.set("a", key("sk-a")).expect("saves");
    std::fs::write(file.path(), "{\"a\": sk-broken-1}").expect("writes");
    let e = file.get("a").expect_err("broken");
    assert_eq!(e.kind(), ErrorKind::Keys);
    assert!(e.to_string().contains("not a keys file (line 1, column 7)"), "{e}");
    assert!(!format!("{e} {e:?}").contains("sk-broken-1"));
}

#[cfg(unix)]
#[test]
fn unix_the_file_is_owner_only_and_a_readable_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temp folder");
    let file = KeyFile::new(dir.path().join("keys.json"));
    file.set("a", key("sk-one")).expect("saves");
    let mode = || std::fs::metadata(file.path()).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(), 0o600);
    for loose in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(loose)).expect("chmod");
        let e = file.get("a").expect_err("a readable file was used");
        assert_eq!(e.kind(), ErrorKind::Keys);
        let m = e.to_string();
        assert!(m.contains(&format!("(mode {loose:o})")) && m.contains("chmod 600") && !m.contains("sk-one"), "{m}");
        // Nothing is written over a refused file either.
        assert_eq!(file.set("b", key("x")).expect_err("refused").kind(), ErrorKind::Keys);
    }
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o400)).expect("chmod");
    assert_eq!(file.get("a").expect("owner-only is fine").expose_secret(), "sk-one");
    // Every save writes an owner-only file, whatever the umask.
    std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o600)).expect("chmod");
    file.save(&file.load().expect("reads")).expect("saves");
    assert_eq!(mode(), 0o600);
}
