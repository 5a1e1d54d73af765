//! `[auth]`: registry:2's authentication section (`auth.htpasswd` with
//! `realm` and `path`), and the user to create when there is no htpasswd
//! file yet.

use std::path::PathBuf;

use serde::Deserialize;

/// `[auth]`: which authentication scheme guards the registry. Absent means
/// none (an open registry, like registry:2 without `auth`).
#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub htpasswd: Option<HtpasswdConfig>,
}

/// `[auth.htpasswd]`: Basic authentication against an Apache htpasswd file
/// of bcrypt entries (`htpasswd -Bbn user password`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct HtpasswdConfig {
    /// Sent in `WWW-Authenticate: Basic realm="..."`.
    pub realm: String,
    /// The htpasswd file; re-read when it changes.
    pub path: PathBuf,
}

impl Default for HtpasswdConfig {
    fn default() -> HtpasswdConfig {
        HtpasswdConfig {
            realm: "Registry Realm".into(),
            path: PathBuf::new(),
        }
    }
}

/// The user to create when the htpasswd file does not exist yet, from
/// `BERTH_INITIAL_USER` and `BERTH_INITIAL_PASSWORD` (empty means unset).
#[derive(Clone, Default)]
pub struct InitialUser {
    pub user: Option<String>,
    pub password: Option<String>,
}

impl InitialUser {
    /// Reads the two variables from `env`.
    pub fn from_env<'a>(env: impl IntoIterator<Item = (&'a str, &'a str)>) -> InitialUser {
        let mut initial = InitialUser::default();
        for (name, value) in env {
            // An empty value is no value: never a user with an empty password.
            let value = Some(value.to_string()).filter(|v| !v.is_empty());
            match name {
                "BERTH_INITIAL_USER" => initial.user = value,
                "BERTH_INITIAL_PASSWORD" => initial.password = value,
                _ => {}
            }
        }
        initial
    }
}

impl std::fmt::Debug for InitialUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitialUser")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AuthConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(h) = &self.htpasswd {
            if h.path.as_os_str().is_empty() {
                return Err("auth.htpasswd.path is required (REGISTRY_AUTH_HTPASSWD_PATH)".into());
            }
            if h.realm.is_empty()
                || h.realm
                    .chars()
                    .any(|c| c == '"' || c == '\\' || c.is_control())
            {
                return Err(format!(
                    "auth.htpasswd.realm {:?} must be non-empty without quotes, backslashes or control characters",
                    h.realm
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{test_env as env, Config};

    #[test]
    fn registry2_environment() {
        let c = Config::load(None, env(&[])).unwrap();
        assert!(c.auth.htpasswd.is_none());
        // Either order: REGISTRY_AUTH must not erase the path.
        for pairs in [
            [
                ("REGISTRY_AUTH", "htpasswd"),
                ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
            ],
            [
                ("REGISTRY_AUTH_HTPASSWD_PATH", "/auth/htpasswd"),
                ("REGISTRY_AUTH", "htpasswd"),
            ],
        ] {
            let c = Config::load(None, env(&pairs)).unwrap();
            let h = c.auth.htpasswd.unwrap();
            assert_eq!(h.path, std::path::PathBuf::from("/auth/htpasswd"));
            assert_eq!(h.realm, "Registry Realm");
        }
        let e = Config::load(None, env(&[("REGISTRY_AUTH", "htpasswd")])).unwrap_err();
        assert!(e.to_string().contains("auth.htpasswd.path"), "{e}");
        let e = Config::load(None, env(&[("REGISTRY_AUTH", "token")])).unwrap_err();
        assert!(e.to_string().contains("htpasswd"), "{e}");
    }
}
