//! What handlers emit through ([`Hook`]), and what events say about the
//! request behind them ([`RequestContext`], made once per request).

use axum::http::{header, HeaderMap, Method};

use super::event::{self, Action, Actor, Event, RequestRecord, Target, BLOB_MEDIA_TYPE};
use super::Notifier;
use crate::oci::{Digest, Manifest, RepoName, Tag};

/// What events say about the request that caused them, made once per
/// request by the server (with the authenticated user) for the handlers.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    pub request: RequestRecord,
    pub actor: Actor,
    /// `http(s)://<host>[/<prefix>]`: where `target.url` points.
    pub base_url: String,
}

impl RequestContext {
    /// From the request's method and headers, the client's address and the
    /// authenticated user (if any).
    pub fn new(
        method: &Method,
        headers: &HeaderMap,
        base_url: Option<String>,
        addr: Option<String>,
        user: Option<&str>,
    ) -> RequestContext {
        let text = |h| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let host = text(header::HOST).unwrap_or_default();
        RequestContext {
            request: RequestRecord {
                id: uuid::Uuid::new_v4().to_string(),
                addr: addr.unwrap_or_default(),
                host,
                method: method.as_str().to_string(),
                useragent: text(header::USER_AGENT).unwrap_or_default(),
            },
            actor: Actor {
                name: user.unwrap_or_default().to_string(),
            },
            base_url: base_url.unwrap_or_default(),
        }
    }
}

/// The manifest an event is about.
pub struct ManifestRef<'a> {
    pub digest: &'a Digest,
    pub media_type: &'a str,
    pub size: u64,
    /// The manifest, when the handler parsed it (for `target.references`).
    pub parsed: Option<&'a Manifest>,
}

/// What a handler emits through: one line per event, nothing when
/// notifications are off.
#[derive(Clone, Copy)]
pub struct Hook<'a> {
    notifier: Option<&'a Notifier>,
    request: Option<&'a RequestContext>,
}

impl<'a> Hook<'a> {
    pub fn new(notifier: Option<&'a Notifier>, request: Option<&'a RequestContext>) -> Hook<'a> {
        Hook { notifier, request }
    }

    pub fn enabled(&self) -> bool {
        self.notifier.is_some()
    }

    fn emit(&self, action: Action, target: Target) {
        let Some(n) = self.notifier else { return };
        let rc = self.request.cloned().unwrap_or_default();
        n.emit(Event::new(action, target, rc.request, rc.actor, n.source()));
    }

    fn url(&self, repo: &str, kind: &str, digest: &str) -> String {
        match self.request {
            Some(r) if !r.base_url.is_empty() => {
                format!("{}/v2/{repo}/{kind}/{digest}", r.base_url)
            }
            _ => String::new(),
        }
    }

    /// A manifest pushed or pulled (by `tag` when given); its references
    /// when `notifications.events.includereferences` and it was parsed.
    pub fn manifest(
        &self,
        action: Action,
        repo: &RepoName,
        tag: Option<&Tag>,
        m: &ManifestRef<'_>,
    ) {
        let Some(n) = self.notifier else { return };
        let (repo, tag) = (repo.as_str(), tag.map(Tag::as_str));
        let digest = &m.digest.to_string();
        let (media_type, size) = (m.media_type, m.size);
        let references = match m.parsed {
            Some(m) if n.include_references => m
                .config
                .iter()
                .chain(&m.layers)
                .chain(&m.manifests)
                .map(|d| event::Descriptor {
                    media_type: d.media_type.clone(),
                    size: d.size,
                    digest: d.digest.to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        self.emit(
            action,
            Target {
                media_type: media_type.to_string(),
                size,
                digest: digest.to_string(),
                length: size,
                repository: repo.to_string(),
                url: self.url(repo, "manifests", digest),
                tag: tag.unwrap_or_default().to_string(),
                references,
                ..Target::default()
            },
        );
    }

    /// A blob pushed, pulled or mounted (from `from`).
    pub fn blob(
        &self,
        action: Action,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        from: Option<&RepoName>,
    ) {
        if !self.enabled() {
            return;
        }
        let (repo, digest) = (repo.as_str(), &digest.to_string());
        let from = from.map(RepoName::as_str);
        self.emit(
            action,
            Target {
                media_type: BLOB_MEDIA_TYPE.to_string(),
                size,
                digest: digest.to_string(),
                length: size,
                repository: repo.to_string(),
                from_repository: from.unwrap_or_default().to_string(),
                url: self.url(repo, "blobs", digest),
                ..Target::default()
            },
        );
    }

    /// A manifest or blob deleted by digest (as registry:2: digest and
    /// repository only).
    pub fn deleted(&self, repo: &RepoName, digest: &Digest) {
        if !self.enabled() {
            return;
        }
        self.emit(
            Action::Delete,
            Target {
                digest: digest.to_string(),
                repository: repo.to_string(),
                ..Target::default()
            },
        );
    }

    /// A tag deleted (registry:2 reports none).
    pub fn tag_deleted(&self, repo: &RepoName, tag: &Tag) {
        if !self.enabled() {
            return;
        }
        self.emit(
            Action::Delete,
            Target {
                repository: repo.to_string(),
                tag: tag.to_string(),
                ..Target::default()
            },
        );
    }
}
