//! How a product's stock is laid out over items: the product's own, and shards
//! `<sku>#1` … when it is spread ([`Layout`]); each move's counter changes, and which
//! shard an order's moves prefer.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use orderflow_app::Product;
use orderflow_app::{StockMove, StreamId};
use orderflow_domain::Sku;
use orderflow_domain::inventory::StockLine;

pub(super) fn key(sku: &Sku) -> HashMap<String, AttributeValue> {
    HashMap::from([("sku".to_owned(), AttributeValue::S(sku.to_string()))])
}

/// The item of shard `shard` of `sku`'s stock: the product's own for shard 0, else
/// `<sku>#<shard>` (`#` is never in a SKU, so the two cannot meet).
pub(super) fn shard_key(sku: &Sku, shard: u32) -> HashMap<String, AttributeValue> {
    if shard == 0 {
        key(sku)
    } else {
        HashMap::from([("sku".to_owned(), AttributeValue::S(format!("{sku}#{shard}")))])
    }
}

/// A number attribute of `item` (0 when absent: counters an older build did not write).
pub(super) fn counter(item: &HashMap<String, AttributeValue>, name: &str) -> u64 {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().unwrap_or(0),
        _ => 0,
    }
}

/// How many items `item`'s product spreads its stock over (1 when it says nothing).
pub(super) fn shards_of(item: &HashMap<String, AttributeValue>) -> u32 {
    u32::try_from(counter(item, "shards")).unwrap_or(1).max(1)
}

/// The counters of one item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Units free to reserve.
    pub available: u64,
    /// Units held for orders.
    pub reserved: u64,
    /// Units sold.
    pub sold: u64,
}

impl Counters {
    pub(super) fn of(item: &HashMap<String, AttributeValue>) -> Self {
        Self {
            available: counter(item, "available"),
            reserved: counter(item, "reserved"),
            sold: counter(item, "sold"),
        }
    }

    /// Adds these counters to `product`'s.
    pub(super) fn add_to(&self, product: &mut Product) {
        product.available += self.available;
        product.reserved += self.reserved;
        product.sold += self.sold;
    }

    pub(super) const fn get(&self, name: Counter) -> u64 {
        match name {
            Counter::Available => self.available,
            Counter::Reserved => self.reserved,
            Counter::Sold => self.sold,
        }
    }
}

/// One of an item's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Counter {
    Available,
    Reserved,
    Sold,
}

impl Counter {
    pub(super) const fn name(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::Reserved => "reserved",
            Self::Sold => "sold",
        }
    }
}

/// What a stock move does to the counters of the item it lands on.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    /// From one counter to another.
    Shift(Counter, Counter),
    /// Into available (a receipt).
    In,
    /// Out of available (a write-off).
    Out,
}

impl Change {
    /// What `stock_move` changes and by how many units (`None`: a listing, which is
    /// not a counter change on a shard).
    pub(super) fn of(stock_move: &StockMove) -> Option<(Self, u64)> {
        let units = |line: &StockLine| u64::from(line.quantity.get());
        match stock_move {
            StockMove::Reserve(line) => {
                Some((Self::Shift(Counter::Available, Counter::Reserved), units(line)))
            }
            StockMove::Release(line) => {
                Some((Self::Shift(Counter::Reserved, Counter::Available), units(line)))
            }
            StockMove::Sell(line) => Some((Self::Shift(Counter::Reserved, Counter::Sold), units(line))),
            StockMove::Receive { quantity, .. } => Some((Self::In, *quantity)),
            StockMove::WriteOff { quantity, .. } => Some((Self::Out, *quantity)),
            StockMove::Describe { .. } => None,
        }
    }

    /// The counter it takes from, if any.
    pub(super) const fn from(self) -> Option<Counter> {
        match self {
            Self::Shift(from, _) => Some(from),
            Self::Out => Some(Counter::Available),
            Self::In => None,
        }
    }
}

/// A SKU's stock item by item, read strongly consistent: the product's own item is
/// shard 0; `None` where a shard's item is missing (only ever by hand: `orderflow
/// check` names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Each shard's counters, by shard.
    pub items: Vec<Option<Counters>>,
}

impl Layout {
    /// How many shards the product says it has.
    #[must_use]
    pub fn shards(&self) -> u32 {
        u32::try_from(self.items.len()).unwrap_or(u32::MAX)
    }

    /// The counters summed over every shard.
    #[must_use]
    pub fn total(&self) -> Counters {
        self.items
            .iter()
            .flatten()
            .fold(Counters::default(), |sum, c| Counters {
                available: sum.available + c.available,
                reserved: sum.reserved + c.reserved,
                sold: sum.sold + c.sold,
            })
    }

    /// Where `quantity` units of `change` land: all of a receipt on `preferred`; what
    /// is taken, from `preferred` first, then from the shards holding the most.
    /// `None` when every shard together holds too little.
    pub(super) fn split(&self, change: Change, quantity: u64, preferred: u32) -> Option<Vec<(u32, u64)>> {
        let present = |shard: u32| self.items.get(shard as usize).copied().flatten();
        let Some(from) = change.from() else {
            let shard = if present(preferred).is_some() {
                preferred
            } else {
                0
            };
            return Some(vec![(shard, quantity)]);
        };
        let mut order: Vec<(u32, u64)> = (0..self.shards())
            .filter_map(|shard| present(shard).map(|c| (shard, c.get(from))))
            .collect();
        order.sort_by_key(|&(shard, held)| (shard != preferred, std::cmp::Reverse(held), shard));
        let mut left = quantity;
        let mut parts = Vec::new();
        for (shard, held) in order {
            if left == 0 {
                break;
            }
            let take = held.min(left);
            if take > 0 {
                parts.push((shard, take));
                left -= take;
            }
        }
        (left == 0).then_some(parts)
    }
}

/// The shard a stream's moves on `sku` go to first: the same for an order's
/// reservation, release and sale (so a release finds its units where they were
/// reserved), spread across orders.
pub(super) fn preferred_shard(stream: &StreamId, sku: &Sku, shards: u32) -> u32 {
    if shards <= 1 {
        return 0;
    }
    // FNV-1a: stable across processes and builds, unlike the standard hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stream
        .to_string()
        .bytes()
        .chain([b'/'])
        .chain(sku.as_str().bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    u32::try_from(hash % u64::from(shards)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;

    fn layout(available: &[Option<u64>]) -> Layout {
        Layout {
            items: available
                .iter()
                .map(|a| {
                    a.map(|available| Counters {
                        available,
                        reserved: 1,
                        sold: 0,
                    })
                })
                .collect(),
        }
    }

    #[test]
    fn a_move_takes_from_its_shard_first_then_from_the_fullest() {
        let reserve = Change::Shift(Counter::Available, Counter::Reserved);
        let shards = layout(&[Some(1), Some(5), Some(3), None]);
        assert_eq!(shards.split(reserve, 2, 2), Some(vec![(2, 2)]));
        assert_eq!(shards.split(reserve, 6, 2), Some(vec![(2, 3), (1, 3)]));
        assert_eq!(shards.split(reserve, 9, 0), Some(vec![(0, 1), (1, 5), (2, 3)]));
        assert_eq!(shards.split(reserve, 10, 0), None, "nine units in all");
        // A release takes from reserved (one on each shard that exists).
        let release = Change::Shift(Counter::Reserved, Counter::Available);
        assert_eq!(shards.split(release, 3, 1), Some(vec![(1, 1), (0, 1), (2, 1)]));
        // A receipt lands whole on its shard, or on the product's own if that is missing.
        assert_eq!(shards.split(Change::In, 7, 1), Some(vec![(1, 7)]));
        assert_eq!(shards.split(Change::In, 7, 3), Some(vec![(0, 7)]));
        assert_eq!(
            shards.total(),
            Counters {
                available: 9,
                reserved: 3,
                sold: 0
            }
        );
    }

    #[test]
    fn an_orders_moves_prefer_one_shard_and_orders_spread_over_all() {
        let sku = Sku::parse("SKU-1").unwrap();
        let stream = |n: u32| StreamId::new("inventory", format!("order-{n}"));
        assert_eq!(preferred_shard(&stream(1), &sku, 1), 0);
        assert_eq!(
            preferred_shard(&stream(7), &sku, 8),
            preferred_shard(&stream(7), &sku, 8)
        );
        let mut hits = [0_u32; 4];
        for n in 0..400 {
            hits[preferred_shard(&stream(n), &sku, 4) as usize] += 1;
        }
        assert!(hits.iter().all(|&h| (60..=140).contains(&h)), "{hits:?}");
    }
}
