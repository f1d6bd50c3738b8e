//! libFuzzer entry point of the `dns_query` target ([`fedmesh_fuzz::dns_query`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmesh_fuzz::dns_query::run(data));
