//! Authentication, black-box: the real `berth` binary with an htpasswd
//! file, spoken to over HTTP. Challenges, good and bad passwords, and the
//! lockout after repeated failures.

use crate::support;

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::auth::*;
use support::{client, have, sha256};

#[test]
fn every_endpoint_challenges_without_credentials() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    // registry:2's environment variables alone turn auth on.
    let path = setup.htpasswd();
    let s = setup.start_cmd(setup.command(
        None,
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", REALM),
            ("REGISTRY_AUTH_HTPASSWD_PATH", path.to_str().unwrap()),
        ],
    ));
    let d = sha256(b"x");
    for path in [
        "/v2/".to_string(),
        "/v2".to_string(),
        "/v2/_catalog".to_string(),
        "/v2/library/app/tags/list".to_string(),
        "/v2/library/app/manifests/latest".to_string(),
        format!("/v2/library/app/blobs/{d}"),
        format!("/v2/library/app/referrers/{d}"),
        "/v2/no/such/endpoint".to_string(),
        "/v2/INVALID/tags/list".to_string(),
    ] {
        expect_challenge(get(&s, &path, None));
    }
    let c = client();
    expect_challenge(c.post(s.url("/v2/app/blobs/uploads/")).send().unwrap());
    expect_challenge(c.delete(s.url("/v2/app/manifests/latest")).send().unwrap());
    let head = c.head(s.url("/v2/")).send().unwrap();
    assert_eq!(head.status(), 401);
    assert!(head.headers().contains_key("www-authenticate"));
    // With the password, the same endpoints answer as usual.
    let ok = get(&s, "/v2/", ALICE);
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert_eq!(get(&s, "/v2/_catalog", ALICE).status(), 200);
    expect_error(
        get(&s, "/v2/library/app/manifests/latest", ALICE),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn good_and_bad_passwords_and_unknown_users() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    if have("htpasswd") {
        // A file line made by Apache's tool (`$2y$`) is accepted as it is.
        let out = Command::new("htpasswd")
            .args(["-Bbn", "-C", "4", "bob", "bob-secret"])
            .output()
            .unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(line.starts_with("bob:$2y$"), "{line}");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(setup.htpasswd())
            .unwrap();
        writeln!(f, "{}", line.trim()).unwrap();
    }
    let s = setup.start("");
    assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
    if have("htpasswd") {
        assert_eq!(get(&s, "/v2/", Some(("bob", "bob-secret"))).status(), 200);
    }
    // Repeated requests (served from the cache) still work.
    for _ in 0..5 {
        assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
    }
    expect_challenge(get(&s, "/v2/", Some(("alice", "wrong"))));
    expect_challenge(get(&s, "/v2/", Some(("alice", ""))));
    expect_challenge(get(&s, "/v2/", Some(("alice", "alice-secret "))));
    expect_challenge(get(&s, "/v2/", Some(("mallory", "alice-secret"))));
    // A cached good password does not let a wrong one through afterwards.
    expect_challenge(get(&s, "/v2/", Some(("alice", "alice-secreT"))));
    for bad in [
        "Bearer abc",
        "Basic !!!notbase64",
        "Basic Zm9v",
        "Basic",
        "Digest username=\"alice\"",
    ] {
        expect_challenge(
            client()
                .get(s.url("/v2/"))
                .header("authorization", bad)
                .send()
                .unwrap(),
        );
    }
    let logs = s.logs();
    assert!(logs.contains("wrong password"), "{logs}");
    assert!(logs.contains("unknown user"), "{logs}");
    // Neither passwords nor Authorization headers are ever logged; unknown
    // user names (possibly passwords typed in the wrong field) are not either.
    for secret in [
        "alice-secret",
        "YWxpY2U6",
        "mallory",
        "bob-secret",
        "Basic ",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} appears in the log:\n{logs}"
        );
    }
}

#[test]
fn unknown_user_costs_as_much_as_a_wrong_password() {
    let setup = Setup::new();
    // A realistic cost, so that skipping bcrypt would show.
    add_user_cost(&setup.htpasswd(), "alice", "alice-secret", 10);
    // An entry of a lower cost must not answer faster either.
    add_user_cost(&setup.htpasswd(), "bob", "bob-secret", 4);
    let s = setup.start("[access.lockout]\nfailures = 0\n");
    let time = |user: &str| {
        let mut v: Vec<Duration> = (0..7)
            .map(|_| {
                let t = Instant::now();
                let r = get(&s, "/v2/", Some((user, "not-the-password")));
                assert_eq!(r.status(), 401);
                t.elapsed()
            })
            .collect();
        v.sort();
        v[v.len() / 2]
    };
    let wrong = time("alice");
    let unknown = time("nobody-by-this-name");
    let cheap = time("bob");
    eprintln!("median: wrong password {wrong:?} (cost 4: {cheap:?}), unknown user {unknown:?}");
    assert!(
        cheap.as_secs_f64() > 0.5 * wrong.as_secs_f64(),
        "a wrong password for a cost-4 entry ({cheap:?}) answers faster than one at cost 10 ({wrong:?})"
    );
    assert!(
        wrong > Duration::from_millis(5),
        "bcrypt cost 10 is not that fast: {wrong:?}"
    );
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.6..1.6).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
}

#[test]
fn repeated_failures_from_one_client_get_429() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let s = setup.start("[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"3s\"\n");
    for _ in 0..3 {
        expect_challenge(get(&s, "/v2/", Some(("alice", "guess"))));
    }
    // Locked out: even the right password is not checked now.
    let r = expect_error(get(&s, "/v2/", ALICE), 429, "TOOMANYREQUESTS");
    let retry: u64 = r["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    expect_error(
        get(&s, "/v2/", Some(("alice", "guess"))),
        429,
        "TOOMANYREQUESTS",
    );
    // A request without credentials still gets the challenge.
    expect_challenge(get(&s, "/v2/", None));
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
}

#[test]
fn a_burst_of_guesses_sent_at_once_is_not_all_checked() {
    let setup = Setup::new();
    // A real cost: the burst queues for bcrypt while the first ones fail.
    add_user_cost(&setup.htpasswd(), "alice", "alice-secret", 10);
    let s = Arc::new(
        setup.start("[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"1m\"\n"),
    );
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                get(&s, "/v2/", Some(("alice", &format!("guess-{i}"))))
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|&&c| c == 401).count();
    assert!(
        statuses.iter().all(|&c| c == 401 || c == 429),
        "{statuses:?}"
    );
    // The lockout starts at the third failure; guesses already being
    // verified then (one per bcrypt slot, a slot per core) still finish.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(
        checked <= 3 + cores,
        "{checked} of 24 simultaneous guesses were checked: {statuses:?}"
    );
    expect_error(get(&s, "/v2/", ALICE), 429, "TOOMANYREQUESTS");
}
