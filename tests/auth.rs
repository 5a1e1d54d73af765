//! Authentication and access control, black-box: the real `berth` binary
//! with an htpasswd file, spoken to over HTTP.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

const REALM: &str = "Berth test realm";

/// A temporary directory holding the htpasswd file, a config and the data.
struct Setup {
    dir: tempfile::TempDir,
}

/// A running `berth serve` whose log lines are kept for assertions.
struct Server {
    child: Child,
    base: String,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn berth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn htpasswd(&self) -> PathBuf {
        self.dir.path().join("auth/htpasswd")
    }

    /// `berth htpasswd add` with a cheap bcrypt cost.
    fn add_user(&self, user: &str, password: &str) {
        add_user_cost(&self.htpasswd(), user, password, 4);
    }

    /// Writes a config with `[auth.htpasswd]` plus `extra`.
    fn config(&self, extra: &str) -> PathBuf {
        let p = self.dir.path().join("berth.toml");
        let text = format!(
            "[auth.htpasswd]\nrealm = \"{REALM}\"\npath = \"{}\"\n\n{extra}\n",
            self.htpasswd().display()
        );
        std::fs::write(&p, text).unwrap();
        p
    }

    fn command(&self, config: Option<&Path>, env: &[(&str, &str)]) -> Command {
        let mut cmd = berth();
        cmd.arg("serve");
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.env("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
            .env(
                "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
                self.dir.path().join("data"),
            )
            .env("REGISTRY_STORAGE_DELETE_ENABLED", "true")
            .env("RUST_LOG", "info")
            .env_remove("BERTH_INITIAL_USER")
            .env_remove("BERTH_INITIAL_PASSWORD")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Starts the server with the config `extra` (access rules and such).
    fn start(&self, extra: &str) -> Server {
        let config = self.config(extra);
        self.start_cmd(self.command(Some(&config), &[]))
    }

    fn start_cmd(&self, mut cmd: Command) -> Server {
        let mut child = cmd.spawn().expect("spawn berth");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel::<String>();
        for out in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let (tx, logs) = (tx.clone(), logs.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    eprintln!("[berth] {line}");
                    if let Some(i) = line.find("listening on ") {
                        let addr = line[i + "listening on ".len()..]
                            .split(|c: char| c.is_whitespace() || c == '"')
                            .next()
                            .unwrap_or("")
                            .to_string();
                        let _ = tx.send(addr);
                    }
                    logs.lock().unwrap().push(line);
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("berth did not start:\n{}", logs.lock().unwrap().join("\n"));
            }
        };
        Server {
            child,
            base: format!("http://{addr}"),
            logs,
        }
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }
}

fn add_user_cost(file: &Path, user: &str, password: &str, cost: u32) {
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

fn client() -> Client {
    common::client()
}

type Creds<'a> = Option<(&'a str, &'a str)>;

fn with(rb: RequestBuilder, creds: Creds) -> RequestBuilder {
    match creds {
        Some((u, p)) => rb.basic_auth(u, Some(p)),
        None => rb,
    }
}

fn get(s: &Server, path: &str, creds: Creds) -> Response {
    with(client().get(s.url(path)), creds).send().unwrap()
}

/// Asserts an error response: status, JSON error code, API version
/// header; returns the headers for further checks.
fn expect_error(resp: Response, status: u16, code: &str) -> HeaderMap {
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

fn expect_challenge(resp: Response) {
    let h = expect_error(resp, 401, "UNAUTHORIZED");
    assert_eq!(
        h.get("www-authenticate").unwrap(),
        &format!("Basic realm=\"{REALM}\"")
    );
}

fn sha256(data: &[u8]) -> String {
    common::sha256(data)
}

/// Pushes a blob in one request (POST with ?digest=); returns the response.
fn push_blob(s: &Server, repo: &str, data: &[u8], creds: Creds) -> Response {
    let d = sha256(data);
    with(
        client()
            .post(s.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec()),
        creds,
    )
    .send()
    .unwrap()
}

/// Pushes a small OCI image `repo:tag`; returns the manifest digest.
fn push_image(s: &Server, repo: &str, tag: &str, creds: Creds) -> String {
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer = format!("layer of {repo}:{tag}").into_bytes();
    for blob in [&config, &layer] {
        let r = push_blob(s, repo, blob, creds);
        assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text());
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256(&layer), "size": layer.len()}],
    })
    .to_string();
    let r = with(
        client()
            .put(s.url(&format!("/v2/{repo}/manifests/{tag}")))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone()),
        creds,
    )
    .send()
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text());
    sha256(manifest.as_bytes())
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

const ALICE: Creds = Some(("alice", "alice-secret"));

#[test]
fn every_endpoint_challenges_without_credentials() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    // registry:2's environment variables alone turn auth on.
    let path = setup.htpasswd();
    let s = setup.start_cmd(setup.command(
        None,
        &[
            ("REGISTRY_AUTH", "htpasswd"),
            ("REGISTRY_AUTH_HTPASSWD_REALM", REALM),
            ("REGISTRY_AUTH_HTPASSWD_PATH", path.to_str().unwrap()),
        ],
    ));
    let d = sha256(b"x");
    for path in [
        "/v2/".to_string(),
        "/v2".to_string(),
        "/v2/_catalog".to_string(),
        "/v2/library/app/tags/list".to_string(),
        "/v2/library/app/manifests/latest".to_string(),
        format!("/v2/library/app/blobs/{d}"),
        format!("/v2/library/app/referrers/{d}"),
        "/v2/no/such/endpoint".to_string(),
        "/v2/INVALID/tags/list".to_string(),
    ] {
        expect_challenge(get(&s, &path, None));
    }
    let c = client();
    expect_challenge(c.post(s.url("/v2/app/blobs/uploads/")).send().unwrap());
    expect_challenge(c.delete(s.url("/v2/app/manifests/latest")).send().unwrap());
    let head = c.head(s.url("/v2/")).send().unwrap();
    assert_eq!(head.status(), 401);
    assert!(head.headers().contains_key("www-authenticate"));
    // With the password, the same endpoints answer as usual.
    let ok = get(&s, "/v2/", ALICE);
    assert_eq!(ok.status(), 200);
    assert_eq!(
        ok.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert_eq!(get(&s, "/v2/_catalog", ALICE).status(), 200);
    expect_error(
        get(&s, "/v2/library/app/manifests/latest", ALICE),
        404,
        "MANIFEST_UNKNOWN",
    );
}

#[test]
fn good_and_bad_passwords_and_unknown_users() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    if common::have("htpasswd") {
        // A file line made by Apache's tool (`$2y$`) is accepted as it is.
        let out = Command::new("htpasswd")
            .args(["-Bbn", "-C", "4", "bob", "bob-secret"])
            .output()
            .unwrap();
        let line = String::from_utf8(out.stdout).unwrap();
        assert!(line.starts_with("bob:$2y$"), "{line}");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(setup.htpasswd())
            .unwrap();
        writeln!(f, "{}", line.trim()).unwrap();
    }
    let s = setup.start("");
    assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
    if common::have("htpasswd") {
        assert_eq!(get(&s, "/v2/", Some(("bob", "bob-secret"))).status(), 200);
    }
    // Repeated requests (served from the cache) still work.
    for _ in 0..5 {
        assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
    }
    expect_challenge(get(&s, "/v2/", Some(("alice", "wrong"))));
    expect_challenge(get(&s, "/v2/", Some(("alice", ""))));
    expect_challenge(get(&s, "/v2/", Some(("alice", "alice-secret "))));
    expect_challenge(get(&s, "/v2/", Some(("mallory", "alice-secret"))));
    // A cached good password does not let a wrong one through afterwards.
    expect_challenge(get(&s, "/v2/", Some(("alice", "alice-secreT"))));
    for bad in [
        "Bearer abc",
        "Basic !!!notbase64",
        "Basic Zm9v",
        "Basic",
        "Digest username=\"alice\"",
    ] {
        expect_challenge(
            client()
                .get(s.url("/v2/"))
                .header("authorization", bad)
                .send()
                .unwrap(),
        );
    }
    let logs = s.logs();
    assert!(logs.contains("wrong password"), "{logs}");
    assert!(logs.contains("unknown user"), "{logs}");
    // Neither passwords nor Authorization headers are ever logged; unknown
    // user names (possibly passwords typed in the wrong field) are not either.
    for secret in [
        "alice-secret",
        "YWxpY2U6",
        "mallory",
        "bob-secret",
        "Basic ",
    ] {
        assert!(
            !logs.contains(secret),
            "{secret:?} appears in the log:\n{logs}"
        );
    }
}

#[test]
fn unknown_user_costs_as_much_as_a_wrong_password() {
    let setup = Setup::new();
    // A realistic cost, so that skipping bcrypt would show.
    add_user_cost(&setup.htpasswd(), "alice", "alice-secret", 10);
    // An entry of a lower cost must not answer faster either.
    add_user_cost(&setup.htpasswd(), "bob", "bob-secret", 4);
    let s = setup.start("[access.lockout]\nfailures = 0\n");
    let time = |user: &str| {
        let mut v: Vec<Duration> = (0..7)
            .map(|_| {
                let t = Instant::now();
                let r = get(&s, "/v2/", Some((user, "not-the-password")));
                assert_eq!(r.status(), 401);
                t.elapsed()
            })
            .collect();
        v.sort();
        v[v.len() / 2]
    };
    let wrong = time("alice");
    let unknown = time("nobody-by-this-name");
    let cheap = time("bob");
    eprintln!("median: wrong password {wrong:?} (cost 4: {cheap:?}), unknown user {unknown:?}");
    assert!(
        cheap.as_secs_f64() > 0.5 * wrong.as_secs_f64(),
        "a wrong password for a cost-4 entry ({cheap:?}) answers faster than one at cost 10 ({wrong:?})"
    );
    assert!(
        wrong > Duration::from_millis(5),
        "bcrypt cost 10 is not that fast: {wrong:?}"
    );
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.6..1.6).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
}

#[test]
fn non_bcrypt_lines_are_reported_with_their_line_numbers_and_ignored() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let good = std::fs::read_to_string(setup.htpasswd()).unwrap();
    let text = format!(
        "# team registry users\n\
         {}\n\
         md5user:$apr1$HfsVL2Mp$0Vb5ZC8cU7OJn7fnu6yw.1\n\
         shauser:{{SHA}}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n\
         plainuser:secret\n\
         garbage line without colon\n",
        good.trim()
    );
    std::fs::write(setup.htpasswd(), text).unwrap();
    let s = setup.start("");
    assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
    expect_challenge(get(&s, "/v2/", Some(("plainuser", "secret"))));
    expect_challenge(get(&s, "/v2/", Some(("md5user", "password"))));
    let logs = s.logs();
    for (line, what) in [
        (3, "MD5"),
        (4, "SHA-1"),
        (5, "not a bcrypt"),
        (6, "user:hash"),
    ] {
        let found = logs
            .lines()
            .any(|l| l.contains(&format!("line={line}")) && l.contains(what));
        assert!(found, "line {line} ({what}) is not reported:\n{logs}");
    }
    assert!(!logs.contains("0Vb5ZC8c"), "a hash is logged:\n{logs}");
    // `berth htpasswd list` reports the same lines.
    let out = berth()
        .args(["htpasswd", "--file"])
        .arg(setup.htpasswd())
        .arg("list")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "alice");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("line 6"), "{err}");
}

#[test]
fn htpasswd_changes_apply_without_restart() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    setup.add_user("carol", "carol-secret");
    // Polling for the change fails logins on purpose: no lockout here.
    let s = setup.start("[access.lockout]\nfailures = 0\n");
    let bob = Some(("bob", "bob-secret"));
    assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
    expect_challenge(get(&s, "/v2/", bob));
    // A new user can log in within seconds.
    setup.add_user("bob", "bob-secret");
    assert!(
        wait_until(Duration::from_secs(5), || get(&s, "/v2/", bob).status()
            == 200),
        "bob was not picked up"
    );
    // A removed user is refused within seconds, even with a cached login.
    let out = berth()
        .args(["htpasswd", "--file"])
        .arg(setup.htpasswd())
        .args(["remove", "alice"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        wait_until(Duration::from_secs(5), || get(&s, "/v2/", ALICE).status()
            == 401),
        "alice is still accepted"
    );
    // A changed password applies, and the old one stops working.
    setup.add_user("carol", "carol-new");
    assert!(wait_until(Duration::from_secs(5), || {
        get(&s, "/v2/", Some(("carol", "carol-new"))).status() == 200
    }));
    expect_challenge(get(&s, "/v2/", Some(("carol", "carol-secret"))));
    // A malformed file (no usable entry) keeps the users in force, and says why.
    std::fs::write(setup.htpasswd(), "this is not\nan htpasswd file\n").unwrap();
    assert!(wait_until(Duration::from_secs(5), || s
        .logs()
        .contains("keeping the users loaded before")));
    assert_eq!(get(&s, "/v2/", bob).status(), 200);
    // And an empty one, which editors that rewrite in place pass through.
    std::fs::write(setup.htpasswd(), "").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&s, "/v2/", bob).status(), 200);
    std::fs::write(setup.htpasswd(), "# only a comment\n").unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&s, "/v2/", bob).status(), 200);
    // So does a file that disappeared.
    std::fs::remove_file(setup.htpasswd()).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(&s, "/v2/", bob).status(), 200);
    // And a good file is taken again.
    setup.add_user("dave", "dave-secret");
    assert!(wait_until(Duration::from_secs(5), || {
        get(&s, "/v2/", Some(("dave", "dave-secret"))).status() == 200
    }));
    expect_challenge(get(&s, "/v2/", bob));
}

#[test]
fn repeated_failures_from_one_client_get_429() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let s = setup.start("[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"3s\"\n");
    for _ in 0..3 {
        expect_challenge(get(&s, "/v2/", Some(("alice", "guess"))));
    }
    // Locked out: even the right password is not checked now.
    let r = expect_error(get(&s, "/v2/", ALICE), 429, "TOOMANYREQUESTS");
    let retry: u64 = r["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    expect_error(
        get(&s, "/v2/", Some(("alice", "guess"))),
        429,
        "TOOMANYREQUESTS",
    );
    // A request without credentials still gets the challenge.
    expect_challenge(get(&s, "/v2/", None));
    std::thread::sleep(Duration::from_millis(3200));
    assert_eq!(get(&s, "/v2/", ALICE).status(), 200);
}

#[test]
fn a_burst_of_guesses_sent_at_once_is_not_all_checked() {
    let setup = Setup::new();
    // A real cost: the burst queues for bcrypt while the first ones fail.
    add_user_cost(&setup.htpasswd(), "alice", "alice-secret", 10);
    let s = Arc::new(
        setup.start("[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"1m\"\n"),
    );
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let s = s.clone();
            std::thread::spawn(move || {
                get(&s, "/v2/", Some(("alice", &format!("guess-{i}"))))
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|&&c| c == 401).count();
    assert!(
        statuses.iter().all(|&c| c == 401 || c == 429),
        "{statuses:?}"
    );
    // The lockout starts at the third failure; guesses already being
    // verified then (one per bcrypt slot, a slot per core) still finish.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(
        checked <= 3 + cores,
        "{checked} of 24 simultaneous guesses were checked: {statuses:?}"
    );
    expect_error(get(&s, "/v2/", ALICE), 429, "TOOMANYREQUESTS");
}

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
    expect_error(push_blob(&s, "team-b/app", b"zed's", zed), 403, "DENIED");
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
    expect_challenge(push_blob(&s, "public/base", b"anon", None));
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

#[test]
fn initial_user_bootstraps_a_missing_htpasswd_file() {
    let setup = Setup::new();
    let config = setup.config("");
    assert!(!setup.htpasswd().exists());
    let env = [
        ("BERTH_INITIAL_USER", "root"),
        ("BERTH_INITIAL_PASSWORD", "first-password"),
    ];
    let s = setup.start_cmd(setup.command(Some(&config), &env));
    assert!(setup.htpasswd().exists());
    assert_eq!(
        get(&s, "/v2/", Some(("root", "first-password"))).status(),
        200
    );
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(setup.htpasswd())
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(mode & 0o077, 0, "the htpasswd file is readable by others");
    drop(s);
    // An existing file is never overwritten by the bootstrap.
    let env = [
        ("BERTH_INITIAL_USER", "root"),
        ("BERTH_INITIAL_PASSWORD", "other-password"),
    ];
    let s = setup.start_cmd(setup.command(Some(&config), &env));
    assert_eq!(
        get(&s, "/v2/", Some(("root", "first-password"))).status(),
        200
    );
    expect_challenge(get(&s, "/v2/", Some(("root", "other-password"))));
    assert!(!s.logs().contains("other-password"));
    drop(s);
    // Once the file exists the variables are not needed: a compose file
    // that still names the user but no longer the password starts.
    let s = setup.start_cmd(setup.command(Some(&config), &[("BERTH_INITIAL_USER", "root")]));
    assert_eq!(
        get(&s, "/v2/", Some(("root", "first-password"))).status(),
        200
    );
}

#[test]
fn a_missing_htpasswd_file_stops_start_up_with_advice() {
    let setup = Setup::new();
    let config = setup.config("");
    let out = setup.command(Some(&config), &[]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("htpasswd") && err.contains("BERTH_INITIAL_USER"),
        "{err}"
    );
    // Only one of the bootstrap variables is a configuration error.
    let out = setup
        .command(Some(&config), &[("BERTH_INITIAL_USER", "root")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BERTH_INITIAL_PASSWORD"));
    // An empty password is no password: no user is made with it.
    let out = setup
        .command(
            Some(&config),
            &[
                ("BERTH_INITIAL_USER", "root"),
                ("BERTH_INITIAL_PASSWORD", ""),
            ],
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("BERTH_INITIAL_PASSWORD"));
    assert!(!setup.htpasswd().exists());
    // Access rules without authentication are refused too.
    let p = setup.dir.path().join("open.toml");
    std::fs::write(&p, "[access]\nanonymous_pull = [\"x\"]\n").unwrap();
    let out = berth()
        .args(["check-config", "--config"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn htpasswd_subcommand_writes_files_apache_htpasswd_accepts() {
    let setup = Setup::new();
    let file = setup.htpasswd();
    add_user_cost(&file, "alice", "alice-secret", 5);
    add_user_cost(&file, "bob", "bob-secret", 5);
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.lines().all(|l| l.contains(":$2y$05$")), "{text}");
    if common::have("htpasswd") {
        let ok = Command::new("htpasswd")
            .arg("-vb")
            .arg(&file)
            .args(["alice", "alice-secret"])
            .output()
            .unwrap();
        assert!(ok.status.success(), "{ok:?}");
        let bad = Command::new("htpasswd")
            .arg("-vb")
            .arg(&file)
            .args(["alice", "nope"])
            .output()
            .unwrap();
        assert!(!bad.status.success());
    }
    // Changing a password keeps one line per user, and the file's owner
    // (root editing the file a registry running as another user reads).
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if is_root {
        std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    }
    add_user_cost(&file, "alice", "alice-new", 5);
    if is_root {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&file).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "owner changed");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("alice:").count(), 1);
    let rm = |user: &str| {
        berth()
            .args(["htpasswd", "--file"])
            .arg(&file)
            .args(["remove", user])
            .output()
            .unwrap()
    };
    assert!(rm("alice").status.success());
    let out = rm("alice");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("alice"));
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 1);
    // No terminal and no --password-stdin: a clear error, nothing written.
    let out = berth()
        .args(["htpasswd", "--file"])
        .arg(&file)
        .args(["add", "carol"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
    // The file can also come from the config (registry:2's variable).
    let mut child = berth()
        .args(["htpasswd", "add", "dave", "--password-stdin", "--cost", "4"])
        .env("REGISTRY_AUTH_HTPASSWD_PATH", &file)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "dave-secret").unwrap();
    assert!(child.wait().unwrap().success());
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("dave:$2y$04$"));
}
