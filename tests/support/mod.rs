//! Helpers shared by the real-client tests (skopeo, docker, interop):
//! running external commands with a time limit, building image content
//! (tar layers, configs, manifests, indexes) and OCI image layouts by hand,
//! pushing and reading content over plain HTTP, and running Debian's
//! `docker-registry` (CNCF distribution) on a free loopback port.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Every manifest media type a modern client accepts.
pub const ACCEPT_ALL: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

// ---------------------------------------------------------------------------
// Running commands

/// What a finished command printed.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    /// stdout and stderr together, for matching messages a user sees.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion, feeding it `stdin`, killing it (and panicking)
/// after `limit`. Both output streams are echoed to the test log.
pub fn run_input(cmd: &mut Command, stdin: Option<Vec<u8>>, limit: Duration) -> Out {
    let shown = format!("{cmd:?}");
    eprintln!("$ {shown}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {shown}: {e}"));
    let writer = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().expect("stdout pipe");
    let mut err_pipe = child.stderr.take().expect("stderr pipe");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let so = String::from_utf8_lossy(&out_t.join().unwrap_or_default()).into_owned();
                let se = String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned();
                panic!("timed out after {limit:?}: {shown}\nstdout:\n{so}\nstderr:\n{se}");
            }
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout_bytes = out_t.join().unwrap_or_default();
    let out = Out {
        status,
        stdout: String::from_utf8_lossy(&stdout_bytes).into_owned(),
        stderr: String::from_utf8_lossy(&err_t.join().unwrap_or_default()).into_owned(),
    };
    if out.stdout.len() < 4000 {
        eprintln!("{}", out.stdout.trim_end());
    } else {
        eprintln!("({} bytes of stdout)", out.stdout.len());
    }
    if !out.stderr.trim().is_empty() {
        eprintln!("stderr: {}", out.stderr.trim_end());
    }
    eprintln!("-> {status}");
    out
}

/// Runs `cmd` with a time limit; see [`run_input`].
pub fn run(cmd: &mut Command, limit: Duration) -> Out {
    run_input(cmd, None, limit)
}

/// Runs `cmd` and panics, showing its output, unless it succeeds.
pub fn run_ok(cmd: &mut Command, limit: Duration) -> Out {
    let shown = format!("{cmd:?}");
    let out = run(cmd, limit);
    assert!(
        out.ok(),
        "command failed ({}): {shown}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// `skopeo --insecure-policy ARGS...` (the caller passes the TLS flags).
pub fn skopeo(args: &[&str]) -> Out {
    let mut cmd = Command::new("skopeo");
    cmd.arg("--insecure-policy").args(args);
    run(&mut cmd, Duration::from_secs(180))
}

/// Like [`skopeo`], panicking unless it succeeds.
pub fn skopeo_ok(args: &[&str]) -> Out {
    let out = skopeo(args);
    assert!(
        out.ok(),
        "skopeo {args:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        out.stdout,
        out.stderr
    );
    out
}

/// Waits for a `listening on ADDR` log line from a child's output streams;
/// the rest of the output goes to the test log with `prefix`.
fn watch_listen(child: &mut Child, prefix: &'static str, limit: Duration) -> Option<String> {
    let (tx, rx) = mpsc::channel::<String>();
    let streams: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.stdout.take().expect("stdout pipe")),
        Box::new(child.stderr.take().expect("stderr pipe")),
    ];
    for s in streams {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                eprintln!("[{prefix}] {line}");
                if let Some(i) = line.find("listening on ") {
                    let addr: String = line[i + "listening on ".len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(addr);
                }
            }
        });
    }
    rx.recv_timeout(limit).ok()
}

// ---------------------------------------------------------------------------
// Tar archives

/// One member of a tar archive.
pub enum Entry<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
}

fn octal(field: &mut [u8], value: u64) {
    // N-1 octal digits followed by NUL, as GNU tar and Go's archive/tar write.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    assert!(s.len() == digits, "value {value} too large for tar field");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

fn tar_header(name: &str, mode: u32, size: u64, kind: u8, link: &str) -> [u8; 512] {
    assert!(name.len() < 100 && link.len() < 100, "tar name too long");
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], mode as u64);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| b as u32).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

/// A deterministic ustar archive of `entries` (owner root, fixed mtime).
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        match e {
            Entry::Dir(name) => {
                let name = if name.ends_with('/') {
                    name.to_string()
                } else {
                    format!("{name}/")
                };
                out.extend_from_slice(&tar_header(&name, 0o755, 0, b'5', ""));
            }
            Entry::File(name, data, mode) => {
                out.extend_from_slice(&tar_header(name, *mode, data.len() as u64, b'0', ""));
                out.extend_from_slice(data);
                let pad = (512 - data.len() % 512) % 512;
                out.extend(std::iter::repeat_n(0u8, pad));
            }
            Entry::Symlink(name, target) => {
                out.extend_from_slice(&tar_header(name, 0o777, 0, b'2', target));
            }
        }
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// `data` compressed with the `gzip` command (`-n`: no name or time, so the
/// output is the same every run).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new("gzip");
    cmd.args(["-n", "-c"]);
    let shown = format!("{cmd:?}");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("spawn gzip");
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data));
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    w.join().unwrap().expect("write to gzip");
    assert!(child.wait().unwrap().success(), "{shown} failed");
    out
}

// ---------------------------------------------------------------------------
// Image content

/// A blob with its media type.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub data: Vec<u8>,
    pub digest: String,
}

impl Blob {
    pub fn new(media_type: &str, data: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_string(),
            digest: sha256(&data),
            data,
        }
    }

    /// The OCI descriptor of this blob.
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.data.len()})
    }
}

/// A manifest (image or index) with everything it refers to.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub media_type: String,
    pub bytes: Vec<u8>,
    pub digest: String,
    /// Config then layers, for an image manifest.
    pub blobs: Vec<Blob>,
    /// Child manifests, for an index or manifest list.
    pub children: Vec<Manifest>,
    pub platform: Option<(String, String)>,
}

impl Manifest {
    pub fn config(&self) -> &Blob {
        &self.blobs[0]
    }
    pub fn layers(&self) -> &[Blob] {
        &self.blobs[1..]
    }
    pub fn layer_digests(&self) -> Vec<String> {
        self.layers().iter().map(|b| b.digest.clone()).collect()
    }

    /// Every blob this manifest reaches, children included.
    pub fn all_blobs(&self) -> Vec<Blob> {
        let mut v = self.blobs.clone();
        for c in &self.children {
            v.extend(c.all_blobs());
        }
        v
    }

    /// The descriptor of this manifest (with its platform, for index entries).
    pub fn descriptor(&self) -> Value {
        let mut d =
            json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()});
        if let Some((os, arch)) = &self.platform {
            d["platform"] = json!({"architecture": arch, "os": os});
        }
        d
    }
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).expect("json")
}

/// Which manifest flavour an image is written in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Flavour {
    Oci,
    Docker,
}

/// An image for `linux/<arch>` with one layer per entry of `layers`, each a
/// tar of the given files (gzipped). `label` ends up in the config labels
/// and makes otherwise identical images differ.
pub fn image(flavour: Flavour, arch: &str, layers: &[&[(&str, &[u8])]], label: &str) -> Manifest {
    let (m_type, c_type, l_type) = match flavour {
        Flavour::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP),
        Flavour::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP),
    };
    let mut layer_blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layers {
        let entries: Vec<Entry> = files
            .iter()
            .map(|(name, data)| Entry::File(name, data, 0o644))
            .collect();
        let raw = tar(&entries);
        diff_ids.push(sha256(&raw));
        layer_blobs.push(Blob::new(l_type, gzip(&raw)));
    }
    let config = json!({
        "architecture": arch,
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Cmd": ["/bin/sh"],
            "Labels": {"berth.test": label},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "berth tests"}],
    });
    let config = Blob::new(c_type, to_bytes(&config));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": m_type,
        "config": config.descriptor(),
        "layers": layer_blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
    });
    let bytes = to_bytes(&manifest);
    let mut blobs = vec![config];
    blobs.extend(layer_blobs);
    Manifest {
        media_type: m_type.to_string(),
        digest: sha256(&bytes),
        bytes,
        blobs,
        children: Vec::new(),
        platform: Some(("linux".into(), arch.into())),
    }
}

/// A small single-layer image with one file whose content is `text`.
pub fn small_image(flavour: Flavour, arch: &str, text: &str) -> Manifest {
    image(
        flavour,
        arch,
        &[&[("hello.txt", text.as_bytes())]],
        &format!("{arch}:{text}"),
    )
}

/// An index (OCI image index or Docker manifest list) over `children`.
pub fn index(flavour: Flavour, children: Vec<Manifest>) -> Manifest {
    let m_type = match flavour {
        Flavour::Oci => OCI_INDEX,
        Flavour::Docker => DOCKER_LIST,
    };
    let v = json!({
        "schemaVersion": 2,
        "mediaType": m_type,
        "manifests": children.iter().map(Manifest::descriptor).collect::<Vec<_>>(),
    });
    let bytes = to_bytes(&v);
    Manifest {
        media_type: m_type.to_string(),
        digest: sha256(&bytes),
        bytes,
        blobs: Vec::new(),
        children,
        platform: None,
    }
}

// ---------------------------------------------------------------------------
// OCI image layouts

/// An OCI image layout directory being written.
pub struct Layout {
    pub dir: PathBuf,
    entries: Vec<Value>,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let l = Layout {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
        };
        l.write_index();
        l
    }

    fn write_blob(&self, digest: &str, data: &[u8]) {
        let hex = digest.strip_prefix("sha256:").unwrap();
        std::fs::write(self.dir.join("blobs/sha256").join(hex), data).unwrap();
    }

    fn write_tree(&self, m: &Manifest) {
        for b in &m.blobs {
            self.write_blob(&b.digest, &b.data);
        }
        for c in &m.children {
            self.write_tree(c);
        }
        self.write_blob(&m.digest, &m.bytes);
    }

    fn write_index(&self) {
        let v = json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": self.entries,
        });
        std::fs::write(self.dir.join("index.json"), to_bytes(&v)).unwrap();
    }

    /// Adds `m` (and all it refers to) under the name `tag`.
    pub fn add(&mut self, m: &Manifest, tag: &str) {
        self.write_tree(m);
        let mut d = json!({"mediaType": m.media_type, "digest": m.digest, "size": m.bytes.len()});
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
        self.entries.push(d);
        self.write_index();
    }

    /// `oci:DIR:tag`, as skopeo names an image in this layout.
    pub fn reference(&self, tag: &str) -> String {
        format!("oci:{}:{tag}", self.dir.display())
    }
}

/// The descriptor named `tag` in the `index.json` of the layout at `dir`.
pub fn layout_entry(dir: &Path, tag: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("no {tag} in {index}"))
        .clone()
}

/// The bytes of blob `digest` in the layout at `dir`.
pub fn layout_blob(dir: &Path, digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').expect("digest");
    std::fs::read(dir.join("blobs").join(alg).join(hex))
        .unwrap_or_else(|e| panic!("blob {digest} missing from {}: {e}", dir.display()))
}

// ---------------------------------------------------------------------------
// Plain HTTP: pushing and reading

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client")
}

/// Resolves a `Location` header (absolute or relative) against `base`.
fn absolute(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else {
        format!("{base}{location}")
    }
}

/// Pushes one blob with a monolithic POST-then-PUT upload.
pub fn push_blob(base: &str, repo: &str, data: &[u8]) -> String {
    let c = client();
    let digest = sha256(data);
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("POST upload");
    assert_eq!(r.status().as_u16(), 202, "start upload in {repo}: {r:?}");
    let loc = r
        .headers()
        .get("location")
        .expect("Location")
        .to_str()
        .unwrap()
        .to_string();
    let loc = absolute(base, &loc);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{loc}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .expect("PUT upload");
    let status = r.status().as_u16();
    assert_eq!(
        status,
        201,
        "finish upload of {digest} in {repo}: {:?}",
        r.text()
    );
    digest
}

/// Starts an upload in `repo` and sends `data` as its first chunk, leaving
/// it unfinished. Returns the upload's URL.
pub fn start_upload(base: &str, repo: &str, data: &[u8]) -> String {
    let c = client();
    let r = c
        .post(format!("{base}/v2/{repo}/blobs/uploads/"))
        .send()
        .expect("POST upload");
    assert_eq!(r.status().as_u16(), 202, "start upload in {repo}");
    let loc = absolute(base, r.headers()["location"].to_str().unwrap());
    let r = c
        .patch(&loc)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("0-{}", data.len() - 1))
        .body(data.to_vec())
        .send()
        .expect("PATCH upload");
    assert_eq!(r.status().as_u16(), 202, "first chunk in {repo}");
    absolute(base, r.headers()["location"].to_str().unwrap())
}

/// `len` bytes that gzip cannot shrink, the same every run.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// PUTs manifest bytes under `reference` with `media_type` as Content-Type.
pub fn put_manifest(base: &str, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
    let r = client()
        .put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", media_type)
        .body(bytes.to_vec())
        .send()
        .expect("PUT manifest");
    let status = r.status().as_u16();
    let digest = r
        .headers()
        .get("docker-content-digest")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(status, 201, "PUT {repo}:{reference}: {:?}", r.text());
    assert_eq!(digest.as_deref(), Some(sha256(bytes).as_str()));
}

/// Pushes `m`, its blobs and (by digest) its children, then tags it `tag`.
pub fn push_tree(base: &str, repo: &str, m: &Manifest, tag: &str) {
    for b in &m.blobs {
        push_blob(base, repo, &b.data);
    }
    for c in &m.children {
        push_tree(base, repo, c, &c.digest);
    }
    put_manifest(base, repo, tag, &m.media_type, &m.bytes);
}

/// The whole catalog, read `n` names at a time by following `Link` headers.
pub fn catalog_paged(base: &str, n: usize) -> Vec<String> {
    let c = client();
    let mut url = format!("{base}/v2/_catalog?n={n}");
    let mut all = Vec::new();
    for _ in 0..1000 {
        let r = c.get(&url).send().expect("catalog page");
        assert_eq!(r.status().as_u16(), 200, "GET {url}");
        let link = header(&r, "link");
        let v: Value = r.json().expect("catalog json");
        let page = v["repositories"].as_array().expect("repositories");
        assert!(page.len() <= n, "{url} returned {} names", page.len());
        all.extend(page.iter().map(|s| s.as_str().unwrap().to_string()));
        if link.is_empty() {
            return all;
        }
        let target = link
            .strip_prefix('<')
            .and_then(|l| l.split_once('>'))
            .map(|(u, rest)| {
                assert!(rest.contains("rel=\"next\""), "Link: {link}");
                u
            })
            .unwrap_or_else(|| panic!("malformed Link: {link}"));
        url = absolute(base, target);
    }
    panic!("catalog pagination does not end");
}

/// What a registry serves, as far as a client can see it: enough to show
/// that two servers serve the same content from the same directory.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub catalog: Vec<String>,
    pub tags: BTreeMap<String, Vec<String>>,
    /// (repo, reference) -> (Content-Type, Docker-Content-Digest, sha256 of body)
    pub manifests: BTreeMap<(String, String), (String, String, String)>,
    /// (repo, digest) -> size, from GET (body verified) and HEAD (Content-Length).
    pub blobs: BTreeMap<(String, String), u64>,
}

fn header(r: &reqwest::blocking::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap_or("").to_string())
        .unwrap_or_default()
}

/// Reads catalog, tags, every tagged manifest (by tag and by digest), every
/// child manifest and every blob, checking digests on the way.
pub fn snapshot(base: &str) -> Snapshot {
    let c = client();
    let r = c
        .get(format!("{base}/v2/_catalog"))
        .send()
        .expect("catalog");
    assert_eq!(r.status().as_u16(), 200, "catalog");
    let v: Value = r.json().expect("catalog json");
    let catalog: Vec<String> = v["repositories"]
        .as_array()
        .expect("repositories")
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let mut snap = Snapshot {
        catalog: catalog.clone(),
        tags: BTreeMap::new(),
        manifests: BTreeMap::new(),
        blobs: BTreeMap::new(),
    };
    for repo in &catalog {
        let r = c
            .get(format!("{base}/v2/{repo}/tags/list"))
            .send()
            .expect("tags");
        assert_eq!(r.status().as_u16(), 200, "tags/list of {repo}");
        let v: Value = r.json().expect("tags json");
        assert_eq!(v["name"], repo.as_str());
        // The reference registry lists tags in directory order: compare sets.
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        tags.sort();
        let mut pending: Vec<String> = tags.clone();
        snap.tags.insert(repo.clone(), tags);
        while let Some(reference) = pending.pop() {
            if snap
                .manifests
                .contains_key(&(repo.clone(), reference.clone()))
            {
                continue;
            }
            let r = c
                .get(format!("{base}/v2/{repo}/manifests/{reference}"))
                .header("accept", ACCEPT_ALL)
                .send()
                .expect("manifest");
            assert_eq!(r.status().as_u16(), 200, "GET {repo}:{reference}");
            let ctype = header(&r, "content-type");
            let dcd = header(&r, "docker-content-digest");
            let body = r.bytes().expect("manifest body").to_vec();
            let digest = sha256(&body);
            assert_eq!(dcd, digest, "Docker-Content-Digest of {repo}:{reference}");
            if reference.contains(':') {
                assert_eq!(reference, digest, "manifest {repo}@{reference} content");
            }
            let head = c
                .head(format!("{base}/v2/{repo}/manifests/{reference}"))
                .header("accept", ACCEPT_ALL)
                .send()
                .expect("HEAD manifest");
            assert_eq!(head.status().as_u16(), 200, "HEAD {repo}:{reference}");
            assert_eq!(header(&head, "docker-content-digest"), digest);
            assert_eq!(header(&head, "content-length"), body.len().to_string());
            snap.manifests.insert(
                (repo.clone(), reference.clone()),
                (ctype, dcd, digest.clone()),
            );
            pending.push(digest);
            let v: Value = serde_json::from_slice(&body).expect("manifest json");
            let mut blob_refs = Vec::new();
            if v["config"].is_object() {
                blob_refs.push(v["config"].clone());
            }
            for l in v["layers"].as_array().into_iter().flatten() {
                blob_refs.push(l.clone());
            }
            for m in v["manifests"].as_array().into_iter().flatten() {
                pending.push(m["digest"].as_str().unwrap().to_string());
            }
            for d in blob_refs {
                let digest = d["digest"].as_str().unwrap().to_string();
                let size = d["size"].as_u64().unwrap();
                let r = c
                    .get(format!("{base}/v2/{repo}/blobs/{digest}"))
                    .send()
                    .expect("blob");
                assert_eq!(r.status().as_u16(), 200, "GET blob {repo}@{digest}");
                let body = r.bytes().expect("blob body");
                assert_eq!(sha256(&body), digest, "content of blob {repo}@{digest}");
                assert_eq!(body.len() as u64, size, "size of blob {repo}@{digest}");
                let h = c
                    .head(format!("{base}/v2/{repo}/blobs/{digest}"))
                    .send()
                    .expect("HEAD blob");
                assert_eq!(h.status().as_u16(), 200, "HEAD blob {repo}@{digest}");
                assert_eq!(header(&h, "content-length"), size.to_string());
                assert_eq!(header(&h, "docker-content-digest"), digest);
                snap.blobs.insert((repo.clone(), digest), size);
            }
        }
    }
    snap
}

// ---------------------------------------------------------------------------
// Debian's docker-registry (CNCF distribution 2.8)

/// A `docker-registry serve` on a free loopback port over a given root
/// directory, stopped (by PID) when dropped.
pub struct DistRegistry {
    child: Child,
    pub base: String,
    pub port: u16,
    _cfg: tempfile::TempDir,
}

impl DistRegistry {
    /// Serves `root` with delete enabled.
    pub fn start(root: &Path) -> DistRegistry {
        DistRegistry::start_with(root, true)
    }

    pub fn start_with(root: &Path, delete: bool) -> DistRegistry {
        let cfg = tempfile::tempdir().expect("tempdir");
        let file = cfg.path().join("config.yml");
        std::fs::write(
            &file,
            format!(
                "version: 0.1\n\
                 log:\n  level: info\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {delete}\n\
                 http:\n  addr: 127.0.0.1:0\n  secret: berth-interop-test\n",
                root.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&file);
        // Its REGISTRY_* overrides would apply to it too: keep them out.
        for (k, _) in std::env::vars() {
            if k.starts_with("REGISTRY_") {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn docker-registry");
        let Some(addr) = watch_listen(&mut child, "docker-registry", Duration::from_secs(30))
        else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("docker-registry did not report a listening address");
        };
        let port: u16 = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("bad listening address {addr}"));
        let r = DistRegistry {
            child,
            base: format!("http://127.0.0.1:{port}"),
            port,
            _cfg: cfg,
        };
        // It logs the address before it accepts; wait until it answers.
        let c = client();
        for _ in 0..100 {
            if c.get(format!("{}/v2/", r.base)).send().is_ok() {
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("docker-registry on {} does not answer", r.base);
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DistRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// The registry under test

/// The registry a client test talks to: Berth, started by the common
/// harness; or, with `BERTH_TEST_AGAINST=docker-registry`, Debian's
/// `docker-registry`, to check the tests themselves against the reference
/// implementation.
pub struct Target {
    /// `127.0.0.1:PORT`
    pub host: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub port: u16,
    pub berth: Option<crate::common::Registry>,
    dist: Option<DistRegistry>,
    _tmp: Option<tempfile::TempDir>,
}

impl Target {
    /// A fresh registry with delete enabled.
    pub fn start() -> Target {
        Target::start_with(true)
    }

    /// A fresh registry, with delete enabled or not.
    pub fn start_with(delete: bool) -> Target {
        if std::env::var("BERTH_TEST_AGAINST").is_ok_and(|v| v == "docker-registry") {
            let tmp = tempfile::tempdir().expect("tempdir");
            let d = DistRegistry::start_with(&tmp.path().join("data"), delete);
            return Target {
                host: d.host(),
                base: d.base.clone(),
                port: d.port,
                berth: None,
                dist: Some(d),
                _tmp: Some(tmp),
            };
        }
        let r = if delete {
            crate::common::Registry::start()
        } else {
            crate::common::Registry::start_with(&[("REGISTRY_STORAGE_DELETE_ENABLED", "false")])
        };
        Target {
            host: r.host(),
            base: r.base.clone(),
            port: r.port,
            berth: Some(r),
            dist: None,
            _tmp: None,
        }
    }

    /// `docker://HOST/<name>`, as skopeo names an image in this registry.
    pub fn docker(&self, name: &str) -> String {
        format!("docker://{}/{name}", self.host)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Berth (rather than the reference registry) is under test. The reference
    /// does not sort tag lists, so order is checked only for Berth.
    pub fn is_berth(&self) -> bool {
        self.berth.is_some()
    }
}
