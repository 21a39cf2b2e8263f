//! Arbitrary text as a probe or collector config file: TOML parsing into the config structs,
//! then validation into settings. Bad input must come back as an error naming the key, never
//! a panic (both daemons read their config before anything else, often from a hand edit).

#![no_main]

use libfuzzer_sys::fuzz_target;
use sixmap_collector::config::CollectorConfig;
use sixmap_probe::config::ProbeConfig;
use sixmap_shared::config::parse_toml;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = parse_toml::<ProbeConfig>(text) {
        let _ = config.validate(None);
    }
    if let Ok(config) = parse_toml::<CollectorConfig>(text) {
        let _ = config.validate(None);
    }
});
