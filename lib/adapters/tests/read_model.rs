//! The read model contract, one suite run against the in-memory adapter and against
//! the DynamoDB adapter on DynamoDB Local.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "test code")]

#[macro_use]
mod common;

use orderflow_adapters::read_model::DynamoOrderViews;
use orderflow_app::{OrderViews, Written};
use orderflow_domain::order::OrderCommand;
use orderflow_domain::order::view::OrderProjection;
use orderflow_domain::{CustomerId, OrderId};
use orderflow_provision::local;
use orderflow_testkit::{at, decided, place};
use uuid::Uuid;

async fn dynamo_views() -> DynamoOrderViews {
    let client = local::dynamodb_client().await.unwrap();
    let tables = local::fresh_tables(&client, &["OrderViewTable"])
        .await
        .expect("DynamoDB Local is reachable");
    DynamoOrderViews::new(client, &tables["OrderViewTable"])
}

/// An order of `customer` placed at `second` past a fixed minute, folded up to
/// `versions` events (1: placed; 2: and cancelled).
fn projection(order_id: OrderId, customer: &CustomerId, second: i64, versions: u64) -> OrderProjection {
    let commands = [
        place(order_id, customer, 1, 500, at(second)),
        OrderCommand::Cancel { detail: None },
    ];
    let history = decided(
        order_id,
        commands
            .into_iter()
            .take(usize::try_from(versions).unwrap())
            .map(|c| (c, at(second))),
    );
    let mut projection = OrderProjection::default();
    for envelope in &history {
        projection.apply(envelope);
    }
    projection
}

fn fresh_customer() -> CustomerId {
    CustomerId::parse(format!("c-{}", Uuid::now_v7().simple())).unwrap()
}

fn fresh_order() -> OrderId {
    OrderId::from_uuid(Uuid::now_v7())
}

mod suite {
    use super::*;

    pub(crate) async fn a_view_only_moves_forward(views: impl OrderViews) {
        let (id, customer) = (fresh_order(), fresh_customer());
        assert!(views.get(id).await.unwrap().is_none());
        let first = projection(id, &customer, 0, 1);
        let second = projection(id, &customer, 0, 2);
        assert_eq!(views.put(&first).await.unwrap(), Written::Updated);
        assert_eq!(views.put(&second).await.unwrap(), Written::Updated);
        // The same version again, or an older one, changes nothing.
        assert_eq!(views.put(&second).await.unwrap(), Written::AlreadyCurrent);
        assert_eq!(views.put(&first).await.unwrap(), Written::AlreadyCurrent);
        let stored = views.get(id).await.unwrap().unwrap();
        assert_eq!(Some(&stored.view), second.view().as_ref());
        assert_eq!(stored.projection.as_ref(), Some(&second));
        // A projection of an order not placed yet writes nothing.
        assert_eq!(
            views.put(&OrderProjection::default()).await.unwrap(),
            Written::AlreadyCurrent
        );
    }

    pub(crate) async fn a_customer_pages_newest_first_and_sees_no_one_else(views: impl OrderViews) {
        let (customer, other) = (fresh_customer(), fresh_customer());
        let mut ids = Vec::new();
        for second in 0..7 {
            let id = fresh_order();
            views.put(&projection(id, &customer, second, 1)).await.unwrap();
            views
                .put(&projection(fresh_order(), &other, second, 1))
                .await
                .unwrap();
            ids.push(id);
        }
        ids.reverse();
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = views.by_customer(&customer, 3, after.as_ref()).await.unwrap();
            assert!(page.orders.len() <= 3);
            seen.extend(page.orders.iter().map(|v| v.order_id));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ids, "every order once, newest first");
        // An order placed while the client pages sorts first: the pages after the
        // cursor do not shift.
        let first = views.by_customer(&customer, 2, None).await.unwrap();
        views
            .put(&projection(fresh_order(), &customer, 99, 1))
            .await
            .unwrap();
        let rest = views
            .by_customer(&customer, 10, first.next.as_ref())
            .await
            .unwrap();
        assert_eq!(
            rest.orders.iter().map(|v| v.order_id).collect::<Vec<_>>(),
            ids[2..]
        );
        assert!(rest.next.is_none());
        let all = views.all().await.unwrap();
        assert!(ids.iter().all(|id| all.contains_key(id)));
    }

    pub(crate) async fn erasing_leaves_the_marker_in_the_view_and_the_projection(views: impl OrderViews) {
        use orderflow_domain::order::{ErasedAddress, PersonalAddress};
        let (id, customer) = (fresh_order(), fresh_customer());
        assert!(
            !views.erase_personal(id).await.unwrap(),
            "no view, nothing erased"
        );
        views.put(&projection(id, &customer, 0, 1)).await.unwrap();
        assert!(matches!(
            views.get(id).await.unwrap().unwrap().view.shipping_address,
            Some(PersonalAddress::Sealed(_))
        ));
        assert!(views.erase_personal(id).await.unwrap());
        assert!(!views.erase_personal(id).await.unwrap(), "erased once");
        let stored = views.get(id).await.unwrap().unwrap();
        let erased = Some(PersonalAddress::Erased(ErasedAddress));
        assert_eq!(stored.view.shipping_address, erased);
        assert_eq!(stored.view.version, 1, "nothing else moves");
        let mut projection = stored.projection.expect("the projector's state stays");
        assert!(!projection.erase_personal(), "its address is erased too");
        // The projector's next event builds on the erased state: the marker stays.
        let next = super::projection(id, &customer, 0, 2);
        let mut moved = projection.clone();
        moved.apply(
            &orderflow_testkit::decided(
                id,
                [
                    (
                        orderflow_testkit::place(id, &customer, 1, 500, orderflow_testkit::at(0)),
                        orderflow_testkit::at(0),
                    ),
                    (OrderCommand::Cancel { detail: None }, orderflow_testkit::at(0)),
                ],
            )[1],
        );
        assert_eq!(moved.version, next.version);
        assert_eq!(views.put(&moved).await.unwrap(), Written::Updated);
        assert_eq!(
            views.get(id).await.unwrap().unwrap().view.shipping_address,
            erased
        );
    }
}

against_both!(
    memory: orderflow_adapters::MemoryOrderViews::new(),
    dynamodb: crate::dynamo_views().await,
    tests: [
    a_view_only_moves_forward,
    a_customer_pages_newest_first_and_sees_no_one_else,
    erasing_leaves_the_marker_in_the_view_and_the_projection,
    ]
);
