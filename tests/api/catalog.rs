//! Black-box tests of `_catalog`: lexical order and pagination, also with
//! names that sort differently by byte and by path component, against the
//! real binary.

use crate::support;

use reqwest::Method;
use serde_json::Value;
use support::*;

#[test]
fn catalog_is_lexical_and_paginates() {
    let api = Api::start();
    let repos = ["alpha", "beta/one", "beta/two", "gamma", "team/app/web"];
    for (i, r) in ["gamma", "team/app/web", "alpha", "beta/two", "beta/one"]
        .iter()
        .enumerate()
    {
        api.push_oci_image(r, "v1", 100 + i as u64);
    }
    let r = api.get("/v2/_catalog");
    r.expect(200).expect_api_version();
    assert_eq!(string_list(&r.json(), "repositories"), repos);
    assert!(r.header("link").is_none(), "{r}");

    let pages = api.pages("/v2/_catalog?n=2");
    let lists: Vec<Vec<String>> = pages
        .iter()
        .map(|(v, _)| string_list(v, "repositories"))
        .collect();
    assert_eq!(
        lists,
        [
            vec!["alpha", "beta/one"],
            vec!["beta/two", "gamma"],
            vec!["team/app/web"]
        ]
    );
    for (i, (_, link)) in pages.iter().enumerate() {
        if i + 1 < pages.len() {
            let target = parse_link_next(link.as_deref().expect("Link on a non-last page"));
            assert_link_path(&target, "/v2/_catalog");
            assert_eq!(param(&target, "n").as_deref(), Some("2"));
            assert_eq!(param(&target, "last"), lists[i].last().cloned());
        } else {
            assert!(link.is_none(), "Link on the last page: {link:?}");
        }
    }

    let r = api.get("/v2/_catalog?n=5");
    assert_eq!(string_list(&r.expect(200).json(), "repositories"), repos);
    assert!(
        r.header("link").is_none(),
        "Link although no more repositories exist: {r}"
    );

    let r = api.get("/v2/_catalog?n=10&last=beta%2Fone");
    r.expect(200);
    assert_eq!(
        string_list(&r.json(), "repositories"),
        ["beta/two", "gamma", "team/app/web"]
    );
    let r = api.get("/v2/_catalog?last=gamma");
    r.expect(200);
    assert_eq!(string_list(&r.json(), "repositories"), ["team/app/web"]);
}

#[test]
fn empty_catalog_is_an_empty_list() {
    let api = Api::start();
    let r = api.get("/v2/_catalog");
    r.expect(200);
    assert!(string_list(&r.json(), "repositories").is_empty(), "{r}");
    assert!(r.header("link").is_none());
}

/// registry:2 orders the catalog by path component; a byte-wise sort is
/// also lexical. Either way, pages must add up to the whole list.
#[test]
fn catalog_pages_add_up_with_tricky_names() {
    let api = Api::start();
    let names = [
        "a", "a-b", "a.c", "a/b", "a/b/c", "a0", "ab", "a/b-c", "a/b.d",
    ];
    let mut m = None;
    for name in names {
        let body = m.get_or_insert_with(|| api.oci_image(name, 900)).clone();
        // Same blobs in every repository: mount them, then push the manifest.
        let v: Value = serde_json::from_slice(&body).unwrap();
        for d in [&v["config"]["digest"], &v["layers"][0]["digest"]] {
            let d = d.as_str().unwrap();
            if name != "a" {
                api.send(api.req(
                    Method::POST,
                    &format!("/v2/{name}/blobs/uploads/?mount={d}&from=a"),
                ))
                .expect(201);
            }
        }
        api.push_manifest(name, "v1", OCI_MANIFEST, &body);
    }
    let full = string_list(&api.get("/v2/_catalog").expect(200).json(), "repositories");
    let mut bytewise: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    bytewise.sort();
    let mut by_component = bytewise.clone();
    by_component.sort_by(|a, b| a.split('/').cmp(b.split('/')));
    assert!(
        full == bytewise || full == by_component,
        "catalog not in lexical order: {full:?}"
    );
    for n in [1, 2, 4] {
        let pages = api.pages(&format!("/v2/_catalog?n={n}"));
        let joined: Vec<String> = pages
            .iter()
            .flat_map(|(v, _)| string_list(v, "repositories"))
            .collect();
        assert_eq!(joined, full, "n={n}: pages do not add up");
    }
}
