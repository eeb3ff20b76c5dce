//! Deliberately broken variants of the product's rules, for the simulation's mutation
//! check (`make simulate-mutants`): a simulation that cannot tell a broken variant from
//! the real one proves nothing.
//!
//! Built without the `mutants` feature (every build but that check's), [`active`] is a
//! constant `false` and each guarded branch compiles away. With it, the check switches
//! one mutant on at a time with `activate`.

/// A deliberately broken variant: its name and the rule it breaks.
#[derive(Debug, Clone, Copy)]
pub struct Mutant {
    /// What `activate` and `active` know it by.
    pub name: &'static str,
    /// The rule it breaks, for the report.
    pub breaks: &'static str,
}

/// Every mutant the check runs.
pub const ALL: &[Mutant] = &[
    Mutant {
        name: "payment-without-tombstone",
        breaks: "payment answers a cancellation that arrives before the placement with nothing, so a late capture is made",
    },
    Mutant {
        name: "placement-takeover-mints-new-id",
        breaks: "a placement that runs again after a crash or a lost answer places a second order under a new id",
    },
    Mutant {
        name: "projector-accepts-older",
        breaks: "the read model folds an event at or below the version it holds (a duplicate or late copy) as if it were the next one",
    },
    Mutant {
        name: "projector-skips-gaps",
        breaks: "the read model folds an event that arrives before the ones it follows, skipping them",
    },
    Mutant {
        name: "inventory-releases-twice",
        breaks: "a release moves each line's units twice",
    },
    Mutant {
        name: "inventory-sale-moves-nothing",
        breaks: "an order going out for delivery records its stock sold but leaves the units reserved",
    },
    Mutant {
        name: "provider-ignores-capture-key",
        breaks: "the payment provider takes a repeated capture key for a new charge instead of answering with the first",
    },
    Mutant {
        name: "saga-ignores-compensations",
        breaks: "the order does not record a refund, release or shipment cancellation its participants made",
    },
];

#[cfg(feature = "mutants")]
static ACTIVE: std::sync::Mutex<Option<&'static str>> = std::sync::Mutex::new(None);

/// Whether the mutant `name` is switched on; always `false` without the feature.
#[cfg(not(feature = "mutants"))]
#[must_use]
#[inline(always)]
pub const fn active(_name: &str) -> bool {
    false
}

/// Whether the mutant `name` is switched on.
#[cfg(feature = "mutants")]
#[must_use]
pub fn active(name: &str) -> bool {
    ACTIVE
        .lock()
        .is_ok_and(|active| active.is_some_and(|active| active == name))
}

/// Switches the mutant `name` on (`None`: the real code everywhere).
#[cfg(feature = "mutants")]
pub fn activate(name: Option<&'static str>) {
    if let Ok(mut active) = ACTIVE.lock() {
        *active = name;
    }
}
