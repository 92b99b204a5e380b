//! The runtime's modules import one way: each layer uses only the layers below it (and
//! modules of its own layer, without cycles), so that a newcomer can read it bottom up.
//! The layers are those of `rsgrpc::design`'s layout section.
//!
//! Read from the source: every `crate::module` a file names outside comments and unit
//! tests is an edge from the file's top-level module to that module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Bottom to top.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundation",
        &[
            "backoff", "codec", "deadline", "error", "limits", "live", "metadata", "metrics",
            "role", "status", "sync",
        ],
    ),
    (
        "transport, queues and threads",
        &[
            "cq",
            "executor",
            "poller",
            "pool",
            "quota",
            "runtime",
            "transport",
        ],
    ),
    ("calls", &["call", "interceptor", "request", "response"]),
    ("connections", &["channel", "server"]),
    ("client", &["client"]),
    (
        "crate root and its documents",
        &[
            "lib",
            "design",
            "from_tonic",
            "fuzzing",
            "models",
            "testing",
            "tls",
            "codegen",
            "internals",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// The source without comments and without its `#[cfg(test)]` unit tests.
fn code(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(at) => &source[..at],
        None => source,
    };
    source
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn top_module(relative: &Path) -> String {
    let first = relative
        .components()
        .next()
        .expect("a path under src")
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    first.trim_end_matches(".rs").to_owned()
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                pending.push(path);
                continue;
            }
            // Unit tests (a `tests.rs` beside the code, or a `mod tests` in it) may use
            // anything.
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
                continue;
            }
            let from = top_module(path.strip_prefix(&root).expect("under src"));
            let source = std::fs::read_to_string(&path).expect("readable source file");
            let code = code(&source);
            let targets = edges.entry(from.clone()).or_default();
            for (at, _) in code.match_indices("crate::") {
                let name: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // `$crate::` in macros, and `crate::` ending a longer path, are not ours.
                let preceded = code[..at].chars().next_back();
                if name.is_empty()
                    || name == from
                    || preceded.is_some_and(|c| c == '$' || c == '_' || c.is_alphanumeric())
                {
                    continue;
                }
                targets.insert(name);
            }
        }
    }
    edges
}

#[test]
fn every_module_has_a_layer() {
    let unplaced: Vec<String> = edges()
        .into_iter()
        .flat_map(|(from, to)| std::iter::once(from).chain(to))
        .filter(|m| layer_of(m).is_none())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules without a layer (add them to LAYERS here and to the design's layout): {unplaced:?}"
    );
}

#[test]
fn layers_import_downwards_only() {
    let mut upwards = Vec::new();
    for (from, targets) in edges() {
        let (Some(low), false) = (layer_of(&from), targets.is_empty()) else {
            continue;
        };
        for to in targets {
            if layer_of(&to).is_some_and(|high| high > low) {
                upwards.push(format!(
                    "{from} ({}) uses {to} ({})",
                    LAYERS[low].0,
                    LAYERS[layer_of(&to).unwrap()].0
                ));
            }
        }
    }
    assert!(
        upwards.is_empty(),
        "imports against the layers: {upwards:#?}"
    );
}

#[test]
fn modules_import_without_cycles() {
    let edges = edges();
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit<'a>(
        module: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|m| *m == module) {
            let mut cycle: Vec<String> = path[at..].iter().map(|m| m.to_string()).collect();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if !done.insert(module) {
            return None;
        }
        path.push(module);
        for next in edges.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        if module == "lib" {
            // The crate root declares every module and re-exports the public ones.
            continue;
        }
        if let Some(cycle) = visit(module, &edges, &mut Vec::new(), &mut done) {
            panic!(
                "modules import each other in a cycle: {}",
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_check_sees_imports() {
    // The reader is not blind: known edges are found.
    let edges = edges();
    assert!(edges["client"].contains("channel"), "{:?}", edges["client"]);
    assert!(edges["cq"].contains("quota"), "{:?}", edges["cq"]);
    assert!(edges["server"].contains("call"), "{:?}", edges["server"]);
}
