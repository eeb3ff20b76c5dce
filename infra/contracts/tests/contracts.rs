//! The published contracts: the committed files are what the code generates, every
//! sample and corpus event validates against its schema, and the gate refuses what it
//! must (checked on a copy of the repository's contract files, changed one way at a
//! time).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::path::{Path, PathBuf};

use orderflow_contracts::{Finding, check, corpus, repository, write};
use serde_json::{Value, json};

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .unwrap_or_else(|e| panic!("the schema does not compile: {e}"))
}

fn errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect()
}

#[test]
fn the_committed_contracts_are_what_the_code_generates_and_pass_the_gate() {
    let findings: Vec<String> = check(&repository()).iter().map(ToString::to_string).collect();
    assert!(
        findings.is_empty(),
        "run `make schemas`, then `make schema-check`:\n{}",
        findings.join("\n")
    );
}

/// Validates an envelope and its data against the committed schemas; returns the
/// problems.
fn validate_event(root: &Path, envelope: &Value) -> Vec<String> {
    let schemas = root.join("events/schemas");
    let envelope_schema = read(&schemas.join("envelope.v1.json"));
    let mut problems = errors(&validator(&envelope_schema), envelope);
    // Readers ignore members they do not know, so the schema allows them; a member the
    // envelope schema does not describe is still a gap in the contract.
    for member in envelope.as_object().unwrap().keys() {
        if envelope_schema["properties"].get(member).is_none() {
            problems.push(format!(
                "envelope member {member} is not in the envelope's schema"
            ));
        }
    }
    let file = format!(
        "{}/{}.v{}.json",
        envelope["aggregateType"].as_str().unwrap(),
        envelope["eventType"].as_str().unwrap(),
        envelope["schemaVersion"]
    );
    let Ok(text) = std::fs::read_to_string(schemas.join(&file)) else {
        return vec![format!("no schema {file}")];
    };
    let schema: Value = serde_json::from_str(&text).unwrap();
    problems.extend(
        errors(&validator(&schema), &envelope["data"])
            .into_iter()
            .map(|e| format!("{file}: {e}")),
    );
    problems
}

#[test]
fn every_sample_and_corpus_event_validates_against_its_schema_at_its_version() {
    let root = repository();
    let mut checked = 0;
    for aggregate in ["order", "inventory", "payment", "shipment", "product"] {
        for entry in std::fs::read_dir(root.join("events").join(aggregate)).unwrap() {
            let path = entry.unwrap().path();
            let envelope = read(&path);
            let problems = validate_event(&root, &envelope);
            assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 29,
        "every event type has a sample, and OrderPlaced v1 too: {checked}"
    );
    let events = corpus(&root);
    assert!(events.len() >= 30, "{}", events.len());
    for (file, line, envelope) in events {
        let problems = validate_event(&root, &envelope);
        assert!(problems.is_empty(), "{file}:{line}: {problems:#?}");
    }
}

#[test]
fn a_schema_refuses_what_the_decoder_refuses() {
    let root = repository();
    let placed = read(&root.join("events/order/OrderPlaced.json"));
    let bad = [
        ("/data/lines/0/quantity", json!(0)),
        ("/data/lines/0/sku", json!("SKU 1")),
        ("/data/total/currency", json!("usd")),
        ("/data/orderId", json!("not-a-uuid")),
        ("/data/placedAt", json!("yesterday")),
        ("/data/shippingAddress/v", json!("1")),
    ];
    for (pointer, value) in bad {
        let mut event = placed.clone();
        *event.pointer_mut(pointer).unwrap() = value.clone();
        assert!(
            !validate_event(&root, &event).is_empty(),
            "{pointer} = {value} passed the schema"
        );
        assert!(
            orderflow_domain::Envelope::<orderflow_domain::order::OrderEvent>::decode(&event.to_string())
                .is_err(),
            "{pointer} = {value} passed the decoder"
        );
    }
    let mut missing = placed;
    missing["data"].as_object_mut().unwrap().remove("total");
    assert!(!validate_event(&root, &missing).is_empty());
}

/// A scratch copy of what the gate reads.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("orderflow-contracts-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let root = repository();
        for part in ["events/schemas", "events/corpus"] {
            copy(&root.join(part), &dir.join(part));
        }
        std::fs::create_dir_all(dir.join("functions/order-api")).unwrap();
        for file in ["functions/order-api/openapi.json", "template.yaml"] {
            std::fs::copy(root.join(file), dir.join(file)).unwrap();
        }
        Self(dir)
    }

    fn edit(&self, file: &str, change: impl FnOnce(&mut Value)) {
        let path = self.0.join(file);
        let mut value = read(&path);
        change(&mut value);
        std::fs::write(&path, serde_json::to_string_pretty(&value).unwrap() + "\n").unwrap();
    }

    fn findings(&self) -> Vec<Finding> {
        check(&self.0)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_dir() {
            copy(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

const CANCELLED: &str = "events/schemas/order/OrderCancelled.v1.json";

#[test]
fn a_scratch_copy_passes_the_gate_as_the_repository_does() {
    assert_eq!(Scratch::new("clean").findings(), vec![]);
}

#[test]
fn a_member_the_code_no_longer_has_is_breaking_and_write_will_not_publish_over_it() {
    let scratch = Scratch::new("removed");
    // The published version had a member the code no longer writes.
    scratch.edit(CANCELLED, |s| {
        s["properties"]["operator"] = json!({"type": "string"});
        s["required"].as_array_mut().unwrap().push(json!("operator"));
    });
    let findings = scratch.findings();
    assert!(
        matches!(&findings[..], [Finding::Breaking { path, changes }] if path == CANCELLED && changes[0].path == "operator"),
        "{findings:#?}"
    );
    let published = std::fs::read_to_string(scratch.0.join(CANCELLED)).unwrap();
    let (written, refused) = write(&scratch.0).unwrap();
    assert!(written.is_empty(), "{written:?}");
    assert_eq!(refused.len(), 1);
    assert_eq!(
        std::fs::read_to_string(scratch.0.join(CANCELLED)).unwrap(),
        published
    );
}

#[test]
fn a_retyped_member_is_breaking() {
    let scratch = Scratch::new("retyped");
    scratch.edit(CANCELLED, |s| {
        s["properties"]["detail"]["type"] = json!("integer")
    });
    assert!(
        matches!(&scratch.findings()[..], [Finding::Breaking { changes, .. }] if changes[0].path == "detail"),
        "{:#?}",
        scratch.findings()
    );
}

#[test]
fn an_optional_member_the_code_added_is_only_stale_until_written() {
    let scratch = Scratch::new("additive");
    // The published version lacks `detail`: the code added it, optional.
    scratch.edit(CANCELLED, |s| {
        s["properties"].as_object_mut().unwrap().remove("detail");
    });
    let findings = scratch.findings();
    assert!(
        matches!(&findings[..], [Finding::Stale { path, changes }] if path == CANCELLED && changes.len() == 1 && !changes[0].breaking),
        "{findings:#?}"
    );
    let (written, refused) = write(&scratch.0).unwrap();
    assert_eq!(written, vec![CANCELLED.to_owned()]);
    assert!(refused.is_empty());
    assert_eq!(scratch.findings(), vec![]);
}

#[test]
fn a_new_required_member_is_breaking() {
    let scratch = Scratch::new("required");
    // The published version lacks `reason`, which the code requires.
    scratch.edit(CANCELLED, |s| {
        s["properties"].as_object_mut().unwrap().remove("reason");
        s["required"] = json!([]);
    });
    assert!(
        matches!(&scratch.findings()[..], [Finding::Breaking { changes, .. }] if changes[0].path == "reason"),
        "{:#?}",
        scratch.findings()
    );
}

#[test]
fn published_versions_stay_and_each_is_in_the_corpus() {
    let scratch = Scratch::new("history");
    std::fs::remove_file(scratch.0.join("events/schemas/order/OrderPlaced.v1.json")).unwrap();
    assert_eq!(
        scratch.findings(),
        vec![Finding::VersionGone {
            path: "events/schemas/order/OrderPlaced.v1.json".into()
        }]
    );
    let scratch = Scratch::new("corpus");
    std::fs::remove_file(scratch.0.join("events/corpus/order-delivered-placed-at-v1.jsonl")).unwrap();
    assert_eq!(
        scratch.findings(),
        vec![Finding::NotInCorpus {
            event_type: "OrderPlaced".into(),
            version: 1
        }]
    );
    let scratch = Scratch::new("future");
    std::fs::copy(
        scratch.0.join("events/schemas/order/OrderPlaced.v3.json"),
        scratch.0.join("events/schemas/order/OrderPlaced.v4.json"),
    )
    .unwrap();
    assert!(
        scratch.findings().contains(&Finding::Unreadable {
            path: "events/schemas/order/OrderPlaced.v4.json".into()
        }),
        "{:#?}",
        scratch.findings()
    );
}

#[test]
fn a_consumer_must_declare_every_event_type_routed_to_it() {
    let scratch = Scratch::new("consumer");
    let template = scratch.0.join("template.yaml");
    let text = std::fs::read_to_string(&template).unwrap();
    let routed = r#"{"source": ["orderflow.order"], "detail-type": ["OrderConfirmed", "OrderCancelled"]}"#;
    assert!(text.contains(routed), "the shipping rule is as this test expects");
    std::fs::write(
        &template,
        text.replace(
            routed,
            r#"{"source": ["orderflow.order"], "detail-type": ["OrderConfirmed", "OrderCancelled", "OrderPlaced"]}"#,
        ),
    )
    .unwrap();
    assert_eq!(
        scratch.findings(),
        vec![Finding::Consumer {
            consumer: "shipping".into(),
            event_type: "OrderPlaced".into(),
            problem: "routed to it by the template, but not declared in its READS".into(),
        }]
    );
}

#[test]
fn every_route_the_template_declares_is_described_with_its_scope() {
    let template =
        orderflow_provision::template::Template::load(&repository().join("template.yaml")).unwrap();
    let routes = template.http_routes("OrderHttpApi").unwrap();
    let document = order_api::openapi_document();
    let mut described = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            described += 1;
            let route = routes
                .iter()
                .find(|r| r.method == method.to_uppercase() && r.path == *path)
                .unwrap_or_else(|| {
                    panic!("{method} {path} is described but the template has no route for it")
                });
            let scopes: Vec<&str> = operation["security"][0]["bearer"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap())
                .collect();
            assert_eq!(
                scopes.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                route.scopes,
                "{method} {path}: the description's scopes are the template's"
            );
        }
    }
    assert_eq!(described, routes.len(), "every template route is described");
}

/// Validates `instance` against `schema` (which may point into the OpenAPI document's
/// components); returns the problems.
fn against_openapi(document: &Value, schema: &Value, instance: &Value) -> Vec<String> {
    let wrapper = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": document["components"],
        "allOf": [schema],
    });
    errors(&validator(&wrapper), instance)
}

#[test]
fn every_trigger_sample_carries_what_the_contracts_say() {
    let root = repository();
    // Queue messages: EventBridge events whose detail is an envelope.
    let mut envelopes = 0;
    for entry in std::fs::read_dir(root.join("events/sqs")).unwrap() {
        let path = entry.unwrap().path();
        for record in read(&path)["Records"].as_array().unwrap() {
            let event: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            let detail = &event["detail"];
            assert_eq!(event["detail-type"], detail["eventType"], "{}", path.display());
            assert_eq!(
                event["source"].as_str().unwrap(),
                format!("orderflow.{}", detail["aggregateType"].as_str().unwrap()),
                "{}",
                path.display()
            );
            let problems = validate_event(&root, detail);
            assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
            envelopes += 1;
        }
    }
    // Stream records: the store's item, whose body is the envelope.
    for record in read(&root.join("events/relay/stream-batch.json"))["Records"]
        .as_array()
        .unwrap()
    {
        let body = record["dynamodb"]["NewImage"]["body"]["S"].as_str().unwrap();
        let problems = validate_event(&root, &serde_json::from_str(body).unwrap());
        assert!(problems.is_empty(), "stream-batch.json: {problems:#?}");
        envelopes += 1;
    }
    assert!(envelopes >= 14, "{envelopes}");
    // API requests: a described operation, with described parameters and a body its
    // schema accepts.
    let document = order_api::openapi_document();
    for entry in std::fs::read_dir(root.join("events/api")).unwrap() {
        let path = entry.unwrap().path();
        let request = read(&path);
        let (method, route) = request["routeKey"].as_str().unwrap().split_once(' ').unwrap();
        let operation = &document["paths"][route][method.to_lowercase()];
        assert!(
            operation.is_object(),
            "{}: {method} {route} is not described",
            path.display()
        );
        let parameter = |name: &str, location: &str| {
            operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name && p["in"] == location)
                .unwrap_or_else(|| panic!("{}: {location} parameter {name} is not described", path.display()))
                .clone()
        };
        for (name, value) in request["pathParameters"].as_object().into_iter().flatten() {
            let problems = against_openapi(&document, &parameter(name, "path")["schema"], value);
            assert!(problems.is_empty(), "{}: {name}: {problems:#?}", path.display());
        }
        for pair in request["rawQueryString"]
            .as_str()
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let name = pair.split('=').next().unwrap();
            parameter(name, "query");
        }
        if let Some(body) = request["body"].as_str().filter(|b| !b.is_empty()) {
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
            let problems = against_openapi(&document, schema, &serde_json::from_str(body).unwrap());
            assert!(problems.is_empty(), "{}: the body: {problems:#?}", path.display());
        }
    }
}

#[test]
fn every_request_example_in_the_description_is_valid_against_its_schema() {
    let document = order_api::openapi_document();
    let mut examples = 0;
    for (route, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let media = &operation["requestBody"]["content"]["application/json"];
            if let Some(example) = media.get("example") {
                let problems = against_openapi(&document, &media["schema"], example);
                assert!(problems.is_empty(), "{method} {route}: {problems:#?}");
                examples += 1;
            }
        }
    }
    assert_eq!(examples, 5, "every operation with a body has an example");
}

/// `git` in `dir`, as a throwaway identity.
fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=gate",
            "-c",
            "user.email=gate@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn a_version_published_on_main_cannot_be_edited_in_place_even_with_the_code() {
    let scratch = Scratch::new("in-place");
    git(&scratch.0, &["init", "--quiet", "--initial-branch=main"]);
    git(&scratch.0, &["add", "-A"]);
    git(&scratch.0, &["commit", "--quiet", "-m", "published"]);
    assert_eq!(
        orderflow_contracts::main_branch(&scratch.0).as_deref(),
        Some("main")
    );
    assert_eq!(orderflow_contracts::published(&scratch.0, "main"), vec![]);

    // On a branch, the file is changed as the code would be changed with it (the
    // generated file would then match): a retyped member of a published version.
    git(&scratch.0, &["checkout", "--quiet", "-b", "change"]);
    scratch.edit(CANCELLED, |s| {
        s["properties"]["detail"]["type"] = json!("integer")
    });
    git(&scratch.0, &["commit", "--quiet", "-am", "retype detail"]);
    let findings = orderflow_contracts::published(&scratch.0, "main");
    assert!(
        matches!(&findings[..], [Finding::EditedInPlace { path, changes, .. }] if path == CANCELLED && changes[0].path == "detail"),
        "{findings:#?}"
    );
    assert!(
        findings[0].to_string().contains("edited in place"),
        "{}",
        findings[0]
    );

    // A compatible change to the same version passes.
    git(&scratch.0, &["checkout", "--quiet", "main"]);
    scratch.edit(CANCELLED, |s| {
        s["description"] = json!("A cancellation, with a better description.")
    });
    assert_eq!(orderflow_contracts::published(&scratch.0, "main"), vec![]);
}
