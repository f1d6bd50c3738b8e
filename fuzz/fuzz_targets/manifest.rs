//! libFuzzer entry point of the `manifest` target ([`fedmesh_fuzz::manifest`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmesh_fuzz::manifest::run(data));
