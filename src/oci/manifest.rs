//! Manifest parsing, twice over the same JSON: strictly ([`Manifest::parse`],
//! just enough of the OCI image manifest / index and Docker schema 2 manifest
//! / manifest list to validate a push) and leniently ([`references`], what a
//! stored manifest of any age or origin points at, for garbage collection).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;

/// Largest manifest accepted on push, and read back as one (registry:2
/// limits manifests to 4 MiB too).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The manifest media types Berth stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    OciManifest,
    OciIndex,
    DockerManifest,
    DockerManifestList,
}

impl MediaType {
    pub const OCI_MANIFEST: &'static str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &'static str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &'static str =
        "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &'static str =
        "application/vnd.docker.distribution.manifest.list.v2+json";

    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::OciManifest => Self::OCI_MANIFEST,
            MediaType::OciIndex => Self::OCI_INDEX,
            MediaType::DockerManifest => Self::DOCKER_MANIFEST,
            MediaType::DockerManifestList => Self::DOCKER_LIST,
        }
    }

    pub fn parse(s: &str) -> Option<MediaType> {
        // Ignore parameters such as `; charset=utf-8`.
        let s = s.split(';').next().unwrap_or("").trim();
        match s {
            Self::OCI_MANIFEST => Some(MediaType::OciManifest),
            Self::OCI_INDEX => Some(MediaType::OciIndex),
            Self::DOCKER_MANIFEST => Some(MediaType::DockerManifest),
            Self::DOCKER_LIST => Some(MediaType::DockerManifestList),
            _ => None,
        }
    }

    pub fn is_index(self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }
}

/// An OCI content descriptor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Where a foreign (non-distributable) layer can be fetched instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

impl Descriptor {
    /// A layer the registry need not hold: a foreign or non-distributable
    /// layer type with URLs to fetch it from (Windows base layers), which
    /// registry:2 accepts without the blob too.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
            && (self.media_type.contains(".foreign.")
                || self.media_type.contains(".nondistributable."))
    }
}

/// The raw JSON shape shared by all four manifest kinds; only the fields
/// Berth needs. Unknown fields are allowed (and kept, since bytes are stored as received).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<u32>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
    manifests: Option<Vec<Descriptor>>,
    subject: Option<Descriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A parsed, validated manifest.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub media_type: MediaType,
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
    pub annotations: Option<BTreeMap<String, String>>,
    /// The media type served for these bytes, which is what
    /// [`Manifest::detect_stored`] finds in them (its `mediaType` field, else
    /// its shape), recorded at push so that serving parses nothing.
    pub stored_media_type: MediaType,
}

#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("manifest is not valid JSON or has a malformed field: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported schemaVersion (only 2 is supported)")]
    SchemaVersion,
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("Content-Type {header:?} does not match the manifest's mediaType {field:?}")]
    MediaTypeMismatch { header: String, field: String },
    #[error("an image manifest needs a config descriptor and a layers array")]
    MissingConfig,
    #[error("an image index needs a manifests array")]
    MissingManifests,
}

impl Manifest {
    /// Parses `bytes` pushed with Content-Type `content_type` (if any).
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, ParseError> {
        let raw: Raw = serde_json::from_slice(bytes)?;
        if raw.schema_version != Some(2) {
            return Err(ParseError::SchemaVersion);
        }
        let header = content_type
            .map(|h| h.split(';').next().unwrap_or("").trim())
            .filter(|h| !h.is_empty());
        let media_type = match (&raw.media_type, header) {
            (Some(field), _) => {
                let mt = MediaType::parse(field)
                    .ok_or_else(|| ParseError::UnsupportedMediaType(field.clone()))?;
                if let Some(h) = header.filter(|h| MediaType::parse(h).is_some()) {
                    if h != field {
                        return Err(ParseError::MediaTypeMismatch {
                            header: h.into(),
                            field: field.clone(),
                        });
                    }
                }
                mt
            }
            (None, Some(h)) if MediaType::parse(h).is_some() => {
                MediaType::parse(h).unwrap_or(MediaType::OciManifest)
            }
            (None, _) => Self::detect(&raw),
        };
        let stored_media_type = raw
            .media_type
            .as_deref()
            .and_then(MediaType::parse)
            .unwrap_or_else(|| Self::detect(&raw));
        let raw_has_manifests = raw.manifests.is_some();
        let raw_has_layers = raw.layers.is_some();
        let m = Manifest {
            media_type,
            // The image spec makes an empty artifactType the same as none.
            artifact_type: raw.artifact_type.filter(|t| !t.is_empty()),
            config: raw.config,
            layers: raw.layers.unwrap_or_default(),
            manifests: raw.manifests.unwrap_or_default(),
            subject: raw.subject,
            annotations: raw.annotations,
            stored_media_type,
        };
        let complete = if media_type.is_index() {
            raw_has_manifests
        } else {
            m.config.is_some() && raw_has_layers
        };
        if !complete {
            return Err(if media_type.is_index() {
                ParseError::MissingManifests
            } else {
                ParseError::MissingConfig
            });
        }
        Ok(m)
    }

    /// The media type of a stored manifest, which registry:2 does not record:
    /// its `mediaType` field, else its shape.
    pub fn detect_stored(bytes: &[u8]) -> MediaType {
        match serde_json::from_slice::<Raw>(bytes) {
            Ok(raw) => raw
                .media_type
                .as_deref()
                .and_then(MediaType::parse)
                .unwrap_or_else(|| Self::detect(&raw)),
            Err(_) => MediaType::OciManifest,
        }
    }

    fn detect(raw: &Raw) -> MediaType {
        if raw.manifests.is_some() && raw.config.is_none() {
            MediaType::OciIndex
        } else {
            MediaType::OciManifest
        }
    }

    /// The blobs this manifest needs in its repository (config and layers).
    /// Foreign layers with URLs are not required.
    pub fn blob_references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| !l.is_foreign()))
    }

    /// This manifest's entry in a referrers list, as served for its stored
    /// bytes (`digest`, `size`): what a referrers response holds, computed
    /// once at push.
    pub fn referrer_descriptor(&self, digest: Digest, size: u64) -> Descriptor {
        let artifact_type = self.artifact_type.clone().or_else(|| {
            if self.stored_media_type.is_index() {
                None
            } else {
                self.config.as_ref().map(|c| c.media_type.clone())
            }
        });
        Descriptor {
            media_type: self.stored_media_type.as_str().to_string(),
            digest,
            size,
            artifact_type,
            annotations: self.annotations.clone(),
            urls: Vec::new(),
        }
    }

    /// The artifact type reported for this manifest in a referrers list:
    /// `artifactType`, else the config's media type (image spec rule).
    pub fn effective_artifact_type(&self) -> Option<String> {
        self.artifact_type.clone().or_else(|| {
            if self.media_type.is_index() {
                None
            } else {
                self.config.as_ref().map(|c| c.media_type.clone())
            }
        })
    }
}

/// What a manifest points at, read leniently from its JSON (OCI and Docker
/// schema 2 manifests and indexes, and Docker schema 1 `fsLayers`), so that
/// anything a registry:2 data dir holds is followed.
#[derive(Debug, Default, Clone)]
pub struct References {
    /// Config and layer blobs.
    pub blobs: Vec<Digest>,
    /// Child manifests of an index / manifest list.
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
}

/// Parses what `bytes` (a stored manifest) references. Field names match
/// case-insensitively, as Go's encoding/json (registry:2) matches them.
/// Bytes that are not strict JSON (a registry may have accepted
/// non-UTF-8 text or numbers out of range in fields it ignores) are not
/// taken to reference nothing: every digest they spell out is kept, as a
/// blob and as a manifest to follow. Collecting too little is never right.
pub fn references(bytes: &[u8]) -> References {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(v) => structured_references(&v),
        Err(_) => scanned_references(bytes),
    }
}

/// `v[key]`, the exact key first, then any spelling of it.
fn field<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    let map = v.as_object()?;
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

fn structured_references(v: &serde_json::Value) -> References {
    let mut refs = References::default();
    let digest = |d: &serde_json::Value, key: &str| -> Option<Digest> {
        field(d, key)?.as_str()?.parse().ok()
    };
    if let Some(c) = field(v, "config").and_then(|c| digest(c, "digest")) {
        refs.blobs.push(c);
    }
    for (list, key) in [("layers", "digest"), ("fsLayers", "blobSum")] {
        if let Some(items) = field(v, list).and_then(|l| l.as_array()) {
            refs.blobs
                .extend(items.iter().filter_map(|d| digest(d, key)));
        }
    }
    if let Some(items) = field(v, "manifests").and_then(|l| l.as_array()) {
        refs.manifests
            .extend(items.iter().filter_map(|d| digest(d, "digest")));
    }
    refs.subject = field(v, "subject").and_then(|s| digest(s, "digest"));
    refs
}

fn scanned_references(bytes: &[u8]) -> References {
    static DIGESTS: std::sync::LazyLock<regex::bytes::Regex> = std::sync::LazyLock::new(|| {
        regex::bytes::Regex::new(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
            .expect("digest pattern")
    });
    let mut refs = References::default();
    for m in DIGESTS.find_iter(bytes) {
        if let Some(d) = std::str::from_utf8(m.as_bytes())
            .ok()
            .and_then(|s| s.parse::<Digest>().ok())
        {
            refs.blobs.push(d.clone());
            refs.manifests.push(d);
        }
    }
    refs
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn parses_image_and_index() {
        let img = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":2}},"layers":[]}}"#,
            MediaType::OCI_MANIFEST
        );
        let m = Manifest::parse(img.as_bytes(), Some(MediaType::OCI_MANIFEST)).unwrap();
        assert_eq!(m.media_type, MediaType::OciManifest);
        assert_eq!(m.blob_references().count(), 1);
        assert!(Manifest::parse(img.as_bytes(), Some(MediaType::DOCKER_MANIFEST)).is_err());

        let idx = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{}","digest":"{CFG}","size":2}}]}}"#,
            MediaType::OCI_MANIFEST
        );
        let m = Manifest::parse(idx.as_bytes(), None).unwrap();
        assert_eq!(m.media_type, MediaType::OciIndex);
        assert!(Manifest::parse(b"{}", None).is_err());

        // An empty artifactType is none: an index then reports none, an
        // image its config's media type.
        let idx = idx.replacen('{', r#"{"artifactType":"","#, 1);
        let m = Manifest::parse(idx.as_bytes(), None).unwrap();
        assert_eq!(m.effective_artifact_type(), None);
        let art = img.replacen('{', r#"{"artifactType":"","#, 1);
        let m = Manifest::parse(art.as_bytes(), None).unwrap();
        assert_eq!(
            m.effective_artifact_type().as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(Manifest::parse(b"not json", None).is_err());
        assert!(Manifest::parse(br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:zz","size":1},"layers":[]}"#, None).is_err());
    }

    #[test]
    fn references_of_all_kinds() {
        let d1 = format!("sha256:{}", "a".repeat(64));
        let d2 = format!("sha256:{}", "b".repeat(64));
        let m = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{d1}"}},"layers":[{{"digest":"{d2}"}}],"subject":{{"digest":"{d1}"}}}}"#
        );
        let r = references(m.as_bytes());
        assert_eq!(r.blobs.len(), 2);
        assert!(r.subject.is_some());
        let s1 = format!(r#"{{"schemaVersion":1,"fsLayers":[{{"blobSum":"{d2}"}}]}}"#);
        assert_eq!(references(s1.as_bytes()).blobs.len(), 1);
        let idx = format!(r#"{{"manifests":[{{"digest":"{d1}"}}]}}"#);
        assert_eq!(references(idx.as_bytes()).manifests.len(), 1);
        assert!(references(b"junk").blobs.is_empty());
        // registry:2 (Go) matches field names in any case.
        let upper = format!(r#"{{"Config":{{"Digest":"{d1}"}},"LAYERS":[{{"digest":"{d2}"}}]}}"#);
        assert_eq!(
            references(upper.as_bytes()).blobs,
            [d1.parse().unwrap(), d2.parse().unwrap()]
        );
        // Not strict JSON (a number out of range, Latin-1 text): every digest
        // it names is kept.
        let odd = format!(
            r#"{{"x":1e400,"config":{{"digest":"{d1}"}},"layers":[{{"digest":"{d2}"}}],"a":"caf"#
        )
        .into_bytes()
        .into_iter()
        .chain([0xe9, b'"', b'}'])
        .collect::<Vec<u8>>();
        let r = references(&odd);
        assert_eq!(r.blobs.len(), 2);
        assert_eq!(r.manifests.len(), 2);
    }
}
