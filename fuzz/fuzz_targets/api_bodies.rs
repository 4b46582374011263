//! Fuzz target: see [`otago_fuzz::api_bodies`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| otago_fuzz::api_bodies(data));
