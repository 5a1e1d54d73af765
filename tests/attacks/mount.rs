//! Defect 1 of the audit (HIGH): a cross-repository mount from a repository
//! the caller may not pull must never link the blob, however the mount is
//! asked for: query order, repeated keys, percent-encodings, a query long
//! enough to break a rewrite of the URI, over HTTP/1.1 and HTTP/2. The
//! answer is a plain upload session (202) in every case, so the answer says
//! nothing about whether the blob exists (no oracle).

use std::process::Command;

use crate::support::auth::{post_blob, with, Setup};
use crate::support::inprocess::RULES;
use crate::support::{client, have, Registry};

const ADMIN: (&str, &str) = ("admin", "admin-secret");
const ALICE: (&str, &str) = ("alice", "alice-secret");

fn start() -> (Setup, Registry) {
    let setup = Setup::new();
    setup.add_user(ADMIN.0, ADMIN.1);
    setup.add_user(ALICE.0, ALICE.1);
    let reg = setup.start(RULES);
    (setup, reg)
}

/// The ways of asking to mount `digest` from `secret/app`.
fn mount_queries(digest: &str) -> Vec<String> {
    let slashes = "/".repeat(22_000);
    vec![
        format!("mount={digest}&from=secret/app"),
        format!("from=secret/app&mount={digest}"),
        format!("mount={digest}&from=secret%2Fapp"),
        format!("mount={}&from=secret/app", digest.replace(':', "%3A")),
        format!("mount={digest}&from=secret/app&x={slashes}"),
        format!("x={slashes}&mount={digest}&from=secret/app"),
        format!("mount={digest}&from=secret/app&from=team-a/x"),
        format!("mount={digest}&mount={digest}&from=secret/app"),
        format!("mount={digest}&from=secret/app&"),
        format!("mount={digest}&from=secret/app#fragment"),
    ]
}

fn shown(q: &str) -> String {
    q.chars().take(100).collect()
}

#[test]
fn a_mount_from_a_forbidden_repository_never_links_the_blob_over_http1() {
    let (_setup, reg) = start();
    let secret = b"only in secret/app".to_vec();
    let r = post_blob(&reg.url(""), "secret/app", &secret, Some(ADMIN));
    assert_eq!(r.status().as_u16(), 201);
    let digest = crate::support::sha256(&secret);
    let c = client();
    for q in mount_queries(&digest) {
        let url = reg.url(&format!("/v2/team-a/x/blobs/uploads/?{q}"));
        let r = with(c.post(url), Some(ALICE)).send().expect("POST");
        assert_eq!(r.status().as_u16(), 202, "{}: {r:?}", shown(&q));
        assert!(
            r.headers().get("location").is_some(),
            "{}: a plain upload session has a Location",
            shown(&q)
        );
        let blob = with(
            c.get(reg.url(&format!("/v2/team-a/x/blobs/{digest}"))),
            Some(ALICE),
        )
        .send()
        .expect("GET");
        assert_eq!(blob.status().as_u16(), 404, "{}: blob leaked", shown(&q));
    }
    // Someone who may pull the source mounts it as before.
    let url = reg.url(&format!(
        "/v2/team-a/x/blobs/uploads/?mount={digest}&from=secret/app"
    ));
    let r = with(c.post(url), Some(ADMIN)).send().expect("POST");
    assert_eq!(r.status().as_u16(), 201);
}

#[test]
fn a_mount_from_a_forbidden_repository_never_links_the_blob_over_http2() {
    if !have("curl") {
        assert!(
            std::env::var("CI").is_err(),
            "curl is needed for the HTTP/2 test"
        );
        eprintln!("skipping: no curl");
        return;
    }
    let (_setup, reg) = start();
    let secret = b"only in secret/app, over h2".to_vec();
    let r = post_blob(&reg.url(""), "secret/app", &secret, Some(ADMIN));
    assert_eq!(r.status().as_u16(), 201);
    let digest = crate::support::sha256(&secret);
    let curl = |method: &str, path: &str, who: (&str, &str)| -> (String, String) {
        let out = Command::new("curl")
            .args(["-s", "--http2-prior-knowledge", "-o", "/dev/null"])
            .args(["-w", "%{http_version} %{http_code}", "-X", method])
            .args(["-u", &format!("{}:{}", who.0, who.1)])
            .arg(reg.url(path))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (version, code) = text.split_once(' ').unwrap_or(("?", "?"));
        (version.to_string(), code.to_string())
    };
    for q in mount_queries(&digest) {
        // curl sends the fragment nowhere; the rest goes as it is.
        let (version, code) = curl("POST", &format!("/v2/team-a/x/blobs/uploads/?{q}"), ALICE);
        assert_eq!(version, "2", "{}: not HTTP/2", shown(&q));
        // HTTP/2 bounds the header block (16 KiB): a longer query is
        // refused before it reaches the registry, which is as safe.
        let refused_as_too_long = q.len() > 16 << 10 && code == "431";
        assert!(
            code == "202" || refused_as_too_long,
            "{}: {code}",
            shown(&q)
        );
        let (_, code) = curl("GET", &format!("/v2/team-a/x/blobs/{digest}"), ALICE);
        assert_eq!(code, "404", "{}: blob leaked over HTTP/2", shown(&q));
    }
}
