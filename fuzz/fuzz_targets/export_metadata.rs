//! Fuzz target: see [`otago_fuzz::export_metadata`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| otago_fuzz::export_metadata(data));
