//! Operating it, against DynamoDB Local and moto: the consistency checker finds what
//! was broken on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use orderflow_app::{EventRecord, EventStore, StreamId};
use orderflow_cli::check::{CheckArgs, run};
use support::Fixture;
use uuid::Uuid;

fn args(f: &Fixture) -> CheckArgs {
    CheckArgs {
        on: orderflow_cli::target::Target::local(&f.stack.prefix),
        from: None,
        until: None,
        grace: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_verifies_the_compensation_each_order_records_against_its_participants() {
    use orderflow_domain::payment::{Payment, PaymentEvent};
    let f = Fixture::new(false).await;
    let seen = f.place(&[("SKU-1", 1)], "tok_visa").await;
    let unseen = f.place(&[("SKU-2", 1)], "tok_visa").await;
    f.settle().await;
    f.cancel(seen).await.unwrap();
    f.settle().await;
    let clean = run(&args(&f)).await.unwrap();
    assert!(clean.clean(), "{clean}");

    // The second is cancelled and compensated, but the saga never hears of it.
    f.cancel(unseen).await.unwrap();
    f.runner.pump_stream().await.unwrap();
    for binary in ["inventory", "payment", "shipping", "projector"] {
        f.pump(binary).await;
    }
    f.runner.pump_stream().await.unwrap();
    let saga = f.stack.messaging.queues["OrderSagaQueue"].url.clone();
    f.sqs.purge_queue().queue_url(&saga).send().await.unwrap();
    let about = |report: &orderflow_cli::check::Report, id| -> Vec<String> {
        report
            .findings
            .iter()
            .filter(|x| x.order_id == Some(id))
            .map(|x| x.what.clone())
            .collect()
    };
    let report = run(&args(&f)).await.unwrap();
    let found = about(&report, unseen);
    for outcome in ["refund", "stock release", "shipment cancellation"] {
        assert!(
            found
                .iter()
                .any(|w| w.starts_with(&format!("the {outcome} at")) && w.contains("not recorded")),
            "{outcome}: {found:?}"
        );
    }
    // Within the lag objective it is only on its way.
    let patient = run(&CheckArgs {
        grace: 3600,
        ..args(&f)
    })
    .await
    .unwrap();
    assert!(about(&patient, unseen).is_empty(), "{patient}");

    // The refund recorded at a time the payment stream does not hold, as a saga with a
    // bug would record it (a message cannot make the saga do so: it reads the refund
    // back from the payment stream).
    let refund = f
        .history::<Payment>(unseen)
        .await
        .into_iter()
        .find_map(|e| match e.data {
            PaymentEvent::Refunded(refund) => Some(refund),
            _ => None,
        })
        .unwrap();
    f.commands
        .execute::<orderflow_domain::order::Order>(
            &unseen.to_string(),
            orderflow_domain::order::OrderCommand::RecordPaymentRefunded {
                payment_id: refund.payment_id,
                amount: refund.amount,
                at: orderflow_domain::Timestamp::parse("2026-01-01T00:00:00Z").unwrap(),
            },
            &support::Inspector::metadata("service:order-saga"),
            None,
        )
        .await
        .unwrap();
    let report = run(&args(&f)).await.unwrap();
    let found = about(&report, unseen);
    assert!(
        found
            .iter()
            .any(|w| w.contains("records the refund at 2026-01-01T00:00:00")
                && w.contains("its participant's stream at")),
        "{found:?}"
    );
    assert!(about(&report, seen).is_empty(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_corrupted_read_model_a_broken_invariant_and_an_impossible_transition() {
    let f = Fixture::new(false).await;
    let paid = f.place(&[("SKU-1", 1)], "tok_visa").await;
    let declined = f.place(&[("SKU-2", 1)], "tok_decline").await;
    let other = f.place(&[("SKU-2", 2)], "tok_visa").await;
    f.settle().await;
    let clean = run(&args(&f)).await.unwrap();
    assert!(clean.clean(), "{clean}");
    assert_eq!(clean.orders, 3);

    // 1. The read model says DELIVERED for an order that is CONFIRMED.
    f.dynamodb
        .update_item()
        .table_name(f.views.table())
        .key("orderId", AttributeValue::S(paid.to_string()))
        .update_expression("SET #s = :s")
        .expression_attribute_names("#s", "status")
        .expression_attribute_values(":s", AttributeValue::S("DELIVERED".into()))
        .send()
        .await
        .unwrap();
    // 2. Stock: the catalog holds a reservation no order made.
    f.dynamodb
        .update_item()
        .table_name(f.stack.table("CatalogTable").unwrap())
        .key("sku", AttributeValue::S("SKU-1".into()))
        .update_expression("SET reserved = reserved + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    // 2b. A view of an order the store never had.
    let ghost = orderflow_domain::OrderId::from_uuid(Uuid::now_v7());
    let mut item = f
        .dynamodb
        .get_item()
        .table_name(f.views.table())
        .key("orderId", AttributeValue::S(declined.to_string()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    item.insert("orderId".into(), AttributeValue::S(ghost.to_string()));
    f.dynamodb
        .put_item()
        .table_name(f.views.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
    // 3. A second OrderPlaced appended to a placed order's stream.
    let history = f.order_history(other).await;
    let mut again = history[0].clone();
    again.version = history.len() as u64 + 1;
    again.event_id = Uuid::now_v7();
    f.commands
        .repository()
        .store()
        .append(
            &StreamId::new("order", other.to_string()),
            history.len() as u64,
            &[EventRecord::from_envelope(&again)],
        )
        .await
        .unwrap();

    let report = run(&args(&f)).await.unwrap();
    assert!(!report.clean());
    let text = report.to_string();
    let about = |id: orderflow_domain::OrderId| {
        report
            .findings
            .iter()
            .filter(|x| x.order_id == Some(id))
            .map(|x| x.what.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        about(paid).iter().any(|w| w.contains("differs from the fold")),
        "{text}"
    );
    assert!(
        about(other)
            .iter()
            .any(|w| w.contains("impossible transition") && w.contains("OrderPlaced")),
        "{text}"
    );
    assert!(
        report.findings.iter().any(|x| x.order_id.is_none()
            && x.what.contains("SKU-1")
            && x.what.contains("holds 2 reserved, the inventory streams 1")),
        "{text}"
    );
    assert!(about(declined).is_empty(), "the untouched order is clean: {text}");
    assert!(
        about(ghost)
            .iter()
            .any(|w| w.contains("of an order the store lacks")),
        "{text}"
    );

    // A time range that holds none of them checks none of them.
    let none = run(&CheckArgs {
        from: Some("2000-01-01T00:00:00Z".into()),
        until: Some("2000-01-02T00:00:00Z".into()),
        ..args(&f)
    })
    .await
    .unwrap();
    assert_eq!((none.orders, none.findings.len()), (0, 0), "{none}");
    assert!(
        run(&CheckArgs {
            from: Some("last week".into()),
            ..args(&f)
        })
        .await
        .is_err()
    );
}

async fn send_to(f: &Fixture, queue_logical_id: &str, body: String) {
    f.sqs
        .send_message()
        .queue_url(&f.stack.queue(queue_logical_id).unwrap().url)
        .message_body(body)
        .send()
        .await
        .unwrap();
}

fn dlq_target(f: &Fixture) -> orderflow_cli::dlq::Target {
    orderflow_cli::dlq::Target::local(&f.stack.prefix)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_message_is_shown_with_its_error_and_redriven_after_the_fix() {
    use orderflow_cli::dlq;

    let f = Fixture::new(false).await;
    // A cancellation (v2) of an order the store does not hold yet, as if the store had
    // been restored from a backup older than the event: the projector cannot catch up.
    let model = f.place(&[("SKU-2", 1)], "tok_visa").await;
    f.cancel(model).await.unwrap();
    f.settle().await;
    let history = f.order_history(model).await;
    let missing = orderflow_domain::OrderId::from_uuid(Uuid::now_v7());
    let mut cancelled = history[1].clone();
    cancelled.aggregate_id = missing.to_string();
    let body = support::delivery(&cancelled.to_json(), "m-1").body.unwrap();
    for _ in 0..2 {
        send_to(&f, "ProjectorQueue", body.clone()).await;
    }
    f.settle().await;

    let target = dlq_target(&f);
    let depths = dlq::list(&target).await.unwrap();
    let projector_dlq = depths
        .iter()
        .find(|d| d.logical_id == "ProjectorDeadLetterQueue")
        .unwrap();
    assert_eq!(projector_dlq.messages, 2, "{depths:?}");
    assert!(projector_dlq.oldest.is_some());
    assert!(projector_dlq.source.ends_with("ProjectorQueue"));
    assert!(
        depths
            .iter()
            .filter(|d| d.logical_id != "ProjectorDeadLetterQueue")
            .all(|d| d.messages == 0),
        "{depths:?}"
    );

    let parked = dlq::show(&target, "ProjectorQueue", 10).await.unwrap();
    assert_eq!(parked.len(), 2);
    for p in &parked {
        assert_eq!(p.event_type.as_deref(), Some("OrderCancelled"));
        assert_eq!(p.order_id.as_deref(), Some(missing.to_string().as_str()));
        assert!(
            p.receive_count
                .as_deref()
                .is_some_and(|n| n.parse::<u32>().unwrap() >= 5),
            "{p:?}"
        );
        let error = p.last_error.as_deref().unwrap_or_default();
        assert!(error.contains("the event store holds 0 events"), "{error}");
        assert!(error.contains("service:projector"), "{error}");
    }
    assert_eq!(
        dlq::list(&target)
            .await
            .unwrap()
            .iter()
            .find(|d| d.logical_id == "ProjectorDeadLetterQueue")
            .unwrap()
            .messages,
        2,
        "showing leaves them where they are"
    );

    // The fix: the order's events are in the store again.
    f.place_with_id(missing, &[("SKU-2", 1)], "tok_visa").await;
    f.cancel(missing).await.unwrap();

    // Back to the projector's queue at 1 message a second, by receive, send, delete.
    let started = std::time::Instant::now();
    let redriven = dlq::redrive(&target, "ProjectorDeadLetterQueue", 1, "receive-send")
        .await
        .unwrap();
    assert_eq!((redriven.moved, redriven.method), (2, "receive-send"));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "bounded by --rate"
    );
    f.settle().await;
    assert!(
        f.views.get(missing).await.unwrap().is_some(),
        "projected after the redrive"
    );
    f.assert_read_models(&f.views, &[missing]).await;
    assert!(dlq::list(&target).await.unwrap().iter().all(|d| d.messages == 0));

    // `auto` uses a message move task where SQS has one, and falls back where it
    // does not (the emulator): the same outcome either way.
    let later = orderflow_domain::OrderId::from_uuid(Uuid::now_v7());
    cancelled.aggregate_id = later.to_string();
    send_to(
        &f,
        "ProjectorQueue",
        support::delivery(&cancelled.to_json(), "m-2").body.unwrap(),
    )
    .await;
    f.settle().await;
    f.place_with_id(later, &[("SKU-2", 1)], "tok_visa").await;
    f.cancel(later).await.unwrap();
    let auto = dlq::redrive(&target, "ProjectorDeadLetterQueue", 50, "auto")
        .await
        .unwrap();
    assert_eq!(auto.moved, 1);
    f.settle().await;
    assert!(f.views.get(later).await.unwrap().is_some());
    assert!(dlq::show(&target, "nope", 1).await.is_err());
}

async fn drain(f: &Fixture, queue_logical_id: &str) -> Vec<serde_json::Value> {
    let url = &f.stack.queue(queue_logical_id).unwrap().url;
    let mut bodies = Vec::new();
    let mut empty = 0;
    while empty < 2 {
        let messages = f
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        empty = if messages.is_empty() { empty + 1 } else { 0 };
        for message in messages {
            bodies.push(serde_json::from_str(message.body.as_deref().unwrap()).unwrap());
            f.sqs
                .delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    bodies
}

fn never() -> tokio::sync::watch::Receiver<bool> {
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    shutdown
}

fn done(replayed: orderflow_cli::replay::Replayed) -> orderflow_cli::replay::ReplayRecord {
    match replayed {
        orderflow_cli::replay::Replayed::Done(record) => *record,
        other @ orderflow_cli::replay::Replayed::DryRun { .. } => panic!("not a replay: {other:?}"),
    }
}

/// A stack with one settled order per token, and replay arguments (to the replay bus)
/// whose window holds every event of them.
async fn replayable(
    tokens: &[&str],
) -> (
    Fixture,
    Vec<orderflow_domain::OrderId>,
    orderflow_cli::replay::ReplayArgs,
) {
    let f = Fixture::new(false).await;
    let now = || orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::now());
    let from = now().plus(jiff::SignedDuration::from_secs(-1));
    let mut orders = Vec::new();
    for token in tokens {
        orders.push(f.place(&[("SKU-2", 1)], token).await);
    }
    f.settle().await;
    let until = now().plus(jiff::SignedDuration::from_secs(1));
    let args = orderflow_cli::replay::ReplayArgs {
        on: orderflow_cli::target::Target::local(&f.stack.prefix),
        owner: Some("ops-ann".into()),
        reason: Some("a drill".into()),
        from: Some(from.to_string()),
        until: Some(until.to_string()),
        aggregate_ids: vec![],
        event_types: vec![],
        target: "replay-bus".into(),
        into: None,
        allow_live: false,
        rate: 20,
        dry_run: false,
        resume: None,
        quiet: true,
    };
    (f, orders, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_is_bounded_rate_limited_recorded_marked_and_resumable() {
    use orderflow_cli::replay::{ReplayArgs, Replayed, run};
    use std::time::{Duration, Instant};

    let (f, orders, args) = replayable(&["tok_visa", "tok_decline", "tok_visa"]).await;
    let in_range = f
        .commands
        .repository()
        .store()
        .read_time_range(
            orderflow_domain::Timestamp::parse(args.from.as_deref().unwrap()).unwrap(),
            orderflow_domain::Timestamp::parse(args.until.as_deref().unwrap()).unwrap(),
        )
        .await
        .unwrap()
        .len();
    let args = ReplayArgs {
        reason: Some("projector fix #42".into()),
        rate: 20,
        ..args
    };
    let records =
        orderflow_cli::replay::Records::new(f.dynamodb.clone(), f.stack.table("ReplayTable").unwrap());

    // A dry run counts and records nothing.
    let Replayed::DryRun { matched, by_type } = run(
        &ReplayArgs {
            dry_run: true,
            ..args.clone()
        },
        never(),
    )
    .await
    .unwrap() else {
        panic!("a dry run")
    };
    assert_eq!(matched, in_range);
    assert_eq!(by_type["OrderPlaced"], 3);
    assert!(records.all().await.unwrap().is_empty());
    let narrowed = run(
        &ReplayArgs {
            dry_run: true,
            event_types: vec!["OrderPlaced".into()],
            aggregate_ids: vec![orders[0].to_string(), orders[1].to_string()],
            ..args.clone()
        },
        never(),
    )
    .await
    .unwrap();
    assert!(
        matches!(narrowed, Replayed::DryRun { matched: 2, .. }),
        "{narrowed:?}"
    );
    // The live bus only when asked for; no owner, no replay.
    let live = run(
        &ReplayArgs {
            target: "live-bus".into(),
            ..args.clone()
        },
        never(),
    )
    .await;
    assert!(live.unwrap_err().to_string().contains("--allow-live"));
    assert!(
        run(
            &ReplayArgs {
                owner: None,
                ..args.clone()
            },
            never()
        )
        .await
        .is_err()
    );

    // To the replay bus, at 20 events a second.
    let started = Instant::now();
    let record = done(run(&args, never()).await.unwrap());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500 * ((in_range as u64 - 1) / 10)),
        "{in_range} events at 20/s took {elapsed:?}"
    );
    assert_eq!(
        (record.outcome.as_str(), record.sent, record.matched),
        ("completed", in_range as u64, in_range as u64)
    );
    assert_eq!(
        (record.owner.as_str(), record.reason.as_str(), record.rate),
        ("ops-ann", "projector fix #42", 20)
    );
    assert!(record.ended_at.is_some());
    assert_eq!(
        records.get(&record.replay_id).await.unwrap().as_ref(),
        Some(&record),
        "recorded as it ended"
    );
    let delivered = drain(&f, "ReplayQueue").await;
    assert_eq!(delivered.len(), in_range);
    for body in &delivered {
        assert_eq!(body["detail"]["replay"]["id"], record.replay_id.as_str());
        assert_eq!(body["detail"]["replay"]["reason"], "projector fix #42");
    }
    let depths = f.queue_depths().await;
    assert!(
        depths
            .iter()
            .filter(|(q, _)| !q.starts_with("Replay"))
            .all(|(_, d)| *d == 0),
        "no live consumer saw the replay: {depths:?}"
    );

    // Interrupted half-way, then resumed from its record: every event once.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let slow = ReplayArgs {
        rate: 5,
        ..args.clone()
    };
    let interrupted = tokio::spawn(async move { run(&slow, shutdown).await.unwrap() });
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    stop.send(true).unwrap();
    let interrupted = done(interrupted.await.unwrap());
    assert_eq!(interrupted.outcome, "interrupted");
    assert!(
        interrupted.sent > 0 && interrupted.sent < interrupted.matched,
        "{interrupted:?}"
    );
    let resumed = done(
        run(
            &ReplayArgs {
                resume: Some(interrupted.replay_id.clone()),
                owner: None,
                reason: None,
                ..args.clone()
            },
            never(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        (resumed.outcome.as_str(), resumed.sent),
        ("completed", in_range as u64)
    );
    let mut ids: Vec<String> = drain(&f, "ReplayQueue")
        .await
        .iter()
        .map(|b| b["detail"]["eventId"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        in_range,
        "the resume sent what the interruption had not"
    );
    assert!(
        run(
            &ReplayArgs {
                resume: Some(resumed.replay_id),
                ..args.clone()
            },
            never()
        )
        .await
        .is_err()
    );

    // Into the read model's other side: the projector's fold of the replayed events.
    let rebuilt = done(
        run(
            &ReplayArgs {
                target: "read-model".into(),
                ..args.clone()
            },
            never(),
        )
        .await
        .unwrap(),
    );
    assert!(
        rebuilt.target.ends_with("OrderViewShadowTable"),
        "{}",
        rebuilt.target
    );
    assert!(
        rebuilt.skipped > 0,
        "inventory and payment events are not the read model's"
    );
    let shadow = orderflow_adapters::read_model::DynamoOrderViews::new(
        f.dynamodb.clone(),
        f.stack.table("OrderViewShadowTable").unwrap(),
    );
    f.assert_read_models(&shadow, &orders).await;
    assert_eq!(records.all().await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_makes_no_payment_for_a_replayed_event() {
    let f = Fixture::new(false).await;
    let id = f.place(&[("SKU-2", 1)], "tok_visa").await;
    let history = f.order_history(id).await;
    let mut replayed = history[0].clone();
    replayed.replay = Some(orderflow_domain::envelope::ReplayMark {
        id: "rpl_test".into(),
        reason: "drill".into(),
    });
    let payment = orderflow_runner::handler_for("payment", f.runner.stack(), &f.dynamodb, 50).unwrap();
    let response = payment(support::batch(vec![support::delivery(
        &replayed.to_json(),
        "m-replayed",
    )]))
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert!(
        f.stream::<orderflow_domain::payment::Payment>(id)
            .await
            .is_empty(),
        "no payment for a replay"
    );
    assert!(f.ledger().await.is_empty());
    // The live event itself is paid, as ever.
    let response = payment(support::batch(vec![support::delivery(
        &history[0].to_json(),
        "m-live",
    )]))
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        f.stream::<orderflow_domain::payment::Payment>(id).await,
        ["PaymentCaptured"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commands_act_unchanged_on_a_deployed_stack_found_through_cloudformation() {
    use orderflow_provision::local;

    let sdk = local::sdk_config().await;
    let cloudformation = aws_sdk_cloudformation::Client::new(&sdk);
    let name = local::unique_name("deployed");
    // No event bus: the emulator reports none's physical id.
    let template = serde_json::json!({
        "Resources": {
            "WorkQueue": {"Type": "AWS::SQS::Queue", "Properties": {
                "VisibilityTimeout": 60,
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["WorkDeadLetterQueue", "Arn"]}, "maxReceiveCount": 5}}},
            "WorkDeadLetterQueue": {"Type": "AWS::SQS::Queue"},
            "Views": {"Type": "AWS::DynamoDB::Table", "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "orderId", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "orderId", "KeyType": "HASH"}]}}
        },
        "Outputs": {"OrderViewTableName": {"Value": {"Ref": "Views"}}}
    });
    cloudformation
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string())
        .send()
        .await
        .unwrap();

    let sqs = local::sqs_client().await.unwrap();
    let stack = orderflow_cli::target::from_cloudformation(&cloudformation, &sqs, &name)
        .await
        .unwrap();
    let work = stack.queue("WorkQueue").unwrap();
    assert_eq!(work.redrive, Some(("WorkDeadLetterQueue".to_owned(), 5)));
    assert_eq!(work.visibility_timeout, 60);
    assert!(work.arn.starts_with("arn:aws:sqs:") && work.url.ends_with(&work.name));
    let views = stack.table("Views").unwrap();
    assert_eq!(
        stack.env("ORDER_VIEW_TABLE"),
        Some(views),
        "from the stack's output"
    );

    // A command, as an operator runs it against AWS: `--stack`, nothing else.
    sqs.send_message()
        .queue_url(&stack.queue("WorkDeadLetterQueue").unwrap().url)
        .message_body("{}")
        .send()
        .await
        .unwrap();
    let on_stack = orderflow_cli::target::Target {
        stack: Some(name.clone()),
        ..orderflow_cli::target::Target::local("unused")
    };
    let depths = orderflow_cli::dlq::list(&on_stack).await.unwrap();
    assert_eq!(depths.len(), 1, "{depths:?}");
    assert_eq!(
        (depths[0].logical_id.as_str(), depths[0].messages),
        ("WorkDeadLetterQueue", 1)
    );
    assert_eq!(depths[0].source, work.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_a_local_stack_that_does_not_exist_says_so_and_creates_nothing() {
    use orderflow_provision::local;

    let prefix = local::unique_name("typo");
    let error = orderflow_cli::dlq::list(&orderflow_cli::target::Target::local(&prefix))
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains(&format!("orderflow-dev up --prefix {prefix}")),
        "{error:#}"
    );
    let dynamodb = local::dynamodb_client().await.unwrap();
    let table = dynamodb
        .describe_table()
        .table_name(format!("{prefix}-EventStoreTable"))
        .send()
        .await;
    assert!(
        table.is_err_and(|e| e
            .as_service_error()
            .is_some_and(|s| s.is_resource_not_found_exception())),
        "no table was created for {prefix}"
    );
    let queues = local::sqs_client()
        .await
        .unwrap()
        .list_queues()
        .queue_name_prefix(&prefix)
        .send()
        .await
        .unwrap()
        .queue_urls
        .unwrap_or_default();
    assert!(queues.is_empty(), "{queues:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_replay_honours_dry_run_and_allow_live_and_resumes_into_its_read_model() {
    use orderflow_cli::replay::{ReplayArgs, Replayed, run};
    use std::time::Duration;

    let (f, orders, args) = replayable(&["tok_visa", "tok_decline", "tok_visa", "tok_visa"]).await;
    let args = ReplayArgs {
        reason: Some("read model fix".into()),
        target: "read-model".into(),
        into: Some("shadow".into()),
        rate: 5,
        ..args
    };
    let records =
        orderflow_cli::replay::Records::new(f.dynamodb.clone(), f.stack.table("ReplayTable").unwrap());

    // A read-model replay, interrupted once it has sent something.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let slow = args.clone();
    let interrupted = tokio::spawn(async move { run(&slow, shutdown).await.unwrap() });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !records.all().await.unwrap().iter().any(|r| r.sent > 0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the replay sent nothing in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.send(true).unwrap();
    let interrupted = done(interrupted.await.unwrap());
    assert_eq!(interrupted.outcome, "interrupted");
    assert!(
        interrupted.sent > 0 && interrupted.sent < interrupted.matched,
        "{interrupted:?}"
    );
    let resume = ReplayArgs {
        resume: Some(interrupted.replay_id.clone()),
        owner: None,
        reason: None,
        target: "replay-bus".into(),
        into: None,
        rate: 1_000,
        ..args.clone()
    };

    // Resumed as a dry run: what is left is counted; nothing is sent or recorded.
    let Replayed::DryRun { matched, .. } = run(
        &ReplayArgs {
            dry_run: true,
            ..resume.clone()
        },
        never(),
    )
    .await
    .unwrap() else {
        panic!("a dry run")
    };
    let left = interrupted.matched - interrupted.sent - interrupted.skipped;
    assert_eq!(matched as u64, left);
    let unchanged = records.get(&interrupted.replay_id).await.unwrap().unwrap();
    assert_eq!(
        (unchanged.sent, unchanged.outcome.as_str()),
        (interrupted.sent, "interrupted")
    );

    // Resumed for real: into the recorded table, not a new target's.
    let resumed = done(run(&resume, never()).await.unwrap());
    assert_eq!(resumed.outcome, "completed");
    assert_eq!(resumed.target, interrupted.target);
    assert!(
        resumed.target.ends_with("OrderViewShadowTable"),
        "{}",
        resumed.target
    );
    let shadow = orderflow_adapters::read_model::DynamoOrderViews::new(
        f.dynamodb.clone(),
        f.stack.table("OrderViewShadowTable").unwrap(),
    );
    f.assert_read_models(&shadow, &orders).await;
    assert!(
        drain(&f, "ReplayQueue").await.is_empty(),
        "nothing went to the replay bus"
    );

    // A replay recorded for the live bus resumes only with --allow-live said again.
    let live = orderflow_cli::replay::ReplayRecord {
        replay_id: format!("rpl_{}", Uuid::now_v7().simple()),
        target: "live-bus".into(),
        outcome: "interrupted".into(),
        cursor: None,
        sent: 0,
        ..interrupted.clone()
    };
    records.put(&live).await.unwrap();
    let refused = run(
        &ReplayArgs {
            resume: Some(live.replay_id.clone()),
            ..resume.clone()
        },
        never(),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("--allow-live"), "{refused}");
    let depths = f.queue_depths().await;
    assert!(depths.values().all(|d| *d == 0), "nothing was sent: {depths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_relay_gave_up_on_are_recovered_and_every_order_completes_once() {
    let f = Fixture::new(false).await;
    let now = || orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::now());
    // A confirmed, captured order…
    let charged = f.place(&[("SKU-1", 1)], "tok_visa").await;
    f.settle().await;
    assert_eq!(
        f.status(charged).await,
        orderflow_domain::order::OrderStatus::Confirmed
    );
    let first = now();
    // …is cancelled, and a new order placed; their events leave the store and never
    // reach a consumer (here: relayed, then lost from every queue).
    f.cancel(charged).await.unwrap();
    let unseen = f.place(&[("SKU-2", 1)], "tok_visa").await;
    while f.runner.pump_stream().await.unwrap() > 0 {}
    for queue in f.stack.messaging.queues.values() {
        f.sqs.purge_queue().queue_url(&queue.url).send().await.unwrap();
    }
    let last = now();
    f.settle().await;
    let ledger = f.ledger().await;
    assert!(
        !ledger[&charged.to_string()].refunded,
        "the cancellation was lost: still charged"
    );
    assert!(
        !ledger.contains_key(&unseen.to_string()),
        "the placement was lost"
    );
    // The checker sees both: one order stalled, one cancelled yet charged.
    let report = run(&args(&f)).await.unwrap();
    let about = |id: orderflow_domain::OrderId| -> Vec<String> {
        report
            .findings
            .iter()
            .filter(|x| x.order_id == Some(id))
            .map(|x| x.what.clone())
            .collect()
    };
    assert!(
        about(unseen)
            .iter()
            .any(|w| w.starts_with("stalled: PENDING with no answer")),
        "{:?}",
        report.findings
    );
    assert!(
        about(charged).iter().any(|w| w.contains("still charged")),
        "{:?}",
        report.findings
    );

    // What Lambda leaves in the on-failure queue for such a batch: its metadata only.
    let whole_second = |t: orderflow_domain::Timestamp| t.to_string()[..19].to_owned() + "Z";
    let failure = serde_json::json!({
        "requestContext": {"requestId": "r-1", "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 10},
        "version": "1.0",
        "timestamp": now().to_string(),
        "DDBStreamBatchInfo": {
            "shardId": "shardId-1", "startSequenceNumber": "100", "endSequenceNumber": "200",
            "approximateArrivalOfFirstRecord": whole_second(first),
            "approximateArrivalOfLastRecord": whole_second(last),
            "batchSize": 8, "streamArn": "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/s"
        }
    });
    let failures = &f.stack.queue("RelayFailureQueue").unwrap().url;
    f.sqs
        .send_message()
        .queue_url(failures)
        .message_body(failure.to_string())
        .send()
        .await
        .unwrap();
    let garbage = f
        .sqs
        .send_message()
        .queue_url(failures)
        .message_body("not a failure record")
        .send()
        .await
        .unwrap();
    assert!(garbage.message_id().is_some());

    let recovered =
        orderflow_cli::relay::recover(&orderflow_cli::target::Target::local(&f.stack.prefix), 60, 100)
            .await
            .unwrap();
    assert_eq!((recovered.batches, recovered.left), (1, 1), "{recovered:?}");
    assert!(recovered.events >= 2, "{recovered:?}");
    f.settle().await;

    // The lost cancellation refunded, the lost order paid and confirmed, each once.
    let ledger = f.ledger().await;
    assert!(ledger[&charged.to_string()].refunded, "refunded after recovery");
    assert!(
        ledger.contains_key(&unseen.to_string()),
        "captured after recovery"
    );
    assert_eq!(
        f.status(unseen).await,
        orderflow_domain::order::OrderStatus::Confirmed
    );
    f.assert_compensated(charged).await;
    for id in [charged, unseen] {
        let payments = f.stream::<orderflow_domain::payment::Payment>(id).await;
        let captures = payments.iter().filter(|e| **e == "PaymentCaptured").count();
        assert_eq!(captures, 1, "{id}: {payments:?}");
    }
    let report = run(&args(&f)).await.unwrap();
    assert!(report.clean(), "{:?}", report.findings);
    // Only the unreadable record is left, for a person to look at.
    let depths = f.queue_depths().await;
    assert_eq!(depths["RelayFailureQueue"], 1, "{depths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_is_imported_once_stocked_with_reasons_and_every_unit_is_accounted_for() {
    use orderflow_cli::catalog::{self, AdjustArgs, Format, ImportArgs};
    let f = Fixture::new(false).await;
    let on = orderflow_cli::target::Target::local(&f.stack.prefix);
    let dir = std::env::temp_dir().join(format!("orderflow-import-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("catalog.csv");
    // SKU-1 is in the catalog at another price; SKU-NEW is not.
    std::fs::write(
        &file,
        "sku,name,priceAmount,currency,available,description\n\
         SKU-1,Product SKU-1,1499,USD,999,\n\
         SKU-NEW,\"Kettle, steel\",2500,USD,20,Holds 1.5 l\n",
    )
    .unwrap();
    let import = |dry_run| ImportArgs {
        file: file.clone(),
        dry_run,
        actor: Some("operator:ops-1".into()),
        on: on.clone(),
    };
    let dry = catalog::import(&import(true)).await.unwrap();
    assert_eq!((dry.listed, dry.repriced, dry.unchanged), (1, 1, 0));
    assert!(
        dry.lines
            .iter()
            .any(|l| l.starts_with("would list SKU-NEW") && l.contains("20 units")),
        "{:?}",
        dry.lines
    );
    assert!(
        dry.lines.iter().any(|l| l.starts_with("would reprice SKU-1")),
        "{:?}",
        dry.lines
    );
    assert!(
        dry.lines.iter().any(|l| l.starts_with("left alone: SKU-1")),
        "{:?}",
        dry.lines
    );
    assert!(
        !f.stock().await.contains_key("SKU-NEW"),
        "a dry run writes nothing"
    );

    let done = catalog::import(&import(false)).await.unwrap();
    assert_eq!((done.listed, done.repriced, done.unchanged), (1, 1, 0));
    let again = catalog::import(&import(false)).await.unwrap();
    assert_eq!(
        (again.listed, again.repriced, again.unchanged),
        (0, 0, 2),
        "{:?}",
        again.lines
    );
    let stock = f.stock().await;
    assert_eq!(
        (stock["SKU-1"].price_amount, stock["SKU-NEW"].available),
        (1499, 20)
    );
    assert_eq!(stock["SKU-NEW"].description.as_deref(), Some("Holds 1.5 l"));

    let adjust = |quantity, reason: &str| AdjustArgs {
        sku: "SKU-NEW".into(),
        quantity,
        reason: reason.into(),
        actor: None,
        on: on.clone(),
    };
    assert_eq!(
        catalog::adjust(&adjust(5, "received PO-9"), 1)
            .await
            .unwrap()
            .available,
        25
    );
    let refused = catalog::adjust(&adjust(30, "lost"), -1).await.unwrap_err();
    assert_eq!(
        refused.to_string(),
        "SKU-NEW: cannot write off 30: only 25 available"
    );
    assert_eq!(
        catalog::adjust(&adjust(5, "damaged"), -1)
            .await
            .unwrap()
            .available,
        20
    );
    let unknown = catalog::adjust(
        &AdjustArgs {
            sku: "SKU-NONE".into(),
            ..adjust(1, "x")
        },
        1,
    )
    .await
    .unwrap_err();
    assert!(unknown.to_string().contains("no such product"), "{unknown}");

    // An order of two goes out for delivery: its units move from reserved to sold.
    let order = f.place(&[("SKU-NEW", 2)], "tok_visa").await;
    f.settle().await;
    f.send_out_for_delivery(order).await;
    f.settle().await;
    let kettle = f.stock().await["SKU-NEW"].clone();
    assert_eq!((kettle.available, kettle.reserved, kettle.sold), (18, 0, 2));
    assert_eq!(
        f.stream::<orderflow_domain::inventory::Inventory>(order).await,
        ["StockReserved", "StockSold"]
    );
    let clean = run(&args(&f)).await.unwrap();
    assert!(clean.clean(), "{clean}");

    // The export holds what an import reads back unchanged.
    let exported = catalog::export(&on, Format::Json).await.unwrap();
    let back = dir.join("export.json");
    std::fs::write(&back, &exported).unwrap();
    let round = catalog::import(&ImportArgs {
        file: back,
        ..import(false)
    })
    .await
    .unwrap();
    assert_eq!((round.listed, round.repriced), (0, 0), "{:?}", round.lines);
    assert!(
        catalog::export(&on, Format::Csv)
            .await
            .unwrap()
            .contains("SKU-NEW,\"Kettle, steel\",2500,USD,18,0,2,Holds 1.5 l")
    );

    // A unit that appears in the counters without an event is found.
    f.dynamodb
        .update_item()
        .table_name(f.stack.table("CatalogTable").unwrap())
        .key("sku", AttributeValue::S("SKU-NEW".into()))
        .update_expression("SET sold = sold + :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let report = run(&args(&f)).await.unwrap();
    let text = report.to_string();
    assert!(
        text.contains("SKU-NEW: received − written off = 20, but available 18 + reserved 0 + sold 3 = 21"),
        "{text}"
    );
    assert!(
        text.contains("SKU-NEW: the catalog counts 3 sold, the inventory streams 2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_sku_spread_over_shards_keeps_every_unit_through_the_saga() {
    use orderflow_cli::catalog::{self, ShardArgs};
    use orderflow_domain::product::ProductDetails;
    use orderflow_domain::{Currency, Money, Sku};
    let f = Fixture::new(false).await;
    let on = orderflow_cli::target::Target::local(&f.stack.prefix);
    let sku = Sku::parse("SKU-HOT").unwrap();
    let details = ProductDetails {
        name: "Kettle".into(),
        price: Money::new(2500, Currency::parse("USD").unwrap()),
        description: None,
    };
    f.stocking()
        .describe(
            &sku,
            details,
            20,
            "initial stock",
            &support::Inspector::metadata("ops-1"),
        )
        .await
        .unwrap();
    let shard = |shards| ShardArgs {
        sku: "SKU-HOT".into(),
        shards,
        on: on.clone(),
    };
    let spread = catalog::shard(&shard(4)).await.unwrap();
    assert_eq!((spread.shards, spread.available), (4, 20));
    let refused = catalog::shard(&shard(40)).await.unwrap_err();
    assert_eq!(refused.to_string(), "--shards: 1 to 32");
    let unknown = catalog::shard(&ShardArgs {
        sku: "SKU-NONE".into(),
        ..shard(2)
    })
    .await
    .unwrap_err();
    assert!(unknown.to_string().contains("no such product"), "{unknown}");

    // Twelve orders of two for twenty units: ten are reserved across the shards, two
    // find too little.
    let mut orders = Vec::new();
    for _ in 0..12 {
        orders.push(f.place(&[("SKU-HOT", 2)], "tok_visa").await);
    }
    f.settle().await;
    let hot = f.stock().await["SKU-HOT"].clone();
    assert_eq!((hot.available, hot.reserved, hot.sold, hot.shards), (0, 20, 0, 4));
    let mut reserved = Vec::new();
    for id in &orders {
        let stream = f.stream::<orderflow_domain::inventory::Inventory>(*id).await;
        if stream == ["StockReserved"] {
            reserved.push(*id);
        }
    }
    assert_eq!(reserved.len(), 10);

    // Evened out over three, then one order cancelled and one sent out.
    catalog::shard(&shard(3)).await.unwrap();
    f.cancel(reserved[0]).await.unwrap();
    f.send_out_for_delivery(reserved[1]).await;
    f.settle().await;
    let hot = f.stock().await["SKU-HOT"].clone();
    assert_eq!((hot.available, hot.reserved, hot.sold), (2, 16, 2));
    let clean = run(&args(&f)).await.unwrap();
    assert!(clean.clean(), "{clean}");

    // A shard's item lost by hand: the checker names it, and the units it held.
    f.dynamodb
        .delete_item()
        .table_name(f.stack.table("CatalogTable").unwrap())
        .key("sku", AttributeValue::S("SKU-HOT#2".into()))
        .send()
        .await
        .unwrap();
    let text = run(&args(&f)).await.unwrap().to_string();
    assert!(
        text.contains("SKU-HOT: spread over 3 items, but SKU-HOT#2 is missing"),
        "{text}"
    );
    assert!(text.contains("SKU-HOT: received − written off = 20"), "{text}");
}

/// A legacy order: its `OrderPlaced` as v2 wrote it (the address in clear), and,
/// when `cancelled`, an `OrderCancelled` after it; appended as raw records, and its
/// view put as the projector left it.
async fn legacy_order(f: &Fixture, customer: &str, cancelled: bool) -> orderflow_domain::OrderId {
    use orderflow_domain::order::view::OrderProjection;
    use orderflow_domain::order::{Order, OrderEvent};
    use orderflow_domain::{Envelope, OrderId};
    let id = OrderId::from_uuid(Uuid::now_v7());
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../events/order/OrderPlaced.v2.json"),
    )
    .unwrap();
    let mut placed: serde_json::Value = serde_json::from_str(&sample).unwrap();
    placed["eventId"] = serde_json::json!(Uuid::now_v7());
    placed["aggregateId"] = serde_json::json!(id);
    placed["data"]["orderId"] = serde_json::json!(id);
    placed["data"]["customerId"] = serde_json::json!(customer);
    let stream = StreamId::new("order", id.to_string());
    let mut records = vec![EventRecord {
        stream: stream.clone(),
        version: 1,
        event_id: Uuid::parse_str(placed["eventId"].as_str().unwrap()).unwrap(),
        event_type: "OrderPlaced".into(),
        occurred_at: orderflow_domain::Timestamp::parse("2026-11-21T06:30:01Z").unwrap(),
        body: placed.to_string(),
    }];
    if cancelled {
        let mut cancel = placed.clone();
        cancel["eventId"] = serde_json::json!(Uuid::now_v7());
        cancel["eventType"] = serde_json::json!("OrderCancelled");
        cancel["schemaVersion"] = serde_json::json!(1);
        cancel["version"] = serde_json::json!(2);
        cancel["data"] = serde_json::json!({"reason": "requested"});
        records.push(EventRecord {
            stream: stream.clone(),
            version: 2,
            event_id: Uuid::parse_str(cancel["eventId"].as_str().unwrap()).unwrap(),
            event_type: "OrderCancelled".into(),
            occurred_at: orderflow_domain::Timestamp::parse("2026-11-21T06:31:00Z").unwrap(),
            body: cancel.to_string(),
        });
    }
    f.commands
        .repository()
        .store()
        .append(&stream, 0, &records)
        .await
        .unwrap();
    let history: Vec<Envelope<OrderEvent>> = f
        .commands
        .repository()
        .history::<Order>(&id.to_string())
        .await
        .unwrap();
    let mut projection = OrderProjection::default();
    for envelope in &history {
        projection.apply(envelope);
    }
    f.views.put(&projection).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypt_history_seals_what_v2_wrote_in_clear_and_keeps_the_erased_erased() {
    use orderflow_app::personal::PersonalData;
    use orderflow_cli::customers::{self, EncryptArgs, EraseArgs, KeysAt, ShowArgs};
    use orderflow_domain::order::PersonalAddress;
    let mut f = Fixture::new(false).await;
    let template =
        orderflow_provision::Template::load(&orderflow_provision::Template::default_path()).unwrap();
    let dir = std::env::temp_dir().join(orderflow_provision::local::unique_name("orderflow-keys"));
    let keys = orderflow_devtools::dev::local_keys(&template, &dir, &f.stack.prefix).unwrap();
    f.use_key_wrapping(keys.key_wrapping().unwrap());
    let on = orderflow_cli::target::Target::local(&f.stack.prefix);
    let at = KeysAt {
        state_dir: dir.clone(),
    };
    let (old, gone) = (
        format!("c-old-{}", Uuid::now_v7().simple()),
        format!("c-gone-{}", Uuid::now_v7().simple()),
    );
    let kept = legacy_order(&f, &old, false).await;
    let erased = legacy_order(&f, &gone, true).await;

    // The one whose orders are over is erased before the migration: no key to delete,
    // the view's clear copy purged, the erasure recorded.
    let done = customers::erase(&EraseArgs {
        customer: gone.clone(),
        reason: "asked to be forgotten".into(),
        actor: Some("operator:ops-1".into()),
        keys: at.clone(),
        on: on.clone(),
    })
    .await
    .unwrap();
    assert_eq!(
        (
            done["keyDeleted"].as_bool(),
            done["orders"].as_array().map(Vec::len)
        ),
        (Some(false), Some(1))
    );
    // The other's order is in flight: refused, naming it.
    let refused = customers::erase(&EraseArgs {
        customer: old.clone(),
        reason: "asked".into(),
        actor: None,
        keys: at.clone(),
        on: on.clone(),
    })
    .await
    .unwrap_err();
    assert!(refused.to_string().contains(&kept.to_string()), "{refused}");

    let encrypt = |dry_run| EncryptArgs {
        dry_run,
        keys: at.clone(),
        on: on.clone(),
    };
    let body = |id: orderflow_domain::OrderId| {
        let f = &f;
        async move {
            f.commands
                .repository()
                .store()
                .load_page(&StreamId::new("order", id.to_string()), 0, 1)
                .await
                .unwrap()[0]
                .body
                .clone()
        }
    };
    let planned = customers::encrypt_history(&encrypt(true)).await.unwrap();
    assert!(planned.sealed >= 2 && planned.sealed_erased >= 1, "{planned:?}");
    assert!(
        body(kept).await.contains("Ada Lovelace"),
        "a dry run changes nothing"
    );

    let sealed = customers::encrypt_history(&encrypt(false)).await.unwrap();
    assert_eq!(
        (sealed.sealed, sealed.sealed_erased),
        (planned.sealed, planned.sealed_erased)
    );
    for id in [kept, erased] {
        let text = body(id).await;
        assert!(!text.contains("Lovelace") && !text.contains("Main St"), "{text}");
        assert!(text.contains(r#""schemaVersion":3"#), "{text}");
    }
    let again = customers::encrypt_history(&encrypt(false)).await.unwrap();
    assert_eq!(again.sealed, 0, "a second run finds nothing in clear: {again:?}");

    // The kept customer's address opens with their key, in the view as in the store;
    // the erased customer's opens with none.
    let personal = PersonalData::new(f.keys.clone());
    let view = f.views.get(kept).await.unwrap().unwrap().view;
    assert!(matches!(view.shipping_address, Some(PersonalAddress::Sealed(_))));
    let shown = personal.show_one(view).await.unwrap();
    let Some(PersonalAddress::Clear(address)) = shown.shipping_address else {
        panic!("{shown:?}");
    };
    assert_eq!(address.name, "Ada Lovelace");
    let folded = orderflow_domain::order::view::OrderView::fold(
        &f.commands
            .repository()
            .history::<orderflow_domain::order::Order>(&erased.to_string())
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(matches!(
        personal.show_one(folded).await.unwrap().shipping_address,
        Some(PersonalAddress::Erased(_))
    ));
    let held = customers::show(&ShowArgs {
        customer: old,
        keys: at.clone(),
        on: on.clone(),
    })
    .await
    .unwrap();
    assert_eq!(held["keyHeld"], true);
    assert_eq!(held["orders"][0]["shippingAddress"]["name"], "Ada Lovelace");
    // The checker holds the sealed and the erased views to the fold of the store.
    // (The kept order is stalled: no saga ran over these hand-written events.)
    let report = run(&args(&f)).await.unwrap();
    assert!(
        report
            .findings
            .iter()
            .all(|x| !x.what.contains("view") && x.order_id != Some(erased)),
        "kept {kept}, erased {erased}: {report}"
    );
}
