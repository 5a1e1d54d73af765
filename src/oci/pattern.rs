//! Globs over repository names, shared by access rules (`[access]`) and
//! retention rules (`[[gc.retention]]`), so one pattern means one thing
//! wherever it is written.

/// A repository name pattern: `*` matches within one path component, `**`
/// across components (and `**/` may match no component at all: `**/x`
/// matches `x`), `?` one character other than `/`. Everything else matches
/// itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPattern(String);

impl RepoPattern {
    pub fn new(p: &str) -> RepoPattern {
        RepoPattern(p.to_string())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        glob(self.0.as_bytes(), name.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') if p.get(1) == Some(&b'*') => {
            let rest = &p[2..];
            // `**/` may also match no component at all: `**/x` matches `x`.
            if rest.first() == Some(&b'/') && glob(&rest[1..], s) {
                return true;
            }
            (0..=s.len()).any(|i| glob(rest, &s[i..]))
        }
        Some(b'*') => {
            let rest = &p[1..];
            for i in 0..=s.len() {
                if glob(rest, &s[i..]) {
                    return true;
                }
                if s.get(i) == Some(&b'/') {
                    break;
                }
            }
            false
        }
        Some(b'?') => matches!(s.first(), Some(c) if *c != b'/') && glob(&p[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let m = |p: &str, s: &str| RepoPattern::new(p).matches(s);
        assert!(m("team-a/*", "team-a/app"));
        assert!(!m("team-a/*", "team-a/sub/app"));
        assert!(!m("team-a/*", "team-ab/app"));
        assert!(!m("team/*", "other/app"));
        assert!(m("team-a/**", "team-a/sub/app"));
        assert!(m("**", "x/y/z"));
        assert!(m("*", "library"));
        assert!(!m("*", "a/b"));
        assert!(m("**/base", "base"));
        assert!(m("**/base", "x/y/base"));
        assert!(m("app-?", "app-1"));
        assert!(m("ap?", "app"));
        assert!(!m("app-?", "app-12"));
        assert!(!m("a?b", "a/b"));
        assert!(m("exact/name", "exact/name"));
        assert!(!m("exact/name", "exact/names"));
        assert!(m("*-dev/*", "web-dev/app"));
    }
}
