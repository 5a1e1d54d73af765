//! registry:2's environment overrides: `REGISTRY_` + the key path in upper
//! case joined by `_`, applied to the TOML tree before it is typed.

use super::ConfigError;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Bool,
    /// A count (a non-negative integer).
    Count,
    /// `REGISTRY_AUTH=htpasswd`: names the auth scheme, whose settings come
    /// from the file or the other `REGISTRY_AUTH_*` variables.
    AuthScheme,
    /// A list of strings, comma-separated (registry:2 has no environment
    /// form for lists).
    List,
}

/// Keys that can be set from the environment, registry:2 style.
const ENV_KEYS: &[(&str, Kind)] = &[
    ("http.addr", Kind::Str),
    ("http.tls.certificate", Kind::Str),
    ("http.tls.key", Kind::Str),
    ("http.tls.minimumtls", Kind::Str),
    ("http.tls.clientcas", Kind::List),
    ("http.http2.disabled", Kind::Bool),
    ("http.host", Kind::Str),
    ("http.prefix", Kind::Str),
    ("http.relativeurls", Kind::Bool),
    ("http.trusted_proxies", Kind::List),
    ("http.debug.addr", Kind::Str),
    ("http.debug.prometheus.enabled", Kind::Bool),
    ("http.debug.prometheus.path", Kind::Str),
    ("log.level", Kind::Str),
    ("log.formatter", Kind::Str),
    ("storage.filesystem.rootdirectory", Kind::Str),
    ("storage.delete.enabled", Kind::Bool),
    ("storage.maintenance.readonly.enabled", Kind::Bool),
    ("auth", Kind::AuthScheme),
    ("auth.htpasswd.realm", Kind::Str),
    ("auth.htpasswd.path", Kind::Str),
    ("gc.enabled", Kind::Bool),
    ("gc.interval", Kind::Str),
    ("gc.grace_period", Kind::Str),
    ("gc.delete_untagged", Kind::Bool),
    ("gc.purge_uploads_older_than", Kind::Str),
    ("limits.header_read_timeout", Kind::Str),
    ("limits.idle_timeout", Kind::Str),
    ("limits.body_idle_timeout", Kind::Str),
    ("limits.max_connections", Kind::Count),
    ("limits.max_uploads", Kind::Count),
    ("limits.max_uploads_per_repository", Kind::Count),
    ("limits.max_tags_per_put", Kind::Count),
    ("limits.max_referrers_page", Kind::Count),
    ("notifications.events.includereferences", Kind::Bool),
];

/// The environment variable for a key path: `http.addr` → `REGISTRY_HTTP_ADDR`.
pub fn env_name(key: &str) -> String {
    format!("REGISTRY_{}", key.replace('.', "_").to_uppercase())
}

/// Applies the `REGISTRY_*` variables among `env` to `tree`; returns the
/// names of those that name no Berth setting (to be logged and ignored).
pub fn apply<'a>(
    tree: &mut toml::Table,
    env: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Vec<String>, ConfigError> {
    let mut ignored = Vec::new();
    for (name, value) in env {
        if !name.starts_with("REGISTRY_") {
            continue;
        }
        match ENV_KEYS.iter().find(|(k, _)| env_name(k) == name) {
            Some((key, kind)) => set_path(tree, key, parse_env(name, value, *kind)?)?,
            None => {
                refuse_unsupported_security(name)?;
                ignored.push(name.to_string());
            }
        }
    }
    ignored.sort();
    Ok(ignored)
}

/// Ignoring an unknown variable is harmless for most of registry:2's
/// settings, but not for the ones that secure it: a registry started without
/// the token auth its operator asked for would be silently open, and one
/// given a TLS setting Berth lacks (Let's Encrypt) would serve plain HTTP.
fn refuse_unsupported_security(name: &str) -> Result<(), ConfigError> {
    let why = if name.starts_with("REGISTRY_HTTP_TLS_") {
        "Berth's TLS settings are REGISTRY_HTTP_TLS_CERTIFICATE, REGISTRY_HTTP_TLS_KEY, \
         REGISTRY_HTTP_TLS_MINIMUMTLS and REGISTRY_HTTP_TLS_CLIENTCAS"
    } else if name.starts_with("REGISTRY_AUTH_") {
        "the only authentication Berth supports is htpasswd (REGISTRY_AUTH_HTPASSWD_REALM, REGISTRY_AUTH_HTPASSWD_PATH)"
    } else {
        return Ok(());
    };
    Err(ConfigError::Invalid(format!(
        "{name} is not supported: {why}"
    )))
}

fn parse_env(name: &str, value: &str, kind: Kind) -> Result<toml::Value, ConfigError> {
    match kind {
        Kind::Str => Ok(toml::Value::String(value.to_string())),
        Kind::Bool => match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(toml::Value::Boolean(true)),
            "false" | "0" | "no" => Ok(toml::Value::Boolean(false)),
            _ => Err(ConfigError::Invalid(format!(
                "{name}={value:?} is not a boolean (true or false)"
            ))),
        },
        Kind::Count => value
            .trim()
            .parse::<u32>()
            .map(|n| toml::Value::Integer(i64::from(n)))
            .map_err(|_| {
                ConfigError::Invalid(format!("{name}={value:?} is not a count (0, 1, 2, ...)"))
            }),
        Kind::List => Ok(toml::Value::Array(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| toml::Value::String(s.to_string()))
                .collect(),
        )),
        Kind::AuthScheme => match value {
            "htpasswd" => {
                let mut t = toml::Table::new();
                t.insert("htpasswd".into(), toml::Value::Table(toml::Table::new()));
                Ok(toml::Value::Table(t))
            }
            _ => Err(ConfigError::Invalid(format!(
                "{name}={value:?} is not supported: the only auth scheme is htpasswd"
            ))),
        },
    }
}

fn set_path(tree: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), ConfigError> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut node = tree;
    for part in parts {
        let entry = node
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| ConfigError::Invalid(format!("{part} must be a table to set {key}")))?;
    }
    match (node.get_mut(last), value) {
        // A table (REGISTRY_AUTH=htpasswd) adds to what is there, never erases it.
        (Some(toml::Value::Table(old)), toml::Value::Table(new)) => {
            for (k, v) in new {
                old.entry(k).or_insert(v);
            }
        }
        (_, value) => {
            node.insert(last.to_string(), value);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_keys_from_the_environment() {
        let mut tree = toml::Table::new();
        let env = [
            ("REGISTRY_HTTP_HOST", "https://r.example"),
            ("REGISTRY_HTTP_PREFIX", "/registry/"),
            ("REGISTRY_HTTP_RELATIVEURLS", "false"),
            ("REGISTRY_HTTP_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8"),
        ];
        assert!(apply(&mut tree, env).unwrap().is_empty());
        let http: crate::config::Http = tree["http"].clone().try_into().unwrap();
        assert_eq!(http.host, "https://r.example");
        assert_eq!(http.relativeurls, Some(false));
        assert_eq!(http.trusted_proxies, ["10.0.0.0/8", "fd00::/8"]);
        let urls = http.public_urls().unwrap();
        assert_eq!(urls.prefix, "/registry");
        assert!(urls.absolute);
    }

    #[test]
    fn debug_keys_from_the_environment() {
        let mut tree = toml::Table::new();
        let env = [
            ("REGISTRY_HTTP_DEBUG_ADDR", ":5001"),
            ("REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED", "true"),
            ("REGISTRY_HTTP_DEBUG_PROMETHEUS_PATH", "/prom"),
        ];
        assert!(apply(&mut tree, env).unwrap().is_empty());
        let debug = tree["http"]["debug"].as_table().unwrap();
        assert_eq!(debug["addr"].as_str(), Some(":5001"));
        assert_eq!(debug["prometheus"]["enabled"].as_bool(), Some(true));
        assert_eq!(debug["prometheus"]["path"].as_str(), Some("/prom"));
    }

    #[test]
    fn tls_keys_from_the_environment() {
        let mut tree = toml::Table::new();
        let env = [
            ("REGISTRY_HTTP_TLS_CERTIFICATE", "/c.pem"),
            ("REGISTRY_HTTP_TLS_CLIENTCAS", "/a.pem, /b.pem,"),
            ("REGISTRY_HTTP_HTTP2_DISABLED", "true"),
        ];
        assert!(apply(&mut tree, env).unwrap().is_empty());
        let http = tree["http"].as_table().unwrap();
        let tls = http["tls"].as_table().unwrap();
        assert_eq!(tls["certificate"].as_str(), Some("/c.pem"));
        let cas: Vec<_> = tls["clientcas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(cas, ["/a.pem", "/b.pem"]);
        assert_eq!(http["http2"]["disabled"].as_bool(), Some(true));
        let e = apply(&mut tree, [("REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL", "x")]).unwrap_err();
        assert!(
            e.to_string()
                .contains("REGISTRY_HTTP_TLS_LETSENCRYPT_EMAIL"),
            "{e}"
        );
    }
}
