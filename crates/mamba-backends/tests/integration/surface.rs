//! The public surface, frozen. The crate root holds the names an agent author needs every day
//! and the rest lives in topic modules; this module keeps it so:
//!
//! * every root name and every module's names are imported below, so removing or moving one
//!   fails to compile;
//! * `src/lib.rs` and the files of its public modules are read (with `syn`) and every public
//!   name (root `pub use`, `pub fn`, `pub struct`, …, `pub mod`, and each public module's own
//!   public items and re-exports, `cfg`-gated ones marked) is compared with the checked-in
//!   list `tests/public-surface.txt`, so adding one fails too;
//! * the methods are listed too: every file of `src/` is read and each `pub fn` of an inherent
//!   `impl` whose type is one of the public names becomes `Type::method`, and each item of a
//!   public trait `Trait::item` (`cfg`-gated ones marked, the impl's gate and the method's), so
//!   a raw `post_json` put back on `ModelBackend`, or Files/Batch methods back on the backend,
//!   fail as well. A type is matched by name, so a private type that shares a public one's name
//!   is listed with it (the list errs on the side of showing more).
//!
//! A deliberate change updates the list: `MAMBA_UPDATE_SURFACE=1 cargo test -p mamba-backends
//! --test integration surface`, then review and commit the diff of `tests/public-surface.txt`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

// The root: a removal or a move fails to compile here.
#[allow(unused_imports)]
use mamba_backends::{
    collect, create_lmstudio_backend, create_ollama_backend, create_vllm_backend, get_profile,
    get_profiles_by_provider, list_profiles, register_profile, schemars, BackendPool, Error, ErrorKind, Extract,
    ExtractMode, ExtractOptions, Extracted, FinishReason, Message, ModelBackend, ModelProfile, ModelResponse,
    OpenAICompatibleBackend, Preset, RequestOptions, ResponseFormat, RetryPolicy, StreamAccumulator, StreamChunk,
    ToolCall, ToolChoice, ToolDefinition, Usage,
};
// The modules and what each holds beyond the root.
#[cfg(feature = "rustls")]
#[allow(unused_imports)]
use mamba_backends::http::{AcceptAnyCertificate, Certificate, Identity};
#[cfg(feature = "reqwest")]
#[allow(unused_imports)]
use mamba_backends::transport::ReqwestTransport;
#[allow(unused_imports)]
use mamba_backends::{
    backend::{ChunkStream, OpenAICompatibleBackendBuilder},
    batches::{BatchJob, BatchJobError, BatchList, BatchStatus, Batches, FileDownload, FileObject, RequestCounts},
    embeddings::{Embedder, EmbeddingInput, EmbeddingOptions, Embeddings, EncodingFormat},
    health::{HealthReport, ModelInfo},
    http::{HttpClient, HttpClientBuilder, HttpResponse, Proxy},
    message::{Content, ContentPart, ImageDetail, ReasoningItem, Role},
    options::{ReasoningEffort, ReasoningSummary},
    pool::{BackendPoolBuilder, BreakerState},
    preset::{AuthStyle, EmbeddingSpec, FieldSupport, MaxTokensField, PresetSpec, Probe, StructuredOutput, WireApi},
    raw::{PostJson, RawResponse},
    redact::{looks_like_secret, redact_text, redact_url},
    stream::ToolCallDelta,
    structured::{
        attempts_of, complete_partial, parse_lenient, translate, Attempt, ExtractStream, ParseError, Partial, Repair,
        Repaired, Translated, Validator,
    },
    transport::{BodyStream, Transport, TransportRequest, TransportResponse},
};

/// The checked-in list, relative to the crate.
const SNAPSHOT: &str = "tests/public-surface.txt";

const HEADER: &str = "\
# The public names of mamba-backends: the crate root, then each public module's own names.
# Checked by tests/integration/surface.rs. To change the public surface on purpose, run
#   MAMBA_UPDATE_SURFACE=1 cargo test -p mamba-backends --test integration surface
# and commit this file's diff with the change.
";

#[test]
fn the_public_surface_is_the_checked_in_one() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let now = surface(&crate_dir.join("src"));
    let text = format!("{HEADER}{}\n", now.join("\n"));
    let path = crate_dir.join(SNAPSHOT);
    if std::env::var_os("MAMBA_UPDATE_SURFACE").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let before = std::fs::read_to_string(&path).unwrap_or_default();
    if before == text {
        return;
    }
    let before: BTreeSet<&str> = before.lines().filter(|l| !l.starts_with('#')).collect();
    let after: BTreeSet<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    let added: Vec<_> = after.difference(&before).collect();
    let removed: Vec<_> = before.difference(&after).collect();
    panic!(
        "the public surface of mamba-backends changed.\n  added: {added:?}\n  removed: {removed:?}\n\
         If this is deliberate, run `MAMBA_UPDATE_SURFACE=1 cargo test -p mamba-backends --test integration surface` \
         and commit {SNAPSHOT} with the change (and update the imports at the top of {}); otherwise undo it.",
        file!()
    );
}

/// Every public name of the root and of its public modules, one a line: `Name`, `mod name`,
/// `module::Name`, each followed by its `cfg` attributes when it has any.
fn surface(src: &Path) -> Vec<String> {
    let root = parse(&src.join("lib.rs"));
    let mut lines = Vec::new();
    let mut modules = Vec::new();
    for item in &root.items {
        let Some((names, attrs)) = public_names(item) else { continue };
        let cfg = cfg_of(attrs);
        if let syn::Item::Mod(m) = item {
            lines.push(format!("mod {}{cfg}", m.ident));
            if !hidden(attrs) && m.content.is_none() {
                modules.push((m.ident.to_string(), cfg));
            }
            continue;
        }
        lines.extend(names.into_iter().map(|n| format!("{n}{cfg}")));
    }
    lines.sort();
    for (module, module_cfg) in modules {
        let file = parse(&module_file(src, &module));
        let mut names: Vec<String> = Vec::new();
        for item in &file.items {
            let Some((found, attrs)) = public_names(item) else { continue };
            let cfg = format!("{module_cfg}{}", cfg_of(attrs));
            names.extend(found.into_iter().map(|n| format!("{module}::{n}{cfg}")));
        }
        names.sort();
        lines.extend(names);
    }
    lines.extend(methods(src, &lines));
    lines
}

/// `Type::method` for each `pub fn` of an inherent impl of a public type, and `Trait::item` for
/// each item of a public trait, in any file of `src/` (tests left out), sorted.
fn methods(src: &Path, names: &[String]) -> Vec<String> {
    let public: BTreeSet<String> = names
        .iter()
        .filter(|l| !l.starts_with("mod "))
        .map(|l| l.split("  #[").next().unwrap_or(l))
        .map(|l| l.rsplit("::").next().unwrap_or(l).to_owned())
        .collect();
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = Vec::new();
    for file in files {
        items_methods(&parse(&file).items, &public, "", &mut out);
    }
    out.sort();
    out.dedup();
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn items_methods(items: &[syn::Item], public: &BTreeSet<String>, outer_cfg: &str, out: &mut Vec<String>) {
    for item in items {
        match item {
            syn::Item::Impl(i) if i.trait_.is_none() => {
                let syn::Type::Path(ty) = &*i.self_ty else { continue };
                let Some(name) = ty.path.segments.last().map(|s| s.ident.to_string()) else { continue };
                if !public.contains(&name) {
                    continue;
                }
                let impl_cfg = format!("{outer_cfg}{}", cfg_of(&i.attrs));
                for member in &i.items {
                    if let syn::ImplItem::Fn(f) = member {
                        if is_pub(&f.vis) {
                            out.push(format!("{name}::{}{impl_cfg}{}", f.sig.ident, cfg_of(&f.attrs)));
                        }
                    }
                }
            }
            syn::Item::Trait(t) if is_pub(&t.vis) && public.contains(&t.ident.to_string()) => {
                let trait_cfg = format!("{outer_cfg}{}", cfg_of(&t.attrs));
                for member in &t.items {
                    let (ident, attrs) = match member {
                        syn::TraitItem::Fn(f) => (&f.sig.ident, &f.attrs),
                        syn::TraitItem::Const(c) => (&c.ident, &c.attrs),
                        syn::TraitItem::Type(ty) => (&ty.ident, &ty.attrs),
                        _ => continue,
                    };
                    out.push(format!("{}::{ident}{trait_cfg}{}", t.ident, cfg_of(attrs)));
                }
            }
            // Inline modules, but not the tests.
            syn::Item::Mod(m) => {
                let cfg = cfg_of(&m.attrs);
                if cfg.contains("cfg(test)") {
                    continue;
                }
                if let Some((_, inner)) = &m.content {
                    items_methods(inner, public, &format!("{outer_cfg}{cfg}"), out);
                }
            }
            _ => {}
        }
    }
}

fn parse(path: &Path) -> syn::File {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn module_file(src: &Path, module: &str) -> PathBuf {
    let flat = src.join(format!("{module}.rs"));
    if flat.exists() {
        flat
    } else {
        src.join(module).join("mod.rs")
    }
}

/// The names an item makes public (`pub` only, not `pub(crate)`), and its attributes.
fn public_names(item: &syn::Item) -> Option<(Vec<String>, &[syn::Attribute])> {
    use syn::Item;
    let (vis, attrs, name) = match item {
        Item::Use(u) => {
            let mut names = Vec::new();
            use_names(&u.tree, &mut names);
            return is_pub(&u.vis).then_some((names, &u.attrs[..]));
        }
        Item::Mod(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::Fn(i) => (&i.vis, &i.attrs, i.sig.ident.to_string()),
        Item::Struct(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::Enum(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::Trait(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::Type(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::Const(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::Static(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::Union(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::TraitAlias(i) => (&i.vis, &i.attrs, i.ident.to_string()),
        Item::Macro(i) => {
            let exported = i.attrs.iter().any(|a| a.path().is_ident("macro_export"));
            let name = i.ident.as_ref().map(|n| n.to_string());
            return match (exported, name) {
                (true, Some(name)) => Some((vec![format!("{name}!")], &i.attrs[..])),
                _ => None,
            };
        }
        _ => return None,
    };
    is_pub(vis).then(|| (vec![name], &attrs[..]))
}

fn is_pub(vis: &syn::Visibility) -> bool {
    matches!(vis, syn::Visibility::Public(_))
}

/// The names a `use` tree brings in (the last segment, or its `as` name; `*` for a glob).
fn use_names(tree: &syn::UseTree, out: &mut Vec<String>) {
    match tree {
        syn::UseTree::Path(p) => use_names(&p.tree, out),
        syn::UseTree::Name(n) => out.push(n.ident.to_string()),
        syn::UseTree::Rename(r) => out.push(r.rename.to_string()),
        syn::UseTree::Glob(_) => out.push("*".to_owned()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_names(t, out)),
    }
}

/// ` #[cfg(…)]` for each `cfg` attribute, in order.
fn cfg_of(attrs: &[syn::Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .filter_map(|a| match &a.meta {
            syn::Meta::List(list) => Some(format!("  #[cfg({})]", list.tokens)),
            _ => None,
        })
        .collect()
}

/// `#[doc(hidden)]`: not part of the public API (the benchmarks' entry points).
fn hidden(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("doc")
            && matches!(&a.meta, syn::Meta::List(list) if list.tokens.to_string().trim() == "hidden")
    })
}

#[test]
fn the_list_sees_what_it_should() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let now = surface(&crate_dir.join("src"));
    for expected in ["ModelBackend", "collect", "mod http", "http::HttpClient", "batches::Batches", "raw::PostJson"] {
        assert!(now.iter().any(|l| l == expected), "{expected} missing from {now:#?}");
    }
    assert!(
        now.iter().any(|l| l.starts_with("transport::ReqwestTransport  #[cfg(feature = \"reqwest\")]")),
        "{now:#?}"
    );
    assert!(now.iter().any(|l| l.starts_with("mod bench_api  #[cfg(feature = \"__bench\")]")), "{now:#?}");
    // Methods: inherent ones of public types (wherever their impl is) and trait items.
    for expected in ["ModelBackend::complete", "ModelBackend::as_post_json", "PostJson::post_json", "Message::user"] {
        assert!(now.iter().any(|l| l == expected), "{expected} missing from {now:#?}");
    }
    assert!(
        !now.iter().any(|l| l == "ModelBackend::post_json" || l == "OpenAICompatibleBackend::create_batch"),
        "{now:#?}"
    );
    // Nothing crate-private leaks into the list.
    assert!(!now.iter().any(|l| l.contains("openai_compat") || l.contains("Shared")), "{now:#?}");
}
