//! Fuzzes the `GW1` first-line parser: no panic, and whatever parses is a well-formed command.
#![no_main]

use greywall_proxyd::line::{Command, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(cmd) = parse(data) {
        assert!(data.starts_with(b"GW1 "));
        if let Command::Register { path, label, .. } = cmd {
            assert!(path.starts_with('/') && !label.is_empty());
        }
    }
});
