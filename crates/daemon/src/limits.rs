//! Range checks for configuration values, with errors that name the dotted
//! key (`core.found_time_ms: 99999999999 ms is out of range (1 to 86400000 ms)`).
//!
//! Every duration and count a daemon reads gets a lower and an upper bound,
//! so that no value an operator can type makes later arithmetic overflow.

use std::fmt::Display;

use serde::de::DeserializeOwned;

use crate::{Config, ConfigError};

/// Longest duration accepted for any `*_ms` key: one day.
pub const MAX_MS: u64 = 86_400_000;
/// Largest table accepted for any count key: far more than a router has
/// memory for.
pub const MAX_COUNT: u64 = 1 << 20;

/// `value` must lie in `min..=max`; `unit` (`" ms"`, `" s"` or `""`) is
/// printed after the numbers.
pub fn in_range<T: PartialOrd + Display>(
    key: &str,
    value: T,
    min: T,
    max: T,
    unit: &str,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::invalid(
            key,
            format!("{value}{unit} is out of range ({min} to {max}{unit})"),
        ));
    }
    Ok(())
}

/// A `*_ms` key: from `min` to [`MAX_MS`].
pub fn millis(key: &str, value: u64, min: u64) -> Result<(), ConfigError> {
    in_range(key, value, min, MAX_MS, " ms")
}

/// A count (table size, queue depth): from 1 to `max`.
pub fn count(key: &str, value: usize, max: u64) -> Result<(), ConfigError> {
    in_range(key, value as u64, 1, max, "")
}

/// Loads `[section]` with the lines `body`, after the lines `mesh` (the
/// `[mesh]` section), and checks it with `validate`: how a daemon's tests
/// try a configuration.
pub fn try_section<T: DeserializeOwned + Default>(
    mesh: &str,
    section: &str,
    body: &str,
    validate: fn(&T) -> Result<(), ConfigError>,
) -> Result<T, ConfigError> {
    let config = Config::from_toml(&format!("{mesh}\n[{section}]\n{body}\n"))?;
    let value: T = config.section(section)?;
    validate(&value)?;
    Ok(value)
}

/// The key the error of `result` names; `None` when there is no error (or
/// it names no key).
pub fn rejected_key<T>(result: Result<T, ConfigError>) -> Option<String> {
    result.err()?.key().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_dotted_key_and_the_range() {
        let err = millis("core.found_time_ms", u64::MAX, 1).unwrap_err();
        assert_eq!(err.key(), Some("core.found_time_ms"));
        assert!(
            err.to_string().contains("out of range (1 to 86400000 ms)"),
            "{err}"
        );
        let err = count("core.max_clients", 0, MAX_COUNT).unwrap_err();
        assert_eq!(err.key(), Some("core.max_clients"));
        assert!(in_range("x.y", 5u32, 0, 5, "").is_ok());
        assert!(in_range("x.y", 0u32, 0, 5, "").is_ok());
        assert!(millis("x.y", MAX_MS, 1).is_ok());
        assert!(millis("x.y", 0, 1).is_err());
        assert!(millis("x.y", 0, 0).is_ok());
    }
}
