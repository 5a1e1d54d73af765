//! Manifest parsing: just enough of the OCI image manifest / index and Docker
//! schema 2 manifest / manifest list to validate a push and follow its references.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;

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
}
