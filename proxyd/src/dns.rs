//! The DNS wire format, as far as proxyd needs it: parsing the sandbox's queries (hostile
//! input: every read is bounds-checked, nothing panics, nothing is followed), and building
//! answers, refusals and the queries forwarded to `network.dnsAddr`.
//!
//! A query must be a standard query (opcode 0) with exactly one question and no answer or
//! authority records; additional records are skipped except an EDNS `OPT`, whose UDP payload
//! size is kept. Names in the question are never compressed (a pointer there is malformed).
//! Pure functions only: [`crate::dns_answer`] decides and resolves.

use std::net::IpAddr;

/// Record types proxyd answers itself.
pub mod rtype {
    pub const A: u16 = 1;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
}

/// Response codes.
pub mod rcode {
    pub const NOERROR: u8 = 0;
    pub const FORMERR: u8 = 1;
    pub const SERVFAIL: u8 = 2;
    pub const NXDOMAIN: u8 = 3;
    pub const NOTIMP: u8 = 4;
    pub const REFUSED: u8 = 5;
}

/// Class `IN`.
pub const CLASS_IN: u16 = 1;
/// Header length.
const HEADER: usize = 12;
/// Longest name on the wire (RFC 1035 2.3.4).
const MAX_NAME: usize = 255;
/// What a UDP client without EDNS can receive.
pub const UDP_PLAIN: usize = 512;
/// The largest EDNS payload size proxyd honours (and advertises upstream).
pub const UDP_EDNS_MAX: u16 = 1232;
/// EDNS option code of an Extended DNS Error (RFC 8914), and its "Blocked" info code.
const EDE_OPTION: u16 = 15;
pub const EDE_BLOCKED: u16 = 15;

/// A parsed query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query<'a> {
    pub id: u16,
    /// Recursion desired (copied into the answer).
    pub rd: bool,
    /// The name, lower-case, labels joined with dots, no trailing dot (the root is `""`);
    /// `None` when a label holds a byte no host name has (a dot, a space, a control byte…).
    pub name: Option<String>,
    pub qtype: u16,
    pub qclass: u16,
    /// The question as sent (name, type, class), echoed in answers.
    question: &'a [u8],
    /// The EDNS UDP payload size the client advertised (`OPT` record), if any.
    pub edns: Option<u16>,
}

/// A message proxyd will not answer normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// The query's id, when the header was complete enough to answer at all.
    pub id: Option<u16>,
    /// `FORMERR` or `NOTIMP`.
    pub rcode: u8,
    pub why: &'static str,
}

impl Malformed {
    /// The error answer (a bare header), or `None` when there is nothing to answer: too short
    /// for a header, or itself a response (answering responses could start a loop).
    pub fn reply(&self) -> Option<Vec<u8>> {
        let id = self.id?;
        let mut out = Vec::with_capacity(HEADER);
        header(&mut out, id, false, false, self.rcode, [0, 0, 0, 0]);
        Some(out)
    }
}

fn bad(id: Option<u16>, rcode: u8, why: &'static str) -> Malformed {
    Malformed { id, rcode, why }
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let hi = *b.get(at)?;
    let lo = *b.get(at.checked_add(1)?)?;
    Some(u16::from_be_bytes([hi, lo]))
}

/// Parses a query. Errors carry what to answer, if anything.
pub fn parse_query(msg: &[u8]) -> Result<Query<'_>, Malformed> {
    let (Some(qid), Some(flags)) = (u16_at(msg, 0), u16_at(msg, 2)) else {
        return Err(bad(None, rcode::FORMERR, "shorter than a DNS header"));
    };
    if flags & 0x8000 != 0 {
        return Err(bad(None, rcode::FORMERR, "a response, not a query"));
    }
    let Some(counts) = (0..4)
        .map(|i| u16_at(msg, 4 + 2 * i))
        .collect::<Option<Vec<u16>>>()
    else {
        return Err(bad(None, rcode::FORMERR, "shorter than a DNS header"));
    };
    let id = Some(qid);
    if (flags >> 11) & 0xf != 0 {
        return Err(bad(id, rcode::NOTIMP, "not a standard query (opcode)"));
    }
    if counts[0] != 1 {
        return Err(bad(id, rcode::FORMERR, "not exactly one question"));
    }
    if counts[1] != 0 || counts[2] != 0 {
        return Err(bad(
            id,
            rcode::FORMERR,
            "a query with answer or authority records",
        ));
    }
    let (name, end) = question_name(msg, HEADER).map_err(|why| bad(id, rcode::FORMERR, why))?;
    let (Some(qtype), Some(qclass)) = (u16_at(msg, end), u16_at(msg, end + 2)) else {
        return Err(bad(id, rcode::FORMERR, "question ends early"));
    };
    let qend = end + 4;
    let question = msg
        .get(HEADER..qend)
        .ok_or(bad(id, rcode::FORMERR, "question ends early"))?;
    let mut at = qend;
    let mut edns = None;
    for _ in 0..counts[3] {
        let r =
            skip_record(msg, at).ok_or(bad(id, rcode::FORMERR, "additional record ends early"))?;
        if r.rtype == rtype::OPT {
            if edns.is_some() {
                return Err(bad(id, rcode::FORMERR, "more than one OPT record"));
            }
            edns = Some(r.class);
        }
        at = r.end;
    }
    if at != msg.len() {
        return Err(bad(id, rcode::FORMERR, "bytes after the last record"));
    }
    Ok(Query {
        id: qid,
        rd: flags & 0x0100 != 0,
        name,
        qtype,
        qclass,
        question,
        edns,
    })
}

/// Reads the uncompressed name at `at`: the name as text (see [`Query::name`]) and where it
/// ends.
fn question_name(msg: &[u8], mut at: usize) -> Result<(Option<String>, usize), &'static str> {
    let start = at;
    let mut text = String::new();
    let mut valid = true;
    loop {
        let len = usize::from(*msg.get(at).ok_or("name ends early")?);
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return Err("compressed or extended label in the question");
        }
        let label = msg.get(at + 1..at + 1 + len).ok_or("name ends early")?;
        at += 1 + len;
        if at - start >= MAX_NAME {
            return Err("name longer than 255 bytes");
        }
        if !text.is_empty() {
            text.push('.');
        }
        for &b in label {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                text.push(char::from(b.to_ascii_lowercase()));
            } else {
                valid = false;
            }
        }
    }
    Ok((valid.then_some(text), at))
}

/// A resource record's place: type, class, where its data starts and where it ends.
struct Record {
    rtype: u16,
    class: u16,
    data: usize,
    end: usize,
}

/// Skips a resource record at `at` (its owner name may be compressed: a pointer ends it and
/// is not followed).
fn skip_record(msg: &[u8], mut at: usize) -> Option<Record> {
    let mut labels = 0;
    loop {
        let len = usize::from(*msg.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 == 0xc0 {
            msg.get(at + 1)?;
            at += 2;
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        labels += 1;
        if labels > 127 {
            return None;
        }
        at += 1 + len;
    }
    let rtype = u16_at(msg, at)?;
    let class = u16_at(msg, at + 2)?;
    let rdlen = usize::from(u16_at(msg, at + 8)?);
    let data = at.checked_add(10)?;
    let end = data.checked_add(rdlen)?;
    (end <= msg.len()).then_some(Record {
        rtype,
        class,
        data,
        end,
    })
}

fn header(out: &mut Vec<u8>, id: u16, rd: bool, tc: bool, rc: u8, counts: [u16; 4]) {
    // QR, RA; RD as asked; opcode 0; AA never (proxyd is not an authority).
    let mut flags: u16 = 0x8080 | u16::from(rc & 0xf);
    if rd {
        flags |= 0x0100;
    }
    if tc {
        flags |= 0x0200;
    }
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        out.extend_from_slice(&c.to_be_bytes());
    }
}

/// An `OPT` record (root owner) with `payload` size and the given options.
fn opt(out: &mut Vec<u8>, payload: u16, options: &[u8]) {
    out.push(0);
    out.extend_from_slice(&rtype::OPT.to_be_bytes());
    out.extend_from_slice(&payload.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    let len = u16::try_from(options.len()).unwrap_or(0);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&options[..usize::from(len)]);
}

impl Query<'_> {
    /// The most a reply to this query may hold: 512 bytes for UDP without EDNS, the
    /// advertised size (at most [`UDP_EDNS_MAX`], at least 512) with it, 65535 over TCP.
    pub fn limit(&self, tcp: bool) -> usize {
        if tcp {
            return usize::from(u16::MAX);
        }
        self.edns.map_or(UDP_PLAIN, |s| {
            usize::from(s.clamp(UDP_PLAIN as u16, UDP_EDNS_MAX))
        })
    }

    /// An answer with `rc` and one record per address of the question's type (`A` takes the
    /// IPv4 ones, `AAAA` the IPv6 ones, other types none). When the whole answer would not fit
    /// in `limit`, the records are dropped and `TC` is set (the client asks again over TCP).
    pub fn answer(&self, rc: u8, addrs: &[IpAddr], ttl: u32, limit: usize) -> Vec<u8> {
        let records: Vec<Vec<u8>> = addrs
            .iter()
            .filter_map(|a| match (a, self.qtype) {
                (IpAddr::V4(v4), rtype::A) => Some(v4.octets().to_vec()),
                (IpAddr::V6(v6), rtype::AAAA) => Some(v6.octets().to_vec()),
                _ => None,
            })
            .take(64)
            .collect();
        let build = |with: &[Vec<u8>], tc: bool| {
            let count = u16::try_from(with.len()).unwrap_or(0);
            let mut out = Vec::with_capacity(HEADER + self.question.len() + 28 * with.len());
            let ar = u16::from(self.edns.is_some());
            header(&mut out, self.id, self.rd, tc, rc, [1, count, 0, ar]);
            out.extend_from_slice(self.question);
            for data in &with[..usize::from(count)] {
                // The owner is the question's name (a pointer to offset 12).
                out.extend_from_slice(&[0xc0, 0x0c]);
                out.extend_from_slice(&self.qtype.to_be_bytes());
                out.extend_from_slice(&CLASS_IN.to_be_bytes());
                out.extend_from_slice(&ttl.to_be_bytes());
                out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(0).to_be_bytes());
                out.extend_from_slice(data);
            }
            if self.edns.is_some() {
                opt(&mut out, UDP_EDNS_MAX, &[]);
            }
            out
        };
        let full = build(&records, false);
        if full.len() <= limit {
            full
        } else {
            build(&[], true)
        }
    }

    /// A refusal (`REFUSED`); with EDNS it carries an Extended DNS Error "Blocked" whose text
    /// says why (cut to fit `limit`).
    pub fn refusal(&self, why: &str, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let ar = u16::from(self.edns.is_some());
        header(
            &mut out,
            self.id,
            self.rd,
            false,
            rcode::REFUSED,
            [1, 0, 0, ar],
        );
        out.extend_from_slice(self.question);
        if self.edns.is_some() {
            // Header, question, OPT (11 bytes), option head (4), info code (2).
            let mut room = limit.saturating_sub(out.len() + 11 + 4 + 2).min(why.len());
            // Cut on a character boundary: the text is UTF-8 (RFC 8914).
            while !why.is_char_boundary(room) {
                room -= 1;
            }
            let text = &why.as_bytes()[..room];
            let mut option = Vec::with_capacity(6 + text.len());
            option.extend_from_slice(&EDE_OPTION.to_be_bytes());
            option.extend_from_slice(&u16::try_from(2 + text.len()).unwrap_or(2).to_be_bytes());
            option.extend_from_slice(&EDE_BLOCKED.to_be_bytes());
            option.extend_from_slice(text);
            opt(&mut out, UDP_EDNS_MAX, &option);
        }
        out
    }

    /// The query proxyd sends to the policy's DNS server: `id`, recursion desired, the same
    /// question, and EDNS with `payload` (0: no EDNS, for TCP).
    pub fn forwarded(&self, id: u16, payload: u16) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER + self.question.len() + 11);
        let ar = u16::from(payload != 0);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&0x0100u16.to_be_bytes());
        for c in [1, 0, 0, ar] {
            out.extend_from_slice(&u16::to_be_bytes(c));
        }
        out.extend_from_slice(self.question);
        if payload != 0 {
            opt(&mut out, payload, &[]);
        }
        out
    }

    /// Checks that `reply` answers [`Query::forwarded`] with `id` (same id, a response, the
    /// same question, names compared without case) and returns it with the client's id.
    pub fn relay_reply(&self, reply: &[u8], id: u16) -> Option<Vec<u8>> {
        if u16_at(reply, 0)? != id || u16_at(reply, 2)? & 0x8000 == 0 || u16_at(reply, 4)? != 1 {
            return None;
        }
        let echoed = reply.get(HEADER..HEADER + self.question.len())?;
        if !echoed.eq_ignore_ascii_case(self.question) {
            return None;
        }
        let mut out = reply.to_vec();
        out[..2].copy_from_slice(&self.id.to_be_bytes());
        Some(out)
    }

    /// Whether a reply has the truncation bit.
    pub fn truncated(reply: &[u8]) -> bool {
        u16_at(reply, 2).is_some_and(|f| f & 0x0200 != 0)
    }
}

/// The response code of a message (for tests and logs).
pub fn rcode_of(msg: &[u8]) -> Option<u8> {
    u16_at(msg, 2).map(|f| (f & 0xf) as u8)
}

/// The addresses in the answer section of a response whose question is uncompressed
/// (for tests and the launcher's checks; records of other types are skipped).
pub fn answer_addrs(msg: &[u8]) -> Option<Vec<IpAddr>> {
    let ancount = u16_at(msg, 6)?;
    let (_, end) = question_name(msg, HEADER).ok()?;
    let mut at = end + 4;
    let mut out = Vec::new();
    for _ in 0..ancount {
        let r = skip_record(msg, at)?;
        let data = msg.get(r.data..r.end)?;
        match (r.rtype, data.len()) {
            (rtype::A, 4) => out.push(IpAddr::from(<[u8; 4]>::try_from(data).ok()?)),
            (rtype::AAAA, 16) => out.push(IpAddr::from(<[u8; 16]>::try_from(data).ok()?)),
            _ => {}
        }
        at = r.end;
    }
    Some(out)
}

/// A query for tests and the fuzz target: `name` (dots between labels), type, id, and
/// whether to add an EDNS `OPT` record.
pub fn build_query(id: u16, name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&0x0100u16.to_be_bytes());
    for c in [1, 0, 0, u16::from(edns)] {
        out.extend_from_slice(&u16::to_be_bytes(c));
    }
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let bytes = label.as_bytes();
        let len = bytes.len().min(63);
        out.push(len as u8);
        out.extend_from_slice(&bytes[..len]);
    }
    out.push(0);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    if edns {
        opt(&mut out, UDP_EDNS_MAX, &[]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_and_an_edns_query() {
        let q = build_query(0x1234, "Allowed.TEST", rtype::A, false);
        let p = parse_query(&q).unwrap();
        assert_eq!(p.id, 0x1234);
        assert!(p.rd);
        assert_eq!(p.name.as_deref(), Some("allowed.test"));
        assert_eq!((p.qtype, p.qclass, p.edns), (rtype::A, CLASS_IN, None));
        assert_eq!(p.limit(false), 512);
        let q = build_query(7, "a.test", rtype::AAAA, true);
        let p = parse_query(&q).unwrap();
        assert_eq!(p.edns, Some(UDP_EDNS_MAX));
        assert_eq!(p.limit(false), usize::from(UDP_EDNS_MAX));
        assert_eq!(p.limit(true), 65535);
    }

    #[test]
    fn answers_carry_the_addresses_of_the_question_type() {
        let q = build_query(9, "a.test", rtype::A, false);
        let p = parse_query(&q).unwrap();
        let addrs: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        let r = p.answer(rcode::NOERROR, &addrs, 5, 512);
        assert_eq!(rcode_of(&r), Some(0));
        assert_eq!(&r[..2], &[0, 9]);
        assert_eq!(answer_addrs(&r).unwrap(), vec![addrs[0]]);
        let q6 = build_query(9, "a.test", rtype::AAAA, true);
        let p6 = parse_query(&q6).unwrap();
        let r = p6.answer(rcode::NOERROR, &addrs, 5, 512);
        assert_eq!(answer_addrs(&r).unwrap(), vec![addrs[1]]);
        // Too big for the client: truncated, no records.
        let many: Vec<IpAddr> = (1..=60u8).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let r = p.answer(rcode::NOERROR, &many, 5, 512);
        assert!(Query::truncated(&r));
        assert!(answer_addrs(&r).unwrap().is_empty());
        assert!(!Query::truncated(&p.answer(
            rcode::NOERROR,
            &many,
            5,
            65535
        )));
    }

    #[test]
    fn refusals_explain_with_edns() {
        let q = build_query(3, "denied.test", rtype::A, true);
        let p = parse_query(&q).unwrap();
        let r = p.refusal("greywall: denied by rule denied.test", 512);
        assert_eq!(rcode_of(&r), Some(rcode::REFUSED));
        let text = String::from_utf8_lossy(&r);
        assert!(
            text.contains("greywall: denied by rule denied.test"),
            "{text}"
        );
        assert!(r.len() <= 512);
        let long = "x".repeat(2000);
        assert!(p.refusal(&long, 512).len() <= 512);
        let wide = "é".repeat(1000);
        let r = p.refusal(&wide, 512);
        assert!(r.len() <= 512);
        let text = &r[r.iter().position(|b| *b == 0xc3).unwrap()..];
        assert!(std::str::from_utf8(text).is_ok(), "cut inside a character");
        let plain_q = build_query(3, "denied.test", rtype::A, false);
        let plain = parse_query(&plain_q).unwrap();
        let r = plain.refusal("why", 512);
        assert_eq!(r.len(), 12 + q.len() - 12 - 11);
    }

    #[test]
    fn malformed_queries_are_refused_without_panicking() {
        assert_eq!(parse_query(&[]).unwrap_err().reply(), None);
        assert_eq!(parse_query(&[1, 2, 3]).unwrap_err().reply(), None);
        let mut q = build_query(1, "a.test", rtype::A, false);
        q[2] |= 0x80; // a response
        assert_eq!(parse_query(&q).unwrap_err().reply(), None);
        let mut q = build_query(1, "a.test", rtype::A, false);
        q[2] |= 0x10; // opcode 2 (status)
        let e = parse_query(&q).unwrap_err();
        assert_eq!(e.rcode, rcode::NOTIMP);
        assert_eq!(rcode_of(&e.reply().unwrap()), Some(rcode::NOTIMP));
        let mut q = build_query(1, "a.test", rtype::A, false);
        q[12] = 0xc0; // a pointer in the question
        assert_eq!(parse_query(&q).unwrap_err().rcode, rcode::FORMERR);
        let q = build_query(1, "a.test", rtype::A, false);
        for n in 0..q.len() {
            assert!(parse_query(&q[..n]).is_err(), "prefix of {n} bytes");
        }
        let mut trailing = q.clone();
        trailing.push(0);
        assert!(parse_query(&trailing).is_err());
        // A label with a dot inside cannot pass for two labels.
        let mut q = build_query(1, "ab.test", rtype::A, false);
        q[14] = b'.';
        assert_eq!(parse_query(&q).unwrap().name, None);
        // 128 one-byte labels: longer than 255 bytes.
        let long = vec!["a"; 128].join(".");
        assert!(parse_query(&build_query(1, &long, rtype::A, false)).is_err());
    }

    #[test]
    fn forwarded_replies_must_match() {
        let q = build_query(0xabcd, "a.test", rtype::A, false);
        let p = parse_query(&q).unwrap();
        let fwd = p.forwarded(77, UDP_EDNS_MAX);
        let fp = parse_query(&fwd).unwrap();
        assert_eq!((fp.id, fp.name.as_deref()), (77, Some("a.test")));
        let upstream = fp.answer(rcode::NOERROR, &["192.0.2.1".parse().unwrap()], 60, 512);
        let relayed = p.relay_reply(&upstream, 77).unwrap();
        assert_eq!(&relayed[..2], &[0xab, 0xcd]);
        assert_eq!(answer_addrs(&relayed).unwrap().len(), 1);
        assert!(p.relay_reply(&upstream, 78).is_none(), "wrong id");
        assert!(p.relay_reply(&fwd, 77).is_none(), "not a response");
        let other_q = build_query(77, "b.test", rtype::A, false);
        let other = parse_query(&other_q).unwrap();
        let wrong = other.answer(rcode::NOERROR, &[], 60, 512);
        assert!(p.relay_reply(&wrong, 77).is_none(), "other question");
    }
}
