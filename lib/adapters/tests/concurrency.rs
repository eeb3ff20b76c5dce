//! Sixteen writers append at the same expected version, two hundred rounds, against
//! DynamoDB Local: exactly one wins each round, the others get `Conflict`, and the
//! stored history has no gap and no duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

mod common;

use std::sync::Arc;

use common::*;
use orderflow_app::{AppendError, EventStore};

const WRITERS: usize = 16;
const ROUNDS: u64 = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_sixteen_concurrent_appends_wins_every_round() {
    let store = Arc::new(dynamo_event_store().await);
    let stream = fresh_stream();
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        let barrier = Arc::new(tokio::sync::Barrier::new(WRITERS));
        let attempts: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let (store, stream, barrier) = (store.clone(), stream.clone(), barrier.clone());
                tokio::spawn(async move {
                    let event = record(
                        &stream,
                        round + 1,
                        ts("2026-11-21T06:30:00Z"),
                        &format!("{{\"w\":{writer}}}"),
                    );
                    barrier.wait().await;
                    (event.clone(), store.append(&stream, round, &[event]).await)
                })
            })
            .collect();
        let mut won = Vec::new();
        for attempt in attempts {
            let (event, result) = attempt.await.unwrap();
            match result {
                Ok(()) => won.push(event),
                Err(AppendError::Conflict { expected_version, .. }) => assert_eq!(expected_version, round),
                Err(other) => panic!("round {round}: a loser must get Conflict, got {other:?}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one writer wins");
        winners.extend(won);
    }
    let stored = store.load(&stream, 0).await.unwrap();
    assert_eq!(stored.len() as u64, ROUNDS);
    for (i, (stored, winner)) in stored.iter().zip(&winners).enumerate() {
        assert_eq!(stored.version, i as u64 + 1, "no gap, no duplicate");
        assert_eq!(stored, winner, "the stored event is the winner's");
    }
}
