//! Imports run downward only: no circular imports between modules.
//!
//! For each crate of the workspace (`keygate` in `core/src`, and each adapter in
//! `adapters/<framework>/src`), this test builds the module tree from the source files
//! (`lib.rs` is the root, `foo.rs` or `foo/mod.rs` is `foo`, `foo/bar.rs` is `foo::bar`),
//! reads every path that names the crate's own modules (`crate::…`, `super::…`, `self::…`,
//! in `use` declarations, `pub use` re-exports and inline in expressions and types, with
//! grouped imports expanded) and maps it to the deepest module it names.
//!
//! A cycle is judged between siblings: an import from `a::x` to `b::y` is a dependency of
//! `a` on `b`, the children of their common ancestor. A module naming its own ancestor or
//! descendant is not a sibling dependency (a parent declares and re-exports its children;
//! the root re-exports everything). Siblings that depend on each other, directly or
//! around a longer loop, form a circular group: neither can be understood, tested or moved
//! without the other, and the layering the module map describes is gone. The test fails
//! on any circular group and prints one file-level example per dependency so it can be
//! fixed.
//!
//! It also prints the imports that go through the crate root (`crate::Error` in a module
//! rather than `crate::error::Error`): not a failure, but such an import hides which
//! module it really depends on, so it can hide a cycle.
//!
//! Code that only exists for tests (`#[cfg(test)]` items such as `mod tests { … }`) and
//! `$crate::` paths in `macro_rules!` bodies (they expand in other crates) are ignored.
//! The checker reads files, not the compiler's view: it needs no update when modules move.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// A module's path below its crate root: `[]` is the root (`lib.rs`), `["session",
/// "store"]` is `session::store`.
type ModPath = Vec<String>;

/// One source file of a crate.
struct SourceFile {
    /// The module the file is.
    module: ModPath,
    /// The file's path as reports show it (relative to the workspace root).
    display: String,
    text: String,
}

/// A path found in a source file; grouped imports are expanded into one path each.
#[derive(Debug, Clone, PartialEq)]
struct FoundPath {
    /// The inline modules (`mod name { … }`) the path sits in, outermost first.
    scope: Vec<String>,
    /// The segments as written: starting with `crate`, `super` or `self`, or (in `use`
    /// only) with a name that may be a child module.
    segments: Vec<String>,
    /// The name the path brings into scope in a `use` (its alias or last segment).
    name: String,
    line: usize,
}

/// What one source file contributes.
#[derive(Debug, Default)]
struct Extracted {
    paths: Vec<FoundPath>,
    /// Modules declared as `#[cfg(test)] mod name;`, relative to the file's module.
    test_modules: Vec<Vec<String>>,
    /// The file starts with `#![cfg(test)]`.
    test_only: bool,
}

/// Where an import was written.
#[derive(Debug, Clone)]
struct Example {
    file: String,
    line: usize,
    path: String,
}

impl std::fmt::Display for Example {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{} `{}`", self.file, self.line, self.path)
    }
}

/// A module naming an item re-exported at the crate root (`crate::Error`).
#[derive(Debug)]
struct RootImport {
    module: ModPath,
    item: String,
    /// The module the root re-exports the item from, if it is one of the crate's.
    origin: Option<ModPath>,
    example: Example,
}

/// Siblings (children of `parent`) that import each other, directly or around a loop.
#[derive(Debug)]
struct Cycle {
    parent: ModPath,
    members: Vec<String>,
    /// Each dependency inside the group: from, to, one example, how many imports.
    dependencies: Vec<(String, String, Example, usize)>,
}

/// The result for one crate.
struct Report {
    crate_name: String,
    modules: usize,
    /// Distinct module-to-module imports, with every place they are written.
    edges: BTreeMap<(ModPath, ModPath), Vec<Example>>,
    root_imports: Vec<RootImport>,
    cycles: Vec<Cycle>,
}

// ---------------------------------------------------------------------------------------
// Reading the sources
// ---------------------------------------------------------------------------------------

/// The crates to check: the core and each adapter that exists, with their `src` dirs.
fn crate_roots() -> Vec<(String, PathBuf)> {
    let core = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = vec![(package_name(core), core.join("src"))];
    if let Ok(entries) = fs::read_dir(core.join("../adapters")) {
        let mut adapters: Vec<PathBuf> = entries
            .filter_map(|entry| Some(entry.ok()?.path()))
            .filter(|dir| dir.join("src/lib.rs").is_file())
            .collect();
        adapters.sort();
        roots.extend(
            adapters
                .into_iter()
                .map(|dir| (package_name(&dir), dir.join("src"))),
        );
    }
    roots
}

/// The package name in `dir/Cargo.toml`, else the directory's name.
fn package_name(dir: &Path) -> String {
    let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
    manifest
        .lines()
        .find_map(|line| {
            let value = line
                .trim()
                .strip_prefix("name")?
                .trim_start()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| dir.file_name().unwrap().to_string_lossy().into_owned())
}

/// Every `.rs` file under `src`, as the module its path makes it.
fn load_crate(src: &Path, workspace: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    collect_rust_files(src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|path| {
            let module = module_path(path.strip_prefix(src).unwrap())?;
            let display = path.strip_prefix(workspace).unwrap_or(&path);
            Some(SourceFile {
                module,
                display: display.to_string_lossy().replace('\\', "/"),
                text: fs::read_to_string(&path).expect("a readable source file"),
            })
        })
        .collect()
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a readable source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The module a file is, from its path below `src`: `lib.rs` is the root, `a/mod.rs`
/// and `a.rs` are `a`, `a/b.rs` is `a::b`. `main.rs` and `bin/` are other crates: `None`.
fn module_path(relative: &Path) -> Option<ModPath> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|part| part.as_os_str().to_string_lossy().into_owned())
        .collect();
    let stem = parts.pop()?.strip_suffix(".rs")?.to_owned();
    match (parts.first().map(String::as_str), stem.as_str()) {
        (Some("bin"), _) | (None, "main") => None,
        (None, "lib") | (_, "mod") => Some(parts),
        _ => {
            parts.push(stem);
            Some(parts)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsing one file
// ---------------------------------------------------------------------------------------

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn is_ident(token: &str) -> bool {
    token.starts_with(|c: char| c == '_' || c.is_alphabetic())
}

/// The source with comments (line, doc and nested block comments) removed and every
/// string, raw string and char literal emptied. Newlines are kept, so lines still count.
fn strip_comments_and_strings(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = String::with_capacity(source.len());
    // Keeps the newlines of a skipped region.
    let keep_lines = |out: &mut String, from: usize, to: usize| {
        let end = to.min(chars.len());
        out.extend(chars[from.min(end)..end].iter().filter(|&&c| c == '\n'));
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let after_ident = i > 0 && is_ident_char(chars[i - 1]);
        if c == '/' && at(i + 1) == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == Some('*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == Some('/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_lines(&mut out, start, i);
        } else if let Some((hashes, quote)) = raw_string_start(&chars, i).filter(|_| !after_ident) {
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let end = (quote + 1..chars.len())
                .find(|&j| chars[j..].starts_with(&closing))
                .map_or(chars.len(), |j| j + closing.len());
            out.push_str("\"\"");
            keep_lines(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
            keep_lines(&mut out, start, i);
        } else if c == '\'' && at(i + 1) == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{1F600}'.
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if c == '\'' && at(i + 2) == Some('\'') {
            // A plain char literal such as '"'; a lifetime ('a, 'static) is left as it is.
            i += 3;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// At a raw string (`r"…"`, `r#"…"#`, `br"…"`, `cr"…"`): the number of `#` and the index
/// of the opening quote.
fn raw_string_start(chars: &[char], i: usize) -> Option<(usize, usize)> {
    let r = if matches!(chars.get(i), Some('b' | 'c')) {
        i + 1
    } else {
        i
    };
    if chars.get(r) != Some(&'r') {
        return None;
    }
    let hashes = chars[r + 1..].iter().take_while(|&&c| c == '#').count();
    let quote = r + 1 + hashes;
    (chars.get(quote) == Some(&'"')).then_some((hashes, quote))
}

/// A token of stripped source: an identifier (keywords and `$crate` included), `::`, or
/// one other character; with its line.
#[derive(Debug)]
struct Token {
    text: String,
    line: usize,
}

fn tokenize(code: &str) -> Vec<Token> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            line += usize::from(c == '\n');
            i += 1;
            continue;
        }
        let mut start = i;
        if c == 'r'
            && chars.get(i + 1) == Some(&'#')
            && chars.get(i + 2).is_some_and(|&n| is_ident_char(n))
        {
            start += 2; // a raw identifier, r#type
            i += 2;
        }
        if is_ident_char(chars[i])
            || (chars[i] == '$' && chars.get(i + 1).is_some_and(|&n| is_ident_char(n)))
        {
            i += 1;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
        }
        tokens.push(Token {
            text: chars[start..i].iter().collect(),
            line,
        });
    }
    tokens
}

/// The paths a file names, the test-only modules it declares, and whether it is
/// test-only itself.
fn extract(source: &str) -> Extracted {
    let tokens = tokenize(&strip_comments_and_strings(source));
    let text = |i: usize| tokens.get(i).map_or("", |t| t.text.as_str());
    let mut found = Extracted::default();
    // The inline modules we are in, with the brace depth of their bodies.
    let mut scope: Vec<(String, usize)> = Vec::new();
    let mut depth: usize = 0;
    let mut i = 0;
    while i < tokens.len() {
        if text(i) == "#" && text(i + 1) == "!" && cfg_test_end(&tokens, i + 2).is_some() {
            found.test_only = true;
            return found;
        }
        if let Some(after) = (text(i) == "#")
            .then(|| cfg_test_end(&tokens, i + 1))
            .flatten()
        {
            let (end, test_module) = skip_item(&tokens, after);
            if let Some(name) = test_module {
                let mut module: Vec<String> = scope.iter().map(|(name, _)| name.clone()).collect();
                module.push(name);
                found.test_modules.push(module);
            }
            i = end;
            continue;
        }
        // A `use` tree, or (anywhere) a path starting with `crate::`, `super::` or `self::`.
        let path_start = match text(i) {
            "use" => Some(i + 1),
            "crate" | "super" | "self"
                if text(i + 1) == "::" && (i == 0 || text(i - 1) != "::") =>
            {
                Some(i)
            }
            _ => None,
        };
        if let Some(start) = path_start {
            let (paths, end) = parse_tree(&tokens, start);
            let names: Vec<String> = scope.iter().map(|(name, _)| name.clone()).collect();
            found
                .paths
                .extend(paths.into_iter().map(|(segments, name)| FoundPath {
                    scope: names.clone(),
                    segments,
                    name,
                    line: tokens[i].line,
                }));
            i = end.max(i + 1);
            continue;
        }
        match text(i) {
            "{" => depth += 1,
            "}" => {
                if scope.last().is_some_and(|&(_, body)| body == depth) {
                    scope.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "mod" if is_ident(text(i + 1)) && text(i + 2) == "{" => {
                scope.push((text(i + 1).to_owned(), depth + 1));
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// At the `[` of a test-only attribute, `[cfg(test)]` or `[cfg(all(test, …))]`: the
/// index after its `]`.
fn cfg_test_end(tokens: &[Token], open: usize) -> Option<usize> {
    let text = |i: usize| tokens.get(i).map_or("", |t| t.text.as_str());
    if text(open) != "[" || text(open + 1) != "cfg" || text(open + 2) != "(" {
        return None;
    }
    let close = matching_close(tokens, open);
    let predicate: Vec<&str> = tokens[open + 3..close - 1]
        .iter()
        .map(|t| t.text.as_str())
        .collect();
    let test_only = match predicate.as_slice() {
        ["test"] => true,
        ["all", "(", arguments @ .., ")"] => {
            // `test` as one of `all`'s own arguments, not nested in `any` or `not`.
            let mut depth = 0;
            arguments.iter().any(|&t| {
                depth += i32::from(t == "(") - i32::from(t == ")");
                depth == 0 && t == "test"
            })
        }
        _ => false,
    };
    test_only.then_some(close + 1)
}

/// Skips the item after a `#[cfg(test)]` (its other attributes, then up to its `;` or
/// through its `{ … }` body). Returns where it ends and, for `mod name;`, the name.
fn skip_item(tokens: &[Token], mut i: usize) -> (usize, Option<String>) {
    let text = |i: usize| tokens.get(i).map_or("", |t| t.text.as_str());
    while text(i) == "#" && text(i + 1) == "[" {
        i = matching_close(tokens, i + 1) + 1;
    }
    let mut head = i;
    if text(head) == "pub" {
        head += 1;
        if text(head) == "(" {
            head = matching_close(tokens, head) + 1;
        }
    }
    let test_module = (text(head) == "mod" && is_ident(text(head + 1)) && text(head + 2) == ";")
        .then(|| text(head + 1).to_owned());
    let mut depth = 0;
    while i < tokens.len() {
        match text(i) {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" if depth == 0 => break, // the enclosing block ends: not ours
            ")" | "]" => depth -= 1,
            "}" => {
                depth -= 1;
                if depth == 0 {
                    return (i + 1, test_module);
                }
            }
            ";" if depth == 0 => return (i + 1, test_module),
            _ => {}
        }
        i += 1;
    }
    (i, test_module)
}

/// The index of the bracket closing the one at `open`.
fn matching_close(tokens: &[Token], open: usize) -> usize {
    let mut depth = 0;
    for (i, token) in tokens.iter().enumerate().skip(open) {
        match token.text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    tokens.len()
}

/// Parses a path or a `use` tree at `tokens[i]`, expanding groups: `crate::{a::X, b::{c,
/// self}}` gives `crate::a::X`, `crate::b::c` and `crate::b`. A path ends before generic
/// arguments (`crate::Result<T>`, `f::<T>`). Returns each path with the name it brings
/// into scope, and the index after the tree.
fn parse_tree(tokens: &[Token], mut i: usize) -> (Vec<(Vec<String>, String)>, usize) {
    let text = |i: usize| tokens.get(i).map_or("", |t| t.text.as_str());
    let mut prefix: Vec<String> = Vec::new();
    loop {
        match text(i) {
            "{" => {
                let mut expanded = Vec::new();
                i += 1;
                while i < tokens.len() && text(i) != "}" {
                    if text(i) == "," {
                        i += 1;
                        continue;
                    }
                    let (inner, end) = parse_tree(tokens, i);
                    for (segments, name) in inner {
                        if segments == ["self"] {
                            let name = if name == "self" {
                                prefix.last().cloned().unwrap_or_default()
                            } else {
                                name
                            };
                            expanded.push((prefix.clone(), name));
                        } else {
                            expanded.push(([prefix.clone(), segments].concat(), name));
                        }
                    }
                    i = end.max(i + 1);
                }
                return (expanded, i + 1);
            }
            "*" if !prefix.is_empty() => return (vec![(prefix, "*".to_owned())], i + 1),
            segment if is_ident(segment) => {
                prefix.push(segment.to_owned());
                i += 1;
                if text(i) == "::" && text(i + 1) != "<" {
                    i += 1;
                    continue;
                }
                let mut name = segment.to_owned();
                if text(i) == "as" && is_ident(text(i + 1)) {
                    name = text(i + 1).to_owned();
                    i += 2;
                }
                return (vec![(prefix, name)], i);
            }
            _ => {
                let name = prefix.last().cloned().unwrap_or_default();
                let paths = if prefix.is_empty() {
                    Vec::new()
                } else {
                    vec![(prefix, name)]
                };
                return (paths, i);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Resolving paths to modules
// ---------------------------------------------------------------------------------------

/// The absolute path (from the crate root) that `segments`, written in `module` inside the
/// inline modules `scope`, names; `None` if it is not the crate's own (another crate, or
/// `super` above the root).
fn resolve(
    module: &[String],
    scope: &[String],
    segments: &[String],
    modules: &BTreeSet<ModPath>,
) -> Option<Vec<String>> {
    let mut here: Vec<String> = module.iter().chain(scope).cloned().collect();
    let mut rest = segments;
    match rest.first()?.as_str() {
        "crate" => {
            here.clear();
            rest = &rest[1..];
        }
        "self" => rest = &rest[1..],
        "super" => {}
        child => {
            // `use child::…` names a child module, or something that is not a module.
            if !modules.contains(&[here.as_slice(), &[child.to_owned()]].concat()) {
                return None;
            }
        }
    }
    while rest.first().is_some_and(|segment| segment == "super") {
        here.pop()?;
        rest = &rest[1..];
    }
    here.extend(rest.iter().cloned());
    Some(here)
}

/// The deepest module that `path` starts with (the root if none).
fn owning_module(path: &[String], modules: &BTreeSet<ModPath>) -> ModPath {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
        .unwrap_or_default()
}

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_owned()
    } else {
        module.join("::")
    }
}

// ---------------------------------------------------------------------------------------
// The graph
// ---------------------------------------------------------------------------------------

fn analyze(crate_name: &str, files: &[SourceFile]) -> Report {
    let extracted: Vec<Extracted> = files.iter().map(|file| extract(&file.text)).collect();

    // Modules that exist only for tests are not part of the graph.
    let mut test_only: Vec<ModPath> = Vec::new();
    for (file, found) in files.iter().zip(&extracted) {
        if found.test_only {
            test_only.push(file.module.clone());
        }
        test_only.extend(
            found
                .test_modules
                .iter()
                .map(|m| [file.module.clone(), m.clone()].concat()),
        );
    }
    let modules: BTreeSet<ModPath> = files
        .iter()
        .map(|file| file.module.clone())
        .filter(|module| !test_only.iter().any(|t| module.starts_with(t)))
        .chain([ModPath::new()])
        .collect();

    // Each reference, resolved: (file, path, the module it names, the absolute path).
    let mut references = Vec::new();
    for (file, found) in files.iter().zip(&extracted) {
        if !modules.contains(&file.module) {
            continue;
        }
        for path in &found.paths {
            if let Some(absolute) = resolve(&file.module, &path.scope, &path.segments, &modules) {
                let target = owning_module(&absolute, &modules);
                references.push((file, path, target, absolute));
            }
        }
    }

    // What the root re-exports, by name: `pub use error::{Error, Result}`.
    let origins: BTreeMap<&str, &ModPath> = references
        .iter()
        .filter(|(file, _, target, _)| file.module.is_empty() && !target.is_empty())
        .map(|(_, path, target, _)| (path.name.as_str(), target))
        .collect();

    let mut edges: BTreeMap<(ModPath, ModPath), Vec<Example>> = BTreeMap::new();
    let mut root_imports = Vec::new();
    for (file, path, target, absolute) in &references {
        let example = Example {
            file: file.display.clone(),
            line: path.line,
            path: path.segments.join("::"),
        };
        if target.is_empty() && !file.module.is_empty() {
            let item = absolute.first().cloned().unwrap_or_else(|| "*".to_owned());
            root_imports.push(RootImport {
                module: file.module.clone(),
                origin: origins.get(item.as_str()).map(|&m| m.clone()),
                item,
                example: example.clone(),
            });
        }
        if *target != file.module {
            edges
                .entry((file.module.clone(), target.clone()))
                .or_default()
                .push(example);
        }
    }

    Report {
        crate_name: crate_name.to_owned(),
        modules: modules.len(),
        cycles: sibling_cycles(&edges),
        edges,
        root_imports,
    }
}

/// The imports between siblings, by parent: an import from `p::a::…` to `p::b::…` is a
/// dependency of `a` on `b` under `p`. Imports of an ancestor or descendant are left out.
fn sibling_dependencies(
    edges: &BTreeMap<(ModPath, ModPath), Vec<Example>>,
) -> BTreeMap<ModPath, BTreeMap<(String, String), Vec<Example>>> {
    let mut by_parent: BTreeMap<ModPath, BTreeMap<(String, String), Vec<Example>>> =
        BTreeMap::new();
    for ((from, to), examples) in edges {
        let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
        if common == from.len() || common == to.len() {
            continue;
        }
        by_parent
            .entry(from[..common].to_vec())
            .or_default()
            .entry((from[common].clone(), to[common].clone()))
            .or_default()
            .extend(examples.iter().cloned());
    }
    by_parent
}

/// The groups of siblings that depend on each other, with their dependencies.
fn sibling_cycles(edges: &BTreeMap<(ModPath, ModPath), Vec<Example>>) -> Vec<Cycle> {
    let mut cycles = Vec::new();
    for (parent, dependencies) in sibling_dependencies(edges) {
        let names: Vec<&String> = dependencies
            .keys()
            .flat_map(|(a, b)| [a, b])
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let index = |name: &String| names.binary_search(&name).unwrap();
        let mut adjacency = vec![Vec::new(); names.len()];
        for (from, to) in dependencies.keys() {
            adjacency[index(from)].push(index(to));
        }
        for component in strongly_connected(&adjacency) {
            if component.len() < 2 {
                continue;
            }
            let mut members: Vec<String> = component.iter().map(|&n| names[n].clone()).collect();
            members.sort();
            let dependencies = dependencies
                .iter()
                .filter(|((from, to), _)| members.contains(from) && members.contains(to))
                .map(|((from, to), examples)| {
                    (
                        from.clone(),
                        to.clone(),
                        examples[0].clone(),
                        examples.len(),
                    )
                })
                .collect();
            cycles.push(Cycle {
                parent: parent.clone(),
                members,
                dependencies,
            });
        }
    }
    cycles
}

/// Tarjan's strongly connected components of a graph given as adjacency lists.
fn strongly_connected(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    struct Tarjan<'a> {
        adjacency: &'a [Vec<usize>],
        next: usize,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        components: Vec<Vec<usize>>,
    }
    impl Tarjan<'_> {
        fn visit(&mut self, v: usize) {
            self.index[v] = Some(self.next);
            self.low[v] = self.next;
            self.next += 1;
            self.stack.push(v);
            self.on_stack[v] = true;
            let adjacency = self.adjacency;
            for &w in &adjacency[v] {
                match self.index[w] {
                    None => {
                        self.visit(w);
                        self.low[v] = self.low[v].min(self.low[w]);
                    }
                    Some(w_index) if self.on_stack[w] => self.low[v] = self.low[v].min(w_index),
                    Some(_) => {}
                }
            }
            if self.index[v] == Some(self.low[v]) {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                self.components.push(component);
            }
        }
    }
    let n = adjacency.len();
    let mut tarjan = Tarjan {
        adjacency,
        next: 0,
        index: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on_stack: vec![false; n],
        components: Vec::new(),
    };
    for v in 0..n {
        if tarjan.index[v].is_none() {
            tarjan.visit(v);
        }
    }
    tarjan.components
}

// ---------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------

fn describe_cycle(cycle: &Cycle) -> String {
    let parent = show(&cycle.parent);
    let mut text = if cycle.members.len() == 2 {
        format!("under `{parent}`: {}", cycle.members.join(" <-> "))
    } else {
        // A longer loop: name the pairs that import each other directly, the first to cut.
        let has = |from: &str, to: &str| {
            cycle
                .dependencies
                .iter()
                .any(|(f, t, _, _)| f == from && t == to)
        };
        let pairs: Vec<String> = cycle
            .dependencies
            .iter()
            .filter(|(from, to, _, _)| from < to && has(to, from))
            .map(|(from, to, _, _)| format!("{from} <-> {to}"))
            .collect();
        format!(
            "under `{parent}`: {} siblings in one loop: {}; two-way pairs: {}",
            cycle.members.len(),
            cycle.members.join(", "),
            if pairs.is_empty() {
                "none".to_owned()
            } else {
                pairs.join(", ")
            }
        )
    };
    for (from, to, example, count) in &cycle.dependencies {
        let more = if *count > 1 {
            format!(" (+{} more)", count - 1)
        } else {
            String::new()
        };
        text.push_str(&format!("\n        {from} -> {to}: {example}{more}"));
    }
    text
}

fn print_report(report: &Report, src: &str) {
    println!(
        "== {} ({src}): {} modules, {} distinct module-to-module imports, {} circular groups",
        report.crate_name,
        report.modules,
        report.edges.len(),
        report.cycles.len()
    );
    for (n, cycle) in report.cycles.iter().enumerate() {
        println!("    cycle {}: {}", n + 1, describe_cycle(cycle));
    }
    if report.root_imports.is_empty() {
        return;
    }
    // One line per root item: who names it (module and line).
    let mut by_item: BTreeMap<(&str, String), Vec<String>> = BTreeMap::new();
    for import in &report.root_imports {
        let origin = import.origin.as_deref().map_or_else(
            || "not re-exported from a module".to_owned(),
            |origin| format!("from {}", show(origin)),
        );
        let user = format!("{}:{}", show(&import.module), import.example.line);
        let users = by_item.entry((import.item.as_str(), origin)).or_default();
        if !users.contains(&user) {
            users.push(user);
        }
    }
    println!(
        "    imports through the crate root (not a failure; name the module instead): {} in {} modules",
        report.root_imports.len(),
        report
            .root_imports
            .iter()
            .map(|i| &i.module)
            .collect::<BTreeSet<_>>()
            .len()
    );
    for ((item, origin), users) in by_item {
        println!("        crate::{item} ({origin}) <- {}", users.join(", "));
    }
}

#[test]
fn modules_import_downward_only() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    let mut failures = Vec::new();
    for (crate_name, src) in crate_roots() {
        let src = src.canonicalize().unwrap_or(src);
        let report = analyze(&crate_name, &load_crate(&src, &workspace));
        print_report(
            &report,
            &src.strip_prefix(&workspace)
                .unwrap_or(&src)
                .to_string_lossy(),
        );
        failures.extend(
            report
                .cycles
                .iter()
                .map(|c| format!("{crate_name}, {}", describe_cycle(c))),
        );
    }
    assert!(
        failures.is_empty(),
        "circular imports between sibling modules (imports must run downward only; move the \
         shared part down into a module both can import, or invert one dependency):\n    {}",
        failures.join("\n    ")
    );
}

/// The core's layers, top to bottom: a module may import its own layer and those below
/// it, never one above. The crate root (`lib.rs`) re-exports everything and is no layer.
const CORE_LAYERS: &[(&str, &[&str])] = &[
    ("the adapters' module", &["adapter"]),
    ("the web layer", &["web"]),
    (
        "the capabilities",
        &[
            "session",
            "code",
            "lock",
            "flash_sale",
            "rate_limit",
            "login",
            "backend",
        ],
    ),
    (
        "shared infrastructure",
        &[
            "memory_store",
            "redis_store",
            "codec",
            "token",
            "telemetry",
            "log_throttle",
            "ttl",
            "key_escape",
            "error",
        ],
    ),
];

fn core_layer(module: &ModPath) -> Option<usize> {
    let top = module.first()?;
    CORE_LAYERS
        .iter()
        .position(|(_, members)| members.contains(&top.as_str()))
}

#[test]
fn core_modules_import_only_their_layer_and_below() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace = workspace.canonicalize().unwrap_or(workspace);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let src = src.canonicalize().unwrap_or(src);
    let report = analyze("keygate", &load_crate(&src, &workspace));
    let mut unknown = Vec::new();
    let mut upward = Vec::new();
    for ((from, to), examples) in &report.edges {
        for module in [from, to] {
            if !module.is_empty() && core_layer(module).is_none() {
                unknown.push(module.join("::"));
            }
        }
        if let (Some(a), Some(b)) = (core_layer(from), core_layer(to))
            && b < a
        {
            upward.push(format!(
                "{} ({}) imports {} ({}): {}",
                from.join("::"),
                CORE_LAYERS[a].0,
                to.join("::"),
                CORE_LAYERS[b].0,
                examples[0]
            ));
        }
    }
    unknown.sort();
    unknown.dedup();
    assert!(
        unknown.is_empty(),
        "top-level modules missing from CORE_LAYERS (place each in its layer): {unknown:?}"
    );
    assert!(
        upward.is_empty(),
        "imports that run upward:\n    {}",
        upward.join("\n    ")
    );
}

// ---------------------------------------------------------------------------------------
// The checker's own tests
// ---------------------------------------------------------------------------------------

mod checker {
    use super::*;

    fn paths(source: &str) -> Vec<String> {
        extract(source)
            .paths
            .iter()
            .map(|p| p.segments.join("::"))
            .collect()
    }

    fn m(path: &str) -> ModPath {
        path.split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn file(module: &str, text: &str) -> SourceFile {
        SourceFile {
            module: m(module),
            display: format!("{module}.rs"),
            text: text.to_owned(),
        }
    }

    #[test]
    fn expands_grouped_use() {
        let found = paths("pub use crate::{a::X, b::{c, d as e}, f::{self, G}, h::*};");
        assert_eq!(
            found,
            [
                "crate::a::X",
                "crate::b::c",
                "crate::b::d",
                "crate::f",
                "crate::f::G",
                "crate::h"
            ]
        );
        let names: Vec<String> = extract("use crate::b::{c, d as e};")
            .paths
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["c", "e"]);
    }

    #[test]
    fn finds_paths_inline_in_expressions_and_types() {
        let source = "fn f() -> crate::Result<T> {\n    crate::adapter::report_error(&e);\n    \
                      super::super::x::y::<u8>();\n    self.0; Self::new(); pub(crate) fn g() {}\n}";
        assert_eq!(
            paths(source),
            [
                "crate::Result",
                "crate::adapter::report_error",
                "super::super::x::y"
            ]
        );
        assert_eq!(extract(source).paths[1].line, 2);
    }

    #[test]
    fn strips_comments_strings_and_ignores_dollar_crate() {
        let source = r##"
            //! see crate::doc::A
            /// crate::doc::B
            // crate::line::C
            /* crate::block::D /* nested crate::E */ crate::still::F */
            let s = "crate::string::G \" crate::escaped::H";
            let r = r#"crate::raw::I " crate::raw::J"#;
            let c = '"'; let q = '\''; fn f<'a>(x: &'a str) {}
            macro_rules! m { () => { $crate::macros::K } }
            use crate::real::L;
        "##;
        assert_eq!(paths(source), ["crate::real::L"]);
        assert_eq!(extract(source).paths[0].line, 10);
    }

    #[test]
    fn skips_test_only_code() {
        let source = "use crate::a::X;\n#[cfg(test)]\n#[cfg(feature = \"memory\")]\nmod tests {\n    \
                      use crate::b::Y;\n    fn t() { crate::c::z(); }\n}\n#[cfg(test)]\npub(crate) mod helpers;\n\
                      #[cfg(test)]\nimpl X { fn f() -> crate::d::D { todo!() } }\nfn after() { crate::e::f(); }";
        let found = extract(source);
        assert_eq!(paths(source), ["crate::a::X", "crate::e::f"]);
        assert_eq!(found.test_modules, [m("helpers")]);
        assert!(extract("#![cfg(test)]\nuse crate::a::X;").test_only);
        let gated = "#[cfg(all(test, feature = \"memory\"))]\nmod tests;\n#[cfg(any(test, unix))]\nuse crate::f::G;";
        assert_eq!(extract(gated).test_modules, [m("tests")]);
        assert_eq!(
            paths(gated),
            ["crate::f::G"],
            "`any(test, …)` is not test-only"
        );
    }

    #[test]
    fn resolves_super_self_and_inline_modules() {
        let modules: BTreeSet<ModPath> = ["", "a", "a::b", "c"].iter().map(|p| m(p)).collect();
        let resolve = |module: &str, scope: &[&str], path: &str| {
            let scope: Vec<String> = scope.iter().map(|s| s.to_string()).collect();
            resolve(&m(module), &scope, &m(path), &modules).map(|p| p.join("::"))
        };
        assert_eq!(
            resolve("a::b", &[], "super::super::c::X").as_deref(),
            Some("c::X")
        );
        assert_eq!(resolve("a::b", &[], "super::X").as_deref(), Some("a::X"));
        assert_eq!(resolve("a", &[], "self::b::Y").as_deref(), Some("a::b::Y"));
        assert_eq!(
            resolve("a", &[], "b::Y").as_deref(),
            Some("a::b::Y"),
            "`use child::…`"
        );
        assert_eq!(resolve("a", &[], "serde::Serialize"), None, "another crate");
        assert_eq!(resolve("", &[], "super::X"), None, "above the root");
        assert_eq!(
            resolve("c", &["inner"], "super::Z").as_deref(),
            Some("c::Z")
        );
        assert_eq!(owning_module(&m("a::b::Y"), &modules), m("a::b"));
        assert_eq!(owning_module(&m("a::Z::w"), &modules), m("a"));
        assert_eq!(owning_module(&m("Error"), &modules), m(""));
        // Found inside an inline module, `super` is the file's module.
        let found = extract("pub mod names { use super::Q; }\nuse super::R;");
        assert_eq!(found.paths[0].scope, ["names"]);
        assert!(found.paths[1].scope.is_empty());
    }

    #[test]
    fn maps_files_to_modules() {
        assert_eq!(module_path(Path::new("lib.rs")), Some(m("")));
        assert_eq!(module_path(Path::new("gate.rs")), Some(m("gate")));
        assert_eq!(module_path(Path::new("lock/mod.rs")), Some(m("lock")));
        assert_eq!(
            module_path(Path::new("session/near_cache/store.rs")),
            Some(m("session::near_cache::store"))
        );
        assert_eq!(module_path(Path::new("lock/lua/acquire.lua")), None);
        assert_eq!(module_path(Path::new("main.rs")), None);
    }

    #[test]
    fn detects_a_synthetic_cycle() {
        let files = [
            file("", "mod a; mod b; mod c; pub use a::X; pub use error::E;"),
            file("a", "use crate::b::Y; pub fn x() -> crate::X { todo!() }"),
            file("b", "pub fn y() { super::a::x(); crate::c::d::f(); }"),
            file(
                "c",
                "mod d; mod e; pub use self::d::f; #[cfg(test)] mod tests;",
            ),
            file("c::d", "pub fn f() { super::e::g(); crate::c::helper(); }"),
            file("c::e", "pub fn g() { crate::c::d::f(); }"),
            file("c::tests", "use crate::a::X;"),
        ];
        let report = analyze("synthetic", &files);
        assert_eq!(
            report.modules, 6,
            "the test-only module c::tests is left out"
        );
        let cycles: Vec<String> = report
            .cycles
            .iter()
            .map(|c| format!("{}: {}", show(&c.parent), c.members.join(",")))
            .collect();
        assert_eq!(cycles, ["crate: a,b", "c: d,e"]);
        let (from, to, example, _) = &report.cycles[1].dependencies[0];
        assert_eq!((from.as_str(), to.as_str()), ("d", "e"));
        assert_eq!(
            (example.file.as_str(), example.path.as_str()),
            ("c::d.rs", "super::e::g")
        );
        // `a` names `crate::X`, an item the root re-exports from `a` itself.
        assert_eq!(report.root_imports.len(), 1);
        assert_eq!(
            (
                report.root_imports[0].item.as_str(),
                report.root_imports[0].origin.clone()
            ),
            ("X", Some(m("a")))
        );
    }

    #[test]
    fn downward_imports_are_not_a_cycle() {
        let files = [
            file("", "pub mod a; pub mod b; pub use a::X; pub use b::Y;"),
            file("a", "pub mod inner; use self::inner::Z; use super::b::Y;"),
            file("a::inner", "use super::super::b::Y; use crate::a::X;"),
            file("b", "pub struct Y;"),
        ];
        let report = analyze("synthetic", &files);
        assert!(report.cycles.is_empty(), "{:?}", report.cycles);
        assert_eq!(report.edges.len(), 6);
    }
}
