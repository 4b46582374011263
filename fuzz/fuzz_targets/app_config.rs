//! Fuzz target: see [`otago_fuzz::app_config`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| otago_fuzz::app_config(data));
