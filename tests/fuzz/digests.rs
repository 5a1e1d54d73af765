//! Digests: `Display`/`FromStr` round trips, and exactly the strict form.

use std::str::FromStr;

use berth::oci::digest::{Algorithm, Digest};
use proptest::prelude::*;
use regex::Regex;

use crate::cases;

const DIGEST: &str = r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$";

fn algorithm() -> impl Strategy<Value = Algorithm> {
    prop_oneof![Just(Algorithm::Sha256), Just(Algorithm::Sha512)]
}

/// Strings close to a digest: the right and wrong algorithms, lengths
/// around the right ones, upper case, stray characters.
fn digest_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "(sha256|sha512|SHA256|sha384|md5|sha256\\+b64|)(:|::|)[0-9a-f]{62,66}",
        "(sha256|sha512):[0-9a-fA-F]{0,130}",
        "sha512:[0-9a-f]{126,130}",
        "(sha256|sha512):[0-9a-f./%gz\\n -]{60,70}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(cases(4000, "proptest-regressions/fuzz/digests.txt"))]

    #[test]
    fn a_computed_digest_round_trips_through_display_and_from_str(
        alg in algorithm(),
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let d = Digest::of(alg, &data);
        let text = d.to_string();
        prop_assert_eq!(Digest::from_str(&text), Ok(d.clone()));
        prop_assert_eq!(d.hex().len(), alg.hex_len());
        let json = serde_json::to_string(&d).unwrap();
        prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn a_digest_parses_exactly_when_it_is_lower_case_hex_of_the_right_length(s in digest_like()) {
        let strict = Regex::new(DIGEST).unwrap();
        let got = Digest::from_str(&s);
        prop_assert_eq!(got.is_ok(), strict.is_match(&s), "{:?}: {:?}", s, got);
        if let Ok(d) = got {
            prop_assert_eq!(d.to_string(), s);
        }
    }

    #[test]
    fn a_mutated_digest_is_refused(
        alg in algorithm(),
        data in proptest::collection::vec(any::<u8>(), 0..8),
        at in any::<prop::sample::Index>(),
        how in 0..4u8,
        c in "[A-Fg-z:./]",
    ) {
        let good = Digest::of(alg, &data).to_string();
        let hex_start = good.find(':').unwrap() + 1;
        let i = hex_start + at.index(good.len() - hex_start);
        let mut bad = good.clone();
        match how {
            0 => { bad.remove(i); }
            1 => bad.insert(i, '0'),
            2 => bad.replace_range(i..i + 1, &c),
            _ => bad = bad.to_uppercase(),
        }
        // An upper-case digest of all digits is the same string.
        prop_assume!(bad != good);
        prop_assert!(Digest::from_str(&bad).is_err(), "{:?}", bad);
    }
}
