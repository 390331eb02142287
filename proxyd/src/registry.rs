//! Registered sandboxes: token → policy. A registration lives exactly as long as the
//! launcher's registration connection ([`Registry::remove`] runs when it closes).

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use greywall_compiler::egress::EgressRules;
use tokio::sync::broadcast;

use crate::line::Token;

/// One sandbox's registration.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    pub label: String,
    /// sha256 (hex) of the ruleset bytes.
    pub policy: String,
    /// Shared by every registration of the same rule set (see [`crate::server`]).
    pub rules: Arc<EgressRules>,
    /// Audit lines for `GW1 WATCH`.
    pub watch: broadcast::Sender<Arc<str>>,
}

/// Every live registration.
#[derive(Debug, Default)]
pub struct Registry {
    map: Mutex<HashMap<Token, Arc<Sandbox>>>,
}

impl Registry {
    pub fn insert(&self, token: Token, sandbox: Arc<Sandbox>) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(token, sandbox);
        }
    }

    pub fn remove(&self, token: &Token) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(token);
        }
    }

    pub fn get(&self, token: &Token) -> Option<Arc<Sandbox>> {
        self.map.lock().ok()?.get(token).cloned()
    }

    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `n` bytes from the kernel's random source.
pub fn random_bytes<const N: usize>() -> io::Result<[u8; N]> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b)
}
