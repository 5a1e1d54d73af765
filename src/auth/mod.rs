//! Authentication and access control: htpasswd Basic auth as a layer in
//! front of the API's handlers, access rules per repository, a cache that
//! makes an authenticated request cost about what an anonymous one does,
//! and a lockout of clients that keep guessing passwords.
//!
//! The layer reads the route the API parsed ([`crate::api::ParsedRequest`])
//! and hands its decisions to the handlers as the API's extensions
//! ([`crate::api::PullAccess`]); it never rewrites a request.
//! Credentials and `Authorization` headers are never logged.

mod basic;
pub mod htpasswd;
mod layer;
mod limit;
mod rules;
mod verify;

use std::path::Path;
use std::sync::Arc;

use axum::http::HeaderValue;

use crate::api::Live;

pub use crate::config::{AccessConfig, Action, AuthConfig, HtpasswdConfig, InitialUser, Lockout};
pub use basic::basic_credentials;
pub use layer::{require, AuthenticatedUser};
pub use rules::Policy;
pub use verify::{Outcome, Verifier};

use limit::FailureLimiter;

/// bcrypt cost of entries Berth writes (`berth htpasswd`, the bootstrap user).
pub const DEFAULT_COST: u32 = 10;

/// Everything the auth layer needs, shared by all requests.
pub struct Auth {
    challenge: HeaderValue,
    verifier: Arc<Verifier>,
    /// `[access]` rules and groups, replaced by a configuration reload.
    policy: Live<Policy>,
    limiter: FailureLimiter,
}

impl Auth {
    /// Builds the auth layer's state from the configuration, or None when
    /// authentication is off. When the htpasswd file does not exist and
    /// `initial` names a user, the file is created with that user.
    pub fn from_config(
        auth: &AuthConfig,
        access: &AccessConfig,
        initial: &InitialUser,
    ) -> anyhow::Result<Option<Arc<Auth>>> {
        let Some(h) = &auth.htpasswd else {
            if initial.user.is_some() {
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
            policy: Live::new(Policy::new(access)),
            limiter: FailureLimiter::new(access.lockout.clone()),
        })))
    }

    /// Applies new `[access]` rules and groups (`anonymous_pull`, `groups`,
    /// `rules`) from the next request on. The lockout settings and the
    /// failures counted so far stay (see `server::reload`).
    pub fn set_access(&self, access: &AccessConfig) {
        self.policy.set(Policy::new(access));
    }

    /// Starts watching the htpasswd file (needs a Tokio runtime).
    pub fn spawn_reloader(&self) {
        self.verifier.spawn_reloader();
    }
}

fn bootstrap(path: &Path, initial: &InitialUser) -> anyhow::Result<()> {
    if path.exists() {
        // Bootstrapped before (or managed by hand): the variables may stay
        // in a compose file, or be gone; either way they are not used.
        if initial.user.is_some() || initial.password.is_some() {
            tracing::info!(path = %path.display(), "htpasswd file exists; BERTH_INITIAL_USER is not used");
        }
        return Ok(());
    }
    match (&initial.user, &initial.password) {
        (None, None) => Ok(()),
        (Some(_), None) | (None, Some(_)) => Err(anyhow::anyhow!(
            "set both BERTH_INITIAL_USER and BERTH_INITIAL_PASSWORD, or neither"
        )),
        (Some(user), Some(password)) => {
            htpasswd::add_user(path, user, password, DEFAULT_COST)
                .map_err(|e| anyhow::anyhow!("cannot create the htpasswd file: {e}"))?;
            tracing::info!(path = %path.display(), user, "created the htpasswd file with BERTH_INITIAL_USER");
            Ok(())
        }
    }
}
