//! The template's wiring, provisioned in moto, routes and redrives as AWS would: an
//! event on the bus reaches exactly the queues whose rules match it, and a message
//! received `maxReceiveCount` times without being deleted moves to its DLQ.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use orderflow_provision::Template;
use orderflow_provision::local::{self, unique_name};

async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default()
}

#[tokio::test]
async fn rules_route_by_source_and_type_and_poison_reaches_the_dlq() {
    let template = Template::load(&Template::default_path()).unwrap();
    let stack = local::provision_stack(&template, &unique_name("s"))
        .await
        .unwrap();
    let events = local::eventbridge_client().await.unwrap();
    let sqs = local::sqs_client().await.unwrap();

    let entry = PutEventsRequestEntry::builder()
        .event_bus_name(stack.bus())
        .source("orderflow.order")
        .detail_type("OrderPlaced")
        .detail(r#"{"eventType":"OrderPlaced"}"#)
        .build();
    let output = events.put_events().entries(entry).send().await.unwrap();
    assert_eq!(output.failed_entry_count, 0);

    for (queue, expected) in [
        ("InventoryQueue", 1),
        ("PaymentQueue", 1),
        ("ShippingQueue", 0),
        ("OrderSagaQueue", 0),
    ] {
        let got = receive_all(&sqs, &stack.queue(queue).unwrap().url).await;
        assert_eq!(got.len(), expected, "{queue}");
        if let Some(message) = got.first() {
            let body: serde_json::Value = serde_json::from_str(message.body().unwrap()).unwrap();
            assert_eq!(body["detail-type"], "OrderPlaced");
            assert_eq!(body["detail"]["eventType"], "OrderPlaced");
        }
    }

    // Redrive: the template says maxReceiveCount 5.
    let queue = stack.queue("ShippingQueue").unwrap();
    assert_eq!(queue.redrive, Some(("ShippingDeadLetterQueue".to_owned(), 5)));
    assert_eq!(queue.visibility_timeout, 60);
    sqs.send_message()
        .queue_url(&queue.url)
        .message_body("poison")
        .send()
        .await
        .unwrap();
    for _ in 0..5 {
        let got = sqs
            .receive_message()
            .queue_url(&queue.url)
            .visibility_timeout(0)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        assert_eq!(got.len(), 1, "still in the source queue");
    }
    let got = receive_all(&sqs, &queue.url).await;
    assert!(got.is_empty(), "after 5 receives it left the source queue");
    let dead = receive_all(&sqs, &stack.queue("ShippingDeadLetterQueue").unwrap().url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some("poison"));
}
