//! libFuzzer entry point of the `config` target ([`fedmesh_fuzz::config`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmesh_fuzz::config::run(data));
