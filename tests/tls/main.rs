//! HTTPS: the real binary with `REGISTRY_HTTP_TLS_*`, talked to with curl
//! and `openssl s_client`, on certificates made by the `openssl` CLI at
//! test time (a CA, server certificates for 127.0.0.1 and localhost, a
//! client certificate, and a second CA nobody trusts).

#[path = "../support/mod.rs"]
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::harness::{serve_command, wait_until, Registry};
use support::tools::{have, run, run_ok};

const LIMIT: Duration = Duration::from_secs(30);

/// A directory of test certificates.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA (`ca`), a second CA (`other-ca`), server pairs `one` and `two`
    /// (subjects `berth-one`, `berth-two`, for 127.0.0.1, localhost and
    /// 0.0.0.0, the address docker verifies: see `docker_pushes_and_pulls_*`) and client pairs `client` (from
    /// `ca`) and `stranger` (from `other-ca`). None when openssl is missing.
    fn new() -> Option<Pki> {
        if !have("openssl") {
            return None;
        }
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        pki.ca("ca", "Berth Test CA");
        pki.ca("other-ca", "Nobody's CA");
        pki.leaf("one", "berth-one", "ca", "serverAuth");
        pki.leaf("two", "berth-two", "ca", "serverAuth");
        pki.leaf("client", "berth-client", "ca", "clientAuth");
        pki.leaf("stranger", "berth-stranger", "other-ca", "clientAuth");
        Some(pki)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    fn s(&self, file: &str) -> String {
        self.path(file).display().to_string()
    }

    fn openssl(&self, args: &[&str]) {
        run_ok(
            Command::new("openssl")
                .args(args)
                .current_dir(self.dir.path()),
            LIMIT,
        );
    }

    fn ca(&self, name: &str, cn: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
    }

    fn leaf(&self, name: &str, cn: &str, ca: &str, usage: &str) {
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
        ]);
        std::fs::write(
            self.path(&format!("{name}.ext")),
            format!(
                "subjectAltName=IP:127.0.0.1,IP:0.0.0.0,DNS:localhost\nextendedKeyUsage={usage}\n\
                 basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            ),
        )
        .unwrap();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ]);
    }
}

/// Starts berth serving `cert`/`key` (copied to `served.pem`/`served.key`,
/// which tests may replace), with `env` on top; logs captured.
fn start_tls(pki: &Pki, pair: &str, env: &[(&str, &str)]) -> (Registry, tempfile::TempDir) {
    std::fs::copy(pki.path(&format!("{pair}.pem")), pki.path("served.pem")).unwrap();
    std::fs::copy(pki.path(&format!("{pair}.key")), pki.path("served.key")).unwrap();
    let (cert, key) = (pki.s("served.pem"), pki.s("served.key"));
    let mut all = vec![
        ("REGISTRY_HTTP_TLS_CERTIFICATE", cert.as_str()),
        ("REGISTRY_HTTP_TLS_KEY", key.as_str()),
    ];
    all.extend_from_slice(env);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let reg = Registry::spawn(serve_command(&root, &all, &[]), &root, true);
    (reg, tmp)
}

fn https(reg: &Registry, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", reg.port)
}

/// curl's `%{http_version} %{http_code}` for `GET /v2/`, trusting `ca`,
/// with `extra` arguments; `None` when curl fails (e.g. the handshake).
fn curl(reg: &Registry, ca: &str, extra: &[&str]) -> Option<String> {
    let out = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-o", "/dev/null"])
            .args(["-w", "%{http_version} %{http_code}", "--cacert", ca])
            .args(extra)
            .arg(https(reg, "/v2/")),
        LIMIT,
    );
    out.ok().then(|| out.stdout.trim().to_string())
}

/// The subject of the certificate the server presents.
fn served_subject(reg: &Registry) -> String {
    let out = run(
        Command::new("openssl").args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", reg.port),
            "-servername",
            "localhost",
        ]),
        LIMIT,
    );
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix("subject="))
        .unwrap_or("")
        .to_string()
}

#[test]
fn https_is_served_over_http11_and_http2_through_alpn() {
    let Some(pki) = Pki::new() else { return };
    let (reg, _tmp) = start_tls(&pki, "one", &[]);
    let ca = pki.s("ca.pem");
    assert_eq!(curl(&reg, &ca, &["--http1.1"]).as_deref(), Some("1.1 200"));
    assert_eq!(curl(&reg, &ca, &["--http2"]).as_deref(), Some("2 200"));
    // By name too, and a client not trusting the CA is refused.
    let out = run(
        Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--cacert",
                &ca,
            ])
            .arg(format!("https://localhost:{}/v2/", reg.port)),
        LIMIT,
    );
    assert_eq!(out.stdout.trim(), "200", "{}", out.all());
    assert_eq!(curl(&reg, &pki.s("other-ca.pem"), &[]), None);
}

#[test]
fn a_multi_window_blob_and_its_ranges_are_served_exactly_over_tls_h1_and_h2() {
    let Some(pki) = Pki::new() else { return };
    let (reg, tmp) = start_tls(&pki, "one", &[]);
    let ca = pki.s("ca.pem");
    // Three 4 MiB body windows, the last one partial.
    let data = support::content::noise((9 << 20) + 3, 5);
    let d = support::content::sha256(&data);
    let src = tmp.path().join("blob");
    std::fs::write(&src, &data).unwrap();
    let out = run_ok(
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
            ])
            .args(["--cacert", &ca, "-X", "POST", "--data-binary"])
            .arg(format!("@{}", src.display()))
            .args(["-H", "Content-Type: application/octet-stream"])
            .arg(https(
                &reg,
                &format!("/v2/tls/big/blobs/uploads/?digest={d}"),
            )),
        LIMIT,
    );
    assert_eq!(out.stdout.trim(), "201", "{}", out.all());
    let got = tmp.path().join("got");
    let path = format!("/v2/tls/big/blobs/{d}");
    for http in ["--http1.1", "--http2"] {
        for (range, want) in [
            (None, &data[..]),
            (Some("4194303-8388608"), &data[4194303..=8388608]),
            (Some("-5"), &data[data.len() - 5..]),
        ] {
            let mut cmd = Command::new("curl");
            cmd.args(["-sS", "--max-time", "30", "-o"]).arg(&got).args([
                "-w",
                "%{http_code}",
                "--cacert",
                &ca,
                http,
            ]);
            if let Some(r) = range {
                cmd.args(["-r", r]);
            }
            let out = run_ok(cmd.arg(https(&reg, &path)), LIMIT);
            let status = if range.is_some() { "206" } else { "200" };
            assert_eq!(out.stdout.trim(), status, "{http} {range:?}: {}", out.all());
            let body = std::fs::read(&got).unwrap();
            assert_eq!(body.len(), want.len(), "{http} {range:?}");
            assert!(body == want, "{http} {range:?}: bytes differ");
        }
    }
}

#[test]
fn http2_disabled_serves_http11_to_a_client_asking_for_h2() {
    let Some(pki) = Pki::new() else { return };
    let (reg, _tmp) = start_tls(&pki, "one", &[("REGISTRY_HTTP_HTTP2_DISABLED", "true")]);
    let ca = pki.s("ca.pem");
    assert_eq!(curl(&reg, &ca, &["--http2"]).as_deref(), Some("1.1 200"));
    assert_eq!(curl(&reg, &ca, &["--http1.1"]).as_deref(), Some("1.1 200"));
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_refused() {
    let Some(pki) = Pki::new() else { return };
    let (reg, _tmp) = start_tls(&pki, "one", &[]);
    assert!(
        served_subject(&reg).contains("berth-one"),
        "{}",
        served_subject(&reg)
    );

    // A key that does not belong to the certificate: refused, logged, the
    // old pair still served.
    std::fs::copy(pki.path("two.key"), pki.path("served.key")).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || reg
            .logs()
            .contains("not reloaded")),
        "{}",
        reg.logs()
    );
    assert!(served_subject(&reg).contains("berth-one"));
    assert_eq!(curl(&reg, &pki.s("ca.pem"), &[]).as_deref(), Some("2 200"));

    // The matching certificate arrives: served from then on.
    std::fs::copy(pki.path("two.pem"), pki.path("served.pem")).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || served_subject(&reg)
            .contains("berth-two")),
        "still serving {}\n{}",
        served_subject(&reg),
        reg.logs()
    );
    assert!(reg.logs().contains("TLS certificate reloaded"));
    assert_eq!(curl(&reg, &pki.s("ca.pem"), &[]).as_deref(), Some("2 200"));
}

#[test]
fn client_certificates_from_clientcas_are_accepted_and_others_fail_the_handshake() {
    let Some(pki) = Pki::new() else { return };
    let cas = pki.s("ca.pem");
    let (reg, _tmp) = start_tls(&pki, "one", &[("REGISTRY_HTTP_TLS_CLIENTCAS", &cas)]);
    let ca = pki.s("ca.pem");
    let (cert, key) = (pki.s("client.pem"), pki.s("client.key"));
    assert_eq!(
        curl(&reg, &ca, &["--cert", &cert, "--key", &key]).as_deref(),
        Some("2 200")
    );
    assert_eq!(curl(&reg, &ca, &[]), None, "no client certificate");
    let (cert, key) = (pki.s("stranger.pem"), pki.s("stranger.key"));
    assert_eq!(
        curl(&reg, &ca, &["--cert", &cert, "--key", &key]),
        None,
        "a client certificate from another CA"
    );
}

#[test]
fn renewed_client_cas_are_used_without_a_restart_and_broken_ones_are_refused() {
    let Some(pki) = Pki::new() else { return };
    // The client CA file first holds the other CA: only `stranger` gets in.
    std::fs::copy(pki.path("other-ca.pem"), pki.path("clientcas.pem")).unwrap();
    let cas = pki.s("clientcas.pem");
    let (reg, _tmp) = start_tls(&pki, "one", &[("REGISTRY_HTTP_TLS_CLIENTCAS", &cas)]);
    let ca = pki.s("ca.pem");
    let client = |name: &str| {
        let (cert, key) = (pki.s(&format!("{name}.pem")), pki.s(&format!("{name}.key")));
        curl(&reg, &ca, &["--cert", &cert, "--key", &key])
    };
    assert_eq!(client("stranger").as_deref(), Some("2 200"));
    assert_eq!(client("client"), None);

    // A file that holds no certificate: refused, logged, the old CAs stay.
    std::fs::write(pki.path("clientcas.pem"), "not a certificate\n").unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || reg
            .logs()
            .contains("client CAs not reloaded")),
        "{}",
        reg.logs()
    );
    assert_eq!(client("stranger").as_deref(), Some("2 200"));

    // The renewed CA file: new connections are checked against it.
    std::fs::copy(pki.path("ca.pem"), pki.path("clientcas.pem")).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || client("client").as_deref()
            == Some("2 200")),
        "{}",
        reg.logs()
    );
    assert!(reg.logs().contains("TLS client CAs reloaded"));
    assert_eq!(client("stranger"), None);
    assert_eq!(curl(&reg, &ca, &[]), None, "no client certificate");
}

#[test]
fn a_client_that_never_finishes_the_handshake_gives_its_slot_back() {
    let Some(pki) = Pki::new() else { return };
    let (reg, _tmp) = start_tls(
        &pki,
        "one",
        &[
            ("REGISTRY_LIMITS_MAX_CONNECTIONS", "1"),
            ("REGISTRY_LIMITS_HEADER_READ_TIMEOUT", "1s"),
        ],
    );
    let _silent = std::net::TcpStream::connect(("127.0.0.1", reg.port)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(curl(&reg, &pki.s("ca.pem"), &[]).as_deref(), Some("2 200"));
    assert!(
        reg.logs().contains("no TLS handshake within"),
        "{}",
        reg.logs()
    );
}

/// Starting with `env` fails, and the error names `key`.
fn start_fails_naming(env: &[(&str, &str)], key: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let out = run(&mut serve_command(&root, env, &[]), LIMIT);
    assert!(!out.ok(), "started with {env:?}");
    assert!(out.all().contains(key), "{env:?}: {}", out.all());
}

#[test]
fn an_invalid_tls_config_stops_start_up_naming_the_key() {
    let Some(pki) = Pki::new() else { return };
    let (one, one_key, two_key) = (pki.s("one.pem"), pki.s("one.key"), pki.s("two.key"));
    let missing = pki.s("missing.pem");
    let cert = "REGISTRY_HTTP_TLS_CERTIFICATE";
    let key = "REGISTRY_HTTP_TLS_KEY";
    start_fails_naming(&[(cert, &one)], "http.tls.key");
    start_fails_naming(&[(key, &one_key)], "http.tls.certificate");
    start_fails_naming(&[(cert, &missing), (key, &one_key)], "http.tls.certificate");
    start_fails_naming(&[(cert, &one), (key, &missing)], "http.tls.key");
    // A key that is not the certificate's, a certificate file holding a key.
    start_fails_naming(&[(cert, &one), (key, &two_key)], "http.tls.key");
    start_fails_naming(&[(cert, &one_key), (key, &one_key)], "http.tls.certificate");
    let ok = [(cert, one.as_str()), (key, one_key.as_str())];
    for (name, value, named) in [
        (
            "REGISTRY_HTTP_TLS_MINIMUMTLS",
            "tls1.0",
            "http.tls.minimumtls",
        ),
        (
            "REGISTRY_HTTP_TLS_MINIMUMTLS",
            "ssl3",
            "http.tls.minimumtls",
        ),
        (
            "REGISTRY_HTTP_TLS_CLIENTCAS",
            missing.as_str(),
            "http.tls.clientcas",
        ),
        (
            "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE",
            "/tmp/le",
            "REGISTRY_HTTP_TLS_LETSENCRYPT_CACHEFILE",
        ),
    ] {
        let mut env = ok.to_vec();
        env.push((name, value));
        start_fails_naming(&env, named);
    }
}

#[test]
fn check_config_reads_the_tls_files() {
    let Some(pki) = Pki::new() else { return };
    let check = |key: &str| {
        run(
            Command::new(env!("CARGO_BIN_EXE_berth"))
                .arg("check-config")
                .env("REGISTRY_HTTP_TLS_CERTIFICATE", pki.s("one.pem"))
                .env("REGISTRY_HTTP_TLS_KEY", pki.s(key)),
            LIMIT,
        )
    };
    assert!(check("one.key").ok(), "{}", check("one.key").all());
    let out = check("two.key");
    assert!(!out.ok());
    assert!(out.stderr.contains("http.tls.key"), "{}", out.all());
}

#[test]
fn the_tls_keys_are_read_from_the_config_file() {
    let Some(pki) = Pki::new() else { return };
    let file = pki.path("berth.toml");
    std::fs::write(
        &file,
        format!(
            "[http]\naddr = \"127.0.0.1:0\"\n[http.tls]\ncertificate = {:?}\nkey = {:?}\n\
             minimumtls = \"tls1.3\"\nclientcas = [{:?}]\n[http.http2]\ndisabled = true\n",
            pki.s("one.pem"),
            pki.s("one.key"),
            pki.s("ca.pem"),
        ),
    )
    .unwrap();
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["check-config", "--config"])
            .arg(&file),
        LIMIT,
    );
    assert!(out.ok(), "{}", out.all());
    assert!(out.stdout.contains("tls1.3"), "{}", out.all());
    assert!(out.stdout.contains("ca.pem"), "{}", out.all());
}

#[test]
fn minimumtls_13_refuses_a_tls12_client() {
    let Some(pki) = Pki::new() else { return };
    let (reg, _tmp) = start_tls(&pki, "one", &[("REGISTRY_HTTP_TLS_MINIMUMTLS", "tls1.3")]);
    let ca = pki.s("ca.pem");
    assert_eq!(curl(&reg, &ca, &["--tls-max", "1.2"]), None);
    assert_eq!(curl(&reg, &ca, &["--tlsv1.3"]).as_deref(), Some("2 200"));
}

#[test]
fn http2_disabled_turns_off_h2c_on_plain_http() {
    if !have("curl") {
        return;
    }
    let get = |reg: &Registry, how: &str| {
        let out = run(
            Command::new("curl")
                .args(["-sS", "--max-time", "10", "-o", "/dev/null"])
                .args(["-w", "%{http_version} %{http_code}", how])
                .arg(reg.url("/v2/")),
            LIMIT,
        );
        out.ok().then(|| out.stdout.trim().to_string())
    };
    let reg = Registry::start_with(&[]);
    assert_eq!(
        get(&reg, "--http2-prior-knowledge").as_deref(),
        Some("2 200")
    );
    let reg = Registry::start_with(&[("REGISTRY_HTTP_HTTP2_DISABLED", "true")]);
    assert_eq!(get(&reg, "--http2-prior-knowledge"), None);
    assert_eq!(get(&reg, "--http1.1").as_deref(), Some("1.1 200"));
}

#[test]
fn skopeo_pushes_and_inspects_over_mutual_tls_with_a_cert_dir() {
    let Some(pki) = Pki::new() else { return };
    if !have("skopeo") {
        return;
    }
    let cas = pki.s("ca.pem");
    let (reg, tmp) = start_tls(&pki, "one", &[("REGISTRY_HTTP_TLS_CLIENTCAS", &cas)]);
    // containers-certs.d(5): ca.crt, and a client pair as NAME.cert/NAME.key.
    let certs = tmp.path().join("certs.d");
    let server_only = tmp.path().join("server-only");
    for dir in [&certs, &server_only] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::copy(pki.path("ca.pem"), dir.join("ca.crt")).unwrap();
    }
    std::fs::copy(pki.path("client.pem"), certs.join("client.cert")).unwrap();
    std::fs::copy(pki.path("client.key"), certs.join("client.key")).unwrap();
    let img = support::small_image(support::Flavour::Oci, "amd64", "over tls");
    let mut src = support::Layout::new(&tmp.path().join("src"));
    src.add(&img, "v1");
    let dest = format!("docker://127.0.0.1:{}/tls/app:v1", reg.port);
    let certs = certs.display().to_string();
    support::skopeo_ok(&[
        "copy",
        "--dest-cert-dir",
        &certs,
        &src.reference("v1"),
        &dest,
    ]);
    let out = support::skopeo_ok(&["inspect", "--raw", "--cert-dir", &certs, &dest]);
    assert_eq!(out.stdout.as_bytes(), img.bytes);
    let server_only = server_only.display().to_string();
    let out = support::skopeo(&["inspect", "--raw", "--cert-dir", &server_only, &dest]);
    assert!(
        !out.ok(),
        "inspected without a client certificate: {}",
        out.all()
    );
}

#[test]
fn healthcheck_speaks_tls_when_the_configuration_has_it() {
    let Some(pki) = Pki::new() else { return };
    let (reg, _tmp) = start_tls(&pki, "one", &[]);
    let (cert, key) = (pki.s("one.pem"), pki.s("one.key"));
    let addr = format!("127.0.0.1:{}", reg.port);
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("healthcheck")
            .env("REGISTRY_HTTP_ADDR", &addr)
            .env("REGISTRY_HTTP_TLS_CERTIFICATE", &cert)
            .env("REGISTRY_HTTP_TLS_KEY", &key),
        LIMIT,
    );
    assert!(out.ok(), "{}", out.all());
    assert!(
        out.stdout
            .contains(&format!("https://{addr}/v2/ answered 200")),
        "{}",
        out.all()
    );
}

/// `/etc/docker/certs.d/<host>/`, where the Docker daemon looks for the CA
/// (`ca.crt`) and client pair (`client.cert`, `client.key`) of a registry;
/// removed when dropped, whatever happened.
struct CertsD(PathBuf);

impl CertsD {
    /// None when the directory cannot be made (not root): the test skips.
    fn new(host: &str) -> Option<CertsD> {
        let dir = PathBuf::from("/etc/docker/certs.d").join(host);
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(CertsD(dir)),
            Err(e) => {
                eprintln!("skipping: cannot create {}: {e}", dir.display());
                None
            }
        }
    }

    fn add(&self, from: PathBuf, name: &str) {
        std::fs::copy(from, self.0.join(name)).unwrap();
    }
}

impl Drop for CertsD {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn docker(d: &support::dockerd::Dockerd, args: &[&str]) -> support::Out {
    run(&mut d.cmd("docker", args), Duration::from_secs(120))
}

fn docker_ok(d: &support::dockerd::Dockerd, args: &[&str]) -> support::Out {
    let out = docker(d, args);
    assert!(out.ok(), "docker {args:?}: {}", out.all());
    out
}

/// A one-file image in the daemon, named `name`.
fn import_image(d: &support::dockerd::Dockerd, name: &str) {
    let rootfs = support::tar(&[support::Entry::File(
        "hello.txt",
        b"hello over TLS\n",
        0o644,
    )]);
    let out = support::run_input(
        &mut d.cmd("docker", &["import", "-", name]),
        Some(rootfs),
        Duration::from_secs(120),
    );
    assert!(out.ok(), "docker import: {}", out.all());
}

/// Docker treats 127.0.0.0/8 (and names that resolve there, `localhost`)
/// as an insecure registry: it then skips certificate verification and
/// never reads certs.d. `0.0.0.0:PORT` reaches the server listening on
/// 127.0.0.1 (Linux connects to the loopback for the unspecified address)
/// but is outside 127.0.0.0/8, so the daemon verifies the server against
/// `/etc/docker/certs.d/0.0.0.0:PORT/ca.crt` as it would a remote registry.
fn docker_host(reg: &Registry) -> String {
    format!("0.0.0.0:{}", reg.port)
}

/// The daemon is not told any insecure registry but its default.
fn assert_no_insecure_registries(d: &support::dockerd::Dockerd) {
    let out = docker_ok(
        d,
        &[
            "info",
            "--format",
            "{{json .RegistryConfig.InsecureRegistryCIDRs}}",
        ],
    );
    assert_eq!(out.stdout.trim(), r#"["127.0.0.0/8"]"#, "{}", out.all());
}

/// Pushes, forgets and pulls `image` back, the same image id.
fn push_and_pull(d: &support::dockerd::Dockerd, image: &str) {
    docker_ok(d, &["push", image]);
    let id = docker_ok(d, &["image", "inspect", "--format", "{{.Id}}", image]);
    docker_ok(d, &["rmi", image]);
    docker_ok(d, &["pull", image]);
    let again = docker_ok(d, &["image", "inspect", "--format", "{{.Id}}", image]);
    assert_eq!(id.stdout.trim(), again.stdout.trim());
}

#[test]
fn docker_pushes_and_pulls_over_tls_trusting_a_ca_from_certs_d() {
    let Some(pki) = Pki::new() else { return };
    if !have("docker") || !have("dockerd") {
        return;
    }
    let (reg, _tmp) = start_tls(&pki, "one", &[]);
    let Some(certs) = CertsD::new(&docker_host(&reg)) else {
        return;
    };
    let d = support::dockerd::Dockerd::start("berth-tls-dockerd.");
    assert_no_insecure_registries(&d);
    let image = format!("{}/tls/app:v1", docker_host(&reg));
    import_image(&d, &image);

    // Without the CA the daemon refuses the server's certificate (and the
    // server speaks only TLS: there is no plain-HTTP fallback to succeed).
    let out = docker(&d, &["push", &image]);
    assert!(!out.ok(), "pushed without trusting the CA: {}", out.all());
    assert!(
        out.all()
            .contains("x509: certificate signed by unknown authority"),
        "{}",
        out.all()
    );

    certs.add(pki.path("ca.pem"), "ca.crt");
    push_and_pull(&d, &image);
    // Berth served it: the pushed repository is in its catalog, over HTTPS.
    let out = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "--cacert", &pki.s("ca.pem")])
            .arg(https(&reg, "/v2/_catalog")),
        LIMIT,
    );
    assert!(out.stdout.contains("tls/app"), "{}", out.all());
    let logs = reg.logs();
    assert!(
        logs.contains(r#"method=PUT path="/v2/tls/app/manifests/v1" status=201"#),
        "{logs}"
    );
    assert!(
        logs.contains(r#"method=GET path="/v2/tls/app/blobs/sha256:"#),
        "{logs}"
    );
}

#[test]
fn docker_pushes_and_pulls_over_mutual_tls_with_a_client_pair_from_certs_d() {
    let Some(pki) = Pki::new() else { return };
    if !have("docker") || !have("dockerd") {
        return;
    }
    let cas = pki.s("ca.pem");
    let (reg, _tmp) = start_tls(&pki, "one", &[("REGISTRY_HTTP_TLS_CLIENTCAS", &cas)]);
    let Some(certs) = CertsD::new(&docker_host(&reg)) else {
        return;
    };
    certs.add(pki.path("ca.pem"), "ca.crt");
    let d = support::dockerd::Dockerd::start("berth-mtls-dockerd.");
    assert_no_insecure_registries(&d);
    let image = format!("{}/mtls/app:v1", docker_host(&reg));
    import_image(&d, &image);

    // The server is trusted, but the daemon has no client certificate.
    let out = docker(&d, &["push", &image]);
    assert!(
        !out.ok(),
        "pushed without a client certificate: {}",
        out.all()
    );
    assert!(out.all().contains("certificate required"), "{}", out.all());

    certs.add(pki.path("client.pem"), "client.cert");
    certs.add(pki.path("client.key"), "client.key");
    push_and_pull(&d, &image);
}
