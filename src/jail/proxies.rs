//! Noticing a jail that captures a trusted proxy's address: its filter reads
//! the proxy's address (nginx's `$remote_addr` behind a load balancer, a
//! Django log without the forwarded client address) instead of the client's.
//!
//! Owns the per-jail count and the one warning; the trusted list itself is
//! part of the allow-list (`ignore`), which is what keeps such an address
//! from ever being banned.

use std::net::IpAddr;

/// Captures of a trusted proxy above this many earn the warning.
pub const PROXY_WARN_AFTER: u64 = 3;

/// How often a jail matched a trusted proxy's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyCaptures {
    pub count: u64,
    pub last: Option<IpAddr>,
    warned: bool,
}

impl ProxyCaptures {
    /// Counts one capture of `addr` by `jail`; logs the warning once, when
    /// the count first exceeds [`PROXY_WARN_AFTER`].
    pub fn note(&mut self, jail: &str, addr: IpAddr) {
        self.count += 1;
        self.last = Some(addr);
        if self.count > PROXY_WARN_AFTER && !self.warned {
            self.warned = true;
            tracing::warn!(
                jail,
                proxy = %addr,
                captures = self.count,
                "this jail is capturing your proxy's address: its filter reads the wrong field (the proxy is never banned; see README, Behind a proxy)"
            );
        }
    }

    /// The warning `status` shows, once the count is over the threshold.
    pub fn warning(&self) -> Option<String> {
        let addr = self.last?;
        (self.count > PROXY_WARN_AFTER).then(|| {
            format!(
                "this jail is capturing your proxy's address ({addr}, {} times): its filter reads the wrong field",
                self.count
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_past_a_few_captures() {
        let mut p = ProxyCaptures::default();
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..PROXY_WARN_AFTER {
            p.note("web", a);
        }
        assert_eq!(p.warning(), None);
        p.note("web", a);
        let w = p.warning().unwrap();
        assert!(
            w.contains("capturing your proxy's address (10.0.0.2, 4 times)"),
            "{w}"
        );
    }
}
