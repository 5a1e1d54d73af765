//! OCI image layout directories, written and read by hand (what skopeo
//! copies to and from with `oci:DIR:TAG`).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::content::OCI_INDEX;
use super::image::{to_bytes, Manifest};

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
