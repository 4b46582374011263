//! Fuzz target: see [`otago_fuzz::env_files`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| otago_fuzz::env_files(data));
