//! The route parser: never panics, and whatever it returns is valid.

use std::str::FromStr;

use berth::api::Route;
use berth::oci::{Digest, Reference, RepoName, Tag};
use proptest::prelude::*;

use crate::cases;

const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const UUID: &str = "0b7e4c1a-8a55-4b2e-9a53-b8b3d4d1f3a1";

/// A path segment as a client (or an attacker) might send it.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "v2", "blobs", "uploads", "manifests", "tags", "list", "referrers", "_catalog",
            "", ".", "..", "%2e%2e", "%2F", "library", "a", "a.b", "a__b", "A", "latest",
            ".x", D, "sha256:00", "sha512:zz", UUID, "0B7E4C1A8A554B2E9A53B8B3D4D1F3A1",
            "{0b7e4c1a-8a55-4b2e-9a53-b8b3d4d1f3a1}", "urn:uuid:0b7e4c1a-8a55-4b2e-9a53-b8b3d4d1f3a1",
        ]).prop_map(str::to_string),
        2 => "[a-z0-9._-]{1,12}",
        1 => "\\PC{0,8}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::collection::vec(segment(), 0..9).prop_map(|s| format!("/v2/{}", s.join("/"))),
        1 => proptest::collection::vec(segment(), 0..9).prop_map(|s| s.join("/")),
        1 => any::<String>(),
    ]
}

fn valid_name() -> impl Strategy<Value = String> {
    "[a-z0-9]{1,8}((\\.|_|__|-{1,2})[a-z0-9]{1,8}){0,2}(/([a-z0-9]{1,8}|blobs|uploads|manifests|tags|list|referrers)){0,4}"
}

proptest! {
    #![proptest_config(cases(4000, "proptest-regressions/fuzz/routes.txt"))]

    #[test]
    fn every_route_the_parser_returns_names_a_valid_repository(p in path()) {
        let Ok(route) = Route::parse(&p) else { return Ok(()) };
        let repo_ok = |n: &RepoName| RepoName::from_str(n.as_str()).as_ref() == Ok(n);
        let ok = match &route {
            Route::Base | Route::Catalog => true,
            Route::Tags(n) | Route::UploadStart(n) | Route::ManifestBadTag(n, _) => repo_ok(n),
            Route::Manifest(n, Reference::Tag(t)) => {
                repo_ok(n) && Tag::from_str(t.as_str()).is_ok()
            }
            Route::Manifest(n, Reference::Digest(d)) | Route::Blob(n, d) | Route::Referrers(n, d) => {
                repo_ok(n) && Digest::from_str(&d.to_string()).as_ref() == Ok(d)
            }
            Route::Upload(n, id) => {
                repo_ok(n)
                    && uuid::Uuid::parse_str(id).is_ok_and(|u| u.hyphenated().to_string() == *id)
            }
        };
        prop_assert!(ok, "{:?} -> {:?}", p, route);
        // A tag is one path component, never `.` or `..` (though it may
        // contain `..`, as `0..` does: the spec's grammar allows it).
        if let Route::Manifest(_, Reference::Tag(t)) = &route {
            let t = t.as_str();
            prop_assert!(t != "." && t != ".." && !t.contains('/'), "{:?} -> {:?}", p, route);
        }
    }

    #[test]
    fn every_endpoint_of_a_valid_name_parses_back_to_that_name(
        name in valid_name(),
        tag in "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}",
        which in 0..6u8,
    ) {
        let n: RepoName = name.parse().unwrap();
        let d: Digest = D.parse().unwrap();
        let (p, want) = match which {
            0 => (format!("/v2/{name}/tags/list"), Route::Tags(n)),
            1 => (format!("/v2/{name}/manifests/{tag}"), Route::Manifest(n, Reference::Tag(tag.parse().unwrap()))),
            2 => (format!("/v2/{name}/manifests/{D}"), Route::Manifest(n, Reference::Digest(d))),
            3 => (format!("/v2/{name}/blobs/{D}"), Route::Blob(n, d)),
            4 => (format!("/v2/{name}/blobs/uploads/"), Route::UploadStart(n)),
            _ => (format!("/v2/{name}/blobs/uploads/{UUID}"), Route::Upload(n, UUID.into())),
        };
        prop_assert_eq!(Route::parse(&p).ok(), Some(want), "{}", p);
    }
}
