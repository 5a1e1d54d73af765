//! Slowing down password guessing: failed logins are counted per client
//! address, and an address with too many in a window is refused for a while.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Lockout;

/// Addresses tracked at most; beyond it, stale ones are dropped first.
const MAX_TRACKED: usize = 100_000;

struct Record {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

pub struct FailureLimiter {
    config: Lockout,
    records: Mutex<HashMap<IpAddr, Record>>,
}

/// IPv6 clients usually own a whole /64: count them as one.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

impl FailureLimiter {
    pub fn new(config: Lockout) -> FailureLimiter {
        FailureLimiter {
            config,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// How much longer `ip` is refused, if it is.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        if self.config.failures == 0 {
            return None;
        }
        let records = self.records.lock().ok()?;
        let until = records.get(&bucket(ip))?.blocked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Counts a failed login from `ip`; returns true when that starts a lockout.
    pub fn failed(&self, ip: IpAddr) -> bool {
        if self.config.failures == 0 {
            return false;
        }
        let Ok(mut records) = self.records.lock() else {
            return false;
        };
        let now = Instant::now();
        if records.len() >= MAX_TRACKED {
            let window = self.config.window;
            records.retain(|_, r| {
                r.blocked_until.is_some_and(|u| u > now) || now - r.window_start < window
            });
            if records.len() >= MAX_TRACKED {
                records.clear();
            }
        }
        let r = records.entry(bucket(ip)).or_insert(Record {
            failures: 0,
            window_start: now,
            blocked_until: None,
        });
        if now - r.window_start >= self.config.window {
            r.failures = 0;
            r.window_start = now;
        }
        r.failures += 1;
        if r.failures >= self.config.failures {
            r.blocked_until = Some(now + self.config.duration);
            r.failures = 0;
            r.window_start = now;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_out_after_failures() {
        let l = FailureLimiter::new(Lockout {
            failures: 3,
            window: Duration::from_secs(60),
            duration: Duration::from_millis(200),
        });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(!l.failed(a));
        assert!(!l.failed(a));
        assert!(l.blocked(a).is_none());
        assert!(l.failed(a));
        assert!(l.blocked(a).is_some());
        assert!(l.blocked(b).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(l.blocked(a).is_none());
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(bucket(v6a), bucket(v6b));
    }
}
