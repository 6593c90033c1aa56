//! The backend's top-level modules must not import each other in a circle:
//! a circle means neither side can be read, tested or moved without the
//! other. This reads `src/**/*.rs` (comments and string literals stripped),
//! collects which top-level modules each one names (`crate::x`,
//! `use crate::{x, y}`, `super::` chains that climb to the crate root, and
//! the crate root's re-exports), and fails with the circle and the lines
//! that make it. Nothing is allowed to form one.

mod source_graph;

use source_graph::{graph, references, strip, Graph};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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
