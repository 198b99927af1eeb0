//! No import cycles between the library's files. Every file under `src/` is read as tokens and
//! each path that starts with `crate::`, `super::` or `self::` (in a `use`, nested groups
//! included, or written out in code) becomes an edge from that file to the file of the module
//! it names; a `mod x;` declaration is not an edge. The test fails on any cycle in that graph
//! (two files that import each other, or a longer loop), naming the files, so a module always
//! has one direction: what it uses does not use it back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// Cycles known and not yet broken, each as its sorted list of files, with why. The list only
/// shrinks: a new cycle fails the test; a listed one that is gone fails it too (remove it).
const KNOWN_CYCLES: &[&[&str]] = &[
    // The benchmark entry points (`__bench` feature, doc-hidden) reach into the proxy parser,
    // which names a bench hook back. To break: move the hook into bench_api.rs. Not done in
    // issue 23's time box.
    &["bench_api.rs", "http/proxy.rs"],
    // The HTTP client and the Transport seam: http/body.rs streams a `transport::BodyStream`,
    // transport.rs implements `Transport` for `HttpClient` and re-exports the reqwest transport,
    // which uses `http::fmt_duration`. To break: `BodyStream` into http/, the `impl Transport
    // for HttpClient` into http/, fmt_duration into its own file. Not done in issue 23's time box.
    &["http/body.rs", "http/mod.rs", "transport.rs", "transport_reqwest.rs"],
    // The backend's struct and `Shared` state live in openai_compat/mod.rs, which publishes its
    // builder (builder.rs) and calls the Files/Batch handle (batches.rs); both import the struct
    // back. To break: the struct and `Shared` into their own file that mod.rs, builder.rs and
    // batches.rs all import. Not done in issue 23's time box.
    &["openai_compat/batches.rs", "openai_compat/builder.rs", "openai_compat/mod.rs"],
];

#[test]
fn no_two_library_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    let found = cycles(&graph);
    for known in KNOWN_CYCLES {
        assert!(
            found.iter().any(|c| known.iter().copied().eq(c.iter().map(String::as_str))),
            "the known cycle {known:?} is gone: remove it from KNOWN_CYCLES"
        );
    }
    let cycles: Vec<Vec<String>> = found
        .into_iter()
        .filter(|c| !KNOWN_CYCLES.iter().any(|k| k.iter().copied().eq(c.iter().map(String::as_str))))
        .collect();
    let described: Vec<String> = cycles
        .iter()
        .map(|files| {
            let edges: Vec<String> = files
                .iter()
                .flat_map(|a| graph[a].iter().filter(|b| files.contains(b)).map(move |b| format!("{a} -> {b}")))
                .collect();
            edges.join(", ")
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles between files of src/ (move the shared piece to the file that owns it, so \
         imports go one way):\n  {}",
        described.join("\n  ")
    );
}

#[test]
fn the_checker_sees_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a.rs".into()).or_default().insert("b.rs".into());
    graph.entry("b.rs".into()).or_default().insert("c.rs".into());
    graph.entry("c.rs".into()).or_default().insert("a.rs".into());
    graph.entry("d.rs".into()).or_default().insert("a.rs".into());
    assert_eq!(cycles(&graph), vec![vec!["a.rs".to_owned(), "b.rs".into(), "c.rs".into()]]);
    // And the real graph has the edges it should: a `use crate::…` group and a `super::` path.
    let graph = graph_of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph["pool.rs"].contains("error.rs"), "{:?}", graph["pool.rs"]);
    assert!(graph["openai_compat/chat_answer.rs"].contains("openai_compat/wire.rs"), "{graph:#?}");
}

fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    graph_of(src)
}

/// File (relative to `src/`) -> the files it imports from.
fn graph_of(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut parsed = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap();
        let tokens = TokenStream::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e:?}"));
        let module = module_of(&rel);
        let mut paths = Vec::new();
        scan(tokens, &module, &mut paths);
        parsed.push((rel, paths));
    }
    // What each file's `use` items bind: a path through a re-export (`crate::Error`, `super::X`
    // of a `mod.rs` facade) is followed to the file that defines the name.
    let mut binds: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for (rel, paths) in &parsed {
        let map = binds.entry(rel.clone()).or_default();
        for (path, bound) in paths {
            if let Some(name) = bound {
                map.insert(name.clone(), path.clone());
            }
        }
    }
    let mut graph = BTreeMap::new();
    for (rel, paths) in parsed {
        let mut targets = BTreeSet::new();
        for (path, _) in paths {
            if let Some(target) = defining_file(src, &binds, path) {
                if target != rel {
                    targets.insert(target);
                }
            }
        }
        graph.insert(rel, targets);
    }
    graph
}

/// The file of `path`, following `use` re-exports of the file it lands in.
fn defining_file(
    src: &Path,
    binds: &BTreeMap<String, BTreeMap<String, Vec<String>>>,
    mut path: Vec<String>,
) -> Option<String> {
    for _ in 0..16 {
        let file = file_of(src, &path)?;
        let depth = module_of(&file).len();
        let next = path.get(depth).and_then(|name| binds.get(&file)?.get(name));
        match next {
            Some(target) if !target.is_empty() => {
                let mut followed = target.clone();
                followed.extend(path[depth + 1..].iter().cloned());
                if followed == path {
                    return Some(file);
                }
                path = followed;
            }
            _ => return Some(file),
        }
    }
    None
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `openai_compat/wire.rs` -> `["openai_compat", "wire"]`; `lib.rs` -> `[]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Collects the absolute module paths named by `crate::`/`super::`/`self::` paths in `tokens`,
/// `module` being the module the tokens are in (inline `mod x { … }` extends it).
fn scan(tokens: TokenStream, module: &[String], out: &mut Vec<Found>) {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            TokenTree::Ident(id) if *id == "mod" => {
                if let (Some(TokenTree::Ident(name)), Some(TokenTree::Group(g))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    if g.delimiter() == Delimiter::Brace {
                        let mut inner = module.to_vec();
                        inner.push(name.to_string());
                        scan(g.stream(), &inner, out);
                        i += 3;
                        continue;
                    }
                }
            }
            TokenTree::Ident(id)
                if matches!(id.to_string().as_str(), "crate" | "super" | "self") && is_sep(&tokens, i + 1) =>
            {
                // Not the tail of a longer path (`a::self`): the token before is not `::`.
                let after_sep = i >= 2 && is_sep(&tokens, i - 2);
                if !after_sep {
                    i = path(&tokens, i, Vec::new(), module, out);
                    continue;
                }
            }
            // A path from a child module of this one (`use message::Role;` in a `mod.rs`).
            TokenTree::Ident(_) if is_sep(&tokens, i + 1) && !(i >= 2 && is_sep(&tokens, i - 2)) => {
                i = path(&tokens, i, Vec::new(), module, out);
                continue;
            }
            TokenTree::Group(g) => scan(g.stream(), module, out),
            _ => {}
        }
        i += 1;
    }
}

/// `::` at `i`.
fn is_sep(tokens: &[TokenTree], i: usize) -> bool {
    matches!((tokens.get(i), tokens.get(i + 1)), (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':')
}

/// Reads the path starting at `i` (after `prefix`), records it, and returns the index after it.
/// A `{ … }` group continues the path with each of its comma-separated trees.
fn path(tokens: &[TokenTree], mut i: usize, mut prefix: Vec<String>, module: &[String], out: &mut Vec<Found>) -> usize {
    let in_use = in_use(tokens, i);
    loop {
        match tokens.get(i) {
            Some(TokenTree::Ident(id)) => prefix.push(id.to_string()),
            Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Brace => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                for tree in inner.split(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ',')) {
                    if !tree.is_empty() {
                        path(tree, 0, prefix.clone(), module, out);
                    }
                }
                return i + 1;
            }
            _ => break,
        }
        if is_sep(tokens, i + 1) {
            i += 3;
        } else {
            i += 1;
            break;
        }
    }
    let mut bound = prefix.last().cloned();
    if let Some(TokenTree::Ident(k)) = tokens.get(i) {
        if *k == "as" {
            bound = tokens.get(i + 1).map(ToString::to_string);
        }
    }
    if let Some(absolute) = resolve(&prefix, module) {
        out.push((absolute, if in_use { bound.filter(|b| b != "self" && b != "_") } else { None }));
    }
    i
}

/// A path found, and the name it binds when it is (part of) a `use` item.
type Found = (Vec<String>, Option<String>);

/// Whether the path starting at `i` is the tree of a `use` item (`use` or `pub use` before it,
/// or, inside a `{ … }` group, the caller already was one).
fn in_use(tokens: &[TokenTree], i: usize) -> bool {
    i == 0 || matches!(tokens.get(i.wrapping_sub(1)), Some(TokenTree::Ident(k)) if *k == "use")
}

/// The absolute path (from the crate root) of `path` written in `module`.
fn resolve(path: &[String], module: &[String]) -> Option<Vec<String>> {
    let mut at: Vec<String> = module.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            at.clear();
            rest = &rest[1..];
        }
        Some("self" | "super") => {}
        Some(_) => {
            // Relative: only when it names a child module of `module` (not `std::…`).
            let mut child = module.to_vec();
            child.push(path[0].clone());
            let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
            let joined = child.join("/");
            if !src.join(format!("{joined}.rs")).is_file() && !src.join(format!("{joined}/mod.rs")).is_file() {
                return None;
            }
        }
        None => return None,
    }
    while let Some(first) = rest.first() {
        match first.as_str() {
            "self" => {}
            "super" => {
                at.pop()?;
            }
            _ => break,
        }
        rest = &rest[1..];
    }
    at.extend(rest.iter().cloned());
    Some(at)
}

/// The file that holds the longest prefix of `path` that is a file module.
fn file_of(src: &Path, path: &[String]) -> Option<String> {
    for len in (0..=path.len()).rev() {
        let parts = &path[..len];
        if parts.is_empty() {
            return Some("lib.rs".to_owned());
        }
        let joined = parts.join("/");
        for candidate in [format!("{joined}.rs"), format!("{joined}/mod.rs")] {
            if src.join(&candidate).is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// The strongly connected components of more than one file, each sorted (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}
