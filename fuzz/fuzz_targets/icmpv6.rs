//! Arbitrary bytes as a received ICMPv6 message (or TCP segment): parsing, the quoted
//! packet's extension-header walk and the probe matcher must never panic or loop.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sixmap_fuzz::feed(data);
});
