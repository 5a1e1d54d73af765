//! The black-box API tests' client: a running registry with a client bound
//! to it, responses read eagerly, assertions on the spec's error bodies, and
//! upload, manifest and image helpers built on them.

use reqwest::header::HeaderMap;
use reqwest::Method;
use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::content::*;
use super::harness::Registry;
use super::http::{absolute, client, parse_link_next, with_query};
use super::push::try_push_blob;

/// A response read to the end.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// `METHOD url`, for failure messages.
    pub what: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The header, or a panic naming the request.
    pub fn must_header(&self, name: &str) -> String {
        self.header(name)
            .unwrap_or_else(|| panic!("{}: no {name} header in {self}", self.what))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {self}", self.what))
    }

    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(
            self.status, status,
            "{}: unexpected status: {self}",
            self.what
        );
        self
    }

    /// The `code`s of an OCI error body (empty if the body is not one).
    pub fn error_codes(&self) -> Vec<String> {
        super::http::error_codes(&self.body)
    }

    /// Asserts `status`, the spec's JSON error shape, that `code` is among the
    /// codes, and the API version header (which must be on errors too).
    pub fn expect_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            self.status, status,
            "{}: unexpected status: {self}",
            self.what
        );
        let v = self.json();
        let errors = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: no \"errors\" array: {self}", self.what));
        assert!(!errors.is_empty(), "{}: empty errors: {self}", self.what);
        for e in errors {
            let c = e["code"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: error without code: {self}", self.what));
            assert!(
                !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'),
                "{}: code {c:?} is not upper case with underscores",
                self.what
            );
            assert!(
                e.get("message").is_none_or(|m| m.is_string()),
                "{}: message is not a string: {self}",
                self.what
            );
        }
        assert!(
            self.error_codes().iter().any(|c| c == code),
            "{}: expected error code {code}: {self}",
            self.what
        );
        self.expect_api_version();
        self
    }

    pub fn expect_api_version(&self) -> &Self {
        assert_eq!(
            self.header("docker-distribution-api-version").as_deref(),
            Some("registry/2.0"),
            "{}: missing Docker-Distribution-API-Version: {self}",
            self.what
        );
        self
    }
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut body = self.text();
        if body.len() > 600 {
            let mut end = 600;
            while !body.is_char_boundary(end) {
                end -= 1;
            }
            body.truncate(end);
            body.push('…');
        }
        write!(f, "{} {:?} body={body:?}", self.status, self.headers)
    }
}

/// A running registry and a client talking to it.
pub struct Api {
    pub reg: Registry,
    pub c: reqwest::blocking::Client,
}

impl Api {
    /// A fresh registry with delete enabled.
    pub fn start() -> Api {
        Api::on(Registry::start())
    }

    pub fn start_with(env: &[(&str, &str)]) -> Api {
        Api::on(Registry::start_with(env))
    }

    pub fn on(reg: Registry) -> Api {
        Api { reg, c: client() }
    }

    /// An absolute URL for a path (`/v2/...`) or a `Location` header value,
    /// which may be absolute or relative to the base URL.
    pub fn url(&self, path_or_location: &str) -> String {
        absolute(&self.reg.base, path_or_location)
    }

    pub fn req(&self, method: Method, path_or_location: &str) -> reqwest::blocking::RequestBuilder {
        self.c.request(method, self.url(path_or_location))
    }

    /// Sends and reads the whole response.
    pub fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Resp {
        let req = rb.build().expect("build request");
        let what = format!("{} {}", req.method(), req.url());
        let resp = self
            .c
            .execute(req)
            .unwrap_or_else(|e| panic!("{what}: request failed: {e:?}"));
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .unwrap_or_else(|e| panic!("{what}: reading body failed: {e:?}"))
            .to_vec();
        Resp {
            status,
            headers,
            body,
            what,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send(self.req(Method::GET, path))
    }

    pub fn head(&self, path: &str) -> Resp {
        self.send(self.req(Method::HEAD, path))
    }

    pub fn delete(&self, path: &str) -> Resp {
        self.send(self.req(Method::DELETE, path))
    }

    /// GET a manifest with the Accept header of a modern client.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Resp {
        self.send(
            self.req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
                .header("Accept", ACCEPT_ALL),
        )
    }

    pub fn head_manifest(&self, repo: &str, reference: &str) -> Resp {
        self.send(
            self.req(Method::HEAD, &format!("/v2/{repo}/manifests/{reference}"))
                .header("Accept", ACCEPT_ALL),
        )
    }

    /// POST /v2/<repo>/blobs/uploads/ → the upload Location (asserts 202).
    pub fn start_upload(&self, repo: &str) -> String {
        let r = self.send(
            self.req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
                .header("Content-Length", "0"),
        );
        r.expect(202);
        r.must_header("location")
    }

    /// PATCH a chunk (with a `Content-Range` when `range` is given).
    pub fn patch(&self, location: &str, data: &[u8], range: Option<(u64, u64)>) -> Resp {
        let mut rb = self
            .req(Method::PATCH, location)
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec());
        if let Some((s, e)) = range {
            rb = rb.header("Content-Range", format!("{s}-{e}"));
        }
        self.send(rb)
    }

    /// PUT `<location>?digest=<digest>` with an optional final chunk.
    pub fn close_upload(&self, location: &str, digest: &str, last: &[u8]) -> Resp {
        let url = with_query(&self.url(location), &format!("digest={digest}"));
        self.send(
            self.c
                .put(url)
                .header("Content-Type", "application/octet-stream")
                .body(last.to_vec()),
        )
    }

    /// Pushes a blob with POST then PUT and returns its sha256 digest.
    pub fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        try_push_blob(&self.c, &self.reg.base, repo, data).unwrap_or_else(|e| panic!("{e}"))
    }

    /// PUT a manifest with the given Content-Type.
    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) -> Resp {
        self.send(
            self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
                .header("Content-Type", media_type)
                .body(body.to_vec()),
        )
    }

    /// PUT a manifest, assert 201, return the digest of its bytes.
    pub fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let r = self.put_manifest(repo, reference, media_type, body);
        r.expect(201);
        sha256(body)
    }

    /// Pushes a config and one layer (both unique to `seed`) and returns the
    /// bytes of an OCI image manifest referencing them (not yet pushed).
    pub fn oci_image(&self, repo: &str, seed: u64) -> Vec<u8> {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
        let layer = noise(300 + seed as usize % 97, seed);
        let cd = self.push_blob(repo, config.as_bytes());
        let ld = self.push_blob(repo, &layer);
        serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": ld, "size": layer.len()}],
            "annotations": {"seed": seed.to_string()}
        }))
        .unwrap()
    }

    /// Like `oci_image`, but a Docker schema 2 manifest.
    pub fn docker_image(&self, repo: &str, seed: u64) -> Vec<u8> {
        let config = format!(r#"{{"architecture":"arm64","os":"linux","docker":{seed}}}"#);
        let layer = noise(200 + seed as usize % 89, seed ^ 0xd0c);
        let cd = self.push_blob(repo, config.as_bytes());
        let ld = self.push_blob(repo, &layer);
        serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": cd, "size": config.len()},
            "layers": [{"mediaType": DOCKER_LAYER_GZIP, "digest": ld, "size": layer.len()}]
        }))
        .unwrap()
    }

    /// Pushes the `{}` blob and returns the bytes of an OCI artifact manifest
    /// (empty config, one layer, `artifactType`, optional `subject`).
    pub fn artifact(
        &self,
        repo: &str,
        artifact_type: &str,
        subject: Option<(&str, usize)>,
        annotations: Value,
    ) -> Vec<u8> {
        assert_eq!(self.push_blob(repo, b"{}"), EMPTY_DIGEST);
        let layer = format!("payload of {artifact_type} {annotations}");
        let ld = self.push_blob(repo, layer.as_bytes());
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2},
            "layers": [{"mediaType": "application/octet-stream", "digest": ld, "size": layer.len()}],
        });
        if let Some((d, size)) = subject {
            m["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": d, "size": size});
        }
        if !annotations.is_null() {
            m["annotations"] = annotations;
        }
        serde_json::to_vec(&m).unwrap()
    }

    /// Pushes an OCI image manifest by tag and returns (bytes, digest).
    pub fn push_oci_image(&self, repo: &str, tag: &str, seed: u64) -> (Vec<u8>, String) {
        let m = self.oci_image(repo, seed);
        let d = self.push_manifest(repo, tag, OCI_MANIFEST, &m);
        (m, d)
    }

    /// GET a list endpoint and follow `Link: <...>; rel="next"` to the end;
    /// returns every page's JSON and Link header.
    pub fn pages(&self, first: &str) -> Vec<(Value, Option<String>)> {
        let mut out = vec![];
        let mut next = Some(first.to_string());
        while let Some(path) = next.take() {
            assert!(out.len() < 100, "pagination does not end");
            let r = self.get(&path);
            r.expect(200);
            let link = r.header("link");
            if let Some(l) = &link {
                next = Some(parse_link_next(l));
            }
            out.push((r.json(), link));
        }
        out
    }
}

/// The number after the dash in an upload `Range: 0-<end>` header.
pub fn range_end(r: &Resp) -> u64 {
    let v = r.must_header("range");
    let (start, end) = v
        .split_once('-')
        .unwrap_or_else(|| panic!("{}: bad Range {v:?}", r.what));
    assert_eq!(start, "0", "{}: Range must start at 0: {v:?}", r.what);
    end.parse()
        .unwrap_or_else(|_| panic!("{}: bad Range {v:?}", r.what))
}

/// GET the referrers of `digest` (with `query`), asserting the index
/// shape; the descriptors by digest.
pub fn referrers(
    api: &Api,
    repo: &str,
    digest: &str,
    query: &str,
) -> (Resp, BTreeMap<String, Value>) {
    let r = api.get(&format!("/v2/{repo}/referrers/{digest}{query}"));
    r.expect(200).expect_api_version();
    let ct = r.must_header("content-type");
    assert!(ct.starts_with(OCI_INDEX), "referrers Content-Type {ct:?}");
    let v = r.json();
    assert_eq!(v["schemaVersion"], 2, "{v}");
    assert_eq!(v["mediaType"], OCI_INDEX, "{v}");
    let list = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("referrers without manifests array: {v}"));
    let by_digest = list
        .iter()
        .map(|d| (d["digest"].as_str().expect("digest").to_string(), d.clone()))
        .collect::<BTreeMap<_, _>>();
    assert_eq!(by_digest.len(), list.len(), "duplicate descriptors: {v}");
    (r, by_digest)
}

/// Asserts the descriptor of `body` among `found`.
pub fn assert_descriptor(
    found: &BTreeMap<String, Value>,
    body: &[u8],
    media_type: &str,
    artifact_type: Option<&str>,
    annotations: Value,
) {
    let d = sha256(body);
    let desc = found
        .get(&d)
        .unwrap_or_else(|| panic!("{d} not among referrers {found:?}"));
    assert_eq!(desc["mediaType"], media_type, "{desc}");
    assert_eq!(desc["size"], body.len(), "{desc}");
    match artifact_type {
        Some(t) => assert_eq!(desc["artifactType"], t, "{desc}"),
        None => assert!(desc.get("artifactType").is_none(), "{desc}"),
    }
    assert_eq!(desc["annotations"], annotations, "{desc}");
}
