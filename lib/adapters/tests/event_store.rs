//! The event store contract, one suite run against the in-memory adapter and against
//! the DynamoDB adapter on DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

#[macro_use]
mod common;

use common::*;
use orderflow_app::{AppendError, EventStore, MAX_EVENTS_PER_APPEND, SnapshotRecord};

mod suite {
    use super::*;

    pub(crate) async fn appends_and_loads_in_order(store: impl EventStore) {
        let stream = fresh_stream();
        let batch = records(&stream, 1, 3);
        store.append(&stream, 0, &batch).await.unwrap();
        assert_eq!(store.load(&stream, 0).await.unwrap(), batch);
        assert_eq!(store.load(&stream, 1).await.unwrap(), batch[1..]);
        assert!(store.load(&stream, 3).await.unwrap().is_empty());
        let more = records(&stream, 4, 2);
        store.append(&stream, 3, &more).await.unwrap();
        let versions: Vec<_> = store
            .load(&stream, 0)
            .await
            .unwrap()
            .iter()
            .map(|r| r.version)
            .collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    }

    pub(crate) async fn a_lost_race_is_a_typed_conflict(store: impl EventStore) {
        let stream = fresh_stream();
        let first = records(&stream, 1, 2);
        store.append(&stream, 0, &first).await.unwrap();
        let rival = records(&stream, 1, 1);
        let error = store.append(&stream, 0, &rival).await.unwrap_err();
        assert!(
            matches!(&error, AppendError::Conflict { stream: s, expected_version: 0 } if s == &stream),
            "{error:?}"
        );
        // A writer at version 1 collides with the stored version 2 as well.
        let error = store
            .append(&stream, 1, &records(&stream, 2, 1))
            .await
            .unwrap_err();
        assert!(matches!(error, AppendError::Conflict { .. }), "{error:?}");
        assert_eq!(
            store.load(&stream, 0).await.unwrap(),
            first,
            "the loser wrote nothing"
        );
    }

    pub(crate) async fn the_same_append_retried_is_applied_once(store: impl EventStore) {
        // What the SDK does when a response is lost: the identical call again.
        let stream = fresh_stream();
        let batch = records(&stream, 1, 2);
        store.append(&stream, 0, &batch).await.unwrap();
        store.append(&stream, 0, &batch).await.unwrap();
        assert_eq!(store.load(&stream, 0).await.unwrap(), batch, "once");
        // Other events at those versions are still a lost race.
        let error = store
            .append(&stream, 0, &records(&stream, 1, 2))
            .await
            .unwrap_err();
        assert!(matches!(error, AppendError::Conflict { .. }), "{error:?}");
    }

    pub(crate) async fn an_expected_version_ahead_of_the_stream_is_a_conflict(store: impl EventStore) {
        let stream = fresh_stream();
        store.append(&stream, 0, &records(&stream, 1, 1)).await.unwrap();
        // Appending versions 6.. at expected 5 would leave a gap.
        let error = store
            .append(&stream, 5, &records(&stream, 6, 1))
            .await
            .unwrap_err();
        assert!(matches!(error, AppendError::Conflict { .. }), "{error:?}");
        assert_eq!(store.load(&stream, 0).await.unwrap().len(), 1);
    }

    pub(crate) async fn malformed_appends_are_refused_before_writing(store: impl EventStore) {
        let stream = fresh_stream();
        let too_many = records(&stream, 1, MAX_EVENTS_PER_APPEND as u64 + 1);
        assert!(matches!(
            store.append(&stream, 0, &too_many).await,
            Err(AppendError::TooManyEvents { count: 100, max: 99 })
        ));
        let gap = records(&stream, 2, 1);
        assert!(matches!(
            store.append(&stream, 0, &gap).await,
            Err(AppendError::NotContiguous { first: 1 })
        ));
        let other = fresh_stream();
        assert!(matches!(
            store.append(&stream, 0, &records(&other, 1, 1)).await,
            Err(AppendError::NotContiguous { .. })
        ));
        assert!(store.load(&stream, 0).await.unwrap().is_empty());
        store.append(&stream, 0, &[]).await.unwrap();
    }

    pub(crate) async fn a_full_transaction_of_events_appends(store: impl EventStore) {
        // Expected version 1 adds the version check: 99 puts + 1 check = 100 actions.
        let stream = fresh_stream();
        store.append(&stream, 0, &records(&stream, 1, 1)).await.unwrap();
        let full = records(&stream, 2, MAX_EVENTS_PER_APPEND as u64);
        store.append(&stream, 1, &full).await.unwrap();
        assert_eq!(store.load(&stream, 0).await.unwrap().len(), 100);
    }

    pub(crate) async fn streams_are_isolated(store: impl EventStore) {
        let (a, b) = (fresh_stream(), fresh_stream());
        store.append(&a, 0, &records(&a, 1, 2)).await.unwrap();
        store.append(&b, 0, &records(&b, 1, 1)).await.unwrap();
        assert_eq!(store.load(&a, 0).await.unwrap().len(), 2);
        assert_eq!(store.load(&b, 0).await.unwrap().len(), 1);
    }

    pub(crate) async fn the_latest_snapshot_wins(store: impl EventStore) {
        let stream = fresh_stream();
        assert_eq!(store.latest_snapshot(&stream).await.unwrap(), None);
        for version in [10, 30, 20] {
            store
                .save_snapshot(&SnapshotRecord {
                    stream: stream.clone(),
                    version,
                    schema: 1,
                    body: format!("{{\"v\":{version}}}"),
                })
                .await
                .unwrap();
        }
        let latest = store.latest_snapshot(&stream).await.unwrap().unwrap();
        assert_eq!((latest.version, latest.body.as_str()), (30, "{\"v\":30}"));
        assert_eq!(store.latest_snapshot(&fresh_stream()).await.unwrap(), None);
    }

    pub(crate) async fn time_ranges_are_bounded_and_ordered(store: impl EventStore) {
        // Three streams over two days; the store is shared with other tests, so every
        // assertion is about these streams only.
        let streams = [fresh_stream(), fresh_stream(), fresh_stream()];
        let times = [
            "2031-03-01T23:59:59.999999Z",
            "2031-03-02T00:00:00.000000Z",
            "2031-03-02T00:00:00.000001Z",
            "2031-03-02T12:00:00Z",
        ];
        let mut written = Vec::new();
        for (i, stream) in streams.iter().enumerate() {
            let batch: Vec<_> = times
                .iter()
                .enumerate()
                .map(|(v, t)| record(stream, v as u64 + 1, ts(t), &format!("{{\"s\":{i}}}")))
                .collect();
            store.append(stream, 0, &batch).await.unwrap();
            written.extend(batch);
        }
        let ours = |events: Vec<orderflow_app::EventRecord>| -> Vec<_> {
            events
                .into_iter()
                .filter(|e| streams.contains(&e.stream))
                .collect()
        };
        let all = ours(
            store
                .read_time_range(ts("2031-03-01T00:00:00Z"), ts("2031-03-03T00:00:00Z"))
                .await
                .unwrap(),
        );
        let mut expected = written.clone();
        expected.sort_by_key(orderflow_app::EventRecord::time_order);
        assert_eq!(
            all, expected,
            "every event, in time then id order, across days and shards"
        );

        // [from, until): the first instant is in, the last is out.
        let window = ours(
            store
                .read_time_range(ts("2031-03-02T00:00:00Z"), ts("2031-03-02T12:00:00Z"))
                .await
                .unwrap(),
        );
        assert_eq!(window.len(), 6);
        assert!(window.iter().all(|e| {
            e.occurred_at >= ts("2031-03-02T00:00:00Z") && e.occurred_at < ts("2031-03-02T12:00:00Z")
        }));
        let empty = store
            .read_time_range(ts("2031-03-02T12:00:00Z"), ts("2031-03-02T12:00:00Z"))
            .await
            .unwrap();
        assert!(ours(empty).is_empty());
    }
}

against_both!(
    memory: orderflow_adapters::MemoryEventStore::new(),
    dynamodb: crate::common::dynamo_event_store().await,
    tests: [
    appends_and_loads_in_order,
    a_lost_race_is_a_typed_conflict,
    the_same_append_retried_is_applied_once,
    an_expected_version_ahead_of_the_stream_is_a_conflict,
    malformed_appends_are_refused_before_writing,
    a_full_transaction_of_events_appends,
    streams_are_isolated,
    the_latest_snapshot_wins,
    time_ranges_are_bounded_and_ordered,
    ]
);
