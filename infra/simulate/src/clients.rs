//! What the simulated customers and operators do: place, cancel and advance orders,
//! let pending ones expire, restock, and take the payment provider down and up.

use orderflow_app::placement::{NewOrder, PlaceError};
use orderflow_app::stock::Applied;
use orderflow_app::{CommandError, IdempotencyError, IdempotentError, fingerprint};
use orderflow_domain::order::{FulfilmentStep, Order, OrderCommand, OrderStatus, PaymentToken};
use orderflow_domain::{Metadata, Quantity};

use crate::{LEASE_SECONDS, World};

impl World {
    /// The client places order `n` through the API's use case under its idempotency key,
    /// retrying on failure as a client does (the same key and body), waiting out a lease
    /// a crashed attempt left.
    pub(crate) async fn place(&mut self, n: usize) -> anyhow::Result<()> {
        let order = self.orders[n].clone();
        let token = PaymentToken::parse(order.card)?;
        let mut items = Vec::new();
        for (sku, quantity) in &order.lines {
            items.push((self.stock[*sku].clone(), Quantity::parse(*quantity)?));
        }
        let address = serde_json::from_str(
            r#"{"name":"A","line1":"1 St","city":"C","postalCode":"1","country":"US"}"#,
        )?;
        let new_order = NewOrder {
            order_id: order.id,
            customer_id: order.customer.clone(),
            items,
            token,
            address: self.personal.seal_address(&order.customer, &address).await?,
        };
        let metadata = Metadata {
            correlation_id: format!("corr-{n}"),
            causation_id: format!("req-{n}"),
            actor: format!("customer:{}", order.customer),
        };
        let fingerprint = fingerprint(format!("{:?}", order.lines).as_bytes());
        for attempt in 1..=20 {
            let request = || {
                let placement = &self.placement;
                let (new_order, metadata) = (&new_order, &metadata);
                self.idempotency
                    .run(&order.key, &fingerprint, move || async move {
                        placement
                            .place(new_order.clone(), metadata)
                            .await
                            .map(|placed| placed.order)
                    })
            };
            // A double click, or a client that timed out and retried while its first
            // request is still running: two requests with one key at once.
            let results = if attempt == 1 && self.rng.chance(100) {
                self.faults
                    .count(|| format!("place order {n}: the same request twice at once"));
                let (first, second) = futures::join!(request(), request());
                vec![first, second]
            } else {
                vec![request().await]
            };
            let mut wait = false;
            for result in results {
                match result {
                    Ok(outcome) if outcome.response.order_id == order.id => {
                        self.note(|| {
                            format!(
                                "place order {n} ({}, {} line(s)): placed on attempt {attempt}{}",
                                order.card,
                                order.lines.len(),
                                if outcome.replayed {
                                    " (a replayed answer)"
                                } else {
                                    ""
                                }
                            )
                        });
                        self.orders[n].placed = true;
                    }
                    Ok(outcome) => {
                        self.surprises.push(format!(
                            "order {n}: the client was answered with another order, {}",
                            outcome.response.order_id
                        ));
                        self.orders[n].placed = true;
                    }
                    Err(IdempotentError::Work(PlaceError::Command(CommandError::Domain(e)))) => {
                        anyhow::bail!("the workload's order {n} is invalid: {e}")
                    }
                    Err(IdempotentError::Key(IdempotencyError::InProgress)) => {
                        // Another attempt holds the key: the client retries after a while.
                        self.note(||format!(
                            "place order {n}: attempt {attempt} finds the key in progress; the client waits"
                        ));
                        wait = true;
                    }
                    Err(e) => self.note(|| {
                        format!("place order {n}: attempt {attempt} failed ({e}); the client retries")
                    }),
                }
            }
            if self.orders[n].placed {
                return Ok(());
            }
            if wait {
                self.clock.advance(LEASE_SECONDS * 1_000_000 + 1_000_000);
            }
        }
        anyhow::bail!("order {n} could not be placed in 20 attempts")
    }

    /// The customer cancels order `n`; the order may no longer allow it.
    pub(crate) async fn cancel(&mut self, n: usize) {
        let order = self.orders[n].clone();
        self.orders[n].cancelled = true;
        // A customer or an operator, whoever asks first.
        let actor = if self.rng.chance(500) {
            "operator:ops-1".to_owned()
        } else {
            format!("customer:{}", order.customer)
        };
        let metadata = Metadata {
            correlation_id: format!("corr-{n}"),
            causation_id: format!("cancel-{n}"),
            actor: actor.clone(),
        };
        for attempt in 1..=20 {
            match self
                .api
                .execute::<Order>(
                    &order.id.to_string(),
                    OrderCommand::Cancel { detail: None },
                    &metadata,
                    None,
                )
                .await
            {
                Ok(executed) => {
                    // Answered with the order cancelled: nothing may undo that.
                    self.orders[n].cancel_accepted |= !executed.events.is_empty();
                    self.note(|| format!("cancel order {n} by {actor}: done on attempt {attempt}"));
                    return;
                }
                Err(CommandError::Domain(e)) => {
                    self.note(|| format!("cancel order {n}: refused ({e})"));
                    return;
                }
                Err(e) => self.note(|| format!("cancel order {n}: attempt {attempt} failed ({e})")),
            }
        }
    }

    /// An operator moves order `n` one step on (preparing, ready, out for delivery,
    /// delivered), whatever its state: the order refuses a step it does not allow.
    pub(crate) async fn advance(&mut self, n: usize) -> anyhow::Result<()> {
        let id = self.orders[n].id.to_string();
        let loaded = self.api.repository().load::<Order>(&id).await;
        let Ok(loaded) = loaded else {
            self.note(|| format!("advance order {n}: its stream could not be read"));
            return Ok(());
        };
        let step = match loaded.state.placed().map(|o| o.status) {
            Some(OrderStatus::Confirmed) => FulfilmentStep::Preparing,
            Some(OrderStatus::Preparing) => FulfilmentStep::Ready,
            Some(OrderStatus::Ready) => FulfilmentStep::OutForDelivery,
            Some(OrderStatus::OutForDelivery) => FulfilmentStep::Delivered,
            // Asked too early or too late: the order must refuse it.
            _ => [FulfilmentStep::Preparing, FulfilmentStep::Delivered][self.rng.below(2)],
        };
        let metadata = Metadata {
            correlation_id: format!("corr-{n}"),
            causation_id: format!("advance-{n}-{}", loaded.version),
            actor: "operator:ops-1".into(),
        };
        let result = self
            .api
            .execute::<Order>(&id, OrderCommand::Advance(step), &metadata, Some(loaded.version))
            .await;
        match result {
            Ok(_) => self.note(|| format!("advance order {n}: {step:?}")),
            Err(e) => self.note(|| format!("advance order {n}: {step:?} not done ({e})")),
        }
        Ok(())
    }

    /// The pending-order timeout reaches order `n` (its deadline has passed, as far as
    /// the sweep knows): the sweep's own rule decides.
    pub(crate) async fn expire(&mut self, n: usize) {
        let id = self.orders[n].id.to_string();
        // The saga is never given up on here: its messages are delayed, never parked
        // for good, and an answered order waits for it.
        let never = orderflow_domain::Timestamp::from_jiff(jiff::Timestamp::UNIX_EPOCH);
        match pending_timeout::expire(&self.sweeper, &id, never).await {
            Ok(fate) => self.note(|| format!("pending timeout, order {n}: {fate:?}")),
            Err(e) => self.note(|| format!("pending timeout, order {n}: failed ({e}); the next run retries")),
        }
    }

    /// An operator receives (up to 5) or writes off (up to 3) units of a SKU while
    /// orders reserve it. A failed call is not retried: committed or not, the units and
    /// their record went together.
    pub(crate) async fn restock(&mut self) {
        let sku = self.stock[self.rng.below(self.stock.len())].clone();
        let delta = if self.rng.chance(500) {
            1 + self.rng.below(5) as i64
        } else {
            -(1 + self.rng.below(3) as i64)
        };
        let metadata = Metadata {
            correlation_id: format!("stock-{}", self.next_message),
            causation_id: format!("stock-{}", self.next_message),
            actor: "operator:sim".into(),
        };
        let outcome = match self
            .stocking
            .adjust(&sku, delta, "sim count", &metadata, None)
            .await
        {
            Ok(Applied::Done(_)) => "done".to_owned(),
            Ok(Applied::Refused { .. }) => "refused: too little available".to_owned(),
            Err(e) => format!("not done ({e})"),
        };
        self.note(|| format!("operator: stock {sku} {delta:+}: {outcome}"));
    }

    /// The payment provider goes down for 10 s to 2 min of simulated time: every call
    /// fails as unavailable until then, and payments wait it out through their queue's
    /// retries (4 min of visibility timeouts before a message would be redriven).
    pub(crate) fn provider_outage(&mut self) {
        let seconds = 10 + self.rng.below(111);
        let now = orderflow_app::Clock::now(&self.clock).as_micros();
        let Ok(ends) =
            orderflow_domain::Timestamp::from_micros(now + i64::try_from(seconds).unwrap_or(0) * 1_000_000)
        else {
            return;
        };
        self.gateway.set_outage(Some(ends));
        self.faults.count(|| format!("provider: down for {seconds} s"));
    }
}
