//! libFuzzer entry point of the `token` target ([`fedmesh_fuzz::token`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmesh_fuzz::token::run(data));
