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

/// The most of a `Host` header an event keeps (a DNS name is at most 253).
const MAX_HOST: usize = 255;
/// The most of a `User-Agent` an event keeps (docker's is about 200).
const MAX_USER_AGENT: usize = 1024;

/// `s`, cut to at most `max` bytes at a character boundary.
fn bounded(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
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
        // What a client sends is cut to a bound: an event is queued on disk
        // for every pull, and a header may be hundreds of KiB.
        let text = |h, max| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(|s| bounded(s, max))
        };
        let host = text(header::HOST, MAX_HOST).unwrap_or_default();
        RequestContext {
            request: RequestRecord {
                id: uuid::Uuid::new_v4().to_string(),
                addr: addr.unwrap_or_default(),
                host,
                method: method.as_str().to_string(),
                useragent: text(header::USER_AGENT, MAX_USER_AGENT).unwrap_or_default(),
            },
            actor: Actor {
                name: user.unwrap_or_default().to_string(),
            },
            // A URL longer than any real host makes is left out, not cut.
            base_url: base_url
                .filter(|u| u.len() <= MAX_HOST + 64)
                .unwrap_or_default(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_client_sends_is_cut_to_a_bound() {
        let mut headers = HeaderMap::new();
        let agent = "a".repeat(4000);
        headers.insert(header::USER_AGENT, agent.parse().unwrap());
        headers.insert(header::HOST, "h".repeat(5000).parse().unwrap());
        let long_url = Some(format!("https://{}", "h".repeat(5000)));
        let ctx = RequestContext::new(&Method::GET, &headers, long_url, None, None);
        assert_eq!(ctx.request.useragent.len(), MAX_USER_AGENT);
        assert_eq!(bounded("aé", 2), "a");
        assert_eq!(ctx.request.host.len(), MAX_HOST);
        assert!(ctx.base_url.is_empty());
    }
}
