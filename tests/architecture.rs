//! The dependency direction is the architecture: the domain's tree holds no AWS,
//! Lambda or async runtime crate, and the application layer none of AWS or Lambda.
//! Read from Cargo's own resolve graph, so a new transitive dependency is caught too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

use serde_json::Value;

/// Package names reachable from `root` through normal and build dependencies (what
/// ships), not dev-dependencies (what tests use).
fn shipped_dependencies(metadata: &Value, root: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root_id = names
        .iter()
        .find(|(_, name)| **name == root)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("{root} is a workspace package"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![root_id];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let shipped = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            let dep_id = dep["pkg"].as_str().unwrap();
            if shipped && seen.insert(names[dep_id].to_owned()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

fn metadata() -> &'static Value {
    static METADATA: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    METADATA.get_or_init(read_metadata)
}

fn read_metadata() -> Value {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

fn offenders<'a>(deps: &'a BTreeSet<String>, forbidden: &[&str]) -> Vec<&'a String> {
    deps.iter()
        .filter(|d| forbidden.iter().any(|f| d.starts_with(f)))
        .collect()
}

#[test]
fn the_domain_is_pure() {
    let deps = shipped_dependencies(metadata(), "orderflow-domain");
    assert!(
        deps.contains("serde"),
        "the walk found the domain's dependencies: {deps:?}"
    );
    let bad = offenders(&deps, &["aws", "lambda", "tokio", "hyper", "reqwest"]);
    assert!(bad.is_empty(), "the domain must not depend on {bad:?}");
}

#[test]
fn the_application_layer_knows_no_aws_or_lambda() {
    let deps = shipped_dependencies(metadata(), "orderflow-app");
    assert!(deps.contains("orderflow-domain"));
    let bad = offenders(&deps, &["aws", "lambda", "tokio", "hyper"]);
    assert!(bad.is_empty(), "the application layer must not depend on {bad:?}");
}

#[test]
fn the_adapters_implement_ports_and_know_no_lambda() {
    // The walk itself is sound: it finds AWS where AWS is.
    let deps = shipped_dependencies(metadata(), "orderflow-adapters");
    assert!(deps.contains("aws-sdk-dynamodb"), "{deps:?}");
    // How a function runs (batches, deadlines, metrics flushing, telemetry) is the
    // platform crate's, `orderflow-lambda`.
    let bad = offenders(&deps, &["lambda", "aws_lambda_events", "orderflow-lambda"]);
    assert!(bad.is_empty(), "the adapters must not depend on {bad:?}");
    let platform = shipped_dependencies(metadata(), "orderflow-lambda");
    assert!(platform.contains("lambda_runtime"), "{platform:?}");
}

/// The README's layout table: path, crate, and the crates of ours it may use.
fn layout() -> Vec<(String, String, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme
        .split("\n## Layout\n")
        .nth(1)
        .expect("the README has a Layout section");
    section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 4, "a layout row has four cells: {line}");
            let may_use = cells[3]
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect();
            (
                cells[0].trim_matches('`').to_owned(),
                cells[1].trim_matches('`').to_owned(),
                may_use,
            )
        })
        .collect()
}

#[test]
fn every_crate_uses_only_what_the_readme_layout_allows() {
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .canonicalize()
        .unwrap();
    // Every workspace package: its directory and the workspace crates it ships with.
    let packages = metadata()["packages"].as_array().unwrap();
    let members: BTreeSet<&str> = metadata()["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    let ours: Vec<(&str, String, BTreeSet<String>)> = packages
        .iter()
        .filter(|p| members.contains(p["id"].as_str().unwrap()))
        .map(|p| {
            let dir = std::path::Path::new(p["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .strip_prefix(&workspace)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (p["name"].as_str().unwrap(), dir, BTreeSet::new())
        })
        .collect();
    let names: BTreeSet<&str> = ours.iter().map(|(name, ..)| *name).collect();
    let functions: BTreeSet<String> = ours
        .iter()
        .filter(|(_, dir, _)| dir.starts_with("functions/"))
        .map(|(name, ..)| (*name).to_owned())
        .collect();
    let table = layout();
    for (name, dir, _) in &ours {
        let row = table.iter().find(|(_, crate_name, _)| crate_name == name);
        let (path, _, may_use) =
            row.unwrap_or_else(|| panic!("{name} ({dir}) is missing from the README's layout"));
        assert_eq!(path, dir, "the README places {name} at {path}");
        let allowed: BTreeSet<String> = may_use
            .iter()
            .flat_map(|short| match short.as_str() {
                "functions" => functions.iter().cloned().collect::<Vec<_>>(),
                short if names.contains(short) => vec![short.to_owned()],
                short => vec![format!("orderflow-{short}")],
            })
            .collect();
        for allowed_name in &allowed {
            assert!(
                names.contains(allowed_name.as_str()),
                "the README lets {name} use {allowed_name}, which is no crate of ours"
            );
        }
        let package = packages.iter().find(|p| p["name"] == *name).unwrap();
        let used: BTreeSet<String> = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null() && names.contains(d["name"].as_str().unwrap()))
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect();
        let not_allowed: Vec<&String> = used.difference(&allowed).collect();
        assert!(
            not_allowed.is_empty(),
            "{name} uses {not_allowed:?}, which the README's layout does not allow it"
        );
    }
    for (_, crate_name, _) in &table {
        assert!(
            names.contains(crate_name.as_str()),
            "the README's layout names {crate_name}, which is no crate of ours"
        );
    }
}

/// The modules of one crate each top-level module's shipped code names (`crate::x`,
/// `crate::{x, y}`), from its files under `src/`: comments, `#[cfg(test)]` code and
/// test-only modules left out.
fn module_imports(src: &std::path::Path) -> HashMap<String, BTreeSet<String>> {
    fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    fn ident(text: &str) -> String {
        text.trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    }
    let mut all = Vec::new();
    files(src, &mut all);
    // Files of modules declared `#[cfg(test)] mod x;`.
    let mut test_only = Vec::new();
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for pair in lines.windows(2) {
            if pair[0] == "#[cfg(test)]" && pair[1].starts_with("mod ") && pair[1].ends_with(';') {
                let stem = path.file_stem().unwrap().to_str().unwrap();
                let dir = if matches!(stem, "mod" | "lib" | "main") {
                    path.parent().unwrap().to_path_buf()
                } else {
                    path.with_extension("")
                };
                test_only.push(dir.join(ident(&pair[1]["mod ".len()..])));
            }
        }
    }
    all.retain(|p| !test_only.iter().any(|t| p.with_extension("").starts_with(t)));
    let top = |path: &std::path::Path| -> Option<String> {
        let relative = path.strip_prefix(src).unwrap();
        let first = relative.components().next()?.as_os_str().to_str()?.to_owned();
        let name = first.trim_end_matches(".rs").to_owned();
        (!matches!(name.as_str(), "lib" | "main" | "bin")).then_some(name)
    };
    let modules: BTreeSet<String> = all.iter().filter_map(|p| top(p)).collect();
    let mut imports: HashMap<String, BTreeSet<String>> = HashMap::new();
    for path in &all {
        let Some(from) = top(path) else { continue };
        let text = std::fs::read_to_string(path).unwrap();
        let shipped: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for (at, _) in shipped.match_indices("crate::") {
            let rest = &shipped[at + "crate::".len()..];
            let names: Vec<String> = match rest.strip_prefix('{') {
                Some(group) => {
                    let mut depth = 0;
                    let end = group
                        .char_indices()
                        .find(|&(_, c)| {
                            match c {
                                '{' => depth += 1,
                                '}' if depth == 0 => return true,
                                '}' => depth -= 1,
                                _ => {}
                            }
                            false
                        })
                        .map_or(group.len(), |(i, _)| i);
                    let mut depth = 0;
                    let mut items = vec![String::new()];
                    for c in group[..end].chars() {
                        match c {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            ',' if depth == 0 => items.push(String::new()),
                            _ => {}
                        }
                        if let Some(item) = items.last_mut() {
                            item.push(c);
                        }
                    }
                    items.iter().map(|i| ident(i.trim_start_matches(','))).collect()
                }
                None => vec![ident(rest)],
            };
            for name in names {
                if name != from && modules.contains(&name) {
                    imports.entry(from.clone()).or_default().insert(name);
                }
            }
        }
    }
    imports
}

/// Every cycle of `imports`, each once, as the path that closes it.
fn circles(imports: &HashMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    fn walk(
        at: &str,
        imports: &HashMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        found: &mut BTreeSet<Vec<String>>,
    ) {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut cycle = path[start..].to_vec();
            let smallest = (0..cycle.len()).min_by_key(|&i| &cycle[i]).unwrap_or(0);
            cycle.rotate_left(smallest);
            found.insert(cycle);
            return;
        }
        path.push(at.to_owned());
        for next in imports.get(at).into_iter().flatten() {
            walk(next, imports, path, found);
        }
        path.pop();
    }
    let mut found = BTreeSet::new();
    for start in imports.keys() {
        walk(start, imports, &mut Vec::new(), &mut found);
    }
    found
}

#[test]
fn no_module_of_a_crate_imports_one_that_imports_it_back() {
    let mut offences = Vec::new();
    for package in metadata()["packages"].as_array().unwrap() {
        let manifest = std::path::Path::new(package["manifest_path"].as_str().unwrap());
        let src = manifest.parent().unwrap().join("src");
        if !src.is_dir()
            || !metadata()["workspace_members"]
                .to_string()
                .contains(package["id"].as_str().unwrap())
        {
            continue;
        }
        for cycle in circles(&module_imports(&src)) {
            offences.push(format!(
                "{}: {}",
                package["name"].as_str().unwrap(),
                cycle.join(" -> ")
            ));
        }
    }
    assert!(
        offences.is_empty(),
        "modules importing each other in a circle:\n{}",
        offences.join("\n")
    );
}

#[test]
fn a_circle_of_imports_is_found_and_a_chain_is_not() {
    let graph = |edges: &[(&str, &str)]| {
        let mut imports: HashMap<String, BTreeSet<String>> = HashMap::new();
        for (from, to) in edges {
            imports
                .entry((*from).to_owned())
                .or_default()
                .insert((*to).to_owned());
        }
        imports
    };
    assert!(circles(&graph(&[("routes", "orders"), ("orders", "paging")])).is_empty());
    let found = circles(&graph(&[
        ("routes", "orders"),
        ("orders", "products"),
        ("products", "routes"),
    ]));
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        vec![vec![
            "orders".to_owned(),
            "products".to_owned(),
            "routes".to_owned()
        ]]
    );
}
