//! Where an operator command acts: a deployed stack in AWS, or a local stack in the
//! emulators. Every command takes the same two flags and works unchanged on both.
//!
//! - `--stack <name>`: a CloudFormation stack. Its resources' physical names come from
//!   `ListStackResources` (logical id → table name, queue URL, bus name), the queues'
//!   ARNs and redrive policies from SQS, the read model the API serves from the
//!   stack's `OrderViewTableName` output; credentials and region from the standard AWS
//!   chain.
//! - otherwise `--prefix <p>` (default `orderflow`): the stack `orderflow-dev up` created in
//!   the emulators as `<p>-<LogicalId>`, from `template.yaml` (with any
//!   `--parameter-overrides`), at the endpoints `infra/local/emulators.sh env` exports.
//!   It is looked up, never created: a mistyped prefix is an error, not an empty stack.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::Context;
use aws_sdk_sqs::types::QueueAttributeName;
use orderflow_adapters::DynamoEventStore;
use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_provision::Template;
use orderflow_provision::create::{Messaging, Queue};
use orderflow_provision::local::{self, Stack};

/// The flags every operator command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// A deployed CloudFormation stack to act on (AWS).
    #[arg(long, env = "ORDERFLOW_STACK", global = true)]
    pub stack: Option<String>,
    /// The SAM template a local stack comes from.
    #[arg(long, default_value = "template.yaml", global = true)]
    pub template: PathBuf,
    /// Prefix of a local stack's resource names.
    #[arg(long, env = "ORDERFLOW_PREFIX", default_value = "orderflow", global = true)]
    pub prefix: String,
    /// A local stack's parameters, as `sam deploy --parameter-overrides` takes them.
    #[arg(long, num_args = 1.., global = true)]
    pub parameter_overrides: Vec<String>,
}

impl Target {
    /// The local stack `prefix` names, from the repository's template.
    #[must_use]
    pub fn local(prefix: &str) -> Self {
        Self {
            stack: None,
            template: Template::default_path(),
            prefix: prefix.to_owned(),
            parameter_overrides: Vec::new(),
        }
    }
}

/// A stack resolved, with clients for it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Names by logical id.
    pub stack: Stack,
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// EventBridge.
    pub events: aws_sdk_eventbridge::Client,
}

/// Resolves the target.
///
/// # Errors
/// When the stack does not exist, an emulator does not answer, or the template is
/// unreadable.
pub async fn resolve(target: &Target) -> anyhow::Result<Resolved> {
    match &target.stack {
        Some(name) => {
            let sdk = orderflow_adapters::aws_sdk_config().await;
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let stack = from_cloudformation(&aws_sdk_cloudformation::Client::new(&sdk), &sqs, name).await?;
            Ok(Resolved {
                stack,
                dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
                sqs,
                events: aws_sdk_eventbridge::Client::new(&sdk),
            })
        }
        None => {
            let template = Template::load(&target.template)
                .with_context(|| format!("reading {}", target.template.display()))?
                .with_parameters(target.parameter_overrides.iter().map(String::as_str))?;
            let stack = local::existing_stack(&template, &target.prefix)
                .await
                .map_err(|e| match e {
                    // Their own sentences say what to do.
                    local::StackError::Missing { .. } | local::StackError::NoEndpoint(_) => {
                        anyhow::Error::new(e)
                    }
                    other => anyhow::Error::new(other).context(
                        "finding the local stack in the emulators (are they running? `make emulators`)",
                    ),
                })?;
            Ok(Resolved {
                stack,
                dynamodb: local::dynamodb_client().await?,
                sqs: local::sqs_client().await?,
                events: local::eventbridge_client().await?,
            })
        }
    }
}

/// A deployed stack's names, read from CloudFormation and SQS.
///
/// # Errors
/// When CloudFormation or SQS fails, or the stack does not exist.
pub async fn from_cloudformation(
    cloudformation: &aws_sdk_cloudformation::Client,
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> anyhow::Result<Stack> {
    let mut resources = Vec::new();
    let mut token = None;
    loop {
        let page = cloudformation
            .list_stack_resources()
            .stack_name(name)
            .set_next_token(token)
            .send()
            .await
            .with_context(|| format!("listing the resources of stack {name}"))?;
        resources.extend(page.stack_resource_summaries.unwrap_or_default());
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let mut tables = HashMap::new();
    let mut messaging = Messaging::default();
    let mut queue_urls = Vec::new();
    let mut data_key = None;
    for resource in &resources {
        let (Some(logical), Some(physical), Some(kind)) = (
            resource.logical_resource_id.clone(),
            resource.physical_resource_id.clone(),
            resource.resource_type.as_deref(),
        ) else {
            continue;
        };
        match kind {
            "AWS::DynamoDB::Table" => {
                tables.insert(logical, physical);
            }
            "AWS::SQS::Queue" => queue_urls.push((logical, physical)),
            // The key the customers' data keys are wrapped with, as the API gets it.
            "AWS::KMS::Key" if logical == "CustomerDataKey" => data_key = Some(physical),
            "AWS::Events::EventBus" if !physical.is_empty() => {
                messaging.buses.insert(logical, physical);
            }
            "AWS::Events::Rule" => {
                // A rule on a custom bus is `bus|rule`.
                let rule = physical.rsplit('|').next().unwrap_or(&physical).to_owned();
                messaging.rules.insert(logical, rule);
            }
            _ => {}
        }
    }
    let mut by_arn = HashMap::new();
    let mut redrives = Vec::new();
    for (logical, url) in queue_urls {
        let attributes = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::All)
            .send()
            .await
            .with_context(|| format!("reading queue {logical}"))?
            .attributes
            .unwrap_or_default();
        let arn = attributes
            .get(&QueueAttributeName::QueueArn)
            .cloned()
            .unwrap_or_default();
        let visibility_timeout = attributes
            .get(&QueueAttributeName::VisibilityTimeout)
            .and_then(|v| v.parse().ok())
            .unwrap_or(30);
        if let Some(policy) = attributes.get(&QueueAttributeName::RedrivePolicy) {
            let policy: serde_json::Value =
                serde_json::from_str(policy).context("a queue's redrive policy")?;
            let dlq = policy["deadLetterTargetArn"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let max = policy["maxReceiveCount"]
                .as_u64()
                .or_else(|| policy["maxReceiveCount"].as_str().and_then(|s| s.parse().ok()))
                .unwrap_or(0);
            redrives.push((logical.clone(), dlq, u32::try_from(max).unwrap_or(u32::MAX)));
        }
        by_arn.insert(arn.clone(), logical.clone());
        messaging.queues.insert(
            logical,
            Queue {
                name: url.rsplit('/').next().unwrap_or(&url).to_owned(),
                url,
                arn,
                visibility_timeout,
                redrive: None,
            },
        );
    }
    for (logical, dlq_arn, max) in redrives {
        if let (Some(dlq), Some(queue)) = (by_arn.get(&dlq_arn).cloned(), messaging.queues.get_mut(&logical))
        {
            queue.redrive = Some((dlq, max));
        }
    }
    let outputs: BTreeMap<String, String> = cloudformation
        .describe_stacks()
        .stack_name(name)
        .send()
        .await
        .with_context(|| format!("describing stack {name}"))?
        .stacks
        .unwrap_or_default()
        .into_iter()
        .flat_map(|s| s.outputs.unwrap_or_default())
        .filter_map(|o| Some((o.output_key?, o.output_value?)))
        .collect();
    let mut environment = BTreeMap::new();
    if let Some(view_table) = outputs.get("OrderViewTableName") {
        environment.insert("ORDER_VIEW_TABLE".to_owned(), view_table.clone());
    }
    if let Some(key) = data_key {
        environment.insert("CUSTOMER_DATA_KEY".to_owned(), key);
    }
    Ok(Stack {
        prefix: name.to_owned(),
        tables,
        messaging,
        environment,
    })
}

/// The name of table `logical_id` in `stack`.
///
/// # Errors
/// When the stack has no such table.
pub fn table<'a>(stack: &'a Stack, logical_id: &str) -> anyhow::Result<&'a str> {
    stack
        .table(logical_id)
        .with_context(|| format!("the template has no table {logical_id}"))
}

/// The stack's event store (events and snapshots).
///
/// # Errors
/// When the stack lacks either table.
pub fn event_store(stack: &Stack, dynamodb: &aws_sdk_dynamodb::Client) -> anyhow::Result<DynamoEventStore> {
    Ok(DynamoEventStore::new(
        dynamodb.clone(),
        table(stack, "EventStoreTable")?,
        table(stack, "SnapshotTable")?,
    ))
}

/// The order read model the template's functions use (`ORDER_VIEW_TABLE`).
///
/// # Errors
/// When the template sets no `ORDER_VIEW_TABLE`.
pub fn order_views(stack: &Stack, dynamodb: &aws_sdk_dynamodb::Client) -> anyhow::Result<DynamoOrderViews> {
    let table = stack
        .env("ORDER_VIEW_TABLE")
        .context("the template sets no ORDER_VIEW_TABLE for its functions")?;
    Ok(DynamoOrderViews::new(dynamodb.clone(), table))
}
