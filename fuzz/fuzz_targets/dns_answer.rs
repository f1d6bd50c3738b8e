//! libFuzzer entry point of the `dns_answer` target ([`fedmesh_fuzz::dns_answer`]).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fedmesh_fuzz::dns_answer::run(data));
