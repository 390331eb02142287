//! `greywall-proxyd`: the egress daemon. One instance per user serves every sandbox of that
//! user over a Unix socket; see `docs/proxyd.md` for the protocol and the decisions.
//!
//! Decisions are pure ([`greywall_compiler::egress`]); the effects (resolving, connecting) sit
//! behind [`dial::Net`], so refusals are tested without sockets.

pub mod adopt;
pub mod audit;
pub mod daemon;
pub mod dial;
pub mod dns;
pub mod dns_answer;
pub mod http_proxy;
pub mod line;
pub mod paths;
pub mod registry;
pub mod relay;
pub mod server;
pub mod socks5;
pub mod stream;
