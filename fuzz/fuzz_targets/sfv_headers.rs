//! Fuzz target: see [`otago_fuzz::sfv_headers`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| otago_fuzz::sfv_headers(data));
