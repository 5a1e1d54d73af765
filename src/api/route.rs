//! Parses a `/v2/...` request path into a typed [`Route`]. Repository names
//! contain `/`, so the endpoint is recognised from the path's end.

use super::error::ApiError;
use crate::oci::ErrorCode;
use crate::oci::{Digest, Reference, RepoName, Tag};

#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    Base,
    Catalog,
    Tags(RepoName),
    Manifest(RepoName, Reference),
    /// A manifest reference that is neither a digest nor a valid tag: no
    /// manifest can be found under it (404) nor pushed to it (TAG_INVALID).
    ManifestBadTag(RepoName, String),
    Blob(RepoName, Digest),
    UploadStart(RepoName),
    Upload(RepoName, String),
    Referrers(RepoName, Digest),
}

fn name(parts: &[&str]) -> Result<RepoName, ApiError> {
    parts.join("/").parse().map_err(ApiError::name_invalid)
}

fn digest(s: &str) -> Result<Digest, ApiError> {
    s.parse()
        .map_err(|e: crate::oci::digest::DigestError| ApiError::digest_invalid(e.to_string()))
}

impl Route {
    pub fn parse(path: &str) -> Result<Route, ApiError> {
        let rest = match path.strip_prefix("/v2") {
            Some("") | Some("/") => return Ok(Route::Base),
            Some(rest) if rest.starts_with('/') => &rest[1..],
            _ => return Err(ApiError::not_found()),
        };
        if rest == "_catalog" {
            return Ok(Route::Catalog);
        }
        let parts: Vec<&str> = rest.split('/').collect();
        let n = parts.len();
        let tail = |k: usize| if n > k { &parts[n - k..] } else { &[][..] };
        let head = |k: usize| &parts[..n.saturating_sub(k)];
        let route = match (tail(3), tail(2)) {
            (["blobs", "uploads", ""], _) if n > 3 => Route::UploadStart(name(head(3))?),
            (["blobs", "uploads", id], _) if n > 3 => {
                let id = uuid::Uuid::parse_str(id)
                    .map_err(|_| ApiError::new(ErrorCode::BlobUploadUnknown))?;
                Route::Upload(name(head(3))?, id.hyphenated().to_string())
            }
            (_, ["blobs", "uploads"]) if n > 2 => Route::UploadStart(name(head(2))?),
            (_, ["tags", "list"]) if n > 2 => Route::Tags(name(head(2))?),
            (_, ["manifests", r]) if n > 2 => {
                let repo = name(head(2))?;
                if r.contains(':') {
                    Route::Manifest(repo, Reference::Digest(digest(r)?))
                } else {
                    match r.parse::<Tag>() {
                        Ok(t) => Route::Manifest(repo, Reference::Tag(t)),
                        Err(why) => Route::ManifestBadTag(repo, why),
                    }
                }
            }
            (_, ["blobs", d]) if n > 2 => Route::Blob(name(head(2))?, digest(d)?),
            (_, ["referrers", d]) if n > 2 => Route::Referrers(name(head(2))?, digest(d)?),
            _ => return Err(ApiError::not_found()),
        };
        Ok(route)
    }

    /// What an error on this route is about, as the `detail` of an error
    /// that has none (shaped like registry:2's). Docker reports a missing
    /// manifest as "not found" only when its error carries a detail.
    pub fn detail(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Route::Base | Route::Catalog => serde_json::Value::Null,
            Route::Tags(n) | Route::UploadStart(n) => json!({ "name": n.as_str() }),
            Route::Manifest(n, Reference::Tag(t)) => {
                json!({ "Name": n.as_str(), "Tag": t.as_str() })
            }
            Route::ManifestBadTag(n, _) => json!({ "Name": n.as_str() }),
            Route::Manifest(n, Reference::Digest(d)) => {
                json!({ "Name": n.as_str(), "Revision": d.to_string() })
            }
            Route::Blob(_, d) | Route::Referrers(_, d) => json!(d.to_string()),
            Route::Upload(n, id) => json!({ "name": n.as_str(), "uuid": id }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/v2/").unwrap(), Route::Base);
        assert_eq!(Route::parse("/v2/_catalog").unwrap(), Route::Catalog);
        assert!(
            matches!(Route::parse("/v2/a/b/tags/list").unwrap(), Route::Tags(n) if n.as_str() == "a/b")
        );
        assert!(matches!(
            Route::parse("/v2/a/manifests/manifests/latest").unwrap(),
            Route::Manifest(n, Reference::Tag(_)) if n.as_str() == "a/manifests"
        ));
        assert!(matches!(
            Route::parse(&format!("/v2/a/blobs/{D}")).unwrap(),
            Route::Blob(..)
        ));
        assert!(matches!(
            Route::parse("/v2/a/blobs/uploads/").unwrap(),
            Route::UploadStart(_)
        ));
        assert!(matches!(
            Route::parse("/v2/a/blobs/uploads/0b7e4c1a-8a55-4b2e-9a53-b8b3d4d1f3a1").unwrap(),
            Route::Upload(..)
        ));
        assert_eq!(
            Route::parse("/v2/A/tags/list").unwrap_err().code.as_str(),
            "NAME_INVALID"
        );
        assert_eq!(
            Route::parse("/v2/a/../b/tags/list")
                .unwrap_err()
                .code
                .as_str(),
            "NAME_INVALID"
        );
        assert_eq!(
            Route::parse("/v2/%2e%2e/tags/list")
                .unwrap_err()
                .code
                .as_str(),
            "NAME_INVALID"
        );
        assert_eq!(
            Route::parse("/v2/a/blobs/uploads/..")
                .unwrap_err()
                .code
                .as_str(),
            "BLOB_UPLOAD_UNKNOWN"
        );
        assert!(matches!(
            Route::parse("/v2/a/manifests/.x").unwrap(),
            Route::ManifestBadTag(..)
        ));
        assert_eq!(
            Route::parse("/v2/a/blobs/sha256:00")
                .unwrap_err()
                .code
                .as_str(),
            "DIGEST_INVALID"
        );
        assert_eq!(
            Route::parse("/v2/tags/list").unwrap_err().code.as_str(),
            "NOT_FOUND"
        );
        assert_eq!(Route::parse("/v3/").unwrap_err().code.as_str(), "NOT_FOUND");
    }
}
