//! Direct writers: rows mapped straight from the answer's text to NDJSON,
//! for the tables whose volume makes the engine's cost matter.
//!
//! The engine ([`super::engine`]) moves each row into a map of values and
//! builds the event as a tree of maps before writing it: about 790
//! allocations a DeviceProcessEvents row, most of its time
//! (docs/performance.md). A direct writer borrows each cell from the answer
//! into a fixed slot per column, converts it once into a typed struct and
//! writes the event straight to the output. It is the same mapping, written
//! a second time in code rather than as data, so the engine stays its
//! reference: the tests here check that both emit the same events (as JSON
//! values; the key order differs), on the shared sample rows, on rows with
//! cells of every JSON type, and on each rare path.
//!
//! A direct writer covers the common case and declines the rest, which the
//! engine then maps: a row that the engine would reject (so that the error
//! is the engine's), a row without a `Timestamp`, a column given twice, a
//! union's source column, and an activity whose shape or fixed attributes
//! differ from those it writes. Declining costs only the time it took.

mod process;

use super::{Table, Written};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::fmt;

/// Writes the event of `row` (one row of an answer of `table`, as JSON
/// text) to `out` as one NDJSON line, if `table` has a direct writer and
/// the row is one it takes; `None` leaves `out` as it was, for the engine.
pub fn write(table: &'static Table, row: &str, ctx: &super::Context, out: &mut Vec<u8>) -> Option<Written> {
    let start = out.len();
    let written = if std::ptr::eq(table, &super::device::DEVICE_PROCESS_EVENTS) {
        process::write(table, row, ctx, out)
    } else {
        None
    };
    if written.is_none() {
        out.truncate(start);
    }
    written
}

/// A cell converted, ready to be written.
#[derive(Clone, Debug)]
enum J<'a> {
    /// JSON text from the answer, written as it is (a string keeps its escapes).
    Lit(&'a str),
    /// A number or boolean from the answer, written as a string.
    Quote(&'a str),
    /// Text to be written as a JSON string.
    Text(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Bool(bool),
}

impl J<'_> {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            J::Lit(raw) => out.extend_from_slice(raw.as_bytes()),
            J::Quote(raw) => {
                out.push(b'"');
                out.extend_from_slice(raw.as_bytes());
                out.push(b'"');
            }
            J::Text(text) => write_str(out, text),
            J::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            J::UInt(n) => out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes()),
            J::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        }
    }
}

/// A JSON string, escaped as the engine's output is.
fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// One row's cells, borrowed from the answer: those of the columns a writer
/// maps in a slot each (`cells`), the others in `rest`, bound for `unmapped`.
struct Cells<'de, const N: usize> {
    cells: [Option<&'de RawValue>; N],
    rest: Vec<(&'de str, &'de RawValue)>,
}

/// Null and `""` mean absent, as in the engine.
fn is_absent(raw: &str) -> bool {
    raw == "null" || raw == "\"\""
}

impl<'de, const N: usize> Cells<'de, N> {
    /// Reads the row `text`, putting each column that `slot` knows in its
    /// slot. `None` for what the engine handles: a column given twice (the
    /// engine keeps its last value), the union's source column, a column
    /// name with escapes (it cannot be borrowed), an escaped UTF-16
    /// surrogate (serde_json checks their pairing only when it reads a
    /// string, which borrowed cells skip), or text that is not one JSON
    /// object.
    fn read(text: &'de str, slot: fn(&str) -> Option<usize>) -> Option<Self> {
        if has_surrogate_escape(text) {
            return None;
        }
        struct Reader<const N: usize>(fn(&str) -> Option<usize>);
        impl<'de, const N: usize> Visitor<'de> for Reader<N> {
            type Value = Option<Cells<'de, N>>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a row (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut row = Cells {
                    cells: [None; N],
                    rest: Vec::with_capacity(16),
                };
                while let Some((name, value)) = map.next_entry::<&'de str, &'de RawValue>()? {
                    match (self.0)(name) {
                        Some(i) if row.cells[i].is_some() => return Ok(None),
                        Some(i) => row.cells[i] = Some(value),
                        None if name == crate::kql::SOURCE_COLUMN || row.rest.iter().any(|(n, _)| *n == name) => {
                            return Ok(None);
                        }
                        None => row.rest.push((name, value)),
                    }
                }
                Ok(Some(row))
            }
        }
        let mut de = serde_json::Deserializer::from_str(text);
        let row = de.deserialize_map(Reader::<N>(slot)).ok()??;
        de.end().ok()?;
        Some(row)
    }

    /// The cell of slot `i`, unless absent.
    fn raw(&self, i: usize) -> Option<&'de str> {
        self.cells[i].map(RawValue::get).filter(|raw| !is_absent(raw))
    }

    /// Takes the cell of slot `i` through `conv`; a cell that does not
    /// convert goes to `unmapped` under its column `name`, an absent one
    /// (null or `""`) is dropped.
    fn take<T>(&mut self, i: usize, name: &'static str, conv: impl FnOnce(&'de str) -> Option<T>) -> Option<T> {
        let raw = self.raw(i)?;
        let out = conv(raw);
        if out.is_none() {
            self.rest.push((name, self.cells[i]?));
        }
        out
    }
}

/// Whether `text` holds an escaped UTF-16 surrogate, `\uD800` to `\uDFFF`.
/// Backslashes are found with `memchr` (`str::find` of a char), a word at a
/// time: a two-byte pattern search cost twice as much on path-heavy rows.
fn has_surrogate_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    loop {
        // After a backslash and the ASCII byte it escapes; text that is not
        // JSON may put a character boundary elsewhere, and is declined.
        let Some(rest) = text.get(from..) else {
            return true;
        };
        let Some(at) = rest.find('\\') else {
            return false;
        };
        let i = from + at;
        if bytes.get(i + 1) == Some(&b'u')
            && matches!(bytes.get(i + 2), Some(b'd' | b'D'))
            && matches!(bytes.get(i + 3), Some(b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F'))
        {
            return true;
        }
        from = i + 2;
    }
}

// Conversions of one raw cell, each the engine's `Conv` of the same name.

/// `Conv::Str`: a string as it is; numbers and booleans as text.
fn string(raw: &str) -> Option<J<'_>> {
    match raw.as_bytes()[0] {
        b'"' => Some(J::Lit(raw)),
        b't' | b'f' => Some(J::Quote(raw)),
        // Any other number is written the way serde_json writes it.
        _ if is_plain_int(raw) => Some(J::Quote(raw)),
        b'-' | b'0'..=b'9' => Some(J::Text(serde_json::from_str::<serde_json::Number>(raw).ok()?.to_string().into())),
        _ => None,
    }
}

/// The text of a string cell (numbers and booleans as text), unescaped.
fn text(raw: &str) -> Option<Cow<'_, str>> {
    match string(raw)? {
        J::Lit(raw) if !raw.contains('\\') => Some(Cow::Borrowed(&raw[1..raw.len() - 1])),
        J::Lit(raw) => unescape(&raw[1..raw.len() - 1]).map(Cow::Owned),
        J::Quote(raw) => Some(Cow::Borrowed(raw)),
        J::Text(text) => Some(text),
        _ => None,
    }
}

/// The text of a JSON string's contents. Paths, the common case, escape
/// only backslashes and quotes, which are copied here; any other escape goes
/// through serde_json.
fn unescape(escaped: &str) -> Option<String> {
    let mut text = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(i) = rest.find('\\') {
        text.push_str(&rest[..i]);
        match rest.as_bytes().get(i + 1) {
            Some(b @ (b'\\' | b'"' | b'/')) => text.push(char::from(*b)),
            _ => return serde_json::from_str(&["\"", escaped, "\""].concat()).ok(),
        }
        rest = &rest[i + 2..];
    }
    text.push_str(rest);
    Some(text)
}

/// `Conv::Int`: a JSON integer or a numeric string; exact to 64 bits.
fn int(raw: &str) -> Option<J<'_>> {
    if raw.starts_with('"') {
        let text = text(raw)?;
        let digits = text.trim();
        return match digits.parse::<i64>() {
            Ok(n) => Some(J::Int(n)),
            Err(_) => digits.parse::<u64>().ok().map(J::UInt),
        };
    }
    if is_plain_int(raw) {
        return raw.parse::<i64>().map(J::Int).or_else(|_| raw.parse::<u64>().map(J::UInt)).ok();
    }
    // Any other number as serde_json reads it: an integer only without a
    // fraction or an exponent, and `-0` is a float (found by the fuzz target).
    let n: serde_json::Number = serde_json::from_str(raw).ok()?;
    n.as_i64().map(J::Int).or_else(|| n.as_u64().map(J::UInt))
}

/// `Conv::Bool`: `true`/`false`, `1`/`0` and their string forms.
fn boolean(raw: &str) -> Option<J<'_>> {
    match raw {
        "true" | "1" => Some(J::Bool(true)),
        "false" | "0" => Some(J::Bool(false)),
        _ if raw.starts_with('"') => match text(raw)?.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Some(J::Bool(true)),
            "false" | "0" => Some(J::Bool(false)),
            _ => None,
        },
        _ => None,
    }
}

/// 100 ns ticks of a timestamp cell.
fn ticks(raw: &str) -> Option<i64> {
    if !raw.starts_with('"') {
        return None;
    }
    crate::time::Ticks::parse(&text(raw)?).ok().map(|t| t.0)
}

/// `Conv::Time`: an ISO 8601 timestamp as epoch milliseconds.
fn time(raw: &str) -> Option<J<'_>> {
    ticks(raw).map(|t| J::Int(t.div_euclid(crate::time::TICKS_PER_MS)))
}

/// `Conv::Email`: an address OCSF's `email_t` accepts.
fn email(raw: &str) -> Option<J<'_>> {
    if !raw.starts_with('"') {
        return None;
    }
    super::engine::is_email(&text(raw)?).then_some(J::Lit(raw))
}

// Writing: every member is followed by a comma, which `close` turns into
// the object's closing brace.

fn key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

fn member(out: &mut Vec<u8>, name: &str, value: Option<&J>) {
    if let Some(value) = value {
        key(out, name);
        value.write(out);
        out.push(b',');
    }
}

fn text_member(out: &mut Vec<u8>, name: &str, value: Option<&str>) {
    if let Some(value) = value {
        key(out, name);
        write_str(out, value);
        out.push(b',');
    }
}

/// Closes an object whose members each end with a comma.
fn close(out: &mut Vec<u8>) {
    match out.last_mut() {
        Some(last @ b',') => *last = b'}',
        _ => out.push(b'}'),
    }
}

/// `metadata.uid`: the engine's [`row_uid`](super::engine::row_uid) of the
/// same row, from its key columns' cells (`slot` finds them); `None` if a key
/// column has no slot.
fn row_uid<const N: usize>(table: &Table, row: &Cells<N>, slot: fn(&str) -> Option<usize>, ticks: i64) -> Option<String> {
    let mut hasher = Sha256::new();
    hasher.update(table.name.as_bytes());
    for column in table.key {
        hasher.update([0x1f]);
        let Some(raw) = row.cells[slot(column)?].map(RawValue::get) else {
            continue;
        };
        match raw.as_bytes()[0] {
            b'"' if *column == "Timestamp" => hasher.update(itoa::Buffer::new().format(ticks).as_bytes()),
            b'"' => hasher.update(text(raw)?.as_bytes()),
            b'n' => {}
            _ => hasher.update(serde_json::from_str::<serde_json::Value>(raw).ok()?.to_string().as_bytes()),
        }
    }
    Some(super::engine::uid_of(hasher))
}

/// `unmapped`: every cell left (`AdditionalFields` parsed when it is JSON
/// text, as the engine's `parse_dynamic` does) and the objects the finish
/// steps moved there, by dotted path. `None` for a cell serde_json would
/// not read (a number out of range), which the engine rejects the row for,
/// and for a column named like a moved object.
fn write_unmapped(out: &mut Vec<u8>, rest: &[(&str, &RawValue)], moved: Vec<(String, Vec<u8>)>) -> Option<()> {
    let rest = rest.iter().filter(|(_, v)| !is_absent(v.get()));
    if moved.is_empty() {
        let start = out.len();
        out.extend_from_slice(b"\"unmapped\":{");
        for (name, value) in rest {
            write_str(out, name);
            out.push(b':');
            match dynamic(name, value.get()) {
                Some(parsed) => serde_json::to_writer(&mut *out, &parsed).ok()?,
                None => write_raw(out, value.get())?,
            }
            out.push(b',');
        }
        if out.last() == Some(&b'{') {
            out.truncate(start);
        } else {
            close(out);
            out.push(b',');
        }
        return Some(());
    }
    // Rare: objects moved by the finish steps, merged into nested paths. A
    // column named like one of them (`process`; Defender's are PascalCase)
    // is left to the engine, whose column then replaces the object.
    let first_segment = |path: &str| path.split('.').next().unwrap_or_default().to_string();
    let moved_roots: Vec<String> = moved.iter().map(|(path, _)| first_segment(path)).collect();
    if rest.clone().any(|(name, _)| moved_roots.iter().any(|root| root == name)) {
        return None;
    }
    let mut unmapped = serde_json::Map::new();
    for (name, value) in rest {
        let v = match dynamic(name, value.get()) {
            Some(parsed) => parsed,
            None => serde_json::from_str(value.get()).ok()?,
        };
        unmapped.insert(name.to_string(), v);
    }
    for (path, object) in moved {
        let value: serde_json::Value = serde_json::from_slice(&object).ok()?;
        let mut node = &mut unmapped;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                merge(node.entry(part).or_insert(serde_json::Value::Null), value);
                break;
            }
            let child = node.entry(part).or_insert_with(|| serde_json::Value::Object(Default::default()));
            if !child.is_object() {
                *child = serde_json::Value::Object(Default::default());
            }
            node = child.as_object_mut()?;
        }
    }
    key(out, "unmapped");
    serde_json::to_writer(&mut *out, &unmapped).ok()?;
    out.push(b',');
    Some(())
}

/// A cell written as the engine would write its value: strings, booleans
/// and plain integers as they came; other numbers, objects and arrays
/// through serde_json, which checks them and drops the whitespace an answer
/// may hold between their items (a newline would split the NDJSON line).
fn write_raw(out: &mut Vec<u8>, raw: &str) -> Option<()> {
    match raw.as_bytes()[0] {
        b'"' | b't' | b'f' | b'n' => out.extend_from_slice(raw.as_bytes()),
        _ if is_plain_int(raw) => out.extend_from_slice(raw.as_bytes()),
        _ => serde_json::to_writer(&mut *out, &serde_json::from_str::<serde_json::Value>(raw).ok()?).ok()?,
    }
    Some(())
}

/// A non-negative integer, written as serde_json writes it, that fits 64 bits.
fn is_plain_int(raw: &str) -> bool {
    raw == "0" || (matches!(raw.as_bytes()[0], b'1'..=b'9') && raw.len() <= 19 && raw.bytes().all(|b| b.is_ascii_digit()))
}

fn merge(into: &mut serde_json::Value, value: serde_json::Value) {
    match (into, value) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// `AdditionalFields` holding JSON text, parsed by the engine's rule
/// ([`parse_dynamic`](super::engine::parse_dynamic)); `None` for any other
/// cell, and for text that stays text.
fn dynamic(name: &str, raw: &str) -> Option<serde_json::Value> {
    if name != "AdditionalFields" || !raw.starts_with('"') {
        return None;
    }
    match super::engine::parse_dynamic(&serde_json::Value::String(text(raw)?.into_owned())) {
        serde_json::Value::String(_) => None,
        parsed => Some(parsed),
    }
}

#[cfg(test)]
mod tests;
