//! Repository names, tags and manifest references per the distribution spec grammar.

use std::fmt;
use std::str::FromStr;

use super::Digest;

/// A repository name: `/`-separated components, each `[a-z0-9]+` joined by
/// `.`, `_`, `__` or `-+` separators, at most 255 characters in total.
/// A valid name can never contain `..`, an empty component or a `%`, so it is
/// safe to join onto a storage path. (A name found in storage, from
/// [`RepoName::from_storage`], is only guaranteed to be that safe.)
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoName(String);

pub const MAX_NAME_LEN: usize = 255;

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for RepoName {
    type Err = String;

    fn from_str(s: &str) -> Result<RepoName, String> {
        if s.is_empty() || s.len() > MAX_NAME_LEN {
            return Err(format!(
                "repository name must be 1 to {MAX_NAME_LEN} characters"
            ));
        }
        if !s.split('/').all(valid_component) {
            return Err(
                "repository name must match [a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*"
                    .into(),
            );
        }
        Ok(RepoName(s.to_string()))
    }
}

impl RepoName {
    /// A name read back from storage rather than from a request. A data dir
    /// written by registry:2 (or by hand) can hold repositories whose names
    /// Berth refuses at push (upper case, over 255 characters, other
    /// characters); the garbage collector must still see them, or it would
    /// sweep the blobs only they use. So this checks only what keeps the name
    /// safe to join onto a storage path: non-empty `/`-separated components,
    /// none `.` or `..`, none starting with `_` (the layout's own
    /// directories), no NUL and no other path separator (`\` on Windows).
    pub fn from_storage(s: &str) -> Result<RepoName, String> {
        let safe = |c: &str| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && !c.starts_with('_')
                && !c.chars().any(|x| x == '\0' || std::path::is_separator(x))
        };
        if s.split('/').all(safe) {
            Ok(RepoName(s.to_string()))
        } else {
            Err(format!("{s:?} is not a safe repository path"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl FromStr for Tag {
    type Err = String;

    fn from_str(s: &str) -> Result<Tag, String> {
        let b = s.as_bytes();
        let first_ok = b
            .first()
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        let rest_ok = b[1.min(b.len())..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if first_ok && rest_ok && b.len() <= 128 {
            Ok(Tag(s.to_string()))
        } else {
            Err("tag must match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}".into())
        }
    }
}

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `<reference>` of a manifest URL: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "library/ubuntu", "a.b_c__d---e/f0", "team-a/app/web"] {
            assert!(ok.parse::<RepoName>().is_ok(), "{ok}");
        }
        for bad in [
            "", "A", "a//b", "/a", "a/", "..", "a/../b", "a/%2e%2e", "a..b", "a___b", "-a", "a-",
            "a/.b", "a b",
        ] {
            assert!(bad.parse::<RepoName>().is_err(), "{bad}");
        }
        assert!("a".repeat(256).parse::<RepoName>().is_err());
        assert!("a".repeat(255).parse::<RepoName>().is_ok());
    }

    #[test]
    fn names_from_storage() {
        for ok in ["a", "Team/App", "a b/c", &"x".repeat(300), "library/ubuntu"] {
            assert_eq!(RepoName::from_storage(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "a//b",
            "/a",
            "a/",
            "..",
            "a/../b",
            "a/./b",
            "a/_layers",
            "a\0b",
        ] {
            assert!(RepoName::from_storage(bad).is_err(), "{bad}");
        }
        // Only a separator where it is one.
        assert_eq!(RepoName::from_storage("a\\b").is_ok(), !cfg!(windows));
    }

    #[test]
    fn tags() {
        for ok in ["latest", "v1.2.3", "_x", "A-b.c_d"] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok}");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", ".."] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
        assert!("a".repeat(128).parse::<Tag>().is_ok());
        assert!("a".repeat(129).parse::<Tag>().is_err());
    }
}
