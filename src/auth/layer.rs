//! The auth layer: authenticates a request, then authorises what its route
//! asks for, and tells the handlers what the caller may pull.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::limit::Admit;
use super::{basic_credentials, Action, Auth, Outcome};
use crate::api::{ApiError, ClientInfo, Gate, ParsedRequest, PullAccess, Route};
use crate::oci::{ErrorCode, RepoName};

/// The authenticated user of a request, as a request extension.
#[derive(Clone, Debug)]
pub struct AuthenticatedUser(pub Arc<str>);

/// What a request needs permission for.
#[derive(Debug, PartialEq)]
enum Scope<'a> {
    /// Any authenticated user (`/v2/`, and paths that are not endpoints).
    Login,
    Catalog,
    Repo {
        repo: &'a RepoName,
        action: Action,
    },
}

fn classify<'a>(method: &Method, route: &'a Result<Route, ApiError>) -> Scope<'a> {
    let Ok(route) = route else {
        return Scope::Login;
    };
    let action = match *method {
        Method::GET | Method::HEAD => Action::Pull,
        Method::DELETE => Action::Delete,
        _ => Action::Push,
    };
    let repo = |repo, action| Scope::Repo { repo, action };
    match route {
        Route::Base => Scope::Login,
        Route::Catalog => Scope::Catalog,
        Route::Tags(n) | Route::Referrers(n, _) => repo(n, Action::Pull),
        Route::Manifest(n, _) | Route::ManifestBadTag(n, _) | Route::Blob(n, _) => repo(n, action),
        // Every step of an upload, its cancellation and a mount included,
        // is pushing; a mount's source is checked by the handler against
        // the PullAccess this layer hands on.
        Route::Upload(n, _) | Route::UploadStart(n) => repo(n, Action::Push),
    }
}

/// The address failed logins count against: the [`ClientInfo`]'s client
/// (the forwarded client address when the peer is a trusted proxy), else
/// the TCP peer.
fn client_ip(req: &Request) -> IpAddr {
    if let Some(info) = req.extensions().get::<Arc<ClientInfo>>() {
        return info.client;
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

impl Auth {
    fn unauthorized(&self) -> Response {
        ApiError::new(ErrorCode::Unauthorized)
            .header(header::WWW_AUTHENTICATE, self.challenge.clone())
            .into_response()
    }

    /// The user of a request from `ip` with these `headers` (None:
    /// anonymous), or the answer that refuses it.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        ip: IpAddr,
    ) -> Result<Option<Arc<str>>, Response> {
        let (name, password) = match basic_credentials(headers) {
            Err(()) => {
                crate::telemetry::login_failed("malformed");
                return Err(self.unauthorized());
            }
            Ok(None) => return Ok(None),
            Ok(Some(credentials)) => credentials,
        };
        match self.limiter.admit(ip, &name) {
            Admit::Open => {}
            Admit::Refused(wait) => return Err(too_many(wait)),
            // Locked, but this user logged in from this address group
            // recently: the cache may accept the login; nothing is verified
            // by bcrypt, and a wrong guess counts against the pair's own
            // limit, so the cache is no oracle for an attacker behind the
            // same address.
            Admit::Trusted(wait) => {
                if self.verifier.cached(&name, &password) {
                    self.limiter.succeeded(ip, &name);
                    return Ok(Some(Arc::from(name)));
                }
                self.limiter.failed_trusted(ip, &name);
                tracing::warn!(client = %ip, "login refused during a lockout: not a recent login");
                return Err(too_many(wait));
            }
        }
        // Checked again once a bcrypt slot is free: a burst of guesses
        // sent at once must not all be verified before the lockout starts.
        let allowed = || self.limiter.admit(ip, &name) == Admit::Open;
        let (outcome, answer_at) = self.verifier.verify(&name, &password, allowed).await;
        match outcome {
            Outcome::Valid => {
                self.limiter.succeeded(ip, &name);
                Ok(Some(Arc::from(name)))
            }
            Outcome::Refused => Err(too_many(match self.limiter.admit(ip, &name) {
                Admit::Open => std::time::Duration::ZERO,
                Admit::Trusted(w) | Admit::Refused(w) => w,
            })),
            outcome => {
                let known = outcome == Outcome::WrongPassword;
                let locked = self.limiter.failed(ip, &name, known);
                crate::telemetry::login_failed(if known {
                    "wrong_password"
                } else {
                    "unknown_user"
                });
                if locked {
                    crate::telemetry::lockout_started();
                }
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
                Err(self.unauthorized())
            }
        }
    }
}

/// A login refused during a lockout.
fn too_many(wait: std::time::Duration) -> Response {
    crate::telemetry::login_failed("locked_out");
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    ApiError::new(ErrorCode::TooManyRequests)
        .message("too many failed logins from this address or for this user; retry later")
        .header(header::RETRY_AFTER, HeaderValue::from(secs))
        .into_response()
}

fn denied(action: Action, repo: &RepoName) -> Response {
    ApiError::new(ErrorCode::Denied)
        .detail(serde_json::json!({ "action": action.to_string(), "repository": repo.as_str() }))
        .into_response()
}

/// The auth layer as a middleware of its own (`axum::middleware::from_fn_with_state`):
/// the [`Gate`], then the handlers. The server runs the gate inside the
/// API's outer layers instead ([`crate::api::outer_layers`]), which costs
/// a request less.
pub async fn require(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    match auth.check(&mut req).await {
        Ok(()) => next.run(req).await,
        Err(refusal) => refusal,
    }
}

/// Authenticates the request, then authorises it. It must run where the
/// API's outer layers have parsed the route; a request without a parsed
/// route is refused (a decision that cannot be made must not let the
/// request through).
impl Gate for Auth {
    async fn check(&self, req: &mut Request) -> Result<(), Response> {
        let user = self.authenticate(req.headers(), client_ip(req)).await?;
        // Nothing after this layer needs the credentials.
        req.headers_mut().remove(header::AUTHORIZATION);
        let Some(parsed) = req.extensions().get::<Arc<ParsedRequest>>().cloned() else {
            tracing::error!("the auth layer found no parsed route: refusing the request");
            return Err(ApiError::internal().into_response());
        };
        // One policy for the whole request, even if a reload replaces it meanwhile.
        let policy = self.policy.get();
        match classify(req.method(), &parsed.route) {
            Scope::Login if user.is_none() => return Err(self.unauthorized()),
            Scope::Catalog if user.is_none() && !policy.has_anonymous() => {
                return Err(self.unauthorized())
            }
            Scope::Repo { repo, action }
                if !policy.allows(user.as_deref(), action, repo.as_str()) =>
            {
                return Err(match user {
                    None => self.unauthorized(),
                    Some(_) => denied(action, repo),
                });
            }
            _ => {}
        }
        let u = user.clone();
        req.extensions_mut().insert(PullAccess::new(move |repo| {
            policy.allows(u.as_deref(), Action::Pull, repo)
        }));
        if let Some(u) = user {
            req.extensions_mut().insert(AuthenticatedUser(u));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_requests() {
        let routes: Vec<(Method, Result<Route, ApiError>)> = [
            (Method::GET, "/v2/"),
            (Method::GET, "/v2/_catalog"),
            (Method::GET, "/v3/x"),
            (Method::GET, "/v2/a/b/manifests/v1"),
            (Method::HEAD, "/v2/a/tags/list"),
            (Method::PUT, "/v2/a/manifests/v1"),
            (Method::DELETE, "/v2/a/manifests/v1"),
            (
                Method::DELETE,
                "/v2/a/blobs/uploads/0b7e4c1a-8a55-4b2e-9a53-b8b3d4d1f3a1",
            ),
            (Method::POST, "/v2/a/blobs/uploads/"),
        ]
        .into_iter()
        .map(|(m, p)| (m, Route::parse(p)))
        .collect();
        let scopes: Vec<Scope> = routes.iter().map(|(m, r)| classify(m, r)).collect();
        let (a, ab): (RepoName, RepoName) = ("a".parse().unwrap(), "a/b".parse().unwrap());
        let repo = |repo, action| Scope::Repo { repo, action };
        assert_eq!(
            scopes,
            [
                Scope::Login,
                Scope::Catalog,
                Scope::Login,
                repo(&ab, Action::Pull),
                repo(&a, Action::Pull),
                repo(&a, Action::Push),
                repo(&a, Action::Delete),
                repo(&a, Action::Push),
                repo(&a, Action::Push),
            ]
        );
    }
}
