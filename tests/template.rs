//! What `template.yaml` promises about trust, read from the file as deployed: the
//! operator routes' scopes, the throttles, each function appending only to the event
//! streams it owns, the bus policy, and the cursor key.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use std::collections::BTreeMap;

use orderflow_provision::{HttpRoute, Template, Throttle};
use serde_norway::Value;

fn document() -> Value {
    let text = std::fs::read_to_string(Template::default_path()).unwrap();
    serde_norway::from_str(&text).unwrap()
}

fn tag_name(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(t) => Some(format!(
            "!{} {}",
            t.tag.to_string().trim_start_matches('!'),
            serde_norway::to_string(&t.value).unwrap().trim()
        )),
        _ => value.as_str().map(str::to_owned),
    }
}

#[test]
fn only_operator_routes_need_the_operator_scope() {
    let template = Template::load(&Template::default_path()).unwrap();
    let routes: BTreeMap<String, HttpRoute> = template
        .http_routes("OrderHttpApi")
        .unwrap()
        .into_iter()
        .map(|r| (r.key(), r))
        .collect();
    let operator_only = [
        "POST /orders/{id}/status",
        "GET /products/{sku}",
        "PUT /products/{sku}",
        "POST /products/{sku}/stock",
        "GET /products/{sku}/events",
    ];
    let everyone = [
        "POST /orders",
        "GET /orders/{id}",
        "GET /orders/{id}/events",
        "POST /orders/{id}/cancel",
        "GET /customers/{id}/orders",
        "GET /customers/{id}/personal-data",
        "DELETE /customers/{id}/personal-data",
        "GET /products",
    ];
    for key in operator_only {
        assert_eq!(routes[key].scopes, ["orderflow/operator"], "{key}");
    }
    for key in everyone {
        assert!(routes[key].scopes.is_empty(), "{key}: {:?}", routes[key].scopes);
    }
    assert_eq!(
        routes.len(),
        operator_only.len() + everyone.len(),
        "a new route must be placed in one of the lists: {:?}",
        routes.keys()
    );
    // Every route sits behind the JWT authorizer.
    let doc = document();
    let auth = &doc["Resources"]["OrderHttpApi"]["Properties"]["Auth"];
    assert_eq!(auth["DefaultAuthorizer"].as_str(), Some("JwtAuthorizer"));
    let jwt = &auth["Authorizers"]["JwtAuthorizer"];
    assert_eq!(
        jwt["IdentitySource"].as_str(),
        Some("$request.header.Authorization")
    );
    assert_eq!(
        tag_name(&jwt["JwtConfiguration"]["issuer"]).as_deref(),
        Some("!Ref JwtIssuer")
    );
}

#[test]
fn the_api_is_throttled_per_stage_and_placements_per_route_and_per_principal() {
    let template = Template::load(&Template::default_path())
        .unwrap()
        .with_parameters([
            "ApiThrottleBurst=11",
            "ApiThrottleRate=12",
            "PlaceOrderThrottleBurst=3",
            "PlaceOrderThrottleRate=4",
        ])
        .unwrap();
    for route in template.http_routes("OrderHttpApi").unwrap() {
        let expected = if route.key() == "POST /orders" {
            Throttle { burst: 3, rate: 4 }
        } else {
            Throttle { burst: 11, rate: 12 }
        };
        assert_eq!(route.throttle, Some(expected), "{}", route.key());
    }
    let doc = document();
    let env = &doc["Resources"]["OrderApiFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        tag_name(&env["ORDERS_PER_MINUTE"]).as_deref(),
        Some("!Ref OrdersPerMinute")
    );
    assert_eq!(
        tag_name(&env["RATE_LIMIT_TABLE"]).as_deref(),
        Some("!Ref RateLimitTable")
    );
    assert_eq!(
        tag_name(&env["CUSTOMER_ID_CLAIM"]).as_deref(),
        Some("!Ref CustomerIdClaim")
    );
    assert_eq!(
        doc["Parameters"]["CustomerIdClaim"]["Default"].as_str(),
        Some("sub")
    );
    // Operators: the scope and a group only an administrator grants, both configured.
    assert_eq!(
        tag_name(&env["GROUPS_CLAIM"]).as_deref(),
        Some("!Ref GroupsClaim")
    );
    assert_eq!(
        tag_name(&env["OPERATOR_GROUP"]).as_deref(),
        Some("!Ref OperatorGroup")
    );
    assert_eq!(doc["Parameters"]["OperatorGroup"]["MinLength"].as_u64(), Some(1));
    assert_eq!(
        doc["Parameters"]["JwtAudience"]["Type"].as_str(),
        Some("CommaDelimitedList")
    );
    let jwt = &doc["Resources"]["OrderHttpApi"]["Properties"]["Auth"]["Authorizers"]["JwtAuthorizer"]["JwtConfiguration"];
    assert_eq!(tag_name(&jwt["audience"]).as_deref(), Some("!Ref JwtAudience"));
    let ttl = &doc["Resources"]["RateLimitTable"]["Properties"]["TimeToLiveSpecification"];
    assert_eq!(ttl["Enabled"].as_bool(), Some(true));
}

/// The statements of a role's inline policies.
fn statements<'a>(doc: &'a Value, role: &str) -> Vec<&'a Value> {
    doc["Resources"][role]["Properties"]["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().unwrap())
        .collect()
}

/// Every statement of every IAM role, with the role's logical id.
fn every_role_statement(doc: &Value) -> Vec<(&str, &Value)> {
    doc["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::IAM::Role"))
        .flat_map(|(id, _)| {
            let id = id.as_str().unwrap();
            statements(doc, id).into_iter().map(move |s| (id, s))
        })
        .collect()
}

fn actions(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::Sequence(items) => items.iter().filter_map(Value::as_str).collect(),
        other => other.as_str().into_iter().collect(),
    }
}

fn resources(statement: &Value) -> Vec<String> {
    match &statement["Resource"] {
        Value::Sequence(items) => items.iter().filter_map(tag_name).collect(),
        other => tag_name(other).into_iter().collect(),
    }
}

#[test]
fn each_function_appends_only_to_the_event_streams_it_owns() {
    let doc = document();
    let owners: [(&str, &[&str]); 6] = [
        ("OrderApiRole", &["order", "product", "customer"]),
        ("OrderSagaRole", &["order"]),
        ("PendingTimeoutRole", &["order"]),
        ("InventoryRole", &["inventory"]),
        ("PaymentRole", &["payment"]),
        ("ShippingRole", &["shipment"]),
    ];
    let writes = [
        "dynamodb:PutItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    ];
    for (role, streams) in owners {
        let mut guarded = 0;
        for statement in statements(&doc, role) {
            let on_store = resources(statement)
                .iter()
                .any(|r| r == "!GetAtt EventStoreTable.Arn" || r == "!GetAtt SnapshotTable.Arn");
            if !on_store || !actions(statement).iter().any(|a| writes.contains(a)) {
                continue;
            }
            let keys = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
            let keys: Vec<&str> = keys
                .as_sequence()
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let owned: Vec<String> = streams.iter().map(|s| format!("{s}#*")).collect();
            assert_eq!(keys, owned, "{role}: {statement:?}");
            guarded += 1;
        }
        assert!(
            guarded >= 2,
            "{role}: guarded writes to the events and the snapshots"
        );
    }
    // Roles that only read the store write nothing to it.
    for role in ["RelayRole", "ProjectorRole"] {
        for statement in statements(&doc, role) {
            let on_events = resources(statement)
                .iter()
                .any(|r| r == "!GetAtt EventStoreTable.Arn");
            assert!(
                !on_events || actions(statement).iter().all(|a| !writes.contains(a)),
                "{role} must not write the event store: {statement:?}"
            );
        }
    }
}

#[test]
fn only_the_relay_puts_events_on_the_live_bus() {
    let doc = document();
    let policy = &doc["Resources"]["EventBusPublishers"];
    assert_eq!(policy["Type"].as_str(), Some("AWS::Events::EventBusPolicy"));
    let properties = &policy["Properties"];
    assert_eq!(
        tag_name(&properties["EventBusName"]).as_deref(),
        Some("!Ref EventBus")
    );
    let statement = &properties["Statement"];
    assert_eq!(statement["Effect"].as_str(), Some("Deny"));
    assert_eq!(statement["Principal"].as_str(), Some("*"));
    assert_eq!(statement["Action"].as_str(), Some("events:PutEvents"));
    let allowed = &statement["Condition"]["ArnNotEquals"]["aws:PrincipalArn"];
    let text = serde_norway::to_string(allowed).unwrap();
    assert!(text.contains("RelayRole.Arn"), "{text}");
    assert!(
        text.contains("HasLivePublisher"),
        "an extra publisher only when set: {text}"
    );
    // And the relay is the only function allowed to try.
    for (role, statement) in every_role_statement(&doc) {
        assert!(
            role == "RelayRole" || !actions(statement).contains(&"events:PutEvents"),
            "{role} may put events: {statement:?}"
        );
    }
}

#[test]
fn the_cursor_key_is_a_generated_secret_only_the_api_reads() {
    let doc = document();
    let secret = &doc["Resources"]["CursorKeySecret"];
    assert_eq!(secret["Type"].as_str(), Some("AWS::SecretsManager::Secret"));
    assert!(secret["Properties"]["GenerateSecretString"]["PasswordLength"].as_u64() >= Some(32));
    let env = &doc["Resources"]["OrderApiFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        tag_name(&env["CURSOR_KEY_SECRET"]).as_deref(),
        Some("!Ref CursorKeySecret")
    );
    for (role, statement) in every_role_statement(&doc) {
        if actions(statement)
            .iter()
            .any(|a| a.starts_with("secretsmanager:"))
        {
            assert_eq!(role, "OrderApiRole");
            assert_eq!(actions(statement), ["secretsmanager:GetSecretValue"]);
            assert_eq!(resources(statement), ["!Ref CursorKeySecret"]);
        }
    }
}

/// Where personal data or payment tokens could outlive their deletion, nothing keeps a
/// restorable copy; how long the rest is kept is the deployer's choice, with defaults.
#[test]
fn deleted_keys_and_tokens_are_gone_and_retention_is_a_parameter() {
    let doc = document();
    for table in ["CustomerKeyTable", "PaymentVaultTable"] {
        let properties = &doc["Resources"][table]["Properties"];
        assert_eq!(
            properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
            Some(false),
            "{table}: a restorable copy would outlive an erasure"
        );
    }
    assert_eq!(
        doc["Resources"]["PaymentVaultTable"]["Properties"]["TimeToLiveSpecification"]["Enabled"].as_bool(),
        Some(true),
        "tokens no order used expire"
    );
    // Every DLQ keeps its messages as long as the parameter says.
    let Value::Mapping(resources) = &doc["Resources"] else {
        panic!("no resources")
    };
    let mut dead_letters = 0;
    for (name, resource) in resources {
        let name = name.as_str().unwrap();
        if name.ends_with("DeadLetterQueue") || name.starts_with("Relay") && name.ends_with("Queue") {
            dead_letters += 1;
            assert_eq!(
                tag_name(&resource["Properties"]["MessageRetentionPeriod"]).as_deref(),
                Some("!Ref DeadLetterRetentionSeconds"),
                "{name}"
            );
        }
    }
    assert!(dead_letters >= 8, "{dead_letters}");
    assert_eq!(
        tag_name(&doc["Resources"]["ReplayQueue"]["Properties"]["MessageRetentionPeriod"]).as_deref(),
        Some("!Ref ReplayRetentionSeconds")
    );
    let env = &doc["Resources"]["OrderApiFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        tag_name(&env["IDEMPOTENCY_RETENTION_HOURS"]).as_deref(),
        Some("!Ref IdempotencyRetentionHours")
    );
    for (parameter, default) in [
        ("DeadLetterRetentionSeconds", 1_209_600),
        ("ReplayRetentionSeconds", 345_600),
        ("IdempotencyRetentionHours", 24),
    ] {
        assert_eq!(
            doc["Parameters"][parameter]["Default"].as_u64(),
            Some(default),
            "{parameter}"
        );
    }
}

#[test]
fn alarms_reach_their_topic_through_a_key_cloudwatch_may_use() {
    let doc = document();
    let topic = &doc["Resources"]["AlarmTopic"]["Properties"];
    let key_ref = tag_name(&topic["KmsMasterKeyId"]).unwrap();
    // The AWS-managed SNS key refuses CloudWatch: no alarm would ever be delivered.
    assert_ne!(key_ref, "alias/aws/sns");
    let key_id = key_ref
        .strip_prefix("!Ref ")
        .expect("a key of the template's own");
    let key = &doc["Resources"][key_id];
    assert_eq!(key["Type"].as_str(), Some("AWS::KMS::Key"));
    assert_eq!(key["Properties"]["EnableKeyRotation"].as_bool(), Some(true));
    let statements = key["Properties"]["KeyPolicy"]["Statement"].as_sequence().unwrap();
    let for_cloudwatch = statements
        .iter()
        .find(|s| {
            let principal = serde_norway::to_string(&s["Principal"]["Service"]).unwrap();
            s["Effect"].as_str() == Some("Allow") && principal.contains("cloudwatch.amazonaws.com")
        })
        .expect("a statement for CloudWatch");
    let granted = actions(for_cloudwatch);
    assert!(
        granted.contains(&"kms:Decrypt") && granted.contains(&"kms:GenerateDataKey*"),
        "{granted:?}"
    );
    // Every alarm notifies that topic.
    for (id, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() == Some("AWS::CloudWatch::Alarm") {
            let actions = serde_norway::to_string(&resource["Properties"]["AlarmActions"]).unwrap();
            assert!(actions.contains("AlarmTopic"), "{id:?}: {actions}");
        }
    }
}

#[test]
fn payment_rides_out_an_hour_of_provider_outage_before_its_dlq() {
    use orderflow_adapters::sqs::Backoff;
    let doc = document();
    let receives = doc["Resources"]["PaymentQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
        .as_u64()
        .unwrap();
    let env = &doc["Resources"]["PaymentFunction"]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        tag_name(&env["PAYMENT_QUEUE_URL"]).as_deref(),
        Some("!Ref PaymentQueue")
    );
    assert_eq!(
        tag_name(&env["PAYMENT_RETRY_BASE_SECONDS"]).as_deref(),
        Some("!Ref PaymentRetryBaseSeconds")
    );
    let base = u32::try_from(
        doc["Parameters"]["PaymentRetryBaseSeconds"]["Default"]
            .as_u64()
            .unwrap(),
    )
    .unwrap();
    let max = u32::try_from(env["PAYMENT_RETRY_MAX_SECONDS"].as_u64().unwrap()).unwrap();
    // The message is parked when its last receive fails: every delay before that.
    let hidden: u32 = (1..u32::try_from(receives).unwrap())
        .map(|n| Backoff::delay(base, max, n))
        .sum();
    assert!(hidden >= 3_600, "{hidden} s of outage park a capture in the DLQ");
    // The function may set its messages' visibility.
    let role = statements(&doc, "PaymentRole");
    assert!(
        role.iter()
            .any(|s| actions(s).contains(&"sqs:ChangeMessageVisibility")
                && resources(s).contains(&"!GetAtt PaymentQueue.Arn".to_owned()))
    );
}

#[test]
fn the_relay_never_gives_up_on_a_record_and_its_lag_rings_long_before_retention_ends() {
    let doc = document();
    let stream = &doc["Resources"]["RelayFunction"]["Properties"]["Events"]["Stream"]["Properties"];
    assert_eq!(
        stream["MaximumRetryAttempts"].as_i64(),
        Some(-1),
        "retried until published"
    );
    assert_eq!(
        stream["MaximumRecordAgeInSeconds"].as_i64(),
        Some(-1),
        "within the retention"
    );
    assert_eq!(
        tag_name(&stream["DestinationConfig"]["OnFailure"]["Destination"]).as_deref(),
        Some("!GetAtt RelayFailureQueue.Arn")
    );
    let alarm = &doc["Resources"]["RelayIteratorAgeAlarm"]["Properties"];
    assert_eq!(alarm["MetricName"].as_str(), Some("IteratorAge"));
    let slo: u64 = doc["Parameters"]["LagSloSeconds"]["Default"].as_u64().unwrap();
    let periods = alarm["EvaluationPeriods"].as_u64().unwrap() * alarm["Period"].as_u64().unwrap();
    // The stream keeps records 24 hours: the alarm rings within minutes of a stall.
    assert!(slo + periods < 3_600, "{slo} s + {periods} s");
}

/// Every metric the functions emit, as CloudWatch files it: its name and its
/// dimension names, read back from the EMF documents the collector writes when the
/// functions' own metric code runs.
async fn emitted() -> std::collections::BTreeSet<(String, Vec<String>)> {
    use orderflow_adapters::calls::Counted as _;
    use orderflow_domain::Envelope;
    use orderflow_lambda::metrics;
    let sample = |path: &str| {
        std::fs::read_to_string(format!("{}/../events/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let collector = metrics::init_lambda("order-saga").unwrap();
    let order = |path: &str| Envelope::<orderflow_domain::order::OrderEvent>::decode(&sample(path)).unwrap();
    let (placed, confirmed) = (
        order("order/OrderPlaced.json"),
        order("order/OrderConfirmed.json"),
    );
    metrics::time_to_confirm(std::slice::from_ref(&confirmed), placed.occurred_at);
    metrics::order_events(&[placed, confirmed, order("order/OrderCancelled.json")]);
    metrics::payment_events(&[Envelope::decode(&sample("payment/PaymentDeclined.json")).unwrap()]);
    metrics::handler_duration(std::time::Duration::from_millis(3));
    metrics::message_failed("poison");
    metrics::events_relayed(1);
    // An AWS call, counted before it is sent (this one goes nowhere).
    let client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url("http://127.0.0.1:9")
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "a", "b", None, None, "test",
            ))
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build(),
    )
    .counted();
    assert!(client.list_tables().send().await.is_err());
    let mut out = Vec::new();
    collector.flush(&mut out).unwrap();
    let mut found = std::collections::BTreeSet::new();
    for line in String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "orderflow");
        let mut dimensions: Vec<String> = directive["Dimensions"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap().to_owned())
            .collect();
        dimensions.sort();
        for metric in directive["Metrics"].as_array().unwrap() {
            found.insert((metric["Name"].as_str().unwrap().to_owned(), dimensions.clone()));
        }
    }
    found
}

/// The dashboard's body with every `${…}` of its `!Sub` resolved to a stand-in, and
/// what each stood for.
fn dashboard(doc: &Value) -> (serde_json::Value, BTreeMap<String, String>) {
    let Value::Tagged(sub) = &doc["Resources"]["Dashboard"]["Properties"]["DashboardBody"] else {
        panic!("the dashboard's body is a !Sub");
    };
    assert_eq!(sub.tag.to_string(), "!Sub");
    let mut text = sub.value.as_str().unwrap().to_owned();
    let mut refs = BTreeMap::new();
    while let Some(start) = text.find("${") {
        let end = start + text[start..].find('}').unwrap();
        let name = text[start + 2..end].to_owned();
        let stand_in = if name == "LagSloSeconds" {
            "60".to_owned()
        } else {
            format!("ref:{name}")
        };
        let (resource, _) = name.split_once('.').unwrap_or((&name, ""));
        assert!(
            resource.starts_with("AWS::")
                || doc["Resources"].get(resource).is_some()
                || doc["Parameters"].get(resource).is_some(),
            "${{{name}}} names nothing in the template"
        );
        refs.insert(stand_in.clone(), name);
        text.replace_range(start..=end, &stand_in);
    }
    (serde_json::from_str(&text).unwrap(), refs)
}

#[tokio::test]
async fn every_metric_on_the_dashboard_is_one_the_functions_emit_and_it_shows_every_queue_and_function() {
    let doc = document();
    let emitted = emitted().await;
    let (body, _) = dashboard(&doc);
    let kind = |id: &str| {
        doc["Resources"][id]["Type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let search = |expression: &str| -> Vec<(String, Vec<String>)> {
        // SEARCH('{namespace,dimension,…} MetricName="Name"', 'stat', period)
        let mut found = Vec::new();
        let mut rest = expression;
        while let Some(at) = rest.find("SEARCH('{") {
            rest = &rest[at + 9..];
            let (schema, after) = rest.split_once('}').unwrap();
            let name = after
                .split_once("MetricName=\"")
                .unwrap()
                .1
                .split_once('"')
                .unwrap()
                .0;
            let mut parts: Vec<String> = schema.split(',').map(str::to_owned).collect();
            assert_eq!(parts.remove(0), "orderflow", "{expression}");
            parts.sort();
            found.push((name.to_owned(), parts));
        }
        found
    };
    let mut shown_queues = std::collections::BTreeSet::new();
    let mut shown_functions: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut searched = std::collections::BTreeSet::new();
    for widget in body["widgets"].as_array().unwrap() {
        if widget["type"] != "metric" {
            continue;
        }
        let title = widget["properties"]["title"].as_str().unwrap();
        for metric in widget["properties"]["metrics"].as_array().unwrap() {
            let metric = metric.as_array().unwrap();
            if let Some(expression) = metric[0]["expression"].as_str() {
                for (name, dimensions) in search(expression) {
                    assert!(
                        emitted.contains(&(name.clone(), dimensions.clone())),
                        "{title}: {name} with {dimensions:?} is not emitted; emitted: {emitted:?}"
                    );
                    searched.insert(name);
                }
                continue;
            }
            let text = |i: usize| metric[i].as_str().unwrap().to_owned();
            let (namespace, name, dimension, value) = (text(0), text(1), text(2), text(3));
            let target = value
                .strip_prefix("ref:")
                .unwrap_or_else(|| panic!("{title}: {value}"));
            match namespace.as_str() {
                "AWS/SQS" => {
                    assert!(
                        [
                            "ApproximateNumberOfMessagesVisible",
                            "ApproximateAgeOfOldestMessage"
                        ]
                        .contains(&name.as_str()),
                        "{title}: {name}"
                    );
                    assert_eq!(dimension, "QueueName", "{title}");
                    let queue = target
                        .strip_suffix(".QueueName")
                        .unwrap_or_else(|| panic!("{title}: {target}"));
                    assert_eq!(kind(queue), "AWS::SQS::Queue", "{title}: {queue}");
                    shown_queues.insert(queue.to_owned());
                }
                "AWS/Lambda" => {
                    assert!(
                        ["Errors", "Throttles", "Duration", "IteratorAge"].contains(&name.as_str()),
                        "{title}: {name}"
                    );
                    assert_eq!(dimension, "FunctionName", "{title}");
                    assert_eq!(kind(target), "AWS::Serverless::Function", "{title}: {target}");
                    shown_functions.entry(name).or_default().insert(target.to_owned());
                }
                other => panic!("{title}: namespace {other}"),
            }
        }
    }
    let all = |kind_name: &str| -> std::collections::BTreeSet<String> {
        doc["Resources"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(kind_name))
            .map(|(id, _)| id.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        shown_queues,
        all("AWS::SQS::Queue"),
        "every queue and DLQ has its depth shown"
    );
    for metric in ["Errors", "Throttles", "Duration"] {
        assert_eq!(
            shown_functions[metric],
            all("AWS::Serverless::Function"),
            "{metric}"
        );
    }
    assert_eq!(
        shown_functions["IteratorAge"],
        std::collections::BTreeSet::from(["RelayFunction".to_owned()])
    );
    for name in [
        "OrdersPlaced",
        "OrdersConfirmed",
        "OrdersCancelled",
        "TimeToConfirm",
        "AwsCalls",
        "HandlerDuration",
    ] {
        assert!(searched.contains(name), "{name} is not on the dashboard");
    }
    // Every alarm says where to look.
    for (id, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() == Some("AWS::CloudWatch::Alarm") {
            let description = tag_name(&resource["Properties"]["AlarmDescription"]).unwrap();
            assert!(
                description.contains("#dashboards/dashboard/${Dashboard}"),
                "{id:?}: {description}"
            );
        }
    }
}

/// The logical id a `!GetAtt X.Arn` or `!Ref X` names.
fn target_of(value: &Value) -> Option<String> {
    let text = tag_name(value)?;
    let rest = text
        .strip_prefix("!GetAtt ")
        .or_else(|| text.strip_prefix("!Ref "))?;
    Some(rest.trim_end_matches(".Arn").to_owned())
}

/// The logical ids a condition value names (one, or a list).
fn targets_of(value: &Value) -> Vec<String> {
    match value.as_sequence() {
        Some(items) => items.iter().filter_map(target_of).collect(),
        None => target_of(value).into_iter().collect(),
    }
}

/// Every SQS queue: no principal but the ones meant to may send to it. A consumer's
/// queue refuses `sqs:SendMessage` to anyone but its rules (and the operators' redrive
/// role); a DLQ to anyone but its source queue; the relay's failure queue to anyone but
/// the relay's role. A forged `OrderCancelled` or `PaymentCaptured` cannot be written
/// to a queue by another principal of the account, whatever its IAM policy allows.
#[test]
fn every_queue_refuses_messages_from_anyone_but_its_feeders() {
    let doc = document();
    let resources = doc["Resources"].as_mapping().unwrap();
    let of_type = |kind: &str| -> Vec<(String, &Value)> {
        resources
            .iter()
            .filter(|(_, r)| r["Type"].as_str() == Some(kind))
            .map(|(id, r)| (id.as_str().unwrap().to_owned(), r))
            .collect()
    };
    // Which queue redrives into which DLQ, and which rules target which queue.
    let mut source_of_dlq = BTreeMap::new();
    for (id, queue) in of_type("AWS::SQS::Queue") {
        if let Some(dlq) = target_of(&queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]) {
            source_of_dlq.insert(dlq, id);
        }
    }
    let mut rules_of_queue: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, rule) in of_type("AWS::Events::Rule") {
        for target in rule["Properties"]["Targets"].as_sequence().unwrap() {
            if let Some(queue) = target_of(&target["Arn"]) {
                rules_of_queue.entry(queue).or_default().push(id.clone());
            }
        }
    }
    // Each queue's Deny statement.
    let mut denies: BTreeMap<String, &Value> = BTreeMap::new();
    for (id, policy) in of_type("AWS::SQS::QueuePolicy") {
        let queues = targets_of(&policy["Properties"]["Queues"]);
        assert_eq!(queues.len(), 1, "{id}: one policy a queue");
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            .as_sequence()
            .unwrap()
        {
            if statement["Effect"].as_str() == Some("Deny") {
                assert_eq!(statement["Principal"].as_str(), Some("*"), "{id}");
                assert_eq!(statement["Action"].as_str(), Some("sqs:SendMessage"), "{id}");
                assert_eq!(target_of(&statement["Resource"]), Some(queues[0].clone()), "{id}");
                denies.insert(queues[0].clone(), statement);
            }
        }
    }
    let queues = of_type("AWS::SQS::Queue");
    assert!(queues.len() >= 13, "{} queues", queues.len());
    for (queue, _) in queues {
        let deny = denies
            .get(&queue)
            .unwrap_or_else(|| panic!("{queue} has no policy refusing other senders"));
        let condition = deny["Condition"]["ArnNotEquals"].as_mapping().unwrap();
        let source = condition.get("aws:SourceArn").map(targets_of);
        let principal = condition.get("aws:PrincipalArn");
        if let Some(rules) = rules_of_queue.get(&queue) {
            let mut source = source.unwrap_or_else(|| panic!("{queue}: no rule exemption"));
            source.sort();
            let mut rules = rules.clone();
            rules.sort();
            assert_eq!(source, rules, "{queue}: exactly the rules that target it");
            let principal = tag_name(principal.unwrap()).unwrap();
            assert!(principal.contains("RedriveRoleArn"), "{queue}: {principal}");
        } else if let Some(source_queue) = source_of_dlq.get(&queue) {
            assert_eq!(source, Some(vec![source_queue.clone()]), "{queue}");
            assert!(principal.is_none(), "{queue}: no principal may send to a DLQ");
        } else {
            assert_eq!(queue, "RelayFailureQueue");
            assert_eq!(source, None);
            assert_eq!(targets_of(principal.unwrap()), ["RelayRole"]);
        }
    }
}
