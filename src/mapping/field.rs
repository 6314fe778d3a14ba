//! The vocabulary of the mapping data: fields, conversions, the context of
//! a collection, and the conversions of one value.

use crate::time::Ticks;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

/// How a cell's value is converted. A value that does not convert stays in
/// the row and so lands under `unmapped`, unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    /// A string; numbers and booleans are written as text.
    Str,
    /// An integer, from a JSON number or a numeric string. Exact beyond 2^53.
    Int,
    /// A boolean, from `true`/`false`, `1`/`0` or their string forms.
    Bool,
    /// An ISO 8601 timestamp, as epoch milliseconds.
    Time,
    /// A hash: appends `{algorithm_id, value}` to the array at the target.
    Hash(u8),
    /// A Windows integrity level: sets the target to the text and
    /// `<target>_id` to the OCSF id.
    Integrity,
    /// Appends `{name: value}` to the array at the target (such as `device.groups`).
    NamedItem,
    /// A dynamic value: JSON text is parsed, a JSON value is kept.
    Json,
    /// An IPv4 or IPv6 address (anything else stays in the row).
    Ip,
    /// A port number, 0 to 65535, from a number or numeric string.
    Port,
    /// Appends the string to the array at the target.
    Item,
    /// Appends the address, if a valid `email_t`, to the array at the target.
    EmailItem,
    /// An email address as OCSF's `email_t` accepts it (a UPN such as
    /// `user@domain` without a dot stays in the row).
    Email,
}

/// One column-to-attribute rule.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    pub column: &'static str,
    /// A dotted OCSF path from the event root, such as `process.file.name`.
    pub to: &'static str,
    pub conv: Conv,
}

/// Shorthand used by the mapping tables.
pub const fn f(column: &'static str, to: &'static str, conv: Conv) -> Field {
    Field { column, to, conv }
}

/// Facts about the collection that are not in the row.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The Entra ID tenant the rows come from (`metadata.tenant_uid`).
    pub tenant_uid: Option<String>,
    /// Emit the successors of classes deprecated in OCSF 1.8.0 (4011, 4012,
    /// 5014), and 201004 and 1008 for service installs and log clears,
    /// instead of the classes of the default output.
    pub no_deprecated_classes: bool,
    /// When the rows were collected. A row without a `Timestamp` gets this
    /// time, labelled `time-is-collection-time`; without it, such a row is
    /// an error.
    pub collected_at: Option<Ticks>,
}

/// A row that could not be mapped. It names the table and the row's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapError {
    pub table: String,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} row [{}] could not be mapped: {}", self.table, self.key, self.reason)
    }
}

/// The dotted path `path.leaf`. A plain concatenation: `format!` costs
/// twenty times as much, and finish steps build a few dozen paths a row.
pub fn join(path: &str, leaf: &str) -> String {
    [path, ".", leaf].concat()
}

/// Null and `""` mean absent.
pub fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// Converts one cell. `None` means it does not convert.
pub fn convert(v: &Value, conv: Conv) -> Option<Value> {
    match conv {
        Conv::Str | Conv::Hash(_) | Conv::NamedItem | Conv::Integrity | Conv::Item => match v {
            Value::String(s) => Some(Value::String(s.clone())),
            Value::Number(n) => Some(Value::String(n.to_string())),
            Value::Bool(b) => Some(Value::String(b.to_string())),
            _ => None,
        },
        Conv::Int => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(v.clone()),
            Value::String(s) => {
                let s = s.trim();
                s.parse::<i64>()
                    .map(Value::from)
                    .or_else(|_| s.parse::<u64>().map(Value::from))
                    .ok()
            }
            _ => None,
        },
        Conv::Bool => parse_bool(v).map(Value::Bool),
        Conv::Time => v.as_str().and_then(|s| Ticks::parse(s).ok()).map(|t| Value::from(t.to_epoch_ms())),
        Conv::Json => Some(parse_dynamic(v)),
        Conv::Ip => v
            .as_str()
            .map(str::trim)
            .filter(|s| s.parse::<std::net::IpAddr>().is_ok())
            .map(|s| Value::String(s.to_string())),
        Conv::Port => convert(v, Conv::Int).filter(|n| n.as_u64().is_some_and(|p| p <= 65535)),
        Conv::Email | Conv::EmailItem => v.as_str().filter(|s| is_email(s)).map(|s| Value::String(s.to_string())),
    }
}

/// OCSF `email_t`: `local@domain.tld` with the characters its pattern allows.
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
    let Some((head, tail)) = domain.split_once('.') else {
        return false;
    };
    local_ok
        && !head.is_empty()
        && head.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !tail.is_empty()
        && tail.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
}

/// `true`/`false`, `1`/`0`, and their string forms (case-insensitive).
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The columns that hold JSON: those the reference types `dynamic`, and
/// `AdditionalFields`, typed `string` in most tables but JSON text in all.
/// runHuntingQuery may send them as JSON text and the Streaming API as
/// values; left under `unmapped`, they are the object or array either way,
/// so that a pipeline's field has one type whatever the source.
pub fn is_dynamic(column: &str) -> bool {
    matches!(
        column,
        "AdditionalFields"
            | "RawEventData"
            | "ActivityObjects"
            | "IPTags"
            | "UserAgentTags"
            | "LastSeenForUser"
            | "UncommonForUser"
            | "SessionData"
            | "OtherMailAddresses"
            | "Tags"
            | "AssignedRoles"
            | "PrivilegedEntraPimRoles"
            | "SourceProviders"
            | "GroupMembership"
            | "VerifiedPublisher"
            | "Permissions"
    )
}

/// A dynamic column: JSON text (an object or array) is parsed; anything else is kept as is.
pub fn parse_dynamic(v: &Value) -> Value {
    if let Value::String(s) = v {
        let t = s.trim_start();
        if (t.starts_with('{') || t.starts_with('['))
            && let Ok(parsed) = serde_json::from_str::<Value>(s)
        {
            return parsed;
        }
    }
    v.clone()
}

/// OCSF `integrity_id` for a Windows integrity level.
pub fn integrity_id(level: &str) -> u32 {
    let level = level.trim();
    let is = |word: &str| level.eq_ignore_ascii_case(word);
    match () {
        _ if is("untrusted") => 1,
        _ if is("low") => 2,
        _ if is("medium") || is("mediumplus") || is("medium plus") => 3,
        _ if is("high") => 4,
        _ if is("system") => 5,
        _ if is("protected") || is("protectedprocess") => 6,
        _ => 99,
    }
}

/// `metadata.uid` from the hash of a row's key: its first 16 bytes in hex.
pub(crate) fn uid_of(hasher: Sha256) -> String {
    let digest = hasher.finalize();
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut uid = String::with_capacity(32);
    for b in &digest[..16] {
        uid.push(char::from(HEX[usize::from(b >> 4)]));
        uid.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    uid
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conversions_accept_the_shapes_data_arrives_in() {
        assert_eq!(convert(&json!("42"), Conv::Int), Some(json!(42)));
        assert_eq!(convert(&json!(18984951960u64), Conv::Int), Some(json!(18984951960u64)));
        assert_eq!(convert(&json!("x"), Conv::Int), None);
        assert_eq!(convert(&json!("1"), Conv::Bool), Some(json!(true)));
        assert_eq!(convert(&json!(0), Conv::Bool), Some(json!(false)));
        assert_eq!(convert(&json!("TRUE"), Conv::Bool), Some(json!(true)));
        assert_eq!(
            convert(&json!("2024-09-10T03:59:59.29Z"), Conv::Time),
            Some(json!(1725940799290i64))
        );
        assert_eq!(convert(&json!("{\"a\":1}"), Conv::Json), Some(json!({"a": 1})));
        assert_eq!(convert(&json!({"a": 1}), Conv::Json), Some(json!({"a": 1})));
        assert_eq!(convert(&json!("not json"), Conv::Json), Some(json!("not json")));
    }

    #[test]
    fn integrity_levels() {
        assert_eq!(integrity_id("System"), 5);
        assert_eq!(integrity_id("medium"), 3);
        assert_eq!(integrity_id("whatever"), 99);
    }
}
