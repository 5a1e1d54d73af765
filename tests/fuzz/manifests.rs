//! Manifests and indexes: the strict parser never panics, on any bytes or
//! on valid manifests mutated, and the lenient reader that garbage
//! collection follows finds every digest the strict parser sees.

use std::collections::HashSet;

use berth::oci::digest::{Algorithm, Digest};
use berth::oci::{references, Manifest, MediaType};
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::cases;

fn digest() -> impl Strategy<Value = Digest> {
    (any::<u16>(), any::<bool>()).prop_map(|(n, big)| {
        let alg = if big {
            Algorithm::Sha512
        } else {
            Algorithm::Sha256
        };
        Digest::of(alg, &n.to_le_bytes())
    })
}

fn descriptor() -> impl Strategy<Value = Value> {
    (digest(), any::<u32>(), any::<bool>()).prop_map(|(d, size, foreign)| {
        let mut v = json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": d.to_string(), "size": size});
        if foreign {
            v["mediaType"] = json!("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip");
            v["urls"] = json!(["https://example.com/layer"]);
        }
        v
    })
}

/// A valid image manifest or index of any of the four media types.
fn manifest() -> impl Strategy<Value = Value> {
    (
        0..4u8,
        descriptor(),
        proptest::collection::vec(descriptor(), 0..5),
        proptest::option::of(descriptor()),
        any::<bool>(),
    )
        .prop_map(|(kind, config, list, subject, typed)| {
            let mt = [
                MediaType::OCI_MANIFEST,
                MediaType::DOCKER_MANIFEST,
                MediaType::OCI_INDEX,
                MediaType::DOCKER_LIST,
            ][kind as usize];
            let mut v = json!({"schemaVersion": 2});
            if typed || kind > 0 {
                v["mediaType"] = json!(mt);
            }
            if kind < 2 {
                v["config"] = config;
                v["layers"] = Value::Array(list);
            } else {
                v["manifests"] = Value::Array(list);
            }
            if let Some(s) = subject {
                v["subject"] = s;
            }
            v
        })
}

/// `bytes` with `edits` applied: a byte replaced, a run deleted, bytes
/// inserted, a letter's case flipped.
fn mutate(mut bytes: Vec<u8>, edits: &[(prop::sample::Index, u8, u8)]) -> Vec<u8> {
    for (at, how, b) in edits {
        if bytes.is_empty() {
            bytes.push(*b);
            continue;
        }
        let i = at.index(bytes.len());
        match how % 5 {
            0 => bytes[i] = *b,
            1 => {
                let end = (i + (*b as usize % 8) + 1).min(bytes.len());
                bytes.drain(i..end);
            }
            2 => bytes.insert(i, *b),
            3 => {
                bytes[i] = if bytes[i].is_ascii_lowercase() {
                    bytes[i].to_ascii_uppercase()
                } else {
                    bytes[i].to_ascii_lowercase()
                }
            }
            _ => {
                let tail = bytes[i..].to_vec();
                bytes.extend_from_slice(&tail[..tail.len().min(16)]);
            }
        }
    }
    bytes
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        prop::sample::select(vec![
            MediaType::OCI_MANIFEST,
            MediaType::OCI_INDEX,
            MediaType::DOCKER_MANIFEST,
            MediaType::DOCKER_LIST,
            "application/json",
            "",
            ";",
            "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
        ])
        .prop_map(str::to_string),
        "\\PC{0,12}",
    ])
}

/// Every digest the strict parse holds is among what `references` finds.
fn lenient_sees_all(bytes: &[u8], m: &Manifest) -> Result<(), TestCaseError> {
    let refs = references(bytes);
    let blobs: HashSet<&Digest> = refs.blobs.iter().collect();
    let children: HashSet<&Digest> = refs.manifests.iter().collect();
    for d in m.config.iter().chain(&m.layers) {
        prop_assert!(
            blobs.contains(&d.digest),
            "blob {} missed in {:?}",
            d.digest,
            String::from_utf8_lossy(bytes)
        );
    }
    for d in &m.manifests {
        prop_assert!(
            children.contains(&d.digest),
            "manifest {} missed in {:?}",
            d.digest,
            String::from_utf8_lossy(bytes)
        );
    }
    if let Some(s) = &m.subject {
        let found = refs.subject.as_ref() == Some(&s.digest)
            // Bytes only scanned for digests: the subject is among both lists.
            || (blobs.contains(&s.digest) && children.contains(&s.digest));
        prop_assert!(
            found,
            "subject {} missed in {:?}",
            s.digest,
            String::from_utf8_lossy(bytes)
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(2000, "proptest-regressions/fuzz/manifests.txt"))]

    #[test]
    fn parsing_any_bytes_as_a_manifest_never_panics(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..256),
            "\\PC{0,64}".prop_map(String::into_bytes),
            proptest::collection::vec(prop::sample::select(b"{}[]\":,0123456789.eE+- \"schemaVersion\"layers\"config\"digest\"sha256:".to_vec()), 0..128),
        ],
        ct in content_type(),
    ) {
        if let Ok(m) = Manifest::parse(&bytes, ct.as_deref()) {
            lenient_sees_all(&bytes, &m)?;
        }
        let _ = Manifest::detect_stored(&bytes);
    }

    #[test]
    fn a_valid_manifest_parses_and_gc_sees_every_digest_in_it(v in manifest(), ct in content_type()) {
        let bytes = serde_json::to_vec(&v).unwrap();
        match Manifest::parse(&bytes, ct.as_deref()) {
            Ok(m) => {
                let want: HashSet<String> = v["config"].get("digest").into_iter()
                    .chain(v["layers"].as_array().into_iter().flatten().map(|l| &l["digest"]))
                    .chain(v["manifests"].as_array().into_iter().flatten().map(|l| &l["digest"]))
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect();
                let got: HashSet<String> = m.config.iter().chain(&m.layers).chain(&m.manifests)
                    .map(|d| d.digest.to_string()).collect();
                prop_assert_eq!(got, want);
                lenient_sees_all(&bytes, &m)?;
            }
            // Only a Content-Type naming another manifest type refuses it.
            Err(e) => prop_assert!(ct.as_deref().and_then(MediaType::parse).is_some(), "{}: {}", e, v),
        }
    }

    #[test]
    fn a_mutated_manifest_never_panics_and_gc_sees_what_the_strict_parser_sees(
        v in manifest(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), any::<u8>()), 1..6),
        ct in content_type(),
    ) {
        let bytes = mutate(serde_json::to_vec(&v).unwrap(), &edits);
        if let Ok(m) = Manifest::parse(&bytes, ct.as_deref()) {
            lenient_sees_all(&bytes, &m)?;
        }
    }
}
