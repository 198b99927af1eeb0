//! mamba-home's integration tests, through the public API only, in temporary folders: where
//! the files are, the config file and the precedence rule, the keys file's permission rules,
//! and the conversation log's schema, redaction and migrations.

mod config;
mod keys;
mod log;
mod paths;
mod settings;
