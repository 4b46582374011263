//! Fuzz target: see [`otago_fuzz::manifest_request`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| otago_fuzz::manifest_request(data));
