//! Behind a reverse proxy: `http.prefix`, `http.host`, `http.relativeurls`
//! and `http.trusted_proxies`, against the real binary. Loopback addresses
//! stand in for the machines: connections from `127.0.0.2` are the trusted
//! proxy, from anything else untrusted clients.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};

use crate::support::api::{Api, Resp};
use crate::support::auth::Setup;
use crate::support::content::{sha256, OCI_MANIFEST};
use crate::support::harness::Registry;

/// A client whose connections come from `127.0.0.{last}`.
fn from(last: u8) -> Client {
    Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

fn send(rb: RequestBuilder) -> Resp {
    let r = rb.send().expect("request");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let body = r.bytes().expect("body").to_vec();
    Resp {
        status,
        headers,
        body,
        what: String::new(),
    }
}

const LOCKOUT: &str = "[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"1m\"\n\
                       user_failures = 100\nuser_window = \"1m\"\nuser_duration = \"1m\"\n\
                       [http]\ntrusted_proxies = [\"127.0.0.2\"]\n";

/// Logs in with a wrong password (or, with `right`, the right one).
fn login(c: &Client, reg: &Registry, xff: Option<&str>, right: bool) -> u16 {
    let pw = if right { "alice-secret" } else { "guess" };
    let mut rb = c.get(reg.url("/v2/")).basic_auth("alice", Some(pw));
    if let Some(x) = xff {
        rb = rb.header("X-Forwarded-For", x);
    }
    rb.send().expect("login").status().as_u16()
}

#[test]
fn an_untrusted_client_sending_x_forwarded_for_is_locked_out_by_its_real_address() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let reg = setup.start(LOCKOUT);
    let attacker = from(3);
    // A new made-up address on every guess: they all count against 127.0.0.3.
    let statuses: Vec<u16> = (0..5)
        .map(|i| login(&attacker, &reg, Some(&format!("203.0.113.{i}")), false))
        .collect();
    assert_eq!(&statuses[..3], [401, 401, 401], "{statuses:?}");
    assert_eq!(&statuses[3..], [429, 429], "{statuses:?}");
    // Even the right password is refused from there now, whatever it claims.
    assert_eq!(login(&attacker, &reg, Some("198.51.100.7"), true), 429);
    // Another address is not locked.
    assert_eq!(login(&from(4), &reg, None, true), 200);
}

#[test]
fn a_trusted_proxy_forwarding_two_clients_locks_out_only_the_guilty_one() {
    let setup = Setup::new();
    setup.add_user("alice", "alice-secret");
    let reg = setup.start(LOCKOUT);
    let proxy = from(2);
    // The guilty client also sends its own X-Forwarded-For, which a proxy
    // that appends passes on: the walk from the right takes the address
    // the proxy saw, not the one the client claimed.
    let guilty = "6.6.6.6, 192.0.2.66";
    let statuses: Vec<u16> = (0..4)
        .map(|_| login(&proxy, &reg, Some(guilty), false))
        .collect();
    assert_eq!(statuses, [401, 401, 401, 429]);
    assert_eq!(login(&proxy, &reg, Some("192.0.2.66"), true), 429);
    // The innocent client behind the same proxy logs in.
    assert_eq!(login(&proxy, &reg, Some("192.0.2.10"), true), 200);
    // The claimed address was never blamed.
    assert_eq!(login(&proxy, &reg, Some("6.6.6.6"), true), 200);
    // The log names the forwarded client.
    assert!(reg.logs().contains("client=192.0.2.66"), "{}", reg.logs());
}

fn start(env: &[(&str, &str)]) -> Api {
    let mut all = vec![
        ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
        ("REGISTRY_LIMITS_MAX_REFERRERS_PAGE", "1"),
    ];
    all.extend_from_slice(env);
    Api::on(Registry::start_with(&all))
}

/// Pushes blobs, manifests and referrers under `/reg` and lists tags,
/// catalog and referrers a page at a time, checking that
/// every `Location` and `Link` the registry hands out satisfies `check`
/// and can be followed as it is.
fn push_and_list(api: &Api, c: &Client, check: &dyn Fn(&str)) {
    let base = api.reg.base.clone();
    let follow = |loc: &str| {
        if loc.starts_with("http") {
            // Absolute: followed on the registry's own address.
            let path = loc.splitn(4, '/').nth(3).unwrap_or_default();
            format!("{base}/{path}")
        } else {
            format!("{base}{loc}")
        }
    };
    let r = send(c.post(format!("{base}/reg/v2/p/app/blobs/uploads/")));
    r.expect(202);
    let loc = r.must_header("location");
    check(&loc);
    let blob = b"layer bytes".to_vec();
    let r = send(c.patch(follow(&loc)).body(blob.clone()));
    r.expect(202);
    let loc = r.must_header("location");
    check(&loc);
    let digest = sha256(&blob);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = send(c.put(format!("{}{sep}digest={digest}", follow(&loc))));
    r.expect(201);
    let loc = r.must_header("location");
    check(&loc);
    assert!(loc.ends_with(&format!("/v2/p/app/blobs/{digest}")), "{loc}");
    send(c.get(follow(&loc))).expect(200);
    let config = api.push_blob_prefixed(c, "p/app", b"{}");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": blob.len()}],
    })
    .to_string();
    for tag in ["a", "b"] {
        let r = send(
            c.put(format!("{base}/reg/v2/p/app/manifests/{tag}"))
                .header("content-type", OCI_MANIFEST)
                .body(manifest.clone()),
        );
        r.expect(201);
        let loc = r.must_header("location");
        check(&loc);
        send(c.get(follow(&loc)).header("accept", OCI_MANIFEST)).expect(200);
    }
    // A second repository, so that the catalog has two pages too.
    api.push_blob_prefixed(c, "p/zz", b"{}");
    api.push_blob_prefixed(c, "p/zz", &blob);
    send(
        c.put(format!("{base}/reg/v2/p/zz/manifests/a"))
            .header("content-type", OCI_MANIFEST)
            .body(manifest.clone()),
    )
    .expect(201);
    // Two referrers of the manifest: two referrers pages (one per page).
    let subject = sha256(manifest.as_bytes());
    for kind in ["application/x.one", "application/x.two"] {
        let referrer = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": kind,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": blob.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": manifest.len()},
        })
        .to_string();
        let r = send(
            c.put(format!(
                "{base}/reg/v2/p/app/manifests/{}",
                sha256(referrer.as_bytes())
            ))
            .header("content-type", OCI_MANIFEST)
            .body(referrer),
        );
        r.expect(201);
        check(&r.must_header("location"));
    }
    let referrers = format!("/reg/v2/p/app/referrers/{subject}");
    for first in [
        "/reg/v2/p/app/tags/list?n=1",
        "/reg/v2/_catalog?n=1",
        referrers.as_str(),
    ] {
        let r = send(c.get(format!("{base}{first}")));
        r.expect(200);
        let link = r.must_header("link");
        let target = crate::support::http::parse_link_next(&link);
        check(&target);
        send(c.get(follow(&target))).expect(200);
    }
}

trait PrefixedPush {
    fn push_blob_prefixed(&self, c: &Client, repo: &str, data: &[u8]) -> String;
}

impl PrefixedPush for Api {
    fn push_blob_prefixed(&self, c: &Client, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        send(
            c.post(format!(
                "{}/reg/v2/{repo}/blobs/uploads/?digest={digest}",
                self.reg.base
            ))
            .body(data.to_vec()),
        )
        .expect(201);
        digest
    }
}

#[test]
fn every_location_and_link_carries_the_prefix_and_is_relative_by_default() {
    let api = start(&[
        ("REGISTRY_HTTP_PREFIX", "/reg/"),
        ("REGISTRY_HTTP_HOST", "https://registry.example.com"),
    ]);
    api.get("/reg/v2/").expect(200).expect_api_version();
    api.get("/reg/v2").expect(200);
    push_and_list(&api, &from(1), &|loc| {
        assert!(
            loc.starts_with("/reg/v2/"),
            "relative, under the prefix: {loc}"
        );
    });
}

#[test]
fn relativeurls_false_builds_absolute_urls_from_http_host() {
    let api = start(&[
        ("REGISTRY_HTTP_PREFIX", "/reg"),
        ("REGISTRY_HTTP_HOST", "https://registry.example.com:8443"),
        ("REGISTRY_HTTP_RELATIVEURLS", "false"),
        ("REGISTRY_HTTP_TRUSTED_PROXIES", "127.0.0.0/8"),
    ]);
    // http.host wins over what a trusted proxy forwards, as in registry:2.
    let c = from(2);
    let r = send(
        c.post(api.reg.url("/reg/v2/x/blobs/uploads/"))
            .header("X-Forwarded-Host", "other.example"),
    );
    r.expect(202);
    assert!(r
        .must_header("location")
        .starts_with("https://registry.example.com:8443/reg/v2/x/blobs/uploads/"));
    push_and_list(&api, &c, &|loc| {
        assert!(
            loc.starts_with("https://registry.example.com:8443/reg/v2/"),
            "{loc}"
        );
    });
}

#[test]
fn a_spoofed_x_forwarded_host_from_an_untrusted_peer_is_not_in_a_location() {
    let api = start(&[
        ("REGISTRY_HTTP_PREFIX", "/reg/"),
        ("REGISTRY_HTTP_RELATIVEURLS", "false"),
        ("REGISTRY_HTTP_TRUSTED_PROXIES", "127.0.0.2, ::1"),
    ]);
    let spoof = |c: &Client| {
        let r = send(
            c.post(api.reg.url("/reg/v2/x/blobs/uploads/"))
                .header("X-Forwarded-Host", "evil.example")
                .header("X-Forwarded-Proto", "https")
                .header("Forwarded", "host=evil2.example;proto=https"),
        );
        r.expect(202);
        r.must_header("location")
    };
    // Untrusted: the Host it connected to, plain http.
    let loc = spoof(&from(3));
    assert!(
        loc.starts_with(&format!(
            "http://127.0.0.1:{}/reg/v2/x/blobs/uploads/",
            api.reg.port
        )),
        "{loc}"
    );
    // The trusted proxy's forwarded host and scheme are honoured.
    let loc = spoof(&from(2));
    assert!(loc.starts_with("https://evil.example/reg/v2/x/"), "{loc}");
    // RFC 7239 alone, from the trusted proxy, with X-Forwarded-Port joined
    // only to X-Forwarded-Host.
    let r = send(
        from(2)
            .post(api.reg.url("/reg/v2/x/blobs/uploads/"))
            .header(
                "Forwarded",
                r#"for=192.0.2.1;host="r.example:444";proto=https"#,
            ),
    );
    assert!(r
        .must_header("location")
        .starts_with("https://r.example:444/reg/v2/x/"));
    // A forwarded host that would carry a path or a user is not used.
    let r = send(
        from(2)
            .post(api.reg.url("/reg/v2/x/blobs/uploads/"))
            .header("X-Forwarded-Host", "evil.example/x?"),
    );
    assert!(
        r.must_header("location")
            .starts_with(&format!("http://127.0.0.1:{}/reg/v2/x/", api.reg.port)),
        "{}",
        r.must_header("location")
    );
}

#[test]
fn requests_outside_the_prefix_get_a_json_404_and_tricks_do_not_reach_the_api() {
    let api = start(&[("REGISTRY_HTTP_PREFIX", "/reg/")]);
    api.push_oci_image_at("/reg", "t/app");
    for path in [
        "/v2/",
        "/v2/_catalog",
        "/v2/t/app/tags/list",
        "/",
        "/reg",
        "/reg/",
        "/regv2/",
        "/REG/v2/",
        "/reg/../v2/_catalog",
        "/reg/./v2/_catalog",
        "/reg//v2/_catalog",
        "/reg/%2e%2e/v2/_catalog",
        "/reg%2Fv2/_catalog",
        "/reg%2fv2/t/app/tags/list",
        "/other/../reg/v2/_catalog",
        "/x/reg/v2/_catalog",
        "/reg/v2/../../v2/_catalog",
        "/reg/%76%32/_catalog",
    ] {
        let r = crate::support::raw::raw(&api.reg, "GET", path, &[], b"");
        let body = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 404, "{path}: {body}");
        assert_eq!(r.error_codes(), ["NOT_FOUND"], "{path}: {body}");
        assert!(!body.contains("t/app"), "{path}: {body}");
    }
    assert_eq!(
        api.get("/reg/v2/_catalog").expect(200).json()["repositories"][0],
        "t/app"
    );
}

trait PrefixedImage {
    fn push_oci_image_at(&self, prefix: &str, repo: &str);
}

impl PrefixedImage for Api {
    fn push_oci_image_at(&self, prefix: &str, repo: &str) {
        let c = from(1);
        let base = &self.reg.base;
        let push = |data: &[u8]| {
            let d = sha256(data);
            send(
                c.post(format!(
                    "{base}{prefix}/v2/{repo}/blobs/uploads/?digest={d}"
                ))
                .body(data.to_vec()),
            )
            .expect(201);
            d
        };
        let (config, layer) = (push(b"{}"), push(b"layer"));
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": 5}],
        });
        send(
            c.put(format!("{base}{prefix}/v2/{repo}/manifests/v1"))
                .header("content-type", OCI_MANIFEST)
                .body(m.to_string()),
        )
        .expect(201);
    }
}

#[test]
fn an_invalid_proxy_config_stops_start_up_naming_the_key() {
    for (var, value, key) in [
        (
            "REGISTRY_HTTP_TRUSTED_PROXIES",
            "10.0.0.0/40",
            "http.trusted_proxies",
        ),
        (
            "REGISTRY_HTTP_TRUSTED_PROXIES",
            "proxy.local",
            "http.trusted_proxies",
        ),
        ("REGISTRY_HTTP_PREFIX", "/a/../b/", "http.prefix"),
        ("REGISTRY_HTTP_HOST", "registry.example.com", "http.host"),
        (
            "REGISTRY_HTTP_RELATIVEURLS",
            "maybe",
            "REGISTRY_HTTP_RELATIVEURLS",
        ),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = crate::support::harness::serve_command(tmp.path(), &[(var, value)], &[])
            .output()
            .expect("run berth");
        assert!(!out.status.success(), "{var}={value} started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{var}={value}: {err}");
    }
}

/// The shipped `deploy/traefik/` example, for real: the `traefik` binary
/// with the example's own static and dynamic configuration, rewritten only
/// where it must be (entrypoint ports, the backend's address, the
/// certificate files), in front of the real berth binary.
mod traefik {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use serde_yaml::Value;

    use crate::support::auth::Setup;
    use crate::support::harness::{free_port, wait_until, Registry};
    use crate::support::image::{small_image, Flavour};
    use crate::support::tools::{have, run, run_input, run_ok, skopeo_ok};

    const LIMIT: Duration = Duration::from_secs(120);

    fn example(file: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/traefik")
            .join(file)
    }

    fn yaml(file: &str) -> Value {
        let text = std::fs::read_to_string(example(file)).expect("read example");
        serde_yaml::from_str(&text).expect("example YAML")
    }

    fn at<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Value {
        path.iter().fold(v, |v, k| {
            v.get_mut(*k)
                .unwrap_or_else(|| panic!("deploy/traefik has no {}", path.join(".")))
        })
    }

    /// A test CA and a certificate for 127.0.0.1 signed by it, made by the
    /// openssl CLI (as tests/tls does).
    fn certificates(dir: &Path) {
        let openssl = |args: &[&str]| {
            run_ok(Command::new("openssl").args(args).current_dir(dir), LIMIT);
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-days",
            "2",
            "-subj",
            "/CN=Berth test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(&ca);
        let mut csr = vec!["req"];
        csr.extend(ec);
        csr.extend([
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "registry.key",
            "-out",
            "registry.csr",
        ]);
        openssl(&csr);
        std::fs::write(
            dir.join("registry.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n\
             basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )
        .expect("ext");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "registry.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "registry.ext",
            "-out",
            "registry.crt",
        ]);
    }

    /// Traefik, stopped (by its own PID) when dropped.
    struct Traefik {
        child: Child,
        log: PathBuf,
        https: u16,
        http: u16,
    }

    impl Drop for Traefik {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    impl Traefik {
        fn log(&self) -> String {
            std::fs::read_to_string(&self.log).unwrap_or_default()
        }

        fn start(dir: &Path, berth_port: u16) -> Traefik {
            let (http, https) = (free_port(), free_port());
            let dynamic_path = dir.join("dynamic.yml");
            let mut st = yaml("traefik.yml");
            *at(&mut st, &["entryPoints", "web", "address"]) = format!("127.0.0.1:{http}").into();
            *at(&mut st, &["entryPoints", "websecure", "address"]) =
                format!("127.0.0.1:{https}").into();
            *at(&mut st, &["providers", "file", "filename"]) =
                dynamic_path.display().to_string().into();
            let mut dy = yaml("dynamic.yml");
            let servers = at(
                &mut dy,
                &["http", "services", "berth", "loadBalancer", "servers"],
            );
            *at(&mut servers[0], &["url"]) = format!("http://127.0.0.1:{berth_port}").into();
            let cert = &mut at(&mut dy, &["tls", "certificates"])[0];
            *at(cert, &["certFile"]) = dir.join("registry.crt").display().to_string().into();
            *at(cert, &["keyFile"]) = dir.join("registry.key").display().to_string().into();
            let static_path = dir.join("traefik.yml");
            std::fs::write(&static_path, serde_yaml::to_string(&st).expect("yaml")).expect("write");
            std::fs::write(&dynamic_path, serde_yaml::to_string(&dy).expect("yaml"))
                .expect("write");
            let log = dir.join("traefik.log");
            let out = std::fs::File::create(&log).expect("log");
            let child = Command::new("traefik")
                .arg(format!("--configFile={}", static_path.display()))
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .spawn()
                .expect("spawn traefik");
            Traefik {
                child,
                log,
                https,
                http,
            }
        }
    }

    /// `curl --cacert` through Traefik: status code (and redirect URL).
    fn curl(dir: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version} %{redirect_url}",
        ])
        .arg("--cacert")
        .arg(dir.join("ca.crt"))
        .args(args);
        run(&mut cmd, Duration::from_secs(20)).stdout
    }

    #[test]
    fn berth_behind_the_shipped_traefik_example_serves_docker_skopeo_and_curl_over_tls() {
        for tool in ["traefik", "openssl", "curl", "skopeo"] {
            if !have(tool) {
                println!("skipped: {tool} is not installed (CI installs it: .ci/run)");
                return;
            }
        }
        let setup = Setup::new();
        setup.add_user("alice", "alice-secret");
        let berth = setup.start(
            "[access.lockout]\nfailures = 3\nwindow = \"1m\"\nduration = \"1m\"\n\
             user_failures = 100\nuser_window = \"1m\"\nuser_duration = \"1m\"\n\
             [http]\ntrusted_proxies = [\"127.0.0.1\"]\n",
        );
        let work = tempfile::tempdir().expect("tempdir");
        let dir = work.path();
        certificates(dir);
        let traefik = Traefik::start(dir, berth.port);
        let https = format!("https://127.0.0.1:{}", traefik.https);
        let up = wait_until(Duration::from_secs(30), || {
            curl(dir, &[&format!("{https}/v2/")]).starts_with("401")
        });
        assert!(up, "traefik did not route to berth:\n{}", traefik.log());

        // curl over HTTPS (HTTP/2 through ALPN) with the test CA; plain
        // HTTP is redirected to HTTPS.
        let out = curl(
            dir,
            &[
                "--http2",
                "-u",
                "alice:alice-secret",
                &format!("{https}/v2/"),
            ],
        );
        assert!(out.starts_with("200 2"), "{out}");
        let out = curl(dir, &[&format!("http://127.0.0.1:{}/v2/", traefik.http)]);
        assert!(
            out.starts_with("301 ") || out.starts_with("308 "),
            "http is redirected: {out}"
        );
        assert!(out.contains("https://127.0.0.1"), "{out}");

        // skopeo pushes a real image through Traefik and pulls it back.
        let source = Registry::start();
        let image = small_image(Flavour::Oci, "amd64", "behind traefik");
        crate::support::push::push_tree(&source.base, "src/app", &image, "v1");
        let certs = dir.join("certs.d");
        std::fs::create_dir_all(&certs).expect("certs dir");
        std::fs::copy(dir.join("ca.crt"), certs.join("ca.crt")).expect("ca");
        let certs = certs.display().to_string();
        let there = format!("docker://127.0.0.1:{}/app/one:v1", traefik.https);
        skopeo_ok(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/src/app:v1", source.host()),
            &there,
            "--dest-cert-dir",
            &certs,
            "--dest-creds",
            "alice:alice-secret",
        ]);
        let pulled = dir.join("pulled");
        skopeo_ok(&[
            "copy",
            "--src-cert-dir",
            &certs,
            "--src-creds",
            "alice:alice-secret",
            &there,
            &format!("dir:{}", pulled.display()),
        ]);
        let manifest = std::fs::read(pulled.join("manifest.json")).expect("pulled manifest");
        assert_eq!(
            manifest, image.bytes,
            "the manifest came back byte for byte"
        );
        for blob in image.all_blobs() {
            let hex = blob.digest.trim_start_matches("sha256:");
            assert_eq!(std::fs::read(pulled.join(hex)).expect("blob"), blob.data);
        }

        docker_through(dir, traefik.https);

        // The lockout sees the client's address (forwarded by Traefik in
        // X-Forwarded-For), though every connection comes from Traefik.
        let ca = reqwest::Certificate::from_pem(&std::fs::read(dir.join("ca.crt")).expect("ca"))
            .expect("ca pem");
        let from = |last: u8| {
            reqwest::blocking::Client::builder()
                .add_root_certificate(ca.clone())
                .local_address(std::net::IpAddr::from([127, 0, 0, last]))
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client")
        };
        let login = |c: &reqwest::blocking::Client, pw: &str| {
            c.get(format!("{https}/v2/"))
                .basic_auth("alice", Some(pw))
                .send()
                .expect("login through traefik")
                .status()
                .as_u16()
        };
        let guesser = from(3);
        let statuses: Vec<u16> = (0..4).map(|_| login(&guesser, "guess")).collect();
        assert_eq!(statuses, [401, 401, 401, 429], "{}", traefik.log());
        assert_eq!(login(&guesser, "alice-secret"), 429);
        assert_eq!(
            login(&from(4), "alice-secret"),
            200,
            "another client is not locked out"
        );
        assert!(
            berth.logs().contains("client=127.0.0.3"),
            "{}",
            berth.logs()
        );
    }

    /// `docker push` and `docker pull` through Traefik, the test CA in
    /// `/etc/docker/certs.d/127.0.0.1:<port>/ca.crt` (no insecure-registries),
    /// when a Docker daemon can be started here.
    fn docker_through(dir: &Path, port: u16) {
        if !have("docker") || !have("dockerd") {
            println!("docker part skipped: docker or dockerd is not installed");
            return;
        }
        let host = format!("127.0.0.1:{port}");
        let certs_d = PathBuf::from("/etc/docker/certs.d").join(&host);
        if std::fs::create_dir_all(&certs_d).is_err()
            || std::fs::copy(dir.join("ca.crt"), certs_d.join("ca.crt")).is_err()
        {
            println!("docker part skipped: cannot write {}", certs_d.display());
            return;
        }
        let d = crate::support::dockerd::Dockerd::start("berth-traefik.");
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).expect("rootfs");
        std::fs::write(rootfs.join("hello.txt"), "hello through traefik\n").expect("file");
        // A one-file tar: tar finishes at once, its output is the bytes.
        let tar = Command::new("tar")
            .args(["-cf", "-", "-C"])
            .arg(&rootfs)
            .arg(".")
            .output()
            .expect("tar");
        assert!(tar.status.success(), "tar failed");
        let image = format!("{host}/docker/app:v1");
        let steps: Vec<(Vec<&str>, Option<Vec<u8>>)> = vec![
            (vec!["import", "-", &image], Some(tar.stdout)),
            (
                vec!["login", &host, "-u", "alice", "--password-stdin"],
                Some(b"alice-secret".to_vec()),
            ),
            (vec!["push", &image], None),
            (vec!["rmi", &image], None),
            (vec!["pull", &image], None),
            (vec!["image", "inspect", &image], None),
        ];
        for (args, stdin) in steps {
            let out = run_input(&mut d.cmd("docker", &args), stdin, LIMIT);
            if !out.ok() {
                d.dump_log();
            }
            assert!(out.ok(), "docker {}: {}", args.join(" "), out.all());
        }
        let _ = std::fs::remove_dir_all(&certs_d);
    }
}
