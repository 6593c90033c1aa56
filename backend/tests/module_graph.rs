//! The backend's top-level modules must not import each other in a circle:
//! a circle means neither side can be read, tested or moved without the
//! other. This reads `src/**/*.rs` (comments and string literals stripped),
//! collects which top-level modules each one names (`crate::x`,
//! `use crate::{x, y}`, `super::` chains that climb to the crate root, and
//! the crate root's re-exports), and fails with the circle and the lines
//! that make it. Nothing is allowed to form one.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// One reference from a file to another top-level module.
#[derive(Debug, Clone)]
struct Use {
    file: PathBuf,
    line: usize,
}

type Graph = BTreeMap<String, BTreeMap<String, Vec<Use>>>;

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(
        graph.len() > 10,
        "the backend's modules were not found under {}",
        src.display()
    );
    if let Some(circle) = find_circle(&graph) {
        let mut report = format!(
            "a circle between backend modules: {}\n",
            circle.join(" -> ")
        );
        for pair in circle.windows(2) {
            let uses = &graph[&pair[0]][&pair[1]];
            report.push_str(&format!("  {} -> {}:\n", pair[0], pair[1]));
            for at in uses.iter().take(5) {
                report.push_str(&format!("    {}:{}\n", at.file.display(), at.line));
            }
        }
        for group in tangles(&graph) {
            report.push_str(&format!("modules tangled together: {}\n", group.join(", ")));
            for from in &group {
                for (to, uses) in &graph[from] {
                    if group.contains(to) {
                        let at = &uses[0];
                        let more = uses.len() - 1;
                        report.push_str(&format!(
                            "  {from} -> {to} ({}:{}, {more} more)\n",
                            at.file.display(),
                            at.line
                        ));
                    }
                }
            }
        }
        panic!("{report}");
    }
}

#[test]
fn the_reader_sees_the_forms_an_import_takes() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d", "error"]
        .into_iter()
        .map(String::from)
        .collect();
    let roots = BTreeMap::from([("Error".to_owned(), "error".to_owned())]);
    let text = r#"
        use crate::a::x; // crate::d in a comment
        use crate::{b, c::{y, z}};
        /* crate::d */ const S: &str = "crate::d";
        fn f<'a>(c: char) -> crate::Error { let _ = '"'; super::super::d::g() }
    "#;
    let found: BTreeSet<String> = references(&strip(text), 1, &modules, &roots)
        .into_iter()
        .map(|(module, _)| module)
        .collect();
    let expected: BTreeSet<String> = ["a", "b", "c", "d", "error"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(found, expected);
    // From `src/a/b.rs`, one `super::` stays inside `a`; from `src/a.rs`
    // it is the crate root.
    assert!(references("super::b::f()", 2, &modules, &roots).is_empty());
    let from_a = references("super::b::f()", 1, &modules, &roots);
    assert_eq!(from_a, [("b".to_owned(), 1)]);
    // Inside an inline module one more `super::` is needed to climb out.
    let inline = "mod tests {\n    use super::b::f;\n    use super::super::c::g;\n}\n";
    let found = references(inline, 1, &modules, &roots);
    assert_eq!(found, [("c".to_owned(), 3)]);
}

/// The top-level modules, each with the modules it names and where.
fn graph(src: &Path) -> Graph {
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

/// The source without comments and without the contents of string and
/// character literals (line breaks kept, so line numbers stay right).
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    let keep_newlines = |out: &mut String, skipped: &[char]| {
        out.extend(skipped.iter().filter(|c| **c == '\n'));
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            keep_newlines(&mut out, &chars[start..i]);
        } else if c == '"' || (c == 'r' && matches!(next, Some('"' | '#')) && raw_start(&chars, i))
        {
            let start = i;
            i = string_end(&chars, i);
            out.push_str("\"\"");
            keep_newlines(&mut out, &chars[start..i]);
        } else if c == '\'' {
            // A character literal, or a lifetime (left as it is).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push_str("' '");
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` opens a raw string (and is not the end of a name).
fn raw_start(chars: &[char], i: usize) -> bool {
    let standalone = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    standalone && chars.get(j) == Some(&'"')
}

/// The index just past the string literal starting at `i`.
fn string_end(chars: &[char], mut i: usize) -> usize {
    if chars[i] == 'r' {
        i += 1;
        let mut hashes = 0;
        while chars[i] == '#' {
            hashes += 1;
            i += 1;
        }
        i += 1; // the opening quote
        while i < chars.len() {
            if chars[i] == '"' && (1..=hashes).all(|h| chars.get(i + h) == Some(&'#')) {
                return i + 1 + hashes;
            }
            i += 1;
        }
        return i;
    }
    i += 1;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The top-level modules `text` names, with line numbers. `depth` is how
/// deep the file's module sits below the crate root (`src/a.rs` is 1,
/// `src/a/b.rs` is 2); inline `mod x { .. }` blocks add to it.
fn references(
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

/// A circle in the graph, as the modules along it with the first repeated
/// at the end; the shortest one through the first module that has one.
fn find_circle(graph: &Graph) -> Option<Vec<String>> {
    for start in graph.keys() {
        // Breadth-first from `start`, back to `start`: the shortest circle.
        let mut previous: BTreeMap<&String, &String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            for next in graph[node].keys() {
                if next == start {
                    let mut circle = vec![node.clone()];
                    let mut at = node;
                    while at != start {
                        at = previous[at];
                        circle.push(at.clone());
                    }
                    circle.reverse();
                    circle.push(start.clone());
                    return Some(circle);
                }
                if graph.contains_key(next) && !previous.contains_key(next) && next != start {
                    previous.insert(next, node);
                    queue.push_back(next);
                }
            }
        }
    }
    None
}

/// Every group of two or more modules that all reach each other.
fn tangles(graph: &Graph) -> Vec<Vec<String>> {
    let reach = |from: &String| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(node) = stack.pop() {
            for next in graph[&node].keys() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reaches: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for (module, reached) in &reaches {
        let group: Vec<String> = reached
            .iter()
            .filter(|other| reaches[other].contains(*module))
            .cloned()
            .collect();
        if group.len() > 1 {
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}
