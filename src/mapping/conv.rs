//! One cell converted as its field's [`Conv`] says, and put where it goes.
//!
//! A cell of the answer is converted from its JSON text, so that a string
//! stays borrowed and an integer exact; a cell a finish step made is
//! converted as a value ([`field::convert`]).

use super::captions;
use super::field::{self, Conv, is_email, parse_dynamic};
use super::value::{Cell, Key, Obj, V, is_plain_int, push_in, unquote};
use crate::time::Ticks;
use serde_json::Value;
use std::borrow::Cow;

/// Puts a converted value at `leaf` of `node`, the way `conv` says.
pub fn put_in<'a>(node: &mut Obj<'a>, leaf: Key<'a>, conv: Conv, v: V<'a>) {
    match conv {
        Conv::Hash(id) => push_in(node, leaf, hash(id, v)),
        Conv::NamedItem => push_in(node, leaf, named(v)),
        Conv::Item | Conv::EmailItem => push_in(node, leaf, v),
        Conv::Integrity => {
            let id = integrity_of(&v);
            let id_key = match leaf.as_ref() {
                "integrity" => Cow::Borrowed("integrity_id"),
                other => Cow::Owned([other, "_id"].concat()),
            };
            node.insert(id_key, V::from(id));
            // A level OCSF names is written as the schema's caption
            // (`MEDIUM`, `MediumPlus` as `Medium`); another as it came.
            let caption = INTEGRITY.get(id as usize).filter(|c| v.as_str().as_deref() != Some(**c));
            node.insert(leaf, caption.map_or(v, |c| V::Str(Cow::Borrowed(*c))));
        }
        _ => node.insert(leaf, v),
    }
}

/// A hash of `algorithm_id` whose value is `v`: a string cell as it came is
/// held as [`V::Hash`], anything else as the object.
fn hash(algorithm_id: u8, v: V<'_>) -> V<'_> {
    if let V::Cell(raw) = v
        && raw.starts_with('"')
    {
        return V::Hash(algorithm_id, raw);
    }
    V::Obj(Obj(vec![
        (Cow::Borrowed("algorithm_id"), V::from(algorithm_id)),
        (
            Cow::Borrowed("algorithm"),
            V::Str(Cow::Borrowed(captions::hash_algorithm(algorithm_id))),
        ),
        (Cow::Borrowed("value"), v),
    ]))
}

fn named(v: V<'_>) -> V<'_> {
    V::Obj(Obj(vec![(Cow::Borrowed("name"), v)]))
}

/// The captions of `integrity_id` 0 to 6 in OCSF 1.8.0.
const INTEGRITY: [&str; 7] = ["Unknown", "Untrusted", "Low", "Medium", "High", "System", "Protected"];

fn integrity_of(v: &V) -> u32 {
    field::integrity_id(v.as_str().as_deref().unwrap_or(""))
}

/// Converts one cell, as [`field::convert`] converts its value.
/// `None` means it does not convert.
pub fn convert<'a>(cell: &Cell<'a>, conv: Conv) -> Option<V<'a>> {
    let raw = match cell {
        Cell::Raw(raw) => *raw,
        Cell::Owned(v) => return field::convert(v, conv).map(V::from),
        Cell::Text(_) | Cell::Written(_) => return field::convert(&cell.to_value(), conv).map(V::from),
    };
    let first = raw.as_bytes()[0];
    let is_string = first == b'"';
    match conv {
        Conv::Str | Conv::Hash(_) | Conv::NamedItem | Conv::Integrity | Conv::Item => match first {
            b'"' => Some(V::Cell(raw)),
            b't' | b'f' => Some(V::Quoted(raw)),
            _ if is_plain_int(raw) => Some(V::Quoted(raw)),
            b'-' | b'0'..=b'9' => Some(V::Str(Cow::Owned(
                serde_json::from_str::<serde_json::Number>(raw).ok()?.to_string(),
            ))),
            _ => None,
        },
        Conv::Int => int(raw),
        Conv::Port => int(raw).filter(|n| n.as_u64().is_some_and(|p| p <= 65535)),
        Conv::Bool => match raw {
            "true" | "1" => Some(V::Bool(true)),
            "false" | "0" => Some(V::Bool(false)),
            _ if is_string => match unquote(raw)?.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Some(V::Bool(true)),
                "false" | "0" => Some(V::Bool(false)),
                _ => None,
            },
            _ => None,
        },
        Conv::Time if is_string => Ticks::parse(&unquote(raw)?).ok().map(|t| V::Int(t.to_epoch_ms())),
        Conv::Json if is_string => match parse_dynamic(&Value::String(unquote(raw)?.into_owned())) {
            Value::String(_) => Some(V::Cell(raw)),
            parsed => Some(V::from(parsed)),
        },
        Conv::Json => Some(V::Cell(raw)),
        Conv::Ip if is_string => {
            let text = unquote(raw)?;
            let trimmed = text.trim();
            if trimmed.parse::<std::net::IpAddr>().is_err() {
                return None;
            }
            Some(match (trimmed.len() == text.len(), text) {
                (true, Cow::Borrowed(_)) => V::Cell(raw),
                (_, text) => V::Str(Cow::Owned(text.trim().to_string())),
            })
        }
        Conv::Email | Conv::EmailItem if is_string => is_email(&unquote(raw)?).then_some(V::Cell(raw)),
        Conv::Time | Conv::Ip | Conv::Email | Conv::EmailItem => None,
    }
}

/// `Conv::Int`: a JSON integer or a numeric string; exact to 64 bits.
fn int(raw: &str) -> Option<V<'_>> {
    if raw.starts_with('"') {
        let text = unquote(raw)?;
        let digits = text.trim();
        return match digits.parse::<i64>() {
            Ok(n) => Some(V::Int(n)),
            Err(_) => digits.parse::<u64>().ok().map(V::UInt),
        };
    }
    if is_plain_int(raw) {
        return raw.parse::<i64>().map(V::Int).or_else(|_| raw.parse::<u64>().map(V::UInt)).ok();
    }
    if !matches!(raw.as_bytes()[0], b'-' | b'0'..=b'9') {
        return None;
    }
    // Any other number as serde_json reads it: an integer only without a
    // fraction or an exponent, and `-0` is a float.
    let n: serde_json::Number = serde_json::from_str(raw).ok()?;
    n.as_i64().map(V::Int).or_else(|| n.as_u64().map(V::UInt))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A hash of a string cell is held as [`V::Hash`], and is written,
        /// read as a value and read for its `value` as the object it
        /// stands for: any text, escaped as serde_json escapes it or with
        /// `\u` escapes of its own.
        #[test]
        fn a_hash_of_a_string_cell_is_the_object_it_stands_for(
            text in "[ a\\\\\"/é\\u{1}\\u{1F600}0-9A-F]{0,12}",
            id in proptest::sample::select(vec![0u8, 1, 2, 3, 4, 99]),
            own_escapes: bool,
        ) {
            let mut raw = serde_json::to_string(&text).unwrap();
            if own_escapes {
                raw = raw.replace('é', "\\u00e9").replace('/', "\\/");
            }
            let held = hash(id, V::Cell(&raw));
            proptest::prop_assert!(matches!(held, V::Hash(..)), "{:?}", held);
            let object = V::Obj(Obj(vec![
                (Cow::Borrowed("algorithm_id"), V::from(id)),
                (Cow::Borrowed("algorithm"), V::Str(Cow::Borrowed(captions::hash_algorithm(id)))),
                (Cow::Borrowed("value"), V::Cell(&raw)),
            ]));
            let (mut a, mut b) = (Vec::new(), Vec::new());
            held.write(&mut a);
            object.write(&mut b);
            proptest::prop_assert_eq!(String::from_utf8(a.clone()).unwrap(), String::from_utf8(b).unwrap());
            let expected = serde_json::json!({"algorithm_id": id, "algorithm": captions::hash_algorithm(id), "value": text});
            proptest::prop_assert_eq!(&serde_json::from_slice::<Value>(&a).unwrap(), &expected);
            proptest::prop_assert_eq!(&held.to_value(), &expected);
            proptest::prop_assert_eq!(held.hash_value().map(Cow::into_owned), Some(text.clone()));
            proptest::prop_assert_eq!(object.hash_value().map(Cow::into_owned), Some(text));
        }
    }

    #[test]
    fn a_hash_of_a_number_or_boolean_is_an_object() {
        for raw in ["12", "true"] {
            let held = hash(3, V::Quoted(raw));
            assert!(matches!(held, V::Obj(_)), "{held:?}");
            assert_eq!(held.hash_value().as_deref(), Some(raw));
        }
    }
}
