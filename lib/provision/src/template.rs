//! The template model: what `template.yaml` declares, read without any emulator.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

use crate::{ProvisionError, messaging};

/// The parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    resources: BTreeMap<String, Resource>,
    globals: Value,
    parameters: BTreeMap<String, Value>,
    conditions: BTreeMap<String, Value>,
    overrides: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Resource {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(default)]
    properties: Value,
    #[serde(default)]
    metadata: Value,
}

/// A function's SQS event source, as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsMapping {
    /// The function's logical id.
    pub function: String,
    /// The binary it runs (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// The queue's logical id.
    pub queue: String,
    /// Messages per invocation.
    pub batch_size: u32,
    /// Seconds to gather a batch.
    pub batching_window_seconds: u32,
    /// Whether the function reports partial batch failures.
    pub report_batch_item_failures: bool,
    /// `ScalingConfig.MaximumConcurrency`: the most batches in flight at once.
    pub maximum_concurrency: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document {
    resources: BTreeMap<String, Resource>,
    #[serde(default)]
    globals: Value,
    #[serde(default)]
    parameters: BTreeMap<String, Value>,
    #[serde(default)]
    conditions: BTreeMap<String, Value>,
}

/// An HTTP API route, as the template declares it on a function's `HttpApi` event and
/// the API's route settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, with `{name}` parameters.
    pub path: String,
    /// The OAuth scopes the JWT authorizer requires (`AuthorizationScopes`).
    pub scopes: Vec<String>,
    /// The route's throttle: its `RouteSettings` (on the event, or the API's for its
    /// route key), else the API's `DefaultRouteSettings`.
    pub throttle: Option<Throttle>,
}

/// A token bucket: `burst` requests at once, refilled at `rate` a second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// `ThrottlingBurstLimit`.
    pub burst: u64,
    /// `ThrottlingRateLimit`, whole requests per second.
    pub rate: u64,
}

impl HttpRoute {
    /// The route key, as API Gateway writes it: `POST /orders`.
    #[must_use]
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether `method` and `path` are this route (`{name}` matches one segment).
    #[must_use]
    pub fn matches(&self, method: &str, path: &str) -> bool {
        let mut ours = self.path.trim_matches('/').split('/');
        let mut theirs = path.trim_matches('/').split('/');
        self.method.eq_ignore_ascii_case(method)
            && loop {
                match (ours.next(), theirs.next()) {
                    (None, None) => break true,
                    (Some(p), Some(s)) if p.starts_with('{') && p.ends_with('}') && !s.is_empty() => {}
                    (Some(p), Some(s)) if p == s => {}
                    _ => break false,
                }
            }
    }
}

/// A DynamoDB table as the template declares it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableSpec {
    /// Attribute types of the key attributes.
    pub attribute_definitions: Vec<AttributeSpec>,
    /// The primary key.
    pub key_schema: Vec<KeySpec>,
    /// `PAY_PER_REQUEST` or `PROVISIONED`.
    #[serde(default)]
    pub billing_mode: Option<String>,
    /// Global secondary indexes.
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexSpec>,
    /// The stream, if any.
    #[serde(default)]
    pub stream_specification: Option<StreamSpec>,
    /// TTL, if any.
    #[serde(default)]
    pub time_to_live_specification: Option<TtlSpec>,
    #[serde(flatten)]
    other: BTreeMap<String, Value>,
}

/// One attribute definition.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeSpec {
    /// Name.
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// One key element.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySpec {
    /// Name.
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// A global secondary index.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexSpec {
    /// Name.
    pub index_name: String,
    /// Its key.
    pub key_schema: Vec<KeySpec>,
    /// What it projects.
    pub projection: ProjectionSpec,
}

/// An index projection.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionSpec {
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    /// With `INCLUDE`.
    #[serde(default)]
    pub non_key_attributes: Vec<String>,
}

/// A table stream.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamSpec {
    /// `NEW_IMAGE`, …
    pub stream_view_type: String,
}

/// A TTL attribute.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlSpec {
    /// The attribute holding epoch seconds.
    pub attribute_name: String,
    /// Whether TTL is on.
    pub enabled: bool,
}

/// Properties that matter only in AWS; local runs skip them.
const AWS_ONLY_TABLE_PROPERTIES: &[&str] = &[
    "SSESpecification",
    "PointInTimeRecoverySpecification",
    "Tags",
    "DeletionProtectionEnabled",
    "ContributorInsightsSpecification",
    "TableClass",
];

impl Template {
    /// The repository's `template.yaml`, found from this crate's location.
    #[must_use]
    pub fn default_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml")
    }

    /// Reads and parses a template.
    ///
    /// # Errors
    /// [`ProvisionError::Read`], [`ProvisionError::Parse`].
    pub fn load(path: &Path) -> Result<Self, ProvisionError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProvisionError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses template text.
    ///
    /// # Errors
    /// [`ProvisionError::Parse`].
    pub fn parse(text: &str) -> Result<Self, ProvisionError> {
        let document: Document =
            serde_norway::from_str(text).map_err(|e| ProvisionError::Parse(e.to_string()))?;
        Ok(Self {
            resources: document.resources,
            globals: document.globals,
            parameters: document.parameters,
            conditions: document.conditions,
            overrides: BTreeMap::new(),
        })
    }

    /// The template deployed with `Key=Value` parameter overrides, as
    /// `sam deploy --parameter-overrides` takes them.
    ///
    /// # Errors
    /// [`ProvisionError::Unsupported`] for an unknown parameter or a value outside its
    /// `AllowedValues`.
    pub fn with_parameters<'a>(
        mut self,
        overrides: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, ProvisionError> {
        for pair in overrides {
            let unsupported = |why: &str| ProvisionError::Unsupported {
                logical_id: pair.to_owned(),
                property: why.to_owned(),
            };
            let (name, value) = pair.split_once('=').ok_or_else(|| unsupported("not Key=Value"))?;
            let parameter = self
                .parameters
                .get(name)
                .ok_or_else(|| unsupported("no such parameter"))?;
            if let Some(allowed) = parameter.get("AllowedValues").and_then(Value::as_sequence)
                && !allowed.iter().any(|a| scalar(a).as_deref() == Some(value))
            {
                return Err(unsupported("a value outside AllowedValues"));
            }
            self.overrides.insert(name.to_owned(), value.to_owned());
        }
        Ok(self)
    }

    /// A parameter's value: its override, else its default.
    #[must_use]
    pub fn parameter(&self, name: &str) -> Option<String> {
        self.overrides
            .get(name)
            .cloned()
            .or_else(|| self.parameters.get(name)?.get("Default").and_then(scalar))
    }

    /// Resolves a scalar property locally: text and numbers as they are, `!Ref` to a
    /// resource's local name (`<prefix>-<LogicalId>`) or a parameter's value, and
    /// `!If [Condition, a, b]` over `!Equals` conditions.
    ///
    /// # Errors
    /// [`ProvisionError::Unsupported`] for anything else.
    pub fn resolve(&self, prefix: &str, what: &str, value: &Value) -> Result<String, ProvisionError> {
        let unsupported = |detail: &str| ProvisionError::Unsupported {
            logical_id: what.to_owned(),
            property: detail.to_owned(),
        };
        if let Some(text) = scalar(value) {
            return Ok(text);
        }
        if let Value::Tagged(tagged) = value
            && tagged.tag == "If"
        {
            let branches = tagged.value.as_sequence().map(Vec::as_slice).unwrap_or_default();
            let [condition, then, otherwise] = branches else {
                return Err(unsupported("!If takes [Condition, a, b]"));
            };
            let condition = condition
                .as_str()
                .ok_or_else(|| unsupported("!If condition name"))?;
            let chosen = if self.condition(prefix, condition)? {
                then
            } else {
                otherwise
            };
            return self.resolve(prefix, what, chosen);
        }
        match messaging::referenced(value) {
            Some(id) if self.resources.contains_key(&id) => Ok(messaging::local_name(prefix, &id)),
            Some(id) => self
                .parameter(&id)
                .ok_or_else(|| unsupported(&format!("{id} (a parameter without a default)"))),
            None => Err(unsupported("neither text, a number, !Ref nor !If")),
        }
    }

    fn condition(&self, prefix: &str, name: &str) -> Result<bool, ProvisionError> {
        let unsupported = || ProvisionError::Unsupported {
            logical_id: name.to_owned(),
            property: "a condition other than !Equals [a, b]".to_owned(),
        };
        match self.conditions.get(name) {
            Some(Value::Tagged(tagged)) if tagged.tag == "Equals" => {
                let sides = tagged.value.as_sequence().ok_or_else(unsupported)?;
                let [a, b] = sides.as_slice() else {
                    return Err(unsupported());
                };
                Ok(self.resolve(prefix, name, a)? == self.resolve(prefix, name, b)?)
            }
            _ => Err(unsupported()),
        }
    }

    /// The logical ids of every resource of a CloudFormation type.
    #[must_use]
    pub fn logical_ids(&self, kind: &str) -> Vec<&str> {
        self.resources
            .iter()
            .filter(|(_, r)| r.kind == kind)
            .map(|(id, _)| id.as_str())
            .collect()
    }

    /// Every `AWS::Serverless::Function` with an SQS event source: which binary reads
    /// which queue, with what batch size and batching window, as Lambda's event source
    /// mapping will.
    ///
    /// # Errors
    /// [`ProvisionError::Unsupported`] for an SQS event whose queue is not a reference.
    pub fn sqs_mappings(&self) -> Result<Vec<SqsMapping>, ProvisionError> {
        let mut mappings = Vec::new();
        for (logical_id, resource) in &self.resources {
            if resource.kind != "AWS::Serverless::Function" {
                continue;
            }
            let binary = resource
                .metadata
                .get("BuildProperties")
                .and_then(|p| p.get("Binary"))
                .and_then(Value::as_str)
                .unwrap_or(logical_id)
                .to_owned();
            let Some(events) = resource.properties.get("Events").and_then(Value::as_mapping) else {
                continue;
            };
            for event in events.values() {
                if event.get("Type").and_then(Value::as_str) != Some("SQS") {
                    continue;
                }
                let properties = event.get("Properties").unwrap_or(&Value::Null);
                let queue = properties
                    .get("Queue")
                    .and_then(messaging::referenced)
                    .ok_or_else(|| ProvisionError::Unsupported {
                        logical_id: logical_id.clone(),
                        property: "Events.*.Properties.Queue (must reference a queue)".into(),
                    })?;
                let number = |name: &str, default: u32| {
                    properties
                        .get(name)
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok())
                        .unwrap_or(default)
                };
                mappings.push(SqsMapping {
                    function: logical_id.clone(),
                    binary: binary.clone(),
                    queue,
                    batch_size: number("BatchSize", 10),
                    batching_window_seconds: number("MaximumBatchingWindowInSeconds", 0),
                    report_batch_item_failures: properties
                        .get("FunctionResponseTypes")
                        .and_then(Value::as_sequence)
                        .is_some_and(|t| t.iter().any(|v| v.as_str() == Some("ReportBatchItemFailures"))),
                    maximum_concurrency: properties
                        .get("ScalingConfig")
                        .and_then(|c| c.get("MaximumConcurrency"))
                        .and_then(Value::as_u64)
                        .and_then(|n| u32::try_from(n).ok()),
                });
            }
        }
        Ok(mappings)
    }

    /// Every route of the HTTP API `api` (its functions' `HttpApi` events), with the
    /// scopes each requires and its throttle, parameters resolved.
    ///
    /// # Errors
    /// [`ProvisionError::NoSuchResource`] when there is no such API,
    /// [`ProvisionError::Unsupported`] for a route without a path or method, or a
    /// throttle that is not a whole number.
    pub fn http_routes(&self, api: &str) -> Result<Vec<HttpRoute>, ProvisionError> {
        let properties = self
            .resources
            .get(api)
            .filter(|r| r.kind == "AWS::Serverless::HttpApi")
            .map(|r| &r.properties)
            .ok_or_else(|| ProvisionError::NoSuchResource {
                kind: "AWS::Serverless::HttpApi",
                logical_id: api.to_owned(),
            })?;
        let throttle = |settings: Option<&Value>| -> Result<Option<Throttle>, ProvisionError> {
            let Some(settings) = settings else {
                return Ok(None);
            };
            let number = |name: &str| -> Result<Option<u64>, ProvisionError> {
                settings
                    .get(name)
                    .map(|v| {
                        let text = self.resolve("", name, v)?;
                        text.parse::<u64>().map_err(|_| ProvisionError::Unsupported {
                            logical_id: api.to_owned(),
                            property: format!("{name} = {text} (whole numbers only)"),
                        })
                    })
                    .transpose()
            };
            Ok(
                match (number("ThrottlingBurstLimit")?, number("ThrottlingRateLimit")?) {
                    (Some(burst), Some(rate)) => Some(Throttle { burst, rate }),
                    _ => None,
                },
            )
        };
        let default = throttle(properties.get("DefaultRouteSettings"))?;
        let mut routes = Vec::new();
        for (logical_id, resource) in &self.resources {
            if resource.kind != "AWS::Serverless::Function" {
                continue;
            }
            let Some(events) = resource.properties.get("Events").and_then(Value::as_mapping) else {
                continue;
            };
            for event in events.values() {
                let event_properties = event.get("Properties").unwrap_or(&Value::Null);
                if event.get("Type").and_then(Value::as_str) != Some("HttpApi")
                    || event_properties
                        .get("ApiId")
                        .and_then(messaging::referenced)
                        .as_deref()
                        != Some(api)
                {
                    continue;
                }
                let text = |name: &str| {
                    event_properties
                        .get(name)
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| ProvisionError::Unsupported {
                            logical_id: logical_id.clone(),
                            property: format!("Events.*.Properties.{name}"),
                        })
                };
                let (method, path) = (text("Method")?.to_ascii_uppercase(), text("Path")?);
                let scopes = event_properties
                    .get("Auth")
                    .and_then(|a| a.get("AuthorizationScopes"))
                    .and_then(Value::as_sequence)
                    .map(|s| s.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                let key = format!("{method} {path}");
                // The event's own RouteSettings, else the API's for this route key.
                let own = throttle(
                    event_properties
                        .get("RouteSettings")
                        .or_else(|| properties.get("RouteSettings").and_then(|r| r.get(key.as_str()))),
                )?;
                routes.push(HttpRoute {
                    method,
                    path,
                    scopes,
                    throttle: own.or(default),
                });
            }
        }
        Ok(routes)
    }

    /// The environment every function gets (`Globals` and each function's own
    /// variables), with `!Ref` resolved: a resource to its local name
    /// (`<prefix>-<LogicalId>`), a parameter to its default.
    ///
    /// # Errors
    /// [`ProvisionError::Unsupported`] for a value that is neither text, a number nor a
    /// `!Ref`.
    pub fn function_environment(&self, prefix: &str) -> Result<BTreeMap<String, String>, ProvisionError> {
        fn variables_of(owner: &Value) -> impl Iterator<Item = (&str, &Value)> {
            owner
                .get("Environment")
                .and_then(|e| e.get("Variables"))
                .and_then(Value::as_mapping)
                .into_iter()
                .flat_map(|vars| vars.iter().filter_map(|(k, v)| k.as_str().map(|k| (k, v))))
        }
        let functions = self
            .resources
            .values()
            .filter(|r| r.kind == "AWS::Serverless::Function")
            .map(|r| &r.properties);
        let variables: Vec<(&str, &Value)> = self
            .globals
            .get("Function")
            .into_iter()
            .chain(functions)
            .flat_map(variables_of)
            .collect();
        let mut resolved = BTreeMap::new();
        for (name, value) in variables {
            resolved.insert(name.to_owned(), self.resolve(prefix, name, value)?);
        }
        Ok(resolved)
    }

    /// A function's `Timeout` in seconds: its own, else `Globals.Function`'s, else
    /// Lambda's default of 3.
    #[must_use]
    pub fn function_timeout(&self, function: &str) -> u64 {
        self.properties(function)
            .get("Timeout")
            .or_else(|| self.globals.get("Function").and_then(|f| f.get("Timeout")))
            .and_then(Value::as_u64)
            .unwrap_or(3)
    }

    /// A resource's `Properties` (`Null` when it has none or does not exist).
    #[must_use]
    pub fn properties(&self, logical_id: &str) -> &Value {
        static NULL: Value = Value::Null;
        self.resources.get(logical_id).map_or(&NULL, |r| &r.properties)
    }

    /// The table `logical_id`.
    ///
    /// # Errors
    /// [`ProvisionError::NoSuchResource`], [`ProvisionError::Parse`],
    /// [`ProvisionError::Unsupported`].
    pub fn table(&self, logical_id: &str) -> Result<TableSpec, ProvisionError> {
        let resource = self
            .resources
            .get(logical_id)
            .filter(|r| r.kind == "AWS::DynamoDB::Table")
            .ok_or_else(|| ProvisionError::NoSuchResource {
                kind: "AWS::DynamoDB::Table",
                logical_id: logical_id.to_owned(),
            })?;
        let spec: TableSpec = serde_norway::from_value(resource.properties.clone())
            .map_err(|e| ProvisionError::Parse(format!("{logical_id}: {e}")))?;
        if let Some(property) = spec
            .other
            .keys()
            .find(|k| !AWS_ONLY_TABLE_PROPERTIES.contains(&k.as_str()))
        {
            return Err(ProvisionError::Unsupported {
                logical_id: logical_id.to_owned(),
                property: property.clone(),
            });
        }
        Ok(spec)
    }
}

/// Text or a number as text.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_repository_template() {
        let template = Template::load(&Template::default_path()).unwrap();
        let tables = template.logical_ids("AWS::DynamoDB::Table");
        assert!(tables.contains(&"EventStoreTable"), "{tables:?}");
        let events = template.table("EventStoreTable").unwrap();
        assert_eq!(events.key_schema[0].attribute_name, "pk");
        assert_eq!(events.global_secondary_indexes[0].index_name, "by-time");
        assert_eq!(
            events
                .stream_specification
                .as_ref()
                .map(|s| s.stream_view_type.as_str()),
            Some("NEW_IMAGE")
        );
        let idempotency = template.table("IdempotencyTable").unwrap();
        assert_eq!(
            idempotency
                .time_to_live_specification
                .as_ref()
                .map(|t| t.attribute_name.as_str()),
            Some("expiration")
        );
    }

    #[test]
    fn every_consumer_reads_its_queue_with_partial_failures() {
        let template = Template::load(&Template::default_path()).unwrap();
        let mut mappings = template.sqs_mappings().unwrap();
        mappings.sort_by(|a, b| a.binary.cmp(&b.binary));
        let wiring: Vec<_> = mappings
            .iter()
            .map(|m| (m.binary.as_str(), m.queue.as_str()))
            .collect();
        assert_eq!(
            wiring,
            [
                ("inventory", "InventoryQueue"),
                ("order-saga", "OrderSagaQueue"),
                ("payment", "PaymentQueue"),
                ("projector", "ProjectorQueue"),
                ("shipping", "ShippingQueue"),
            ]
        );
        assert!(
            mappings
                .iter()
                .all(|m| m.report_batch_item_failures && m.batch_size == 10)
        );
    }

    #[test]
    fn function_environment_resolves_to_local_names() {
        let template = Template::load(&Template::default_path()).unwrap();
        let env = template.function_environment("dev").unwrap();
        assert_eq!(env["EVENT_STORE_TABLE"], "dev-EventStoreTable");
        assert_eq!(env["EVENT_BUS_NAME"], "dev-EventBus");
        assert_eq!(env["CATALOG_TABLE"], "dev-CatalogTable");
        assert_eq!(env["SNAPSHOT_EVERY"], "50", "a parameter resolves to its default");
        assert_eq!(
            env["ORDER_VIEW_TABLE"], "dev-OrderViewTable",
            "!If on the default"
        );
    }

    #[test]
    fn parameter_overrides_switch_conditions_and_are_checked() {
        let template = Template::load(&Template::default_path()).unwrap();
        let shadow = template
            .clone()
            .with_parameters(["OrderViewSource=shadow", "SnapshotEvery=7"])
            .unwrap();
        let env = shadow.function_environment("dev").unwrap();
        assert_eq!(env["ORDER_VIEW_TABLE"], "dev-OrderViewShadowTable");
        assert_eq!(env["SNAPSHOT_EVERY"], "7");
        for bad in ["OrderViewSource=green", "NoSuchParameter=1", "OrderViewSource"] {
            assert!(
                matches!(
                    template.clone().with_parameters([bad]),
                    Err(ProvisionError::Unsupported { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_properties_are_refused() {
        let template = Template::parse(
            "Resources:\n  T:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      AttributeDefinitions: []\n      KeySchema: []\n      Surprise: 1\n",
        )
        .unwrap();
        assert!(
            matches!(template.table("T"), Err(ProvisionError::Unsupported { property, .. }) if property == "Surprise")
        );
        assert!(matches!(
            template.table("Nope"),
            Err(ProvisionError::NoSuchResource { .. })
        ));
    }

    #[test]
    fn intrinsic_tags_elsewhere_do_not_break_parsing() {
        let template = Template::parse(
            "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Sub '${AWS::StackName}-q'\n",
        )
        .unwrap();
        assert_eq!(template.logical_ids("AWS::SQS::Queue"), vec!["Q"]);
    }
}
