//! The full DNS answer path (hickory's decoder, the router and the zone
//! handler, `dns/src/udp/hickory.rs`): every packet the fast path leaves,
//! and every TCP query, is answered here.
//!
//! Rules checked: any packet gets a response or none (responses and
//! packets shorter than a header), never a panic; a response parses and
//! carries the query's ID; and where the fast path also answers, both
//! responses decode to the same message (the differential rule of
//! `dns/src/fast/tests.rs`, on any packet instead of a list).

use std::sync::OnceLock;

use hickory_proto::op::Message;
use tokio::runtime::{Builder, Runtime};

use crate::zone::zone;

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a tokio runtime for the fuzz target: {e}"))
    })
}

/// Answers `data` on hickory's path and compares with the fast path.
pub fn run(data: &[u8]) {
    let zone = zone();
    let Some(full) = runtime().block_on(zone.full(data)) else {
        return;
    };
    let message = match Message::from_vec(&full) {
        Ok(m) => m,
        Err(error) => panic!("hickory's answer does not parse: {error}"),
    };
    assert_eq!(full[..2], data[..2], "answer ID");
    if let Some(fast) = zone.fast(data) {
        let fast = Message::from_vec(&fast).map(|m| format!("{m:#?}"));
        // Debug output keeps the case of names, unlike `Name`'s `==`.
        assert_eq!(
            fast.ok(),
            Some(format!("{message:#?}")),
            "fast and full differ"
        );
    }
}
