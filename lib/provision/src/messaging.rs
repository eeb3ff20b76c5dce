//! Queues, the bus and its rules as the template declares them, before any emulator is
//! involved: what [`crate::create`] creates in moto (or LocalStack) and the simulation
//! routes by.
//!
//! Every resource gets the local name `<prefix>-<LogicalId>`. `!Ref` and `!GetAtt …Arn`
//! in the properties that matter locally (redrive targets, rule buses and targets) are
//! resolved to logical ids here, and to names and ARNs when they are created.

use std::collections::{BTreeMap, HashMap};

use serde_norway::Value;

use crate::{ProvisionError, Template};

/// Properties of queues that only matter in AWS.
const AWS_ONLY_QUEUE_PROPERTIES: &[&str] = &["SqsManagedSseEnabled", "KmsMasterKeyId", "Tags"];

/// The local name of a resource.
#[must_use]
pub fn local_name(prefix: &str, logical_id: &str) -> String {
    format!("{prefix}-{logical_id}")
}

fn property<'a>(properties: &'a Value, name: &str) -> Option<&'a Value> {
    properties.as_mapping().and_then(|m| m.get(name))
}

/// The logical id behind `!Ref X`, `!GetAtt X.Arn`, `{Ref: X}` or `{Fn::GetAtt: [X, Arn]}`.
pub(crate) fn referenced(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str().map(str::to_owned),
        Value::Tagged(tagged) if tagged.tag == "GetAtt" => tagged
            .value
            .as_str()
            .and_then(|s| s.split_once('.'))
            .map(|(id, _)| id.to_owned()),
        Value::Mapping(m) => m
            .get("Ref")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                m.get("Fn::GetAtt")
                    .and_then(Value::as_sequence)
                    .and_then(|s| s.first())
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
        _ => None,
    }
}

fn number(value: Option<&Value>, default: u32) -> u32 {
    value
        .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(default)
}

fn unsupported(logical_id: &str, property: &str) -> ProvisionError {
    ProvisionError::Unsupported {
        logical_id: logical_id.to_owned(),
        property: property.to_owned(),
    }
}

/// A queue's redrive policy as the template declares it: its DLQ's logical id and
/// `maxReceiveCount`.
pub(crate) fn declared_redrive(
    template: &Template,
    logical_id: &str,
) -> Result<Option<(String, u32)>, ProvisionError> {
    let Some(policy) = property(template.properties(logical_id), "RedrivePolicy") else {
        return Ok(None);
    };
    let target = property(policy, "deadLetterTargetArn")
        .and_then(referenced)
        .ok_or_else(|| unsupported(logical_id, "RedrivePolicy.deadLetterTargetArn"))?;
    Ok(Some((target, number(property(policy, "maxReceiveCount"), 5))))
}

/// A queue as the template declares it, before any emulator is involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// Visibility timeout, seconds.
    pub visibility_timeout: u32,
    /// Message retention, seconds, when the template sets it.
    pub retention: Option<u32>,
    /// The DLQ's logical id and `maxReceiveCount`, if it has a redrive policy.
    pub redrive: Option<(String, u32)>,
}

/// An EventBridge rule as the template declares it: its pattern and the queues it
/// targets (logical ids).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// The rule's logical id.
    pub logical_id: String,
    /// The bus it listens on (logical id).
    pub bus: String,
    /// Its event pattern.
    pub pattern: serde_json::Value,
    /// The queues it delivers to, as `(target id, queue logical id)`.
    pub targets: Vec<(String, String)>,
}

impl RuleSpec {
    /// The queues it delivers to (logical ids).
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.targets.iter().map(|(_, queue)| queue.as_str())
    }
}

/// Every queue of `template`, by logical id.
///
/// # Errors
/// [`ProvisionError::Unsupported`] when a queue has a property local runs do not
/// understand or a redrive policy names no queue.
pub fn declared_queues(template: &Template) -> Result<BTreeMap<String, QueueSpec>, ProvisionError> {
    let ids = template.logical_ids("AWS::SQS::Queue");
    let queues = ids
        .iter()
        .map(|id| {
            let properties = template.properties(id);
            if let Some(mapping) = properties.as_mapping() {
                for key in mapping.keys().filter_map(Value::as_str) {
                    let known = ["VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"];
                    if !known.contains(&key) && !AWS_ONLY_QUEUE_PROPERTIES.contains(&key) {
                        return Err(unsupported(id, key));
                    }
                }
            }
            // A number, or a `!Ref` to a parameter (its override or default).
            let resolved = |name: &str| {
                property(properties, name).map(|value| match referenced(value) {
                    Some(parameter) => template.parameter(&parameter).map(Value::String),
                    None => Some(value.clone()),
                })
            };
            let spec = QueueSpec {
                visibility_timeout: number(resolved("VisibilityTimeout").flatten().as_ref(), 30),
                retention: resolved("MessageRetentionPeriod").map(|r| number(r.as_ref(), 345_600)),
                redrive: declared_redrive(template, id)?,
            };
            Ok(((*id).to_owned(), spec))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    for (id, spec) in &queues {
        if let Some((dlq, _)) = &spec.redrive
            && !queues.contains_key(dlq)
        {
            return Err(unsupported(
                id,
                "RedrivePolicy.deadLetterTargetArn (no such queue)",
            ));
        }
    }
    Ok(queues)
}

/// Every rule of `template` with its pattern and target queues.
///
/// # Errors
/// [`ProvisionError`] when a rule lacks a pattern or targets something other than a
/// queue.
pub fn declared_rules(template: &Template) -> Result<Vec<RuleSpec>, ProvisionError> {
    template
        .logical_ids("AWS::Events::Rule")
        .into_iter()
        .map(|id| {
            let properties = template.properties(id);
            let bus = property(properties, "EventBusName")
                .and_then(referenced)
                .filter(|bus| {
                    template
                        .logical_ids("AWS::Events::EventBus")
                        .contains(&bus.as_str())
                })
                .ok_or_else(|| unsupported(id, "EventBusName (must reference the template's bus)"))?;
            let pattern =
                property(properties, "EventPattern").ok_or_else(|| unsupported(id, "EventPattern"))?;
            let pattern =
                serde_json::to_value(pattern).map_err(|e| ProvisionError::Parse(format!("{id}: {e}")))?;
            let queues = template.logical_ids("AWS::SQS::Queue");
            let targets = property(properties, "Targets")
                .and_then(Value::as_sequence)
                .ok_or_else(|| unsupported(id, "Targets"))?
                .iter()
                .map(|t| {
                    let target = property(t, "Id").and_then(Value::as_str).unwrap_or("target");
                    property(t, "Arn")
                        .and_then(referenced)
                        .filter(|queue| queues.contains(&queue.as_str()))
                        .map(|queue| (target.to_owned(), queue))
                        .ok_or_else(|| {
                            unsupported(id, "Targets.Arn (only SQS targets of the template run locally)")
                        })
                })
                .collect::<Result<_, _>>()?;
            Ok(RuleSpec {
                logical_id: id.to_owned(),
                bus,
                pattern,
                targets,
            })
        })
        .collect()
}

/// Whether `event` matches an EventBridge `pattern`, for the subset the template
/// uses: nested objects, lists of exact values and `{"prefix": …}`. Anything else in
/// a pattern matches nothing, so an unsupported pattern fails loudly in tests.
#[must_use]
pub fn pattern_matches(pattern: &serde_json::Value, event: &serde_json::Value) -> bool {
    use serde_json::Value as Json;
    let Json::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(name, wanted)| {
        let actual = event.get(name).unwrap_or(&Json::Null);
        match wanted {
            Json::Object(_) => pattern_matches(wanted, actual),
            Json::Array(options) => options.iter().any(|option| match option {
                Json::Object(matcher) => match (matcher.get("prefix"), actual) {
                    (Some(Json::String(prefix)), Json::String(value)) if matcher.len() == 1 => {
                        value.starts_with(prefix.as_str())
                    }
                    _ => false,
                },
                exact => exact == actual,
            }),
            _ => false,
        }
    })
}

/// Local names of every table of the template, by logical id.
#[must_use]
pub fn table_names(template: &Template, prefix: &str) -> HashMap<String, String> {
    template
        .logical_ids("AWS::DynamoDB::Table")
        .into_iter()
        .map(|id| (id.to_owned(), local_name(prefix, id)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use serde_json::json;

    use super::*;

    #[test]
    fn patterns_match_values_prefixes_and_nested_fields() {
        let pattern =
            json!({"source": ["orderflow.order"], "detail-type": ["OrderPlaced", "OrderCancelled"]});
        let placed = json!({"source": "orderflow.order", "detail-type": "OrderPlaced"});
        let confirmed = json!({"source": "orderflow.order", "detail-type": "OrderConfirmed"});
        assert!(pattern_matches(&pattern, &placed));
        assert!(!pattern_matches(&pattern, &confirmed));
        let prefix = json!({"source": [{"prefix": "orderflow."}]});
        assert!(pattern_matches(&prefix, &placed));
        assert!(!pattern_matches(&prefix, &json!({"source": "other.order"})));
        let nested = json!({"detail": {"metadata": {"actor": ["service:payment"]}}});
        assert!(pattern_matches(
            &nested,
            &json!({"detail": {"metadata": {"actor": "service:payment"}}})
        ));
        assert!(!pattern_matches(&nested, &placed));
        // What the subset does not know matches nothing.
        assert!(!pattern_matches(
            &json!({"source": [{"anything-but": "x"}]}),
            &placed
        ));
    }

    #[test]
    fn the_template_declares_its_rules_and_queues() {
        let template = Template::load(&Template::default_path()).unwrap();
        let rules = declared_rules(&template).unwrap();
        let saga = rules.iter().find(|r| r.logical_id == "OrderSagaRule").unwrap();
        assert_eq!(saga.queues().collect::<Vec<_>>(), ["OrderSagaQueue"]);
        assert_eq!(saga.bus, "EventBus");
        let queues = declared_queues(&template).unwrap();
        assert_eq!(
            queues["OrderSagaQueue"]
                .redrive
                .as_ref()
                .map(|(dlq, _)| dlq.as_str()),
            Some("OrderSagaDeadLetterQueue")
        );
    }

    #[test]
    fn a_retention_set_by_a_parameter_is_its_default_or_its_override() {
        let template = Template::load(&Template::default_path()).unwrap();
        let queues = declared_queues(&template).unwrap();
        assert_eq!(queues["OrderSagaDeadLetterQueue"].retention, Some(1_209_600));
        assert_eq!(queues["ReplayQueue"].retention, Some(345_600));
        let short = template
            .with_parameters(["DeadLetterRetentionSeconds=3600", "ReplayRetentionSeconds=600"])
            .unwrap();
        let queues = declared_queues(&short).unwrap();
        for dlq in [
            "OrderSagaDeadLetterQueue",
            "PaymentDeadLetterQueue",
            "RelayFailureQueue",
        ] {
            assert_eq!(queues[dlq].retention, Some(3600), "{dlq}");
        }
        assert_eq!(queues["ReplayQueue"].retention, Some(600));
        assert_eq!(
            queues["OrderSagaQueue"].retention, None,
            "the queue's own default"
        );
    }
}
