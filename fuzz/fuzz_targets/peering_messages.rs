//! libFuzzer entry point of the `peering_messages` target ([`fedmesh_fuzz::peering_messages`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmesh_fuzz::peering_messages::run(data));
