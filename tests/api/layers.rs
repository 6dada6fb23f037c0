//! The layering of `src/`: imports flow one way. Reads the sources as text: each file is
//! a module, and `mod`, `crate::` and `super::` paths are its arrows (test modules at a
//! file's end are left out). Fails on a cycle between files or a forbidden arrow. A
//! submodule may use its own parent's private helpers (that is what Rust's privacy is
//! for), so an arrow up to an ancestor is not counted; siblings and everything else are.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Arrows that must never exist, between top-level modules: lower layers know nothing of
/// HTTP (`routes`, `error`) nor of each other where they are independent.
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("config", &["*"]),
    ("stripe", &["db", "routes", "auth", "error", "portal", "lookup"]),
    ("db", &["stripe", "routes", "auth", "error", "portal", "lookup"]),
    ("auth", &["db", "stripe", "routes", "error", "portal"]),
    ("secrets", &["db", "routes", "error", "stripe", "auth"]),
    ("lookup", &["routes", "error", "portal"]),
    ("rate_limit", &["routes", "error", "auth"]),
    ("metrics", &["routes", "error", "stripe"]),
    ("validation", &["*"]),
    ("portal", &["routes", "error", "webhooks", "checkout_sync"]),
    ("webhooks", &["routes", "error", "portal", "checkout_sync"]),
    ("checkout_sync", &["routes", "error", "portal", "webhooks"]),
    ("admin", &["routes", "error", "portal"]),
];

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn src_has_no_import_cycle_between_files() {
    let graph = module_graph();
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle in src/: {}", cycle.join(" -> "));
    }
}

#[test]
fn src_has_no_forbidden_arrow() {
    let graph = module_graph();
    let mut found = Vec::new();
    for (from, targets) in &graph {
        let from_top = top(from);
        for to in targets {
            let to_top = top(to);
            if from_top == to_top {
                continue;
            }
            let forbidden = FORBIDDEN
                .iter()
                .any(|(f, never)| *f == from_top && never.iter().any(|n| *n == "*" || *n == to_top));
            if forbidden {
                found.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(found.is_empty(), "forbidden imports in src/: {}", found.join(", "));
}

#[test]
fn the_layering_check_sees_a_forbidden_arrow_and_a_cycle() {
    let mut graph = module_graph();
    graph.entry("stripe".into()).or_default().insert("db".into());
    graph.entry("db".into()).or_default().insert("stripe".into());
    assert!(find_cycle(&graph).is_some());
}

fn top(module: &str) -> &str {
    module.split("::").next().unwrap_or(module)
}

/// Every file under src/ but the crate roots, with the modules it reaches.
fn module_graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let mut graph = Graph::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else { continue };
        let text = std::fs::read_to_string(file).expect("readable source");
        // Inline test modules sit at the end of a file and only look inward.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let arrows = graph.entry(module.clone()).or_default();
        for path in paths(code, &module) {
            // The longest module that the path names.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|candidate| modules.contains(candidate));
            let is_ancestor = |t: &str| module.starts_with(&format!("{t}::"));
            if let Some(target) = target
                && target != module
                && !is_ancestor(&target)
            {
                arrows.insert(target);
            }
        }
    }
    graph
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `src/db/portal.rs` is `db::portal`; the crate roots are not modules of their own.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).ok()?.with_extension("");
    let name = relative.to_str()?.replace('/', "::");
    (!matches!(name.as_str(), "lib" | "main")).then_some(name)
}

/// The absolute module paths a file's code names: `mod x;` (a child), `crate::a::b`,
/// `super::a` and `use` trees with braces, expanded.
fn paths(code: &str, module: &str) -> Vec<Vec<String>> {
    let own: Vec<String> = module.split("::").map(str::to_owned).collect();
    let code: String = code
        .lines()
        .map(str::trim_start)
        .filter(|line| !line.starts_with("//"))
        .flat_map(|line| [line, "\n"])
        .collect();
    let mut out = Vec::new();
    for line in code.lines() {
        // `mod x;`, `pub mod x;`, `pub(crate) mod x;`...
        let declared = line
            .split_once("mod ")
            .filter(|(before, _)| before.trim().is_empty() || before.starts_with("pub"));
        if let Some((_, rest)) = declared
            && let Some(name) = rest.strip_suffix(';')
        {
            out.push(own.iter().cloned().chain([name.to_owned()]).collect());
        }
    }
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let preceded_by_ident = i > 0 && (bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        let base = if rest.starts_with("crate::") && !preceded_by_ident {
            i += "crate::".len();
            Some(Vec::new())
        } else if rest.starts_with("super::") && !preceded_by_ident {
            i += "super::".len();
            Some(own[..own.len().saturating_sub(1)].to_vec())
        } else {
            None
        };
        match base {
            Some(base) => {
                let (trees, end) = use_tree(&bytes, i);
                out.extend(trees.into_iter().map(|t| base.iter().cloned().chain(t).collect()));
                i = end;
            }
            None => i += 1,
        }
    }
    out
}

/// A `use` tree starting at `i`: `a::b`, `a::{b, c::d}`, `{a, b}`; its paths and where it ends.
fn use_tree(chars: &[char], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        let start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i > start {
            prefix.push(chars[start..i].iter().collect::<String>());
        }
        if chars.get(i) == Some(&'{') {
            let mut all = Vec::new();
            i += 1;
            loop {
                while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    i += 1;
                }
                if chars.get(i).is_none_or(|c| *c == '}') {
                    return (all, i + 1);
                }
                let (trees, end) = use_tree(chars, i);
                all.extend(trees.into_iter().map(|t| prefix.iter().cloned().chain(t).collect()));
                // Skip `as name` and anything else up to the next separator.
                i = end;
                while chars.get(i).is_some_and(|c| *c != ',' && *c != '}') {
                    i += 1;
                }
            }
        }
        if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
            i += 2;
            continue;
        }
        return (vec![prefix], i);
    }
}

/// A cycle in the graph, as the modules along it, if there is one.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
