//! Every AWS call is counted by service and operation, retries included, against
//! DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code")]

use std::sync::Arc;

use orderflow_adapters::calls::{CallCounter, Calls, Counted};

#[tokio::test]
async fn every_call_a_counted_client_sends_is_counted_by_service_and_operation() {
    let client = orderflow_provision::local::dynamodb_client().await.unwrap();
    let calls = Arc::new(Calls::default());
    let counted = client.counted_by(CallCounter::into(calls.clone()));
    counted.list_tables().limit(1).send().await.unwrap();
    counted.list_tables().limit(1).send().await.unwrap();
    // A call that fails is still a call.
    assert!(
        counted
            .describe_table()
            .table_name("orderflow-no-such-table")
            .send()
            .await
            .is_err()
    );
    // The client it was made from counts nothing.
    client.list_tables().limit(1).send().await.unwrap();
    let snapshot = calls.snapshot();
    let by_operation: Vec<(&str, u64)> = snapshot.iter().map(|((_, op), n)| (op.as_str(), *n)).collect();
    assert_eq!(
        by_operation,
        vec![("DescribeTable", 1), ("ListTables", 2)],
        "{snapshot:?}"
    );
    assert!(
        snapshot
            .keys()
            .all(|(service, _)| service.eq_ignore_ascii_case("dynamodb")),
        "{snapshot:?}"
    );
    assert_eq!(calls.total(), 3);
}

#[tokio::test]
async fn a_retry_is_another_call() {
    // The first ListTables is answered, then its response is lost: the SDK sends it again.
    let faults = orderflow_provision::faults::Faults::lose_responses("ListTables", 1);
    let client = orderflow_provision::faults::dynamodb_client_with(faults.clone())
        .await
        .unwrap();
    let calls = Arc::new(Calls::default());
    let counted = client.counted_by(CallCounter::into(calls.clone()));
    counted.list_tables().limit(1).send().await.unwrap();
    assert_eq!(faults.injected(), 1);
    assert_eq!(calls.total(), 2, "{:?}", calls.snapshot());
}
