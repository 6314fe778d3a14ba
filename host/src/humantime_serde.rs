//! Durations in settings written as humans write them (`30s`, `2m`), for
//! `#[serde(with = "crate::humantime_serde")]`.

use serde::{Deserialize, Deserializer};

/// Reads a duration such as `30s`, `2m` or `1h 30m`.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a duration ({e}); write it like `30s` or `2m`")))
}
