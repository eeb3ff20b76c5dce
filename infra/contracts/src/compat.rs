//! Whether one JSON Schema of an event may follow another at the same schema version.
//!
//! The question is the reader's: events written under the old schema sit in the store
//! forever, and consumers built against the old schema read what producers write under
//! the new one. So a change is compatible only when both still hold: a new member that
//! may be absent. Anything else (a member removed, retyped, newly required or no longer
//! required, an enum or a constraint changed) is breaking and needs a new schema version
//! with an upcaster. Descriptions and titles are documentation, not contract.

use serde_json::{Map, Value};

/// One difference between two schemas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where, as a JSON path into the data (`lines[].unitPrice.amount`).
    pub path: String,
    /// What changed.
    pub what: String,
    /// Whether old data or old readers break.
    pub breaking: bool,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "(the event)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.what)
    }
}

/// Keywords that document and do not constrain.
const DOCUMENTATION: &[&str] = &[
    "description",
    "title",
    "examples",
    "default",
    "$comment",
    "$schema",
    "$defs",
    "deprecated",
];

/// Every difference from `old` to `new`, each root schema with its own `$defs`.
#[must_use]
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    compare(&inline(old, old, 0), &inline(new, new, 0), "", &mut changes);
    changes
}

/// `schema` with every `$ref` into `root`'s `$defs` replaced by what it names.
fn inline(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > 64 {
        return schema.clone();
    }
    match schema {
        Value::Object(object) => {
            if let Some(target) = object.get("$ref").and_then(Value::as_str) {
                let resolved = target
                    .strip_prefix("#/$defs/")
                    .and_then(|name| root.get("$defs").and_then(|defs| defs.get(name)));
                if let Some(resolved) = resolved {
                    let mut merged = inline(resolved, root, depth + 1);
                    // Keywords beside a `$ref` apply too.
                    if let Value::Object(merged_object) = &mut merged {
                        for (key, value) in object.iter().filter(|(k, _)| *k != "$ref") {
                            merged_object.insert(key.clone(), inline(value, root, depth + 1));
                        }
                    }
                    return merged;
                }
            }
            Value::Object(
                object
                    .iter()
                    .filter(|(key, _)| *key != "$defs")
                    .map(|(key, value)| (key.clone(), inline(value, root, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| inline(v, root, depth + 1)).collect()),
        other => other.clone(),
    }
}

fn strings(value: Option<&Value>) -> Vec<&str> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_owned()
    } else {
        format!("{path}.{member}")
    }
}

fn compare(old: &Value, new: &Value, path: &str, changes: &mut Vec<Change>) {
    let (Some(old), Some(new)) = (old.as_object(), new.as_object()) else {
        if old != new {
            changes.push(Change {
                path: path.to_owned(),
                what: format!("changed from {old} to {new}"),
                breaking: true,
            });
        }
        return;
    };
    compare_members(old, new, path, changes);
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        if DOCUMENTATION.contains(&key.as_str()) || key == "properties" || key == "required" {
            continue;
        }
        match (old.get(key), new.get(key)) {
            (Some(o), Some(n)) if key == "items" => compare(o, n, &format!("{path}[]"), changes),
            (Some(Value::Array(o)), Some(Value::Array(n)))
                if (key == "anyOf" || key == "oneOf" || key == "allOf") && o.len() == n.len() =>
            {
                for (o, n) in o.iter().zip(n) {
                    compare(o, n, path, changes);
                }
            }
            (o, n) if o == n => {}
            (o, n) => changes.push(Change {
                path: path.to_owned(),
                what: format!(
                    "`{key}` changed from {} to {}",
                    o.map_or_else(|| "nothing".to_owned(), Value::to_string),
                    n.map_or_else(|| "nothing".to_owned(), Value::to_string)
                ),
                breaking: true,
            }),
        }
    }
}

fn compare_members(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    path: &str,
    changes: &mut Vec<Change>,
) {
    let empty = Map::new();
    let old_members = old.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let new_members = new.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let old_required = strings(old.get("required"));
    let new_required = strings(new.get("required"));
    for (name, old_schema) in old_members {
        let at = join(path, name);
        let Some(new_schema) = new_members.get(name) else {
            changes.push(Change {
                path: at,
                what: "removed".into(),
                breaking: true,
            });
            continue;
        };
        match (
            old_required.contains(&name.as_str()),
            new_required.contains(&name.as_str()),
        ) {
            (false, true) => changes.push(Change {
                path: at.clone(),
                what: "now required: events stored without it no longer read".into(),
                breaking: true,
            }),
            (true, false) => changes.push(Change {
                path: at.clone(),
                what: "no longer required: readers that rely on it break".into(),
                breaking: true,
            }),
            _ => {}
        }
        compare(old_schema, new_schema, &at, changes);
    }
    for name in new_members.keys().filter(|name| !old_members.contains_key(*name)) {
        let required = new_required.contains(&name.as_str());
        changes.push(Change {
            path: join(path, name),
            what: if required {
                "added as required: events stored without it no longer read".into()
            } else {
                "added, optional".into()
            },
            breaking: required,
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(properties: Value, required: &[&str]) -> Value {
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "$defs": {"Money": {"type": "object", "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}}, "required": ["amount", "currency"]}},
        })
    }

    fn breaking(old: &Value, new: &Value) -> Vec<String> {
        diff(old, new)
            .into_iter()
            .filter(|c| c.breaking)
            .map(|c| c.to_string())
            .collect()
    }

    #[test]
    fn the_same_schema_or_other_words_differ_in_nothing() {
        let old = event(
            json!({"a": {"type": "string", "description": "old words"}}),
            &["a"],
        );
        let new = event(
            json!({"a": {"type": "string", "description": "new words"}}),
            &["a"],
        );
        assert_eq!(diff(&old, &new), vec![]);
    }

    #[test]
    fn an_optional_member_is_additive() {
        let old = event(json!({"a": {"type": "string"}}), &["a"]);
        let new = event(
            json!({"a": {"type": "string"}, "b": {"type": ["string", "null"]}}),
            &["a"],
        );
        let changes = diff(&old, &new);
        assert_eq!(changes.len(), 1);
        assert!(!changes[0].breaking, "{}", changes[0]);
        assert_eq!(changes[0].path, "b");
    }

    #[test]
    fn removed_retyped_and_newly_required_members_break() {
        let old = event(
            json!({"a": {"type": "string"}, "b": {"type": "integer"}, "c": {"type": "string"}}),
            &["a"],
        );
        let new = event(
            json!({"a": {"type": "string"}, "b": {"type": "string"}, "d": {"type": "string"}}),
            &["a", "d"],
        );
        let broken = breaking(&old, &new);
        assert_eq!(
            broken,
            vec![
                "b: `type` changed from \"integer\" to \"string\"",
                "c: removed",
                "d: added as required: events stored without it no longer read",
            ]
        );
    }

    #[test]
    fn requiredness_enums_and_constraints_are_contract() {
        let old = event(
            json!({"a": {"type": "string", "enum": ["X", "Y"]}, "b": {"type": "string", "maxLength": 10}}),
            &["a", "b"],
        );
        let new = event(
            json!({"a": {"type": "string", "enum": ["X", "Y", "Z"]}, "b": {"type": "string", "maxLength": 5}}),
            &["a"],
        );
        let broken = breaking(&old, &new);
        assert_eq!(broken.len(), 3, "{broken:?}");
        assert!(broken.iter().any(|c| c.starts_with("a: `enum`")));
        assert!(broken.iter().any(|c| c.starts_with("b: no longer required")));
        assert!(broken.iter().any(|c| c.starts_with("b: `maxLength`")));
    }

    #[test]
    fn references_are_compared_by_what_they_name() {
        let old = event(json!({"total": {"$ref": "#/$defs/Money"}}), &["total"]);
        let mut new = old.clone();
        new["$defs"]["Money"]["properties"]["amount"] = json!({"type": "string"});
        assert_eq!(
            breaking(&old, &new),
            vec!["total.amount: `type` changed from \"integer\" to \"string\""]
        );
        let mut renamed = old.clone();
        renamed["$defs"] = json!({"Amount": old["$defs"]["Money"].clone()});
        renamed["properties"]["total"] = json!({"$ref": "#/$defs/Amount"});
        assert_eq!(
            diff(&old, &renamed),
            vec![],
            "a definition's name is not contract"
        );
    }

    #[test]
    fn items_of_arrays_are_compared() {
        let old = event(
            json!({"lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}}}),
            &["lines"],
        );
        let mut new = old.clone();
        new["properties"]["lines"]["items"]["properties"]["note"] = json!({"type": "string"});
        new["properties"]["lines"]["items"]["required"] = json!(["sku", "note"]);
        assert_eq!(
            breaking(&old, &new),
            vec!["lines[].note: added as required: events stored without it no longer read"]
        );
    }
}
