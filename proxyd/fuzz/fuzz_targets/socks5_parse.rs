//! Fuzzes the SOCKS5 server parsers: the greeting, then the request in the bytes after it.
//! They must never panic, never claim more bytes than they were given, and be consistent
//! about incomplete input (a prefix of a complete message is incomplete or an error, never a
//! different message).
#![no_main]

use greywall_proxyd::socks5::{Parsed, parse_greeting, parse_request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let rest = match parse_greeting(data) {
        Ok(Parsed::Done(_, used)) => {
            assert!(used <= data.len());
            &data[used..]
        }
        _ => data,
    };
    if let Ok(Parsed::Done(req, used)) = parse_request(rest) {
        assert!(used <= rest.len() && used >= 7);
        for n in 0..used {
            match parse_request(&rest[..n]) {
                Ok(Parsed::Done(other, _)) => panic!("prefix parsed as {other:?}, full as {req:?}"),
                Ok(Parsed::Incomplete) | Err(_) => {}
            }
        }
    }
});
