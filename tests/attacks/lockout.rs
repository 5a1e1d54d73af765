//! Password guessing (audit item 8): the lockout counts failures in a
//! sliding window, per address group (`ipv4_prefix`, `ipv6_prefix`) and per
//! user, and a user who logged in from an address keeps working there while
//! an attacker behind the same address is locked out.

use crate::support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, Response};
use support::auth::*;
use support::harness::Registry;

/// A client whose connections come from `127.0.0.{last}`.
fn from(last: u8) -> Client {
    Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn login(c: &Client, s: &Registry, user: &str, password: &str) -> Response {
    c.get(s.url("/v2/"))
        .basic_auth(user, Some(password))
        .send()
        .expect("request")
}

fn status(r: Response) -> u16 {
    r.status().as_u16()
}

#[test]
fn guesses_from_many_addresses_hit_the_per_user_limit() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    setup.add_user("bob", "bob-secret");
    let s = setup.start(
        "[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"1m\"\n\
         user_failures = 5\nuser_window = \"1m\"\nuser_duration = \"1m\"\n",
    );
    // Two guesses from each of 20 addresses: no address reaches its limit.
    let mut checked = 0;
    for last in 2..22u8 {
        let c = from(last);
        for i in 0..2 {
            match status(login(&c, &s, "alice", &format!("guess-{last}-{i}"))) {
                401 => checked += 1,
                429 => {}
                other => panic!("status {other}"),
            }
        }
    }
    assert_eq!(checked, 5, "guesses at alice's password that were checked");
    // alice is locked for password checks from any address, even with the
    // right password from an address that never failed; bob is not.
    let fresh = from(99);
    expect_error(
        login(&fresh, &s, "alice", "alice-secret"),
        429,
        "TOOMANYREQUESTS",
    );
    assert_eq!(status(login(&fresh, &s, "bob", "bob-secret")), 200);
}

#[test]
fn guesses_from_one_ipv4_prefix_hit_the_address_limit() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let s = setup.start(
        "[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"1m\"\nipv4_prefix = 24\n",
    );
    // Unknown names, so that only the address limit applies.
    let mut checked = 0;
    for last in 2..22u8 {
        match status(login(&from(last), &s, &format!("nobody-{last}"), "guess")) {
            401 => checked += 1,
            429 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(checked, 3, "guesses from 127.0.0.0/24 that were checked");
    expect_error(
        login(&from(50), &s, "alice", "alice-secret"),
        429,
        "TOOMANYREQUESTS",
    );
}

#[test]
fn guesses_at_a_window_edge_are_not_let_through_twice() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let s = setup.start("[access.lockout]\nfailures = 3\nwindow = \"2s\"\nduration = \"2s\"\n");
    let c = from(7);
    let start = Instant::now();
    let mut statuses = vec![status(login(&c, &s, "alice", "guess-1"))];
    std::thread::sleep(Duration::from_millis(1500));
    statuses.push(status(login(&c, &s, "alice", "guess-2")));
    // Just past the end of the first failure's window: a fixed window
    // starts again from zero here; a sliding one still holds guess 2.
    std::thread::sleep(Duration::from_millis(2100).saturating_sub(start.elapsed()));
    for i in 3..=5 {
        statuses.push(status(login(&c, &s, "alice", &format!("guess-{i}"))));
    }
    assert!(
        start.elapsed() < Duration::from_millis(3400),
        "too slow to test the window: {:?}",
        start.elapsed()
    );
    // Guesses 2, 3 and 4 fall in one window of 2 s: the third of them
    // locks the address, and guess 5 is not checked.
    assert_eq!(statuses, [401, 401, 401, 401, 429]);
}

#[test]
fn a_user_logged_in_from_a_locked_address_keeps_working() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    setup.add_user("bob", "bob-secret");
    setup.add_user("carol", "carol-secret");
    let s = setup.start("[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"1m\"\n");
    // One office behind one NAT address: alice works, then an attacker
    // there guesses bob's password until the address is locked.
    let office = from(9);
    assert_eq!(status(login(&office, &s, "alice", "alice-secret")), 200);
    for i in 0..3 {
        expect_challenge(login(&office, &s, "bob", &format!("guess-{i}")));
    }
    expect_error(login(&office, &s, "bob", "guess-3"), 429, "TOOMANYREQUESTS");
    // alice, already logged in from there, keeps working.
    for _ in 0..5 {
        assert_eq!(status(login(&office, &s, "alice", "alice-secret")), 200);
    }
    // A fresh login from the locked address waits, the right password too.
    expect_error(
        login(&office, &s, "carol", "carol-secret"),
        429,
        "TOOMANYREQUESTS",
    );
    // Guesses at alice's password from there are refused unchecked, and
    // only a few of them are let near her cached login at all: after
    // them, alice waits too.
    for i in 0..3 {
        expect_error(
            login(&office, &s, "alice", &format!("guess-{i}")),
            429,
            "TOOMANYREQUESTS",
        );
    }
    expect_error(
        login(&office, &s, "alice", "alice-secret"),
        429,
        "TOOMANYREQUESTS",
    );
    // Elsewhere alice and carol are not affected.
    assert_eq!(status(login(&from(10), &s, "alice", "alice-secret")), 200);
    assert_eq!(status(login(&from(10), &s, "carol", "carol-secret")), 200);
}
