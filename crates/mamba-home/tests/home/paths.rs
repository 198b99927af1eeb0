//! Where the files are, from the environment. The only test of this binary that changes the
//! process environment: all others name their files.

use mamba_home::paths::{config_dir, config_path, data_dir, keys_path, log_path};
use mamba_home::{Config, ErrorKind};

fn set(name: &str, value: Option<&std::path::Path>) {
    match value {
        Some(v) => std::env::set_var(name, v),
        None => std::env::remove_var(name),
    }
}

#[test]
fn folders_follow_the_environment_in_order() {
    let dir = tempfile::tempdir().expect("a temp folder");
    let home = dir.path().join("home");
    let vars = ["HOME", "USERPROFILE", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "MAMBA_CONFIG", "MAMBA_DATA_DIR"];
    for var in vars {
        set(var, None);
    }
    // No home at all: no folders, and the config is the built-in defaults.
    assert_eq!(config_dir().expect_err("no home").kind(), ErrorKind::NoHome);
    assert!(data_dir().expect_err("no home").to_string().contains("MAMBA_DATA_DIR"));
    assert!(Config::load().expect("defaults").endpoints.is_empty());

    set("HOME", Some(&home));
    assert_eq!(config_path().expect("a path"), home.join(".config/mamba/config.toml"));
    assert_eq!(keys_path().expect("a path"), home.join(".local/share/mamba/keys.json"));
    assert_eq!(log_path().expect("a path"), home.join(".local/share/mamba/logs.db"));

    set("XDG_CONFIG_HOME", Some(&dir.path().join("xc")));
    set("XDG_DATA_HOME", Some(&dir.path().join("xd")));
    assert_eq!(config_path().expect("a path"), dir.path().join("xc/mamba/config.toml"));
    assert_eq!(data_dir().expect("a path"), dir.path().join("xd/mamba"));

    let file = dir.path().join("my.toml");
    set("MAMBA_CONFIG", Some(&file));
    set("MAMBA_DATA_DIR", Some(&dir.path().join("data")));
    assert_eq!(config_path().expect("a path"), file);
    assert_eq!(config_dir().expect("a path"), dir.path().join("xc/mamba"), "templates stay in the config folder");
    assert_eq!(data_dir().expect("a path"), dir.path().join("data"));

    // Config::load reads $MAMBA_CONFIG; a broken file is an error naming it.
    std::fs::write(&file, "default_endpoint = \"a\"\n[endpoints.a]\nmodel = \"m\"\n").expect("writes");
    assert_eq!(Config::load().expect("loads").default_endpoint.as_deref(), Some("a"));
    std::fs::write(&file, "bogus = 1\n").expect("writes");
    let e = Config::load().expect_err("a broken file");
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().starts_with(&format!("{}:1:1: ", file.display())), "{e}");
    for var in vars {
        set(var, None);
    }
}
