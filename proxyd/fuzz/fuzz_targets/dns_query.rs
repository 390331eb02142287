//! Fuzzes the DNS query parser and everything built from a parsed query: parsing never
//! panics, an error answer is a bare header, and the answer, refusal and forwarded query made
//! from a parsed query are well-formed (the forwarded query parses back to the same question,
//! the answers stay within the size they were given).
#![no_main]

use std::net::IpAddr;

use greywall_proxyd::dns::{answer_addrs, parse_query, rcode, rcode_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let q = match parse_query(data) {
        Ok(q) => q,
        Err(e) => {
            if let Some(r) = e.reply() {
                assert_eq!(r.len(), 12);
            }
            return;
        }
    };
    let addrs: [IpAddr; 2] = [IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16; 8])];
    for tcp in [false, true] {
        let limit = q.limit(tcp);
        let a = q.answer(rcode::NOERROR, &addrs, 5, limit);
        assert!(a.len() <= limit, "answer of {} bytes, limit {limit}", a.len());
        assert_eq!(rcode_of(&a), Some(rcode::NOERROR));
        assert!(answer_addrs(&a).is_some());
        let r = q.refusal("greywall: denied by rule x (greywall.json:1:1)", limit);
        assert_eq!(rcode_of(&r), Some(rcode::REFUSED));
        assert!(r.len() <= limit, "refusal of {} bytes, limit {limit}", r.len());
    }
    let fwd = q.forwarded(7, 1232);
    let back = match parse_query(&fwd) {
        Ok(b) => b,
        Err(e) => panic!("forwarded query does not parse: {e:?}"),
    };
    assert_eq!((back.id, &back.name, back.qtype), (7, &q.name, q.qtype));
});
