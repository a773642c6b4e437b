//! The crate's modules import each other without a cycle, and the engine never names a
//! store: read from the sources' `crate::…` paths.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`engine::run`, `stores::postgres`) of every source file.
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let module = match (prefix.is_empty(), name.as_str()) {
            (_, "lib" | "main") if prefix.is_empty() => continue,
            (true, _) => name.clone(),
            (false, "mod") => prefix.to_owned(),
            (false, _) => format!("{prefix}::{name}"),
        };
        if path.is_dir() {
            modules(&path, &module, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            // Code only: documentation may point anywhere.
            let code: Vec<String> = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .map(str::to_owned)
                .collect();
            out.insert(module, code.join("\n"));
        }
    }
}

/// The modules a source names through `crate::…` paths (the longest known module prefix
/// of each; a module's own ancestors do not count).
fn imports(module: &str, source: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |path: &str| {
        let segments: Vec<&str> = path.split("::").collect();
        for n in (1..=segments.len()).rev() {
            let candidate = segments[..n].join("::");
            if known.contains(&candidate) {
                if candidate != module && !module.starts_with(&format!("{candidate}::")) {
                    out.insert(candidate);
                }
                return;
            }
        }
    };
    for (at, _) in source.match_indices("crate::") {
        let rest = &source[at + "crate::".len()..];
        let path: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        add(path.trim_end_matches(':'));
        // `use crate::a::{b, c::d}`: each item of a brace group after a module path.
        if rest[path.len()..].starts_with('{') {
            let group = &rest[path.len() + 1..rest.find('}').unwrap_or(rest.len())];
            for item in group.split(',') {
                let item = item.trim();
                if !item.is_empty() {
                    add(&format!("{}{item}", path));
                }
            }
        }
    }
    out
}

#[test]
fn modules_import_each_other_without_a_cycle_and_the_engine_names_no_store() {
    let mut sources = BTreeMap::new();
    modules(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        "",
        &mut sources,
    );
    let known: BTreeSet<String> = sources.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = sources
        .iter()
        .map(|(m, s)| (m.clone(), imports(m, s, &known)))
        .collect();
    assert!(
        graph["engine::run"].contains("engine::process"),
        "{graph:?}"
    );
    for (module, deps) in &graph {
        if module.starts_with("engine") {
            let stores: Vec<_> = deps.iter().filter(|d| d.starts_with("stores")).collect();
            assert!(stores.is_empty(), "{module} names a store: {stores:?}");
        }
    }
    // Depth-first search for a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            panic!("import cycle: {} -> {node}", stack[at..].join(" -> "));
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done);
        }
        stack.pop();
        done.insert(node.to_owned());
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
}
