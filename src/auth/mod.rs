//! Authentication and access control: htpasswd Basic auth as a middleware in
//! front of every `/v2` endpoint, access rules per repository, a cache that
//! makes an authenticated request cost about what an anonymous one does,
//! and a lockout of clients that keep guessing passwords.
//!
//! Credentials and `Authorization` headers are never logged.

pub mod cli;
pub mod config;
pub mod htpasswd;
mod limit;
mod rules;
mod verify;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

pub use config::{AccessConfig, Action, AuthConfig, HtpasswdConfig, Lockout};
pub use rules::{Pattern, Policy};
pub use verify::{Outcome, Verifier};

use crate::api::route::Route;
use crate::api::ApiError;
use limit::FailureLimiter;

/// bcrypt cost of entries Berth writes (`berth htpasswd`, the bootstrap user).
pub const DEFAULT_COST: u32 = 10;

/// The authenticated user of a request, as a request extension.
#[derive(Clone, Debug)]
pub struct AuthenticatedUser(pub Arc<str>);

/// Which repositories the caller may see in `/v2/_catalog`: a request
/// extension the auth layer inserts and the catalog handler applies.
#[derive(Clone)]
pub struct CatalogFilter(Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl CatalogFilter {
    pub fn allows(&self, repo: &str) -> bool {
        (self.0)(repo)
    }
}

/// Everything the auth layer needs, shared by all requests.
pub struct Auth {
    challenge: HeaderValue,
    verifier: Arc<Verifier>,
    policy: Policy,
    limiter: FailureLimiter,
}

impl Auth {
    /// Builds the auth layer's state from the configuration, or None when
    /// authentication is off. `initial` is `BERTH_INITIAL_USER` and
    /// `BERTH_INITIAL_PASSWORD`: when both are set and the htpasswd file
    /// does not exist, it is created with that user.
    pub fn from_config(
        auth: &AuthConfig,
        access: &AccessConfig,
        initial: (Option<String>, Option<String>),
    ) -> anyhow::Result<Option<Arc<Auth>>> {
        let Some(h) = &auth.htpasswd else {
            if initial.0.is_some() {
                tracing::warn!(
                    "BERTH_INITIAL_USER is ignored: authentication is not enabled (auth.htpasswd)"
                );
            }
            return Ok(None);
        };
        bootstrap(&h.path, initial)?;
        let verifier = Arc::new(Verifier::load(&h.path)?);
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{}\"", h.realm))?;
        Ok(Some(Arc::new(Auth {
            challenge,
            verifier,
            policy: Policy::new(access),
            limiter: FailureLimiter::new(access.lockout.clone()),
        })))
    }

    /// Starts watching the htpasswd file (needs a Tokio runtime).
    pub fn spawn_reloader(&self) {
        self.verifier.spawn_reloader();
    }

    fn unauthorized(&self) -> Response {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        )
        .into_response_with(header::WWW_AUTHENTICATE, self.challenge.clone())
    }
}

trait WithHeader {
    fn into_response_with(self, name: header::HeaderName, value: HeaderValue) -> Response;
}

impl WithHeader for ApiError {
    fn into_response_with(self, name: header::HeaderName, value: HeaderValue) -> Response {
        let mut resp = self.into_response();
        resp.headers_mut().insert(name, value);
        resp
    }
}

fn bootstrap(path: &Path, initial: (Option<String>, Option<String>)) -> anyhow::Result<()> {
    if path.exists() {
        // Bootstrapped before (or managed by hand): the variables may stay
        // in a compose file, or be gone; either way they are not used.
        if initial.0.is_some() || initial.1.is_some() {
            tracing::info!(path = %path.display(), "htpasswd file exists; BERTH_INITIAL_USER is not used");
        }
        return Ok(());
    }
    match initial {
        (None, None) => Ok(()),
        (Some(_), None) | (None, Some(_)) => Err(anyhow::anyhow!(
            "set both BERTH_INITIAL_USER and BERTH_INITIAL_PASSWORD, or neither"
        )),
        (Some(user), Some(password)) => {
            htpasswd::add_user(path, &user, &password, DEFAULT_COST)
                .map_err(|e| anyhow::anyhow!("cannot create the htpasswd file: {e}"))?;
            tracing::info!(path = %path.display(), user, "created the htpasswd file with BERTH_INITIAL_USER");
            Ok(())
        }
    }
}

/// What a request needs permission for.
#[derive(Debug, PartialEq)]
enum Scope {
    /// Any authenticated user (`/v2/`, and paths that are not endpoints).
    Login,
    Catalog,
    Repo {
        repo: String,
        action: Action,
        /// The source repository of a cross-repository blob mount.
        mount_from: Option<String>,
    },
}

fn classify(method: &Method, uri: &Uri) -> Scope {
    let route = match Route::parse(uri.path()) {
        Ok(r) => r,
        Err(_) => return Scope::Login,
    };
    let action = match *method {
        Method::GET | Method::HEAD => Action::Pull,
        Method::DELETE => Action::Delete,
        _ => Action::Push,
    };
    let repo_action = |repo: &crate::oci::RepoName, action: Action| Scope::Repo {
        repo: repo.to_string(),
        action,
        mount_from: None,
    };
    match route {
        Route::Base => Scope::Login,
        Route::Catalog => Scope::Catalog,
        Route::Tags(n) | Route::Referrers(n, _) => repo_action(&n, Action::Pull),
        Route::Manifest(n, _) | Route::ManifestBadTag(n, _) | Route::Blob(n, _) => {
            repo_action(&n, action)
        }
        // Every step of an upload, its cancellation included, is pushing.
        Route::Upload(n, _) => repo_action(&n, Action::Push),
        Route::UploadStart(n) => Scope::Repo {
            repo: n.to_string(),
            action: Action::Push,
            mount_from: query_pairs(uri)
                .into_iter()
                .find(|(k, _)| k == "from")
                .map(|(_, v)| v),
        },
    }
}

fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default()
}

/// The same request without `mount` and `from`: a mount from a repository
/// the caller may not pull becomes a plain upload, as the spec allows,
/// rather than a way to read what it may not.
fn without_mount(uri: &Uri) -> Option<Uri> {
    let kept: Vec<(String, String)> = query_pairs(uri)
        .into_iter()
        .filter(|(k, _)| k != "mount" && k != "from")
        .collect();
    let q = serde_urlencoded::to_string(&kept).ok()?;
    let pq = if q.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{q}", uri.path())
    };
    pq.parse().ok()
}

/// `Authorization: Basic ...` as (user, password). Err when there is an
/// Authorization header that is not usable Basic credentials.
#[allow(clippy::result_unit_err)]
pub fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?.trim();
    let (scheme, token) = value.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .map_err(|_| ())?;
    let text = String::from_utf8(decoded).map_err(|_| ())?;
    let (user, password) = text.split_once(':').ok_or(())?;
    // containers/image (skopeo, podman) sends `Basic Og==` (":") when it
    // has no credentials: that is an anonymous request.
    if user.is_empty() && password.is_empty() {
        return Ok(None);
    }
    if user.is_empty() {
        return Err(());
    }
    Ok(Some((user.to_string(), password.to_string())))
}

fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

fn too_many(wait: std::time::Duration) -> Response {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TOOMANYREQUESTS",
        "too many failed logins from this address; retry later",
    )
    .into_response_with(header::RETRY_AFTER, HeaderValue::from(secs))
}

fn denied(action: Action, repo: &str) -> Response {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "DENIED",
        "requested access to the resource is denied",
    )
    .detail(serde_json::json!({ "action": action.to_string(), "repository": repo }))
    .into_response()
}

/// The middleware: authenticates the request, then authorises it.
pub async fn require(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let user: Option<Arc<str>> = match basic_credentials(req.headers()) {
        Err(()) => return auth.unauthorized(),
        Ok(None) => None,
        Ok(Some((name, password))) => {
            let ip = client_ip(&req);
            if let Some(wait) = auth.limiter.blocked(ip) {
                return too_many(wait);
            }
            // Checked again once a bcrypt slot is free: a burst of guesses
            // sent at once must not all be verified before the lockout starts.
            let allowed = || auth.limiter.blocked(ip).is_none();
            let (outcome, answer_at) = auth.verifier.verify(&name, &password, allowed).await;
            match outcome {
                Outcome::Valid => Some(Arc::from(name)),
                Outcome::Refused => {
                    let wait = auth.limiter.blocked(ip).unwrap_or_default();
                    return too_many(wait);
                }
                outcome => {
                    let locked = auth.limiter.failed(ip);
                    // The name is logged only when it is a real user: an
                    // unknown "name" may well be a password typed in the wrong field.
                    if outcome == Outcome::WrongPassword {
                        tracing::warn!(client = %ip, user = name, locked, "login failed: wrong password");
                    } else {
                        tracing::warn!(client = %ip, locked, "login failed: unknown user");
                    }
                    // Counted already; the answer waits (no CPU, no slot) so
                    // that every failure takes as long.
                    tokio::time::sleep_until(answer_at).await;
                    return auth.unauthorized();
                }
            }
        }
    };
    // Nothing after this layer needs the credentials.
    req.headers_mut().remove(header::AUTHORIZATION);
    match classify(req.method(), req.uri()) {
        Scope::Login => {
            if user.is_none() {
                return auth.unauthorized();
            }
        }
        Scope::Catalog => {
            if user.is_none() && !auth.policy.has_anonymous() {
                return auth.unauthorized();
            }
            let (a, u) = (auth.clone(), user.clone());
            req.extensions_mut()
                .insert(CatalogFilter(Arc::new(move |repo: &str| {
                    a.policy.allows(u.as_deref(), Action::Pull, repo)
                })));
        }
        Scope::Repo {
            repo,
            action,
            mount_from,
        } => {
            if !auth.policy.allows(user.as_deref(), action, &repo) {
                return match user {
                    None => auth.unauthorized(),
                    Some(_) => denied(action, &repo),
                };
            }
            if let Some(from) = mount_from {
                if !auth.policy.allows(user.as_deref(), Action::Pull, &from) {
                    if let Some(uri) = without_mount(req.uri()) {
                        *req.uri_mut() = uri;
                    }
                }
            }
        }
    }
    if let Some(u) = user {
        req.extensions_mut().insert(AuthenticatedUser(u));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests() {
        let c = |m: Method, p: &str| classify(&m, &p.parse::<Uri>().unwrap());
        let repo = |r: &str, a| Scope::Repo {
            repo: r.into(),
            action: a,
            mount_from: None,
        };
        assert_eq!(c(Method::GET, "/v2/"), Scope::Login);
        assert_eq!(c(Method::GET, "/v2/_catalog?n=1"), Scope::Catalog);
        assert_eq!(c(Method::GET, "/v3/x"), Scope::Login);
        assert_eq!(
            c(Method::GET, "/v2/a/b/manifests/v1"),
            repo("a/b", Action::Pull)
        );
        assert_eq!(c(Method::HEAD, "/v2/a/tags/list"), repo("a", Action::Pull));
        assert_eq!(
            c(Method::PUT, "/v2/a/manifests/v1"),
            repo("a", Action::Push)
        );
        assert_eq!(
            c(Method::DELETE, "/v2/a/manifests/v1"),
            repo("a", Action::Delete)
        );
        assert_eq!(
            c(
                Method::DELETE,
                "/v2/a/blobs/uploads/0b7e4c1a-8a55-4b2e-9a53-b8b3d4d1f3a1"
            ),
            repo("a", Action::Push)
        );
        assert_eq!(
            c(Method::POST, "/v2/a/blobs/uploads/?mount=sha256:x&from=b/c"),
            Scope::Repo {
                repo: "a".into(),
                action: Action::Push,
                mount_from: Some("b/c".into())
            }
        );
        let u: Uri = "/v2/a/blobs/uploads/?mount=sha256:x&from=b&digest=y"
            .parse()
            .unwrap();
        assert_eq!(
            without_mount(&u).unwrap().to_string(),
            "/v2/a/blobs/uploads/?digest=y"
        );
    }

    #[test]
    fn parses_basic_credentials() {
        let mut h = HeaderMap::new();
        assert_eq!(basic_credentials(&h), Ok(None));
        h.insert(header::AUTHORIZATION, "Basic YWxpY2U6cDpx".parse().unwrap());
        assert_eq!(
            basic_credentials(&h),
            Ok(Some(("alice".into(), "p:q".into())))
        );
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(basic_credentials(&h).is_err());
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(basic_credentials(&h).is_err());
    }
}
