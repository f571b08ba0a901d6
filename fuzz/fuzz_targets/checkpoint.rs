//! libFuzzer entry for the `checkpoint` target of examples/fuzz/targets/.
#![no_main]

#[path = "../../examples/fuzz/engine.rs"]
mod engine;
#[path = "../../examples/fuzz/targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::libfuzzer("checkpoint", data));
