//! Repository names and tags against the spec's grammar, written as a regex.

use std::str::FromStr;

use berth::oci::{RepoName, Tag};
use proptest::prelude::*;
use regex::Regex;

use crate::cases;

const NAME: &str = r"^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$";
const TAG: &str = r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$";

/// Strings near the grammar: its alphabet plus the characters an attack
/// would use, long enough to cross the 255 limit.
fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._/-]{0,40}",
        "[a-z0-9._/%A-Z -]{0,12}",
        // Valid by construction, up to and past the length limit.
        "[a-z0-9]{1,60}((\\.|_|__|-{1,3})[a-z0-9]{1,60}){0,3}(/[a-z0-9]{1,60}((\\.|_|__|-+)[a-z0-9]{1,9}){0,2}){0,4}",
        "\\PC{0,16}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(cases(4000, "proptest-regressions/fuzz/names.txt"))]

    #[test]
    fn a_repository_name_is_accepted_exactly_when_it_matches_the_spec_grammar(s in name_like()) {
        let grammar = Regex::new(NAME).unwrap();
        let want = grammar.is_match(&s) && s.len() <= 255;
        let got = RepoName::from_str(&s);
        prop_assert_eq!(got.is_ok(), want, "{:?}: {:?}", s, got);
        if let Ok(name) = got {
            prop_assert_eq!(name.as_str(), s.as_str());
            prop_assert_eq!(name.to_string(), s.clone());
            prop_assert!(!s.contains(".."), "{:?}", s);
            prop_assert!(!s.contains('%'), "{:?}", s);
            prop_assert!(!s.starts_with('/') && !s.ends_with('/'), "{:?}", s);
            prop_assert!(s.split('/').all(|c| !c.is_empty()), "{:?}", s);
            // What the store accepts from disk includes every pushable name.
            prop_assert!(RepoName::from_storage(&s).is_ok(), "{:?}", s);
        }
    }

    #[test]
    fn a_name_from_storage_is_always_safe_to_join_onto_a_path(s in name_like()) {
        if let Ok(name) = RepoName::from_storage(&s) {
            for c in name.as_str().split('/') {
                prop_assert!(!c.is_empty() && c != "." && c != "..", "{:?}", s);
                prop_assert!(!c.starts_with('_') && !c.contains('\0'), "{:?}", s);
            }
        }
    }

    #[test]
    fn a_tag_is_accepted_exactly_when_it_matches_the_spec_grammar(
        s in prop_oneof!["[a-zA-Z0-9._-]{0,130}", "[a-zA-Z0-9._:/@ -]{0,8}", "\\PC{0,8}", any::<String>()]
    ) {
        let grammar = Regex::new(TAG).unwrap();
        let got = Tag::from_str(&s);
        prop_assert_eq!(got.is_ok(), grammar.is_match(&s), "{:?}", s);
        if let Ok(t) = got {
            prop_assert_eq!(t.as_str(), s.as_str());
        }
    }
}
