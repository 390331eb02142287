//! Fuzzes what proxyd does with a ruleset file and a requested host: `EgressRules::from_bytes`,
//! then the name decision for a host taken from the same input. No panic; an accepted ruleset
//! writes back to the same canonical bytes it decides identically from.
#![no_main]

use greywall_compiler::egress::EgressRules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (rules, host) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"example.com"[..]),
    };
    let host = String::from_utf8_lossy(host);
    if let Ok(r) = EgressRules::from_bytes(rules) {
        let again = EgressRules::from_bytes(&r.to_bytes()).expect("canonical bytes read back");
        assert_eq!(again, r);
        assert_eq!(r.decide(&host, 443), again.decide(&host, 443));
    }
});
