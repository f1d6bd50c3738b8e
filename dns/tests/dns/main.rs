//! Integration tests of the DNS server: a real `DnsServer` on 127.0.0.1
//! port 0, asked with raw hickory-proto messages over UDP and TCP, with
//! hickory's resolver, and with `dig` when installed. Malformed packets
//! have their own test binary (`tests/malformed.rs`).

mod burst;
mod compliance;
mod dig;
mod forwarding;
mod lifecycle;
mod resolver;
mod snapshots;
mod support;
mod truncation;
mod zone;
