//! Which top-level modules of a crate name which others: read from the
//! source text (no compiler), for `module_graph.rs`. Comments and string
//! literals are blanked first (`strip`); then `crate::x`, `use crate::{x,
//! y}`, `super::` chains that climb to the root, and the root's re-exports
//! (`crate::Error` is `error`) count as a use of `x`.

mod strip;

pub use strip::strip;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One reference from a file to another top-level module.
#[derive(Debug, Clone)]
pub struct Use {
    pub file: PathBuf,
    pub line: usize,
}

/// Each top-level module, the modules it names, and where.
pub type Graph = BTreeMap<String, BTreeMap<String, Vec<Use>>>;

/// The top-level modules, each with the modules it names and where.
pub fn graph(src: &Path) -> Graph {
    let lib = strip(&fs::read_to_string(src.join("lib.rs")).expect("lib.rs reads"));
    let modules = declared_modules(&lib);
    let roots = root_reexports(&lib, &modules);
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).unwrap();
        let mut parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let last = parts.pop().unwrap();
        let stem = last.trim_end_matches(".rs").to_owned();
        if stem != "mod" {
            parts.push(stem);
        }
        let Some(top) = parts.first().filter(|t| modules.contains(*t)).cloned() else {
            continue; // lib.rs and main.rs: the root may name everything.
        };
        let text = strip(&fs::read_to_string(&file).unwrap());
        for (target, line) in references(&text, parts.len(), &modules, &roots) {
            if target != top {
                graph
                    .get_mut(&top)
                    .unwrap()
                    .entry(target)
                    .or_default()
                    .push(Use {
                        file: Path::new("src").join(relative),
                        line,
                    });
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// `mod x;` and `pub mod x;` in lib.rs.
fn declared_modules(lib: &str) -> BTreeSet<String> {
    lib.lines()
        .filter_map(|line| {
            let line = line
                .trim()
                .trim_start_matches("pub ")
                .trim_start_matches("pub(crate) ");
            let name = line.strip_prefix("mod ")?.strip_suffix(';')?;
            Some(name.trim().to_owned())
        })
        .collect()
}

/// Names lib.rs re-exports (`pub use error::{Error, Result};`), mapped to
/// the module they come from, so `crate::Error` counts as `error`.
fn root_reexports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut roots = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        for name in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            let name = name.trim().rsplit("::").next().unwrap().trim();
            if !name.is_empty() {
                roots.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    roots
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The top-level modules `text` names, with line numbers. `depth` is how
/// deep the file's module sits below the crate root (`src/a.rs` is 1,
/// `src/a/b.rs` is 2); inline `mod x { .. }` blocks add to it.
pub fn references(
    text: &str,
    depth: usize,
    modules: &BTreeSet<String>,
    roots: &BTreeMap<String, String>,
) -> Vec<(String, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    let mut line = 1;
    let mut braces = 0usize;
    // Brace depths at which inline modules opened.
    let mut inline: Vec<usize> = Vec::new();
    let resolve = |name: &str| -> Option<String> {
        if modules.contains(name) {
            Some(name.to_owned())
        } else {
            roots.get(name).cloned()
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
        }
        if c == '{' {
            braces += 1;
        }
        if c == '}' {
            braces = braces.saturating_sub(1);
            if inline.last() == Some(&braces) {
                inline.pop();
            }
        }
        let at_word = is_ident(c) && (i == 0 || !is_ident(chars[i - 1]));
        if !at_word {
            i += 1;
            continue;
        }
        let end = (i..chars.len())
            .find(|&j| !is_ident(chars[j]))
            .unwrap_or(chars.len());
        let word: String = chars[i..end].iter().collect();
        match word.as_str() {
            "mod" => {
                // `mod name {` opens an inline module; `mod name;` does not.
                let rest: String = chars[end..].iter().take(200).collect();
                let rest = rest.trim_start();
                let name_len = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
                if rest[name_len..].trim_start().starts_with('{') {
                    inline.push(braces);
                }
            }
            "crate" => {
                if let Some(after) = path_after(&chars, end) {
                    for (name, offset_lines) in after {
                        if let Some(module) = resolve(&name) {
                            found.push((module, line + offset_lines));
                        }
                    }
                }
            }
            "super" => {
                let mut supers = 1;
                let mut j = end;
                loop {
                    let rest: String = chars[j..].iter().take(10).collect();
                    if let Some(stripped) = rest.strip_prefix("::super") {
                        if !stripped.starts_with(is_ident) {
                            supers += 1;
                            j += "::super".len();
                            continue;
                        }
                    }
                    break;
                }
                if supers >= depth + inline.len() {
                    if let Some(after) = path_after(&chars, j) {
                        for (name, offset_lines) in after {
                            if let Some(module) = resolve(&name) {
                                found.push((module, line + offset_lines));
                            }
                        }
                    }
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i = end;
    }
    found
}

/// After `crate` (or a `super` chain that reaches the root) at `i`: the
/// first names of the path (`::x` gives `x`; `::{x, y::z}` gives `x` and
/// `y`), each with how many lines below the keyword it sits.
fn path_after(chars: &[char], mut i: usize) -> Option<Vec<(String, usize)>> {
    let skip_space = |i: &mut usize, lines: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            if chars[*i] == '\n' {
                *lines += 1;
            }
            *i += 1;
        }
    };
    let mut lines = 0;
    skip_space(&mut i, &mut lines);
    if chars.get(i) != Some(&':') || chars.get(i + 1) != Some(&':') {
        return None;
    }
    i += 2;
    skip_space(&mut i, &mut lines);
    let ident_at =
        |i: usize| -> String { chars[i..].iter().take_while(|c| is_ident(**c)).collect() };
    if chars.get(i) != Some(&'{') {
        let name = ident_at(i);
        return (!name.is_empty()).then(|| vec![(name, lines)]);
    }
    // A group: the names at its first level that start an element.
    let mut names = Vec::new();
    let mut depth = 0;
    let mut expect_name = true;
    while i < chars.len() {
        match chars[i] {
            '{' => {
                depth += 1;
                expect_name = depth == 1;
                i += 1;
            }
            '}' => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    break;
                }
            }
            ',' => {
                expect_name = depth == 1;
                i += 1;
            }
            '\n' => {
                lines += 1;
                i += 1;
            }
            c if is_ident(c) => {
                let name = ident_at(i);
                i += name.len();
                if expect_name {
                    names.push((name, lines));
                    expect_name = false;
                }
            }
            _ => i += 1,
        }
    }
    Some(names)
}
