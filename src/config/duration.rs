//! Durations in configuration files: `"90s"`, `"30m"`, `"1h"`, `"7d"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserializes a human-readable duration (humantime's syntax).
pub fn human<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(s.trim()).map_err(|e| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration like \"90s\", \"1h\" or \"7d\": {e}"
        ))
    })
}

/// [`human`] for an optional key.
pub fn human_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    human(d).map(Some)
}
