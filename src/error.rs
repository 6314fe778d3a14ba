//! The collector's error type. It mirrors the WIT `error` variant so that the
//! host can tell "fix your config" from "wait and retry".

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The configuration is wrong; the message names the key.
    Config(String),
    /// The identity platform refused the credentials.
    Auth(String),
    /// The credentials lack a permission or admin consent.
    Permission(String),
    /// The API asked us to wait this many milliseconds.
    Throttled { retry_after_ms: u64, message: String },
    /// A passing failure worth retrying.
    Transient(String),
    /// Anything else.
    Fatal(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "configuration error: {m}"),
            Error::Auth(m) => write!(f, "authentication failed: {m}"),
            Error::Permission(m) => write!(f, "permission missing: {m}"),
            Error::Throttled { retry_after_ms, message } => {
                write!(f, "throttled, retry in {retry_after_ms} ms: {message}")
            }
            Error::Transient(m) => write!(f, "temporary failure: {m}"),
            Error::Fatal(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
