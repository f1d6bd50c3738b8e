//! libFuzzer entry point of the `gateway_messages` target ([`fedmesh_fuzz::gateway_messages`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmesh_fuzz::gateway_messages::run(data));
