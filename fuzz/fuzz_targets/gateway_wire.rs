//! libFuzzer entry point of the `gateway_wire` target ([`fedmesh_fuzz::gateway_wire`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmesh_fuzz::gateway_wire::run(data));
