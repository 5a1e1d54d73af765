//! Black-box tests of `tags/list`: lexical order, pagination with `n`,
//! `last` and `Link`, and bad pagination numbers, against the real binary.

use crate::support;

use support::*;

const TAGS: [&str; 7] = ["1.0", "10", "2", "alpha", "beta", "latest", "v1.2_rc-1"];

fn push_tags(api: &Api, repo: &str) {
    let m = api.oci_image(repo, 7);
    // Pushed out of order on purpose.
    for t in ["latest", "beta", "2", "v1.2_rc-1", "alpha", "10", "1.0"] {
        api.push_manifest(repo, t, OCI_MANIFEST, &m);
    }
}

#[test]
fn tags_list_is_lexical_and_complete() {
    let api = Api::start();
    push_tags(&api, "lib/tags");
    let r = api.get("/v2/lib/tags/tags/list");
    r.expect(200).expect_api_version();
    assert!(r.header("link").is_none(), "Link on a complete list: {r}");
    let v = r.json();
    assert_eq!(v["name"], "lib/tags");
    assert_eq!(string_list(&v, "tags"), TAGS);
}

#[test]
fn tags_list_paginates_with_n_last_and_link() {
    let api = Api::start();
    push_tags(&api, "lib/pages");
    let pages = api.pages("/v2/lib/pages/tags/list?n=2");
    let lists: Vec<Vec<String>> = pages.iter().map(|(v, _)| string_list(v, "tags")).collect();
    assert_eq!(
        lists,
        [
            vec!["1.0", "10"],
            vec!["2", "alpha"],
            vec!["beta", "latest"],
            vec!["v1.2_rc-1"]
        ]
    );
    for (i, (v, link)) in pages.iter().enumerate() {
        assert_eq!(v["name"], "lib/pages");
        if i + 1 < pages.len() {
            let target = parse_link_next(link.as_deref().expect("Link on a non-last page"));
            assert_link_path(&target, "/v2/lib/pages/tags/list");
            assert_eq!(param(&target, "n").as_deref(), Some("2"), "{target}");
            assert_eq!(param(&target, "last"), lists[i].last().cloned(), "{target}");
        } else {
            assert!(link.is_none(), "Link on the last page: {link:?}");
        }
    }

    let r = api.get("/v2/lib/pages/tags/list?last=beta");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "tags"), ["latest", "v1.2_rc-1"]);
    assert!(r.header("link").is_none(), "{r}");

    let r = api.get("/v2/lib/pages/tags/list?n=3&last=2");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "tags"), ["alpha", "beta", "latest"]);
    let target = parse_link_next(&r.must_header("link"));
    assert_eq!(param(&target, "last").as_deref(), Some("latest"));

    // Exactly n remain: this is the last page, nothing more exists.
    let r = api.get("/v2/lib/pages/tags/list?n=7");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "tags"), TAGS);
    assert!(
        r.header("link").is_none(),
        "Link although no more tags exist: {r}"
    );
    let r = api.get("/v2/lib/pages/tags/list?n=5&last=10");
    r.expect(200);
    assert_eq!(
        string_list(&r.json(), "tags"),
        ["2", "alpha", "beta", "latest", "v1.2_rc-1"]
    );
    assert!(
        r.header("link").is_none(),
        "Link although no more tags exist: {r}"
    );

    let r = api.get("/v2/lib/pages/tags/list?n=100");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "tags"), TAGS);
    assert!(r.header("link").is_none(), "{r}");

    let r = api.get("/v2/lib/pages/tags/list?n=2&last=v1.2_rc-1");
    r.expect(200);
    assert!(string_list(&r.json(), "tags").is_empty());
    assert!(r.header("link").is_none(), "{r}");
}

#[test]
fn tags_list_n_zero_is_empty_without_link() {
    // Spec: "If n is zero, this endpoint MUST return an empty list, and MUST
    // NOT include a Link header."
    let api = Api::start();
    push_tags(&api, "lib/zero");
    let r = api.get("/v2/lib/zero/tags/list?n=0");
    r.expect(200);
    assert!(string_list(&r.json(), "tags").is_empty(), "{r}");
    assert!(r.header("link").is_none(), "{r}");
}

#[test]
fn tags_list_of_unknown_repository_is_404_name_unknown() {
    let api = Api::start();
    api.get("/v2/lib/never/tags/list")
        .expect_error(404, "NAME_UNKNOWN");
    api.get("/v2/lib/never/tags/list?n=2")
        .expect_error(404, "NAME_UNKNOWN");
}

#[test]
fn tags_list_last_need_not_be_an_existing_tag() {
    let api = Api::start();
    push_tags(&api, "lib/gap");
    let r = api.get("/v2/lib/gap/tags/list?last=b");
    assert_eq!(
        string_list(&r.expect(200).json(), "tags"),
        ["beta", "latest", "v1.2_rc-1"]
    );
    // '.' sorts before '0': 1.0 < 1.5 < 10.
    let r = api.get("/v2/lib/gap/tags/list?n=1&last=1.5");
    assert_eq!(string_list(&r.expect(200).json(), "tags"), ["10"]);
    assert!(r.header("link").is_some(), "more remain: {r}");
}

#[test]
fn bad_pagination_numbers_are_400() {
    let api = Api::start();
    push_tags(&api, "lib/badn");
    for q in ["n=abc", "n=-1"] {
        let r = api.get(&format!("/v2/lib/badn/tags/list?{q}"));
        r.expect(400).expect_api_version();
        assert!(!r.error_codes().is_empty(), "{r}");
        let r = api.get(&format!("/v2/_catalog?{q}"));
        r.expect(400);
        assert!(!r.error_codes().is_empty(), "{r}");
    }
}
