//! The config: random TOML and random `REGISTRY_*` values never panic, and
//! an error names the key it is about.

use std::path::Path;

use berth::config::{env_name, Config};
use proptest::prelude::*;

use crate::cases;

/// Keys of the config tree (scalar settings).
const KEYS: &[&str] = &[
    "http.addr",
    "log.level",
    "log.formatter",
    "storage.filesystem.rootdirectory",
    "storage.delete.enabled",
    "auth.htpasswd.realm",
    "auth.htpasswd.path",
    "access.anonymous_pull",
    "access.lockout.failures",
    "access.lockout.window",
    "access.lockout.duration",
    "gc.enabled",
    "gc.interval",
    "gc.grace_period",
    "gc.delete_untagged",
    "gc.purge_uploads_older_than",
];

/// Keys settable from the environment.
const ENV_KEYS: &[&str] = &[
    "http.addr",
    "log.level",
    "log.formatter",
    "storage.filesystem.rootdirectory",
    "storage.delete.enabled",
    "auth.htpasswd.realm",
    "auth.htpasswd.path",
    "gc.enabled",
    "gc.interval",
    "gc.grace_period",
    "gc.delete_untagged",
    "gc.purge_uploads_older_than",
];

fn value() -> impl Strategy<Value = toml::Value> {
    let leaf = prop_oneof![
        "\\PC{0,12}".prop_map(toml::Value::String),
        prop::sample::select(vec![
            "1h",
            "0s",
            "-1s",
            "5m30s",
            "10 years",
            ":5000",
            "127.0.0.1:0",
            "[::1]:99999",
            "debug",
            "json",
            "text",
            "true",
            "/nonexistent/x"
        ])
        .prop_map(|s| toml::Value::String(s.into())),
        any::<i64>().prop_map(toml::Value::Integer),
        any::<bool>().prop_map(toml::Value::Boolean),
        any::<f64>().prop_map(toml::Value::Float),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(toml::Value::Array),
            proptest::collection::btree_map("[a-z]{1,4}", inner, 0..3)
                .prop_map(|m| toml::Value::Table(m.into_iter().collect())),
        ]
    })
}

fn set(tree: &mut toml::Table, key: &str, v: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap();
    let mut node = tree;
    for p in parts {
        node = node
            .entry(p)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .unwrap();
    }
    node.insert(last.into(), v);
}

/// Loads `text` as the config file with `env`.
fn load(text: &str, env: Vec<(String, String)>) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(Some(Path::new(&path)), env).map_err(|e| e.to_string())
}

/// A complete, valid config (htpasswd auth included, so that every other
/// setting is allowed) with `key` set to `v` (if any), loaded with `env`.
fn load_valid_but(
    key: Option<(&str, toml::Value)>,
    env: Vec<(String, String)>,
) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    berth::auth::htpasswd::add_user(&htpasswd, "u", "p", 4).unwrap();
    let mut tree = toml::Table::new();
    let s = |p: &Path| toml::Value::String(p.display().to_string());
    set(
        &mut tree,
        "storage.filesystem.rootdirectory",
        s(&dir.path().join("data")),
    );
    set(&mut tree, "auth.htpasswd.path", s(&htpasswd));
    set(
        &mut tree,
        "auth.htpasswd.realm",
        toml::Value::String("r".into()),
    );
    if let Some((k, v)) = key {
        set(&mut tree, k, v);
    }
    let path = dir.path().join("berth.toml");
    std::fs::write(&path, toml::to_string(&tree).unwrap()).unwrap();
    Config::load(Some(Path::new(&path)), env).map_err(|e| e.to_string())
}

proptest! {
    #![proptest_config(cases(500, "proptest-regressions/fuzz/config.txt"))]

    #[test]
    fn any_config_text_loads_or_is_refused_without_a_panic(
        text in prop_oneof![
            "\\PC{0,80}",
            proptest::collection::vec("(\\[[a-z.]{1,12}\\]|[a-z_]{1,10} = (\"[^\"]{0,8}\"|[0-9]{1,3}|true|\\[\\])|\\[\\[access.rules\\]\\])", 0..8)
                .prop_map(|l| l.join("\n")),
        ]
    ) {
        let _ = load(&text, Vec::new());
    }

    #[test]
    fn a_bad_value_for_a_key_is_refused_naming_that_key(
        key in prop::sample::select(KEYS),
        v in value(),
    ) {
        if let Err(e) = load_valid_but(Some((key, v.clone())), Vec::new()) {
            let last = key.rsplit('.').next().unwrap();
            prop_assert!(e.contains(last), "{}={} refused as {:?}", key, v, e);
        }
    }

    #[test]
    fn a_bad_registry_variable_is_refused_naming_it(
        key in prop::sample::select(ENV_KEYS),
        v in prop_oneof!["\\PC{0,12}", prop::sample::select(vec!["1h", "yes", "NO", "htpasswd", ":0", "-5s", "text"]).prop_map(str::to_string)],
        stray in proptest::option::of("REGISTRY_[A-Z_]{1,16}"),
    ) {
        let var = env_name(key);
        let mut env = vec![(var.clone(), v.clone())];
        if let Some(s) = &stray {
            env.push((s.clone(), "x".into()));
        }
        if let Err(e) = load_valid_but(None, env) {
            let last = key.rsplit('.').next().unwrap();
            let names_it = e.contains(&var) || e.contains(last)
                || stray.as_ref().is_some_and(|s| e.contains(s.as_str()));
            prop_assert!(names_it, "{}={:?} (and {:?}) refused as {:?}", var, v, stray, e);
        }
    }
}

#[test]
fn a_bad_anonymous_pull_pattern_is_refused_naming_the_key() {
    let v = toml::Value::Array(vec![toml::Value::String(String::new())]);
    let e = load_valid_but(Some(("access.anonymous_pull", v)), Vec::new()).unwrap_err();
    assert!(e.contains("anonymous_pull"), "{e}");
}
