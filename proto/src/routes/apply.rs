//! What a matched rule does to a request, as pure functions of the rule
//! and a random number the caller draws (so that tests pick the number):
//! which backend gets it ([`choose_backend`]), how its headers change
//! ([`HeaderModifier::apply`]) and whether a fault hits it
//! ([`FaultInjection::decide`]).

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use super::model::{ALL, Backend, FaultInjection, Fraction, HeaderModifier};

/// The backend for a request, by weight: `roll` is a uniform random
/// number over all of `u64`. `None` when every weight is 0 or there is no
/// backend: Gateway API then answers 500.
pub fn choose_backend(backends: &[Backend], roll: u64) -> Option<&Backend> {
    let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
    if total == 0 {
        return None;
    }
    // Scales the roll into [0, total) without the bias of a modulo.
    let mut point = u64::try_from((u128::from(roll) * u128::from(total)) >> 64).ok()?;
    backends.iter().find(|b| {
        let w = u64::from(b.weight);
        if point < w {
            true
        } else {
            point -= w;
            false
        }
    })
}

impl HeaderModifier {
    /// Applies the filter to `headers`: `set` replaces every value of a
    /// header, `add` appends one (a list-valued field, RFC 9110 §5.3),
    /// `remove` drops the header, in that order.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
        for name in &self.remove {
            headers.remove(name);
        }
    }
}

/// What a fault does to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultDecision {
    /// Wait this long before going on.
    pub delay: Option<Duration>,
    /// Answer with this status at the client's gateway, sending nothing on.
    pub abort: Option<StatusCode>,
}

impl Fraction {
    /// True for `roll` (uniform in `0..ALL`, larger values wrap) inside the
    /// share.
    pub fn hits(self, roll: u32) -> bool {
        roll % ALL < self.0
    }
}

impl FaultInjection {
    /// The fault for one request, from two independent rolls uniform in
    /// `0..ALL` (see [`ALL`]): one for the delay, one for the abort.
    pub fn decide(&self, delay_roll: u32, abort_roll: u32) -> FaultDecision {
        FaultDecision {
            delay: self
                .delay
                .filter(|d| d.share.hits(delay_roll))
                .map(|d| d.fixed),
            abort: self
                .abort
                .filter(|a| a.share.hits(abort_roll))
                .map(|a| a.status),
        }
    }
}
