//! htpasswd lines: never a panic, never a hash in a problem message, and
//! every line `berth htpasswd` writes is accepted.

use berth::auth::htpasswd::{check_user, hash_password, parse};
use proptest::prelude::*;

use crate::cases;

/// A user name `check_user` accepts (not starting with `#`, which makes
/// the line a comment).
fn user() -> impl Strategy<Value = String> {
    "[\\PC&&[^:#\\s]][\\PC&&[^:\\s]]{0,15}".prop_filter("valid user", |u| check_user(u).is_ok())
}

fn line() -> impl Strategy<Value = String> {
    prop_oneof![
        (user(), hashlike()).prop_map(|(u, h)| format!("{u}:{h}")),
        (user(), hashlike(), "[^\\n]{0,8}").prop_map(|(u, h, x)| format!("{u}:{h}:{x}")),
        "[^\\n]{0,40}",
        "#[^\\n]{0,20}",
        Just(String::new()),
    ]
}

/// Something in the hash field: of every kind the parser names, and noise.
fn hashlike() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec![
            "$2y$04$", "$2b$10$", "$2a$", "$2x$05$", "$apr1$", "{SHA}", "$5$", "$6$", "", "plain",
        ]),
        "[A-Za-z0-9./$]{0,60}",
    )
        .prop_map(|(p, t)| format!("{p}{t}"))
}

proptest! {
    #![proptest_config(cases(3000, "proptest-regressions/fuzz/htpasswd.txt"))]

    #[test]
    fn parsing_never_panics_and_no_problem_echoes_a_hash(
        lines in proptest::collection::vec(line(), 0..12),
        crlf in any::<bool>(),
    ) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        let (entries, problems) = parse(&text);
        let n = text.lines().count();
        for p in &problems {
            prop_assert!(p.line >= 1 && p.line <= n, "{:?}", p);
            let l = lines[p.line - 1].as_str();
            if let Some((user, rest)) = l.split_once(':') {
                let hash = rest.split(':').next().unwrap_or(rest).trim();
                if hash.len() >= 8 && !user.contains(hash) {
                    prop_assert!(!p.why.contains(hash), "{:?} echoes {:?}", p, hash);
                }
            }
        }
        // An accepted entry is a well-formed bcrypt hash.
        for hash in entries.users.values() {
            prop_assert_eq!(hash.len(), 60);
            prop_assert!(hash.starts_with("$2"));
        }
    }
}

proptest! {
    // bcrypt at cost 4 takes ~1 ms a hash and as much a verification.
    #![proptest_config(cases(200, "proptest-regressions/fuzz/htpasswd_hash.txt"))]

    #[test]
    fn every_line_berth_htpasswd_writes_is_accepted(
        user in user(),
        password in "[^\\x00]{1,72}".prop_filter("at most 72 bytes", |p| p.len() <= 72),
        comments in proptest::collection::vec("(#[^\\n]{0,10}|[ \\t]{0,3})", 0..3),
        crlf in any::<bool>(),
    ) {
        let hash = hash_password(&password, 4).unwrap();
        let eol = if crlf { "\r\n" } else { "\n" };
        let mut text = comments.join(eol);
        text.push_str(eol);
        text.push_str(&format!("{user}:{hash}{eol}"));
        let (entries, problems) = parse(&text);
        prop_assert!(problems.is_empty(), "{:?}", problems);
        let got = entries.users.get(&user);
        prop_assert!(got.is_some(), "{:?} not in {:?}", user, entries);
        prop_assert!(bcrypt::verify(&password, got.unwrap()).unwrap());
        prop_assert_eq!(entries.max_cost, 4);
    }
}
