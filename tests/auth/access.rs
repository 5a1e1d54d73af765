//! Access control, black-box: per-repository rules for users and groups,
//! anonymous pull, and a catalog filtered by what the caller may pull.

use crate::support;

use serde_json::{json, Value};
use support::auth::*;
use support::{client, sha256};

const RULES: &str = r#"
[access]
anonymous_pull = ["public/*"]

[access.groups]
devs = ["alice", "bob"]

[[access.rules]]
repositories = ["**"]
users = ["admin"]
actions = ["pull", "push", "delete"]

[[access.rules]]
repositories = ["team-a/*"]
groups = ["devs"]
actions = ["pull", "push"]

[[access.rules]]
repositories = ["team-b/*", "public/*"]
users = ["*"]
actions = ["pull"]
"#;

#[test]
fn access_rules_allow_and_deny_each_action() {
    let setup = Setup::new();
    for u in ["admin", "alice", "bob", "zed"] {
        setup.add_user(u, &format!("{u}-secret"));
    }
    let s = setup.start(RULES);
    let admin = Some(("admin", "admin-secret"));
    let bob = Some(("bob", "bob-secret"));
    let zed = Some(("zed", "zed-secret"));
    push_image(&s, "team-b/app", "v1", admin);
    push_image(&s, "public/base", "v1", admin);
    push_image(&s, "secret/thing", "v1", admin);
    // Group members push and pull their team's repositories.
    let digest = push_image(&s, "team-a/app", "v1", ALICE);
    assert_eq!(get(&s, "/v2/team-a/app/manifests/v1", bob).status(), 200);
    assert_eq!(get(&s, "/v2/team-a/app/tags/list", bob).status(), 200);
    // ... but may not delete there.
    let del = |path: &str, creds| with(client().delete(s.url(path)), creds).send().unwrap();
    let r = expect_error(
        del(&format!("/v2/team-a/app/manifests/{digest}"), ALICE),
        403,
        "DENIED",
    );
    assert!(!r.contains_key("www-authenticate"));
    expect_error(
        del(&format!("/v2/team-a/app/blobs/{}", sha256(b"x")), ALICE),
        403,
        "DENIED",
    );
    // Others may not read team-a, nor push where they may only pull.
    expect_error(get(&s, "/v2/team-a/app/manifests/v1", zed), 403, "DENIED");
    expect_error(get(&s, "/v2/team-a/app/tags/list", zed), 403, "DENIED");
    assert_eq!(get(&s, "/v2/team-b/app/manifests/v1", zed).status(), 200);
    expect_error(
        post_blob(&s.base, "team-b/app", b"zed's", zed),
        403,
        "DENIED",
    );
    expect_error(
        with(
            client()
                .put(s.url("/v2/team-b/app/manifests/v2"))
                .body("{}"),
            zed,
        )
        .send()
        .unwrap(),
        403,
        "DENIED",
    );
    expect_error(
        get(&s, "/v2/secret/thing/manifests/v1", ALICE),
        403,
        "DENIED",
    );
    // Anonymous pull where allowed; a challenge everywhere else.
    assert_eq!(get(&s, "/v2/public/base/manifests/v1", None).status(), 200);
    assert_eq!(get(&s, "/v2/public/base/tags/list", None).status(), 200);
    expect_challenge(post_blob(&s.base, "public/base", b"anon", None));
    expect_challenge(get(&s, "/v2/team-b/app/manifests/v1", None));
    expect_challenge(get(&s, "/v2/", None));
    // The admin deletes.
    let r = del(&format!("/v2/team-a/app/manifests/{digest}"), admin);
    assert_eq!(r.status(), 202, "{:?}", r.text());
    // Mounting a blob from a repository the caller may not pull turns into
    // a plain upload (202), not a copy (201).
    let layer = sha256(b"layer of secret/thing:v1");
    let mount = |creds| {
        with(
            client().post(s.url(&format!(
                "/v2/team-a/app/blobs/uploads/?mount={layer}&from=secret/thing"
            ))),
            creds,
        )
        .send()
        .unwrap()
        .status()
        .as_u16()
    };
    assert_eq!(mount(ALICE), 202);
    assert_eq!(mount(admin), 201);
}

#[test]
fn catalog_lists_only_what_the_caller_may_pull() {
    let setup = Setup::new();
    for u in ["admin", "alice", "zed"] {
        setup.add_user(u, &format!("{u}-secret"));
    }
    let s = setup.start(RULES);
    let admin = Some(("admin", "admin-secret"));
    for repo in ["public/base", "secret/thing", "team-a/app", "team-b/app"] {
        push_image(&s, repo, "v1", admin);
    }
    let catalog = |path: &str, creds| -> Vec<String> {
        let r = get(&s, path, creds);
        assert_eq!(r.status(), 200);
        let v: Value = r.json().unwrap();
        serde_json::from_value(v["repositories"].clone()).unwrap()
    };
    assert_eq!(
        catalog("/v2/_catalog", admin),
        ["public/base", "secret/thing", "team-a/app", "team-b/app"]
    );
    assert_eq!(
        catalog("/v2/_catalog", ALICE),
        ["public/base", "team-a/app", "team-b/app"]
    );
    assert_eq!(
        catalog("/v2/_catalog", Some(("zed", "zed-secret"))),
        ["public/base", "team-b/app"]
    );
    assert_eq!(catalog("/v2/_catalog", None), ["public/base"]);
    // skopeo and podman say "no credentials" as `Basic Og==` (":"): anonymous.
    let r = client()
        .get(s.url("/v2/_catalog"))
        .header("Authorization", "Basic Og==")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(v["repositories"], json!(["public/base"]));
    let r = client()
        .get(s.url("/v2/public/base/manifests/v1"))
        .header("Authorization", "Basic Og==")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client()
        .get(s.url("/v2/team-a/app/manifests/v1"))
        .header("Authorization", "Basic Og==")
        .send()
        .unwrap();
    expect_challenge(r);
    // Pagination works over the filtered list.
    assert_eq!(catalog("/v2/_catalog?n=1", ALICE), ["public/base"]);
    assert_eq!(
        catalog("/v2/_catalog?n=5&last=public/base", ALICE),
        ["team-a/app", "team-b/app"]
    );
}

#[test]
fn without_rules_any_user_may_do_everything() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let s = setup.start("");
    let digest = push_image(&s, "any/repo", "v1", ALICE);
    assert_eq!(get(&s, "/v2/any/repo/manifests/v1", ALICE).status(), 200);
    let r = with(
        client().delete(s.url(&format!("/v2/any/repo/manifests/{digest}"))),
        ALICE,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), 202);
    expect_challenge(get(&s, "/v2/any/repo/tags/list", None));
}
