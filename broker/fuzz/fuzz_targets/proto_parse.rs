//! `cargo fuzz run proto_parse`: the NATS protocol parser over arbitrary bytes,
//! for client and route connections, must never panic, never consume more
//! than it was given, and parse the same operations however the bytes are
//! split. The body is shared with the stable smoke test
//! (`broker/tests/proto_fuzz_smoke.rs`).
#![no_main]

#[path = "../../tests/harness/proto_fuzz.rs"]
mod proto_fuzz;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    proto_fuzz::check(data);
});
