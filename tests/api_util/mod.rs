//! Helpers shared by the black-box API tests (`api_blobs`, `api_manifests`,
//! `api_misc`): a client bound to one running registry, responses read
//! eagerly, error-body assertions, blob and manifest pushers, and a raw
//! HTTP/1.1 client for paths an URL library would normalise (`..`, `%2e`).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::{self, Registry};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// The digest of the two bytes `{}` (the OCI empty descriptor).
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// What a modern client (docker, skopeo) sends when pulling a manifest.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    common::sha256(data)
}

/// `sha512:<hex>` of `data`.
pub fn sha512(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// Deterministic pseudo-random bytes (xorshift), so blobs differ per seed.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

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
        let v: Value = match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(_) => return vec![],
        };
        v["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["code"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
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
        Api {
            reg,
            c: common::client(),
        }
    }

    /// An absolute URL for a path (`/v2/...`) or a `Location` header value,
    /// which may be absolute or relative to the base URL.
    pub fn url(&self, path_or_location: &str) -> String {
        let l = path_or_location;
        if l.starts_with("http://") || l.starts_with("https://") {
            l.to_string()
        } else if l.starts_with('/') {
            self.reg.url(l)
        } else {
            format!("{}/{}", self.reg.base, l)
        }
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
        let digest = sha256(data);
        let loc = self.start_upload(repo);
        self.close_upload(&loc, &digest, data).expect(201);
        digest
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
        let layer = bytes(seed, 300 + seed as usize % 97);
        let cd = self.push_blob(repo, config.as_bytes());
        let ld = self.push_blob(repo, &layer);
        serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": ld, "size": layer.len()}],
            "annotations": {"seed": seed.to_string()}
        }))
        .unwrap()
    }

    /// Like `oci_image`, but a Docker schema 2 manifest.
    pub fn docker_image(&self, repo: &str, seed: u64) -> Vec<u8> {
        let config = format!(r#"{{"architecture":"arm64","os":"linux","docker":{seed}}}"#);
        let layer = bytes(seed ^ 0xd0c, 200 + seed as usize % 89);
        let cd = self.push_blob(repo, config.as_bytes());
        let ld = self.push_blob(repo, &layer);
        serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "digest": cd, "size": config.len()},
            "layers": [{"mediaType": DOCKER_LAYER, "digest": ld, "size": layer.len()}]
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

/// Appends `q` to `url`'s query (`?` or `&`).
pub fn with_query(url: &str, q: &str) -> String {
    if url.contains('?') {
        format!("{url}&{q}")
    } else {
        format!("{url}?{q}")
    }
}

/// The target of a `Link: <url>; rel="next"` header (a path, or an absolute URL).
pub fn parse_link_next(link: &str) -> String {
    let open = link
        .find('<')
        .unwrap_or_else(|| panic!("Link without <: {link}"));
    let close = link
        .find('>')
        .unwrap_or_else(|| panic!("Link without >: {link}"));
    assert!(
        link[close..].replace(' ', "").contains(";rel=\"next\""),
        "Link is not rel=\"next\": {link}"
    );
    link[open + 1..close].to_string()
}

/// Query parameters of a URL, percent-decoded.
pub fn query_params(url: &str) -> Vec<(String, String)> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A response from `raw`.
#[derive(Debug)]
pub struct RawResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn error_codes(&self) -> Vec<String> {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        v["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["code"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Sends one HTTP/1.1 request with `target` exactly as given (no URL
/// normalisation), `Connection: close`, and reads the response.
pub fn raw(
    reg: &Registry,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawResp {
    let mut s = TcpStream::connect(("127.0.0.1", reg.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        reg.host(),
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write request");
    s.write_all(body).expect("write body");
    let mut buf = vec![];
    s.read_to_end(&mut buf).expect("read response");
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(&buf)));
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    RawResp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size_str = String::from_utf8_lossy(&b[..nl]);
        let size =
            usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 || b.len() < nl + 2 + size {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[(nl + 4 + size).min(b.len())..];
    }
    out
}

/// The path and query of a `Location` (drops scheme and authority), so it
/// can be replayed against another server on the same data dir.
pub fn path_of(location: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(scheme) {
            return rest
                .find('/')
                .map(|i| rest[i..].to_string())
                .unwrap_or_else(|| "/".into());
        }
    }
    location.to_string()
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

/// Sends `body` with `Transfer-Encoding: chunked` over a raw socket, keeps
/// going if the server stops reading (ignoring write errors), then reads
/// the response. `Err` when no response could be read (e.g. a reset).
pub fn raw_chunked(
    reg: &Registry,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<RawResp, String> {
    let mut s = TcpStream::connect(("127.0.0.1", reg.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n",
        reg.host()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("write headers: {e}"))?;
    for chunk in body.chunks(64 * 1024) {
        let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
        c.extend_from_slice(chunk);
        c.extend_from_slice(b"\r\n");
        if s.write_all(&c).is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut buf = vec![];
    if let Err(e) = s.read_to_end(&mut buf) {
        if buf.is_empty() {
            return Err(format!("reading the response failed: {e}"));
        }
    }
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no response head in {:?}", String::from_utf8_lossy(&buf)))?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok(RawResp {
        status,
        headers,
        body: buf[end + 4..].to_vec(),
    })
}
