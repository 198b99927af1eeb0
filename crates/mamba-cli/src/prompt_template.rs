//! Prompt templates (not to be confused with a model's chat template): a saved system message, prompt, model and options, applied with `chat -t NAME`
//! (or `-t FILE`). `templates/NAME.toml` in the config folder:
//!
//! ```toml
//! system = "You summarise text."
//! prompt = "Summarise in $lang: $input"
//! model = "gpt-4o-mini"
//! temperature = 0.2
//! max_tokens = 300
//! [defaults]
//! lang = "English"
//! ```
//!
//! `$input` is the prompt given to chat (argument or stdin); `$NAME` / `${NAME}` are parameters
//! from `-p NAME VALUE` or the template's `[defaults]`; `$$` is a `$`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::Deserialize;

use crate::error::CliError;
use crate::print::line;

/// A template file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Template {
    pub(crate) system: Option<String>,
    pub(crate) prompt: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) temperature: Option<f64>,
    pub(crate) max_tokens: Option<u32>,
    /// Request body fields, as `--extra`.
    #[serde(default)]
    pub(crate) extra: BTreeMap<String, toml::Value>,
    /// Parameter defaults.
    #[serde(default)]
    pub(crate) defaults: BTreeMap<String, String>,
}

/// `mamba-llm templates`.
#[derive(Debug, Args)]
pub(crate) struct TemplatesArgs {
    #[command(subcommand)]
    pub(crate) action: TemplatesAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TemplatesAction {
    /// List the saved templates.
    List,
    /// Print a template.
    Show {
        /// Its name or a file path.
        name: String,
    },
    /// Open a template in $VISUAL or $EDITOR (a new one starts from an example).
    Edit {
        /// Its name.
        name: String,
    },
    /// Print the templates folder.
    Path,
}

/// The templates folder.
pub(crate) fn templates_dir() -> Result<PathBuf, CliError> {
    Ok(crate::config::config_dir()?.join("templates"))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The file of template `name`: a path when it names an existing file or has a `/`, else
/// `NAME.toml` in the templates folder.
pub(crate) fn locate(name: &str) -> Result<PathBuf, CliError> {
    let as_path = Path::new(name);
    if name.contains('/') || as_path.is_file() {
        return Ok(as_path.to_owned());
    }
    if !valid_name(name) {
        return Err(CliError::Usage(format!("template name {name:?}: use letters, digits, '-', '_' and '.'")));
    }
    Ok(templates_dir()?.join(format!("{name}.toml")))
}

/// Loads template `name` (a name or a path).
pub(crate) fn load(name: &str) -> Result<Template, CliError> {
    let path = locate(name)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::Usage(format!(
                "no template {name:?} ({} does not exist); create it with: mamba-llm templates edit {name}",
                path.display()
            ))
        } else {
            CliError::Usage(format!("template {}: {e}", path.display()))
        }
    })?;
    parse(&path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Template, CliError> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_owned();
        match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                CliError::Usage(format!("{}:{line}:{col}: {message}", path.display()))
            }
            None => CliError::Usage(format!("{}: {message}", path.display())),
        }
    })
}

/// Replaces `$input`, `$NAME` and `${NAME}` in `text`; `$$` is `$`. An unknown parameter is a
/// usage error naming it.
pub(crate) fn substitute(text: &str, input: &str, params: &BTreeMap<String, String>) -> Result<String, CliError> {
    let mut out = String::with_capacity(text.len() + input.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => return Err(CliError::Usage(format!("template: an unclosed ${{ in {text:?}"))),
            }
        } else {
            let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        if name == "input" {
            out.push_str(input);
        } else {
            match params.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    return Err(CliError::Usage(format!(
                        "the template needs a value for ${name}: pass -p {name} VALUE (or give it in its [defaults])"
                    )))
                }
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

/// What applying a template gives chat (its model and options are read from it directly).
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub(crate) system: Option<String>,
    pub(crate) prompt: String,
    pub(crate) extra: Vec<(String, serde_json::Value)>,
}

impl Template {
    /// Fills the template with `input` and `-p` pairs (they override `[defaults]`).
    pub(crate) fn apply(&self, input: &str, pairs: &[(String, String)]) -> Result<Applied, CliError> {
        let mut params = self.defaults.clone();
        params.extend(pairs.iter().cloned());
        let prompt = match &self.prompt {
            Some(prompt) => substitute(prompt, input, &params)?,
            None => input.to_owned(),
        };
        let system = self.system.as_deref().map(|s| substitute(s, input, &params)).transpose()?;
        let extra = self
            .extra
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or(serde_json::Value::Null)))
            .collect();
        Ok(Applied { system, prompt, extra })
    }

    /// Whether the prompt uses `$input` (else chat needs no input).
    pub(crate) fn needs_input(&self) -> bool {
        self.prompt.as_deref().is_none_or(|p| p.contains("$input") || p.contains("${input}"))
    }
}

const EXAMPLE: &str = r#"# A mamba-llm template: mamba-llm chat -t NAME [-p KEY VALUE] [PROMPT]
# $input is the prompt (argument or stdin); $KEY comes from -p KEY VALUE or [defaults].
system = "You are a concise assistant."
prompt = "$input"
# model = "gpt-4o-mini"
# temperature = 0.2
# max_tokens = 500

[defaults]
# lang = "English"
"#;

/// What `templates` does: its flags resolved ([`TemplatesDo::from_flags`]), no clap type
/// below main.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplatesDo {
    /// List the saved templates.
    List,
    /// Print the template of this name or file.
    Show(String),
    /// Edit the template of this name.
    Edit(String),
    /// Print the templates folder.
    Path,
}

impl TemplatesDo {
    /// `templates`'s flags as what to do.
    pub(crate) fn from_flags(args: TemplatesArgs) -> TemplatesDo {
        match args.action {
            TemplatesAction::List => TemplatesDo::List,
            TemplatesAction::Show { name } => TemplatesDo::Show(name),
            TemplatesAction::Edit { name } => TemplatesDo::Edit(name),
            TemplatesAction::Path => TemplatesDo::Path,
        }
    }
}

/// `mamba-llm templates …`.
pub(crate) fn run(what: TemplatesDo) -> Result<(), CliError> {
    match what {
        TemplatesDo::List => {
            let dir = templates_dir()?;
            let mut names: Vec<String> = match std::fs::read_dir(&dir) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".toml")).map(str::to_owned))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(CliError::Io(format!("{}: {e}", dir.display()))),
            };
            names.sort();
            for name in names {
                line(&name)?;
            }
            Ok(())
        }
        TemplatesDo::Show(name) => {
            let path = locate(&name)?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CliError::Usage(format!("template {}: {e}", path.display())))?;
            parse(&path, &text)?;
            let mut out = std::io::stdout().lock();
            std::io::Write::write_all(&mut out, text.as_bytes())?;
            Ok(())
        }
        TemplatesDo::Edit(name) => {
            let path = locate(&name)?;
            if !path.exists() {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
                }
                std::fs::write(&path, EXAMPLE).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
            }
            crate::editor::edit(&path)?;
            let text = std::fs::read_to_string(&path).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
            parse(&path, &text).map(|_| ())
        }
        TemplatesDo::Path => line(&templates_dir()?.display().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn substitution() {
        let p = params(&[("lang", "French"), ("n", "3")]);
        assert_eq!(
            substitute("In $lang: $input ($n, ${n}x) $$5 a$ $", "hi", &p).expect("ok"),
            "In French: hi (3, 3x) $5 a$ $"
        );
        let e = substitute("$who", "", &p).expect_err("missing");
        assert!(matches!(&e, CliError::Usage(m) if m.contains("-p who VALUE")), "{e:?}");
        assert!(substitute("${x", "", &p).is_err());
    }

    #[test]
    fn apply_with_defaults_and_pairs() {
        let t = parse(
            Path::new("t.toml"),
            "system = \"Speak $lang.\"\nprompt = \"Translate: $input\"\ntemperature = 0.1\nextra = { top_k = 5 }\n[defaults]\nlang = \"German\"\n",
        )
        .expect("parses");
        let a = t.apply("cat", &[]).expect("applies");
        assert_eq!((a.system.as_deref(), a.prompt.as_str()), (Some("Speak German."), "Translate: cat"));
        assert_eq!(a.extra, vec![("top_k".to_owned(), serde_json::json!(5))]);
        let a = t.apply("cat", &[("lang".into(), "Dutch".into())]).expect("applies");
        assert_eq!(a.system.as_deref(), Some("Speak Dutch."));
        assert!(t.needs_input());
        let e = parse(Path::new("t.toml"), "prompt = 3\n").expect_err("bad");
        assert!(matches!(&e, CliError::Usage(m) if m.starts_with("t.toml:1:10")), "{e:?}");
    }
}
