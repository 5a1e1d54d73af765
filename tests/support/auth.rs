//! For the authentication tests: a temporary directory with an htpasswd
//! file, a config and the data, a server on it whose log is kept, requests
//! with Basic credentials, and the assertions on challenges and errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::content::{sha256, OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST};
use super::harness::{serve_command, Registry};
use super::http::client;

pub const REALM: &str = "Berth test realm";

/// User name and password, or none.
pub type Creds<'a> = Option<(&'a str, &'a str)>;

pub const ALICE: Creds = Some(("alice", "alice-secret"));

/// A temporary directory holding the htpasswd file, a config and the data.
pub struct Setup {
    pub dir: tempfile::TempDir,
}

/// The `berth` binary.
pub fn berth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn htpasswd(&self) -> PathBuf {
        self.dir.path().join("auth/htpasswd")
    }

    /// `berth htpasswd add` with a cheap bcrypt cost.
    pub fn add_user(&self, user: &str, password: &str) {
        add_user_cost(&self.htpasswd(), user, password, 4);
    }

    /// Writes a config with `[auth.htpasswd]` plus `extra`.
    pub fn config(&self, extra: &str) -> PathBuf {
        let p = self.dir.path().join("berth.toml");
        let text = format!(
            "[auth.htpasswd]\nrealm = \"{REALM}\"\npath = \"{}\"\n\n{extra}\n",
            self.htpasswd().display()
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `berth serve` on this directory's data, with delete enabled, no
    /// bootstrap user from the test's own environment, and `env` on top.
    pub fn command(&self, config: Option<&Path>, env: &[(&str, &str)]) -> Command {
        let config_args = match config {
            Some(c) => vec!["--config", c.to_str().expect("UTF-8 config path")],
            None => vec![],
        };
        let mut cmd = serve_command(
            &self.data(),
            &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")],
            &config_args,
        );
        cmd.env_remove("BERTH_INITIAL_USER")
            .env_remove("BERTH_INITIAL_PASSWORD");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the server with the config `extra` (access rules and such).
    pub fn start(&self, extra: &str) -> Registry {
        let config = self.config(extra);
        self.start_cmd(self.command(Some(&config), &[]))
    }

    /// Starts `cmd` (from [`Setup::command`]), keeping its log.
    pub fn start_cmd(&self, cmd: Command) -> Registry {
        Registry::spawn(cmd, &self.data(), true)
    }
}

/// `berth htpasswd --file FILE add USER --password-stdin --cost COST`.
pub fn add_user_cost(file: &Path, user: &str, password: &str, cost: u32) {
    let mut child = berth()
        .args(["htpasswd", "--file"])
        .arg(file)
        .args(["add", user, "--password-stdin", "--cost", &cost.to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    assert!(child.wait().unwrap().success(), "berth htpasswd add failed");
}

/// `rb` with Basic credentials, if any.
pub fn with(rb: RequestBuilder, creds: Creds) -> RequestBuilder {
    match creds {
        Some((u, p)) => rb.basic_auth(u, Some(p)),
        None => rb,
    }
}

pub fn get(s: &Registry, path: &str, creds: Creds) -> Response {
    with(client().get(s.url(path)), creds).send().unwrap()
}

/// Asserts an error response: status, JSON error code, API version
/// header; returns the headers for further checks.
pub fn expect_error(resp: Response, status: u16, code: &str) -> HeaderMap {
    assert_eq!(resp.status().as_u16(), status, "{resp:?}");
    assert_eq!(
        resp.headers()
            .get("docker-distribution-api-version")
            .map(|v| v.to_str().unwrap()),
        Some("registry/2.0")
    );
    let headers = resp.headers().clone();
    let body: Value = resp.json().expect("JSON error body");
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert!(body["errors"][0]["message"].is_string(), "{body}");
    headers
}

/// Asserts a 401 with the Basic challenge of [`REALM`].
pub fn expect_challenge(resp: Response) {
    let h = expect_error(resp, 401, "UNAUTHORIZED");
    assert_eq!(
        h.get("www-authenticate").unwrap(),
        &format!("Basic realm=\"{REALM}\"")
    );
}

/// Pushes a blob in one request (POST with ?digest=) to the server at
/// `base`; returns the response.
pub fn post_blob(base: &str, repo: &str, data: &[u8], creds: Creds) -> Response {
    let d = sha256(data);
    with(
        client()
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec()),
        creds,
    )
    .send()
    .unwrap()
}

/// Pushes an OCI image `repo:tag` of `config` and one `layer` with
/// credentials, asserting 201 each time; returns the manifest digest.
pub fn push_image_as(
    base: &str,
    repo: &str,
    tag: &str,
    creds: Creds,
    config: &[u8],
    layer: &[u8],
) -> String {
    for blob in [config, layer] {
        let r = post_blob(base, repo, blob, creds);
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": config.len()},
        "layers": [{"mediaType": OCI_LAYER_TAR, "digest": sha256(layer), "size": layer.len()}],
    })
    .to_string();
    let r = with(
        client()
            .put(format!("{base}/v2/{repo}/manifests/{tag}"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone()),
        creds,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text());
    sha256(manifest.as_bytes())
}

/// Pushes a small OCI image `repo:tag` (layer `layer of REPO:TAG`);
/// returns the manifest digest.
pub fn push_image(s: &Registry, repo: &str, tag: &str, creds: Creds) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let layer = format!("layer of {repo}:{tag}").into_bytes();
    push_image_as(&s.base, repo, tag, creds, config, &layer)
}
