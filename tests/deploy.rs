//! Offline checks of `deploy/`: the Kubernetes manifests parse, carry the
//! fields the API server requires, and agree with each other and with the
//! image (port 5000, uid 65532, /var/lib/registry, the healthcheck command);
//! kustomization.yaml lists every manifest; the compose files (and the
//! Traefik example's config) and the Dockerfile say what the README promises. No cluster or daemon needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every YAML document of a file.
fn documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v: &Value| !v.is_null())
        .collect()
}

fn get<'a>(v: &'a Value, path: &str) -> &'a Value {
    let mut node = v;
    for key in path.split('.') {
        node = match key.parse::<usize>() {
            Ok(i) => node.get(i),
            Err(_) => node.get(key),
        }
        .unwrap_or_else(|| panic!("missing {path} (at {key}) in {v:?}"));
    }
    node
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    get(v, path)
        .as_str()
        .unwrap_or_else(|| panic!("{path} is not a string"))
}

fn int_at(v: &Value, path: &str) -> i64 {
    get(v, path)
        .as_i64()
        .unwrap_or_else(|| panic!("{path} is not an integer"))
}

/// The manifests kustomization.yaml lists, parsed, with their file names.
fn kustomized() -> (Value, Vec<(String, Value)>) {
    let dir = deploy().join("kubernetes");
    let k = documents(&dir.join("kustomization.yaml")).remove(0);
    assert_eq!(str_at(&k, "apiVersion"), "kustomize.config.k8s.io/v1beta1");
    assert_eq!(str_at(&k, "kind"), "Kustomization");
    let mut out = Vec::new();
    for r in get(&k, "resources").as_sequence().expect("resources list") {
        let name = r.as_str().expect("resource path");
        for doc in documents(&dir.join(name)) {
            out.push((name.to_string(), doc));
        }
    }
    (k, out)
}

#[test]
fn kustomization_lists_every_manifest() {
    let dir = deploy().join("kubernetes");
    let (k, _) = kustomized();
    let listed: BTreeSet<String> = get(&k, "resources")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
    assert_eq!(str_at(&k, "namespace"), "berth");
}

#[test]
fn manifests_have_required_fields() {
    let (_, docs) = kustomized();
    let mut kinds = BTreeSet::new();
    for (file, d) in &docs {
        let kind = str_at(d, "kind");
        let api = str_at(d, "apiVersion");
        let name = str_at(d, "metadata.name");
        assert!(!name.is_empty(), "{file}: empty metadata.name");
        assert!(
            name.len() <= 63
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{file}: {name:?} is not a DNS label"
        );
        let expected_api = match kind {
            "Namespace" | "Service" | "Secret" | "PersistentVolumeClaim" | "ConfigMap" => "v1",
            "Deployment" => "apps/v1",
            other => panic!("{file}: unexpected kind {other}"),
        };
        assert_eq!(api, expected_api, "{file}: apiVersion of {kind}");
        if kind != "Namespace" {
            assert_eq!(str_at(d, "metadata.namespace"), "berth", "{file}");
        }
        kinds.insert((kind.to_string(), name.to_string()));
    }
    for want in [
        ("Namespace", "berth"),
        ("Deployment", "berth"),
        ("Service", "berth"),
        ("Service", "berth-nodeport"),
        ("PersistentVolumeClaim", "berth-data"),
        ("Secret", "berth-htpasswd"),
    ] {
        assert!(
            kinds.contains(&(want.0.to_string(), want.1.to_string())),
            "missing {want:?}"
        );
    }
}

fn find<'a>(docs: &'a [(String, Value)], kind: &str, name: &str) -> &'a Value {
    &docs
        .iter()
        .find(|(_, d)| str_at(d, "kind") == kind && str_at(d, "metadata.name") == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .1
}

#[test]
fn deployment_is_probed_limited_non_root_and_wired() {
    let (_, docs) = kustomized();
    let dep = find(&docs, "Deployment", "berth");
    let labels = get(dep, "spec.selector.matchLabels");
    assert_eq!(get(dep, "spec.template.metadata.labels"), labels);
    let pod = get(dep, "spec.template.spec");
    assert!(get(pod, "securityContext.runAsNonRoot").as_bool().unwrap());
    assert_eq!(int_at(pod, "securityContext.runAsUser"), 65532);
    assert_eq!(int_at(pod, "securityContext.fsGroup"), 65532);
    assert!(int_at(pod, "terminationGracePeriodSeconds") > 30);
    let containers = get(pod, "containers").as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    assert!(!str_at(c, "image").is_empty());
    assert_eq!(int_at(c, "ports.0.containerPort"), 5000);
    assert_eq!(str_at(c, "ports.0.name"), "http");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let cmd: Vec<&str> = get(c, &format!("{probe}.exec.command"))
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(cmd, ["/berth", "healthcheck"], "{probe}");
    }
    for r in ["requests.cpu", "requests.memory", "limits.memory"] {
        get(c, &format!("resources.{r}"));
    }
    let sc = get(c, "securityContext");
    assert!(!get(sc, "allowPrivilegeEscalation").as_bool().unwrap());
    assert!(get(sc, "readOnlyRootFilesystem").as_bool().unwrap());
    assert_eq!(str_at(sc, "capabilities.drop.0"), "ALL");

    // Environment: registry:2 names, auth from the mounted Secret.
    let env: Vec<(&str, &str)> = get(c, "env")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                str_at(e, "name"),
                e.get("value").and_then(|v| v.as_str()).unwrap_or(""),
            )
        })
        .collect();
    let var = |n: &str| {
        env.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no env {n}"))
    };
    assert_eq!(var("REGISTRY_AUTH"), "htpasswd");
    let htpasswd = var("REGISTRY_AUTH_HTPASSWD_PATH");
    assert_eq!(
        var("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY"),
        "/var/lib/registry"
    );

    // Volumes: the PVC at the data dir, the Secret at the htpasswd dir.
    let mounts = get(c, "volumeMounts").as_sequence().unwrap();
    let volumes = get(pod, "volumes").as_sequence().unwrap();
    let mount_of = |path: &str| {
        let m = mounts
            .iter()
            .find(|m| str_at(m, "mountPath") == path)
            .unwrap_or_else(|| panic!("nothing mounted at {path}"));
        let name = str_at(m, "name");
        volumes
            .iter()
            .find(|v| str_at(v, "name") == name)
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let data = mount_of("/var/lib/registry");
    let claim = str_at(data, "persistentVolumeClaim.claimName");
    find(&docs, "PersistentVolumeClaim", claim);
    let secret_dir = Path::new(htpasswd).parent().unwrap().to_str().unwrap();
    let auth = mount_of(secret_dir);
    let secret = find(&docs, "Secret", str_at(auth, "secret.secretName"));
    let key = Path::new(htpasswd).file_name().unwrap().to_str().unwrap();
    assert!(
        secret
            .get("stringData")
            .and_then(|d| d.get(key))
            .or_else(|| secret.get("data").and_then(|d| d.get(key)))
            .is_some(),
        "the Secret has no {key} key"
    );
}

#[test]
fn services_select_the_pods_and_expose_5000() {
    let (_, docs) = kustomized();
    let dep = find(&docs, "Deployment", "berth");
    let labels = get(dep, "spec.template.metadata.labels")
        .as_mapping()
        .unwrap();
    for (name, ty) in [("berth", "ClusterIP"), ("berth-nodeport", "NodePort")] {
        let svc = find(&docs, "Service", name);
        assert_eq!(str_at(svc, "spec.type"), ty);
        for (k, v) in get(svc, "spec.selector").as_mapping().unwrap() {
            assert_eq!(labels.get(k), Some(v), "{name}: selector {k:?}");
        }
        assert_eq!(int_at(svc, "spec.ports.0.port"), 5000);
        assert_eq!(str_at(svc, "spec.ports.0.targetPort"), "http");
    }
    let np = find(&docs, "Service", "berth-nodeport");
    assert_eq!(int_at(np, "spec.ports.0.nodePort"), 32000);
}

#[test]
fn compose_file_runs_the_image_with_auth_volume_and_healthcheck() {
    let c = documents(&deploy().join("docker-compose.yml")).remove(0);
    let r = get(&c, "services.registry");
    assert_eq!(str_at(r, "restart"), "unless-stopped");
    let env = get(r, "environment");
    assert_eq!(str_at(env, "REGISTRY_AUTH"), "htpasswd");
    assert!(str_at(env, "BERTH_INITIAL_PASSWORD").contains("BERTH_INITIAL_PASSWORD:?"));
    let htpasswd = str_at(env, "REGISTRY_AUTH_HTPASSWD_PATH");
    assert!(
        htpasswd.starts_with("/var/lib/registry/"),
        "the bootstrapped htpasswd file must live in the volume: {htpasswd}"
    );
    let volume = str_at(r, "volumes.0");
    let (name, path) = volume.split_once(':').unwrap();
    assert_eq!(path, "/var/lib/registry");
    get(&c, &format!("volumes.{name}"));
    let test: Vec<&str> = get(r, "healthcheck.test")
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(test, ["CMD", "/berth", "healthcheck"]);
}

#[test]
fn dockerfile_is_small_non_root_and_self_checking() {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    assert!(has("ARG RUST_IMAGE=rust:1-bookworm"));
    assert!(has("FROM scratch"));
    assert!(has("USER 65532:65532"));
    assert!(has("EXPOSE 5000"));
    assert!(has("VOLUME [\"/var/lib/registry\"]"));
    assert!(has("CMD [\"/berth\", \"healthcheck\"]"));
    assert!(has("ENTRYPOINT [\"/berth\"]"));
    assert!(has("CMD [\"serve\", \"/etc/berth/config.toml\"]"));
    // The config the image ships is valid and listens on every interface.
    let config = deploy().join("docker/config.toml");
    let c = berth::config::Config::load(Some(&config), Vec::new()).expect("image config");
    assert_eq!(c.listen_addr().unwrap().to_string(), "0.0.0.0:5000");
    assert_eq!(
        c.storage.filesystem.rootdirectory,
        PathBuf::from("/var/lib/registry")
    );
}

#[test]
fn systemd_unit_runs_serve_unprivileged() {
    let unit = read(&deploy().join("systemd/berth.service"));
    for want in [
        "[Unit]",
        "[Service]",
        "[Install]",
        "ExecStart=/usr/local/bin/berth serve ",
        "DynamicUser=yes",
        "StateDirectory=berth",
        "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=/var/lib/berth",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.contains(want), "berth.service lacks {want}");
    }
}

#[test]
fn kind_mirror_points_localhost_5000_at_the_registry() {
    let dir = deploy().join("kind");
    let cfg = documents(&dir.join("kind-config.yaml")).remove(0);
    assert_eq!(str_at(&cfg, "kind"), "Cluster");
    let patch = str_at(&cfg, "containerdConfigPatches.0");
    assert!(patch.contains("config_path = \"/etc/containerd/certs.d\""));
    assert_eq!(
        str_at(&cfg, "nodes.0.extraMounts.0.containerPath"),
        "/etc/containerd/certs.d"
    );
    let hosts: toml::Table = read(&dir.join("certs.d/localhost:5000/hosts.toml"))
        .parse()
        .expect("hosts.toml");
    assert_eq!(hosts["server"].as_str(), Some("http://berth:5000"));
    assert!(read(&dir.join("README.md")).contains("docker network connect kind berth"));
}

#[test]
fn traefik_example_compose_file_agrees_with_its_traefik_config() {
    let dir = deploy().join("traefik");
    let c = documents(&dir.join("docker-compose.yml")).remove(0);
    let st = documents(&dir.join("traefik.yml")).remove(0);
    let dy = documents(&dir.join("dynamic.yml")).remove(0);
    let seq = |v: &Value, path: &str| -> Vec<String> {
        get(v, path)
            .as_sequence()
            .unwrap_or_else(|| panic!("{path} is not a list"))
            .iter()
            .map(|v| v.as_str().expect("string").to_string())
            .collect()
    };
    let t = get(&c, "services.traefik");
    let b = get(&c, "services.berth");
    assert!(str_at(t, "image").starts_with("traefik:v3.7"));
    for s in [t, b] {
        assert!(get(s, "stop_grace_period").as_str().is_some());
    }
    // Published ports are the entrypoints' ports; 80 redirects to 443.
    let ports = seq(t, "ports");
    for (entry, port) in [("web", "80"), ("websecure", "443")] {
        let address = str_at(&st, &format!("entryPoints.{entry}.address"));
        assert_eq!(address, format!(":{port}"));
        assert!(ports.contains(&format!("{port}:{port}")), "{ports:?}");
    }
    assert_eq!(
        str_at(&st, "entryPoints.web.http.redirections.entryPoint.to"),
        "websecure"
    );
    assert_eq!(
        str_at(&st, "entryPoints.web.http.redirections.entryPoint.scheme"),
        "https"
    );
    // Traefik reads the files compose mounts, where compose mounts them.
    let mounts = seq(t, "volumes");
    let mounted = |container_path: &str| {
        mounts
            .iter()
            .find(|m| m.split(':').nth(1) == Some(container_path))
            .map(|m| m.split(':').next().unwrap_or_default().to_string())
    };
    assert_eq!(
        mounted("/etc/traefik/traefik.yml").as_deref(),
        Some("./traefik.yml")
    );
    let dynamic = str_at(&st, "providers.file.filename");
    assert_eq!(mounted(dynamic).as_deref(), Some("./dynamic.yml"));
    let cert = str_at(&dy, "tls.certificates.0.certFile");
    let key = str_at(&dy, "tls.certificates.0.keyFile");
    for file in [cert, key] {
        let parent = Path::new(file)
            .parent()
            .expect("dir")
            .to_str()
            .expect("utf-8");
        assert!(mounted(parent).is_some(), "{file} is not in a mounted dir");
    }
    // The router serves TLS on websecure and goes to the berth service, at
    // the address and port Berth listens on.
    let router = get(&dy, "http.routers.berth");
    assert_eq!(seq(router, "entryPoints"), ["websecure"]);
    get(router, "tls");
    let service = str_at(router, "service");
    let url = str_at(
        &dy,
        &format!("http.services.{service}.loadBalancer.servers.0.url"),
    );
    let env = get(b, "environment");
    let listen = str_at(env, "REGISTRY_HTTP_ADDR");
    let port = listen.trim_start_matches(':');
    assert_eq!(url, format!("http://berth:{port}"));
    assert_eq!(seq(b, "expose"), [port]);
    assert!(b.get("ports").is_none(), "only Traefik reaches Berth");
    // Berth trusts exactly Traefik's fixed address on the compose network.
    let trusted = str_at(env, "REGISTRY_HTTP_TRUSTED_PROXIES");
    assert_eq!(
        trusted,
        str_at(t, "networks.registry.ipv4_address"),
        "http.trusted_proxies must be Traefik's address"
    );
    let subnet = str_at(&c, "networks.registry.ipam.config.0.subnet");
    let net: berth::config::IpNet = subnet.parse().expect("subnet");
    assert!(net.contains(trusted.parse().expect("ip")));
    get(b, "networks.registry");
    // Berth's REGISTRY_HTTP_* settings there are a valid configuration.
    let vars: Vec<(String, String)> = env
        .as_mapping()
        .expect("environment map")
        .iter()
        .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
        .filter(|(k, _)| k.starts_with("REGISTRY_HTTP_"))
        .collect();
    berth::config::Config::load(None, vars).expect("compose's Berth settings");
}
