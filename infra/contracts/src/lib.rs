//! The published contracts of orderflow and the gate that keeps them.
//!
//! - The order API's OpenAPI 3.1 description (`functions/order-api/openapi.json`),
//!   generated from the router's own table.
//! - The JSON Schema of every event type at every schema version ever written
//!   (`events/schemas/<aggregate>/<EventType>.v<N>.json`) and of the envelope
//!   (`events/schemas/envelope.v1.json`), generated from the types serde reads.
//!
//! [`check()`] is the gate (`make schema-check`): the committed files are what the code
//! generates; a schema changes at its version only compatibly ([`compat`]), and a
//! breaking change needs a new version whose upcaster from the previous one exists and
//! is exercised by the historical corpus (`events/corpus/`); every consumer reads every
//! event type the template routes to it, at the version producers write; and each
//! committed version file changes only compatibly from every copy of it on the main
//! branch's history ([`published`]), so a version cannot be edited in place by
//! changing the code and the file together. [`write()`]
//! (`make schemas`) writes what the code generates, but never over a published version
//! with a breaking change.

pub mod compat;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use orderflow_domain::schema::{
    ENVELOPE_VERSION, EVENTS, EventSchema, Reads, WireEnvelope, file_of, root, upcasters,
};
use orderflow_provision::template::Template;
use serde_json::{Value, json};

/// The repository's root, found from this crate's location.
#[must_use]
pub fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the OpenAPI description is kept, from the repository's root.
pub const OPENAPI: &str = "functions/order-api/openapi.json";
/// Where the event schemas are kept, from the repository's root.
pub const SCHEMAS: &str = "events/schemas";
/// Where the historical corpus is kept, from the repository's root.
pub const CORPUS: &str = "events/corpus";

/// Every consumer behind a rule of the template, by the rule target's `Id`, with what it
/// declares it reads.
pub const CONSUMERS: &[(&str, &[Reads])] = &[
    ("inventory", inventory::READS),
    ("payment", payment::READS),
    ("shipping", shipping::READS),
    ("order-saga", order_saga::READS),
    ("projector", projector::READS),
];

/// Rule targets that keep what they are sent whole and read no event's data: the
/// replay archive's queue, and the relay's quarantine (its notices are the relay's
/// own, `StreamRecordQuarantined`, read by operators, not a domain event).
pub const FORWARDERS: &[&str] = &["replay", "quarantine"];

/// One file the code generates.
#[derive(Debug, Clone)]
pub struct Generated {
    /// From the repository's root.
    pub path: String,
    /// Its content (pretty JSON and a newline).
    pub content: String,
    /// The event whose schema it is, if one.
    pub event: Option<EventSchema>,
}

fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// An event's schema file: its generated schema, titled and marked with its type,
/// aggregate and version.
#[must_use]
pub fn event_schema(event: &EventSchema) -> Value {
    let mut schema = (event.schema)().to_value();
    schema["title"] = json!(format!("{} v{}", event.event_type, event.version));
    schema["x-event-type"] = json!(event.event_type);
    schema["x-aggregate-type"] = json!(event.aggregate_type);
    schema["x-schema-version"] = json!(event.version);
    schema
}

/// Everything the code generates: the OpenAPI description, the envelope's schema and
/// every event type's at its current version.
#[must_use]
pub fn generated() -> Vec<Generated> {
    let mut envelope = root::<WireEnvelope>().to_value();
    envelope["title"] = json!(format!("Envelope v{ENVELOPE_VERSION}"));
    let mut files = vec![
        Generated {
            path: OPENAPI.to_owned(),
            content: pretty(&order_api::openapi_document()),
            event: None,
        },
        Generated {
            path: format!("{SCHEMAS}/envelope.v{ENVELOPE_VERSION}.json"),
            content: pretty(&envelope),
            event: None,
        },
    ];
    files.extend(EVENTS.iter().map(|event| Generated {
        path: format!("{SCHEMAS}/{}", event.file()),
        content: pretty(&event_schema(event)),
        event: Some(*event),
    }));
    files
}

/// What the gate found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A file is not what the code generates, and the difference is compatible.
    Stale {
        /// The file.
        path: String,
        /// How it differs (empty for a description or the OpenAPI document).
        changes: Vec<compat::Change>,
    },
    /// A published schema version would change in a way old events or old readers
    /// break on.
    Breaking {
        /// The file.
        path: String,
        /// The breaking differences.
        changes: Vec<compat::Change>,
    },
    /// A schema version the code writes has no file yet.
    Unpublished {
        /// The file it goes in.
        path: String,
    },
    /// A version was bumped without a way from the previous one.
    NoUpcaster {
        /// The event type.
        event_type: String,
        /// The version with no way forward.
        from: u32,
    },
    /// A version of an event type once published is gone.
    VersionGone {
        /// The file that should still be there.
        path: String,
    },
    /// A schema file names an event type or version the code no longer reads.
    Unreadable {
        /// The file.
        path: String,
    },
    /// A consumer would receive an event it does not declare reading, or at a version
    /// beyond what it declares.
    Consumer {
        /// The rule target's id.
        consumer: String,
        /// The event type.
        event_type: String,
        /// What is wrong.
        problem: String,
    },
    /// A schema version as published on the main branch was edited in place in a way
    /// old events or old readers break on (code and file changed together).
    EditedInPlace {
        /// The file.
        path: String,
        /// The main-branch commit whose copy it breaks.
        commit: String,
        /// The breaking differences.
        changes: Vec<compat::Change>,
    },
    /// The historical corpus holds no event of a published version.
    NotInCorpus {
        /// The event type.
        event_type: String,
        /// The version.
        version: u32,
    },
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list =
            |changes: &[compat::Change]| changes.iter().map(|c| format!("\n    - {c}")).collect::<String>();
        match self {
            Self::Stale { path, changes } => write!(
                f,
                "{path} is not what the code generates (compatible); run `make schemas`{}",
                list(changes)
            ),
            Self::Breaking { path, changes } => write!(
                f,
                "{path}: a breaking change to a published version; bump the event's schema version, add an upcaster from this one and a corpus event at it{}",
                list(changes)
            ),
            Self::Unpublished { path } => write!(f, "{path} is missing; run `make schemas`"),
            Self::NoUpcaster { event_type, from } => write!(
                f,
                "{event_type} has no upcaster from v{from}: events stored at v{from} could not be read"
            ),
            Self::VersionGone { path } => {
                write!(f, "{path} is gone: published versions are kept forever")
            }
            Self::Unreadable { path } => write!(
                f,
                "{path}: the code no longer writes or upcasts this event type and version; removing an event type needs its events upcast or migrated first"
            ),
            Self::Consumer {
                consumer,
                event_type,
                problem,
            } => write!(f, "consumer {consumer}, {event_type}: {problem}"),
            Self::EditedInPlace {
                path,
                commit,
                changes,
            } => write!(
                f,
                "{path}: edited in place, breaking the version published on the main branch (commit {}); published versions never change: bump the event's schema version instead{}",
                commit.get(..12).unwrap_or(commit),
                list(changes)
            ),
            Self::NotInCorpus { event_type, version } => write!(
                f,
                "{CORPUS}/ holds no {event_type} v{version}: add one (published versions are replayed in CI)"
            ),
        }
    }
}

/// The event type and version of a file under `events/schemas/`.
fn parse_file(relative: &str) -> Option<(String, String, u32)> {
    let (aggregate, file) = relative.split_once('/')?;
    let (event_type, version) = file.strip_suffix(".json")?.rsplit_once(".v")?;
    Some((aggregate.to_owned(), event_type.to_owned(), version.parse().ok()?))
}

/// Every event schema file committed under `events/schemas/`, relative to it.
fn committed_event_files(root: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let base = root.join(SCHEMAS);
    for aggregate in std::fs::read_dir(&base).into_iter().flatten().flatten() {
        if !aggregate.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(aggregate.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = file.file_name().to_string_lossy().into_owned();
            files.push(format!("{}/{name}", aggregate.file_name().to_string_lossy()));
        }
    }
    files.sort();
    files
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// The gate: everything wrong with the committed contracts under `root`.
#[must_use]
pub fn check(root: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    for file in generated() {
        let path = root.join(&file.path);
        let Ok(committed) = std::fs::read_to_string(&path) else {
            findings.push(Finding::Unpublished { path: file.path });
            continue;
        };
        if committed == file.content {
            continue;
        }
        let changes = match read_json(&path) {
            Some(old) => compat::diff(&old, &serde_json::from_str(&file.content).unwrap_or_default()),
            None => vec![],
        };
        let is_schema = file.path.starts_with(SCHEMAS);
        if is_schema && changes.iter().any(|c| c.breaking) {
            findings.push(Finding::Breaking {
                path: file.path,
                changes: changes.into_iter().filter(|c| c.breaking).collect(),
            });
        } else {
            findings.push(Finding::Stale {
                path: file.path,
                changes,
            });
        }
    }
    findings.extend(history(root));
    if let Some(base) = main_branch(root) {
        findings.extend(published(root, &base));
    }
    findings.extend(consumers(&Template::load(&root.join("template.yaml")).ok()));
    findings.extend(corpus_coverage(root));
    findings
}

/// The main branch to compare published versions with: `ORDERFLOW_CONTRACTS_BASE`, else
/// `origin/main`, else `main`; `None` when `root` is no git work tree (a scratch copy) or
/// none resolves.
#[must_use]
pub fn main_branch(root: &Path) -> Option<String> {
    let candidates = std::env::var("ORDERFLOW_CONTRACTS_BASE")
        .ok()
        .filter(|b| !b.trim().is_empty())
        .map_or_else(|| vec!["origin/main".to_owned(), "main".to_owned()], |b| vec![b]);
    candidates.into_iter().find(|base| {
        git(
            root,
            &["rev-parse", "--verify", "--quiet", &format!("{base}^{{commit}}")],
        )
        .is_some()
    })
}

/// `git -C root <args>`'s output, `None` when it fails.
fn git(root: &Path, args: &[&str]) -> Option<String> {
    let output = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Every committed schema version against each copy of it the history of `base` holds:
/// a version once published changes only compatibly, whatever the code now generates.
#[must_use]
pub fn published(root: &Path, base: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for file in committed_event_files(root) {
        let path = format!("{SCHEMAS}/{file}");
        let Some(now) = read_json(&root.join(&path)) else {
            continue;
        };
        let commits = git(root, &["log", "--format=%H", base, "--", &path]).unwrap_or_default();
        let mut seen = BTreeSet::new();
        for commit in commits.lines() {
            let Some(text) = git(root, &["show", &format!("{commit}:{path}")]) else {
                continue; // the commit removed it
            };
            if !seen.insert(text.clone()) {
                continue;
            }
            let Ok(then) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let breaking: Vec<_> = compat::diff(&then, &now)
                .into_iter()
                .filter(|c| c.breaking)
                .collect();
            if !breaking.is_empty() {
                findings.push(Finding::EditedInPlace {
                    path: path.clone(),
                    commit: commit.to_owned(),
                    changes: breaking,
                });
                break;
            }
        }
    }
    findings
}

/// Every version of every event type stays readable: published files are kept, each
/// version below the current one has an upcaster to the next.
fn history(root: &Path) -> Vec<Finding> {
    let mut findings = Vec::new();
    let committed: BTreeSet<String> = committed_event_files(root).into_iter().collect();
    let current: BTreeMap<&str, &EventSchema> = EVENTS.iter().map(|e| (e.event_type, e)).collect();
    for event in EVENTS {
        for from in 1..event.version {
            let file = file_of(event.aggregate_type, event.event_type, from);
            if !committed.contains(&file) {
                findings.push(Finding::VersionGone {
                    path: format!("{SCHEMAS}/{file}"),
                });
            }
            if !upcasters().any(|u| u.event_type == event.event_type && u.from_version == from) {
                findings.push(Finding::NoUpcaster {
                    event_type: event.event_type.to_owned(),
                    from,
                });
            }
        }
    }
    for file in &committed {
        let readable = parse_file(file).is_some_and(|(aggregate, event_type, version)| {
            current
                .get(event_type.as_str())
                .is_some_and(|e| e.aggregate_type == aggregate && version <= e.version)
        });
        if !readable {
            findings.push(Finding::Unreadable {
                path: format!("{SCHEMAS}/{file}"),
            });
        }
    }
    findings
}

/// The event types the template routes to each rule target.
///
/// # Errors
/// A sentence when the template's rules cannot be read.
pub fn routed(template: &Template) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for rule in template.logical_ids("AWS::Events::Rule") {
        let properties = template.properties(rule);
        let Some(pattern) = properties.get("EventPattern") else {
            continue; // a schedule
        };
        let sources: Vec<&str> = pattern
            .get("source")
            .and_then(|s| s.as_sequence())
            .map(|s| s.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        let named: Option<Vec<&str>> = pattern
            .get("detail-type")
            .and_then(|d| d.as_sequence())
            .map(|d| d.iter().filter_map(|v| v.as_str()).collect());
        let types: BTreeSet<String> = match named {
            Some(named) => named.into_iter().map(str::to_owned).collect(),
            None if sources.is_empty() => EVENTS.iter().map(|e| e.event_type.to_owned()).collect(),
            None => EVENTS
                .iter()
                .filter(|e| sources.contains(&format!("orderflow.{}", e.aggregate_type).as_str()))
                .map(|e| e.event_type.to_owned())
                .collect(),
        };
        let targets = properties
            .get("Targets")
            .and_then(|t| t.as_sequence())
            .ok_or_else(|| format!("rule {rule} has no Targets"))?;
        for target in targets {
            let id = target
                .get("Id")
                .and_then(|i| i.as_str())
                .ok_or_else(|| format!("a target of rule {rule} has no Id"))?;
            routes
                .entry(id.to_owned())
                .or_default()
                .extend(types.iter().cloned());
        }
    }
    Ok(routes)
}

/// Every consumer reads what the template routes to it, at the version producers write.
fn consumers(template: &Option<Template>) -> Vec<Finding> {
    let Some(template) = template else {
        return vec![Finding::Consumer {
            consumer: "template.yaml".into(),
            event_type: "-".into(),
            problem: "the template could not be read".into(),
        }];
    };
    let routes = match routed(template) {
        Ok(routes) => routes,
        Err(problem) => {
            return vec![Finding::Consumer {
                consumer: "template.yaml".into(),
                event_type: "-".into(),
                problem,
            }];
        }
    };
    let mut findings = Vec::new();
    for (target, types) in routes {
        if FORWARDERS.contains(&target.as_str()) {
            continue;
        }
        let Some((_, reads)) = CONSUMERS.iter().find(|(id, _)| *id == target) else {
            findings.push(Finding::Consumer {
                consumer: target.clone(),
                event_type: "-".into(),
                problem: "a rule routes events to it, but it declares nothing it reads".into(),
            });
            continue;
        };
        for event_type in types {
            let Some(producer) = EVENTS.iter().find(|e| e.event_type == event_type) else {
                findings.push(Finding::Consumer {
                    consumer: target.clone(),
                    event_type,
                    problem: "a rule routes an event type no producer writes".into(),
                });
                continue;
            };
            match reads.iter().find(|r| r.event_type == event_type) {
                None => findings.push(Finding::Consumer {
                    consumer: target.clone(),
                    event_type,
                    problem: "routed to it by the template, but not declared in its READS".into(),
                }),
                Some(r) if r.up_to < producer.version => findings.push(Finding::Consumer {
                    consumer: target.clone(),
                    event_type,
                    problem: format!(
                        "producers write v{} but it declares reading up to v{}",
                        producer.version, r.up_to
                    ),
                }),
                Some(_) => {}
            }
        }
    }
    for (consumer, reads) in CONSUMERS {
        for r in *reads {
            let known = EVENTS.iter().find(|e| e.event_type == r.event_type);
            if known.is_none_or(|e| r.up_to > e.version) {
                findings.push(Finding::Consumer {
                    consumer: (*consumer).to_owned(),
                    event_type: r.event_type.to_owned(),
                    problem: format!("declares reading v{}, which no producer writes", r.up_to),
                });
            }
        }
    }
    findings
}

/// Every event in the historical corpus, as `(file, line, envelope)`.
#[must_use]
pub fn corpus(root: &Path) -> Vec<(String, usize, Value)> {
    let mut events = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(CORPUS))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (line, json) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            events.push((
                name.clone(),
                line + 1,
                serde_json::from_str(json).unwrap_or(Value::Null),
            ));
        }
    }
    events
}

/// Every published version of every event type has an event in the corpus.
fn corpus_coverage(root: &Path) -> Vec<Finding> {
    let held: BTreeSet<(String, u32)> = corpus(root)
        .into_iter()
        .filter_map(|(_, _, e)| {
            Some((
                e.get("eventType")?.as_str()?.to_owned(),
                u32::try_from(e.get("schemaVersion")?.as_u64()?).ok()?,
            ))
        })
        .collect();
    committed_event_files(root)
        .iter()
        .filter_map(|f| parse_file(f))
        .filter(|(_, event_type, version)| !held.contains(&(event_type.clone(), *version)))
        .map(|(_, event_type, version)| Finding::NotInCorpus { event_type, version })
        .collect()
}

/// Writes what the code generates under `root`, except a breaking change over a
/// published version, which is returned instead.
///
/// # Errors
/// When a file cannot be written.
pub fn write(root: &Path) -> std::io::Result<(Vec<String>, Vec<Finding>)> {
    let mut written = Vec::new();
    let mut refused = Vec::new();
    for file in generated() {
        let path = root.join(&file.path);
        let committed = std::fs::read_to_string(&path).ok();
        if committed.as_deref() == Some(file.content.as_str()) {
            continue;
        }
        if file.path.starts_with(SCHEMAS)
            && let Some(old) = committed
                .as_deref()
                .and_then(|c| serde_json::from_str::<Value>(c).ok())
        {
            let breaking: Vec<_> =
                compat::diff(&old, &serde_json::from_str(&file.content).unwrap_or_default())
                    .into_iter()
                    .filter(|c| c.breaking)
                    .collect();
            if !breaking.is_empty() {
                refused.push(Finding::Breaking {
                    path: file.path,
                    changes: breaking,
                });
                continue;
            }
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, &file.content)?;
        written.push(file.path);
    }
    Ok((written, refused))
}
