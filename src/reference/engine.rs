//! Applies a [`Table`](super::Table) mapping to one row.

use super::{Table, ocsf};
use crate::graph::Row;
use crate::time::Ticks;
use serde_json::{Map, Value};
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
    /// 5002, 5014) instead of the classes themselves.
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

/// An OCSF event under construction: a JSON object addressed by dotted
/// paths, and the row's columns that no field list consumed. A finish step
/// may take columns from the rest; what is left ends up under `unmapped`.
#[derive(Debug, Default)]
pub struct Event(pub Map<String, Value>, pub Row);

impl Event {
    /// Sets the attribute at `path`, creating the objects on the way.
    pub fn set(&mut self, path: &str, value: Value) {
        let (parent, leaf) = split_last(path);
        // Most attributes are new: one search that inserts beats a lookup
        // first (a set key keeps its place; only the value is replaced).
        self.object_at(parent).insert(leaf.to_string(), value);
    }

    /// The object at `path` (the root for `None`), created with the
    /// objects on the way; a value in the way is replaced by an object.
    fn object_at(&mut self, path: Option<&str>) -> &mut Map<String, Value> {
        let mut node = &mut self.0;
        for part in path.into_iter().flat_map(segments) {
            // Look up before inserting: most parents exist already, and a
            // key is allocated only when it is new.
            if !matches!(node.get(part), Some(Value::Object(_))) {
                node.insert(part.to_string(), Value::Object(Map::new()));
            }
            node = match node.get_mut(part) {
                Some(Value::Object(child)) => child,
                _ => unreachable!("made an object above"),
            };
        }
        node
    }

    /// The attribute at `path`, if set.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = segments(path);
        let mut value = self.0.get(parts.next()?)?;
        for part in parts {
            value = value.as_object()?.get(part)?;
        }
        Some(value)
    }

    /// The string attribute at `path`, if set.
    pub fn get_str(&self, path: &str) -> Option<&str> {
        self.get(path).and_then(Value::as_str)
    }

    /// Appends to the array at `path`, creating it.
    pub fn push(&mut self, path: &str, value: Value) {
        let (parent, leaf) = split_last(path);
        push_in(self.object_at(parent), leaf, value);
    }

    /// Copies the attribute at `from` to `to`, if `from` is set.
    pub fn copy(&mut self, from: &str, to: &str) {
        if let Some(v) = self.get(from).cloned() {
            self.set(to, v);
        }
    }

    /// Sets `path` unless it is already set.
    pub fn set_default(&mut self, path: &str, value: Value) {
        if self.get(path).is_none() {
            self.set(path, value);
        }
    }

    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// Changes the activity after the fact (when a column, not the
    /// ActionType, decides it), keeping ids, names and `type_uid` in step.
    pub fn set_activity(&mut self, activity_id: u32) {
        let class_uid = self.get("class_uid").and_then(Value::as_u64).unwrap_or(0) as u32;
        let class = ocsf::class(class_uid);
        let name = class.activity_name(activity_id);
        self.set("activity_id", activity_id.into());
        self.set("activity_name", name.into());
        self.set("type_uid", (u64::from(class_uid) * 100 + u64::from(activity_id)).into());
        self.set("type_name", format!("{}: {name}", class.name).into());
    }

    /// Takes a left-over column, if present and not absent.
    pub fn take_column(&mut self, column: &str) -> Option<Value> {
        match self.1.remove(column) {
            Some(v) if !is_absent(&v) => Some(v),
            _ => None,
        }
    }

    /// A left-over column, converted, without taking it.
    pub fn column(&self, column: &str, conv: Conv) -> Option<Value> {
        self.1.get(column).filter(|v| !is_absent(v)).and_then(|v| convert(v, conv))
    }

    /// Takes a left-over column if it converts, and puts it at `path`.
    /// Returns whether it was taken.
    pub fn map_column(&mut self, column: &str, path: &str, conv: Conv) -> bool {
        match self.take_converted(column, conv) {
            Some(out) => {
                put(self, path, conv, out);
                true
            }
            None => false,
        }
    }

    /// Takes a left-over column and converts it. A cell that does not
    /// convert stays in the row, to land under `unmapped`; an absent one
    /// (null or `""`) is dropped.
    fn take_converted(&mut self, column: &str, conv: Conv) -> Option<Value> {
        let (key, v) = self.1.remove_entry(column)?;
        if is_absent(&v) {
            return None;
        }
        // A string column kept as a string moves without a copy.
        match (v, conv) {
            (Value::String(s), Conv::Str | Conv::Hash(_) | Conv::NamedItem | Conv::Integrity | Conv::Item) => Some(Value::String(s)),
            (v, conv) => {
                let out = convert(&v, conv);
                if out.is_none() {
                    self.1.insert(key, v);
                }
                out
            }
        }
    }

    /// The parsed `AdditionalFields` object (JSON text or value), if any.
    pub fn additional_fields(&self) -> Option<Map<String, Value>> {
        match self.1.get("AdditionalFields").map(parse_dynamic) {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        }
    }
}

/// The first segment of a dotted path and the rest, if there is more than
/// one. A plain byte scan: paths are a few short words, for which the
/// general `str::split_once` searcher cost more than the search (8 % of the
/// component's mapping time in a profile).
fn split_first(path: &str) -> Option<(&str, &str)> {
    let dot = path.bytes().position(|b| b == b'.')?;
    Some((&path[..dot], &path[dot + 1..]))
}

/// The dotted path `path.leaf`. A plain concatenation: `format!` costs
/// twenty times as much, and finish steps build a few dozen paths a row.
pub fn join(path: &str, leaf: &str) -> String {
    [path, ".", leaf].concat()
}

/// The parent path of a dotted path, if any, and its last segment.
fn split_last(path: &str) -> (Option<&str>, &str) {
    match path.bytes().rposition(|b| b == b'.') {
        Some(dot) => (Some(&path[..dot]), &path[dot + 1..]),
        None => (None, path),
    }
}

/// The segments of a dotted path.
fn segments(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(path);
    std::iter::from_fn(move || {
        let path = rest?;
        match split_first(path) {
            Some((part, tail)) => {
                rest = Some(tail);
                Some(part)
            }
            None => {
                rest = None;
                Some(path)
            }
        }
    })
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

/// A dynamic column: JSON text (an object or array) is parsed; anything else is kept as is.
pub fn parse_dynamic(v: &Value) -> Value {
    if let Value::String(s) = v {
        let t = s.trim_start();
        if t.starts_with('{') || t.starts_with('[') {
            if let Ok(parsed) = serde_json::from_str::<Value>(s) {
                return parsed;
            }
        }
    }
    v.clone()
}

/// OCSF `integrity_id` for a Windows integrity level.
pub fn integrity_id(level: &str) -> u32 {
    match level.trim().to_ascii_lowercase().as_str() {
        "untrusted" => 1,
        "low" => 2,
        "medium" | "mediumplus" | "medium plus" => 3,
        "high" => 4,
        "system" => 5,
        "protected" | "protectedprocess" => 6,
        _ => 99,
    }
}

/// Puts a converted value at `to`, the way `conv` says.
pub fn put(event: &mut Event, to: &str, conv: Conv, out: Value) {
    let (parent, leaf) = split_last(to);
    put_in(event.object_at(parent), leaf, conv, out);
}

/// Puts a converted value at `leaf` of `node`, the way `conv` says.
fn put_in(node: &mut Map<String, Value>, leaf: &str, conv: Conv, out: Value) {
    match conv {
        Conv::Hash(algorithm_id) => push_in(node, leaf, serde_json::json!({"algorithm_id": algorithm_id, "value": out})),
        Conv::NamedItem => push_in(node, leaf, serde_json::json!({"name": out})),
        Conv::Item | Conv::EmailItem => push_in(node, leaf, out),
        Conv::Integrity => {
            let id = integrity_id(out.as_str().unwrap_or(""));
            node.insert([leaf, "_id"].concat(), Value::from(id));
            node.insert(leaf.to_string(), out);
        }
        _ => {
            node.insert(leaf.to_string(), out);
        }
    }
}

/// Appends to the array at `leaf` of `node`, creating it (and replacing
/// a value that is not an array).
fn push_in(node: &mut Map<String, Value>, leaf: &str, value: Value) {
    match node.get_mut(leaf) {
        Some(Value::Array(items)) => items.push(value),
        _ => {
            node.insert(leaf.to_string(), Value::Array(vec![value]));
        }
    }
}

/// Applies `fields` to the event's left-over columns: converted cells are
/// taken, cells that do not convert stay (and end up under `unmapped`).
///
/// Consecutive fields under one parent object (`actor.process.file.name`,
/// `actor.process.file.path`, ...) are put through a single walk of the tree
/// to that object, which is made only when one of their cells converts.
/// The order of the puts is the order of the fields.
pub fn apply(event: &mut Event, fields: &[Field]) {
    let mut taken: Vec<(&Field, Value)> = Vec::new();
    let mut rest = fields;
    while let Some(first) = rest.first() {
        let (parent, _) = split_last(first.to);
        let run = rest.iter().take_while(|f| split_last(f.to).0 == parent).count();
        let (group, tail) = rest.split_at(run);
        rest = tail;
        taken.extend(group.iter().filter_map(|f| Some((f, event.take_converted(f.column, f.conv)?))));
        if taken.is_empty() {
            continue;
        }
        let node = event.object_at(parent);
        for (field, out) in taken.drain(..) {
            put_in(node, split_last(field.to).1, field.conv, out);
        }
    }
}

/// Removes objects left empty by the finish steps (an `actor` whose only
/// process was "none", ...), which OCSF would reject.
fn prune_empty(map: &mut Map<String, Value>) {
    map.retain(|_, v| match v {
        Value::Object(inner) => {
            prune_empty(inner);
            !inner.is_empty()
        }
        _ => true,
    });
}

/// A stable id for a row: a hash of the table and its key columns' values.
pub fn row_uid(table: &Table, row: &Row) -> String {
    let mut hasher = Sha256::new();
    hasher.update(table.name.as_bytes());
    for column in table.key {
        hasher.update([0x1f]);
        match row.get(*column) {
            // The same instant may be written with 0 to 7 fractional digits.
            Some(Value::String(s)) if *column == "Timestamp" => match Ticks::parse(s) {
                Ok(t) => hasher.update(t.0.to_string().as_bytes()),
                Err(_) => hasher.update(s.as_bytes()),
            },
            Some(Value::String(s)) => hasher.update(s.as_bytes()),
            Some(Value::Null) | None => {}
            Some(other) => hasher.update(other.to_string().as_bytes()),
        }
    }
    uid_of(hasher)
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

fn describe_key(table: &Table, row: &Row) -> String {
    table
        .key
        .iter()
        .map(|c| match row.get(*c) {
            Some(Value::String(s)) => format!("{c}={s}"),
            Some(v) => format!("{c}={v}"),
            None => format!("{c}=<missing>"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps one row of `table` to an OCSF event.
pub fn map_row(table: &Table, mut row: Row, ctx: &Context) -> Result<Value, MapError> {
    let fail = |row: &Row, reason: String| MapError {
        table: table.name.to_string(),
        key: describe_key(table, row),
        reason,
    };
    let (time, timestamp) = match row.get("Timestamp") {
        Some(Value::String(s)) if !s.is_empty() => {
            let time = Ticks::parse(s).map_err(|e| fail(&row, format!("bad Timestamp: {e}")))?;
            (time, Some(s.clone()))
        }
        Some(other) if !is_absent(other) => {
            return Err(fail(&row, format!("Timestamp is not a string: {other}")));
        }
        _ => match ctx.collected_at {
            Some(t) => (t, None),
            None => return Err(fail(&row, "the row has no Timestamp".into())),
        },
    };
    let uid = row_uid(table, &row);
    row.remove("Timestamp");

    let action_type = match row.remove("ActionType") {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        Some(v) if !is_absent(&v) => Some(v.to_string()),
        _ => None,
    };
    let (mut activity, is_fallback) = table.activity(action_type.as_deref());
    if ctx.no_deprecated_classes {
        if let Some(successor) = activity.successor {
            activity = successor;
        }
    }
    let class = ocsf::class(activity.class_uid);

    let mut event = Event::default();
    event.set("class_uid", activity.class_uid.into());
    event.set("class_name", class.name.into());
    event.set("category_uid", class.category_uid.into());
    event.set("category_name", ocsf::category_name(class.category_uid).into());
    event.set("activity_id", activity.activity_id.into());
    let activity_name = match (&action_type, activity.activity_id, is_fallback) {
        (Some(a), 99, _) => a.clone(),
        (Some(a), _, true) => a.clone(),
        _ => class.activity_name(activity.activity_id).to_string(),
    };
    event.set(
        "type_uid",
        (u64::from(activity.class_uid) * 100 + u64::from(activity.activity_id)).into(),
    );
    event.set("type_name", format!("{}: {}", class.name, activity_name).into());
    event.set("activity_name", activity_name.into());
    event.set("severity_id", 1.into());
    event.set("severity", "Informational".into());
    event.set("time", time.to_epoch_ms().into());
    if let Some(status_id) = activity.status_id {
        event.set("status_id", status_id.into());
        event.set("status", ocsf::status_name(status_id).into());
    }
    for (path, value) in activity.sets {
        event.set(path, (*value).into());
    }

    event.set("metadata.version", ocsf::VERSION.into());
    event.set("metadata.product.name", table.product.name().into());
    event.set("metadata.product.vendor_name", "Microsoft".into());
    event.set("metadata.log_name", table.name.into());
    match timestamp {
        Some(t) => event.set("metadata.original_time", t.into()),
        None => event.push("metadata.labels", "time-is-collection-time".into()),
    }
    event.set("metadata.uid", uid.into());
    if let Some(a) = action_type {
        event.set("metadata.event_code", a.into());
    }
    match row.remove("ReportId") {
        Some(Value::String(s)) if !s.is_empty() => event.set("metadata.original_event_uid", s.into()),
        Some(Value::Number(n)) => event.set("metadata.original_event_uid", n.to_string().into()),
        Some(v) if !is_absent(&v) => {
            row.insert("ReportId".into(), v);
        }
        _ => {}
    }
    if let Some(t) = &ctx.tenant_uid {
        event.set("metadata.tenant_uid", t.clone().into());
    }

    let shape = activity.shape.unwrap_or(table.shape);
    event.1 = row;
    for fields in shape.fields {
        apply(&mut event, fields);
    }
    (shape.finish)(&mut event, ctx);
    let row = std::mem::take(&mut event.1);
    for (path, value) in activity.sets {
        event.set(path, (*value).into());
    }
    ocsf::set_captions(&mut event);
    prune_empty(&mut event.0);
    if event.get("device").is_some() {
        event.set("metadata.profiles", serde_json::json!(["host"]));
    }

    let unmapped: Map<String, Value> = row
        .into_iter()
        .filter(|(_, v)| !is_absent(v))
        .map(|(k, v)| {
            let v = if k == "AdditionalFields" { parse_dynamic(&v) } else { v };
            (k, v)
        })
        .collect();
    if !unmapped.is_empty() {
        match event.0.get_mut("unmapped") {
            // A finish step may already have moved an invalid object here.
            Some(Value::Object(existing)) => existing.extend(unmapped),
            _ => event.set("unmapped", Value::Object(unmapped)),
        }
    }
    Ok(event.into_value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_create_objects_and_arrays() {
        let mut e = Event::default();
        e.set("a.b.c", json!(1));
        e.push("a.list", json!("x"));
        e.push("a.list", json!("y"));
        e.copy("a.b", "z");
        assert_eq!(e.into_value(), json!({"a": {"b": {"c": 1}, "list": ["x", "y"]}, "z": {"c": 1}}));
    }

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
    fn paths_split_at_every_dot() {
        assert_eq!(segments("a.bc.d").collect::<Vec<_>>(), ["a", "bc", "d"]);
        assert_eq!(segments("abc").collect::<Vec<_>>(), ["abc"]);
        assert_eq!(segments("a..b").collect::<Vec<_>>(), ["a", "", "b"]);
        assert_eq!(split_first("metadata.product.name"), Some(("metadata", "product.name")));
        assert_eq!(split_first("time"), None);
    }

    fn event_with(row: serde_json::Value) -> Event {
        Event(Map::new(), serde_json::from_value(row).unwrap())
    }

    #[test]
    fn a_run_of_fields_makes_its_parent_only_when_a_cell_converts() {
        use Conv::*;
        const FIELDS: &[Field] = &[
            f("Local", "src.ip", Ip),
            f("Port", "src.port", Port),
            f("Md5", "src.file.hashes", Hash(1)),
            f("Level", "src.file.integrity", Integrity),
            f("Name", "name", Str),
        ];
        // Nothing converts: no `src` at all, and the cells that did not
        // convert stay for `unmapped`; absent ones are dropped.
        let mut e = event_with(json!({"Local": "not an ip", "Port": 70000, "Md5": "", "Level": null}));
        apply(&mut e, FIELDS);
        assert_eq!(e.0, Map::new());
        assert_eq!(e.1.len(), 2);
        assert!(e.1.contains_key("Local") && e.1.contains_key("Port"));

        // A later cell of a run converts although an earlier one does not;
        // each run lands in its own parent, in field order.
        let mut e = event_with(json!({"Local": "x", "Port": "443", "Md5": "ab", "Level": "High", "Name": "n"}));
        apply(&mut e, FIELDS);
        assert_eq!(
            e.0,
            json!({"src": {"port": 443, "file": {"hashes": [{"algorithm_id": 1, "value": "ab"}], "integrity": "High", "integrity_id": 4}}, "name": "n"})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(e.1.keys().collect::<Vec<_>>(), ["Local"]);
    }

    #[test]
    fn integrity_levels() {
        assert_eq!(integrity_id("System"), 5);
        assert_eq!(integrity_id("medium"), 3);
        assert_eq!(integrity_id("whatever"), 99);
    }
}
