//! Slowing down password guessing. Failed logins are counted in a sliding
//! window per client address group (IPv4 by `ipv4_prefix` bits, IPv6 by
//! `ipv6_prefix`) and per user (known users only); a group or user with too
//! many is refused for a while. While it is, a user who logged in from the
//! same address group recently (a *trusted pair*) may still be accepted by
//! the verifier's cache of recent logins, never by bcrypt, and only a few
//! times wrongly: the pair has its own limit.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Lockout;

/// Records tracked at most; beyond it, stale ones are dropped first.
const MAX_TRACKED: usize = 100_000;

/// How long a successful login trusts its (address group, user) pair: the
/// lifetime of the verifier's cache, which is what a trusted pair may use.
const TRUST: Duration = super::verify::CACHE_TTL;

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Group(IpAddr),
    User(String),
    Pair(IpAddr, String),
}

#[derive(Clone, Copy)]
struct Limit {
    failures: u32,
    window: Duration,
    duration: Duration,
}

#[derive(Default)]
struct Record {
    /// Times of the latest failures, at most `failures` of them.
    recent: VecDeque<Instant>,
    blocked_until: Option<Instant>,
    trusted_until: Option<Instant>,
}

impl Record {
    fn refused(&self, now: Instant) -> Option<Duration> {
        self.blocked_until?
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }

    /// Counts a failure at `now`; true when that starts a lockout.
    fn fail(&mut self, limit: Limit, now: Instant) -> bool {
        if limit.failures == 0 {
            return false;
        }
        while self
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) >= limit.window)
        {
            self.recent.pop_front();
        }
        // The ring keeps the latest `failures`: a lockout that ends while
        // they are still within the window starts again at the next failure.
        if self.recent.len() >= limit.failures as usize {
            self.recent.pop_front();
        }
        self.recent.push_back(now);
        if self.recent.len() >= limit.failures as usize {
            self.blocked_until = Some(now + limit.duration);
            return true;
        }
        false
    }

    fn live(&self, window: Duration, now: Instant) -> bool {
        self.blocked_until.is_some_and(|u| u > now)
            || self.trusted_until.is_some_and(|u| u > now)
            || self
                .recent
                .back()
                .is_some_and(|&t| now.duration_since(t) < window)
    }
}

/// Whether a login may be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Nothing is locked: check the password.
    Open,
    /// The address group or the user is locked, but this user logged in from
    /// this group recently: a cached login may be accepted, nothing else is
    /// checked. The duration is how long the lockout lasts.
    Trusted(Duration),
    /// Refused for this long; nothing is checked.
    Refused(Duration),
}

pub struct FailureLimiter {
    group: Limit,
    user: Limit,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
    records: Mutex<HashMap<Key, Record>>,
}

fn mask(bits: u32, prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
        & bits
}

impl FailureLimiter {
    pub fn new(config: Lockout) -> FailureLimiter {
        FailureLimiter {
            group: Limit {
                failures: config.failures,
                window: config.window,
                duration: config.duration,
            },
            user: Limit {
                failures: config.user_failures(),
                window: config.user_window,
                duration: config.user_duration,
            },
            ipv4_prefix: config.ipv4_prefix,
            ipv6_prefix: config.ipv6_prefix,
            records: Mutex::new(HashMap::new()),
        }
    }

    fn disabled(&self) -> bool {
        self.group.failures == 0 && self.user.failures == 0
    }

    /// A pair's own limit: the address limit, or the user limit without one.
    fn pair_limit(&self) -> Limit {
        if self.group.failures > 0 {
            self.group
        } else {
            self.user
        }
    }

    /// The address group `ip` is counted in.
    fn group_of(&self, ip: IpAddr) -> IpAddr {
        let v4 = |v4: Ipv4Addr| IpAddr::V4(Ipv4Addr::from(mask(u32::from(v4), self.ipv4_prefix)));
        match ip {
            IpAddr::V4(a) => v4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(a) => v4(a),
                None => {
                    let bits = u128::from(a);
                    let p = u32::from(self.ipv6_prefix.min(128));
                    let m = u128::MAX.checked_shl(128 - p).unwrap_or(0);
                    IpAddr::V6(Ipv6Addr::from(bits & m))
                }
            },
        }
    }

    /// Whether a login as `user` from `ip` may be checked now.
    pub fn admit(&self, ip: IpAddr, user: &str) -> Admit {
        if self.disabled() {
            return Admit::Open;
        }
        let Ok(records) = self.records.lock() else {
            return Admit::Open;
        };
        let now = Instant::now();
        let group = self.group_of(ip);
        let wait = |k: Key| records.get(&k).and_then(|r| r.refused(now));
        let pair = records.get(&Key::Pair(group, user.to_string()));
        if let Some(w) = pair.and_then(|p| p.refused(now)) {
            return Admit::Refused(w);
        }
        let locked = [
            (self.group.failures > 0)
                .then(|| wait(Key::Group(group)))
                .flatten(),
            (self.user.failures > 0)
                .then(|| wait(Key::User(user.to_string())))
                .flatten(),
        ]
        .into_iter()
        .flatten()
        .max();
        match locked {
            None => Admit::Open,
            Some(w) if pair.is_some_and(|p| p.trusted_until.is_some_and(|u| u > now)) => {
                Admit::Trusted(w)
            }
            Some(w) => Admit::Refused(w),
        }
    }

    fn with_records(&self, f: impl FnOnce(&mut HashMap<Key, Record>, Instant) -> bool) -> bool {
        if self.disabled() {
            return false;
        }
        let Ok(mut records) = self.records.lock() else {
            return false;
        };
        let now = Instant::now();
        if records.len() >= MAX_TRACKED {
            let window = self.group.window.max(self.user.window);
            records.retain(|_, r| r.live(window, now));
            if records.len() >= MAX_TRACKED {
                records.clear();
            }
        }
        f(&mut records, now)
    }

    /// Counts a failed login as `user` from `ip` (`known`: the user exists,
    /// so its own limit counts too); true when that starts a lockout.
    pub fn failed(&self, ip: IpAddr, user: &str, known: bool) -> bool {
        let group = self.group_of(ip);
        let (g, u, p) = (self.group, self.user, self.pair_limit());
        self.with_records(|records, now| {
            let mut locked =
                g.failures > 0 && records.entry(Key::Group(group)).or_default().fail(g, now);
            if known && u.failures > 0 {
                locked |= records
                    .entry(Key::User(user.to_string()))
                    .or_default()
                    .fail(u, now);
            }
            if let Some(pair) = records.get_mut(&Key::Pair(group, user.to_string())) {
                locked |= pair.fail(p, now);
            }
            locked
        })
    }

    /// Counts a wrong login of a trusted pair while locked (nothing else
    /// counts then: the group or user is locked already).
    pub fn failed_trusted(&self, ip: IpAddr, user: &str) {
        let group = self.group_of(ip);
        let p = self.pair_limit();
        self.with_records(|records, now| {
            records
                .get_mut(&Key::Pair(group, user.to_string()))
                .is_some_and(|pair| pair.fail(p, now))
        });
    }

    /// A successful login as `user` from `ip`: it trusts the pair.
    pub fn succeeded(&self, ip: IpAddr, user: &str) {
        let group = self.group_of(ip);
        self.with_records(|records, now| {
            records
                .entry(Key::Pair(group, user.to_string()))
                .or_default()
                .trusted_until = Some(now + TRUST);
            false
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(failures: u32, window_ms: u64, duration_ms: u64) -> FailureLimiter {
        FailureLimiter::new(Lockout {
            failures,
            window: Duration::from_millis(window_ms),
            duration: Duration::from_millis(duration_ms),
            user_failures: Some(0),
            ..Lockout::default()
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn refused(a: Admit) -> bool {
        matches!(a, Admit::Refused(_))
    }

    #[test]
    fn locks_out_after_failures() {
        let l = limiter(3, 60_000, 200);
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        assert!(!l.failed(a, "x", false));
        assert!(!l.failed(a, "x", false));
        assert_eq!(l.admit(a, "x"), Admit::Open);
        assert!(l.failed(a, "x", false));
        assert!(refused(l.admit(a, "x")));
        assert!(refused(l.admit(a, "other")));
        assert_eq!(l.admit(b, "x"), Admit::Open);
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(l.admit(a, "x"), Admit::Open);
        // The failures are still in the window: the next one locks again.
        assert!(l.failed(a, "x", false));
    }

    #[test]
    fn the_window_slides() {
        let l = limiter(3, 300, 1000);
        let a = ip("10.0.0.1");
        assert!(!l.failed(a, "x", false));
        std::thread::sleep(Duration::from_millis(200));
        assert!(!l.failed(a, "x", false));
        std::thread::sleep(Duration::from_millis(150));
        // The first failure has left the window, the second has not.
        assert!(!l.failed(a, "x", false));
        assert!(l.failed(a, "x", false));
    }

    #[test]
    fn addresses_are_grouped_by_prefix() {
        let l = limiter(3, 60_000, 60_000);
        assert_eq!(l.group_of(ip("10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(l.group_of(ip("2001:db8::1")), l.group_of(ip("2001:db8::2")));
        assert_ne!(l.group_of(ip("2001:db8::1")), l.group_of(ip("2001:db9::1")));
        assert_eq!(l.group_of(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        let l = FailureLimiter::new(Lockout {
            ipv4_prefix: 24,
            ipv6_prefix: 48,
            ..Lockout::default()
        });
        assert_eq!(l.group_of(ip("10.0.0.1")), ip("10.0.0.0"));
        assert_eq!(l.group_of(ip("10.0.0.77")), l.group_of(ip("10.0.0.1")));
        assert_ne!(l.group_of(ip("10.0.1.1")), l.group_of(ip("10.0.0.1")));
        assert_eq!(l.group_of(ip("2001:db8:1:2::1")), ip("2001:db8:1::"));
        let l = FailureLimiter::new(Lockout {
            ipv4_prefix: 0,
            ipv6_prefix: 128,
            ..Lockout::default()
        });
        assert_eq!(l.group_of(ip("10.0.0.1")), ip("0.0.0.0"));
        assert_eq!(l.group_of(ip("2001:db8::1")), ip("2001:db8::1"));
    }

    #[test]
    fn no_failures_no_lockout_unless_the_user_limit_is_set() {
        let off = Lockout {
            failures: 0,
            ..Lockout::default()
        };
        assert_eq!(off.user_failures(), 0);
        assert_eq!(Lockout::default().user_failures(), 20);
        let l = FailureLimiter::new(Lockout {
            user_failures: Some(1),
            ..off
        });
        let a = ip("10.0.0.1");
        assert!(!l.failed(a, "x", false));
        assert!(!l.failed(a, "x", false));
        assert_eq!(l.admit(a, "x"), Admit::Open);
        assert!(l.failed(a, "alice", true));
        assert!(refused(l.admit(ip("10.0.0.2"), "alice")));
    }

    #[test]
    fn a_user_is_locked_from_every_address() {
        let l = FailureLimiter::new(Lockout {
            user_failures: Some(2),
            ..Lockout::default()
        });
        assert!(!l.failed(ip("10.0.0.1"), "alice", true));
        // Unknown users are not counted (nor tracked).
        assert!(!l.failed(ip("10.0.0.9"), "nobody", false));
        assert!(!l.failed(ip("10.0.0.9"), "nobody", false));
        assert_eq!(l.admit(ip("10.0.0.3"), "nobody"), Admit::Open);
        assert!(l.failed(ip("10.0.0.2"), "alice", true));
        assert!(refused(l.admit(ip("10.0.0.3"), "alice")));
        assert_eq!(l.admit(ip("10.0.0.3"), "bob"), Admit::Open);
    }

    #[test]
    fn a_trusted_pair_is_admitted_to_the_cache_a_few_times() {
        let l = limiter(3, 60_000, 60_000);
        let a = ip("10.0.0.1");
        l.succeeded(a, "alice");
        for _ in 0..3 {
            l.failed(a, "mallory", false);
        }
        assert!(refused(l.admit(a, "mallory")));
        assert!(refused(l.admit(a, "bob")));
        assert!(matches!(l.admit(a, "alice"), Admit::Trusted(_)));
        l.failed_trusted(a, "alice");
        l.failed_trusted(a, "alice");
        assert!(matches!(l.admit(a, "alice"), Admit::Trusted(_)));
        l.failed_trusted(a, "alice");
        assert!(refused(l.admit(a, "alice")));
    }
}
