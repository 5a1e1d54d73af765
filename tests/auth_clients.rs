//! Real clients against a registry with htpasswd auth: `curl -u`, skopeo
//! `--creds`/`--src-creds`/`--dest-creds`, and `docker login` then push and
//! pull (a private `dockerd`). Each test is skipped when its tool is missing
//! (and fails in CI, where the tools are required).

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::json;
use support::auth::{add_user_cost, push_image_as};
use support::dockerd::Dockerd;
use support::{have, Registry};

const REALM: &str = "Berth clients";

/// A registry with users alice (may do everything on `alice/*` and pull
/// `shared/*`) and bob (may only pull `shared/*`).
struct AuthRegistry {
    reg: Registry,
    _dir: tempfile::TempDir,
}

fn start() -> AuthRegistry {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    for (u, p) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        add_user_cost(&htpasswd, u, p, 4);
    }
    let config = dir.path().join("berth.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[auth.htpasswd]
realm = "{REALM}"
path = "{}"

[[access.rules]]
repositories = ["alice/**"]
users = ["alice"]
actions = ["pull", "push", "delete"]

[[access.rules]]
repositories = ["shared/*"]
users = ["*"]
actions = ["pull"]

[[access.rules]]
repositories = ["shared/*"]
users = ["alice"]
actions = ["push"]
"#,
            htpasswd.display()
        ),
    )
    .unwrap();
    let reg = Registry::start_in(
        &dir.path().join("data"),
        &[("REGISTRY_STORAGE_DELETE_ENABLED", "true")],
        &["--config", config.to_str().unwrap()],
    );
    AuthRegistry { reg, _dir: dir }
}

fn run(cmd: &mut Command) -> Output {
    eprintln!("$ {cmd:?}");
    let out = cmd.stdin(Stdio::null()).output().expect("run");
    eprintln!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Pushes a small OCI image over HTTP with Basic credentials.
fn push_image(reg: &Registry, repo: &str, tag: &str, user: &str, password: &str) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = format!("content of {repo}").into_bytes();
    push_image_as(&reg.base, repo, tag, Some((user, password)), config, &layer);
}

#[test]
fn curl_with_and_without_u() {
    if !have("curl") {
        return;
    }
    let a = start();
    let url = a.reg.url("/v2/");
    let code = |args: &[&str]| {
        let out = run(Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .arg(&url));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert_eq!(code(&[]), "401");
    assert_eq!(code(&["-u", "alice:alice-pw"]), "200");
    assert_eq!(code(&["-u", "alice:wrong"]), "401");
    let out = run(Command::new("curl").args(["-s", "-i"]).arg(&url));
    let t = text(&out);
    assert!(
        t.to_ascii_lowercase().contains(&format!(
            "www-authenticate: basic realm=\"{}\"",
            REALM.to_ascii_lowercase()
        )),
        "{t}"
    );
    assert!(t.contains("\"UNAUTHORIZED\""), "{t}");
    // A pull over curl, and the filtered catalog.
    push_image(&a.reg, "alice/app", "v1", "alice", "alice-pw");
    push_image(&a.reg, "shared/base", "v1", "alice", "alice-pw");
    let out = run(Command::new("curl")
        .args(["-s", "-f", "-u", "bob:bob-pw"])
        .arg(a.reg.url("/v2/_catalog")));
    assert!(out.status.success());
    let catalog: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(catalog["repositories"], json!(["shared/base"]));
    let out = run(Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-u",
            "bob:bob-pw",
        ])
        .arg(a.reg.url("/v2/alice/app/manifests/v1")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
}

fn skopeo(policy: &Path, args: &[&str]) -> Output {
    run(Command::new("skopeo")
        .arg("--policy")
        .arg(policy)
        .args(args)
        .env("REGISTRY_AUTH_FILE", policy.with_file_name("auth.json")))
}

#[test]
fn skopeo_copies_with_creds() {
    if !have("skopeo") {
        return;
    }
    let a = start();
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
    )
    .unwrap();
    push_image(&a.reg, "alice/app", "v1", "alice", "alice-pw");
    let host = a.reg.host();
    let src = format!("docker://{host}/alice/app:v1");
    // Without credentials: an authentication error.
    let out = skopeo(&policy, &["inspect", "--tls-verify=false", &src]);
    assert!(!out.status.success());
    let t = text(&out).to_lowercase();
    assert!(
        t.contains("unauthorized") || t.contains("authentication required"),
        "{t}"
    );
    // Wrong password: refused too.
    let out = skopeo(
        &policy,
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "alice:nope",
            &src,
        ],
    );
    assert!(!out.status.success());
    let out = skopeo(
        &policy,
        &[
            "inspect",
            "--tls-verify=false",
            "--creds",
            "alice:alice-pw",
            &src,
        ],
    );
    assert!(out.status.success());
    // Registry to registry with both sets of credentials.
    let dst = format!("docker://{host}/shared/copy:v1");
    let out = skopeo(
        &policy,
        &[
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            "alice:alice-pw",
            "--dest-creds",
            "alice:alice-pw",
            &src,
            &dst,
        ],
    );
    assert!(out.status.success());
    // bob may pull shared/* to disk, but not push there.
    let layout = tmp.path().join("layout");
    let out = skopeo(
        &policy,
        &[
            "copy",
            "--src-tls-verify=false",
            "--src-creds",
            "bob:bob-pw",
            &dst,
            &format!("oci:{}:v1", layout.display()),
        ],
    );
    assert!(out.status.success());
    let out = skopeo(
        &policy,
        &[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "bob:bob-pw",
            &format!("oci:{}:v1", layout.display()),
            &format!("docker://{host}/shared/bobs:v1"),
        ],
    );
    assert!(!out.status.success());
    let t = text(&out).to_lowercase();
    assert!(t.contains("denied"), "{t}");
}

// ---------------------------------------------------------------------------
// docker login

fn docker(d: &Dockerd, args: &[&str]) -> Output {
    run(&mut d.cmd("docker", args))
}

#[test]
fn docker_login_then_push_and_pull() {
    if !have("docker") || !have("dockerd") || !have("tar") {
        return;
    }
    let a = start();
    let d = Dockerd::start("berth-authd.");
    let host = a.reg.host();
    let image = format!("{host}/alice/hello:v1");
    // A one-file image, imported from a tar stream.
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("hello.txt"), "hello from berth\n").unwrap();
    let archive = files.path().join("rootfs.tar");
    let out = run(Command::new("tar")
        .arg("-C")
        .arg(files.path())
        .arg("-cf")
        .arg(&archive)
        .arg("hello.txt"));
    assert!(out.status.success());
    let out = docker(&d, &["import", archive.to_str().unwrap(), &image]);
    assert!(out.status.success(), "{}", text(&out));
    // Push without login: an authentication error.
    let out = docker(&d, &["push", &image]);
    assert!(!out.status.success());
    let t = text(&out).to_lowercase();
    assert!(
        t.contains("no basic auth credentials") || t.contains("unauthorized"),
        "{t}"
    );
    // A wrong password: login fails.
    let login = |user: &str, password: &str| {
        let mut child = d
            .cmd("docker", &["login", "-u", user, "--password-stdin", &host])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        let out = child.wait_with_output().unwrap();
        eprintln!("{}", text(&out));
        out
    };
    assert!(!login("alice", "wrong").status.success());
    let out = login("alice", "alice-pw");
    assert!(out.status.success());
    assert!(text(&out).contains("Login Succeeded"));
    let out = docker(&d, &["push", &image]);
    assert!(out.status.success());
    assert!(docker(&d, &["rmi", &image]).status.success());
    let out = docker(&d, &["pull", &image]);
    assert!(out.status.success());
    // bob may not pull alice's image: docker reports the denial.
    assert!(docker(&d, &["rmi", &image]).status.success());
    assert!(login("bob", "bob-pw").status.success());
    let out = docker(&d, &["pull", &image]);
    assert!(!out.status.success());
    assert!(text(&out).contains("denied"), "{}", text(&out));
    assert!(docker(&d, &["logout", &host]).status.success());
    let out = docker(&d, &["pull", &image]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no basic auth credentials"),
        "{}",
        text(&out)
    );
}
