//! The values an OCSF event is made of, borrowed from the answer where they can be.
//!
//! The mapping builds each event as a small tree ([`V`], [`Obj`]) whose keys
//! are the mapping's own `&'static str` paths and whose leaves are, most of
//! the time, the answer's cells as they came (a string literal with its
//! escapes, an integer), so that a row costs a handful of allocations (one
//! vector per object), not one per key and value as a tree of
//! `serde_json::Value` does. The tree is then written straight to the NDJSON
//! output ([`V::write`]). A [`Cell`] is one column's value as the answer gave it.

use super::captions::hash_algorithm;
use super::field;
use crate::bytes::{backslash, put, put_between, quote_or_backslash, string_special};
use serde_json::Value;
use std::borrow::Cow;

/// A key of an object: the mapping's own names are static, a column name
/// borrowed from the answer, or owned (keys of values made by finish steps).
pub type Key<'a> = Cow<'a, str>;

/// A value of an event.
#[derive(Clone, Debug)]
pub enum V<'a> {
    /// JSON text borrowed from the answer, of any type, written as serde_json
    /// would write its value (strings, booleans and plain integers as they
    /// came; other numbers, objects and arrays without their whitespace).
    /// An object or array serde_json cannot read as a value (nested deeper
    /// than it reads, a number out of its range inside) is written as its
    /// text, a JSON string, so that the cell is kept, not lost.
    Cell(&'a str),
    /// The inside of a JSON string literal, its escapes kept, written
    /// between quotes: a number or boolean cell written as a string, or a
    /// slice of a string cell (a path's folder, a hostname's parts) whose
    /// escapes are the ones serde_json writes.
    Quoted(&'a str),
    /// Text, written as a JSON string.
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Bool(bool),
    /// Any other number (a float), as serde_json holds it.
    Num(serde_json::Number),
    /// A value kept whole, as serde_json holds it (a dynamic column under
    /// `unmapped`), written as serde_json writes it.
    Json(Box<Value>),
    /// The JSON text of an object or array, checked to be JSON (a dynamic
    /// column given as text, under `unmapped`), written without the
    /// whitespace between its tokens ([`write_compact`]).
    Text(Cow<'a, str>),
    /// The JSON text of an object or array as [`write_compact`] would
    /// write it, written as it is: a [`Cell::Written`], an object or array
    /// cell of a row the answer's scan found compact, or an object of the
    /// event written once to be copied ([`super::event::Event::make_copies`]),
    /// or a dynamic column's text that the answer's scan found compact
    /// ([`crate::answer::json_container`]).
    Written(Cow<'a, str>),
    Null,
    Obj(Obj<'a>),
    Arr(Vec<V<'a>>),
    /// A file hash whose value is a string cell, `raw` its JSON text: the
    /// object `{"algorithm_id":…,"algorithm":…,"value":…}`, written without
    /// an object made for it. Hashes are the most frequent objects of the
    /// file and process tables (six made for each DeviceProcessEvents row).
    /// A step that reads one reads it through [`V::hash_value`], which takes
    /// either form.
    Hash(u8, &'a str),
}

/// An object: its members in the order they were set.
#[derive(Clone, Debug, Default)]
pub struct Obj<'a>(pub Vec<(Key<'a>, V<'a>)>);

impl<'a> Obj<'a> {
    pub fn new() -> Self {
        Obj(Vec::new())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.0.iter().position(|(k, _)| same(k, key))
    }

    pub fn get(&self, key: &str) -> Option<&V<'a>> {
        self.0.iter().find(|(k, _)| same(k, key)).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V<'a>> {
        self.0.iter_mut().find(|(k, _)| same(k, key)).map(|(_, v)| v)
    }

    /// The value at the dotted `path`, if set.
    #[inline]
    pub fn at(&self, path: &str) -> Option<&V<'a>> {
        let mut parts = segments(path);
        let mut value = self.get(parts.next()?)?;
        for part in parts {
            value = value.as_obj()?.get(part)?;
        }
        Some(value)
    }

    /// The value at the dotted `path`, if set, to change it.
    pub fn at_mut(&mut self, path: &str) -> Option<&mut V<'a>> {
        let mut parts = segments(path);
        let mut value = self.get_mut(parts.next()?)?;
        for part in parts {
            value = value.as_obj_mut()?.get_mut(part)?;
        }
        Some(value)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Appends `key`, which the object does not hold (the caller knows it:
    /// [`Obj::insert`] searches for it), set to `value`.
    pub fn push_new(&mut self, key: Key<'a>, value: V<'a>) {
        debug_assert!(self.position(&key).is_none(), "{key} is set already");
        self.0.push((key, value));
    }

    /// Sets `key` to `value`; a key that is set keeps its place.
    pub fn insert(&mut self, key: impl Into<Key<'a>>, value: V<'a>) {
        let key = key.into();
        match self.position(&key) {
            Some(i) => self.0[i].1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<V<'a>> {
        let i = self.position(key)?;
        Some(self.0.remove(i).1)
    }

    /// The object at `key`, made (or put in place of another value) if need be.
    pub fn child(&mut self, key: &str, make: impl FnOnce() -> Key<'a>) -> &mut Obj<'a> {
        let i = self.child_index(key, make);
        self.child_at(i)
    }

    /// The place of the member `key`, an object made for it if it has none
    /// ([`Obj::child_at`] makes an object in place of another value).
    pub fn child_index(&mut self, key: &str, make: impl FnOnce() -> Key<'a>) -> usize {
        self.position(key).unwrap_or_else(|| {
            // Room for a process's or a file's members (about ten), so
            // that they are not moved as they come: with 8, four objects of
            // each DeviceProcessEvents event were (docs/performance.md).
            self.0.push((make(), V::Obj(Obj(Vec::with_capacity(12)))));
            self.0.len() - 1
        })
    }

    /// The object that is the member at place `i` (which
    /// [`Obj::child_index`] gave), made in place of another value if need be.
    pub fn child_at(&mut self, i: usize) -> &mut Obj<'a> {
        let value = &mut self.0[i].1;
        if !matches!(value, V::Obj(_)) {
            *value = V::Obj(Obj::new());
        }
        match value {
            V::Obj(o) => o,
            _ => unreachable!("made an object above"),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &V<'a>)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// Removes the members that are objects with no members, after
    /// removing theirs, at every depth.
    pub fn prune_empty(&mut self) {
        self.retain(|_, v| match v {
            V::Obj(inner) => {
                inner.prune_empty();
                !inner.is_empty()
            }
            _ => true,
        });
    }

    /// Keeps only the members for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V<'a>) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }

    /// The object as a `serde_json` map.
    pub fn to_map(&self) -> serde_json::Map<String, Value> {
        self.0.iter().map(|(k, v)| (k.to_string(), v.to_value())).collect()
    }
}

impl<'a> V<'a> {
    /// The text of a string (a number or boolean written as a string
    /// included), unescaped.
    pub fn as_str(&self) -> Option<Cow<'_, str>> {
        match self {
            V::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            V::Quoted(inside) => unescape(inside),
            V::Cell(raw) if raw.starts_with('"') => unquote(raw),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            V::Int(n) => Some(*n),
            V::UInt(n) => i64::try_from(*n).ok(),
            V::Num(n) => n.as_i64(),
            V::Cell(raw) if !raw.starts_with('"') => serde_json::from_str::<serde_json::Number>(raw).ok()?.as_i64(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            V::Int(n) => u64::try_from(*n).ok(),
            V::UInt(n) => Some(*n),
            V::Num(n) => n.as_u64(),
            V::Cell(raw) if !raw.starts_with('"') => serde_json::from_str::<serde_json::Number>(raw).ok()?.as_u64(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            V::Bool(b) => Some(*b),
            V::Cell("true") => Some(true),
            V::Cell("false") => Some(false),
            _ => None,
        }
    }

    pub fn as_obj(&self) -> Option<&Obj<'a>> {
        match self {
            V::Obj(o) => Some(o),
            _ => None,
        }
    }

    pub fn as_obj_mut(&mut self) -> Option<&mut Obj<'a>> {
        match self {
            V::Obj(o) => Some(o),
            _ => None,
        }
    }

    pub fn is_obj(&self) -> bool {
        matches!(self, V::Obj(_))
    }

    /// The `value` of a file hash, held as [`V::Hash`] or as an object.
    pub fn hash_value(&self) -> Option<Cow<'_, str>> {
        match self {
            V::Hash(_, raw) => unquote(raw),
            V::Obj(o) => o.get("value")?.as_str(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, V::Null | V::Cell("null"))
    }

    /// The value's JSON text as serde_json writes it: the same for equal
    /// values however they are held (a cell as it came, text, a number),
    /// for matching events on it.
    pub fn json_key(&self) -> String {
        self.to_value().to_string()
    }

    /// The value as `serde_json` holds it. A cell serde_json cannot read as
    /// a value is its text, as it is written.
    pub fn to_value(&self) -> Value {
        match self {
            V::Cell(raw) => serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string())),
            V::Quoted(inside) => Value::String(unescape(inside).map_or_else(|| inside.to_string(), Cow::into_owned)),
            V::Str(s) => Value::String(s.to_string()),
            V::Int(n) => Value::from(*n),
            V::UInt(n) => Value::from(*n),
            V::Bool(b) => Value::Bool(*b),
            V::Num(n) => Value::Number(n.clone()),
            V::Json(v) => (**v).clone(),
            V::Text(t) | V::Written(t) => serde_json::from_str(t).unwrap_or_else(|_| Value::String(t.to_string())),
            V::Null => Value::Null,
            V::Obj(o) => Value::Object(o.to_map()),
            V::Arr(items) => Value::Array(items.iter().map(V::to_value).collect()),
            V::Hash(id, raw) => serde_json::json!({
                "algorithm_id": id,
                "algorithm": hash_algorithm(*id),
                "value": V::Cell(raw).to_value(),
            }),
        }
    }

    /// Appends the value to `out` as JSON.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            V::Cell(raw) => write_cell(out, raw),
            V::Quoted(raw) => put_between(out, b"\"", raw.as_bytes(), b"\""),
            V::Str(s) => write_str(out, s),
            V::Int(n) => put(out, itoa::Buffer::new().format(*n).as_bytes()),
            V::UInt(n) => put(out, itoa::Buffer::new().format(*n).as_bytes()),
            V::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            V::Num(n) => out.extend_from_slice(n.to_string().as_bytes()),
            V::Json(v) => {
                // Writing a `Value` to a Vec cannot fail: its keys are strings.
                let _ = serde_json::to_writer(&mut *out, v);
            }
            V::Text(t) => {
                if !write_compact(out, t) {
                    match serde_json::from_str::<Value>(t) {
                        Ok(v) => {
                            let _ = serde_json::to_writer(&mut *out, &v);
                        }
                        // What serde_json does not read as a value stays
                        // text, as `Cell::dynamic` keeps it.
                        Err(_) => write_str(out, t),
                    }
                }
            }
            V::Written(t) => out.extend_from_slice(t.as_bytes()),
            V::Null => out.extend_from_slice(b"null"),
            V::Obj(o) => o.write(out),
            V::Hash(id, raw) => {
                out.extend_from_slice(b"{\"algorithm_id\":");
                put(out, itoa::Buffer::new().format(*id).as_bytes());
                out.extend_from_slice(b",\"algorithm\":");
                put_between(out, b"\"", hash_algorithm(*id).as_bytes(), b"\"");
                out.extend_from_slice(b",\"value\":");
                put(out, raw.as_bytes());
                out.push(b'}');
            }
            V::Arr(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    item.write(out);
                }
                out.push(b']');
            }
        }
    }
}

impl Obj<'_> {
    /// Appends the object to `out` as JSON.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            let before: &[u8] = if i > 0 { b",\"" } else { b"\"" };
            match k {
                // The mapping's own names, and names borrowed from the answer
                // (only a name without escapes is borrowed), need none.
                Cow::Borrowed(name) => put_between(out, before, name.as_bytes(), b"\":"),
                Cow::Owned(name) => {
                    out.extend_from_slice(&before[..before.len() - 1]);
                    write_str(out, name);
                    out.push(b':');
                }
            }
            v.write(out);
        }
        out.push(b'}');
    }
}

/// A JSON string, escaped as serde_json escapes it. Most strings need no
/// escape (serde_json escapes only quotes, backslashes and control
/// characters): they are copied between quotes.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    if string_special(text.as_bytes()).is_none() {
        put_between(out, b"\"", text.as_bytes(), b"\"");
        return;
    }
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// A cell as serde_json would write its value (an object or array: the same
/// value, its keys in the order they came), or, where serde_json cannot read
/// one, its text as a JSON string.
fn write_cell(out: &mut Vec<u8>, raw: &str) {
    match raw.as_bytes().first() {
        Some(b'"' | b't' | b'f' | b'n') => put(out, raw.as_bytes()),
        _ if is_plain_int(raw) => put(out, raw.as_bytes()),
        Some(b'{' | b'[') if write_compact(out, raw) => {}
        _ => match serde_json::from_str::<Value>(raw) {
            Ok(v) => {
                let _ = serde_json::to_writer(&mut *out, &v);
            }
            Err(_) => write_str(out, raw),
        },
    }
}

/// How deep [`write_compact`] nests: deeper text goes through serde_json.
pub use crate::answer::COMPACT_DEPTH;

/// Appends the JSON text `json` (checked JSON, as every cell is) without the
/// whitespace between its tokens, its strings, numbers and keys as they
/// came: the value serde_json would write, without building it. It appends
/// nothing and returns false for what a parser of the output might refuse
/// or read otherwise, which only serde_json's reading settles: a number
/// with an exponent or of more than 20 characters (`1e400` is out of range),
/// an escaped UTF-16 surrogate (unpaired, it is no text), nesting deeper than
/// [`COMPACT_DEPTH`] (serde_json reads no more than 127 levels, and a
/// consumer of the output that reads it with serde_json, as Vector does,
/// would refuse the whole event).
pub fn write_compact(out: &mut Vec<u8>, json: &str) -> bool {
    compact(out, json).is_some()
}

/// [`write_compact`], telling how deeply the text nests (`None` where it
/// appends nothing).
pub fn compact(out: &mut Vec<u8>, json: &str) -> Option<usize> {
    let b = json.as_bytes();
    let start = out.len();
    out.reserve(b.len());
    let (mut from, mut i, mut depth, mut deepest) = (0, 0, 0, 0);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while let Some(k) = quote_or_backslash(&b[i..]) {
                    i += k;
                    if b[i] == b'"' {
                        break;
                    }
                    if b.get(i + 1) == Some(&b'u') && crate::answer::names_surrogate(b, i + 1) {
                        out.truncate(start);
                        return None;
                    }
                    i += 2;
                }
                i += 1;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.extend_from_slice(&b[from..i]);
                i += 1;
                from = i;
            }
            b'{' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
                if depth > COMPACT_DEPTH {
                    out.truncate(start);
                    return None;
                }
                i += 1;
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let n = b[i..]
                    .iter()
                    .take_while(|c| matches!(c, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .count();
                if n > 20 || b[i..i + n].iter().any(|c| matches!(c, b'e' | b'E')) {
                    out.truncate(start);
                    return None;
                }
                i += n;
            }
            _ => i += 1,
        }
    }
    out.extend_from_slice(&b[from.min(b.len())..]);
    Some(deepest)
}

/// Whether two names are the same. Keys and column names are compared
/// all the time (an object's keys are searched in turn, a row's column
/// names against the schema's); `==` on strings calls `memcmp`, which in the
/// component is wasi-libc's, a byte at a time behind a call, while this one
/// is inlined and compares four bytes a step.
#[inline]
pub fn same(a: &str, b: &str) -> bool {
    memchr::arch::all::is_equal(a.as_bytes(), b.as_bytes())
}

/// A non-negative integer, written as serde_json writes it, that fits 64 bits.
pub fn is_plain_int(raw: &str) -> bool {
    raw == "0" || (matches!(raw.as_bytes().first(), Some(b'1'..=b'9')) && raw.len() <= 19 && raw.bytes().all(|b| b.is_ascii_digit()))
}

/// The text of a JSON string literal (checked JSON, as every cell is).
/// Every escape is decoded here but an escaped UTF-16 surrogate, whose
/// pairing serde_json settles (an unpaired one is no text: `None`). A
/// dynamic column sent as text is one long literal with an escape every
/// few bytes (`{\"$id\":\"1\",...}`): each escape is found eight bytes
/// a step ([`backslash`]: a checked literal holds no quote and no control
/// character, so a backslash is the only byte to stop at), and the text
/// between copied whole.
pub fn unquote(raw: &str) -> Option<Cow<'_, str>> {
    unescape(raw.strip_prefix('"')?.strip_suffix('"')?)
}

/// The text of the inside of a JSON string literal (as [`unquote`]).
pub fn unescape(inner: &str) -> Option<Cow<'_, str>> {
    let bytes = inner.as_bytes();
    let Some(first) = backslash(bytes) else {
        return Some(Cow::Borrowed(inner));
    };
    // Built as bytes, so that the short runs between escapes are appended
    // without `memory.copy` ([`put`]); every piece is UTF-8.
    let mut text = Vec::with_capacity(inner.len());
    let (mut from, mut at) = (0, first);
    loop {
        put(&mut text, &bytes[from..at]);
        let (decoded, length) = match bytes.get(at..at + 2) {
            Some(b"\\\"") => ('"', 2),
            Some(b"\\\\") => ('\\', 2),
            Some(b"\\/") => ('/', 2),
            Some(b"\\b") => ('\u{8}', 2),
            Some(b"\\f") => ('\u{c}', 2),
            Some(b"\\n") => ('\n', 2),
            Some(b"\\r") => ('\r', 2),
            Some(b"\\t") => ('\t', 2),
            Some(b"\\u") => {
                let hex = bytes.get(at + 2..at + 6).filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))?;
                let unit = hex
                    .iter()
                    .fold(0, |unit, &digit| unit * 16 + char::from(digit).to_digit(16).unwrap_or(0));
                match char::from_u32(unit) {
                    Some(c) => (c, 6),
                    None => return serde_json::from_str::<String>(&format!("\"{inner}\"")).ok().map(Cow::Owned),
                }
            }
            // A bad escape, a quote or a control character: no literal.
            _ => return None,
        };
        match decoded.is_ascii() {
            true => text.push(decoded as u8),
            false => text.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes()),
        }
        from = at + length;
        match backslash(&bytes[from..]) {
            Some(i) => at = from + i,
            None => break,
        }
    }
    put(&mut text, &bytes[from..]);
    match String::from_utf8(text) {
        Ok(text) => Some(Cow::Owned(text)),
        // Cannot be: UTF-8 pieces make UTF-8.
        Err(_) => serde_json::from_str::<String>(&format!("\"{inner}\"")).ok().map(Cow::Owned),
    }
}

/// The object `v`, as an event's tree (for tests that build events as values).
#[cfg(test)]
pub fn obj(v: Value) -> Obj<'static> {
    match V::from(v) {
        V::Obj(o) => o,
        other => panic!("not an object: {other:?}"),
    }
}

impl From<Value> for V<'_> {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => V::Null,
            Value::Bool(b) => V::Bool(b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => V::Int(i),
                (None, Some(u)) => V::UInt(u),
                _ => V::Num(n),
            },
            Value::String(s) => V::Str(Cow::Owned(s)),
            Value::Array(items) => V::Arr(items.into_iter().map(V::from).collect()),
            Value::Object(map) => V::Obj(Obj(map.into_iter().map(|(k, v)| (Cow::Owned(k), V::from(v))).collect())),
        }
    }
}

impl<'a> From<&'a str> for V<'a> {
    fn from(s: &'a str) -> Self {
        V::Str(Cow::Borrowed(s))
    }
}

impl From<String> for V<'_> {
    fn from(s: String) -> Self {
        V::Str(Cow::Owned(s))
    }
}

impl<'a> From<Cow<'a, str>> for V<'a> {
    fn from(s: Cow<'a, str>) -> Self {
        V::Str(s)
    }
}

impl From<bool> for V<'_> {
    fn from(b: bool) -> Self {
        V::Bool(b)
    }
}

macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for V<'_> {
            fn from(n: $t) -> Self {
                V::Int(i64::from(n))
            }
        }
    )*};
}
from_int!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for V<'_> {
    fn from(n: u64) -> Self {
        match i64::try_from(n) {
            Ok(i) => V::Int(i),
            Err(_) => V::UInt(n),
        }
    }
}

impl<'a> From<Obj<'a>> for V<'a> {
    fn from(o: Obj<'a>) -> Self {
        V::Obj(o)
    }
}

/// A cell of a row: borrowed from the answer, or put back by a finish step.
#[derive(Clone, Debug)]
pub enum Cell<'a> {
    /// A cell's JSON text, as the answer holds it (checked when the row
    /// was read: `mapping::cells`).
    Raw(&'a str),
    /// The JSON text of an object, already checked (or made of checked
    /// pieces) by the finish step that put it back: a dynamic column's
    /// object read from JSON text, or what is left of it once some of its
    /// keys are mapped (`common::map_additional`).
    Text(String),
    /// As [`Cell::Text`], and already as [`write_compact`] would write it
    /// (made of compacted pieces, and no deeper than it writes): it goes
    /// to the output as it is.
    Written(String),
    Owned(Value),
}

impl Cell<'_> {
    /// Null and `""` mean absent.
    pub fn is_absent(&self) -> bool {
        match self {
            Cell::Raw(raw) => matches!(*raw, "null" | "\"\""),
            Cell::Text(text) | Cell::Written(text) => matches!(text.as_str(), "null" | "\"\""),
            Cell::Owned(v) => field::is_absent(v),
        }
    }

    /// The cell as a dynamic column's value: JSON text (an object or an
    /// array) parsed, anything else as it is (`field::parse_dynamic`),
    /// read straight from the answer.
    pub fn dynamic(&self) -> Value {
        match self {
            Cell::Raw(raw) if raw.starts_with('"') => match unquote(raw) {
                Some(text) => {
                    let t = text.trim_start();
                    if (t.starts_with('{') || t.starts_with('['))
                        && let Ok(parsed) = serde_json::from_str::<Value>(&text)
                    {
                        return parsed;
                    }
                    Value::String(text.into_owned())
                }
                None => Value::Null,
            },
            Cell::Raw(raw) => serde_json::from_str(raw).unwrap_or(Value::Null),
            Cell::Text(text) | Cell::Written(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            Cell::Owned(v) => field::parse_dynamic(v),
        }
    }

    /// The JSON text a dynamic cell holds, to read without parsing it
    /// whole: a string cell's text, another cell of the answer's own; `None`
    /// for a value a finish step put back.
    pub fn json_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Cell::Raw(raw) if raw.starts_with('"') => unquote(raw),
            Cell::Raw(raw) => Some(Cow::Borrowed(*raw)),
            Cell::Text(text) | Cell::Written(text) => Some(Cow::Borrowed(text)),
            Cell::Owned(_) => None,
        }
    }

    /// As [`Cell::dynamic`], taking the cell.
    pub fn into_dynamic(self) -> Value {
        match self {
            Cell::Owned(Value::String(s)) => field::parse_dynamic(&Value::String(s)),
            Cell::Owned(v) => v,
            raw => raw.dynamic(),
        }
    }

    /// The cell as a `serde_json` value (a cell of the answer was checked
    /// when the row was read).
    pub fn to_value(&self) -> Value {
        match self {
            Cell::Raw(raw) => serde_json::from_str(raw).unwrap_or(Value::Null),
            Cell::Text(text) | Cell::Written(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            Cell::Owned(v) => v.clone(),
        }
    }
}

/// The key for a segment of a path made at run time: the names the finish
/// steps build paths of are the mapping's own, borrowed; any other is copied.
pub fn key_of<'a>(part: &str) -> Key<'a> {
    let known = match part {
        "name" => "name",
        "path" => "path",
        "parent_folder" => "parent_folder",
        "type_id" => "type_id",
        "type" => "type",
        "file" => "file",
        "process" => "process",
        "parent_process" => "parent_process",
        "user" => "user",
        "actor" => "actor",
        "hostname" => "hostname",
        "unmapped" => "unmapped",
        "evidence" => "evidence",
        "product" => "product",
        "uid" => "uid",
        "pid" => "pid",
        "data" => "data",
        "src_endpoint" => "src_endpoint",
        "dst_endpoint" => "dst_endpoint",
        "query" => "query",
        "url" => "url",
        "device" => "device",
        "signature" => "signature",
        "certificate" => "certificate",
        "query_evidence" => "query_evidence",
        _ => return Cow::Owned(part.to_string()),
    };
    Cow::Borrowed(known)
}

/// Appends to the array at `leaf` of `node`, creating it (and replacing a
/// value that is not an array).
pub fn push_in<'a>(node: &mut Obj<'a>, leaf: Key<'a>, value: V<'a>) {
    match node.get_mut(&leaf) {
        Some(V::Arr(items)) => items.push(value),
        _ => {
            // Room for the hashes of a file (three), made in one allocation,
            // where `vec![value]` would grow at the second.
            let mut items = Vec::with_capacity(4);
            items.push(value);
            node.insert(leaf, V::Arr(items))
        }
    }
}

/// The segments of a dotted path. A plain byte scan: paths are a few short
/// words, for which `str::split`'s general searcher costs more than the search.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(path);
    std::iter::from_fn(move || {
        let path = rest?;
        match path.bytes().position(|b| b == b'.') {
            Some(dot) => {
                rest = Some(&path[dot + 1..]);
                Some(&path[..dot])
            }
            None => {
                rest = None;
                Some(path)
            }
        }
    })
}

/// The parent path of a dotted path, if any, and its last segment.
pub fn split_last(path: &str) -> (Option<&str>, &str) {
    match path.bytes().rposition(|b| b == b'.') {
        Some(dot) => (Some(&path[..dot]), &path[dot + 1..]),
        None => (None, path),
    }
}

/// JSON text of a value with what compacting copies and what it does
/// not: white space, exponents, long numbers, escaped surrogates and
/// nesting around `COMPACT_DEPTH` (for tests).
#[cfg(test)]
pub(crate) fn json_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let gap = proptest::sample::select(vec!["", "", "", " ", "\n"]);
    let scalar = proptest::sample::select(vec![
        "0",
        "-1.5",
        // serde_json writes 1.5.
        "1.50",
        "2.5e-3",
        "1E+40",
        "12345678901234567890",
        "123456789012345678901",
        r#""a b""#,
        r#""C:\\x\u00e9""#,
        r#""\ud83d\ude00""#,
        "true",
        "null",
    ])
    .prop_map(String::from);
    let value = scalar.prop_recursive(3, 12, 3, move |inner| {
        prop_oneof![
            (proptest::collection::vec(inner.clone(), 0..3), gap.clone()).prop_map(|(v, g)| format!("[{g}{}]", v.join(","))),
            (proptest::collection::vec(inner, 0..3), gap.clone()).prop_map(|(v, g)| {
                // Keys out of order: serde_json would sort them.
                let members: Vec<String> = v.iter().enumerate().map(|(i, v)| format!(r#""k{}":{g}{v}"#, 9 - i)).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    });
    (value, 0..4usize).prop_map(|(v, deep)| match deep {
        1 => format!("{}{v}{}", "[".repeat(61), "]".repeat(61)),
        2 => format!("{}{v}{}", "[".repeat(63), "]".repeat(63)),
        _ => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(v: &V) -> Value {
        let mut out = Vec::new();
        v.write(&mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn values_write_as_serde_json_writes_them() {
        let from = json!({"a": [1, -2, 18446744073709551615u64, 1.5, "x\"y", null, true], "b": {"c": "\\\\d"}});
        assert_eq!(written(&V::from(from.clone())), from);
        for raw in [
            "\"C:\\\\Windows\"",
            "12",
            "-3",
            "1.0e3",
            "[1, 2]",
            "{\"a\" : 1}",
            "true",
            "null",
            "18446744073709551615",
        ] {
            let cell = V::Cell(raw);
            assert_eq!(written(&cell), serde_json::from_str::<Value>(raw).unwrap(), "{raw}");
            assert_eq!(cell.to_value(), serde_json::from_str::<Value>(raw).unwrap(), "{raw}");
        }
        assert_eq!(written(&V::Quoted("42")), json!("42"));
        let mut out = Vec::new();
        V::Cell("[1,\n2]").write(&mut out);
        assert_eq!(out, b"[1,2]", "no newline may split an NDJSON line");
    }

    #[test]
    fn strings_unescape_on_read() {
        assert_eq!(V::Cell("\"C:\\\\Windows\"").as_str().unwrap(), "C:\\Windows");
        assert_eq!(V::Cell("\"a\\u0041\\n\"").as_str().unwrap(), "aA\n");
        assert_eq!(V::Cell("12").as_str(), None);
        assert_eq!(V::Quoted("12").as_str().unwrap(), "12");
        // A slice of a literal keeps its escapes when written, and reads as its text.
        let folder = V::Quoted("C:\\\\Windows");
        assert_eq!(folder.as_str().unwrap(), "C:\\Windows");
        assert_eq!(folder.to_value(), json!("C:\\Windows"));
        assert_eq!(written(&folder), json!("C:\\Windows"));
        assert_eq!(V::Cell("12").as_i64(), Some(12));
        assert_eq!(V::Cell("\"12\"").as_i64(), None);
    }

    #[test]
    fn objects_keep_their_order_and_replace_in_place() {
        let mut o = Obj::new();
        o.insert("b", V::Int(1));
        o.insert("a", V::Int(2));
        o.insert("b", V::Int(3));
        o.child("c", || "c".into()).insert("d", V::Null);
        let mut out = Vec::new();
        o.write(&mut out);
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"b":3,"a":2,"c":{"d":null}}"#);
        assert!(o.remove("a").is_some());
        assert_eq!(o.len(), 2);
    }

    /// Text `write_compact` takes: whitespace anywhere between tokens,
    /// strings holding what looks like whitespace, escapes and brackets.
    fn spaced(v: &Value, gap: &str) -> String {
        match v {
            Value::Array(items) => {
                let items: Vec<String> = items.iter().map(|i| spaced(i, gap)).collect();
                format!("[{gap}{}{gap}]", items.join(&format!("{gap},{gap}")))
            }
            Value::Object(m) => {
                let members: Vec<String> = m
                    .iter()
                    .map(|(k, v)| format!("{}{gap}:{gap}{}", Value::from(k.as_str()), spaced(v, gap)))
                    .collect();
                format!("{{{gap}{}{gap}}}", members.join(&format!("{gap},{gap}")))
            }
            v => v.to_string(),
        }
    }

    use proptest::prelude::*;

    /// An array of strings with what JSON escapes and brackets in them, or
    /// an object of numbers, strings, booleans, null and a nested value.
    fn json_value() -> impl Strategy<Value = Value> {
        proptest::prop_oneof![
            proptest::collection::vec("[ a\\t\"\\\\{}\\[\\],:é\\n\\u{1}]{0,6}", 0..4).prop_map(|v| json!(v)),
            proptest::collection::btree_map(
                "[ k\"\\\\]{0,3}",
                proptest::prop_oneof![
                    proptest::num::i64::ANY.prop_map(Value::from),
                    proptest::num::u64::ANY.prop_map(Value::from),
                    (-1.0e6f64..1.0e6).prop_map(|f| json!(f)),
                    "[ x\"\\\\]{0,4}".prop_map(Value::from),
                    proptest::bool::ANY.prop_map(Value::from),
                    proptest::strategy::Just(Value::Null),
                    proptest::strategy::Just(json!({"in": [1, true, {"a b": " "}]})),
                ],
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    }

    proptest::proptest! {
        /// A string literal reads as serde_json reads it, whatever its
        /// escapes, and not at all where serde_json refuses it. Texts run
        /// to several words, so that escapes fall anywhere in the eight-byte
        /// steps of the search for the next one.
        #[test]
        fn a_literal_reads_as_serde_json_reads_it(
            text in "[a\"\\\\/é😀\u{0}-\u{1f}\u{7f}]{0,40}",
            escapes in proptest::collection::vec((proptest::num::usize::ANY, proptest::sample::select(vec![
                "\\u00e9", "\\u00E9", "\\uD83D\\uDE00", "\\ud800", "\\uDC00x", "\\u12", "\\u+123", "\\x", "\\/", "\\b\\f\\n\\r\\t",
            ])), 0..6),
        ) {
            let mut raw = serde_json::to_string(&text).unwrap();
            for (at, escape) in escapes {
                let mut at = 1 + at % (raw.len() - 1);
                while !raw.is_char_boundary(at) || raw[..at].ends_with('\\') {
                    at -= 1;
                }
                raw.insert_str(at, escape);
            }
            let ours = unquote(&raw).map(Cow::into_owned);
            prop_assert_eq!(&ours, &serde_json::from_str::<String>(&raw).ok(), "{}", raw);
        }

        #[test]
        fn compact_text_is_the_value_without_whitespace(
            v in json_value(),
            gap in proptest::prop_oneof![proptest::strategy::Just(""), proptest::strategy::Just(" "), proptest::strategy::Just("\n\t "), proptest::strategy::Just("\r\n")],
        ) {
            let text = spaced(&v, gap);
            let mut out = b"prefix".to_vec();
            if write_compact(&mut out, &text) {
                let out = std::str::from_utf8(&out[6..]).unwrap();
                prop_assert_eq!(serde_json::from_str::<Value>(out).unwrap(), v.clone());
                // Only what lies between tokens goes: the text is serde_json's
                // own (whose keys, here, came in its order).
                prop_assert_eq!(out, v.to_string());
            } else {
                prop_assert_eq!(&out[..], b"prefix", "nothing is appended when it declines");
                prop_assert!(text.contains('e') || text.contains('E'), "only for an exponent: {}", text);
            }
        }
    }

    #[test]
    fn compact_text_keeps_the_order_it_came_in_and_declines_what_only_serde_json_settles() {
        let mut out = Vec::new();
        assert!(write_compact(
            &mut out,
            "{ \"b\" : [1, 2.50, -0, 18446744073709551616] ,\n \"a\":\"x \\\" y\"}"
        ));
        assert_eq!(
            out, br#"{"b":[1,2.50,-0,18446744073709551616],"a":"x \" y"}"#,
            "numbers and keys as they came"
        );
        let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
        let mut out = Vec::new();
        assert!(write_compact(&mut out, &deep(COMPACT_DEPTH)));
        assert_eq!(out, deep(COMPACT_DEPTH).as_bytes());
        for text in [
            "[1e400]",
            "[1E2]",
            "[123456789012345678901]",
            "[\"\\ud800\"]",
            "{\"a\":\"\\uDBFF\\uDFFF\"}",
            &deep(COMPACT_DEPTH + 1),
        ] {
            let mut out = b"x".to_vec();
            assert!(!write_compact(&mut out, text), "{text}");
            assert_eq!(out, b"x");
        }
        // What it declines, a cell still writes, as serde_json does.
        assert_eq!(written(&V::Cell("[1E2]")), json!([100.0]));
        assert_eq!(
            written(&V::Cell("[1e400]")),
            json!("[1e400]"),
            "what serde_json cannot read is kept as text"
        );
        assert_eq!(V::Cell("[1e400]").to_value(), json!("[1e400]"));
    }

    #[test]
    fn dynamic_text_is_written_as_the_value_it_holds_or_as_text() {
        assert_eq!(written(&V::Text(" { \"a\" : [ 1 ] } ".into())), json!({"a": [1]}));
        assert_eq!(
            written(&V::Text("[1e400]".into())),
            json!("[1e400]"),
            "text serde_json cannot read stays text"
        );
        let deep = format!("{}1{}", "{\"n\":".repeat(5000), "}".repeat(5000));
        assert_eq!(
            written(&V::Text(deep.as_str().into())),
            json!(deep),
            "too deep for serde_json: text"
        );
        assert_eq!(written(&V::Cell(&deep)), json!(deep), "too deep for serde_json: kept as text");
        assert!(crate::answer::json_container(" {\"a\":1}").is_some());
        assert!(crate::answer::json_container("[]").is_some());
        assert!(crate::answer::json_container("{\"a\":").is_none());
        assert!(crate::answer::json_container("\"{}\"").is_none());
        assert!(crate::answer::json_container("12").is_none());
    }

    proptest::proptest! {
        /// A dynamic column's text is taken for an object or array exactly
        /// when serde_json reads it as one (what `Plan::map` asked of it
        /// before it used the answer's scan), and when the scan finds it
        /// compact, compacting it copies it unchanged: it can be written as
        /// it is. Over JSON with and without white space, exponents, long
        /// numbers, surrogates and deep nesting, and that JSON broken by a
        /// byte cut, replaced or put in anywhere.
        #[test]
        fn a_container_is_what_serde_json_reads_as_one_and_compact_text_is_copied_unchanged(
            v in json_value(),
            gap in proptest::sample::select(vec!["", "", " ", "\n\t "]),
            extra in proptest::sample::select(vec!["", "1e400", "-0.5E-3", "123456789012345678901", "\"\\ud800\"", "\"\\u00e9\\/\"", "01", "tru", "nul", "\"\u{1}\""]),
            deep in proptest::sample::select(vec![0usize, 63, 64, 65, 130]),
            broken in proptest::option::of((proptest::num::usize::ANY, proptest::sample::select(vec!["", "\"", "]", "}", ",", ":", "\\", "x", "{", " "]))),
        ) {
            let mut text = spaced(&v, gap);
            if !extra.is_empty() {
                text = format!("[{text},{gap}{extra}]");
            }
            text = format!("{}{text}{}", "[".repeat(deep), "]".repeat(deep));
            if let Some((at, with)) = broken {
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let end = (at + 1).min(text.len());
                let end = if text.is_char_boundary(end) { end } else { at };
                text.replace_range(at..end, with);
            }
            let t = text.trim_start();
            let serde = (t.starts_with('{') || t.starts_with('[')) && serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok();
            let shape = crate::answer::json_container(&text);
            // serde_json reads no more than 128 levels; what it refuses
            // for that alone is written as text either way (`V::Text`).
            if deep < 120 {
                prop_assert_eq!(shape.is_some(), serde, "{}", text);
            }
            if shape == Some(true) {
                let mut out = Vec::new();
                prop_assert!(write_compact(&mut out, &text), "{}", text);
                prop_assert_eq!(out, text.as_bytes(), "compact text is copied unchanged");
            }
        }
    }

    proptest::proptest! {
        /// The scan finds an object compact (`ObjectShape::compact`) exactly
        /// where compacting copies it unchanged, nothing in it nested deeper
        /// than `COMPACT_DEPTH`, the object itself included: then each of its
        /// members can be copied as it came.
        #[test]
        fn an_object_is_found_compact_exactly_where_compacting_copies_it(
            x in json_text(),
            y in json_text(),
            gap in proptest::sample::select(vec!["", "", " "]),
        ) {
            let text = format!(r#"{{"x":{gap}{x},"y":{y}}}"#);
            let shape = crate::answer::object_members(&text, |_, _, _| {}).unwrap();
            let mut out = Vec::new();
            let copied = compact(&mut out, &text).is_some() && out == text.as_bytes();
            prop_assert_eq!(shape.compact, copied, "{}", text);
        }
    }

    proptest::proptest! {
        /// Strings and keys are written byte for byte as serde_json writes
        /// them, whether they take the copy between quotes or the escaper:
        /// every control character, quotes, backslashes, DEL and text beyond
        /// ASCII, at every place of strings that span words.
        #[test]
        fn strings_are_written_as_serde_json_writes_them(
            text in proptest::collection::vec(proptest::prop_oneof![
                proptest::char::range('\u{0}', '\u{1f}'),
                proptest::strategy::Just('"'),
                proptest::strategy::Just('\\'),
                proptest::strategy::Just('\u{7f}'),
                proptest::char::range(' ', '~'),
                proptest::char::range(' ', '~'),
                proptest::char::range(' ', '~'),
                proptest::char::any(),
            ], 0..40).prop_map(|c| c.into_iter().collect::<String>())
        ) {
            let mut out = Vec::new();
            write_str(&mut out, &text);
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(&text).unwrap());
            let mut out = Vec::new();
            Obj(vec![(Cow::Owned(text.clone()), V::Str(Cow::Borrowed(text.as_str())))]).write(&mut out);
            let expected = serde_json::to_string(&serde_json::Map::from_iter([(text.clone(), Value::from(text.clone()))])).unwrap();
            proptest::prop_assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }
}
