//! The fuzz targets of fedmesh: each module owns one target, a `run`
//! function that takes any bytes and feeds them to one parser of input
//! fedmesh does not control (a peer's messages, a client's packets, a
//! token pasted by an operator, a config or manifest file), the way the
//! daemon calls it, and panics only when that parser breaks a rule.
//!
//! The same `run` functions are called by the libFuzzer binaries in
//! `fuzz_targets/` (feature `libfuzzer`) and by the corpus replay in
//! `tests/corpus.rs`, so every checked-in seed and every fixed crash is
//! replayed by `cargo test` without a fuzzing engine (docs/fuzzing.md).

pub mod config;
pub mod dns_answer;
pub mod dns_query;
pub mod gateway_messages;
pub mod gateway_wire;
pub mod manifest;
pub mod peering_messages;
pub mod token;

mod zone;

/// A target's entry point: any bytes in, a panic only on a broken rule.
pub type Target = fn(&[u8]);

/// Every target by name, for the corpus replay: `corpus/<name>/` and
/// `regressions/<name>/` hold its inputs.
pub const TARGETS: [(&str, Target); 8] = [
    ("config", config::run),
    ("dns_answer", dns_answer::run),
    ("dns_query", dns_query::run),
    ("gateway_messages", gateway_messages::run),
    ("gateway_wire", gateway_wire::run),
    ("manifest", manifest::run),
    ("peering_messages", peering_messages::run),
    ("token", token::run),
];

/// Splits off the first byte of an input, which the multi-message targets
/// use to pick what the rest is.
fn selector(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(s, rest)| (*s, rest))
}
