//! Images built by hand: blobs with their descriptors, image manifests
//! (OCI or Docker) with real tar+gzip layers, and indexes over them.

use serde_json::{json, Value};

use super::content::*;

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

/// Pretty JSON bytes, as the builders write manifests and configs.
pub fn to_bytes(v: &Value) -> Vec<u8> {
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
