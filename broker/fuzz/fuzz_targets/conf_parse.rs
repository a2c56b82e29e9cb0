//! cargo-fuzz target for the conf-format parser and the typed mapping:
//! arbitrary bytes must give a value tree or a positioned error, never a
//! panic or a hang. `broker/tests/config.rs` runs the same body on stable
//! (`conf_parse_fuzz_smoke`) over this target's seed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // No files and no environment: includes and unknown variables must fail cleanly.
    if let Ok(map) = broker::conf::parse(data, None, &broker::conf::NoSource) {
        let mut opts = broker::options::Options::default();
        let _ = broker::config::apply_map(&mut opts, &map);
    }
});
