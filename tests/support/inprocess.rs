//! The real application in-process: `berth::server::Registry` built from a
//! TOML config over a temporary data dir, every layer included, driven
//! with `oneshot` (no socket, no child process).

use std::path::Path;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use serde_json::Value;
use sha2::Digest as _;
use tower::ServiceExt;

/// A registry built in-process from a TOML config over a fresh data dir.
pub struct App {
    pub router: Router,
    _registry: berth::server::Registry,
    _dir: tempfile::TempDir,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The first error code of a spec error body.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub const ADMIN: (&str, &str) = ("admin", "admin-pw");
pub const ALICE: (&str, &str) = ("alice", "alice-pw");

/// Access rules of the mount tests: alice pushes to `team-a/**` and may
/// not pull `secret/**`; admin may do anything.
pub const RULES: &str = r#"
[[access.rules]]
repositories = ["team-a/**"]
users = ["alice"]
actions = ["pull", "push"]
[[access.rules]]
repositories = ["**"]
users = ["admin"]
actions = ["pull", "push", "delete"]
"#;

impl App {
    pub fn open() -> App {
        App::with_config("", false)
    }

    /// `extra` is appended to a config whose data dir is temporary; with
    /// `auth`, an htpasswd file with ADMIN and ALICE (bcrypt cost 4) is used.
    pub fn with_config(extra: &str, auth: bool) -> App {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("data");
        let mut toml = format!(
            "[storage.filesystem]\nrootdirectory = {:?}\n[storage.delete]\nenabled = true\n",
            root.display().to_string()
        );
        if auth {
            let htpasswd = dir.path().join("htpasswd");
            for (user, password) in [ADMIN, ALICE] {
                berth::auth::htpasswd::add_user(&htpasswd, user, password, 4).expect("htpasswd");
            }
            toml.push_str(&format!(
                "[auth.htpasswd]\npath = {:?}\n",
                htpasswd.display().to_string()
            ));
        }
        toml.push_str(extra);
        let path = dir.path().join("berth.toml");
        std::fs::write(&path, toml).expect("config");
        let config = berth::config::Config::load(Some(Path::new(&path)), Vec::new()).expect("load");
        let registry = berth::server::Registry::new(&config).expect("registry");
        App {
            router: registry.router(),
            _registry: registry,
            _dir: dir,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        user: Option<(&str, &str)>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some((u, p)) = user {
            req = req.header(header::AUTHORIZATION, basic((u, p)));
        }
        let req = req
            .header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .expect("request");
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.expect("body").to_bytes().to_vec(),
        }
    }

    pub async fn get(&self, uri: &str, user: Option<(&str, &str)>) -> Answer {
        self.send(Method::GET, uri, user, Vec::new()).await
    }

    /// Pushes `data` as a blob of `repo` in one request; returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8], user: Option<(&str, &str)>) -> String {
        let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
        let uri = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
        let a = self.send(Method::POST, &uri, user, data.to_vec()).await;
        assert_eq!(
            a.status,
            StatusCode::CREATED,
            "push to {repo}: {:?}",
            a.json()
        );
        digest
    }
}

/// `Authorization: Basic` for `user`.
pub fn basic((user, password): (&str, &str)) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}")
}
