//! Resources created in the emulators (DynamoDB Local, moto, LocalStack) from the
//! template model, or found there when a stack already exists.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use std::collections::BTreeMap;

use crate::Template;
use crate::messaging::{declared_queues, declared_redrive, declared_rules, local_name};
use crate::template::{KeySpec, TableSpec};
use crate::{ProvisionError, emulator};

/// Whether a table already existed or was created now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Created by this call.
    New,
    /// Already there; left as it was.
    Existing,
}

fn keys(specs: &[KeySpec]) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    specs
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(|e| emulator("key schema", e))
        })
        .collect()
}

impl TableSpec {
    /// Creates the table as `name`, with its indexes, stream and TTL. An existing table
    /// of that name is left alone, so provisioning twice is harmless.
    ///
    /// # Errors
    /// [`ProvisionError::Emulator`].
    pub async fn create(&self, client: &Client, name: &str) -> Result<Created, ProvisionError> {
        let mut request = client
            .create_table()
            .table_name(name)
            .set_key_schema(Some(keys(&self.key_schema)?))
            .billing_mode(BillingMode::from(
                self.billing_mode.as_deref().unwrap_or("PAY_PER_REQUEST"),
            ));
        for attribute in &self.attribute_definitions {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&attribute.attribute_name)
                    .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                    .build()
                    .map_err(|e| emulator("attribute definition", e))?,
            );
        }
        for index in &self.global_secondary_indexes {
            let projection = Projection::builder()
                .projection_type(ProjectionType::from(index.projection.projection_type.as_str()))
                .set_non_key_attributes(
                    (!index.projection.non_key_attributes.is_empty())
                        .then(|| index.projection.non_key_attributes.clone()),
                )
                .build();
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(&index.index_name)
                    .set_key_schema(Some(keys(&index.key_schema)?))
                    .projection(projection)
                    .build()
                    .map_err(|e| emulator("index", e))?,
            );
        }
        if let Some(stream) = &self.stream_specification {
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                    .build()
                    .map_err(|e| emulator("stream specification", e))?,
            );
        }
        match request.send().await {
            Ok(_) => {}
            Err(error)
                if error.as_service_error().is_some_and(
                    aws_sdk_dynamodb::operation::create_table::CreateTableError::is_resource_in_use_exception,
                ) =>
            {
                return Ok(Created::Existing);
            }
            Err(error) => return Err(emulator(&format!("table {name}"), error)),
        }
        if let Some(ttl) = self.time_to_live_specification.as_ref().filter(|t| t.enabled) {
            client
                .update_time_to_live()
                .table_name(name)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(&ttl.attribute_name)
                        .enabled(true)
                        .build()
                        .map_err(|e| emulator("ttl", e))?,
                )
                .send()
                .await
                .map_err(|e| emulator(&format!("TTL of {name}"), e))?;
        }
        tracing::info!(table = name, "table created");
        Ok(Created::New)
    }
}

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

/// The queues, buses and rules of `template` as `orderflow-dev up` created them, looked
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

/// Creates every queue, bus and rule of `template` (harmless when they exist), as
/// [`declared_queues`] and [`declared_rules`] read them.
///
/// # Errors
/// [`ProvisionError`].
pub async fn provision_messaging(
    template: &Template,
    prefix: &str,
    sqs: &aws_sdk_sqs::Client,
    events: &aws_sdk_eventbridge::Client,
) -> Result<Messaging, ProvisionError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let mut messaging = Messaging::default();
    // Queues first (without redrive), so every DLQ's ARN is known before any redrive
    // policy names it.
    for (logical_id, spec) in declared_queues(template)? {
        let name = local_name(prefix, &logical_id);
        let mut request = sqs.create_queue().queue_name(&name).attributes(
            QueueAttributeName::VisibilityTimeout,
            spec.visibility_timeout.to_string(),
        );
        if let Some(retention) = spec.retention {
            request = request.attributes(QueueAttributeName::MessageRetentionPeriod, retention.to_string());
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
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| emulator(&format!("attributes of {name}"), e))?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .unwrap_or_default();
        messaging.queues.insert(
            logical_id,
            Queue {
                name,
                url,
                arn,
                visibility_timeout: spec.visibility_timeout,
                redrive: spec.redrive,
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
            .unwrap_or_default();
        let policy = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max}).to_string();
        sqs.set_queue_attributes()
            .queue_url(&queue.url)
            .attributes(QueueAttributeName::RedrivePolicy, policy)
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

    for rule in declared_rules(template)? {
        let name = local_name(prefix, &rule.logical_id);
        let bus = local_name(prefix, &rule.bus);
        let pattern = serde_json::to_string(&rule.pattern)
            .map_err(|e| ProvisionError::Parse(format!("{}: {e}", rule.logical_id)))?;
        events
            .put_rule()
            .name(&name)
            .event_bus_name(&bus)
            .event_pattern(pattern)
            .send()
            .await
            .map_err(|e| emulator(&format!("rule {name}"), e))?;
        for (id, queue) in &rule.targets {
            let arn = messaging
                .queues
                .get(queue)
                .map(|q| q.arn.as_str())
                .unwrap_or_default();
            let target = aws_sdk_eventbridge::types::Target::builder()
                .id(id)
                .arn(arn)
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
        messaging.rules.insert(rule.logical_id, name);
    }
    tracing::info!(
        queues = messaging.queues.len(),
        buses = messaging.buses.len(),
        rules = messaging.rules.len(),
        "messaging provisioned"
    );
    Ok(messaging)
}
