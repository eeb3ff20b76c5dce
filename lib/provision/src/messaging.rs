//! Queues, the bus and its rules from the template, in moto (or LocalStack).
//!
//! Every resource gets the local name `<prefix>-<LogicalId>`. `!Ref` and `!GetAtt …Arn`
//! in the properties that matter locally (redrive targets, rule buses and targets) are
//! resolved to those names and the ARNs the emulator reports.

use std::collections::{BTreeMap, HashMap};

use serde_norway::Value;

use crate::{ProvisionError, Template, emulator};

/// A queue as created locally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Its name.
    pub name: String,
    /// Its URL, for SQS calls.
    pub url: String,
    /// Its ARN, for redrive policies and rule targets.
    pub arn: String,
    /// Visibility timeout, seconds.
    pub visibility_timeout: u32,
    /// The DLQ's logical id and `maxReceiveCount`, if it has a redrive policy.
    pub redrive: Option<(String, u32)>,
}

/// What [`provision_messaging`] created, by logical id.
#[derive(Debug, Clone, Default)]
pub struct Messaging {
    /// Queues.
    pub queues: BTreeMap<String, Queue>,
    /// Buses: logical id → name.
    pub buses: BTreeMap<String, String>,
    /// Rules: logical id → name.
    pub rules: BTreeMap<String, String>,
}

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
fn declared_redrive(template: &Template, logical_id: &str) -> Result<Option<(String, u32)>, ProvisionError> {
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
    /// The DLQ's logical id and `maxReceiveCount`, if it has a redrive policy.
    pub redrive: Option<(String, u32)>,
}

/// An EventBridge rule as the template declares it: its pattern and the queues it
/// targets (logical ids).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    /// The rule's logical id.
    pub logical_id: String,
    /// Its event pattern.
    pub pattern: serde_json::Value,
    /// The queues it delivers to.
    pub queues: Vec<String>,
}

/// Every queue of `template`, by logical id.
///
/// # Errors
/// [`ProvisionError`] when a redrive policy names no queue.
pub fn declared_queues(template: &Template) -> Result<BTreeMap<String, QueueSpec>, ProvisionError> {
    template
        .logical_ids("AWS::SQS::Queue")
        .into_iter()
        .map(|id| {
            let spec = QueueSpec {
                visibility_timeout: number(property(template.properties(id), "VisibilityTimeout"), 30),
                redrive: declared_redrive(template, id)?,
            };
            Ok((id.to_owned(), spec))
        })
        .collect()
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
            let pattern =
                property(properties, "EventPattern").ok_or_else(|| unsupported(id, "EventPattern"))?;
            let pattern =
                serde_json::to_value(pattern).map_err(|e| ProvisionError::Parse(format!("{id}: {e}")))?;
            let queues = property(properties, "Targets")
                .and_then(Value::as_sequence)
                .ok_or_else(|| unsupported(id, "Targets"))?
                .iter()
                .map(|t| {
                    property(t, "Arn")
                        .and_then(referenced)
                        .ok_or_else(|| unsupported(id, "Targets.Arn (must reference a queue)"))
                })
                .collect::<Result<_, _>>()?;
            Ok(RuleSpec {
                logical_id: id.to_owned(),
                pattern,
                queues,
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

/// The queues, buses and rules of `template` as `orderflow dev` created them, looked
/// up, never created: `None` when a queue is missing (no such local stack).
///
/// # Errors
/// [`ProvisionError`] when an emulator fails.
pub async fn existing_messaging(
    template: &Template,
    prefix: &str,
    sqs: &aws_sdk_sqs::Client,
) -> Result<Option<Messaging>, ProvisionError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let mut messaging = Messaging::default();
    for logical_id in template.logical_ids("AWS::SQS::Queue") {
        let name = local_name(prefix, logical_id);
        let url = match sqs.get_queue_url().queue_name(&name).send().await {
            Ok(found) => found.queue_url.unwrap_or_default(),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => return Ok(None),
            Err(e) => return Err(emulator(&format!("queue {name}"), e)),
        };
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| emulator(&format!("attributes of {name}"), e))?
            .attributes
            .unwrap_or_default();
        messaging.queues.insert(
            logical_id.to_owned(),
            Queue {
                arn: attributes
                    .get(&QueueAttributeName::QueueArn)
                    .cloned()
                    .unwrap_or_default(),
                visibility_timeout: attributes
                    .get(&QueueAttributeName::VisibilityTimeout)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(30),
                redrive: declared_redrive(template, logical_id)?,
                name,
                url,
            },
        );
    }
    for logical_id in template.logical_ids("AWS::Events::EventBus") {
        messaging
            .buses
            .insert(logical_id.to_owned(), local_name(prefix, logical_id));
    }
    for logical_id in template.logical_ids("AWS::Events::Rule") {
        messaging
            .rules
            .insert(logical_id.to_owned(), local_name(prefix, logical_id));
    }
    Ok(Some(messaging))
}

/// Creates every queue, bus and rule of `template` (harmless when they exist).
///
/// # Errors
/// [`ProvisionError`].
pub async fn provision_messaging(
    template: &Template,
    prefix: &str,
    sqs: &aws_sdk_sqs::Client,
    events: &aws_sdk_eventbridge::Client,
) -> Result<Messaging, ProvisionError> {
    let mut messaging = Messaging::default();
    // Queues first (without redrive), so every DLQ's ARN is known before any redrive
    // policy names it.
    let queue_ids = template.logical_ids("AWS::SQS::Queue");
    for logical_id in &queue_ids {
        let properties = template.properties(logical_id);
        if let Some(mapping) = properties.as_mapping() {
            for key in mapping.keys().filter_map(Value::as_str) {
                let known = ["VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy"];
                if !known.contains(&key) && !AWS_ONLY_QUEUE_PROPERTIES.contains(&key) {
                    return Err(unsupported(logical_id, key));
                }
            }
        }
        let name = local_name(prefix, logical_id);
        let visibility_timeout = number(property(properties, "VisibilityTimeout"), 30);
        let mut request = sqs.create_queue().queue_name(&name).attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            visibility_timeout.to_string(),
        );
        if let Some(retention) = property(properties, "MessageRetentionPeriod") {
            request = request.attributes(
                aws_sdk_sqs::types::QueueAttributeName::MessageRetentionPeriod,
                number(Some(retention), 345_600).to_string(),
            );
        }
        let url = request
            .send()
            .await
            .map_err(|e| emulator(&format!("queue {name}"), e))?
            .queue_url
            .unwrap_or_default();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| emulator(&format!("attributes of {name}"), e))?
            .attributes
            .and_then(|mut a| a.remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
            .unwrap_or_default();
        let redrive = declared_redrive(template, logical_id)?;
        messaging.queues.insert(
            (*logical_id).to_owned(),
            Queue {
                name,
                url,
                arn,
                visibility_timeout,
                redrive,
            },
        );
    }
    for queue in messaging.queues.values() {
        let Some((dlq, max)) = &queue.redrive else {
            continue;
        };
        let dlq_arn = messaging
            .queues
            .get(dlq)
            .map(|q| q.arn.clone())
            .ok_or_else(|| unsupported(dlq, "deadLetterTargetArn (no such queue)"))?;
        let policy = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max}).to_string();
        sqs.set_queue_attributes()
            .queue_url(&queue.url)
            .attributes(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy, policy)
            .send()
            .await
            .map_err(|e| emulator(&format!("redrive policy of {}", queue.name), e))?;
    }

    for logical_id in template.logical_ids("AWS::Events::EventBus") {
        let name = local_name(prefix, logical_id);
        match events.create_event_bus().name(&name).send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_already_exists_exception()) => {}
            Err(e) => return Err(emulator(&format!("bus {name}"), e)),
        }
        messaging.buses.insert(logical_id.to_owned(), name);
    }

    for logical_id in template.logical_ids("AWS::Events::Rule") {
        let properties = template.properties(logical_id);
        let name = local_name(prefix, logical_id);
        let bus_id = property(properties, "EventBusName")
            .and_then(referenced)
            .ok_or_else(|| unsupported(logical_id, "EventBusName (must reference the template's bus)"))?;
        let bus = messaging
            .buses
            .get(&bus_id)
            .cloned()
            .ok_or_else(|| unsupported(logical_id, "EventBusName (no such bus)"))?;
        let pattern =
            property(properties, "EventPattern").ok_or_else(|| unsupported(logical_id, "EventPattern"))?;
        let pattern = serde_json::to_string(pattern)
            .map_err(|e| ProvisionError::Parse(format!("{logical_id}: {e}")))?;
        events
            .put_rule()
            .name(&name)
            .event_bus_name(&bus)
            .event_pattern(pattern)
            .send()
            .await
            .map_err(|e| emulator(&format!("rule {name}"), e))?;
        let targets = property(properties, "Targets")
            .and_then(Value::as_sequence)
            .ok_or_else(|| unsupported(logical_id, "Targets"))?;
        for target in targets {
            let id = property(target, "Id").and_then(Value::as_str).unwrap_or("target");
            let queue_id = property(target, "Arn")
                .and_then(referenced)
                .ok_or_else(|| unsupported(logical_id, "Targets.Arn (must reference a queue)"))?;
            let queue = messaging
                .queues
                .get(&queue_id)
                .ok_or_else(|| unsupported(logical_id, "Targets.Arn (only SQS targets run locally)"))?;
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id(id)
                .arn(&queue.arn)
                .build()
                .map_err(|e| emulator("rule target", e))?;
            events
                .put_targets()
                .rule(&name)
                .event_bus_name(&bus)
                .targets(target)
                .send()
                .await
                .map_err(|e| emulator(&format!("targets of {name}"), e))?;
        }
        messaging.rules.insert(logical_id.to_owned(), name);
    }
    tracing::info!(
        queues = messaging.queues.len(),
        buses = messaging.buses.len(),
        rules = messaging.rules.len(),
        "messaging provisioned"
    );
    Ok(messaging)
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
        assert_eq!(saga.queues, ["OrderSagaQueue"]);
        let queues = declared_queues(&template).unwrap();
        assert_eq!(
            queues["OrderSagaQueue"]
                .redrive
                .as_ref()
                .map(|(dlq, _)| dlq.as_str()),
            Some("OrderSagaDeadLetterQueue")
        );
    }
}
