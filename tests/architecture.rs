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
fn the_adapters_do_depend_on_aws() {
    // The walk itself is sound: it finds AWS where AWS is.
    let deps = shipped_dependencies(metadata(), "orderflow-adapters");
    assert!(deps.contains("aws-sdk-dynamodb"), "{deps:?}");
}
